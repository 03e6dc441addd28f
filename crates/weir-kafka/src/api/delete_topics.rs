//! STUB: DeleteTopicsRequest — to be implemented.

use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    DeleteTopicsResponse::default()
}
