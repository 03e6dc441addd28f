//! AddPartitionsToTxn (v0–3): a transactional producer names the partitions it is about to
//! write; the coordinator adds them to its open transaction (starting one if none is open)
//! and makes that durable before answering. Every partition gets the same answer (Kafka:
//! the request succeeds or fails whole); a partition of an unknown topic fails the request
//! with UNKNOWN_TOPIC_OR_PARTITION on it and OPERATION_NOT_ATTEMPTED on the others.
//! v4+ (KIP-890's batched, broker-to-broker form) is not offered.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, RequestHeader,
};
use weir_core::group_log::is_internal_topic;
use weir_core::txn::{Producer, TopicPartition};

use super::Context;
use crate::errors;

/// First version that knows PRODUCER_FENCED (KIP-588).
const PRODUCER_FENCED_VERSION: i16 = 2;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let version = header.request_api_version;
    let transactional_id = request.v3_and_below_transactional_id.0.to_string();
    let producer = Producer {
        producer_id: request.v3_and_below_producer_id.0,
        epoch: request.v3_and_below_producer_epoch,
        producer_fenced_supported: version >= PRODUCER_FENCED_VERSION,
    };
    let mut partitions = Vec::new();
    let mut unknown = Vec::new();
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.as_str();
        let info = context.broker.topic(name);
        for &partition in &topic.partitions {
            let known = info
                .as_ref()
                .is_some_and(|t| (0..t.partitions).contains(&partition))
                && !is_internal_topic(name);
            let tp = TopicPartition::new(name, partition);
            if known {
                partitions.push(tp);
            } else {
                unknown.push(tp);
            }
        }
    }
    let code_of = |tp: &TopicPartition| -> i16 {
        if unknown.contains(tp) {
            errors::UNKNOWN_TOPIC_OR_PARTITION
        } else {
            ResponseError::OperationNotAttempted.code()
        }
    };
    let code = if !unknown.is_empty() {
        None
    } else {
        let result = context
            .txns
            .call(|coordinator, ticket, _, now_ms| {
                coordinator.add_partitions(&transactional_id, producer, &partitions, ticket, now_ms)
            })
            .await;
        Some(match result {
            Ok(_) => errors::NONE,
            Err(error) => errors::txn_code(&error),
        })
    };
    let topics = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            let results = topic
                .partitions
                .iter()
                .map(|&partition| {
                    let tp = TopicPartition::new(topic.name.0.as_str(), partition);
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(partition)
                        .with_partition_error_code(code.unwrap_or_else(|| code_of(&tp)))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(results)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
}
