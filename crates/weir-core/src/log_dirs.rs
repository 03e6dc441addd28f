//! What DescribeLogDirs reports: where the data lives and how much each partition holds.
//! The store does not expose a partition's size, so it is read from the segment files on
//! disk — a handful of `stat` calls per partition, acceptable for an admin request.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use weir_storage::store::TopicPartition;

use crate::Broker;

/// Where the store keeps partition directories, under the data directory.
const PARTITIONS_DIR: &str = "partitions";
/// Segment files end so; indexes and metadata beside them are not the log's size.
const SEGMENT_SUFFIX: &str = ".log";
/// Most directory entries looked at in one partition directory: a partition holds a few
/// files per segment, and a size report must not walk an unbounded directory.
const PARTITION_DIR_ENTRIES_MAX: usize = 1_000_000;

impl Broker {
    /// The data directory (the one log dir weir has).
    pub fn data_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Bytes in the partition's segment files. `Ok(None)` when the partition does not exist.
    pub fn partition_size_bytes(&self, id: &TopicPartition) -> io::Result<Option<u64>> {
        let dir: PathBuf = self.data_dir().join(PARTITIONS_DIR).join(id.to_string());
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut total = 0u64;
        for entry in entries.take(PARTITION_DIR_ENTRIES_MAX) {
            let entry = entry?;
            let is_segment = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.ends_with(SEGMENT_SUFFIX));
            if !is_segment {
                continue;
            }
            match entry.metadata() {
                Ok(meta) if meta.is_file() => total = total.saturating_add(meta.len()),
                Ok(_) => {}
                // Removed by retention or compaction since listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Some(total))
    }
}

#[cfg(test)]
mod tests {
    use weir_storage::batch::BatchBuilder;
    use weir_storage::store::StoreConfig;

    use crate::{BrokerConfig, TopicId};

    use super::*;

    #[test]
    fn sizes_grow_with_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::open(
            dir.path(),
            StoreConfig::default(),
            BrokerConfig::default(),
            0,
        )
        .expect("open")
        .0;
        broker
            .create_topic("s", TopicId([5; 16]), 1, &[], false)
            .expect("create");
        let id = TopicPartition::new("s", 0);
        assert_eq!(broker.partition_size_bytes(&id).expect("size"), Some(0));
        let mut builder = BatchBuilder::new(0, 1);
        builder.push(1, None, Some(b"value"), &[]);
        let batch = builder.build();
        broker.append(&id, &batch, 0).expect("append");
        assert_eq!(
            broker.partition_size_bytes(&id).expect("size"),
            Some(batch.len() as u64)
        );
        let missing = TopicPartition::new("s", 1);
        assert_eq!(broker.partition_size_bytes(&missing).expect("size"), None);
        assert_eq!(broker.data_dir(), dir.path());
    }
}
