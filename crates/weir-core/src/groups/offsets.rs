//! [`OffsetTable`]: the committed offsets of every group, and the rules that remove them
//! (deletion by a client, deletion of a topic, expiry under `offsets.retention.minutes`).
//!
//! A pure table: each change returns the [`GroupRecord`]s that make it durable, and
//! [`OffsetTable::apply`] replays those records, so the coordinator may either change the
//! table and write what it returns, or build records, write them, then apply them. The
//! `*_tombstones` and [`OffsetTable::expired`] methods compute without changing anything,
//! for the second order.
//!
//! # What it must never do
//! Read a clock (time is an argument), validate requests (the coordinator checks a group's
//! generation, the metadata size and that a topic exists before committing), or bound its
//! own size: the coordinator bounds offsets per group and groups overall.
//!
//! # Memory
//! One entry costs its topic name and metadata on the heap plus about 120 bytes: the
//! `(String, i32)` key and [`OffsetValue`] (80 bytes together) and the B-tree's share of a
//! node. A group adds its id and about 100 bytes. So a million offsets of 20-byte topic
//! names with empty metadata take about 140 MB.

use std::collections::{BTreeMap, BTreeSet};

use super::OffsetValue;
use super::records::GroupRecord;

/// Offsets of one group, by (topic, partition): sorted, so listings come out in order.
type GroupOffsets = BTreeMap<(String, i32), OffsetValue>;

/// Committed offsets of all groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetTable {
    groups: BTreeMap<String, GroupOffsets>,
    /// Offsets over all groups.
    len: usize,
}

/// What a group's state says about expiring its offsets (Kafka's
/// `offsetExpirationCondition`, KIP-211).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// A group with members (a classic group rebalancing or Stable): nothing expires.
    Active,
    /// A group with members that consume exactly these topics (Kafka: a Stable classic
    /// group of protocol type `consumer`, or any KIP-848 group, whose subscriptions the
    /// broker knows): offsets of other topics expire, each by its commit time. An Empty
    /// KIP-848 group is `Subscribed` to nothing, as Kafka treats it.
    Subscribed(BTreeSet<String>),
    /// An Empty group, empty since the given time: an offset expires once the retention
    /// has passed since the later of that time and its commit.
    EmptySince(i64),
    /// Offsets without a group (a standalone consumer's, committed with generation -1):
    /// each expires by its commit time.
    Standalone,
}

