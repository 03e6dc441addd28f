//! Partition logs: per partition, segment files of stored record batches with their
//! indexes (offset, time, key, tag), retention, DeleteRecords, compaction and recovery.
//!
//! # What it owns
//! One directory per partition:
//! ```text
//! <dir>/00000000000000000000.log        batches exactly as validated and stamped, back to back
//!      /00000000000000000000.index      sparse offset → position (every index_interval_bytes)
//!      /00000000000000000000.timeindex  max timestamp so far → offset, plus the segment's max
//!      /00000000000000000000.keyindex   key index (sealed segments; see key_index)
//!      /00000000000000000000.tagindex   tag index (sealed segments; see tag_index)
//!      /partition.meta                  log start offset, recovery point (atomic, checksummed)
//! ```
//! Open and aborted transactions ([`txn`]) are pure state kept by the store with the
//! producer state, persisted in its snapshot and rebuilt from the batches when it is lost.
//! Data is written with positioned, buffered writes through the shared [`FileCache`] and
//! fsynced only by [`PartitionLog::flush`]; durability before that is the WAL's job, which
//! re-applies entries past [`PartitionLog::recovery_point`] after a crash.
//!
//! A `.timeindex` entry `(t, o)` means every record of the segment before offset `o` has a
//! timestamp at most `t` (Kafka keeps the offset *of* the max instead; this form lets a
//! timestamp search start at `o` and still find the first record at or after a time when
//! timestamps are not monotonic). Index files hold a header (base offset, bytes covered)
//! and a CRC-32C trailer; `flush` rewrites those of a segment that changed (tmp, fsync,
//! rename), so the active segment's are rewritten whole on each flush after appends — a
//! cost proportional to the index (about 0.5% of the segment), paid off the produce path.
//! Key and tag indexes are built lazily (decoding the segment) on first lookup or append
//! after open, and persisted only for sealed segments.
//!
//! # What it must never do
//! Serve a byte it has not accepted (a torn tail is truncated on open, never read); trust a
//! length read from disk before checking it against the bytes present and a named bound;
//! silently drop flushed data (damage before the recovery point is reported by `verify`,
//! or makes `open` fail, never truncated); read a clock (time is passed in); hold a file
//! descriptor per segment (handles come from the bounded cache).

pub mod compaction;
pub mod key_index;
mod meta;
mod segment;
pub mod tag_index;
pub mod txn;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchError, BatchHeader, Record};
use crate::files::FileCache;
use crate::message;

use meta::{Meta, MetaProblem, io, sync_dir};
pub use segment::{MAX_BATCH_BYTES, MAX_SEGMENT_BYTES};
use segment::{ScanEnd, SearchIndex, Segment, Walker, segment_files};

/// Why an index file could not be used; the caller rebuilds it from its segment.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path} is missing")]
    Missing { path: PathBuf },
    #[error("index {path} is damaged at byte {position}: {reason}")]
    Damaged {
        path: PathBuf,
        position: u64,
        reason: &'static str,
    },
    /// A segment read by compaction holds a batch that does not parse or check.
    #[error("segment {path} has a corrupt batch at byte {position}: {source}")]
    CorruptBatch {
        path: PathBuf,
        position: u64,
        #[source]
        source: crate::batch::BatchError,
    },
    /// A segment read by compaction holds a batch whose offsets go backwards.
    #[error(
        "segment {path}: batch at byte {position} has base offset {base_offset}, expected at least {expected_min}"
    )]
    BatchOutOfOrder {
        path: PathBuf,
        position: u64,
        base_offset: i64,
        expected_min: i64,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Candidates examined per segment by a key lookup: the key index may return hash
/// collisions, and a hot key must not turn one lookup into a scan of the whole log.
pub const MAX_KEY_CANDIDATES_PER_SEGMENT: usize = 4096;
/// Smallest `segment_bytes` accepted: below a batch header, every append would roll.
const MIN_SEGMENT_BYTES: u64 = 1024;

/// Kafka's `cleanup.policy`: `delete`, `compact` or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        Self {
            delete: true,
            compact: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionConfig {
    /// Kafka `segment.bytes`: roll when the next batch would take the segment past this.
    pub segment_bytes: u64,
    /// Kafka `segment.ms`: roll an active segment older than this (by `now_ms`).
    pub segment_ms: i64,
    /// Kafka `index.interval.bytes`: spacing of sparse offset/time index entries.
    pub index_interval_bytes: u32,
    /// Kafka `retention.ms`; -1 = unlimited.
    pub retention_ms: i64,
    /// Kafka `retention.bytes`; -1 = unlimited.
    pub retention_bytes: i64,
    pub cleanup_policy: CleanupPolicy,
    /// Kafka `delete.retention.ms`: how long compaction keeps tombstones.
    pub delete_retention_ms: i64,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Default for PartitionConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            index_interval_bytes: 4096,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::default(),
            delete_retention_ms: DAY_MS,
        }
    }
}

