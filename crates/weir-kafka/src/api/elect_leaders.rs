//! ElectLeaders (v0–2): on one node every partition has a single replica, this node, and
//! it is always the leader, so there is nothing to elect. A named partition answers
//! ELECTION_NOT_NEEDED, for a preferred election (the leader already is the preferred
//! replica) and for an unclean one (the partition has a live leader) alike; an unknown
//! topic or partition answers UNKNOWN_TOPIC_OR_PARTITION. With no partitions named (null)
//! Kafka elects for every partition, answers a row per topic and leaves out the partitions
//! that needed no election: here every topic, each with an empty list. v0 has no election
//! type (preferred); an unknown type refuses the request.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::Context;
use super::metadata::topic_name;
use crate::errors::{INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION};

const ELECTION_NOT_NEEDED: i16 = ResponseError::ElectionNotNeeded.code();

/// Kafka's election types (`org.apache.kafka.common.ElectionType`).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    // v0 carries no type: it is a preferred election.
    let election_type = if header.request_api_version >= 1 {
        request.election_type
    } else {
        PREFERRED
    };
    let Some(topics) = request.topic_partitions else {
        // Every partition already has its only replica as leader: nothing to report.
        let results = context
            .broker
            .topics()
            .into_iter()
            .map(|info| {
                ReplicaElectionResult::default()
                    .with_topic(topic_name(&info.name))
                    .with_partition_result(Vec::new())
            })
            .collect();
        return ElectLeadersResponse::default()
            .with_error_code(NONE)
            .with_replica_election_results(results);
    };
    if election_type != PREFERRED && election_type != UNCLEAN {
        // Kafka refuses the whole request and repeats the error for every partition.
        let message = format!("unknown election type {election_type}");
        return ElectLeadersResponse::default()
            .with_error_code(INVALID_REQUEST)
            .with_replica_election_results(answer(topics, |_, _| {
                (INVALID_REQUEST, Some(message.clone()))
            }));
    }
    let results = answer(topics, |topic, partition| {
        let known = context
            .broker
            .topic(topic)
            .is_some_and(|info| (0..info.partitions).contains(&partition));
        if known {
            (ELECTION_NOT_NEEDED, None)
        } else {
            (
                UNKNOWN_TOPIC_OR_PARTITION,
                Some(format!("no partition {topic}-{partition}")),
            )
        }
    });
    ElectLeadersResponse::default()
        .with_error_code(NONE)
        .with_replica_election_results(results)
}

/// One result per named partition, in request order.
fn answer(
    topics: Vec<TopicPartitions>,
    mut outcome: impl FnMut(&str, i32) -> (i16, Option<String>),
) -> Vec<ReplicaElectionResult> {
    topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|&p| {
                    let (code, message) = outcome(t.topic.as_str(), p);
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code)
                        .with_error_message(message.map(StrBytes::from_string))
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(t.topic)
                .with_partition_result(partitions)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use weir_core::TopicId;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;

    fn named(name: &str, partitions: Vec<i32>) -> TopicPartitions {
        TopicPartitions::default()
            .with_topic(topic_name(name))
            .with_partitions(partitions)
    }

    fn codes(response: &ElectLeadersResponse) -> Vec<Vec<(i32, i16)>> {
        response
            .replica_election_results
            .iter()
            .map(|r| {
                r.partition_result
                    .iter()
                    .map(|p| (p.partition_id, p.error_code))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn every_partition_needs_no_election_and_unknown_ones_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("e", TopicId([4; 16]), 3, &[], false)
            .expect("create");
        for version in versions(ApiKey::ElectLeaders) {
            for election_type in [PREFERRED, UNCLEAN] {
                let request = ElectLeadersRequest::default()
                    .with_election_type(election_type)
                    .with_topic_partitions(Some(vec![
                        named("e", vec![0, 1, 2, 3]),
                        named("missing", vec![0]),
                    ]))
                    .with_timeout_ms(1000);
                let response = handle(&context, &header(version), request);
                assert_encodes(&response, version);
                assert_eq!(response.error_code, NONE);
                assert_eq!(
                    codes(&response),
                    vec![
                        vec![
                            (0, ELECTION_NOT_NEEDED),
                            (1, ELECTION_NOT_NEEDED),
                            (2, ELECTION_NOT_NEEDED),
                            (3, UNKNOWN_TOPIC_OR_PARTITION)
                        ],
                        vec![(0, UNKNOWN_TOPIC_OR_PARTITION)],
                    ]
                );
                assert_eq!(response.replica_election_results[0].topic.as_str(), "e");
            }
            let all = ElectLeadersRequest::default().with_topic_partitions(None);
            let response = handle(&context, &header(version), all);
            assert_encodes(&response, version);
            let topics: Vec<(&str, usize)> = response
                .replica_election_results
                .iter()
                .map(|r| (r.topic.as_str(), r.partition_result.len()))
                .collect();
            assert_eq!(topics, vec![("e", 0)]);
        }
    }

    #[test]
    fn an_unknown_election_type_refuses_every_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let request = ElectLeadersRequest::default()
            .with_election_type(5)
            .with_topic_partitions(Some(vec![named("e", vec![0, 1])]));
        let response = handle(&context, &header(2), request.clone());
        assert_encodes(&response, 2);
        assert_eq!(response.error_code, INVALID_REQUEST);
        assert_eq!(
            codes(&response),
            vec![vec![(0, INVALID_REQUEST), (1, INVALID_REQUEST)]]
        );
        // v0 has no election type: whatever the struct holds, it is a preferred election.
        let response = handle(&context, &header(0), request);
        assert_eq!(
            codes(&response),
            vec![vec![
                (0, UNKNOWN_TOPIC_OR_PARTITION),
                (1, UNKNOWN_TOPIC_OR_PARTITION)
            ]]
        );
    }
}
