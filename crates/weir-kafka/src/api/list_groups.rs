//! ListGroups (v0–5): every group this coordinator holds — with members or only with
//! committed offsets — with its protocol type, and (v4+) its state and (v5+) its type
//! ("classic" or "consumer"), filtered by state (v4+) and type (v5+), case-insensitively
//! as Kafka compares them.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::Context;

const STATE_VERSION: i16 = 4;
const TYPE_VERSION: i16 = 5;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let groups = context
        .groups
        .coordinator()
        .list()
        .into_iter()
        .filter(|g| {
            (version < STATE_VERSION
                || states.is_empty()
                || states.contains(&g.state.to_ascii_lowercase()))
                && (version < TYPE_VERSION
                    || types.is_empty()
                    || types.contains(&g.group_type.to_string()))
        })
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if version >= STATE_VERSION {
                listed = listed.with_group_state(StrBytes::from_string(g.state));
            }
            if version >= TYPE_VERSION {
                listed = listed.with_group_type(StrBytes::from_static_str(g.group_type));
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
