//! SyncGroup (v0–5): after a rebalance the leader sends every member's assignment and each
//! member receives its own. Members other than the leader park until the leader's
//! assignment arrives; a request parked when a new rebalance starts is answered
//! REBALANCE_IN_PROGRESS so the member rejoins.

use kafka_protocol::messages::{RequestHeader, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use weir_core::groups::classic::{Reply, SyncRequest};

use super::Context;
use crate::errors;
use crate::groups::{Parked, now_ms};

/// First version that echoes the protocol type and name (KIP-559).
const PROTOCOL_VERSION: i16 = 5;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    // Kafka's authorizer: group membership needs READ on the group.
    if !context.group_allowed(&request.group_id.0, weir_core::acl::Operation::Read) {
        return SyncGroupResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let version = header.request_api_version;
    let groups = &context.groups;
    let group_id = request.group_id.0.to_string();
    let sync = SyncRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        generation_id: request.generation_id,
        protocol_type: request.protocol_type.map(|s| s.to_string()),
        protocol_name: request.protocol_name.map(|s| s.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let parked = Parked::new(groups);
    let done = groups
        .coordinator()
        .sync(&group_id, sync, parked.ticket(), now_ms());
    groups.wake_timer();
    if groups.finish(done).await.is_err() {
        return refuse(errors::COORDINATOR_NOT_AVAILABLE);
    }
    match parked.wait().await {
        Some(Reply::Sync(_, Ok(synced))) => {
            let response = SyncGroupResponse::default().with_assignment(synced.assignment);
            if version >= PROTOCOL_VERSION {
                response
                    .with_protocol_type(synced.protocol_type.map(StrBytes::from_string))
                    .with_protocol_name(synced.protocol_name.map(StrBytes::from_string))
            } else {
                response
            }
        }
        Some(Reply::Sync(_, Err(error))) => refuse(errors::group_code(error)),
        _ => refuse(errors::COORDINATOR_NOT_AVAILABLE),
    }
}

fn refuse(code: i16) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code)
}
