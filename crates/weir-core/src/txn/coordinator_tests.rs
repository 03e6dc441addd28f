//! Unit tests of the transaction coordinator: each transition and error with explicit
//! times, restarts from records, and a proptest over random call sequences.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::super::records::{decode, encode};
use super::*;

const TIMEOUT_MS: i32 = 10_000;
const EXPIRY_MS: i64 = 100_000;

fn config() -> TxnConfig {
    TxnConfig {
        max_timeout_ms: 60_000,
        id_expiration_ms: EXPIRY_MS,
    }
}

/// A producer id allocator: 1000, 1001, …
struct Ids(i64);

impl Ids {
    fn new() -> Self {
        Self(1000)
    }
    fn alloc(&mut self) -> impl FnMut() -> Option<i64> + '_ {
        || {
            self.0 += 1;
            Some(self.0 - 1)
        }
    }
}

fn init_req(id: &str) -> InitProducerId {
    InitProducerId {
        transactional_id: id.into(),
        timeout_ms: TIMEOUT_MS,
        current: None,
        producer_fenced_supported: true,
    }
}

fn producer(producer_id: i64, epoch: i16) -> Producer {
    Producer {
        producer_id,
        epoch,
        producer_fenced_supported: true,
    }
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn only_reply(fx: &Effects, ticket: Ticket) -> Result<Answer, TxnError> {
    assert_eq!(fx.replies.len(), 1, "{fx:?}");
    assert_eq!(fx.replies[0].ticket, ticket);
    fx.replies[0].result.clone()
}

fn pid_of(fx: &Effects, ticket: Ticket) -> (i64, i16) {
    match only_reply(fx, ticket) {
        Ok(Answer::ProducerId { producer_id, epoch }) => (producer_id, epoch),
        other => panic!("not a producer id: {other:?}"),
    }
}

fn offsets_partition(group: &str) -> i32 {
    i32::try_from(group.len() % 50).expect("small")
}

/// An id with an open transaction on `a-0` and `a-1`: (coordinator, ids, producer id, epoch).
fn ongoing() -> (TxnCoordinator, Ids, i64, i16) {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    let fx = c.init_producer_id(&init_req("t"), 1, &mut ids.alloc(), 0);
    let (pid, epoch) = pid_of(&fx, 1);
    let fx = c.add_partitions("t", producer(pid, epoch), &[tp("a", 0), tp("a", 1)], 2, 100);
    assert_eq!(only_reply(&fx, 2), Ok(Answer::Done));
    (c, ids, pid, epoch)
}

#[test]
fn new_id_gets_fresh_producer_id_at_epoch_zero() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    let fx = c.init_producer_id(&init_req("t"), 7, &mut ids.alloc(), 5);
    assert_eq!(pid_of(&fx, 7), (1000, 0));
    assert_eq!(fx.records.len(), 1);
    let value = fx.records[0].value.as_ref().expect("value");
    assert_eq!(value.state, TxnState::Empty);
    assert_eq!((value.producer_id, value.producer_epoch), (1000, 0));
    assert_eq!(value.timeout_ms, TIMEOUT_MS);
    assert_eq!((value.last_update_ms, value.start_ms), (5, -1));
    assert!(fx.markers.is_empty());
}

#[test]
fn existing_id_bumps_epoch() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    c.init_producer_id(&init_req("t"), 1, &mut ids.alloc(), 0);
    let fx = c.init_producer_id(&init_req("t"), 2, &mut ids.alloc(), 10);
    assert_eq!(pid_of(&fx, 2), (1000, 1));
    assert_eq!(fx.records.len(), 1);
}

#[test]
fn init_refuses_bad_timeouts_and_ids() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    for timeout_ms in [0, -1, 60_001] {
        let req = InitProducerId {
            timeout_ms,
            ..init_req("t")
        };
        let fx = c.init_producer_id(&req, 1, &mut ids.alloc(), 0);
        assert_eq!(
            only_reply(&fx, 1),
            Err(TxnError::InvalidTransactionTimeout {
                timeout_ms,
                max_ms: 60_000
            })
        );
        assert!(fx.records.is_empty());
    }
    let fx = c.init_producer_id(&init_req(""), 2, &mut ids.alloc(), 0);
    assert!(matches!(
        only_reply(&fx, 2),
        Err(TxnError::InvalidRequest(_))
    ));
    let long = "x".repeat(TRANSACTIONAL_ID_MAX_BYTES + 1);
    let fx = c.init_producer_id(&init_req(&long), 3, &mut ids.alloc(), 0);
    assert!(matches!(
        only_reply(&fx, 3),
        Err(TxnError::InvalidRequest(_))
    ));
    let fx = c.init_producer_id(&init_req("t"), 4, &mut || None, 0);
    assert_eq!(only_reply(&fx, 4), Err(TxnError::ProducerIdsUnavailable));
    assert!(c.get("t").is_none());
}

