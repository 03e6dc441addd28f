//! The store's public API: appends through the WAL into partition logs, reads, offsets,
//! configs, and what survives a reopen.

use weir_storage::batch::{self, BatchBuilder, BatchHeader, Compression, TimestampType};
use weir_storage::message::{KEYS_HEADER, TAG_HEADER, tag_hash};
use weir_storage::store::{Store, StoreConfig, StoreError, TopicPartition};
use weir_storage::topic_config::{FlushPolicy, TopicConfig};

const NOW: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, StoreConfig::default(), NOW)
        .expect("store opens")
        .0
}

fn batch(values: &[&str], timestamp: i64) -> Vec<u8> {
    let mut builder = BatchBuilder::new(0, timestamp);
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        builder.push(
            timestamp + i as i64,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[],
        );
    }
    builder.build()
}

/// Every record (offset, value) of the partition from `from`, through `Store::read`.
fn read_all(store: &Store, id: &TopicPartition, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while let Some(slice) = store.read(id, offset, 1 << 20).expect("read") {
        let bytes = slice.read_to_vec().expect("read slice");
        let mut pos = 0;
        while pos < bytes.len() {
            let header = BatchHeader::parse(&bytes[pos..]).expect("stored header");
            let one = &bytes[pos..pos + header.total_len()];
            batch::check_crc(one).expect("stored CRC");
            for record in batch::decode_records(one).expect("stored records") {
                let record_offset = header.base_offset + i64::from(record.offset_delta);
                if record_offset >= offset {
                    out.push((record_offset, record.value.unwrap_or_default()));
                }
            }
            pos += header.total_len();
        }
        offset = slice.last_offset + 1;
    }
    out
}

#[test]
fn appends_are_stamped_read_back_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = TopicPartition::new("orders", 0);
    {
        let store = open(dir.path());
        store
            .create_partition(&id, TopicConfig::default())
            .expect("create");
        let first = store
            .append(&id, &batch(&["a", "b"], NOW), NOW)
            .expect("append");
        assert_eq!((first.base_offset, first.last_offset), (0, 1));
        let second = store
            .append_durable(&id, &batch(&["c"], NOW), NOW)
            .expect("append");
        assert_eq!((second.base_offset, second.last_offset), (2, 2));
        let offsets = store.offsets(&id).expect("offsets");
        assert_eq!((offsets.log_start_offset, offsets.high_watermark), (0, 3));
        store.close(NOW).expect("close");
    }
    let store = open(dir.path());
    assert_eq!(store.partitions(), vec![id.clone()]);
    let values = read_all(&store, &id, 0);
    assert_eq!(
        values,
        vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]
    );
    let third = store
        .append(&id, &batch(&["d"], NOW), NOW)
        .expect("append after reopen");
    assert_eq!(third.base_offset, 3);
}

#[test]
fn several_batches_in_one_append_get_consecutive_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("t", 0);
    store
        .create_partition(&id, TopicConfig::default())
        .expect("create");
    let mut records = batch(&["a", "b", "c"], NOW);
    records.extend(batch(&["d"], NOW));
    let appended = store.append(&id, &records, NOW).expect("append");
    assert_eq!((appended.base_offset, appended.last_offset), (0, 3));
    let offsets: Vec<i64> = read_all(&store, &id, 0)
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3]);
}

#[test]
fn invalid_batches_never_reach_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("t", 0);
    store
        .create_partition(&id, TopicConfig::default())
        .expect("create");
    let wal_before = store.wal().last_log_id();
    let mut corrupt = batch(&["value"], NOW);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(
        store.append(&id, &corrupt, NOW),
        Err(StoreError::Batch(_))
    ));
    assert!(matches!(
        store.append(&id, &corrupt[..30], NOW),
        Err(StoreError::Batch(_))
    ));
    assert!(matches!(
        store.append(&id, &[], NOW),
        Err(StoreError::Batch(_))
    ));
    assert_eq!(
        store.wal().last_log_id(),
        wal_before,
        "nothing was written to the WAL"
    );
    assert_eq!(store.offsets(&id).expect("offsets").log_end_offset, 0);
    let unknown = TopicPartition::new("nope", 0);
    assert!(matches!(
        store.append(&unknown, &batch(&["x"], NOW), NOW),
        Err(StoreError::UnknownPartition(_))
    ));
}

#[test]
fn max_message_bytes_is_enforced_per_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("small", 0);
    let config = TopicConfig::from_pairs([("max.message.bytes", "200")]).expect("config");
    store.create_partition(&id, config).expect("create");
    let big = "x".repeat(300);
    let err = store
        .append(&id, &batch(&[&big], NOW), NOW)
        .expect_err("too large");
    assert!(
        matches!(err, StoreError::MessageTooLarge { max: 200, .. }),
        "{err}"
    );
    store
        .append(&id, &batch(&["small"], NOW), NOW)
        .expect("a small batch fits");
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("lat", 0);
    let config =
        TopicConfig::from_pairs([("message.timestamp.type", "LogAppendTime")]).expect("config");
    store.create_partition(&id, config).expect("create");
    let appended = store
        .append(&id, &batch(&["a"], 5), NOW + 7)
        .expect("append");
    assert_eq!(appended.log_append_time_ms, Some(NOW + 7));
    let slice = store.read(&id, 0, 1 << 20).expect("read").expect("data");
    let header = BatchHeader::parse(&slice.read_to_vec().expect("bytes")).expect("header");
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp, NOW + 7);
}

