//! IncrementalAlterConfigs (v0–1): changes some of a topic's settings and keeps the rest —
//! SET, DELETE (back to the default), and APPEND / SUBTRACT for list-valued settings
//! (`cleanup.policy`) — then applies the result to every partition at once, or only checks
//! it with `validate_only`. Broker settings are read-only in weir (INVALID_REQUEST).

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, RequestHeader,
};
use kafka_protocol::protocol::StrBytes;
use weir_storage::topic_config::TopicConfig;

use super::alter_configs::{
    Failure, check_topic_resource, duplicate_key, duplicate_resource, set_overrides,
};
use super::{Context, answer_each_once};
use crate::errors::{INVALID_CONFIG, INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION};

/// Kafka's AlterConfigOp types.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Settings whose value is a comma-separated list (APPEND and SUBTRACT apply to these).
const LIST_KEYS: &[&str] = &["cleanup.policy"];

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let validate_only = request.validate_only;
    let responses = answer_each_once(
        request.resources,
        |r| (r.resource_type, r.resource_name.clone()),
        |resource, repeated| {
            let outcome = if repeated {
                Err(duplicate_resource())
            } else {
                check_topic_resource(resource.resource_type).and_then(|()| {
                    alter(
                        context,
                        resource.resource_name.as_str(),
                        &resource.configs,
                        validate_only,
                    )
                })
            };
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name);
            match outcome {
                Ok(()) => response.with_error_code(NONE).with_error_message(None),
                Err((code, message)) => response
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        },
    );
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter(
    context: &Context,
    topic: &str,
    ops: &[AlterableConfig],
    validate_only: bool,
) -> Result<(), Failure> {
    let info = context.broker.topic(topic).ok_or_else(|| {
        (
            UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic {topic} does not exist"),
        )
    })?;
    let mut seen = HashSet::new();
    let mut overrides = info.overrides;
    for op in ops {
        let key = op.name.as_str();
        if !seen.insert(key) {
            return Err(duplicate_key(key));
        }
        apply(&mut overrides, op)?;
    }
    set_overrides(context, topic, overrides, validate_only)
}

