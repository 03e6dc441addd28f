//! InitProducerId (v0–4): hands an idempotent producer its producer id and epoch. Without
//! a producer id: a fresh id (never reused, even across restarts) at epoch 0. With one
//! (v3+, a producer bumping its epoch after an error): the same id at the next epoch when
//! the epoch given is the current one, else PRODUCER_FENCED (v4+) or INVALID_PRODUCER_EPOCH
//! (older versions); an id weir no longer remembers gets a fresh id, as Kafka gives every
//! non-transactional producer. Partitions then check each batch's epoch and sequence
//! (`weir_storage::producer_state`).
//!
//! Transactions are a later issue: a transactional id is answered with
//! COORDINATOR_NOT_AVAILABLE — "no transaction coordinator here" — which every client
//! reports under that name once its retries run out, rather than NOT_COORDINATOR, which
//! sends clients back to FindCoordinator in a loop that names nothing useful.

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader,
};
use weir_core::CoreError;
use weir_core::producer_ids::{ProducerIdAndEpoch, ProducerIdError};

use super::Context;
use crate::errors;

/// First version that answers a stale epoch with PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 4;
/// Kafka's `transaction.max.timeout.ms` default (15 minutes). Kafka checks it for
/// transactional producers only; weir checks every request, which costs nothing for real
/// idempotent producers (librdkafka sends −1, the Java client and kafka-python their
/// `transaction.timeout.ms`, 60 s by default) and refuses nonsense early.
pub const TRANSACTION_MAX_TIMEOUT_MS: i32 = 15 * 60 * 1000;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let version = header.request_api_version;
    if request.transaction_timeout_ms > TRANSACTION_MAX_TIMEOUT_MS {
        return refuse(errors::INVALID_TRANSACTION_TIMEOUT);
    }
    if request.transactional_id.is_some() {
        return refuse(errors::COORDINATOR_NOT_AVAILABLE);
    }
    let ids = context.broker.producer_ids();
    let result = match (request.producer_id.0, request.producer_epoch) {
        (-1, -1) => ids.fresh(),
        (producer_id, epoch) if producer_id >= 0 && epoch >= 0 => ids.bump(producer_id, epoch),
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

    #[test]
    fn every_version_gets_a_fresh_id_at_epoch_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let mut seen = Vec::new();
        for version in versions(ApiKey::InitProducerId) {
            let response = handle(&context, &header(version), request(-1, -1));
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

    #[test]
    fn a_producer_bumps_its_epoch_and_a_stale_one_is_fenced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let first = handle(&context, &header(4), request(-1, -1));
        let id = first.producer_id.0;
        let bumped = handle(&context, &header(4), request(id, 0));
        assert_eq!(bumped.error_code, errors::NONE);
        assert_eq!((bumped.producer_id.0, bumped.producer_epoch), (id, 1));
        let stale = handle(&context, &header(4), request(id, 0));
        assert_eq!(stale.error_code, errors::PRODUCER_FENCED);
        assert_encodes(&stale, 4);
        let stale = handle(&context, &header(3), request(id, 0));
        assert_eq!(stale.error_code, errors::INVALID_PRODUCER_EPOCH);
        let half = handle(&context, &header(3), request(id, -1));
        assert_eq!(half.error_code, errors::INVALID_REQUEST);
    }

    #[test]
    fn transactions_and_long_timeouts_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let transactional = request(-1, -1)
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx-1"))));
        let response = handle(&context, &header(4), transactional);
        assert_eq!(response.error_code, errors::COORDINATOR_NOT_AVAILABLE);
        assert_eq!(response.producer_id.0, -1);
        let long = request(-1, -1).with_transaction_timeout_ms(TRANSACTION_MAX_TIMEOUT_MS + 1);
        let response = handle(&context, &header(2), long);
        assert_eq!(response.error_code, errors::INVALID_TRANSACTION_TIMEOUT);
        let librdkafka = request(-1, -1).with_transaction_timeout_ms(-1);
        assert_eq!(
            handle(&context, &header(4), librdkafka).error_code,
            errors::NONE
        );
    }

    #[test]
    fn ids_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let before = handle(&context(dir.path()), &header(4), request(-1, -1));
        let after = handle(&context(dir.path()), &header(4), request(-1, -1));
        assert!(after.producer_id.0 > before.producer_id.0);
    }
}
