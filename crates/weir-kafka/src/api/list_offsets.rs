//! ListOffsets (v1–10): where a consumer should start reading, per partition.
//!
//! - −1 latest: the high watermark; under read_committed (isolation level 1, v2+) the last
//!   stable offset (the first offset of the earliest open transaction).
//! - −2 earliest: the log start offset; −4 (v8+, earliest local) is the same, as weir has no
//!   tiered storage.
//! - −3 (v7+): the offset and timestamp of the record with the largest timestamp.
//! - −5 (v9+, latest tiered): no tiered storage, so no offset (−1), as Kafka answers when
//!   remote storage is off.
//! - any other value: the first offset whose timestamp is at least that value, with its
//!   timestamp; offset −1 and timestamp −1 when there is none (past the last timestamp, or
//!   an empty partition).
//!
//! Leader epochs are not tracked yet: −1 (unknown) is answered, which clients accept.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};
use weir_core::Broker;
use weir_storage::store::{StoreError, TopicPartition};

use super::Context;
use crate::errors;

/// Special timestamps of the request (Kafka's `ListOffsetsRequest` constants), with the
/// first version that has each.
const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const MAX_TIMESTAMP_VERSION: i16 = 7;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
const EARLIEST_LOCAL_VERSION: i16 = 8;
const LATEST_TIERED_TIMESTAMP: i64 = -5;
const LATEST_TIERED_VERSION: i16 = 9;

/// Kafka's "no timestamp" / "no offset".
const NONE: i64 = -1;
/// The request's isolation level that reads only committed data.
const READ_COMMITTED: i8 = 1;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let version = header.request_api_version;
    let broker = &context.broker;
    let read_committed = request.isolation_level == READ_COMMITTED;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = match broker.topic(&topic.name) {
                None => topic
                    .partitions
                    .iter()
                    .map(|p| refused(p.partition_index, errors::UNKNOWN_TOPIC_OR_PARTITION))
                    .collect(),
                Some(info) => topic
                    .partitions
                    .iter()
                    .map(|p| {
                        if !(0..info.partitions).contains(&p.partition_index) {
                            return refused(p.partition_index, errors::UNKNOWN_TOPIC_OR_PARTITION);
                        }
                        let id = TopicPartition::new(info.name.clone(), p.partition_index);
                        match lookup(broker, &id, p.timestamp, version, read_committed) {
                            Ok((offset, timestamp)) => ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_offset(offset)
                                .with_timestamp(timestamp),
                            Err(error) => {
                                tracing::debug!(partition = %id, %error, "list offsets failed");
                                refused(p.partition_index, errors::store_code(&error))
                            }
                        }
                    })
                    .collect(),
            };
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The (offset, timestamp) answered for `timestamp`.
fn lookup(
    broker: &Broker,
    id: &TopicPartition,
    timestamp: i64,
    version: i16,
    read_committed: bool,
) -> Result<(i64, i64), StoreError> {
    let store = broker.store();
    let found = match timestamp {
        LATEST_TIMESTAMP if read_committed => (store.offsets(id)?.last_stable_offset, NONE),
        LATEST_TIMESTAMP => (store.offsets(id)?.high_watermark, NONE),
        EARLIEST_TIMESTAMP => (store.offsets(id)?.log_start_offset, NONE),
        EARLIEST_LOCAL_TIMESTAMP if version >= EARLIEST_LOCAL_VERSION => {
            (store.offsets(id)?.log_start_offset, NONE)
        }
        LATEST_TIERED_TIMESTAMP if version >= LATEST_TIERED_VERSION => {
            store.offsets(id)?; // still UNKNOWN_TOPIC_OR_PARTITION if it is gone
            (NONE, NONE)
        }
        MAX_TIMESTAMP if version >= MAX_TIMESTAMP_VERSION => {
            store.max_timestamp(id)?.unwrap_or((NONE, NONE))
        }
        _ => store
            .offset_for_timestamp(id, timestamp)?
            .unwrap_or((NONE, NONE)),
    };
    Ok(found)
}

