"""kafka-python (pure Python; ApiVersions v4, non-flexible Produce v8 / Fetch v11) against weir."""

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

import pytest

# Per-operation bound against a healthy local broker (usually milliseconds).
OP_TIMEOUT_S = 15


def test_default_producer_sends(bootstrap, topic_name):
    """kafka-python 3 turns idempotence on by default (KIP-679) once the broker looks like
    Kafka >= 0.11, so an unchanged producer needs InitProducerId (and sequence checks)."""
    topic = topic_name()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        meta = producer.send(topic, b"default settings").get(OP_TIMEOUT_S)
    finally:
        producer.close(OP_TIMEOUT_S)
    assert meta.offset == 0


def test_produce_and_consume(bootstrap, topic_name):
    topic = topic_name()
    # Idempotence off: this test is about Produce/Fetch; test_default_producer_sends
    # covers the default (idempotent) producer.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False)
    try:
        futures = [
            producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0,
                          headers=[("h", f"{i}".encode())], timestamp_ms=1_700_000_000_000 + i)
            for i in range(50)
        ]
        producer.flush(OP_TIMEOUT_S)
        metas = [f.get(OP_TIMEOUT_S) for f in futures]
    finally:
        producer.close(OP_TIMEOUT_S)
    assert [m.offset for m in metas] == list(range(50))
    assert {m.partition for m in metas} == {0}

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        for record in consumer:
            got.append(record)
            if len(got) == 50:
                break
        assert consumer.end_offsets([tp])[tp] == 50
        assert consumer.beginning_offsets([tp])[tp] == 0
        found = consumer.offsets_for_times({tp: 1_700_000_000_010})[tp]
        assert found.offset == 10
    finally:
        consumer.close()
    assert [(r.offset, r.key, r.value) for r in got] == [(i, f"k{i}".encode(), f"v{i}".encode()) for i in range(50)]
    assert [r.headers for r in got] == [[("h", f"{i}".encode())] for i in range(50)]
    assert [r.timestamp for r in got] == [1_700_000_000_000 + i for i in range(50)]


def test_admin_create_topic(bootstrap, topic_name):
    topic = topic_name()
    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=OP_TIMEOUT_S * 1000)
    try:
        created = client.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                                 topic_configs={"retention.ms": "60000"})])
        [result] = created["topics"]
        assert (result["name"], result["error_code"], result["num_partitions"]) == (topic, 0, 3)
        assert result["configs"]["retention.ms"]["value"] == "60000"
        assert topic in client.list_topics()
        [described] = client.describe_topics([topic])
        assert described["error_code"] == 0
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]
        with pytest.raises(TopicAlreadyExistsError):
            client.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        client.close()
