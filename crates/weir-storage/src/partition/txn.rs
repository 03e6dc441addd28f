//! Transactions of one partition: which producers have a transaction open (and from which
//! offset), hence the last stable offset, and the aborted transactions a `read_committed`
//! reader must skip (Kafka's ongoing-transaction map and `.txnindex`).
//!
//! Pure: batch headers (and, for a control batch, its marker type) go in, in log order; the
//! store feeds it on append, on WAL replay and while rebuilding from the log, and persists it
//! inside the producer snapshot (`producer_state`, format `WPS2`). The log is the truth: a
//! missing or damaged snapshot is rebuilt by walking the batches again.
//!
//! Rules (Kafka's `ProducerStateManager`/`ProducerAppendInfo`):
//! - a transactional data batch from producer P opens P's transaction at its base offset
//!   unless P has one open;
//! - a COMMIT or ABORT marker from P closes it; an ABORT records (P, first offset, marker
//!   offset) — with the marker's own offset as first offset when nothing was open, as Kafka
//!   does;
//! - the last stable offset is the first offset of the earliest open transaction, or the
//!   high watermark when none is open (and never above it).
//!
//! Removal: aborted entries wholly below the log start offset go with retention and
//! DeleteRecords ([`TxnState::remove_before`]). Compaction keeps control batches byte for
//! byte and keeps aborted records' batches as they are, so the index stays valid across it.
//!
//! Must never: read a clock, touch a file, or forget an open transaction on its own (only a
//! marker closes one; an LSO held back is safe, a LSO run ahead exposes uncommitted data).

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::batch::{BatchHeader, ControlType};

/// Aborted transactions remembered per partition. Each costs 24 bytes in memory and in the
/// snapshot; a partition keeping more aborts than this within its retention drops the
/// oldest (with a warning), after which a `read_committed` reader starting before them
/// would see their records. Kafka keeps them all, in per-segment files.
pub const ABORTED_TXNS_MAX: usize = 100_000;
/// Open transactions a snapshot may hold: at most one per producer id, and the transaction
/// coordinator aborts any open past its timeout. A reader refuses a snapshot claiming more.
pub const OPEN_TXNS_MAX: usize = 100_000;

/// One aborted transaction: what Fetch v4+ returns for `read_committed` readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the ABORT marker.
    pub last_offset: i64,
}

/// Open and aborted transactions of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnState {
    /// producer id → first offset of its open transaction.
    open: HashMap<i64, i64>,
    /// The same, ordered by first offset: the first is the last stable offset.
    open_by_offset: BTreeSet<(i64, i64)>,
    /// Ascending by `last_offset` (markers arrive in log order).
    aborted: VecDeque<AbortedTxn>,
}

impl TxnState {
    /// Feeds one batch, in log order. `control` is the marker type of a control batch
    /// (`None` for data batches); non-transactional batches change nothing.
    pub fn on_batch(&mut self, header: &BatchHeader, control: Option<ControlType>) {
        if !header.is_transactional() || header.producer_id < 0 {
            return;
        }
        let pid = header.producer_id;
        if !header.is_control() {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.open.entry(pid) {
                slot.insert(header.base_offset);
                self.open_by_offset.insert((header.base_offset, pid));
            }
            return;
        }
        let commit = match control {
            Some(ControlType::Commit) => true,
            Some(ControlType::Abort) => false,
            // Other control records (KRaft's) end no transaction.
            _ => return,
        };
        let first = self.open.remove(&pid);
        if let Some(first) = first {
            self.open_by_offset.remove(&(first, pid));
        }
        if !commit {
            self.record_abort(AbortedTxn {
                producer_id: pid,
                first_offset: first.unwrap_or(header.base_offset),
                last_offset: header.base_offset,
            });
        }
    }

