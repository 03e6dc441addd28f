//! One consumer group under the KIP-848 protocol ("consumer" groups, driven by
//! ConsumerGroupHeartbeat): membership, the group epoch, the target assignment computed on
//! the broker by an [`assignor`](super::assignor), and each member's reconciliation towards
//! it, with session and rebalance timeouts.
//!
//! The rules it keeps (Kafka's):
//! - The group epoch goes up when membership, a subscription (names, regex, assignor) or the
//!   partition count of a subscribed topic changes; the target assignment is then recomputed
//!   and stamped with that epoch.
//! - A member reaches the target epoch only once it no longer owns partitions being taken
//!   from it, and it is given a partition only once the previous owner has released it, so
//!   no partition is ever owned by two members (owned = assigned + pending revocation).
//! - A member that misses its session timeout, or does not revoke within its rebalance
//!   timeout, is removed.
//!
//! What it must never do: read a clock, sleep, do I/O or panic on anything a client sends.
//! Time is the `now_ms` argument; the caller asks [`ConsumerGroup::next_deadline`] when to
//! call [`ConsumerGroup::tick`]. It knows no wire types: the front end maps
//! [`GroupError`]s to Kafka error codes.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::catalog::TopicId;

use super::assignor::{AssignMember, Assignment, DEFAULT_ASSIGNOR, assignor_by_name};
use super::{GroupConfig, GroupError, NAME_MAX_BYTES};

/// Most topic names one member may subscribe to by name: far more than real consumers list,
/// and it bounds the work of one heartbeat.
pub const SUBSCRIBED_TOPICS_MAX: usize = 10_000;
/// Most topics in one member's list of owned partitions.
pub const OWNED_TOPICS_MAX: usize = 10_000;
/// Most partitions in one member's list of owned partitions (all topics together).
pub const OWNED_PARTITIONS_MAX: usize = 100_000;
/// Longest subscription regex accepted. librdkafka joins all of a subscription's patterns
/// into one alternation, so this leaves room for several; the compiled size is bounded
/// separately below.
pub const SUBSCRIBED_REGEX_MAX_BYTES: usize = 4_096;
/// Most memory one compiled subscription regex (and its lazy DFA) may take.
const REGEX_COMPILED_MAX_BYTES: usize = 1 << 20;
/// Member epoch of a request leaving the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member leaving for a while (it keeps its assignment).
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;
/// Tries at a generated member id that no member has (a collision needs a v1 client to have
/// picked the same UUID; more than one retry is already beyond belief).
const MEMBER_ID_ATTEMPTS_MAX: usize = 8;

/// The topics the group may subscribe to, as the coordinator sees them now (internal topics
/// excluded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicsView {
    pub by_name: BTreeMap<String, (TopicId, i32)>,
}

impl TopicsView {
    fn names_by_id(&self) -> BTreeMap<TopicId, &str> {
        self.by_name
            .iter()
            .map(|(name, (id, _))| (*id, name.as_str()))
            .collect()
    }
}

/// One ConsumerGroupHeartbeat, as the front end decoded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// "" on a v0 join: the group generates one. v1 clients send their own UUID.
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves for a while (static members), otherwise the member's
    /// current epoch.
    pub member_epoch: i32,
    pub group_instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// None when unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// None when unchanged; Some("") clears it.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the client owns now; None when unchanged since its last heartbeat.
    pub owned: Option<Vec<(TopicId, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The partitions the member may own now; Some when they changed or on a full request.
    pub assignment: Option<Vec<(TopicId, Vec<i32>)>>,
}

/// The group's state, as ConsumerGroupDescribe and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerGroupState {
    Empty,
    /// The group epoch is ahead of the target assignment: never seen from outside, since the
    /// target is recomputed in the same call that bumps the epoch.
    Assigning,
    Reconciling,
    Stable,
    Dead,
}

impl ConsumerGroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

/// Where a member is in reaching its target assignment (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    /// At its target (or waiting for none).
    Stable,
    /// Must give up `pending_revocation` before it moves to the target epoch.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    member_id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    /// The session timeout in force when it last heartbeated (what a restore counts with).
    session_timeout_ms: i32,
    subscribed_names: BTreeSet<String>,
    subscribed_regex: Option<String>,
    server_assignor: Option<String>,
    state: MemberState,
    epoch: i32,
    previous_epoch: i32,
    assigned: Assignment,
    pending_revocation: Assignment,
}

impl Member {
    fn new(member_id: String) -> Self {
        Self {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            session_timeout_ms: 0,
            subscribed_names: BTreeSet::new(),
            subscribed_regex: None,
            server_assignor: None,
            state: MemberState::Stable,
            epoch: 0,
            previous_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
        }
    }

