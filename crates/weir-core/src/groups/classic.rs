//! One consumer group under Kafka's classic protocol (JoinGroup / SyncGroup / Heartbeat /
//! LeaveGroup), as a pure state machine.
//!
//! Requests go in with the current time; answers come out. A JoinGroup or SyncGroup that
//! must wait for the rebalance is *parked* under the caller's [`Ticket`] and answered later,
//! exactly once, by a [`Reply`] in some call's [`Effects`] — the call that completes the
//! rebalance, a [`ClassicGroup::tick`] when a timer runs out, or [`ClassicGroup::mark_dead`].
//! Timers are not kept anywhere else: [`ClassicGroup::next_deadline`] says when `tick` next
//! has work.
//!
//! States follow Kafka 4's classic coordinator: Empty → PreparingRebalance →
//! CompletingRebalance → Stable (→ PreparingRebalance again), and Dead once deleted.
//!
//! # What it must never do
//! Read a clock, sleep, touch a socket or a file, or panic on anything a client sent:
//! every name, protocol list and metadata blob is checked against the bounds in
//! [`super`] before it is stored, and problems are answered with a [`GroupError`].
//! Protocol metadata and assignments stay opaque bytes, except that
//! [`ClassicGroup::subscribed_topics`] reads the topic names of the consumer protocol's
//! subscription (untrusted: what does not decode contributes nothing).
//!
//! # Durability
//! [`ClassicGroup::snapshot`] is what Kafka would have written in its GroupMetadata record
//! at the last point it writes one: when a rebalance ends Empty, when the leader's
//! assignment makes the group Stable, and when a static member is replaced without a
//! rebalance. A restart therefore resumes at the last Stable (or Empty) generation, as
//! Kafka does; members part-way through a newer rebalance get IllegalGeneration and rejoin.
//!
//! # Choices where Kafka leaves room (or where weir differs)
//! - A static member replaced while Stable, with the group's protocol unchanged, is
//!   answered at once with the current generation. With JoinGroup v9+
//!   ([`JoinRequest::supports_skip_assignment`]) a leader gets the member list and
//!   `skip_assignment = true`; before v9 it gets no members and the leader id *before*
//!   the replacement, so it does not try to assign (as Kafka). As in Kafka, "unchanged"
//!   means the selected protocol name is the same, even if the metadata changed.
//! - When the join phase ends, dynamic members that did not rejoin are removed; static
//!   ones stay (they may be restarting) until their session expires (as Kafka).
//! - A JoinGroup or SyncGroup parked for a member that sends another one is answered
//!   RebalanceInProgress (Kafka drops the old one; here every ticket is answered once).
//! - Ties in protocol votes go to the smallest name (Kafka: hash order).
//! - A static member rejoining under a known instance id is never refused for group size
//!   (it replaces a member); ids handed out with MemberIdRequired are bounded by
//!   `max_size` too (GroupMaxSizeReached past it).
//! - Duplicate protocol names in one JoinGroup, an empty group instance id, and a leader
//!   assignment naming a member twice are InvalidRequest.
//! - Members who got their JoinGroup answer but send no SyncGroup within the rebalance
//!   timeout are removed and the group rebalances (Kafka's pending-sync expiry).
//! - A Dead group answers LeaveGroup with CoordinatorNotAvailable for every member.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::{
    ClassicGroupSnapshot, ClassicMemberSnapshot, GROUP_METADATA_MAX_BYTES, GroupConfig, GroupError,
    MEMBER_METADATA_MAX_BYTES, NAME_MAX_BYTES, PROTOCOLS_PER_MEMBER_MAX, Ticket,
};

/// How long a new member's first JoinGroup may stay parked before the member is dropped
/// (Kafka's `classicGroupNewMemberJoinTimeoutMs`, 5 minutes): a client that gave up on a
/// long rebalance and retried would otherwise leave a defunct member behind each time.
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// Timer events one [`ClassicGroup::tick`] handles at most per member (plus a few for the
/// group's own timers): each event removes a member or moves a deadline past `now_ms`, so
/// the bound is only a guard against a bug turning `tick` into an endless loop.
const TICK_EVENTS_PER_MEMBER_MAX: usize = 4;
const TICK_EVENTS_GROUP_MAX: usize = 16;

/// The protocol type whose subscriptions [`ClassicGroup::subscribed_topics`] decodes.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A classic group's state, as DescribeGroups and ListGroups name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassicState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl ClassicState {
    /// Kafka's name of the state (DescribeGroups `group_state`, ListGroups `group_state`).
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
            ClassicState::Dead => "Dead",
        }
    }
}

/// A JoinGroup, in the group's terms.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// "" for a member that has no id yet.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    /// (name, metadata), most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    /// Negative (JoinGroup v0 has none): the session timeout is used.
    pub rebalance_timeout_ms: i32,
    /// JoinGroup v4+: a new dynamic member is first given an id and asked to rejoin with it.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a static member replaced without a rebalance is told, if it is the
    /// leader, that it need not compute an assignment (and gets the member list).
    pub supports_skip_assignment: bool,
    pub client_id: String,
    pub client_host: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// "" when the group has no leader.
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    /// Non-empty only for the leader.
    pub members: Vec<JoinedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The member's metadata for the group's chosen protocol.
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinError {
    pub error: GroupError,
    /// The id to put in the response: the new id with `MemberIdRequired`, the request's id
    /// for most errors, "" when the member was removed.
    pub member_id: String,
}

/// A SyncGroup, in the group's terms.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+: checked against the group's when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment: (member id, assignment). Ignored from followers.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

/// One member named in a LeaveGroup (v0–2 name one member id; v3+ a batch).
#[derive(Debug, Clone)]
pub struct LeaveMember {
    /// "" with a group instance id: remove that static member whatever its id (admin use).
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// The answer to a parked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(Ticket, Result<JoinResponse, JoinError>),
    Sync(Ticket, Result<SyncResponse, GroupError>),
}

