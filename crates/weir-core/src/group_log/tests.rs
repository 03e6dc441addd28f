use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use weir_storage::store::StoreConfig;

use super::*;
use crate::BrokerConfig;
use crate::groups::offsets::OffsetTable;
use crate::groups::{ClassicGroupSnapshot, ClassicMemberSnapshot, OffsetValue};

const ID: TopicId = TopicId([7; 16]);
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

fn open(dir: &Path) -> Broker {
    Broker::open(dir, StoreConfig::default(), BrokerConfig::default(), 0)
        .expect("open")
        .0
}

fn offset(group: &str, topic: &str, partition: i32, at: i64) -> GroupRecord {
    GroupRecord::Offset {
        group: group.into(),
        topic: topic.into(),
        partition,
        value: Some(OffsetValue {
            offset: at,
            leader_epoch: -1,
            metadata: format!("m{at}"),
            commit_timestamp_ms: at,
        }),
    }
}

fn classic(group: &str, generation_id: i32) -> GroupRecord {
    GroupRecord::Classic {
        group: group.into(),
        value: Some(ClassicGroupSnapshot {
            protocol_type: "consumer".into(),
            generation_id,
            protocol_name: Some("range".into()),
            leader: Some("m".into()),
            state_timestamp_ms: 5,
            members: vec![ClassicMemberSnapshot {
                member_id: "m".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        }),
    }
}

/// The state replaying `records` leaves: offsets, plus the last value per group record.
fn state(records: &[GroupRecord]) -> (OffsetTable, BTreeMap<String, GroupRecord>) {
    let mut offsets = OffsetTable::new();
    let mut groups = BTreeMap::new();
    for record in records {
        match record {
            GroupRecord::Offset { .. } => offsets.apply(record),
            GroupRecord::Classic { group, value: None } => {
                groups.remove(&format!("classic/{group}"));
            }
            GroupRecord::Consumer { group, value: None } => {
                groups.remove(&format!("consumer/{group}"));
            }
            GroupRecord::Classic { group, .. } => {
                groups.insert(format!("classic/{group}"), record.clone());
            }
            GroupRecord::Consumer { group, .. } => {
                groups.insert(format!("consumer/{group}"), record.clone());
            }
            GroupRecord::TxnOffset { .. } => {}
        }
    }
    (offsets, groups)
}

#[test]
fn group_partition_follows_kafkas_rule() {
    // Java: "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Utils.abs maps to 0.
    assert_eq!(group_partition("polygenelubricants"), 0);
    // "my-group".hashCode() == -1906497762; 1906497762 % 50 == 12.
    assert_eq!(group_partition("my-group"), 12);
    // "console-consumer-1".hashCode() == 35782224.
    assert_eq!(group_partition("console-consumer-1"), 24);
    assert_eq!(group_partition(""), 0);
    for group in ["a", "é😀", "x.y-z_0"] {
        assert!((0..OFFSETS_TOPIC_PARTITIONS).contains(&group_partition(group)));
    }
    assert!(is_internal_topic(GROUP_TOPIC));
    assert!(!is_internal_topic("orders"));
}

#[test]
fn the_group_topic_is_created_once_with_its_settings_and_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    let topic = broker.ensure_group_topic(ID).expect("created");
    assert_eq!(topic.partitions, OFFSETS_TOPIC_PARTITIONS);
    assert!(topic.config.partition.cleanup_policy.compact);
    assert!(!topic.config.partition.cleanup_policy.delete);
    assert_eq!(topic.config.flush, FlushPolicy::Sync);
    assert_eq!(
        topic.config.max_message_bytes as usize,
        GROUP_RECORD_MAX_BYTES
    );
    assert_eq!(
        broker
            .ensure_group_topic(TopicId([8; 16]))
            .expect("kept")
            .id,
        ID,
        "an existing topic keeps its id"
    );
    // A client changes a setting the log depends on; the next ensure puts it back and
    // keeps the other overrides.
    let mut overrides = topic.overrides.clone();
    overrides.insert("flush.policy".into(), "async".into());
    overrides.insert("delete.retention.ms".into(), "1000".into());
    broker
        .set_topic_overrides(GROUP_TOPIC, overrides, false)
        .expect("altered");
    let restored = broker.ensure_group_topic(ID).expect("restored");
    assert_eq!(restored.config.flush, FlushPolicy::Sync);
    assert_eq!(restored.config.partition.delete_retention_ms, 1000);
}

#[test]
fn clients_cannot_delete_or_grow_the_group_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    broker.ensure_group_topic(ID).expect("created");
    assert!(matches!(
        broker.delete_topic(GROUP_TOPIC),
        Err(CoreError::InternalTopic { .. })
    ));
    assert!(matches!(
        broker.create_partitions(GROUP_TOPIC, 60, false),
        Err(CoreError::InternalTopic { .. })
    ));
    assert_eq!(
        broker.topic(GROUP_TOPIC).map(|t| t.partitions),
        Some(OFFSETS_TOPIC_PARTITIONS)
    );
}

