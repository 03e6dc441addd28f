//! OffsetDelete (v0): removes a group's committed offsets for some partitions — refused
//! per partition (GROUP_SUBSCRIBED_TO_TOPIC) while the group's members subscribe to the
//! topic, and for the whole group (NON_EMPTY_GROUP) when it has members whose
//! subscriptions weir cannot read (a non-consumer protocol).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, RequestHeader};

use super::Context;
use crate::errors;
use crate::groups::now_ms;

pub async fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            let topic = t.name.0.to_string();
            t.partitions
                .iter()
                .map(move |p| (topic.clone(), p.partition_index))
        })
        .collect();
    let groups = &context.groups;
    let done = groups
        .coordinator()
        .delete_offsets(&request.group_id.0, partitions, now_ms());
    let results = match groups.finish(done).await {
        Ok(Ok(results)) => results,
        Ok(Err(error)) => {
            return OffsetDeleteResponse::default().with_error_code(errors::group_code(error));
        }
        Err(_) => {
            return OffsetDeleteResponse::default()
                .with_error_code(errors::COORDINATOR_NOT_AVAILABLE);
        }
    };
    let mut results = results.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let code = match results.next() {
                        Some((_, _, Ok(()))) => errors::NONE,
                        Some((_, _, Err(error))) => errors::group_code(error),
                        None => errors::UNKNOWN_SERVER_ERROR,
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
