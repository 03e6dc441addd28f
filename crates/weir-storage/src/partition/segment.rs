//! One segment of a partition log: its data file's in-memory summary (size, offsets, largest
//! timestamp), its sparse offset and time indexes, their checksummed files, and the batch
//! walker every scan uses.
//!
//! A segment never trusts its file: every header read from disk is parsed with bounds
//! checks, every length is checked against the bytes the segment knows it holds and against
//! [`MAX_BATCH_BYTES`] before anything is allocated for it. It never decides when to roll,
//! retain or compact: the partition log does.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::batch::{self, BatchHeader, HEADER_LEN, TimestampType};
use crate::message;

use super::key_index::KeyIndex;
use super::tag_index::TagIndex;
use super::{IndexError, PartitionError};

/// Largest batch a segment stores or reads back. Above Kafka's largest sensible
/// `max.message.bytes`; it bounds what a scan or `verify` allocates for one batch read from
/// an untrusted file.
pub const MAX_BATCH_BYTES: u64 = 64 << 20;
/// Largest segment: index entries store positions as `u32`, and a segment may overshoot
/// `segment_bytes` by one batch.
pub const MAX_SEGMENT_BYTES: u64 = (u32::MAX as u64) - MAX_BATCH_BYTES;
/// Read-ahead of sequential scans (recovery, rebuilds, verify): large enough that a scan is
/// a few big reads, small enough to keep per-scan memory trivial.
const SCAN_WINDOW_BYTES: usize = 1 << 20;
/// Largest index file loaded: a 4 GiB segment with a 1-byte index interval is impossible,
/// so anything bigger than this is damage, and the bound is checked before reading it.
const MAX_INDEX_FILE_BYTES: u64 = 256 << 20;

const OFFSET_INDEX_MAGIC: [u8; 4] = *b"WOIX";
const TIME_INDEX_MAGIC: [u8; 4] = *b"WTIX";
const INDEX_VERSION: u32 = 1;
/// magic, version, base offset, covered bytes, next offset, entry count.
const OFFSET_INDEX_HEADER: usize = 4 + 4 + 8 + 8 + 8 + 4;
const OFFSET_ENTRY: usize = 8;
/// magic, version, base offset, covered bytes, has-max flag, max timestamp, its offset, count.
const TIME_INDEX_HEADER: usize = 4 + 4 + 8 + 8 + 4 + 8 + 8 + 4;
const TIME_ENTRY: usize = 12;
const CRC_LEN: usize = 4;

pub fn stem(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}"))
}

pub fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    stem(dir, base_offset).with_extension("log")
}

/// Every file belonging to a segment, data file last (deleting in this order never leaves
/// an index without its data looking valid).
pub fn segment_files(dir: &Path, base_offset: i64) -> [PathBuf; 5] {
    let stem = stem(dir, base_offset);
    [
        stem.with_extension("index"),
        stem.with_extension("timeindex"),
        stem.with_extension("keyindex"),
        stem.with_extension("tagindex"),
        stem.with_extension("log"),
    ]
}

/// A sparse offset-index entry: the batch starting at `relative_offset` is at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OffsetEntry {
    relative_offset: u32,
    position: u32,
}

/// A time-index entry: every record before `relative_offset` has a timestamp at most
/// `timestamp` (Kafka's "max timestamp so far"), so a search for `t > timestamp` may start
/// there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeEntry {
    timestamp: i64,
    relative_offset: u32,
}

/// The record-level indexes (key and tag), built lazily: open never decodes records.
#[derive(Debug, Default)]
pub struct SearchIndex {
    pub keys: KeyIndex,
    pub tags: TagIndex,
    /// The key/tag files on disk describe this (sealed) segment's whole data.
    pub persisted: bool,
}

impl SearchIndex {
    /// Adds every record of `records` (of the batch `header`).
    pub fn add(&mut self, header: &BatchHeader, records: &[batch::Record]) {
        for record in records {
            let offset = header.base_offset + i64::from(record.offset_delta);
            let timestamp = record_timestamp(header, record);
            for key in message::lookup_keys(record) {
                self.keys.add(key, offset, timestamp);
            }
            if let Some(tag) = message::tag_of(record) {
                self.tags.add(offset, message::tag_hash(tag));
            }
        }
    }
}