/// What a call produced besides its return value.
#[derive(Debug, Default)]
pub struct Effects {
    /// Answers to parked (or just-received) JoinGroup and SyncGroup requests.
    pub replies: Vec<Reply>,
    /// Persistent state changed: write [`ClassicGroup::snapshot`] before sending replies.
    pub changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The metadata for the chosen protocol; empty unless the group is Stable (as Kafka).
    pub metadata: Bytes,
    /// Empty unless the group is Stable.
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: ClassicState,
    pub protocol_type: String,
    /// "" unless the group is Stable.
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    /// (name, metadata), most preferred first; names are distinct.
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    /// The generation `assignment` was given in (None: never assigned). For invariants.
    assignment_generation: Option<i32>,
    /// A parked JoinGroup.
    join_ticket: Option<Ticket>,
    /// A parked SyncGroup.
    sync_ticket: Option<Ticket>,
    /// Joined but not yet through a completed join phase: such a member may expire even
    /// while its JoinGroup is parked (after [`NEW_MEMBER_JOIN_TIMEOUT_MS`]).
    is_new: bool,
    /// When the member expires unless heard from (ignored while a request of an
    /// established member is parked: a parked member cannot heartbeat).
    session_deadline_ms: i64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    /// Bytes this member makes the group hold (protocol metadata and assignment).
    fn bytes(&self) -> usize {
        protocols_bytes(&self.protocols).saturating_add(self.assignment.len())
    }

