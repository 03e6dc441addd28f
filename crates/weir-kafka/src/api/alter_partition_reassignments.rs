//! AlterPartitionReassignments (v0–1): on one node the only replica set a partition can
//! have is [this node], which it already has. Reassigning to exactly that succeeds and
//! moves nothing; any other set answers INVALID_REPLICA_ASSIGNMENT, as Kafka does for an
//! empty list, a broker named twice or a broker that is not registered. Cancelling (null
//! replicas) answers NO_REASSIGNMENT_IN_PROGRESS, since none is ever in progress. Unknown
//! topics and partitions answer UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use crate::errors::{NONE, UNKNOWN_TOPIC_OR_PARTITION};

const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
const NO_REASSIGNMENT_IN_PROGRESS: i16 = ResponseError::NoReassignmentInProgress.code();

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let node = BrokerId(context.config.node_id);
    let responses = request
        .topics
        .into_iter()
        .map(|topic| {
            let info = context.broker.topic(topic.name.as_str());
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let index = p.partition_index;
                    let known = info
                        .as_ref()
                        .is_some_and(|i| (0..i.partitions).contains(&index));
                    let outcome = if !known {
                        Err((
                            UNKNOWN_TOPIC_OR_PARTITION,
                            format!("no partition {}-{index}", topic.name.as_str()),
                        ))
                    } else {
                        reassign(p.replicas.as_deref(), node)
                    };
                    let result =
                        ReassignablePartitionResponse::default().with_partition_index(index);
                    match outcome {
                        Ok(()) => result.with_error_code(NONE).with_error_message(None),
                        Err((code, message)) => result
                            .with_error_code(code)
                            .with_error_message(Some(StrBytes::from_string(message))),
                    }
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change)
        .with_error_code(NONE)
        .with_error_message(None)
        .with_responses(responses)
}

/// The answer for one existing partition whose current replicas are [node].
fn reassign(replicas: Option<&[BrokerId]>, node: BrokerId) -> Result<(), (i16, String)> {
    let Some(replicas) = replicas else {
        return Err((
            NO_REASSIGNMENT_IN_PROGRESS,
            "no partition reassignment is in progress".to_string(),
        ));
    };
    match replicas {
        [only] if *only == node => Ok(()),
        [] => Err((
            INVALID_REPLICA_ASSIGNMENT,
            "the replica list is empty".to_string(),
        )),
        _ => Err((
            INVALID_REPLICA_ASSIGNMENT,
            format!(
                "broker {} is the only broker: the only replica set is [{}]",
                node.0, node.0
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use weir_core::TopicId;

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::super::metadata::topic_name;
    use super::*;

    fn partition(index: i32, replicas: Option<Vec<i32>>) -> ReassignablePartition {
        ReassignablePartition::default()
            .with_partition_index(index)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    }

    #[test]
    fn only_this_node_is_a_valid_replica_set_and_nothing_is_in_progress() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("r", TopicId([5; 16]), 2, &[], false)
            .expect("create");
        for version in versions(ApiKey::AlterPartitionReassignments) {
            let request = AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(1000)
                .with_allow_replication_factor_change(version >= 1)
                .with_topics(vec![
                    ReassignableTopic::default()
                        .with_name(topic_name("r"))
                        .with_partitions(vec![
                            partition(0, Some(vec![NODE_ID])),
                            partition(1, None),
                            partition(0, Some(vec![NODE_ID + 1])),
                            partition(1, Some(vec![NODE_ID, NODE_ID])),
                            partition(1, Some(vec![])),
                            partition(2, Some(vec![NODE_ID])),
                        ]),
                    ReassignableTopic::default()
                        .with_name(topic_name("missing"))
                        .with_partitions(vec![partition(0, None)]),
                ]);
            let response = handle(&context, &header(version), request);
            assert_encodes(&response, version);
            assert_eq!(response.error_code, NONE);
            assert_eq!(response.allow_replication_factor_change, version >= 1);
            let codes: Vec<Vec<(i32, i16)>> = response
                .responses
                .iter()
                .map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.error_code))
                        .collect()
                })
                .collect();
            assert_eq!(
                codes,
                vec![
                    vec![
                        (0, NONE),
                        (1, NO_REASSIGNMENT_IN_PROGRESS),
                        (0, INVALID_REPLICA_ASSIGNMENT),
                        (1, INVALID_REPLICA_ASSIGNMENT),
                        (1, INVALID_REPLICA_ASSIGNMENT),
                        (2, UNKNOWN_TOPIC_OR_PARTITION),
                    ],
                    vec![(0, UNKNOWN_TOPIC_OR_PARTITION)],
                ]
            );
            assert_eq!(response.responses[1].name.as_str(), "missing");
            assert_eq!(response.responses[0].partitions[0].error_message, None);
            // Nothing moved.
            assert_eq!(context.broker.topic("r").map(|t| t.partitions), Some(2));
        }
    }
}
