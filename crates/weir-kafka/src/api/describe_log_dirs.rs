//! STUB: DescribeLogDirsRequest — to be implemented.

use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    DescribeLogDirsResponse::default()
}
