//! One module per Kafka API, and the table of the versions weir answers. A handler takes
//! the decoded request and returns the response to encode; it never fails: every problem
//! becomes an error code in the response.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use weir_core::Broker;

use crate::groups::Groups;
use crate::txns::Txns;

use crate::server::KafkaConfig;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;
// Admin APIs of a one-node cluster (kafka-python's admin tests).
pub mod describe_quorum;
pub mod describe_topic_partitions;
// Replica administration on one node (nothing to elect, move or reassign).
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod elect_leaders;
pub mod list_partition_reassignments;

/// What every handler sees.
pub struct Context {
    pub broker: Arc<Broker>,
    pub config: KafkaConfig,
    /// The group coordinator and its parked requests.
    pub groups: Arc<Groups>,
    /// The transaction coordinator's runner.
    pub txns: Arc<Txns>,
    /// Who this connection's requests come from, for the authorizer.
    pub session: crate::acls::Session,
}

impl Context {
    /// The context of one connection: the shared parts and that connection's session.
    pub fn for_session(&self, session: crate::acls::Session) -> Context {
        Context {
            broker: self.broker.clone(),
            config: self.config.clone(),
            groups: self.groups.clone(),
            txns: self.txns.clone(),
            session,
        }
    }
}

/// What the connection does after a request.
pub enum Outcome {
    Respond(Box<ResponseKind>),
    /// acks=0 produce: no response is sent.
    NoResponse,
    /// acks=0 produce that failed: Kafka closes the connection so the client notices.
    Close,
}

/// The versions weir implements, per API. Only these are advertised (ApiVersions) and
/// decoded; anything else closes the connection (or, for ApiVersions, gets error 35).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Admin APIs of a one-node cluster (kafka-python's admin tests).
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    // Transactions (v4+ of AddPartitionsToTxn is KIP-890's broker-to-broker form).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    // ACLs (v0 is gone from Kafka 4 and from kafka-protocol 0.18's codecs).
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

pub fn is_supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == key && (*min..=*max).contains(&version))
}

