//! CreateTopics (v2–7): creates each topic with its partition count (-1: the broker's
//! `num.partitions`) and settings, or only checks them with `validate_only`. On one node
//! the replication factor can only be 1 (or -1, the default); a manual assignment is
//! accepted only when it places each partition, in order, on this node alone. A bad
//! setting answers INVALID_CONFIG and creates nothing. v5+ answers with the partition
//! count, replication factor and every setting; v7 with the topic id.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_core::acl::Operation;
use weir_core::{CoreError, TopicId, TopicInfo};

use super::describe_configs::topic_entries;
use super::{Context, answer_each_once};
use crate::errors::{
    self, INVALID_CONFIG, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_REQUEST, NONE,
    POLICY_VIOLATION,
};

/// "Use the broker's default" for the partition count and the replication factor.
const USE_DEFAULT: i32 = -1;
/// The only replication factor one node can honour.
const REPLICATION_FACTOR: i16 = 1;
const INVALID_REPLICA_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
/// Most partitions one request may create, all topics together: each one is a directory,
/// files and fsyncs, and one request must not stall the broker. Kafka's controller has the
/// same limit and answers POLICY_VIOLATION with this message.
pub(crate) const PARTITIONS_PER_REQUEST_MAX: i64 = 10_000;
pub(crate) const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let too_many = requested_partitions(context, &request) > PARTITIONS_PER_REQUEST_MAX;
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
            } else if !context.cluster_allowed(Operation::Create)
                && !context.topic_allowed(name.as_str(), Operation::Create)
            {
                // Kafka asks for CREATE on the cluster or on the topic.
                Err((
                    crate::errors::TOPIC_AUTHORIZATION_FAILED,
                    format!("not authorized to create topic {}", name.as_str()),
                ))
            } else {
                create(context, topic, validate_only)
            };
            match outcome {
                Ok(info) => created(name, &info),
                Err((code, message)) => CreatableTopicResult::default()
                    .with_name(name)
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message)))
                    .with_configs(None),
            }
        },
    );
    CreateTopicsResponse::default().with_topics(results)
}

type Failure = (i16, String);

/// Partitions the whole request asks for (the default count where it says -1).
fn requested_partitions(context: &Context, request: &CreateTopicsRequest) -> i64 {
    let default = i64::from(context.broker.config().num_partitions);
    request
        .topics
        .iter()
        .map(|t| match (t.assignments.len(), t.num_partitions) {
            (0, USE_DEFAULT) => default,
            (0, n) => i64::from(n.max(0)),
            (assigned, _) => i64::try_from(assigned).unwrap_or(i64::MAX),
        })
        .fold(0i64, i64::saturating_add)
}

fn create(
    context: &Context,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<TopicInfo, Failure> {
    let name = topic.name.as_str();
    let partitions = partition_count(context, &topic)?;
    check_replication_factor(topic.replication_factor)?;
    let mut configs = Vec::with_capacity(topic.configs.len());
    for config in &topic.configs {
        let Some(value) = &config.value else {
            return Err((
                INVALID_CONFIG,
                format!(
                    "null value not supported for topic config {}",
                    config.name.as_str()
                ),
            ));
        };
        configs.push((config.name.to_string(), value.to_string()));
    }
    let id = TopicId(Uuid::new_v4().into_bytes());
    context
        .broker
        .create_topic(name, id, partitions, &configs, validate_only)
        .map_err(|e| {
            let message = match &e {
                CoreError::TopicExists(_) => format!("Topic '{name}' already exists."),
                other => other.to_string(),
            };
            (errors::code(&e), message)
        })
}

/// The partition count asked for, directly or through a manual assignment.
fn partition_count(context: &Context, topic: &CreatableTopic) -> Result<i32, Failure> {
    if topic.assignments.is_empty() {
        return match topic.num_partitions {
            USE_DEFAULT => Ok(context.broker.config().num_partitions),
            n if n < 1 => Err((
                INVALID_PARTITIONS,
                format!("number of partitions must be at least 1, got {n}"),
            )),
            n => Ok(n),
        };
    }
    // Kafka: an assignment replaces both the count and the replication factor.
    if topic.num_partitions != USE_DEFAULT || i32::from(topic.replication_factor) != USE_DEFAULT {
        return Err((
            INVALID_REQUEST,
            "both a manual assignment and a partition count or replication factor were given"
                .to_string(),
        ));
    }
    let node = BrokerId(context.config.node_id);
    for (expected, assignment) in topic.assignments.iter().enumerate() {
        let in_order = usize::try_from(assignment.partition_index).ok() == Some(expected);
        if !in_order || assignment.broker_ids != [node] {
            return Err((
                INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "partitions must be numbered from 0 and placed on broker {} alone",
                    node.0
                ),
            ));
        }
    }
    i32::try_from(topic.assignments.len())
        .map_err(|_| (INVALID_PARTITIONS, "too many partitions".to_string()))
}

