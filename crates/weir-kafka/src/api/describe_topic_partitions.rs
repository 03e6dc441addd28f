//! DescribeTopicPartitions (v0, KIP-966): topics by name, or all of them, with their
//! partitions as a one-node cluster has them: each led by this node, its only replica and
//! only in-sync replica, no eligible leader replicas (ELR), no last known ELR and nothing
//! offline. Pages as Kafka's brokers page: topics in name order from the cursor's topic,
//! at most min(response_partition_limit, 2000) partitions per response, and a next cursor
//! at the first partition left out.
//!
//! One difference from Kafka: Kafka starts its first topic at the cursor's partition even
//! when the cursor names a topic that no longer exists (listing all topics); weir starts
//! only the cursor's own topic there, so a deleted cursor topic does not cut the next one.

use std::collections::BTreeSet;

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, RequestHeader,
};
use uuid::Uuid;
use weir_core::group_log::is_internal_topic;

use super::Context;
use super::metadata::{AUTHORIZED_OPERATIONS_UNKNOWN, topic_name};
use crate::errors::{INVALID_REQUEST, INVALID_TOPIC_EXCEPTION, NONE, UNKNOWN_TOPIC_OR_PARTITION};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response
/// describes whatever the client asks, so one request cannot make a response of every
/// partition of a large cluster.
pub const PARTITIONS_PER_RESPONSE_MAX: i32 = 2000;

/// The leader epoch weir reports for every partition (as Metadata does): leadership never
/// moves on one node.
const LEADER_EPOCH: i32 = 0;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let cursor = request.cursor;
    let cursor_topic = cursor
        .as_ref()
        .map(|c| c.topic_name.0.to_string())
        .unwrap_or_default();
    let all_topics = request.topics.is_empty();
    // Sorted and without repeats, from the cursor's topic on (Kafka's order).
    let names: BTreeSet<String> = if all_topics {
        context
            .broker
            .topics()
            .into_iter()
            .map(|t| t.name)
            .filter(|name| *name >= cursor_topic)
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|name| *name >= cursor_topic)
            .collect()
    };
    if let Some(cursor) = &cursor {
        // Kafka refuses a cursor outside the listed topics, and a negative start.
        let outside = !all_topics && !names.contains(cursor_topic.as_str());
        if outside || cursor.partition_index < 0 {
            return refused(&request.topics);
        }
    }
    let start_of = |name: &str| match &cursor {
        Some(c) if name == cursor_topic => c.partition_index,
        _ => 0,
    };
    let mut remaining = request
        .response_partition_limit
        .min(PARTITIONS_PER_RESPONSE_MAX);
    let node = BrokerId(context.config.node_id);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if remaining == 0 {
            // Every partition of the topics before fits: the next page starts here.
            next_cursor = Some(cursor_at(&name, 0));
            break;
        }
        if remaining < 0 {
            // Kafka answers nothing for a negative limit, and no cursor.
            break;
        }
        let Some(info) = context.broker.topic(&name) else {
            // Listing all topics skips one deleted meanwhile; a named one is answered.
            if !all_topics {
                topics.push(missing(&name));
            }
            continue;
        };
        let start = start_of(&name);
        let end = info.partitions.min(start.saturating_add(remaining));
        let partitions: Vec<_> = (start..end).map(|index| partition(index, node)).collect();
        let count = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(NONE)
                .with_name(Some(topic_name(&info.name)))
                .with_topic_id(Uuid::from_bytes(info.id.0))
                .with_is_internal(is_internal_topic(&info.name))
                .with_partitions(partitions)
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_UNKNOWN),
        );
        if end < info.partitions {
            next_cursor = Some(cursor_at(&name, end));
            break;
        }
        remaining -= count;
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn partition(index: i32, node: BrokerId) -> DescribeTopicPartitionsResponsePartition {
    DescribeTopicPartitionsResponsePartition::default()
        .with_error_code(NONE)
        .with_partition_index(index)
        .with_leader_id(node)
        .with_leader_epoch(LEADER_EPOCH)
        .with_replica_nodes(vec![node])
        .with_isr_nodes(vec![node])
        // One replica that is always in sync: no ELR, and none ever known (Kafka sends
        // empty lists, not nulls, when there are none).
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
        .with_offline_replicas(Vec::new())
}

