//! Tag index of one segment: the tag hash of every tagged record, so a reader can skip
//! records whose tag does not match a subscription without reading their bytes (what
//! RocketMQ's consume queue keeps). Records with no tag have hash 0 and match only `*`.
//!
//! It owns the (offset, tag hash) pairs of one segment, in memory, 8 bytes per tagged
//! record (relative offset u32 + hash i32); untagged records cost nothing. It never reads
//! the segment and never trusts its file: a damaged file is reported
//! ([`IndexError::Damaged`]) so the caller rebuilds it. Unlike the key index, a loaded tag
//! index is held in memory: `matching` cannot report a read error, and a consumer that
//! silently got no matches would skip messages.
//!
//! # File layout (all integers big-endian)
//! ```text
//!  0 magic "WTIX"        4 version u16 = 1     6 entry length u16 = 8
//!  8 base offset i64 (-1 when empty)          16 entry count u64
//! 24 reserved u32 = 0                         28 CRC-32C u32 of the entries, then of bytes 0..28
//! 32 entries: relative offset u32 (offset - base), tag hash i32; strictly ascending offsets
//! ```
//! Written atomically like the key index (`<path>.tmp`, fsync, rename, directory fsync).

use std::path::Path;

use super::IndexError;
use super::key_index::{array_at, open_index_file, write_index_file};

const MAGIC: [u8; 4] = *b"WTIX";
/// Bytes per entry on disk: relative offset u32, tag hash i32.
const ENTRY_LEN: usize = 8;
/// Entries a file may declare: one per offset, and offsets are relative u32.
const FILE_ENTRIES_MAX: u64 = u32::MAX as u64 + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    rel_offset: u32,
    hash: i32,
}

#[derive(Debug, Default)]
pub struct TagIndex {
    /// Offset that relative offsets count from: the first offset added, or the file's.
    base_offset: Option<i64>,
    /// Strictly ascending by relative offset.
    entries: Vec<Entry>,
    /// Largest offset added, kept across truncation as a floor for the ordering check.
    last_offset: Option<i64>,
}

impl TagIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` carries a tag with `hash` (see `message::tag_hash`). Offsets
    /// arrive ascending; untagged records are not added.
    pub fn add(&mut self, offset: i64, hash: i32) {
        if let Some(last) = self.last_offset {
            assert!(
                offset > last,
                "tag index offsets arrive strictly ascending: {offset} after {last}"
            );
        }
        self.last_offset = Some(offset);
        let base = *self.base_offset.get_or_insert(offset);
        let rel_offset = u32::try_from(offset - base)
            .expect("a segment spans fewer than 2^32 offsets (the partition log rolls it)");
        self.entries.push(Entry { rel_offset, hash });
    }

    /// Offsets >= `from_offset` whose tag hash is one of `hashes`, ascending, at most `limit`.
    pub fn matching(&self, from_offset: i64, hashes: &[i32], limit: usize) -> Vec<i64> {
        let Some(base) = self.base_offset else {
            return Vec::new();
        };
        let start = match u32::try_from(from_offset.saturating_sub(base)) {
            Ok(rel) => self.entries.partition_point(|e| e.rel_offset < rel),
            Err(_) if from_offset < base => 0,
            Err(_) => return Vec::new(),
        };
        self.entries[start..]
            .iter()
            .filter(|e| hashes.contains(&e.hash))
            .take(limit)
            .map(|e| base + i64::from(e.rel_offset))
            .collect()
    }

    /// Forgets every entry at or past `offset` (log truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        let Some(base) = self.base_offset else {
            return;
        };
        if offset <= base {
            *self = Self::default();
            return;
        }
        let keep = match u32::try_from(offset - base) {
            Ok(rel) => self.entries.partition_point(|e| e.rel_offset < rel),
            Err(_) => self.entries.len(),
        };
        self.entries.truncate(keep);
        if self.last_offset.is_some_and(|last| last >= offset) {
            self.last_offset = Some(offset - 1);
        }
    }

    /// Tagged records indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Persists the index (checksummed, atomically).
    pub fn write_to(&self, path: &Path) -> Result<(), IndexError> {
        let base_offset = match (self.base_offset, self.entries.is_empty()) {
            (Some(base), false) => base,
            _ => -1,
        };
        write_index_file(path, MAGIC, ENTRY_LEN, base_offset, |sink| {
            for entry in &self.entries {
                let mut bytes = [0u8; ENTRY_LEN];
                bytes[0..4].copy_from_slice(&entry.rel_offset.to_be_bytes());
                bytes[4..8].copy_from_slice(&entry.hash.to_be_bytes());
                sink.push(&bytes)?;
            }
            Ok(0)
        })
    }

    /// Loads a persisted index into memory; a missing or damaged file is an error the
    /// caller answers by rebuilding from the segment.
    pub fn load(path: &Path) -> Result<Self, IndexError> {
        // Grows only as entries are actually read, so a lying count cannot make it allocate.
        let mut entries: Vec<Entry> = Vec::new();
        let index = open_index_file(path, MAGIC, ENTRY_LEN, FILE_ENTRIES_MAX, |bytes| {
            let entry = Entry {
                rel_offset: u32::from_be_bytes(array_at(bytes, 0)),
                hash: i32::from_be_bytes(array_at(bytes, 4)),
            };
            if entries
                .last()
                .is_some_and(|last| last.rel_offset >= entry.rel_offset)
            {
                return Err("offsets are not strictly ascending");
            }
            entries.push(entry);
            Ok(())
        })?;
        if index.extra != 0 {
            return Err(IndexError::Damaged {
                path: path.to_path_buf(),
                position: 24,
                reason: "reserved field is not zero",
            });
        }
        if entries.is_empty() {
            return Ok(Self::default());
        }
        let last_offset = entries
            .last()
            .map(|last| index.base_offset + i64::from(last.rel_offset));
        Ok(Self {
            base_offset: Some(index.base_offset),
            entries,
            last_offset,
        })
    }
}
