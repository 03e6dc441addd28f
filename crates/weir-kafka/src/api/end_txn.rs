//! EndTxn (v0–3): a transactional producer commits or aborts its transaction. The answer
//! leaves once PrepareCommit/PrepareAbort is durable; the markers are written after it
//! (a read_committed reader sees the records once the marker reaches their partition).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId, RequestHeader};
use weir_core::txn::{Producer, TxnResult};

use super::Context;
use crate::errors;

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: EndTxnRequest,
) -> EndTxnResponse {
    let producer = Producer {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
        producer_fenced_supported: header.request_api_version >= PRODUCER_FENCED_VERSION,
    };
    let transactional_id = request.transactional_id.0.to_string();
    let result = if request.committed {
        TxnResult::Commit
    } else {
        TxnResult::Abort
    };
    let answer = context
        .txns
        .call(|coordinator, ticket, _, now_ms| {
            coordinator.end_txn(&transactional_id, producer, result, ticket, now_ms)
        })
        .await;
    let code = match answer {
        Ok(_) => errors::NONE,
        Err(error) => errors::txn_code(&error),
    };
    // v5+ (transactions v2) carries the producer id and epoch; older versions ignore them.
    EndTxnResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}
