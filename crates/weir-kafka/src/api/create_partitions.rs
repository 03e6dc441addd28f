//! CreatePartitions (v0–3): grows a topic to the requested partition count (never
//! shrinks: INVALID_PARTITIONS), or only checks with `validate_only`. On one node an
//! explicit assignment may only place each new partition on this node alone.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use weir_core::CoreError;

use super::create_topics::{PARTITIONS_PER_REQUEST_MAX, TOO_MANY_PARTITIONS};
use super::{Context, answer_each_once};
use crate::errors::{self, INVALID_PARTITIONS, INVALID_REQUEST, NONE, POLICY_VIOLATION};

const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let too_many = new_partitions(context, &request) > PARTITIONS_PER_REQUEST_MAX;
    let validate_only = request.validate_only;
    let results = answer_each_once(
        request.topics,
        |t| t.name.clone(),
        |topic, repeated| {
            let name = topic.name.clone();
            let outcome = if too_many {
                Err((POLICY_VIOLATION, TOO_MANY_PARTITIONS.to_string()))
            } else if repeated {
                Err((
                    INVALID_REQUEST,
                    format!("topic {} is named more than once", name.as_str()),
                ))
            } else {
                grow(context, &topic, validate_only)
            };
            let result = CreatePartitionsTopicResult::default().with_name(name);
            match outcome {
                Ok(()) => result.with_error_code(NONE).with_error_message(None),
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        },
    );
    CreatePartitionsResponse::default().with_results(results)
}

/// Partitions the whole request would add (the same bound as CreateTopics).
fn new_partitions(context: &Context, request: &CreatePartitionsRequest) -> i64 {
    request
        .topics
        .iter()
        .map(|t| {
            let current = context
                .broker
                .topic(t.name.as_str())
                .map_or(0, |info| info.partitions);
            (i64::from(t.count) - i64::from(current)).max(0)
        })
        .fold(0i64, i64::saturating_add)
}

fn grow(
    context: &Context,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (i16, String)> {
    let name = topic.name.as_str();
    if let Some(assignments) = &topic.assignments {
        let node = BrokerId(context.config.node_id);
        if assignments.iter().any(|a| a.broker_ids != [node]) {
            return Err((
                INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "new partitions can only be placed on broker {} alone",
                    node.0
                ),
            ));
        }
        let current = context.broker.topic(name).map_or(0, |t| t.partitions);
        let added = i64::from(topic.count) - i64::from(current);
        if i64::try_from(assignments.len()).ok() != Some(added) {
            return Err((
                INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "{} assignments for {added} new partitions",
                    assignments.len()
                ),
            ));
        }
    }
    context
        .broker
        .create_partitions(name, topic.count, validate_only)
        .map(|_| ())
        .map_err(|e| {
            let message = match &e {
                CoreError::InvalidPartitions { count, reason } => {
                    format!("cannot change {name} to {count} partitions: {reason}")
                }
                other => other.to_string(),
            };
            let code = match &e {
                CoreError::InvalidPartitions { .. } => INVALID_PARTITIONS,
                other => errors::code(other),
            };
            (code, message)
        })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsAssignment;
    use weir_core::TopicId;

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::super::metadata::topic_name;
    use super::*;
    use crate::errors::UNKNOWN_TOPIC_OR_PARTITION;

    fn topic(name: &str, count: i32) -> CreatePartitionsTopic {
        CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(count)
            .with_assignments(None)
    }

    fn request(topics: Vec<CreatePartitionsTopic>, validate_only: bool) -> CreatePartitionsRequest {
        CreatePartitionsRequest::default()
            .with_topics(topics)
            .with_validate_only(validate_only)
    }

    #[test]
    fn grows_only_and_validate_only_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("g", TopicId([2; 16]), 1, &[], false)
            .expect("create");
        let partitions = || context.broker.topic("g").map(|t| t.partitions);
        for version in versions(ApiKey::CreatePartitions) {
            let before = partitions().expect("exists");
            let response = handle(
                &context,
                &header(version),
                request(vec![topic("g", before + 1)], true),
            );
            assert_encodes(&response, version);
            assert_eq!(response.results[0].error_code, NONE);
            assert_eq!(partitions(), Some(before), "validate_only");
            let response = handle(
                &context,
                &header(version),
                request(vec![topic("g", before + 1)], false),
            );
            assert_eq!(response.results[0].error_code, NONE);
            assert_eq!(partitions(), Some(before + 1));
        }
        let current = partitions().expect("exists");
        let with_assignment = topic("g", current + 1).with_assignments(Some(vec![
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(NODE_ID)]),
        ]));
        let wrong_broker = topic("g", current + 2).with_assignments(Some(vec![
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(NODE_ID + 1)]),
            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(NODE_ID)]),
        ]));
        let response = handle(&context, &header(3), request(vec![with_assignment], false));
        assert_eq!(response.results[0].error_code, NONE);
        let response = handle(
            &context,
            &header(3),
            request(
                vec![
                    topic("g", 1),
                    topic("missing", 5),
                    topic("h", 2),
                    topic("h", 3),
                ],
                false,
            ),
        );
        assert_encodes(&response, 3);
        let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
        assert_eq!(
            codes,
            vec![
                INVALID_PARTITIONS,
                UNKNOWN_TOPIC_OR_PARTITION,
                INVALID_REQUEST
            ]
        );
        let too_many = vec![topic("g", current + 6_000), topic("h", 5_000)];
        let response = handle(&context, &header(3), request(too_many, false));
        assert_eq!(response.results[0].error_code, POLICY_VIOLATION);
        let response = handle(&context, &header(3), request(vec![wrong_broker], false));
        assert_eq!(response.results[0].error_code, INVALID_REPLICA_ASSIGNMENT);
        assert_eq!(partitions(), Some(current + 1));
    }
}