    fn set_epoch(&mut self, epoch: i32) {
        if epoch != self.epoch {
            self.previous_epoch = self.epoch;
            self.epoch = epoch;
        }
    }

    /// Forget everything it owns: it rejoined with epoch 0, which means it dropped them.
    fn reset_for_rejoin(&mut self) {
        self.epoch = 0;
        self.previous_epoch = 0;
        self.state = MemberState::Stable;
        self.assigned.clear();
        self.pending_revocation.clear();
    }
}

/// A topic's partitions, with the topic's name where it still exists ("" otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitions {
    pub topic_id: TopicId,
    pub topic_name: String,
    pub partitions: Vec<i32>,
}

/// What ConsumerGroupDescribe returns about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Vec<TopicPartitions>,
    pub target_assignment: Vec<TopicPartitions>,
}

/// What ConsumerGroupDescribe returns about a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub state: ConsumerGroupState,
    pub assignor_name: String,
    pub members: Vec<ConsumerMemberDescription>,
}

/// One topic's partitions in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitionsSnapshot {
    pub topic_id: [u8; 16],
    pub partitions: Vec<i32>,
}

/// A member in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub state: MemberState,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub assigned: Vec<TopicPartitionsSnapshot>,
    pub pending_revocation: Vec<TopicPartitionsSnapshot>,
    pub target: Vec<TopicPartitionsSnapshot>,
}

/// Everything a group needs to carry on after a restart; the coordinator stores it as JSON.
/// Deadlines are not in it: a restore starts every member's session afresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupSnapshot {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub state_timestamp_ms: i64,
    /// Subscribed topics with their id and partition count when the epoch last moved.
    pub subscription_metadata: Vec<(String, [u8; 16], i32)>,
    pub next_member_seq: u64,
    pub members: Vec<ConsumerMemberSnapshot>,
}

/// One KIP-848 group. See the module docs.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    group_id: String,
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// instance id → member id of static members.
    static_members: BTreeMap<String, String>,
    /// Target assignment by member id, computed at `assignment_epoch`.
    target: BTreeMap<String, Assignment>,
    /// The subscribed topics as they were when the epoch last moved: a difference from the
    /// topics now (a new regex match, more partitions, a deleted topic) bumps the epoch.
    subscription_metadata: BTreeMap<String, (TopicId, i32)>,
    state: ConsumerGroupState,
    state_timestamp_ms: i64,
    dead: bool,
    /// Feeds generated member ids; persisted so ids stay unique across restarts.
    next_member_seq: u64,
    session_deadlines_ms: BTreeMap<String, i64>,
    /// Members in UnrevokedPartitions, and when they are removed if they still have not revoked.
    revoke_deadlines_ms: BTreeMap<String, i64>,
    /// Compiled subscription regexes by pattern (only patterns some member uses).
    regexes: BTreeMap<String, Regex>,
}

fn to_pairs(assignment: &Assignment) -> Vec<(TopicId, Vec<i32>)> {
    assignment
        .iter()
        .map(|(t, ps)| (*t, ps.iter().copied().collect()))
        .collect()
}