/// Routes a decoded request to its handler.
/// `client_host` is the peer's address as Kafka shows it ("/127.0.0.1"), for group members.
pub async fn dispatch(
    context: &Context,
    header: &RequestHeader,
    request: RequestKind,
    client_host: &str,
) -> Outcome {
    use RequestKind as Rq;
    use ResponseKind as Rs;
    let response = match request {
        Rq::Produce(r) => return produce::handle(context, header, r).await,
        Rq::Fetch(r) => Rs::Fetch(fetch::handle(context, header, r).await),
        Rq::ListOffsets(r) => Rs::ListOffsets(list_offsets::handle(context, header, r)),
        Rq::ApiVersions(r) => Rs::ApiVersions(api_versions::handle(context, header, r)),
        Rq::DeleteRecords(r) => Rs::DeleteRecords(delete_records::handle(context, header, r)),
        Rq::DescribeConfigs(r) => Rs::DescribeConfigs(describe_configs::handle(context, header, r)),
        Rq::DescribeLogDirs(r) => {
            Rs::DescribeLogDirs(describe_log_dirs::handle(context, header, r))
        }
        Rq::DescribeCluster(r) => Rs::DescribeCluster(describe_cluster::handle(context, header, r)),
        Rq::FindCoordinator(r) => Rs::FindCoordinator(find_coordinator::handle(context, header, r)),
        // Group calls append to `__consumer_offsets` (buffered writes under the
        // coordinator's lock) and wait for durability without blocking the thread.
        Rq::JoinGroup(r) => {
            Rs::JoinGroup(join_group::handle(context, header, r, client_host).await)
        }
        Rq::SyncGroup(r) => Rs::SyncGroup(sync_group::handle(context, header, r).await),
        Rq::Heartbeat(r) => Rs::Heartbeat(heartbeat::handle(context, header, r)),
        Rq::LeaveGroup(r) => Rs::LeaveGroup(leave_group::handle(context, header, r).await),
        Rq::OffsetCommit(r) => Rs::OffsetCommit(offset_commit::handle(context, header, r).await),
        Rq::OffsetFetch(r) => Rs::OffsetFetch(offset_fetch::handle(context, header, r)),
        Rq::OffsetDelete(r) => Rs::OffsetDelete(offset_delete::handle(context, header, r).await),
        Rq::DeleteGroups(r) => Rs::DeleteGroups(delete_groups::handle(context, header, r).await),
        Rq::DescribeGroups(r) => Rs::DescribeGroups(describe_groups::handle(context, header, r)),
        Rq::ListGroups(r) => Rs::ListGroups(list_groups::handle(context, header, r)),
        Rq::ConsumerGroupHeartbeat(r) => Rs::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(context, header, r, client_host).await,
        ),
        Rq::ConsumerGroupDescribe(r) => {
            Rs::ConsumerGroupDescribe(consumer_group_describe::handle(context, header, r))
        }
        // Admin APIs of a one-node cluster (kafka-python's admin tests).
        Rq::DescribeTopicPartitions(r) => {
            Rs::DescribeTopicPartitions(describe_topic_partitions::handle(context, header, r))
        }
        Rq::DescribeQuorum(r) => Rs::DescribeQuorum(describe_quorum::handle(context, header, r)),
        // May fsync the producer id reservation (once per block of ids; the handler runs
        // that part as `blocking`), or wait for the transaction coordinator's records.
        Rq::InitProducerId(r) => {
            Rs::InitProducerId(init_producer_id::handle(context, header, r).await)
        }
        // Transactions: wait for `__transaction_state` records to be durable.
        Rq::AddPartitionsToTxn(r) => {
            Rs::AddPartitionsToTxn(add_partitions_to_txn::handle(context, header, r).await)
        }
        Rq::AddOffsetsToTxn(r) => {
            Rs::AddOffsetsToTxn(add_offsets_to_txn::handle(context, header, r).await)
        }
        Rq::EndTxn(r) => Rs::EndTxn(end_txn::handle(context, header, r).await),
        Rq::TxnOffsetCommit(r) => {
            Rs::TxnOffsetCommit(txn_offset_commit::handle(context, header, r).await)
        }
        // These may create or delete partitions or rewrite configs: fsyncs of many files.
        Rq::Metadata(r) => Rs::Metadata(blocking(|| metadata::handle(context, header, r))),
        Rq::CreateTopics(r) => {
            Rs::CreateTopics(blocking(|| create_topics::handle(context, header, r)))
        }
        Rq::DeleteTopics(r) => {
            Rs::DeleteTopics(blocking(|| delete_topics::handle(context, header, r)))
        }
        Rq::AlterConfigs(r) => {
            Rs::AlterConfigs(blocking(|| alter_configs::handle(context, header, r)))
        }
        Rq::CreatePartitions(r) => {
            Rs::CreatePartitions(blocking(|| create_partitions::handle(context, header, r)))
        }
        Rq::IncrementalAlterConfigs(r) => Rs::IncrementalAlterConfigs(blocking(|| {
            incremental_alter_configs::handle(context, header, r)
        })),
        Rq::ElectLeaders(r) => Rs::ElectLeaders(elect_leaders::handle(context, header, r)),
        Rq::AlterPartitionReassignments(r) => Rs::AlterPartitionReassignments(
            alter_partition_reassignments::handle(context, header, r),
        ),
        Rq::ListPartitionReassignments(r) => {
            Rs::ListPartitionReassignments(list_partition_reassignments::handle(context, header, r))
        }
        Rq::AlterReplicaLogDirs(r) => {
            Rs::AlterReplicaLogDirs(alter_replica_log_dirs::handle(context, header, r))
        }
        // Rewrite `<data>/acls` (an fsync or two).
        Rq::CreateAcls(r) => Rs::CreateAcls(blocking(|| create_acls::handle(context, header, r))),
        Rq::DescribeAcls(r) => Rs::DescribeAcls(describe_acls::handle(context, header, r)),
        Rq::DeleteAcls(r) => Rs::DeleteAcls(blocking(|| delete_acls::handle(context, header, r))),
        // The connection only decodes supported APIs (see SUPPORTED).
        other => {
            tracing::error!(api = ?other, "dispatched an API that is not in SUPPORTED");
            return Outcome::Close;
        }
    };
    Outcome::Respond(Box::new(response))
}

/// The client id a request names ("" when it names none), as group members report it.
pub(crate) fn client_id(header: &RequestHeader) -> String {
    header
        .client_id
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// Runs a handler that may spend a while in fsyncs (creating a topic of many partitions)
/// without stalling the other connections of its runtime thread: on a multi-threaded
/// runtime the thread hands its other tasks off first.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Kafka answers a resource named more than once in one request once, and refuses it.
/// Calls `answer(entry, named_more_than_once)` for the first entry of each key, in request
/// order, and collects the answers.
pub(crate) fn answer_each_once<T, K: Eq + std::hash::Hash, R>(
    entries: Vec<T>,
    key: impl Fn(&T) -> K,
    mut answer: impl FnMut(T, bool) -> R,
) -> Vec<R> {
    let mut counts: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for entry in &entries {
        *counts.entry(key(entry)).or_default() += 1;
    }
    let mut answered = std::collections::HashSet::new();
    entries
        .into_iter()
        .filter_map(|entry| {
            let k = key(&entry);
            let repeated = counts.get(&k).copied().unwrap_or(0) > 1;
            answered.insert(k).then(|| answer(entry, repeated))
        })
        .collect()
}
