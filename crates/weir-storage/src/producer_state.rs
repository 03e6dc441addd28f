//! Idempotent-producer state of one partition: per producer id, its epoch and the last
//! few batches it appended, so a retried batch is answered with its original offsets
//! instead of being appended twice, and a gap or a reordering is refused.
//!
//! Pure: batches and the clock go in, decisions come out; the store calls it under the
//! partition lock, between validation and offset stamping, and persists it as a snapshot
//! at each checkpoint (see [`ProducerStates::encode`]).
//!
//! The rules are Kafka's (`ProducerStateManager`/`ProducerAppendInfo`):
//! - an epoch below the known one is fenced (INVALID_PRODUCER_EPOCH);
//! - a new epoch must start at sequence 0;
//! - within an epoch, a batch equal to one of the last [`BATCHES_KEPT`] is a duplicate;
//!   otherwise its first sequence must follow the last one (wrapping at `i32::MAX` to 0);
//! - a producer id the partition does not know must start at sequence 0.

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::partition::txn::{self, TxnState};

/// Batches remembered per producer for duplicate detection: Kafka's
/// `NUM_BATCHES_TO_RETAIN`, matching clients' `max.in.flight.requests.per.connection` ≤ 5
/// for idempotent producers.
pub const BATCHES_KEPT: usize = 5;
/// Producers remembered per partition; past this the least recently used is forgotten
/// (its next batch, unless it starts a new epoch at sequence 0, gets UNKNOWN_PRODUCER_ID
/// and the client re-initializes). Bounds memory and the snapshot: about 200 bytes each.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 1_000;
/// Kafka's `producer.id.expiration.ms` default (1 day): a producer idle this long is
/// forgotten.
pub const PRODUCER_ID_EXPIRATION_MS: i64 = 24 * 60 * 60 * 1000;

/// Version 1: producers only. Version 2 (transactions): producers, then the partition's
/// open and aborted transactions ([`TxnState::encode_into`]). Both are read.
const SNAPSHOT_MAGIC_V1: &[u8; 4] = b"WPS1";
const SNAPSHOT_MAGIC: &[u8; 4] = b"WPS2";
/// magic + through offset + producer count.
const SNAPSHOT_HEADER_LEN: usize = 4 + 8 + 4;
/// id + epoch + last used + batch count.
const SNAPSHOT_ENTRY_LEN: usize = 8 + 2 + 8 + 1;
/// first seq + last seq + base offset + last offset.
const SNAPSHOT_BATCH_LEN: usize = 4 + 4 + 8 + 8;
const SNAPSHOT_CRC_LEN: usize = 4;
/// Largest valid snapshot: a reader refuses anything bigger before allocating.
pub const SNAPSHOT_MAX_BYTES: usize = SNAPSHOT_HEADER_LEN
    + PRODUCERS_PER_PARTITION_MAX * (SNAPSHOT_ENTRY_LEN + BATCHES_KEPT * SNAPSHOT_BATCH_LEN)
    + txn::ENCODED_MAX_BYTES
    + SNAPSHOT_CRC_LEN;

/// The producer fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    /// Records in the batch minus one (the header's `lastOffsetDelta`).
    pub last_offset_delta: i32,
}

impl ProducerBatch {
    /// `None` for a batch without a producer id (−1): no idempotence checks apply.
    pub fn of(header: &BatchHeader) -> Option<Self> {
        (header.producer_id >= 0).then_some(Self {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_seq: header.base_sequence,
            last_offset_delta: header.last_offset_delta,
        })
    }

    pub fn last_seq(&self) -> i32 {
        increment_seq(self.first_seq, self.last_offset_delta)
    }
}

/// `seq + by`, wrapping past `i32::MAX` to 0 (Kafka's `incrementSequence`).
pub fn increment_seq(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Oldest first; at most [`BATCHES_KEPT`].
    batches: VecDeque<BatchMeta>,
    last_used_ms: i64,
}

