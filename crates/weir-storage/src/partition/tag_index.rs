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

#[derive(Default)]
pub struct TagIndex {
    /// Offset that relative offsets count from: the first offset added, or the file's.
    base_offset: Option<i64>,
    /// Strictly ascending by relative offset.
    entries: Vec<Entry>,
    /// Largest offset added, kept across truncation as a floor for the ordering check.
    last_offset: Option<i64>,
}

/// Sizes only: a tag index holds one entry per tagged record, too many for a log line.
impl std::fmt::Debug for TagIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagIndex")
            .field("base_offset", &self.base_offset)
            .field("entries", &self.entries.len())
            .field("last_offset", &self.last_offset)
            .finish()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tag_hash;
    use proptest::prelude::*;

    /// (offset, hash), offsets strictly ascending with gaps (untagged records between).
    fn arb_entries() -> impl Strategy<Value = (i64, Vec<(i64, i32)>)> {
        (
            0i64..1_000_000_000_000,
            prop::collection::vec((1i64..4, 0usize..5), 0..3_000),
        )
            .prop_map(|(base, steps)| {
                let tags = ["TagA", "TagB", "TagC", "", "x"];
                let mut offset = base;
                let entries = steps
                    .into_iter()
                    .map(|(step, tag)| {
                        offset += step;
                        (offset, tag_hash(tags[tag]))
                    })
                    .collect();
                (base, entries)
            })
    }

    fn build(entries: &[(i64, i32)]) -> TagIndex {
        let mut index = TagIndex::new();
        for (offset, hash) in entries {
            index.add(*offset, *hash);
        }
        index
    }

    fn expected(entries: &[(i64, i32)], from: i64, hashes: &[i32], limit: usize) -> Vec<i64> {
        entries
            .iter()
            .filter(|(o, h)| *o >= from && hashes.contains(h))
            .map(|(o, _)| *o)
            .take(limit)
            .collect()
    }

    fn check(index: &TagIndex, entries: &[(i64, i32)], base: i64, probes: &[(i64, usize, usize)]) {
        let all = [
            tag_hash("TagA"),
            tag_hash("TagB"),
            tag_hash("TagC"),
            0,
            tag_hash("x"),
        ];
        for (from_delta, subset, limit) in probes {
            let from = base - 5 + from_delta;
            let hashes: Vec<i32> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, h)| *h)
                .collect();
            assert_eq!(
                index.matching(from, &hashes, *limit),
                expected(entries, from, &hashes, *limit),
                "from {from} hashes {hashes:?} limit {limit}"
            );
        }
    }

    fn arb_probes() -> impl Strategy<Value = Vec<(i64, usize, usize)>> {
        prop::collection::vec((0i64..12_000, 0usize..32, 0usize..200), 1..20)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn matching_is_brute_force_before_and_after_reload(
            (base, entries) in arb_entries(),
            probes in arb_probes(),
        ) {
            let index = build(&entries);
            prop_assert_eq!(index.len(), entries.len());
            check(&index, &entries, base, &probes);

            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("0.tagidx");
            index.write_to(&path).expect("write");
            let loaded = TagIndex::load(&path).expect("load");
            check(&loaded, &entries, base, &probes);
            prop_assert_eq!(
                std::fs::metadata(&path).expect("stat").len() as usize,
                32 + 8 * entries.len()
            );
        }

        #[test]
        fn truncation_then_appends(
            (base, mut entries) in arb_entries(),
            cut_delta in 0i64..12_000,
            probes in arb_probes(),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("0.tagidx");
            build(&entries).write_to(&path).expect("write");
            let mut index = TagIndex::load(&path).expect("load");
            let cut = base + cut_delta;
            index.truncate_from(cut);
            entries.retain(|(o, _)| *o < cut);
            check(&index, &entries, base, &probes);

            let next = entries.last().map_or(cut, |(o, _)| (o + 1).max(cut));
            for (i, offset) in (next..next + 50).step_by(2).enumerate() {
                let hash = if i % 2 == 0 { tag_hash("TagA") } else { 0 };
                index.add(offset, hash);
                entries.push((offset, hash));
            }
            check(&index, &entries, base, &probes);
            index.write_to(&path).expect("rewrite");
            check(&TagIndex::load(&path).expect("reload"), &entries, base, &probes);
        }

        #[test]
        fn any_flipped_byte_or_truncation_is_damage(
            (_base, entries) in arb_entries(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            cut in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("0.tagidx");
            build(&entries).write_to(&path).expect("write");
            let good = std::fs::read(&path).expect("read");
            let mut flipped = good.clone();
            flipped[flip.index(good.len())] ^= 1 << bit;
            std::fs::write(&path, &flipped).expect("write");
            let damaged = matches!(TagIndex::load(&path), Err(IndexError::Damaged { .. }));
            prop_assert!(damaged);
            std::fs::write(&path, &good[..cut.index(good.len())]).expect("write");
            let damaged = matches!(TagIndex::load(&path), Err(IndexError::Damaged { .. }));
            prop_assert!(damaged);
        }
    }

    #[test]
    fn missing_file_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.tagidx");
        assert!(matches!(
            TagIndex::load(&path),
            Err(IndexError::Missing { .. })
        ));
    }

    #[test]
    fn a_key_index_file_is_not_a_tag_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.idx");
        let mut keys = super::super::key_index::KeyIndex::new();
        keys.add(b"k", 1, 1);
        keys.write_to(&path).expect("write");
        assert!(matches!(
            TagIndex::load(&path),
            Err(IndexError::Damaged {
                position: 0,
                reason: "bad magic",
                ..
            })
        ));
    }

    #[test]
    fn matching_before_base_and_far_past_the_end() {
        let index = build(&[(100, 7), (105, 8), (110, 7)]);
        assert_eq!(index.matching(0, &[7], 10), vec![100, 110]);
        assert_eq!(index.matching(101, &[7, 8], 1), vec![105]);
        assert!(index.matching(i64::MAX, &[7], 10).is_empty());
        assert!(index.matching(0, &[7], 0).is_empty());
        assert!(TagIndex::new().matching(0, &[7], 10).is_empty());
    }

    #[test]
    #[should_panic(expected = "strictly ascending")]
    fn repeated_offset_is_a_bug() {
        let mut index = TagIndex::new();
        index.add(5, 1);
        index.add(5, 2);
    }
}
