//! TxnOffsetCommit (v0–3): a transactional producer commits a consumer group's offsets
//! inside its transaction. The transaction must be Ongoing and include the group
//! (AddOffsetsToTxn); the offsets are then held pending in the group coordinator and become
//! ordinary commits when the transaction commits (dropped on abort); they are records in
//! `__consumer_offsets` meanwhile, so a restart keeps them, and the answer waits until
//! those are durable. Meanwhile OffsetFetch
//! with `require_stable` answers UNSTABLE_OFFSET_COMMIT for them. v3+ carries the member's
//! generation, checked like OffsetCommit's (KIP-447).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    RequestHeader, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_core::groups::coordinator::{CommitEntry, Committer};
use weir_core::txn::Producer;

use super::Context;
use crate::errors;
use crate::groups::now_ms;

pub async fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let producer = Producer {
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
        // Kafka's group coordinator answers a stale epoch here with INVALID_PRODUCER_EPOCH
        // in every version.
        producer_fenced_supported: false,
    };
    let transactional_id = request.transactional_id.0.to_string();
    let group = request.group_id.0.to_string();
    let entries: Vec<CommitEntry> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| CommitEntry {
                topic: topic.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    let checked = context
        .txns
        .with_mut(|coordinator| coordinator.txn_offset_commit(&transactional_id, producer, &group));
    let results: Vec<(String, i32, i16)> = match checked {
        Err(error) => {
            let code = errors::txn_code(&error);
            entries
                .iter()
                .map(|e| (e.topic.clone(), e.partition, code))
                .collect()
        }
        Ok(()) => {
            let committer = Committer {
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
                generation_or_member_epoch: request.generation_id,
            };
            let keys: Vec<_> = entries
                .iter()
                .map(|e| (e.topic.clone(), e.partition))
                .collect();
            let done = context.groups.coordinator().txn_commit(
                &group,
                producer.producer_id,
                &committer,
                entries,
                now_ms(),
            );
            // Answered once the pending records are durable, like OffsetCommit.
            match context.groups.finish(done).await {
                Err(_) => {
                    let code = errors::KAFKA_STORAGE_ERROR;
                    keys.into_iter().map(|(t, p)| (t, p, code)).collect()
                }
                Ok(Ok(results)) => results
                    .into_iter()
                    .map(|(entry, result)| {
                        let code = match result {
                            Ok(()) => errors::NONE,
                            Err(error) => errors::group_code(error),
                        };
                        (entry.topic, entry.partition, code)
                    })
                    .collect(),
                Ok(Err(error)) => {
                    let code = errors::group_code(error);
                    keys.into_iter().map(|(t, p)| (t, p, code)).collect()
                }
            }
        }
    };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (topic, partition, code) in results {
        let answer = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(code);
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(answer),
            None => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![answer]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}
