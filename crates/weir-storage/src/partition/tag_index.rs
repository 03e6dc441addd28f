//! Tag index of one segment: the tag hash of every tagged record, so a reader can skip
//! records whose tag does not match a subscription without reading their bytes (what
//! RocketMQ's consume queue keeps). Records with no tag have hash 0 and match only `*`.
//!
//! STUB: an in-memory placeholder with the agreed API; the real on-disk index replaces it.

use std::path::Path;

use super::IndexError;

#[derive(Debug, Default)]
pub struct TagIndex {
    entries: Vec<(i64, i32)>,
}

impl TagIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` carries a tag with `hash` (see `message::tag_hash`). Offsets
    /// arrive ascending; untagged records are not added.
    pub fn add(&mut self, offset: i64, hash: i32) {
        self.entries.push((offset, hash));
    }

    /// Offsets >= `from_offset` whose tag hash is one of `hashes`, ascending, at most `limit`.
    pub fn matching(&self, from_offset: i64, hashes: &[i32], limit: usize) -> Vec<i64> {
        self.entries
            .iter()
            .filter(|(offset, hash)| *offset >= from_offset && hashes.contains(hash))
            .map(|(offset, _)| *offset)
            .take(limit)
            .collect()
    }

    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|(o, _)| *o < offset);
    }

    pub fn write_to(&self, _path: &Path) -> Result<(), IndexError> {
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self, IndexError> {
        Err(IndexError::Missing {
            path: path.to_path_buf(),
        })
    }
}
