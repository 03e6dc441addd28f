//! Recovery on open: metadata, then every segment scanned and checked.
//!
//! Owns: deciding what of the directory is the log. A torn or damaged tail of the LAST
//! segment is cut off and reported (only the last segment can hold unsynced bytes: a
//! segment is fsynced before its successor is created). Damage anywhere else is an error,
//! never dropped: those entries may have been acknowledged. Must never: allocate for a
//! length read from disk before checking it, or read entry by entry with syscalls.

use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

use super::entry::{Damage, ScanError, Scanner};
use super::{
    Inner, LogId, MetaState, Segment, TMP_SUFFIX, TruncatedTail, WalError, WalRecovery, io_error,
    lock, meta, parse_segment_name, scan_error,
};

impl Inner {
    pub(super) fn recover(&self) -> Result<WalRecovery, WalError> {
        let purged = match meta::read(&self.dir, meta::PURGED_FILE)? {
            Some(payload) => meta::decode_log_id(&self.dir, meta::PURGED_FILE, &payload)?,
            None => None,
        };
        let committed = match meta::read(&self.dir, meta::COMMITTED_FILE)? {
            Some(payload) => meta::decode_log_id(&self.dir, meta::COMMITTED_FILE, &payload)?,
            None => None,
        };
        let vote = meta::read(&self.dir, meta::VOTE_FILE)?;

        let mut names = self.list_segments()?;
        names.sort_unstable();
        // Segments wholly at or below last_purged (their successor starts at or below
        // purged + 1) may survive a crash during purge: finish deleting them unread.
        let mut changed_dir = false;
        if let Some(purged) = purged {
            let mut drop_count = 0;
            while names
                .get(drop_count + 1)
                .is_some_and(|&(next, _)| next <= purged.index.saturating_add(1))
            {
                drop_count += 1;
            }
            for (_, path) in names.drain(..drop_count) {
                fs::remove_file(&path).map_err(io_error("delete purged segment", &path))?;
                changed_dir = true;
            }
        }

        let mut segments: Vec<Segment> = Vec::new();
        let mut truncated_tail = None;
        let count = names.len();
        for (k, (first_index, path)) in names.into_iter().enumerate() {
            let is_last = k + 1 == count;
            let expected = match segments.last().and_then(|s| s.last) {
                Some(prev) => prev.index + 1,
                None => match (segments.is_empty(), purged) {
                    // The oldest segment may start anywhere up to purged + 1.
                    (true, Some(p)) if first_index > p.index.saturating_add(1) => {
                        return Err(WalError::Corrupt {
                            path,
                            position: 0,
                            reason: Damage::IndexGap {
                                expected: p.index + 1,
                                got: first_index,
                            },
                        });
                    }
                    _ => first_index,
                },
            };
            if first_index != expected {
                return Err(WalError::Corrupt {
                    path,
                    position: 0,
                    reason: Damage::IndexGap {
                        expected,
                        got: first_index,
                    },
                });
            }
            let (segment, tail) = self.recover_segment(path, first_index, is_last)?;
            if segment.last.is_none() {
                if !is_last {
                    return Err(WalError::Corrupt {
                        path: segment.file.path.clone(),
                        position: 0,
                        reason: Damage::EmptySegment,
                    });
                }
                // An empty last segment (a roll cut short) is dropped; the next append
                // creates it again.
                fs::remove_file(&segment.file.path)
                    .map_err(io_error("delete empty segment", &segment.file.path))?;
                changed_dir = true;
                truncated_tail = tail;
                continue;
            }
            truncated_tail = tail;
            segments.push(segment);
        }

        let mut last = segments.last().and_then(|s| s.last);
        if let (Some(l), Some(p)) = (last, purged)
            && l.index <= p.index
        {
            // Everything left is purged: the log continues after last_purged.
            for segment in segments.drain(..) {
                fs::remove_file(&segment.file.path)
                    .map_err(io_error("delete purged segment", &segment.file.path))?;
            }
            changed_dir = true;
            last = None;
        }

        // What recovery kept is durable from here on: acknowledging it later is truthful.
        if let Some(active) = segments.last() {
            self.fsync(&active.file.file, &active.file.path, "fsync segment")?;
        }
        if changed_dir || truncated_tail.is_some() {
            self.fsync_dir()?;
        }
        for segment in &segments {
            segment
                .file
                .synced_len
                .store(segment.len, std::sync::atomic::Ordering::Release);
        }

        *lock(&self.meta) = MetaState { vote, committed };
        let mut log = lock(&self.log);
        log.segments = segments;
        log.last_purged = purged;
        log.last = last;
        let recovery = WalRecovery {
            segments: log.segments.len(),
            first_index: log.first_index(),
            last: log.last.or(purged),
            truncated_tail,
        };
        let mut sync = lock(&self.sync);
        let durable = log.last.or(purged).map(|id| id.index);
        sync.written = durable;
        sync.synced = durable;
        Ok(recovery)
    }