    fn record_abort(&mut self, txn: AbortedTxn) {
        assert!(
            self.aborted
                .back()
                .is_none_or(|b| b.last_offset < txn.last_offset),
            "markers arrive in offset order"
        );
        if self.aborted.len() >= ABORTED_TXNS_MAX
            && let Some(dropped) = self.aborted.pop_front()
        {
            tracing::warn!(
                producer_id = dropped.producer_id,
                first_offset = dropped.first_offset,
                "aborted-transaction index full; forgetting the oldest"
            );
        }
        self.aborted.push_back(txn);
    }

    /// The first offset of the producer's open transaction.
    pub fn open_first_offset(&self, producer_id: i64) -> Option<i64> {
        self.open.get(&producer_id).copied()
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The last stable offset under a high watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open_by_offset
            .first()
            .map_or(high_watermark, |&(first, _)| first.min(high_watermark))
    }

    /// Every aborted transaction with `last_offset ≥ fetch_offset` and
    /// `first_offset < upper_bound`, ascending by marker offset.
    pub fn aborted(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let from = self
            .aborted
            .partition_point(|t| t.last_offset < fetch_offset);
        self.aborted
            .range(from..)
            .filter(|t| t.first_offset < upper_bound)
            .copied()
            .collect()
    }

    pub fn aborted_count(&self) -> usize {
        self.aborted.len()
    }

    /// Forgets aborted transactions whose marker is below `log_start` (retention or
    /// DeleteRecords removed them). Open transactions stay: their marker is still to come.
    pub fn remove_before(&mut self, log_start: i64) -> bool {
        let before = self.aborted.len();
        while self
            .aborted
            .front()
            .is_some_and(|t| t.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
        self.aborted.len() != before
    }

    /// Appends the state: open count, (pid, first)…, aborted count, (pid, first, last)….
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut open: Vec<_> = self.open_by_offset.iter().copied().collect();
        open.sort_unstable();
        out.extend_from_slice(&(open.len() as u32).to_be_bytes());
        for (first, pid) in open {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&first.to_be_bytes());
        }
        out.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for t in &self.aborted {
            out.extend_from_slice(&t.producer_id.to_be_bytes());
            out.extend_from_slice(&t.first_offset.to_be_bytes());
            out.extend_from_slice(&t.last_offset.to_be_bytes());
        }
    }

    /// Reads what [`Self::encode_into`] wrote; `take` yields the next N bytes.
    pub fn decode_from(
        mut take: impl FnMut(usize) -> Result<Vec<u8>, &'static str>,
    ) -> Result<Self, &'static str> {
        let i64_at = |take: &mut dyn FnMut(usize) -> Result<Vec<u8>, &'static str>| {
            let bytes: [u8; 8] = take(8)?.try_into().map_err(|_| "truncated")?;
            Ok::<_, &'static str>(i64::from_be_bytes(bytes))
        };
        let count = |take: &mut dyn FnMut(usize) -> Result<Vec<u8>, &'static str>| {
            let bytes: [u8; 4] = take(4)?.try_into().map_err(|_| "truncated")?;
            Ok::<_, &'static str>(u32::from_be_bytes(bytes) as usize)
        };
        let mut state = Self::default();
        let open = count(&mut take)?;
        if open > OPEN_TXNS_MAX {
            return Err("too many open transactions");
        }
        for _ in 0..open {
            let pid = i64_at(&mut take)?;
            let first = i64_at(&mut take)?;
            if state.open.insert(pid, first).is_some() {
                return Err("a producer with two open transactions");
            }
            state.open_by_offset.insert((first, pid));
        }
        let aborted = count(&mut take)?;
        if aborted > ABORTED_TXNS_MAX {
            return Err("too many aborted transactions");
        }
        for _ in 0..aborted {
            let txn = AbortedTxn {
                producer_id: i64_at(&mut take)?,
                first_offset: i64_at(&mut take)?,
                last_offset: i64_at(&mut take)?,
            };
            if txn.first_offset > txn.last_offset
                || state
                    .aborted
                    .back()
                    .is_some_and(|b| b.last_offset >= txn.last_offset)
            {
                return Err("aborted transactions out of order");
            }
            state.aborted.push_back(txn);
        }
        Ok(state)
    }
}