#[test]
fn init_with_open_transaction_aborts_then_answers() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    let fx = c.init_producer_id(&init_req("t"), 9, &mut ids.alloc(), 200);
    assert!(fx.replies.is_empty(), "parked until the abort is done");
    assert_eq!(fx.markers.len(), 1);
    let m = &fx.markers[0];
    assert_eq!(m.result, TxnResult::Abort);
    assert_eq!(
        (m.producer_id, m.producer_epoch),
        (pid, epoch + 1),
        "fenced epoch"
    );
    assert_eq!(m.partitions, vec![tp("a", 0), tp("a", 1)]);
    assert_eq!(fx.records.len(), 1);
    assert_eq!(
        fx.records[0].value.as_ref().map(|v| v.state),
        Some(TxnState::PrepareAbort)
    );
    // Meanwhile: the old producer is fenced, another InitProducerId must wait.
    let fx = c.end_txn("t", producer(pid, epoch), TxnResult::Commit, 10, 210);
    assert_eq!(only_reply(&fx, 10), Err(TxnError::ProducerFenced));
    let fx = c.init_producer_id(&init_req("t"), 11, &mut ids.alloc(), 210);
    assert_eq!(only_reply(&fx, 11), Err(TxnError::ConcurrentTransactions));
    let fx = c.add_partitions("t", producer(pid, epoch + 1), &[tp("b", 0)], 12, 210);
    assert_eq!(only_reply(&fx, 12), Err(TxnError::ConcurrentTransactions));
    // Markers written: CompleteAbort, then the parked request's bump.
    let fx = c.markers_written("t", pid, epoch + 1, &mut ids.alloc(), 300);
    assert_eq!(pid_of(&fx, 9), (pid, epoch + 2));
    let states: Vec<_> = fx
        .records
        .iter()
        .map(|r| r.value.as_ref().map(|v| v.state))
        .collect();
    assert_eq!(
        states,
        vec![Some(TxnState::CompleteAbort), Some(TxnState::Empty)]
    );
    // A duplicate acknowledgement does nothing.
    let fx = c.markers_written("t", pid, epoch + 1, &mut ids.alloc(), 301);
    assert_eq!(fx, Effects::default());
}

#[test]
fn init_while_completing_is_concurrent() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    c.end_txn("t", producer(pid, epoch), TxnResult::Commit, 3, 150);
    let fx = c.init_producer_id(&init_req("t"), 4, &mut ids.alloc(), 160);
    assert_eq!(only_reply(&fx, 4), Err(TxnError::ConcurrentTransactions));
    assert!(fx.records.is_empty() && fx.markers.is_empty());
}

#[test]
fn epoch_exhaustion_rotates_producer_id() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    c.apply(&TxnRecord {
        transactional_id: "t".into(),
        value: Some(TxnLogValue {
            producer_id: 5,
            previous_producer_id: -1,
            producer_epoch: i16::MAX - 1,
            timeout_ms: TIMEOUT_MS,
            state: TxnState::CompleteCommit,
            partitions: Default::default(),
            last_update_ms: 0,
            start_ms: 0,
        }),
    });
    let req = InitProducerId {
        current: Some((5, i16::MAX - 1)),
        ..init_req("t")
    };
    let fx = c.init_producer_id(&req, 1, &mut ids.alloc(), 10);
    assert_eq!(pid_of(&fx, 1), (1000, 0));
    let meta = c.get("t").expect("kept");
    assert_eq!(meta.previous_producer_id, 5);
    assert_eq!(meta.last_producer_epoch, i16::MAX - 1);
    // KIP-360 retry with the old id and its exhausted epoch: the same answer again.
    let fx = c.init_producer_id(&req, 2, &mut ids.alloc(), 20);
    assert_eq!(pid_of(&fx, 2), (1000, 0));
}

