"""Consumer groups, classic protocol, with confluent-kafka (librdkafka) members in their own
processes (group_worker.py: process a batch, then commit it synchronously).

Sizes (each test): one 12-partition topic, 100,000 keyed messages (1,000 keys), 3 members
throttled to 5,000 records/s each so that the events land mid-stream; about 10-20 s a
test on 2 cores. The broker runs with `--group-initial-rebalance-delay-ms 0` and
`--group-min-session-timeout-ms 1000` so that members may ask for a 3 s session timeout
and failover stays quick.

Shared with test_groups_kip848.py, which runs the same scenarios with
`group.protocol=consumer`.
"""

import time
from collections import Counter

import pytest
from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from clients import OP_TIMEOUT_S, admin, producer
from group_worker import Worker, by_partition, wait_until

PARTITIONS = 12
MESSAGES = 100_000
KEYS = 1_000
RATE = 5_000  # records/s per member
# Client-side session timeout for the classic tests (the broker's minimum is lowered to 1 s).
SESSION_TIMEOUT_MS = 3_000
# Beyond the session timeout, what a takeover may take: the survivors learn of the rebalance
# at their next heartbeat (300 ms), rejoin and sync; generous for a loaded 2-core machine.
TAKEOVER_SLACK_S = 4.0
# How long all 100,000 records may take to be processed (18 s at the throttled rate).
DRAIN_TIMEOUT_S = 90
# How long a group may take to settle (every partition held by exactly one live member).
SETTLE_TIMEOUT_S = 30

BROKER_FLAGS = ("--group-initial-rebalance-delay-ms", "0", "--group-min-session-timeout-ms", "1000")

CLASSIC = {
    "session.timeout.ms": SESSION_TIMEOUT_MS,
    "heartbeat.interval.ms": 300,
    "partition.assignment.strategy": "range",
}
COOPERATIVE = dict(CLASSIC, **{"partition.assignment.strategy": "cooperative-sticky"})


def create_topic(bootstrap, topic, partitions=PARTITIONS):
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=OP_TIMEOUT_S)
    futures[topic].result(OP_TIMEOUT_S)


