//! Unit tests of partition log internals: the compaction swap (with hand-made outputs, since
//! the compaction module is still a stub), index file round trips, append cost.

use std::sync::Arc;

use super::*;
use crate::batch::{BatchBuilder, BatchHeader, stamp};

const T0: i64 = 1_700_000_000_000;

fn batch(base: i64, count: usize, value_len: usize) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, T0);
    for i in 0..count {
        let key = format!("k{}", (base + i as i64) % 7);
        builder.push(
            T0 + base,
            Some(key.as_bytes()),
            Some(&vec![b'v'; value_len]),
            &[],
        );
    }
    let mut bytes = builder.build();
    stamp(&mut bytes, base, None);
    bytes
}

fn compacting_log(dir: &Path) -> PartitionLog {
    let config = PartitionConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..PartitionConfig::default()
    };
    let mut log = PartitionLog::create(dir, config, Arc::new(FileCache::new(16))).unwrap();
    for _ in 0..30 {
        let base = log.log_end_offset();
        log.append(&batch(base, 2, 60), T0).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    log.flush().unwrap();
    log
}

/// Splits a segment file into its batches.
fn batches_of(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = BatchHeader::parse(&bytes[pos..]).unwrap().total_len();
        out.push(&bytes[pos..pos + len]);
        pos += len;
    }
    out
}

fn hand_made_output(
    log: &PartitionLog,
    index: usize,
    keep: impl Fn(usize) -> bool,
) -> compaction::SegmentOutput {
    let segment = &log.segments[index];
    let data = std::fs::read(&segment.path).unwrap();
    let kept: Vec<u8> = batches_of(&data)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .flat_map(|(_, b)| b.to_vec())
        .collect();
    let mut path = segment.path.clone().into_os_string();
    path.push(".cleaned");
    let path = PathBuf::from(path);
    std::fs::write(&path, &kept).unwrap();
    compaction::SegmentOutput {
        input: segment.path.clone(),
        path,
        base_offset: segment.base_offset,
        bytes: kept.len() as u64,
        records_kept: 0,
        records_dropped: 0,
    }
}

fn first_offsets(log: &PartitionLog) -> Vec<i64> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log.read(offset, log.log_end_offset(), 1).unwrap().unwrap();
        out.push(slice.first_offset);
        offset = slice.last_offset + 1;
    }
    out
}

#[test]
fn swap_replaces_a_segment_with_its_compacted_output_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = compacting_log(dir.path());
    assert!(log.segments.len() >= 3);
    let before = first_offsets(&log);
    let end = log.log_end_offset();
    let seg0_end = log.segments[0].next_offset;
    // Keep every other batch of segment 0, including its last (offsets stay covered).
    let output = hand_made_output(&log, 0, |i| i % 2 == 1);
    let cleaned = output.path.clone();
    let old_size = log.segments[0].size;
    assert_eq!(log.swap_in(&output).unwrap(), old_size);
    assert!(!cleaned.exists());
    assert_eq!(log.segments[0].size, output.bytes);
    assert_eq!(log.segments[0].next_offset, seg0_end);
    assert_eq!(log.log_end_offset(), end);
    let expected: Vec<i64> = before
        .iter()
        .copied()
        .filter(|o| *o >= seg0_end || (o / 2) % 2 == 1)
        .collect();
    assert_eq!(first_offsets(&log), expected);
    // Reading a dropped offset returns the next kept batch.
    assert_eq!(log.read(0, end, 1).unwrap().unwrap().first_offset, 2);
    log.verify().unwrap();
    // A reopen before any flush rebuilds the swapped segment's indexes (they were removed).
    let config = log.config().clone();
    drop(log);
    let files = Arc::new(FileCache::new(16));
    let (mut log, recovery) =
        PartitionLog::open(dir.path(), config.clone(), Arc::clone(&files), T0).unwrap();
    assert_eq!(recovery.rebuilt_indexes, 1);
    assert_eq!(recovery.truncated, None);
    assert_eq!(first_offsets(&log), expected);
    log.flush().unwrap();
    drop(log);
    let (log, recovery) = PartitionLog::open(dir.path(), config, files, T0).unwrap();
    assert_eq!(recovery.rebuilt_indexes, 0);
    assert_eq!(first_offsets(&log), expected);
    // Key lookups see only what is left.
    let k = log.find_by_key(b"k0", None, 100).unwrap();
    assert!(
        k.iter().all(|o| *o >= seg0_end || (o / 2) % 2 == 1),
        "{k:?}"
    );
}