    /// When this member expires, or None while it cannot (Kafka's "satisfied heartbeat":
    /// an established member waiting in JoinGroup or SyncGroup).
    fn expiry_ms(&self) -> Option<i64> {
        if !self.is_new && (self.join_ticket.is_some() || self.sync_ticket.is_some()) {
            None
        } else {
            Some(self.session_deadline_ms)
        }
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

fn protocols_bytes(protocols: &[(String, Bytes)]) -> usize {
    protocols.iter().fold(0usize, |n, (name, m)| {
        n.saturating_add(name.len()).saturating_add(m.len())
    })
}

/// The state of the initial rebalance's delay (Kafka's `group.initial.rebalance.delay.ms`).
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    delay_ms: i64,
    remaining_ms: i64,
    new_member_added: bool,
}

/// A timer that is due, in [`ClassicGroup::earliest_due`]'s terms.
enum Due<'a> {
    Join,
    Sync,
    Pending(&'a str),
    Member(&'a str),
}

impl Due<'_> {
    fn to_owned(&self) -> Timer {
        match self {
            Due::Join => Timer::Join,
            Due::Sync => Timer::Sync,
            Due::Pending(id) => Timer::Pending((*id).to_owned()),
            Due::Member(id) => Timer::Member((*id).to_owned()),
        }
    }
}

/// [`Due`] without the borrow, for `tick` to act on.
enum Timer {
    Join,
    Sync,
    Pending(String),
    Member(String),
}

/// One classic group. See the module docs.
#[derive(Debug, Clone)]
pub struct ClassicGroup {
    group_id: String,
    state: ClassicState,
    previous_state: ClassicState,
    state_timestamp_ms: i64,
    generation_id: i32,
    /// Set by the first member and kept while the group lives (Kafka keeps it when Empty).
    protocol_type: Option<String>,
    /// The chosen protocol of the current generation; None when Empty.
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group instance id → member id.
    static_members: BTreeMap<String, String>,
    /// Member ids given with MemberIdRequired, waiting for the rejoin → expiry time.
    pending_members: BTreeMap<String, i64>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    /// Protocol name → how many members offer it (candidates: offered by all).
    protocol_counts: BTreeMap<String, usize>,
    /// When the join phase ends whether or not everyone rejoined.
    join_deadline_ms: Option<i64>,
    initial_delay: Option<InitialDelay>,
    /// When members that have not sent SyncGroup are removed.
    sync_deadline_ms: Option<i64>,
    /// `group.initial.rebalance.delay.ms` as of the last JoinGroup (only a JoinGroup takes
    /// a group out of Empty, and it brings the config).
    initial_rebalance_delay_ms: i64,
    /// The last durable state (see the module docs).
    durable: ClassicGroupSnapshot,
}

impl ClassicGroup {
    pub fn new(group_id: String, now_ms: i64) -> Self {
        let durable = ClassicGroupSnapshot {
            protocol_type: String::new(),
            generation_id: 0,
            protocol_name: None,
            leader: None,
            state_timestamp_ms: now_ms,
            members: Vec::new(),
        };
        Self {
            group_id,
            state: ClassicState::Empty,
            previous_state: ClassicState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            protocol_counts: BTreeMap::new(),
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
            initial_rebalance_delay_ms: GroupConfig::default().initial_rebalance_delay_ms,
            durable,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> ClassicState {
        self.state
    }

    /// "" before the first member joined.
    pub fn protocol_type(&self) -> &str {
        self.protocol_type.as_deref().unwrap_or("")
    }

    /// Kafka's `isEmpty` for a classic group: in the Empty state.
    pub fn is_empty(&self) -> bool {
        self.state == ClassicState::Empty
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn state_timestamp_ms(&self) -> i64 {
        self.state_timestamp_ms
    }

    /// The members of the group (not counting ids handed out with MemberIdRequired).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    // ---------------------------------------------------------------- JoinGroup

    pub fn join(
        &mut self,
        req: JoinRequest,
        ticket: Ticket,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Effects,
    ) {
        self.initial_rebalance_delay_ms = config.initial_rebalance_delay_ms;
        if let Err(error) = self.check_join(&req, config) {
            if error == GroupError::GroupMaxSizeReached {
                // As Kafka: a member left out of a shrunken group is removed, so the
                // rebalance can complete without it.
                self.remove_member(&req.member_id, GroupError::GroupMaxSizeReached, out);
                self.maybe_complete_join_phase(now_ms, out);
            }
            let member_id = req.member_id.clone();
            out.replies
                .push(Reply::Join(ticket, Err(JoinError { error, member_id })));
            return;
        }
        if req.member_id.is_empty() {
            self.join_new_member(req, ticket, config, now_ms, out);
        } else {
            self.join_existing_member(req, ticket, now_ms, out);
        }
    }

    /// Checks that need no member: bounds, session timeout, the group's state and size.
    fn check_join(&self, req: &JoinRequest, config: &GroupConfig) -> Result<(), GroupError> {
        check_join_bounds(req)?;
        if req.session_timeout_ms < config.min_session_timeout_ms
            || req.session_timeout_ms > config.max_session_timeout_ms
        {
            return Err(GroupError::InvalidSessionTimeout);
        }
        if self.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let names = req.protocols.iter().map(|(name, _)| name.as_str());
        if !self.supports_protocols(&req.protocol_type, names) {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        if !self.accepts_joining_member(req, config) {
            return Err(GroupError::GroupMaxSizeReached);
        }
        self.check_group_bytes(req)
    }

    /// Kafka's `acceptJoiningMember`, except that a static member rejoining under its
    /// known instance id replaces a member and so never makes the group bigger.
    fn accepts_joining_member(&self, req: &JoinRequest, config: &GroupConfig) -> bool {
        // A pending id is not a member yet: it counts against the size like a new one.
        let known = self.members.contains_key(&req.member_id)
            || req
                .group_instance_id
                .as_ref()
                .is_some_and(|i| self.static_members.contains_key(i));
        match self.state {
            ClassicState::Empty | ClassicState::Dead => config.max_size > 0,
            // Counting members that rejoined (not all members) lets a shrunken max size
            // take effect: the last to rejoin are the ones left out.
            ClassicState::PreparingRebalance => {
                self.members
                    .get(&req.member_id)
                    .is_some_and(|m| m.join_ticket.is_some())
                    || self.awaiting_join_count() < config.max_size
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                known || self.members.len() < config.max_size
            }
        }
    }

    /// GROUP_METADATA_MAX_BYTES over the whole group, counting this member's new protocols
    /// in place of its old ones.
    fn check_group_bytes(&self, req: &JoinRequest) -> Result<(), GroupError> {
        let replaced = self
            .members
            .get(&req.member_id)
            .map_or(0, |m| protocols_bytes(&m.protocols));
        let total = self
            .members
            .values()
            .fold(0usize, |n, m| n.saturating_add(m.bytes()))
            .saturating_sub(replaced)
            .saturating_add(protocols_bytes(&req.protocols));
        if total > GROUP_METADATA_MAX_BYTES {
            return Err(GroupError::InvalidRequest);
        }
        Ok(())
    }

    fn join_new_member(
        &mut self,
        req: JoinRequest,
        ticket: Ticket,
        config: &GroupConfig,
        now_ms: i64,
        out: &mut Effects,
    ) {
        let uuid = uuid::Uuid::new_v4();
        // Kafka's format: the instance id (static) or the client id (dynamic), then a UUID.
        let new_id = match &req.group_instance_id {
            Some(instance) => format!("{instance}-{uuid}"),
            None => format!("{}-{uuid}", req.client_id),
        };
        if let Some(instance) = req.group_instance_id.clone() {
            match self.static_members.get(&instance).cloned() {
                Some(old_id) => {
                    self.rejoin_static_member(req, ticket, &instance, &old_id, new_id, now_ms, out)
                }
                None => self.add_member(new_id, req, ticket, now_ms, out),
            }
        } else if req.require_known_member_id {
            // Bounded like members: a client looping on MemberIdRequired without rejoining
            // must not grow this map without limit.
            if self.pending_members.len() >= config.max_size {
                let error = GroupError::GroupMaxSizeReached;
                let member_id = String::new();
                out.replies
                    .push(Reply::Join(ticket, Err(JoinError { error, member_id })));
                return;
            }
            let expiry = now_ms.saturating_add(i64::from(req.session_timeout_ms));
            self.pending_members.insert(new_id.clone(), expiry);
            let error = GroupError::MemberIdRequired;
            out.replies.push(Reply::Join(
                ticket,
                Err(JoinError {
                    error,
                    member_id: new_id,
                }),
            ));
        } else {
            self.add_member(new_id, req, ticket, now_ms, out);
        }
    }

    fn join_existing_member(
        &mut self,
        req: JoinRequest,
        ticket: Ticket,
        now_ms: i64,
        out: &mut Effects,
    ) {
        // A pending id is always a dynamic one; with an instance id it is just unknown.
        if req.group_instance_id.is_none() && self.pending_members.contains_key(&req.member_id) {
            let id = req.member_id.clone();
            self.add_member(id, req, ticket, now_ms, out);
            return;
        }
        if let Err(error) = self.validate_member(&req.member_id, req.group_instance_id.as_deref()) {
            let member_id = req.member_id.clone();
            out.replies
                .push(Reply::Join(ticket, Err(JoinError { error, member_id })));
            return;
        }
        let id = req.member_id.clone();
        let (is_leader, matches) = match self.members.get_mut(&id) {
            Some(member) => {
                member.session_deadline_ms =
                    now_ms.saturating_add(i64::from(member.session_timeout_ms));
                (
                    self.leader.as_deref() == Some(id.as_str()),
                    member.matches(&req.protocols),
                )
            }
            None => return self.reply_join_error(ticket, GroupError::UnknownMemberId, id, out),
        };
        match self.state {
            ClassicState::PreparingRebalance => {
                self.update_member(&id, &req, Some(ticket), out);
                self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
            }
            // Same metadata: the member missed its JoinGroup answer; give it again.
            ClassicState::CompletingRebalance if matches => {
                let response = self.join_response(&id, is_leader, false);
                out.replies.push(Reply::Join(ticket, Ok(response)));
            }
            // A follower with unchanged metadata gets the current generation; the leader
            // rejoining asks for a rebalance (e.g. topic metadata changed), so does a
            // member whose metadata changed.
            ClassicState::Stable if matches && !is_leader => {
                let response = self.join_response(&id, false, false);
                out.replies.push(Reply::Join(ticket, Ok(response)));
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.update_member(&id, &req, Some(ticket), out);
                self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
            }
            ClassicState::Empty | ClassicState::Dead => {
                self.reply_join_error(ticket, GroupError::UnknownMemberId, id, out)
            }
        }
    }

    fn reply_join_error(
        &self,
        ticket: Ticket,
        error: GroupError,
        member_id: String,
        out: &mut Effects,
    ) {
        out.replies
            .push(Reply::Join(ticket, Err(JoinError { error, member_id })));
    }

    fn add_member(
        &mut self,
        id: String,
        req: JoinRequest,
        ticket: Ticket,
        now_ms: i64,
        out: &mut Effects,
    ) {
        self.pending_members.remove(&id);
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state == ClassicState::Empty
            && let Some(delay) = self.initial_delay.as_mut()
        {
            delay.new_member_added = true;
        }
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        for (name, _) in &req.protocols {
            *self.protocol_counts.entry(name.clone()).or_insert(0) += 1;
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        let rebalance_timeout_ms = effective_rebalance_timeout(&req);
        let member = Member {
            id: id.clone(),
            instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            assignment_generation: None,
            join_ticket: Some(ticket),
            sync_ticket: None,
            is_new: true,
            // A new member cannot heartbeat while its JoinGroup is parked, so it gets the
            // new-member join timeout instead of its session timeout.
            session_deadline_ms: now_ms.saturating_add(NEW_MEMBER_JOIN_TIMEOUT_MS),
        };
        self.members.insert(id, member);
        self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
    }

    /// New protocols and timeouts for a known member; parks `ticket` (answering a JoinGroup
    /// it supersedes, which a client that retried no longer waits for).
    fn update_member(
        &mut self,
        id: &str,
        req: &JoinRequest,
        ticket: Option<Ticket>,
        out: &mut Effects,
    ) {
        let Some(member) = self.members.get_mut(id) else {
            return;
        };
        for (name, _) in &member.protocols {
            decrement_count(&mut self.protocol_counts, name);
        }
        for (name, _) in &req.protocols {
            *self.protocol_counts.entry(name.clone()).or_insert(0) += 1;
        }
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = effective_rebalance_timeout(req);
        member.session_timeout_ms = req.session_timeout_ms;
        if let Some(old) = member.join_ticket.take() {
            let error = GroupError::RebalanceInProgress;
            let member_id = id.to_owned();
            out.replies
                .push(Reply::Join(old, Err(JoinError { error, member_id })));
        }
        member.join_ticket = ticket;
    }

    /// KIP-345: a static member rejoining with no member id replaces its old member id
    /// (requests with the old id are fenced from now on).
    #[allow(clippy::too_many_arguments)]
    fn rejoin_static_member(
        &mut self,
        req: JoinRequest,
        ticket: Ticket,
        instance: &str,
        old_id: &str,
        new_id: String,
        now_ms: i64,
        out: &mut Effects,
    ) {
        let leader_before = self.leader.clone().unwrap_or_default();
        let Some(mut member) = self.members.remove(old_id) else {
            // The instance map and the members disagree: a bug, but not one to crash on.
            self.static_members.remove(instance);
            return self.add_member(new_id, req, ticket, now_ms, out);
        };
        if let Some(old) = member.join_ticket.take() {
            let error = GroupError::FencedInstanceId;
            let member_id = old_id.to_owned();
            out.replies
                .push(Reply::Join(old, Err(JoinError { error, member_id })));
        }
        if let Some(old) = member.sync_ticket.take() {
            out.replies
                .push(Reply::Sync(old, Err(GroupError::FencedInstanceId)));
        }
        member.id = new_id.clone();
        member.session_deadline_ms = now_ms.saturating_add(i64::from(req.session_timeout_ms));
        self.members.insert(new_id.clone(), member);
        self.static_members
            .insert(instance.to_owned(), new_id.clone());
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        self.update_member(&new_id, &req, Some(ticket), out);
        match self.state {
            ClassicState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    // Nothing the assignment depends on changed: keep the generation.
                    let ticket = self
                        .members
                        .get_mut(&new_id)
                        .and_then(|m| m.join_ticket.take());
                    let Some(ticket) = ticket else { return };
                    let response = if req.supports_skip_assignment {
                        let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                        self.join_response(&new_id, is_leader, is_leader)
                    } else {
                        // Before v9 a leader told it leads would compute an assignment
                        // over no members: name the leader as it was before the swap.
                        let mut r = self.join_response(&new_id, false, false);
                        r.leader = leader_before;
                        r
                    };
                    out.replies.push(Reply::Join(ticket, Ok(response)));
                    self.persist(out);
                } else {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, out);
                }
            }
            // The leader may already be assigning to the old id: start over.
            ClassicState::CompletingRebalance => self.prepare_rebalance(now_ms, out),
            ClassicState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, out),
            ClassicState::Empty | ClassicState::Dead => {}
        }
    }

    fn join_response(
        &self,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> JoinResponse {
        let members = if with_members {
            self.joined_members()
        } else {
            Vec::new()
        };
        JoinResponse {
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_owned(),
            members,
        }
    }

    /// The member list the leader assigns over: metadata for the chosen protocol.
    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    // ---------------------------------------------------------------- SyncGroup

    pub fn sync(&mut self, req: SyncRequest, ticket: Ticket, now_ms: i64, out: &mut Effects) {
        let result = self.check_sync(&req);
        if let Err(error) = result {
            out.replies.push(Reply::Sync(ticket, Err(error)));
            return;
        }
        match self.state {
            ClassicState::PreparingRebalance => {
                out.replies
                    .push(Reply::Sync(ticket, Err(GroupError::RebalanceInProgress)));
            }
            ClassicState::CompletingRebalance => self.park_sync(req, ticket, now_ms, out),
            ClassicState::Stable => {
                self.pending_sync.remove(&req.member_id);
                self.clear_sync_deadline_if_done();
                let response = match self.members.get_mut(&req.member_id) {
                    Some(member) => {
                        member.session_deadline_ms =
                            now_ms.saturating_add(i64::from(member.session_timeout_ms));
                        Ok(SyncResponse {
                            protocol_type: self.protocol_type.clone(),
                            protocol_name: self.protocol_name.clone(),
                            assignment: member.assignment.clone(),
                        })
                    }
                    None => Err(GroupError::UnknownMemberId),
                };
                out.replies.push(Reply::Sync(ticket, response));
            }
            ClassicState::Empty | ClassicState::Dead => {
                out.replies
                    .push(Reply::Sync(ticket, Err(GroupError::UnknownMemberId)));
            }
        }
    }

    fn check_sync(&self, req: &SyncRequest) -> Result<(), GroupError> {
        match self.state {
            ClassicState::Dead => return Err(GroupError::CoordinatorNotAvailable),
            ClassicState::Empty => return Err(GroupError::UnknownMemberId),
            _ => {}
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        if inconsistent(req.protocol_type.as_deref(), self.protocol_type.as_deref())
            || inconsistent(req.protocol_name.as_deref(), self.protocol_name.as_deref())
        {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        Ok(())
    }

    fn park_sync(&mut self, req: SyncRequest, ticket: Ticket, now_ms: i64, out: &mut Effects) {
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        // Check the leader's assignment before parking anything, so a bad one is refused
        // with the group unchanged.
        let assignment = if is_leader {
            match self.check_assignment(&req.assignments) {
                Ok(a) => Some(a),
                Err(error) => {
                    out.replies.push(Reply::Sync(ticket, Err(error)));
                    return;
                }
            }
        } else {
            None
        };
        let Some(member) = self.members.get_mut(&req.member_id) else {
            out.replies
                .push(Reply::Sync(ticket, Err(GroupError::UnknownMemberId)));
            return;
        };
        if let Some(old) = member.sync_ticket.replace(ticket) {
            out.replies
                .push(Reply::Sync(old, Err(GroupError::RebalanceInProgress)));
        }
        member.session_deadline_ms = now_ms.saturating_add(i64::from(member.session_timeout_ms));
        self.pending_sync.remove(&req.member_id);
        self.clear_sync_deadline_if_done();
        if let Some(mut assignment) = assignment {
            for member in self.members.values_mut() {
                member.assignment = assignment.remove(&member.id).unwrap_or_default();
                member.assignment_generation = Some(self.generation_id);
            }
            self.transition(ClassicState::Stable, now_ms);
            self.propagate_assignment(Ok(()), now_ms, out);
            self.persist(out);
        }
    }

    /// The leader's assignment as a map over current members: entries for ids that are
    /// not members are dropped (as Kafka); a member named twice or bytes over the bounds
    /// are InvalidRequest.
    fn check_assignment(
        &self,
        assignments: &[(String, Bytes)],
    ) -> Result<BTreeMap<String, Bytes>, GroupError> {
        let mut map = BTreeMap::new();
        let mut total = self.members.values().fold(0usize, |n, m| {
            n.saturating_add(protocols_bytes(&m.protocols))
        });
        for (id, bytes) in assignments {
            if !self.members.contains_key(id) {
                continue;
            }
            if bytes.len() > MEMBER_METADATA_MAX_BYTES {
                return Err(GroupError::InvalidRequest);
            }
            total = total.saturating_add(bytes.len());
            if map.insert(id.clone(), bytes.clone()).is_some() {
                return Err(GroupError::InvalidRequest);
            }
        }
        if total > GROUP_METADATA_MAX_BYTES {
            return Err(GroupError::InvalidRequest);
        }
        Ok(map)
    }

    /// Answers every parked SyncGroup: with the member's assignment, or `error`.
    fn propagate_assignment(
        &mut self,
        result: Result<(), GroupError>,
        now_ms: i64,
        out: &mut Effects,
    ) {
        for member in self.members.values_mut() {
            let Some(ticket) = member.sync_ticket.take() else {
                continue;
            };
            let reply = result.map(|()| SyncResponse {
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol_name.clone(),
                assignment: member.assignment.clone(),
            });
            out.replies.push(Reply::Sync(ticket, reply));
            // The member could not heartbeat while parked: its session starts over.
            member.session_deadline_ms =
                now_ms.saturating_add(i64::from(member.session_timeout_ms));
        }
    }

    fn clear_sync_deadline_if_done(&mut self) {
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    // ---------------------------------------------------------------- Heartbeat, LeaveGroup

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        if self.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, group_instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        let state = self.state;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        match state {
            ClassicState::Empty | ClassicState::Dead => Err(GroupError::UnknownMemberId),
            ClassicState::PreparingRebalance => {
                member.session_deadline_ms =
                    now_ms.saturating_add(i64::from(member.session_timeout_ms));
                Err(GroupError::RebalanceInProgress)
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                member.session_deadline_ms =
                    now_ms.saturating_add(i64::from(member.session_timeout_ms));
                Ok(())
            }
        }
    }

    /// LeaveGroup v3+ (a batch) and v0–2 (one member id): one result per entry of
    /// `members`, in order. A Dead group answers every entry CoordinatorNotAvailable (the
    /// front end puts it in the top-level error for v0–2).
    pub fn leave(
        &mut self,
        members: &[LeaveMember],
        _config: &GroupConfig,
        now_ms: i64,
        out: &mut Effects,
    ) -> Vec<Result<(), GroupError>> {
        if self.state == ClassicState::Dead {
            return vec![Err(GroupError::CoordinatorNotAvailable); members.len()];
        }
        let mut results = Vec::with_capacity(members.len());
        let mut removed_any = false;
        for leaving in members {
            let result = self.leave_one(leaving, out);
            removed_any |= result.is_ok();
            results.push(result);
        }
        if removed_any {
            match self.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => {
                    self.maybe_prepare_rebalance_or_complete_join(now_ms, out)
                }
                ClassicState::PreparingRebalance => self.maybe_complete_join_phase(now_ms, out),
                ClassicState::Empty | ClassicState::Dead => {}
            }
        }
        results
    }

    fn leave_one(&mut self, leaving: &LeaveMember, out: &mut Effects) -> Result<(), GroupError> {
        if leaving.member_id.is_empty() {
            // Admin removal of a static member by instance id alone.
            let id = leaving
                .group_instance_id
                .as_ref()
                .and_then(|i| self.static_members.get(i))
                .cloned()
                .ok_or(GroupError::UnknownMemberId)?;
            self.remove_member(&id, GroupError::UnknownMemberId, out);
            return Ok(());
        }
        if self.pending_members.remove(&leaving.member_id).is_some() {
            return Ok(());
        }
        self.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref())?;
        self.remove_member(&leaving.member_id, GroupError::UnknownMemberId, out);
        Ok(())
    }

    // ---------------------------------------------------------------- OffsetCommit

    /// OffsetCommit's checks: generation -1 with member "" is a standalone commit, allowed
    /// only when the group is Empty; otherwise UnknownMemberId / FencedInstanceId /
    /// IllegalGeneration, and RebalanceInProgress while CompletingRebalance (the member has
    /// its new generation but not its assignment yet).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if self.state == ClassicState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == ClassicState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(GroupError::IllegalGeneration);
            }
        } else {
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == ClassicState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Kafka's `validateMember`: a static member's id must be the one its instance id maps
    /// to (else it was replaced: FencedInstanceId); the id must be a member's.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(current) if current != member_id => {
                    return Err(GroupError::FencedInstanceId);
                }
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- timers

