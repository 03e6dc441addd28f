//! ConsumerGroupHeartbeat (v0–1): the KIP-848 consumer protocol (librdkafka's
//! `group.protocol=consumer`). One request type joins (epoch 0), heartbeats, reports the
//! partitions the member owns, and leaves (epoch −1; −2 for a static member's temporary
//! leave); the broker computes the assignment and hands each member its share as soon as
//! the previous owners released it. v1 lets the client choose its member id.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use weir_core::TopicId;
use weir_core::groups::consumer::HeartbeatRequest;

use super::Context;
use crate::errors;
use crate::groups::now_ms;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: ConsumerGroupHeartbeatRequest,
    client_host: &str,
) -> ConsumerGroupHeartbeatResponse {
    let heartbeat = HeartbeatRequest {
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        group_instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: request.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: request.server_assignor.map(|s| s.to_string()),
        owned: request.topic_partitions.map(|owned| {
            owned
                .into_iter()
                .map(|t| (TopicId(*t.topic_id.as_bytes()), t.partitions))
                .collect()
        }),
        client_id: super::client_id(header),
        client_host: client_host.to_string(),
    };
    let groups = &context.groups;
    let done = groups
        .coordinator()
        .consumer_heartbeat(&request.group_id.0, heartbeat, now_ms());
    groups.wake_timer();
    match groups.finish(done).await {
        Ok(Ok(answer)) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(StrBytes::from_string(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(answer.heartbeat_interval_ms)
            .with_assignment(answer.assignment.map(|owned| {
                Assignment::default().with_topic_partitions(
                    owned
                        .into_iter()
                        .map(|(id, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(uuid::Uuid::from_bytes(id.0))
                                .with_partitions(partitions)
                        })
                        .collect(),
                )
            })),
        Ok(Err(error)) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(errors::group_code(error))
            .with_error_message(Some(StrBytes::from_string(error.to_string()))),
        Err(_) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(errors::COORDINATOR_NOT_AVAILABLE),
    }
}
