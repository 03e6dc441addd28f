//! Compaction (`cleanup.policy=compact`): keep the last record per key, drop tombstones once
//! they are older than `delete.retention.ms`. Works file to file on sealed segments; the
//! partition log swaps the outputs in.
//!
//! It owns the two passes of a cleaning round, as Kafka's log cleaner does:
//! 1. read the input segments and build a bounded map from a 128-bit key digest to the
//!    latest offset of that key ([`KEYS_PER_ROUND_MAX`]); when the map fills up, only the
//!    segments scanned completely are compacted this round;
//! 2. rewrite each of those segments batch by batch into `<input>.cleaned` (fsynced).
//!
//! It must never modify its inputs, never swap files (the partition log does, under its
//! lock, after this returns Ok), and never trust segment bytes: a batch that does not parse
//! or check is an error naming the file and byte position, and the partial outputs are
//! removed.
//!
//! Kept batches are not re-encoded; a batch losing some records is rebuilt with its base
//! offset, offset and timestamp deltas, lastOffsetDelta, producer fields, attributes and
//! codec; control batches are copied byte for byte; a batch left with no record is dropped.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::IndexError;
use super::key_index::io_error;
use crate::batch::{
    BatchBuilder, BatchError, BatchHeader, HEADER_LEN, Record, TimestampType, check_crc,
    decode_records,
};

/// Distinct keys one round maps. At 24 bytes a key plus the hash table's slack this is
/// about 40 MiB, in the range of Kafka's cleaner dedupe buffer (128 MiB shared by its
/// threads); a partition with more keys is compacted over several rounds.
pub const KEYS_PER_ROUND_MAX: usize = 1 << 20;
/// Largest stored batch compaction reads into memory. Batches were bounded when produced;
/// this only stops a damaged length field from making us allocate.
pub const BATCH_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Read buffer for segments: large sequential reads.
const READ_BUFFER_BYTES: usize = 1024 * 1024;

/// A sealed segment to compact: its data file and the offset of its first batch.
#[derive(Debug, Clone)]
pub struct SegmentInput {
    pub path: PathBuf,
    pub base_offset: i64,
}

/// A rewritten segment, at `path` (beside its input, named `<input>.cleaned`), holding the
/// kept batches of the input whose base offset it shares.
#[derive(Debug, Clone)]
pub struct SegmentOutput {
    pub input: PathBuf,
    pub path: PathBuf,
    pub base_offset: i64,
    pub bytes: u64,
    pub records_kept: u64,
    pub records_dropped: u64,
}

/// Compacts `segments` (ascending, all sealed). `dirty_end_offset` is the first offset not
/// compacted (the active segment's base): records at or past it still count as the latest
/// value of their key. A tombstone (null value) is dropped when its batch's max timestamp is
/// older than `now_ms - delete_retention_ms`. Records with a null key are kept.
///
/// `later_keys(key)` answers the offset of a record with `key` at or past
/// `dirty_end_offset`, if any; such a key's records in `segments` are all superseded.
///
/// Returns one output per compacted input, in order: all of `segments`, or a prefix of
/// them when they hold more than [`KEYS_PER_ROUND_MAX`] distinct keys (never empty when
/// `segments` is not).
pub fn compact_segments(
    segments: &[SegmentInput],
    later_keys: &dyn Fn(&[u8]) -> Option<i64>,
    dirty_end_offset: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    _scratch_dir: &Path,
) -> Result<Vec<SegmentOutput>, IndexError> {
    compact_segments_with_key_cap(
        segments,
        later_keys,
        dirty_end_offset,
        now_ms,
        delete_retention_ms,
        KEYS_PER_ROUND_MAX,
    )
}

