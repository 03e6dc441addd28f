//! DescribeGroups (v0–6): a classic group's state, protocol and members (with their
//! metadata and assignments). An unknown group — or a KIP-848 group, which
//! ConsumerGroupDescribe describes — is answered as Kafka does: state "Dead" with no error
//! before v6, GROUP_ID_NOT_FOUND from v6.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use crate::errors;

/// First version that answers GROUP_ID_NOT_FOUND (with a message) for unknown groups.
const NOT_FOUND_VERSION: i16 = 6;
/// First version with authorized operations (KIP-430); "not requested" is i32::MIN.
const AUTHORIZED_OPERATIONS_VERSION: i16 = 3;
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.request_api_version;
    let ids: Vec<String> = request.groups.iter().map(|g| g.0.to_string()).collect();
    let described = context.groups.coordinator().describe(&ids);
    let groups = described
        .into_iter()
        .map(|(id, result)| {
            let mut group =
                DescribedGroup::default().with_group_id(GroupId(StrBytes::from_string(id)));
            if version >= AUTHORIZED_OPERATIONS_VERSION {
                group = group.with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            }
            // Kafka's authorizer: DESCRIBE on the group, else nothing about it.
            if !context.group_allowed(&group.group_id.0, weir_core::acl::Operation::Describe) {
                return group.with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
            }
            match result {
                Ok(description) => group
                    .with_group_state(StrBytes::from_static_str(description.state.name()))
                    .with_protocol_type(StrBytes::from_string(description.protocol_type))
                    .with_protocol_data(StrBytes::from_string(description.protocol_name))
                    .with_members(
                        description
                            .members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_group_instance_id(
                                        m.group_instance_id.map(StrBytes::from_string),
                                    )
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                Err(error) => {
                    let group = group.with_group_state(StrBytes::from_static_str("Dead"));
                    if version >= NOT_FOUND_VERSION {
                        group
                            .with_error_code(errors::group_code(error))
                            .with_error_message(Some(StrBytes::from_string(error.to_string())))
                    } else {
                        group
                    }
                }
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
