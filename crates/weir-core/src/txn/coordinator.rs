//! [`TxnCoordinator`]: every transactional id's state (Kafka's TransactionMetadata) and its
//! transitions, driven by requests, marker acknowledgements and the time passed in.
//!
//! States: Empty → Ongoing (first AddPartitionsToTxn/AddOffsetsToTxn) → PrepareCommit or
//! PrepareAbort (EndTxn, a timeout, or an InitProducerId fencing the open transaction) →
//! CompleteCommit or CompleteAbort (markers written) → Ongoing again or Empty (next
//! InitProducerId); an idle id expires (Dead: removed, tombstone written).
//!
//! # What it must never do
//! Panic on a request or a replayed record, read a clock, or do I/O. Every reply is given
//! exactly once (a parked InitProducerId by the [`TxnCoordinator::markers_written`] that
//! finishes its abort, or by [`TxnCoordinator::shutdown`]); a completion's markers are asked
//! for once (again only after a restart, by [`TxnCoordinator::restored`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Answer, CONSUMER_OFFSETS_TOPIC, Effects, InitProducerId, MarkerWrite, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, PARTITIONS_PER_TXN_MAX, Producer, TOPIC_MAX_BYTES, TRANSACTIONAL_ID_MAX_BYTES,
    TRANSACTIONAL_IDS_MAX, TopicPartition, TxnConfig, TxnError, TxnLogValue, TxnRecord, TxnResult,
    TxnState, fenced,
};
use crate::groups::Ticket;

/// One transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id before the last rotation, for a retried InitProducerId (KIP-360).
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, so a retried InitProducerId gets the same answer
    /// (KIP-360). Memory only, as in Kafka: -1 after a restart.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// Groups added by AddOffsetsToTxn (memory only: not in Kafka's record).
    pub groups: BTreeSet<String>,
    /// When the open transaction began; -1 when none is open.
    pub start_ms: i64,
    pub last_update_ms: i64,
    parked_init: Option<ParkedInit>,
}

/// An InitProducerId waiting for the abort of the transaction it fenced.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ParkedInit {
    ticket: Ticket,
    timeout_ms: i32,
    /// The epoch the asking producer held (KIP-360), kept as the last epoch for its retries.
    client_epoch: Option<i16>,
}

impl TxnMetadata {
    fn value(&self) -> TxnLogValue {
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }

    fn record(&self, transactional_id: &str) -> TxnRecord {
        TxnRecord {
            transactional_id: transactional_id.to_string(),
            value: Some(self.value()),
        }
    }

    /// Whether an InitProducerId is parked on this id.
    pub fn has_parked_init(&self) -> bool {
        self.parked_init.is_some()
    }

    /// When `tick` next has work for this id (timeout or expiry).
    fn deadline(&self, config: &TxnConfig) -> Option<i64> {
        match self.state {
            // Kafka aborts once `start + timeout < now`: the first due millisecond is one past.
            TxnState::Ongoing => Some(
                self.start_ms
                    .saturating_add(i64::from(self.timeout_ms))
                    .saturating_add(1),
            ),
            s if s.is_idle() && self.parked_init.is_none() => {
                Some(self.last_update_ms.saturating_add(config.id_expiration_ms))
            }
            _ => None,
        }
    }
}

/// The epoch after which a producer id is rotated (Kafka: Short.MaxValue - 1; i16::MAX is
/// left for one last fencing bump).
fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

#[derive(Debug, Default)]
pub struct TxnCoordinator {
    config: TxnConfig,
    /// Sorted so ticks, restores and snapshots are deterministic.
    txns: BTreeMap<String, TxnMetadata>,
}