/// As [`compact_segments`], with the bound on distinct keys per round given.
pub fn compact_segments_with_key_cap(
    segments: &[SegmentInput],
    later_keys: &dyn Fn(&[u8]) -> Option<i64>,
    dirty_end_offset: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    keys_max: usize,
) -> Result<Vec<SegmentOutput>, IndexError> {
    assert!(keys_max > 0, "the key map holds at least one key");
    let (latest, compact_count) = build_offset_map(segments, keys_max)?;
    let policy = KeepPolicy {
        latest,
        later_keys,
        dirty_end_offset,
        delete_horizon_ms: now_ms.saturating_sub(delete_retention_ms),
    };
    let mut outputs: Vec<SegmentOutput> = Vec::with_capacity(compact_count);
    for segment in &segments[..compact_count] {
        match clean_segment(segment, &policy) {
            Ok(output) => outputs.push(output),
            Err(error) => {
                // Best effort: the caller swaps nothing after an error, and a leftover
                // `.cleaned` file is overwritten by the next round.
                for output in &outputs {
                    let _ = fs::remove_file(&output.path);
                }
                let _ = fs::remove_file(cleaned_path(&segment.path));
                return Err(error);
            }
        }
    }
    Ok(outputs)
}

/// The output path beside `input`.
pub fn cleaned_path(input: &Path) -> PathBuf {
    let mut name = OsString::from(input.as_os_str());
    name.push(".cleaned");
    PathBuf::from(name)
}

/// FNV-1a, 128-bit: the key map stores digests, not keys, so a collision would drop a
/// record of another key; 128 bits make that negligible (Kafka's cleaner uses MD5's 128).
fn key_digest(key: &[u8]) -> [u64; 2] {
    const OFFSET_BASIS: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let hash = key.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u128::from(*byte)).wrapping_mul(PRIME)
    });
    // Two u64 halves: 8-byte alignment keeps a map entry at 24 bytes instead of 32.
    [(hash >> 64) as u64, hash as u64]
}

/// Pass 1: key digest → latest offset, and how many leading segments to compact.
///
/// The map stops at the first key that does not fit. Segments before that one were
/// scanned completely and are compacted. Offsets mapped from the partly scanned segment
/// are still true "later" offsets (that segment stays as it is this round), so using them
/// is safe. When even the first segment does not fit, it is compacted alone with the
/// partial map: records of keys not mapped, or past their mapped offset, are kept.
fn build_offset_map(
    segments: &[SegmentInput],
    keys_max: usize,
) -> Result<(HashMap<[u64; 2], i64>, usize), IndexError> {
    let mut latest: HashMap<[u64; 2], i64> = HashMap::new();
    for (index, segment) in segments.iter().enumerate() {
        let mut reader = SegmentReader::open(segment)?;
        while let Some(batch) = reader.next_batch()? {
            if batch.header.is_control() {
                // Control records' keys are marker types, not message keys.
                continue;
            }
            for (record, offset) in batch.records(&reader)? {
                let Some(key) = &record.key else { continue };
                let digest = key_digest(key);
                if let Some(mapped) = latest.get_mut(&digest) {
                    *mapped = (*mapped).max(offset);
                } else if latest.len() < keys_max {
                    latest.insert(digest, offset);
                } else {
                    return Ok((latest, index.max(1)));
                }
            }
        }
    }
    Ok((latest, segments.len()))
}

struct KeepPolicy<'a> {
    latest: HashMap<[u64; 2], i64>,
    later_keys: &'a dyn Fn(&[u8]) -> Option<i64>,
    dirty_end_offset: i64,
    delete_horizon_ms: i64,
}

impl KeepPolicy<'_> {
    fn keep(&self, record: &Record, offset: i64, batch_max_timestamp_ms: i64) -> bool {
        if offset >= self.dirty_end_offset {
            return true;
        }
        let Some(key) = &record.key else {
            return true;
        };
        let Some(&latest) = self.latest.get(&key_digest(key)) else {
            // Not mapped (the map filled up): nothing is known to supersede it.
            return true;
        };
        if offset != latest {
            // Before the latest: superseded. After it: past what pass 1 scanned.
            return offset > latest;
        }
        if (self.later_keys)(key).is_some_and(|later| later > offset) {
            return false;
        }
        let tombstone = record.value.is_none();
        !(tombstone && batch_max_timestamp_ms < self.delete_horizon_ms)
    }
}

