//! The internal topic `__consumer_offsets`, where the group coordinator makes its state
//! durable: [`Broker::ensure_group_topic`] creates it, [`Broker::append_group_records`]
//! writes [`GroupRecord`]s to it, [`Broker::replay_group_records`] reads them all back on
//! open. A group's records all go to one partition ([`group_partition`], Kafka's rule), and
//! the topic is compacted, so the log keeps the last record per key: per committed offset
//! and per group.
//!
//! # What it must never do
//! Interpret records beyond their format (state is the coordinator's), trust bytes read
//! back (a record that does not decode is skipped and counted, never a panic), or let a
//! client break the topic: deleting it or changing its partition count is refused in
//! [`Broker`], and [`Broker::ensure_group_topic`] restores the settings it depends on.

use std::collections::BTreeMap;

use weir_storage::batch::{self, BatchBuilder};
use weir_storage::store::{Appended, StoreError, TopicPartition};
use weir_storage::topic_config::FlushPolicy;

use crate::broker::{Broker, CoreError};
use crate::catalog::{TopicId, TopicInfo};
use crate::groups::GROUP_METADATA_MAX_BYTES;
use crate::groups::records::{self, GroupRecord, RecordError};

/// The internal topic holding committed offsets and group state.
pub const GROUP_TOPIC: &str = "__consumer_offsets";
/// Partitions of [`GROUP_TOPIC`] (Kafka's `offsets.topic.num.partitions`). Fixed: a
/// group's partition depends on it, so the topic can never grow.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;
/// Largest batch of [`GROUP_TOPIC`] (its `max.message.bytes`): one group's record, whose
/// member metadata and assignments are bounded by [`GROUP_METADATA_MAX_BYTES`], plus as
/// much again for member ids, client ids and hosts (1,000 members × four 4 KiB names is
/// 16 MB) and framing.
pub const GROUP_RECORD_MAX_BYTES: usize = 2 * GROUP_METADATA_MAX_BYTES;
/// Most bytes one append to a partition of [`GROUP_TOPIC`] carries (one WAL entry);
/// more records are split over several appends. Under the WAL's default entry limit
/// (256 MiB) with room for two of the largest records.
pub const GROUP_APPEND_MAX_BYTES: usize = 2 * GROUP_RECORD_MAX_BYTES;
/// Kafka's `offsets.topic.segment.bytes`: small segments let compaction (which only
/// rewrites sealed segments) keep the topic near its live size.
pub const GROUP_TOPIC_SEGMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Bytes of log read per step while replaying (at least one whole batch is returned).
const REPLAY_READ_BYTES: u32 = 16 * 1024 * 1024;
/// Most bytes a record of a batch framing adds beyond its key and value: attributes (1),
/// timestamp delta (≤ 10), offset delta (≤ 5), key and value lengths (≤ 5 each), header
/// count (1), the record's own length (≤ 5).
const RECORD_OVERHEAD_MAX_BYTES: usize = 32;

/// Whether `name` is a topic the broker keeps for itself (clients may read it but not
/// delete it, grow it or, as Kafka's front end should refuse, produce to it).
pub fn is_internal_topic(name: &str) -> bool {
    name == GROUP_TOPIC || name == crate::txn_log::TXN_TOPIC
}

/// The partition of [`GROUP_TOPIC`] holding `group`'s records, as Kafka computes it:
/// `abs(group.hashCode()) % partitions`, Java's String hash over UTF-16 code units, and
/// Kafka's `Utils.abs`, which maps `i32::MIN` to 0.
pub fn group_partition(group: &str) -> i32 {
    let hash = weir_storage::message::tag_hash(group);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % OFFSETS_TOPIC_PARTITIONS
}

