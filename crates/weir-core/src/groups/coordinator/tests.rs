//! The coordinator over a real broker in a temporary directory: calls, the records they
//! write, and what a reopened coordinator rebuilds from them.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use weir_storage::store::StoreConfig;

use super::*;
use crate::groups::classic::{JoinResponse, SyncResponse};
use crate::{BrokerConfig, TopicId};

const NOW: i64 = 1_000_000;

fn open(dir: &Path, now_ms: i64) -> (Arc<Broker>, Coordinator) {
    let broker = Arc::new(
        Broker::open(dir, StoreConfig::default(), BrokerConfig::default(), now_ms)
            .expect("open broker")
            .0,
    );
    let config = GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    };
    let coordinator = Coordinator::open(broker.clone(), config, now_ms).expect("open coordinator");
    (broker, coordinator)
}

fn topic(broker: &Broker, name: &str, partitions: i32) {
    broker
        .create_topic(name, TopicId([7; 16]), partitions, &[], false)
        .expect("create topic");
}

fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: "consumer".to_string(),
        protocols: vec![("range".to_string(), Bytes::from_static(b"sub"))],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        require_known_member_id: false,
        supports_skip_assignment: true,
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
        reason: None,
    }
}

fn joined(done: Done<()>, ticket: Ticket) -> JoinResponse {
    assert!(!done.write_failed);
    let reply = done
        .replies
        .into_iter()
        .find(|r| matches!(r, Reply::Join(t, _) if *t == ticket))
        .expect("join answered");
    match reply {
        Reply::Join(_, Ok(response)) => response,
        other => panic!("join refused: {other:?}"),
    }
}

fn synced(done: Done<()>, ticket: Ticket) -> SyncResponse {
    let reply = done
        .replies
        .into_iter()
        .find(|r| matches!(r, Reply::Sync(t, _) if *t == ticket))
        .expect("sync answered");
    match reply {
        Reply::Sync(_, Ok(response)) => response,
        other => panic!("sync refused: {other:?}"),
    }
}

/// One member joins "g", becomes leader, assigns itself `assignment`.
fn stable_single_member(coordinator: &Coordinator, assignment: &'static [u8]) -> JoinResponse {
    let first = coordinator.join("g", join_request(""), 1, NOW);
    assert!(first.replies.is_empty(), "the join waits for the rebalance");
    // The initial delay (0 here) still runs out on the timer, not inside the join.
    let due = coordinator.next_deadline().expect("a rebalance deadline");
    assert!(due <= NOW + 1_000);
    let join = joined(coordinator.tick(due), 1);
    let sync = SyncRequest {
        member_id: join.member_id.clone(),
        group_instance_id: None,
        generation_id: join.generation_id,
        protocol_type: Some("consumer".to_string()),
        protocol_name: Some("range".to_string()),
        assignments: vec![(join.member_id.clone(), Bytes::from_static(assignment))],
    };
    let done = coordinator.sync("g", sync, 2, NOW);
    assert!(done.durable.is_some(), "the Stable group was written");
    assert_eq!(synced(done, 2).assignment, Bytes::from_static(assignment));
    join
}

fn commit(
    coordinator: &Coordinator,
    group: &str,
    member: &Committer,
    offset: i64,
) -> Vec<PartitionResult> {
    let entries = vec![CommitEntry {
        topic: "t".to_string(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: Some("meta".to_string()),
    }];
    let done = coordinator.commit(group, member, entries, NOW);
    assert!(!done.write_failed);
    match done.value {
        Ok(results) => results.into_iter().map(|(_, r)| r).collect(),
        Err(error) => vec![Err(error)],
    }
}

fn standalone() -> Committer {
    Committer {
        member_id: String::new(),
        group_instance_id: None,
        generation_or_member_epoch: -1,
    }
}

#[test]
fn a_stable_group_and_its_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let join = {
        let (broker, coordinator) = open(dir.path(), NOW);
        topic(&broker, "t", 2);
        let join = stable_single_member(&coordinator, b"mine");
        let member = Committer {
            member_id: join.member_id.clone(),
            group_instance_id: None,
            generation_or_member_epoch: join.generation_id,
        };
        assert_eq!(commit(&coordinator, "g", &member, 42), vec![Ok(())]);
        join
    };
    // A crash, not a clean close: what was written is all there is.
    let (_broker, coordinator) = open(dir.path(), NOW + 1_000);
    let offsets = coordinator
        .fetch_offsets("g", Some(vec![("t".to_string(), vec![0, 1])]))
        .expect("fetch");
    assert_eq!(
        offsets[0]
            .2
            .as_ref()
            .map(|v| (v.offset, v.metadata.as_str())),
        Some((42, "meta"))
    );
    assert_eq!(offsets[1].2, None, "partition 1 had no commit");
    // The member carries on with its generation: no rebalance.
    coordinator
        .heartbeat("g", &join.member_id, None, join.generation_id, NOW + 2_000)
        .expect("heartbeat after restart");
    let described = coordinator.describe(&["g".to_string()]);
    let group = described[0].1.as_ref().expect("described");
    assert_eq!(group.state, ClassicState::Stable);
    assert_eq!(group.members[0].assignment, Bytes::from_static(b"mine"));
}

