//! Partition log API: append/read, KIP-74, bounds, timestamps, retention, DeleteRecords,
//! truncation, key and tag lookups, compaction with the stub.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

#[path = "partition_support/mod.rs"]
mod support;

use support::*;
use weir_storage::message::{KEYS_HEADER, TAG_HEADER, tag_hash};
use weir_storage::partition::{CleanupPolicy, PartitionError, PartitionLog};

const T0: i64 = 1_700_000_000_000;

/// Appends `batches` batches of `per_batch` records (values of `value_len` bytes), the
/// timestamp of batch i being T0 + i; returns every appended record.
fn fill(
    log: &mut PartitionLog,
    batches: usize,
    per_batch: usize,
    value_len: usize,
) -> Vec<(i64, i64, Vec<u8>)> {
    let mut all = Vec::new();
    for i in 0..batches {
        let base = log.log_end_offset();
        let bytes = simple_batch(base, per_batch, T0 + i as i64, value_len);
        all.extend(records_in(&bytes));
        log.append(&bytes, T0).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    all
}

#[test]
fn append_read_round_trip_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    let all = fill(&mut log, 40, 3, 60);
    assert!(
        log.segment_count() > 5,
        "tiny segments rolled: {}",
        log.segment_count()
    );
    assert_eq!(log.log_end_offset(), 120);
    for max_bytes in [1, 300, 1 << 20] {
        assert_eq!(read_all(&log, 0, max_bytes), all, "max_bytes {max_bytes}");
    }
    // Every offset, including ones inside batches, starts a read at its containing batch.
    for offset in 0..120 {
        let slice = log.read(offset, 120, 1 << 20).unwrap().unwrap();
        assert_eq!(slice.first_offset, offset - offset % 3);
        assert!(slice.last_offset >= offset);
    }
    // Reopen: same answers, nothing rescanned past the indexes once flushed.
    log.flush().unwrap();
    let segments = log.segment_count();
    drop(log);
    let (log, recovery) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(recovery.segments, segments);
    assert_eq!(recovery.rebuilt_indexes, 0);
    assert_eq!(recovery.scanned_bytes, 0);
    assert_eq!(recovery.truncated, None);
    assert_eq!(read_all(&log, 0, 1 << 20), all);
}

#[test]
fn read_inside_a_batch_returns_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1 << 20));
    fill(&mut log, 3, 5, 10);
    let slice = log.read(7, 15, 1 << 20).unwrap().unwrap();
    assert_eq!(slice.first_offset, 5);
    assert_eq!(slice.last_offset, 14);
    let records = records_in(&slice.read_to_vec().unwrap());
    assert_eq!(records.first().unwrap().0, 5);
    assert_eq!(records.len(), 10);
}

#[test]
fn kip74_returns_one_oversized_batch_and_max_bytes_limits_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1 << 20));
    fill(&mut log, 3, 2, 1000);
    let one = log.read(0, 6, 10).unwrap().unwrap();
    assert_eq!((one.first_offset, one.last_offset), (0, 1));
    assert!(one.len > 10);
    let two = log.read(0, 6, (one.len * 2) as u32).unwrap().unwrap();
    assert_eq!(two.last_offset, 3);
    assert_eq!(two.len, one.len * 2);
}

