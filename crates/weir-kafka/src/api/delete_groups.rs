//! DeleteGroups (v0–2): removes groups that have no members, with their committed offsets
//! (tombstones in `__consumer_offsets`). A group with members answers NON_EMPTY_GROUP, an
//! unknown one GROUP_ID_NOT_FOUND, one the principal may not DELETE
//! GROUP_AUTHORIZATION_FAILED.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use crate::errors;
use crate::groups::now_ms;

pub async fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    // Kafka's authorizer: DELETE on each group; the others are not touched.
    let (ids, denied): (Vec<String>, Vec<String>) = request
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .partition(|id| context.group_allowed(id, weir_core::acl::Operation::Delete));
    let groups = &context.groups;
    let done = groups.coordinator().delete_groups(&ids, now_ms());
    let results: Vec<(String, i16)> = match groups.finish(done).await {
        Ok(results) => results
            .into_iter()
            .map(|(id, result)| {
                (
                    id,
                    match result {
                        Ok(()) => errors::NONE,
                        Err(error) => errors::group_code(error),
                    },
                )
            })
            .collect(),
        Err(_) => ids
            .into_iter()
            .map(|id| (id, errors::COORDINATOR_NOT_AVAILABLE))
            .collect::<Vec<_>>(),
    };
    let denied = denied
        .into_iter()
        .map(|id| (id, errors::GROUP_AUTHORIZATION_FAILED));
    DeleteGroupsResponse::default().with_results(
        results
            .into_iter()
            .chain(denied)
            .map(|(id, code)| {
                DeletableGroupResult::default()
                    .with_group_id(GroupId(StrBytes::from_string(id)))
                    .with_error_code(code)
            })
            .collect(),
    )
}
