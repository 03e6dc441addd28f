//! The group coordinator: every group of this broker behind one lock, and the records that
//! make their state durable.
//!
//! Each call takes the lock, drives the group's state machine, and — still under the lock,
//! so a group's records reach `__consumer_offsets` in the order its state changed — appends
//! the records that change produced. It returns a [`Done`]: the call's own answer, the
//! answers to parked requests the change released, and the append that must be durable
//! before any of them is sent. The front end waits for that, then answers.
//!
//! On open, the coordinator replays `__consumer_offsets`: offsets, classic groups with
//! their members and assignments, KIP-848 groups. Members' sessions restart at the time of
//! opening, so members that outlived the broker carry on without a rebalance.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use weir_storage::store::Appended;

use super::classic::{
    self, ClassicGroup, ClassicState, GroupDescription, JoinError, JoinRequest, LeaveMember, Reply,
    SyncRequest,
};
use super::consumer::{
    ConsumerGroup, ConsumerGroupDescription, ConsumerGroupSnapshot, HeartbeatRequest,
    HeartbeatResponse, TopicsView,
};
use super::offsets::{Liveness, OffsetTable};
use super::records::GroupRecord;
use super::{GroupConfig, GroupError, NAME_MAX_BYTES, OffsetValue, Ticket};
use crate::group_log::{GROUP_TOPIC, is_internal_topic};
use crate::{Broker, CoreError, TopicId};

/// Most groups one coordinator holds (groups with members or with committed offsets):
/// bounds its memory against a client inventing group ids.
pub const GROUPS_MAX: usize = 100_000;

/// How often offsets are checked for expiry (Kafka's offsets.retention.check.interval.ms).
pub const OFFSETS_RETENTION_CHECK_INTERVAL_MS: i64 = 600_000;

/// A call's answer, the parked requests it released, and what must be durable first.
#[derive(Debug)]
pub struct Done<T> {
    pub value: T,
    pub replies: Vec<Reply>,
    /// The last record appended by this call; every reply waits until it is durable.
    pub durable: Option<Appended>,
    /// Appending the records failed: the state is in memory only. Front ends answer what
    /// depended on the write (an offset commit) with an error.
    pub write_failed: bool,
}

/// What happened to one partition of a request.
pub type PartitionResult = Result<(), GroupError>;
/// A topic, a partition, and what happened to it.
pub type PartitionAnswer = (String, i32, PartitionResult);

/// One offset a client commits.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Who commits: the group's member (classic: generation; KIP-848: member epoch), or a
/// standalone consumer (generation -1, no member id).
#[derive(Debug, Clone)]
pub struct Committer {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_or_member_epoch: i32,
}

/// A group as ListGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group_id: String,
    pub protocol_type: String,
    /// Kafka's state name ("Empty", "Stable", …).
    pub state: String,
    /// "classic" or "consumer".
    pub group_type: &'static str,
}

enum Group {
    Classic(ClassicGroup),
    Consumer(ConsumerGroup),
}

/// One group's offsets pending in one transaction, by (topic, partition).
type PendingOffsets = BTreeMap<(String, i32), OffsetValue>;

struct State {
    groups: HashMap<String, Group>,
    offsets: OffsetTable,
    next_expiry_check_ms: i64,
    /// Offsets committed inside open transactions (TxnOffsetCommit), per producer id, then
    /// group: materialized as ordinary offset records when the transaction commits,
    /// dropped when it aborts. Each is a [`GroupRecord::TxnOffset`] in the log until then.
    txn_offsets: HashMap<i64, BTreeMap<String, PendingOffsets>>,
}

/// Partitions with transactional offsets pending at once, over all producers: bounds the
/// memory clients can hold without committing (far above one consumer's assignment).
pub const TXN_OFFSETS_MAX: usize = 1_000_000;

pub struct Coordinator {
    broker: Arc<Broker>,
    config: GroupConfig,
    state: Mutex<State>,
}

/// Records a call produced, appended before the lock is released.
#[derive(Default)]
struct Pending {
    records: Vec<GroupRecord>,
    replies: Vec<Reply>,
}

