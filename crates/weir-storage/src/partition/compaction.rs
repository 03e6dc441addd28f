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
//!
//! Transactional batches are left alone: copied byte for byte, and their records supersede
//! nothing. Compaction does not know which transactions committed, so this is the safe
//! rule — a committed value is never dropped in favour of an aborted one, an aborted record
//! never disappears from under its entry in the aborted-transaction index, and the markers
//! stay. The cost is that transactional records are never compacted away (Kafka's cleaner
//! removes aborted ones and then compacts committed ones; left for later).

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
            if batch.header.is_control() || batch.header.is_transactional() {
                // Control records' keys are marker types, not message keys; transactional
                // records may belong to an aborted transaction (see the module docs).
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
        let cleaned = if batch.header.is_control() || batch.header.is_transactional() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Compression, RecordHeader, validate_batches};
    use proptest::prelude::*;

    const NOW_MS: i64 = 10_000_000;
    const RETENTION_MS: i64 = 10_000;
    const ATTR_LOG_APPEND_TIME: i16 = 0x08;
    const ATTR_CONTROL_TXN: i16 = 0x30;
    const ATTR_TRANSACTIONAL: i16 = 0x10;
    use crate::test_rng::Rng;

    struct InputBatch {
        bytes: Vec<u8>,
        header: BatchHeader,
        /// Decoded records with their offsets.
        records: Vec<(Record, i64)>,
    }

    struct Case {
        segments: Vec<Vec<InputBatch>>,
        later: HashMap<Vec<u8>, i64>,
        dirty_end_offset: i64,
    }

    /// Keys include the bytes of a commit marker's key, which must not be confused with
    /// the control record carrying them.
    fn keys() -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = (0..6).map(|k| format!("k{k}").into_bytes()).collect();
        keys.push(vec![0, 0, 0, 1]);
        keys
    }

    fn control_batch(rng: &mut Rng, base_offset: i64) -> Vec<u8> {
        let ts = NOW_MS - rng.below(30_000) as i64;
        let mut builder = BatchBuilder::new(base_offset, ts);
        builder.attributes = ATTR_CONTROL_TXN;
        builder.producer_id = 77;
        builder.producer_epoch = 3;
        let marker = [0u8, 0, 0, rng.below(2) as u8];
        builder.push(ts, Some(&marker), Some(&[0, 0, 0, 0, 0, 0]), &[]);
        builder.build()
    }

    fn data_batch(rng: &mut Rng, base_offset: i64, keys: &[Vec<u8>]) -> Vec<u8> {
        let base_ts = NOW_MS - rng.below(30_000) as i64;
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        let mut builder = BatchBuilder::new(base_offset, base_ts)
            .compression(codecs[rng.below(codecs.len() as u64) as usize]);
        if rng.one_in(5) {
            builder.attributes = ATTR_LOG_APPEND_TIME;
        }
        if rng.one_in(2) {
            builder.producer_id = rng.below(1_000) as i64;
            builder.producer_epoch = rng.below(5) as i16;
            builder.base_sequence = rng.below(100_000) as i32;
            if rng.one_in(3) {
                builder.attributes |= ATTR_TRANSACTIONAL;
            }
        }
        builder.partition_leader_epoch = rng.below(9) as i32;
        let mut delta = 0;
        for i in 0..1 + rng.below(6) {
            if i > 0 {
                // Gaps, as an earlier compaction leaves them.
                delta += if rng.one_in(4) { 2 } else { 1 };
            }
            let key = (!rng.one_in(7)).then(|| keys[rng.below(keys.len() as u64) as usize].clone());
            let value = (!rng.one_in(4))
                .then(|| rng.next().to_be_bytes()[..rng.below(8) as usize].to_vec());
            let headers = if rng.one_in(3) {
                vec![RecordHeader {
                    key: "KEYS".into(),
                    value: Some(b"a b".to_vec()),
                }]
            } else {
                Vec::new()
            };
            builder.push_record(Record {
                attributes: 0,
                timestamp_delta: rng.below(300) as i64 - 50,
                offset_delta: delta,
                key,
                value,
                headers,
            });
        }
        if rng.one_in(4) {
            builder.last_offset_delta = Some(delta + 1 + rng.below(3) as i32);
        }
        if builder.attributes & ATTR_LOG_APPEND_TIME != 0 {
            builder.max_timestamp = base_ts + 400;
        }
        builder.build()
    }

    fn generate(seed: u64, segment_count: usize) -> Case {
        let mut rng = Rng(seed);
        let keys = keys();
        let mut offset = 1_000 + rng.below(100) as i64;
        let mut segments = Vec::new();
        for _ in 0..segment_count {
            let mut batches = Vec::new();
            for _ in 0..1 + rng.below(5) {
                let bytes = if rng.one_in(6) {
                    control_batch(&mut rng, offset)
                } else {
                    data_batch(&mut rng, offset, &keys)
                };
                let header = BatchHeader::parse(&bytes).expect("built batch parses");
                let records = decode_records(&bytes)
                    .expect("built batch decodes")
                    .into_iter()
                    .map(|r| {
                        let o = header.base_offset + i64::from(r.offset_delta);
                        (r, o)
                    })
                    .collect();
                offset = header.last_offset() + 1 + if rng.one_in(5) { 2 } else { 0 };
                batches.push(InputBatch {
                    bytes,
                    header,
                    records,
                });
            }
            segments.push(batches);
        }
        // Usually the active segment starts after the inputs; sometimes the inputs reach
        // past it, and those records must be left alone.
        let dirty_end_offset = if rng.one_in(4) {
            offset - rng.below(8) as i64
        } else {
            offset + rng.below(3) as i64
        };
        let later = keys
            .into_iter()
            .filter(|_| rng.one_in(4))
            .map(|k| (k, dirty_end_offset + 10))
            .collect();
        Case {
            segments,
            later,
            dirty_end_offset,
        }
    }

    fn write_inputs(case: &Case, dir: &Path) -> Vec<SegmentInput> {
        case.segments
            .iter()
            .map(|batches| {
                let base_offset = batches[0].header.base_offset;
                let path = dir.join(format!("{base_offset:020}.log"));
                let bytes: Vec<u8> = batches.iter().flat_map(|b| b.bytes.clone()).collect();
                std::fs::write(&path, bytes).expect("write segment");
                SegmentInput { path, base_offset }
            })
            .collect()
    }

    /// The model: which records survive, and how many segments are compacted, computed
    /// from decoded records with exact keys (no digests). With `keys_max` unbounded it is
    /// the plain rule: keep a record iff its key is null, it is at/after the dirty end, or
    /// it is its key's latest, no later record has the key, and it is not a tombstone past
    /// the delete horizon.
    fn model(case: &Case, keys_max: usize) -> (Vec<Vec<Vec<bool>>>, usize) {
        let mut latest: HashMap<Vec<u8>, i64> = HashMap::new();
        let mut compact_count = case.segments.len();
        'scan: for (s, batches) in case.segments.iter().enumerate() {
            for batch in batches
                .iter()
                .filter(|b| !b.header.is_control() && !b.header.is_transactional())
            {
                for (record, offset) in &batch.records {
                    let Some(key) = &record.key else { continue };
                    if let Some(l) = latest.get_mut(key) {
                        *l = (*l).max(*offset);
                    } else if latest.len() < keys_max {
                        latest.insert(key.clone(), *offset);
                    } else {
                        compact_count = s.max(1);
                        break 'scan;
                    }
                }
            }
        }
        let horizon = NOW_MS - RETENTION_MS;
        let keep = case
            .segments
            .iter()
            .map(|batches| {
                batches
                    .iter()
                    .map(|batch| {
                        batch
                            .records
                            .iter()
                            .map(|(record, offset)| {
                                if batch.header.is_control()
                                    || batch.header.is_transactional()
                                    || *offset >= case.dirty_end_offset
                                {
                                    return true;
                                }
                                let Some(key) = &record.key else { return true };
                                let Some(&l) = latest.get(key) else {
                                    return true;
                                };
                                if *offset != l {
                                    return *offset > l;
                                }
                                if case.later.contains_key(key) {
                                    return false;
                                }
                                !(record.value.is_none() && batch.header.max_timestamp < horizon)
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        (keep, compact_count)
    }

    fn run(case: &Case, dir: &Path, keys_max: usize) -> Result<Vec<SegmentOutput>, IndexError> {
        let inputs = write_inputs(case, dir);
        let later = |key: &[u8]| case.later.get(key).copied();
        compact_segments_with_key_cap(
            &inputs,
            &later,
            case.dirty_end_offset,
            NOW_MS,
            RETENTION_MS,
            keys_max,
        )
    }

    fn check_outputs(case: &Case, outputs: &[SegmentOutput], keys_max: usize) {
        let (keep, compact_count) = model(case, keys_max);
        assert_eq!(outputs.len(), compact_count);
        for (s, output) in outputs.iter().enumerate() {
            let batches = &case.segments[s];
            assert_eq!(output.base_offset, batches[0].header.base_offset);
            assert_eq!(output.path, cleaned_path(&output.input));
            let input_bytes: Vec<u8> = batches.iter().flat_map(|b| b.bytes.clone()).collect();
            assert_eq!(
                std::fs::read(&output.input).expect("input"),
                input_bytes,
                "input untouched"
            );
            let bytes = std::fs::read(&output.path).expect("output");
            assert_eq!(bytes.len() as u64, output.bytes);
            let validated = if bytes.is_empty() {
                Vec::new()
            } else {
                validate_batches(&bytes, 1 << 24).expect("output batches are valid")
            };
            let mut out_batches = validated.iter();
            let (mut kept_total, mut dropped_total) = (0u64, 0u64);
            for (b, batch) in batches.iter().enumerate() {
                let keep_flags = &keep[s][b];
                let kept = keep_flags.iter().filter(|k| **k).count();
                kept_total += kept as u64;
                dropped_total += (keep_flags.len() - kept) as u64;
                if kept == 0 {
                    continue;
                }
                let out = out_batches
                    .next()
                    .expect("a batch with kept records is written");
                let out_bytes = &bytes[out.range.clone()];
                if kept == keep_flags.len() {
                    assert_eq!(
                        out_bytes,
                        batch.bytes.as_slice(),
                        "whole batches are copied"
                    );
                    continue;
                }
                let (h, o) = (&batch.header, &out.header);
                assert_eq!(o.base_offset, h.base_offset);
                assert_eq!(o.last_offset_delta, h.last_offset_delta);
                assert_eq!(o.attributes, h.attributes, "codec and flags kept");
                assert_eq!(o.base_timestamp, h.base_timestamp);
                assert_eq!(
                    (o.producer_id, o.producer_epoch, o.base_sequence),
                    (h.producer_id, h.producer_epoch, h.base_sequence)
                );
                assert_eq!(o.partition_leader_epoch, h.partition_leader_epoch);
                let expected: Vec<Record> = batch
                    .records
                    .iter()
                    .zip(keep_flags)
                    .filter(|(_, k)| **k)
                    .map(|((r, _), _)| r.clone())
                    .collect();
                assert_eq!(decode_records(out_bytes).expect("decodes"), expected);
                let expected_max = match h.timestamp_type() {
                    TimestampType::LogAppendTime => h.max_timestamp,
                    TimestampType::CreateTime => expected
                        .iter()
                        .map(|r| h.base_timestamp + r.timestamp_delta)
                        .max()
                        .expect("kept records"),
                };
                assert_eq!(o.max_timestamp, expected_max);
            }
            assert!(out_batches.next().is_none(), "no extra batches");
            assert_eq!(
                (output.records_kept, output.records_dropped),
                (kept_total, dropped_total)
            );
        }
        for batches in &case.segments[outputs.len()..] {
            let base = batches[0].header.base_offset;
            assert!(outputs.iter().all(|o| o.base_offset != base));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn result_is_the_model(seed in any::<u64>(), segment_count in 1usize..5) {
            let case = generate(seed, segment_count);
            let dir = tempfile::tempdir().expect("tempdir");
            let outputs = run(&case, dir.path(), KEYS_PER_ROUND_MAX).expect("compacts");
            check_outputs(&case, &outputs, usize::MAX);
        }

        #[test]
        fn a_full_key_map_compacts_a_prefix(
            seed in any::<u64>(),
            segment_count in 1usize..5,
            keys_max in 1usize..7,
        ) {
            let case = generate(seed, segment_count);
            let dir = tempfile::tempdir().expect("tempdir");
            let outputs = run(&case, dir.path(), keys_max).expect("compacts");
            check_outputs(&case, &outputs, keys_max);
            prop_assert!(!outputs.is_empty());
        }

        #[test]
        fn a_corrupt_batch_names_segment_and_position(
            seed in any::<u64>(),
            segment_count in 1usize..4,
            pick in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let case = generate(seed, segment_count);
            let dir = tempfile::tempdir().expect("tempdir");
            let inputs = write_inputs(&case, dir.path());
            // Every (segment, batch start, batch length).
            let mut batches: Vec<(usize, u64, usize)> = Vec::new();
            for (s, segment) in case.segments.iter().enumerate() {
                let mut position = 0u64;
                for batch in segment {
                    batches.push((s, position, batch.bytes.len()));
                    position += batch.bytes.len() as u64;
                }
            }
            let (s, start, len) = batches[pick.index(batches.len())];
            let mut bytes = std::fs::read(&inputs[s].path).expect("read");
            if truncate {
                bytes.truncate(start as usize + 1 + at.index(len - 1));
            } else {
                // From the magic on: the base offset and leader epoch are not checksummed.
                bytes[start as usize + 16 + at.index(len - 16)] ^= 0x10;
            }
            std::fs::write(&inputs[s].path, &bytes).expect("write");
            let later = |key: &[u8]| case.later.get(key).copied();
            let result = compact_segments(
                &inputs,
                &later,
                case.dirty_end_offset,
                NOW_MS,
                RETENTION_MS,
                dir.path(),
            );
            match result {
                Err(IndexError::CorruptBatch { path, position, .. }) => {
                    prop_assert_eq!(path, inputs[s].path.clone());
                    prop_assert_eq!(position, start);
                }
                other => prop_assert!(false, "expected CorruptBatch, got {:?}", other),
            }
            for input in &inputs {
                prop_assert!(!cleaned_path(&input.path).exists(), "no output is left behind");
            }
        }
    }

    /// The generator reaches every path the model test relies on.
    #[test]
    fn generated_cases_cover_every_path() {
        let (mut rebuilt, mut dropped_batches, mut copied, mut controls) = (0, 0, 0, 0);
        let (mut tombstones_dropped, mut superseded_by_later, mut prefixes) = (0, 0, 0);
        let mut transactional_data = 0;
        for seed in 0..60 {
            let case = generate(seed, 3);
            let (keep, _) = model(&case, usize::MAX);
            let (_, count) = model(&case, 3);
            prefixes += usize::from(count < case.segments.len());
            for (s, batches) in case.segments.iter().enumerate() {
                for (b, batch) in batches.iter().enumerate() {
                    let flags = &keep[s][b];
                    let kept = flags.iter().filter(|k| **k).count();
                    controls += usize::from(batch.header.is_control());
                    transactional_data +=
                        usize::from(batch.header.is_transactional() && !batch.header.is_control());
                    match kept {
                        0 => dropped_batches += 1,
                        k if k == flags.len() => copied += 1,
                        _ => rebuilt += 1,
                    }
                    for ((record, _), keep) in batch.records.iter().zip(flags) {
                        let key = record.key.as_ref();
                        if !keep && record.value.is_none() {
                            tombstones_dropped += 1;
                        }
                        if !keep && key.is_some_and(|k| case.later.contains_key(k)) {
                            superseded_by_later += 1;
                        }
                    }
                }
            }
        }
        for (what, n) in [
            ("rebuilt", rebuilt),
            ("dropped batches", dropped_batches),
            ("copied", copied),
            ("control", controls),
            ("transactional data", transactional_data),
            ("tombstones dropped", tombstones_dropped),
            ("superseded by later keys", superseded_by_later),
            ("prefix rounds", prefixes),
        ] {
            assert!(n > 5, "{what}: {n}");
        }
    }

    #[test]
    fn no_segments_no_outputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outputs =
            compact_segments(&[], &|_| None, 0, NOW_MS, RETENTION_MS, dir.path()).expect("ok");
        assert!(outputs.is_empty());
    }

    #[test]
    fn latest_values_and_fresh_tombstones_stay_old_tombstones_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = NOW_MS - 2 * RETENTION_MS;
        let mut first = BatchBuilder::new(0, old);
        first.push(old, Some(b"a"), Some(b"1"), &[]);
        first.push(old, Some(b"b"), Some(b"1"), &[]);
        first.push(old, Some(b"c"), Some(b"1"), &[]);
        first.push(old, None, Some(b"no key"), &[]);
        let mut second = BatchBuilder::new(4, old);
        second.push(old, Some(b"a"), None, &[]); // old tombstone: goes, with a's value
        let mut third = BatchBuilder::new(5, NOW_MS);
        third.push(NOW_MS, Some(b"b"), None, &[]); // fresh tombstone: stays
        let path = dir.path().join("0.log");
        let bytes = [first.build(), second.build(), third.build()].concat();
        std::fs::write(&path, &bytes).expect("write");
        let input = SegmentInput {
            path: path.clone(),
            base_offset: 0,
        };
        let outputs =
            compact_segments(&[input], &|_| None, 6, NOW_MS, RETENTION_MS, dir.path()).expect("ok");
        let out = std::fs::read(&outputs[0].path).expect("read");
        let batches = validate_batches(&out, 1 << 20).expect("valid");
        assert_eq!(
            batches.len(),
            2,
            "the batch holding only the old tombstone is dropped"
        );
        let records = decode_records(&out[batches[0].range.clone()]).expect("decodes");
        let deltas: Vec<i32> = records.iter().map(|r| r.offset_delta).collect();
        assert_eq!(deltas, vec![2, 3], "c and the null-key record stay");
        assert_eq!(batches[0].header.last_offset_delta, 3);
        assert_eq!(batches[1].header.base_offset, 5);
        assert_eq!(
            (outputs[0].records_kept, outputs[0].records_dropped),
            (3, 3)
        );
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bytes,
            "input untouched"
        );
    }

    #[test]
    fn batches_going_backwards_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = BatchBuilder::new(10, 0);
        first.push(0, Some(b"a"), Some(b"1"), &[]);
        let mut second = BatchBuilder::new(5, 0);
        second.push(0, Some(b"a"), Some(b"2"), &[]);
        let first = first.build();
        let path = dir.path().join("0.log");
        std::fs::write(&path, [first.clone(), second.build()].concat()).expect("write");
        let input = SegmentInput {
            path,
            base_offset: 10,
        };
        let result = compact_segments(&[input], &|_| None, 20, NOW_MS, RETENTION_MS, dir.path());
        assert!(matches!(
            result,
            Err(IndexError::BatchOutOfOrder { position, base_offset: 5, expected_min: 11, .. })
                if position == first.len() as u64
        ));
    }

    #[test]
    fn key_digest_is_fnv1a_128() {
        // FNV-1a 128 of the empty input is the offset basis; "a" from the reference table.
        assert_eq!(
            key_digest(b""),
            [0x6c62_272e_07bb_0142, 0x62b8_2175_6295_c58d]
        );
        assert_eq!(
            key_digest(b"a"),
            [0xd228_cb69_6f1a_8caf, 0x7891_2b70_4e4a_8964]
        );
    }
}
