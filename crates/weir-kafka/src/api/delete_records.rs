//! STUB: DeleteRecordsRequest — to be implemented.

use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    DeleteRecordsResponse::default()
}
