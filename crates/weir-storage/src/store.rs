//! The store: one write-ahead log in front of many partition logs — what a shard of weir
//! holds. An append is validated, stamped with its offsets, written to the WAL (the record
//! of truth, and later the Raft log), then applied to its partition log; a `sync` topic's
//! append is acknowledged once an fsync covers its WAL entry, shared with every append that
//! arrived meanwhile (group commit).
//!
//! Checkpoints fsync the partition logs and then purge the WAL up to what they hold, so the
//! WAL stays short and recovery replays only its tail: on open, each partition log recovers
//! its own files, then every WAL entry a partition log does not yet hold is applied again.
//!
//! A batch with a producer id (an idempotent producer's) is checked against the
//! partition's [`crate::producer_state`] under the partition lock before it is stamped: a
//! retry answers its original offsets and appends nothing. That state is written beside
//! the partition at each checkpoint (`producers.snapshot`, not fsynced: an accelerator)
//! and rebuilt on open from the snapshot plus the headers of the batches past it.
//!
//! Transactions ride on the same state (`partition::txn`): a transactional batch opens its
//! producer's transaction, a marker written by [`Store::append_control`] (through the WAL
//! like any append, fenced by the producer's epoch) closes it, and an ABORT is recorded in
//! the partition's aborted-transaction index. [`Store::last_stable_offset`],
//! [`Store::aborted_transactions`] and [`Store::read_bounded`] serve `read_committed`
//! readers. The snapshot (format `WPS2`) carries them; control batches are read whole
//! when the state is rebuilt from the log.
//!
//! Single node today: the term is fixed and the high watermark follows the log end. The
//! cluster issue puts openraft in front of [`Wal`] and moves the high watermark to the
//! commit index.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::batch::{self, BatchError, BatchHeader, TimestampType};
use crate::files::FileCache;
use crate::partition::{PartitionError, PartitionLog, ReadSlice};
use crate::producer_state::{Decision, ProducerBatch, ProducerError, ProducerStates};
use crate::topic_config::{ConfigError, FlushPolicy, TopicConfig};
use crate::wal::{EntryRef, LogId, Wal, WalConfig, WalError};

mod command;

use command::Command;

/// The term of every WAL entry while weir runs as a single node.
const SINGLE_NODE_TERM: u64 = 1;
/// Longest topic name, as Kafka.
pub const TOPIC_NAME_MAX_LEN: usize = 249;
/// WAL entries read per step while replaying.
const REPLAY_CHUNK_BYTES: u64 = 64 * 1024 * 1024;
/// File holding a partition's identity and settings, beside its segments.
const PARTITION_CONFIG_FILE: &str = "partition.config";
/// File holding a partition's idempotent-producer state as of a checkpoint, beside its
/// segments; only an accelerator: the batch headers in the log are the truth.
const PRODUCER_SNAPSHOT_FILE: &str = "producers.snapshot";
/// Bytes of log asked for per step while rebuilding producer state from batch headers;
/// only the headers inside are read.
const PRODUCER_SCAN_STEP_BYTES: u32 = 64 * 1024 * 1024;
/// Largest control batch read whole while rebuilding transaction state: a marker is about
/// 80 bytes; a bigger one (damage, or a control type weir does not write) is not a marker.
const CONTROL_BATCH_MAX_BYTES: usize = 4096;
const PARTITIONS_DIR: &str = "partitions";
const WAL_DIR: &str = "wal";

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub wal: WalConfig,
    /// Open file descriptors the partition logs may hold at once (an LRU cache).
    pub max_open_files: usize,
    /// Checkpoint (flush partition logs, purge the WAL) at least this often…
    pub checkpoint_interval_ms: i64,
    /// …or as soon as the WAL holds this many bytes since the last one.
    pub checkpoint_wal_bytes: u64,
    /// Largest size one batch may decompress to during validation.
    pub max_decompressed_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            wal: WalConfig::default(),
            max_open_files: 1024,
            checkpoint_interval_ms: 30_000,
            checkpoint_wal_bytes: 256 * 1024 * 1024,
            max_decompressed_bytes: batch::MAX_DECOMPRESSED_BYTES_DEFAULT,
        }
    }
}

/// A partition of a topic, named as Kafka names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unknown partition {0}")]
    UnknownPartition(TopicPartition),
    #[error("partition {0} already exists")]
    PartitionExists(TopicPartition),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: &'static str },
    #[error("invalid partition number {0}")]
    InvalidPartitionNumber(i32),
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("write-ahead log: {0}")]
    Wal(#[from] WalError),
    #[error("partition {partition}: {source}")]
    Partition {
        partition: TopicPartition,
        #[source]
        source: PartitionError,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {reason}")]
    BadPartitionConfig { path: PathBuf, reason: String },
    #[error("WAL entry {index} is not a valid command: {reason}")]
    CorruptCommand { index: u64, reason: &'static str },
    #[error(
        "partition {partition}: WAL entry {index} starts at offset {base_offset} past the log end {log_end}"
    )]
    ReplayGap {
        partition: TopicPartition,
        index: u64,
        base_offset: i64,
        log_end: i64,
    },
    #[error("the store has failed and takes no more writes: {reason}")]
    Failed { reason: String },
    #[error(transparent)]
    Producer(#[from] ProducerError),
}

impl StoreError {
    fn partition(partition: &TopicPartition) -> impl FnOnce(PartitionError) -> StoreError + '_ {
        move |source| StoreError::Partition {
            partition: partition.clone(),
            source,
        }
    }
}

