//! Key index of one segment: which offsets carry a lookup key (the record key, or a word of
//! the `KEYS` header), RocketMQ's lookup by key without scanning the log.
//!
//! STUB: an in-memory placeholder with the agreed API; the real on-disk index replaces it.

use std::collections::HashMap;
use std::path::Path;

use super::IndexError;

#[derive(Debug, Default)]
pub struct KeyIndex {
    entries: HashMap<Vec<u8>, Vec<(i64, i64)>>,
}

impl KeyIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` (with `timestamp_ms`) carries `key`. Offsets arrive ascending.
    pub fn add(&mut self, key: &[u8], offset: i64, timestamp_ms: i64) {
        self.entries
            .entry(key.to_vec())
            .or_default()
            .push((offset, timestamp_ms));
    }

    /// Candidate offsets carrying `key` (ascending), within `[from_ms, to_ms]` when given,
    /// at most `limit`. Candidates may include hash collisions: the caller reads the record
    /// to confirm.
    pub fn lookup(&self, key: &[u8], time_range_ms: Option<(i64, i64)>, limit: usize) -> Vec<i64> {
        self.entries
            .get(key)
            .into_iter()
            .flatten()
            .filter(|(_, ts)| time_range_ms.is_none_or(|(from, to)| *ts >= from && *ts <= to))
            .map(|(offset, _)| *offset)
            .take(limit)
            .collect()
    }

    /// Forgets every entry at or past `offset` (log truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        for offsets in self.entries.values_mut() {
            offsets.retain(|(o, _)| *o < offset);
        }
        self.entries.retain(|_, offsets| !offsets.is_empty());
    }

    /// Persists the index (checksummed) for a sealed or flushed segment.
    pub fn write_to(&self, _path: &Path) -> Result<(), IndexError> {
        Ok(())
    }

    /// Loads a persisted index; a missing or damaged file is an error the caller answers by
    /// rebuilding from the segment.
    pub fn load(path: &Path) -> Result<Self, IndexError> {
        Err(IndexError::Missing {
            path: path.to_path_buf(),
        })
    }
}
