"""Group protocol details with confluent-kafka (librdkafka inside): the cooperative-sticky
assignor through the classic protocol (the broker passes protocols through), a KIP-848
regex subscription that picks up a topic created later, the range server-side assignor,
and the admin operations on groups and their offsets.

Sizes: topics of 6 partitions, a few hundred messages; each test takes a few seconds.
"""

import time

from confluent_kafka import Consumer, ConsumerGroupState, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DEADLINE_S = 60


def create(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(10)


def produce(bootstrap, topic, count):
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert producer.flush(10) == 0


class Member:
    """A consumer whose callbacks record what it owned, polled by the test."""

    def __init__(self, conf, topics):
        # Cooperative assignors (and KIP-848) hand out increments; eager ones the whole set.
        self.incremental = conf.get("partition.assignment.strategy") == "cooperative-sticky" or (
            conf.get("group.protocol") == "consumer"
        )
        self.owned = set()
        self.revoked = []  # every revocation, as a set of (topic, partition)
        self.consumer = Consumer(conf)
        self.consumer.subscribe(topics, on_assign=self._assign, on_revoke=self._revoke)

    def _assign(self, consumer, partitions):
        if self.incremental:
            self.owned |= {(p.topic, p.partition) for p in partitions}
        else:
            self.owned = {(p.topic, p.partition) for p in partitions}

    def _revoke(self, consumer, partitions):
        gone = {(p.topic, p.partition) for p in partitions}
        self.revoked.append(gone)
        self.owned -= gone

    def poll(self):
        message = self.consumer.poll(0.05)
        assert message is None or message.error() is None, message.error()


def poll_until(members, condition, what):
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: " + repr(
            [sorted(m.owned) for m in members]
        )
        for member in members:
            member.poll()


def exactly_once(members, partitions):
    owned = [tp for m in members for tp in m.owned]
    return len(owned) == len(partitions) and set(owned) == set(partitions)


def test_cooperative_sticky_moves_only_the_partitions_that_change_owner(make_weir, topic_name):
    weir = make_weir("--group-initial-rebalance-delay-ms", "0")
    topic = topic_name()
    create(weir.bootstrap, topic, 6)
    conf = {
        "bootstrap.servers": weir.bootstrap,
        "group.id": "coop",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": 6000,
    }
    everything = {(topic, p) for p in range(6)}
    first = Member(dict(conf), [topic])
    poll_until([first], lambda: exactly_once([first], everything), "the first member to own all 6")
    kept_by_first = set(first.owned)

    second = Member(dict(conf), [topic])
    members = [first, second]
    poll_until(
        members,
        lambda: exactly_once(members, everything) and len(second.owned) == 3,
        "a 3/3 split",
    )
    # Cooperative: the first member gave up only what moved, never everything at once.
    assert all(len(gone) <= 3 for gone in first.revoked), first.revoked
    assert first.owned <= kept_by_first

    second.consumer.close()
    poll_until([first], lambda: exactly_once([first], everything), "the first member to take all 6 back")
    first.consumer.close()


def test_kip848_regex_subscription_picks_up_a_topic_created_later(make_weir, topic_name):
    weir = make_weir()
    prefix = topic_name("-re")
    create(weir.bootstrap, prefix + "-a", 2)
    member = Member(
        {
            "bootstrap.servers": weir.bootstrap,
            "group.id": "regex",
            "group.protocol": "consumer",
            "topic.metadata.refresh.interval.ms": 500,
        },
        ["^" + prefix + "-.*"],
    )
    first = {(prefix + "-a", p) for p in range(2)}
    poll_until([member], lambda: member.owned == first, "the regex's first topic")
    create(weir.bootstrap, prefix + "-b", 3)
    both = first | {(prefix + "-b", p) for p in range(3)}
    poll_until([member], lambda: member.owned == both, "the topic created later")
    member.consumer.close()


def test_kip848_range_assignor_gives_contiguous_ranges(make_weir, topic_name):
    weir = make_weir()
    topic = topic_name()
    create(weir.bootstrap, topic, 6)
    conf = {
        "bootstrap.servers": weir.bootstrap,
        "group.id": "ranged",
        "group.protocol": "consumer",
        "group.remote.assignor": "range",
    }
    members = [Member(dict(conf), [topic]) for _ in range(2)]
    everything = {(topic, p) for p in range(6)}
    poll_until(
        members,
        lambda: exactly_once(members, everything) and all(len(m.owned) == 3 for m in members),
        "a 3/3 range split",
    )
    for m in members:
        partitions = sorted(p for _, p in m.owned)
        assert partitions in ([0, 1, 2], [3, 4, 5]), partitions
    # librdkafka describes a KIP-848 group with ConsumerGroupDescribe.
    admin = AdminClient({"bootstrap.servers": weir.bootstrap})
    described = admin.describe_consumer_groups(["ranged"])["ranged"].result(10)
    assert described.type.name == "CONSUMER", described.type
    assert described.state == ConsumerGroupState.STABLE, described.state
    assert described.partition_assignor == "range", described.partition_assignor
    shares = sorted(
        sorted(tp.partition for tp in member.assignment.topic_partitions) for member in described.members
    )
    assert shares == [[0, 1, 2], [3, 4, 5]], shares
    for m in members:
        m.consumer.close()


def test_admin_lists_describes_alters_and_deletes_groups(make_weir, topic_name):
    weir = make_weir("--group-initial-rebalance-delay-ms", "0")
    topic = topic_name()
    create(weir.bootstrap, topic, 3)
    produce(weir.bootstrap, topic, 30)
    admin = AdminClient({"bootstrap.servers": weir.bootstrap})

    member = Member(
        {"bootstrap.servers": weir.bootstrap, "group.id": "busy", "auto.offset.reset": "earliest"},
        [topic],
    )
    poll_until([member], lambda: len(member.owned) == 3, "the member's assignment")
    # A second group that only has offsets, set by the admin client (OffsetCommit, generation -1).
    offsets = [TopicPartition(topic, p, 5 + p) for p in range(3)]
    from confluent_kafka import ConsumerGroupTopicPartitions

    result = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("parked", offsets)])
    result["parked"].result(10)

    listed = admin.list_consumer_groups(request_timeout=10).result()
    ids = {g.group_id: g for g in listed.valid}
    assert {"busy", "parked"} <= set(ids), ids
    assert ids["busy"].state == ConsumerGroupState.STABLE
    stable_only = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result()
    assert {g.group_id for g in stable_only.valid} == {"busy"}

    described = admin.describe_consumer_groups(["busy"])["busy"].result(10)
    assert described.state == ConsumerGroupState.STABLE
    assert len(described.members) == 1
    assigned = {(tp.topic, tp.partition) for tp in described.members[0].assignment.topic_partitions}
    assert assigned == {(topic, p) for p in range(3)}

    fetched = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("parked")])
    got = {tp.partition: tp.offset for tp in fetched["parked"].result(10).topic_partitions}
    assert got == {0: 5, 1: 6, 2: 7}

    deleted = admin.delete_consumer_groups(["busy", "parked"])
    try:
        deleted["busy"].result(10)
        raise AssertionError("a group with a member was deleted")
    except KafkaException as error:
        assert error.args[0].name() == "NON_EMPTY_GROUP", error
    deleted["parked"].result(10)
    fetched = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("parked")])
    assert all(tp.offset < 0 for tp in fetched["parked"].result(10).topic_partitions)
    member.consumer.close()
