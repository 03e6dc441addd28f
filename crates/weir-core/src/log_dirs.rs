//! What DescribeLogDirs reports: where the data lives and how much each partition holds.

use std::path::Path;

use weir_storage::store::TopicPartition;

use crate::Broker;

impl Broker {
    /// The data directory (the one log dir weir has).
    pub fn data_dir(&self) -> &Path {
        self.store.dir()
    }

    /// Bytes in the partition's segments; `None` when the partition does not exist.
    pub fn partition_size_bytes(&self, id: &TopicPartition) -> Option<u64> {
        self.store.size_bytes(id).ok()
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
        assert_eq!(broker.partition_size_bytes(&id), Some(0));
        let mut builder = BatchBuilder::new(0, 1);
        builder.push(1, None, Some(b"value"), &[]);
        let batch = builder.build();
        broker.append(&id, &batch, 0).expect("append");
        assert_eq!(broker.partition_size_bytes(&id), Some(batch.len() as u64));
        let missing = TopicPartition::new("s", 1);
        assert_eq!(broker.partition_size_bytes(&missing), None);
        assert_eq!(broker.data_dir(), dir.path());
    }
}