    /// The earliest time `tick` has work (session expiry, rebalance timeout, initial
    /// delay, pending member expiry, sync timeout). O(members).
    pub fn next_deadline(&self) -> Option<i64> {
        self.earliest_due().map(|(at, _)| at)
    }

    fn earliest_due(&self) -> Option<(i64, Due<'_>)> {
        fn offer<'a>(at: i64, due: Due<'a>, best: &mut Option<(i64, Due<'a>)>) {
            if best.as_ref().is_none_or(|(b, _)| at < *b) {
                *best = Some((at, due));
            }
        }
        let mut best: Option<(i64, Due<'_>)> = None;
        if self.state == ClassicState::Dead {
            return None;
        }
        if let Some(at) = self.join_deadline_ms {
            offer(at, Due::Join, &mut best);
        }
        if let Some(at) = self.sync_deadline_ms {
            offer(at, Due::Sync, &mut best);
        }
        for (id, at) in &self.pending_members {
            offer(*at, Due::Pending(id), &mut best);
        }
        for member in self.members.values() {
            if let Some(at) = member.expiry_ms() {
                offer(at, Due::Member(&member.id), &mut best);
            }
        }
        best
    }

    /// Runs every timer due at `now_ms`, earliest first.
    /// `config` is unused today (timers carry what they need) but kept so the caller's
    /// shape does not change when a timer needs a setting.
    pub fn tick(&mut self, _config: &GroupConfig, now_ms: i64, out: &mut Effects) {
        let bound = (self.members.len() + self.pending_members.len())
            .saturating_mul(TICK_EVENTS_PER_MEMBER_MAX)
            .saturating_add(TICK_EVENTS_GROUP_MAX);
        for _ in 0..bound {
            let (at, due) = match self.earliest_due() {
                Some((at, due)) if at <= now_ms => (at, due.to_owned()),
                _ => return,
            };
            match due {
                Timer::Join => self.on_join_deadline(at, now_ms, out),
                Timer::Sync => self.on_sync_deadline(now_ms, out),
                Timer::Pending(id) => {
                    self.pending_members.remove(&id);
                    if self.state == ClassicState::PreparingRebalance && self.all_members_joined() {
                        self.complete_join(now_ms, out);
                    }
                }
                Timer::Member(id) => self.expire_member(&id, now_ms, out),
            }
        }
    }

    /// The join phase's timer, due at `at`. The initial delay's next wait counts from `at`
    /// (when the timer was due), so a late tick behaves as one on time would have.
    fn on_join_deadline(&mut self, at: i64, now_ms: i64, out: &mut Effects) {
        self.join_deadline_ms = None;
        if let Some(delay) = self.initial_delay
            && delay.new_member_added
            && delay.remaining_ms != 0
        {
            // Someone joined during the delay: wait again (never past the rebalance timeout
            // in total), in case more are coming.
            let delay_ms = delay.delay_ms.min(delay.remaining_ms);
            self.initial_delay = Some(InitialDelay {
                delay_ms,
                remaining_ms: (delay.remaining_ms - delay.delay_ms).max(0),
                new_member_added: false,
            });
            self.join_deadline_ms = Some(at.saturating_add(delay_ms));
            return;
        }
        self.complete_join(now_ms, out);
    }

    /// Members that got their JoinGroup answer but never sent SyncGroup within the
    /// rebalance timeout are removed, and the group rebalances without them.
    fn on_sync_deadline(&mut self, now_ms: i64, out: &mut Effects) {
        self.sync_deadline_ms = None;
        if !matches!(
            self.state,
            ClassicState::CompletingRebalance | ClassicState::Stable
        ) {
            return;
        }
        let late: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        if late.is_empty() {
            return;
        }
        for id in &late {
            self.remove_member(id, GroupError::UnknownMemberId, out);
        }
        self.prepare_rebalance(now_ms, out);
    }

    fn expire_member(&mut self, id: &str, now_ms: i64, out: &mut Effects) {
        if !self.members.contains_key(id) {
            return;
        }
        self.remove_member(id, GroupError::UnknownMemberId, out);
        match self.state {
            ClassicState::Stable | ClassicState::CompletingRebalance => {
                self.maybe_prepare_rebalance_or_complete_join(now_ms, out)
            }
            ClassicState::PreparingRebalance if self.all_members_joined() => {
                self.complete_join(now_ms, out)
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- rebalance

    fn transition(&mut self, to: ClassicState, now_ms: i64) {
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    fn can_rebalance(&self) -> bool {
        matches!(
            self.state,
            ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty
        )
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, now_ms: i64, out: &mut Effects) {
        if self.can_rebalance() {
            self.prepare_rebalance(now_ms, out);
        } else {
            self.maybe_complete_join_phase(now_ms, out);
        }
    }

    /// Completes the join phase early when every member has rejoined — except during the
    /// initial delay, which exists to wait for members not known yet.
    fn maybe_complete_join_phase(&mut self, now_ms: i64, out: &mut Effects) {
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state != ClassicState::Empty
            && self.all_members_joined()
        {
            self.complete_join(now_ms, out);
        }
    }

    fn prepare_rebalance(&mut self, now_ms: i64, out: &mut Effects) {
        if self.state == ClassicState::CompletingRebalance {
            // Parked SyncGroups belong to a generation that will never be assigned.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                member.assignment_generation = None;
            }
            self.propagate_assignment(Err(GroupError::RebalanceInProgress), now_ms, out);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let initial = self.state == ClassicState::Empty;
        self.transition(ClassicState::PreparingRebalance, now_ms);
        if initial {
            self.start_initial_delay(now_ms);
            return;
        }
        self.initial_delay = None;
        if self.all_members_joined() {
            self.complete_join(now_ms, out);
        } else {
            self.join_deadline_ms = Some(now_ms.saturating_add(self.rebalance_timeout_ms()));
        }
    }

    /// Starts the initial delay of a group leaving Empty.
    fn start_initial_delay(&mut self, now_ms: i64) {
        let delay_ms = self.initial_rebalance_delay_ms.max(0);
        let remaining_ms = (self.rebalance_timeout_ms() - delay_ms).max(0);
        self.initial_delay = Some(InitialDelay {
            delay_ms,
            remaining_ms,
            new_member_added: false,
        });
        self.join_deadline_ms = Some(now_ms.saturating_add(delay_ms));
    }

    fn complete_join(&mut self, now_ms: i64, out: &mut Effects) {
        self.join_deadline_ms = None;
        self.initial_delay = None;
        // Dynamic members that did not rejoin are gone; static ones stay (they may be
        // restarting) until their session expires.
        let absent: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_ticket.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &absent {
            self.remove_member(id, GroupError::UnknownMemberId, out);
        }
        if self.state == ClassicState::Dead {
            return;
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them (or for
            // their sessions to expire).
            self.join_deadline_ms = Some(now_ms.saturating_add(self.rebalance_timeout_ms()));
            return;
        }
        self.generation_id = self.generation_id.saturating_add(1);
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(ClassicState::Empty, now_ms);
            self.persist(out);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(ClassicState::CompletingRebalance, now_ms);
        let leader_members = self.joined_members();
        let leader = self.leader.clone();
        let base = self.join_response("", false, false);
        for member in self.members.values_mut() {
            if let Some(ticket) = member.join_ticket.take() {
                let mut response = base.clone();
                response.member_id = member.id.clone();
                if leader.as_deref() == Some(member.id.as_str()) {
                    response.members = leader_members.clone();
                }
                out.replies.push(Reply::Join(ticket, Ok(response)));
            }
            member.session_deadline_ms =
                now_ms.saturating_add(i64::from(member.session_timeout_ms));
            member.is_new = false;
            self.pending_sync.insert(member.id.clone());
        }
        self.sync_deadline_ms = Some(now_ms.saturating_add(self.rebalance_timeout_ms()));
    }

    /// Keeps the leader if it rejoined, else picks a member that did; false if none did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.join_ticket.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.join_ticket.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Among the protocols every member offers, each member votes for the one it prefers
    /// most; most votes wins, a tie goes to the smallest name (Kafka leaves ties to hash
    /// order; this makes them deterministic).
    fn select_protocol(&self) -> Option<String> {
        let n = self.members.len();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let vote = member
                .protocols
                .iter()
                .find(|(name, _)| self.protocol_counts.get(name) == Some(&n));
            if let Some((name, _)) = vote {
                *votes.entry(name.as_str()).or_insert(0) += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_owned())
    }

    fn supports_protocols<'a>(
        &self,
        protocol_type: &str,
        mut names: impl Iterator<Item = &'a str>,
    ) -> bool {
        if self.state == ClassicState::Empty {
            return !protocol_type.is_empty() && names.next().is_some();
        }
        let n = self.members.len();
        self.protocol_type.as_deref() == Some(protocol_type)
            && names.any(|name| self.protocol_counts.get(name).copied().unwrap_or(0) == n)
    }

    fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.awaiting_join_count() == self.members.len()
    }

    fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.join_ticket.is_some())
            .count()
    }

    /// The largest rebalance timeout of the members (at least 1 ms, so a rescheduled timer
    /// always lies in the future).
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
            .max(1)
    }

    /// Removes a member, answering its parked requests with `error`.
    fn remove_member(&mut self, id: &str, error: GroupError, out: &mut Effects) {
        let Some(mut member) = self.members.remove(id) else {
            return;
        };
        if let Some(ticket) = member.join_ticket.take() {
            let member_id = String::new();
            out.replies
                .push(Reply::Join(ticket, Err(JoinError { error, member_id })));
        }
        if let Some(ticket) = member.sync_ticket.take() {
            out.replies.push(Reply::Sync(ticket, Err(error)));
        }
        for (name, _) in &member.protocols {
            decrement_count(&mut self.protocol_counts, name);
        }
        if let Some(instance) = &member.instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(id)
        {
            self.static_members.remove(instance);
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_sync.remove(id);
    }

    // ---------------------------------------------------------------- describe, snapshot

    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == ClassicState::Stable;
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        let members = self
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata(protocol).cloned().unwrap_or_default()
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            state: self.state,
            protocol_type: self.protocol_type().to_owned(),
            protocol_name: if stable {
                protocol.to_owned()
            } else {
                String::new()
            },
            members,
        }
    }