/// Pass 2 for one segment: writes `<input>.cleaned` and fsyncs it.
fn clean_segment(
    segment: &SegmentInput,
    policy: &KeepPolicy<'_>,
) -> Result<SegmentOutput, IndexError> {
    let out_path = cleaned_path(&segment.path);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&out_path)
        .map_err(|source| io_error("create", &out_path, source))?;
    let mut writer = BufWriter::new(file);
    let mut output = SegmentOutput {
        input: segment.path.clone(),
        path: out_path.clone(),
        base_offset: segment.base_offset,
        bytes: 0,
        records_kept: 0,
        records_dropped: 0,
    };
    let mut reader = SegmentReader::open(segment)?;
    while let Some(batch) = reader.next_batch()? {
        let cleaned = if batch.header.is_control() {
            output.records_kept += u64::try_from(batch.header.record_count).unwrap_or(0);
            Some(batch.bytes)
        } else {
            let records = batch.records(&reader)?;
            let keep: Vec<bool> = records
                .iter()
                .map(|(record, offset)| policy.keep(record, *offset, batch.header.max_timestamp))
                .collect();
            let kept = keep.iter().filter(|k| **k).count();
            output.records_kept += kept as u64;
            output.records_dropped += (records.len() - kept) as u64;
            if kept == records.len() {
                Some(batch.bytes)
            } else if kept == 0 {
                None
            } else {
                Some(rebuild(&batch.header, records, &keep).map_err(|source| {
                    IndexError::CorruptBatch {
                        path: segment.path.clone(),
                        position: batch.position,
                        source,
                    }
                })?)
            }
        };
        if let Some(bytes) = cleaned {
            writer
                .write_all(&bytes)
                .map_err(|source| io_error("write", &out_path, source))?;
            output.bytes += bytes.len() as u64;
        }
    }
    let file = writer
        .into_inner()
        .map_err(|error| io_error("write", &out_path, error.into_error()))?;
    file.sync_all()
        .map_err(|source| io_error("fsync", &out_path, source))?;
    Ok(output)
}

/// Re-encodes the kept records of a batch with everything else of the original batch.
fn rebuild(
    header: &BatchHeader,
    records: Vec<(Record, i64)>,
    keep: &[bool],
) -> Result<Vec<u8>, BatchError> {
    let mut builder = BatchBuilder::new(header.base_offset, header.base_timestamp);
    builder.compression = header.compression()?;
    builder.attributes = header.attributes;
    builder.producer_id = header.producer_id;
    builder.producer_epoch = header.producer_epoch;
    builder.base_sequence = header.base_sequence;
    builder.partition_leader_epoch = header.partition_leader_epoch;
    // Keeps the batch's last offset (and so the producer's sequence range) when its last
    // record is dropped.
    builder.last_offset_delta = Some(header.last_offset_delta);
    let mut max_timestamp: Option<i64> = None;
    for ((record, _), _) in records.into_iter().zip(keep).filter(|(_, keep)| **keep) {
        // Overflow was ruled out when the batch was decoded.
        let timestamp = header.base_timestamp + record.timestamp_delta;
        max_timestamp = Some(max_timestamp.map_or(timestamp, |max| max.max(timestamp)));
        builder.push_record(record);
    }
    builder.max_timestamp = match header.timestamp_type() {
        // Every record of the batch carries the broker's time.
        TimestampType::LogAppendTime => header.max_timestamp,
        TimestampType::CreateTime => max_timestamp.unwrap_or(header.max_timestamp),
    };
    Ok(builder.build())
}

/// Reads the batches of one segment in order, checking each before returning it.
struct SegmentReader {
    path: PathBuf,
    reader: BufReader<File>,
    position: u64,
    len: u64,
    /// The next batch's base offset must be at least this.
    expected_min: i64,
}

struct StoredBatch {
    position: u64,
    header: BatchHeader,
    bytes: Vec<u8>,
}