#[test]
fn upper_bound_and_offset_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1 << 20));
    fill(&mut log, 4, 2, 10);
    let slice = log.read(0, 4, 1 << 20).unwrap().unwrap();
    assert_eq!(slice.last_offset, 3, "nothing at or past the upper bound");
    assert!(log.read(4, 4, 1 << 20).unwrap().is_none());
    assert!(
        log.read(8, 100, 1 << 20).unwrap().is_none(),
        "log end: nothing yet"
    );
    // A batch straddling the bound is not served.
    assert!(log.read(4, 5, 1 << 20).unwrap().is_none());
    match log.read(9, 9, 1 << 20) {
        Err(PartitionError::OffsetOutOfRange {
            offset: 9,
            log_start: 0,
            log_end: 8,
        }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    log.delete_records(4).unwrap();
    assert!(matches!(
        log.read(3, 8, 100),
        Err(PartitionError::OffsetOutOfRange {
            offset: 3,
            log_start: 4,
            ..
        })
    ));
}

#[test]
fn append_refuses_gaps_and_multiple_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1 << 20));
    assert!(matches!(
        log.append(&simple_batch(1, 1, T0, 1), T0),
        Err(PartitionError::NotContiguous {
            expected: 0,
            got: 1
        })
    ));
    let mut two = simple_batch(0, 1, T0, 1);
    two.extend(simple_batch(1, 1, T0, 1));
    assert!(matches!(
        log.append(&two, T0),
        Err(PartitionError::NotOneBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn segment_ms_rolls_aged_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20);
    cfg.segment_ms = 1000;
    let mut log = create(dir.path(), cfg);
    log.append(&simple_batch(0, 1, T0, 1), T0).unwrap();
    log.append(&simple_batch(1, 1, T0, 1), T0 + 999).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&simple_batch(2, 1, T0, 1), T0 + 1000).unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn max_timestamp_is_the_first_record_with_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    assert_eq!(log.max_timestamp(), None);
    log.append(
        &batch_of(0, &[Rec::new(50, "a", "x"), Rec::new(90, "b", "y")]),
        T0,
    )
    .unwrap();
    log.append(
        &batch_of(2, &[Rec::new(10, "a", "x"), Rec::new(90, "b", "y")]),
        T0,
    )
    .unwrap();
    log.append(&batch_of(4, &[Rec::new(70, "a", "x")]), T0)
        .unwrap();
    assert_eq!(log.max_timestamp(), Some((1, 90)));
    log.flush().unwrap();
    drop(log);
    // Survives a reopen through the persisted time index, and a rebuild.
    let (log, _) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(log.max_timestamp(), Some((1, 90)));
    drop(log);
    for path in std::fs::read_dir(dir.path()).unwrap() {
        let path = path.unwrap().path();
        if path.extension().is_some_and(|e| e == "timeindex") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let (log, recovery) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(recovery.rebuilt_indexes, 1);
    assert_eq!(log.max_timestamp(), Some((1, 90)));
}

#[test]
fn retention_by_time_deletes_old_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1024);
    cfg.retention_ms = 1000;
    let mut log = create(dir.path(), cfg);
    fill(&mut log, 30, 2, 100); // timestamps T0 .. T0+29
    let segments = log.segment_count();
    assert!(segments > 3);
    let outcome = log.enforce_retention(T0 + 500).unwrap();
    assert_eq!(outcome.segments_deleted, 0);
    // Everything is older than 1000 ms at T0 + 2000: all sealed segments go, the active stays.
    let before = log.size_bytes();
    let outcome = log.enforce_retention(T0 + 2000).unwrap();
    assert_eq!(outcome.segments_deleted, segments - 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(before - outcome.bytes_deleted, log.size_bytes());
    assert_eq!(outcome.log_start_offset, log.log_start_offset());
    assert!(log.log_start_offset() > 0);
    assert_eq!(log_files(dir.path()).len(), 1);
    let start = log.log_start_offset();
    assert_eq!(read_all(&log, start, 1 << 20).first().unwrap().0, start);
    // The new log start is persisted.
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(log.log_start_offset(), start);
}

