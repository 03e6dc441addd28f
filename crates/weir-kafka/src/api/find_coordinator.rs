//! FindCoordinator (v0–6): which broker coordinates a group (or a transactional id). One
//! node coordinates everything, so the answer is this broker for every key of a known
//! type: groups (0) and transactions (1; the transaction coordinator answers
//! COORDINATOR_NOT_AVAILABLE until transactions exist). v4+ asks for several keys at once.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use crate::errors;

/// First version that batches keys (KIP-699).
const BATCHED_VERSION: i16 = 4;
/// Key types: a consumer group, a transactional id.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let known_type = matches!(request.key_type, KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION);
    let error = if known_type {
        errors::NONE
    } else {
        errors::INVALID_REQUEST
    };
    let host = StrBytes::from_string(context.config.advertised_host.clone());
    let port = context.config.advertised_port;
    let node = BrokerId(context.config.node_id);
    if header.request_api_version >= BATCHED_VERSION {
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key).with_error_code(error);
                if error == errors::NONE {
                    coordinator
                        .with_node_id(node)
                        .with_host(host.clone())
                        .with_port(port)
                } else {
                    coordinator.with_node_id(BrokerId(-1)).with_port(-1)
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if error != errors::NONE {
        return FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_node_id(node)
        .with_host(host)
        .with_port(port)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::*;

    #[test]
    fn this_node_coordinates_every_group_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for version in versions(ApiKey::FindCoordinator) {
            let request = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("g"))
                .with_coordinator_keys(vec![StrBytes::from_static_str("g")]);
            let response = handle(&context, &header(version), request);
            assert_encodes(&response, version);
            if version >= BATCHED_VERSION {
                assert_eq!(response.coordinators.len(), 1);
                assert_eq!(response.coordinators[0].node_id.0, NODE_ID);
                assert_eq!(response.coordinators[0].error_code, errors::NONE);
            } else {
                assert_eq!(response.node_id.0, NODE_ID);
                assert_eq!(response.error_code, errors::NONE);
            }
        }
    }

    #[test]
    fn an_unknown_key_type_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("g"))
            .with_key_type(7);
        let response = handle(&context, &header(3), request);
        assert_eq!(response.error_code, errors::INVALID_REQUEST);
    }
}
