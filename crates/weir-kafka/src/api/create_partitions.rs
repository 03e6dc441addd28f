//! STUB: CreatePartitionsRequest — to be implemented.

use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    CreatePartitionsResponse::default()
}
