//! OffsetFetch (v1–9): a consumer reads its group's committed offsets — the partitions it
//! names, or (v2+, no topics) every partition the group committed. v8+ asks about several
//! groups at once. A partition without a commit answers offset −1 and empty metadata.
//! weir has no pending transactional offsets yet, so `require_stable` never has to wait.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_core::groups::{GroupError, OffsetValue};

use super::Context;
use crate::errors;

/// First version that asks about several groups in one request (KIP-709).
const GROUPS_VERSION: i16 = 8;
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
                let committed = coordinator.fetch_offsets(&group.group_id.0, wanted);
                group_answer(group.group_id, committed)
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
    let (code, offsets) = match coordinator.fetch_offsets(&request.group_id.0, wanted) {
        Ok(offsets) => (errors::NONE, offsets),
        Err(error) => (errors::group_code(error), Vec::new()),
    };
    let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
    for (topic, partition, value) in offsets {
        let (offset, epoch, metadata) = unpack(value);
        let answer = OffsetFetchResponsePartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(epoch)
            .with_metadata(Some(StrBytes::from_string(metadata)));
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(answer),
            _ => topics.push(
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![answer]),
            ),
        }
    }
    let response = OffsetFetchResponse::default().with_topics(topics);
    if version >= TOP_ERROR_VERSION {
        response.with_error_code(code)
    } else {
        response
    }
}

fn group_answer(group_id: GroupId, committed: Committed) -> OffsetFetchResponseGroup {
    let offsets = match committed {
        Ok(offsets) => offsets,
        Err(error) => {
            return OffsetFetchResponseGroup::default()
                .with_group_id(group_id)
                .with_error_code(errors::group_code(error));
        }
    };
    let mut topics: Vec<OffsetFetchResponseTopics> = Vec::new();
    for (topic, partition, value) in offsets {
        let (offset, epoch, metadata) = unpack(value);
        let answer = OffsetFetchResponsePartitions::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(epoch)
            .with_metadata(Some(StrBytes::from_string(metadata)));
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(answer),
            _ => topics.push(
                OffsetFetchResponseTopics::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![answer]),
            ),
        }
    }
    OffsetFetchResponseGroup::default()
        .with_group_id(group_id)
        .with_topics(topics)
}

/// Offset, leader epoch and metadata of a commit; −1, −1, "" without one.
fn unpack(value: Option<OffsetValue>) -> (i64, i32, String) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}
