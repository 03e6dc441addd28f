//! [`Broker`]: the store, the topic catalog and append notifications behind one API that
//! both front ends call. Creating a topic writes its partitions to the store, then its
//! catalog entry: a crash in between leaves partitions without a topic, which opening
//! removes (nothing was acknowledged for them).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use event_listener::{Event, EventListener};
use weir_storage::store::{
    Appended, RecoveryReport, Store, StoreConfig, StoreError, TopicPartition,
};
use weir_storage::topic_config::{ConfigError, TopicConfig};

use crate::catalog::{Catalog, CatalogError, TopicId, TopicInfo};
use crate::producer_ids::{ProducerIdError, ProducerIds};

/// Most partitions one topic may have (a bound on what one CreateTopics can ask for).
pub const PARTITIONS_PER_TOPIC_MAX: i32 = 10_000;

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Kafka's `auto.create.topics.enable`: Metadata and Produce create unknown topics.
    pub auto_create_topics: bool,
    /// Kafka's `num.partitions`: partitions of an auto-created topic.
    pub num_partitions: i32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            auto_create_topics: true,
            num_partitions: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    #[error("unknown partition {0}")]
    UnknownPartition(TopicPartition),
    #[error("topic {0} already exists")]
    TopicExists(String),
    #[error("invalid partition count {count}: {reason}")]
    InvalidPartitions { count: i32, reason: &'static str },
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    ProducerIds(#[from] ProducerIdError),
    #[error("topic {name} is internal to the broker: {reason}")]
    InternalTopic { name: String, reason: &'static str },
    #[error(transparent)]
    Acl(#[from] crate::acl::AclError),
    #[error("group record: {0}")]
    GroupRecord(#[from] crate::groups::records::RecordError),
    #[error("transaction record: {0}")]
    TxnRecord(#[from] crate::txn::records::TxnRecordError),
}

pub struct Broker {
    pub(crate) store: Store,
    pub(crate) config: BrokerConfig,
    /// Topic changes are serialized by this lock; readers take snapshots.
    pub(crate) catalog: Mutex<Catalog>,
    /// Readers waiting for appends, per partition; created on first wait.
    pub(crate) appends: RwLock<HashMap<TopicPartition, Arc<Event>>>,
    /// Idempotent producers' ids (see `producer_ids`).
    pub(crate) producer_ids: ProducerIds,
    /// The ACLs (see `acl`): read by every authorization, written by Create/DeleteAcls.
    pub(crate) acls: RwLock<crate::acl::AclStore>,
}

impl Broker {
    /// Opens the store and the catalog in `dir`, and reconciles them: partitions of topics
    /// the catalog does not know are removed; partitions the catalog expects are created.
    pub fn open(
        dir: &Path,
        store_config: StoreConfig,
        config: BrokerConfig,
        now_ms: i64,
    ) -> Result<(Broker, RecoveryReport), CoreError> {
        let (store, report) = Store::open(dir, store_config, now_ms)?;
        let catalog = Catalog::open(&dir.join("topics"))?;
        for id in store.partitions() {
            let known = catalog
                .get(&id.topic)
                .is_some_and(|t| id.partition < t.partitions);
            if !known {
                tracing::warn!(partition = %id, "removing a partition no topic owns");
                store.delete_partition(&id)?;
            }
        }
        let present: Vec<TopicPartition> = store.partitions();
        for topic in catalog.all() {
            for partition in 0..topic.partitions {
                let id = TopicPartition::new(topic.name.clone(), partition);
                if !present.contains(&id) {
                    store.create_partition(&id, topic.config.clone())?;
                }
            }
        }
        let broker = Broker {
            store,
            config,
            catalog: Mutex::new(catalog),
            appends: RwLock::new(HashMap::new()),
            producer_ids: ProducerIds::open(dir)?,
            acls: RwLock::new(crate::acl::AclStore::open(dir)?),
        };
        Ok((broker, report))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Checkpoints and closes the store.
    pub fn close(self, now_ms: i64) -> Result<(), CoreError> {
        Ok(self.store.close(now_ms)?)
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        self.catalog().all().cloned().collect()
    }

    pub fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.catalog().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: TopicId) -> Option<TopicInfo> {
        self.catalog().all().find(|t| t.id == id).cloned()
    }

    /// Creates a topic of `partitions` partitions with the given settings (Kafka names).
    /// Nothing is created when any setting is invalid. With `validate_only`, only checks.
    pub fn create_topic(
        &self,
        name: &str,
        id: TopicId,
        partitions: i32,
        configs: &[(String, String)],
        validate_only: bool,
    ) -> Result<TopicInfo, CoreError> {
        // The coordinator creates its topic with the layout it needs (`group_log`); one
        // made by a client first would have the wrong partitions and settings.
        refuse_internal(name, "it is created by the broker")?;
        self.create_topic_as_broker(name, id, partitions, configs, validate_only)
    }

    /// [`Broker::create_topic`] without the refusal of internal names.
    pub(crate) fn create_topic_as_broker(
        &self,
        name: &str,
        id: TopicId,
        partitions: i32,
        configs: &[(String, String)],
        validate_only: bool,
    ) -> Result<TopicInfo, CoreError> {
        weir_storage::store::validate_topic_name(name)?;
        check_partition_count(partitions)?;
        let config =
            TopicConfig::from_pairs(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let overrides: BTreeMap<String, String> = configs.iter().cloned().collect();
        let mut catalog = self.catalog();
        if catalog.get(name).is_some() {
            return Err(CoreError::TopicExists(name.to_string()));
        }
        let topic = TopicInfo {
            name: name.to_string(),
            id,
            partitions,
            config,
            overrides,
        };
        if validate_only {
            return Ok(topic);
        }
        for partition in 0..partitions {
            let id = TopicPartition::new(name, partition);
            self.store.create_partition(&id, topic.config.clone())?;
        }
        catalog.put(topic.clone())?;
        Ok(topic)
    }

    /// Creates `name` with the default partition count if auto-creation is on and it does
    /// not exist. Returns the topic, or None when it does not exist and may not be created.
    pub fn topic_or_auto_create(
        &self,
        name: &str,
        id: TopicId,
    ) -> Result<Option<TopicInfo>, CoreError> {
        if let Some(topic) = self.topic(name) {
            return Ok(Some(topic));
        }
        if name == crate::txn_log::TXN_TOPIC {
            // Asking for it by name makes it, with the layout the coordinator needs.
            return self.ensure_txn_topic(id).map(Some);
        }
        if crate::group_log::is_internal_topic(name) {
            return self.ensure_group_topic(id).map(Some);
        }
        if !self.config.auto_create_topics {
            return Ok(None);
        }
        match self.create_topic(name, id, self.config.num_partitions, &[], false) {
            Ok(topic) => Ok(Some(topic)),
            // Created meanwhile by another request.
            Err(CoreError::TopicExists(_)) => Ok(self.topic(name)),
            Err(error) => Err(error),
        }
    }

    /// Deletes a topic and all its data.
    pub fn delete_topic(&self, name: &str) -> Result<TopicInfo, CoreError> {
        refuse_internal(name, "it cannot be deleted")?;
        let mut catalog = self.catalog();
        let topic = catalog
            .get(name)
            .cloned()
            .ok_or_else(|| CoreError::UnknownTopic(name.to_string()))?;
        catalog.remove(name)?;
        for partition in 0..topic.partitions {
            let id = TopicPartition::new(name, partition);
            self.store.delete_partition(&id)?;
            // Wake readers so they see the partition is gone.
            if let Some(event) = self.appends_event_if(&id) {
                event.notify(usize::MAX);
            }
        }
        Ok(topic)
    }

    /// Grows a topic to `total` partitions (Kafka's CreatePartitions; never shrinks).
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<TopicInfo, CoreError> {
        check_partition_count(total)?;
        refuse_internal(name, "its partition count is fixed")?;
        let mut catalog = self.catalog();
        let mut topic = catalog
            .get(name)
            .cloned()
            .ok_or_else(|| CoreError::UnknownTopic(name.to_string()))?;
        if total <= topic.partitions {
            return Err(CoreError::InvalidPartitions {
                count: total,
                reason: "a topic's partition count can only grow",
            });
        }
        if validate_only {
            topic.partitions = total;
            return Ok(topic);
        }
        for partition in topic.partitions..total {
            self.store
                .create_partition(&TopicPartition::new(name, partition), topic.config.clone())?;
        }
        topic.partitions = total;
        catalog.put(topic.clone())?;
        Ok(topic)
    }

    /// Replaces the topic's explicit settings with `overrides` (everything else returns to
    /// its default) and applies them to every partition at once.
    pub fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<TopicInfo, CoreError> {
        let config =
            TopicConfig::from_pairs(overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let mut catalog = self.catalog();
        let mut topic = catalog
            .get(name)
            .cloned()
            .ok_or_else(|| CoreError::UnknownTopic(name.to_string()))?;
        topic.config = config;
        topic.overrides = overrides;
        if validate_only {
            return Ok(topic);
        }
        for partition in 0..topic.partitions {
            self.store
                .set_topic_config(&TopicPartition::new(name, partition), topic.config.clone())?;
        }
        catalog.put(topic.clone())?;
        Ok(topic)
    }

    /// Appends `records` (client batches) to a partition and wakes its waiting readers.
    pub fn append(
        &self,
        id: &TopicPartition,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Appended, CoreError> {
        let appended = self
            .store
            .append(id, records, now_ms)
            .map_err(|e| match e {
                StoreError::UnknownPartition(id) => CoreError::UnknownPartition(id),
                other => CoreError::Store(other),
            })?;
        if let Some(event) = self.appends_event_if(id) {
            event.notify(usize::MAX);
        }
        Ok(appended)
    }

    /// A listener that fires on the next append to `id` (or its deletion). Take it
    /// *before* checking for data, then await it, so no append slips between.
    pub fn listen_appends(&self, id: &TopicPartition) -> EventListener {
        if let Some(event) = self.appends_event_if(id) {
            return event.listen();
        }
        let mut appends = self.appends.write().unwrap_or_else(|e| e.into_inner());
        appends
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Event::new()))
            .listen()
    }

    /// Wakes the readers waiting on `id` (after a write that is not a client append: a
    /// transaction marker moves the last stable offset).
    pub(crate) fn wake_readers(&self, id: &TopicPartition) {
        if let Some(event) = self.appends_event_if(id) {
            event.notify(usize::MAX);
        }
    }

    fn appends_event_if(&self, id: &TopicPartition) -> Option<Arc<Event>> {
        self.appends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// Internal topics (the group log) keep their data and partition count whatever clients ask.
fn refuse_internal(name: &str, reason: &'static str) -> Result<(), CoreError> {
    if crate::group_log::is_internal_topic(name) {
        return Err(CoreError::InternalTopic {
            name: name.to_string(),
            reason,
        });
    }
    Ok(())
}

fn check_partition_count(count: i32) -> Result<(), CoreError> {
    if count < 1 {
        return Err(CoreError::InvalidPartitions {
            count,
            reason: "must be at least 1",
        });
    }
    if count > PARTITIONS_PER_TOPIC_MAX {
        return Err(CoreError::InvalidPartitions {
            count,
            reason: "more than 10,000 partitions",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_listener::Listener;
    use weir_storage::batch::BatchBuilder;

    fn open(dir: &Path) -> Broker {
        Broker::open(dir, StoreConfig::default(), BrokerConfig::default(), 0)
            .expect("open")
            .0
    }

    fn one_record() -> Vec<u8> {
        let mut builder = BatchBuilder::new(0, 1);
        builder.push(1, None, Some(b"v"), &[]);
        builder.build()
    }

    #[test]
    fn topics_are_created_altered_grown_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = TopicId([1; 16]);
        {
            let broker = open(dir.path());
            let configs = vec![("retention.ms".to_string(), "1000".to_string())];
            broker
                .create_topic("t", id, 2, &configs, false)
                .expect("create");
            assert!(matches!(
                broker.create_topic("t", id, 2, &[], false),
                Err(CoreError::TopicExists(_))
            ));
            let bad = vec![("retention.ms".to_string(), "soon".to_string())];
            assert!(broker.create_topic("u", id, 2, &bad, false).is_err());
            assert!(
                broker.topic("u").is_none(),
                "an invalid config creates nothing"
            );
            broker.create_partitions("t", 3, false).expect("grow");
            assert!(broker.create_partitions("t", 2, false).is_err());
            broker
                .append(&TopicPartition::new("t", 2), &one_record(), 0)
                .expect("append");
        }
        let broker = open(dir.path());
        let topic = broker.topic("t").expect("persisted");
        assert_eq!((topic.id, topic.partitions), (id, 3));
        assert_eq!(topic.config.partition.retention_ms, 1000);
        assert_eq!(
            broker.topic_by_id(id).map(|t| t.name),
            Some("t".to_string())
        );
        broker.delete_topic("t").expect("delete");
        assert!(broker.store().partitions().is_empty());
        assert!(broker.topic("t").is_none());
    }

    #[test]
    fn auto_creation_follows_the_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = open(dir.path());
        let topic = broker
            .topic_or_auto_create("auto", TopicId([2; 16]))
            .expect("ok")
            .expect("created");
        assert_eq!(topic.partitions, 4);
        let off = BrokerConfig {
            auto_create_topics: false,
            ..BrokerConfig::default()
        };
        let dir2 = tempfile::tempdir().expect("tempdir");
        let broker = Broker::open(dir2.path(), StoreConfig::default(), off, 0)
            .expect("open")
            .0;
        assert!(
            broker
                .topic_or_auto_create("auto", TopicId([2; 16]))
                .expect("ok")
                .is_none()
        );
    }

    #[test]
    fn appends_wake_listeners() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = open(dir.path());
        broker
            .create_topic("w", TopicId([3; 16]), 1, &[], false)
            .expect("create");
        let id = TopicPartition::new("w", 0);
        let listener = broker.listen_appends(&id);
        broker.append(&id, &one_record(), 0).expect("append");
        // A notified listener completes without blocking.
        listener.wait();
    }
}
