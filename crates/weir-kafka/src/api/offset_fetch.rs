//! OffsetFetch (v1–9): a consumer reads its group's committed offsets — the partitions it
//! names, or (v2+, no topics) every partition the group committed. v8+ asks about several
//! groups at once. A partition without a commit answers offset −1 and empty metadata.
//! With `require_stable` (v7+), a partition whose offset a transaction holds pending
//! (TxnOffsetCommit before its EndTxn's marker) answers UNSTABLE_OFFSET_COMMIT, which
//! clients retry.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_core::acl::Operation;
use weir_core::groups::{GroupError, OffsetValue};

use super::Context;
use crate::errors;

/// First version that asks about several groups in one request (KIP-709).
const GROUPS_VERSION: i16 = 8;
/// Kafka's UNSTABLE_OFFSET_COMMIT: retriable, the client asks again.
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
/// First version with a top-level error code (v2–7).
const TOP_ERROR_VERSION: i16 = 2;

type Committed = Result<Vec<(String, i32, Option<OffsetValue>)>, GroupError>;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    let coordinator = context.groups.coordinator();
    if version >= GROUPS_VERSION {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes))
                        .collect()
                });
                let committed = authorized(
                    context,
                    &group.group_id.0,
                    coordinator.fetch_offsets(&group.group_id.0, wanted),
                );
                let mut answer = group_answer(group.group_id, committed);
                if request.require_stable {
                    for topic in &mut answer.topics {
                        for p in &mut topic.partitions {
                            if coordinator.has_pending_txn_offset(
                                &answer.group_id.0,
                                &topic.name.0,
                                p.partition_index,
                            ) {
                                p.error_code = UNSTABLE_OFFSET_COMMIT;
                                p.committed_offset = -1;
                            }
                        }
                    }
                }
                answer
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let committed = authorized(
        context,
        &request.group_id.0,
        coordinator.fetch_offsets(&request.group_id.0, wanted),
    );
    let (code, offsets) = match committed {
        Ok(offsets) => (errors::NONE, offsets),
        Err(code) => (code, Vec::new()),
    };
    let group_id = request.group_id.0.to_string();
    let topics = by_topic(offsets)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, (offset, epoch, metadata))| {
                    let unstable = request.require_stable
                        && coordinator.has_pending_txn_offset(&group_id, &topic.0, partition);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(if unstable { -1 } else { offset })
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                        .with_error_code(if unstable {
                            UNSTABLE_OFFSET_COMMIT
                        } else {
                            errors::NONE
                        })
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic)
                .with_partitions(partitions)
        })
        .collect();
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= TOP_ERROR_VERSION {
        response.with_error_code(code)
    } else {
        response
    }
}

/// What the requester may see of a group's offsets, as Kafka's authorizer decides:
/// DESCRIBE on the group (else GROUP_AUTHORIZATION_FAILED), and only the topics it may
/// DESCRIBE (the others are left out).
fn authorized(
    context: &Context,
    group_id: &str,
    committed: Committed,
) -> Result<Vec<(String, i32, Option<OffsetValue>)>, i16> {
    if !context.group_allowed(group_id, Operation::Describe) {
        return Err(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let offsets = committed.map_err(errors::group_code)?;
    Ok(offsets
        .into_iter()
        .filter(|(topic, _, _)| context.topic_allowed(topic, Operation::Describe))
        .collect())
}

fn group_answer(
    group_id: GroupId,
    committed: Result<Vec<(String, i32, Option<OffsetValue>)>, i16>,
) -> OffsetFetchResponseGroup {
    let offsets = match committed {
        Ok(offsets) => offsets,
        Err(code) => {
            return OffsetFetchResponseGroup::default()
                .with_group_id(group_id)
                .with_error_code(code);
        }
    };
    let topics = by_topic(offsets)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(partition, (offset, epoch, metadata))| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                })
                .collect();
            OffsetFetchResponseTopics::default()
                .with_name(topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
}

/// Offset, leader epoch and metadata of a commit; −1, −1, "" without one.
type Unpacked = (i64, i32, StrBytes);

/// Consecutive partitions of one topic under that topic, in the coordinator's order.
fn by_topic(
    offsets: Vec<(String, i32, Option<OffsetValue>)>,
) -> Vec<(TopicName, Vec<(i32, Unpacked)>)> {
    let mut topics: Vec<(TopicName, Vec<(i32, Unpacked)>)> = Vec::new();
    for (topic, partition, value) in offsets {
        let unpacked = match value {
            Some(v) => (v.offset, v.leader_epoch, StrBytes::from_string(v.metadata)),
            None => (-1, -1, StrBytes::default()),
        };
        match topics.last_mut() {
            Some((name, partitions)) if name.0.as_str() == topic => {
                partitions.push((partition, unpacked))
            }
            _ => topics.push((
                TopicName(StrBytes::from_string(topic)),
                vec![(partition, unpacked)],
            )),
        }
    }
    topics
}
