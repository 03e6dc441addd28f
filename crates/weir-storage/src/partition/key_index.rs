//! Key index of one segment: which offsets carry a lookup key (the record key, or a word of
//! the `KEYS` header), RocketMQ's lookup by key without scanning the log.
//!
//! It owns the key → offsets mapping of one segment, in memory while the segment is active
//! and in a checksummed file once persisted. It stores a 64-bit hash of each key
//! ([`key_hash`]), never the key bytes, so answers are *candidates*: the caller reads the
//! record to confirm the key. It never reads the segment itself, and never trusts its file:
//! a damaged file is reported ([`IndexError::Damaged`]) so the caller rebuilds it.
//!
//! # Memory
//! The in-memory part is 20 bytes per entry: sorted runs merged like a binary counter plus
//! an unsorted tail of at most [`TAIL_ENTRIES_MAX`], so a lookup binary-searches every run
//! (O(log² n)) instead of scanning; merging two runs briefly holds both and their merge.
//! A loaded index keeps only an open file handle (one descriptor per loaded index): a
//! lookup binary-searches the file with positioned reads, so sealed segments cost no heap.
//! Appends after a load (a truncated segment that became active again) go to memory, and
//! entries of the file past a truncation point are ignored until the next `write_to`.
//!
//! # File layout (all integers big-endian)
//! ```text
//!  0 magic "WKIX"        4 version u16 = 1     6 entry length u16 = 20
//!  8 base offset i64 (-1 when empty)          16 entry count u64
//! 24 largest relative offset u32              28 CRC-32C u32 of the entries, then of bytes 0..28
//! 32 entries: hash u64, relative offset u32 (offset - base), timestamp ms i64,
//!    sorted by (hash, relative offset)
//! ```
//! Files are written to `<path>.tmp`, fsynced, renamed over `<path>`, and the directory is
//! fsynced, so a crash leaves either the old file or the new one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::IndexError;

/// Bytes of the file header shared by the key and tag index files.
pub(super) const FILE_HEADER_LEN: usize = 32;
/// The only file format version written and read.
const FILE_VERSION: u16 = 1;
const MAGIC: [u8; 4] = *b"WKIX";
/// Bytes per entry on disk: hash u64, relative offset u32, timestamp i64.
const ENTRY_LEN: usize = 20;
/// Unsorted entries kept before they are sorted into a run: big enough that sorting is
/// amortized, small enough that scanning it on every lookup is cheap (80 KiB).
pub const TAIL_ENTRIES_MAX: usize = 4096;
/// Lookup keys indexed per offset: a record may carry any number of `KEYS` words, and
/// without a bound one record could grow the index without limit. RocketMQ clients set a
/// handful; words past this bound are not indexed (the record is still stored).
pub const KEYS_PER_OFFSET_MAX: u32 = 64;
/// Entries a file may declare: offsets are relative u32, and each offset carries at most
/// [`KEYS_PER_OFFSET_MAX`] keys. Checked before the file length so the arithmetic cannot
/// overflow.
const FILE_ENTRIES_MAX: u64 = (u32::MAX as u64 + 1) * KEYS_PER_OFFSET_MAX as u64;
/// Entries read per positioned read when scanning or checksumming a file (80 KiB).
const READ_CHUNK_ENTRIES: usize = 4096;
/// Entries read by a lookup's first read after its binary search (1.25 KiB).
const LOOKUP_FIRST_READ_ENTRIES: usize = 64;

/// FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3). Written down so
/// index files stay valid across builds and platforms; collisions only add candidates.
pub fn key_hash(key: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// One index entry. Packed to 20 bytes: the active segment's index lives in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(4))]
struct Entry {
    hash: u64,
    rel_offset: u32,
    timestamp_ms: i64,
}

impl Entry {
    fn sort_key(&self) -> (u64, u32) {
        (self.hash, self.rel_offset)
    }

    fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0; ENTRY_LEN];
        out[0..8].copy_from_slice(&{ self.hash }.to_be_bytes());
        out[8..12].copy_from_slice(&{ self.rel_offset }.to_be_bytes());
        out[12..20].copy_from_slice(&{ self.timestamp_ms }.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Self {
        Self {
            hash: u64::from_be_bytes(array_at(bytes, 0)),
            rel_offset: u32::from_be_bytes(array_at(bytes, 8)),
            timestamp_ms: i64::from_be_bytes(array_at(bytes, 12)),
        }
    }

    fn in_range(&self, time_range_ms: Option<(i64, i64)>) -> bool {
        let ts = self.timestamp_ms;
        time_range_ms.is_none_or(|(from, to)| ts >= from && ts <= to)
    }
}

/// Copies `N` bytes at `at`; callers pass slices cut to an exact entry or header length.
pub(super) fn array_at<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(
        bytes
            .get(at..at + N)
            .expect("callers slice exact entry and header lengths"),
    );
    out
}