fn to_snapshot_parts(assignment: &Assignment) -> Vec<TopicPartitionsSnapshot> {
    assignment
        .iter()
        .map(|(t, ps)| TopicPartitionsSnapshot {
            topic_id: t.0,
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn from_snapshot_parts(parts: &[TopicPartitionsSnapshot]) -> Assignment {
    let mut out = Assignment::new();
    for part in parts {
        let set: BTreeSet<i32> = part
            .partitions
            .iter()
            .copied()
            .filter(|p| *p >= 0)
            .collect();
        if !set.is_empty() {
            out.entry(TopicId(part.topic_id)).or_default().extend(set);
        }
    }
    out
}

/// Whether the client still owns any of `partitions`. A heartbeat without an owned list
/// says nothing new, so the member is assumed to still own them.
fn owns_any(owned: Option<&[(TopicId, Vec<i32>)]>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(topic, ps)| {
        partitions
            .get(topic)
            .is_some_and(|set| ps.iter().any(|p| set.contains(p)))
    })
}

/// Whether everything the client owns is within `assigned` (a lost response is then harmless).
fn owned_within(owned: Option<&[(TopicId, Vec<i32>)]>, assigned: &Assignment) -> bool {
    let Some(owned) = owned else { return false };
    owned.iter().all(|(topic, ps)| {
        assigned
            .get(topic)
            .is_some_and(|set| ps.iter().all(|p| set.contains(p)))
    })
}

fn compile_regex(pattern: &str) -> Result<Regex, GroupError> {
    if pattern.len() > SUBSCRIBED_REGEX_MAX_BYTES {
        return Err(GroupError::InvalidRegularExpression);
    }
    // Kafka matches the whole topic name.
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_COMPILED_MAX_BYTES)
        .dfa_size_limit(REGEX_COMPILED_MAX_BYTES)
        .build()
        .map_err(|_| GroupError::InvalidRegularExpression)
}

fn too_long(s: &str) -> bool {
    s.len() > NAME_MAX_BYTES
}

/// The request's own consistency, before the group is looked at (Kafka's checks, plus bounds).
fn validate_request(req: &HeartbeatRequest) -> Result<(), GroupError> {
    let names = [
        Some(&req.member_id),
        req.group_instance_id.as_ref(),
        req.rack_id.as_ref(),
    ];
    let more = [
        Some(&req.client_id),
        Some(&req.client_host),
        req.server_assignor.as_ref(),
    ];
    if names
        .iter()
        .chain(more.iter())
        .flatten()
        .any(|s| too_long(s))
    {
        return Err(GroupError::InvalidRequest);
    }
    if req.group_instance_id.as_deref() == Some("") || req.rack_id.as_deref() == Some("") {
        return Err(GroupError::InvalidRequest);
    }
    if let Some(topics) = &req.subscribed_topic_names
        && (topics.len() > SUBSCRIBED_TOPICS_MAX || topics.iter().any(|t| too_long(t)))
    {
        return Err(GroupError::InvalidRequest);
    }
    if let Some(owned) = &req.owned {
        let partitions: usize = owned.iter().map(|(_, ps)| ps.len()).sum();
        if owned.len() > OWNED_TOPICS_MAX || partitions > OWNED_PARTITIONS_MAX {
            return Err(GroupError::InvalidRequest);
        }
    }
    if req
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|r| r.len() > SUBSCRIBED_REGEX_MAX_BYTES)
    {
        return Err(GroupError::InvalidRegularExpression);
    }
    match req.member_epoch {
        e if e > 0 || e == LEAVE_GROUP_MEMBER_EPOCH => {
            if req.member_id.is_empty() {
                return Err(GroupError::InvalidRequest);
            }
        }
        0 => {
            if req.rebalance_timeout_ms < 0 {
                return Err(GroupError::InvalidRequest);
            }
            if req
                .owned
                .as_ref()
                .is_some_and(|o| o.iter().any(|(_, ps)| !ps.is_empty()))
            {
                return Err(GroupError::InvalidRequest);
            }
            let by_names = req
                .subscribed_topic_names
                .as_ref()
                .is_some_and(|n| !n.is_empty());
            let by_regex = req
                .subscribed_topic_regex
                .as_ref()
                .is_some_and(|r| !r.is_empty());
            if !by_names && !by_regex {
                return Err(GroupError::InvalidRequest);
            }
        }
        LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
            if req.member_id.is_empty() || req.group_instance_id.is_none() {
                return Err(GroupError::InvalidRequest);
            }
        }
        _ => return Err(GroupError::InvalidRequest),
    }
    if let Some(name) = &req.server_assignor
        && assignor_by_name(name).is_none()
    {
        return Err(GroupError::UnsupportedAssignor);
    }
    Ok(())
}

/// How a heartbeat found its member.
struct Resolved {
    member: Member,
    /// A member that did not exist before (joins bump the epoch).
    is_new: bool,
    /// The static member this one replaces (same instance id, new member id).
    replaces: Option<String>,
}

