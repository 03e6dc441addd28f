//! STUB: CreateTopicsRequest — to be implemented.

use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    CreateTopicsResponse::default()
}