/// An append that reached the WAL and its partition log. For a `sync` topic it is not
/// durable until [`Store::wait_durable`] (or [`Store::on_durable`]) says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Set when the topic stamps LogAppendTime.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: i64,
    pub wal_index: u64,
    pub flush: FlushPolicy,
}

/// Offsets of a partition, as Kafka reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    /// The first offset of the earliest open transaction, or the high watermark.
    pub last_stable_offset: i64,
}

/// What opening the store found.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub partitions: usize,
    pub wal_entries_replayed: u64,
    pub wal_entries_skipped: u64,
    pub wal_last_index: Option<u64>,
    /// Torn tails found and cut (WAL and partition logs), with where and why.
    pub truncated: Vec<String>,
    pub indexes_rebuilt: usize,
    pub partition_bytes_scanned: u64,
}

/// What one maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub checkpointed: bool,
    pub segments_deleted: usize,
    pub partitions_compacted: usize,
}

struct Partition {
    id: TopicPartition,
    /// WAL index of this partition's creation: WAL entries of an earlier partition of the
    /// same name (deleted, then created again) carry another one and are never replayed here.
    incarnation: u64,
    state: Mutex<PartitionState>,
}

struct PartitionState {
    log: PartitionLog,
    config: TopicConfig,
    /// Idempotent producers' epochs and last batches, checked and updated under this lock.
    producers: ProducerStates,
    /// Log end offset the snapshot file on disk covers through.
    producers_snapshot_through: i64,
}

/// The WAL position appends are numbered from; held while an append is stamped, written
/// to the WAL and applied, so partition order is WAL order.
struct Writer {
    next_index: u64,
    bytes_since_checkpoint: u64,
    last_checkpoint_ms: Option<i64>,
    failed: Option<String>,
}

pub struct Store {
    dir: PathBuf,
    config: StoreConfig,
    wal: Wal,
    files: Arc<FileCache>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    writer: Mutex<Writer>,
}

impl Store {
    /// Opens (creating if needed) the store in `dir`, recovering the WAL and every
    /// partition log and replaying what the partition logs miss. `now_ms` is the wall clock.
    pub fn open(
        dir: &Path,
        config: StoreConfig,
        now_ms: i64,
    ) -> Result<(Store, RecoveryReport), StoreError> {
        let partitions_dir = dir.join(PARTITIONS_DIR);
        create_dir(&partitions_dir)?;
        let (wal, wal_recovery) = Wal::open(&dir.join(WAL_DIR), config.wal.clone())?;
        let mut report = RecoveryReport {
            wal_last_index: wal_recovery.last.map(|id| id.index),
            ..RecoveryReport::default()
        };
        if let Some(tail) = &wal_recovery.truncated_tail {
            report.truncated.push(format!("{tail:?}"));
        }
        let files = Arc::new(FileCache::new(config.max_open_files));
        let mut partitions = HashMap::new();
        for entry in read_dir(&partitions_dir)? {
            let path = entry;
            if !path.join(PARTITION_CONFIG_FILE).is_file() {
                // A partition whose creation did not finish: nothing was ever acknowledged.
                tracing::warn!(path = %path.display(), "removing incompletely created partition");
                remove_dir(&path)?;
                continue;
            }
            let (id, incarnation, topic_config) = read_partition_config(&path)?;
            let (log, recovery) =
                PartitionLog::open(&path, topic_config.partition.clone(), files.clone(), now_ms)
                    .map_err(StoreError::partition(&id))?;
            if let Some((file, position, reason)) = &recovery.truncated {
                report
                    .truncated
                    .push(format!("{}@{position}: {reason}", file.display()));
            }
            report.indexes_rebuilt += recovery.rebuilt_indexes;
            report.partition_bytes_scanned += recovery.scanned_bytes;
            let (producers, through) =
                recover_producers(&path, &log, now_ms).map_err(StoreError::partition(&id))?;
            let partition = Partition {
                id: id.clone(),
                incarnation,
                state: Mutex::new(PartitionState {
                    log,
                    config: topic_config,
                    producers,
                    producers_snapshot_through: through,
                }),
            };
            partitions.insert(id, Arc::new(partition));
        }
        report.partitions = partitions.len();
        let next_index = wal.last_log_id().map_or(1, |id| id.index + 1);
        let store = Store {
            dir: dir.to_path_buf(),
            config,
            wal,
            files,
            partitions: RwLock::new(partitions),
            writer: Mutex::new(Writer {
                next_index,
                bytes_since_checkpoint: 0,
                last_checkpoint_ms: None,
                failed: None,
            }),
        };
        store.replay(now_ms, &mut report)?;
        Ok((store, report))
    }

