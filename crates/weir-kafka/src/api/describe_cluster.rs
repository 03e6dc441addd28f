//! STUB: DescribeClusterRequest — to be implemented.

use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse, RequestHeader};

use super::Context;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
}
