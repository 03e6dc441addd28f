//! The write-ahead log of a shard: the Raft log, stored as segment files of checksummed
//! `(term, index, payload)` entries, with group commit by one flusher thread.
//!
//! Owns: segment files `<dir>/<20-digit first index>.wal`, the metadata files
//! `vote.meta`, `committed.meta` and `purged.meta`, and the `LOCK` file that keeps a
//! second process out; appends, fsync policy (sync waiters and async interval/bytes),
//! truncation, purging, reads and recovery. It becomes openraft's log storage later.
//!
//! Must never: fsync per append (appenders share the flusher's fsyncs), keep payloads in
//! memory (only a sparse position index per segment), report an index as synced before an
//! fsync covers it, carry on after a failed fsync (the log is poisoned: every later
//! append, wait and sync fails with the original error's text), or silently drop entries
//! from a segment that is not the last (they may have been acknowledged).
//!
//! # Durability argument
//! - A segment is fsynced *before* its successor file is created and the directory fsynced,
//!   so only the last segment can have an unsynced (torn) tail; recovery truncates a torn
//!   tail there and reports damage anywhere else as `Corrupt`.
//! - The flusher captures `written` under the log lock, fsyncs the active segment outside
//!   it, then publishes `synced = written-at-capture`. Appends landing during the fsync wait
//!   for the next one (group commit).
//! - Truncation and purge hold `flush_lock`, so no fsync is in flight while they rewrite
//!   which files exist and lower `synced`.
//!
//! # Files
//! - `<20-digit first index>.wal`: entries back to back, each
//!   `[len u32][crc32c u32][term u64][index u64][payload]` (little-endian; the CRC covers
//!   len, term, index and payload). Named for its first entry; contiguous across files.
//! - `vote.meta`, `committed.meta`, `purged.meta`: `[magic][len][crc32c][payload]`, replaced
//!   by write-tmp, fsync, rename, fsync-directory. `*.tmp` leftovers are deleted on open.
//! - `LOCK`: an advisory lock held while open.
//!
//! The flusher's interval timer is the only place a clock is read; it decides when to
//! fsync buffered data, never what the log contains.

mod entry;
mod meta;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use entry::Damage;
pub use meta::MAX_META_PAYLOAD_BYTES;

use entry::{ScanError, Scanner, encode_entry, encoded_len};

/// Default segment size: big enough that rolls (two fsyncs each) are rare, small enough
/// that purging frees space in useful steps.
pub const DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;
/// Default interval of the background fsync of async (not waited-for) data.
pub const DEFAULT_ASYNC_FLUSH_INTERVAL_MS: u64 = 1000;
/// Default bound on unsynced async bytes before the flusher fsyncs early.
pub const DEFAULT_ASYNC_FLUSH_BYTES: u64 = 64 << 20;
/// Default largest entry: a shard entry carries a produce request's batches.
pub const DEFAULT_MAX_ENTRY_BYTES: u32 = 256 << 20;
/// Bytes between sparse index points: a read scans at most this much before the first
/// entry it wants, and the index costs 16 bytes per this many bytes of segment.
const SPARSE_INDEX_INTERVAL_BYTES: u64 = 64 << 10;
/// Bound on registered `on_synced` callbacks: each stands for one append in flight, so
/// more than this means the caller is not bounding its own pipeline.
pub const MAX_PENDING_CALLBACKS: usize = 1 << 16;
/// Largest encode buffer kept between appends: typical appends reuse it, one huge
/// append does not pin its size forever.
const WRITE_BUF_RETAIN_BYTES: usize = 8 << 20;
/// Segment file name: 20 digits (every u64 fits) and this extension.
const SEGMENT_EXTENSION: &str = "wal";
const SEGMENT_NAME_DIGITS: usize = 20;
const LOCK_FILE: &str = "LOCK";
const TMP_SUFFIX: &str = ".tmp";

/// WAL tuning.
#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Roll to a new segment file once the active one holds this many bytes.
    pub segment_bytes: u64,
    /// Background fsync of buffered (async) data at least this often.
    pub async_flush_interval_ms: u64,
    /// ...or as soon as this many bytes are unsynced.
    pub async_flush_bytes: u64,
    /// Larger payloads are refused on append; larger lengths on disk are damage.
    pub max_entry_bytes: u32,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            async_flush_interval_ms: DEFAULT_ASYNC_FLUSH_INTERVAL_MS,
            async_flush_bytes: DEFAULT_ASYNC_FLUSH_BYTES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
        }
    }
}

/// A Raft log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    pub term: u64,
    pub index: u64,
}

/// An entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub payload: Vec<u8>,
}

/// An entry to append.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub term: u64,
    pub index: u64,
    pub payload: &'a [u8],
}

/// The torn tail recovery cut off the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedTail {
    pub path: PathBuf,
    /// Where the first bad entry started; the file now ends here.
    pub position: u64,
    pub bytes_dropped: u64,
    pub reason: Damage,
}