impl ConsumerGroup {
    pub fn new(group_id: String) -> Self {
        Self {
            group_id,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscription_metadata: BTreeMap::new(),
            state: ConsumerGroupState::Empty,
            state_timestamp_ms: 0,
            dead: false,
            next_member_seq: 0,
            session_deadlines_ms: BTreeMap::new(),
            revoke_deadlines_ms: BTreeMap::new(),
            regexes: BTreeMap::new(),
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// Handles one ConsumerGroupHeartbeat. Returns the answer and whether persistent state
    /// changed (then the coordinator writes a snapshot).
    pub fn heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now_ms: i64,
    ) -> (Result<HeartbeatResponse, GroupError>, bool) {
        if self.dead {
            // The coordinator drops dead groups; a request that still reaches one retries.
            return (Err(GroupError::CoordinatorNotAvailable), false);
        }
        if let Err(e) = validate_request(&req) {
            return (Err(e), false);
        }
        let result = match req.member_epoch {
            LEAVE_GROUP_MEMBER_EPOCH => self.leave(&req, topics, now_ms),
            LEAVE_GROUP_STATIC_MEMBER_EPOCH => self.static_leave(&req, now_ms),
            _ => self.join_or_heartbeat(req, topics, config, now_ms),
        };
        match result {
            Ok((response, changed)) => (Ok(response), changed),
            Err(e) => (Err(e), false),
        }
    }

    fn static_member(&self, instance_id: &str, member_id: &str) -> Result<&Member, GroupError> {
        let Some(current) = self.static_members.get(instance_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        if current != member_id {
            return Err(GroupError::FencedInstanceId);
        }
        self.members.get(current).ok_or(GroupError::UnknownMemberId)
    }

    fn leave(
        &mut self,
        req: &HeartbeatRequest,
        topics: &TopicsView,
        now_ms: i64,
    ) -> Result<(HeartbeatResponse, bool), GroupError> {
        let member_id = match &req.group_instance_id {
            Some(instance) => self
                .static_member(instance, &req.member_id)?
                .member_id
                .clone(),
            None => self
                .members
                .get(&req.member_id)
                .ok_or(GroupError::UnknownMemberId)?
                .member_id
                .clone(),
        };
        self.remove_members(std::slice::from_ref(&member_id), topics, now_ms);
        let response = HeartbeatResponse {
            member_id,
            member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        Ok((response, true))
    }

    /// A static member steps out but keeps its assignment until its session expires, so a
    /// restart with the same instance id gets it back without a rebalance.
    fn static_leave(
        &mut self,
        req: &HeartbeatRequest,
        now_ms: i64,
    ) -> Result<(HeartbeatResponse, bool), GroupError> {
        let instance = req
            .group_instance_id
            .as_deref()
            .ok_or(GroupError::InvalidRequest)?;
        let member_id = self
            .static_member(instance, &req.member_id)?
            .member_id
            .clone();
        if let Some(member) = self.members.get_mut(&member_id) {
            member.set_epoch(LEAVE_GROUP_STATIC_MEMBER_EPOCH);
            // It stops consuming: what it was revoking is released.
            member.pending_revocation.clear();
            if member.state == MemberState::UnrevokedPartitions {
                member.state = MemberState::Stable;
            }
        }
        self.revoke_deadlines_ms.remove(&member_id);
        self.update_state(now_ms);
        let response = HeartbeatResponse {
            member_id,
            member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        Ok((response, true))
    }

    fn generate_member_id(&mut self, now_ms: i64) -> String {
        let mut id = String::new();
        for _ in 0..MEMBER_ID_ATTEMPTS_MAX {
            self.next_member_seq = self.next_member_seq.wrapping_add(1);
            let mut h = DefaultHasher::new();
            (&self.group_id, self.next_member_seq, now_ms).hash(&mut h);
            let high = h.finish();
            // The low 48 bits are the sequence: unique within the group by construction.
            let low = self.next_member_seq & 0xffff_ffff_ffff;
            id = format!(
                "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                high >> 32,
                (high >> 16) & 0xffff,
                high & 0x0fff,
                0x8000 | ((now_ms as u64) & 0x3fff),
                low
            );
            if !self.members.contains_key(&id) {
                break;
            }
        }
        id
    }

    /// Finds (or creates) the member a join or heartbeat is about, checking epochs and
    /// instance ids; changes nothing.
    fn resolve(
        &mut self,
        req: &HeartbeatRequest,
        config: &GroupConfig,
        now_ms: i64,
    ) -> Result<Resolved, GroupError> {
        if req.member_epoch != 0 {
            let member = match &req.group_instance_id {
                Some(instance) => self.static_member(instance, &req.member_id)?,
                None => self
                    .members
                    .get(&req.member_id)
                    .ok_or(GroupError::UnknownMemberId)?,
            };
            let epoch = req.member_epoch;
            let lost_response = epoch == member.previous_epoch
                && owned_within(req.owned.as_deref(), &member.assigned);
            if epoch > member.epoch || (epoch < member.epoch && !lost_response) {
                return Err(GroupError::FencedMemberEpoch);
            }
            return Ok(Resolved {
                member: member.clone(),
                is_new: false,
                replaces: None,
            });
        }
        // Epoch 0: a join, or a rejoin of a member that dropped its partitions.
        if let Some(existing) = self.members.get(&req.member_id) {
            if let Some(instance) = &req.group_instance_id
                && self.static_members.get(instance) != Some(&req.member_id)
            {
                return Err(GroupError::UnreleasedInstanceId);
            }
            let mut member = existing.clone();
            member.reset_for_rejoin();
            return Ok(Resolved {
                member,
                is_new: false,
                replaces: None,
            });
        }
        if let Some(instance) = &req.group_instance_id
            && let Some(previous_id) = self.static_members.get(instance)
            && let Some(previous) = self.members.get(previous_id)
        {
            if previous.epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                return Err(GroupError::UnreleasedInstanceId);
            }
            // The restarted instance takes over its predecessor's subscription and assignment.
            let mut member = previous.clone();
            member.epoch = 0;
            member.previous_epoch = 0;
            member.state = MemberState::Stable;
            member.pending_revocation.clear();
            let replaces = Some(previous.member_id.clone());
            member.member_id = if req.member_id.is_empty() {
                self.generate_member_id(now_ms)
            } else {
                req.member_id.clone()
            };
            return Ok(Resolved {
                member,
                is_new: false,
                replaces,
            });
        }
        if self.members.len() >= config.consumer_max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        let member_id = if req.member_id.is_empty() {
            self.generate_member_id(now_ms)
        } else {
            req.member_id.clone()
        };
        let mut member = Member::new(member_id);
        member.instance_id = req.group_instance_id.clone();
        Ok(Resolved {
            member,
            is_new: true,
            replaces: None,
        })
    }

    fn join_or_heartbeat(
        &mut self,
        req: HeartbeatRequest,
        topics: &TopicsView,
        config: &GroupConfig,
        now_ms: i64,
    ) -> Result<(HeartbeatResponse, bool), GroupError> {
        let Resolved {
            member: start,
            is_new,
            replaces,
        } = self.resolve(&req, config, now_ms)?;
        let member_id = start.member_id.clone();
        let before = self.members.get(&member_id).cloned();
        let assigned_before = before
            .as_ref()
            .map(|m| m.assigned.clone())
            .unwrap_or_default();

        let mut updated = start.clone();
        if req.rack_id.is_some() {
            updated.rack_id = req.rack_id.clone();
        }
        if req.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0);
        }
        if req.server_assignor.is_some() {
            updated.server_assignor = req.server_assignor.clone();
        }
        if let Some(names) = &req.subscribed_topic_names {
            updated.subscribed_names = names.iter().cloned().collect();
        }
        if let Some(regex) = &req.subscribed_topic_regex {
            updated.subscribed_regex = if regex.is_empty() {
                None
            } else {
                Some(regex.clone())
            };
        }
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        updated.session_timeout_ms = config.consumer_session_timeout_ms;
        // Compile before anything changes, so a bad pattern leaves the group as it was.
        let new_regex = match &updated.subscribed_regex {
            Some(pattern) if !self.regexes.contains_key(pattern) => {
                Some((pattern.clone(), compile_regex(pattern)?))
            }
            _ => None,
        };

        let mut bump = is_new
            || updated.subscribed_names != start.subscribed_names
            || updated.subscribed_regex != start.subscribed_regex
            || updated.server_assignor != start.server_assignor;

        // From here on the request is accepted.
        if let Some((pattern, regex)) = new_regex {
            self.regexes.insert(pattern, regex);
        }
        if let Some(previous) = &replaces {
            self.members.remove(previous);
            self.session_deadlines_ms.remove(previous);
            self.revoke_deadlines_ms.remove(previous);
            if let Some(target) = self.target.remove(previous) {
                self.target.insert(member_id.clone(), target);
            }
        }
        if let Some(instance) = &updated.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), updated);
        self.prune_regexes();

