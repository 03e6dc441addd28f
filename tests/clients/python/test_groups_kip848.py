"""Consumer groups under KIP-848 (`group.protocol=consumer`): librdkafka's new consumer,
ConsumerGroupHeartbeat, the assignment computed on the broker. The scenarios of
test_groups_confluent.py (clean leave, kill of a member, restart of the group, restart
of the broker), with the same sizes: a 12-partition topic, 100,000 keyed records, 3
members at 5,000 records/s each; about 10-15 s a test. Plus a regex subscription.

In this mode the client sets neither session.timeout.ms nor partition.assignment.strategy:
the broker's `group.consumer.*` settings apply. The broker runs with a 3 s consumer
session timeout and a 500 ms heartbeat interval so that failover stays quick.
"""

import time

import pytest

from test_groups_confluent import (
    TAKEOVER_SLACK_S,
    describe_group,
    scenario_broker_restart,
    scenario_clean_leave,
    scenario_group_restart,
    scenario_kill_member,
)

CONSUMER_SESSION_TIMEOUT_MS = 3_000
CONSUMER_HEARTBEAT_INTERVAL_MS = 500
BROKER_FLAGS = (
    "--group-initial-rebalance-delay-ms", "0",
    "--group-min-session-timeout-ms", "1000",
    "--group-consumer-session-timeout-ms", str(CONSUMER_SESSION_TIMEOUT_MS),
)
KIP848 = {"group.protocol": "consumer"}
TAKEOVER_TIMEOUT_S = CONSUMER_SESSION_TIMEOUT_MS / 1000 + TAKEOVER_SLACK_S


def start_weir(make_weir, tmp_path, session_timeout_ms=CONSUMER_SESSION_TIMEOUT_MS):
    # The heartbeat interval has no flag: it comes from the config file's [groups] table.
    config = tmp_path / "weir.toml"
    config.write_text(f"[groups]\nconsumer_heartbeat_interval_ms = {CONSUMER_HEARTBEAT_INTERVAL_MS}\n")
    flags = list(BROKER_FLAGS)
    flags[flags.index("--group-consumer-session-timeout-ms") + 1] = str(session_timeout_ms)
    return make_weir(*flags, "--config", str(config))


@pytest.mark.timeout(180)
def test_kip848_clean_leave_processes_each_message_once(make_weir, tmp_path, topic_name):
    weir = start_weir(make_weir, tmp_path)
    took = scenario_clean_leave(weir, tmp_path, topic_name(), "g848-clean", KIP848, TAKEOVER_TIMEOUT_S)
    print(f"the leaving member's partitions moved in {took:.2f}s")
    # The group is a KIP-848 one, as ConsumerGroupDescribe (or DescribeGroups) shows.
    desc = describe_group(weir.bootstrap, "g848-clean")
    kind = getattr(desc, "type", None)
    if kind is not None:
        assert getattr(kind, "name", str(kind)).upper() == "CONSUMER", f"group type {kind}"


@pytest.mark.timeout(180)
def test_kip848_killed_member_partitions_move_within_session_timeout(make_weir, tmp_path, topic_name):
    weir = start_weir(make_weir, tmp_path)
    took, dups = scenario_kill_member(weir, tmp_path, topic_name(), "g848-kill", KIP848, TAKEOVER_TIMEOUT_S)
    print(f"the killed member's partitions moved in {took:.2f}s; {dups} records processed twice")


@pytest.mark.timeout(180)
def test_kip848_group_restart_resumes_from_committed_offsets(make_weir, tmp_path, topic_name):
    weir = start_weir(make_weir, tmp_path)
    scenario_group_restart(weir, tmp_path, topic_name(), "g848-restart", KIP848)


@pytest.mark.timeout(180)
def test_kip848_broker_restart_keeps_offsets_and_members(make_weir, tmp_path, topic_name):
    weir = start_weir(make_weir, tmp_path)
    rebalances = scenario_broker_restart(weir, tmp_path, topic_name(), "g848-broker", KIP848)
    print(f"revocations after the broker restart: {rebalances}")



@pytest.mark.timeout(60)
def test_kip848_regex_subscription_is_resolved_by_the_broker(make_weir, tmp_path, topic_name):
    """A `^prefix.*` subscription under KIP-848 is sent to the broker as a regular
    expression (ConsumerGroupHeartbeat SubscribedTopicRegex), which resolves it to topics
    and assigns their partitions; a topic that does not match is left alone. Two matching
    topics of 2 partitions, one other, 100 records each; a few seconds."""
    from confluent_kafka import Consumer, KafkaException

    from test_groups_confluent import create_topic, produce_keyed

    weir = start_weir(make_weir, tmp_path)
    prefix = topic_name("-rx")
    matching = [f"{prefix}-a", f"{prefix}-b"]
    other = topic_name("-other")
    delivered = {}
    for t in matching + [other]:
        create_topic(weir.bootstrap, t, 2)
        delivered[t] = produce_keyed(weir.bootstrap, t, n=100, keys=10)
    c = Consumer({"bootstrap.servers": weir.bootstrap, "group.id": "g848-regex", "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = {}
    try:
        c.subscribe([f"^{prefix}-.*"])
        deadline = time.monotonic() + 30
        while sum(len(v) for v in got.values()) < 200 and time.monotonic() < deadline:
            msg = c.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            got.setdefault(msg.topic(), set()).add((msg.partition(), msg.offset()))
        assignment = sorted((tp.topic, tp.partition) for tp in c.assignment())
    finally:
        c.close()
    assert set(got) == set(matching), f"consumed from {sorted(got)}, expected {matching}"
    for t in matching:
        assert got[t] == set(delivered[t]), f"{t}: {len(got[t])} of {len(delivered[t])} records"
    assert assignment == sorted((t, p) for t in matching for p in range(2)), assignment
