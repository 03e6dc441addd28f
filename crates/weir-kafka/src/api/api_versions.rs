//! ApiVersions (v0–4): the APIs and versions weir implements, nothing more — clients
//! switch features on by what is advertised. Tagged fields stay at their defaults and so
//! are omitted on the wire, which older librdkafka (before 2.2) needs to parse the reply.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};

use super::{Context, SUPPORTED};
use crate::errors::UNSUPPORTED_VERSION;

pub fn handle(
    _context: &Context,
    header: &RequestHeader,
    request: ApiVersionsRequest,
) -> ApiVersionsResponse {
    // v3+ clients name their software: worth a line when tracing a client's behaviour.
    tracing::debug!(
        version = header.request_api_version,
        client = request.client_software_name.as_str(),
        client_version = request.client_software_version.as_str(),
        "ApiVersions"
    );
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The v0 answer to an ApiVersions version weir does not know: error 35 and weir's ranges
/// (KIP-511), so the client retries with a version both sides speak.
pub fn unsupported_version_response() -> kafka_protocol::messages::ResponseKind {
    kafka_protocol::messages::ResponseKind::ApiVersions(
        ApiVersionsResponse::default()
            .with_error_code(UNSUPPORTED_VERSION)
            .with_api_keys(api_keys()),
    )
}

fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}
