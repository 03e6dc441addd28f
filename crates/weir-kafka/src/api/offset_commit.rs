//! OffsetCommit (v2–9): a consumer stores how far it got, per partition, with optional
//! metadata. A group member commits under its generation (classic) or member epoch
//! (KIP-848) and is refused when it is no longer current; a standalone consumer
//! (generation −1, no member id) commits to a group without members. The answer waits until
//! the commit is durable in `__consumer_offsets`.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, RequestHeader};
use weir_core::acl::Operation;
use weir_core::groups::GroupError;
use weir_core::groups::coordinator::{CommitEntry, Committer};

use super::Context;
use crate::errors;
use crate::groups::now_ms;

/// First version that answers GROUP_ID_NOT_FOUND for a member committing to a group that
/// does not exist (older ones get ILLEGAL_GENERATION, as Kafka keeps them).
const GROUP_ID_NOT_FOUND_VERSION: i16 = 9;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = header.request_api_version;
    let committer = Committer {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        generation_or_member_epoch: request.generation_id_or_member_epoch,
    };
    // Answers keep the request's shape: topic by topic, partition by partition.
    // Kafka's authorizer: READ on the group, then READ on each topic; a topic the
    // requester may not read is answered TOPIC_AUTHORIZATION_FAILED and not committed.
    let group_allowed = context.group_allowed(&request.group_id.0, Operation::Read);
    let shape: Vec<(kafka_protocol::messages::TopicName, Vec<i32>, bool)> = request
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
                context.topic_allowed(&t.name.0, Operation::Read),
            )
        })
        .collect();
    let committed_count: usize = shape
        .iter()
        .filter(|(_, _, allowed)| *allowed)
        .map(|(_, p, _)| p.len())
        .sum();
    let entries: Vec<CommitEntry> = request
        .topics
        .into_iter()
        .filter(|t| context.topic_allowed(&t.name.0, Operation::Read))
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions.into_iter().map(move |p| CommitEntry {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.map(|s| s.to_string()),
            })
        })
        .collect();
    let groups = &context.groups;
    let codes: Vec<i16> = if !group_allowed {
        vec![errors::GROUP_AUTHORIZATION_FAILED; committed_count]
    } else if entries.is_empty() {
        Vec::new()
    } else {
        let done = groups
            .coordinator()
            .commit(&request.group_id.0, &committer, entries, now_ms());
        match groups.finish(done).await {
            Ok(Ok(results)) => results
                .into_iter()
                .map(|(_, result)| match result {
                    Ok(()) => errors::NONE,
                    Err(error) => errors::group_code(error),
                })
                .collect(),
            Ok(Err(error)) => {
                let code = match error {
                    GroupError::GroupIdNotFound if version < GROUP_ID_NOT_FOUND_VERSION => {
                        errors::group_code(GroupError::IllegalGeneration)
                    }
                    error => errors::group_code(error),
                };
                vec![code; committed_count]
            }
            Err(_) => vec![errors::COORDINATOR_NOT_AVAILABLE; committed_count],
        }
    };
    let mut codes = codes.into_iter();
    let topics = shape
        .into_iter()
        .map(|(name, partitions, topic_allowed)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|partition| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(partition)
                                .with_error_code(if !group_allowed {
                                    errors::GROUP_AUTHORIZATION_FAILED
                                } else if topic_allowed {
                                    codes.next().unwrap_or(errors::UNKNOWN_SERVER_ERROR)
                                } else {
                                    errors::TOPIC_AUTHORIZATION_FAILED
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