impl PartitionConfig {
    fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes
            .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("offset {offset} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("batch base offset {got} is not the log end offset {expected}")]
    NotContiguous { expected: i64, got: i64 },
    #[error("{path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("batch at byte {position} of {path:?}: {source}")]
    Batch {
        path: Option<PathBuf>,
        position: u64,
        #[source]
        source: BatchError,
    },
    #[error("append takes exactly one batch: buffer is {len} bytes, the batch {batch_len}")]
    NotOneBatch { len: usize, batch_len: usize },
    #[error("batch of {len} bytes is above the {max}-byte bound")]
    BatchTooLarge { len: usize, max: u64 },
    #[error("cannot delete records up to {offset}: past the high watermark {high_watermark}")]
    DeleteBeyondHighWatermark { offset: i64, high_watermark: i64 },
    #[error("cannot truncate to {offset}: below the log start offset {log_start}")]
    TruncateBelowLogStart { offset: i64, log_start: i64 },
    #[error("{path} already holds a partition log")]
    AlreadyExists { path: PathBuf },
    #[error("segment {path} overlaps its predecessor ending at offset {previous_end}")]
    Overlap { path: PathBuf, previous_end: i64 },
    #[error("compaction output {path} refused: {reason}")]
    CompactionOutput { path: PathBuf, reason: String },
    #[error("index: {0}")]
    Index(#[from] IndexError),
}

/// Whole batches of one segment, ready for `sendfile`: `len` bytes at `position` of `file`.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: u64,
    /// Base offset of the first batch (may be below the offset asked for).
    pub first_offset: i64,
    /// Last offset of the last batch.
    pub last_offset: i64,
}

impl ReadSlice {
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let len = usize::try_from(self.len).map_err(std::io::Error::other)?;
        let mut out = vec![0; len];
        self.file.read_exact_at(&mut out, self.position)?;
        Ok(out)
    }
}

/// What `open` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecovery {
    pub segments: usize,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Where a torn or corrupt tail was cut: file, position, why.
    pub truncated: Option<(PathBuf, u64, String)>,
    /// Segments whose offset/time indexes were missing or damaged and were rebuilt.
    pub rebuilt_indexes: usize,
    /// Data bytes walked (0 when every index was intact and everything was flushed).
    pub scanned_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionOutcome {
    pub segments_rewritten: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_dropped: u64,
}

/// One partition's log. Segments ascend by base offset; the last one is active.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: PartitionConfig,
    files: Arc<FileCache>,
    segments: Vec<Segment>,
    log_start_offset: i64,
    high_watermark: i64,
    recovery_point: i64,
}