#[test]
fn retention_by_time_uses_the_segment_max_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1024);
    cfg.retention_ms = 100;
    let mut log = create(dir.path(), cfg);
    // First segment: one old record and one recent one; second: old only.
    log.append(&batch_of(0, &[Rec::new(T0, "a", &"x".repeat(300))]), T0)
        .unwrap();
    log.append(
        &batch_of(1, &[Rec::new(T0 + 1000, "a", &"x".repeat(300))]),
        T0,
    )
    .unwrap();
    log.append(&batch_of(2, &[Rec::new(T0, "a", &"x".repeat(900))]), T0)
        .unwrap();
    log.append(&batch_of(3, &[Rec::new(T0, "a", "x")]), T0)
        .unwrap();
    assert_eq!(log.segment_count(), 3);
    let outcome = log.enforce_retention(T0 + 500).unwrap();
    assert_eq!(
        outcome.segments_deleted, 0,
        "the oldest segment holds a recent record"
    );
    let outcome = log.enforce_retention(T0 + 1101).unwrap();
    assert_eq!(outcome.segments_deleted, 2);
    assert_eq!(log.log_start_offset(), 3);
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1024);
    cfg.retention_bytes = 3000;
    let mut log = create(dir.path(), cfg);
    fill(&mut log, 40, 2, 100);
    let outcome = log.enforce_retention(T0).unwrap();
    assert!(outcome.segments_deleted > 0);
    assert!(log.size_bytes() >= 3000, "size {}", log.size_bytes());
    // One more deletion would have gone below the retention size.
    let mut again = log.enforce_retention(T0).unwrap();
    assert_eq!(again.segments_deleted, 0);
    // Policy compact only: size retention does not apply.
    let mut cfg = log.config().clone();
    cfg.retention_bytes = 0;
    cfg.cleanup_policy = CleanupPolicy {
        delete: false,
        compact: true,
    };
    log.set_config(cfg);
    again = log.enforce_retention(T0).unwrap();
    assert_eq!(again.segments_deleted, 0);
}

#[test]
fn delete_records_advances_log_start_and_deletes_wholly_covered_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    let all = fill(&mut log, 30, 2, 100);
    let segments = log.segment_count();
    assert!(matches!(
        log.delete_records(61),
        Err(PartitionError::DeleteBeyondHighWatermark {
            offset: 61,
            high_watermark: 60
        })
    ));
    // Mid-segment and mid-batch: the segment stays, reads below fail, reads at it work.
    assert_eq!(log.delete_records(3).unwrap(), 3);
    assert_eq!(log.segment_count(), segments);
    assert!(log.read(2, 60, 100).is_err());
    let from_3 = read_all(&log, 3, 1 << 20);
    assert_eq!(from_3, all[3..].to_vec());
    assert_eq!(log.offset_for_timestamp(0).unwrap().map(|r| r.0), Some(3));
    // Going back is a no-op.
    assert_eq!(log.delete_records(1).unwrap(), 3);
    let new_start = log.delete_records(40).unwrap();
    assert_eq!(new_start, 40);
    assert!(log.segment_count() < segments);
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(log.log_start_offset(), 40);
    assert_eq!(read_all(&log, 40, 1 << 20), all[40..].to_vec());
}

#[test]
fn truncate_to_drops_batches_at_and_after_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    let all = fill(&mut log, 30, 3, 60);
    log.flush().unwrap();
    log.truncate_to(50).unwrap(); // inside batch 48..50: the batch goes
    assert_eq!(log.log_end_offset(), 48);
    assert_eq!(log.high_watermark(), 48);
    assert!(log.recovery_point() <= 48);
    assert_eq!(read_all(&log, 0, 1 << 20), all[..48].to_vec());
    // Appends continue at the new end, the key index forgot the truncated records.
    assert!(log.find_by_key(b"k49", None, 10).unwrap().is_empty());
    let more = simple_batch(48, 3, T0, 5);
    log.append(&more, T0).unwrap();
    assert_eq!(log.find_by_key(b"k49", None, 10).unwrap(), vec![49]);
    log.truncate_to(0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.segment_count(), 1);
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert!(log.read(0, 0, 100).unwrap().is_none());
}

