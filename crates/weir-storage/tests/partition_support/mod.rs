//! Helpers shared by the partition log API tests.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;

use weir_storage::batch::{self, BatchBuilder, BatchHeader};
use weir_storage::files::FileCache;
use weir_storage::partition::{PartitionConfig, PartitionLog};

/// One record to append: timestamp, key, value, headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub ts: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Rec {
    pub fn new(ts: i64, key: &str, value: &str) -> Self {
        Self {
            ts,
            key: Some(key.as_bytes().to_vec()),
            value: value.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, key: &str, value: &str) -> Self {
        self.headers
            .push((key.to_string(), value.as_bytes().to_vec()));
        self
    }
}

/// A stamped batch at `base` holding `records`.
pub fn batch_of(base: i64, records: &[Rec]) -> Vec<u8> {
    let base_ts = records.iter().map(|r| r.ts).min().unwrap_or(0);
    let mut builder = BatchBuilder::new(0, base_ts);
    for r in records {
        let headers: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            .collect();
        builder.push(r.ts, r.key.as_deref(), Some(&r.value), &headers);
    }
    let mut bytes = builder.build();
    batch::stamp(&mut bytes, base, None);
    bytes
}

/// A batch of `count` records with `value_len`-byte values, all at `ts`.
pub fn simple_batch(base: i64, count: usize, ts: i64, value_len: usize) -> Vec<u8> {
    let records: Vec<Rec> = (0..count)
        .map(|i| Rec {
            ts,
            key: Some(format!("k{}", base + i as i64).into_bytes()),
            value: vec![b'a' + ((base as usize + i) % 26) as u8; value_len],
            headers: Vec::new(),
        })
        .collect();
    batch_of(base, &records)
}

pub fn config(segment_bytes: u64) -> PartitionConfig {
    PartitionConfig {
        segment_bytes,
        index_interval_bytes: 256,
        retention_ms: -1,
        ..PartitionConfig::default()
    }
}

pub fn files() -> Arc<FileCache> {
    Arc::new(FileCache::new(64))
}

pub fn create(dir: &Path, config: PartitionConfig) -> PartitionLog {
    PartitionLog::create(dir, config, files()).unwrap()
}

/// Every (offset, timestamp, value) of the batches in `bytes`, checking each batch's CRC.
pub fn records_in(bytes: &[u8]) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let header = BatchHeader::parse(&bytes[pos..]).unwrap();
        let end = pos + header.total_len();
        batch::check_crc(&bytes[pos..end]).unwrap();
        for r in batch::decode_records(&bytes[pos..end]).unwrap() {
            out.push((
                header.base_offset + i64::from(r.offset_delta),
                header.base_timestamp + r.timestamp_delta,
                r.value.unwrap_or_default(),
            ));
        }
        pos = end;
    }
    out
}

/// Reads the whole log from `from` by repeated fetches of `max_bytes`.
pub fn read_all(log: &PartitionLog, from: i64, max_bytes: u32) -> Vec<(i64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.log_end_offset();
    while offset < end {
        let slice = log
            .read(offset, end, max_bytes)
            .unwrap()
            .expect("data below the log end");
        // After compaction a batch may start past `offset` (the gap is skipped).
        assert!(slice.last_offset >= offset);
        let bytes = slice.read_to_vec().unwrap();
        out.extend(records_in(&bytes).into_iter().filter(|r| r.0 >= offset));
        offset = slice.last_offset + 1;
    }
    out
}

/// Copies every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

pub fn log_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    out
}

/// A temporary directory on tmpfs when there is one: for tests that fsync a lot and test
/// logic, not the (shared, slow) disk.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}