impl PartitionLog {
    /// Creates an empty log in `dir` (created if needed; must not hold a log already).
    pub fn create(
        dir: &Path,
        config: PartitionConfig,
        files: Arc<FileCache>,
    ) -> Result<Self, PartitionError> {
        std::fs::create_dir_all(dir).map_err(|e| io("create directory", dir, e))?;
        if dir.join(meta::META_FILE).exists() || !list_segments(dir)?.is_empty() {
            return Err(PartitionError::AlreadyExists {
                path: dir.to_path_buf(),
            });
        }
        let segment = Segment::new(dir, 0, 0);
        files
            .create(&segment.path)
            .map_err(|e| io("create segment", &segment.path, e))?;
        // No meta yet: a log without one opens with a full checked scan from offset 0, which
        // is exactly right for a log never flushed; creating 10,000 partitions then costs
        // no fsyncs.
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            files,
            segments: vec![segment],
            log_start_offset: 0,
            high_watermark: 0,
            recovery_point: 0,
        })
    }

    /// Opens an existing log: loads intact indexes, scans what follows the recovery point
    /// (CRC-checking each batch) and cuts the log at the first torn or corrupt batch there.
    pub fn open(
        dir: &Path,
        config: PartitionConfig,
        files: Arc<FileCache>,
        now_ms: i64,
    ) -> Result<(Self, PartitionRecovery), PartitionError> {
        remove_leftovers(dir)?;
        let meta = match Meta::read(dir)? {
            Ok(meta) => meta,
            Err(MetaProblem::Missing | MetaProblem::Damaged) => Meta {
                log_start_offset: 0,
                recovery_point: 0,
                active_base_offset: -1,
                active_roll_base_ms: now_ms,
            },
        };
        let mut bases = list_segments(dir)?;
        if bases.is_empty() {
            let segment = Segment::new(dir, meta.log_start_offset, now_ms);
            files
                .create(&segment.path)
                .map_err(|e| io("create segment", &segment.path, e))?;
            bases.push(meta.log_start_offset);
        }
        let interval = config.index_interval_bytes;
        let mut recovery = PartitionRecovery {
            segments: 0,
            log_start_offset: 0,
            log_end_offset: 0,
            truncated: None,
            rebuilt_indexes: 0,
            scanned_bytes: 0,
        };
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let mut segment = Segment::new(dir, base, now_ms);
            let file = files
                .get(&segment.path)
                .map_err(|e| io("open segment", &segment.path, e))?;
            let file_len = file
                .metadata()
                .map_err(|e| io("stat segment", &segment.path, e))?
                .len();
            let from = match segment.load_indexes(file_len) {
                Ok(covered) => covered,
                Err(_) => {
                    recovery.rebuilt_indexes += 1;
                    0
                }
            };
            let (end, scanned) =
                segment.scan(&file, from, file_len, meta.recovery_point, interval)?;
            recovery.scanned_bytes += scanned;
            if let Some(previous) = segments.last()
                && segment.base_offset < previous.next_offset
            {
                return Err(PartitionError::Overlap {
                    path: segment.path.clone(),
                    previous_end: previous.next_offset,
                });
            }
            let whole = segment.next_offset <= meta.recovery_point && segment.size == file_len;
            segment.flushed_size = if whole { segment.size } else { 0 };
            if let ScanEnd::Bad { position, reason } = end {
                tracing::warn!(path = %segment.path.display(), position, %reason, "truncating torn or corrupt tail");
                file.set_len(position)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io("truncate segment", &segment.path, e))?;
                for &later in bases.get(i + 1..).unwrap_or_default().iter().rev() {
                    remove_segment_files(dir, later, &files)?;
                }
                recovery.truncated = Some((segment.path.clone(), position, reason));
                segments.push(segment);
                break;
            }
            segments.push(segment);
        }
        // A sealed segment ends where the next begins: compaction may have emptied its tail
        // (or all of it), and its contents alone would then understate its range.
        for i in 1..segments.len() {
            let next_base = segments[i].base_offset;
            let previous = &mut segments[i - 1];
            previous.next_offset = previous.next_offset.max(next_base);
        }
        let Some(active) = segments.last_mut() else {
            unreachable!("at least one segment was listed or created");
        };
        // The active segment never keeps key/tag files: they would go stale on the next append.
        let [_, _, key_path, tag_path, _] = segment_files(dir, active.base_offset);
        remove_if_exists(&key_path)?;
        remove_if_exists(&tag_path)?;
        if meta.active_base_offset == active.base_offset {
            active.roll_base_ms = meta.active_roll_base_ms;
        }
        let log_end = active.next_offset;
        let first_base = segments.first().map_or(0, |s| s.base_offset);
        let mut log = Self {
            dir: dir.to_path_buf(),
            config,
            files,
            segments,
            log_start_offset: meta.log_start_offset.max(first_base).min(log_end),
            high_watermark: log_end,
            recovery_point: meta.recovery_point.min(log_end),
        };
        if recovery.truncated.is_some() {
            sync_dir(dir)?;
            log.write_meta()?;
        }
        log.remove_segments_below_log_start()?;
        recovery.segments = log.segments.len();
        recovery.log_start_offset = log.log_start_offset;
        recovery.log_end_offset = log.log_end_offset();
        Ok((log, recovery))
    }

    fn active(&self) -> &Segment {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    /// Appends one validated, stamped batch whose base offset is the log end offset.
    pub fn append(&mut self, batch: &[u8], now_ms: i64) -> Result<(), PartitionError> {
        let header = BatchHeader::parse(batch).map_err(|source| PartitionError::Batch {
            path: None,
            position: 0,
            source,
        })?;
        if header.total_len() != batch.len() {
            return Err(PartitionError::NotOneBatch {
                len: batch.len(),
                batch_len: header.total_len(),
            });
        }
        if batch.len() as u64 > MAX_BATCH_BYTES {
            return Err(PartitionError::BatchTooLarge {
                len: batch.len(),
                max: MAX_BATCH_BYTES,
            });
        }
        let expected = self.log_end_offset();
        if header.base_offset != expected {
            return Err(PartitionError::NotContiguous {
                expected,
                got: header.base_offset,
            });
        }
        let batch_error = |source| PartitionError::Batch {
            path: None,
            position: 0,
            source,
        };
        if header.last_offset_delta < 0 {
            return Err(batch_error(BatchError::Inconsistent {
                reason: "negative lastOffsetDelta",
            }));
        }
        if self.should_roll(&header, batch.len() as u64, now_ms) {
            self.roll(now_ms)?;
        }
        // Everything that reads the records happens before anything is written, so a batch
        // that does not decode changes nothing. The key/tag index of the active segment is
        // fed only once something has looked it up (which builds it from the file): until
        // then appends need not copy records out, and reopening a large active segment
        // costs nothing on the write path.
        let records = if self.active().lock_search().is_some() {
            Some(batch::decode_records(batch).map_err(batch_error)?)
        } else {
            None
        };
        let raises_max = self
            .active()
            .max_timestamp
            .is_none_or(|(max, _)| header.max_timestamp > max);
        let max_timestamp_offset = if raises_max {
            let delta = batch::offset_delta_with_timestamp(batch, header.max_timestamp)
                .map_err(batch_error)?;
            header.base_offset + i64::from(delta.unwrap_or(0))
        } else {
            header.base_offset
        };
        let interval = self.config.index_interval_bytes;
        let file = self.file(self.active())?;
        let active = self.active_mut();
        file.write_all_at(batch, active.size)
            .map_err(|e| io("write segment", &active.path, e))?;
        if active.is_empty() {
            active.roll_base_ms = now_ms;
        }
        if active.note_batch(&header, batch.len() as u64, interval) {
            active.max_timestamp = Some((header.max_timestamp, max_timestamp_offset));
        }
        if let (Some(search), Some(records)) = (active.search_mut(), &records) {
            search.add(&header, records);
        }
        Ok(())
    }

    fn should_roll(&self, header: &BatchHeader, len: u64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let full = active.size + len > self.config.effective_segment_bytes();
        let aged = now_ms.saturating_sub(active.roll_base_ms) >= self.config.segment_ms;
        // Index entries store offsets relative to the base as u32.
        let far = header.last_offset() - active.base_offset > i64::from(u32::MAX);
        full || aged || far
    }

    fn roll(&mut self, now_ms: i64) -> Result<(), PartitionError> {
        let mut segment = Segment::new(&self.dir, self.log_end_offset(), now_ms);
        self.files
            .create(&segment.path)
            .map_err(|e| io("create segment", &segment.path, e))?;
        *segment.search_mut() = Some(SearchIndex::default());
        self.segments.push(segment);
        Ok(())
    }

    /// Builds the active segment's key/tag index if nothing has yet; appends feed it after.
    fn ensure_active_search(&mut self) -> Result<(), PartitionError> {
        if self.active().lock_search().is_some() {
            return Ok(());
        }
        let file = self.file(self.active())?;
        let built = self.active().build_search(&file)?;
        *self.active_mut().search_mut() = Some(built);
        Ok(())
    }

    fn file(&self, segment: &Segment) -> Result<Arc<File>, PartitionError> {
        self.files
            .get(&segment.path)
            .map_err(|e| io("open segment", &segment.path, e))
    }

    /// Whole batches from the one holding `offset`, all below `upper_bound`, at least one
    /// even past `max_bytes` (KIP-74), from one segment.
    pub fn read(
        &self,
        offset: i64,
        upper_bound: i64,
        max_bytes: u32,
    ) -> Result<Option<ReadSlice>, PartitionError> {
        let log_end = self.log_end_offset();
        if offset < self.log_start_offset || offset > log_end {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        let upper_bound = upper_bound.min(log_end);
        if offset >= upper_bound {
            return Ok(None);
        }
        let first = self.segment_index_for(offset);
        for segment in self.segments.get(first..).unwrap_or_default() {
            if segment.base_offset >= upper_bound {
                break;
            }
            if let Some(slice) = self.read_segment(segment, offset, upper_bound, max_bytes)? {
                return Ok(Some(slice));
            }
        }
        Ok(None)
    }

    fn read_segment(
        &self,
        segment: &Segment,
        offset: i64,
        upper_bound: i64,
        max_bytes: u32,
    ) -> Result<Option<ReadSlice>, PartitionError> {
        let file = self.file(segment)?;
        // One read covers the walk from the index point (at most `index.interval.bytes`,
        // 4 KiB by default, before the batch) and, near the tail, the batches after it: a
        // consumer that keeps up fetches a few small batches each time, and walking them
        // one header read at a time cost ~10 preads per fetch.
        let mut walker = Walker::new(&file, &segment.path, segment.size, READ_WINDOW_BYTES);
        let Some((start, first)) = find_batch(&mut walker, segment, offset)? else {
            return Ok(None);
        };
        if first.last_offset() >= upper_bound {
            return Ok(None);
        }
        let mut end = start + first.total_len() as u64;
        let mut last_offset = first.last_offset();
        while end < segment.size {
            let header = walker.header_or_corrupt(end)?;
            let len = header.total_len() as u64;
            if header.last_offset() >= upper_bound || end + len - start > u64::from(max_bytes) {
                break;
            }
            end += len;
            last_offset = header.last_offset();
        }
        Ok(Some(ReadSlice {
            file,
            position: start,
            len: end - start,
            first_offset: first.base_offset,
            last_offset,
        }))
    }

    /// Index of the segment whose range holds `offset` (the first one when below all).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// The first record (in offset order, at or past the log start) with a timestamp at or
    /// after `timestamp_ms`: its offset and timestamp.
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, PartitionError> {
        for segment in &self.segments {
            let newer = segment
                .max_timestamp
                .is_some_and(|(max, _)| max >= timestamp_ms);
            if !newer || segment.next_offset <= self.log_start_offset {
                continue;
            }
            let from = segment
                .time_search_start(timestamp_ms)
                .max(self.log_start_offset);
            let file = self.file(segment)?;
            let mut walker = Walker::new(&file, &segment.path, segment.size, 64 << 10);
            let mut position = segment.position_for(from);
            while position < segment.size {
                let header = walker.header_or_corrupt(position)?;
                let len = header.total_len() as u64;
                if header.last_offset() >= from && header.max_timestamp >= timestamp_ms {
                    let records = decode_at(&mut walker, segment, position, len)?;
                    let found = records.iter().find_map(|r| {
                        let offset = header.base_offset + i64::from(r.offset_delta);
                        let ts = segment::record_timestamp(&header, r);
                        (offset >= from && ts >= timestamp_ms).then_some((offset, ts))
                    });
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                position += len;
            }
        }
        Ok(None)
    }

    /// Offset and value of the largest timestamp in the log (ListOffsets -3).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        for (max, offset) in self.segments.iter().filter_map(|s| s.max_timestamp) {
            if best.is_none_or(|(_, b)| max > b) {
                best = Some((offset, max));
            }
        }
        best
    }

    /// Offsets (ascending, at most `limit`) of records carrying `key` as record key or
    /// `KEYS` word, confirmed by reading the record, within `time_range_ms` when given.
    pub fn find_by_key(
        &self,
        key: &[u8],
        time_range_ms: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<i64>, PartitionError> {
        let mut found = Vec::new();
        for segment in &self.segments {
            if found.len() >= limit {
                break;
            }
            let skip_by_time = time_range_ms
                .is_some_and(|(from, _)| segment.max_timestamp.is_none_or(|(max, _)| max < from));
            if segment.next_offset <= self.log_start_offset || skip_by_time {
                continue;
            }
            let candidates = self.with_search(segment, |s| {
                s.keys
                    .lookup(key, time_range_ms, MAX_KEY_CANDIDATES_PER_SEGMENT)
            })?;
            for offset in candidates {
                if found.len() >= limit {
                    break;
                }
                if offset < self.log_start_offset {
                    continue;
                }
                let Some((header, record)) = self.record_at(segment, offset)? else {
                    continue;
                };
                let ts = segment::record_timestamp(&header, &record);
                let in_range = time_range_ms.is_none_or(|(from, to)| ts >= from && ts <= to);
                if in_range && message::lookup_keys(&record).any(|k| k == key) {
                    found.push(offset);
                }
            }
        }
        Ok(found)
    }

    /// Offsets (ascending, at most `limit`) at or past `from_offset` whose tag hash is one of
    /// `hashes`. Hash matches are not confirmed: a consumer filters by tag string as
    /// RocketMQ's does.
    pub fn find_by_tags(
        &self,
        from_offset: i64,
        hashes: &[i32],
        limit: usize,
    ) -> Result<Vec<i64>, PartitionError> {
        let from = from_offset.max(self.log_start_offset);
        let mut found = Vec::new();
        for segment in self.segments.iter().filter(|s| s.next_offset > from) {
            let remaining = limit.saturating_sub(found.len());
            if remaining == 0 {
                break;
            }
            found.extend(self.with_search(segment, |s| s.tags.matching(from, hashes, remaining))?);
        }
        Ok(found)
    }

    /// Runs `f` on the segment's key/tag index, loading or building it first if needed.
    fn with_search<R>(
        &self,
        segment: &Segment,
        f: impl FnOnce(&SearchIndex) -> R,
    ) -> Result<R, PartitionError> {
        let mut guard = segment.lock_search();
        if let Some(search) = guard.as_ref() {
            return Ok(f(search));
        }
        let sealed = !std::ptr::eq(segment, self.active());
        let [_, _, key_path, tag_path, _] = segment_files(&self.dir, segment.base_offset);
        let loaded = if sealed {
            key_index::KeyIndex::load(&key_path)
                .and_then(|keys| {
                    Ok(SearchIndex {
                        keys,
                        tags: tag_index::TagIndex::load(&tag_path)?,
                        persisted: true,
                    })
                })
                .ok()
        } else {
            None
        };
        let search = match loaded {
            Some(search) => search,
            None => segment.build_search(&*self.file(segment)?)?,
        };
        Ok(f(guard.insert(search)))
    }

    /// The record at `offset` of `segment` with its batch header, if present.
    fn record_at(
        &self,
        segment: &Segment,
        offset: i64,
    ) -> Result<Option<(BatchHeader, Record)>, PartitionError> {
        let file = self.file(segment)?;
        let mut walker = Walker::point(&file, &segment.path, segment.size);
        let Some((position, header)) = find_batch(&mut walker, segment, offset)? else {
            return Ok(None);
        };
        let records = decode_at(&mut walker, segment, position, header.total_len() as u64)?;
        Ok(records
            .into_iter()
            .find(|r| header.base_offset + i64::from(r.offset_delta) == offset)
            .map(|r| (header, r)))
    }

    /// Advances the log start offset to `offset` (at most the high watermark) and deletes
    /// segments wholly below it. Persisted before returning.
    pub fn delete_records(&mut self, offset: i64) -> Result<i64, PartitionError> {
        if offset < 0 {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        if offset > self.high_watermark {
            return Err(PartitionError::DeleteBeyondHighWatermark {
                offset,
                high_watermark: self.high_watermark,
            });
        }
        if offset > self.log_start_offset {
            self.log_start_offset = offset;
            self.write_meta()?;
            self.remove_segments_below_log_start()?;
        }
        Ok(self.log_start_offset)
    }

    /// Deletes the oldest sealed segments that are past `retention_ms` (by their largest
    /// timestamp) or beyond `retention_bytes`, or wholly below the log start offset.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, PartitionError> {
        let policy_delete = self.config.cleanup_policy.delete;
        let retention_ms = self.config.retention_ms;
        let retention_bytes = self.config.retention_bytes;
        let mut remaining = self.size_bytes();
        let sealed = self.segments.len() - 1;
        let mut count = 0;
        for segment in self.segments.iter().take(sealed) {
            let by_time = policy_delete
                && retention_ms >= 0
                && segment
                    .max_timestamp
                    .is_none_or(|(max, _)| now_ms.saturating_sub(max) > retention_ms);
            let by_size = policy_delete
                && retention_bytes >= 0
                && remaining - segment.size >= retention_bytes as u64;
            let below_start = segment.next_offset <= self.log_start_offset;
            if !(by_time || by_size || below_start) {
                break;
            }
            remaining -= segment.size;
            count += 1;
        }
        let bytes_deleted = self.remove_oldest(count)?;
        Ok(RetentionOutcome {
            segments_deleted: count,
            bytes_deleted,
            log_start_offset: self.log_start_offset,
        })
    }

    fn remove_segments_below_log_start(&mut self) -> Result<(), PartitionError> {
        let sealed = self.segments.len() - 1;
        let count = self
            .segments
            .iter()
            .take(sealed)
            .take_while(|s| s.next_offset <= self.log_start_offset)
            .count();
        self.remove_oldest(count).map(|_| ())
    }

    /// Deletes the `count` oldest (sealed) segments: log start first, persisted, then files,
    /// oldest first, so a crash midway leaves a log whose start is already past them.
    fn remove_oldest(&mut self, count: usize) -> Result<u64, PartitionError> {
        if count == 0 {
            return Ok(0);
        }
        assert!(
            count < self.segments.len(),
            "the active segment is never removed"
        );
        let next_base = self.segments[count].base_offset;
        self.log_start_offset = self.log_start_offset.max(next_base);
        self.recovery_point = self.recovery_point.max(next_base);
        self.write_meta()?;
        let mut bytes = 0;
        for segment in self.segments.drain(..count) {
            bytes += segment.size;
            remove_segment_files(&self.dir, segment.base_offset, &self.files)?;
        }
        Ok(bytes)
    }

    /// Compacts the sealed segments (when the policy says so) and swaps each output in place
    /// of its input: an atomic rename per segment, so a crash leaves each segment old or new.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionOutcome, PartitionError> {
        let mut outcome = CompactionOutcome::default();
        if !self.config.cleanup_policy.compact || self.segments.len() < 2 {
            return Ok(outcome);
        }
        // Inputs must be durable: a swap must never replace unflushed data.
        self.flush()?;
        self.ensure_active_search()?;
        let sealed = self.segments.len() - 1;
        let inputs: Vec<compaction::SegmentInput> = self.segments[..sealed]
            .iter()
            .map(|s| compaction::SegmentInput {
                path: s.path.clone(),
                base_offset: s.base_offset,
            })
            .collect();
        let dirty_end = self.active().base_offset;
        let later_keys = |key: &[u8]| self.latest_record_key_offset(key);
        let outputs = compaction::compact_segments(
            &inputs,
            &later_keys,
            dirty_end,
            now_ms,
            self.config.delete_retention_ms,
            &self.dir,
        )?;
        for output in outputs {
            let before = self.swap_in(&output)?;
            outcome.segments_rewritten += 1;
            outcome.bytes_before += before;
            outcome.bytes_after += output.bytes;
            outcome.records_dropped += output.records_dropped;
        }
        Ok(outcome)
    }

    /// The latest offset in the active segment whose record key is `key`.
    fn latest_record_key_offset(&self, key: &[u8]) -> Option<i64> {
        let active = self.active();
        let candidates = self
            .with_search(active, |s| {
                s.keys.lookup(key, None, MAX_KEY_CANDIDATES_PER_SEGMENT)
            })
            .ok()?;
        candidates.into_iter().rev().find(|&offset| {
            // An unreadable record is treated as not superseding: compaction then keeps the
            // older value, which is always safe.
            // A transactional record supersedes nothing: it may be aborted (see compaction).
            matches!(
                self.record_at(active, offset),
                Ok(Some((h, r))) if !h.is_transactional() && r.key.as_deref() == Some(key)
            )
        })
    }

    /// Validates a compaction output and renames it over its input. Returns the input size.
    fn swap_in(&mut self, output: &compaction::SegmentOutput) -> Result<u64, PartitionError> {
        let refuse = |reason: String| PartitionError::CompactionOutput {
            path: output.path.clone(),
            reason,
        };
        let sealed = self.segments.len() - 1;
        let Some(index) = self.segments[..sealed]
            .iter()
            .position(|s| s.path == output.input)
        else {
            return Err(refuse(format!(
                "input {} is no sealed segment",
                output.input.display()
            )));
        };
        let old = &self.segments[index];
        if output.base_offset != old.base_offset {
            return Err(refuse(format!(
                "base offset {} differs from the input's {}",
                output.base_offset, old.base_offset
            )));
        }
        // Paired check: the output is read back and CRC-checked before it replaces anything.
        let file = File::options()
            .read(true)
            .write(true)
            .open(&output.path)
            .map_err(|e| io("open compaction output", &output.path, e))?;
        let len = file
            .metadata()
            .map_err(|e| io("stat compaction output", &output.path, e))?
            .len();
        let mut new = Segment::new(&self.dir, old.base_offset, old.roll_base_ms);
        let (end, _) = new.scan(&file, 0, len, i64::MIN, self.config.index_interval_bytes)?;
        if let ScanEnd::Bad { position, reason } = end {
            return Err(refuse(format!("bad batch at byte {position}: {reason}")));
        }
        if new.next_offset > old.next_offset {
            return Err(refuse(format!(
                "holds offsets up to {}, past the input's end {}",
                new.next_offset, old.next_offset
            )));
        }
        file.sync_all()
            .map_err(|e| io("fsync compaction output", &output.path, e))?;
        drop(file);
        // Old indexes go first (durably): from here a crash leaves old or new data with no
        // index, and open rebuilds whichever it finds.
        let [index_path, time_path, key_path, tag_path, log_path] =
            segment_files(&self.dir, old.base_offset);
        for path in [&index_path, &time_path, &key_path, &tag_path] {
            remove_if_exists(path)?;
        }
        sync_dir(&self.dir)?;
        self.files.forget(&log_path);
        std::fs::rename(&output.path, &log_path)
            .map_err(|e| io("rename compaction output", &output.path, e))?;
        sync_dir(&self.dir)?;
        let before = old.size;
        new.next_offset = old.next_offset;
        new.flushed_size = new.size;
        self.segments[index] = new;
        Ok(before)
    }

    /// Drops every batch at or after `offset` (a batch containing it goes too).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), PartitionError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < self.log_start_offset {
            return Err(PartitionError::TruncateBelowLogStart {
                offset,
                log_start: self.log_start_offset,
            });
        }
        let keep = self
            .segments
            .partition_point(|s| s.base_offset < offset)
            .max(1);
        for segment in self.segments.drain(keep..).rev() {
            remove_segment_files(&self.dir, segment.base_offset, &self.files)?;
        }
        let interval = self.config.index_interval_bytes;
        let file = self.file(self.active())?;
        let active = self.active();
        let mut walker = Walker::point(&file, &active.path, active.size);
        let (cut, new_end) = match find_batch(&mut walker, active, offset)? {
            Some((position, header)) => (position, header.base_offset.min(offset)),
            None => (active.size, offset),
        };
        if cut < active.size {
            file.set_len(cut)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("truncate segment", &active.path, e))?;
            let mut rebuilt = Segment::new(&self.dir, active.base_offset, active.roll_base_ms);
            // Every byte kept was accepted before (by append or recovery): headers suffice.
            let (end, _) = rebuilt.scan(&file, 0, cut, i64::MAX, interval)?;
            assert!(
                matches!(end, ScanEnd::Clean),
                "accepted data rescans cleanly"
            );
            rebuilt.flushed_size = cut;
            *self.active_mut() = rebuilt;
        }
        let active = self.active_mut();
        assert!(
            new_end >= active.next_offset,
            "truncation never grows the log"
        );
        active.next_offset = new_end;
        active.index_persisted_size = None;
        if let Some(search) = active.search_mut() {
            search.persisted = false;
            search.keys.truncate_from(new_end);
            search.tags.truncate_from(new_end);
        }
        let base = active.base_offset;
        for path in segment_files(&self.dir, base).iter().take(4) {
            remove_if_exists(path)?;
        }
        sync_dir(&self.dir)?;
        self.high_watermark = self.high_watermark.min(new_end);
        self.recovery_point = self.recovery_point.min(new_end);
        self.write_meta()
    }

    /// Handles of the segments holding data not yet fsynced. A caller may fsync them
    /// without holding the log (appends go on meanwhile), so that the [`flush`] it then
    /// runs under its lock finds little left to write.
    ///
    /// [`flush`]: PartitionLog::flush
    pub fn unflushed_files(&self) -> Result<Vec<Arc<File>>, PartitionError> {
        self.segments
            .iter()
            .filter(|segment| segment.flushed_size < segment.size)
            .map(|segment| self.file(segment))
            .collect()
    }

    /// Fsyncs data, persists indexes and then the recovery point (= log end offset).
    pub fn flush(&mut self) -> Result<(), PartitionError> {
        let sealed = self.segments.len() - 1;
        for i in 0..self.segments.len() {
            let segment = &self.segments[i];
            if segment.flushed_size < segment.size {
                // The handle may be a reopened one (the cache evicts): fsync flushes the
                // inode's dirty pages whichever descriptor wrote them.
                self.file(segment)?
                    .sync_data()
                    .map_err(|e| io("fsync segment", &segment.path, e))?;
            }
            let [index_path, time_path, key_path, tag_path, _] =
                segment_files(&self.dir, segment.base_offset);
            if segment.index_persisted_size != Some(segment.size) {
                let (offsets, times) = segment.encode_indexes();
                write_synced(&index_path, &offsets)?;
                write_synced(&time_path, &times)?;
            }
            if i < sealed
                && let Some(search) = segment.lock_search().as_mut()
                && !search.persisted
            {
                search.keys.write_to(&key_path)?;
                search.tags.write_to(&tag_path)?;
                search.persisted = true;
            }
            let segment = &mut self.segments[i];
            segment.flushed_size = segment.size;
            segment.index_persisted_size = Some(segment.size);
        }
        self.recovery_point = self.log_end_offset();
        self.write_meta()
    }

    /// Scrub: reads every batch and checks its CRC.
    pub fn verify(&self) -> Result<(), PartitionError> {
        for segment in &self.segments {
            let file = self.file(segment)?;
            let mut walker = Walker::new(&file, &segment.path, segment.size, 1 << 20);
            let mut position = 0;
            while position < segment.size {
                let header = walker.header_or_corrupt(position)?;
                let len = header.total_len() as u64;
                let bytes = walker
                    .bytes_at(position, len)?
                    .ok_or_else(|| segment.corrupt(position, "batch runs past the segment end"))?;
                if let Err(e) = batch::check_crc(bytes) {
                    return Err(segment.corrupt(position, &e.to_string()));
                }
                position += len;
            }
        }
        Ok(())
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Moves the high watermark forward (never back, never past the log end).
    pub fn set_high_watermark(&mut self, offset: i64) {
        assert!(
            offset >= self.high_watermark && offset <= self.log_end_offset(),
            "high watermark {offset} must be in [{}, {}]",
            self.high_watermark,
            self.log_end_offset()
        );
        self.high_watermark = offset;
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &PartitionConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: PartitionConfig) {
        self.config = config;
    }

    /// Removes the partition's directory.
    pub fn delete(self) -> Result<(), PartitionError> {
        for segment in &self.segments {
            self.files.forget(&segment.path);
        }
        std::fs::remove_dir_all(&self.dir).map_err(|e| io("remove directory", &self.dir, e))
    }

    fn write_meta(&self) -> Result<(), PartitionError> {
        let active = self.active();
        Meta {
            log_start_offset: self.log_start_offset,
            recovery_point: self.recovery_point,
            active_base_offset: active.base_offset,
            active_roll_base_ms: active.roll_base_ms,
        }
        .write(&self.dir)
    }
}

