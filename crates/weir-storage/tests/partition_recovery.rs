//! Partition log recovery: torn tails, bit flips, damaged indexes, intact indexes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

#[path = "partition_support/mod.rs"]
mod support;

use std::os::unix::fs::FileExt;

use support::*;
use weir_storage::batch::BatchHeader;
use weir_storage::partition::{PartitionError, PartitionLog};

const T0: i64 = 1_700_000_000_000;

fn fill(log: &mut PartitionLog, batches: usize, per_batch: usize, value_len: usize) {
    for i in 0..batches {
        let base = log.log_end_offset();
        log.append(&simple_batch(base, per_batch, T0 + i as i64, value_len), T0)
            .unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
}

#[test]
fn torn_tail_at_every_position_recovers_the_previous_batches_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1 << 20));
    fill(&mut log, 4, 3, 20);
    log.flush().unwrap();
    let flushed = read_all(&log, 0, 1 << 20);
    let last = simple_batch(12, 3, T0, 20);
    log.append(&last, T0).unwrap();
    drop(log);
    let path = log_files(dir.path()).pop().unwrap();
    let full_len = std::fs::metadata(&path).unwrap().len();
    let start = full_len - last.len() as u64;
    for cut in start..full_len {
        let copy = scratch_dir();
        copy_dir(dir.path(), copy.path());
        let copied = copy.path().join(path.file_name().unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copied)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let (log, recovery) =
            PartitionLog::open(copy.path(), config(1 << 20), files(), T0).unwrap();
        assert_eq!(log.log_end_offset(), 12, "cut at {cut}");
        assert_eq!(read_all(&log, 0, 1 << 20), flushed, "cut at {cut}");
        if cut > start {
            let (at, position, _) = recovery.truncated.clone().expect("a torn tail is reported");
            assert_eq!((at, position), (copied.clone(), start), "cut at {cut}");
        } else {
            assert_eq!(recovery.truncated, None);
        }
        assert_eq!(std::fs::metadata(&copied).unwrap().len(), start);
        // The recovered log takes the batch again.
        let mut log = log;
        log.append(&last, T0).unwrap();
        assert_eq!(log.log_end_offset(), 15);
    }
}

#[test]
fn corrupt_unflushed_batch_truncates_it_and_every_later_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    fill(&mut log, 4, 2, 100);
    log.flush().unwrap();
    let flushed = read_all(&log, 0, 1 << 20);
    let end = log.log_end_offset();
    fill(&mut log, 20, 2, 100);
    let segments = log.segment_count();
    drop(log);
    // Flip a byte in the first unflushed batch (offset `end`).
    let files_before = log_files(dir.path());
    let (path, position) = files_before
        .iter()
        .find_map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let mut pos = 0;
            while pos < bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]).unwrap();
                if h.base_offset == end {
                    return Some((p.clone(), pos as u64));
                }
                pos += h.total_len();
            }
            None
        })
        .unwrap();
    flip(&path, position + 70);
    let (log, recovery) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    let (at, cut, reason) = recovery.truncated.unwrap();
    assert_eq!((at, cut), (path, position));
    assert!(reason.contains("CRC"), "{reason}");
    assert_eq!(log.log_end_offset(), end);
    assert!(log.segment_count() < segments);
    assert_eq!(read_all(&log, 0, 1 << 20), flushed);
}

fn flip(path: &std::path::Path, position: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position).unwrap();
    byte[0] ^= 0x10;
    file.write_all_at(&byte, position).unwrap();
}

#[test]
fn bit_flip_before_the_recovery_point_is_reported_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1 << 20));
    fill(&mut log, 10, 2, 50);
    log.flush().unwrap();
    let all = read_all(&log, 0, 1 << 20);
    let batch_len = simple_batch(0, 2, T0, 50).len() as u64;
    drop(log);
    let path = log_files(dir.path()).pop().unwrap();
    let position = 5 * batch_len; // the batch at offset 10
    flip(&path, position + 80);
    let (log, recovery) = PartitionLog::open(dir.path(), config(1 << 20), files(), T0).unwrap();
    assert_eq!(recovery.truncated, None);
    assert_eq!(log.log_end_offset(), 20);
    match log.verify() {
        Err(PartitionError::Corrupt {
            path: p,
            position: at,
            reason,
        }) => {
            assert_eq!((p, at), (path.clone(), position));
            assert!(reason.contains("CRC"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Batches before the damage still read.
    let slice = log.read(0, 10, 1 << 20).unwrap().unwrap();
    assert_eq!(
        records_in(&slice.read_to_vec().unwrap()),
        all[..10].to_vec()
    );
    // Even with the indexes gone, open rebuilds them without cutting flushed data.
    for p in std::fs::read_dir(dir.path()).unwrap() {
        let p = p.unwrap().path();
        if p.extension().is_some_and(|e| e == "index") {
            std::fs::remove_file(p).unwrap();
        }
    }
    drop(log);
    let (log, recovery) = PartitionLog::open(dir.path(), config(1 << 20), files(), T0).unwrap();
    assert_eq!(recovery.truncated, None);
    assert_eq!(recovery.rebuilt_indexes, 1);
    assert_eq!(log.log_end_offset(), 20);
    assert!(log.verify().is_err());
}

#[test]
fn deleted_or_garbled_indexes_are_rebuilt_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(4096);
    cfg.index_interval_bytes = 128;
    let mut log = create(dir.path(), cfg.clone());
    let mut ts = 0i64;
    for i in 0..200i64 {
        ts = (ts * 7919 + 13) % 1000; // non-monotonic
        log.append(
            &batch_of(i, &[Rec::new(T0 + ts, &format!("k{i}"), "v")]),
            T0,
        )
        .unwrap();
    }
    log.flush().unwrap();
    let answers = |log: &PartitionLog| {
        let reads: Vec<_> = (0..200)
            .map(|o| {
                log.read(o, 200, 500)
                    .unwrap()
                    .map(|s| (s.position, s.len, s.first_offset, s.last_offset))
            })
            .collect();
        let times: Vec<_> = (0..1000)
            .step_by(37)
            .map(|t| log.offset_for_timestamp(T0 + t).unwrap())
            .collect();
        (reads, times, log.max_timestamp())
    };
    let expected = answers(&log);
    let segments = log.segment_count();
    assert!(segments >= 3);
    drop(log);
    let mut index_files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
        })
        .collect();
    index_files.sort();
    std::fs::remove_file(&index_files[0]).unwrap(); // segment 0 .index
    let garbled = &index_files[3]; // segment 1 .timeindex
    let mut bytes = std::fs::read(garbled).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(garbled, &bytes).unwrap();
    std::fs::write(&index_files[4], b"short").unwrap(); // segment 2 .index
    let (log, recovery) = PartitionLog::open(dir.path(), cfg, files(), T0).unwrap();
    assert_eq!(recovery.rebuilt_indexes, 3);
    assert_eq!(recovery.truncated, None);
    assert_eq!(answers(&log), expected);
}