/// What `Wal::open` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecovery {
    pub segments: usize,
    pub first_index: Option<u64>,
    pub last: Option<LogId>,
    pub truncated_tail: Option<TruncatedTail>,
}

/// Counters since open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalStats {
    pub fsyncs: u64,
    pub bytes_written: u64,
    pub written_index: Option<u64>,
    pub synced_index: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the WAL is poisoned by an earlier failure: {reason}")]
    Poisoned { reason: String },
    #[error("{path} is corrupt at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: Damage,
    },
    #[error("entry index {got} does not continue the log at {expected}")]
    NotContiguous { expected: u64, got: u64 },
    #[error("entry {index} has {len} bytes, over the limit of {max}")]
    EntryTooLarge { index: u64, len: usize, max: u32 },
    #[error("entry index {index} is the last possible index")]
    IndexOverflow { index: u64 },
    #[error("append of no entries")]
    EmptyAppend,
    #[error("cannot truncate after {index}: entries up to {last_purged} are purged")]
    TruncateBeforePurged { index: u64, last_purged: u64 },
    #[error("vote of {len} bytes exceeds the limit of {max}")]
    VoteTooLarge { len: usize, max: usize },
    #[error("{pending} on_synced callbacks are pending, the limit is {max}")]
    TooManyCallbacks { pending: usize, max: usize },
    #[error("WAL directory {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("the WAL was closed before index {index} was synced")]
    Closed { index: u64 },
}

type SyncedCallback = Box<dyn FnOnce(Result<(), WalError>) + Send>;

/// One segment file; shared with the flusher, which fsyncs it without the log lock.
#[derive(Debug)]
struct SegmentFile {
    path: PathBuf,
    file: File,
    /// Bytes the last successful fsync covered.
    synced_len: AtomicU64,
}

#[derive(Debug)]
struct Segment {
    file: Arc<SegmentFile>,
    /// The index its name carries: its first entry's, once it has one.
    first_index: u64,
    len: u64,
    last: Option<LogId>,
    /// `(index, position)` every `SPARSE_INDEX_INTERVAL_BYTES`; the first entry always.
    sparse: Vec<(u64, u64)>,
}

impl Segment {
    /// A segment of no entries yet over `file`, named by `first_index`.
    fn empty(path: PathBuf, file: File, first_index: u64) -> Self {
        Segment {
            file: Arc::new(SegmentFile {
                path,
                file,
                synced_len: AtomicU64::new(0),
            }),
            first_index,
            len: 0,
            last: None,
            sparse: Vec::new(),
        }
    }

    /// Where to start scanning for `index`.
    fn scan_start(&self, index: u64) -> u64 {
        let after = self.sparse.partition_point(|&(i, _)| i <= index);
        after
            .checked_sub(1)
            .and_then(|k| self.sparse.get(k))
            .map_or(0, |&(_, pos)| pos)
    }

    fn note_entry(&mut self, index: u64, position: u64) {
        let due = self
            .sparse
            .last()
            .is_none_or(|&(_, pos)| position >= pos + SPARSE_INDEX_INTERVAL_BYTES);
        if due {
            self.sparse.push((index, position));
        }
    }
}

/// Everything under the log lock.
struct Log {
    /// Ascending by index; the last is the active segment.
    segments: Vec<Segment>,
    last_purged: Option<LogId>,
    /// The last entry in the segments (not counting purged ones that were deleted).
    last: Option<LogId>,
    /// Reused encode buffer, so appends do not allocate once warm.
    write_buf: Vec<u8>,
    /// Bumped by every truncation: lets a read done outside the lock detect one.
    truncations: u64,
}

impl Log {
    fn next_index(&self) -> Option<u64> {
        match (self.last, self.last_purged) {
            (Some(last), _) => last.index.checked_add(1),
            (None, Some(purged)) => purged.index.checked_add(1),
            (None, None) => None,
        }
    }

    fn first_index(&self) -> Option<u64> {
        let last = self.last?;
        let first = self.segments.first()?.first_index;
        let first = match self.last_purged {
            Some(purged) => first.max(purged.index.saturating_add(1)),
            None => first,
        };
        (first <= last.index).then_some(first)
    }
}

struct MetaState {
    vote: Option<Vec<u8>>,
    committed: Option<LogId>,
}

/// Group-commit state under the sync lock.
struct SyncState {
    written: Option<u64>,
    synced: Option<u64>,
    written_bytes: u64,
    synced_bytes: u64,
    /// Highest index a waiter or callback needs synced.
    requested: Option<u64>,
    callbacks: Vec<(u64, SyncedCallback)>,
    poisoned: Option<String>,
    shutdown: bool,
}

fn covers(synced: Option<u64>, index: u64) -> bool {
    synced.is_some_and(|s| s >= index)
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.max(b)
}

