//! STUB: ListOffsetsRequest — to be implemented.

use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    ListOffsetsResponse::default()
}
