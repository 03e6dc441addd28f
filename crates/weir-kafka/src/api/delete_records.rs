//! DeleteRecords (v0–2): advances a partition's log start offset (Kafka's
//! `AdminClient.deleteRecords`). Offset −1 means the high watermark; an offset beyond it
//! (or any other negative one) is OFFSET_OUT_OF_RANGE; below the current log start it
//! changes nothing. A compact-only topic refuses with POLICY_VIOLATION, as Kafka does.
//! The answer's low watermark is the new log start offset; segments wholly below it are
//! deleted at once, and the change is in the WAL before the answer.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};
use weir_core::TopicInfo;
use weir_storage::partition::PartitionError;
use weir_storage::store::{StoreError, TopicPartition};

use super::Context;
use crate::errors;

/// Kafka's low watermark of a partition that could not be changed.
const LOW_WATERMARK_UNKNOWN: i64 = -1;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let info = context.broker.topic(&topic.name);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = delete(context, info.as_ref(), p.partition_index, p.offset);
                    let (low_watermark, error_code) = match result {
                        Ok(low_watermark) => (low_watermark, errors::NONE),
                        Err(code) => (LOW_WATERMARK_UNKNOWN, code),
                    };
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(low_watermark)
                        .with_error_code(error_code)
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// The new log start offset, or the error code.
fn delete(
    context: &Context,
    topic: Option<&TopicInfo>,
    partition: i32,
    offset: i64,
) -> Result<i64, i16> {
    let topic = topic
        .filter(|t| (0..t.partitions).contains(&partition))
        .ok_or(errors::UNKNOWN_TOPIC_OR_PARTITION)?;
    let policy = topic.config.partition.cleanup_policy;
    if policy.compact && !policy.delete {
        return Err(errors::POLICY_VIOLATION);
    }
    let id = TopicPartition::new(topic.name.clone(), partition);
    context
        .broker
        .store()
        .delete_records(&id, offset)
        .map_err(|error| {
            tracing::debug!(partition = %id, offset, %error, "delete records refused");
            match error {
                StoreError::Partition {
                    source:
                        PartitionError::DeleteBeyondHighWatermark { .. }
                        | PartitionError::OffsetOutOfRange { .. },
                    ..
                } => errors::OFFSET_OUT_OF_RANGE,
                other => errors::store_code(&other),
            }
        })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::api::produce::testing::*;

    /// (error, low watermark) of deleting `topic`/`partition` up to `offset`.
    fn delete_up_to(h: &Harness, topic: &str, partition: i32, offset: i64) -> (i16, i64) {
        let request = DeleteRecordsRequest::default().with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(partition)
                        .with_offset(offset),
                ]),
        ]);
        let response = handle(&h.context, &header(2), request);
        for version in 0..=2 {
            let mut buf = bytes::BytesMut::new();
            response.encode(&mut buf, version).expect("encodes");
        }
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.partition_index, partition);
        (p.error_code, p.low_watermark)
    }

    fn log_start(h: &Harness, topic: &str) -> i64 {
        let id = TopicPartition::new(topic, 0);
        h.context
            .broker
            .store()
            .offsets(&id)
            .expect("offsets")
            .log_start_offset
    }

    #[tokio::test]
    async fn the_log_start_advances_and_never_goes_back() {
        let h = harness();
        h.create("t", 1, &[]);
        h.produce("t", 0, &[(1, b"a"), (2, b"b"), (3, b"c")], 9)
            .await;
        h.produce("t", 0, &[(4, b"d")], 9).await;
        assert_eq!(delete_up_to(&h, "t", 0, 2), (0, 2));
        assert_eq!(log_start(&h, "t"), 2);
        assert_eq!(
            delete_up_to(&h, "t", 0, 1),
            (0, 2),
            "below the start: no change"
        );
        assert_eq!(
            delete_up_to(&h, "t", 0, -1),
            (0, 4),
            "-1 is the high watermark"
        );
        assert_eq!(log_start(&h, "t"), 4);
    }

    #[tokio::test]
    async fn beyond_the_high_watermark_is_out_of_range() {
        let h = harness();
        h.create("t", 1, &[]);
        h.produce("t", 0, &[(1, b"a")], 9).await;
        assert_eq!(
            delete_up_to(&h, "t", 0, 2),
            (errors::OFFSET_OUT_OF_RANGE, -1)
        );
        assert_eq!(
            delete_up_to(&h, "t", 0, -7),
            (errors::OFFSET_OUT_OF_RANGE, -1)
        );
        assert_eq!(log_start(&h, "t"), 0);
    }

    #[tokio::test]
    async fn compact_only_topics_refuse_and_unknown_partitions_are_reported() {
        let h = harness();
        h.create("c", 1, &[("cleanup.policy", "compact")]);
        h.create("cd", 1, &[("cleanup.policy", "compact,delete")]);
        h.produce("c", 0, &[(1, b"a")], 9).await;
        h.produce("cd", 0, &[(1, b"a")], 9).await;
        assert_eq!(delete_up_to(&h, "c", 0, 1), (errors::POLICY_VIOLATION, -1));
        assert_eq!(delete_up_to(&h, "cd", 0, 1), (0, 1));
        assert_eq!(
            delete_up_to(&h, "nope", 0, 0).0,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            delete_up_to(&h, "c", 3, 0).0,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
    }
}