#[test]
fn kip360_bump_retry_and_fencing() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    let (pid, _) = pid_of(
        &c.init_producer_id(&init_req("t"), 1, &mut ids.alloc(), 0),
        1,
    );
    let bump = |epoch, fenced_supported| InitProducerId {
        current: Some((pid, epoch)),
        producer_fenced_supported: fenced_supported,
        ..init_req("t")
    };
    // 0 → 1 keeping the id.
    let fx = c.init_producer_id(&bump(0, true), 2, &mut ids.alloc(), 10);
    assert_eq!(pid_of(&fx, 2), (pid, 1));
    // Retry of that bump (answer lost): the same epoch.
    let fx = c.init_producer_id(&bump(0, true), 3, &mut ids.alloc(), 11);
    assert_eq!(pid_of(&fx, 3), (pid, 1));
    // A stale epoch that is neither current nor last: fenced, by version.
    c.init_producer_id(&bump(1, true), 4, &mut ids.alloc(), 12);
    let fx = c.init_producer_id(&bump(0, true), 5, &mut ids.alloc(), 13);
    assert_eq!(only_reply(&fx, 5), Err(TxnError::ProducerFenced));
    let fx = c.init_producer_id(&bump(0, false), 6, &mut ids.alloc(), 13);
    assert_eq!(only_reply(&fx, 6), Err(TxnError::InvalidProducerEpoch));
    // Another producer id entirely: fenced.
    let req = InitProducerId {
        current: Some((pid + 77, 2)),
        ..init_req("t")
    };
    let fx = c.init_producer_id(&req, 7, &mut ids.alloc(), 14);
    assert_eq!(only_reply(&fx, 7), Err(TxnError::ProducerFenced));
    assert_eq!(c.get("t").map(|m| m.producer_epoch), Some(2));
}

#[test]
fn add_partitions_transitions_and_errors() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    let (pid, epoch) = pid_of(
        &c.init_producer_id(&init_req("t"), 1, &mut ids.alloc(), 0),
        1,
    );
    // Unknown id, wrong producer id, wrong epoch (both flags), bad partitions.
    let fx = c.add_partitions("nope", producer(pid, epoch), &[tp("a", 0)], 2, 1);
    assert_eq!(only_reply(&fx, 2), Err(TxnError::InvalidProducerIdMapping));
    let fx = c.add_partitions("t", producer(pid + 1, epoch), &[tp("a", 0)], 3, 1);
    assert_eq!(only_reply(&fx, 3), Err(TxnError::InvalidProducerIdMapping));
    let fx = c.add_partitions("t", producer(pid, epoch + 1), &[tp("a", 0)], 4, 1);
    assert_eq!(only_reply(&fx, 4), Err(TxnError::ProducerFenced));
    let old = Producer {
        producer_fenced_supported: false,
        ..producer(pid, epoch + 1)
    };
    let fx = c.add_partitions("t", old, &[tp("a", 0)], 5, 1);
    assert_eq!(only_reply(&fx, 5), Err(TxnError::InvalidProducerEpoch));
    for bad in [
        tp("", 0),
        tp("a", -1),
        tp(&"x".repeat(TOPIC_MAX_BYTES + 1), 0),
    ] {
        let fx = c.add_partitions("t", producer(pid, epoch), &[bad], 6, 1);
        assert!(matches!(
            only_reply(&fx, 6),
            Err(TxnError::InvalidRequest(_))
        ));
    }
    assert!(c.get("t").is_some_and(|m| m.state == TxnState::Empty));
    // Empty → Ongoing, start time set.
    let fx = c.add_partitions("t", producer(pid, epoch), &[tp("a", 0)], 7, 50);
    assert_eq!(only_reply(&fx, 7), Ok(Answer::Done));
    assert_eq!(fx.records.len(), 1);
    let meta = c.get("t").expect("kept");
    assert_eq!((meta.state, meta.start_ms), (TxnState::Ongoing, 50));
    // Known partitions again: answered, nothing written.
    let fx = c.add_partitions("t", producer(pid, epoch), &[tp("a", 0)], 8, 60);
    assert_eq!(only_reply(&fx, 8), Ok(Answer::Done));
    assert!(fx.records.is_empty());
    // A new one: written, start time kept.
    let fx = c.add_partitions("t", producer(pid, epoch), &[tp("b", 3)], 9, 70);
    assert_eq!(fx.records.len(), 1);
    let meta = c.get("t").expect("kept");
    assert_eq!(meta.start_ms, 50);
    assert_eq!(meta.partitions.len(), 2);
    // While completing: concurrent.
    c.end_txn("t", producer(pid, epoch), TxnResult::Abort, 10, 80);
    let fx = c.add_partitions("t", producer(pid, epoch), &[tp("c", 0)], 11, 90);
    assert_eq!(only_reply(&fx, 11), Err(TxnError::ConcurrentTransactions));
    // After completion: a new transaction starts with only the new partitions.
    c.markers_written("t", pid, epoch, &mut ids.alloc(), 95);
    let fx = c.add_partitions("t", producer(pid, epoch), &[tp("c", 0)], 12, 100);
    assert_eq!(only_reply(&fx, 12), Ok(Answer::Done));
    let meta = c.get("t").expect("kept");
    assert_eq!(
        meta.partitions.iter().cloned().collect::<Vec<_>>(),
        vec![tp("c", 0)]
    );
    assert_eq!(meta.start_ms, 100);
}

