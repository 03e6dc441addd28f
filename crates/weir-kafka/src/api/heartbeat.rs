//! Heartbeat (v0–4): a classic group's member says it is alive, and learns whether a
//! rebalance started (REBALANCE_IN_PROGRESS: rejoin) or it was dropped (UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION, FENCED_INSTANCE_ID).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse, RequestHeader};

use super::Context;
use crate::errors;
use crate::groups::now_ms;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    // Kafka's authorizer: group membership needs READ on the group.
    if !context.group_allowed(&request.group_id.0, weir_core::acl::Operation::Read) {
        return HeartbeatResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let instance = request.group_instance_id.as_ref().map(|s| s.to_string());
    let result = context.groups.coordinator().heartbeat(
        &request.group_id.0,
        &request.member_id,
        instance.as_deref(),
        request.generation_id,
        now_ms(),
    );
    let code = match result {
        Ok(()) => errors::NONE,
        Err(error) => errors::group_code(error),
    };
    HeartbeatResponse::default().with_error_code(code)
}
