//! Kafka's transaction coordinator (KIP-98, with KIP-360 epoch bumps and KIP-588 retries
//! of them), as a pure state machine: requests and the time go in; records to write to
//! `__transaction_state`, transaction markers to write to partitions, and replies come out.
//!
//! # Layout
//! - [`coordinator`]: [`TxnCoordinator`], every transactional id's state and its transitions
//!   (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, the TxnOffsetCommit
//!   check, timeouts, expiry, replay).
//! - [`records`]: the key/value format of `__transaction_state` records (Kafka's).
//!
//! # The caller's contract
//! Each call returns [`Effects`]. The caller must, in this order:
//! 1. write `records` to `__transaction_state` (in order) and wait until they are durable —
//!    memory runs ahead of the log, so a failed write must fail-stop the coordinator (reload
//!    it from the log, as Kafka does on a log write error);
//! 2. send `replies`;
//! 3. write each of `markers` (a COMMIT or ABORT control batch to every partition listed,
//!    and tell the group coordinator to materialize or drop the listed groups' pending
//!    offsets), then call [`TxnCoordinator::markers_written`] once for it.
//!
//! # What it must never do
//! Read a clock, sleep, touch a socket or a file, speak a wire version, or panic on
//! anything a client sent or the log held. Producer ids come from the caller (an
//! allocator closure, in weir `crate::producer_ids::ProducerIds`).
//!
//! # Where weir differs from Kafka
//! - Kafka answers InitProducerId for an id with an open transaction with
//!   CONCURRENT_TRANSACTIONS after starting the abort, and the client retries. Here the
//!   request is parked until the abort's markers are written and then answered with the new
//!   epoch, so the client need not retry (one parked InitProducerId per id; another one
//!   meanwhile gets [`TxnError::ConcurrentTransactions`]).
//! - Transactions v2 (KIP-890 part 2: the epoch bump on every EndTxn) is not offered;
//!   AddPartitionsToTxn v4+'s verify-only form (KIP-890 part 1) is.
//! - Kafka's log has no field for the groups of a transaction; they are remembered in
//!   memory only. After a restart a [`MarkerWrite`]'s `groups` may be empty: the group
//!   coordinator must also resolve a producer's pending offsets when the marker reaches a
//!   `__consumer_offsets` partition (which is always among `partitions`).

pub mod coordinator;
pub mod records;

pub use coordinator::{TxnCoordinator, TxnMetadata};
pub use records::{TxnLogValue, TxnRecord, TxnRecordError};

use crate::groups::Ticket;

/// The topic whose partitions hold transactions' offset commits.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Longest transactional id accepted: the record key's int16 string length, and Kafka's
/// practical limit for any name.
pub const TRANSACTIONAL_ID_MAX_BYTES: usize = 4_096;
/// Longest topic name accepted in a transaction (Kafka's topic name limit is 249).
pub const TOPIC_MAX_BYTES: usize = 249;
/// Partitions one transaction may touch: bounds the record (and the marker fan-out) of a
/// single transaction; far above what real producers open (Kafka has no limit).
pub const PARTITIONS_PER_TXN_MAX: usize = 100_000;
/// Transactional ids kept at once; past this a new id is refused with
/// [`TxnError::TransactionalIdsFull`] (idle ids expire after
/// `transactional.id.expiration.ms`). Bounds memory against a client inventing ids.
pub const TRANSACTIONAL_IDS_MAX: usize = 1_000_000;
/// Producer epoch meaning "none" (Kafka's NO_PRODUCER_EPOCH).
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Producer id meaning "none".
pub const NO_PRODUCER_ID: i64 = -1;

/// Settings, under Kafka's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask for.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: idle ids (no transaction open) older than this are
    /// forgotten.
    pub id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        Self {
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
        }
    }
}

/// Kafka's TransactionState, with its log byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    /// Transient in Kafka (an epoch fence on the way to PrepareAbort); never written by weir.
    PrepareEpochFence,
}