#[test]
fn verify_partitions_reports_membership() {
    let (mut c, _ids, pid, epoch) = ongoing();
    let fx = c.verify_partitions("t", producer(pid, epoch), &[tp("a", 0), tp("z", 0)], 5);
    assert_eq!(
        only_reply(&fx, 5),
        Ok(Answer::Verified(vec![
            (tp("a", 0), None),
            (tp("z", 0), Some(TxnError::TransactionAbortable)),
        ]))
    );
    assert!(fx.records.is_empty());
    let fx = c.verify_partitions("t", producer(pid, epoch + 3), &[tp("a", 0)], 6);
    assert_eq!(only_reply(&fx, 6), Err(TxnError::ProducerFenced));
}

#[test]
fn offsets_join_the_transaction_and_resolve_with_markers() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    let fx = c.add_offsets("t", producer(pid, epoch), "grp", &offsets_partition, 3, 110);
    assert_eq!(only_reply(&fx, 3), Ok(Answer::Done));
    let offsets_tp = tp(CONSUMER_OFFSETS_TOPIC, offsets_partition("grp"));
    assert!(
        c.get("t")
            .is_some_and(|m| m.partitions.contains(&offsets_tp))
    );
    assert_eq!(
        c.txn_offset_commit("t", producer(pid, epoch), "grp"),
        Ok(())
    );
    assert_eq!(
        c.txn_offset_commit("t", producer(pid, epoch), "other"),
        Err(TxnError::InvalidTxnState {
            state: TxnState::Ongoing
        })
    );
    assert_eq!(
        c.txn_offset_commit("t", producer(pid, epoch + 1), "grp"),
        Err(TxnError::ProducerFenced)
    );
    let fx = c.add_offsets("t", producer(pid, epoch), "", &offsets_partition, 4, 110);
    assert!(matches!(
        only_reply(&fx, 4),
        Err(TxnError::InvalidRequest(_))
    ));
    let fx = c.end_txn("t", producer(pid, epoch), TxnResult::Commit, 5, 120);
    assert_eq!(only_reply(&fx, 5), Ok(Answer::Done));
    let m = &fx.markers[0];
    assert_eq!(m.result, TxnResult::Commit);
    assert_eq!(m.groups, vec!["grp".to_string()]);
    assert!(m.partitions.contains(&offsets_tp));
    c.markers_written("t", pid, epoch, &mut ids.alloc(), 130);
    assert!(c.get("t").is_some_and(|m| m.groups.is_empty()));
}

#[test]
fn end_txn_states_and_errors() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    let p = producer(pid, epoch);
    let fx = c.end_txn("nope", p, TxnResult::Commit, 1, 120);
    assert_eq!(only_reply(&fx, 1), Err(TxnError::InvalidProducerIdMapping));
    let fx = c.end_txn("t", producer(pid + 1, epoch), TxnResult::Commit, 2, 120);
    assert_eq!(only_reply(&fx, 2), Err(TxnError::InvalidProducerIdMapping));
    let fx = c.end_txn("t", producer(pid, epoch + 1), TxnResult::Commit, 3, 120);
    assert_eq!(only_reply(&fx, 3), Err(TxnError::ProducerFenced));
    // Ongoing → PrepareCommit, with markers for every partition.
    let fx = c.end_txn("t", p, TxnResult::Commit, 4, 130);
    assert_eq!(only_reply(&fx, 4), Ok(Answer::Done));
    assert_eq!(fx.markers.len(), 1);
    assert_eq!(fx.markers[0].partitions, vec![tp("a", 0), tp("a", 1)]);
    assert_eq!(
        (fx.markers[0].producer_id, fx.markers[0].producer_epoch),
        (pid, epoch)
    );
    // Retries while the markers are written, and the opposite result.
    let fx = c.end_txn("t", p, TxnResult::Commit, 5, 140);
    assert_eq!(only_reply(&fx, 5), Err(TxnError::ConcurrentTransactions));
    assert!(fx.markers.is_empty(), "no second marker write");
    let fx = c.end_txn("t", p, TxnResult::Abort, 6, 140);
    assert_eq!(
        only_reply(&fx, 6),
        Err(TxnError::InvalidTxnState {
            state: TxnState::PrepareCommit
        })
    );
    // Markers with the wrong epoch are ignored; the right ones complete.
    assert_eq!(
        c.markers_written("t", pid, epoch + 1, &mut ids.alloc(), 150),
        Effects::default()
    );
    let fx = c.markers_written("t", pid, epoch, &mut ids.alloc(), 150);
    assert_eq!(
        fx.records[0]
            .value
            .as_ref()
            .map(|v| (v.state, v.partitions.len())),
        Some((TxnState::CompleteCommit, 0))
    );
    let fx = c.end_txn("t", p, TxnResult::Commit, 7, 160);
    assert_eq!(
        only_reply(&fx, 7),
        Ok(Answer::Done),
        "retry after completion"
    );
    assert!(fx.records.is_empty() && fx.markers.is_empty());
    let fx = c.end_txn("t", p, TxnResult::Abort, 8, 160);
    assert_eq!(
        only_reply(&fx, 8),
        Err(TxnError::InvalidTxnState {
            state: TxnState::CompleteCommit
        })
    );
    // Empty (after a new InitProducerId): nothing to end.
    let (pid2, epoch2) = pid_of(
        &c.init_producer_id(&init_req("t"), 9, &mut ids.alloc(), 170),
        9,
    );
    let fx = c.end_txn("t", producer(pid2, epoch2), TxnResult::Abort, 10, 180);
    assert_eq!(
        only_reply(&fx, 10),
        Err(TxnError::InvalidTxnState {
            state: TxnState::Empty
        })
    );
}

