//! The internal topic `__transaction_state`, where the transaction coordinator makes its
//! state durable: [`Broker::append_txn_records`] writes [`TxnRecord`]s (creating the topic
//! on first use), [`Broker::replay_txn_records`] reads them back on open. A transactional
//! id's records all go to one partition ([`txn_partition`], Kafka's rule), and the topic is
//! compacted and `sync`. [`Broker::write_txn_marker`] writes a transaction marker to a
//! data partition and wakes that partition's long-polling readers.
//!
//! # What it must never do
//! Judge state (the coordinator's `apply` does), trust bytes read back (a record that does
//! not decode is skipped and counted), or let a client produce to, delete or grow the topic
//! ([`crate::group_log::is_internal_topic`] names it).

use std::collections::BTreeMap;

use weir_storage::store::{Appended, StoreError, TopicPartition};
use weir_storage::topic_config::FlushPolicy;

use crate::broker::{Broker, CoreError};
use crate::catalog::{TopicId, TopicInfo};
use crate::group_log::{Encoded, appends_of, encoded_size, replay_batches_with};
use crate::txn::records::{self as txn_records, TxnRecord};

/// The internal topic holding transactional ids' state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Partitions of [`TXN_TOPIC`] (Kafka's `transaction.state.log.num.partitions`). Fixed: an
/// id's partition depends on it.
pub const TXN_TOPIC_PARTITIONS: i32 = 50;
/// Largest batch of [`TXN_TOPIC`]: a record names at most
/// [`crate::txn::PARTITIONS_PER_TXN_MAX`] partitions, each a topic of at most 249 bytes and
/// an index; 16 MiB carries a transaction over thousands of topics.
pub const TXN_RECORD_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most bytes of one append (one WAL entry): two of the largest records.
pub const TXN_APPEND_MAX_BYTES: usize = 2 * TXN_RECORD_MAX_BYTES;
/// Kafka's `transaction.state.log.segment.bytes`.
pub const TXN_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Bytes of log read per step while replaying.
const REPLAY_READ_BYTES: u32 = 16 * 1024 * 1024;

/// The partition of [`TXN_TOPIC`] holding `transactional_id`'s records:
/// `abs(id.hashCode()) % partitions`, as Kafka computes it.
pub fn txn_partition(transactional_id: &str) -> i32 {
    let hash = weir_storage::message::tag_hash(transactional_id);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % TXN_TOPIC_PARTITIONS
}