type Allocator<'a> = &'a mut dyn FnMut() -> Option<i64>;

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        Self {
            config,
            txns: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// DescribeTransactions: one id's state, or [`TxnError::TransactionalIdNotFound`].
    pub fn describe(&self, transactional_id: &str) -> Result<&TxnMetadata, TxnError> {
        self.txns
            .get(transactional_id)
            .ok_or(TxnError::TransactionalIdNotFound)
    }

    /// Every transactional id and its state, sorted by id (ListTransactions).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TxnMetadata)> {
        self.txns.iter().map(|(id, m)| (id.as_str(), m))
    }

    /// InitProducerId with a transactional id. `allocate` gives a producer id never handed
    /// out before (`None` when there is none).
    pub fn init_producer_id(
        &mut self,
        req: &InitProducerId,
        ticket: Ticket,
        allocate: Allocator<'_>,
        now_ms: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        if let Err(e) = self.check_init(req) {
            fx.reply(ticket, Err(e));
            return fx;
        }
        let id = req.transactional_id.as_str();
        let Some(meta) = self.txns.get_mut(id) else {
            let Some(producer_id) = allocate() else {
                fx.reply(ticket, Err(TxnError::ProducerIdsUnavailable));
                return fx;
            };
            let meta = TxnMetadata {
                producer_id,
                previous_producer_id: NO_PRODUCER_ID,
                producer_epoch: 0,
                last_producer_epoch: NO_PRODUCER_EPOCH,
                timeout_ms: req.timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
                parked_init: None,
            };
            fx.records.push(meta.record(id));
            fx.reply(ticket, Ok(producer_answer(&meta)));
            self.txns.insert(id.to_string(), meta);
            return fx;
        };
        if meta.parked_init.is_some() || meta.state.is_completing() {
            fx.reply(ticket, Err(TxnError::ConcurrentTransactions));
            return fx;
        }
        if let Some((producer_id, epoch)) = req.current {
            // KIP-360: a producer may keep its id unless another took it over. The epoch is
            // checked when it is bumped.
            let valid = meta.producer_epoch == NO_PRODUCER_EPOCH
                || producer_id == meta.producer_id
                || (producer_id == meta.previous_producer_id && epoch_exhausted(epoch));
            if !valid {
                fx.reply(ticket, Err(fenced(req.producer_fenced_supported)));
                return fx;
            }
        }
        let expected = req.current.map(|(_, epoch)| epoch);
        match meta.state {
            TxnState::Ongoing => {
                if let Some(e) = expected
                    && e != meta.producer_epoch
                {
                    fx.reply(ticket, Err(fenced(req.producer_fenced_supported)));
                    return fx;
                }
                // Fence the producer of the open transaction and abort it; answer once
                // the abort's markers are written.
                meta.parked_init = Some(ParkedInit {
                    ticket,
                    timeout_ms: req.timeout_ms,
                    client_epoch: expected,
                });
                begin_completion(id, meta, TxnResult::Abort, true, now_ms, &mut fx);
            }
            s if s.is_idle() => {
                let result = bump_or_rotate(
                    meta,
                    req.timeout_ms,
                    expected,
                    req.producer_fenced_supported,
                    allocate,
                    now_ms,
                );
                match result {
                    Ok(()) => {
                        fx.records.push(meta.record(id));
                        fx.reply(ticket, Ok(producer_answer(meta)));
                    }
                    Err(e) => fx.reply(ticket, Err(e)),
                }
            }
            // Dead and PrepareEpochFence are never kept (apply maps them away).
            state => fx.reply(ticket, Err(TxnError::InvalidTxnState { state })),
        }
        fx
    }

    fn check_init(&self, req: &InitProducerId) -> Result<(), TxnError> {
        check_id(&req.transactional_id)?;
        if req.timeout_ms <= 0 || req.timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout {
                timeout_ms: req.timeout_ms,
                max_ms: self.config.max_timeout_ms,
            });
        }
        if !self.txns.contains_key(&req.transactional_id)
            && self.txns.len() >= TRANSACTIONAL_IDS_MAX
        {
            return Err(TxnError::TransactionalIdsFull {
                max: TRANSACTIONAL_IDS_MAX,
            });
        }
        Ok(())
    }

    /// The checks every request after InitProducerId shares, in Kafka's order.
    fn producer_txn(
        &mut self,
        transactional_id: &str,
        producer: &Producer,
    ) -> Result<&mut TxnMetadata, TxnError> {
        check_id(transactional_id)?;
        let meta = self
            .txns
            .get_mut(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer.epoch {
            return Err(producer.fenced());
        }
        if meta.parked_init.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn for one transaction (v0–3, and each transaction of a v4+ batch).
    /// The answer covers every partition of the request.
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        partitions: &[TopicPartition],
        ticket: Ticket,
        now_ms: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        let result = self.add(
            transactional_id,
            &producer,
            partitions,
            None,
            now_ms,
            &mut fx,
        );
        fx.reply(ticket, result.map(|()| Answer::Done));
        fx
    }

    /// AddOffsetsToTxn: adds the `__consumer_offsets` partition that holds `group`
    /// (`offsets_partition` is the group coordinator's hash) and remembers the group.
    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        group: &str,
        offsets_partition: &dyn Fn(&str) -> i32,
        ticket: Ticket,
        now_ms: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        let result = if group.is_empty() || group.len() > crate::groups::NAME_MAX_BYTES {
            Err(TxnError::InvalidRequest("group id empty or too long"))
        } else {
            let tp = TopicPartition::new(CONSUMER_OFFSETS_TOPIC, offsets_partition(group));
            self.add(
                transactional_id,
                &producer,
                &[tp],
                Some(group),
                now_ms,
                &mut fx,
            )
        };
        fx.reply(ticket, result.map(|()| Answer::Done));
        fx
    }

    fn add(
        &mut self,
        transactional_id: &str,
        producer: &Producer,
        partitions: &[TopicPartition],
        group: Option<&str>,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<(), TxnError> {
        for tp in partitions {
            if tp.topic.is_empty() || tp.topic.len() > TOPIC_MAX_BYTES || tp.partition < 0 {
                return Err(TxnError::InvalidRequest("invalid topic partition"));
            }
        }
        let meta = self.producer_txn(transactional_id, producer)?;
        if meta.state.is_completing() {
            return Err(TxnError::ConcurrentTransactions);
        }
        let starting = meta.state.is_idle();
        let known = |m: &TxnMetadata| {
            partitions.iter().all(|tp| m.partitions.contains(tp))
                && group.is_none_or(|g| m.groups.contains(g))
        };
        if !starting && known(meta) {
            // Nothing new: no record (Kafka answers at once too).
            return Ok(());
        }
        let current = if starting { 0 } else { meta.partitions.len() };
        let groups = if starting { 0 } else { meta.groups.len() };
        if current.saturating_add(partitions.len()) > PARTITIONS_PER_TXN_MAX
            || groups >= PARTITIONS_PER_TXN_MAX
        {
            return Err(TxnError::InvalidRequest(
                "too many partitions in one transaction",
            ));
        }
        if starting {
            meta.partitions.clear();
            meta.groups.clear();
            meta.start_ms = now_ms;
        }
        meta.state = TxnState::Ongoing;
        meta.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            meta.groups.insert(g.to_string());
        }
        meta.last_update_ms = now_ms;
        fx.records.push(meta.record(transactional_id));
        Ok(())
    }

    /// AddPartitionsToTxn v4+ with verify-only set (KIP-890 part 1): which of `partitions`
    /// are in the open transaction. Changes nothing.
    pub fn verify_partitions(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        partitions: &[TopicPartition],
        ticket: Ticket,
    ) -> Effects {
        let mut fx = Effects::default();
        let result = self
            .producer_txn(transactional_id, &producer)
            .and_then(|meta| {
                if meta.state.is_completing() {
                    return Err(TxnError::ConcurrentTransactions);
                }
                let ongoing = meta.state == TxnState::Ongoing;
                Ok(Answer::Verified(
                    partitions
                        .iter()
                        .map(|tp| {
                            let ok = ongoing && meta.partitions.contains(tp);
                            (tp.clone(), (!ok).then_some(TxnError::TransactionAbortable))
                        })
                        .collect(),
                ))
            });
        fx.reply(ticket, result);
        fx
    }

    /// TxnOffsetCommit's check: the producer's transaction is open and holds `group`'s
    /// offsets (added by AddOffsetsToTxn). The group coordinator keeps the pending offsets;
    /// the transaction's [`MarkerWrite`] later tells it to materialize or drop them.
    pub fn txn_offset_commit(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        group: &str,
    ) -> Result<(), TxnError> {
        let meta = self.producer_txn(transactional_id, &producer)?;
        if meta.state != TxnState::Ongoing || !meta.groups.contains(group) {
            return Err(TxnError::InvalidTxnState { state: meta.state });
        }
        Ok(())
    }

    /// EndTxn: commit or abort the open transaction. Answered at once (after the records);
    /// the markers follow.
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer: Producer,
        result: TxnResult,
        ticket: Ticket,
        now_ms: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        let answer = match self.producer_txn(transactional_id, &producer) {
            Err(e) => Err(e),
            Ok(meta) => match (meta.state, result) {
                (TxnState::Ongoing, _) => {
                    begin_completion(transactional_id, meta, result, false, now_ms, &mut fx);
                    Ok(Answer::Done)
                }
                // A retry of an EndTxn that already finished.
                (TxnState::CompleteCommit, TxnResult::Commit)
                | (TxnState::CompleteAbort, TxnResult::Abort) => Ok(Answer::Done),
                // A retry while its markers are still being written.
                (TxnState::PrepareCommit, TxnResult::Commit)
                | (TxnState::PrepareAbort, TxnResult::Abort) => {
                    Err(TxnError::ConcurrentTransactions)
                }
                (state, _) => Err(TxnError::InvalidTxnState { state }),
            },
        };
        fx.reply(ticket, answer);
        fx
    }

    /// The caller wrote the markers of `producer_id`/`epoch`'s completing transaction:
    /// complete it, and answer an InitProducerId parked on it. A call that matches no
    /// completing transaction (a duplicate, or stale after a later change) does nothing.
    pub fn markers_written(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        allocate: Allocator<'_>,
        now_ms: i64,
    ) -> Effects {
        let mut fx = Effects::default();
        let Some(meta) = self.txns.get_mut(transactional_id) else {
            return fx;
        };
        if !meta.state.is_completing()
            || meta.producer_id != producer_id
            || meta.producer_epoch != epoch
        {
            return fx;
        }
        meta.state = if meta.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.groups.clear();
        meta.last_update_ms = now_ms;
        fx.records.push(meta.record(transactional_id));
        if let Some(parked) = meta.parked_init.take() {
            match bump_or_rotate(meta, parked.timeout_ms, None, true, allocate, now_ms) {
                Ok(()) => {
                    if let Some(e) = parked.client_epoch
                        && meta.previous_producer_id != producer_id
                    {
                        meta.last_producer_epoch = e;
                    }
                    fx.records.push(meta.record(transactional_id));
                    fx.reply(parked.ticket, Ok(producer_answer(meta)));
                }
                Err(e) => fx.reply(parked.ticket, Err(e)),
            }
        }
        fx
    }

    /// Aborts transactions open past their timeout (fencing their producer with an epoch
    /// bump, as Kafka's abortTimedOutTransactions) and forgets ids idle for
    /// `transactional.id.expiration.ms`.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let mut expired = Vec::new();
        for (id, meta) in self.txns.iter_mut() {
            let Some(deadline) = meta.deadline(&self.config) else {
                continue;
            };
            if now_ms < deadline {
                continue;
            }
            if meta.state == TxnState::Ongoing {
                begin_completion(id, meta, TxnResult::Abort, true, now_ms, &mut fx);
            } else {
                expired.push(id.clone());
            }
        }
        for id in expired {
            self.txns.remove(&id);
            fx.records.push(TxnRecord {
                transactional_id: id,
                value: None,
            });
        }
        fx
    }

    /// When [`TxnCoordinator::tick`] next has work; `None` when never.
    pub fn next_deadline(&self) -> Option<i64> {
        self.txns
            .values()
            .filter_map(|m| m.deadline(&self.config))
            .min()
    }

    /// Replays one record of `__transaction_state` (on load, in log order). A later record
    /// for an id replaces the earlier; a tombstone or a Dead state removes it. Call
    /// [`TxnCoordinator::restored`] after the last record.
    pub fn apply(&mut self, record: &TxnRecord) {
        let Some(value) = &record.value else {
            self.txns.remove(&record.transactional_id);
            return;
        };
        let state = match value.state {
            TxnState::Dead => {
                self.txns.remove(&record.transactional_id);
                return;
            }
            // Kafka never writes it; if it were there, the transaction was being aborted.
            TxnState::PrepareEpochFence => TxnState::PrepareAbort,
            s => s,
        };
        if !self.txns.contains_key(&record.transactional_id)
            && self.txns.len() >= TRANSACTIONAL_IDS_MAX
        {
            tracing::warn!(
                transactional_id = %record.transactional_id,
                "transaction log holds more ids than kept; dropping one"
            );
            return;
        }
        let meta = TxnMetadata {
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms: value.timeout_ms,
            state,
            partitions: value.partitions.clone(),
            groups: BTreeSet::new(),
            start_ms: value.start_ms,
            last_update_ms: value.last_update_ms,
            parked_init: None,
        };
        self.txns.insert(record.transactional_id.clone(), meta);
    }

    /// After replay: the markers of every transaction that was completing when the log
    /// ended. The caller must write them again (markers are idempotent for a partition's
    /// reader) and then call [`TxnCoordinator::markers_written`].
    pub fn restored(&self) -> Effects {
        let mut fx = Effects::default();
        for (id, meta) in &self.txns {
            if meta.state.is_completing() {
                fx.markers.push(marker(id, meta));
            }
        }
        fx
    }

    /// Records that rebuild the durable part of the current state (one per id): what a
    /// compacted `__transaction_state` holds.
    pub fn snapshot(&self) -> Vec<TxnRecord> {
        self.txns.iter().map(|(id, m)| m.record(id)).collect()
    }

    /// Answers every parked request with [`TxnError::NotCoordinator`] (the coordinator is
    /// moving or stopping), so each is still answered once.
    pub fn shutdown(&mut self) -> Effects {
        let mut fx = Effects::default();
        for meta in self.txns.values_mut() {
            if let Some(parked) = meta.parked_init.take() {
                fx.reply(parked.ticket, Err(TxnError::NotCoordinator));
            }
        }
        fx
    }
}