impl Coordinator {
    /// Rebuilds every group from `__consumer_offsets` (when it exists; it is created on
    /// the first write).
    pub fn open(broker: Arc<Broker>, config: GroupConfig, now_ms: i64) -> Result<Self, CoreError> {
        // Like Kafka, the topic appears on first use (`finish`); one that exists gets its
        // required settings back before it is read.
        let existing = broker.topic(GROUP_TOPIC).is_some();
        if existing {
            broker.ensure_group_topic(fresh_topic_id())?;
        }
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut offsets = OffsetTable::new();
        let mut txn_offsets: HashMap<i64, BTreeMap<String, PendingOffsets>> = HashMap::new();
        let mut undecodable = 0usize;
        let records = if existing {
            broker.replay_group_records()?
        } else {
            Vec::new()
        };
        for record in records {
            match record {
                GroupRecord::Offset { .. } => offsets.apply(&record),
                GroupRecord::TxnOffset { .. } => apply_txn_offset(&mut txn_offsets, &record),
                GroupRecord::Classic { group, value } => match value {
                    Some(snapshot) => {
                        let restored = ClassicGroup::restore(group.clone(), snapshot, now_ms);
                        groups.insert(group, Group::Classic(restored));
                    }
                    None => {
                        groups.remove(&group);
                    }
                },
                GroupRecord::Consumer { group, value } => match value {
                    Some(bytes) => match serde_json::from_slice::<ConsumerGroupSnapshot>(&bytes) {
                        Ok(snapshot) => {
                            let restored = ConsumerGroup::restore(group.clone(), snapshot, now_ms);
                            groups.insert(group, Group::Consumer(restored));
                        }
                        Err(error) => {
                            undecodable += 1;
                            tracing::warn!(%group, %error, "skipping a consumer group record that does not decode");
                        }
                    },
                    None => {
                        groups.remove(&group);
                    }
                },
            }
        }
        tracing::info!(
            groups = groups.len(),
            offsets_groups = offsets.groups().count(),
            undecodable,
            "group coordinator rebuilt from {GROUP_TOPIC}"
        );
        Ok(Coordinator {
            broker,
            config,
            state: Mutex::new(State {
                groups,
                offsets,
                next_expiry_check_ms: now_ms + OFFSETS_RETENTION_CHECK_INTERVAL_MS,
                txn_offsets,
            }),
        })
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends what `pending` holds (under the caller's lock), then — only once written —
    /// applies its offset records to the table, so memory never runs ahead of the log.
    fn finish<T>(
        &self,
        offsets: &mut OffsetTable,
        value: T,
        pending: Pending,
        now_ms: i64,
    ) -> Done<T> {
        let (durable, write_failed) = if pending.records.is_empty() {
            (None, false)
        } else {
            let written = if self.broker.topic(GROUP_TOPIC).is_none() {
                self.broker
                    .ensure_group_topic(fresh_topic_id())
                    .and_then(|_| self.broker.append_group_records(&pending.records, now_ms))
            } else {
                self.broker.append_group_records(&pending.records, now_ms)
            };
            match written {
                Ok(appended) => {
                    for record in &pending.records {
                        offsets.apply(record);
                    }
                    (appended, false)
                }
                Err(error) => {
                    tracing::error!(%error, "writing group records failed");
                    (None, true)
                }
            }
        };
        Done {
            value,
            replies: pending.replies,
            durable,
            write_failed,
        }
    }

    /// The current topics clients may subscribe to (internal topics left out).
    fn topics_view(&self) -> TopicsView {
        let by_name: BTreeMap<_, _> = self
            .broker
            .topics()
            .into_iter()
            .filter(|t| !is_internal_topic(&t.name))
            .map(|t| (t.name, (t.id, t.partitions)))
            .collect();
        TopicsView { by_name }
    }

    // ---- classic protocol -------------------------------------------------------------

    /// JoinGroup: the answer arrives as a [`Reply::Join`] with `ticket`, in this call's
    /// replies or a later call's (when the rebalance completes).
    pub fn join(&self, group_id: &str, req: JoinRequest, ticket: Ticket, now_ms: i64) -> Done<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        let member_id = req.member_id.clone();
        let refuse = |pending: &mut Pending, error: GroupError| {
            pending.replies.push(Reply::Join(
                ticket,
                Err(JoinError {
                    error,
                    member_id: member_id.clone(),
                }),
            ));
        };
        if let Err(error) = check_group_id(group_id) {
            refuse(&mut pending, error);
            return self.finish(&mut state.offsets, (), pending, now_ms);
        }
        if let Some(Group::Consumer(group)) = state.groups.get(group_id) {
            if !group.is_empty() {
                refuse(&mut pending, GroupError::InconsistentGroupProtocol);
                return self.finish(&mut state.offsets, (), pending, now_ms);
            }
            // An empty KIP-848 group turns into a classic one, as Kafka's does.
            state.groups.remove(group_id);
            pending.records.push(GroupRecord::Consumer {
                group: group_id.to_string(),
                value: None,
            });
        }
        if !state.groups.contains_key(group_id) {
            if state.groups.len() >= GROUPS_MAX {
                refuse(&mut pending, GroupError::CoordinatorNotAvailable);
                return self.finish(&mut state.offsets, (), pending, now_ms);
            }
            state.groups.insert(
                group_id.to_string(),
                Group::Classic(ClassicGroup::new(group_id.to_string(), now_ms)),
            );
        }
        if let Some(Group::Classic(group)) = state.groups.get_mut(group_id) {
            let mut effects = classic::Effects::default();
            group.join(req, ticket, &self.config, now_ms, &mut effects);
            absorb_classic(group_id, group, effects, &mut pending);
        }
        self.finish(&mut state.offsets, (), pending, now_ms)
    }

    /// SyncGroup: the answer arrives as a [`Reply::Sync`] with `ticket`.
    pub fn sync(&self, group_id: &str, req: SyncRequest, ticket: Ticket, now_ms: i64) -> Done<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        match state.groups.get_mut(group_id) {
            Some(Group::Classic(group)) => {
                let mut effects = classic::Effects::default();
                group.sync(req, ticket, now_ms, &mut effects);
                absorb_classic(group_id, group, effects, &mut pending);
            }
            Some(Group::Consumer(_)) => pending.replies.push(Reply::Sync(
                ticket,
                Err(GroupError::InconsistentGroupProtocol),
            )),
            None => pending
                .replies
                .push(Reply::Sync(ticket, Err(GroupError::UnknownMemberId))),
        }
        self.finish(&mut state.offsets, (), pending, now_ms)
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        match state.groups.get_mut(group_id) {
            Some(Group::Classic(group)) => {
                group.heartbeat(member_id, group_instance_id, generation_id, now_ms)
            }
            Some(Group::Consumer(_)) => Err(GroupError::InconsistentGroupProtocol),
            None => Err(GroupError::UnknownMemberId),
        }
    }