    /// Segment files by first index; leftover temporary files are removed.
    fn list_segments(&self) -> Result<Vec<(u64, PathBuf)>, WalError> {
        let mut names = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(io_error("list directory", &self.dir))?;
        for dir_entry in entries {
            let dir_entry = dir_entry.map_err(io_error("list directory", &self.dir))?;
            let path = dir_entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.ends_with(TMP_SUFFIX) {
                // An atomic metadata write that never reached its rename.
                fs::remove_file(&path).map_err(io_error("delete temporary file", &path))?;
            } else if let Some(first_index) = parse_segment_name(name) {
                names.push((first_index, path));
            }
        }
        Ok(names)
    }

    fn recover_segment(
        &self,
        path: PathBuf,
        first_index: u64,
        is_last: bool,
    ) -> Result<(Segment, Option<TruncatedTail>), WalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_error("open segment", &path))?;
        let file_len = file
            .metadata()
            .map_err(io_error("stat segment", &path))?
            .len();
        let mut segment = Segment::empty(path, file, first_index);
        let damage = {
            let file = Arc::clone(&segment.file);
            let mut scanner = Scanner::new(&file.file, 0, file_len, self.config.max_entry_bytes);
            loop {
                let position = scanner.position();
                match scanner.next_entry() {
                    Ok(None) => break None,
                    Ok(Some(scanned)) => {
                        let expected = segment.last.map_or(first_index, |l| l.index + 1);
                        if scanned.index != expected {
                            break Some((
                                position,
                                Damage::IndexGap {
                                    expected,
                                    got: scanned.index,
                                },
                            ));
                        }
                        segment.note_entry(scanned.index, position);
                        segment.last = Some(LogId {
                            term: scanned.term,
                            index: scanned.index,
                        });
                        segment.len = scanner.position();
                    }
                    Err(ScanError::Damaged { position, damage }) => break Some((position, damage)),
                    Err(io) => return Err(scan_error(&segment.file.path, io)),
                }
            }
        };
        let Some((position, reason)) = damage else {
            return Ok((segment, None));
        };
        let path = segment.file.path.clone();
        // A checksummed entry with the wrong index is no torn write: it is damage (or a
        // bug) even in the last segment, and cutting there could drop acknowledged entries.
        let torn = is_last && !matches!(reason, Damage::IndexGap { .. });
        if !torn {
            return Err(WalError::Corrupt {
                path,
                position,
                reason,
            });
        }
        tracing::warn!(path = %path.display(), position, %reason, "truncating the torn tail of the WAL");
        segment
            .file
            .file
            .set_len(position)
            .map_err(io_error("truncate torn tail", &path))?;
        let tail = TruncatedTail {
            path,
            position,
            bytes_dropped: file_len - position,
            reason,
        };
        Ok((segment, Some(tail)))
    }
}
