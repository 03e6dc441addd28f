//! AddOffsetsToTxn (v0–3): a transactional producer is about to commit a consumer group's
//! offsets in its transaction; the coordinator adds the group's `__consumer_offsets`
//! partition to the transaction (durably) before answering.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, RequestHeader};
use weir_core::group_log::group_partition;
use weir_core::txn::Producer;

use super::Context;
use crate::errors;

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let producer = Producer {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
        producer_fenced_supported: header.request_api_version >= PRODUCER_FENCED_VERSION,
    };
    let transactional_id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let result = context
        .txns
        .call(|coordinator, ticket, _, now_ms| {
            coordinator.add_offsets(
                &transactional_id,
                producer,
                &group,
                &group_partition,
                ticket,
                now_ms,
            )
        })
        .await;
    let code = match result {
        Ok(_) => errors::NONE,
        Err(error) => errors::txn_code(&error),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
