//! JoinGroup (v0–9): a member joins a classic group, or rejoins it for a rebalance. The
//! request parks until the coordinator completes the rebalance (every known member
//! rejoined, or the rebalance timeout passed), then the leader gets the members' metadata
//! to compute the assignment and everyone gets the new generation. From v4 a new member
//! without an id is first answered MEMBER_ID_REQUIRED with the id to rejoin with.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use weir_core::groups::GroupError;
use weir_core::groups::classic::{JoinRequest, Reply};

use super::Context;
use crate::errors;
use crate::groups::{Parked, now_ms};

/// First version whose new members must rejoin with a broker-given id (KIP-394).
const KNOWN_MEMBER_ID_VERSION: i16 = 4;
/// First version that carries a rebalance timeout of its own (v0 uses the session timeout).
const REBALANCE_TIMEOUT_VERSION: i16 = 1;
/// First version with `skip_assignment` (KIP-814).
const SKIP_ASSIGNMENT_VERSION: i16 = 9;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: JoinGroupRequest,
    client_host: &str,
) -> JoinGroupResponse {
    // Kafka's authorizer: group membership needs READ on the group.
    if !context.group_allowed(&request.group_id.0, weir_core::acl::Operation::Read) {
        return JoinGroupResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let version = header.request_api_version;
    let groups = &context.groups;
    let group_id = request.group_id.0.to_string();
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= REBALANCE_TIMEOUT_VERSION {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        require_known_member_id: version >= KNOWN_MEMBER_ID_VERSION,
        supports_skip_assignment: version >= SKIP_ASSIGNMENT_VERSION,
        client_id: super::client_id(header),
        client_host: client_host.to_string(),
        reason: request.reason.map(|s| s.to_string()),
    };
    let member_id = join.member_id.clone();
    let parked = Parked::new(groups);
    let done = groups
        .coordinator()
        .join(&group_id, join, parked.ticket(), now_ms());
    groups.wake_timer();
    if groups.finish(done).await.is_err() {
        return refuse(errors::COORDINATOR_NOT_AVAILABLE, &member_id);
    }
    match parked.wait().await {
        Some(Reply::Join(_, Ok(joined))) => {
            let mut response = JoinGroupResponse::default()
                .with_generation_id(joined.generation_id)
                .with_protocol_type(joined.protocol_type.map(StrBytes::from_string))
                .with_protocol_name(joined.protocol_name.map(StrBytes::from_string))
                .with_leader(StrBytes::from_string(joined.leader))
                .with_member_id(StrBytes::from_string(joined.member_id))
                .with_members(
                    joined
                        .members
                        .into_iter()
                        .map(|m| {
                            JoinGroupResponseMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_group_instance_id(
                                    m.group_instance_id.map(StrBytes::from_string),
                                )
                                .with_metadata(m.metadata)
                        })
                        .collect(),
                );
            if version >= SKIP_ASSIGNMENT_VERSION {
                response = response.with_skip_assignment(joined.skip_assignment);
            }
            response
        }
        Some(Reply::Join(_, Err(refused))) => {
            let code = match refused.error {
                // Before v4 there is no MEMBER_ID_REQUIRED: the coordinator never asks.
                GroupError::MemberIdRequired if version < KNOWN_MEMBER_ID_VERSION => {
                    errors::group_code(GroupError::UnknownMemberId)
                }
                error => errors::group_code(error),
            };
            refuse(code, &refused.member_id)
        }
        // The coordinator dropped the ticket (the group died) or answered with the wrong kind.
        _ => refuse(errors::COORDINATOR_NOT_AVAILABLE, &member_id),
    }
}

fn refuse(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
}
