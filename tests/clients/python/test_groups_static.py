"""Static membership (KIP-345, `group.instance.id`) with confluent-kafka members in their own
processes (group_worker.py).

Classic and KIP-848. Sizes (each): a 12-partition topic, 3 static members throttled to
2,000 records/s each,
20,000 keyed records before the restart and 6,000 after; session timeout 6 s. About 15 s.
"""

import time

import pytest
from confluent_kafka import ConsumerGroupState

from group_worker import Worker, wait_until
from test_groups_kip848 import start_weir as start_kip848_weir
from test_groups_confluent import (
    BROKER_FLAGS,
    PARTITIONS,
    SETTLE_TIMEOUT_S,
    check_streams,
    create_topic,
    describe_all,
    describe_group,
    produce_keyed,
    settled,
    wait_drained,
)

SESSION_TIMEOUT_MS = 6_000
RATE = 2_000


def static_conf(instance):
    return {
        "group.instance.id": instance,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": 300,
        "partition.assignment.strategy": "range",
    }


def wait_stable(weir, group):
    """DescribeGroups / ConsumerGroupDescribe once the group reports Stable."""
    last = []

    def stable():
        desc = describe_group(weir.bootstrap, group)
        last[:] = [desc.state]
        return desc if desc.state == ConsumerGroupState.STABLE else None

    return wait_until("the group to be described as Stable", stable, SETTLE_TIMEOUT_S, poll_s=0.2,
                      detail=lambda: f"last state {last}")


def rebalance_events(worker, since):
    return [e for e in worker.events[since:] if e["ev"] in ("assign", "revoke", "lost")]


@pytest.mark.timeout(120)
def test_static_member_restart_gets_its_partitions_without_a_rebalance(make_weir, tmp_path, topic_name):
    """Classic protocol: the member is SIGKILLed (no LeaveGroup) and restarted; a
    duplicate instance id fences the older member (FENCED_INSTANCE_ID) and takes over."""
    weir = make_weir(*BROKER_FLAGS)
    static_scenario(weir, tmp_path, topic_name(), "g-static", static_conf, kip848=False)


@pytest.mark.timeout(120)
def test_kip848_static_member_restart_gets_its_partitions_without_a_rebalance(make_weir, tmp_path, topic_name):
    """KIP-848: the member closes (a static leave, member epoch -2, which keeps its
    assignment for the session timeout) and restarts; a duplicate of a live member's
    instance id is refused (UNRELEASED_INSTANCE_ID), the live member untouched."""
    weir = start_kip848_weir(make_weir, tmp_path, session_timeout_ms=SESSION_TIMEOUT_MS)
    static_scenario(weir, tmp_path, topic_name(), "g848-static",
                    lambda instance: {"group.instance.id": instance, "group.protocol": "consumer"}, kip848=True)