fn check_replication_factor(factor: i16) -> Result<(), Failure> {
    match i32::from(factor) {
        USE_DEFAULT => Ok(()),
        f if f == i32::from(REPLICATION_FACTOR) => Ok(()),
        f if f < 1 => Err((
            INVALID_REPLICATION_FACTOR,
            format!("replication factor must be at least 1, got {f}"),
        )),
        f => Err((
            INVALID_REPLICATION_FACTOR,
            format!("Replication factor: {f} larger than available brokers: 1."),
        )),
    }
}

fn created(name: TopicName, info: &TopicInfo) -> CreatableTopicResult {
    let configs = topic_entries(info)
        .into_iter()
        .map(|e| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(Some(StrBytes::from_string(e.value)))
                .with_read_only(false)
                .with_config_source(e.source)
                .with_is_sensitive(false)
        })
        .collect();
    CreatableTopicResult::default()
        .with_name(name)
        .with_topic_id(Uuid::from_bytes(info.id.0))
        .with_error_code(NONE)
        .with_error_message(None)
        .with_num_partitions(info.partitions)
        .with_replication_factor(REPLICATION_FACTOR)
        .with_configs(Some(configs))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopicConfig,
    };

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::super::metadata::topic_name;
    use super::*;
    use crate::errors::{INVALID_TOPIC_EXCEPTION, TOPIC_ALREADY_EXISTS};

    fn topic(name: &str, partitions: i32, factor: i16) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(factor)
    }

    fn config(name: &'static str, value: Option<&'static str>) -> CreatableTopicConfig {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_value(value.map(StrBytes::from_static_str))
    }

    fn request(topics: Vec<CreatableTopic>, validate_only: bool) -> CreateTopicsRequest {
        CreateTopicsRequest::default()
            .with_topics(topics)
            .with_validate_only(validate_only)
    }

    #[test]
    fn creates_topics_with_configs_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for version in versions(ApiKey::CreateTopics) {
            let name = format!("t{version}");
            let with_config =
                topic(&name, 3, 1).with_configs(vec![config("cleanup.policy", Some("compact"))]);
            let response = handle(
                &context,
                &header(version),
                request(vec![with_config], false),
            );
            assert_encodes(&response, version);
            let result = &response.topics[0];
            assert_eq!(result.error_code, NONE);
            assert_eq!(result.num_partitions, 3);
            assert_eq!(result.replication_factor, 1);
            let info = context.broker.topic(&name).expect("created");
            assert_eq!(info.partitions, 3);
            assert!(info.config.partition.cleanup_policy.compact);
            assert_eq!(result.topic_id, Uuid::from_bytes(info.id.0));
            let configs = result.configs.as_ref().expect("configs");
            let cleanup = configs
                .iter()
                .find(|c| c.name.as_str() == "cleanup.policy")
                .expect("cleanup.policy");
            assert_eq!(cleanup.value.as_ref().map(|v| v.as_str()), Some("compact"));
            assert_eq!(cleanup.config_source, 1);
        }
    }

    #[test]
    fn defaults_and_validate_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let response = handle(
            &context,
            &header(7),
            request(vec![topic("d", -1, -1)], true),
        );
        assert_eq!(response.topics[0].error_code, NONE);
        assert_eq!(response.topics[0].num_partitions, 4);
        assert!(
            context.broker.topic("d").is_none(),
            "validate_only creates nothing"
        );
        let response = handle(
            &context,
            &header(7),
            request(vec![topic("d", -1, -1)], false),
        );
        assert_eq!(response.topics[0].error_code, NONE);
        assert_eq!(context.broker.topic("d").map(|t| t.partitions), Some(4));
    }

    #[test]
    fn one_request_creates_at_most_ten_thousand_partitions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let topics = vec![
            topic("big1", 5_000, 1),
            topic("big2", 5_000, 1),
            topic("small", -1, 1),
        ];
        let response = handle(&context, &header(7), request(topics, true));
        assert_eq!(response.topics.len(), 3);
        for result in &response.topics {
            assert_eq!(result.error_code, POLICY_VIOLATION);
        }
        let topics = vec![
            topic("big1", 5_000, 1),
            topic("big2", 4_996, 1),
            topic("small", -1, 1),
        ];
        let response = handle(&context, &header(7), request(topics, true));
        assert!(response.topics.iter().all(|t| t.error_code == NONE));
    }

    #[test]
    fn refusals_create_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        handle(
            &context,
            &header(4),
            request(vec![topic("exists", 1, 1)], false),
        );
        let bad_config = topic("c1", 1, 1).with_configs(vec![config("retention.ms", Some("soon"))]);
        let unknown_config = topic("c2", 1, 1).with_configs(vec![config("no.such", Some("1"))]);
        let null_config = topic("c3", 1, 1).with_configs(vec![config("retention.ms", None)]);
        let node = BrokerId(NODE_ID);
        let assigned = topic("a1", -1, -1).with_assignments(vec![
            CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![node]),
            CreatableReplicaAssignment::default()
                .with_partition_index(1)
                .with_broker_ids(vec![node]),
        ]);
        let misassigned = topic("a2", -1, -1).with_assignments(vec![
            CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(NODE_ID + 1)]),
        ]);
        let topics = vec![
            topic("exists", 1, 1),
            bad_config,
            unknown_config,
            null_config,
            topic("r3", 1, 3),
            topic("r0", 1, 0),
            topic("p0", 0, 1),
            topic("bad name", 1, 1),
            topic("dup", 1, 1),
            topic("dup", 1, 1),
            assigned,
            misassigned,
        ];
        let response = handle(&context, &header(5), request(topics, false));
        assert_encodes(&response, 5);
        let codes: Vec<(String, i16)> = response
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.error_code))
            .collect();
        let expected = [
            ("exists", TOPIC_ALREADY_EXISTS),
            ("c1", INVALID_CONFIG),
            ("c2", INVALID_CONFIG),
            ("c3", INVALID_CONFIG),
            ("r3", INVALID_REPLICATION_FACTOR),
            ("r0", INVALID_REPLICATION_FACTOR),
            ("p0", INVALID_PARTITIONS),
            ("bad name", INVALID_TOPIC_EXCEPTION),
            ("dup", INVALID_REQUEST),
            ("a1", NONE),
            ("a2", INVALID_REPLICA_ASSIGNMENT),
        ];
        let expected: Vec<(String, i16)> =
            expected.iter().map(|(n, c)| (n.to_string(), *c)).collect();
        assert_eq!(codes, expected);
        for (name, code) in &expected {
            let exists = context.broker.topic(name).is_some();
            assert_eq!(exists, *code == NONE || name == "exists", "{name}");
        }
        assert_eq!(context.broker.topic("a1").map(|t| t.partitions), Some(2));
        assert!(
            response.topics[1]
                .error_message
                .as_ref()
                .is_some_and(|m| m.contains("retention.ms"))
        );
    }
}
