//! Compaction (`cleanup.policy=compact`): keep the last record per key, drop tombstones once
//! they are older than `delete.retention.ms`. Works file to file on sealed segments; the
//! partition log swaps the outputs in.
//!
//! STUB: the agreed API; the real implementation replaces it.

use std::path::{Path, PathBuf};

use super::IndexError;

/// A sealed segment to compact: its data file and the offset of its first batch.
#[derive(Debug, Clone)]
pub struct SegmentInput {
    pub path: PathBuf,
    pub base_offset: i64,
}

/// A rewritten segment, at `path` (beside its input, named `<input>.cleaned`), holding the
/// kept batches of the input whose base offset it shares.
#[derive(Debug, Clone)]
pub struct SegmentOutput {
    pub input: PathBuf,
    pub path: PathBuf,
    pub base_offset: i64,
    pub bytes: u64,
    pub records_kept: u64,
    pub records_dropped: u64,
}

/// Compacts `segments` (ascending, all sealed). `dirty_end_offset` is the first offset not
/// compacted (the active segment's base): records at or past it still count as the latest
/// value of their key. A tombstone (null value) is dropped when its batch's max timestamp is
/// older than `now_ms - delete_retention_ms`. Records with a null key are kept.
pub fn compact_segments(
    segments: &[SegmentInput],
    later_keys: &dyn Fn(&[u8]) -> Option<i64>,
    dirty_end_offset: i64,
    now_ms: i64,
    delete_retention_ms: i64,
    _scratch_dir: &Path,
) -> Result<Vec<SegmentOutput>, IndexError> {
    let _ = (
        segments,
        later_keys,
        dirty_end_offset,
        now_ms,
        delete_retention_ms,
    );
    Ok(Vec::new())
}