fn check_id(transactional_id: &str) -> Result<(), TxnError> {
    if transactional_id.is_empty() || transactional_id.len() > TRANSACTIONAL_ID_MAX_BYTES {
        return Err(TxnError::InvalidRequest(
            "transactional id empty or too long",
        ));
    }
    Ok(())
}

fn producer_answer(meta: &TxnMetadata) -> Answer {
    Answer::ProducerId {
        producer_id: meta.producer_id,
        epoch: meta.producer_epoch,
    }
}

fn marker(transactional_id: &str, meta: &TxnMetadata) -> MarkerWrite {
    MarkerWrite {
        transactional_id: transactional_id.to_string(),
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        result: if meta.state == TxnState::PrepareCommit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        },
        partitions: meta.partitions.iter().cloned().collect(),
        groups: meta.groups.iter().cloned().collect(),
    }
}

/// Ongoing → PrepareCommit/PrepareAbort: one record, one marker write. `fence` bumps the
/// epoch first (the producer is fenced: a timeout, or a new instance's InitProducerId), as
/// Kafka's PrepareEpochFence does; the markers carry the bumped epoch.
fn begin_completion(
    transactional_id: &str,
    meta: &mut TxnMetadata,
    result: TxnResult,
    fence: bool,
    now_ms: i64,
    fx: &mut Effects,
) {
    debug_assert_eq!(meta.state, TxnState::Ongoing);
    if fence && meta.producer_epoch < i16::MAX {
        meta.last_producer_epoch = meta.producer_epoch;
        meta.producer_epoch += 1;
    }
    meta.state = match result {
        TxnResult::Commit => TxnState::PrepareCommit,
        TxnResult::Abort => TxnState::PrepareAbort,
    };
    meta.last_update_ms = now_ms;
    fx.records.push(meta.record(transactional_id));
    fx.markers.push(marker(transactional_id, meta));
}