#[test]
fn end_txn_abort_then_complete_abort() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    let fx = c.end_txn("t", producer(pid, epoch), TxnResult::Abort, 1, 130);
    assert_eq!(fx.markers[0].result, TxnResult::Abort);
    let fx = c.end_txn("t", producer(pid, epoch), TxnResult::Abort, 2, 131);
    assert_eq!(only_reply(&fx, 2), Err(TxnError::ConcurrentTransactions));
    c.markers_written("t", pid, epoch, &mut ids.alloc(), 140);
    assert_eq!(c.get("t").map(|m| m.state), Some(TxnState::CompleteAbort));
    let fx = c.end_txn("t", producer(pid, epoch), TxnResult::Abort, 3, 141);
    assert_eq!(only_reply(&fx, 3), Ok(Answer::Done));
}

#[test]
fn timed_out_transaction_is_aborted_with_epoch_bump() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    // Started at 100 with a 10 s timeout.
    // Kafka aborts once start + timeout < now.
    assert_eq!(c.next_deadline(), Some(100 + i64::from(TIMEOUT_MS) + 1));
    let fx = c.tick(10_100);
    assert_eq!(fx, Effects::default());
    let fx = c.tick(10_101);
    assert_eq!(fx.markers.len(), 1);
    assert_eq!(fx.markers[0].result, TxnResult::Abort);
    assert_eq!(fx.markers[0].producer_epoch, epoch + 1);
    assert_eq!(c.next_deadline(), None, "completing: nothing to time out");
    // A second tick does not ask for the markers again.
    assert_eq!(c.tick(20_000), Effects::default());
    // The old producer is fenced.
    let fx = c.end_txn("t", producer(pid, epoch), TxnResult::Commit, 5, 10_200);
    assert_eq!(only_reply(&fx, 5), Err(TxnError::ProducerFenced));
    c.markers_written("t", pid, epoch + 1, &mut ids.alloc(), 10_300);
    assert_eq!(c.get("t").map(|m| m.state), Some(TxnState::CompleteAbort));
    assert_eq!(c.next_deadline(), Some(10_300 + EXPIRY_MS));
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    c.init_producer_id(&init_req("t"), 1, &mut ids.alloc(), 1_000);
    assert_eq!(c.next_deadline(), Some(1_000 + EXPIRY_MS));
    assert_eq!(c.tick(1_000 + EXPIRY_MS - 1), Effects::default());
    let fx = c.tick(1_000 + EXPIRY_MS);
    assert_eq!(
        fx.records,
        vec![TxnRecord {
            transactional_id: "t".into(),
            value: None
        }]
    );
    assert!(c.get("t").is_none());
    assert_eq!(c.describe("t"), Err(TxnError::TransactionalIdNotFound));
    assert_eq!(c.next_deadline(), None);
    // The id starts over with a new producer id.
    let fx = c.init_producer_id(&init_req("t"), 2, &mut ids.alloc(), 200_000);
    assert_eq!(pid_of(&fx, 2), (1001, 0));
}

#[test]
fn ongoing_ids_do_not_expire() {
    let (mut c, _ids, _pid, _epoch) = ongoing();
    let fx = c.tick(EXPIRY_MS * 3);
    // The timeout aborts it; it does not vanish.
    assert_eq!(fx.markers.len(), 1);
    assert!(fx.records.iter().all(|r| r.value.is_some()));
    assert!(c.get("t").is_some());
}