    /// Applies every WAL entry that a partition log does not hold yet.
    fn replay(&self, now_ms: i64, report: &mut RecoveryReport) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (self.wal.first_index(), self.wal.last_log_id()) else {
            return Ok(());
        };
        let mut next = first;
        while next <= last.index {
            let entries = self.wal.read(next, last.index + 1, REPLAY_CHUNK_BYTES)?;
            let Some(last_read) = entries.last().map(|e| e.index) else {
                break;
            };
            for entry in entries {
                if self.replay_entry(entry.index, &entry.payload, now_ms)? {
                    report.wal_entries_replayed += 1;
                } else {
                    report.wal_entries_skipped += 1;
                }
            }
            next = last_read + 1;
        }
        // Whatever was replayed is in the partition logs' page cache only: a checkpoint
        // now makes it durable there so the WAL need not replay it again.
        self.checkpoint(now_ms)?;
        Ok(())
    }

    /// Re-applies one WAL entry; false when there was nothing to do.
    fn replay_entry(&self, index: u64, payload: &[u8], now_ms: i64) -> Result<bool, StoreError> {
        let command = Command::decode(payload)
            .map_err(|reason| StoreError::CorruptCommand { index, reason })?;
        let (id, incarnation) = match &command {
            Command::CreatePartition { .. } => return Ok(false),
            Command::Append {
                partition,
                incarnation,
                ..
            }
            | Command::DeleteRecords {
                partition,
                incarnation,
                ..
            } => (partition, *incarnation),
        };
        let Some(partition) = self.partition_if(id, incarnation) else {
            return Ok(false);
        };
        let mut state = lock(&partition.state);
        match command {
            Command::Append { batches, .. } => {
                let mut applied = false;
                for batch in BatchWalk::new(batches) {
                    let (header, bytes) =
                        batch.map_err(|reason| StoreError::CorruptCommand { index, reason })?;
                    let log_end = state.log.log_end_offset();
                    if header.base_offset < log_end {
                        continue;
                    }
                    if header.base_offset > log_end {
                        return Err(StoreError::ReplayGap {
                            partition: partition.id.clone(),
                            index,
                            base_offset: header.base_offset,
                            log_end,
                        });
                    }
                    state
                        .log
                        .append(bytes, now_ms)
                        .map_err(StoreError::partition(&partition.id))?;
                    track_batch(&mut state.producers, &header, bytes, now_ms);
                    applied = true;
                }
                let end = state.log.log_end_offset();
                state.log.set_high_watermark(end);
                Ok(applied)
            }
            Command::DeleteRecords { offset, .. } => {
                if offset <= state.log.log_start_offset() {
                    return Ok(false);
                }
                let new_start = state
                    .log
                    .delete_records(offset)
                    .map_err(StoreError::partition(&partition.id))?;
                state.producers.remove_before(new_start);
                Ok(true)
            }
            Command::CreatePartition { .. } => Ok(false),
        }
    }

    fn partition_if(&self, id: &TopicPartition, incarnation: u64) -> Option<Arc<Partition>> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        partitions
            .get(id)
            .filter(|p| p.incarnation == incarnation)
            .cloned()
    }

    fn partition(&self, id: &TopicPartition) -> Result<Arc<Partition>, StoreError> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        partitions
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::UnknownPartition(id.clone()))
    }

    /// Runs `f` on the partition's state under its lock; partition errors name `id`.
    fn with_state<R>(
        &self,
        id: &TopicPartition,
        f: impl FnOnce(&PartitionState) -> Result<R, PartitionError>,
    ) -> Result<R, StoreError> {
        let partition = self.partition(id)?;
        let state = lock(&partition.state);
        f(&state).map_err(StoreError::partition(id))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Every partition, sorted.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<_> = partitions.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Open file descriptors held by partition logs now.
    pub fn open_files(&self) -> usize {
        self.files.open_count()
    }

    /// Creates an empty partition with `config`; durable when this returns.
    pub fn create_partition(
        &self,
        id: &TopicPartition,
        config: TopicConfig,
    ) -> Result<(), StoreError> {
        validate_topic_name(&id.topic)?;
        if id.partition < 0 {
            return Err(StoreError::InvalidPartitionNumber(id.partition));
        }
        let mut writer = self.writable_writer()?;
        if self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
        {
            return Err(StoreError::PartitionExists(id.clone()));
        }
        let incarnation = writer.next_index;
        let payload = Command::CreatePartition {
            partition: id.clone(),
        }
        .encode();
        self.append_wal(&mut writer, &payload)?;
        let dir = self.partition_dir(id);
        if dir.exists() {
            remove_dir(&dir)?;
        }
        let log = PartitionLog::create(&dir, config.partition.clone(), self.files.clone())
            .map_err(StoreError::partition(id))?;
        write_partition_config(&dir, id, incarnation, &config)?;
        sync_dir(&self.dir.join(PARTITIONS_DIR))?;
        let partition = Partition {
            id: id.clone(),
            incarnation,
            state: Mutex::new(PartitionState {
                log,
                config,
                producers: ProducerStates::default(),
                producers_snapshot_through: 0,
            }),
        };
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), Arc::new(partition));
        Ok(())
    }

    /// Deletes a partition and its data.
    pub fn delete_partition(&self, id: &TopicPartition) -> Result<(), StoreError> {
        let _writer = self.writable_writer()?;
        let removed = self
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let Some(partition) = removed else {
            return Err(StoreError::UnknownPartition(id.clone()));
        };
        let dir = self.partition_dir(id);
        // Drop the log (closing its files) before removing the directory.
        drop(partition);
        remove_dir(&dir)?;
        sync_dir(&self.dir.join(PARTITIONS_DIR))?;
        Ok(())
    }

    /// The partition's settings.
    pub fn topic_config(&self, id: &TopicPartition) -> Result<TopicConfig, StoreError> {
        self.with_state(id, |state| Ok(state.config.clone()))
    }

    /// Replaces the partition's settings; they take effect at once.
    pub fn set_topic_config(
        &self,
        id: &TopicPartition,
        config: TopicConfig,
    ) -> Result<(), StoreError> {
        let partition = self.partition(id)?;
        let mut state = lock(&partition.state);
        write_partition_config(&self.partition_dir(id), id, partition.incarnation, &config)?;
        state.log.set_config(config.partition.clone());
        state.config = config;
        Ok(())
    }

    /// Validates `records` (one or more v2 batches as a producer sent them), stamps their
    /// offsets (and LogAppendTime if the topic asks), writes them to the WAL and applies
    /// them to the partition log. Nothing invalid reaches the WAL. Does not wait for an
    /// fsync: see [`Store::wait_durable`].
    pub fn append(
        &self,
        id: &TopicPartition,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Appended, StoreError> {
        let partition = self.partition(id)?;
        let max_message_bytes = lock(&partition.state).config.max_message_bytes;
        let batches = batch::validate_client_batches(records, self.config.max_decompressed_bytes)?;
        if let Some(big) = batches
            .iter()
            .find(|b| b.range.len() > max_message_bytes as usize)
        {
            return Err(StoreError::MessageTooLarge {
                size: big.range.len(),
                max: max_message_bytes,
            });
        }
        let mut payload = Command::encode_append_prefix(id, partition.incarnation, records.len());
        let records_start = payload.len();
        payload.extend_from_slice(records);

        let producer = match batches.as_slice() {
            [only] => ProducerBatch::of(&only.header),
            several if several.iter().any(|b| b.header.producer_id >= 0) => {
                // Kafka's rule too: one idempotent batch per partition per request, so a
                // retry is recognized (or refused) as a whole.
                return Err(ProducerError::MultipleBatches.into());
            }
            _ => None,
        };

        let mut writer = self.writable_writer()?;
        let mut state = lock(&partition.state);
        let log_append_time_ms =
            (state.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        // Checked under the same locks that number the batch, so two retries of one batch
        // racing each other cannot both append.
        if let Some(producer) = &producer
            && let Decision::Duplicate {
                base_offset,
                last_offset,
            } = state.producers.check(producer)?
        {
            return Ok(Appended {
                base_offset,
                last_offset,
                // Kafka answers the original batch's time; weir does not keep it
                // and answers the time of this retry.
                log_append_time_ms,
                log_start_offset: state.log.log_start_offset(),
                // The original is at or below the last WAL entry written: once that
                // is durable, so is the original.
                wal_index: writer.next_index.saturating_sub(1),
                flush: state.config.flush,
            });
        }
        let base_offset = state.log.log_end_offset();
        let mut next_offset = base_offset;
        for validated in &batches {
            let range = records_start + validated.range.start..records_start + validated.range.end;
            batch::stamp(&mut payload[range], next_offset, log_append_time_ms);
            next_offset += i64::from(validated.header.last_offset_delta) + 1;
        }
        let wal_index = self.append_wal(&mut writer, &payload)?;
        for validated in &batches {
            let range = records_start + validated.range.start..records_start + validated.range.end;
            if let Err(source) = state.log.append(&payload[range], now_ms) {
                // The WAL holds the entry but the partition log does not: stop taking writes
                // rather than number later appends on top of a hole. Recovery replays it.
                let reason = format!("applying WAL entry {wal_index} to {id}: {source}");
                writer.failed = Some(reason);
                return Err(StoreError::Partition {
                    partition: id.clone(),
                    source,
                });
            }
        }
        let log_end = state.log.log_end_offset();
        assert_eq!(
            log_end, next_offset,
            "partition log end follows the stamped offsets"
        );
        state.log.set_high_watermark(log_end);
        if let Some(producer) = &producer {
            state
                .producers
                .record(producer, base_offset, next_offset - 1, now_ms);
        }
        for validated in &batches {
            let range = records_start + validated.range.start..records_start + validated.range.end;
            if let Ok(header) = BatchHeader::parse(&payload[range]) {
                // Client batches are never control batches (validation refused them).
                state.producers.record_txn(&header, None);
            }
        }
        Ok(Appended {
            base_offset,
            last_offset: next_offset - 1,
            log_append_time_ms,
            log_start_offset: state.log.log_start_offset(),
            wal_index,
            flush: state.config.flush,
        })
    }

    /// [`Store::append`], then, for a `sync` topic, waits for the fsync that covers it.
    pub fn append_durable(
        &self,
        id: &TopicPartition,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Appended, StoreError> {
        let appended = self.append(id, records, now_ms)?;
        self.wait_durable(&appended)?;
        Ok(appended)
    }

    /// Blocks until `appended` is durable under its topic's flush policy (at once for
    /// `async`). Concurrent waiters share fsyncs.
    pub fn wait_durable(&self, appended: &Appended) -> Result<(), StoreError> {
        match appended.flush {
            FlushPolicy::Async => Ok(()),
            FlushPolicy::Sync => Ok(self.wal.wait_synced(appended.wal_index)?),
        }
    }

    /// Calls `done` once `appended` is durable under its topic's flush policy; for callers
    /// that must not block (an async front end).
    pub fn on_durable(
        &self,
        appended: &Appended,
        done: Box<dyn FnOnce(Result<(), WalError>) + Send>,
    ) {
        match appended.flush {
            FlushPolicy::Async => done(Ok(())),
            FlushPolicy::Sync => self.wal.on_synced(appended.wal_index, done),
        }
    }

    /// Whole stored batches from the one holding `offset`, below the high watermark, at
    /// least one batch, about `max_bytes` at most. `None` at the high watermark.
    pub fn read(
        &self,
        id: &TopicPartition,
        offset: i64,
        max_bytes: u32,
    ) -> Result<Option<ReadSlice>, StoreError> {
        self.with_state(id, |state| {
            let upper_bound = state.log.high_watermark();
            state.log.read(offset, upper_bound, max_bytes)
        })
    }

    /// [`Store::read`] below `upper_bound` too (a `read_committed` reader passes the last
    /// stable offset); never past the high watermark.
    pub fn read_bounded(
        &self,
        id: &TopicPartition,
        offset: i64,
        upper_bound: i64,
        max_bytes: u32,
    ) -> Result<Option<ReadSlice>, StoreError> {
        self.with_state(id, |state| {
            let upper_bound = upper_bound.min(state.log.high_watermark());
            state.log.read(offset, upper_bound, max_bytes)
        })
    }

    /// The first offset of the earliest open transaction, or the high watermark.
    pub fn last_stable_offset(&self, id: &TopicPartition) -> Result<i64, StoreError> {
        self.with_state(id, |state| {
            Ok(state
                .producers
                .txns()
                .last_stable_offset(state.log.high_watermark()))
        })
    }

    /// Aborted transactions a `read_committed` reader of `fetch_offset..upper_bound` must
    /// skip: (producer id, first offset) of each whose marker is at or past `fetch_offset`
    /// and which began before `upper_bound` (what Fetch v4+ answers).
    pub fn aborted_transactions(
        &self,
        id: &TopicPartition,
        fetch_offset: i64,
        upper_bound: i64,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        self.with_state(id, |state| {
            Ok(state
                .producers
                .txns()
                .aborted(fetch_offset, upper_bound)
                .into_iter()
                .map(|t| (t.producer_id, t.first_offset))
                .collect())
        })
    }

    /// Writes one transaction marker (a control batch: COMMIT when `commit`, else ABORT)
    /// for `producer_id` — the broker's own batch, validated like a stored one, through the
    /// WAL like any append. A marker whose epoch is older than the producer's current one
    /// is refused ([`ProducerError::InvalidEpoch`]).
    pub fn append_control(
        &self,
        id: &TopicPartition,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<Appended, StoreError> {
        let partition = self.partition(id)?;
        let mut builder = batch::BatchBuilder::new(0, now_ms);
        builder.attributes = batch::END_TXN_MARKER_ATTRIBUTES;
        builder.producer_id = producer_id;
        builder.producer_epoch = producer_epoch;
        builder.push_record(batch::end_txn_marker_record(commit, coordinator_epoch));
        let marker = builder.build();
        let validated = batch::validate_batches_from(
            &marker,
            self.config.max_decompressed_bytes,
            batch::Origin::Log,
        )?;
        assert_eq!(validated.len(), 1, "a marker is one batch");
        let mut payload = Command::encode_append_prefix(id, partition.incarnation, marker.len());
        let records_start = payload.len();
        payload.extend_from_slice(&marker);

        let mut writer = self.writable_writer()?;
        let mut state = lock(&partition.state);
        state.producers.check_marker(producer_id, producer_epoch)?;
        let log_append_time_ms =
            (state.config.timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        let offset = state.log.log_end_offset();
        batch::stamp(&mut payload[records_start..], offset, log_append_time_ms);
        let wal_index = self.append_wal(&mut writer, &payload)?;
        let stamped = &payload[records_start..];
        if let Err(source) = state.log.append(stamped, now_ms) {
            let reason = format!("applying WAL entry {wal_index} to {id}: {source}");
            writer.failed = Some(reason);
            return Err(StoreError::Partition {
                partition: id.clone(),
                source,
            });
        }
        let log_end = state.log.log_end_offset();
        assert_eq!(log_end, offset + 1, "a marker takes one offset");
        state.log.set_high_watermark(log_end);
        let header = BatchHeader::parse(stamped)?;
        track_batch(&mut state.producers, &header, stamped, now_ms);
        Ok(Appended {
            base_offset: offset,
            last_offset: offset,
            log_append_time_ms,
            log_start_offset: state.log.log_start_offset(),
            wal_index,
            flush: state.config.flush,
        })
    }

    pub fn offsets(&self, id: &TopicPartition) -> Result<PartitionOffsets, StoreError> {
        self.with_state(id, |state| {
            Ok(PartitionOffsets {
                log_start_offset: state.log.log_start_offset(),
                log_end_offset: state.log.log_end_offset(),
                high_watermark: state.log.high_watermark(),
                last_stable_offset: state
                    .producers
                    .txns()
                    .last_stable_offset(state.log.high_watermark()),
            })
        })
    }

    /// Bytes the partition's segments hold.
    pub fn size_bytes(&self, id: &TopicPartition) -> Result<u64, StoreError> {
        self.with_state(id, |state| Ok(state.log.size_bytes()))
    }

    /// First offset whose timestamp is at least `timestamp_ms`, with that timestamp.
    pub fn offset_for_timestamp(
        &self,
        id: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        self.with_state(id, |state| state.log.offset_for_timestamp(timestamp_ms))
    }

    /// Offset and timestamp of the record with the largest timestamp.
    pub fn max_timestamp(&self, id: &TopicPartition) -> Result<Option<(i64, i64)>, StoreError> {
        self.with_state(id, |state| Ok(state.log.max_timestamp()))
    }

    /// Offsets of records carrying `key` (record key or a `KEYS` header word).
    pub fn find_by_key(
        &self,
        id: &TopicPartition,
        key: &[u8],
        time_range_ms: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        self.with_state(id, |state| state.log.find_by_key(key, time_range_ms, limit))
    }

    /// Offsets at or after `from_offset` of records whose tag hash is one of `hashes`.
    pub fn find_by_tags(
        &self,
        id: &TopicPartition,
        from_offset: i64,
        hashes: &[i32],
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        self.with_state(id, |state| {
            state.log.find_by_tags(from_offset, hashes, limit)
        })
    }

    /// Kafka's DeleteRecords: advances the log start offset to `offset` (−1: the high
    /// watermark). Returns the new log start offset.
    pub fn delete_records(&self, id: &TopicPartition, offset: i64) -> Result<i64, StoreError> {
        let partition = self.partition(id)?;
        let mut writer = self.writable_writer()?;
        let mut state = lock(&partition.state);
        let offset = if offset == -1 {
            state.log.high_watermark()
        } else {
            offset
        };
        let new_start = state
            .log
            .delete_records(offset)
            .map_err(StoreError::partition(id))?;
        state.producers.remove_before(new_start);
        let payload = Command::DeleteRecords {
            partition: id.clone(),
            incarnation: partition.incarnation,
            offset,
        }
        .encode();
        self.append_wal(&mut writer, &payload)?;
        Ok(new_start)
    }

    /// Retention, compaction and, when due, a checkpoint. Run periodically.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintenanceReport, StoreError> {
        let mut report = MaintenanceReport::default();
        for partition in self.all_partitions() {
            let mut state = lock(&partition.state);
            state.producers.expire(now_ms);
            let policy = state.config.partition.cleanup_policy;
            if policy.delete {
                let outcome = state
                    .log
                    .enforce_retention(now_ms)
                    .map_err(StoreError::partition(&partition.id))?;
                report.segments_deleted += outcome.segments_deleted;
                let log_start = state.log.log_start_offset();
                state.producers.remove_before(log_start);
            }
            if policy.compact {
                let outcome = state
                    .log
                    .compact(now_ms)
                    .map_err(StoreError::partition(&partition.id))?;
                if outcome.segments_rewritten > 0 {
                    report.partitions_compacted += 1;
                }
            }
        }
        if self.checkpoint_due(now_ms) {
            self.checkpoint(now_ms)?;
            report.checkpointed = true;
        }
        Ok(report)
    }

    fn checkpoint_due(&self, now_ms: i64) -> bool {
        let writer = lock(&self.writer);
        writer.bytes_since_checkpoint >= self.config.checkpoint_wal_bytes
            || writer
                .last_checkpoint_ms
                .is_none_or(|last| now_ms - last >= self.config.checkpoint_interval_ms)
    }

    /// Flushes every partition log, then purges the WAL up to what they now hold.
    pub fn checkpoint(&self, now_ms: i64) -> Result<(), StoreError> {
        // Everything up to `applied` is in the partition logs: appends apply under the
        // writer lock before they release it.
        let applied = {
            let mut writer = lock(&self.writer);
            writer.bytes_since_checkpoint = 0;
            writer.last_checkpoint_ms = Some(now_ms);
            writer.next_index - 1
        };
        for partition in self.all_partitions() {
            // The bulk of a flush — writing back the data appended since the last one — runs
            // without the partition's lock, so appends to it do not wait for it; the flush
            // under the lock then only writes what arrived meanwhile, indexes and metadata.
            let unflushed = lock(&partition.state)
                .log
                .unflushed_files()
                .map_err(StoreError::partition(&partition.id))?;
            for file in unflushed {
                file.sync_data().map_err(|source| StoreError::Io {
                    op: "fsync segment",
                    path: self.partition_dir(&partition.id),
                    source,
                })?;
            }
            let mut state = lock(&partition.state);
            state
                .log
                .flush()
                .map_err(StoreError::partition(&partition.id))?;
            self.snapshot_producers(&partition.id, &mut state)?;
        }
        if applied > 0 {
            self.wal.purge_up_to(LogId {
                term: SINGLE_NODE_TERM,
                index: applied,
            })?;
        }
        Ok(())
    }

    /// Checks every stored batch's CRC; the first damage found is reported with its file
    /// and position.
    pub fn verify(&self) -> Result<(), StoreError> {
        for partition in self.all_partitions() {
            let state = lock(&partition.state);
            state
                .log
                .verify()
                .map_err(StoreError::partition(&partition.id))?;
        }
        Ok(())
    }

    /// Checkpoints and closes the WAL.
    pub fn close(self, now_ms: i64) -> Result<(), StoreError> {
        self.checkpoint(now_ms)?;
        self.wal.close()?;
        Ok(())
    }

    /// Writes the partition's producer snapshot when it is stale. Not fsynced: a snapshot
    /// lost or torn in a crash only makes the next open scan more batch headers (a torn
    /// one fails its CRC), since the log itself is the truth.
    fn snapshot_producers(
        &self,
        id: &TopicPartition,
        state: &mut PartitionState,
    ) -> Result<(), StoreError> {
        let log_end = state.log.log_end_offset();
        if !state.producers.is_dirty() && state.producers_snapshot_through == log_end {
            return Ok(());
        }
        let dir = self.partition_dir(id);
        let path = dir.join(PRODUCER_SNAPSHOT_FILE);
        let tmp = dir.join(format!("{PRODUCER_SNAPSHOT_FILE}.tmp"));
        let bytes = state.producers.encode(log_end);
        fs::write(&tmp, &bytes)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(io_err("write", &path))?;
        state.producers.mark_clean();
        state.producers_snapshot_through = log_end;
        Ok(())
    }

    /// The epoch the partition knows for `producer_id` (tests and diagnostics).
    pub fn producer_epoch(
        &self,
        id: &TopicPartition,
        producer_id: i64,
    ) -> Result<Option<i16>, StoreError> {
        self.with_state(id, |state| Ok(state.producers.epoch(producer_id)))
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        let partitions = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        partitions.values().cloned().collect()
    }

    fn writable_writer(&self) -> Result<MutexGuard<'_, Writer>, StoreError> {
        let writer = lock(&self.writer);
        if let Some(reason) = &writer.failed {
            return Err(StoreError::Failed {
                reason: reason.clone(),
            });
        }
        Ok(writer)
    }

    /// Appends one command at the writer's next index.
    fn append_wal(&self, writer: &mut Writer, payload: &[u8]) -> Result<u64, StoreError> {
        let index = writer.next_index;
        let entry = EntryRef {
            term: SINGLE_NODE_TERM,
            index,
            payload,
        };
        self.wal.append(&[entry])?;
        writer.next_index += 1;
        writer.bytes_since_checkpoint += payload.len() as u64;
        Ok(index)
    }

    fn partition_dir(&self, id: &TopicPartition) -> PathBuf {
        self.dir.join(PARTITIONS_DIR).join(id.to_string())
    }
}

/// A partition's producer state on open: its snapshot (when readable), then the headers of
/// the batches the log holds past it. Returns the state and the offset the snapshot on
/// disk covers through (0 when there is none, so the next checkpoint writes one).
fn recover_producers(
    dir: &Path,
    log: &PartitionLog,
    now_ms: i64,
) -> Result<(ProducerStates, i64), PartitionError> {
    let path = dir.join(PRODUCER_SNAPSHOT_FILE);
    let snapshot = match fs::metadata(&path) {
        Ok(meta) if meta.len() > crate::producer_state::SNAPSHOT_MAX_BYTES as u64 => {
            Err("larger than any valid snapshot".to_string())
        }
        Ok(_) => fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| ProducerStates::decode(&bytes).map_err(str::to_string)),
        Err(e) => Err(e.to_string()),
    };
    let (mut producers, through) = match snapshot {
        Ok((producers, through)) if through <= log.log_end_offset() => (producers, through),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "producer snapshot is past the log end; rebuilding from the log");
            (ProducerStates::default(), 0)
        }
        Err(reason) => {
            if log.log_end_offset() > log.log_start_offset() {
                tracing::info!(path = %path.display(), %reason, "no usable producer snapshot; rebuilding from the log");
            }
            (ProducerStates::default(), 0)
        }
    };
    let log_end = log.log_end_offset();
    let mut offset = through.max(log.log_start_offset());
    while offset < log_end {
        let Some(slice) = log.read(offset, log_end, PRODUCER_SCAN_STEP_BYTES)? else {
            break;
        };
        let mut position = slice.position;
        let end = slice.position + slice.len;
        let mut header_bytes = [0u8; batch::HEADER_LEN];
        while position < end {
            slice
                .file
                .read_exact_at(&mut header_bytes, position)
                .map_err(|e| PartitionError::Io {
                    op: "read batch header",
                    path: dir.to_path_buf(),
                    source: e,
                })?;
            let header = BatchHeader::parse(&header_bytes).map_err(|e| PartitionError::Io {
                op: "parse batch header",
                path: dir.to_path_buf(),
                source: io::Error::other(e.to_string()),
            })?;
            let last = header.base_offset + i64::from(header.last_offset_delta);
            if last >= offset && header.has_producer_id() {
                // A marker's type is in its record: read the (small) control batch whole.
                let whole = if header.is_control() && header.total_len() <= CONTROL_BATCH_MAX_BYTES
                {
                    let mut bytes = vec![0u8; header.total_len()];
                    slice
                        .file
                        .read_exact_at(&mut bytes, position)
                        .map_err(|e| PartitionError::Io {
                            op: "read control batch",
                            path: dir.to_path_buf(),
                            source: e,
                        })?;
                    bytes
                } else {
                    Vec::new()
                };
                track_batch(&mut producers, &header, &whole, now_ms);
            }
            position += header.total_len() as u64;
        }
        offset = slice.last_offset + 1;
    }
    producers.remove_before(log.log_start_offset());
    Ok((producers, through))
}