/// An idle id's InitProducerId: the next epoch, or a new producer id when the epoch is
/// exhausted (Kafka's prepareIncrementProducerEpoch / prepareProducerIdRotation).
fn bump_or_rotate(
    meta: &mut TxnMetadata,
    timeout_ms: i32,
    expected: Option<i16>,
    producer_fenced_supported: bool,
    allocate: Allocator<'_>,
    now_ms: i64,
) -> Result<(), TxnError> {
    if epoch_exhausted(meta.producer_epoch) {
        let producer_id = allocate().ok_or(TxnError::ProducerIdsUnavailable)?;
        meta.previous_producer_id = meta.producer_id;
        meta.last_producer_epoch = if expected.is_some() {
            meta.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        meta.producer_id = producer_id;
        meta.producer_epoch = 0;
    } else {
        let current = meta.producer_epoch;
        let (epoch, last) = match expected {
            None => (current + 1, NO_PRODUCER_EPOCH),
            Some(e) if current == NO_PRODUCER_EPOCH || e == current => (current + 1, current),
            // A retry of a bump whose answer the producer never got: same answer again.
            Some(e) if e == meta.last_producer_epoch => (current, meta.last_producer_epoch),
            Some(_) => return Err(fenced(producer_fenced_supported)),
        };
        meta.producer_epoch = epoch;
        meta.last_producer_epoch = last;
    }
    meta.timeout_ms = timeout_ms;
    meta.state = TxnState::Empty;
    meta.partitions.clear();
    meta.groups.clear();
    meta.start_ms = -1;
    meta.last_update_ms = now_ms;
    Ok(())
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