/// The settings [`TXN_TOPIC`] depends on.
pub fn txn_topic_configs() -> Vec<(String, String)> {
    [
        ("cleanup.policy", "compact".to_string()),
        // A transaction's state change is acknowledged only once it survives a crash.
        ("flush.policy", "sync".to_string()),
        ("max.message.bytes", TXN_RECORD_MAX_BYTES.to_string()),
        ("segment.bytes", TXN_TOPIC_SEGMENT_BYTES.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What replaying the transaction topic found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnReplay {
    pub records: u64,
    /// Records (or batches) that do not decode: skipped.
    pub invalid: u64,
}

impl Broker {
    /// Creates [`TXN_TOPIC`] if it does not exist; if it does, restores any setting of
    /// [`txn_topic_configs`] that was changed. Fails when it exists with another partition
    /// count.
    pub fn ensure_txn_topic(&self, id: TopicId) -> Result<TopicInfo, CoreError> {
        let required = txn_topic_configs();
        let topic = match self.topic(TXN_TOPIC) {
            Some(topic) => topic,
            None => match self.create_topic_as_broker(
                TXN_TOPIC,
                id,
                TXN_TOPIC_PARTITIONS,
                &required,
                false,
            ) {
                Ok(topic) => return Ok(topic),
                Err(CoreError::TopicExists(_)) => self
                    .topic(TXN_TOPIC)
                    .ok_or_else(|| CoreError::UnknownTopic(TXN_TOPIC.to_string()))?,
                Err(error) => return Err(error),
            },
        };
        if topic.partitions != TXN_TOPIC_PARTITIONS {
            return Err(CoreError::InternalTopic {
                name: TXN_TOPIC.to_string(),
                reason: "exists with a partition count other than transaction.state.log.num.partitions",
            });
        }
        let drifted = required
            .iter()
            .any(|(key, value)| topic.overrides.get(key) != Some(value));
        if !drifted {
            return Ok(topic);
        }
        let mut overrides = topic.overrides.clone();
        overrides.extend(required);
        self.set_topic_overrides(TXN_TOPIC, overrides, false)
    }

    /// Appends `records` to [`TXN_TOPIC`] (created on first use), in order per partition,
    /// one append per partition unless past [`TXN_APPEND_MAX_BYTES`]. Returns the last
    /// append marked `Sync`: once durable, every record of the call is (the WAL syncs in
    /// index order). None for no records.
    pub fn append_txn_records(
        &self,
        records: &[TxnRecord],
        now_ms: i64,
    ) -> Result<Option<Appended>, CoreError> {
        let mut by_partition: BTreeMap<i32, Vec<Encoded>> = BTreeMap::new();
        // Checked before anything is written, as the group log does: a record the format
        // cannot carry fails the call instead of reaching `encode`'s invariant.
        for record in records {
            txn_records::check(record)?;
        }
        for record in records {
            let (key, value) = txn_records::encode(record);
            let size = encoded_size(&key, value.as_deref());
            if size > TXN_RECORD_MAX_BYTES {
                return Err(CoreError::Store(StoreError::MessageTooLarge {
                    size,
                    max: u32::try_from(TXN_RECORD_MAX_BYTES).unwrap_or(u32::MAX),
                }));
            }
            by_partition
                .entry(txn_partition(&record.transactional_id))
                .or_default()
                .push((key, value));
        }
        if by_partition.is_empty() {
            return Ok(None);
        }
        if self.topic(TXN_TOPIC).is_none() {
            self.ensure_txn_topic(TopicId(*uuid::Uuid::new_v4().as_bytes()))?;
        }
        let mut last = None;
        for (partition, encoded) in by_partition {
            let id = TopicPartition::new(TXN_TOPIC, partition);
            for buffer in appends_of(&encoded, now_ms, TXN_RECORD_MAX_BYTES, TXN_APPEND_MAX_BYTES) {
                last = Some(self.append(&id, &buffer, now_ms)?);
            }
        }
        Ok(last.map(|appended| Appended {
            flush: FlushPolicy::Sync,
            ..appended
        }))
    }

    /// Every record of [`TXN_TOPIC`], partition by partition in offset order (a record
    /// that does not decode is skipped and counted). An absent topic has none; an existing
    /// one gets its required settings back first.
    pub fn replay_txn_records(&self) -> Result<(Vec<TxnRecord>, TxnReplay), CoreError> {
        let mut out = Vec::new();
        let mut replay = TxnReplay::default();
        if self.topic(TXN_TOPIC).is_none() {
            return Ok((out, replay));
        }
        let topic = self.ensure_txn_topic(TopicId(*uuid::Uuid::new_v4().as_bytes()))?;
        for partition in 0..topic.partitions {
            let id = TopicPartition::new(TXN_TOPIC, partition);
            let offsets = self.store().offsets(&id)?;
            let mut offset = offsets.log_start_offset;
            while offset < offsets.high_watermark {
                let Some(slice) = self.store().read(&id, offset, REPLAY_READ_BYTES)? else {
                    break;
                };
                let bytes = slice.read_to_vec().map_err(|source| StoreError::Io {
                    op: "read transaction log",
                    path: self.store().dir().to_path_buf(),
                    source,
                })?;
                let mut invalid = 0;
                replay_batches_with(
                    &bytes,
                    offset,
                    TXN_RECORD_MAX_BYTES,
                    &mut invalid,
                    &mut |key, value| match txn_records::decode(key, value) {
                        Ok(record) => {
                            replay.records += 1;
                            out.push(record);
                        }
                        Err(error) => {
                            tracing::debug!(%error, "skipping a transaction record that does not decode");
                            replay.invalid += 1;
                        }
                    },
                );
                replay.invalid += invalid;
                if slice.last_offset < offset {
                    break;
                }
                offset = slice.last_offset + 1;
            }
        }
        if replay.invalid > 0 {
            tracing::warn!(
                invalid = replay.invalid,
                "skipped transaction records that do not decode"
            );
        }
        Ok((out, replay))
    }

    /// Writes a transaction marker (COMMIT when `commit`) for `producer_id` to `id`, wakes
    /// the partition's waiting readers (its LSO moved), and returns the append marked
    /// `Sync`: a marker must be durable before the transaction is recorded complete, or a
    /// crash could leave the partition's transaction open with nothing left to close it.
    pub fn write_txn_marker(
        &self,
        id: &TopicPartition,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Appended, CoreError> {
        let appended = self
            .store()
            .append_control(id, producer_id, producer_epoch, commit, 0, now_ms)
            .map_err(|e| match e {
                StoreError::UnknownPartition(id) => CoreError::UnknownPartition(id),
                other => CoreError::Store(other),
            })?;
        self.wake_readers(id);
        Ok(Appended {
            flush: FlushPolicy::Sync,
            ..appended
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::BrokerConfig;
    use crate::txn::{TopicPartition as TxnTp, TxnLogValue, TxnState};
    use weir_storage::store::StoreConfig;

    fn record(id: &str, state: TxnState) -> TxnRecord {
        TxnRecord {
            transactional_id: id.to_string(),
            value: Some(TxnLogValue {
                producer_id: 7,
                previous_producer_id: -1,
                producer_epoch: 2,
                timeout_ms: 60_000,
                state,
                partitions: BTreeSet::from([TxnTp::new("orders", 1)]),
                last_update_ms: 5,
                start_ms: 4,
            }),
        }
    }

    #[test]
    fn partition_is_kafkas_hash() {
        // Java: "tx-1".hashCode() == 3_572_520 (116·31³ + 120·31² + 45·31 + 49).
        assert_eq!(txn_partition("tx-1"), 3_572_520 % 50);
        assert!((0..TXN_TOPIC_PARTITIONS).contains(&txn_partition("")));
    }

    #[test]
    fn records_survive_a_reopen_and_the_topic_is_internal() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let broker = Broker::open(
                dir.path(),
                StoreConfig::default(),
                BrokerConfig::default(),
                0,
            )
            .expect("open")
            .0;
            assert!(broker.replay_txn_records().expect("replay").0.is_empty());
            broker
                .append_txn_records(&[record("a", TxnState::Ongoing)], 1)
                .expect("append");
            broker
                .append_txn_records(
                    &[
                        record("b", TxnState::Empty),
                        record("a", TxnState::PrepareCommit),
                    ],
                    2,
                )
                .expect("append");
            broker.close(3).expect("close");
        }
        let broker = Broker::open(
            dir.path(),
            StoreConfig::default(),
            BrokerConfig::default(),
            4,
        )
        .expect("reopen")
        .0;
        let (records, replay) = broker.replay_txn_records().expect("replay");
        assert_eq!(replay.invalid, 0);
        let a: Vec<_> = records
            .iter()
            .filter(|r| r.transactional_id == "a")
            .map(|r| r.value.as_ref().map(|v| v.state))
            .collect();
        assert_eq!(
            a,
            vec![Some(TxnState::Ongoing), Some(TxnState::PrepareCommit)]
        );
        assert_eq!(records.len(), 3);
        let topic = broker.topic(TXN_TOPIC).expect("topic");
        assert_eq!(topic.partitions, TXN_TOPIC_PARTITIONS);
        assert!(crate::group_log::is_internal_topic(TXN_TOPIC));
        assert!(broker.delete_topic(TXN_TOPIC).is_err());
        assert!(broker.create_partitions(TXN_TOPIC, 60, false).is_err());
    }

    #[test]
    fn asking_for_the_topic_by_name_makes_it_with_its_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::open(
            dir.path(),
            StoreConfig::default(),
            BrokerConfig::default(),
            0,
        )
        .expect("open")
        .0;
        let made = broker
            .topic_or_auto_create(TXN_TOPIC, TopicId([1; 16]))
            .expect("create")
            .expect("made");
        assert_eq!(made.name, TXN_TOPIC);
        assert_eq!(made.partitions, TXN_TOPIC_PARTITIONS);
        assert_eq!(
            made.overrides.get("flush.policy").map(String::as_str),
            Some("sync")
        );
        assert!(broker.topic(crate::group_log::GROUP_TOPIC).is_none());
    }
}
