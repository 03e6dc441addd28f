//! STUB: AlterConfigsRequest — to be implemented.

use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    AlterConfigsResponse::default()
}