pub fn record_timestamp(header: &BatchHeader, record: &batch::Record) -> i64 {
    match header.timestamp_type() {
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => header.base_timestamp.saturating_add(record.timestamp_delta),
    }
}

/// The offset of the first record carrying the batch's max timestamp (its base offset when
/// none does, e.g. LogAppendTime).
pub fn offset_of_max_timestamp(header: &BatchHeader, records: &[batch::Record]) -> i64 {
    records
        .iter()
        .find(|r| record_timestamp(header, r) == header.max_timestamp)
        .map_or(header.base_offset, |r| {
            header.base_offset + i64::from(r.offset_delta)
        })
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    pub path: PathBuf,
    /// Bytes of whole, accepted batches: nothing past it is ever served.
    pub size: u64,
    /// One past the last offset of the last batch (the base offset when empty).
    pub next_offset: i64,
    /// Largest batch max timestamp and the offset of the first record carrying it.
    pub max_timestamp: Option<(i64, i64)>,
    offset_index: Vec<OffsetEntry>,
    time_index: Vec<TimeEntry>,
    bytes_since_index: u64,
    /// Bytes known fsynced.
    pub flushed_size: u64,
    /// Size the persisted `.index`/`.timeindex` describe, if they describe the current data.
    pub index_persisted_size: Option<u64>,
    /// Key and tag index, `None` until first needed.
    pub search: Mutex<Option<SearchIndex>>,
    /// When this segment started receiving appends (for `segment_ms`).
    pub roll_base_ms: i64,
}

/// What a scan stopped at.
#[derive(Debug)]
pub enum ScanEnd {
    Clean,
    /// A torn or corrupt batch at `position` (past the recovery point).
    Bad {
        position: u64,
        reason: String,
    },
}