/// What to do with a batch that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Append,
    /// A retry of a batch already in the log: answer its offsets, append nothing.
    Duplicate {
        base_offset: i64,
        last_offset: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerError {
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current}")]
    InvalidEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {first_seq} does not follow {expected_after}")]
    OutOfOrder {
        producer_id: i64,
        first_seq: i32,
        /// The last sequence appended, or −1 for a new epoch (which must start at 0).
        expected_after: i32,
    },
    #[error("producer {producer_id} is unknown here and its batch starts at sequence {first_seq}")]
    UnknownProducer { producer_id: i64, first_seq: i32 },
    #[error("a batch with a producer id must be the only batch of its append")]
    MultipleBatches,
}

/// The producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open and aborted transactions: snapshotted with the producers, but kept apart from
    /// them, since a producer forgotten (evicted, expired) may still have one open.
    txns: TxnState,
    /// Changed since the last snapshot.
    dirty: bool,
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn mark_clean(&mut self) {
        self.dirty = false;
    }

    pub fn txns(&self) -> &TxnState {
        &self.txns
    }

    /// Feeds a batch to the transaction state (see [`TxnState::on_batch`]).
    pub fn record_txn(&mut self, header: &BatchHeader, control: Option<crate::batch::ControlType>) {
        if header.is_transactional() {
            self.txns.on_batch(header, control);
            self.dirty = true;
        }
    }

    /// Fencing of a transaction marker: an epoch older than the producer's is refused
    /// (Kafka's `appendEndTxnMarker`); a producer the partition does not know is accepted.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), ProducerError> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(ProducerError::InvalidEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records a marker written for `producer_id` at `epoch`: a newer epoch replaces the
    /// known one (its batches are no longer duplicates: the next must start at sequence 0).
    pub fn record_marker(&mut self, producer_id: i64, epoch: i16, now_ms: i64) {
        if !self.producers.contains_key(&producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            self.evict_least_recently_used();
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::with_capacity(BATCHES_KEPT),
                last_used_ms: now_ms,
            });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_used_ms = entry.last_used_ms.max(now_ms);
        self.dirty = true;
    }

    /// The epoch known for `producer_id`, if any.
    pub fn epoch(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// Decides what to do with `batch`; changes nothing.
    pub fn check(&self, batch: &ProducerBatch) -> Result<Decision, ProducerError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            // Kafka ≥ 2.5 accepts any sequence here; weir answers UNKNOWN_PRODUCER_ID
            // instead, which the Java client, librdkafka and kafka-python all handle by
            // bumping the epoch (or taking a new producer id) and starting again at 0 —
            // never silently accepting a gap.
            return if batch.first_seq == 0 {
                Ok(Decision::Append)
            } else {
                Err(ProducerError::UnknownProducer {
                    producer_id: batch.producer_id,
                    first_seq: batch.first_seq,
                })
            };
        };
        if batch.epoch < entry.epoch {
            return Err(ProducerError::InvalidEpoch {
                producer_id: batch.producer_id,
                epoch: batch.epoch,
                current: entry.epoch,
            });
        }
        if batch.epoch > entry.epoch {
            return if batch.first_seq == 0 {
                Ok(Decision::Append)
            } else {
                Err(ProducerError::OutOfOrder {
                    producer_id: batch.producer_id,
                    first_seq: batch.first_seq,
                    expected_after: -1,
                })
            };
        }
        let last_seq = batch.last_seq();
        if let Some(original) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == batch.first_seq && b.last_seq == last_seq)
        {
            return Ok(Decision::Duplicate {
                base_offset: original.base_offset,
                last_offset: original.last_offset,
            });
        }
        match entry.batches.back() {
            Some(last) if increment_seq(last.last_seq, 1) == batch.first_seq => {
                Ok(Decision::Append)
            }
            // An epoch known without batches (none survived, or a snapshot of one) starts
            // like a new one.
            None if batch.first_seq == 0 => Ok(Decision::Append),
            last => Err(ProducerError::OutOfOrder {
                producer_id: batch.producer_id,
                first_seq: batch.first_seq,
                expected_after: last.map_or(-1, |b| b.last_seq),
            }),
        }
    }

    /// Records a batch appended at `base_offset..=last_offset` (after [`Self::check`]
    /// said [`Decision::Append`], or while rebuilding from the log).
    pub fn record(
        &mut self,
        batch: &ProducerBatch,
        base_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) {
        if !self.producers.contains_key(&batch.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            self.evict_least_recently_used();
        }
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.epoch,
                batches: VecDeque::with_capacity(BATCHES_KEPT),
                last_used_ms: now_ms,
            });
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() >= BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: batch.first_seq,
            last_seq: batch.last_seq(),
            base_offset,
            last_offset,
        });
        entry.last_used_ms = entry.last_used_ms.max(now_ms);
        self.dirty = true;
    }

    /// Forgets producers idle for [`PRODUCER_ID_EXPIRATION_MS`].
    pub fn expire(&mut self, now_ms: i64) {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_used_ms) < PRODUCER_ID_EXPIRATION_MS);
        if self.producers.len() != before {
            self.dirty = true;
        }
    }

    /// Forgets producers whose last batch is below `log_start` (retention or DeleteRecords
    /// removed it), and aborted transactions whose marker is, as Kafka does: such a producer's next batch gets UNKNOWN_PRODUCER_ID
    /// with a log start offset past its last acknowledged one, which clients read as
    /// "retention, not loss" and answer by restarting the partition's sequence at 0.
    pub fn remove_before(&mut self, log_start: i64) {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| e.batches.back().is_some_and(|b| b.last_offset >= log_start));
        let txns_changed = self.txns.remove_before(log_start);
        if self.producers.len() != before || txns_changed {
            self.dirty = true;
        }
    }

    fn evict_least_recently_used(&mut self) {
        if let Some(oldest) = self
            .producers
            .iter()
            .min_by_key(|(id, e)| (e.last_used_ms, **id))
            .map(|(id, _)| *id)
        {
            self.producers.remove(&oldest);
        }
    }

    /// The snapshot file's bytes: the state as of `through` (the log end offset it covers;
    /// batches from there on are replayed on open), CRC-32C protected.
    pub fn encode(&self, through: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + self.producers.len() * 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&through.to_be_bytes());
        let count = u32::try_from(self.producers.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(entry) = self.producers.get(&id) else {
                continue;
            };
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.last_used_ms.to_be_bytes());
            // At most BATCHES_KEPT (5).
            out.push(entry.batches.len() as u8);
            for b in &entry.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        self.txns.encode_into(&mut out);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot back: the state and the offset it covers through.
    pub fn decode(buf: &[u8]) -> Result<(Self, i64), &'static str> {
        if buf.len() > SNAPSHOT_MAX_BYTES {
            return Err("larger than any valid snapshot");
        }
        let body_len = buf
            .len()
            .checked_sub(SNAPSHOT_CRC_LEN)
            .ok_or("shorter than a snapshot")?;
        let (body, crc) = buf.split_at(body_len);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err("CRC mismatch");
        }
        let mut r = Reader { buf: body };
        let version = match &r.take::<4>()? {
            SNAPSHOT_MAGIC_V1 => 1,
            SNAPSHOT_MAGIC => 2,
            _ => return Err("not a producer snapshot"),
        };
        let through = i64::from_be_bytes(r.take()?);
        let count = u32::from_be_bytes(r.take()?) as usize;
        if count > PRODUCERS_PER_PARTITION_MAX {
            return Err("too many producers");
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let last_used_ms = i64::from_be_bytes(r.take()?);
            let [n] = r.take::<1>()?;
            if usize::from(n) > BATCHES_KEPT {
                return Err("too many batches for a producer");
            }
            let mut batches = VecDeque::with_capacity(usize::from(n));
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    base_offset: i64::from_be_bytes(r.take()?),
                    last_offset: i64::from_be_bytes(r.take()?),
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_used_ms,
                },
            );
        }
        let txns = if version >= 2 {
            TxnState::decode_from(|n| r.take_slice(n))?
        } else {
            TxnState::default()
        };
        if !r.buf.is_empty() {
            return Err("bytes after the last producer");
        }
        Ok((
            Self {
                producers,
                txns,
                dirty: false,
            },
            through,
        ))
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        let (head, rest) = self.buf.split_first_chunk::<N>().ok_or("truncated")?;
        self.buf = rest;
        Ok(*head)
    }

    fn take_slice(&mut self, n: usize) -> Result<Vec<u8>, &'static str> {
        if n > self.buf.len() {
            return Err("truncated");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch(producer_id: i64, epoch: i16, first_seq: i32, records: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            epoch,
            first_seq,
            last_offset_delta: records - 1,
        }
    }

    /// Checks then, on Append, records at `*next` (the log end) and advances it.
    fn offer(
        states: &mut ProducerStates,
        b: ProducerBatch,
        next: &mut i64,
    ) -> Result<Decision, ProducerError> {
        let decision = states.check(&b)?;
        if decision == Decision::Append {
            let last = *next + i64::from(b.last_offset_delta);
            states.record(&b, *next, last, 0);
            *next = last + 1;
        }
        Ok(decision)
    }

    #[test]
    fn sequences_follow_and_duplicates_answer_their_offsets() {
        let mut s = ProducerStates::default();
        let mut next = 100;
        assert_eq!(
            offer(&mut s, batch(7, 0, 0, 3), &mut next),
            Ok(Decision::Append)
        );
        assert_eq!(
            offer(&mut s, batch(7, 0, 3, 2), &mut next),
            Ok(Decision::Append)
        );
        assert_eq!(next, 105);
        assert_eq!(
            offer(&mut s, batch(7, 0, 0, 3), &mut next),
            Ok(Decision::Duplicate {
                base_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(next, 105, "a duplicate appends nothing");
        assert!(matches!(
            offer(&mut s, batch(7, 0, 6, 1), &mut next),
            Err(ProducerError::OutOfOrder {
                expected_after: 4,
                ..
            })
        ));
        assert!(matches!(
            offer(&mut s, batch(7, 0, 1, 2), &mut next),
            Err(ProducerError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn epochs_fence_and_restart_at_zero() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        offer(&mut s, batch(1, 3, 0, 1), &mut next).expect("first");
        assert!(matches!(
            offer(&mut s, batch(1, 2, 1, 1), &mut next),
            Err(ProducerError::InvalidEpoch { current: 3, .. })
        ));
        assert!(matches!(
            offer(&mut s, batch(1, 4, 1, 1), &mut next),
            Err(ProducerError::OutOfOrder {
                expected_after: -1,
                ..
            })
        ));
        assert_eq!(
            offer(&mut s, batch(1, 4, 0, 1), &mut next),
            Ok(Decision::Append)
        );
        assert_eq!(s.epoch(1), Some(4));
        // The old epoch's batches are no longer duplicates of anything.
        assert!(matches!(
            offer(&mut s, batch(1, 3, 0, 1), &mut next),
            Err(ProducerError::InvalidEpoch { .. })
        ));
    }

    #[test]
    fn unknown_producers_must_start_at_zero() {
        let s = ProducerStates::default();
        assert_eq!(s.check(&batch(9, 0, 0, 1)), Ok(Decision::Append));
        assert_eq!(
            s.check(&batch(9, 0, 5, 1)),
            Err(ProducerError::UnknownProducer {
                producer_id: 9,
                first_seq: 5
            })
        );
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_seq(i32::MAX, 1), 0);
        assert_eq!(increment_seq(i32::MAX - 1, 3), 1);
        assert_eq!(increment_seq(5, 2), 7);
        let mut s = ProducerStates::default();
        let b = batch(2, 0, i32::MAX - 1, 2);
        assert_eq!(b.last_seq(), i32::MAX);
        s.record(&b, 0, 1, 0);
        assert_eq!(s.check(&batch(2, 0, 0, 1)), Ok(Decision::Append));
        assert!(s.check(&batch(2, 0, 1, 1)).is_err());
    }

    #[test]
    fn only_the_last_five_batches_are_duplicates() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        for seq in 0..6 {
            offer(&mut s, batch(3, 0, seq, 1), &mut next).expect("in order");
        }
        assert!(
            s.check(&batch(3, 0, 0, 1)).is_err(),
            "evicted from the window"
        );
        assert_eq!(
            s.check(&batch(3, 0, 1, 1)),
            Ok(Decision::Duplicate {
                base_offset: 1,
                last_offset: 1
            })
        );
    }

    #[test]
    fn least_recently_used_producers_are_evicted_and_idle_ones_expire() {
        let mut s = ProducerStates::default();
        for id in 0..PRODUCERS_PER_PARTITION_MAX as i64 {
            s.record(&batch(id, 0, 0, 1), id, id, 1_000 + id);
        }
        // Producer 0 is the least recently used; touch it so 1 is.
        s.record(&batch(0, 0, 1, 1), 5_000, 5_000, 10_000);
        s.record(&batch(-5 + 100_000, 0, 0, 1), 6_000, 6_000, 10_001);
        assert_eq!(s.len(), PRODUCERS_PER_PARTITION_MAX);
        assert!(s.epoch(0).is_some());
        assert!(s.epoch(1).is_none());
        s.expire(10_001 + PRODUCER_ID_EXPIRATION_MS - 1);
        assert_eq!(s.len(), 1, "all but the newest producer are a day idle");
        assert!(s.epoch(99_995).is_some());
    }

    #[test]
    fn producers_below_the_log_start_are_forgotten() {
        let mut s = ProducerStates::default();
        s.record(&batch(1, 0, 0, 2), 0, 1, 0);
        s.record(&batch(2, 0, 0, 1), 2, 2, 0);
        s.remove_before(2);
        assert_eq!(s.epoch(1), None);
        assert_eq!(s.epoch(2), Some(0));
        assert_eq!(s.check(&batch(1, 0, 0, 1)), Ok(Decision::Append));
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        for seq in 0..7 {
            offer(&mut s, batch(11, 2, seq * 2, 2), &mut next).expect("in order");
        }
        offer(&mut s, batch(12, 0, 0, 1), &mut next).expect("new producer");
        let bytes = s.encode(next);
        let (back, through) = ProducerStates::decode(&bytes).expect("decodes");
        assert_eq!(through, next);
        s.mark_clean();
        assert_eq!(back, s);
        for cut in 0..bytes.len() {
            assert!(ProducerStates::decode(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(ProducerStates::decode(&flipped).is_err());
    }

    #[test]
    fn version_1_snapshots_are_read_with_no_transactions() {
        let mut s = ProducerStates::default();
        s.record(&batch(4, 1, 0, 2), 0, 1, 0);
        let v2 = s.encode(2);
        // Version 1 is version 2 without the transaction section (two zero counts).
        let body = &v2[..v2.len() - SNAPSHOT_CRC_LEN - 8];
        assert_eq!(&v2[body.len()..v2.len() - SNAPSHOT_CRC_LEN], &[0u8; 8]);
        let mut v1 = body.to_vec();
        v1[..4].copy_from_slice(SNAPSHOT_MAGIC_V1);
        let crc = crc32c::crc32c(&v1);
        v1.extend_from_slice(&crc.to_be_bytes());
        let (back, through) = ProducerStates::decode(&v1).expect("version 1 decodes");
        assert_eq!(through, 2);
        assert_eq!(back.epoch(4), Some(1));
        assert_eq!(back.txns().open_count(), 0);
    }

    #[test]
    fn markers_fence_older_epochs_and_bump_newer_ones() {
        let mut s = ProducerStates::default();
        s.record(&batch(6, 3, 0, 1), 0, 0, 0);
        assert!(matches!(
            s.check_marker(6, 2),
            Err(ProducerError::InvalidEpoch { current: 3, .. })
        ));
        assert_eq!(s.check_marker(6, 3), Ok(()));
        assert_eq!(
            s.check_marker(99, 0),
            Ok(()),
            "unknown producers are accepted"
        );
        s.record_marker(6, 4, 0);
        assert_eq!(s.epoch(6), Some(4));
        assert!(
            s.check(&batch(6, 3, 1, 1)).is_err(),
            "the old epoch is fenced"
        );
        assert!(
            s.check(&batch(6, 4, 1, 1)).is_err(),
            "the new epoch starts at 0"
        );
        assert_eq!(s.check(&batch(6, 4, 0, 1)), Ok(Decision::Append));
    }

    /// A producer's appended batches of its epoch: (first seq, last seq, base, last offset).
    type History = Vec<(i32, i32, i64, i64)>;

    /// A model: every batch of every producer ever appended, and the rules stated
    /// directly over that history.
    #[derive(Default)]
    struct Model {
        /// producer → (epoch, appended batches of that epoch as (first, last, base, last offset)).
        producers: HashMap<i64, (i16, History)>,
        next: i64,
    }

    impl Model {
        fn offer(&mut self, b: ProducerBatch) -> Result<Decision, ()> {
            let last_seq = b.last_seq();
            let decision = match self.producers.get(&b.producer_id) {
                None => (b.first_seq == 0).then_some(Decision::Append),
                Some((epoch, _)) if b.epoch < *epoch => None,
                Some((epoch, _)) if b.epoch > *epoch => {
                    (b.first_seq == 0).then_some(Decision::Append)
                }
                Some((_, batches)) => {
                    let window = &batches[batches.len().saturating_sub(BATCHES_KEPT)..];
                    if let Some(d) = window
                        .iter()
                        .find(|x| x.0 == b.first_seq && x.1 == last_seq)
                    {
                        Some(Decision::Duplicate {
                            base_offset: d.2,
                            last_offset: d.3,
                        })
                    } else {
                        let follows = match batches.last() {
                            Some(x) => i64::from(b.first_seq) == (i64::from(x.1) + 1) % (1 << 31),
                            None => b.first_seq == 0,
                        };
                        follows.then_some(Decision::Append)
                    }
                }
            };
            if decision == Some(Decision::Append) {
                let last = self.next + i64::from(b.last_offset_delta);
                let entry = self
                    .producers
                    .entry(b.producer_id)
                    .or_insert((b.epoch, Vec::new()));
                if entry.0 != b.epoch {
                    *entry = (b.epoch, Vec::new());
                }
                entry.1.push((b.first_seq, last_seq, self.next, last));
                self.next = last + 1;
            }
            decision.ok_or(())
        }
    }

    fn arb_batch() -> impl Strategy<Value = ProducerBatch> {
        (
            0i64..3,
            0i16..3,
            prop_oneof![0i32..12, (i32::MAX - 4)..=i32::MAX],
            1i32..4,
        )
            .prop_map(|(producer_id, epoch, first_seq, records)| {
                batch(producer_id, epoch, first_seq, records)
            })
    }

    proptest! {
        #[test]
        fn agrees_with_the_model(batches in proptest::collection::vec(arb_batch(), 1..200)) {
            let mut model = Model::default();
            let mut states = ProducerStates::default();
            let mut next = 0;
            for b in batches {
                let expected = model.offer(b);
                let got = offer(&mut states, b, &mut next).map_err(|_| ());
                prop_assert_eq!(got, expected, "batch {:?}", b);
                prop_assert_eq!(next, model.next);
            }
            let (back, _) = ProducerStates::decode(&states.encode(next)).expect("decodes");
            states.mark_clean();
            prop_assert_eq!(back, states);
        }
    }
}
