"""confluent-kafka (current librdkafka: flexible versions, Metadata v13, Fetch v16) against weir."""

import time

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from clients import OP_TIMEOUT_S, admin, consume_partition, consumer, metadata, produce_all, producer

AUTO_PARTITIONS = 4


def create_topic(bootstrap, name, partitions, config=None):
    # Keep the client referenced until the futures resolve: a destroyed AdminClient fails
    # its pending futures with _DESTROY.
    client = admin(bootstrap)
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=OP_TIMEOUT_S,
    )
    futures[name].result(OP_TIMEOUT_S)


def test_acks_all_producer_gets_contiguous_offsets(bootstrap, topic_name):
    topic = topic_name()
    p = producer(bootstrap, **{"linger.ms": 5})
    delivered = produce_all(p, topic, [{"value": f"m{i}".encode(), "partition": i % 2} for i in range(200)])
    for partition in (0, 1):
        offsets = [m.offset() for m in delivered if m.partition() == partition]
        assert offsets == list(range(100)), f"partition {partition}: {offsets[:10]}..."
    # The auto-created topic has the default partition count.
    assert len(metadata(bootstrap, topic).topics[topic].partitions) == AUTO_PARTITIONS


def test_same_key_same_partition_and_order_kept(bootstrap, topic_name):
    topic = topic_name()
    keys = [f"user-{k}".encode() for k in range(8)]
    msgs = [{"key": keys[i % len(keys)], "value": f"{i}".encode()} for i in range(160)]
    delivered = produce_all(producer(bootstrap), topic, msgs)
    partition_of = {}
    for m in delivered:
        partition_of.setdefault(m.key(), set()).add(m.partition())
    assert all(len(ps) == 1 for ps in partition_of.values()), partition_of
    assert len({next(iter(ps)) for ps in partition_of.values()}) > 1, "keys should spread"

    # Reading each partition back gives every key's values in produce order.
    for partition in {m.partition() for m in delivered}:
        got = consume_partition(bootstrap, topic, partition)
        sent = [(m.key(), m.value()) for m in delivered if m.partition() == partition]
        assert [(m.key(), m.value()) for m in got] == sent


def test_headers_and_timestamps_round_trip(bootstrap, topic_name):
    topic = topic_name()
    base_ts = 1_700_000_000_123
    headers = [("trace", b"t-1"), ("dup", b"first"), ("dup", b"second"), ("empty", b"")]
    msgs = [
        {"key": b"k", "value": f"v{i}".encode(), "partition": 0, "timestamp": base_ts + i * 1000, "headers": headers}
        for i in range(5)
    ]
    produce_all(producer(bootstrap), topic, msgs)
    got = consume_partition(bootstrap, topic, 0)
    assert [m.value() for m in got] == [f"v{i}".encode() for i in range(5)]
    assert [m.offset() for m in got] == list(range(5))
    for i, m in enumerate(got):
        # Repeated header keys stay, in order (Kafka keeps headers as a list).
        assert m.headers() == headers
        assert m.timestamp() == (TIMESTAMP_CREATE_TIME, base_ts + i * 1000)
        assert m.key() == b"k"


def test_null_key_null_value_and_large_value(bootstrap, topic_name):
    topic = topic_name()
    big = bytes(range(256)) * 2048  # 512 KiB, under the default max.message.bytes (1 MiB)
    produce_all(
        producer(bootstrap),
        topic,
        [{"partition": 0, "value": None, "key": b"tombstone"}, {"partition": 0, "value": big}],
    )
    got = consume_partition(bootstrap, topic, 0)
    assert [(m.key(), m.value()) for m in got] == [(b"tombstone", None), (None, big)]


def test_assign_with_explicit_offset(bootstrap, topic_name):
    topic = topic_name()
    produce_all(producer(bootstrap), topic, [{"value": f"v{i}".encode(), "partition": 3} for i in range(10)])
    got = consume_partition(bootstrap, topic, 3, offset=6)
    assert [(m.offset(), m.value()) for m in got] == [(i, f"v{i}".encode()) for i in range(6, 10)]

    c = consumer(bootstrap)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 3), timeout=OP_TIMEOUT_S)
        assert (low, high) == (0, 10)
    finally:
        c.close()


