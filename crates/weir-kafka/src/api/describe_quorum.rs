//! DescribeQuorum (v0–2): the KRaft metadata quorum as a single weir node is one. weir has
//! no Raft log: its topic catalog is a file on this node. So it answers the metadata
//! partition (`__cluster_metadata`-0) as a one-voter quorum whose only voter, this node,
//! has led it since it started and never held an election:
//!
//! - leader id: this node; leader epoch: 0 (no election ever moved leadership);
//! - high watermark and the voter's log end offset: 0, because no record was ever
//!   written to a metadata log (there is none). Both are the same on every call and after
//!   every restart, and say nothing that is not so;
//! - the voter's last fetch and last caught-up times (v1+): now (a leader is always caught up
//!   with itself; Kafka reports its leader the same way); no observers;
//! - v2: the voter's directory id is unknown (zero), and its node entry lists the one
//!   listener weir has, under Kafka's default listener name.
//!
//! Any other topic or partition, or more than one, gets UNKNOWN_TOPIC_OR_PARTITION on each
//! partition asked for, as Kafka's Raft client answers.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Context;
use crate::errors::{NONE, UNKNOWN_TOPIC_OR_PARTITION};

/// The KRaft metadata log's topic and its only partition.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;

/// Leadership never moved: the epoch weir's one-voter quorum reports.
const LEADER_EPOCH: i32 = 0;

/// Records in weir's (nonexistent) metadata log: its high watermark and log end offset.
const METADATA_LOG_END_OFFSET: i64 = 0;

/// Versions from which a replica's fetch times (v1) and the voters' endpoints (v2) exist.
const TIMESTAMPS_VERSION: i16 = 1;
const NODES_VERSION: i16 = 2;

/// The name weir's one listener is reported under (v2 nodes): Kafka's default name for a
/// plaintext listener.
const LISTENER_NAME: &str = "PLAINTEXT";

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let version = header.request_api_version;
    if !asks_for_metadata_partition(&request) {
        return unknown_partitions(request);
    }
    let node = BrokerId(context.config.node_id);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let mut voter = ReplicaState::default()
        .with_replica_id(node)
        .with_replica_directory_id(Uuid::nil())
        .with_log_end_offset(METADATA_LOG_END_OFFSET);
    if version >= TIMESTAMPS_VERSION {
        voter = voter
            .with_last_fetch_timestamp(now_ms)
            .with_last_caught_up_timestamp(now_ms);
    }
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(NONE)
        .with_error_message(None)
        .with_leader_id(node)
        .with_leader_epoch(LEADER_EPOCH)
        .with_high_watermark(METADATA_LOG_END_OFFSET)
        .with_current_voters(vec![voter])
        .with_observers(Vec::new());
    let listener = Listener::default()
        .with_name(StrBytes::from_static_str(LISTENER_NAME))
        .with_host(StrBytes::from_string(
            context.config.advertised_host.clone(),
        ))
        // Always a u16: serve.rs fills it from the bound socket address's port.
        .with_port(u16::try_from(context.config.advertised_port).unwrap_or(0));
    let response = DescribeQuorumResponse::default()
        .with_error_code(NONE)
        .with_error_message(None)
        .with_topics(vec![
            TopicData::default()
                .with_topic_name(super::metadata::topic_name(METADATA_TOPIC))
                .with_partitions(vec![partition]),
        ]);
    if version < NODES_VERSION {
        return response;
    }
    response.with_nodes(vec![
        Node::default()
            .with_node_id(node)
            .with_listeners(vec![listener]),
    ])
}

/// Kafka's test: exactly one topic, the metadata topic, with exactly its one partition.
fn asks_for_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    match request.topics.as_slice() {
        [topic] => {
            topic.topic_name.0.as_str() == METADATA_TOPIC
                && matches!(
                    topic.partitions.as_slice(),
                    [p] if p.partition_index == METADATA_PARTITION
                )
        }
        _ => false,
    }
}

/// Every partition asked for, refused; the request itself succeeds.
fn unknown_partitions(request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    PartitionData::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
                        .with_error_message(None)
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_error_code(NONE)
        .with_error_message(None)
        .with_topics(topics)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::describe_quorum_request::{
        PartitionData as RequestPartition, TopicData as RequestTopic,
    };

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::super::metadata::topic_name;
    use super::*;

    fn request(topics: &[(&str, &[i32])]) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    RequestTopic::default()
                        .with_topic_name(topic_name(name))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| RequestPartition::default().with_partition_index(*p))
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    #[test]
    fn this_node_is_the_only_voter_and_leader_of_an_empty_metadata_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for version in versions(ApiKey::DescribeQuorum) {
            let before = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as i64;
            let response = handle(
                &context,
                &header(version),
                request(&[(METADATA_TOPIC, &[0])]),
            );
            assert_encodes(&response, version);
            assert_eq!(response.error_code, NONE);
            assert_eq!(response.topics.len(), 1);
            assert_eq!(response.topics[0].topic_name.0.as_str(), METADATA_TOPIC);
            let p = &response.topics[0].partitions[0];
            assert_eq!(p.partition_index, 0);
            assert_eq!(p.error_code, NONE);
            assert_eq!(p.leader_id, BrokerId(NODE_ID));
            assert_eq!(p.leader_epoch, 0);
            assert_eq!(p.high_watermark, 0);
            assert_eq!(p.current_voters.len(), 1);
            let voter = &p.current_voters[0];
            assert_eq!(voter.replica_id, BrokerId(NODE_ID));
            assert_eq!(voter.log_end_offset, p.high_watermark);
            if version >= TIMESTAMPS_VERSION {
                assert!(voter.last_fetch_timestamp >= before);
                assert_eq!(voter.last_caught_up_timestamp, voter.last_fetch_timestamp);
            }
            assert!(p.observers.is_empty());
            if version >= NODES_VERSION {
                assert_eq!(response.nodes.len(), 1);
                assert_eq!(response.nodes[0].node_id, BrokerId(NODE_ID));
                assert_eq!(response.nodes[0].listeners[0].host.as_str(), "localhost");
                assert_eq!(response.nodes[0].listeners[0].port, 9092);
            } else {
                assert!(response.nodes.is_empty());
            }
        }
        // The same answer again: the high watermark and epoch do not move.
        let again = handle(&context, &header(2), request(&[(METADATA_TOPIC, &[0])]));
        let p = &again.topics[0].partitions[0];
        assert_eq!((p.leader_epoch, p.high_watermark), (0, 0));
    }

    #[test]
    fn any_other_partition_is_unknown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let cases: &[&[(&str, &[i32])]] = &[
            &[(METADATA_TOPIC, &[1])],
            &[(METADATA_TOPIC, &[0, 0])],
            &[("orders", &[0])],
            &[(METADATA_TOPIC, &[0]), ("orders", &[0, 1])],
        ];
        for version in versions(ApiKey::DescribeQuorum) {
            for case in cases {
                let response = handle(&context, &header(version), request(case));
                assert_encodes(&response, version);
                assert_eq!(response.error_code, NONE);
                let asked: usize = case.iter().map(|(_, p)| p.len()).sum();
                let errors: Vec<i16> = response
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                    .collect();
                assert_eq!(errors, vec![UNKNOWN_TOPIC_OR_PARTITION; asked], "{case:?}");
                assert!(response.nodes.is_empty());
            }
        }
        let empty = handle(&context, &header(0), request(&[]));
        assert_encodes(&empty, 0);
        assert!(empty.topics.is_empty());
    }
}