        let metadata = self.compute_subscription_metadata(topics);
        if metadata != self.subscription_metadata {
            self.subscription_metadata = metadata;
            bump = true;
        }
        if bump {
            self.bump_and_assign();
        }

        self.reconcile(&member_id, req.owned.as_deref(), now_ms);
        let session_ms = i64::from(config.consumer_session_timeout_ms.max(0));
        self.session_deadlines_ms
            .insert(member_id.clone(), now_ms.saturating_add(session_ms));
        self.update_state(now_ms);

        let member = self
            .members
            .get(&member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        let full_request = req.member_epoch == 0
            || (req.rebalance_timeout_ms != -1
                && req.subscribed_topic_names.is_some()
                && req.owned.is_some());
        let assignment = (full_request || member.assigned != assigned_before)
            .then(|| to_pairs(&member.assigned));
        let changed = bump || replaces.is_some() || before.as_ref() != Some(member);
        let response = HeartbeatResponse {
            member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
            assignment,
        };
        Ok((response, changed))
    }

    fn prune_regexes(&mut self) {
        let used: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref())
            .collect();
        self.regexes.retain(|pattern, _| used.contains(pattern));
    }

    /// Topic names `member` subscribes to that exist in `topics`: its names looked up one by
    /// one, and only a regex scans every topic.
    fn member_topics<'a>(
        &'a self,
        member: &'a Member,
        topics: &'a TopicsView,
    ) -> BTreeSet<&'a String> {
        let mut out: BTreeSet<&String> = member
            .subscribed_names
            .iter()
            .filter(|n| topics.by_name.contains_key(*n))
            .collect();
        if let Some(regex) = member
            .subscribed_regex
            .as_ref()
            .and_then(|p| self.regexes.get(p))
        {
            out.extend(topics.by_name.keys().filter(|n| regex.is_match(n)));
        }
        out
    }

    /// Every subscribed topic that exists, with its id and partition count. Each distinct
    /// regex scans the topics once, however many members use it.
    fn compute_subscription_metadata(
        &self,
        topics: &TopicsView,
    ) -> BTreeMap<String, (TopicId, i32)> {
        let names: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.subscribed_names.iter())
            .collect();
        let mut out: BTreeMap<String, (TopicId, i32)> = names
            .into_iter()
            .filter_map(|n| topics.by_name.get(n).map(|e| (n.clone(), *e)))
            .collect();
        let patterns: BTreeSet<&String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_regex.as_ref())
            .collect();
        for regex in patterns.into_iter().filter_map(|p| self.regexes.get(p)) {
            for (name, entry) in topics.by_name.iter().filter(|(n, _)| regex.is_match(n)) {
                out.insert(name.clone(), *entry);
            }
        }
        out
    }

    /// The assignor most members ask for (ties to the first name), else the default.
    fn assignor_name(&self) -> &'static str {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for name in self
            .members
            .values()
            .filter_map(|m| m.server_assignor.as_deref())
        {
            *counts.entry(name).or_default() += 1;
        }
        let best = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(n, _)| *n);
        best.and_then(assignor_by_name)
            .map_or(DEFAULT_ASSIGNOR, |a| a.name())
    }

    /// Bumps the group epoch and recomputes the target assignment at it.
    fn bump_and_assign(&mut self) {
        self.group_epoch = self.group_epoch.saturating_add(1);
        let view = TopicsView {
            by_name: self.subscription_metadata.clone(),
        };
        let members: Vec<AssignMember> = self
            .members
            .values()
            .map(|m| AssignMember {
                member_id: m.member_id.clone(),
                subscribed: self
                    .member_topics(m, &view)
                    .into_iter()
                    .filter_map(|n| view.by_name.get(n))
                    .map(|(id, _)| *id)
                    .collect(),
                current: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                rack: m.rack_id.clone(),
            })
            .collect();
        let assignor =
            assignor_by_name(self.assignor_name()).or_else(|| assignor_by_name(DEFAULT_ASSIGNOR));
        let mut target = assignor
            .map(|a| a.assign(&members, &view))
            .unwrap_or_default();
        target.retain(|id, _| self.members.contains_key(id));
        for id in self.members.keys() {
            target.entry(id.clone()).or_default();
        }
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    /// Partitions owned (assigned or being revoked) by members other than `member_id`.
    fn owned_by_others(&self, member_id: &str) -> BTreeSet<(TopicId, i32)> {
        let mut out = BTreeSet::new();
        for member in self.members.values().filter(|m| m.member_id != member_id) {
            for part in [&member.assigned, &member.pending_revocation] {
                for (topic, partitions) in part {
                    out.extend(partitions.iter().map(|p| (*topic, *p)));
                }
            }
        }
        out
    }

    /// Moves one member towards its target (Kafka's CurrentAssignmentBuilder).
    fn reconcile(&mut self, member_id: &str, owned: Option<&[(TopicId, Vec<i32>)]>, now_ms: i64) {
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        let proceed = match member.state {
            MemberState::Stable => member.epoch != self.assignment_epoch,
            MemberState::UnrevokedPartitions => !owns_any(owned, &member.pending_revocation),
            MemberState::UnreleasedPartitions => true,
        };
        if !proceed || member.epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return;
        }
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        let mut gain = Assignment::new();
        let topics: BTreeSet<TopicId> = target
            .keys()
            .chain(member.assigned.keys())
            .copied()
            .collect();
        for topic in topics {
            let want = target.get(&topic).cloned().unwrap_or_default();
            let have = member.assigned.get(&topic).cloned().unwrap_or_default();
            let kept: BTreeSet<i32> = have.intersection(&want).copied().collect();
            let revoked: BTreeSet<i32> = have.difference(&want).copied().collect();
            let gained: BTreeSet<i32> = want.difference(&have).copied().collect();
            for (out, set) in [
                (&mut keep, kept),
                (&mut revoke, revoked),
                (&mut gain, gained),
            ] {
                if !set.is_empty() {
                    out.insert(topic, set);
                }
            }
        }
        let mut unreleased = false;
        if !gain.is_empty() {
            let others = self.owned_by_others(member_id);
            for (topic, partitions) in gain.iter_mut() {
                let before = partitions.len();
                partitions.retain(|p| !others.contains(&(*topic, *p)));
                unreleased |= partitions.len() != before;
            }
            gain.retain(|_, ps| !ps.is_empty());
        }
        let target_epoch = self.assignment_epoch;
        let rebalance_timeout_ms = i64::from(member.rebalance_timeout_ms.max(0));
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        if !revoke.is_empty() && owns_any(owned, &revoke) {
            // Keep the epoch: the member moves on once it reports the revocation done.
            member.state = MemberState::UnrevokedPartitions;
            member.assigned = keep;
            member.pending_revocation = revoke;
            self.revoke_deadlines_ms
                .entry(member_id.to_string())
                .or_insert(now_ms.saturating_add(rebalance_timeout_ms));
            return;
        }
        for (topic, partitions) in gain {
            keep.entry(topic).or_default().extend(partitions);
        }
        member.assigned = keep;
        member.pending_revocation.clear();
        member.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        member.set_epoch(target_epoch);
        self.revoke_deadlines_ms.remove(member_id);
    }

    /// Removes members (left, or timed out), then bumps the epoch and reassigns.
    fn remove_members(&mut self, ids: &[String], topics: &TopicsView, now_ms: i64) {
        for id in ids {
            if let Some(member) = self.members.remove(id)
                && let Some(instance) = member.instance_id
                && self.static_members.get(&instance) == Some(id)
            {
                self.static_members.remove(&instance);
            }
            self.target.remove(id);
            self.session_deadlines_ms.remove(id);
            self.revoke_deadlines_ms.remove(id);
        }
        self.prune_regexes();
        self.subscription_metadata = self.compute_subscription_metadata(topics);
        self.bump_and_assign();
        self.update_state(now_ms);
    }

    fn compute_state(&self) -> ConsumerGroupState {
        if self.dead {
            ConsumerGroupState::Dead
        } else if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.state != MemberState::Stable || m.epoch != self.assignment_epoch)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    fn update_state(&mut self, now_ms: i64) {
        let state = self.compute_state();
        if state != self.state {
            self.state = state;
            self.state_timestamp_ms = now_ms;
        }
    }

    /// Checks an OffsetCommit (v9+) from a member: any mismatch of epochs is stale. A commit
    /// with a negative epoch (admin client, or a consumer outside group management) is
    /// accepted only while the group has no members.
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        if member_epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if member.epoch != member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Checks an OffsetFetch (v9+) that names a member: it must be one, at its current epoch.
    /// Without a member id and with a negative epoch (admin clients, older consumers) any
    /// fetch is accepted.
    pub fn validate_offset_fetch(
        &self,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        let Some(member_id) = member_id else {
            return if member_epoch < 0 {
                Ok(())
            } else {
                Err(GroupError::UnknownMemberId)
            };
        };
        let member = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if member.epoch != member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// The earliest time `tick` has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self.session_deadlines_ms.values();
        sessions
            .chain(self.revoke_deadlines_ms.values())
            .min()
            .copied()
    }

    /// Removes members whose session or rebalance timeout passed. Returns whether anything changed.
    pub fn tick(&mut self, topics: &TopicsView, _config: &GroupConfig, now_ms: i64) -> bool {
        let mut expired: BTreeSet<String> = self
            .session_deadlines_ms
            .iter()
            .filter(|(_, d)| **d <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        for (id, deadline) in &self.revoke_deadlines_ms {
            let revoking = self
                .members
                .get(id)
                .is_some_and(|m| m.state == MemberState::UnrevokedPartitions);
            if *deadline <= now_ms && revoking {
                expired.insert(id.clone());
            }
        }
        if expired.is_empty() {
            return false;
        }
        let ids: Vec<String> = expired.into_iter().collect();
        self.remove_members(&ids, topics, now_ms);
        true
    }

    pub fn state(&self) -> ConsumerGroupState {
        self.compute_state()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// What ConsumerGroupDescribe returns.
    pub fn describe(&self, topics: &TopicsView) -> ConsumerGroupDescription {
        let names = topics.names_by_id();
        let parts = |assignment: &Assignment| -> Vec<TopicPartitions> {
            assignment
                .iter()
                .map(|(id, ps)| TopicPartitions {
                    topic_id: *id,
                    topic_name: names.get(id).map(|n| n.to_string()).unwrap_or_default(),
                    partitions: ps.iter().copied().collect(),
                })
                .collect()
        };
        let members = self
            .members
            .values()
            .map(|m| ConsumerMemberDescription {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_names.iter().cloned().collect(),
                subscribed_topic_regex: m.subscribed_regex.clone(),
                assignment: parts(&m.assigned),
                target_assignment: parts(
                    &self.target.get(&m.member_id).cloned().unwrap_or_default(),
                ),
            })
            .collect();
        ConsumerGroupDescription {
            group_id: self.group_id.clone(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            state: self.compute_state(),
            assignor_name: self.assignor_name().to_string(),
            members,
        }
    }

    /// Every topic name a member subscribes to, plus the existing topics a regex matches.
    pub fn subscribed_topics(&self, topics: &TopicsView) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for member in self.members.values() {
            out.extend(member.subscribed_names.iter().cloned());
            out.extend(self.member_topics(member, topics).into_iter().cloned());
        }
        out
    }

    /// When the group entered its current state (offsets of an Empty group expire from it).
    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    pub fn snapshot(&self) -> ConsumerGroupSnapshot {
        let members = self
            .members
            .values()
            .map(|m| ConsumerMemberSnapshot {
                member_id: m.member_id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscribed_topic_names: m.subscribed_names.iter().cloned().collect(),
                subscribed_topic_regex: m.subscribed_regex.clone(),
                server_assignor: m.server_assignor.clone(),
                state: m.state,
                member_epoch: m.epoch,
                previous_member_epoch: m.previous_epoch,
                assigned: to_snapshot_parts(&m.assigned),
                pending_revocation: to_snapshot_parts(&m.pending_revocation),
                target: to_snapshot_parts(
                    &self.target.get(&m.member_id).cloned().unwrap_or_default(),
                ),
            })
            .collect();
        ConsumerGroupSnapshot {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            state_timestamp_ms: self.state_timestamp_ms,
            subscription_metadata: self
                .subscription_metadata
                .iter()
                .map(|(name, (id, count))| (name.clone(), id.0, *count))
                .collect(),
            next_member_seq: self.next_member_seq,
            members,
        }
    }

    /// Rebuilds a group from its snapshot. Every member's session starts again at `now_ms`
    /// (as Kafka does on loading), and members still revoking get a fresh rebalance timeout.
    /// A snapshot is read back from disk, so nothing in it is trusted to be consistent: a
    /// regex that no longer compiles matches nothing, a second member claiming an instance
    /// id is kept as a dynamic member.
    pub fn restore(group_id: String, snapshot: ConsumerGroupSnapshot, now_ms: i64) -> Self {
        let mut group = Self::new(group_id);
        group.group_epoch = snapshot.group_epoch;
        group.assignment_epoch = snapshot.assignment_epoch.min(snapshot.group_epoch);
        group.next_member_seq = snapshot.next_member_seq;
        group.subscription_metadata = snapshot
            .subscription_metadata
            .into_iter()
            .map(|(name, id, count)| (name, (TopicId(id), count)))
            .collect();
        for m in snapshot.members {
            let mut member = Member::new(m.member_id.clone());
            member.instance_id = m
                .instance_id
                .filter(|i| !group.static_members.contains_key(i));
            member.rack_id = m.rack_id;
            member.client_id = m.client_id;
            member.client_host = m.client_host;
            member.rebalance_timeout_ms = m.rebalance_timeout_ms.max(0);
            member.session_timeout_ms = m.session_timeout_ms.max(0);
            member.subscribed_names = m.subscribed_topic_names.into_iter().collect();
            member.subscribed_regex = m.subscribed_topic_regex;
            member.server_assignor = m.server_assignor;
            member.state = m.state;
            member.epoch = m.member_epoch;
            member.previous_epoch = m.previous_member_epoch;
            member.assigned = from_snapshot_parts(&m.assigned);
            member.pending_revocation = from_snapshot_parts(&m.pending_revocation);
            if let Some(pattern) = &member.subscribed_regex
                && let Ok(regex) = compile_regex(pattern)
            {
                group.regexes.insert(pattern.clone(), regex);
            }
            if let Some(instance) = &member.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let session_ms = i64::from(member.session_timeout_ms);
            group
                .session_deadlines_ms
                .insert(m.member_id.clone(), now_ms.saturating_add(session_ms));
            if member.state == MemberState::UnrevokedPartitions {
                let revoke_ms = i64::from(member.rebalance_timeout_ms);
                group
                    .revoke_deadlines_ms
                    .insert(m.member_id.clone(), now_ms.saturating_add(revoke_ms));
            }
            group
                .target
                .insert(m.member_id.clone(), from_snapshot_parts(&m.target));
            group.members.insert(m.member_id, member);
        }
        group.state = group.compute_state();
        group.state_timestamp_ms = snapshot.state_timestamp_ms;
        group
    }

    /// The group was deleted: it takes no more requests.
    pub fn mark_dead(&mut self) {
        self.dead = true;
        self.state = ConsumerGroupState::Dead;
        self.session_deadlines_ms.clear();
        self.revoke_deadlines_ms.clear();
    }

    /// Partitions each member owns now (assigned plus being revoked): what the invariant
    /// "no partition owned by two members" is about. For tests and debugging.
    pub fn owned_partitions(&self) -> BTreeMap<String, Assignment> {
        self.members
            .iter()
            .map(|(id, m)| {
                let mut all = m.assigned.clone();
                for (t, ps) in &m.pending_revocation {
                    all.entry(*t).or_default().extend(ps.iter().copied());
                }
                (id.clone(), all)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