#[test]
fn a_group_topic_of_another_partition_count_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    assert!(
        matches!(
            broker.create_topic(GROUP_TOPIC, ID, 3, &[], false),
            Err(CoreError::InternalTopic { .. })
        ),
        "clients cannot create it"
    );
    // One left by an older broker (or made by hand) with the wrong layout.
    broker
        .create_topic_as_broker(GROUP_TOPIC, ID, 3, &[], false)
        .expect("created by hand");
    assert!(matches!(
        broker.ensure_group_topic(ID),
        Err(CoreError::InternalTopic { .. })
    ));
}

#[test]
fn records_of_many_groups_replay_the_same_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut written = Vec::new();
    {
        let broker = open(dir.path());
        assert!(
            broker.replay_group_records().expect("replay").is_empty(),
            "no topic, no records"
        );
        broker.ensure_group_topic(ID).expect("created");
        assert_eq!(broker.append_group_records(&[], 0).expect("nothing"), None);
        for round in 0..3i64 {
            let mut records = Vec::new();
            for g in 0..40 {
                let group = format!("group-{g}");
                records.push(offset(&group, "t", g % 3, round));
                records.push(classic(&group, round as i32));
                if g % 7 == 0 {
                    records.push(GroupRecord::Consumer {
                        group: group.clone(),
                        value: Some(format!("{{\"epoch\":{round}}}").into_bytes()),
                    });
                }
                if round == 2 && g % 5 == 0 {
                    records.push(GroupRecord::Offset {
                        group: group.clone(),
                        topic: "t".into(),
                        partition: g % 3,
                        value: None,
                    });
                    records.push(GroupRecord::Classic {
                        group: group.clone(),
                        value: None,
                    });
                }
            }
            let appended = broker
                .append_group_records(&records, 1_000 + round)
                .expect("appended")
                .expect("something appended");
            assert_eq!(appended.flush, FlushPolicy::Sync);
            broker.store().wait_durable(&appended).expect("durable");
            written.extend(records);
        }
        let replayed = broker.replay_group_records().expect("replay");
        assert_eq!(state(&replayed), state(&written));
        broker.close(10_000).expect("close");
    }
    let broker = open(dir.path());
    let mut replayed = Vec::new();
    let counts = broker
        .for_each_group_record(|record| replayed.push(record))
        .expect("replay");
    assert_eq!(counts.records as usize, written.len());
    assert_eq!((counts.unknown, counts.invalid), (0, 0));
    let (offsets, groups) = state(&replayed);
    assert_eq!((offsets.clone(), groups.clone()), state(&written));
    assert_eq!(
        offsets.group_count(),
        32,
        "8 of 40 groups lost their offset"
    );
    assert!(groups.contains_key("consumer/group-7"));
    assert!(!groups.contains_key("classic/group-5"));
    // Per group, records come back in the order written.
    let of_group_1: Vec<&GroupRecord> = replayed
        .iter()
        .filter(|r| r.group() == "group-1" && matches!(r, GroupRecord::Classic { .. }))
        .collect();
    assert_eq!(
        of_group_1,
        vec![
            &classic("group-1", 0),
            &classic("group-1", 1),
            &classic("group-1", 2)
        ]
    );
}

#[test]
fn each_group_lands_in_its_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    broker.ensure_group_topic(ID).expect("created");
    broker
        .append_group_records(&[offset("my-group", "t", 0, 1), classic("my-group", 1)], 0)
        .expect("appended");
    for partition in 0..OFFSETS_TOPIC_PARTITIONS {
        let end = broker
            .store()
            .offsets(&TopicPartition::new(GROUP_TOPIC, partition))
            .expect("offsets")
            .log_end_offset;
        assert_eq!(
            end,
            if partition == 12 { 2 } else { 0 },
            "partition {partition}"
        );
    }
}

