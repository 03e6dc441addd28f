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

/// The four transaction APIs together, through their handlers, as a client drives them.
#[cfg(test)]
mod tests {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, GroupId, InitProducerIdRequest,
        OffsetFetchRequest, TopicName, TransactionalId, TxnOffsetCommitRequest,
    };
    use kafka_protocol::protocol::StrBytes;
    use weir_core::TopicId;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::super::{
        add_offsets_to_txn, add_partitions_to_txn, init_producer_id, offset_fetch,
        txn_offset_commit,
    };
    use super::*;

    fn s(text: &str) -> StrBytes {
        StrBytes::from_string(text.to_string())
    }

    fn add_partitions(pid: i64, epoch: i16, topics: &[(&str, i32)]) -> AddPartitionsToTxnRequest {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(
                topics
                    .iter()
                    .map(|(name, p)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s(name)))
                            .with_partitions(vec![*p])
                    })
                    .collect(),
            )
    }

    fn txn_commit(pid: i64, epoch: i16, group: &str, offset: i64) -> TxnOffsetCommitRequest {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_group_id(GroupId(s(group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_topics(vec![
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("orders")))
                    .with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ]),
            ])
    }

    fn end(pid: i64, epoch: i16, committed: bool) -> EndTxnRequest {
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(committed)
    }

    async fn init(context: &Context) -> (i64, i16) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("tx"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        // While a transaction's markers are being written the answer is
        // CONCURRENT_TRANSACTIONS, which clients retry.
        for _ in 0..10_000 {
            let response = init_producer_id::handle(context, &header(4), request.clone()).await;
            if response.error_code != 51 {
                assert_eq!(response.error_code, errors::NONE);
                return (response.producer_id.0, response.producer_epoch);
            }
            tokio::task::yield_now().await;
        }
        panic!("the transaction never completed")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_commits_its_offsets_and_a_stale_epoch_is_fenced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("orders", TopicId([3; 16]), 2, &[], false)
            .expect("create");
        let (pid, epoch) = init(&context).await;

        // An unknown partition fails the request; the others were not attempted.
        let mixed = add_partitions_to_txn::handle(
            &context,
            &header(3),
            add_partitions(pid, epoch, &[("orders", 0), ("missing", 0)]),
        )
        .await;
        for version in versions(ApiKey::AddPartitionsToTxn) {
            assert_encodes(&mixed, version);
        }
        let codes: Vec<i16> = mixed
            .results_by_topic_v3_and_below
            .iter()
            .map(|t| t.results_by_partition[0].partition_error_code)
            .collect();
        assert_eq!(codes, vec![55, errors::UNKNOWN_TOPIC_OR_PARTITION]);

        let added = add_partitions_to_txn::handle(
            &context,
            &header(3),
            add_partitions(pid, epoch, &[("orders", 0)]),
        )
        .await;
        assert_eq!(
            added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
            errors::NONE
        );
        let offsets = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s("g")));
        let response = add_offsets_to_txn::handle(&context, &header(3), offsets).await;
        assert_eq!(response.error_code, errors::NONE);
        assert_encodes(&response, 3);

        let committed =
            txn_offset_commit::handle(&context, &header(3), txn_commit(pid, epoch, "g", 42)).await;
        assert_eq!(committed.topics[0].partitions[0].error_code, errors::NONE);
        assert_encodes(&committed, 3);
        let not_added =
            txn_offset_commit::handle(&context, &header(3), txn_commit(pid, epoch, "other", 1))
                .await;
        assert_eq!(
            not_added.topics[0].partitions[0].error_code,
            errors::INVALID_TXN_STATE
        );

        let fetch = OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("orders")))
                    .with_partition_indexes(vec![0]),
            ]))
            .with_require_stable(true);
        let pending = offset_fetch::handle(&context, &header(7), fetch.clone());
        assert_eq!(
            pending.topics[0].partitions[0].error_code, 88,
            "UNSTABLE_OFFSET_COMMIT"
        );

        let ended = handle(&context, &header(3), end(pid, epoch, true)).await;
        assert_eq!(ended.error_code, errors::NONE);
        for version in versions(ApiKey::EndTxn) {
            assert_encodes(&ended, version);
        }
        // The marker (and with it the offsets) lands after the answer.
        let groups = context.groups.coordinator();
        for _ in 0..10_000 {
            if !groups.has_pending_txn_offset("g", "orders", 0) {
                break;
            }
            tokio::task::yield_now().await;
        }
        let stable = offset_fetch::handle(&context, &header(7), fetch);
        assert_eq!(stable.topics[0].partitions[0].error_code, errors::NONE);
        assert_eq!(stable.topics[0].partitions[0].committed_offset, 42);

        // A new instance bumps the epoch: the old one is fenced, by version.
        let (same, bumped) = init(&context).await;
        assert_eq!((same, bumped), (pid, epoch + 1));
        let fenced = handle(&context, &header(3), end(pid, epoch, false)).await;
        assert_eq!(fenced.error_code, errors::PRODUCER_FENCED);
        let fenced = handle(&context, &header(1), end(pid, epoch, false)).await;
        assert_eq!(fenced.error_code, errors::INVALID_PRODUCER_EPOCH);
    }
}
