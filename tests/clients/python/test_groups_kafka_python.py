"""kafka-python consumer groups (classic protocol, its own assignors and coordinator code):
join, consume, commit, and a second run of the group resumes from the commit; admin
ListGroups / DescribeGroups / OffsetFetch (two groups in one request) / OffsetDelete /
DeleteGroups; commit metadata stored, oversized metadata refused.

Sizes: a 3-partition topic, 300 records then 100 more; one or two members. A few seconds.
"""

import threading
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    GroupSubscribedToTopicError,
    NoError,
    NonEmptyGroupError,
    OffsetMetadataTooLargeError,
    RebalanceInProgressError,
)
from kafka.structs import OffsetAndMetadata

from group_worker import wait_until
from test_groups_confluent import BROKER_FLAGS

OP_TIMEOUT_S = 15
# Every poll() may last long enough for a whole join: when a poll's timeout expires while
# kafka-python 3.0.12 is joining, the next poll can skip the finished join (its
# need_rejoin() is already False), leaving the member with no assignment and no
# heartbeats until its session expires. poll() returns as soon as records arrive.
POLL_MS = 3_000
PARTITIONS = 3


def produce(bootstrap, topic, values):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=v, value=v, partition=i % PARTITIONS) for i, v in enumerate(values)]
        producer.flush(OP_TIMEOUT_S)
        return [f.get(OP_TIMEOUT_S) for f in futures]
    finally:
        producer.close(OP_TIMEOUT_S)


def group_consumer(bootstrap, topic, group, **conf):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        **conf,
    )
    # The topic's metadata first, so that the first join already assigns its partitions:
    # without it kafka-python joins with no metadata, assigns nothing, and rejoins, and
    # that path sometimes leaves kafka-python 3.0.12 spinning in poll() without
    # heartbeating or fetching (the broker has answered every request by then).
    assert consumer.partitions_for_topic(topic), f"no metadata for {topic}"
    consumer.subscribe([topic])
    return consumer


def commit(consumer, offsets=None):
    """commit(), retried after a poll() while the group completes a rebalance
    (REBALANCE_IN_PROGRESS, as Kafka answers then; kafka-python's own advice)."""
    deadline = time.monotonic() + OP_TIMEOUT_S
    while True:
        try:
            return consumer.commit(offsets)
        except RebalanceInProgressError:
            if time.monotonic() > deadline:
                raise
            consumer.poll(timeout_ms=POLL_MS)


def consume_n(consumer, n, timeout_s=30):
    got = []
    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=POLL_MS).values():
            got.extend(records)
    assert len(got) == n, f"consumed {len(got)} of {n} within {timeout_s}s"
    return got


def create_topic(bootstrap, topic):
    from kafka.admin import NewTopic

    client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=OP_TIMEOUT_S * 1000)
    try:
        client.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        client.close()


@pytest.mark.timeout(120)
def test_group_consumes_commits_and_resumes(make_weir, topic_name):
    weir = make_weir(*BROKER_FLAGS)
    topic = topic_name()
    group = "kp-group"
    create_topic(weir.bootstrap, topic)
    first = [f"a{i:04}".encode() for i in range(300)]
    produce(weir.bootstrap, topic, first)

    consumer = group_consumer(weir.bootstrap, topic, group)
    try:
        got = consume_n(consumer, 300)
        assert sorted(r.value for r in got) == sorted(first)
        assert consumer.assignment() == {TopicPartition(topic, p) for p in range(PARTITIONS)}
        commit(consumer)
        committed = {p: consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
        assert committed == {p: 100 for p in range(PARTITIONS)}, committed
        # Commit metadata is stored and returned; more than offset.metadata.max.bytes
        # (4,096) is refused with OFFSET_METADATA_TOO_LARGE and changes nothing.
        tp0 = TopicPartition(topic, 0)
        commit(consumer, {tp0: OffsetAndMetadata(100, "checkpoint-7", -1)})
        with pytest.raises(OffsetMetadataTooLargeError):
            commit(consumer, {tp0: OffsetAndMetadata(50, "x" * 5_000, -1)})
    finally:
        consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=weir.bootstrap, request_timeout_ms=OP_TIMEOUT_S * 1000)
    try:
        stored = admin.list_group_offsets({group: None})[group]
        assert stored[TopicPartition(topic, 0)].offset == 100, stored
        assert stored[TopicPartition(topic, 0)].metadata == "checkpoint-7", stored
    finally:
        admin.close()

    second = [f"b{i:04}".encode() for i in range(99)]
    produce(weir.bootstrap, topic, second)
    consumer = group_consumer(weir.bootstrap, topic, group)
    try:
        got = consume_n(consumer, 99)
        # Only the new records: the group resumed from its commit.
        assert sorted(r.value for r in got) == sorted(second)
        assert all(r.offset >= 100 for r in got), [(r.partition, r.offset) for r in got if r.offset < 100][:5]
        # Nothing more arrives (no redelivery of the first 300).
        assert consume_more(consumer) == []
        commit(consumer)
    finally:
        consumer.close()


