//! ConsumerGroupDescribe (v0–1): a KIP-848 group's epochs, assignor, and members with
//! their subscriptions, current and target assignments. A classic or unknown group answers
//! GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, GroupId, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use weir_core::groups::consumer::TopicPartitions as DescribedAssignment;

use super::Context;
use crate::errors;

/// "Not requested" for authorized operations (KIP-430).
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// v1's member type of a member speaking the consumer protocol (KIP-1099).
const MEMBER_TYPE_CONSUMER: i8 = 1;
const MEMBER_TYPE_VERSION: i16 = 1;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let version = header.request_api_version;
    let ids: Vec<String> = request.group_ids.iter().map(|g| g.0.to_string()).collect();
    let groups = context
        .groups
        .coordinator()
        .consumer_describe(&ids)
        .into_iter()
        .map(|(id, described)| {
            let group = DescribedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(id)))
                .with_authorized_operations(OPERATIONS_NOT_REQUESTED);
            match described {
                Ok(d) => group
                    .with_group_state(StrBytes::from_static_str(d.state.name()))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(StrBytes::from_string(d.assignor_name))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                let member = Member::default()
                                    .with_member_id(StrBytes::from_string(m.member_id))
                                    .with_instance_id(m.instance_id.map(StrBytes::from_string))
                                    .with_rack_id(m.rack_id.map(StrBytes::from_string))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(StrBytes::from_string(m.client_id))
                                    .with_client_host(StrBytes::from_string(m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names
                                            .into_iter()
                                            .map(|n| TopicName(StrBytes::from_string(n)))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(
                                        m.subscribed_topic_regex.map(StrBytes::from_string),
                                    )
                                    .with_assignment(assignment(m.assignment))
                                    .with_target_assignment(assignment(m.target_assignment));
                                if version >= MEMBER_TYPE_VERSION {
                                    member.with_member_type(MEMBER_TYPE_CONSUMER)
                                } else {
                                    member
                                }
                            })
                            .collect(),
                    ),
                Err(error) => group
                    .with_error_code(errors::group_code(error))
                    .with_error_message(Some(StrBytes::from_string(error.to_string()))),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn assignment(described: Vec<DescribedAssignment>) -> Assignment {
    Assignment::default().with_topic_partitions(
        described
            .into_iter()
            .map(|a| {
                TopicPartitions::default()
                    .with_topic_id(uuid::Uuid::from_bytes(a.topic_id.0))
                    .with_topic_name(TopicName(StrBytes::from_string(a.topic_name)))
                    .with_partitions(a.partitions)
            })
            .collect(),
    )
}