def test_offsets_for_times(bootstrap, topic_name):
    topic = topic_name()
    produce_all(
        producer(bootstrap),
        topic,
        [{"value": f"v{i}".encode(), "partition": 1, "timestamp": 1_000_000 + i * 1000} for i in range(10)],
    )
    c = consumer(bootstrap)
    try:

        def lookup(ts):
            [tp] = c.offsets_for_times([TopicPartition(topic, 1, ts)], timeout=OP_TIMEOUT_S)
            assert tp.error is None, tp.error
            return tp.offset

        assert lookup(0) == 0
        assert lookup(1_000_000) == 0
        assert lookup(1_002_500) == 3  # first record with timestamp >= target
        assert lookup(1_009_000) == 9
        assert lookup(1_009_001) == -1  # none: Kafka answers -1 (OFFSET_END)
    finally:
        c.close()

    # The same through the admin ListOffsets API (v7+ adds max timestamp).
    a = admin(bootstrap)
    tp = TopicPartition(topic, 1)
    for spec, want in [
        (OffsetSpec.earliest(), 0),
        (OffsetSpec.latest(), 10),
        (OffsetSpec.for_timestamp(1_004_000), 4),
        (OffsetSpec.max_timestamp(), 9),
    ]:
        result = a.list_offsets({tp: spec})[tp].result(OP_TIMEOUT_S)
        assert result.offset == want, (spec, result)


def test_admin_create_describe_and_delete_topics(bootstrap, topic_name):
    adm = admin(bootstrap)
    topic = topic_name()
    create_topic(bootstrap, topic, 3, {"retention.ms": "3600000", "cleanup.policy": "delete"})
    md = metadata(bootstrap, topic).topics[topic]
    assert md.error is None
    assert sorted(md.partitions) == [0, 1, 2]

    # Creating it again is an error the client reports as TOPIC_ALREADY_EXISTS.
    with pytest.raises(KafkaException) as raised:
        create_topic(bootstrap, topic, 3)
    assert raised.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    # validate_only creates nothing.
    dry = topic_name("-dry")
    adm.create_topics([NewTopic(dry, 2, 1)], validate_only=True)[dry].result(OP_TIMEOUT_S)
    assert dry not in adm.list_topics(timeout=OP_TIMEOUT_S).topics

    # An unknown config is refused and creates nothing.
    bad = topic_name("-bad")
    with pytest.raises(KafkaException) as raised:
        create_topic(bootstrap, bad, 1, {"no.such.config": "1"})
    assert raised.value.args[0].code() == KafkaError.INVALID_CONFIG
    assert bad not in adm.list_topics(timeout=OP_TIMEOUT_S).topics

    produce_all(producer(bootstrap), topic, [{"value": b"x", "partition": 0}])
    adm.delete_topics([topic], operation_timeout=OP_TIMEOUT_S)[topic].result(OP_TIMEOUT_S)
    assert topic not in adm.list_topics(timeout=OP_TIMEOUT_S).topics

    # A topic created again under the same name starts empty (the data went with it).
    create_topic(bootstrap, topic, 1)
    assert consume_partition(bootstrap, topic, 0) == []


def test_admin_create_partitions(bootstrap, topic_name):
    adm = admin(bootstrap)
    topic = topic_name()
    create_topic(bootstrap, topic, 2)
    adm.create_partitions([NewPartitions(topic, 5)])[topic].result(OP_TIMEOUT_S)
    assert sorted(metadata(bootstrap, topic).topics[topic].partitions) == [0, 1, 2, 3, 4]
    # The new partitions take writes.
    delivered = produce_all(producer(bootstrap), topic, [{"value": b"new", "partition": 4}])
    assert delivered[0].offset() == 0
    # Shrinking is refused.
    with pytest.raises(KafkaException):
        adm.create_partitions([NewPartitions(topic, 3)])[topic].result(OP_TIMEOUT_S)


def describe_topic_configs(bootstrap, topic):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = admin(bootstrap)
    return client.describe_configs([resource])[resource].result(OP_TIMEOUT_S)


def test_admin_describe_and_alter_configs(bootstrap, topic_name):
    adm = admin(bootstrap)
    topic = topic_name()
    create_topic(bootstrap, topic, 1, {"retention.ms": "7200000"})

    configs = describe_topic_configs(bootstrap, topic)
    for name in ["retention.ms", "retention.bytes", "cleanup.policy", "segment.bytes", "max.message.bytes",
                 "message.timestamp.type"]:
        assert name in configs, f"{name} missing from {sorted(configs)}"
    assert configs["retention.ms"].value == "7200000"
    source = configs["retention.ms"].source
    assert getattr(source, "value", source) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].is_default

    # Incremental: set one, leave the others.
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "2048", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    adm.incremental_alter_configs([resource])[resource].result(OP_TIMEOUT_S)
    configs = describe_topic_configs(bootstrap, topic)
    assert configs["max.message.bytes"].value == "2048"
    assert configs["retention.ms"].value == "7200000"

    # The new limit takes effect on the live topic: a bigger record is refused.
    p = producer(bootstrap, **{"message.max.bytes": 1_000_000})
    with pytest.raises(AssertionError, match="MSG_SIZE_TOO_LARGE"):
        produce_all(p, topic, [{"value": b"x" * 10_000, "partition": 0}])

    # Legacy AlterConfigs replaces the whole set: retention.ms goes back to its default.
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.bytes": "1048576"})
    with pytest.deprecated_call():  # the client deprecates it; brokers must still serve it
        futures = adm.alter_configs([resource])
    futures[resource].result(OP_TIMEOUT_S)
    configs = describe_topic_configs(bootstrap, topic)
    assert configs["retention.bytes"].value == "1048576"
    assert configs["retention.ms"].is_default


