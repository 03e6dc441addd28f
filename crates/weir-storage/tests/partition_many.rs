//! Many idle partitions: file descriptors stay under the cache's cap and memory stays small.
//! Its own test binary, so the RSS it measures is its own.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap too

#[path = "partition_support/mod.rs"]
mod support;

use std::sync::Arc;

use support::*;
use weir_storage::files::FileCache;
use weir_storage::partition::PartitionLog;

const PARTITIONS: usize = 10_000;
const FD_CAP: usize = 256;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn ten_thousand_tiny_partitions_fit_in_bounded_fds_and_memory() {
    // tmpfs when there is one: the test measures descriptors and memory, not the disk's
    // metadata speed (10,000 mkdirs on a shared disk take seconds).
    let root = scratch_dir();
    let files = Arc::new(FileCache::new(FD_CAP));
    let fds_before = open_fds();
    let mut logs = Vec::with_capacity(PARTITIONS);
    for i in 0..PARTITIONS {
        let dir = root.path().join(format!("t-{i}"));
        let mut log = PartitionLog::create(&dir, config(1 << 30), Arc::clone(&files)).unwrap();
        log.append(&simple_batch(0, 1, 1_000, 16), 1_000).unwrap();
        logs.push(log);
    }
    assert!(
        files.open_count() <= FD_CAP,
        "{} cached",
        files.open_count()
    );
    assert!(
        open_fds() <= fds_before + FD_CAP + 8,
        "{} fds open",
        open_fds()
    );
    // Every partition still reads back through the bounded cache.
    for log in logs.iter().step_by(97) {
        let slice = log.read(0, 1, 1 << 20).unwrap().unwrap();
        assert_eq!(records_in(&slice.read_to_vec().unwrap()).len(), 1);
    }
    assert!(files.open_count() <= FD_CAP);
    let rss_mib = rss_kib() / 1024;
    assert!(
        rss_mib <= 150,
        "RSS {rss_mib} MiB with {PARTITIONS} partitions"
    );
    eprintln!(
        "{PARTITIONS} partitions: RSS {rss_mib} MiB, {} cached fds",
        files.open_count()
    );
}
