"""Kafka transactions with librdkafka (confluent-kafka): a transactional producer's
records become visible to read_committed consumers only when its transaction commits, in
order, and never when it aborts; read_uncommitted consumers see everything. Offsets sent
with a transaction are committed with it. A second producer with the same transactional
id fences the first. A broker SIGKILLed mid-transaction aborts it by timeout after the
restart, so it is never half-visible.
"""

import time

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from clients import OP_TIMEOUT_S, admin, consume_partition, consumer, producer


def create(bootstrap, topic, partitions=1):
    adm = admin(bootstrap)
    adm.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=OP_TIMEOUT_S)[topic].result(
        OP_TIMEOUT_S
    )


def txn_producer(bootstrap, transactional_id, **conf):
    p = producer(bootstrap, **{"transactional.id": transactional_id, **conf})
    p.init_transactions(OP_TIMEOUT_S)
    return p


def values(bootstrap, topic, isolation):
    return [m.value() for m in consume_partition(bootstrap, topic, 0, **{"isolation.level": isolation})]


def test_commit_and_abort_are_seen_by_isolation_level(weir, topic_name):
    topic = topic_name()
    create(weir.bootstrap, topic)
    p = txn_producer(weir.bootstrap, "tx-commit-abort")
    p.begin_transaction()
    p.produce(topic, value=b"c1", partition=0)
    p.produce(topic, value=b"c2", partition=0)
    p.commit_transaction(OP_TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, value=b"a1", partition=0)
    p.flush(OP_TIMEOUT_S)
    p.abort_transaction(OP_TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, value=b"c3", partition=0)
    p.commit_transaction(OP_TIMEOUT_S)

    assert values(weir.bootstrap, topic, "read_committed") == [b"c1", b"c2", b"c3"]
    assert values(weir.bootstrap, topic, "read_uncommitted") == [b"c1", b"c2", b"a1", b"c3"]


def test_an_open_transaction_is_invisible_to_read_committed(weir, topic_name):
    topic = topic_name()
    create(weir.bootstrap, topic)
    p = txn_producer(weir.bootstrap, "tx-open")
    p.begin_transaction()
    p.produce(topic, value=b"pending", partition=0)
    p.flush(OP_TIMEOUT_S)
    assert values(weir.bootstrap, topic, "read_committed") == []
    assert values(weir.bootstrap, topic, "read_uncommitted") == [b"pending"]
    p.commit_transaction(OP_TIMEOUT_S)
    assert values(weir.bootstrap, topic, "read_committed") == [b"pending"]


def test_offsets_sent_with_a_transaction_commit_with_it(weir, topic_name):
    topic = topic_name()
    create(weir.bootstrap, topic)
    group = f"{topic}-group"
    c = consumer(weir.bootstrap, **{"group.id": group})
    try:
        p = txn_producer(weir.bootstrap, "tx-offsets")
        p.begin_transaction()
        p.produce(topic, value=b"out", partition=0)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 5)], c.consumer_group_metadata(), OP_TIMEOUT_S)
        p.commit_transaction(OP_TIMEOUT_S)
        committed = c.committed([TopicPartition(topic, 0)], OP_TIMEOUT_S)
        assert committed[0].offset == 5

        p.begin_transaction()
        p.produce(topic, value=b"dropped", partition=0)
        p.send_offsets_to_transaction([TopicPartition(topic, 0, 9)], c.consumer_group_metadata(), OP_TIMEOUT_S)
        p.abort_transaction(OP_TIMEOUT_S)
        committed = c.committed([TopicPartition(topic, 0)], OP_TIMEOUT_S)
        assert committed[0].offset == 5, "an aborted transaction's offsets are dropped"
    finally:
        c.close()


def test_a_new_producer_with_the_same_id_fences_the_old_one(weir, topic_name):
    topic = topic_name()
    create(weir.bootstrap, topic)
    old = txn_producer(weir.bootstrap, "tx-fence")
    old.begin_transaction()
    old.produce(topic, value=b"zombie", partition=0)
    old.flush(OP_TIMEOUT_S)

    new = txn_producer(weir.bootstrap, "tx-fence")  # aborts the old one's transaction
    new.begin_transaction()
    new.produce(topic, value=b"fresh", partition=0)
    new.commit_transaction(OP_TIMEOUT_S)

    with pytest.raises(KafkaException) as raised:
        old.produce(topic, value=b"late", partition=0)
        old.commit_transaction(OP_TIMEOUT_S)
    assert raised.value.args[0].fatal(), raised.value.args[0]
    assert values(weir.bootstrap, topic, "read_committed") == [b"fresh"]


def test_sigkill_mid_transaction_never_leaves_it_half_visible(weir, topic_name):
    topic = topic_name()
    create(weir.bootstrap, topic)
    p = txn_producer(
        weir.bootstrap,
        "tx-crash",
        **{"transaction.timeout.ms": 4_000, "message.timeout.ms": 3_000},
    )
    p.begin_transaction()
    p.produce(topic, value=b"ok", partition=0)
    p.commit_transaction(OP_TIMEOUT_S)
    p.begin_transaction()
    p.produce(topic, value=b"lost", partition=0)
    p.flush(OP_TIMEOUT_S)

    weir.restart()
    # The restored transaction is aborted once its timeout passes; a later record shows
    # read_committed readers have moved past it.
    after = producer(weir.bootstrap)
    after.produce(topic, value=b"after", partition=0)
    assert after.flush(OP_TIMEOUT_S) == 0
    deadline = time.monotonic() + OP_TIMEOUT_S
    seen = []
    while time.monotonic() < deadline:
        seen = values(weir.bootstrap, topic, "read_committed")
        assert b"lost" not in seen
        if b"after" in seen:
            break
        time.sleep(0.2)
    assert seen == [b"ok", b"after"]
    assert values(weir.bootstrap, topic, "read_uncommitted") == [b"ok", b"lost", b"after"]


def test_sigkill_right_after_commit_completes_the_transaction(weir, topic_name):
    topic = topic_name()
    create(weir.bootstrap, topic, partitions=2)
    p = txn_producer(weir.bootstrap, "tx-commit-crash")
    p.begin_transaction()
    for i in range(20):
        p.produce(topic, value=f"c{i}".encode(), partition=i % 2)
    p.commit_transaction(OP_TIMEOUT_S)
    # The commit was answered once PrepareCommit was durable; the markers may not have
    # been written yet. After the restart they are (again): all of it becomes visible.
    weir.restart()
    deadline = time.monotonic() + OP_TIMEOUT_S
    while True:
        seen = [
            [m.value() for m in consume_partition(weir.bootstrap, topic, part, **{"isolation.level": "read_committed"})]
            for part in (0, 1)
        ]
        if sum(map(len, seen)) == 20 or time.monotonic() > deadline:
            break
        assert all(len(s) in (0, 10) for s in seen), f"half a transaction visible: {seen}"
        time.sleep(0.2)
    assert seen == [[f"c{i}".encode() for i in range(part, 20, 2)] for part in (0, 1)]