impl OffsetTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `value` for the partition, replacing what the group had committed for it.
    /// Returns the record to write.
    pub fn commit(
        &mut self,
        group: &str,
        topic: &str,
        partition: i32,
        value: OffsetValue,
    ) -> GroupRecord {
        let record = GroupRecord::Offset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
            value: Some(value),
        };
        self.apply(&record);
        record
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&OffsetValue> {
        // Allocates the topic for the lookup: a (String, i32) key cannot be borrowed as
        // (&str, i32). Lookups are per request partition, as cheap as the request's own.
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// The group's offsets, by topic then partition.
    pub fn group_offsets(&self, group: &str) -> impl Iterator<Item = (&str, i32, &OffsetValue)> {
        self.groups
            .get(group)
            .into_iter()
            .flat_map(|offsets| offsets.iter())
            .map(|((topic, partition), value)| (topic.as_str(), *partition, value))
    }

    /// Whether the group has any committed offset.
    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    /// Groups with committed offsets, sorted.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Offsets the group has committed (for the coordinator's per-group bound).
    pub fn offset_count(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, BTreeMap::len)
    }

    /// Offsets over all groups.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Groups with committed offsets.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Removes one committed offset (Kafka's OffsetDelete); the tombstone to write, or
    /// None when there was nothing to remove.
    pub fn delete(&mut self, group: &str, topic: &str, partition: i32) -> Option<GroupRecord> {
        self.get(group, topic, partition)?;
        let record = tombstone(group, topic, partition);
        self.apply(&record);
        Some(record)
    }

    /// Tombstones for every offset of the group, without removing them.
    pub fn group_tombstones(&self, group: &str) -> Vec<GroupRecord> {
        self.group_offsets(group)
            .map(|(topic, partition, _)| tombstone(group, topic, partition))
            .collect()
    }

    /// Removes every offset of the group (Kafka's DeleteGroups); the tombstones to write.
    pub fn delete_group(&mut self, group: &str) -> Vec<GroupRecord> {
        let records = self.group_tombstones(group);
        self.apply_all(&records);
        records
    }

    /// Tombstones for every group's offsets of the topic, without removing them.
    pub fn topic_tombstones(&self, topic: &str) -> Vec<GroupRecord> {
        let mut records = Vec::new();
        for (group, offsets) in &self.groups {
            // Keys sort by topic first: the topic's partitions are one contiguous range.
            let from = (topic.to_string(), i32::MIN);
            records.extend(
                offsets
                    .range(from..)
                    .take_while(|((t, _), _)| t == topic)
                    .map(|((t, partition), _)| tombstone(group, t, *partition)),
            );
        }
        records
    }

    /// Removes every group's offsets of a deleted topic (Kafka drops them with the topic,
    /// so a topic created again under the name starts without them); the tombstones.
    pub fn delete_topic(&mut self, topic: &str) -> Vec<GroupRecord> {
        let records = self.topic_tombstones(topic);
        self.apply_all(&records);
        records
    }

    /// Tombstones for the group's offsets that have expired at `now_ms` under
    /// `retention_ms` (Kafka's `offsets.retention.minutes`), without removing them. An
    /// offset expires once `now_ms - base >= retention_ms`, base being as [`Liveness`]
    /// says; a negative retention never expires anything.
    pub fn expired(
        &self,
        group: &str,
        liveness: &Liveness,
        retention_ms: i64,
        now_ms: i64,
    ) -> Vec<GroupRecord> {
        if retention_ms < 0 {
            return Vec::new();
        }
        let base = |topic: &str, value: &OffsetValue| -> Option<i64> {
            match liveness {
                Liveness::Active => None,
                Liveness::Subscribed(topics) => {
                    (!topics.contains(topic)).then_some(value.commit_timestamp_ms)
                }
                Liveness::EmptySince(since_ms) => Some((*since_ms).max(value.commit_timestamp_ms)),
                Liveness::Standalone => Some(value.commit_timestamp_ms),
            }
        };
        self.group_offsets(group)
            .filter(|(topic, _, value)| {
                base(topic, value).is_some_and(|base| now_ms.saturating_sub(base) >= retention_ms)
            })
            .map(|(topic, partition, _)| tombstone(group, topic, partition))
            .collect()
    }

    /// Removes the group's expired offsets (see [`OffsetTable::expired`]); the tombstones.
    /// When it removes the group's last offset, [`OffsetTable::has_group`] turns false and
    /// an Empty group may go too (Kafka then deletes the group).
    pub fn expire(
        &mut self,
        group: &str,
        liveness: Liveness,
        retention_ms: i64,
        now_ms: i64,
    ) -> Vec<GroupRecord> {
        let records = self.expired(group, &liveness, retention_ms, now_ms);
        self.apply_all(&records);
        records
    }

    /// Applies one record, as replay does: offset commits and their tombstones change the
    /// table; group records are ignored.
    pub fn apply(&mut self, record: &GroupRecord) {
        let GroupRecord::Offset {
            group,
            topic,
            partition,
            value,
        } = record
        else {
            return;
        };
        let key = (topic.clone(), *partition);
        match value {
            Some(value) => {
                let offsets = self.groups.entry(group.clone()).or_default();
                if offsets.insert(key, value.clone()).is_none() {
                    self.len += 1;
                }
            }
            None => {
                let Some(offsets) = self.groups.get_mut(group) else {
                    return;
                };
                if offsets.remove(&key).is_some() {
                    self.len -= 1;
                }
                if offsets.is_empty() {
                    self.groups.remove(group);
                }
            }
        }
    }

    fn apply_all(&mut self, records: &[GroupRecord]) {
        for record in records {
            self.apply(record);
        }
    }
}