#[test]
fn find_by_key_confirms_keys_and_keys_header_words() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    for i in 0..20i64 {
        let rec = Rec::new(T0 + i, &format!("key{}", i % 4), "v")
            .header(KEYS_HEADER, &format!("order-{i} shared"));
        log.append(&batch_of(i, &[rec]), T0).unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(
        log.find_by_key(b"key1", None, 100).unwrap(),
        vec![1, 5, 9, 13, 17]
    );
    assert_eq!(log.find_by_key(b"key1", None, 2).unwrap(), vec![1, 5]);
    assert_eq!(log.find_by_key(b"order-7", None, 100).unwrap(), vec![7]);
    assert_eq!(log.find_by_key(b"shared", None, 100).unwrap().len(), 20);
    assert_eq!(
        log.find_by_key(b"key1", Some((T0 + 5, T0 + 13)), 100)
            .unwrap(),
        vec![5, 9, 13]
    );
    assert!(log.find_by_key(b"nope", None, 100).unwrap().is_empty());
    // After reopen the indexes are rebuilt lazily from the data: same answers.
    log.flush().unwrap();
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(
        log.find_by_key(b"key1", None, 100).unwrap(),
        vec![1, 5, 9, 13, 17]
    );
}

#[test]
fn find_by_tags_matches_hashes_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = create(dir.path(), config(1024));
    for i in 0..30i64 {
        let tag = ["TagA", "TagB", "TagC"][(i % 3) as usize];
        let mut rec = Rec::new(T0, "k", "v");
        if i % 5 != 0 {
            rec = rec.header(TAG_HEADER, tag);
        }
        log.append(&batch_of(i, &[rec]), T0).unwrap();
    }
    let a = tag_hash("TagA");
    let b = tag_hash("TagB");
    let expected_a: Vec<i64> = (0..30).filter(|i| i % 3 == 0 && i % 5 != 0).collect();
    assert_eq!(log.find_by_tags(0, &[a], 100).unwrap(), expected_a);
    let from_10: Vec<i64> = (10..30).filter(|i| i % 3 != 2 && i % 5 != 0).collect();
    assert_eq!(log.find_by_tags(10, &[a, b], 100).unwrap(), from_10);
    assert_eq!(
        log.find_by_tags(10, &[a, b], 3).unwrap(),
        from_10[..3].to_vec()
    );
    log.delete_records(0).unwrap();
    drop(log);
    let (log, _) = PartitionLog::open(dir.path(), config(1024), files(), T0).unwrap();
    assert_eq!(log.find_by_tags(0, &[a], 100).unwrap(), expected_a);
}

#[test]
fn compact_keeps_the_last_record_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1024);
    cfg.cleanup_policy = CleanupPolicy {
        delete: false,
        compact: true,
    };
    let mut log = create(dir.path(), cfg.clone());
    // 60 batches of one record over 5 keys: each key written 12 times, across many segments.
    let mut latest = std::collections::BTreeMap::new();
    for i in 0..60i64 {
        let key = format!("key{}", i % 5);
        let value = format!("v{i}");
        log.append(&batch_of(i, &[Rec::new(T0 + i, &key, &value)]), T0)
            .unwrap();
        latest.insert(key, (i, value));
    }
    log.set_high_watermark(log.log_end_offset());
    assert!(log.segment_count() > 3);
    let outcome = log.compact(T0 + 1_000).unwrap();
    assert!(outcome.segments_rewritten > 0, "{outcome:?}");
    assert!(outcome.records_dropped > 0, "{outcome:?}");
    let after = read_all(&log, 0, 1 << 20);
    // Every latest value is still there at its own offset, and offsets only go up.
    for (offset, value) in latest.values() {
        assert!(
            after
                .iter()
                .any(|(o, _, v)| o == offset && v == value.as_bytes()),
            "latest record at {offset} kept"
        );
    }
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(after.len() < 60, "superseded records were dropped");
    assert_eq!(
        log.log_end_offset(),
        60,
        "compaction never moves the log end"
    );
    drop(log);
    let (reopened, _) = PartitionLog::open(dir.path(), cfg, files(), T0).unwrap();
    assert_eq!(read_all(&reopened, 0, 1 << 20), after);
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = create(&path, config(1024));
    fill(&mut log, 3, 1, 1);
    assert!(PartitionLog::create(&path, config(1024), files()).is_err());
    log.delete().unwrap();
    assert!(!path.exists());
}