/// Rebuilds a coordinator from records passed through their byte encoding.
fn replay(records: &[TxnRecord]) -> TxnCoordinator {
    let mut c = TxnCoordinator::new(config());
    for record in records {
        let (key, value) = encode(record);
        c.apply(&decode(&key, value.as_deref()).expect("own records decode"));
    }
    c
}

#[test]
fn restart_mid_commit_rewrites_markers() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    let mut log = c.snapshot();
    let fx = c.end_txn("t", producer(pid, epoch), TxnResult::Commit, 3, 130);
    log.extend(fx.records.clone());
    let mut restored = replay(&log);
    assert_eq!(restored.snapshot(), c.snapshot());
    let fx = restored.restored();
    assert_eq!(fx.markers.len(), 1);
    assert_eq!(fx.markers[0].result, TxnResult::Commit);
    assert_eq!(fx.markers[0].partitions, vec![tp("a", 0), tp("a", 1)]);
    assert_eq!(
        (fx.markers[0].producer_id, fx.markers[0].producer_epoch),
        (pid, epoch)
    );
    let fx = restored.markers_written("t", pid, epoch, &mut ids.alloc(), 200);
    assert_eq!(
        fx.records[0].value.as_ref().map(|v| v.state),
        Some(TxnState::CompleteCommit)
    );
}

#[test]
fn restart_mid_transaction_keeps_it_open_and_timed() {
    let (c, _ids, pid, epoch) = ongoing();
    let mut restored = replay(&c.snapshot());
    assert_eq!(restored.restored(), Effects::default());
    let meta = restored.get("t").expect("kept");
    assert_eq!(
        (meta.state, meta.producer_id, meta.producer_epoch),
        (TxnState::Ongoing, pid, epoch)
    );
    assert_eq!(restored.next_deadline(), c.next_deadline());
    let fx = restored.tick(100 + i64::from(TIMEOUT_MS) + 1);
    assert_eq!(fx.markers.len(), 1);
    assert_eq!(fx.markers[0].producer_epoch, epoch + 1);
}

#[test]
fn replay_of_tombstone_and_dead_removes() {
    let (c, _ids, _pid, _epoch) = ongoing();
    let mut log = c.snapshot();
    log.push(TxnRecord {
        transactional_id: "t".into(),
        value: None,
    });
    assert!(replay(&log).get("t").is_none());
    let mut dead = c.snapshot();
    if let Some(v) = dead[0].value.as_mut() {
        v.state = TxnState::Dead;
    }
    assert!(replay(&dead).get("t").is_none());
}

#[test]
fn shutdown_answers_parked_requests() {
    let (mut c, mut ids, _pid, _epoch) = ongoing();
    let fx = c.init_producer_id(&init_req("t"), 42, &mut ids.alloc(), 200);
    assert!(fx.replies.is_empty());
    let fx = c.shutdown();
    assert_eq!(only_reply(&fx, 42), Err(TxnError::NotCoordinator));
    assert_eq!(c.shutdown(), Effects::default());
}

// ---- proptest over random call sequences ----

#[derive(Debug, Clone)]
enum Op {
    Init {
        id: usize,
        keep: bool,
    },
    Add {
        id: usize,
        topic: usize,
        stale: bool,
    },
    AddOffsets {
        id: usize,
        group: usize,
    },
    OffsetCommit {
        id: usize,
        group: usize,
    },
    End {
        id: usize,
        commit: bool,
        stale: bool,
    },
    Markers {
        pick: usize,
    },
    Tick,
    /// Shut down and rebuild from the log written so far.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, any::<bool>()).prop_map(|(id, keep)| Op::Init { id, keep }),
        (0..3usize, 0..4usize, any::<bool>()).prop_map(|(id, topic, stale)| Op::Add {
            id,
            topic,
            stale
        }),
        (0..3usize, 0..2usize).prop_map(|(id, group)| Op::AddOffsets { id, group }),
        (0..3usize, 0..2usize).prop_map(|(id, group)| Op::OffsetCommit { id, group }),
        (0..3usize, any::<bool>(), any::<bool>()).prop_map(|(id, commit, stale)| Op::End {
            id,
            commit,
            stale
        }),
        (0..8usize).prop_map(|pick| Op::Markers { pick }),
        Just(Op::Tick),
        Just(Op::Restart),
    ]
}