/// The key index of one segment: an in-memory part and, once loaded, a file part.
#[derive(Debug, Default)]
pub struct KeyIndex {
    /// Offset that relative offsets count from: the first offset added, or the file's.
    base_offset: Option<i64>,
    /// Largest offset added (or in the file): offsets must not go back.
    last_offset: Option<i64>,
    keys_at_last_offset: u32,
    sealed: Option<SealedFile>,
    memory: MemoryEntries,
}

/// A loaded index file, read with positioned reads. It holds the path, not an open
/// descriptor: a partition may have thousands of sealed segments, and open files are
/// bounded (see `files`). Each lookup opens the file once.
#[derive(Debug)]
struct SealedFile {
    path: PathBuf,
    count: u64,
    /// Entries at or past this relative offset were truncated away and are ignored.
    rel_end: u64,
}

impl KeyIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `offset` (with `timestamp_ms`) carries `key`. Offsets arrive ascending.
    pub fn add(&mut self, key: &[u8], offset: i64, timestamp_ms: i64) {
        if let Some(last) = self.last_offset {
            assert!(
                offset >= last,
                "key index offsets arrive ascending: {offset} after {last}"
            );
            if offset == last {
                if self.keys_at_last_offset >= KEYS_PER_OFFSET_MAX {
                    return;
                }
                self.keys_at_last_offset += 1;
            } else {
                self.keys_at_last_offset = 1;
            }
        } else {
            self.keys_at_last_offset = 1;
        }
        self.last_offset = Some(offset);
        let base = *self.base_offset.get_or_insert(offset);
        let rel_offset = u32::try_from(offset - base)
            .expect("a segment spans fewer than 2^32 offsets (the partition log rolls it)");
        self.memory.push(Entry {
            hash: key_hash(key),
            rel_offset,
            timestamp_ms,
        });
    }

    /// Candidate offsets carrying `key` (ascending), within `[from_ms, to_ms]` when given,
    /// at most `limit`. Candidates may include hash collisions: the caller reads the record
    /// to confirm.
    ///
    /// A read error on a loaded file is logged and only in-memory candidates are returned;
    /// use [`KeyIndex::try_lookup`] to see the error.
    pub fn lookup(&self, key: &[u8], time_range_ms: Option<(i64, i64)>, limit: usize) -> Vec<i64> {
        match self.try_lookup(key, time_range_ms, limit) {
            Ok(offsets) => offsets,
            Err(error) => {
                tracing::warn!(%error, "key index lookup fell back to in-memory entries");
                self.finish_candidates(
                    self.memory.lookup(key_hash(key), time_range_ms, limit),
                    limit,
                )
            }
        }
    }

    /// As [`KeyIndex::lookup`], reporting a failed read of the index file.
    pub fn try_lookup(
        &self,
        key: &[u8],
        time_range_ms: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<i64>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let hash = key_hash(key);
        let mut candidates = self.memory.lookup(hash, time_range_ms, limit);
        if let Some(sealed) = &self.sealed {
            candidates.extend(sealed.lookup(hash, time_range_ms, limit)?);
        }
        Ok(self.finish_candidates(candidates, limit))
    }

    fn finish_candidates(&self, mut rel_offsets: Vec<u32>, limit: usize) -> Vec<i64> {
        let Some(base) = self.base_offset else {
            return Vec::new();
        };
        rel_offsets.sort_unstable();
        rel_offsets.dedup();
        rel_offsets.truncate(limit);
        rel_offsets
            .into_iter()
            .map(|rel| base + i64::from(rel))
            .collect()
    }

    /// Heap bytes held by the in-memory entries (a loaded file costs none), for the
    /// partition log's memory accounting.
    pub fn memory_bytes(&self) -> usize {
        let entries: usize =
            self.memory.runs.iter().map(Vec::capacity).sum::<usize>() + self.memory.tail.capacity();
        entries * std::mem::size_of::<Entry>()
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
        // A relative offset past u32 cuts nothing: no entry is that far.
        let rel_end = u64::try_from(offset - base).unwrap_or(u64::MAX);
        self.memory.truncate(rel_end);
        if let Some(sealed) = &mut self.sealed {
            sealed.rel_end = sealed.rel_end.min(rel_end);
        }
        if self.last_offset.is_some_and(|last| last >= offset) {
            // The true last offset is unknown (the file is sorted by hash); offsets below
            // `offset` are a safe floor for the ordering check.
            self.last_offset = Some(offset - 1);
            self.keys_at_last_offset = KEYS_PER_OFFSET_MAX;
        }
    }

    /// Persists the index (checksummed) for a sealed or flushed segment.
    pub fn write_to(&self, path: &Path) -> Result<(), IndexError> {
        let base_offset = self.base_offset.unwrap_or(-1);
        write_index_file(path, MAGIC, ENTRY_LEN, base_offset, |sink| {
            let mut max_rel = 0u32;
            let mut file_cursor = self.sealed.as_ref().map(FileCursor::new);
            let mut sorted_tail = self.memory.tail.clone();
            sorted_tail.sort_unstable_by_key(Entry::sort_key);
            let mut slices: Vec<&[Entry]> = self.memory.runs.iter().map(Vec::as_slice).collect();
            slices.push(&sorted_tail);
            loop {
                let file_head = match &mut file_cursor {
                    Some(cursor) => cursor.peek()?,
                    None => None,
                };
                let memory_min = slices
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| s.first().map(|e| (i, *e)))
                    .min_by_key(|(_, e)| e.sort_key());
                let entry = match (file_head, memory_min) {
                    (None, None) => break,
                    (Some(f), Some((i, m))) if m.sort_key() < f.sort_key() => {
                        slices[i] = &slices[i][1..];
                        m
                    }
                    (Some(f), _) => {
                        if let Some(cursor) = &mut file_cursor {
                            cursor.advance();
                        }
                        f
                    }
                    (None, Some((i, m))) => {
                        slices[i] = &slices[i][1..];
                        m
                    }
                };
                max_rel = max_rel.max(entry.rel_offset);
                sink.push(&entry.encode())?;
            }
            Ok(max_rel)
        })
    }

    /// Loads a persisted index; a missing or damaged file is an error the caller answers by
    /// rebuilding from the segment. The whole file is checksummed here; afterwards lookups
    /// read it with positioned reads and keep none of it in memory.
    pub fn load(path: &Path) -> Result<Self, IndexError> {
        let mut previous: Option<(u64, u32)> = None;
        let mut max_rel_seen = 0u32;
        let index = open_index_file(path, MAGIC, ENTRY_LEN, FILE_ENTRIES_MAX, |bytes| {
            let entry = Entry::decode(bytes);
            if previous.is_some_and(|p| p > entry.sort_key()) {
                return Err("entries are not sorted by (hash, offset)");
            }
            previous = Some(entry.sort_key());
            max_rel_seen = max_rel_seen.max(entry.rel_offset);
            Ok(())
        })?;
        if index.count > 0 && max_rel_seen != index.extra {
            return Err(IndexError::Damaged {
                path: path.to_path_buf(),
                position: 24,
                reason: "largest relative offset disagrees with the entries",
            });
        }
        if index.count == 0 {
            return Ok(Self::default());
        }
        Ok(Self {
            base_offset: Some(index.base_offset),
            last_offset: Some(index.base_offset + i64::from(index.extra)),
            keys_at_last_offset: KEYS_PER_OFFSET_MAX,
            sealed: Some(SealedFile {
                path: path.to_path_buf(),
                count: index.count,
                rel_end: u64::MAX,
            }),
            memory: MemoryEntries::default(),
        })
    }
}