fn refused(partition: i32, code: i16) -> ListOffsetsPartitionResponse {
    ListOffsetsPartitionResponse::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_offset(NONE)
        .with_timestamp(NONE)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::api::produce::testing::*;

    /// (error, offset, timestamp) for `timestamp` on partition `partition` of `topic`.
    fn list(
        h: &Harness,
        topic: &str,
        partition: i32,
        timestamp: i64,
        version: i16,
    ) -> (i16, i64, i64) {
        let request = ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(timestamp),
                ]),
        ]);
        let response = handle(&h.context, &header(version), request);
        let mut buf = bytes::BytesMut::new();
        response.encode(&mut buf, version).expect("encodes");
        let p = &response.topics[0].partitions[0];
        assert_eq!(p.partition_index, partition);
        (p.error_code, p.offset, p.timestamp)
    }

    #[tokio::test]
    async fn earliest_latest_and_max_timestamp() {
        let h = harness();
        h.create("t", 1, &[]);
        assert_eq!(list(&h, "t", 0, -1, 7), (0, 0, -1), "empty: latest is 0");
        assert_eq!(
            list(&h, "t", 0, -3, 7),
            (0, -1, -1),
            "empty: no max timestamp"
        );
        h.produce("t", 0, &[(100, b"a"), (300, b"b")], 9).await;
        h.produce("t", 0, &[(200, b"c")], 9).await;
        assert_eq!(list(&h, "t", 0, -1, 1), (0, 3, -1));
        assert_eq!(list(&h, "t", 0, -2, 1), (0, 0, -1));
        assert_eq!(list(&h, "t", 0, -3, 7), (0, 1, 300));
        h.context
            .broker
            .store()
            .delete_records(&TopicPartition::new("t", 0), 2)
            .expect("delete");
        assert_eq!(list(&h, "t", 0, -2, 5), (0, 2, -1));
        assert_eq!(list(&h, "t", 0, -4, 8), (0, 2, -1));
        assert_eq!(list(&h, "t", 0, -5, 9), (0, -1, -1));
    }

    #[tokio::test]
    async fn latest_under_read_committed_is_the_last_stable_offset() {
        let h = harness();
        h.create("t", 1, &[]);
        h.produce("t", 0, &[(100, b"a")], 9).await;
        let id = TopicPartition::new("t", 0);
        let store = h.context.broker.store();
        let mut builder = weir_storage::batch::BatchBuilder::new(0, 1);
        builder.producer_id = 3;
        builder.producer_epoch = 0;
        builder.base_sequence = 0;
        builder.attributes = 0x10; // transactional
        builder.push(1, None, Some(b"t"), &[]);
        store.append(&id, &builder.build(), 1).expect("txn"); // 1
        h.produce("t", 0, &[(100, b"b")], 9).await; // 2
        let latest = |isolation: i8| {
            let request = ListOffsetsRequest::default()
                .with_isolation_level(isolation)
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic_name("t"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ]);
            let response = handle(&h.context, &header(5), request);
            response.topics[0].partitions[0].offset
        };
        assert_eq!(latest(0), 3, "read_uncommitted: the high watermark");
        assert_eq!(
            latest(READ_COMMITTED),
            1,
            "read_committed: the open transaction's start"
        );
        store.append_control(&id, 3, 0, true, 0, 1).expect("commit"); // 3
        assert_eq!(latest(READ_COMMITTED), 4);
    }

    #[tokio::test]
    async fn by_timestamp_the_first_offset_at_or_after_it() {
        let h = harness();
        h.create("t", 1, &[]);
        assert_eq!(list(&h, "t", 0, 50, 4), (0, -1, -1), "empty partition");
        h.produce("t", 0, &[(100, b"a"), (300, b"b")], 9).await;
        h.produce("t", 0, &[(200, b"c")], 9).await;
        assert_eq!(list(&h, "t", 0, 0, 4), (0, 0, 100));
        assert_eq!(list(&h, "t", 0, 100, 4), (0, 0, 100));
        assert_eq!(list(&h, "t", 0, 101, 4), (0, 1, 300));
        assert_eq!(list(&h, "t", 0, 250, 10), (0, 1, 300));
        assert_eq!(
            list(&h, "t", 0, 301, 10),
            (0, -1, -1),
            "past the last timestamp"
        );
    }

    #[tokio::test]
    async fn unknown_topics_and_partitions() {
        let h = harness();
        h.create("t", 2, &[]);
        assert_eq!(
            list(&h, "nope", 0, -1, 5).0,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            list(&h, "t", 2, -1, 5).0,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            list(&h, "t", -1, -2, 5).0,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert!(h.context.broker.topic("nope").is_none());
    }
}
