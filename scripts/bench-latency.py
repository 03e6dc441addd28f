"""End-to-end latency through a running broker: a producer at a fixed rate, a consumer with
default fetch settings, each record carrying its send time; prints p50/p99/max.

    .venv/bin/python scripts/bench-latency.py --bootstrap 127.0.0.1:9092 --rate 5000 \
        --seconds 10 [--acks all] [--topic-config flush.policy=sync] [--broker-pid PID] \
        [--batch-num-messages 1]

With --broker-pid it also prints the broker's CPU (utime + stime from /proc/PID/stat) over
the producing window only (from the first produce() to the end of flush(), not the
consumer's warm-up), in cores, and the Produce requests the producer sent per second
(librdkafka's own statistics), so "N single-record requests/s" is checked, not assumed.

Uses confluent-kafka (librdkafka) from the test venv, linger.ms=0 as the issue asks. The
producer paces itself with a sleep-until schedule in its own thread; latency is measured
from just before produce() to the consumer's poll() returning the record.
"""

import argparse
import json
import os
import struct
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--acks", default="1")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--topic-config", action="append", default=[])
    parser.add_argument("--broker-pid", type=int)
    # 1 makes every Produce request carry one record (librdkafka otherwise puts the records
    # queued while a request is in flight into the next one, even with linger.ms=0).
    parser.add_argument("--batch-num-messages", type=int)
    # The producer alone: what the consumer's long poll adds to the broker's CPU is the
    # difference. No latency is printed then.
    parser.add_argument("--no-consumer", action="store_true")
    args = parser.parse_args()

    topic = f"latency-{uuid.uuid4().hex[:8]}"
    config = dict(kv.split("=", 1) for kv in args.topic_config)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)

    latencies = []
    total = int(args.rate * args.seconds)
    done = threading.Event()

    def consume():
        consumer = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": "latency",  # required by the client; offsets are assigned explicitly
            "enable.auto.commit": False,
        })
        from confluent_kafka import TopicPartition
        consumer.assign([TopicPartition(topic, 0, 0)])
        while len(latencies) < total and not done.is_set():
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            (sent,) = struct.unpack_from(">d", message.value())
            latencies.append(time.monotonic() - sent)
        consumer.close()

    reader = threading.Thread(target=consume)
    if not args.no_consumer:
        reader.start()
        time.sleep(2)  # let the consumer connect and start fetching

    produce_requests = []  # cumulative Produce requests, from each statistics report

    def on_stats(report):
        stats = json.loads(report)
        produce_requests.append(
            sum(b.get("req", {}).get("Produce", 0) for b in stats.get("brokers", {}).values())
        )

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "linger.ms": 0,
        "acks": args.acks,
        "enable.idempotence": False,
        "statistics.interval.ms": 500,
        "stats_cb": on_stats,
        **({"batch.num.messages": args.batch_num_messages} if args.batch_num_messages else {}),
    })
    padding = b"x" * max(0, args.size - 8)
    cpu_before = broker_cpu_seconds(args.broker_pid)
    start = time.monotonic()
    for i in range(total):
        due = start + i / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, struct.pack(">d", time.monotonic()) + padding)
        producer.poll(0)
    producer.flush(30)
    window = time.monotonic() - start
    cpu_after = broker_cpu_seconds(args.broker_pid)
    producer.poll(0.6)  # one more statistics report, covering the whole window
    if not args.no_consumer:
        reader.join(timeout=30)
    done.set()

    latencies.sort()
    if args.no_consumer:
        print(f"{args.rate} msg/s x {args.size} B, acks={args.acks}: producer only, no consumer")
    elif not latencies:
        print("no records consumed")
        return
    else:
        ms = [x * 1000 for x in latencies]
        pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
        print(
            f"latency {args.rate} msg/s x {args.size} B, acks={args.acks}, "
            f"topic {config or 'default'}: {len(ms)}/{total} consumed; "
            f"p50 {pick(0.50):.2f} ms, p99 {pick(0.99):.2f} ms, max {ms[-1]:.2f} ms"
        )
    if cpu_before is not None and cpu_after is not None:
        requests = produce_requests[-1] if produce_requests else 0
        print(
            f"broker CPU over the {window:.1f} s producing window: "
            f"{(cpu_after - cpu_before) / window:.3f} core; "
            f"{requests / window:.0f} Produce requests/s ({total / max(requests, 1):.2f} records each)"
        )


def broker_cpu_seconds(pid):
    """utime + stime of `pid` in seconds (all its threads), or None without a pid."""
    if pid is None:
        return None
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields are counted after its closing ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