const IDS: [&str; 3] = ["t0", "t1", "t2"];
const GROUPS: [&str; 2] = ["g0", "g1"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_sequences_keep_invariants(
        ops in proptest::collection::vec((op(), 0i64..4_000), 1..80),
    ) {
        let mut c = TxnCoordinator::new(TxnConfig { max_timeout_ms: 60_000, id_expiration_ms: 30_000 });
        let mut ids = Ids::new();
        let mut now = 0i64;
        let mut ticket: Ticket = 0;
        let mut issued = HashSet::new();
        let mut answered = HashSet::new();
        let mut log: Vec<TxnRecord> = Vec::new();
        // Outstanding marker writes, keyed by (id, producer id, epoch).
        let mut outstanding: BTreeMap<(String, i64, i16), MarkerWrite> = BTreeMap::new();
        // What each id's producer last got, and an older one.
        let mut held: BTreeMap<usize, (i64, i16)> = BTreeMap::new();
        let mut last_seen: BTreeMap<String, (i64, i16)> = BTreeMap::new();
        // Which id each InitProducerId ticket was for, to hand its answer to that producer.
        let mut init_tickets: BTreeMap<Ticket, usize> = BTreeMap::new();
        let mut reached: HashSet<TxnState> = HashSet::new();

        for (op, dt) in ops {
            now += dt;
            let op_was_tick = matches!(op, Op::Tick);
            let next = |t: &mut Ticket, issued: &mut HashSet<Ticket>| { *t += 1; issued.insert(*t); *t };
            let held_or = |held: &BTreeMap<usize, (i64, i16)>, id: usize, stale: bool| {
                let (pid, epoch) = held.get(&id).copied().unwrap_or((0, 0));
                producer(pid, if stale { epoch.saturating_sub(1) } else { epoch })
            };
            let fx = match op {
                Op::Init { id, keep } => {
                    let t = next(&mut ticket, &mut issued);
                    init_tickets.insert(t, id);
                    let req = InitProducerId {
                        current: if keep { held.get(&id).copied() } else { None },
                        timeout_ms: 5_000,
                        ..init_req(IDS[id])
                    };
                    c.init_producer_id(&req, t, &mut ids.alloc(), now)
                }
                Op::Add { id, topic, stale } => {
                    let t = next(&mut ticket, &mut issued);
                    c.add_partitions(IDS[id], held_or(&held, id, stale), &[tp("x", i32::try_from(topic).expect("small"))], t, now)
                }
                Op::AddOffsets { id, group } => {
                    let t = next(&mut ticket, &mut issued);
                    c.add_offsets(IDS[id], held_or(&held, id, false), GROUPS[group], &offsets_partition, t, now)
                }
                Op::OffsetCommit { id, group } => {
                    let r = c.txn_offset_commit(IDS[id], held_or(&held, id, false), GROUPS[group]);
                    if r.is_ok() {
                        let meta = c.get(IDS[id]).expect("ok means known");
                        prop_assert_eq!(meta.state, TxnState::Ongoing);
                    }
                    Effects::default()
                }
                Op::End { id, commit, stale } => {
                    let t = next(&mut ticket, &mut issued);
                    let result = if commit { TxnResult::Commit } else { TxnResult::Abort };
                    c.end_txn(IDS[id], held_or(&held, id, stale), result, t, now)
                }
                Op::Markers { pick } => {
                    match outstanding.keys().nth(pick % outstanding.len().max(1)).cloned() {
                        Some(key) => {
                            outstanding.remove(&key);
                            c.markers_written(&key.0, key.1, key.2, &mut ids.alloc(), now)
                        }
                        None => Effects::default(),
                    }
                }
                Op::Tick => c.tick(now),
                Op::Restart => {
                    let parked = c.shutdown();
                    c = replay(&log);
                    let mut fx = c.restored();
                    // The completions left open are exactly the ones whose markers are
                    // asked for again.
                    let keys: Vec<_> = fx.markers.iter().map(|m| (m.transactional_id.clone(), m.producer_id, m.producer_epoch)).collect();
                    prop_assert_eq!(keys, outstanding.keys().cloned().collect::<Vec<_>>());
                    for m in &fx.markers {
                        prop_assert_eq!(&outstanding[&(m.transactional_id.clone(), m.producer_id, m.producer_epoch)].partitions, &m.partitions);
                    }
                    outstanding.clear();
                    fx.replies = parked.replies;
                    fx
                }
            };
            for reply in &fx.replies {
                prop_assert!(issued.contains(&reply.ticket), "unknown ticket {}", reply.ticket);
                prop_assert!(answered.insert(reply.ticket), "ticket {} answered twice", reply.ticket);
                if let Ok(Answer::ProducerId { producer_id, epoch }) = reply.result {
                    let id = init_tickets.get(&reply.ticket).copied();
                    prop_assert!(id.is_some(), "a producer id for a non-init ticket");
                    held.insert(id.unwrap_or_default(), (producer_id, epoch));
                }
            }
            for m in &fx.markers {
                let key = (m.transactional_id.clone(), m.producer_id, m.producer_epoch);
                prop_assert!(outstanding.insert(key, m.clone()).is_none(), "markers asked twice: {:?}", m);
            }
            log.extend(fx.records.iter().cloned());
            // Invariants after every call.
            for (name, meta) in c.iter() {
                if let Some(&(pid, epoch)) = last_seen.get(name)
                    && pid == meta.producer_id
                {
                    prop_assert!(meta.producer_epoch >= epoch, "epoch went down for {}", name);
                }
                last_seen.insert(name.to_string(), (meta.producer_id, meta.producer_epoch));
                let key = (name.to_string(), meta.producer_id, meta.producer_epoch);
                prop_assert_eq!(meta.state.is_completing(), outstanding.contains_key(&key), "{} {:?}", name, meta.state);
                if meta.state == TxnState::Ongoing {
                    prop_assert!(!meta.partitions.is_empty());
                    prop_assert!(meta.start_ms <= now);
                }
                prop_assert!(meta.partitions.len() <= PARTITIONS_PER_TXN_MAX);
            }
            for key in outstanding.keys() {
                prop_assert!(c.get(&key.0).is_some_and(|m| m.state.is_completing()));
            }
            if op_was_tick {
                prop_assert!(c.next_deadline().is_none_or(|d| d > now), "tick left due work");
            }
            for (_, meta) in c.iter() {
                reached.insert(meta.state);
            }
        }
        // Finish every completion, then shut down: every ticket answered exactly once.
        while let Some((key, _)) = outstanding.pop_first() {
            let fx = c.markers_written(&key.0, key.1, key.2, &mut ids.alloc(), now);
            prop_assert!(fx.markers.is_empty());
            for reply in fx.replies {
                prop_assert!(answered.insert(reply.ticket));
            }
            log.extend(fx.records);
        }
        for reply in c.shutdown().replies {
            prop_assert!(answered.insert(reply.ticket));
        }
        prop_assert_eq!(&issued, &answered);
        if std::env::var_os("TXN_PROPTEST_COVERAGE").is_some() {
            eprintln!("reached {reached:?}");
        }
        // The log rebuilds the same durable state.
        prop_assert_eq!(replay(&log).snapshot(), c.snapshot());
    }
}