    /// Topics the members subscribe to, decoded from the consumer protocol's subscription
    /// for the chosen protocol (protocol type "consumer" only). For OffsetDelete.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        let mut topics = BTreeSet::new();
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return topics;
        }
        let Some(protocol) = self.protocol_name.as_deref() else {
            return topics;
        };
        for member in self.members.values() {
            if let Some(names) = member
                .metadata(protocol)
                .and_then(|m| decode_subscription_topics(m))
            {
                topics.extend(names);
            }
        }
        topics
    }

    /// The last durable state (see the module docs).
    pub fn snapshot(&self) -> ClassicGroupSnapshot {
        self.durable.clone()
    }

    /// Records the current state as the durable one and asks the caller to write it.
    fn persist(&mut self, out: &mut Effects) {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        let members = if self.state == ClassicState::Empty {
            Vec::new()
        } else {
            self.members
                .values()
                .map(|m| ClassicMemberSnapshot {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol).cloned().unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect()
        };
        self.durable = ClassicGroupSnapshot {
            protocol_type: self.protocol_type().to_owned(),
            generation_id: self.generation_id,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members,
        };
        out.changed = true;
    }

    /// After a broker restart: a snapshot with members comes back Stable, each member with
    /// its assignment and a session starting at `now_ms`; without members (or without a
    /// protocol name, which a group with members always has) it comes back Empty. The
    /// snapshot was read from disk: duplicate ids and instance ids keep the first.
    pub fn restore(group_id: String, snapshot: ClassicGroupSnapshot, now_ms: i64) -> Self {
        let mut group = Self::new(group_id, snapshot.state_timestamp_ms);
        group.generation_id = snapshot.generation_id.max(0);
        if !snapshot.protocol_type.is_empty() {
            group.protocol_type = Some(snapshot.protocol_type.clone());
        }
        let protocol_name = snapshot.protocol_name.clone();
        if let Some(protocol) = protocol_name
            .as_ref()
            .filter(|_| !snapshot.members.is_empty())
        {
            for m in &snapshot.members {
                if group.members.contains_key(&m.member_id) {
                    continue;
                }
                if let Some(instance) = &m.group_instance_id {
                    if group.static_members.contains_key(instance) {
                        continue;
                    }
                    group
                        .static_members
                        .insert(instance.clone(), m.member_id.clone());
                }
                *group.protocol_counts.entry(protocol.clone()).or_insert(0) += 1;
                let member = Member {
                    id: m.member_id.clone(),
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms.max(1),
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: vec![(protocol.clone(), m.subscription.clone())],
                    assignment: m.assignment.clone(),
                    assignment_generation: Some(group.generation_id),
                    join_ticket: None,
                    sync_ticket: None,
                    is_new: false,
                    session_deadline_ms: now_ms.saturating_add(i64::from(m.session_timeout_ms)),
                };
                group.members.insert(m.member_id.clone(), member);
            }
            group.protocol_name = Some(protocol.clone());
            group.leader = snapshot
                .leader
                .clone()
                .filter(|l| group.members.contains_key(l))
                .or_else(|| group.members.keys().next().cloned());
            group.state = ClassicState::Stable;
            group.previous_state = ClassicState::Stable;
        }
        group.durable = snapshot;
        group
    }

    /// DeleteGroups / expiry: the group becomes Dead; parked requests are answered
    /// CoordinatorNotAvailable (the client looks the coordinator up again and rejoins).
    /// The caller writes the tombstone; `changed` is not set.
    pub fn mark_dead(&mut self, out: &mut Effects) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            self.remove_member(id, GroupError::CoordinatorNotAvailable, out);
        }
        self.pending_members.clear();
        self.pending_sync.clear();
        self.join_deadline_ms = None;
        self.initial_delay = None;
        self.sync_deadline_ms = None;
        self.protocol_name = None;
        self.leader = None;
        let now_ms = self.state_timestamp_ms;
        self.transition(ClassicState::Dead, now_ms);
    }
}