struct Inner {
    dir: PathBuf,
    config: WalConfig,
    /// Held for a whole fsync round, and by truncate/purge: they change which files exist.
    /// Lock order: flush_lock, then log, then sync; `meta` is taken with none of them.
    flush_lock: Mutex<()>,
    log: Mutex<Log>,
    sync: Mutex<SyncState>,
    /// Vote and committed: their own lock, so their fsyncs never stall appends.
    meta: Mutex<MetaState>,
    /// Waiters in `wait_synced` sleep here.
    synced_cv: Condvar,
    /// The flusher sleeps here.
    flusher_cv: Condvar,
    fsyncs: AtomicU64,
    fail_next_fsync: AtomicBool,
    /// Keeps the advisory lock on `LOCK` for the WAL's lifetime.
    _lock_file: File,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("a thread panicked while holding a WAL lock")
}

/// The write-ahead log. `Send + Sync`; share it through an `Arc`.
pub struct Wal {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!(
        "{first_index:0width$}.{SEGMENT_EXTENSION}",
        width = SEGMENT_NAME_DIGITS
    ))
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io { op, path, source }
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir` and recovers it.
    pub fn open(dir: &Path, config: WalConfig) -> Result<(Wal, WalRecovery), WalError> {
        assert!(config.segment_bytes > 0, "segment_bytes must be positive");
        if !dir.is_dir() {
            fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
            // The directory's own entry must be durable before files in it count.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)
                    .and_then(|f| f.sync_all())
                    .map_err(io_error("fsync parent directory", parent))?;
            }
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error("open lock file", &lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(WalError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io_error("lock", &lock_path)(e)),
        }
        let inner = Inner {
            dir: dir.to_path_buf(),
            config,
            flush_lock: Mutex::new(()),
            log: Mutex::new(Log {
                segments: Vec::new(),
                last_purged: None,
                last: None,
                write_buf: Vec::new(),
                truncations: 0,
            }),
            sync: Mutex::new(SyncState {
                written: None,
                synced: None,
                written_bytes: 0,
                synced_bytes: 0,
                requested: None,
                callbacks: Vec::new(),
                poisoned: None,
                shutdown: false,
            }),
            meta: Mutex::new(MetaState {
                vote: None,
                committed: None,
            }),
            synced_cv: Condvar::new(),
            flusher_cv: Condvar::new(),
            fsyncs: AtomicU64::new(0),
            fail_next_fsync: AtomicBool::new(false),
            _lock_file: lock_file,
        };
        let recovery = inner.recover()?;
        let inner = Arc::new(inner);
        let flusher_inner = Arc::clone(&inner);
        let flusher = std::thread::Builder::new()
            .name("wal-flusher".into())
            .spawn(move || flusher_inner.run_flusher())
            .map_err(io_error("spawn flusher thread", dir))?;
        Ok((
            Wal {
                inner,
                flusher: Some(flusher),
            },
            recovery,
        ))
    }

    /// Writes entries (buffered write syscall, no fsync). Indexes must continue last+1 (or
    /// last_purged+1 / any index when empty) else `NotContiguous`. Returns the last index
    /// written. A refused call writes nothing.
    pub fn append(&self, entries: &[EntryRef<'_>]) -> Result<u64, WalError> {
        self.inner.append(entries)
    }

    /// Blocks until an fsync covers `index` (group commit: concurrent waiters share one
    /// fsync). An index not yet appended is waited for too.
    pub fn wait_synced(&self, index: u64) -> Result<(), WalError> {
        self.inner.wait_synced(index)
    }

    /// Calls `done` once an fsync covers `index`: from the flusher thread, or at once if
    /// already synced or poisoned. `done` must not call back into this WAL's
    /// `close`; it should hand the result on (a oneshot send) and return.
    pub fn on_synced(&self, index: u64, done: Box<dyn FnOnce(Result<(), WalError>) + Send>) {
        self.inner.on_synced(index, done)
    }

    /// Fsyncs everything written so far (through the flusher, sharing its fsync).
    pub fn sync(&self) -> Result<(), WalError> {
        let written = lock(&self.inner.sync).written;
        match written {
            Some(index) => self.inner.wait_synced(index),
            None => self.inner.check_poison(),
        }
    }

    /// Entries with indexes in `[from, to_exclusive)` that are still readable, stopping
    /// before `max_bytes` of payload, but at least one entry if any is in range.
    pub fn read(
        &self,
        from: u64,
        to_exclusive: u64,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, WalError> {
        self.inner.read(from, to_exclusive, max_bytes)
    }

    /// Drops entries after `index`, durably (file truncated and fsynced, later segments
    /// deleted and the directory fsynced) before returning.
    pub fn truncate_after(&self, index: u64) -> Result<(), WalError> {
        self.inner.truncate_after(index)
    }

    /// Entries `<= upto.index` are gone for readers: `upto` is persisted as last purged,
    /// then whole segments below it are deleted.
    pub fn purge_up_to(&self, upto: LogId) -> Result<(), WalError> {
        self.inner.purge_up_to(upto)
    }

    pub fn last_purged(&self) -> Option<LogId> {
        lock(&self.inner.log).last_purged
    }

    /// The last entry, or the last purged id when the log is empty.
    pub fn last_log_id(&self) -> Option<LogId> {
        let log = lock(&self.inner.log);
        log.last.or(log.last_purged)
    }

    /// The first readable entry's index.
    pub fn first_index(&self) -> Option<u64> {
        lock(&self.inner.log).first_index()
    }

    /// Persists the Raft vote (opaque bytes, at most `MAX_META_PAYLOAD_BYTES`).
    pub fn save_vote(&self, vote: &[u8]) -> Result<(), WalError> {
        if vote.len() > MAX_META_PAYLOAD_BYTES {
            return Err(WalError::VoteTooLarge {
                len: vote.len(),
                max: MAX_META_PAYLOAD_BYTES,
            });
        }
        let mut state = lock(&self.inner.meta);
        self.inner.write_meta(meta::VOTE_FILE, vote)?;
        state.vote = Some(vote.to_vec());
        Ok(())
    }

    pub fn read_vote(&self) -> Option<Vec<u8>> {
        lock(&self.inner.meta).vote.clone()
    }

    pub fn save_committed(&self, committed: Option<LogId>) -> Result<(), WalError> {
        let mut state = lock(&self.inner.meta);
        self.inner
            .write_meta(meta::COMMITTED_FILE, &meta::encode_log_id(committed))?;
        state.committed = committed;
        Ok(())
    }

    pub fn read_committed(&self) -> Option<LogId> {
        lock(&self.inner.meta).committed
    }

    pub fn stats(&self) -> WalStats {
        let sync = lock(&self.inner.sync);
        WalStats {
            fsyncs: self.inner.fsyncs.load(Ordering::Relaxed),
            bytes_written: sync.written_bytes,
            written_index: sync.written,
            synced_index: sync.synced,
        }
    }

    /// Test support for power-loss tests: for each segment file, the byte length the last
    /// successful fsync covered (bytes past it may be lost or torn by a power cut).
    pub fn synced_lengths(&self) -> Vec<(PathBuf, u64)> {
        let log = lock(&self.inner.log);
        log.segments
            .iter()
            .map(|s| {
                (
                    s.file.path.clone(),
                    s.file.synced_len.load(Ordering::Acquire),
                )
            })
            .collect()
    }

    /// Fault injection for tests: the next fsync fails, which poisons the log.
    #[doc(hidden)]
    pub fn fail_next_fsync(&self) {
        self.inner.fail_next_fsync.store(true, Ordering::SeqCst);
    }

    /// Final fsync, then stops the flusher thread.
    pub fn close(mut self) -> Result<(), WalError> {
        let result = self.sync();
        self.stop_flusher();
        result
    }

    fn stop_flusher(&mut self) {
        if let Some(handle) = self.flusher.take() {
            lock(&self.inner.sync).shutdown = true;
            self.inner.flusher_cv.notify_all();
            self.inner.synced_cv.notify_all();
            if handle.join().is_err() {
                tracing::error!(dir = %self.inner.dir.display(), "WAL flusher thread panicked");
            }
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop_flusher();
    }
}

impl Inner {
    fn check_poison(&self) -> Result<(), WalError> {
        match &lock(&self.sync).poisoned {
            Some(reason) => Err(WalError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a failure that leaves the files in an unknown state; the flusher fails the
    /// pending callbacks. Callers must not hold the sync lock.
    fn poison(&self, error: WalError) -> WalError {
        let reason = error.to_string();
        tracing::error!(dir = %self.dir.display(), %reason, "WAL poisoned");
        let mut sync = lock(&self.sync);
        let reason = sync.poisoned.get_or_insert(reason).clone();
        drop(sync);
        self.synced_cv.notify_all();
        self.flusher_cv.notify_all();
        WalError::Poisoned { reason }
    }

    /// Every fsync goes through here: counted, fault-injectable, and poisoning on failure.
    fn fsync(&self, file: &File, path: &Path, op: &'static str) -> Result<(), WalError> {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let result = if self.fail_next_fsync.swap(false, Ordering::SeqCst) {
            Err(io::Error::other("injected fsync failure"))
        } else {
            file.sync_data()
        };
        result.map_err(|source| {
            self.poison(WalError::Io {
                op,
                path: path.to_path_buf(),
                source,
            })
        })
    }

    fn fsync_dir(&self) -> Result<(), WalError> {
        let dir = File::open(&self.dir)
            .map_err(|e| self.poison(io_error("open directory", &self.dir)(e)))?;
        self.fsync(&dir, &self.dir, "fsync directory")
    }

    fn write_meta(&self, name: &str, payload: &[u8]) -> Result<(), WalError> {
        self.check_poison()?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}{TMP_SUFFIX}"));
        let file = File::create(&tmp).map_err(io_error("create metadata", &tmp))?;
        file.write_all_at(&meta::encode(payload), 0)
            .map_err(io_error("write metadata", &tmp))?;
        self.fsync(&file, &tmp, "fsync metadata")?;
        fs::rename(&tmp, &path).map_err(io_error("rename metadata", &path))?;
        self.fsync_dir()
    }

    fn append(&self, entries: &[EntryRef<'_>]) -> Result<u64, WalError> {
        let mut log = lock(&self.log);
        self.check_poison()?;
        let last_index = self.check_append(&log, entries)?;
        let log = &mut *log;
        let mut buf = std::mem::take(&mut log.write_buf);
        buf.clear();
        let result = self.write_entries(log, entries, &mut buf);
        // Keep the buffer for the next append unless one huge append inflated it.
        if buf.capacity() <= WRITE_BUF_RETAIN_BYTES {
            log.write_buf = buf;
        }
        result?;
        let last = entries
            .last()
            .expect("check_append refused an empty append");
        log.last = Some(LogId {
            term: last.term,
            index: last.index,
        });
        let bytes: u64 = entries.iter().map(|e| encoded_len(e.payload.len())).sum();
        let mut sync = lock(&self.sync);
        sync.written = Some(last_index);
        sync.written_bytes += bytes;
        let unsynced = sync.written_bytes - sync.synced_bytes;
        drop(sync);
        if unsynced >= self.config.async_flush_bytes {
            self.flusher_cv.notify_one();
        }
        Ok(last_index)
    }

    /// Contiguity and sizes of a whole append, before anything is written.
    fn check_append(&self, log: &Log, entries: &[EntryRef<'_>]) -> Result<u64, WalError> {
        let mut expected = log.next_index();
        if expected.is_none() && (log.last.is_some() || log.last_purged.is_some()) {
            let index = log.last.or(log.last_purged).map_or(u64::MAX, |id| id.index);
            return Err(WalError::IndexOverflow { index });
        }
        let mut last = None;
        for entry in entries {
            if let Some(expected) = expected
                && entry.index != expected
            {
                return Err(WalError::NotContiguous {
                    expected,
                    got: entry.index,
                });
            }
            if entry.payload.len() > self.config.max_entry_bytes as usize {
                return Err(WalError::EntryTooLarge {
                    index: entry.index,
                    len: entry.payload.len(),
                    max: self.config.max_entry_bytes,
                });
            }
            expected = Some(
                entry
                    .index
                    .checked_add(1)
                    .ok_or(WalError::IndexOverflow { index: entry.index })?,
            );
            last = Some(entry.index);
        }
        last.ok_or(WalError::EmptyAppend)
    }

    fn write_entries(
        &self,
        log: &mut Log,
        entries: &[EntryRef<'_>],
        buf: &mut Vec<u8>,
    ) -> Result<(), WalError> {
        for entry in entries {
            let needs_segment = match log.segments.last() {
                None => true,
                Some(active) => {
                    active.last.is_some()
                        && active.len + buf.len() as u64 >= self.config.segment_bytes
                }
            };
            if needs_segment {
                self.write_buffered(log, buf)?;
                self.roll(log, entry.index)?;
            }
            let active = log.segments.last_mut().expect("a segment was just ensured");
            let position = active.len + buf.len() as u64;
            if active.last.is_none() {
                assert_eq!(
                    active.first_index, entry.index,
                    "a segment's name is its first entry's index"
                );
            }
            active.note_entry(entry.index, position);
            active.last = Some(LogId {
                term: entry.term,
                index: entry.index,
            });
            encode_entry(buf, entry.term, entry.index, entry.payload);
        }
        self.write_buffered(log, buf)
    }

    fn write_buffered(&self, log: &mut Log, buf: &mut Vec<u8>) -> Result<(), WalError> {
        if buf.is_empty() {
            return Ok(());
        }
        let active = log
            .segments
            .last_mut()
            .expect("entries are only buffered for an active segment");
        // A failed write leaves an unknown tail in the file: fail-stop rather than append after it.
        active
            .file
            .file
            .write_all_at(buf, active.len)
            .map_err(|e| self.poison(io_error("write segment", &active.file.path)(e)))?;
        active.len += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Seals the active segment (fsynced, so only the last segment can ever have a torn
    /// tail) and starts a new one whose directory entry is durable before it is used.
    fn roll(&self, log: &mut Log, first_index: u64) -> Result<(), WalError> {
        if let Some(active) = log.segments.last() {
            self.fsync(&active.file.file, &active.file.path, "fsync segment")?;
            active
                .file
                .synced_len
                .fetch_max(active.len, Ordering::AcqRel);
        }
        let path = segment_path(&self.dir, first_index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| self.poison(io_error("create segment", &path)(e)))?;
        self.fsync_dir()?;
        log.segments.push(Segment::empty(path, file, first_index));
        Ok(())
    }

    fn wait_synced(&self, index: u64) -> Result<(), WalError> {
        let mut sync = lock(&self.sync);
        loop {
            if let Some(reason) = &sync.poisoned {
                return Err(WalError::Poisoned {
                    reason: reason.clone(),
                });
            }
            if covers(sync.synced, index) {
                return Ok(());
            }
            if sync.shutdown {
                return Err(WalError::Closed { index });
            }
            if !covers(sync.requested, index) {
                sync.requested = Some(index);
                self.flusher_cv.notify_one();
            }
            sync = self
                .synced_cv
                .wait(sync)
                .expect("a thread panicked while holding a WAL lock");
        }
    }

    fn on_synced(&self, index: u64, done: SyncedCallback) {
        let mut sync = lock(&self.sync);
        let immediate = if let Some(reason) = &sync.poisoned {
            Err(WalError::Poisoned {
                reason: reason.clone(),
            })
        } else if covers(sync.synced, index) {
            Ok(())
        } else if sync.shutdown {
            Err(WalError::Closed { index })
        } else if sync.callbacks.len() >= MAX_PENDING_CALLBACKS {
            Err(WalError::TooManyCallbacks {
                pending: sync.callbacks.len(),
                max: MAX_PENDING_CALLBACKS,
            })
        } else {
            sync.callbacks.push((index, done));
            if !covers(sync.requested, index) {
                sync.requested = Some(index);
            }
            drop(sync);
            self.flusher_cv.notify_one();
            return;
        };
        drop(sync);
        done(immediate);
    }

    /// What the flusher should do next, decided under the sync lock.
    fn next_flusher_step(&self, last_flush: Instant) -> FlusherStep {
        let interval = Duration::from_millis(self.config.async_flush_interval_ms.max(1));
        let mut sync = lock(&self.sync);
        loop {
            if sync.poisoned.is_some() || sync.shutdown {
                let callbacks = std::mem::take(&mut sync.callbacks);
                if !callbacks.is_empty() {
                    return FlusherStep::Fail(callbacks, sync.poisoned.clone());
                }
                if sync.shutdown {
                    let dirty = sync.poisoned.is_none() && sync.written > sync.synced;
                    return FlusherStep::Stop { final_flush: dirty };
                }
            } else {
                let dirty = sync.written > sync.synced;
                let demanded = sync.requested > sync.synced;
                let over_bytes =
                    sync.written_bytes - sync.synced_bytes >= self.config.async_flush_bytes;
                let due = last_flush.elapsed() >= interval;
                if dirty && (demanded || over_bytes || due) {
                    return FlusherStep::Flush;
                }
                // Truncate and purge can cover callbacks without an fsync of their own.
                let synced = sync.synced;
                if sync.callbacks.iter().any(|(i, _)| covers(synced, *i)) {
                    return FlusherStep::Flush;
                }
            }
            let timeout = interval
                .saturating_sub(last_flush.elapsed())
                .max(Duration::from_millis(1));
            sync = self
                .flusher_cv
                .wait_timeout(sync, timeout)
                .expect("a thread panicked while holding a WAL lock")
                .0;
        }
    }

    fn run_flusher(&self) {
        let mut last_flush = Instant::now();
        loop {
            match self.next_flusher_step(last_flush) {
                FlusherStep::Flush => {
                    last_flush = Instant::now();
                    // A failure has poisoned the log; the next step fails the callbacks.
                    let _ = self.flush();
                }
                FlusherStep::Fail(callbacks, poisoned) => {
                    for (index, done) in callbacks {
                        deliver(
                            done,
                            Err(match &poisoned {
                                Some(reason) => WalError::Poisoned {
                                    reason: reason.clone(),
                                },
                                None => WalError::Closed { index },
                            }),
                        );
                    }
                }
                FlusherStep::Stop { final_flush } => {
                    if final_flush {
                        let _ = self.flush();
                    }
                    let callbacks = std::mem::take(&mut lock(&self.sync).callbacks);
                    for (index, done) in callbacks {
                        deliver(done, Err(WalError::Closed { index }));
                    }
                    return;
                }
            }
        }
    }

    /// One group-commit round: fsync the active segment covering everything written at
    /// capture time, publish it, wake waiters, call covered callbacks (with no lock held).
    fn flush(&self) -> Result<(), WalError> {
        let flush_guard = lock(&self.flush_lock);
        let (target, target_bytes, active) = {
            let log = lock(&self.log);
            let sync = lock(&self.sync);
            // Nothing new since the last fsync: only callbacks to deliver.
            let active = (sync.written > sync.synced)
                .then(|| log.segments.last().map(|s| (Arc::clone(&s.file), s.len)))
                .flatten();
            (sync.written, sync.written_bytes, active)
        };
        if let Some((file, len)) = &active {
            self.fsync(&file.file, &file.path, "fsync segment")?;
            file.synced_len.fetch_max(*len, Ordering::AcqRel);
        }
        let covered = {
            let mut sync = lock(&self.sync);
            sync.synced = max_opt(sync.synced, target);
            sync.synced_bytes = sync.synced_bytes.max(target_bytes);
            let synced = sync.synced;
            let (covered, pending): (Vec<_>, Vec<_>) = std::mem::take(&mut sync.callbacks)
                .into_iter()
                .partition(|(i, _)| covers(synced, *i));
            sync.callbacks = pending;
            covered
        };
        drop(flush_guard);
        self.synced_cv.notify_all();
        for (_, done) in covered {
            deliver(done, Ok(()));
        }
        Ok(())
    }

    /// Reads without holding the log lock (appends go on meanwhile): the plan pins the
    /// segment files and lengths. Appends only add past the planned lengths and purges
    /// only unlink files the plan holds open, so only a truncation can change planned
    /// bytes; if one happened during the scan, the read is redone under the lock.
    fn read(&self, from: u64, to_exclusive: u64, max_bytes: u64) -> Result<Vec<Entry>, WalError> {
        let plan = self.plan_read(&lock(&self.log), from, to_exclusive);
        let result = plan
            .as_ref()
            .map_or(Ok(Vec::new()), |p| self.scan(p, max_bytes));
        let Some(plan) = plan else { return result };
        let log = lock(&self.log);
        if log.truncations == plan.truncations {
            return result;
        }
        match self.plan_read(&log, from, to_exclusive) {
            Some(plan) => self.scan(&plan, max_bytes),
            None => Ok(Vec::new()),
        }
    }

    fn plan_read(&self, log: &Log, from: u64, to_exclusive: u64) -> Option<ReadPlan> {
        let first = log.first_index()?;
        let last = log.last?;
        let lo = from.max(first);
        let hi = to_exclusive.min(last.index.saturating_add(1));
        if lo >= hi {
            return None;
        }
        let start_segment = log
            .segments
            .partition_point(|s| s.first_index <= lo)
            .saturating_sub(1);
        let segments = log
            .segments
            .iter()
            .skip(start_segment)
            .take_while(|s| s.first_index < hi)
            .map(|s| (Arc::clone(&s.file), s.scan_start(lo), s.len))
            .collect();
        Some(ReadPlan {
            lo,
            hi,
            segments,
            truncations: log.truncations,
        })
    }

    fn scan(&self, plan: &ReadPlan, max_bytes: u64) -> Result<Vec<Entry>, WalError> {
        let mut out: Vec<Entry> = Vec::new();
        let mut bytes = 0u64;
        for (file, start, len) in &plan.segments {
            // Bytes wanted plus the skip from the sparse point bound a useful chunk.
            let chunk = usize::try_from(max_bytes.saturating_add(SPARSE_INDEX_INTERVAL_BYTES))
                .unwrap_or(usize::MAX);
            let mut scanner = Scanner::new(&file.file, *start, *len, self.config.max_entry_bytes)
                .with_chunk_bytes(chunk);
            loop {
                let position = scanner.position();
                let scanned = match scanner.next_entry() {
                    Ok(Some(scanned)) => scanned,
                    Ok(None) => break,
                    Err(e) => return Err(scan_error(&file.path, e)),
                };
                if scanned.index < plan.lo {
                    continue;
                }
                if scanned.index >= plan.hi {
                    return Ok(out);
                }
                let expected = out.last().map_or(plan.lo, |e| e.index + 1);
                if scanned.index != expected {
                    return Err(WalError::Corrupt {
                        path: file.path.clone(),
                        position,
                        reason: Damage::IndexGap {
                            expected,
                            got: scanned.index,
                        },
                    });
                }
                let len = scanned.payload.len() as u64;
                if !out.is_empty() && bytes + len > max_bytes {
                    return Ok(out);
                }
                bytes += len;
                out.push(Entry {
                    term: scanned.term,
                    index: scanned.index,
                    payload: scanned.payload.to_vec(),
                });
            }
        }
        Ok(out)
    }

    /// Position and term of entry `index` in `segment`.
    fn locate(&self, segment: &Segment, index: u64) -> Result<(u64, u64), WalError> {
        let mut scanner = Scanner::new(
            &segment.file.file,
            segment.scan_start(index),
            segment.len,
            self.config.max_entry_bytes,
        );
        loop {
            let position = scanner.position();
            match scanner.next_entry() {
                Ok(Some(scanned)) if scanned.index == index => return Ok((position, scanned.term)),
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(WalError::Corrupt {
                        path: segment.file.path.clone(),
                        position,
                        reason: Damage::IndexGap {
                            expected: index,
                            got: segment.last.map_or(0, |l| l.index),
                        },
                    });
                }
                Err(e) => return Err(scan_error(&segment.file.path, e)),
            }
        }
    }

    fn truncate_after(&self, index: u64) -> Result<(), WalError> {
        let _flush_guard = lock(&self.flush_lock);
        let mut log = lock(&self.log);
        self.check_poison()?;
        if let Some(purged) = log.last_purged
            && index < purged.index
        {
            return Err(WalError::TruncateBeforePurged {
                index,
                last_purged: purged.index,
            });
        }
        let Some(last) = log.last else { return Ok(()) };
        if index >= last.index {
            return Ok(());
        }
        log.truncations += 1;
        let mut deleted = false;
        while let Some(segment) = log.segments.last() {
            if segment.first_index <= index {
                break;
            }
            // Newest first, so a crash part-way leaves a contiguous prefix.
            let path = segment.file.path.clone();
            fs::remove_file(&path)
                .map_err(|e| self.poison(io_error("delete segment", &path)(e)))?;
            log.segments.pop();
            deleted = true;
        }
        if let Some(segment) = log.segments.last()
            && segment.last.is_some_and(|l| l.index > index)
        {
            let (cut, _) = self.locate(segment, index + 1)?;
            let (_, term) = self.locate(segment, index)?;
            let file = Arc::clone(&segment.file);
            file.file
                .set_len(cut)
                .map_err(|e| self.poison(io_error("truncate segment", &file.path)(e)))?;
            self.fsync(&file.file, &file.path, "fsync segment")?;
            file.synced_len.store(cut, Ordering::Release);
            let segment = log.segments.last_mut().expect("checked above");
            segment.len = cut;
            segment.last = Some(LogId { term, index });
            segment.sparse.retain(|&(i, _)| i <= index);
        }
        if deleted {
            self.fsync_dir()?;
        }
        log.last = log.segments.last().and_then(|s| s.last);
        if log.last.is_none() {
            // Everything left was purged: the log continues after last_purged.
            log.segments.clear();
        }
        let mut sync = lock(&self.sync);
        sync.written = sync.written.map(|w| w.min(index));
        sync.synced = if log.last.is_some() {
            // The cut segment was just fsynced and earlier ones were sealed synced.
            Some(index)
        } else {
            sync.synced.map(|s| s.min(index))
        };
        sync.requested = sync.requested.map(|r| r.min(index));
        drop(sync);
        self.synced_cv.notify_all();
        self.flusher_cv.notify_one();
        Ok(())
    }

    fn purge_up_to(&self, upto: LogId) -> Result<(), WalError> {
        let _flush_guard = lock(&self.flush_lock);
        let mut log = lock(&self.log);
        self.check_poison()?;
        if log.last_purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        self.write_meta(meta::PURGED_FILE, &meta::encode_log_id(Some(upto)))?;
        log.last_purged = Some(upto);
        let purge_all = log.last.is_none_or(|l| l.index <= upto.index);
        let keep_from = if purge_all {
            log.segments.len()
        } else {
            // A segment is wholly purged when its successor starts at or below upto + 1;
            // the active segment is kept.
            let mut keep = 0;
            while keep + 1 < log.segments.len()
                && log
                    .segments
                    .get(keep + 1)
                    .is_some_and(|next| next.first_index <= upto.index + 1)
            {
                keep += 1;
            }
            keep
        };
        for segment in log.segments.drain(..keep_from) {
            let path = &segment.file.path;
            fs::remove_file(path).map_err(|e| self.poison(io_error("delete segment", path)(e)))?;
        }
        if keep_from > 0 {
            self.fsync_dir()?;
        }
        if purge_all {
            log.last = None;
            let mut sync = lock(&self.sync);
            sync.written = max_opt(sync.written, Some(upto.index));
            sync.synced = max_opt(sync.synced, Some(upto.index));
            drop(sync);
            self.synced_cv.notify_all();
            self.flusher_cv.notify_one();
        }
        Ok(())
    }
}

/// What a read scans: `[lo, hi)` from these `(file, start position, length)` views.
struct ReadPlan {
    lo: u64,
    hi: u64,
    segments: Vec<(Arc<SegmentFile>, u64, u64)>,
    truncations: u64,
}

enum FlusherStep {
    Flush,
    Fail(Vec<(u64, SyncedCallback)>, Option<String>),
    Stop { final_flush: bool },
}

/// Runs a callback on the flusher thread; a panicking callback must not kill the flusher
/// (every later waiter would hang), so the panic is caught and logged.
fn deliver(done: SyncedCallback, result: Result<(), WalError>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| done(result))).is_err() {
        tracing::error!("an on_synced callback panicked");
    }
}

fn scan_error(path: &Path, error: ScanError) -> WalError {
    match error {
        ScanError::Io(source) => WalError::Io {
            op: "read segment",
            path: path.to_path_buf(),
            source,
        },
        ScanError::Damaged { position, damage } => WalError::Corrupt {
            path: path.to_path_buf(),
            position,
            reason: damage,
        },
    }
}

mod recovery;

#[cfg(test)]
mod tests;
