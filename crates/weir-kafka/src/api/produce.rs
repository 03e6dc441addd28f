//! STUB: Produce — to be implemented.

use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, ResponseKind};

use super::{Context, Outcome};

pub async fn handle(
    _context: &Context,
    _header: &RequestHeader,
    request: ProduceRequest,
) -> Outcome {
    if request.acks == 0 {
        return Outcome::NoResponse;
    }
    Outcome::Respond(Box::new(ResponseKind::Produce(ProduceResponse::default())))
}