fn decrement_count(counts: &mut BTreeMap<String, usize>, name: &str) {
    if let Some(count) = counts.get_mut(name) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(name);
        }
    }
}

/// JoinGroup v0 has no rebalance timeout (sent as -1): Kafka uses the session timeout.
fn effective_rebalance_timeout(req: &JoinRequest) -> i32 {
    if req.rebalance_timeout_ms < 0 {
        req.session_timeout_ms
    } else {
        req.rebalance_timeout_ms
    }
}

/// A given protocol type or name must be the group's (SyncGroup v5+).
fn inconsistent(given: Option<&str>, group: Option<&str>) -> bool {
    given.is_some_and(|g| Some(g) != group)
}

/// Bounds on what a JoinGroup would store (nothing is stored when one fails).
fn check_join_bounds(req: &JoinRequest) -> Result<(), GroupError> {
    let names = [
        req.member_id.as_str(),
        req.protocol_type.as_str(),
        req.client_id.as_str(),
        req.client_host.as_str(),
        req.group_instance_id.as_deref().unwrap_or(""),
    ];
    if names.iter().any(|n| n.len() > NAME_MAX_BYTES) {
        return Err(GroupError::InvalidRequest);
    }
    if req.group_instance_id.as_deref() == Some("") {
        return Err(GroupError::InvalidRequest);
    }
    if req.protocol_type.is_empty() || req.protocols.is_empty() {
        return Err(GroupError::InconsistentGroupProtocol);
    }
    if req.protocols.len() > PROTOCOLS_PER_MEMBER_MAX {
        return Err(GroupError::InvalidRequest);
    }
    let mut seen = BTreeSet::new();
    for (name, _) in &req.protocols {
        // Distinct names keep the per-protocol member counts exact.
        if name.len() > NAME_MAX_BYTES || !seen.insert(name.as_str()) {
            return Err(GroupError::InvalidRequest);
        }
    }
    if protocols_bytes(&req.protocols) > MEMBER_METADATA_MAX_BYTES {
        return Err(GroupError::InvalidRequest);
    }
    Ok(())
}

/// The topic names of a consumer protocol subscription (ConsumerProtocolSubscription, any
/// version: i16 version, then an array of i16-length strings), or None if it does not
/// decode. The count is checked against the bytes present before anything is allocated.
fn decode_subscription_topics(bytes: &[u8]) -> Option<Vec<String>> {
    let mut rest = bytes;
    let version = i16::from_be_bytes(take::<2>(&mut rest)?);
    if version < 0 {
        return None;
    }
    let count = i32::from_be_bytes(take::<4>(&mut rest)?);
    let count = usize::try_from(count).ok()?;
    // Each name takes at least its two length bytes.
    if count > rest.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::try_from(i16::from_be_bytes(take::<2>(&mut rest)?)).ok()?;
        if len > rest.len() {
            return None;
        }
        let (name, tail) = rest.split_at(len);
        topics.push(std::str::from_utf8(name).ok()?.to_owned());
        rest = tail;
    }
    Some(topics)
}

fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

#[cfg(test)]
mod tests;