impl Segment {
    pub fn new(dir: &Path, base_offset: i64, roll_base_ms: i64) -> Self {
        Self {
            base_offset,
            path: log_path(dir, base_offset),
            size: 0,
            next_offset: base_offset,
            max_timestamp: None,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            flushed_size: 0,
            index_persisted_size: None,
            search: Mutex::new(None),
            roll_base_ms,
        }
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    fn relative(&self, offset: i64) -> u32 {
        u32::try_from(offset - self.base_offset).expect("offsets within a segment fit in u32")
    }

    /// Accounts for a batch of `len` bytes appended at `self.size` (already in the file).
    /// Returns whether it raised the segment's max timestamp (the caller then fixes the
    /// offset of the max, which needs the records).
    pub fn note_batch(
        &mut self,
        header: &BatchHeader,
        len: u64,
        index_interval_bytes: u32,
    ) -> bool {
        assert!(
            header.base_offset >= self.next_offset && header.base_offset >= self.base_offset,
            "batches of a segment ascend: {} after next offset {}",
            header.base_offset,
            self.next_offset
        );
        let position = self.size;
        if self.size > 0 && self.bytes_since_index >= u64::from(index_interval_bytes) {
            let relative_offset = self.relative(header.base_offset);
            self.offset_index.push(OffsetEntry {
                relative_offset,
                position: u32::try_from(position).expect("segment positions fit in u32"),
            });
            if let Some((max, _)) = self.max_timestamp
                && self.time_index.last().is_none_or(|e| e.timestamp < max)
            {
                self.time_index.push(TimeEntry {
                    timestamp: max,
                    relative_offset,
                });
            }
            self.bytes_since_index = 0;
        }
        self.size += len;
        self.bytes_since_index += len;
        self.next_offset = header.last_offset() + 1;
        let raised = self
            .max_timestamp
            .is_none_or(|(max, _)| header.max_timestamp > max);
        if raised {
            self.max_timestamp = Some((header.max_timestamp, header.base_offset));
        }
        raised
    }

    /// Position to start scanning from for `offset`: the last indexed batch at or before it.
    pub fn position_for(&self, offset: i64) -> u64 {
        if offset <= self.base_offset {
            return 0;
        }
        let relative = (offset - self.base_offset).min(i64::from(u32::MAX)) as u32;
        let after = self
            .offset_index
            .partition_point(|e| e.relative_offset <= relative);
        after
            .checked_sub(1)
            .and_then(|i| self.offset_index.get(i))
            .map_or(0, |e| u64::from(e.position))
    }

    /// Where a search for the first record with timestamp `>= timestamp` may start: every
    /// record before the returned offset is older.
    pub fn time_search_start(&self, timestamp: i64) -> i64 {
        let after = self.time_index.partition_point(|e| e.timestamp < timestamp);
        after
            .checked_sub(1)
            .and_then(|i| self.time_index.get(i))
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.relative_offset)
            })
    }

    pub fn lock_search(&self) -> MutexGuard<'_, Option<SearchIndex>> {
        // The index is rebuilt from data when in doubt; a poisoned lock only means a
        // panicking reader, never a half-applied write we could not redo.
        self.search.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn search_mut(&mut self) -> &mut Option<SearchIndex> {
        self.search
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Walks the batches in `[from, file_len)`, accounting each. Batches whose last offset is
    /// below `verify_from_offset` get a header check only (data before the recovery point was
    /// flushed; `verify()` checks its CRCs); later ones are CRC-checked. A structural problem
    /// before `verify_from_offset` is an error (never a silent truncation); one after it ends
    /// the scan with [`ScanEnd::Bad`]. Returns the end and the bytes walked.
    pub fn scan(
        &mut self,
        file: &File,
        from: u64,
        file_len: u64,
        verify_from_offset: i64,
        index_interval_bytes: u32,
    ) -> Result<(ScanEnd, u64), PartitionError> {
        assert_eq!(from, self.size, "a scan continues where the segment ends");
        let path = self.path.clone();
        let mut walker = Walker::new(file, &path, file_len, SCAN_WINDOW_BYTES);
        let mut position = from;
        let mut max_batch: Option<u64> = None;
        let end = loop {
            if position >= file_len {
                break ScanEnd::Clean;
            }
            let header = match walker.header_at(position)? {
                Ok(header) => header,
                Err(reason) if self.next_offset < verify_from_offset => {
                    return Err(PartitionError::Corrupt {
                        path: self.path.clone(),
                        position,
                        reason,
                    });
                }
                Err(reason) => break ScanEnd::Bad { position, reason },
            };
            let len = header.total_len() as u64;
            // Offsets were range-checked by the walker, so `last_offset()` cannot overflow.
            let trusted = header.last_offset() < verify_from_offset;
            let order_problem = if header.base_offset < self.next_offset {
                Some(format!(
                    "batch base offset {} below the expected {}",
                    header.base_offset, self.next_offset
                ))
            } else if header.last_offset_delta < 0 {
                Some(format!(
                    "negative lastOffsetDelta {}",
                    header.last_offset_delta
                ))
            } else if header.last_offset() - self.base_offset > i64::from(u32::MAX) {
                Some(format!(
                    "offset {} too far from the segment base",
                    header.last_offset()
                ))
            } else {
                None
            };
            let problem = match order_problem {
                Some(problem) => Some(problem),
                None if trusted => None,
                None => walker
                    .bytes_at(position, len)?
                    .and_then(|bytes| batch::check_crc(bytes).err())
                    .map(|e| e.to_string()),
            };
            if let Some(reason) = problem {
                if trusted {
                    return Err(PartitionError::Corrupt {
                        path: self.path.clone(),
                        position,
                        reason,
                    });
                }
                break ScanEnd::Bad { position, reason };
            }
            if self.note_batch(&header, len, index_interval_bytes) {
                max_batch = Some(position);
            }
            position += len;
        };
        if let Some(position) = max_batch {
            self.fix_max_offset(&mut walker, position)?;
        }
        Ok((end, position - from))
    }

    fn fix_max_offset(
        &mut self,
        walker: &mut Walker<'_>,
        position: u64,
    ) -> Result<(), PartitionError> {
        let Ok(header) = walker.header_at(position)? else {
            return Ok(());
        };
        let Some(bytes) = walker.bytes_at(position, header.total_len() as u64)? else {
            return Ok(());
        };
        // A batch whose records do not decode keeps its base offset as the offset of the max;
        // verify() reports the damage.
        if let Ok(records) = batch::decode_records(bytes) {
            self.max_timestamp = Some((
                header.max_timestamp,
                offset_of_max_timestamp(&header, &records),
            ));
        }
        Ok(())
    }

    /// Builds the key/tag index by decoding every batch of the segment.
    pub fn build_search(&self, file: &File) -> Result<SearchIndex, PartitionError> {
        let mut index = SearchIndex::default();
        let mut walker = Walker::new(file, &self.path, self.size, SCAN_WINDOW_BYTES);
        let mut position = 0;
        while position < self.size {
            let header = walker.header_or_corrupt(position)?;
            let len = header.total_len() as u64;
            let bytes = walker
                .bytes_at(position, len)?
                .ok_or_else(|| self.corrupt(position, "batch runs past the segment end"))?;
            let records = batch::decode_records(bytes).map_err(|source| PartitionError::Batch {
                path: Some(self.path.clone()),
                position,
                source,
            })?;
            index.add(&header, &records);
            position += len;
        }
        Ok(index)
    }

    pub fn corrupt(&self, position: u64, reason: &str) -> PartitionError {
        PartitionError::Corrupt {
            path: self.path.clone(),
            position,
            reason: reason.to_string(),
        }
    }

    /// Encodes the offset and time index files describing the current data.
    pub fn encode_indexes(&self) -> (Vec<u8>, Vec<u8>) {
        let mut offsets = Vec::with_capacity(
            OFFSET_INDEX_HEADER + self.offset_index.len() * OFFSET_ENTRY + CRC_LEN,
        );
        offsets.extend_from_slice(&OFFSET_INDEX_MAGIC);
        offsets.extend_from_slice(&INDEX_VERSION.to_be_bytes());
        offsets.extend_from_slice(&self.base_offset.to_be_bytes());
        offsets.extend_from_slice(&self.size.to_be_bytes());
        offsets.extend_from_slice(&self.next_offset.to_be_bytes());
        offsets.extend_from_slice(&(self.offset_index.len() as u32).to_be_bytes());
        for entry in &self.offset_index {
            offsets.extend_from_slice(&entry.relative_offset.to_be_bytes());
            offsets.extend_from_slice(&entry.position.to_be_bytes());
        }
        let crc = crc32c::crc32c(&offsets);
        offsets.extend_from_slice(&crc.to_be_bytes());

        let mut times =
            Vec::with_capacity(TIME_INDEX_HEADER + self.time_index.len() * TIME_ENTRY + CRC_LEN);
        times.extend_from_slice(&TIME_INDEX_MAGIC);
        times.extend_from_slice(&INDEX_VERSION.to_be_bytes());
        times.extend_from_slice(&self.base_offset.to_be_bytes());
        times.extend_from_slice(&self.size.to_be_bytes());
        let (has_max, max, max_offset) = match self.max_timestamp {
            Some((max, offset)) => (1u32, max, offset),
            None => (0, -1, -1),
        };
        times.extend_from_slice(&has_max.to_be_bytes());
        times.extend_from_slice(&max.to_be_bytes());
        times.extend_from_slice(&max_offset.to_be_bytes());
        times.extend_from_slice(&(self.time_index.len() as u32).to_be_bytes());
        for entry in &self.time_index {
            times.extend_from_slice(&entry.timestamp.to_be_bytes());
            times.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&times);
        times.extend_from_slice(&crc.to_be_bytes());
        (offsets, times)
    }

    /// Loads the persisted offset and time indexes of an empty in-memory segment whose data
    /// file is `file_len` bytes long. On success the segment describes the first
    /// `covered` bytes (returned); the caller scans the rest.
    pub fn load_indexes(&mut self, file_len: u64) -> Result<u64, IndexError> {
        assert!(self.is_empty(), "indexes load into a fresh segment");
        let [index_path, time_path, ..] = segment_files(self.dir(), self.base_offset);
        let offsets = read_index_file(&index_path)?;
        let times = read_index_file(&time_path)?;
        let damaged = |path: &Path, position: usize, reason: &'static str| IndexError::Damaged {
            path: path.to_path_buf(),
            position: position as u64,
            reason,
        };

        let mut r = Reader::new(&offsets, &index_path);
        if r.array::<4>()? != OFFSET_INDEX_MAGIC || r.u32()? != INDEX_VERSION {
            return Err(damaged(&index_path, 0, "bad magic or version"));
        }
        if r.i64()? != self.base_offset {
            return Err(damaged(
                &index_path,
                8,
                "base offset does not match the file name",
            ));
        }
        let covered = r.u64()?;
        let next_offset = r.i64()?;
        let count = r.u32()? as usize;
        if covered > file_len || covered > MAX_SEGMENT_BYTES + MAX_BATCH_BYTES {
            return Err(damaged(
                &index_path,
                16,
                "covers more bytes than the data file holds",
            ));
        }
        if next_offset < self.base_offset || next_offset - self.base_offset > i64::from(u32::MAX) {
            return Err(damaged(
                &index_path,
                24,
                "next offset out of the segment's range",
            ));
        }
        if offsets.len() != OFFSET_INDEX_HEADER + count.saturating_mul(OFFSET_ENTRY) + CRC_LEN {
            return Err(damaged(
                &index_path,
                32,
                "entry count does not match the file length",
            ));
        }
        let mut offset_index = Vec::with_capacity(count);
        for _ in 0..count {
            let entry = OffsetEntry {
                relative_offset: r.u32()?,
                position: r.u32()?,
            };
            let ascending = offset_index.last().is_none_or(|p: &OffsetEntry| {
                p.relative_offset < entry.relative_offset && p.position < entry.position
            });
            let in_range = u64::from(entry.position) < covered
                && i64::from(entry.relative_offset) < next_offset - self.base_offset;
            if !ascending || !in_range {
                return Err(damaged(&index_path, r.at, "entries out of order or range"));
            }
            offset_index.push(entry);
        }

        let mut t = Reader::new(&times, &time_path);
        if t.array::<4>()? != TIME_INDEX_MAGIC || t.u32()? != INDEX_VERSION {
            return Err(damaged(&time_path, 0, "bad magic or version"));
        }
        if t.i64()? != self.base_offset || t.u64()? != covered {
            return Err(damaged(
                &time_path,
                8,
                "does not describe the same data as the offset index",
            ));
        }
        let has_max = t.u32()?;
        let max = t.i64()?;
        let max_offset = t.i64()?;
        let count = t.u32()? as usize;
        if times.len() != TIME_INDEX_HEADER + count.saturating_mul(TIME_ENTRY) + CRC_LEN {
            return Err(damaged(
                &time_path,
                44,
                "entry count does not match the file length",
            ));
        }
        let max_timestamp = match has_max {
            0 => None,
            1 if (self.base_offset..next_offset).contains(&max_offset) => Some((max, max_offset)),
            _ => return Err(damaged(&time_path, 24, "max timestamp fields inconsistent")),
        };
        let mut time_index = Vec::with_capacity(count);
        for _ in 0..count {
            let entry = TimeEntry {
                timestamp: t.i64()?,
                relative_offset: t.u32()?,
            };
            let ascending = time_index.last().is_none_or(|p: &TimeEntry| {
                p.timestamp < entry.timestamp && p.relative_offset < entry.relative_offset
            });
            if !ascending || i64::from(entry.relative_offset) > next_offset - self.base_offset {
                return Err(damaged(&time_path, t.at, "entries out of order or range"));
            }
            time_index.push(entry);
        }

        self.size = covered;
        self.next_offset = next_offset;
        self.max_timestamp = max_timestamp;
        self.bytes_since_index = covered - offset_index.last().map_or(0, |e| u64::from(e.position));
        self.offset_index = offset_index;
        self.time_index = time_index;
        self.index_persisted_size = Some(covered);
        Ok(covered)
    }
}