#[test]
fn parked_init_keeps_kip360_retry_answer() {
    let (mut c, mut ids, pid, epoch) = ongoing();
    let req = InitProducerId {
        current: Some((pid, epoch)),
        ..init_req("t")
    };
    // A stale epoch cannot fence the open transaction.
    let stale = InitProducerId {
        current: Some((pid, epoch + 5)),
        ..init_req("t")
    };
    let fx = c.init_producer_id(&stale, 1, &mut ids.alloc(), 150);
    assert_eq!(only_reply(&fx, 1), Err(TxnError::ProducerFenced));
    assert!(fx.markers.is_empty());
    let fx = c.init_producer_id(&req, 2, &mut ids.alloc(), 200);
    assert!(fx.replies.is_empty());
    let fx = c.markers_written("t", pid, epoch + 1, &mut ids.alloc(), 300);
    assert_eq!(pid_of(&fx, 2), (pid, epoch + 2));
    // The producer never got that answer and retries with its old epoch: same answer.
    let fx = c.init_producer_id(&req, 3, &mut ids.alloc(), 310);
    assert_eq!(pid_of(&fx, 3), (pid, epoch + 2));
}

#[test]
fn timeout_at_last_epoch_fences_to_max_then_rotates() {
    let mut c = TxnCoordinator::new(config());
    let mut ids = Ids::new();
    c.apply(&TxnRecord {
        transactional_id: "t".into(),
        value: Some(TxnLogValue {
            producer_id: 5,
            previous_producer_id: -1,
            producer_epoch: i16::MAX - 1,
            timeout_ms: TIMEOUT_MS,
            state: TxnState::Ongoing,
            partitions: [tp("a", 0)].into_iter().collect(),
            last_update_ms: 0,
            start_ms: 0,
        }),
    });
    let fx = c.tick(i64::from(TIMEOUT_MS) + 1);
    assert_eq!(fx.markers[0].producer_epoch, i16::MAX);
    c.markers_written("t", 5, i16::MAX, &mut ids.alloc(), 20_000);
    let fx = c.init_producer_id(&init_req("t"), 1, &mut ids.alloc(), 20_001);
    assert_eq!(pid_of(&fx, 1), (1000, 0));
    assert_eq!(c.get("t").map(|m| m.previous_producer_id), Some(5));
}
