"""kcat (Debian's package: kcat 1.7.1 on librdkafka 2.0.2) against weir.

librdkafka 2.0.2 is the old, non-flexible side of the protocol (Metadata v4, Produce v7,
Fetch v11, ListOffsets v2) and the one that breaks on tagged fields sent at their
defaults, so it checks a different encoding path than confluent-kafka's current librdkafka.
"""

import json
import shutil
import subprocess
import time

import pytest

KCAT = shutil.which("kcat")
# kcat waits for its broker's answers; a healthy run takes well under a second.
KCAT_TIMEOUT_S = 30
# weir's default `num.partitions` for auto-created topics (the Kafka default many client
# test suites assume).
AUTO_PARTITIONS = 4

pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (scripts/test.sh installs it)")


# librdkafka retries an unacknowledged message for 5 minutes by default; a broker that
# does not answer should fail the test long before pytest's own timeout.
MESSAGE_TIMEOUT_MS = 15_000


def kcat(bootstrap, *args, stdin=None):
    extra = ["-X", f"message.timeout.ms={MESSAGE_TIMEOUT_MS}"] if "-P" in args else []
    done = subprocess.run(
        [KCAT, "-b", bootstrap, *extra, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=KCAT_TIMEOUT_S,
    )
    assert done.returncode == 0, f"kcat {args} failed ({done.returncode}):\n{done.stderr}"
    assert "Delivery failed" not in done.stderr, done.stderr
    return done.stdout


def test_metadata_lists_the_broker_and_an_auto_created_topic(bootstrap, topic_name):
    topic = topic_name()
    # A producer's Metadata request allows auto-creation; kcat -P sends one for its topic.
    kcat(bootstrap, "-P", "-t", topic, stdin="hello\n")

    listing = json.loads(kcat(bootstrap, "-L", "-J", "-t", topic))
    host, port = bootstrap.rsplit(":", 1)
    assert [(b["name"]) for b in listing["brokers"]] == [f"{host}:{port}"]
    broker_id = listing["brokers"][0]["id"]
    [entry] = [t for t in listing["topics"] if t["topic"] == topic]
    assert "error" not in entry, entry
    partitions = sorted(entry["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in partitions] == list(range(AUTO_PARTITIONS))
    for p in partitions:
        assert p["leader"] == broker_id
        assert p["replicas"] == [{"id": broker_id}]
        assert p["isrs"] == [{"id": broker_id}]

    # The whole-cluster listing names the topic too.
    everything = json.loads(kcat(bootstrap, "-L", "-J"))
    assert topic in [t["topic"] for t in everything["topics"]]


def test_produce_and_consume_with_keys_and_headers(bootstrap, topic_name):
    topic = topic_name()
    lines = [f"key-{i}:value {i} with spaces" for i in range(20)]
    kcat(
        bootstrap, "-P", "-t", topic, "-K:", "-H", "trace=abc", "-H", "origin=kcat",
        stdin="\n".join(lines) + "\n",
    )
    out = kcat(bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k|%s|%h|%p\n")
    got = [line.split("|") for line in out.splitlines() if line]
    assert sorted((k, v) for k, v, _, _ in got) == sorted(tuple(line.split(":", 1)) for line in lines)
    for _, _, headers, _ in got:
        assert headers == "trace=abc,origin=kcat"
    # librdkafka's default partitioner hashes keys: more than one partition was used, and
    # a key always lands in the same one.
    assert len({p for *_, p in got}) > 1


def test_same_partition_keeps_produce_order(bootstrap, topic_name):
    topic = topic_name()
    values = [f"v{i}" for i in range(100)]
    kcat(bootstrap, "-P", "-t", topic, "-p", "2", stdin="\n".join(values) + "\n")
    out = kcat(bootstrap, "-C", "-t", topic, "-p", "2", "-o", "beginning", "-e", "-f", "%o %s\n")
    assert out.splitlines() == [f"{i} v{i}" for i in range(100)]
    # Consuming from an offset inside the log starts there.
    out = kcat(bootstrap, "-C", "-t", topic, "-p", "2", "-o", "95", "-e", "-f", "%o %s\n")
    assert out.splitlines() == [f"{i} v{i}" for i in range(95, 100)]


def test_query_offsets_by_time(bootstrap, topic_name):
    topic = topic_name()
    kcat(bootstrap, "-P", "-t", topic, "-p", "0", stdin="".join(f"early-{i}\n" for i in range(5)))
    time.sleep(0.05)  # the next records' CreateTime is strictly later than `boundary_ms`
    boundary_ms = int(time.time() * 1000)
    time.sleep(0.05)
    kcat(bootstrap, "-P", "-t", topic, "-p", "0", stdin="".join(f"late-{i}\n" for i in range(3)))

    def offset_for(ts):
        out = kcat(bootstrap, "-Q", "-t", f"{topic}:0:{ts}")
        # "<topic> [0] offset <n>"
        [line] = [line for line in out.splitlines() if line.strip()]
        assert line.startswith(f"{topic} [0] offset "), line
        return int(line.rsplit(" ", 1)[1])

    assert offset_for(0) == 0
    assert offset_for(boundary_ms) == 5
    # Past the newest timestamp there is no such record: Kafka answers -1 (librdkafka's
    # OFFSET_END).
    assert offset_for(boundary_ms + 3_600_000) == -1

    # Cross-check the timestamps kcat sees on the records themselves.
    out = kcat(bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", "%T %s\n")
    stamps = [(int(ts), v) for ts, v in (line.split(" ", 1) for line in out.splitlines())]
    assert [v for _, v in stamps] == [f"early-{i}" for i in range(5)] + [f"late-{i}" for i in range(3)]
    assert all(ts < boundary_ms for ts, v in stamps[:5])
    assert all(ts > boundary_ms for ts, v in stamps[5:])