/// The settings [`GROUP_TOPIC`] depends on, as Kafka-named pairs.
pub fn group_topic_configs() -> Vec<(String, String)> {
    [
        ("cleanup.policy", "compact".to_string()),
        // An acknowledged offset commit or group change survives a crash.
        ("flush.policy", "sync".to_string()),
        ("max.message.bytes", GROUP_RECORD_MAX_BYTES.to_string()),
        ("segment.bytes", GROUP_TOPIC_SEGMENT_BYTES.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What replaying the group topic found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupReplay {
    /// Records decoded and handed on.
    pub records: u64,
    /// Records of a kind weir does not know (an unknown key version): skipped.
    pub unknown: u64,
    /// Records that do not decode (or have no key), and records of batches that fail
    /// their CRC or do not parse: skipped.
    pub invalid: u64,
}

impl Broker {
    /// Creates [`GROUP_TOPIC`] with `id` if it does not exist; if it does, puts back any
    /// setting of [`group_topic_configs`] that was changed (other overrides stay). Call it
    /// on open, before serving groups. Fails when the topic exists with another partition
    /// count (groups would be looked for in the wrong partitions).
    pub fn ensure_group_topic(&self, id: TopicId) -> Result<TopicInfo, CoreError> {
        let required = group_topic_configs();
        let topic = match self.topic(GROUP_TOPIC) {
            Some(topic) => topic,
            None => {
                match self.create_topic_as_broker(
                    GROUP_TOPIC,
                    id,
                    OFFSETS_TOPIC_PARTITIONS,
                    &required,
                    false,
                ) {
                    Ok(topic) => return Ok(topic),
                    Err(CoreError::TopicExists(_)) => self
                        .topic(GROUP_TOPIC)
                        .ok_or_else(|| CoreError::UnknownTopic(GROUP_TOPIC.to_string()))?,
                    Err(error) => return Err(error),
                }
            }
        };
        if topic.partitions != OFFSETS_TOPIC_PARTITIONS {
            return Err(CoreError::InternalTopic {
                name: GROUP_TOPIC.to_string(),
                reason: "exists with a partition count other than offsets.topic.num.partitions",
            });
        }
        let drifted = required
            .iter()
            .any(|(key, value)| topic.overrides.get(key) != Some(value));
        if !drifted {
            return Ok(topic);
        }
        tracing::warn!(
            topic = GROUP_TOPIC,
            "restoring the settings the group topic needs"
        );
        let mut overrides = topic.overrides.clone();
        overrides.extend(required);
        self.set_topic_overrides(GROUP_TOPIC, overrides, false)
    }

    /// Appends `records` to [`GROUP_TOPIC`], in order per partition: the records of each
    /// partition go in one append (one WAL entry) of as many batches as their size needs,
    /// split into several appends only past [`GROUP_APPEND_MAX_BYTES`]. So the records of
    /// one group in one call are written all or none, unless they exceed that size (a WAL
    /// entry is replayed whole or not at all; the store's known exception is a power cut
    /// that loses an unsynced entry whose batches the partition log kept).
    /// Records of different groups may land in different partitions, each its own append:
    /// when an append fails, the earlier ones stay written (the error says nothing about
    /// them; replay will see them).
    ///
    /// Returns None for no records; otherwise the last append, marked `Sync` whatever the
    /// topic's flush policy: once [`weir_storage::store::Store::on_durable`] (or
    /// `wait_durable`) reports it durable, every record of the call is, since the WAL
    /// syncs in index order and this call's appends took increasing indexes.
    ///
    /// Every record is checked ([`records::check`]) and sized before anything is written:
    /// a record the format cannot carry or larger than [`GROUP_RECORD_MAX_BYTES`] fails
    /// the whole call.
    pub fn append_group_records(
        &self,
        records: &[GroupRecord],
        now_ms: i64,
    ) -> Result<Option<Appended>, CoreError> {
        let mut by_partition: BTreeMap<i32, Vec<Encoded>> = BTreeMap::new();
        for record in records {
            records::check(record)?;
            let (key, value) = records::encode(record);
            let size = encoded_size(&key, value.as_deref());
            if size > GROUP_RECORD_MAX_BYTES {
                return Err(CoreError::Store(StoreError::MessageTooLarge {
                    size,
                    max: u32::try_from(GROUP_RECORD_MAX_BYTES).unwrap_or(u32::MAX),
                }));
            }
            by_partition
                .entry(group_partition(record.group()))
                .or_default()
                .push((key, value));
        }
        if by_partition.is_empty() {
            return Ok(None);
        }
        if self.topic(GROUP_TOPIC).is_none() {
            return Err(CoreError::UnknownTopic(GROUP_TOPIC.to_string()));
        }
        let mut last = None;
        for (partition, encoded) in by_partition {
            let id = TopicPartition::new(GROUP_TOPIC, partition);
            let appends = appends_of(
                &encoded,
                now_ms,
                GROUP_RECORD_MAX_BYTES,
                GROUP_APPEND_MAX_BYTES,
            );
            for buffer in appends {
                last = Some(self.append(&id, &buffer, now_ms)?);
            }
        }
        Ok(last.map(|appended| Appended {
            flush: FlushPolicy::Sync,
            ..appended
        }))
    }

    /// Every record of [`GROUP_TOPIC`], partition by partition, each from its log start to
    /// its end in offset order. Records that do not decode are skipped, counted and
    /// logged. An absent topic has no records.
    pub fn replay_group_records(&self) -> Result<Vec<GroupRecord>, CoreError> {
        let mut records = Vec::new();
        self.for_each_group_record(|record| records.push(record))?;
        Ok(records)
    }

    /// [`Broker::replay_group_records`] without collecting: `apply` sees each record in
    /// turn (memory stays one read step, whatever the log's size). Returns the counts.
    pub fn for_each_group_record(
        &self,
        mut apply: impl FnMut(GroupRecord),
    ) -> Result<GroupReplay, CoreError> {
        let mut replay = GroupReplay::default();
        let Some(topic) = self.topic(GROUP_TOPIC) else {
            return Ok(replay);
        };
        for partition in 0..topic.partitions {
            let id = TopicPartition::new(GROUP_TOPIC, partition);
            self.replay_partition(&id, &mut replay, &mut apply)?;
        }
        if replay.unknown + replay.invalid > 0 {
            tracing::warn!(
                unknown = replay.unknown,
                invalid = replay.invalid,
                "skipped group records that do not decode"
            );
        }
        Ok(replay)
    }

    fn replay_partition(
        &self,
        id: &TopicPartition,
        replay: &mut GroupReplay,
        apply: &mut impl FnMut(GroupRecord),
    ) -> Result<(), CoreError> {
        let offsets = self.store.offsets(id)?;
        let mut offset = offsets.log_start_offset;
        while offset < offsets.high_watermark {
            let Some(slice) = self.store.read(id, offset, REPLAY_READ_BYTES)? else {
                break;
            };
            let bytes = slice.read_to_vec().map_err(|source| StoreError::Io {
                op: "read group log",
                path: self.store.dir().to_path_buf(),
                source,
            })?;
            replay_batches(&bytes, offset, replay, apply);
            // Reads always move forward: a slice ends at or past the offset asked for.
            if slice.last_offset < offset {
                break;
            }
            offset = slice.last_offset + 1;
        }
        Ok(())
    }
}

/// Decodes the records at or past `from` of the batches in `bytes`.
pub(crate) fn replay_batches_with(
    bytes: &[u8],
    from: i64,
    max_record_bytes: usize,
    invalid: &mut u64,
    apply: &mut impl FnMut(&[u8], Option<&[u8]>),
) {
    for walked in batch::headers(bytes) {
        let Ok((position, header)) = walked else {
            *invalid += 1;
            return;
        };
        if header.is_control() {
            continue;
        }
        let Some(batch_bytes) = bytes.get(position..position + header.total_len()) else {
            *invalid += 1;
            return;
        };
        let decoded = batch::check_crc(batch_bytes)
            .and_then(|()| batch::decode_records_limited(batch_bytes, max_record_bytes));
        let Ok(batch_records) = decoded else {
            *invalid += u64::try_from(header.record_count.max(1)).unwrap_or(1);
            continue;
        };
        for record in batch_records {
            if header.base_offset + i64::from(record.offset_delta) < from {
                continue;
            }
            let Some(key) = record.key.as_deref() else {
                *invalid += 1;
                continue;
            };
            apply(key, record.value.as_deref());
        }
    }
}

fn replay_batches(
    bytes: &[u8],
    from: i64,
    replay: &mut GroupReplay,
    apply: &mut impl FnMut(GroupRecord),
) {
    for walked in batch::headers(bytes) {
        let Ok((position, header)) = walked else {
            tracing::warn!(offset = from, "a group log batch does not parse");
            replay.invalid += 1;
            return;
        };
        if header.is_control() {
            continue;
        }
        let Some(batch_bytes) = bytes.get(position..position + header.total_len()) else {
            replay.invalid += 1;
            return;
        };
        let decoded = batch::check_crc(batch_bytes)
            .and_then(|()| batch::decode_records_limited(batch_bytes, GROUP_RECORD_MAX_BYTES));
        let batch_records = match decoded {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(base_offset = header.base_offset, %error, "skipping a damaged group log batch");
                replay.invalid += u64::try_from(header.record_count.max(1)).unwrap_or(1);
                continue;
            }
        };
        for record in batch_records {
            if header.base_offset + i64::from(record.offset_delta) < from {
                continue;
            }
            let Some(key) = record.key.as_deref() else {
                replay.invalid += 1;
                continue;
            };
            match records::decode(key, record.value.as_deref()) {
                Ok(decoded) => {
                    replay.records += 1;
                    apply(decoded);
                }
                Err(RecordError::UnknownKeyVersion(_)) => replay.unknown += 1,
                Err(error) => {
                    tracing::debug!(%error, "skipping a group record that does not decode");
                    replay.invalid += 1;
                }
            }
        }
    }
}

/// A record as (key, value), ready for a batch.
pub(crate) type Encoded = (Vec<u8>, Option<Vec<u8>>);

/// The most bytes a record of `key` and `value` takes in a batch.
pub(crate) fn encoded_size(key: &[u8], value: Option<&[u8]>) -> usize {
    batch::HEADER_LEN + key.len() + value.map_or(0, <[u8]>::len) + RECORD_OVERHEAD_MAX_BYTES
}

/// Splits encoded records, in order, into appends: each a buffer of batches of at most
/// `batch_max` bytes (a record was checked to fit one alone), each buffer at most
/// `append_max` bytes unless one batch alone is larger.
pub(crate) fn appends_of(
    encoded: &[Encoded],
    now_ms: i64,
    batch_max: usize,
    append_max: usize,
) -> Vec<Vec<u8>> {
    let mut appends = Vec::new();
    let mut buffer = Vec::new();
    let mut builder = BatchBuilder::new(0, now_ms);
    let mut batch_bytes = batch::HEADER_LEN;
    for (key, value) in encoded {
        let size = encoded_size(key, value.as_deref()) - batch::HEADER_LEN;
        if !builder.is_empty() && batch_bytes + size > batch_max {
            let built = builder.build();
            if !buffer.is_empty() && buffer.len() + built.len() > append_max {
                appends.push(std::mem::take(&mut buffer));
            }
            buffer.extend_from_slice(&built);
            builder = BatchBuilder::new(0, now_ms);
            batch_bytes = batch::HEADER_LEN;
        }
        builder.push(now_ms, Some(key), value.as_deref(), &[]);
        batch_bytes += size;
    }
    if !builder.is_empty() {
        let built = builder.build();
        if !buffer.is_empty() && buffer.len() + built.len() > append_max {
            appends.push(std::mem::take(&mut buffer));
        }
        buffer.extend_from_slice(&built);
    }
    if !buffer.is_empty() {
        appends.push(buffer);
    }
    appends
}

#[cfg(test)]
mod tests;
