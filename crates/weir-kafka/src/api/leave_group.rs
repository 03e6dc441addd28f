//! LeaveGroup (v0–5): members leave a classic group (v3+ several at once, by member id or
//! by static instance id), which starts a rebalance for those who stay.

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse, RequestHeader};
use weir_core::groups::classic::LeaveMember;

use super::Context;
use crate::errors;
use crate::groups::now_ms;

/// First version that names members in a list (KIP-345 batch leave).
const BATCH_VERSION: i16 = 3;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    // Kafka's authorizer: group membership needs READ on the group.
    if !context.group_allowed(&request.group_id.0, weir_core::acl::Operation::Read) {
        return LeaveGroupResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let version = header.request_api_version;
    let members: Vec<LeaveMember> = if version >= BATCH_VERSION {
        request
            .members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let groups = &context.groups;
    let done = groups
        .coordinator()
        .leave(&request.group_id.0, &members, now_ms());
    groups.wake_timer();
    let results = match groups.finish(done).await {
        Ok(Ok(results)) => results,
        Ok(Err(error)) => {
            return LeaveGroupResponse::default().with_error_code(errors::group_code(error));
        }
        Err(_) => {
            return LeaveGroupResponse::default()
                .with_error_code(errors::COORDINATOR_NOT_AVAILABLE);
        }
    };
    if version < BATCH_VERSION {
        let code = match results.first() {
            Some(Err(error)) => errors::group_code(*error),
            _ => errors::NONE,
        };
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let answers = request
        .members
        .into_iter()
        .zip(results)
        .map(|(member, result)| {
            MemberResponse::default()
                .with_member_id(member.member_id)
                .with_group_instance_id(member.group_instance_id)
                .with_error_code(match result {
                    Ok(()) => errors::NONE,
                    Err(error) => errors::group_code(error),
                })
        })
        .collect();
    LeaveGroupResponse::default().with_members(answers)
}