    /// LeaveGroup: per-member results, or a group-level error.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[LeaveMember],
        now_ms: i64,
    ) -> Done<Result<Vec<Result<(), GroupError>>, GroupError>> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        let value = match state.groups.get_mut(group_id) {
            Some(Group::Classic(group)) => {
                let mut effects = classic::Effects::default();
                let results = group.leave(members, &self.config, now_ms, &mut effects);
                absorb_classic(group_id, group, effects, &mut pending);
                Ok(results)
            }
            Some(Group::Consumer(_)) => Err(GroupError::InconsistentGroupProtocol),
            None => Err(GroupError::UnknownMemberId),
        };
        self.finish(&mut state.offsets, value, pending, now_ms)
    }

    // ---- KIP-848 ----------------------------------------------------------------------

    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        req: HeartbeatRequest,
        now_ms: i64,
    ) -> Done<Result<HeartbeatResponse, GroupError>> {
        let topics = self.topics_view();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        if let Err(error) = check_group_id(group_id) {
            return self.finish(&mut state.offsets, Err(error), pending, now_ms);
        }
        match state.groups.get(group_id) {
            Some(Group::Classic(group)) if !group.is_empty() => {
                return self.finish(
                    &mut state.offsets,
                    Err(GroupError::GroupIdNotFound),
                    pending,
                    now_ms,
                );
            }
            Some(Group::Classic(_)) => {
                // An empty classic group (or one holding only offsets) becomes a KIP-848
                // group, as Kafka converts it.
                state.groups.remove(group_id);
                pending.records.push(GroupRecord::Classic {
                    group: group_id.to_string(),
                    value: None,
                });
            }
            Some(Group::Consumer(_)) => {}
            None if req.member_epoch != 0 => {
                return self.finish(
                    &mut state.offsets,
                    Err(GroupError::UnknownMemberId),
                    pending,
                    now_ms,
                );
            }
            None if state.groups.len() >= GROUPS_MAX => {
                return self.finish(
                    &mut state.offsets,
                    Err(GroupError::CoordinatorNotAvailable),
                    pending,
                    now_ms,
                );
            }
            None => {}
        }
        let group = state
            .groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::Consumer(ConsumerGroup::new(group_id.to_string())));
        let Group::Consumer(group) = group else {
            return self.finish(
                &mut state.offsets,
                Err(GroupError::GroupIdNotFound),
                pending,
                now_ms,
            );
        };
        let (answer, changed) = group.heartbeat(req, &topics, &self.config, now_ms);
        if changed {
            pending.records.push(consumer_record(group_id, group));
        }
        self.finish(&mut state.offsets, answer, pending, now_ms)
    }

    pub fn consumer_describe(
        &self,
        group_ids: &[String],
    ) -> Vec<(String, Result<ConsumerGroupDescription, GroupError>)> {
        let topics = self.topics_view();
        let state = self.lock();
        group_ids
            .iter()
            .map(|id| {
                let described = match state.groups.get(id) {
                    Some(Group::Consumer(group)) => Ok(group.describe(&topics)),
                    _ => Err(GroupError::GroupIdNotFound),
                };
                (id.clone(), described)
            })
            .collect()
    }

    // ---- offsets ----------------------------------------------------------------------

    /// OffsetCommit: per-entry results, or a group-level error. A group that does not
    /// exist accepts commits only from a standalone consumer (generation < 0); otherwise
    /// [`GroupError::GroupIdNotFound`] (Kafka answers ILLEGAL_GENERATION before v9).
    pub fn commit(
        &self,
        group_id: &str,
        committer: &Committer,
        entries: Vec<CommitEntry>,
        now_ms: i64,
    ) -> Done<Result<Vec<(CommitEntry, PartitionResult)>, GroupError>> {
        let topics = self.broker.topics();
        let mut guard = self.lock();
        let state = &mut *guard;
        let pending = Pending::default();
        if let Err(error) = check_group_id(group_id) {
            return self.finish(&mut state.offsets, Err(error), pending, now_ms);
        }
        let checked = match state.groups.get(group_id) {
            Some(Group::Classic(group)) => group.validate_offset_commit(
                &committer.member_id,
                committer.group_instance_id.as_deref(),
                committer.generation_or_member_epoch,
            ),
            Some(Group::Consumer(group)) => group
                .validate_offset_commit(&committer.member_id, committer.generation_or_member_epoch),
            None if committer.generation_or_member_epoch < 0 => {
                if state.offsets.has_group(group_id) || state.groups.len() < GROUPS_MAX {
                    Ok(())
                } else {
                    Err(GroupError::CoordinatorNotAvailable)
                }
            }
            None => Err(GroupError::GroupIdNotFound),
        };
        if let Err(error) = checked {
            return self.finish(&mut state.offsets, Err(error), pending, now_ms);
        }
        let mut pending = pending;
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let metadata = entry.metadata.clone().unwrap_or_default();
            let known = topics
                .iter()
                .any(|t| t.name == entry.topic && (0..t.partitions).contains(&entry.partition));
            let result = if metadata.len() > self.config.offset_metadata_max_bytes {
                Err(GroupError::OffsetMetadataTooLarge)
            } else if !known || is_internal_topic(&entry.topic) {
                Err(GroupError::UnknownTopicOrPartition)
            } else {
                let value = OffsetValue {
                    offset: entry.offset,
                    leader_epoch: entry.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                };
                pending.records.push(GroupRecord::Offset {
                    group: group_id.to_string(),
                    topic: entry.topic.clone(),
                    partition: entry.partition,
                    value: Some(value),
                });
                Ok(())
            };
            results.push((entry, result));
        }
        self.finish(&mut state.offsets, Ok(results), pending, now_ms)
    }

    /// TxnOffsetCommit: holds `entries` pending for `producer_id`'s open transaction (the
    /// transaction coordinator checked it is open and includes the group), each as a
    /// [`GroupRecord::TxnOffset`] in the log, so a restart keeps them. They become ordinary
    /// commits in [`Coordinator::complete_txn`]. Answered once durable, like OffsetCommit.
    pub fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        committer: &Committer,
        entries: Vec<CommitEntry>,
        now_ms: i64,
    ) -> Done<Result<Vec<(CommitEntry, PartitionResult)>, GroupError>> {
        let topics = self.broker.topics();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        if let Err(error) = check_group_id(group_id) {
            return self.finish(&mut state.offsets, Err(error), pending, now_ms);
        }
        // Only a member's own commit is checked; a producer outside the group (generation
        // -1, TxnOffsetCommit before v3) is trusted as Kafka trusts it.
        if committer.generation_or_member_epoch >= 0 {
            let checked = match state.groups.get(group_id) {
                Some(Group::Classic(group)) => group.validate_offset_commit(
                    &committer.member_id,
                    committer.group_instance_id.as_deref(),
                    committer.generation_or_member_epoch,
                ),
                Some(Group::Consumer(group)) => group.validate_offset_commit(
                    &committer.member_id,
                    committer.generation_or_member_epoch,
                ),
                None => Ok(()),
            };
            if let Err(error) = checked {
                return self.finish(&mut state.offsets, Err(error), pending, now_ms);
            }
        }
        let held: usize = state
            .txn_offsets
            .values()
            .flat_map(|groups| groups.values())
            .map(BTreeMap::len)
            .sum();
        let mut results = Vec::with_capacity(entries.len());
        for entry in entries {
            let metadata = entry.metadata.clone().unwrap_or_default();
            let known = topics
                .iter()
                .any(|t| t.name == entry.topic && (0..t.partitions).contains(&entry.partition));
            let result = if metadata.len() > self.config.offset_metadata_max_bytes {
                Err(GroupError::OffsetMetadataTooLarge)
            } else if !known || is_internal_topic(&entry.topic) {
                Err(GroupError::UnknownTopicOrPartition)
            } else if held + pending.records.len() >= TXN_OFFSETS_MAX {
                Err(GroupError::CoordinatorNotAvailable)
            } else {
                pending.records.push(GroupRecord::TxnOffset {
                    group: group_id.to_string(),
                    producer_id,
                    topic: entry.topic.clone(),
                    partition: entry.partition,
                    value: Some(OffsetValue {
                        offset: entry.offset,
                        leader_epoch: entry.leader_epoch,
                        metadata,
                        commit_timestamp_ms: now_ms,
                    }),
                });
                Ok(())
            };
            results.push((entry, result));
        }
        let records = pending.records.clone();
        let done = self.finish(&mut state.offsets, Ok(results), pending, now_ms);
        if !done.write_failed {
            for record in &records {
                apply_txn_offset(&mut state.txn_offsets, record);
            }
        }
        done
    }

    /// A transaction marker reached `__consumer_offsets`: `producer_id`'s pending offsets
    /// (every group's) are written as ordinary commits when `commit`, else dropped; either
    /// way their pending records are tombstoned.
    pub fn complete_txn(&self, producer_id: i64, commit: bool, now_ms: i64) -> Done<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        if let Some(groups) = state.txn_offsets.get(&producer_id) {
            for (group, offsets) in groups {
                for ((topic, partition), value) in offsets {
                    if commit {
                        pending.records.push(GroupRecord::Offset {
                            group: group.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                            value: Some(value.clone()),
                        });
                    }
                    pending.records.push(GroupRecord::TxnOffset {
                        group: group.clone(),
                        producer_id,
                        topic: topic.clone(),
                        partition: *partition,
                        value: None,
                    });
                }
            }
        }
        let done = self.finish(&mut state.offsets, (), pending, now_ms);
        if !done.write_failed {
            state.txn_offsets.remove(&producer_id);
        }
        done
    }

    /// Whether a transaction holds an offset of `group` for the partition pending
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        let state = self.lock();
        let key = (topic.to_string(), partition);
        state
            .txn_offsets
            .values()
            .filter_map(|groups| groups.get(group_id))
            .any(|offsets| offsets.contains_key(&key))
    }

    /// OffsetFetch for one group: the requested partitions (all the group has when `None`),
    /// each with its committed offset if any.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<(String, i32, Option<OffsetValue>)>, GroupError> {
        check_group_id(group_id)?;
        let state = self.lock();
        Ok(match partitions {
            Some(wanted) => wanted
                .into_iter()
                .flat_map(|(topic, partitions)| {
                    let state = &state;
                    partitions.into_iter().map(move |p| {
                        let value = state.offsets.get(group_id, &topic, p).cloned();
                        (topic.clone(), p, value)
                    })
                })
                .collect(),
            None => state
                .offsets
                .group_offsets(group_id)
                .map(|(topic, partition, value)| {
                    (topic.to_string(), partition, Some(value.clone()))
                })
                .collect(),
        })
    }

    /// OffsetDelete: per-partition results, or a group-level error.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
        now_ms: i64,
    ) -> Done<Result<Vec<PartitionAnswer>, GroupError>> {
        let topics = self.topics_view();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        let subscribed: Result<BTreeSet<String>, GroupError> = match state.groups.get(group_id) {
            Some(Group::Classic(group)) if group.is_empty() => Ok(BTreeSet::new()),
            Some(Group::Classic(group)) if group.protocol_type() == "consumer" => {
                Ok(group.subscribed_topics())
            }
            Some(Group::Classic(_)) => Err(GroupError::NonEmptyGroup),
            Some(Group::Consumer(group)) => Ok(group.subscribed_topics(&topics)),
            None if state.offsets.has_group(group_id) => Ok(BTreeSet::new()),
            None => Err(GroupError::GroupIdNotFound),
        };
        let subscribed = match subscribed {
            Ok(subscribed) => subscribed,
            Err(error) => return self.finish(&mut state.offsets, Err(error), pending, now_ms),
        };
        let mut results = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let result = if subscribed.contains(&topic) {
                Err(GroupError::GroupSubscribedToTopic)
            } else {
                if state.offsets.get(group_id, &topic, partition).is_some() {
                    pending.records.push(GroupRecord::Offset {
                        group: group_id.to_string(),
                        topic: topic.clone(),
                        partition,
                        value: None,
                    });
                }
                Ok(())
            };
            results.push((topic, partition, result));
        }
        self.finish(&mut state.offsets, Ok(results), pending, now_ms)
    }

    // ---- administration ---------------------------------------------------------------

    /// DeleteGroups: a group goes with its offsets, only when it has no members.
    pub fn delete_groups(
        &self,
        group_ids: &[String],
        now_ms: i64,
    ) -> Done<Vec<(String, Result<(), GroupError>)>> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        let mut results = Vec::with_capacity(group_ids.len());
        for id in group_ids {
            let result = match state.groups.get_mut(id) {
                Some(Group::Classic(group)) if !group.is_empty() => Err(GroupError::NonEmptyGroup),
                Some(Group::Consumer(group)) if !group.is_empty() => Err(GroupError::NonEmptyGroup),
                Some(_) => {
                    remove_group(state, id, &mut pending);
                    Ok(())
                }
                None if state.offsets.has_group(id) => {
                    remove_group(state, id, &mut pending);
                    Ok(())
                }
                None => Err(GroupError::GroupIdNotFound),
            };
            results.push((id.clone(), result));
        }
        self.finish(&mut state.offsets, results, pending, now_ms)
    }

    /// DescribeGroups (classic groups): unknown ones — and KIP-848 groups, as in Kafka —
    /// are [`GroupError::GroupIdNotFound`].
    pub fn describe(
        &self,
        group_ids: &[String],
    ) -> Vec<(String, Result<GroupDescription, GroupError>)> {
        let state = self.lock();
        group_ids
            .iter()
            .map(|id| {
                let described = match state.groups.get(id) {
                    Some(Group::Classic(group)) => Ok(group.describe()),
                    None if state.offsets.has_group(id) => {
                        Ok(ClassicGroup::new(id.clone(), 0).describe())
                    }
                    _ => Err(GroupError::GroupIdNotFound),
                };
                (id.clone(), described)
            })
            .collect()
    }

    /// ListGroups: every group with members or offsets, sorted by id.
    pub fn list(&self) -> Vec<ListedGroup> {
        let state = self.lock();
        let mut listed: BTreeMap<String, ListedGroup> = BTreeMap::new();
        for (id, group) in &state.groups {
            let entry = match group {
                Group::Classic(group) => ListedGroup {
                    group_id: id.clone(),
                    protocol_type: group.protocol_type().to_string(),
                    state: group.state().name().to_string(),
                    group_type: "classic",
                },
                Group::Consumer(group) => ListedGroup {
                    group_id: id.clone(),
                    protocol_type: "consumer".to_string(),
                    state: group.state().name().to_string(),
                    group_type: "consumer",
                },
            };
            listed.insert(id.clone(), entry);
        }
        for id in state.offsets.groups() {
            listed.entry(id.to_string()).or_insert_with(|| ListedGroup {
                group_id: id.to_string(),
                protocol_type: String::new(),
                state: ClassicState::Empty.name().to_string(),
                group_type: "classic",
            });
        }
        listed.into_values().collect()
    }

    /// A topic was deleted: its committed offsets go too.
    pub fn topic_deleted(&self, topic: &str, now_ms: i64) -> Done<()> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let pending = Pending {
            records: state.offsets.topic_tombstones(topic),
            replies: Vec::new(),
        };
        self.finish(&mut state.offsets, (), pending, now_ms)
    }

    // ---- time -------------------------------------------------------------------------

    /// The earliest time [`Coordinator::tick`] has work.
    pub fn next_deadline(&self) -> Option<i64> {
        let state = self.lock();
        state
            .groups
            .values()
            .filter_map(|g| match g {
                Group::Classic(g) => g.next_deadline(),
                Group::Consumer(g) => g.next_deadline(),
            })
            .chain(std::iter::once(state.next_expiry_check_ms))
            .min()
    }

    /// Expires sessions and timeouts due by `now_ms`, and offsets past their retention.
    pub fn tick(&self, now_ms: i64) -> Done<()> {
        let topics = self.topics_view();
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut pending = Pending::default();
        for (id, group) in state.groups.iter_mut() {
            match group {
                Group::Classic(group) => {
                    if group.next_deadline().is_some_and(|d| d <= now_ms) {
                        let mut effects = classic::Effects::default();
                        group.tick(&self.config, now_ms, &mut effects);
                        absorb_classic(id, group, effects, &mut pending);
                    }
                }
                Group::Consumer(group) => {
                    if group.next_deadline().is_some_and(|d| d <= now_ms)
                        && group.tick(&topics, &self.config, now_ms)
                    {
                        pending.records.push(consumer_record(id, group));
                    }
                }
            }
        }
        if now_ms >= state.next_expiry_check_ms {
            state.next_expiry_check_ms = now_ms + OFFSETS_RETENTION_CHECK_INTERVAL_MS;
            self.expire_offsets(state, now_ms, &mut pending);
        }
        // Appended under the lock, as every other call's records are.
        let done = self.finish(&mut state.offsets, (), pending, now_ms);
        drop(guard);
        done
    }

    /// Kafka's offset expiry, then removal of groups left with neither members nor offsets.
    fn expire_offsets(&self, state: &mut State, now_ms: i64, pending: &mut Pending) {
        let ids: Vec<String> = state.offsets.groups().map(str::to_string).collect();
        for id in ids {
            let liveness = match state.groups.get(&id) {
                Some(Group::Classic(g)) if g.is_empty() => {
                    if g.protocol_type().is_empty() {
                        Liveness::Standalone
                    } else {
                        Liveness::EmptySince(g.state_timestamp_ms())
                    }
                }
                Some(Group::Consumer(g)) if g.is_empty() => {
                    Liveness::EmptySince(g.state_timestamp_ms())
                }
                Some(_) => Liveness::Active,
                None => Liveness::Standalone,
            };
            let expired =
                state
                    .offsets
                    .expired(&id, &liveness, self.config.offsets_retention_ms, now_ms);
            if !expired.is_empty() {
                tracing::info!(group = %id, offsets = expired.len(), "offsets expired");
            }
            pending.records.extend(expired);
        }
        let dead: Vec<String> = state
            .groups
            .iter()
            .filter(|(id, g)| {
                let empty = match g {
                    Group::Classic(g) => g.is_empty(),
                    Group::Consumer(g) => g.is_empty(),
                };
                empty && !state.offsets.has_group(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in dead {
            remove_group(state, &id, pending);
        }
    }
}

fn fresh_topic_id() -> TopicId {
    TopicId(*uuid::Uuid::new_v4().as_bytes())
}

/// Group ids must be non-empty and of bounded length (Kafka: INVALID_GROUP_ID).
fn check_group_id(group_id: &str) -> Result<(), GroupError> {
    if group_id.is_empty() || group_id.len() > NAME_MAX_BYTES {
        return Err(GroupError::InvalidGroupId);
    }
    Ok(())
}

fn absorb_classic(
    group_id: &str,
    group: &ClassicGroup,
    effects: classic::Effects,
    pending: &mut Pending,
) {
    pending.replies.extend(effects.replies);
    if effects.changed {
        pending.records.push(GroupRecord::Classic {
            group: group_id.to_string(),
            value: Some(group.snapshot()),
        });
    }
}

fn consumer_record(group_id: &str, group: &ConsumerGroup) -> GroupRecord {
    let value = match serde_json::to_vec(&group.snapshot()) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            // A snapshot is plain data: failing to serialize it is a bug, not bad input.
            tracing::error!(group = %group_id, %error, "consumer group snapshot did not serialize");
            None
        }
    };
    GroupRecord::Consumer {
        group: group_id.to_string(),
        value,
    }
}