/// The first batch of `segment` whose last offset is at or past `offset`: position, header.
/// Read-ahead of [`PartitionLog::read`]'s walk over batch headers.
const READ_WINDOW_BYTES: usize = 16 << 10;

fn find_batch(
    walker: &mut Walker<'_>,
    segment: &Segment,
    offset: i64,
) -> Result<Option<(u64, BatchHeader)>, PartitionError> {
    let mut position = segment.position_for(offset);
    while position < segment.size {
        let header = walker.header_or_corrupt(position)?;
        if header.last_offset() >= offset {
            return Ok(Some((position, header)));
        }
        position += header.total_len() as u64;
    }
    Ok(None)
}

fn decode_at(
    walker: &mut Walker<'_>,
    segment: &Segment,
    position: u64,
    len: u64,
) -> Result<Vec<Record>, PartitionError> {
    let bytes = walker
        .bytes_at(position, len)?
        .ok_or_else(|| segment.corrupt(position, "batch runs past the segment end"))?;
    batch::decode_records(bytes).map_err(|source| PartitionError::Batch {
        path: Some(segment.path.clone()),
        position,
        source,
    })
}

/// Base offsets of the `<20 digits>.log` files in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<i64>, PartitionError> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io("list directory", dir, e))? {
        let entry = entry.map_err(|e| io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(base) = stem.parse::<i64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Removes what an interrupted write or compaction left: `*.tmp` and `*.cleaned` files.
fn remove_leftovers(dir: &Path) -> Result<(), PartitionError> {
    for entry in std::fs::read_dir(dir).map_err(|e| io("list directory", dir, e))? {
        let entry = entry.map_err(|e| io("list directory", dir, e))?;
        let name = entry.file_name();
        let leftover = name
            .to_str()
            .is_some_and(|n| n.ends_with(".tmp") || n.ends_with(".cleaned"));
        if leftover {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_segment_files(dir: &Path, base: i64, files: &FileCache) -> Result<(), PartitionError> {
    for path in segment_files(dir, base) {
        files.forget(&path);
        remove_if_exists(&path)?;
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), PartitionError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path, e)),
        _ => Ok(()),
    }
}

/// tmp + fsync + rename; the caller fsyncs the directory once for many files.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), PartitionError> {
    use std::io::Write;
    let tmp = meta::tmp_path(path);
    let mut file = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    file.write_all(bytes).map_err(|e| io("write", &tmp, e))?;
    file.sync_all().map_err(|e| io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename", &tmp, e))
}

#[cfg(test)]
mod tests;
