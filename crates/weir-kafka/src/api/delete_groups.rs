//! DeleteGroups (v0–2): removes groups that have no members, with their committed offsets
//! (tombstones in `__consumer_offsets`). A group with members answers NON_EMPTY_GROUP, an
//! unknown one GROUP_ID_NOT_FOUND.

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
    let ids: Vec<String> = request
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .collect();
    let groups = &context.groups;
    let done = groups.coordinator().delete_groups(&ids, now_ms());
    let results = match groups.finish(done).await {
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
    DeleteGroupsResponse::default().with_results(
        results
            .into_iter()
            .map(|(id, code)| {
                DeletableGroupResult::default()
                    .with_group_id(GroupId(StrBytes::from_string(id)))
                    .with_error_code(code)
            })
            .collect(),
    )
}