#[test]
fn compaction_keeps_the_last_record_per_key_and_drops_tombstones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    let topic = broker.ensure_group_topic(ID).expect("created");
    // Small segments so compaction (which rewrites sealed segments only) has work.
    let mut overrides = topic.overrides.clone();
    overrides.insert("segment.bytes".into(), "1024".into());
    broker
        .set_topic_overrides(GROUP_TOPIC, overrides, false)
        .expect("altered");
    let partition = TopicPartition::new(GROUP_TOPIC, group_partition("g"));
    let mut written = Vec::new();
    for round in 0..50 {
        let mut records = vec![offset("g", "t", 0, round)];
        if round < 40 {
            records.push(offset("g", "t", 1, round));
        }
        if round == 20 {
            records.push(classic("g", 1));
        }
        if round == 30 {
            records.push(GroupRecord::Classic {
                group: "g".into(),
                value: None,
            });
        }
        if round == 40 {
            records.push(GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
                value: None,
            });
        }
        broker.append_group_records(&records, 0).expect("appended");
        written.extend(records);
    }
    let size_before = broker.store().size_bytes(&partition).expect("size");
    // Past delete.retention.ms, so the tombstones go too.
    broker.store().maintain(2 * DAY_MS).expect("compacted");
    let size_after = broker.store().size_bytes(&partition).expect("size");
    assert!(
        size_after < size_before / 2,
        "compaction shrank the log: {size_before} -> {size_after}"
    );
    let replayed = broker.replay_group_records().expect("replay");
    assert!(
        replayed.len() < written.len() / 4,
        "{} records left",
        replayed.len()
    );
    let (offsets, groups) = state(&replayed);
    assert_eq!((offsets.clone(), groups), state(&written));
    assert_eq!(offsets.get("g", "t", 0).map(|v| v.offset), Some(49));
    assert_eq!(offsets.get("g", "t", 1), None);
    assert!(
        !replayed.iter().any(|r| match r {
            GroupRecord::Classic { .. } => true,
            GroupRecord::Offset { partition, .. } => *partition == 1,
            GroupRecord::Consumer { .. } | GroupRecord::TxnOffset { .. } => false,
        }),
        "deleted keys are gone, tombstones included"
    );
}

#[test]
fn replay_skips_and_counts_records_it_cannot_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    broker.ensure_group_topic(ID).expect("created");
    let mut builder = BatchBuilder::new(0, 0);
    builder.push(0, Some(&[0x7f, 0x00, 0, 1, b'g']), Some(b"future"), &[]);
    builder.push(0, Some(&[0, 1, 0, 9]), Some(b"cut"), &[]);
    builder.push(0, None, Some(b"no key"), &[]);
    let (key, value) = records::encode(&offset("g", "t", 0, 3));
    builder.push(0, Some(&key), value.as_deref(), &[]);
    broker
        .append(&TopicPartition::new(GROUP_TOPIC, 0), &builder.build(), 0)
        .expect("appended");
    let mut replayed = Vec::new();
    let counts = broker
        .for_each_group_record(|r| replayed.push(r))
        .expect("replay");
    assert_eq!(
        counts,
        GroupReplay {
            records: 1,
            unknown: 1,
            invalid: 2,
        }
    );
    assert_eq!(replayed, vec![offset("g", "t", 0, 3)]);
}

#[test]
fn records_too_large_or_unencodable_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    broker.ensure_group_topic(ID).expect("created");
    let huge = GroupRecord::Consumer {
        group: "big".into(),
        value: Some(vec![0; GROUP_RECORD_MAX_BYTES]),
    };
    let result = broker.append_group_records(&[offset("a", "t", 0, 1), huge], 0);
    assert!(matches!(
        result,
        Err(CoreError::Store(StoreError::MessageTooLarge { .. }))
    ));
    let long_topic = GroupRecord::Offset {
        group: "a".into(),
        topic: "t".repeat(records::STRING_MAX_BYTES + 1),
        partition: 0,
        value: None,
    };
    assert!(matches!(
        broker.append_group_records(&[offset("a", "t", 0, 1), long_topic], 0),
        Err(CoreError::GroupRecord(RecordError::TooLong { .. }))
    ));
    assert!(broker.replay_group_records().expect("replay").is_empty());
}

#[test]
fn appending_without_the_topic_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    assert!(matches!(
        broker.append_group_records(&[offset("a", "t", 0, 1)], 0),
        Err(CoreError::UnknownTopic(_))
    ));
}

#[test]
fn appends_are_split_by_batch_and_append_size_in_order() {
    let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0u8..10)
        .map(|i| (vec![i; 10], Some(vec![i; 100])))
        .collect();
    let one_record = encoded_size(&encoded[0].0, encoded[0].1.as_deref());
    // Two records per batch, and a buffer holds two batches of two.
    let batch_max = 2 * one_record;
    let appends = appends_of(&encoded, 0, batch_max, 700);
    let mut keys = Vec::new();
    for buffer in &appends {
        let mut batches = 0;
        for walked in batch::headers(buffer) {
            let (position, header) = walked.expect("whole batches");
            let bytes = &buffer[position..position + header.total_len()];
            assert!(bytes.len() <= batch_max, "{} > {batch_max}", bytes.len());
            let records = batch::decode_records(bytes).expect("decodes");
            assert!(records.len() <= 2);
            keys.extend(records.into_iter().filter_map(|r| r.key));
            batches += 1;
        }
        assert!(buffer.len() <= 700 || batches == 1);
        batch::validate_client_batches(buffer, 1 << 20).expect("a producer's batches");
    }
    assert!(appends.len() >= 3, "{} appends", appends.len());
    let expected: Vec<Vec<u8>> = encoded.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, expected, "every record, in order");
    assert!(appends_of(&[], 0, batch_max, 700).is_empty());
}
