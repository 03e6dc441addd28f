//! STUB: FetchRequest — to be implemented.

use kafka_protocol::messages::{FetchRequest, FetchResponse, RequestHeader};

use super::Context;

pub async fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: FetchRequest,
) -> FetchResponse {
    FetchResponse::default()
}
