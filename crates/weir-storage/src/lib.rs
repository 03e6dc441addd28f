//! weir's storage engine: the write-ahead log, per-partition logs of Kafka v2 record
//! batches with their indexes, recovery, retention and compaction.
//!
//! # Layout
//! - [`batch`]: the RecordBatch format — parse, validate, stamp offsets, build.
//! - [`compression`]: the batch codecs (gzip, snappy, lz4, zstd), bounded.
//! - [`message`]: how tags and lookup keys ride in record headers.
//! - [`files`]: the bounded open-file cache every segment handle goes through.
//! - [`partition`]: per-partition segment logs with their indexes, retention, compaction.
//! - [`wal`]: the write-ahead log (the shard's Raft log): segments, group commit, recovery.
//! - [`producer_state`]: idempotent producers' epochs and last sequences, and open and
//!   aborted transactions (`partition::txn`), per partition.
//! - [`topic_config`]: per-topic settings under Kafka's names.
//! - [`store`]: one WAL in front of many partition logs — the append path, replay, checkpoints.
//!
//! # What it deliberately does not do
//! No sockets, no async runtime, no wire protocol versions: front ends decode requests and
//! call this crate with validated domain values. Time is passed in (`now_ms`), never read
//! inside decisions that tests must reproduce.
//!
//! # Example
//! ```
//! use weir_storage::batch::{BatchBuilder, validate_batches};
//! let mut builder = BatchBuilder::new(0, 1_700_000_000_000);
//! builder.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[("TAGS", Some(b"TagA"))]);
//! let batch = builder.build();
//! let batches = validate_batches(&batch, 1 << 20).expect("a built batch is valid");
//! assert_eq!(batches[0].header.record_count, 1);
//! ```

pub mod batch;
pub mod compression;
pub mod files;
pub mod message;
pub mod partition;
pub mod producer_state;
pub mod store;
pub mod topic_config;
pub mod wal;

#[cfg(test)]
mod test_rng;
