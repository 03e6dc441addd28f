//! Partition logs: per partition, segment files of stored record batches with their
//! indexes (offset, time, key, tag), retention, DeleteRecords, compaction and recovery.
//!
//! STUB module root; the partition log lands here.

pub mod compaction;
pub mod key_index;
pub mod tag_index;

use std::path::PathBuf;

/// Why an index file could not be used; the caller rebuilds it from its segment.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index {path} is missing")]
    Missing { path: PathBuf },
    #[error("index {path} is damaged at byte {position}: {reason}")]
    Damaged {
        path: PathBuf,
        position: u64,
        reason: &'static str,
    },
    /// A segment read by compaction holds a batch that does not parse or check.
    #[error("segment {path} has a corrupt batch at byte {position}: {source}")]
    CorruptBatch {
        path: PathBuf,
        position: u64,
        #[source]
        source: crate::batch::BatchError,
    },
    /// A segment read by compaction holds a batch whose offsets go backwards.
    #[error(
        "segment {path}: batch at byte {position} has base offset {base_offset}, expected at least {expected_min}"
    )]
    BatchOutOfOrder {
        path: PathBuf,
        position: u64,
        base_offset: i64,
        expected_min: i64,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