def consume_more(consumer):
    """What one more poll() of POLL_MS brings (nothing, for a group at the log end)."""
    return [r for records in consumer.poll(timeout_ms=POLL_MS).values() for r in records]


@pytest.mark.timeout(120)
def test_two_members_split_partitions_and_admin_sees_the_group(make_weir, topic_name):
    weir = make_weir(*BROKER_FLAGS)
    topic = topic_name()
    group = "kp-admin"
    create_topic(weir.bootstrap, topic)
    produce(weir.bootstrap, topic, [f"v{i}".encode() for i in range(60)])
    # Each member polls in its own thread: a kafka-python poll() can block for a whole join,
    # and a member whose SyncGroup answer is not picked up stops heartbeating.
    a, b = Member(weir.bootstrap, topic, group, "kp-a"), Member(weir.bootstrap, topic, group, "kp-b")
    admin = KafkaAdminClient(bootstrap_servers=weir.bootstrap, request_timeout_ms=OP_TIMEOUT_S * 1000)
    try:
        def split():
            x, y = a.assignment, b.assignment
            return x and y and not (x & y) and len(x | y) == PARTITIONS

        wait_until("two kafka-python members to split the partitions", split, 30,
                   detail=lambda: f"a={a.assignment} b={b.assignment} errors={a.errors + b.errors}")
        wait_until("60 records", lambda: len({(r.partition, r.offset) for r in a.got + b.got}) >= 60, 30)
        a.commit_and_idle()
        b.commit_and_idle()
        assert split(), f"a rebalance moved partitions meanwhile: a={a.assignment} b={b.assignment}"

        groups = admin.list_groups()
        assert group in {g["group_id"] for g in groups}, groups
        described = admin.describe_groups([group])
        info = described[group] if isinstance(described, dict) else described[0]
        state = info.get("group_state", info.get("state"))
        assert state == "Stable", info
        members = info["members"]
        assert sorted(m["client_id"] for m in members) == ["kp-a", "kp-b"], members

        offsets = admin.list_group_offsets({group: None})[group]
        assert {tp.partition: om.offset for tp, om in offsets.items()} == {p: 20 for p in range(PARTITIONS)}, offsets
        # Two groups in one OffsetFetch (v8+): the unknown one has no offsets.
        both = admin.list_group_offsets({group: None, "kp-no-such-group": None})
        assert {tp.partition: om.offset for tp, om in both[group].items()} == {p: 20 for p in range(PARTITIONS)}
        assert both["kp-no-such-group"] == {}, both

        # A subscribed topic's offsets cannot be deleted while the group is live.
        tp0 = TopicPartition(topic, 0)
        refused = admin.delete_group_offsets(group, [tp0])
        assert refused[tp0] is GroupSubscribedToTopicError, refused
        # Nor the group itself.
        # (kafka-python answers {group: "OK" or the error class's name}.)
        refused = admin.delete_groups([group])
        assert refused == {group: NonEmptyGroupError.__name__}, refused
    finally:
        a.close()
        b.close()
    assert not a.errors and not b.errors, a.errors + b.errors
    try:
        tp0 = TopicPartition(topic, 0)
        wait_until("the group to empty", lambda: _state(admin, group) == "Empty", OP_TIMEOUT_S)
        deleted = admin.delete_group_offsets(group, [tp0])
        assert deleted[tp0] is NoError, deleted
        offsets = admin.list_group_offsets({group: None})[group]
        assert sorted(tp.partition for tp in offsets) == [1, 2], offsets
        deleted = admin.delete_groups([group])
        assert deleted == {group: "OK"}, deleted
        assert group not in {g["group_id"] for g in admin.list_groups()}
    finally:
        admin.close()


class Member:
    """A kafka-python group member polling in its own thread; commit and close run there
    too (the consumer is not thread-safe)."""

    def __init__(self, bootstrap, topic, group, client_id):
        self.got = []
        self.errors = []
        self.assignment = set()
        self._commit = threading.Event()
        self._committed = threading.Event()
        self._close = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(bootstrap, topic, group, client_id), daemon=True)
        self._thread.start()

    def _run(self, bootstrap, topic, group, client_id):
        try:
            consumer = group_consumer(bootstrap, topic, group, client_id=client_id)
            try:
                while not self._close.is_set():
                    if self._commit.is_set() and not self._committed.is_set():
                        commit(consumer)
                        self._committed.set()
                    for records in consumer.poll(timeout_ms=POLL_MS).values():
                        self.got.extend(records)
                    self.assignment = {tp.partition for tp in consumer.assignment()}
            finally:
                consumer.close()
        except Exception as e:  # reported by the test
            self.errors.append(repr(e))
            self._committed.set()

    def commit_and_idle(self):
        self._commit.set()
        assert self._committed.wait(OP_TIMEOUT_S), "commit did not finish"

    def close(self):
        self._close.set()
        self._thread.join(OP_TIMEOUT_S)


def _state(admin, group):
    described = admin.describe_groups([group])
    info = described[group] if isinstance(described, dict) else described[0]
    return info.get("group_state", info.get("state"))