/// The in-memory entries: sorted runs (each sorted by (hash, relative offset), sizes
/// decreasing geometrically so there are O(log n) of them) and an unsorted tail.
#[derive(Default)]
struct MemoryEntries {
    runs: Vec<Vec<Entry>>,
    tail: Vec<Entry>,
}

/// Sizes only: an active index holds millions of entries, too many for a log line.
impl std::fmt::Debug for MemoryEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let runs: Vec<usize> = self.runs.iter().map(Vec::len).collect();
        f.debug_struct("MemoryEntries")
            .field("runs", &runs)
            .field("tail", &self.tail.len())
            .finish()
    }
}

impl MemoryEntries {
    fn push(&mut self, entry: Entry) {
        self.tail.push(entry);
        if self.tail.len() >= TAIL_ENTRIES_MAX {
            self.seal_tail();
        }
    }

    fn seal_tail(&mut self) {
        let mut run = std::mem::take(&mut self.tail);
        run.sort_unstable_by_key(Entry::sort_key);
        self.runs.push(run);
        while let [.., older, newer] = self.runs.as_slice() {
            if older.len() > newer.len() {
                break;
            }
            let merged = merge_runs(older, newer);
            self.runs.pop();
            self.runs.pop();
            self.runs.push(merged);
        }
    }

