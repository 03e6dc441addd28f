//! STUB: MetadataRequest — to be implemented.

use kafka_protocol::messages::{MetadataRequest, MetadataResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: MetadataRequest,
) -> MetadataResponse {
    MetadataResponse::default()
}