def static_scenario(weir, tmp_path, topic, group, conf_of, kip848):
    create_topic(weir.bootstrap, topic)
    delivered = produce_keyed(weir.bootstrap, topic, n=20_000)

    def start(name, instance):
        return Worker(name, weir.bootstrap, topic, group, tmp_path, conf=conf_of(instance), rate=RATE)

    a, b, c = start("a", "static-a"), start("b", "static-b"), start("c", "static-c")
    workers = [a, b, c]
    try:
        wait_until("the group to settle", lambda: settled([a, b, c]), SETTLE_TIMEOUT_S,
                   detail=lambda: describe_all(workers))
        # A KIP-848 group may still move partitions after each has an owner (it is
        # Reconciling until every member has its target assignment); Stable means done.
        desc = wait_stable(weir, group)
        ids_before = {m.group_instance_id: m.member_id for m in desc.members}
        assert set(ids_before) == {"static-a", "static-b", "static-c"}, ids_before
        target = {m.group_instance_id: {tp.partition for tp in m.assignment.topic_partitions} for m in desc.members}
        wait_until("each member to hold what the group describes",
                   lambda: all(w.assigned() == target[f"static-{w.name}"] for w in (a, b, c)), SETTLE_TIMEOUT_S,
                   detail=lambda: f"described {target}\n" + describe_all(workers))
        before = {w.name: w.assigned() for w in (a, b, c)}
        wait_until("some records processed by c", lambda: c.processed() > 0, SETTLE_TIMEOUT_S)

        # Restart c within the session timeout: a new process. Classic: SIGKILL (no
        # LeaveGroup). KIP-848: close(), a static leave; after a SIGKILL the instance id
        # stays taken (UNRELEASED_INSTANCE_ID) until the old member's session expires.
        marks = {w.name: len(w.events) for w in (a, b)}
        if kip848:
            c.stop()
        else:
            c.kill()
        killed_at = time.monotonic()
        c2 = start("c2", "static-c")
        workers.append(c2)
        wait_until("the restarted static member to get partitions", lambda: c2.assigned(), SESSION_TIMEOUT_MS / 1000,
                   detail=lambda: describe_all(workers))
        rejoined_s = time.monotonic() - killed_at
        assert c2.assigned() == before["c"], (
            f"the restarted static member got {sorted(c2.assigned())}, it had {sorted(before['c'])}"
        )
        # More records for every partition; all of them processed by their owners, and a
        # full session timeout since the restart, without any rebalance at a or b.
        more = produce_keyed(weir.bootstrap, topic, n=6_000, first=20_000)
        delivered.update(more)
        wait_drained([a, b, c, c2], delivered)
        wait_until("a session timeout after the restart",
                   lambda: time.monotonic() - killed_at > SESSION_TIMEOUT_MS / 1000 + 1, SESSION_TIMEOUT_MS / 1000 + 5)
        churn = {w.name: rebalance_events(w, marks[w.name]) for w in (a, b)}
        assert not any(churn.values()), (
            f"restarting a static member rebalanced the others (their callbacks fired): {churn}"
        )
        assert c2.count("revoke") == 0 and c2.count("lost") == 0, c2.describe()
        desc = wait_stable(weir, group)
        ids_after = {m.group_instance_id: m.member_id for m in desc.members}
        assert set(ids_after) == {"static-a", "static-b", "static-c"}, ids_after
        assert ids_after["static-a"] == ids_before["static-a"] and ids_after["static-b"] == ids_before["static-b"]
        assert ids_after["static-c"] != ids_before["static-c"], "the restarted member kept its old member id"
        by_instance = {m.group_instance_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
                       for m in desc.members}
        assert by_instance["static-c"] == sorted(before["c"]), by_instance

        dup = start("dup", "static-a")
        workers.append(dup)
        if kip848:
            # The newcomer is refused; a keeps its partitions.
            wait_until(
                "the duplicate instance id to be refused (UNRELEASED_INSTANCE_ID)",
                lambda: any("INSTANCE ID IS STILL USED" in e.get("text", "").upper() or "UNRELEASED" in
                            (e.get("name", "") + e.get("text", "")).upper() for e in dup.events if e["ev"] == "error"),
                SETTLE_TIMEOUT_S, detail=lambda: describe_all([a, dup]),
            )
            assert a.assigned() == before["a"] and not rebalance_events(a, marks["a"]), a.describe()
        else:
            # Classic: a second live process with a's instance id fences a
            # (FENCED_INSTANCE_ID) and takes its partitions.
            wait_until("the duplicate to get a's partitions", lambda: dup.assigned() == before["a"],
                       SETTLE_TIMEOUT_S, detail=lambda: describe_all(workers))
            wait_until(
                "the old member with the same group.instance.id to be fenced (FENCED_INSTANCE_ID)",
                lambda: any("FENCED" in (e.get("name", "") + e.get("text", "")).upper()
                            for e in a.events if e["ev"] in ("error", "commit_failed")),
                SESSION_TIMEOUT_MS / 1000 + 10, detail=lambda: describe_all([a, dup]),
            )
    finally:
        for w in workers:
            w.kill()
    seen = check_streams(workers, delivered)
    missing = delivered.keys() - seen.keys()
    assert not missing, f"{len(missing)} records never processed, e.g. {sorted(missing)[:5]}"
    print(f"static member rejoined {rejoined_s:.2f}s after it stopped; partitions {sorted(before['c'])}; {PARTITIONS} total")
