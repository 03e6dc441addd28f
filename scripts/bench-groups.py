#!/usr/bin/env python3
"""Consumer-group figures of a release `weir serve` (issue 4), with confluent-kafka
(librdkafka) as the client and a raw-protocol load for offset commits.

    cargo build --release && ./scripts/test.sh    # once: .venv with confluent-kafka
    .venv/bin/python scripts/bench-groups.py      # prints one line per figure

Figures:
  first-message  time from subscribe() to the first message for a new single-member group,
                 with the default group.initial.rebalance.delay.ms (3,000 ms) and with 0;
  join-10        time for 10 members subscribing at once to an idle 100-partition topic until
                 every partition has one owner and every member a share (p50 and max over
                 rounds), at librdkafka's default heartbeat interval and at 500 ms;
  leave-1        time from one of those members' close() until the 9 others own all 100;
  commits        OffsetCommit requests/s one coordinator sustains for 1,000 groups (one
                 partition each, generation -1), pipelined over 8 connections; the commits
                 are durable (`__consumer_offsets` is a `sync` topic) when answered.
Anchor in the same run: the disk's 4 KiB write+fdatasync rate (what a durable commit costs).
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = int(os.environ.get("ROUNDS", "5"))


def target_dir():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    import json
    return Path(json.loads(out)["target_directory"])


WEIR = Path(os.environ.get("WEIR_BIN") or target_dir() / "release" / "weir")


class Weir:
    def __init__(self, *flags):
        self.dir = tempfile.mkdtemp(prefix="weir-bench-groups-")
        self.log = open(os.path.join(self.dir, "weir.log"), "w+")
        self.proc = subprocess.Popen(
            [str(WEIR), "serve", "--data-dir", os.path.join(self.dir, "data"),
             "--kafka-addr", "127.0.0.1:0", *flags],
            stderr=self.log, stdout=subprocess.DEVNULL, env=dict(os.environ, WEIR_LOG="info"),
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            self.log.seek(0)
            for line in self.log:
                if "kafka listening addr=" in line:
                    self.bootstrap = line.split("kafka listening addr=")[1].split()[0]
                    return
            time.sleep(0.05)
        raise SystemExit("weir did not start")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["rm", "-rf", self.dir])


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(10)


def fsync_anchor(seconds=2.0):
    path = os.path.join(tempfile.mkdtemp(dir=ROOT), "anchor")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    block = b"x" * 4096
    n, start = 0, time.time()
    while time.time() - start < seconds:
        os.write(fd, block)
        os.fdatasync(fd)
        n += 1
    os.close(fd)
    subprocess.run(["rm", "-rf", os.path.dirname(path)])
    return n / (time.time() - start)


def first_message(delay_flag):
    weir = Weir(*delay_flag)
    try:
        create_topic(weir.bootstrap, "t", 1)
        p = Producer({"bootstrap.servers": weir.bootstrap})
        p.produce("t", b"hello")
        p.flush(10)
        times = []
        for i in range(ROUNDS):
            c = Consumer({"bootstrap.servers": weir.bootstrap, "group.id": f"first-{i}",
                          "auto.offset.reset": "earliest"})
            start = time.time()
            c.subscribe(["t"])
            while True:
                m = c.poll(0.05)
                if m is not None and m.error() is None:
                    break
                if time.time() - start > 60:
                    raise SystemExit("no first message within 60 s")
            times.append(time.time() - start)
            c.close()
        return times
    finally:
        weir.stop()


class Member(threading.Thread):
    def __init__(self, bootstrap, group, topic, heartbeat_ms):
        super().__init__(daemon=True)
        self.owned = set()
        self.changed_at = 0.0
        self.stop = False
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                  "session.timeout.ms": 10000,
                                  "heartbeat.interval.ms": heartbeat_ms})
        self.topic = topic

    def on_assign(self, consumer, partitions):
        self.owned = {p.partition for p in partitions}
        self.changed_at = time.time()

    def on_revoke(self, consumer, partitions):
        self.owned = set()
        self.changed_at = time.time()

    def run(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self.stop:
            self.consumer.poll(0.02)
        self.consumer.close()


# An assignment counts once it has held this long with no member's changing.
SETTLED_S = 0.5


def whole(members, partitions):
    owned = [p for m in members for p in m.owned]
    return len(owned) == partitions and set(owned) == set(range(partitions))


def settle(members, partitions, start, what):
    """Seconds from `start` to the last assignment change before every partition had one
    owner and every member a share (100 partitions over 10 or 9 members: nobody idles)."""
    while True:
        now = time.time()
        last = max(m.changed_at for m in members)
        shared = all(m.owned for m in members)
        if whole(members, partitions) and shared and now - last >= SETTLED_S:
            return last - start
        if now - start > 120:
            raise SystemExit(f"{what} never settled")
        time.sleep(0.005)


def rebalances(heartbeat_ms):
    weir = Weir("--group-initial-rebalance-delay-ms", "0")
    joins, leaves = [], []
    try:
        create_topic(weir.bootstrap, "r", 100)
        for i in range(ROUNDS):
            members = [Member(weir.bootstrap, f"reb-{i}", "r", heartbeat_ms) for _ in range(10)]
            start = time.time()
            for m in members:
                m.start()
            joins.append(settle(members, 100, start, "10 members joining"))
            leaving, staying = members[0], members[1:]
            start = time.time()
            leaving.stop = True
            leaving.join()
            leaves.append(settle(staying, 100, start, "9 members after one left"))
            for m in staying:
                m.stop = True
            for m in staying:
                m.join()
        return joins, leaves
    finally:
        weir.stop()


def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def commit_request(correlation, group, topic, offset):
    body = (string(group) + struct.pack(">i", -1) + string("") + struct.pack(">q", -1)
            + struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1)
            + struct.pack(">iq", 0, offset) + string(""))
    header = struct.pack(">hhi", 8, 2, correlation) + string("bench")
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


def commits(seconds=10.0, groups=1000, connections=8, window=64):
    weir = Weir()
    try:
        create_topic(weir.bootstrap, "c", 1)
        host, port = weir.bootstrap.rsplit(":", 1)
        done = [0] * connections
        errors = [0] * connections
        stop_at = time.time() + seconds

        def run(k):
            s = socket.create_connection((host, int(port)))
            buf = b""
            sent = 0
            inflight = 0
            while True:
                now = time.time()
                while inflight < window and now < stop_at:
                    g = (k + sent * connections) % groups
                    s.sendall(commit_request(sent, f"group-{g}", "c", sent))
                    sent += 1
                    inflight += 1
                if inflight == 0:
                    break
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise SystemExit("weir closed a commit connection")
                buf += chunk
                while len(buf) >= 4:
                    (n,) = struct.unpack(">i", buf[:4])
                    if len(buf) < 4 + n:
                        break
                    frame, buf = buf[4:4 + n], buf[4 + n:]
                    # correlation, topics count, topic name, partitions count, partition, error
                    (tlen,) = struct.unpack(">h", frame[8:10])
                    at = 10 + tlen + 4 + 4
                    (err,) = struct.unpack(">h", frame[at:at + 2])
                    if err:
                        errors[k] += 1
                    done[k] += 1
                    inflight -= 1
            s.close()

        start = time.time()
        threads = [threading.Thread(target=run, args=(k,)) for k in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - start
        return sum(done) / elapsed, sum(errors)
    finally:
        weir.stop()


def main():
    if not WEIR.exists():
        raise SystemExit(f"build first: cargo build --release ({WEIR} missing)")
    anchor = fsync_anchor()
    print(f"anchor: disk 4 KiB write+fdatasync {anchor:.0f}/s")
    for flags, label in (([], "default delay 3000 ms"),
                         (["--group-initial-rebalance-delay-ms", "0"], "delay 0")):
        t = sorted(first_message(flags))
        print(f"first-message ({label}): median {t[len(t) // 2]:.2f} s, max {t[-1]:.2f} s over {len(t)} groups")
    # Members learn that a rebalance started from their next heartbeat's answer, so the
    # client's heartbeat.interval.ms (librdkafka: 3,000 ms) bounds both figures; 500 ms
    # shows what is left of the coordinator's own part.
    for heartbeat_ms in (3000, 500):
        joins, leaves = rebalances(heartbeat_ms)
        joins.sort()
        leaves.sort()
        print(f"join-10 (100 partitions, delay 0, heartbeat {heartbeat_ms} ms): "
              f"p50 {joins[len(joins) // 2]:.2f} s, max {joins[-1]:.2f} s over {len(joins)} rounds")
        print(f"leave-1 (9 stay, heartbeat {heartbeat_ms} ms): "
              f"p50 {leaves[len(leaves) // 2]:.2f} s, max {leaves[-1]:.2f} s over {len(leaves)} rounds")
    rate, errors = commits()
    print(f"commits (1,000 groups, 8 connections x 64 in flight): {rate:.0f}/s, {errors} errors; "
          f"{rate / anchor:.1f} commits per disk fdatasync")


if __name__ == "__main__":
    sys.exit(main())
