"""Small helpers shared by the confluent-kafka tests (plain functions, no fixtures)."""

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

# How long one client operation may take against a healthy local broker before the test
# calls it a failure (it is usually milliseconds).
OP_TIMEOUT_S = 15
# librdkafka retries an unacknowledged message for 5 minutes by default; fail sooner.
MESSAGE_TIMEOUT_MS = 15_000


def producer(bootstrap, **conf):
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            **conf,
        }
    )


def consumer(bootstrap, **conf):
    # librdkafka's consumer needs a group.id even when it never joins the group: it uses
    # assign() with explicit offsets and commits nothing (consumer groups are issue 4).
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "weir-client-tests",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            **conf,
        }
    )


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def produce_all(p, topic, messages):
    """Produces each (kwargs) dict and returns the delivery reports in produce order.

    Raises if any message was not acknowledged."""
    reports = [None] * len(messages)

    def on_delivery(i):
        def cb(err, msg):
            reports[i] = (err, msg)

        return cb

    for i, kwargs in enumerate(messages):
        p.produce(topic, on_delivery=on_delivery(i), **kwargs)
        p.poll(0)
    left = p.flush(OP_TIMEOUT_S)
    assert left == 0, f"{left} messages still in flight"
    errors = [(i, err) for i, (err, _) in enumerate(reports) if err is not None]
    assert not errors, f"delivery failed: {errors[:5]}"
    return [msg for _, msg in reports]


def consume_partition(bootstrap, topic, partition, offset=0, **conf):
    """Every message of one partition from `offset` to its end (partition EOF)."""
    c = consumer(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        out = []
        deadline = time.monotonic() + OP_TIMEOUT_S
        while time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise KafkaException(msg.error())
            out.append(msg)
        raise AssertionError(f"no partition EOF within {OP_TIMEOUT_S}s; got {len(out)} messages")
    finally:
        c.close()


def metadata(bootstrap, topic=None):
    return admin(bootstrap).list_topics(topic=topic, timeout=OP_TIMEOUT_S)
