//! STUB: IncrementalAlterConfigsRequest — to be implemented.

use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    IncrementalAlterConfigsResponse::default()
}