#[test]
fn members_commit_under_their_generation_and_strangers_only_to_groups_without_members() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, coordinator) = open(dir.path(), NOW);
    topic(&broker, "t", 1);
    assert_eq!(commit(&coordinator, "solo", &standalone(), 5), vec![Ok(())]);
    let nobody = Committer {
        member_id: "ghost".to_string(),
        group_instance_id: None,
        generation_or_member_epoch: 3,
    };
    assert_eq!(
        commit(&coordinator, "missing", &nobody, 5),
        vec![Err(GroupError::GroupIdNotFound)]
    );
    let join = stable_single_member(&coordinator, b"a");
    let stale = Committer {
        member_id: join.member_id.clone(),
        group_instance_id: None,
        generation_or_member_epoch: join.generation_id - 1,
    };
    assert_eq!(
        commit(&coordinator, "g", &stale, 1),
        vec![Err(GroupError::IllegalGeneration)]
    );
    assert_eq!(
        commit(&coordinator, "g", &standalone(), 1),
        vec![Err(GroupError::UnknownMemberId)],
        "a group with members refuses commits from outside"
    );
    let unknown_topic = coordinator.commit(
        "solo",
        &standalone(),
        vec![CommitEntry {
            topic: "nope".to_string(),
            partition: 0,
            offset: 1,
            leader_epoch: -1,
            metadata: None,
        }],
        NOW,
    );
    let results = unknown_topic.value.expect("group-level ok");
    assert_eq!(results[0].1, Err(GroupError::UnknownTopicOrPartition));
    let listed: Vec<String> = coordinator.list().into_iter().map(|g| g.group_id).collect();
    assert_eq!(listed, vec!["g".to_string(), "solo".to_string()]);
}

#[test]
fn deleting_groups_removes_them_and_their_offsets_for_good() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (broker, coordinator) = open(dir.path(), NOW);
        topic(&broker, "t", 1);
        assert_eq!(commit(&coordinator, "solo", &standalone(), 5), vec![Ok(())]);
        stable_single_member(&coordinator, b"a");
        let done = coordinator.delete_groups(
            &["g".to_string(), "solo".to_string(), "none".to_string()],
            NOW,
        );
        assert_eq!(
            done.value,
            vec![
                ("g".to_string(), Err(GroupError::NonEmptyGroup)),
                ("solo".to_string(), Ok(())),
                ("none".to_string(), Err(GroupError::GroupIdNotFound)),
            ]
        );
    }
    let (_broker, coordinator) = open(dir.path(), NOW);
    let listed: Vec<String> = coordinator.list().into_iter().map(|g| g.group_id).collect();
    assert_eq!(
        listed,
        vec!["g".to_string()],
        "the tombstones were replayed"
    );
    assert_eq!(
        coordinator.fetch_offsets("solo", None).expect("fetch"),
        Vec::new()
    );
}

#[test]
fn offsets_of_a_group_without_members_expire_after_the_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, coordinator) = open(dir.path(), NOW);
    topic(&broker, "t", 1);
    assert_eq!(commit(&coordinator, "solo", &standalone(), 5), vec![Ok(())]);
    let retention = coordinator.config().offsets_retention_ms;
    let due = coordinator
        .next_deadline()
        .expect("an expiry check is scheduled");
    assert!(due <= NOW + OFFSETS_RETENTION_CHECK_INTERVAL_MS);
    let early = coordinator.tick(NOW + OFFSETS_RETENTION_CHECK_INTERVAL_MS);
    assert!(early.durable.is_none(), "nothing expired yet");
    assert_eq!(
        coordinator
            .fetch_offsets("solo", None)
            .expect("fetch")
            .len(),
        1
    );
    // The next check after the retention has passed drops it.
    let late = coordinator.tick(NOW + retention + 2 * OFFSETS_RETENTION_CHECK_INTERVAL_MS);
    assert!(late.durable.is_some(), "a tombstone was written");
    assert!(
        coordinator
            .fetch_offsets("solo", None)
            .expect("fetch")
            .is_empty()
    );
    assert!(
        coordinator.list().is_empty(),
        "the group went with its last offset"
    );
}