def produce_keyed(bootstrap, topic, n=MESSAGES, keys=KEYS, first=0):
    """Produces n records `k{i % keys}` -> `{i}` with the default partitioner; returns
    {(partition, offset): (key, value)} from the delivery reports, after checking that
    every key went to exactly one partition and that the keys cover all partitions."""
    p = producer(bootstrap, **{"linger.ms": 20, "batch.num.messages": 10_000,
                               "queue.buffering.max.messages": 200_000})
    delivered = {}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered[(msg.partition(), msg.offset())] = (msg.key().decode(), msg.value().decode())

    for i in range(first, first + n):
        while True:
            try:
                p.produce(topic, key=f"k{i % keys}", value=str(i), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0, "records still in flight after 60 s"
    assert not errors, f"{len(errors)} deliveries failed, first {errors[:3]}"
    assert len(delivered) == n
    partitions_of = {}
    for (part, _), (key, _) in delivered.items():
        partitions_of.setdefault(key, set()).add(part)
    split = {k: ps for k, ps in partitions_of.items() if len(ps) > 1}
    assert not split, f"keys spread over several partitions: {list(split.items())[:3]}"
    return delivered


def start_workers(tmp_path, bootstrap, topic, group, names, conf, rate=RATE):
    return [Worker(name, bootstrap, topic, group, tmp_path, conf=conf, rate=rate) for name in names]


def describe_all(workers):
    return "\n".join(f"{w.name}: alive={w.alive()} held={sorted(w.assigned())} {w.describe()}" for w in workers)


def settled(live, partitions=PARTITIONS):
    """True once every partition is held by exactly one live member and each holds some."""
    held = [w.assigned() for w in live]
    if any(not h for h in held):
        return False
    every = [p for h in held for p in h]
    return sorted(every) == list(range(partitions))


def wait_settled(live, timeout_s=SETTLE_TIMEOUT_S):
    wait_until("the group to settle (each partition held by exactly one live member)",
               lambda: settled(live), timeout_s, detail=lambda: describe_all(live))


def processed_total(workers):
    return sum(w.processed() for w in workers)


def union_covers(workers, delivered):
    seen = set()
    for w in workers:
        seen.update((p, o) for _, p, o, _, _ in w.records())
    return seen >= delivered.keys()


def wait_drained(workers, delivered, timeout_s=DRAIN_TIMEOUT_S):
    # Count first (cheap), then check the set only when the count can cover it.
    wait_until(
        f"all {len(delivered)} records to be processed",
        lambda: processed_total(workers) >= len(delivered) and union_covers(workers, delivered),
        timeout_s,
        poll_s=0.2,
        detail=lambda: f"processed {processed_total(workers)}\n" + describe_all(workers),
    )


def check_streams(workers, delivered):
    """Every processed record is one that was produced, with its key and value, and each
    member saw each partition's offsets strictly increasing. Returns a Counter of
    (partition, offset) over all members."""
    seen = Counter()
    for w in workers:
        for _, p, o, k, v in w.records():
            assert delivered.get((p, o)) == (k, v), f"{w.name} processed ({p}, {o}) = {(k, v)}, produced {delivered.get((p, o))}"
            seen[(p, o)] += 1
        for p, offsets in by_partition(w.records()).items():
            bad = [(a, b) for a, b in zip(offsets, offsets[1:]) if b <= a]
            assert not bad, f"{w.name}: partition {p} went backwards within its stream: {bad[:5]}"
    return seen


def no_dropped_commits(workers):
    """Every member committed what it processed before its partitions went elsewhere: a
    commit may fail while the group completes a rebalance (REBALANCE_IN_PROGRESS, as in
    Kafka), but the retry after the next consume() or in on_revoke must succeed."""
    dropped = [(w.name, e) for w in workers for e in w.events
               if e["ev"] in ("revoke", "lost", "closed") and e.get("uncommitted")]
    failed = [(w.name, e.get("partitions"), e.get("text")) for w in workers for e in w.events
              if e["ev"] == "commit_failed"]
    assert not dropped, f"processed offsets could not be committed before the partitions moved: {dropped[:5]}; failed commits: {failed[:5]}"
    print(f"failed (then retried) commits: {len(failed)}, e.g. {failed[:3]}")


def stop_all(workers):
    for w in workers:
        w.terminate()
    for w in workers:
        w.stop()


def kill_all(workers):
    for w in workers:
        w.kill()


def group_offsets(bootstrap, group, topic, partitions=PARTITIONS):
    """{partition: committed offset} as the broker reports it (OffsetFetch)."""
    client = admin(bootstrap)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(partitions)])
    result = client.list_consumer_group_offsets([request])[group].result(OP_TIMEOUT_S)
    return {tp.partition: tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def describe_group(bootstrap, group):
    client = admin(bootstrap)
    return client.describe_consumer_groups([group], request_timeout=OP_TIMEOUT_S)[group].result(OP_TIMEOUT_S)


# ---- the scenarios (also run by test_groups_kip848.py with group.protocol=consumer) ----


def scenario_clean_leave(weir, tmp_path, topic, group, conf, takeover_timeout_s):
    """Members only leave cleanly (a batch is committed before the next consume, close()
    leaves the group): every record is processed exactly once, even though one member
    leaves mid-stream and its partitions move to the others."""
    create_topic(weir.bootstrap, topic)
    delivered = produce_keyed(weir.bootstrap, topic)
    workers = start_workers(tmp_path, weir.bootstrap, topic, group, ["a", "b", "c"], conf)
    try:
        wait_settled(workers)
        wait_until("30,000 records processed", lambda: processed_total(workers) >= 30_000, DRAIN_TIMEOUT_S,
                   detail=lambda: describe_all(workers))
        workers[2].stop()
        left_at = time.monotonic()
        wait_settled(workers[:2], takeover_timeout_s)
        takeover_s = time.monotonic() - left_at
        wait_drained(workers, delivered)
        stop_all(workers[:2])
    finally:
        kill_all(workers)
    seen = check_streams(workers, delivered)
    missing = delivered.keys() - seen.keys()
    assert not missing, f"{len(missing)} records never processed, e.g. {sorted(missing)[:5]}"
    no_dropped_commits(workers)
    twice = {k: n for k, n in seen.items() if n > 1}
    assert not twice, (
        f"{len(twice)} records processed more than once although every member left cleanly "
        f"after committing, e.g. {sorted(twice)[:5]}"
    )
    assert workers[2].processed() > 0, "the leaving member processed nothing before it left"
    return takeover_s


def scenario_kill_member(weir, tmp_path, topic, group, conf, takeover_timeout_s):
    """A member is SIGKILLed mid-stream: its partitions go to the survivors within the
    session timeout, and with commits after processing nothing is lost (at-least-once).
    Only records the killed member processed after its last acknowledged commit may be
    processed twice; each member sees each partition in offset order."""
    create_topic(weir.bootstrap, topic)
    delivered = produce_keyed(weir.bootstrap, topic)
    workers = start_workers(tmp_path, weir.bootstrap, topic, group, ["a", "b", "victim"], conf)
    victim = workers[2]
    try:
        wait_settled(workers)
        wait_until("30,000 records processed", lambda: processed_total(workers) >= 30_000, DRAIN_TIMEOUT_S,
                   detail=lambda: describe_all(workers))
        held_by_victim = victim.assigned()
        victim.kill()
        killed_at = time.monotonic()
        survivors = workers[:2]
        wait_until(
            f"the survivors to take the killed member's partitions {sorted(held_by_victim)}",
            lambda: settled(survivors), takeover_timeout_s + 30, detail=lambda: describe_all(survivors),
        )
        takeover_s = time.monotonic() - killed_at
        assert takeover_s <= takeover_timeout_s, (
            f"the killed member's partitions moved after {takeover_s:.1f}s, more than the "
            f"{takeover_timeout_s:.1f}s the session timeout allows"
        )
        wait_drained(workers, delivered)
        stop_all(survivors)
    finally:
        kill_all(workers)
    seen = check_streams(workers, delivered)
    missing = delivered.keys() - seen.keys()
    assert not missing, f"{len(missing)} records lost after the kill, e.g. {sorted(missing)[:5]}"
    victim_commits = victim.commits()
    victim_seen = {(p, o) for _, p, o, _, _ in victim.records()}
    twice = {k for k, n in seen.items() if n > 1}
    unexpected = sorted(
        (p, o) for p, o in twice if (p, o) not in victim_seen or o < victim_commits.get(p, 0)
    )
    assert not unexpected, (
        f"{len(unexpected)} records processed twice that the killed member had not processed, or had "
        f"committed (its acknowledged commits {victim_commits}): e.g. {unexpected[:5]}"
    )
    assert held_by_victim, "the killed member held no partitions"
    return takeover_s, len(twice)


def scenario_group_restart(weir, tmp_path, topic, group, conf):
    """The whole group stops (cleanly) mid-stream and a new set of members starts: it
    resumes from the committed offsets, so nothing is processed twice or skipped."""
    create_topic(weir.bootstrap, topic)
    delivered = produce_keyed(weir.bootstrap, topic)
    first = start_workers(tmp_path, weir.bootstrap, topic, group, ["a1", "b1", "c1"], conf)
    try:
        wait_settled(first)
        wait_until("40,000 records processed", lambda: processed_total(first) >= 40_000, DRAIN_TIMEOUT_S,
                   detail=lambda: describe_all(first))
        stop_all(first)
    finally:
        kill_all(first)
    acked = {}
    for w in first:
        for p, o in w.commits().items():
            acked[p] = max(acked.get(p, 0), o)
    committed = group_offsets(weir.bootstrap, group, topic)
    assert committed == acked, f"the broker's committed offsets {committed} differ from the acknowledged commits {acked}"
    second = start_workers(tmp_path, weir.bootstrap, topic, group, ["a2", "b2", "c2"], conf)
    try:
        wait_drained(first + second, delivered)
        stop_all(second)
    finally:
        kill_all(second)
    seen = check_streams(first + second, delivered)
    missing = delivered.keys() - seen.keys()
    assert not missing, f"{len(missing)} records skipped across the restart, e.g. {sorted(missing)[:5]}"
    twice = sorted(k for k, n in seen.items() if n > 1)
    assert not twice, f"{len(twice)} records before the committed offsets were processed again, e.g. {twice[:5]}"
    resumed_at = {}
    for w in second:
        for p, offsets in by_partition(w.records()).items():
            resumed_at[p] = min(resumed_at.get(p, offsets[0]), offsets[0])
    wrong = {p: (resumed_at[p], committed.get(p, 0)) for p in resumed_at if resumed_at[p] != committed.get(p, 0)}
    assert not wrong, f"partitions resumed elsewhere than at the committed offset (resumed, committed): {wrong}"


def scenario_broker_restart(weir, tmp_path, topic, group, conf, check_member_ids=True):
    """The broker is SIGKILLed mid-stream and restarted on the same address: the members
    carry on, the group keeps its members, and nothing before an acknowledged commit is
    processed again."""
    create_topic(weir.bootstrap, topic)
    delivered = produce_keyed(weir.bootstrap, topic)
    workers = start_workers(tmp_path, weir.bootstrap, topic, group, ["a", "b", "c"], conf, rate=4_000)
    try:
        wait_settled(workers)
        wait_until("30,000 records processed", lambda: processed_total(workers) >= 30_000, DRAIN_TIMEOUT_S,
                   detail=lambda: describe_all(workers))
        before = describe_group(weir.bootstrap, group)
        members_before = sorted(m.member_id for m in before.members)
        weir.kill()
        # Acknowledged commits: each was answered before the kill.
        acked = {}
        for w in workers:
            for p, o in w.commits().items():
                acked[p] = max(acked.get(p, 0), o)
        lines_at_kill = {w.name: len(w.records()) for w in workers}
        events_at_kill = {w.name: len(w.events) for w in workers}
        weir.start(weir.bootstrap)
        committed = group_offsets(weir.bootstrap, group, topic)
        lost = {p: (o, committed.get(p)) for p, o in acked.items() if committed.get(p, -1) < o}
        assert not lost, f"acknowledged commits lost by the broker's restart (acked, after restart): {lost}"
        wait_drained(workers, delivered)
        # Rebalance callbacks between the restart and the end of the stream (close() revokes
        # too, so this is taken before the members stop).
        rebalances = {w.name: [(e["ev"], e["partitions"]) for e in w.events[events_at_kill[w.name]:]
                               if e["ev"] in ("assign", "revoke", "lost")]
                      for w in workers}
        after = describe_group(weir.bootstrap, group)
        members_after = sorted(m.member_id for m in after.members)
        stop_all(workers)
    finally:
        kill_all(workers)
    assert all(w.processed() > 0 for w in workers)
    seen = check_streams(workers, delivered)
    missing = delivered.keys() - seen.keys()
    assert not missing, f"{len(missing)} records lost across the broker restart, e.g. {sorted(missing)[:5]}"
    # Nothing before an acknowledged commit is processed after the restart.
    replayed = []
    for w in workers:
        for _, p, o, _, _ in w.records()[lines_at_kill[w.name]:]:
            if o < acked.get(p, 0):
                replayed.append((w.name, p, o))
    assert not replayed, f"{len(replayed)} records before the acknowledged commit processed again: {replayed[:5]}"
    churn = {name: evs for name, evs in rebalances.items() if any(ev != "assign" for ev, _ in evs)}
    assert not churn, f"the broker's restart made members give up partitions (a rebalance): {churn}"
    if check_member_ids:
        assert members_after == members_before, (
            f"group membership did not survive the broker restart: members {members_before} before, "
            f"{members_after} after (revocations after the restart: {rebalances})"
        )
    return rebalances


# ---- the tests -------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_clean_leave_processes_each_message_once(make_weir, tmp_path, topic_name):
    weir = make_weir(*BROKER_FLAGS)
    # Cooperative rebalancing: the broker only passes the client's protocol through.
    took = scenario_clean_leave(weir, tmp_path, topic_name(), "g-clean", COOPERATIVE,
                         SESSION_TIMEOUT_MS / 1000 + TAKEOVER_SLACK_S)
    print(f"the leaving member's partitions moved in {took:.2f}s")


@pytest.mark.timeout(180)
def test_killed_member_partitions_move_within_session_timeout(make_weir, tmp_path, topic_name):
    weir = make_weir(*BROKER_FLAGS)
    took, dups = scenario_kill_member(weir, tmp_path, topic_name(), "g-kill", CLASSIC, SESSION_TIMEOUT_MS / 1000 + TAKEOVER_SLACK_S)
    print(f"the killed member's partitions moved in {took:.2f}s; {dups} records processed twice")


@pytest.mark.timeout(180)
def test_group_restart_resumes_from_committed_offsets(make_weir, tmp_path, topic_name):
    weir = make_weir(*BROKER_FLAGS)
    scenario_group_restart(weir, tmp_path, topic_name(), "g-restart", CLASSIC)


@pytest.mark.timeout(180)
def test_broker_restart_keeps_offsets_and_members(make_weir, tmp_path, topic_name):
    weir = make_weir(*BROKER_FLAGS)
    rebalances = scenario_broker_restart(weir, tmp_path, topic_name(), "g-broker", CLASSIC)
    print(f"revocations after the broker restart: {rebalances}")


@pytest.mark.timeout(120)
def test_admin_lists_describes_and_deletes_groups(make_weir, tmp_path, topic_name):
    """AdminClient: ListGroups (with a state filter), DescribeGroups (members and their
    assignments), OffsetFetch, OffsetDelete refused for a subscribed topic and accepted
    after the group empties, DeleteGroups. Sizes: 2 members, 4 partitions, 2,000 records."""
    weir = make_weir(*BROKER_FLAGS)
    topic = topic_name()
    group = "g-admin"
    create_topic(weir.bootstrap, topic, 4)
    delivered = produce_keyed(weir.bootstrap, topic, n=2_000, keys=100)
    workers = start_workers(tmp_path, weir.bootstrap, topic, group, ["a", "b"], CLASSIC, rate=0)
    client = admin(weir.bootstrap)
    try:
        wait_until("both members to hold partitions", lambda: settled(workers, 4), SETTLE_TIMEOUT_S,
                   detail=lambda: describe_all(workers))
        wait_drained(workers, delivered)
        listed = client.list_consumer_groups(request_timeout=OP_TIMEOUT_S).result(OP_TIMEOUT_S)
        assert group in {g.group_id for g in listed.valid}, listed.valid
        stable = client.list_consumer_groups(request_timeout=OP_TIMEOUT_S,
                                             states={ConsumerGroupState.STABLE}).result(OP_TIMEOUT_S)
        assert group in {g.group_id for g in stable.valid}, "the state filter dropped a stable group"
        empty = client.list_consumer_groups(request_timeout=OP_TIMEOUT_S,
                                            states={ConsumerGroupState.EMPTY}).result(OP_TIMEOUT_S)
        assert group not in {g.group_id for g in empty.valid}, "a stable group listed as empty"
        desc = describe_group(weir.bootstrap, group)
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert len(desc.members) == 2
        owned = sorted(tp.partition for m in desc.members for tp in m.assignment.topic_partitions)
        assert owned == [0, 1, 2, 3], f"DescribeGroups assignments: {owned}"
        assert desc.partition_assignor == "range", desc.partition_assignor
        committed = group_offsets(weir.bootstrap, group, topic, 4)
        ends = {}
        for p, o in delivered:
            ends[p] = max(ends.get(p, 0), o + 1)
        assert committed == ends, f"committed {committed}, log ends {ends}"
        # A group with members cannot be deleted (NON_EMPTY_GROUP).
        with pytest.raises(KafkaException) as raised:
            client.delete_consumer_groups([group], request_timeout=OP_TIMEOUT_S)[group].result(OP_TIMEOUT_S)
        assert raised.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, raised.value.args[0]
        stop_all(workers)
        wait_until("the group to be empty", lambda: describe_group(weir.bootstrap, group).state
                   == ConsumerGroupState.EMPTY, OP_TIMEOUT_S)
        # DeleteGroups removes the group and its offsets (kafka-python's test covers OffsetDelete).
        client.delete_consumer_groups([group], request_timeout=OP_TIMEOUT_S)[group].result(OP_TIMEOUT_S)
        listed = client.list_consumer_groups(request_timeout=OP_TIMEOUT_S).result(OP_TIMEOUT_S)
        assert group not in {g.group_id for g in listed.valid}, "a deleted group is still listed"
        assert group_offsets(weir.bootstrap, group, topic, 4) == {}, "a deleted group's offsets remain"
    finally:
        kill_all(workers)


@pytest.mark.timeout(60)
def test_default_initial_rebalance_delay_bounds_the_first_message(weir, topic_name):
    """With the broker's default group.initial.rebalance.delay.ms (3,000 ms, as Kafka), a new
    single-member group gets its first record after that delay, not much later (the issue's
    bar is 3.5 s; this allows a loaded CI machine 2 s more) and not before (the delay is
    honoured). One member, one 1-partition topic, one record; about 4 s."""
    from confluent_kafka import Consumer

    topic = topic_name()
    create_topic(weir.bootstrap, topic, 1)
    produce_keyed(weir.bootstrap, topic, n=1, keys=1)
    c = Consumer({"bootstrap.servers": weir.bootstrap, "group.id": "g-first-message",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        started = time.monotonic()
        c.subscribe([topic])
        msg = None
        while msg is None and time.monotonic() - started < 20:
            msg = c.poll(0.05)
            if msg is not None and msg.error():
                raise KafkaException(msg.error())
        took = time.monotonic() - started
    finally:
        c.close()
    assert msg is not None, "no record within 20 s of subscribe()"
    print(f"subscribe() to first record: {took:.2f}s")
    assert 2.9 <= took <= 5.5, f"subscribe() to first record took {took:.2f}s with a 3 s initial rebalance delay"