def test_admin_delete_records(bootstrap, topic_name):
    adm = admin(bootstrap)
    topic = topic_name()
    create_topic(bootstrap, topic, 1)
    produce_all(producer(bootstrap), topic, [{"value": f"v{i}".encode(), "partition": 0} for i in range(10)])
    tp = TopicPartition(topic, 0, 4)
    result = adm.delete_records([tp], operation_timeout=OP_TIMEOUT_S)
    deleted = next(iter(result.values())).result(OP_TIMEOUT_S)
    assert deleted.low_watermark == 4

    c = consumer(bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S) == (4, 10)
    finally:
        c.close()
    # Reading from the old start resets to the new one (auto.offset.reset=earliest).
    got = consume_partition(bootstrap, topic, 0, offset=0, **{"auto.offset.reset": "earliest"})
    assert [m.offset() for m in got] == list(range(4, 10))

    # Beyond the high watermark is OFFSET_OUT_OF_RANGE.
    tp = TopicPartition(topic, 0, 11)
    result = adm.delete_records([tp], operation_timeout=OP_TIMEOUT_S)
    with pytest.raises(KafkaException) as raised:
        next(iter(result.values())).result(OP_TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trips(bootstrap, topic_name, codec):
    topic = topic_name()
    values = [(f"record {i} " * (1 + i % 7)).encode() for i in range(300)]
    p = producer(bootstrap, **{"compression.type": codec, "linger.ms": 20, "batch.num.messages": 100})
    delivered = produce_all(p, topic, [{"value": v, "key": str(i).encode(), "partition": 0} for i, v in enumerate(values)])
    assert [m.offset() for m in delivered] == list(range(300))
    got = consume_partition(bootstrap, topic, 0)
    assert [m.value() for m in got] == values
    assert [m.key() for m in got] == [str(i).encode() for i in range(300)]
    # Reading from the middle of a compressed batch starts at the asked offset.
    got = consume_partition(bootstrap, topic, 0, offset=150)
    assert [m.offset() for m in got] == list(range(150, 300))


def test_log_append_time_topic_stamps_the_broker_time(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, 1, {"message.timestamp.type": "LogAppendTime"})
    before_ms = int(time.time() * 1000)
    delivered = produce_all(
        producer(bootstrap), topic, [{"value": f"v{i}".encode(), "partition": 0, "timestamp": 1_000} for i in range(3)]
    )
    after_ms = int(time.time() * 1000)
    # The produce response carries the broker's append time (Produce v2+ LogAppendTime).
    for m in delivered:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME and before_ms <= ts <= after_ms, (kind, ts)
    got = consume_partition(bootstrap, topic, 0)
    assert len(got) == 3
    for m in got:
        kind, ts = m.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME, kind
        assert before_ms <= ts <= after_ms, (ts, before_ms, after_ms)


def test_waiting_consumer_is_woken_by_a_produce(bootstrap, topic_name):
    """A consumer at the log end gets a new record at once, not after its fetch wait:
    weir's long poll wakes on the append."""
    topic = topic_name()
    create_topic(bootstrap, topic, 1)
    # A long wait, so a broker that waits it out instead of waking is caught.
    c = consumer(bootstrap, **{"fetch.wait.max.ms": 5000, "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        assert c.poll(1.0) is None  # the fetch is now parked at the log end
        p = producer(bootstrap)
        sent_at = time.monotonic()
        produce_all(p, topic, [{"value": b"wake", "partition": 0}])
        msg = None
        while msg is None and time.monotonic() - sent_at < OP_TIMEOUT_S:
            msg = c.poll(0.05)
        latency_s = time.monotonic() - sent_at
    finally:
        c.close()
    assert msg is not None and msg.error() is None and msg.value() == b"wake"
    assert latency_s < 1.0, f"delivered {latency_s:.3f}s after the produce"