#[test]
fn a_kip848_group_keeps_its_members_across_a_restart_and_refuses_classic_joins() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (member_id, epoch) = {
        let (broker, coordinator) = open(dir.path(), NOW);
        topic(&broker, "t", 4);
        let request = HeartbeatRequest {
            member_id: "m-1".to_string(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["t".to_string()]),
            owned: Some(Vec::new()),
            ..HeartbeatRequest::default()
        };
        let done = coordinator.consumer_heartbeat("k", request, NOW);
        assert!(done.durable.is_some());
        let answer = done.value.expect("joined");
        let assigned: usize = answer
            .assignment
            .as_ref()
            .map(|a| a.iter().map(|(_, p)| p.len()).sum())
            .unwrap_or(0);
        assert_eq!(assigned, 4, "a lone member gets every partition");
        // A classic member cannot join a group of the other protocol while it has members.
        let refused = coordinator.join("k", join_request(""), 9, NOW);
        assert!(matches!(
            refused.replies.as_slice(),
            [Reply::Join(
                9,
                Err(JoinError {
                    error: GroupError::InconsistentGroupProtocol,
                    ..
                })
            )]
        ));
        (answer.member_id, answer.member_epoch)
    };
    let (_broker, coordinator) = open(dir.path(), NOW + 1_000);
    let request = HeartbeatRequest {
        member_id: member_id.clone(),
        member_epoch: epoch,
        ..HeartbeatRequest::default()
    };
    let answer = coordinator
        .consumer_heartbeat("k", request, NOW + 2_000)
        .value
        .expect("the member is still known after the restart");
    assert_eq!(answer.member_epoch, epoch);
    let described = coordinator.consumer_describe(&["k".to_string(), "g".to_string()]);
    assert_eq!(described[0].1.as_ref().map(|d| d.members.len()), Ok(1));
    assert_eq!(
        described[1].1.as_ref().err(),
        Some(&GroupError::GroupIdNotFound)
    );
}

#[test]
fn a_deleted_topic_takes_its_committed_offsets_along() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker, coordinator) = open(dir.path(), NOW);
    topic(&broker, "t", 1);
    assert_eq!(commit(&coordinator, "solo", &standalone(), 5), vec![Ok(())]);
    broker.delete_topic("t").expect("delete topic");
    let done = coordinator.topic_deleted("t", NOW);
    assert!(done.durable.is_some());
    assert!(
        coordinator
            .fetch_offsets("solo", None)
            .expect("fetch")
            .is_empty()
    );
}

#[test]
fn transactional_offsets_are_pending_until_the_marker_and_commit_or_vanish() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (broker, coordinator) = open(dir.path(), NOW);
        topic(&broker, "orders", 2);
        let entry = |partition: i32, offset: i64| CommitEntry {
            topic: "orders".to_string(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        };
        let done =
            coordinator.txn_commit("g", 7, &standalone(), vec![entry(0, 10), entry(5, 1)], NOW);
        assert!(done.durable.is_some(), "the pending offset is a record");
        let results = done.value.expect("accepted");
        let codes: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
        assert_eq!(
            codes,
            vec![Ok(()), Err(GroupError::UnknownTopicOrPartition)]
        );
        coordinator
            .txn_commit("g", 8, &standalone(), vec![entry(1, 20)], NOW)
            .value
            .expect("accepted");
        coordinator
            .txn_commit("g", 9, &standalone(), vec![entry(1, 30)], NOW)
            .value
            .expect("accepted");
        assert!(coordinator.has_pending_txn_offset("g", "orders", 0));
        assert!(!coordinator.has_pending_txn_offset("g", "orders", 5));
        let fetched = coordinator.fetch_offsets("g", None).expect("fetch");
        assert!(fetched.is_empty(), "nothing is committed before the marker");

        let done = coordinator.complete_txn(7, true, NOW + 1);
        assert!(!done.write_failed);
        assert!(done.durable.is_some(), "the commit wrote an offset record");
        let done = coordinator.complete_txn(8, false, NOW + 1);
        assert!(!done.write_failed);
        assert!(!coordinator.has_pending_txn_offset("g", "orders", 0));
        assert!(
            coordinator.has_pending_txn_offset("g", "orders", 1),
            "producer 9's"
        );
        drop(coordinator);
        drop(broker);
    }
    // Producer 9's offset is still pending after a restart; its commit materializes it.
    let (broker, coordinator) = open(dir.path(), NOW + 3);
    assert!(!coordinator.has_pending_txn_offset("g", "orders", 0));
    assert!(coordinator.has_pending_txn_offset("g", "orders", 1));
    let fetched = coordinator.fetch_offsets("g", None).expect("fetch");
    assert_eq!(
        fetched.len(),
        1,
        "only the committed transaction's offset: {fetched:?}"
    );
    assert!(!coordinator.complete_txn(9, true, NOW + 4).write_failed);
    assert!(!coordinator.has_pending_txn_offset("g", "orders", 1));
    drop(coordinator);
    drop(broker);
    let (_broker, coordinator) = open(dir.path(), NOW + 5);
    assert!(
        !coordinator.has_pending_txn_offset("g", "orders", 1),
        "tombstoned"
    );
    let fetched = coordinator
        .fetch_offsets("g", Some(vec![("orders".to_string(), vec![1])]))
        .expect("fetch");
    assert_eq!(fetched[0].2.as_ref().map(|v| v.offset), Some(30));
    let fetched = coordinator.fetch_offsets("g", None).expect("fetch");
    let offsets: Vec<_> = fetched
        .iter()
        .map(|(t, p, v)| (t.as_str(), *p, v.as_ref().map(|v| v.offset)))
        .collect();
    assert_eq!(
        offsets,
        vec![("orders", 0, Some(10)), ("orders", 1, Some(30))]
    );
}