#[test]
fn compressed_batches_are_stored_as_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("z", 0);
    store
        .create_partition(&id, TopicConfig::default())
        .expect("create");
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut builder = BatchBuilder::new(0, NOW).compression(codec);
        builder.push(NOW, Some(b"k"), Some(&[7u8; 500]), &[]);
        let sent = builder.build();
        let appended = store.append(&id, &sent, NOW).expect("append");
        let slice = store
            .read(&id, appended.base_offset, 1)
            .expect("read")
            .expect("data");
        let stored = slice.read_to_vec().expect("bytes");
        assert_eq!(
            stored[8..],
            sent[8..],
            "{codec:?}: bytes after the base offset unchanged"
        );
    }
}

#[test]
fn reads_outside_the_log_are_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("t", 0);
    store
        .create_partition(&id, TopicConfig::default())
        .expect("create");
    store
        .append(&id, &batch(&["a", "b"], NOW), NOW)
        .expect("append");
    assert!(
        store
            .read(&id, 2, 100)
            .expect("at the high watermark")
            .is_none()
    );
    assert!(store.read(&id, 3, 100).is_err(), "past the log end");
    assert!(store.read(&id, -1, 100).is_err(), "before the log start");
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = TopicPartition::new("t", 0);
    {
        let store = open(dir.path());
        store
            .create_partition(&id, TopicConfig::default())
            .expect("create");
        for _ in 0..5 {
            store
                .append(&id, &batch(&["a", "b"], NOW), NOW)
                .expect("append");
        }
        assert_eq!(store.delete_records(&id, 4).expect("delete records"), 4);
        assert!(
            store.delete_records(&id, 11).is_err(),
            "past the high watermark"
        );
        // No clean close: the WAL and partition meta must carry it.
    }
    let store = open(dir.path());
    assert_eq!(store.offsets(&id).expect("offsets").log_start_offset, 4);
    assert!(store.read(&id, 3, 100).is_err());
    assert_eq!(read_all(&store, &id, 4).first().map(|(o, _)| *o), Some(4));
    assert_eq!(
        store
            .delete_records(&id, -1)
            .expect("to the high watermark"),
        10
    );
}

#[test]
fn a_recreated_partition_does_not_replay_its_predecessor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = TopicPartition::new("again", 0);
    {
        let store = open(dir.path());
        store
            .create_partition(&id, TopicConfig::default())
            .expect("create");
        store
            .append(&id, &batch(&["old1", "old2"], NOW), NOW)
            .expect("append");
        store.delete_partition(&id).expect("delete");
        store
            .create_partition(&id, TopicConfig::default())
            .expect("create again");
        store
            .append(&id, &batch(&["new"], NOW), NOW)
            .expect("append");
        // Dropped without a checkpoint: reopening replays the whole WAL.
    }
    let store = open(dir.path());
    let values: Vec<_> = read_all(&store, &id, 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, vec![b"new".to_vec()]);
}

#[test]
fn topic_configs_persist_and_change_live() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = TopicPartition::new("cfg", 1);
    {
        let store = open(dir.path());
        let config = TopicConfig::from_pairs([("flush.policy", "sync"), ("retention.ms", "1000")])
            .expect("config");
        store.create_partition(&id, config).expect("create");
        let mut changed = store.topic_config(&id).expect("config");
        changed.set("retention.ms", "5000").expect("set");
        store.set_topic_config(&id, changed).expect("alter");
        store.close(NOW).expect("close");
    }
    let store = open(dir.path());
    let config = store.topic_config(&id).expect("config");
    assert_eq!(config.flush, FlushPolicy::Sync);
    assert_eq!(config.partition.retention_ms, 5000);
    assert!(matches!(
        store.create_partition(&id, TopicConfig::default()),
        Err(StoreError::PartitionExists(_))
    ));
    assert!(
        store
            .create_partition(&TopicPartition::new("bad/name", 0), TopicConfig::default())
            .is_err()
    );
}

#[test]
fn keys_and_tags_are_found_through_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let id = TopicPartition::new("rmq", 0);
    store
        .create_partition(&id, TopicConfig::default())
        .expect("create");
    for i in 0..20 {
        let mut builder = BatchBuilder::new(0, NOW + i);
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        let keys = format!("order-{i} shared");
        builder.push(
            NOW + i,
            Some(format!("key-{i}").as_bytes()),
            Some(b"v"),
            &[
                (TAG_HEADER, Some(tag.as_bytes())),
                (KEYS_HEADER, Some(keys.as_bytes())),
            ],
        );
        store.append(&id, &builder.build(), NOW).expect("append");
    }
    assert_eq!(
        store.find_by_key(&id, b"key-7", None, 10).expect("lookup"),
        vec![7]
    );
    assert_eq!(
        store
            .find_by_key(&id, b"order-3", None, 10)
            .expect("lookup"),
        vec![3]
    );
    assert_eq!(
        store
            .find_by_key(&id, b"shared", None, 5)
            .expect("lookup")
            .len(),
        5
    );
    assert!(
        store
            .find_by_key(&id, b"absent", None, 10)
            .expect("lookup")
            .is_empty()
    );
    let tagged = store
        .find_by_tags(&id, 5, &[tag_hash("TagB")], 100)
        .expect("tags");
    assert_eq!(tagged, vec![5, 7, 9, 11, 13, 15, 17, 19]);
}