    /// Relative offsets of entries with `hash`, at most `limit` per run (runs are sorted
    /// by offset within a hash, so the first `limit` of each run are the only candidates).
    fn lookup(&self, hash: u64, time_range_ms: Option<(i64, i64)>, limit: usize) -> Vec<u32> {
        let mut out = Vec::new();
        for run in &self.runs {
            let start = run.partition_point(|e| { e.hash } < hash);
            let matches = run[start..].iter().take_while(|e| { e.hash } == hash);
            take_distinct(&mut out, matches, time_range_ms, limit);
        }
        let matches = self.tail.iter().filter(|e| { e.hash } == hash);
        take_distinct(&mut out, matches, time_range_ms, limit);
        out
    }

    fn truncate(&mut self, rel_end: u64) {
        for run in &mut self.runs {
            run.retain(|e| u64::from(e.rel_offset) < rel_end);
        }
        self.runs.retain(|run| !run.is_empty());
        self.tail.retain(|e| u64::from(e.rel_offset) < rel_end);
    }
}

/// Appends the relative offsets of `entries` (ascending by offset) in the time range,
/// at most `limit` distinct ones: one offset may carry the same key twice (record key and a
/// `KEYS` word), and duplicates must not use up the limit.
fn take_distinct<'a>(
    out: &mut Vec<u32>,
    entries: impl Iterator<Item = &'a Entry>,
    time_range_ms: Option<(i64, i64)>,
    limit: usize,
) {
    let mut taken = 0;
    let mut previous = None;
    for entry in entries.filter(|e| e.in_range(time_range_ms)) {
        if taken >= limit {
            break;
        }
        if previous != Some(entry.rel_offset) {
            previous = Some(entry.rel_offset);
            out.push(entry.rel_offset);
            taken += 1;
        }
    }
}

