"""End-to-end latency through a running broker: a producer at a fixed rate, a consumer with
default fetch settings, each record carrying its send time; prints p50/p99/max.

    .venv/bin/python scripts/bench-latency.py --bootstrap 127.0.0.1:9092 --rate 5000 \
        --seconds 10 [--acks all] [--topic-config flush.policy=sync]

Uses confluent-kafka (librdkafka) from the test venv, linger.ms=0 as the issue asks. The
producer paces itself with a sleep-until schedule in its own thread; latency is measured
from just before produce() to the consumer's poll() returning the record.
"""

import argparse
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
    reader.start()
    time.sleep(2)  # let the consumer connect and start fetching

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "linger.ms": 0,
        "acks": args.acks,
        "enable.idempotence": False,
    })
    padding = b"x" * max(0, args.size - 8)
    start = time.monotonic()
    for i in range(total):
        due = start + i / args.rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, struct.pack(">d", time.monotonic()) + padding)
        producer.poll(0)
    producer.flush(30)
    reader.join(timeout=30)
    done.set()

    latencies.sort()
    if not latencies:
        print("no records consumed")
        return
    ms = [x * 1000 for x in latencies]
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    print(
        f"latency {args.rate} msg/s x {args.size} B, acks={args.acks}, topic {config or 'default'}: "
        f"{len(ms)}/{total} consumed; p50 {pick(0.50):.2f} ms, p99 {pick(0.99):.2f} ms, "
        f"max {ms[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
