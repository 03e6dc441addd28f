//! Randomized partition log tests against simple models (proptest reports failing cases).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

#[path = "partition_support/mod.rs"]
mod support;

use proptest::prelude::*;
use support::*;
use weir_storage::partition::PartitionLog;

const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    /// Append a batch of this many records with these value lengths and timestamp offsets.
    Append(Vec<(usize, i64)>),
    /// Truncate to (log end offset * n / 100).
    Truncate(u8),
    Flush,
    Reopen,
    /// Reopen after cutting this many bytes off the active segment's end (a torn tail of
    /// unflushed data: the model then loses whatever was not flushed).
    CrashTear(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0usize..200, 0i64..1000), 1..5).prop_map(Op::Append),
        1 => any::<u8>().prop_map(|n| Op::Truncate(n % 101)),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => (1u8..=100).prop_map(Op::CrashTear),
    ]
}

/// Position of the first batch in `bytes` whose base offset is at least `offset`.
fn first_position_at_or_after(bytes: &[u8], offset: i64) -> u64 {
    let mut pos = 0;
    while pos < bytes.len() {
        let header = weir_storage::batch::BatchHeader::parse(&bytes[pos..]).unwrap();
        if header.base_offset >= offset {
            break;
        }
        pos += header.total_len();
    }
    pos as u64
}

fn check(log: &PartitionLog, model: &[(i64, i64, Vec<u8>)]) {
    assert_eq!(log.log_end_offset(), model.len() as i64);
    assert_eq!(read_all(log, 0, 700), model.to_vec());
    log.verify().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_appends_truncates_and_reopens_match_a_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = scratch_dir();
        let cfg = config(1024);
        let mut log = create(dir.path(), cfg.clone());
        let mut model: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        let mut flushed_len = 0usize;
        for op in ops {
            match op {
                Op::Append(records) => {
                    let base = log.log_end_offset();
                    let recs: Vec<Rec> = records
                        .iter()
                        .map(|(len, ts)| Rec {
                            ts: T0 + ts,
                            key: None,
                            value: vec![b'v'; *len],
                            headers: Vec::new(),
                        })
                        .collect();
                    let bytes = batch_of(base, &recs);
                    model.extend(records_in(&bytes));
                    log.append(&bytes, T0).unwrap();
                }
                Op::Truncate(n) => {
                    let to = log.log_end_offset() * i64::from(n) / 100;
                    log.truncate_to(to).unwrap();
                    // The batch containing `to` goes too.
                    let end = log.log_end_offset() as usize;
                    prop_assert!(end <= to as usize);
                    model.truncate(end);
                    flushed_len = flushed_len.min(end);
                }
                Op::Flush => {
                    log.flush().unwrap();
                    flushed_len = model.len();
                }
                Op::Reopen => {
                    drop(log);
                    let (reopened, recovery) =
                        PartitionLog::open(dir.path(), cfg.clone(), files(), T0).unwrap();
                    prop_assert_eq!(recovery.truncated, None);
                    log = reopened;
                }
                Op::CrashTear(n) => {
                    if flushed_len == model.len() {
                        // Flushed data torn is damage, not a crash: open refuses it loudly
                        // (tested in partition_recovery).
                        continue;
                    }
                    drop(log);
                    let path = log_files(dir.path()).pop().unwrap();
                    let bytes = std::fs::read(&path).unwrap();
                    let len = bytes.len() as u64;
                    let first_unflushed = first_position_at_or_after(&bytes, flushed_len as i64);
                    let cut = len.saturating_sub(u64::from(n)).max(first_unflushed);
                    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();
                    let (reopened, _) = PartitionLog::open(dir.path(), cfg.clone(), files(), T0).unwrap();
                    log = reopened;
                    // Whole batches before the cut survive; never anything past it, never
                    // less than what was flushed.
                    let end = log.log_end_offset() as usize;
                    prop_assert!(end >= flushed_len);
                    model.truncate(end);
                    flushed_len = flushed_len.min(end);
                }
            }
            check(&log, &model);
        }
    }

    #[test]
    fn offset_for_timestamp_matches_brute_force(
        batches in prop::collection::vec(prop::collection::vec(0i64..500, 1..6), 1..40),
        deleted in 0usize..20,
        probes in prop::collection::vec(-10i64..520, 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(1024);
        cfg.index_interval_bytes = 100;
        let mut log = create(dir.path(), cfg);
        let mut all = Vec::new();
        for timestamps in &batches {
            let base = log.log_end_offset();
            let recs: Vec<Rec> = timestamps.iter().map(|t| Rec::new(T0 + t, "k", "v")).collect();
            let bytes = batch_of(base, &recs);
            all.extend(records_in(&bytes));
            log.append(&bytes, T0).unwrap();
        }
        log.set_high_watermark(log.log_end_offset());
        let start = (deleted as i64).min(log.log_end_offset());
        log.delete_records(start).unwrap();
        for probe in probes {
            let t = T0 + probe;
            let expected = all.iter().find(|r| r.0 >= start && r.1 >= t).map(|r| (r.0, r.1));
            prop_assert_eq!(log.offset_for_timestamp(t).unwrap(), expected, "t = {}", probe);
        }
        let max = all.iter().map(|r| r.1).max().unwrap();
        let first_max = all.iter().find(|r| r.1 == max).unwrap().0;
        prop_assert_eq!(log.max_timestamp(), Some((first_max, max)));
    }
}