impl SegmentReader {
    fn open(segment: &SegmentInput) -> Result<Self, IndexError> {
        let path = segment.path.clone();
        let file = File::open(&path).map_err(|source| io_error("open", &path, source))?;
        let len = file
            .metadata()
            .map_err(|source| io_error("stat", &path, source))?
            .len();
        Ok(Self {
            path,
            reader: BufReader::with_capacity(READ_BUFFER_BYTES, file),
            position: 0,
            len,
            expected_min: segment.base_offset,
        })
    }

    fn corrupt(&self, position: u64, source: BatchError) -> IndexError {
        IndexError::CorruptBatch {
            path: self.path.clone(),
            position,
            source,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), IndexError> {
        self.reader
            .read_exact(buf)
            .map_err(|source| io_error("read", &self.path, source))
    }

    fn next_batch(&mut self) -> Result<Option<StoredBatch>, IndexError> {
        let position = self.position;
        let remaining = self.len - position;
        if remaining == 0 {
            return Ok(None);
        }
        let available = usize::try_from(remaining).unwrap_or(usize::MAX);
        if available < HEADER_LEN {
            return Err(self.corrupt(
                position,
                BatchError::Truncated {
                    needed: HEADER_LEN,
                    available,
                },
            ));
        }
        let mut header_bytes = [0u8; HEADER_LEN];
        self.read_exact(&mut header_bytes)?;
        let header = BatchHeader::parse(&header_bytes).map_err(|e| self.corrupt(position, e))?;
        let total = header.total_len();
        if total > BATCH_BYTES_MAX {
            return Err(self.corrupt(
                position,
                BatchError::InvalidLength {
                    length: header.batch_length,
                },
            ));
        }
        if total > available {
            return Err(self.corrupt(
                position,
                BatchError::Truncated {
                    needed: total,
                    available,
                },
            ));
        }
        let mut bytes = vec![0u8; total];
        bytes[..HEADER_LEN].copy_from_slice(&header_bytes);
        self.read_exact(&mut bytes[HEADER_LEN..])?;
        check_crc(&bytes).map_err(|e| self.corrupt(position, e))?;
        if header.last_offset_delta < 0 {
            return Err(self.corrupt(
                position,
                BatchError::Inconsistent {
                    reason: "negative lastOffsetDelta",
                },
            ));
        }
        if header.base_offset < self.expected_min {
            return Err(IndexError::BatchOutOfOrder {
                path: self.path.clone(),
                position,
                base_offset: header.base_offset,
                expected_min: self.expected_min,
            });
        }
        let last_offset = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta))
            .ok_or_else(|| {
                self.corrupt(
                    position,
                    BatchError::Inconsistent {
                        reason: "last offset overflows",
                    },
                )
            })?;
        self.expected_min = last_offset.saturating_add(1);
        self.position += total as u64;
        Ok(Some(StoredBatch {
            position,
            header,
            bytes,
        }))
    }
}

impl StoredBatch {
    /// The batch's records with their offsets, checked: offsets strictly ascending within
    /// the batch's range, timestamps representable.
    fn records(&self, reader: &SegmentReader) -> Result<Vec<(Record, i64)>, IndexError> {
        let corrupt = |source| reader.corrupt(self.position, source);
        let records = decode_records(&self.bytes).map_err(corrupt)?;
        let inconsistent = |reason| corrupt(BatchError::Inconsistent { reason });
        let mut previous_delta: Option<i32> = None;
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let delta = record.offset_delta;
            if delta < 0 || delta > self.header.last_offset_delta {
                return Err(inconsistent("record offset outside the batch"));
            }
            if previous_delta.is_some_and(|previous| previous >= delta) {
                return Err(inconsistent("record offsets not ascending"));
            }
            previous_delta = Some(delta);
            if self
                .header
                .base_timestamp
                .checked_add(record.timestamp_delta)
                .is_none()
            {
                return Err(inconsistent("record timestamp overflows"));
            }
            let offset = self.header.base_offset + i64::from(delta);
            out.push((record, offset));
        }
        Ok(out)
    }
}
