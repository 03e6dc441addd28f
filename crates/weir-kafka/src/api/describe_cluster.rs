//! DescribeCluster (v0–1): this node as the cluster's only broker and its controller, with
//! the cluster id. Authorized operations are not computed (weir has no ACLs yet). weir
//! serves broker endpoints only: a request for controller endpoints (v1) is refused as
//! Kafka's brokers refuse it.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use super::metadata::AUTHORIZED_OPERATIONS_UNKNOWN;
use crate::errors::NONE;

/// Kafka's endpoint types (v1+): brokers, controllers.
const ENDPOINT_BROKERS: i8 = 1;
const ENDPOINT_CONTROLLERS: i8 = 2;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_id(StrBytes::from_string(context.config.cluster_id.clone()))
        .with_cluster_authorized_operations(AUTHORIZED_OPERATIONS_UNKNOWN);
    match request.endpoint_type {
        ENDPOINT_BROKERS => {}
        ENDPOINT_CONTROLLERS => {
            return response
                .with_error_code(ResponseError::MismatchedEndpointType.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "this is a broker endpoint; weir has no separate controller endpoint",
                )));
        }
        other => {
            return response
                .with_error_code(ResponseError::UnsupportedEndpointType.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "endpoint type {other} is not supported"
                ))));
        }
    }
    let node_id = BrokerId(context.config.node_id);
    let broker = DescribeClusterBroker::default()
        .with_broker_id(node_id)
        .with_host(StrBytes::from_string(
            context.config.advertised_host.clone(),
        ))
        .with_port(context.config.advertised_port)
        .with_rack(None);
    response
        .with_error_code(NONE)
        .with_error_message(None)
        .with_controller_id(node_id)
        .with_brokers(vec![broker])
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::*;

    #[test]
    fn this_node_is_the_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for version in versions(ApiKey::DescribeCluster) {
            let request =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            let response = handle(&context, &header(version), request);
            assert_encodes(&response, version);
            assert_eq!(response.error_code, NONE);
            assert_eq!(response.cluster_id.as_str(), "weir-test");
            assert_eq!(response.controller_id, BrokerId(NODE_ID));
            assert_eq!(response.brokers.len(), 1);
            assert_eq!(response.brokers[0].broker_id, BrokerId(NODE_ID));
            assert_eq!(response.brokers[0].port, 9092);
        }
        let controllers =
            DescribeClusterRequest::default().with_endpoint_type(ENDPOINT_CONTROLLERS);
        let response = handle(&context, &header(1), controllers);
        assert_encodes(&response, 1);
        assert_eq!(
            response.error_code,
            ResponseError::MismatchedEndpointType.code()
        );
        assert!(response.brokers.is_empty());
    }
}