fn tombstone(group: &str, topic: &str, partition: i32) -> GroupRecord {
    GroupRecord::Offset {
        group: group.to_string(),
        topic: topic.to_string(),
        partition,
        value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(offset: i64, commit_timestamp_ms: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms,
        }
    }

    fn keys(records: &[GroupRecord]) -> Vec<(String, String, i32, bool)> {
        records
            .iter()
            .map(|r| match r {
                GroupRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                } => (group.clone(), topic.clone(), *partition, value.is_some()),
                other => panic!("not an offset record: {other:?}"),
            })
            .collect()
    }

    fn k(group: &str, topic: &str, partition: i32) -> (String, String, i32, bool) {
        (group.into(), topic.into(), partition, false)
    }

    #[test]
    fn commits_replace_and_list_sorted() {
        let mut table = OffsetTable::new();
        let record = table.commit("g", "b", 1, at(10, 0));
        assert_eq!(
            record,
            GroupRecord::Offset {
                group: "g".into(),
                topic: "b".into(),
                partition: 1,
                value: Some(at(10, 0)),
            }
        );
        table.commit("g", "a", 3, at(1, 0));
        table.commit("g", "b", 0, at(2, 0));
        table.commit("g", "b", 1, at(11, 5));
        assert_eq!(table.get("g", "b", 1), Some(&at(11, 5)));
        assert_eq!(table.get("g", "b", 2), None);
        assert_eq!(table.get("h", "b", 1), None);
        let listed: Vec<(&str, i32, i64)> = table
            .group_offsets("g")
            .map(|(t, p, v)| (t, p, v.offset))
            .collect();
        assert_eq!(listed, vec![("a", 3, 1), ("b", 0, 2), ("b", 1, 11)]);
        assert_eq!((table.len(), table.offset_count("g")), (3, 3));
        assert_eq!(table.group_offsets("none").count(), 0);
    }

    #[test]
    fn groups_are_listed_while_they_have_offsets() {
        let mut table = OffsetTable::new();
        table.commit("z", "t", 0, at(1, 0));
        table.commit("a", "t", 0, at(1, 0));
        assert_eq!(table.groups().collect::<Vec<_>>(), vec!["a", "z"]);
        assert!(table.has_group("a"));
        assert_eq!(table.delete("a", "t", 1), None, "nothing to delete");
        assert_eq!(
            keys(&[table.delete("a", "t", 0).expect("present")]),
            vec![k("a", "t", 0)]
        );
        assert!(!table.has_group("a"), "a group without offsets is gone");
        assert_eq!(table.group_count(), 1);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn deleting_a_group_tombstones_each_offset() {
        let mut table = OffsetTable::new();
        table.commit("g", "t", 0, at(1, 0));
        table.commit("g", "u", 0, at(1, 0));
        table.commit("h", "t", 0, at(1, 0));
        assert_eq!(table.group_tombstones("g").len(), 2);
        assert_eq!(table.len(), 3, "computing tombstones changes nothing");
        let records = table.delete_group("g");
        assert_eq!(keys(&records), vec![k("g", "t", 0), k("g", "u", 0)]);
        assert!(!table.has_group("g"));
        assert!(table.has_group("h"));
        assert!(table.delete_group("g").is_empty());
    }

    #[test]
    fn deleting_a_topic_removes_it_from_every_group_and_no_other_topic() {
        let mut table = OffsetTable::new();
        table.commit("g", "t", 0, at(1, 0));
        table.commit("g", "t", 7, at(1, 0));
        table.commit("g", "t2", 0, at(1, 0));
        table.commit("g", "s", 0, at(1, 0));
        table.commit("h", "t", 1, at(1, 0));
        table.commit("i", "u", 1, at(1, 0));
        let records = table.delete_topic("t");
        assert_eq!(
            keys(&records),
            vec![k("g", "t", 0), k("g", "t", 7), k("h", "t", 1)]
        );
        assert!(table.get("g", "t2", 0).is_some(), "a longer name stays");
        assert!(table.get("g", "s", 0).is_some());
        assert!(!table.has_group("h"));
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn active_groups_keep_their_offsets() {
        let mut table = OffsetTable::new();
        table.commit("g", "t", 0, at(1, 0));
        assert!(table.expire("g", Liveness::Active, 10, i64::MAX).is_empty());
        assert!(table.has_group("g"));
    }

    #[test]
    fn standalone_offsets_expire_each_by_commit_time_at_the_retention_exactly() {
        let mut table = OffsetTable::new();
        table.commit("g", "t", 0, at(1, 100));
        table.commit("g", "t", 1, at(1, 200));
        assert!(table.expire("g", Liveness::Standalone, 50, 149).is_empty());
        assert_eq!(
            keys(&table.expire("g", Liveness::Standalone, 50, 150)),
            vec![k("g", "t", 0)],
            "expired when now - commit == retention"
        );
        assert!(table.expire("g", Liveness::Standalone, 50, 249).is_empty());
        assert_eq!(
            keys(&table.expire("g", Liveness::Standalone, 50, 250)),
            vec![k("g", "t", 1)]
        );
        assert!(!table.has_group("g"));
    }

    #[test]
    fn empty_groups_count_from_the_later_of_emptiness_and_commit() {
        let mut table = OffsetTable::new();
        table.commit("g", "t", 0, at(1, 100)); // before the group emptied at 1_000
        table.commit("g", "t", 1, at(1, 1_500)); // committed while empty
        let empty = || Liveness::EmptySince(1_000);
        assert!(table.expire("g", empty(), 500, 1_499).is_empty());
        assert_eq!(
            keys(&table.expire("g", empty(), 500, 1_500)),
            vec![k("g", "t", 0)]
        );
        assert!(table.expire("g", empty(), 500, 1_999).is_empty());
        assert_eq!(
            keys(&table.expire("g", empty(), 500, 2_000)),
            vec![k("g", "t", 1)]
        );
    }

    #[test]
    fn subscribed_groups_lose_only_offsets_of_other_topics() {
        let mut table = OffsetTable::new();
        table.commit("g", "sub", 0, at(1, 0));
        table.commit("g", "old", 0, at(1, 0));
        let subscribed = Liveness::Subscribed(BTreeSet::from(["sub".to_string()]));
        assert_eq!(
            keys(&table.expire("g", subscribed.clone(), 10, 10)),
            vec![k("g", "old", 0)]
        );
        assert!(table.expire("g", subscribed, 10, i64::MAX).is_empty());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn expiry_edges_do_not_overflow_and_negative_retention_keeps_all() {
        let mut table = OffsetTable::new();
        table.commit("g", "t", 0, at(1, i64::MAX));
        table.commit("g", "t", 1, at(1, i64::MIN));
        assert!(
            table
                .expire("g", Liveness::Standalone, -1, i64::MAX)
                .is_empty()
        );
        // now - MIN saturates to MAX: expired; now - MAX is negative: kept.
        assert_eq!(
            keys(&table.expire("g", Liveness::Standalone, 0, 0)),
            vec![k("g", "t", 1)]
        );
        assert_eq!(table.len(), 1);
        assert!(table.expire("none", Liveness::Standalone, 0, 0).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Commit(u8, u8, i32, i64),
        Delete(u8, u8, i32),
        DeleteGroup(u8),
        DeleteTopic(u8),
        Expire(u8, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..3, 0u8..3, 0i32..3, 0i64..100).prop_map(|(g, t, p, ts)| Op::Commit(g, t, p, ts)),
            (0u8..3, 0u8..3, 0i32..3).prop_map(|(g, t, p)| Op::Delete(g, t, p)),
            (0u8..3).prop_map(Op::DeleteGroup),
            (0u8..3).prop_map(Op::DeleteTopic),
            (0u8..3, 0i64..200).prop_map(|(g, now)| Op::Expire(g, now)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Replaying the records a table returned rebuilds the same table, and the count
        /// always matches the entries.
        #[test]
        fn replaying_the_returned_records_rebuilds_the_table(ops in proptest::collection::vec(op(), 0..60)) {
            let mut table = OffsetTable::new();
            let mut log = Vec::new();
            for op in ops {
                let name = |i: u8| format!("n{i}");
                match op {
                    Op::Commit(g, t, p, ts) => log.push(table.commit(&name(g), &name(t), p, at(ts, ts))),
                    Op::Delete(g, t, p) => log.extend(table.delete(&name(g), &name(t), p)),
                    Op::DeleteGroup(g) => log.extend(table.delete_group(&name(g))),
                    Op::DeleteTopic(t) => log.extend(table.delete_topic(&name(t))),
                    Op::Expire(g, now) => log.extend(table.expire(&name(g), Liveness::Standalone, 50, now)),
                }
                let counted: usize = table.groups().map(|g| table.offset_count(g)).sum();
                prop_assert_eq!(counted, table.len());
                prop_assert!(table.groups().all(|g| table.offset_count(g) > 0));
            }
            let mut replayed = OffsetTable::new();
            for record in &log {
                replayed.apply(record);
            }
            prop_assert_eq!(replayed, table);
        }
    }
}
