"""What weir acknowledged survives SIGKILL: acks=all to a `flush.policy=sync` topic.

A `sync` topic acknowledges a produce only after the write-ahead log's fsync, so killing
the process (no shutdown path runs) at any moment must lose nothing acknowledged. The kill
lands mid-stream, while the producer still has requests in flight; after a restart on the
same data directory every acknowledged record must be at the offset weir acknowledged it
at, in produce order. Records that were in flight may or may not be there: only the
acknowledged ones are promised.
"""

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from clients import OP_TIMEOUT_S, admin, consume_partition, consumer, producer

PARTITIONS = 2
# Enough records that the kill lands with many in flight; few enough to stay quick.
RECORDS_MAX = 20_000
# Kill once this many are acknowledged (the rest are in flight or not yet sent).
KILL_AFTER_ACKED = 2_000
# Records produced but not yet acknowledged, at most: enough that the kill lands with
# requests in flight, few enough that acknowledgements keep pace with sending.
UNACKED_MAX = 500
# After the kill, librdkafka gives up on unacknowledged records after this long.
MESSAGE_TIMEOUT_MS = 3_000


def test_acknowledged_records_survive_sigkill(weir, topic_name):
    topic = topic_name()
    adm = admin(weir.bootstrap)  # referenced until its futures resolve
    adm.create_topics(
        [NewTopic(topic, PARTITIONS, 1, config={"flush.policy": "sync"})], operation_timeout=OP_TIMEOUT_S
    )[topic].result(OP_TIMEOUT_S)

    acked = {p: [] for p in range(PARTITIONS)}  # partition -> [(offset, value)] in ack order
    failed = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.partition()].append((msg.offset(), msg.value()))
        else:
            failed.append(err)

    p = producer(
        weir.bootstrap,
        **{
            "linger.ms": 1,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            # No reordering across retries, so acknowledgement order is produce order.
            "max.in.flight.requests.per.connection": 1,
        },
    )
    killed_at = None
    for i in range(RECORDS_MAX):
        while True:
            try:
                p.produce(topic, value=f"r{i:06}".encode(), partition=i % PARTITIONS, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain
                p.poll(0.01)
        p.poll(0)
        # Keep a bounded number unacknowledged so acknowledgements flow while sending.
        while len(p) > UNACKED_MAX:
            p.poll(0.005)
        if sum(map(len, acked.values())) >= KILL_AFTER_ACKED:
            weir.kill()
            killed_at = i
            break
    assert killed_at is not None, f"only {sum(map(len, acked.values()))} acknowledged before the end"
    p.flush(MESSAGE_TIMEOUT_MS / 1000 + 5)
    total_acked = sum(map(len, acked.values()))
    assert total_acked >= KILL_AFTER_ACKED
    # The kill left records unacknowledged (else it did not land mid-stream).
    assert failed, "every record was acknowledged: the kill did not land mid-stream"

    # Both clients would keep reconnecting to the dead process's port; drop them.
    del p, adm
    weir.start()
    for partition, records in acked.items():
        assert [o for o, _ in records] == sorted(o for o, _ in records), "acks out of offset order"
        got = consume_partition(weir.bootstrap, topic, partition)
        by_offset = {m.offset(): m.value() for m in got}
        missing = [(o, v) for o, v in records if by_offset.get(o) != v]
        assert not missing, f"partition {partition}: {len(missing)} acknowledged records lost, first {missing[:3]}"
        # In order: the acknowledged values, by offset, are in the order they were produced.
        values = [v for _, v in records]
        assert values == sorted(values)
        # Nothing past the log end was invented: offsets are contiguous from 0.
        assert [m.offset() for m in got] == list(range(len(got)))

    # The restarted broker takes new writes after the recovered ones.
    c = consumer(weir.bootstrap)
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=OP_TIMEOUT_S)
    finally:
        c.close()
    p2 = producer(weir.bootstrap)
    offsets = []
    p2.produce(topic, value=b"after", partition=0, on_delivery=lambda err, msg: offsets.append((err, msg.offset())))
    assert p2.flush(OP_TIMEOUT_S) == 0
    assert offsets == [(None, high)]
