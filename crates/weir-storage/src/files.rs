//! The open-file cache: every segment and index handle the storage engine uses goes through
//! one [`FileCache`], so the number of open file descriptors stays under a fixed cap however
//! many partitions and segments exist (10,000 idle partitions must not hold 10,000+ fds).
//!
//! It owns nothing but handles: it never decides what a file means, never deletes files and
//! never reads their bytes. Evicting a handle only drops the cache's reference; a reader that
//! still holds the `Arc<File>` (a fetch slice on its way to a socket) keeps it open until done,
//! so the cap bounds idle descriptors, not in-flight ones.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Default cap on cached descriptors: well under the usual soft `ulimit -n` of 1024 plus the
/// sockets a broker needs, once raised; an engine sizes its own from its limit.
pub const DEFAULT_MAX_OPEN: usize = 1024;

/// LRU-bounded cache of read+write file handles keyed by path.
#[derive(Debug)]
pub struct FileCache {
    max_open: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Monotonic use counter; the smallest tick is the least recently used handle.
    tick: u64,
    by_path: HashMap<PathBuf, (Arc<File>, u64)>,
    by_tick: BTreeMap<u64, PathBuf>,
}

impl Inner {
    fn touch(&mut self, path: &Path) -> Option<Arc<File>> {
        self.tick += 1;
        let tick = self.tick;
        let (file, old_tick) = self.by_path.get_mut(path)?;
        let file = Arc::clone(file);
        let old = std::mem::replace(old_tick, tick);
        self.by_tick.remove(&old);
        self.by_tick.insert(tick, path.to_path_buf());
        Some(file)
    }

    fn insert(&mut self, path: &Path, file: Arc<File>, max_open: usize) {
        while self.by_path.len() >= max_open {
            let Some((_, oldest)) = self.by_tick.pop_first() else {
                break;
            };
            self.by_path.remove(&oldest);
        }
        self.tick += 1;
        self.by_tick.insert(self.tick, path.to_path_buf());
        self.by_path.insert(path.to_path_buf(), (file, self.tick));
    }

    fn remove(&mut self, path: &Path) {
        if let Some((_, tick)) = self.by_path.remove(path) {
            self.by_tick.remove(&tick);
        }
    }
}

impl FileCache {
    /// A cache holding at most `max_open` handles (at least one).
    pub fn new(max_open: usize) -> Self {
        Self {
            max_open: max_open.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters: at worst a handle is cached twice or not at all.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle of an existing file, opened read+write, from the cache or freshly opened.
    pub fn get(&self, path: &Path) -> io::Result<Arc<File>> {
        if let Some(file) = self.lock().touch(path) {
            return Ok(file);
        }
        // Opened outside the lock: an open can block on a slow disk.
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(path)?);
        let mut inner = self.lock();
        if let Some(existing) = inner.touch(path) {
            return Ok(existing);
        }
        inner.insert(path, Arc::clone(&file), self.max_open);
        Ok(file)
    }

    /// Creates a new, empty file (failing if it exists) and caches its handle.
    pub fn create(&self, path: &Path) -> io::Result<Arc<File>> {
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?,
        );
        let mut inner = self.lock();
        inner.remove(path);
        inner.insert(path, Arc::clone(&file), self.max_open);
        Ok(file)
    }

    /// Drops the cached handle of `path` (before the file is deleted or replaced by a rename,
    /// so later `get`s open the new file).
    pub fn forget(&self, path: &Path) {
        self.lock().remove(path);
    }

    /// Handles currently cached.
    pub fn open_count(&self) -> usize {
        self.lock().by_path.len()
    }

    pub fn max_open(&self) -> usize {
        self.max_open
    }
}

impl Default for FileCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_OPEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded_and_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(2);
        let paths: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("{i}"))).collect();
        for path in &paths {
            cache.create(path).unwrap();
        }
        assert_eq!(cache.open_count(), 2);
        // 0 was evicted; 1 and 2 are cached. Touch 1, then reopen 0: 2 is the LRU now.
        cache.get(&paths[1]).unwrap();
        cache.get(&paths[0]).unwrap();
        assert_eq!(cache.open_count(), 2);
        let inner = cache.lock();
        assert!(inner.by_path.contains_key(&paths[0]));
        assert!(inner.by_path.contains_key(&paths[1]));
        assert!(!inner.by_path.contains_key(&paths[2]));
        assert_eq!(inner.by_tick.len(), 2);
    }

    #[test]
    fn forget_drops_the_handle_and_create_refuses_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileCache::new(4);
        let path = dir.path().join("a");
        cache.create(&path).unwrap();
        assert_eq!(cache.open_count(), 1);
        cache.forget(&path);
        assert_eq!(cache.open_count(), 0);
        assert!(cache.create(&path).is_err());
        assert!(cache.get(&dir.path().join("missing")).is_err());
    }
}