/// Removes a group and its offsets, writing tombstones for both.
fn remove_group(state: &mut State, id: &str, pending: &mut Pending) {
    match state.groups.remove(id) {
        Some(Group::Classic(mut group)) => {
            let mut effects = classic::Effects::default();
            group.mark_dead(&mut effects);
            pending.replies.extend(effects.replies);
            pending.records.push(GroupRecord::Classic {
                group: id.to_string(),
                value: None,
            });
        }
        Some(Group::Consumer(mut group)) => {
            group.mark_dead();
            pending.records.push(GroupRecord::Consumer {
                group: id.to_string(),
                value: None,
            });
        }
        None => {}
    }
    pending.records.extend(state.offsets.group_tombstones(id));
}

#[cfg(test)]
mod tests;

/// Replays one [`GroupRecord::TxnOffset`] into the pending table (others are ignored).
fn apply_txn_offset(
    table: &mut HashMap<i64, BTreeMap<String, PendingOffsets>>,
    record: &GroupRecord,
) {
    let GroupRecord::TxnOffset {
        group,
        producer_id,
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
            table
                .entry(*producer_id)
                .or_default()
                .entry(group.clone())
                .or_default()
                .insert(key, value.clone());
        }
        None => {
            let Some(groups) = table.get_mut(producer_id) else {
                return;
            };
            if let Some(offsets) = groups.get_mut(group) {
                offsets.remove(&key);
                if offsets.is_empty() {
                    groups.remove(group);
                }
            }
            if groups.is_empty() {
                table.remove(producer_id);
            }
        }
    }
}