fn merge_runs(a: &[Entry], b: &[Entry]) -> Vec<Entry> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        if x.sort_key() <= y.sort_key() {
            out.push(*x);
            i += 1;
        } else {
            out.push(*y);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl SealedFile {
    fn entry_position(index: u64) -> u64 {
        FILE_HEADER_LEN as u64 + index * ENTRY_LEN as u64
    }

    fn open(&self) -> Result<File, IndexError> {
        File::open(&self.path).map_err(|source| IndexError::Io {
            op: "open",
            path: self.path.clone(),
            source,
        })
    }

    fn read_at(&self, file: &File, buf: &mut [u8], position: u64) -> Result<(), IndexError> {
        file.read_exact_at(buf, position)
            .map_err(|source| IndexError::Io {
                op: "read",
                path: self.path.clone(),
                source,
            })
    }

    /// Binary search for the first entry with `hash`, then a forward scan in chunks.
    fn lookup(
        &self,
        hash: u64,
        time_range_ms: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<Vec<u32>, IndexError> {
        let file = self.open()?;
        let (mut low, mut high) = (0u64, self.count);
        let mut hash_bytes = [0u8; 8];
        while low < high {
            let mid = low + (high - low) / 2;
            self.read_at(&file, &mut hash_bytes, Self::entry_position(mid))?;
            if u64::from_be_bytes(hash_bytes) < hash {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let mut out = Vec::new();
        let mut buf = Vec::new();
        // Most keys have a few entries: start with a small read and grow it.
        let mut chunk_entries = LOOKUP_FIRST_READ_ENTRIES;
        let mut index = low;
        while index < self.count && out.len() < limit {
            let n = (self.count - index).min(chunk_entries as u64) as usize;
            chunk_entries = (chunk_entries * 2).min(READ_CHUNK_ENTRIES);
            buf.resize(n * ENTRY_LEN, 0);
            let chunk = &mut buf[..];
            self.read_at(&file, chunk, Self::entry_position(index))?;
            for bytes in chunk.chunks_exact(ENTRY_LEN) {
                let entry = Entry::decode(bytes);
                if entry.hash != hash || u64::from(entry.rel_offset) >= self.rel_end {
                    // Sorted by (hash, offset): nothing further can match.
                    return Ok(out);
                }
                if entry.in_range(time_range_ms) && out.last() != Some(&{ entry.rel_offset }) {
                    out.push(entry.rel_offset);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            index += n as u64;
        }
        Ok(out)
    }
}

/// Reads a loaded file's entries in order, in chunks, skipping truncated ones.
struct FileCursor<'a> {
    sealed: &'a SealedFile,
    /// Opened on the first read.
    file: Option<File>,
    buf: Vec<Entry>,
    pos: usize,
    next_index: u64,
}

impl<'a> FileCursor<'a> {
    fn new(sealed: &'a SealedFile) -> Self {
        Self {
            sealed,
            file: None,
            buf: Vec::new(),
            pos: 0,
            next_index: 0,
        }
    }

    fn peek(&mut self) -> Result<Option<Entry>, IndexError> {
        loop {
            while let Some(entry) = self.buf.get(self.pos) {
                if u64::from(entry.rel_offset) < self.sealed.rel_end {
                    return Ok(Some(*entry));
                }
                self.pos += 1;
            }
            if self.next_index >= self.sealed.count {
                return Ok(None);
            }
            let n = (self.sealed.count - self.next_index).min(READ_CHUNK_ENTRIES as u64) as usize;
            let mut bytes = vec![0u8; n * ENTRY_LEN];
            let file = match &mut self.file {
                Some(file) => file,
                None => self.file.insert(self.sealed.open()?),
            };
            self.sealed.read_at(
                file,
                &mut bytes,
                SealedFile::entry_position(self.next_index),
            )?;
            self.buf = bytes.chunks_exact(ENTRY_LEN).map(Entry::decode).collect();
            self.pos = 0;
            self.next_index += n as u64;
        }
    }

    fn advance(&mut self) {
        self.pos += 1;
    }
}

// ---- File helpers shared with the tag index ----

/// Accumulates entries into the temporary file, with their count and checksum.
pub(super) struct EntrySink {
    writer: BufWriter<File>,
    path: PathBuf,
    entry_len: usize,
    crc: u32,
    count: u64,
}

impl EntrySink {
    pub(super) fn push(&mut self, entry: &[u8]) -> Result<(), IndexError> {
        assert_eq!(
            entry.len(),
            self.entry_len,
            "entries have the file's length"
        );
        self.crc = crc32c::crc32c_append(self.crc, entry);
        self.count += 1;
        self.writer
            .write_all(entry)
            .map_err(|source| io_error("write", &self.path, source))
    }
}

pub(super) fn io_error(op: &'static str, path: &Path, source: io::Error) -> IndexError {
    IndexError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes an index file atomically: entries from `write_entries` (which returns the
/// header's extra u32), then the header with count and checksum, fsync, rename, fsync of
/// the directory.
pub(super) fn write_index_file(
    path: &Path,
    magic: [u8; 4],
    entry_len: usize,
    base_offset: i64,
    write_entries: impl FnOnce(&mut EntrySink) -> Result<u32, IndexError>,
) -> Result<(), IndexError> {
    let tmp = tmp_path(path);
    let result = write_tmp_file(&tmp, magic, entry_len, base_offset, write_entries)
        .and_then(|()| fs::rename(&tmp, path).map_err(|source| io_error("rename", path, source)))
        .and_then(|()| sync_parent_dir(path));
    if result.is_err() {
        // Best effort: a leftover temporary file is overwritten by the next attempt.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_tmp_file(
    tmp: &Path,
    magic: [u8; 4],
    entry_len: usize,
    base_offset: i64,
    write_entries: impl FnOnce(&mut EntrySink) -> Result<u32, IndexError>,
) -> Result<(), IndexError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|source| io_error("create", tmp, source))?;
    let mut sink = EntrySink {
        writer: BufWriter::new(file),
        path: tmp.to_path_buf(),
        entry_len,
        crc: 0,
        count: 0,
    };
    sink.writer
        .write_all(&[0; FILE_HEADER_LEN])
        .map_err(|source| io_error("write", tmp, source))?;
    let extra = write_entries(&mut sink)?;
    let file = sink
        .writer
        .into_inner()
        .map_err(|error| io_error("write", tmp, error.into_error()))?;
    let mut header = [0u8; FILE_HEADER_LEN];
    header[0..4].copy_from_slice(&magic);
    header[4..6].copy_from_slice(&FILE_VERSION.to_be_bytes());
    let entry_len_u16 = u16::try_from(entry_len).expect("entry lengths are small constants");
    header[6..8].copy_from_slice(&entry_len_u16.to_be_bytes());
    header[8..16].copy_from_slice(&base_offset.to_be_bytes());
    header[16..24].copy_from_slice(&sink.count.to_be_bytes());
    header[24..28].copy_from_slice(&extra.to_be_bytes());
    let crc = crc32c::crc32c_append(sink.crc, &header[..28]);
    header[28..32].copy_from_slice(&crc.to_be_bytes());
    file.write_all_at(&header, 0)
        .map_err(|source| io_error("write", tmp, source))?;
    file.sync_all()
        .map_err(|source| io_error("fsync", tmp, source))
}

fn sync_parent_dir(path: &Path) -> Result<(), IndexError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| io_error("fsync directory", dir, source))
}

/// A validated index file's header fields (the file is closed again).
pub(super) struct IndexFile {
    pub(super) base_offset: i64,
    pub(super) count: u64,
    pub(super) extra: u32,
}

/// Opens and validates an index file: header, count against the file length, then every
/// entry through `visit` (for ordering checks) and the checksum, reading in bounded chunks.
pub(super) fn open_index_file(
    path: &Path,
    magic: [u8; 4],
    entry_len: usize,
    count_max: u64,
    mut visit: impl FnMut(&[u8]) -> Result<(), &'static str>,
) -> Result<IndexFile, IndexError> {
    let damaged = |position: u64, reason: &'static str| IndexError::Damaged {
        path: path.to_path_buf(),
        position,
        reason,
    };
    let file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => IndexError::Missing {
            path: path.to_path_buf(),
        },
        _ => io_error("open", path, source),
    })?;
    let file_len = file
        .metadata()
        .map_err(|source| io_error("stat", path, source))?
        .len();
    if file_len < FILE_HEADER_LEN as u64 {
        return Err(damaged(file_len, "shorter than the header"));
    }
    let mut header = [0u8; FILE_HEADER_LEN];
    file.read_exact_at(&mut header, 0)
        .map_err(|source| io_error("read", path, source))?;
    if header[0..4] != magic {
        return Err(damaged(0, "bad magic"));
    }
    if u16::from_be_bytes(array_at(&header, 4)) != FILE_VERSION {
        return Err(damaged(4, "unsupported version"));
    }
    if usize::from(u16::from_be_bytes(array_at(&header, 6))) != entry_len {
        return Err(damaged(6, "unexpected entry length"));
    }
    let base_offset = i64::from_be_bytes(array_at(&header, 8));
    let count = u64::from_be_bytes(array_at(&header, 16));
    let extra = u32::from_be_bytes(array_at(&header, 24));
    let stored_crc = u32::from_be_bytes(array_at(&header, 28));
    if count > count_max {
        return Err(damaged(16, "entry count exceeds the bound"));
    }
    // count <= count_max keeps this far from overflow.
    let expected_len = FILE_HEADER_LEN as u64 + count * entry_len as u64;
    if expected_len != file_len {
        return Err(damaged(
            expected_len.min(file_len),
            "entry count disagrees with the file length",
        ));
    }
    if count > 0 && base_offset < 0 {
        return Err(damaged(8, "negative base offset"));
    }
    let mut crc = 0u32;
    let mut buf = vec![0u8; READ_CHUNK_ENTRIES * entry_len];
    let mut index = 0u64;
    while index < count {
        let n = (count - index).min(READ_CHUNK_ENTRIES as u64) as usize;
        let chunk = &mut buf[..n * entry_len];
        let position = FILE_HEADER_LEN as u64 + index * entry_len as u64;
        file.read_exact_at(chunk, position)
            .map_err(|source| io_error("read", path, source))?;
        crc = crc32c::crc32c_append(crc, chunk);
        for (i, entry) in chunk.chunks_exact(entry_len).enumerate() {
            visit(entry).map_err(|reason| damaged(position + (i * entry_len) as u64, reason))?;
        }
        index += n as u64;
    }
    crc = crc32c::crc32c_append(crc, &header[..28]);
    if crc != stored_crc {
        return Err(damaged(28, "checksum mismatch"));
    }
    Ok(IndexFile {
        base_offset,
        count,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::test_rng::Rng;

    /// (key, offset, timestamp) in arrival order.
    type Model = Vec<(Vec<u8>, i64, i64)>;

    fn key_of(n: u64) -> Vec<u8> {
        format!("key-{n}").into_bytes()
    }

    /// Up to 3 keys per offset, offsets ascending with gaps, timestamps jittering.
    fn generate(seed: u64, count: usize, base: i64, keys: u64) -> Model {
        let mut rng = Rng(seed);
        let mut model = Vec::with_capacity(count);
        let mut offset = base;
        while model.len() < count {
            let ts = 1_000_000 + rng.below(10_000) as i64;
            for _ in 0..=rng.below(3) {
                model.push((key_of(rng.below(keys)), offset, ts));
            }
            offset += 1 + rng.below(3) as i64;
        }
        model
    }

    fn build(model: &Model) -> KeyIndex {
        let mut index = KeyIndex::new();
        for (key, offset, ts) in model {
            index.add(key, *offset, *ts);
        }
        index
    }

    fn expected(model: &Model, key: &[u8], range: Option<(i64, i64)>, limit: usize) -> Vec<i64> {
        let mut offsets: Vec<i64> = model
            .iter()
            .filter(|(k, _, ts)| k == key && range.is_none_or(|(f, t)| *ts >= f && *ts <= t))
            .map(|(_, o, _)| *o)
            .collect();
        offsets.dedup();
        offsets.truncate(limit);
        offsets
    }

    fn check_all(index: &KeyIndex, model: &Model, keys: u64, rng: &mut Rng) {
        for k in 0..=keys {
            let key = key_of(k);
            let range = match rng.below(3) {
                0 => None,
                _ => {
                    let from = 1_000_000 + rng.below(10_000) as i64;
                    Some((from, from + rng.below(5_000) as i64))
                }
            };
            let limit = match rng.below(3) {
                0 => usize::MAX,
                _ => rng.below(50) as usize,
            };
            let got = index.try_lookup(&key, range, limit).expect("lookup reads");
            assert_eq!(
                got,
                expected(model, &key, range, limit),
                "key {k} {range:?} {limit}"
            );
            assert_eq!(index.lookup(&key, range, limit), got);
        }
    }

    #[test]
    fn key_hash_is_fnv1a_64() {
        assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn entries_are_20_bytes_in_memory() {
        assert_eq!(std::mem::size_of::<Entry>(), ENTRY_LEN);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn lookup_matches_brute_force_in_memory_and_after_reload(
            seed in any::<u64>(),
            count in 0usize..12_000,
            keys in 1u64..40,
            base in 0i64..1_000_000_000_000,
        ) {
            let model = generate(seed, count, base, keys);
            let index = build(&model);
            let mut rng = Rng(seed ^ 1);
            check_all(&index, &model, keys, &mut rng);

            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("0.keyidx");
            index.write_to(&path).expect("write");
            let loaded = KeyIndex::load(&path).expect("load");
            check_all(&loaded, &model, keys, &mut rng);
            prop_assert_eq!(loaded.memory_bytes(), 0);
            prop_assert!(index.memory_bytes() >= model.len() * ENTRY_LEN);
            prop_assert!(!path.with_extension("keyidx.tmp").exists());
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn truncation_and_appends_after_reload(
            seed in any::<u64>(),
            count in 1usize..6_000,
            keys in 1u64..20,
            cut_at in 0.0f64..1.2,
        ) {
            let mut model = generate(seed, count, 500, keys);
            let last = model.last().map_or(500, |e| e.1);
            let cut = 500 + ((last - 500) as f64 * cut_at) as i64;
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("0.keyidx");
            build(&model).write_to(&path).expect("write");

            let mut loaded = KeyIndex::load(&path).expect("load");
            let mut in_memory = build(&model);
            loaded.truncate_from(cut);
            in_memory.truncate_from(cut);
            model.retain(|(_, o, _)| *o < cut);
            let mut rng = Rng(seed ^ 2);
            check_all(&loaded, &model, keys, &mut rng);
            check_all(&in_memory, &model, keys, &mut rng);

            // The segment is active again: appends go after the cut, beside the file.
            let more = generate(seed ^ 3, 4_500, cut.max(500), keys);
            for (key, offset, ts) in &more {
                loaded.add(key, *offset, *ts);
                in_memory.add(key, *offset, *ts);
            }
            model.extend(more);
            check_all(&loaded, &model, keys, &mut rng);
            check_all(&in_memory, &model, keys, &mut rng);

            // Rewriting over the file it was loaded from.
            loaded.write_to(&path).expect("rewrite");
            let reloaded = KeyIndex::load(&path).expect("reload");
            check_all(&reloaded, &model, keys, &mut rng);
        }

        #[test]
        fn any_flipped_byte_or_truncation_is_damage(
            seed in any::<u64>(),
            count in 0usize..300,
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            cut in any::<prop::sample::Index>(),
        ) {
            let model = generate(seed, count, 7, 5);
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("0.keyidx");
            build(&model).write_to(&path).expect("write");
            let good = std::fs::read(&path).expect("read");
            prop_assert_eq!(good.len(), FILE_HEADER_LEN + model.len() * ENTRY_LEN);

            let mut flipped = good.clone();
            flipped[flip.index(good.len())] ^= 1 << bit;
            std::fs::write(&path, &flipped).expect("write");
            let flipped_is_damaged = matches!(
                KeyIndex::load(&path),
                Err(IndexError::Damaged { ref path, .. }) if path.ends_with("0.keyidx")
            );
            prop_assert!(flipped_is_damaged);

            std::fs::write(&path, &good[..cut.index(good.len())]).expect("write");
            let truncated_is_damaged =
                matches!(KeyIndex::load(&path), Err(IndexError::Damaged { .. }));
            prop_assert!(truncated_is_damaged);
        }
    }

    #[test]
    fn missing_file_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.keyidx");
        assert!(matches!(KeyIndex::load(&path), Err(IndexError::Missing { path: p }) if p == path));
    }

    #[test]
    fn damage_reports_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.keyidx");
        build(&generate(9, 10, 0, 3))
            .write_to(&path)
            .expect("write");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[0] = b'X';
        std::fs::write(&path, &bytes).expect("write");
        match KeyIndex::load(&path) {
            Err(IndexError::Damaged {
                position, reason, ..
            }) => assert_eq!((position, reason), (0, "bad magic")),
            other => panic!("expected Damaged, got {other:?}"),
        }
        bytes[0] = b'W';
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        match KeyIndex::load(&path) {
            Err(IndexError::Damaged {
                position, reason, ..
            }) => assert_eq!((position, reason), (28, "checksum mismatch")),
            other => panic!("expected Damaged, got {other:?}"),
        }
    }

    #[test]
    fn empty_index_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.keyidx");
        KeyIndex::new().write_to(&path).expect("write");
        let mut loaded = KeyIndex::load(&path).expect("load");
        assert!(loaded.lookup(b"k", None, 10).is_empty());
        // An empty file fixes no base: any offset may come next.
        loaded.add(b"k", 5_000_000_000, 1);
        assert_eq!(loaded.lookup(b"k", None, 10), vec![5_000_000_000]);
    }

    #[test]
    fn keys_per_offset_are_bounded() {
        let mut index = KeyIndex::new();
        for i in 0..(KEYS_PER_OFFSET_MAX + 10) {
            index.add(format!("w{i}").as_bytes(), 3, 0);
        }
        index.add(b"w0", 4, 0);
        assert_eq!(index.lookup(b"w0", None, 10), vec![3, 4]);
        let last_indexed = format!("w{}", KEYS_PER_OFFSET_MAX - 1);
        assert_eq!(index.lookup(last_indexed.as_bytes(), None, 10), vec![3]);
        let dropped = format!("w{}", KEYS_PER_OFFSET_MAX);
        assert!(index.lookup(dropped.as_bytes(), None, 10).is_empty());
    }

    #[test]
    #[should_panic(expected = "ascending")]
    fn offsets_going_back_is_a_bug() {
        let mut index = KeyIndex::new();
        index.add(b"a", 10, 0);
        index.add(b"a", 9, 0);
    }

    #[test]
    fn lookup_of_a_removed_file_reports_io_and_falls_back_to_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.keyidx");
        build(&generate(1, 100, 0, 2))
            .write_to(&path)
            .expect("write");
        let mut loaded = KeyIndex::load(&path).expect("load");
        // Replace the open file's contents behind its back with fewer bytes.
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(FILE_HEADER_LEN as u64).expect("truncate");
        loaded.add(b"key-0", 1_000, 5);
        assert!(matches!(
            loaded.try_lookup(b"key-0", None, 1_000),
            Err(IndexError::Io { op: "read", .. })
        ));
        assert_eq!(loaded.lookup(b"key-0", None, 1_000), vec![1_000]);
    }
}