#[test]
fn swap_refuses_a_damaged_output_and_keeps_the_old_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = compacting_log(dir.path());
    let before = first_offsets(&log);
    let output = hand_made_output(&log, 1, |_| true);
    let mut bytes = std::fs::read(&output.path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&output.path, &bytes).unwrap();
    assert!(matches!(
        log.swap_in(&output),
        Err(PartitionError::CompactionOutput { .. })
    ));
    // An output naming no sealed segment is refused too.
    let mut stray = hand_made_output(&log, 0, |_| true);
    stray.input = log.active().path.clone();
    assert!(matches!(
        log.swap_in(&stray),
        Err(PartitionError::CompactionOutput { .. })
    ));
    assert_eq!(first_offsets(&log), before);
    log.verify().unwrap();
}

#[test]
fn crash_between_index_removal_and_rename_recovers_the_old_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = compacting_log(dir.path());
    let before = first_offsets(&log);
    let output = hand_made_output(&log, 0, |i| i == 0);
    let config = log.config().clone();
    drop(log);
    // The swap removed the old indexes, then "crashed" before the rename.
    for path in segment_files(dir.path(), 0).iter().take(4) {
        remove_if_exists(path).unwrap();
    }
    let (log, recovery) =
        PartitionLog::open(dir.path(), config, Arc::new(FileCache::new(16)), T0).unwrap();
    assert!(!output.path.exists(), "the unfinished output is discarded");
    assert_eq!(recovery.rebuilt_indexes, 1);
    assert_eq!(first_offsets(&log), before);
}

#[test]
fn index_files_round_trip_and_reject_a_mismatched_base() {
    let dir = tempfile::tempdir().unwrap();
    let log = compacting_log(dir.path());
    let segment = &log.segments[1];
    let mut loaded = Segment::new(dir.path(), segment.base_offset, 0);
    let file_len = std::fs::metadata(&segment.path).unwrap().len();
    assert_eq!(loaded.load_indexes(file_len).unwrap(), segment.size);
    assert_eq!(loaded.encode_indexes(), segment.encode_indexes());
    assert_eq!(loaded.next_offset, segment.next_offset);
    assert_eq!(loaded.max_timestamp, segment.max_timestamp);
    // An index claiming more data than the file holds is refused.
    let mut short = Segment::new(dir.path(), segment.base_offset, 0);
    assert!(short.load_indexes(file_len - 1).is_err());
    // Another segment's index under this name is refused.
    let [index_path, ..] = segment_files(dir.path(), segment.base_offset);
    let [other, ..] = segment_files(dir.path(), log.segments[0].base_offset);
    std::fs::copy(other, &index_path).unwrap();
    let mut wrong = Segment::new(dir.path(), segment.base_offset, 0);
    assert!(matches!(
        wrong.load_indexes(file_len),
        Err(IndexError::Damaged { .. })
    ));
}

/// Appends of 16 KiB batches: the decode for the key/tag index must keep appends far
/// faster than a disk. Loose bound (debug build, shared CPU); the figure is printed.
#[test]
fn appends_of_16k_batches_are_fast() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        segment_bytes: 8 << 20,
        ..PartitionConfig::default()
    };
    let mut log = PartitionLog::create(dir.path(), config, Arc::new(FileCache::new(16))).unwrap();
    let template = batch(0, 16, 1000);
    assert!(template.len() > 16_000);
    let count = 1000;
    let started = std::time::Instant::now();
    for i in 0..count {
        let mut bytes = template.clone();
        stamp(&mut bytes, i * 16, None);
        log.append(&bytes, T0).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let mib_per_s = (template.len() as f64 * count as f64) / secs / (1 << 20) as f64;
    eprintln!("append: {mib_per_s:.0} MiB/s of 16 KiB batches");
    assert!(mib_per_s > 20.0, "append at {mib_per_s:.1} MiB/s");
    assert_eq!(log.log_end_offset(), count * 16);
}

#[test]
fn a_partition_log_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
    assert_send_sync::<ReadSlice>();
    assert_send_sync::<FileCache>();
}