impl TxnState {
    pub fn to_byte(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_byte(byte: i8) -> Option<Self> {
        Some(match byte {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// No transaction open and none completing: the id may start one, or expire.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// Markers are being written.
    pub fn is_completing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_string(),
            partition,
        }
    }
}

/// Commit or abort: what a transaction ends with, and what its markers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnResult {
    Commit,
    Abort,
}

/// Failures, named after the Kafka errors the front end answers them with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("transaction timeout {timeout_ms} ms is not in 1..={max_ms}")]
    InvalidTransactionTimeout { timeout_ms: i32, max_ms: i32 },
    /// The transaction is completing (or an InitProducerId is parked): retry later.
    #[error("concurrent transactions")]
    ConcurrentTransactions,
    /// An older producer instance (or an aborted-by-timeout one): fatal to the client.
    #[error("producer fenced")]
    ProducerFenced,
    /// [`TxnError::ProducerFenced`] for request versions older than KIP-588's.
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
    #[error("producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    #[error("invalid transaction state: {state:?}")]
    InvalidTxnState { state: TxnState },
    /// A partition written outside the transaction (verify-only AddPartitionsToTxn): the
    /// producer must abort.
    #[error("transaction abortable")]
    TransactionAbortable,
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// The allocator gave no producer id.
    #[error("no producer id available")]
    ProducerIdsUnavailable,
    #[error("{max} transactional ids are already kept")]
    TransactionalIdsFull { max: usize },
    /// The coordinator is shutting down with this request parked.
    #[error("not the coordinator")]
    NotCoordinator,
}

/// What a request answers when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// InitProducerId.
    ProducerId { producer_id: i64, epoch: i16 },
    /// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn.
    Done,
    /// AddPartitionsToTxn verify-only (KIP-890): per partition, `None` when it is in the
    /// transaction.
    Verified(Vec<(TopicPartition, Option<TxnError>)>),
}

/// The answer to the request the caller gave `ticket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub ticket: Ticket,
    pub result: Result<Answer, TxnError>,
}

/// Control batches to write: `result`'s marker, stamped with `producer_id` and
/// `producer_epoch`, on every partition in `partitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerWrite {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TxnResult,
    pub partitions: Vec<TopicPartition>,
    /// Groups with offsets pending in this transaction (TxnOffsetCommit): materialize them
    /// on Commit, drop them on Abort. Known since the last restart only (see the module doc).
    pub groups: Vec<String>,
}

/// What a call produced; see the module doc for the order the caller acts on it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effects {
    pub records: Vec<TxnRecord>,
    pub replies: Vec<Reply>,
    pub markers: Vec<MarkerWrite>,
}

impl Effects {
    fn reply(&mut self, ticket: Ticket, result: Result<Answer, TxnError>) {
        self.replies.push(Reply { ticket, result });
    }
}

/// How a request names its producer, for every request after InitProducerId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The request version knows PRODUCER_FENCED (KIP-588: InitProducerId v4+,
    /// AddPartitionsToTxn v2+, AddOffsetsToTxn v2+, EndTxn v2+); older ones get
    /// INVALID_PRODUCER_EPOCH instead.
    pub producer_fenced_supported: bool,
}

impl Producer {
    fn fenced(&self) -> TxnError {
        fenced(self.producer_fenced_supported)
    }
}

fn fenced(producer_fenced_supported: bool) -> TxnError {
    if producer_fenced_supported {
        TxnError::ProducerFenced
    } else {
        TxnError::InvalidProducerEpoch
    }
}

/// InitProducerId with a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerId {
    pub transactional_id: String,
    pub timeout_ms: i32,
    /// KIP-360 (v3+): the id and epoch the producer holds, when it asks to keep them.
    pub current: Option<(i64, i16)>,
    /// See [`Producer::producer_fenced_supported`] (v4+).
    pub producer_fenced_supported: bool,
}
