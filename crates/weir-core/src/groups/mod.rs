//! Consumer groups: the coordinator's state, as pure state machines driven by requests and
//! the current time (no sockets, no sleeps, no clock reads), plus the records that make
//! that state durable in the internal compacted topic `__consumer_offsets`.
//!
//! # Layout
//! - `classic`: one group under Kafka's classic protocol (JoinGroup / SyncGroup /
//!   Heartbeat / LeaveGroup), static membership (KIP-345), session and rebalance timeouts.
//! - `consumer`: one group under the KIP-848 protocol (ConsumerGroupHeartbeat), with the
//!   assignment computed here by an `assignor`.
//! - `offsets`: committed offsets of every group, and their expiry.
//! - `records`: the key/value format of `__consumer_offsets` records.
//! - `coordinator`: every group behind one lock; writes the records; what front ends call.
//!
//! # What it must never do
//! No wire types and no error codes: requests and answers are plain structs here, errors are
//! [`GroupError`], and the Kafka front end maps both. Protocol metadata and assignments of
//! classic groups are opaque bytes; only the KIP-848 path (which assigns on the broker)
//! looks at topics and partitions.

use bytes::Bytes;

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod coordinator;
pub mod offsets;
pub mod records;

pub use classic::Reply;

/// Names a parked request (a JoinGroup or SyncGroup waiting for the rebalance): the state
/// machine answers it later through a [`Reply`] carrying the same ticket.
pub type Ticket = u64;

/// Why a group request failed. Front ends map each to their protocol's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum GroupError {
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("a new member must rejoin with the member id it was given")]
    MemberIdRequired,
    #[error("another member with the same group.instance.id replaced this one")]
    FencedInstanceId,
    #[error("the member's protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the session timeout is outside the broker's bounds")]
    InvalidSessionTimeout,
    #[error("the group has as many members as it may have")]
    GroupMaxSizeReached,
    #[error("no such group")]
    GroupIdNotFound,
    #[error("the group still has members")]
    NonEmptyGroup,
    #[error("the group id is not valid")]
    InvalidGroupId,
    #[error("the member epoch is newer than the group's: the member is fenced")]
    FencedMemberEpoch,
    #[error("the member epoch is older than the member's current one")]
    StaleMemberEpoch,
    #[error("the static member has not left yet")]
    UnreleasedInstanceId,
    #[error("the requested server-side assignor is not known")]
    UnsupportedAssignor,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the offset metadata is larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("no such topic or partition")]
    UnknownTopicOrPartition,
    #[error("the request is malformed or exceeds a bound")]
    InvalidRequest,
    #[error("the regular expression is not valid")]
    InvalidRegularExpression,
    #[error("the coordinator cannot serve the group now")]
    CoordinatorNotAvailable,
}

/// The coordinator's settings (Kafka's names in the comments; defaults as Kafka 4).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group
    /// waits for more members (each new member extends it, up to the rebalance timeout).
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms` and `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members of one classic group.
    pub max_size: usize,
    /// `group.consumer.session.timeout.ms` and `group.consumer.heartbeat.interval.ms`
    /// (KIP-848 groups).
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`: members of one KIP-848 group.
    pub consumer_max_size: usize,
    /// `offsets.retention.minutes`, in ms: how long offsets of an empty group live.
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            // Kafka's default is unbounded; weir bounds it so one group cannot take the
            // coordinator's memory (each member may carry up to MEMBER_METADATA_MAX_BYTES).
            max_size: 1_000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            consumer_max_size: 1_000,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offset_metadata_max_bytes: 4_096,
        }
    }
}

/// Most protocols one classic member may offer (clients offer one to three).
pub const PROTOCOLS_PER_MEMBER_MAX: usize = 64;
/// Most bytes of protocol metadata (all protocols together) or of an assignment one member
/// may carry: a subscription to thousands of topics fits.
pub const MEMBER_METADATA_MAX_BYTES: usize = 1 << 20;
/// Most bytes all members of one group may carry together: bounds one group's memory and
/// the size of its record in `__consumer_offsets`.
pub const GROUP_METADATA_MAX_BYTES: usize = 32 << 20;
/// Longest group id, member id, instance id, client id or protocol name accepted.
pub const NAME_MAX_BYTES: usize = 4_096;

/// What a classic group's durable record holds (Kafka's GroupMetadataValue): enough to
/// carry on after a restart without a rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicGroupSnapshot {
    /// "" for a group that only has committed offsets (a standalone consumer's).
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (offset expiry counts from Empty).
    pub state_timestamp_ms: i64,
    pub members: Vec<ClassicMemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A committed offset (Kafka's OffsetCommitValue v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client did not send one.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}
