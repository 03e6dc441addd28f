//! InitProducerId (v0–4): hands an idempotent producer its producer id and epoch. Without
//! a producer id: a fresh id (never reused, even across restarts) at epoch 0. With one
//! (v3+, a producer bumping its epoch after an error): the same id at the next epoch when
//! the epoch given is the current one, else PRODUCER_FENCED (v4+) or INVALID_PRODUCER_EPOCH
//! (older versions); an id weir no longer remembers gets a fresh id, as Kafka gives every
//! non-transactional producer. Partitions then check each batch's epoch and sequence
//! (`weir_storage::producer_state`).
//!
//! With a transactional id, the transaction coordinator answers (`crate::txns`): a fresh
//! id, or the id's producer at the next epoch, fencing the previous instance; an open
//! transaction of the id is aborted first (the answer waits for its markers).

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader,
};
use weir_core::CoreError;
use weir_core::producer_ids::{ProducerIdAndEpoch, ProducerIdError};
use weir_core::txn::{Answer, InitProducerId};

use super::Context;
use crate::errors;

/// First version that answers a stale epoch with PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 4;
/// Kafka's `transaction.max.timeout.ms` default (15 minutes). Kafka checks it for
/// transactional producers only; weir checks every request, which costs nothing for real
/// idempotent producers (librdkafka sends −1, the Java client and kafka-python their
/// `transaction.timeout.ms`, 60 s by default) and refuses nonsense early.
pub const TRANSACTION_MAX_TIMEOUT_MS: i32 = 15 * 60 * 1000;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let version = header.request_api_version;
    if request.transaction_timeout_ms > TRANSACTION_MAX_TIMEOUT_MS {
        return refuse(errors::INVALID_TRANSACTION_TIMEOUT);
    }
    if let Some(transactional_id) = &request.transactional_id {
        let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
        let current = match (producer_id, epoch) {
            (-1, -1) => None,
            (id, epoch) if id >= 0 && epoch >= 0 => Some((id, epoch)),
            _ => return refuse(errors::INVALID_REQUEST),
        };
        let init = InitProducerId {
            transactional_id: transactional_id.0.to_string(),
            timeout_ms: request.transaction_timeout_ms,
            current,
            producer_fenced_supported: version >= PRODUCER_FENCED_VERSION,
        };
        let answer = context
            .txns
            .call(|coordinator, ticket, allocate, now_ms| {
                coordinator.init_producer_id(&init, ticket, allocate, now_ms)
            })
            .await;
        return match answer {
            Ok(Answer::ProducerId { producer_id, epoch }) => InitProducerIdResponse::default()
                .with_error_code(errors::NONE)
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            Ok(_) => refuse(errors::UNKNOWN_SERVER_ERROR),
            Err(error) => refuse(errors::txn_code(&error)),
        };
    }
    let ids = context.broker.producer_ids();
    let result = match (request.producer_id.0, request.producer_epoch) {
        (-1, -1) => super::blocking(|| ids.fresh()),
        (producer_id, epoch) if producer_id >= 0 && epoch >= 0 => {
            super::blocking(|| ids.bump(producer_id, epoch))
        }
        // Kafka: both set or neither.
        _ => return refuse(errors::INVALID_REQUEST),
    };
    match result {
        Ok(ProducerIdAndEpoch { producer_id, epoch }) => InitProducerIdResponse::default()
            .with_error_code(errors::NONE)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(ProducerIdError::Fenced { .. }) if version >= PRODUCER_FENCED_VERSION => {
            refuse(errors::PRODUCER_FENCED)
        }
        Err(ProducerIdError::Fenced { .. }) => refuse(errors::INVALID_PRODUCER_EPOCH),
        Err(error) => {
            tracing::warn!(%error, "allocating a producer id failed");
            refuse(errors::code(&CoreError::ProducerIds(error)))
        }
    }
}

fn refuse(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, TransactionalId};
    use kafka_protocol::protocol::StrBytes;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;

    fn request(producer_id: i64, epoch: i16) -> InitProducerIdRequest {
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
    }

    #[tokio::test]
    async fn every_version_gets_a_fresh_id_at_epoch_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let mut seen = Vec::new();
        for version in versions(ApiKey::InitProducerId) {
            let response = handle(&context, &header(version), request(-1, -1)).await;
            assert_encodes(&response, version);
            assert_eq!(response.error_code, errors::NONE);
            assert!(response.producer_id.0 >= 0);
            assert_eq!(response.producer_epoch, 0);
            assert!(
                !seen.contains(&response.producer_id.0),
                "ids are not reused"
            );
            seen.push(response.producer_id.0);
        }
        assert_eq!(seen.len(), 5, "v0 to v4");
    }

    #[tokio::test]
    async fn a_producer_bumps_its_epoch_and_a_stale_one_is_fenced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let first = handle(&context, &header(4), request(-1, -1)).await;
        let id = first.producer_id.0;
        let bumped = handle(&context, &header(4), request(id, 0)).await;
        assert_eq!(bumped.error_code, errors::NONE);
        assert_eq!((bumped.producer_id.0, bumped.producer_epoch), (id, 1));
        let stale = handle(&context, &header(4), request(id, 0)).await;
        assert_eq!(stale.error_code, errors::PRODUCER_FENCED);
        assert_encodes(&stale, 4);
        let stale = handle(&context, &header(3), request(id, 0)).await;
        assert_eq!(stale.error_code, errors::INVALID_PRODUCER_EPOCH);
        let half = handle(&context, &header(3), request(id, -1)).await;
        assert_eq!(half.error_code, errors::INVALID_REQUEST);
    }

    #[tokio::test]
    async fn a_transactional_id_keeps_its_producer_id_and_long_timeouts_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let transactional = request(-1, -1)
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))));
        let first = handle(&context, &header(4), transactional.clone()).await;
        assert_eq!(first.error_code, errors::NONE);
        assert_eq!(first.producer_epoch, 0);
        let second = handle(&context, &header(4), transactional.clone()).await;
        assert_eq!(second.error_code, errors::NONE);
        assert_eq!(
            (second.producer_id.0, second.producer_epoch),
            (first.producer_id.0, 1),
            "a new instance of the id fences the old one by the epoch"
        );
        let half = handle(
            &context,
            &header(4),
            transactional
                .with_producer_epoch(-1)
                .with_producer_id(ProducerId(3)),
        )
        .await;
        assert_eq!(half.error_code, errors::INVALID_REQUEST);
        let long = request(-1, -1).with_transaction_timeout_ms(TRANSACTION_MAX_TIMEOUT_MS + 1);
        let response = handle(&context, &header(2), long).await;
        assert_eq!(response.error_code, errors::INVALID_TRANSACTION_TIMEOUT);
        let librdkafka = request(-1, -1).with_transaction_timeout_ms(-1);
        assert_eq!(
            handle(&context, &header(4), librdkafka).await.error_code,
            errors::NONE
        );
    }

    #[tokio::test]
    async fn ids_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = handle(&context(dir.path()), &header(4), request(-1, -1)).await;
        let after = handle(&context(dir.path()), &header(4), request(-1, -1)).await;
        assert!(after.producer_id.0 > before.producer_id.0);
    }
}