fn apply(overrides: &mut BTreeMap<String, String>, op: &AlterableConfig) -> Result<(), Failure> {
    let key = op.name.as_str();
    let value = || {
        op.value.as_ref().map(|v| v.to_string()).ok_or_else(|| {
            (
                INVALID_REQUEST,
                format!("operation {} on {key} needs a value", op.config_operation),
            )
        })
    };
    match op.config_operation {
        OP_SET => {
            overrides.insert(key.to_string(), value()?);
        }
        OP_DELETE => {
            overrides.remove(key);
        }
        OP_APPEND | OP_SUBTRACT => {
            if !LIST_KEYS.contains(&key) {
                return Err((
                    INVALID_CONFIG,
                    format!("cannot append to or subtract from {key}: it is not a list"),
                ));
            }
            let current = overrides
                .get(key)
                .cloned()
                .unwrap_or_else(|| default_value(key));
            let mut items: Vec<String> = split_list(&current);
            let given = split_list(&value()?);
            if op.config_operation == OP_APPEND {
                for item in given {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
            } else {
                items.retain(|item| !given.contains(item));
            }
            overrides.insert(key.to_string(), items.join(","));
        }
        other => {
            return Err((
                INVALID_REQUEST,
                format!("unknown config operation {other} on {key}"),
            ));
        }
    }
    Ok(())
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn default_value(key: &str) -> String {
    TopicConfig::default()
        .to_pairs()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
    use weir_core::TopicId;
    use weir_storage::store::TopicPartition;

    use super::super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;

    fn op(name: &'static str, operation: i8, value: Option<&'static str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_static_str(name))
            .with_config_operation(operation)
            .with_value(value.map(StrBytes::from_static_str))
    }

    fn request(kind: i8, name: &str, ops: Vec<AlterableConfig>) -> IncrementalAlterConfigsRequest {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configs(ops),
        ])
    }

    fn code(context: &Context, version: i16, request: IncrementalAlterConfigsRequest) -> i16 {
        let response = handle(context, &header(version), request);
        assert_encodes(&response, version);
        response.responses[0].error_code
    }

    #[test]
    fn set_delete_append_subtract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let initial = vec![("retention.ms".to_string(), "1000".to_string())];
        context
            .broker
            .create_topic("t", TopicId([1; 16]), 2, &initial, false)
            .expect("create");
        let overrides = || context.broker.topic("t").expect("exists").overrides;
        for version in versions(ApiKey::IncrementalAlterConfigs) {
            let set = request(
                RESOURCE_TOPIC,
                "t",
                vec![op("segment.bytes", OP_SET, Some("4096"))],
            );
            assert_eq!(code(&context, version, set), NONE);
        }
        assert_eq!(
            overrides().get("retention.ms").map(String::as_str),
            Some("1000"),
            "kept"
        );
        assert_eq!(
            overrides().get("segment.bytes").map(String::as_str),
            Some("4096")
        );

        let append = request(
            RESOURCE_TOPIC,
            "t",
            vec![op("cleanup.policy", OP_APPEND, Some("compact"))],
        );
        assert_eq!(code(&context, 1, append), NONE);
        assert_eq!(
            overrides().get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        let live = context
            .broker
            .store()
            .topic_config(&TopicPartition::new("t", 1))
            .expect("config");
        assert!(live.partition.cleanup_policy.compact && live.partition.cleanup_policy.delete);
        assert_eq!(live.partition.segment_bytes, 4096);

        let subtract = request(
            RESOURCE_TOPIC,
            "t",
            vec![op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
        );
        assert_eq!(code(&context, 1, subtract), NONE);
        assert_eq!(
            overrides().get("cleanup.policy").map(String::as_str),
            Some("compact")
        );

        let delete = request(
            RESOURCE_TOPIC,
            "t",
            vec![op("retention.ms", OP_DELETE, None)],
        );
        assert_eq!(code(&context, 1, delete), NONE);
        assert!(!overrides().contains_key("retention.ms"));
    }

    #[test]
    fn refusals_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("t", TopicId([1; 16]), 1, &[], false)
            .expect("create");
        let cases = vec![
            (
                request(
                    RESOURCE_TOPIC,
                    "t",
                    vec![op("retention.ms", OP_APPEND, Some("1"))],
                ),
                INVALID_CONFIG,
            ),
            (
                request(
                    RESOURCE_TOPIC,
                    "t",
                    vec![op("retention.ms", OP_SET, Some("soon"))],
                ),
                INVALID_CONFIG,
            ),
            (
                request(RESOURCE_TOPIC, "t", vec![op("no.such", OP_SET, Some("1"))]),
                INVALID_CONFIG,
            ),
            (
                request(RESOURCE_TOPIC, "t", vec![op("retention.ms", 9, Some("1"))]),
                INVALID_REQUEST,
            ),
            (
                request(RESOURCE_TOPIC, "t", vec![op("retention.ms", OP_SET, None)]),
                INVALID_REQUEST,
            ),
            (
                request(
                    RESOURCE_TOPIC,
                    "t",
                    vec![
                        op("retention.ms", OP_SET, Some("1")),
                        op("retention.ms", OP_SET, Some("2")),
                    ],
                ),
                INVALID_REQUEST,
            ),
            (
                request(
                    RESOURCE_TOPIC,
                    "t",
                    vec![op("cleanup.policy", OP_SUBTRACT, Some("delete"))],
                ),
                INVALID_CONFIG,
            ),
            (
                request(RESOURCE_TOPIC, "missing", vec![]),
                UNKNOWN_TOPIC_OR_PARTITION,
            ),
            (
                request(
                    RESOURCE_BROKER,
                    "7",
                    vec![op("num.partitions", OP_SET, Some("1"))],
                ),
                INVALID_REQUEST,
            ),
        ];
        for (i, (request, expected)) in cases.into_iter().enumerate() {
            assert_eq!(code(&context, 1, request), expected, "case {i}");
        }
        let validate = IncrementalAlterConfigsRequest::default()
            .with_validate_only(true)
            .with_resources(
                request(
                    RESOURCE_TOPIC,
                    "t",
                    vec![op("retention.ms", OP_SET, Some("5"))],
                )
                .resources,
            );
        assert_eq!(code(&context, 1, validate), NONE);
        assert!(
            context
                .broker
                .topic("t")
                .expect("exists")
                .overrides
                .is_empty()
        );
    }
}