/// Reads an index file whole after checking its size bound and trailing CRC.
fn read_index_file(path: &Path) -> Result<Vec<u8>, IndexError> {
    let io = |op| {
        move |source: std::io::Error| {
            if source.kind() == std::io::ErrorKind::NotFound {
                IndexError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                IndexError::Io {
                    op,
                    path: path.to_path_buf(),
                    source,
                }
            }
        }
    };
    let len = std::fs::metadata(path).map_err(io("stat index"))?.len();
    if len > MAX_INDEX_FILE_BYTES || len < CRC_LEN as u64 {
        return Err(IndexError::Damaged {
            path: path.to_path_buf(),
            position: 0,
            reason: "file size out of bounds",
        });
    }
    let bytes = std::fs::read(path).map_err(io("read index"))?;
    let Some((body, crc)) = bytes.split_last_chunk::<CRC_LEN>() else {
        return Err(IndexError::Damaged {
            path: path.to_path_buf(),
            position: 0,
            reason: "shorter than its checksum",
        });
    };
    if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
        return Err(IndexError::Damaged {
            path: path.to_path_buf(),
            position: body.len() as u64,
            reason: "checksum mismatch",
        });
    }
    Ok(bytes)
}

/// Bounds-checked big-endian reader over an index file.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], path: &'a Path) -> Self {
        Self { buf, at: 0, path }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IndexError> {
        let bytes = self
            .buf
            .get(self.at..self.at + N)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| IndexError::Damaged {
                path: self.path.to_path_buf(),
                position: self.at as u64,
                reason: "truncated",
            })?;
        self.at += N;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32, IndexError> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, IndexError> {
        self.array().map(u64::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, IndexError> {
        self.array().map(i64::from_be_bytes)
    }
}

/// Reads batches of a data file forward through a window buffer. Everything it returns was
/// checked against `end` (the bytes the caller trusts to exist) and [`MAX_BATCH_BYTES`].
pub struct Walker<'a> {
    file: &'a File,
    path: &'a Path,
    end: u64,
    window: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> Walker<'a> {
    /// `window` is the read-ahead: [`HEADER_LEN`] for point reads, large for scans.
    pub fn new(file: &'a File, path: &'a Path, end: u64, window: usize) -> Self {
        Self {
            file,
            path,
            end,
            window: window.max(HEADER_LEN),
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    pub fn point(file: &'a File, path: &'a Path, end: u64) -> Self {
        Self::new(file, path, end, HEADER_LEN)
    }

    /// The bytes `[position, position + len)`, or `None` when they run past `end`.
    pub fn bytes_at(&mut self, position: u64, len: u64) -> Result<Option<&[u8]>, PartitionError> {
        let Some(stop) = position.checked_add(len).filter(|stop| *stop <= self.end) else {
            return Ok(None);
        };
        let buf_end = self.buf_start + self.buf.len() as u64;
        if position < self.buf_start || stop > buf_end {
            let want = (len as usize).max(self.window) as u64;
            let read_len = want.min(self.end - position) as usize;
            self.buf.resize(read_len, 0);
            self.file
                .read_exact_at(&mut self.buf, position)
                .map_err(|source| PartitionError::Io {
                    op: "read segment",
                    path: self.path.to_path_buf(),
                    source,
                })?;
            self.buf_start = position;
        }
        let from = (position - self.buf_start) as usize;
        Ok(self.buf.get(from..from + len as usize))
    }

    /// Parses the header of the batch at `position` and checks its whole length fits.
    /// The outer error is I/O (never a reason to truncate); the inner one says what is wrong
    /// with the bytes.
    pub fn header_at(
        &mut self,
        position: u64,
    ) -> Result<Result<BatchHeader, String>, PartitionError> {
        let end = self.end;
        let Some(bytes) = self.bytes_at(position, HEADER_LEN as u64)? else {
            return Ok(Err(format!(
                "torn batch header: {} bytes left",
                end.saturating_sub(position)
            )));
        };
        let header = match BatchHeader::parse(bytes) {
            Ok(header) => header,
            Err(e) => return Ok(Err(e.to_string())),
        };
        // Offsets must be such that `last_offset()` cannot overflow, whatever the disk says.
        let offsets_sane = header.base_offset >= 0
            && header.last_offset_delta >= 0
            && header
                .base_offset
                .checked_add(i64::from(header.last_offset_delta))
                .is_some();
        if !offsets_sane {
            return Ok(Err(format!(
                "batch offsets out of range: base {}, lastOffsetDelta {}",
                header.base_offset, header.last_offset_delta
            )));
        }
        let len = header.total_len() as u64;
        if len > MAX_BATCH_BYTES {
            return Ok(Err(format!(
                "batch length {len} above the {MAX_BATCH_BYTES}-byte bound"
            )));
        }
        if position + len > end {
            return Ok(Err(format!(
                "torn batch: {len} bytes declared, {} present",
                end - position
            )));
        }
        Ok(Ok(header))
    }

    /// The header at `position`, any problem with it being corruption of `path`.
    pub fn header_or_corrupt(&mut self, position: u64) -> Result<BatchHeader, PartitionError> {
        self.header_at(position)?
            .map_err(|reason| PartitionError::Corrupt {
                path: self.path.to_path_buf(),
                position,
                reason,
            })
    }
}