#[test]
fn intact_indexes_are_loaded_and_only_data_past_the_recovery_point_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(64 << 10));
    fill(&mut log, 400, 4, 200);
    log.flush().unwrap();
    let flushed_end = log.log_end_offset();
    let before = log.size_bytes();
    fill(&mut log, 5, 4, 200);
    let unflushed = log.size_bytes() - before;
    let segments = log.segment_count();
    assert!(segments > 5);
    drop(log);
    let started = std::time::Instant::now();
    let (log, recovery) = PartitionLog::open(dir.path(), config(64 << 10), files(), T0).unwrap();
    let took = started.elapsed();
    assert_eq!(recovery.rebuilt_indexes, 0);
    assert_eq!(recovery.scanned_bytes, unflushed);
    assert_eq!(recovery.segments, segments);
    assert_eq!(log.recovery_point(), flushed_end);
    assert_eq!(log.log_end_offset(), flushed_end + 20);
    assert!(took.as_secs() < 2, "open took {took:?}");
}

#[test]
fn missing_meta_recovers_with_a_full_checked_scan() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    fill(&mut log, 20, 2, 50);
    log.flush().unwrap();
    let all = read_all(&log, 0, 1 << 20);
    drop(log);
    std::fs::remove_file(dir.path().join("partition.meta")).unwrap();
    std::fs::write(dir.path().join("00000000000000000000.log.cleaned"), b"junk").unwrap();
    let (log, recovery) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(recovery.truncated, None);
    assert_eq!(read_all(&log, 0, 1 << 20), all);
    assert!(!dir.path().join("00000000000000000000.log.cleaned").exists());
}

#[test]
fn torn_flushed_data_makes_open_fail_loudly_instead_of_truncating() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1 << 20));
    fill(&mut log, 6, 2, 40);
    log.flush().unwrap();
    drop(log);
    let path = log_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    // Data below the recovery point went missing and the indexes are gone too: this is
    // damage, not a crash, and open must say so rather than cut flushed records.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    for p in std::fs::read_dir(dir.path()).unwrap() {
        let p = p.unwrap().path();
        if p.extension().is_some_and(|e| e == "index") {
            std::fs::remove_file(p).unwrap();
        }
    }
    match PartitionLog::open(dir.path(), config(1 << 20), files(), T0) {
        Err(PartitionError::Corrupt { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Corrupt, got {:?}", other.map(|(_, r)| r)),
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        len - 5,
        "nothing was cut"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever follows the flushed data (garbage, a header with absurd lengths or offsets),
    /// open never panics, keeps every flushed batch and serves nothing of the garbage.
    #[test]
    fn garbage_after_the_recovery_point_is_cut_without_panics(
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300),
        header_like in proptest::prelude::any::<bool>(),
        base in proptest::prelude::any::<i64>(),
        length in proptest::prelude::any::<i32>(),
    ) {
        let dir = scratch_dir();
        let mut log = create(dir.path(), config(1 << 20));
        fill(&mut log, 3, 2, 30);
        log.flush().unwrap();
        let flushed = read_all(&log, 0, 1 << 20);
        drop(log);
        let path = log_files(dir.path()).pop().unwrap();
        let mut tail = garbage.clone();
        if header_like {
            // A plausible header start: offset, length, epoch, magic 2.
            let mut header = Vec::new();
            header.extend_from_slice(&base.to_be_bytes());
            header.extend_from_slice(&length.to_be_bytes());
            header.extend_from_slice(&0i32.to_be_bytes());
            header.push(2);
            header.extend_from_slice(&garbage);
            tail = header;
        }
        let file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        use std::io::Write;
        (&file).write_all(&tail).unwrap();
        drop(file);
        let (log, recovery) = PartitionLog::open(dir.path(), config(1 << 20), files(), T0).unwrap();
        proptest::prop_assert!(recovery.truncated.is_some());
        proptest::prop_assert_eq!(log.log_end_offset(), 6);
        proptest::prop_assert_eq!(read_all(&log, 0, 1 << 20), flushed);
        log.verify().unwrap();
    }
}
