//! STUB: DescribeConfigsRequest — to be implemented.

use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    DescribeConfigsResponse::default()
}