fn cursor_at(name: &str, partition_index: i32) -> Cursor {
    Cursor::default()
        .with_topic_name(topic_name(name))
        .with_partition_index(partition_index)
}

/// A named topic this node does not have: UNKNOWN_TOPIC_OR_PARTITION, or
/// INVALID_TOPIC_EXCEPTION for a name no topic can have.
fn missing(name: &str) -> DescribeTopicPartitionsResponseTopic {
    let error = if weir_storage::store::validate_topic_name(name).is_ok() {
        UNKNOWN_TOPIC_OR_PARTITION
    } else {
        INVALID_TOPIC_EXCEPTION
    };
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error)
        .with_name(Some(topic_name(name)))
        .with_topic_id(Uuid::nil())
        .with_is_internal(is_internal_topic(name))
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_UNKNOWN)
}

/// Kafka's answer to an invalid request: every listed topic with INVALID_REQUEST.
fn refused(
    requested: &[kafka_protocol::messages::describe_topic_partitions_request::TopicRequest],
) -> DescribeTopicPartitionsResponse {
    let topics = requested
        .iter()
        .map(|t| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(INVALID_REQUEST)
                .with_name(Some(t.name.clone()))
                .with_topic_id(Uuid::nil())
                .with_is_internal(false)
                .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_UNKNOWN)
        })
        .collect();
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(None)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::describe_topic_partitions_request::{
        Cursor as RequestCursor, TopicRequest,
    };
    use weir_core::TopicId;

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::*;

    fn request(
        names: &[&str],
        limit: i32,
        cursor: Option<(&str, i32)>,
    ) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|n| TopicRequest::default().with_name(topic_name(n)))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(name, index)| {
                RequestCursor::default()
                    .with_topic_name(topic_name(name))
                    .with_partition_index(index)
            }))
    }

    /// A topic of a response: name, error code, partition indexes.
    type Described = (String, i16, Vec<i32>);

    /// The topics of a response, and its next cursor (topic, partition).
    fn pages(
        response: &DescribeTopicPartitionsResponse,
    ) -> (Vec<Described>, Option<(String, i32)>) {
        let topics = response
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                let indexes = t.partitions.iter().map(|p| p.partition_index).collect();
                (name, t.error_code, indexes)
            })
            .collect();
        let cursor = response
            .next_cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        (topics, cursor)
    }

    fn with_topics(dir: &std::path::Path) -> super::super::Context {
        let context = context(dir);
        for (name, id, partitions) in [("b", 2u8, 4), ("a", 1, 2), ("c", 3, 1)] {
            context
                .broker
                .create_topic(name, TopicId([id; 16]), partitions, &[], false)
                .expect("create");
        }
        context
    }

    #[test]
    fn describes_named_topics_in_name_order_as_one_node_has_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = with_topics(dir.path());
        for version in versions(ApiKey::DescribeTopicPartitions) {
            let response = handle(
                &context,
                &header(version),
                request(&["b", "missing", "a", "b", "bad/name"], 2000, None),
            );
            assert_encodes(&response, version);
            let (topics, cursor) = pages(&response);
            assert_eq!(
                topics,
                vec![
                    ("a".to_string(), NONE, vec![0, 1]),
                    ("b".to_string(), NONE, vec![0, 1, 2, 3]),
                    ("bad/name".to_string(), INVALID_TOPIC_EXCEPTION, vec![]),
                    ("missing".to_string(), UNKNOWN_TOPIC_OR_PARTITION, vec![]),
                ]
            );
            assert_eq!(cursor, None);
            let b = &response.topics[1];
            assert_eq!(b.topic_id, Uuid::from_bytes([2; 16]));
            assert!(!b.is_internal);
            assert_eq!(response.topics[3].topic_id, Uuid::nil());
            let p = &b.partitions[3];
            assert_eq!(p.error_code, NONE);
            assert_eq!(p.leader_id, BrokerId(NODE_ID));
            assert_eq!(p.leader_epoch, LEADER_EPOCH);
            assert_eq!(p.replica_nodes, vec![BrokerId(NODE_ID)]);
            assert_eq!(p.isr_nodes, vec![BrokerId(NODE_ID)]);
            assert_eq!(p.eligible_leader_replicas, Some(vec![]));
            assert_eq!(p.last_known_elr, Some(vec![]));
            assert!(p.offline_replicas.is_empty());
        }
    }

    #[test]
    fn pages_by_partition_limit_and_cursor_as_kafka_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = with_topics(dir.path());
        let v = 0;
        // All topics (an empty list), three partitions a page: a0 a1 b0 | b1 b2 b3 | c0.
        let first = handle(&context, &header(v), request(&[], 3, None));
        assert_encodes(&first, v);
        assert_eq!(
            pages(&first),
            (
                vec![
                    ("a".to_string(), NONE, vec![0, 1]),
                    ("b".to_string(), NONE, vec![0]),
                ],
                Some(("b".to_string(), 1)),
            )
        );
        let second = handle(&context, &header(v), request(&[], 3, Some(("b", 1))));
        assert_encodes(&second, v);
        // The limit is used up exactly at the end of b: the cursor points at c's start.
        assert_eq!(
            pages(&second),
            (
                vec![("b".to_string(), NONE, vec![1, 2, 3])],
                Some(("c".to_string(), 0)),
            )
        );
        let third = handle(&context, &header(v), request(&[], 3, Some(("c", 0))));
        assert_eq!(
            pages(&third),
            (vec![("c".to_string(), NONE, vec![0])], None)
        );
        // Named topics page the same way; topics before the cursor's are left out.
        let named = handle(
            &context,
            &header(v),
            request(&["c", "b", "a"], 1, Some(("b", 3))),
        );
        assert_encodes(&named, v);
        assert_eq!(
            pages(&named),
            (
                vec![("b".to_string(), NONE, vec![3])],
                Some(("c".to_string(), 0)),
            )
        );
        // A start beyond the topic's partitions describes none of them and moves on.
        let beyond = handle(
            &context,
            &header(v),
            request(&["a", "c"], 10, Some(("a", 9))),
        );
        assert_eq!(
            pages(&beyond),
            (
                vec![
                    ("a".to_string(), NONE, vec![]),
                    ("c".to_string(), NONE, vec![0])
                ],
                None,
            )
        );
        // A limit of 0 answers no partitions and points at the first topic.
        let zero = handle(&context, &header(v), request(&["b"], 0, None));
        assert_eq!(pages(&zero), (vec![], Some(("b".to_string(), 0))));
        // A negative limit answers nothing at all, as Kafka does.
        let negative = handle(&context, &header(v), request(&["b"], -1, None));
        assert_eq!(pages(&negative), (vec![], None));
    }

    #[test]
    fn the_partition_limit_is_capped_at_kafkas_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let partitions = PARTITIONS_PER_RESPONSE_MAX + 5;
        context
            .broker
            .create_topic("wide", TopicId([9; 16]), partitions, &[], false)
            .expect("create");
        let response = handle(&context, &header(0), request(&["wide"], i32::MAX, None));
        assert_encodes(&response, 0);
        let (topics, cursor) = pages(&response);
        assert_eq!(topics[0].2.len(), PARTITIONS_PER_RESPONSE_MAX as usize);
        assert_eq!(
            cursor,
            Some(("wide".to_string(), PARTITIONS_PER_RESPONSE_MAX))
        );
        let rest = handle(
            &context,
            &header(0),
            request(
                &["wide"],
                i32::MAX,
                Some(("wide", PARTITIONS_PER_RESPONSE_MAX)),
            ),
        );
        assert_eq!(
            pages(&rest).0[0].2,
            (PARTITIONS_PER_RESPONSE_MAX..partitions).collect::<Vec<_>>()
        );
        assert_eq!(pages(&rest).1, None);
    }

    #[test]
    fn a_cursor_outside_the_listed_topics_or_negative_is_an_invalid_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = with_topics(dir.path());
        for cursor in [("c", 0), ("b", -1), ("0", 0)] {
            let response = handle(&context, &header(0), request(&["a", "b"], 10, Some(cursor)));
            assert_encodes(&response, 0);
            let (topics, next) = pages(&response);
            assert_eq!(
                topics,
                vec![
                    ("a".to_string(), INVALID_REQUEST, vec![]),
                    ("b".to_string(), INVALID_REQUEST, vec![]),
                ],
                "{cursor:?}"
            );
            assert_eq!(next, None);
        }
    }
}
