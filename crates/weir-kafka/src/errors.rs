//! Kafka error codes weir answers with, and the mapping from core errors.

use weir_core::CoreError;
use weir_storage::batch::BatchErrorKind;
use weir_storage::partition::PartitionError;
use weir_storage::producer_state::ProducerError;
use weir_storage::store::StoreError;

pub const NONE: i16 = 0;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REQUEST: i16 = 42;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const UNKNOWN_PRODUCER_ID: i16 = 59;
pub const PRODUCER_FENCED: i16 = 90;
pub const POLICY_VIOLATION: i16 = 44;
pub const INVALID_CONFIG: i16 = 40;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// The error code a core error becomes.
pub fn code(error: &CoreError) -> i16 {
    match error {
        CoreError::UnknownTopic(_) | CoreError::UnknownPartition(_) => UNKNOWN_TOPIC_OR_PARTITION,
        CoreError::TopicExists(_) => TOPIC_ALREADY_EXISTS,
        CoreError::InvalidPartitions { .. } => INVALID_PARTITIONS,
        CoreError::InvalidConfig(_) => INVALID_CONFIG,
        CoreError::Store(store) => store_code(store),
        CoreError::Catalog(_) | CoreError::ProducerIds(_) | CoreError::Acl(_) => {
            KAFKA_STORAGE_ERROR
        }
        CoreError::InternalTopic { .. } => POLICY_VIOLATION,
        CoreError::GroupRecord(_) | CoreError::TxnRecord(_) => KAFKA_STORAGE_ERROR,
    }
}

pub fn store_code(error: &StoreError) -> i16 {
    match error {
        StoreError::UnknownPartition(_) => UNKNOWN_TOPIC_OR_PARTITION,
        StoreError::InvalidTopicName { .. } => INVALID_TOPIC_EXCEPTION,
        StoreError::PartitionExists(_) => TOPIC_ALREADY_EXISTS,
        StoreError::MessageTooLarge { .. } => MESSAGE_TOO_LARGE,
        StoreError::Batch(batch) => match batch.kind() {
            BatchErrorKind::Corrupt => CORRUPT_MESSAGE,
            BatchErrorKind::InvalidRecord => INVALID_RECORD,
            BatchErrorKind::UnsupportedCompression => UNSUPPORTED_COMPRESSION_TYPE,
            BatchErrorKind::TooLarge => RECORD_LIST_TOO_LARGE,
        },
        StoreError::Config(_) => INVALID_CONFIG,
        StoreError::Partition {
            source: PartitionError::OffsetOutOfRange { .. },
            ..
        } => OFFSET_OUT_OF_RANGE,
        StoreError::Partition { .. }
        | StoreError::Wal(_)
        | StoreError::Io { .. }
        | StoreError::Failed { .. }
        | StoreError::BadPartitionConfig { .. }
        | StoreError::CorruptCommand { .. }
        | StoreError::ReplayGap { .. } => KAFKA_STORAGE_ERROR,
        StoreError::InvalidPartitionNumber(_) => INVALID_PARTITIONS,
        StoreError::Producer(producer) => match producer {
            ProducerError::InvalidEpoch { .. } => INVALID_PRODUCER_EPOCH,
            ProducerError::OutOfOrder { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
            ProducerError::UnknownProducer { .. } => UNKNOWN_PRODUCER_ID,
            ProducerError::MultipleBatches => INVALID_RECORD,
        },
    }
}

/// The error code a group coordinator error becomes.
pub fn group_code(error: weir_core::groups::GroupError) -> i16 {
    use kafka_protocol::ResponseError as E;
    use weir_core::groups::GroupError as G;
    let kafka = match error {
        G::UnknownMemberId => E::UnknownMemberId,
        G::IllegalGeneration => E::IllegalGeneration,
        G::RebalanceInProgress => E::RebalanceInProgress,
        G::MemberIdRequired => E::MemberIdRequired,
        G::FencedInstanceId => E::FencedInstanceId,
        G::InconsistentGroupProtocol => E::InconsistentGroupProtocol,
        G::InvalidSessionTimeout => E::InvalidSessionTimeout,
        G::GroupMaxSizeReached => E::GroupMaxSizeReached,
        G::GroupIdNotFound => E::GroupIdNotFound,
        G::NonEmptyGroup => E::NonEmptyGroup,
        G::InvalidGroupId => E::InvalidGroupId,
        G::FencedMemberEpoch => E::FencedMemberEpoch,
        G::StaleMemberEpoch => E::StaleMemberEpoch,
        G::UnreleasedInstanceId => E::UnreleasedInstanceId,
        G::UnsupportedAssignor => E::UnsupportedAssignor,
        G::GroupSubscribedToTopic => E::GroupSubscribedToTopic,
        G::OffsetMetadataTooLarge => E::OffsetMetadataTooLarge,
        G::UnknownTopicOrPartition => E::UnknownTopicOrPartition,
        G::InvalidRequest => E::InvalidRequest,
        G::InvalidRegularExpression => E::InvalidRegularExpression,
        G::CoordinatorNotAvailable => E::CoordinatorNotAvailable,
    };
    kafka.code()
}

/// The error code a transaction coordinator failure becomes.
pub fn txn_code(error: &weir_core::txn::TxnError) -> i16 {
    use kafka_protocol::ResponseError as E;
    use weir_core::txn::TxnError as T;
    let kafka = match error {
        T::InvalidRequest(_) => E::InvalidRequest,
        T::InvalidTransactionTimeout { .. } => E::InvalidTransactionTimeout,
        T::ConcurrentTransactions => E::ConcurrentTransactions,
        T::ProducerFenced => E::ProducerFenced,
        T::InvalidProducerEpoch => E::InvalidProducerEpoch,
        T::InvalidProducerIdMapping => E::InvalidProducerIdMapping,
        T::InvalidTxnState { .. } => E::InvalidTxnState,
        T::TransactionAbortable => E::TransactionAbortable,
        T::TransactionalIdNotFound => E::TransactionalIdNotFound,
        T::ProducerIdsUnavailable | T::TransactionalIdsFull { .. } => E::CoordinatorNotAvailable,
        T::NotCoordinator => E::NotCoordinator,
    };
    kafka.code()
}