/// Feeds one stored batch to the partition's producer and transaction state. `bytes` is
/// the whole batch for a control batch (its record says COMMIT or ABORT); otherwise only
/// the header is looked at.
fn track_batch(producers: &mut ProducerStates, header: &BatchHeader, bytes: &[u8], now_ms: i64) {
    if header.is_control() {
        if header.has_producer_id() {
            producers.record_marker(header.producer_id, header.producer_epoch, now_ms);
        }
        producers.record_txn(header, control_type(bytes));
        return;
    }
    if let Some(producer) = ProducerBatch::of(header) {
        let last = header.base_offset + i64::from(header.last_offset_delta);
        producers.record(&producer, header.base_offset, last, now_ms);
    }
    producers.record_txn(header, None);
}

/// What a stored control batch's record says; `None` when it does not decode (it passed
/// validation when it was written, so only damage gets here).
fn control_type(batch: &[u8]) -> Option<batch::ControlType> {
    let records = batch::decode_records(batch).ok()?;
    let record = records.first()?;
    batch::control_record(record).ok().map(|c| c.control_type)
}

/// Kafka's rule (letters, digits, `.`, `_`, `-`) widened by RocketMQ's `%` and `|`, which
/// its retry and dead-letter topics use.
pub fn validate_topic_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason| {
        Err(StoreError::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > TOPIC_NAME_MAX_LEN {
        return invalid("longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not topic names");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-%|".contains(&b))
    {
        return invalid("only letters, digits, '.', '_', '-', '%' and '|' are allowed");
    }
    Ok(())
}

/// Walks the batches of a stamped, previously validated buffer (a WAL entry's records).
struct BatchWalk<'a> {
    buf: &'a [u8],
}

impl<'a> BatchWalk<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl<'a> Iterator for BatchWalk<'a> {
    type Item = Result<(BatchHeader, &'a [u8]), &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let step = || -> Result<(BatchHeader, &'a [u8], &'a [u8]), &'static str> {
            let header = BatchHeader::parse(self.buf).map_err(|_| "bad batch header")?;
            let total = header.total_len();
            if total > self.buf.len() {
                return Err("batch exceeds the entry");
            }
            let (batch, rest) = self.buf.split_at(total);
            batch::check_crc(batch).map_err(|_| "batch CRC mismatch")?;
            Ok((header, batch, rest))
        };
        match step() {
            Ok((header, batch, rest)) => {
                self.buf = rest;
                Some(Ok((header, batch)))
            }
            Err(reason) => {
                self.buf = &[];
                Some(Err(reason))
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug that already failed loudly; the data under it
    // is plain state, so carry on rather than cascade panics.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn create_dir(path: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(path).map_err(io_err("create directory", path))
}

fn remove_dir(path: &Path) -> Result<(), StoreError> {
    fs::remove_dir_all(path).map_err(io_err("remove directory", path))
}

fn sync_dir(path: &Path) -> Result<(), StoreError> {
    fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(io_err("fsync directory", path))
}

fn read_dir(path: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(path).map_err(io_err("list", path))? {
        let entry = entry.map_err(io_err("list", path))?;
        if entry
            .file_type()
            .map_err(io_err("stat", &entry.path()))?
            .is_dir()
        {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// `partition.config`: `topic=`, `partition=`, `incarnation=` then the topic settings,
/// one `key=value` a line; written to a temporary file, fsynced and renamed into place.
fn write_partition_config(
    dir: &Path,
    id: &TopicPartition,
    incarnation: u64,
    config: &TopicConfig,
) -> Result<(), StoreError> {
    let mut text = format!(
        "topic={}\npartition={}\nincarnation={incarnation}\n",
        id.topic, id.partition
    );
    for (key, value) in config.to_pairs() {
        text.push_str(&format!("{key}={value}\n"));
    }
    let path = dir.join(PARTITION_CONFIG_FILE);
    let tmp = dir.join(format!("{PARTITION_CONFIG_FILE}.tmp"));
    let write = || -> io::Result<()> {
        use std::io::Write;
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(io_err("write", &path))
}

/// Largest `partition.config` read back; it is a few hundred bytes.
const PARTITION_CONFIG_MAX_BYTES: u64 = 64 * 1024;

fn read_partition_config(dir: &Path) -> Result<(TopicPartition, u64, TopicConfig), StoreError> {
    let path = dir.join(PARTITION_CONFIG_FILE);
    let bad = |reason: String| StoreError::BadPartitionConfig {
        path: path.clone(),
        reason,
    };
    let len = fs::metadata(&path).map_err(io_err("stat", &path))?.len();
    if len > PARTITION_CONFIG_MAX_BYTES {
        return Err(bad(format!("{len} bytes is larger than any valid file")));
    }
    let text = fs::read_to_string(&path).map_err(io_err("read", &path))?;
    let (mut topic, mut number, mut incarnation) = (None, None, None);
    let mut config = TopicConfig::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad(format!("line {line:?}")))?;
        match key {
            "topic" => topic = Some(value.to_string()),
            "partition" => number = Some(value.parse().map_err(|_| bad(format!("{line:?}")))?),
            "incarnation" => {
                incarnation = Some(value.parse().map_err(|_| bad(format!("{line:?}")))?)
            }
            _ => config.set(key, value).map_err(|e| bad(e.to_string()))?,
        }
    }
    match (topic, number, incarnation) {
        (Some(topic), Some(partition), Some(incarnation)) => {
            validate_topic_name(&topic).map_err(|e| bad(e.to_string()))?;
            Ok((TopicPartition { topic, partition }, incarnation, config))
        }
        _ => Err(bad("topic, partition or incarnation missing".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_and_rocketmq_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("%RETRY%group|a").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