/// Bytes the state's encoding takes at most.
pub const ENCODED_MAX_BYTES: usize = 4 + OPEN_TXNS_MAX * 16 + 4 + ABORTED_TXNS_MAX * 24;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(base_offset: i64, records: i32, pid: i64, transactional: bool) -> BatchHeader {
        let mut b = crate::batch::BatchBuilder::new(base_offset, 0);
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.base_sequence = if pid >= 0 { 0 } else { -1 };
        if transactional {
            b.attributes = 0x10;
        }
        for _ in 0..records {
            b.push(0, None, Some(b"v"), &[]);
        }
        BatchHeader::parse(&b.build()).expect("built batch parses")
    }

    fn marker(offset: i64, pid: i64) -> BatchHeader {
        let mut b = crate::batch::BatchBuilder::new(offset, 0);
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.attributes = crate::batch::END_TXN_MARKER_ATTRIBUTES;
        b.push_record(crate::batch::end_txn_marker_record(false, 0));
        BatchHeader::parse(&b.build()).expect("built batch parses")
    }

    fn abort(first: i64, last: i64, pid: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
        }
    }

    #[test]
    fn interleaved_producers_hold_the_lso_at_the_earliest_open() {
        let mut t = TxnState::default();
        t.on_batch(&header(0, 2, -1, false), None);
        assert_eq!(t.last_stable_offset(2), 2, "plain batches never hold it");
        t.on_batch(&header(2, 3, 7, true), None); // 7 opens at 2
        t.on_batch(&header(5, 1, 8, true), None); // 8 opens at 5
        t.on_batch(&header(6, 1, 7, true), None); // 7 still at 2
        assert_eq!(t.last_stable_offset(7), 2);
        t.on_batch(&marker(7, 8), Some(ControlType::Commit));
        assert_eq!(t.last_stable_offset(8), 2, "8 committed, 7 still open");
        t.on_batch(&marker(8, 7), Some(ControlType::Abort));
        assert_eq!(t.last_stable_offset(9), 9);
        assert_eq!(t.aborted(0, 9), vec![abort(2, 8, 7)]);
        // Idempotent (non-transactional) batches from a producer id open nothing.
        t.on_batch(&header(9, 1, 9, false), None);
        assert_eq!(t.last_stable_offset(10), 10);
        // The LSO never passes the high watermark.
        t.on_batch(&header(10, 1, 9, true), None);
        assert_eq!(t.last_stable_offset(10), 10);
        assert_eq!(t.last_stable_offset(11), 10);
        assert_eq!(t.open_first_offset(9), Some(10));
    }

    #[test]
    fn aborted_lookups_at_their_boundaries() {
        let mut t = TxnState::default();
        t.on_batch(&header(10, 5, 1, true), None);
        t.on_batch(&marker(15, 1), Some(ControlType::Abort)); // (1, 10, 15)
        t.on_batch(&header(16, 1, 2, true), None);
        t.on_batch(&marker(17, 2), Some(ControlType::Abort)); // (2, 16, 17)
        let a = abort(10, 15, 1);
        let b = abort(16, 17, 2);
        assert_eq!(t.aborted(0, 10), vec![], "upper bound is exclusive");
        assert_eq!(t.aborted(0, 11), vec![a]);
        assert_eq!(t.aborted(15, 100), vec![a, b], "last offset is inclusive");
        assert_eq!(t.aborted(16, 100), vec![b]);
        assert_eq!(t.aborted(16, 16), vec![]);
        assert_eq!(t.aborted(18, 100), vec![]);
        assert!(t.remove_before(16));
        assert_eq!(t.aborted(0, 100), vec![b]);
        assert!(!t.remove_before(17));
        assert!(t.remove_before(18));
        assert_eq!(t.aborted_count(), 0);
    }

    #[test]
    fn a_marker_without_an_open_transaction_aborts_at_its_own_offset() {
        let mut t = TxnState::default();
        t.on_batch(&marker(4, 3), Some(ControlType::Abort));
        assert_eq!(t.aborted(0, 10), vec![abort(4, 4, 3)]);
        t.on_batch(&marker(5, 3), Some(ControlType::Commit));
        t.on_batch(&marker(6, 3), Some(ControlType::Other(3)));
        assert_eq!(t.aborted_count(), 1);
        assert_eq!(t.last_stable_offset(7), 7);
    }

    #[test]
    fn encoding_round_trips_and_refuses_disorder() {
        let mut t = TxnState::default();
        t.on_batch(&header(0, 1, 1, true), None);
        t.on_batch(&marker(1, 1), Some(ControlType::Abort));
        t.on_batch(&header(2, 1, 2, true), None);
        t.on_batch(&header(3, 1, 1, true), None);
        let mut bytes = Vec::new();
        t.encode_into(&mut bytes);
        let mut at = 0;
        let back = TxnState::decode_from(|n| {
            let s = bytes.get(at..at + n).ok_or("truncated")?.to_vec();
            at += n;
            Ok(s)
        })
        .expect("decodes");
        assert_eq!(back, t);
        assert_eq!(at, bytes.len());
        // Cut anywhere: an error, never a panic.
        for cut in 0..bytes.len() {
            let mut at = 0;
            let short = &bytes[..cut];
            assert!(
                TxnState::decode_from(|n| {
                    let s = short.get(at..at + n).ok_or("truncated")?.to_vec();
                    at += n;
                    Ok(s)
                })
                .is_err()
            );
        }
    }

    /// The model: every batch kept, the rules stated over the whole history.
    #[derive(Default)]
    struct Model {
        /// (offset, pid, kind): 0 data, 1 commit, 2 abort.
        log: Vec<(i64, i64, u8)>,
    }

    impl Model {
        fn open_since(&self, pid: i64, upto: usize) -> Option<i64> {
            let mut first = None;
            for &(offset, p, kind) in &self.log[..upto] {
                if p != pid {
                    continue;
                }
                match kind {
                    0 => first = first.or(Some(offset)),
                    _ => first = None,
                }
            }
            first
        }

        fn lso(&self, hw: i64) -> i64 {
            let pids: BTreeSet<i64> = self.log.iter().map(|e| e.1).collect();
            pids.iter()
                .filter_map(|&p| self.open_since(p, self.log.len()))
                .min()
                .map_or(hw, |f| f.min(hw))
        }

        fn aborted(&self, fetch: i64, upper: i64) -> Vec<AbortedTxn> {
            let mut out = Vec::new();
            for (i, &(offset, pid, kind)) in self.log.iter().enumerate() {
                if kind == 2 {
                    let first = self.open_since(pid, i).unwrap_or(offset);
                    if offset >= fetch && first < upper {
                        out.push(abort(first, offset, pid));
                    }
                }
            }
            out
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn agrees_with_the_model(
            steps in proptest::collection::vec((0i64..4, 0u8..4, 1i32..4), 1..120),
            queries in proptest::collection::vec((0i64..300, 0i64..300), 1..20),
        ) {
            let mut t = TxnState::default();
            let mut model = Model::default();
            let mut next = 0;
            for (pid, kind, records) in steps {
                // kind 0–1: data, 2: commit, 3: abort.
                let (h, control, k) = match kind {
                    0 | 1 => (header(next, records, pid, true), None, 0),
                    2 => (marker(next, pid), Some(ControlType::Commit), 1),
                    _ => (marker(next, pid), Some(ControlType::Abort), 2),
                };
                t.on_batch(&h, control);
                model.log.push((next, pid, k));
                next = h.last_offset() + 1;
                prop_assert_eq!(t.last_stable_offset(next), model.lso(next));
            }
            for (fetch, upper) in queries {
                prop_assert_eq!(t.aborted(fetch, upper), model.aborted(fetch, upper));
            }
        }
    }
}
