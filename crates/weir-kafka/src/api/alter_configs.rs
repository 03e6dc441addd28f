//! AlterConfigs (v0–2): replaces a topic's settings with the given set — Kafka's
//! semantics: a setting left out returns to its default — and applies them to every
//! partition at once, or only checks them with `validate_only`. Broker settings are
//! read-only in weir: INVALID_REQUEST, as Kafka answers for a setting it cannot change
//! dynamically.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{Context, answer_each_once};
use crate::errors::{self, INVALID_REQUEST, NONE};

/// A refusal: error code and message.
pub(crate) type Failure = (i16, String);

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let validate_only = request.validate_only;
    let responses = answer_each_once(
        request.resources,
        |r| (r.resource_type, r.resource_name.clone()),
        |resource, repeated| {
            let outcome = if repeated {
                Err(duplicate_resource())
            } else {
                check_topic_resource(resource.resource_type).and_then(|()| {
                    let mut overrides = BTreeMap::new();
                    for config in &resource.configs {
                        // A null value sets nothing: the setting returns to its default.
                        let Some(value) = &config.value else { continue };
                        let previous = overrides.insert(config.name.to_string(), value.to_string());
                        if previous.is_some() {
                            return Err(duplicate_key(config.name.as_str()));
                        }
                    }
                    set_overrides(
                        context,
                        resource.resource_name.as_str(),
                        overrides,
                        validate_only,
                    )
                })
            };
            resource_response(resource.resource_type, resource.resource_name, outcome)
        },
    );
    AlterConfigsResponse::default().with_responses(responses)
}

/// The per-resource answer of both alter APIs.
pub(crate) fn resource_response(
    resource_type: i8,
    resource_name: StrBytes,
    outcome: Result<(), Failure>,
) -> AlterConfigsResourceResponse {
    let response = AlterConfigsResourceResponse::default()
        .with_resource_type(resource_type)
        .with_resource_name(resource_name);
    match outcome {
        Ok(()) => response.with_error_code(NONE).with_error_message(None),
        Err((code, message)) => response
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}

pub(crate) fn duplicate_resource() -> Failure {
    (
        INVALID_REQUEST,
        "the resource is named more than once in the request".to_string(),
    )
}

pub(crate) fn duplicate_key(key: &str) -> Failure {
    (
        INVALID_REQUEST,
        format!("config {key} is given more than once"),
    )
}

/// Only topic settings can change; broker ones are fixed at start.
pub(crate) fn check_topic_resource(kind: i8) -> Result<(), Failure> {
    match kind {
        RESOURCE_TOPIC => Ok(()),
        RESOURCE_BROKER => Err((
            INVALID_REQUEST,
            "broker configs are read-only in weir; set them at start".to_string(),
        )),
        other => Err((
            INVALID_REQUEST,
            format!("resource type {other} is not supported"),
        )),
    }
}

/// Makes `overrides` the topic's whole set of explicit settings.
pub(crate) fn set_overrides(
    context: &Context,
    topic: &str,
    overrides: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Failure> {
    context
        .broker
        .set_topic_overrides(topic, overrides, validate_only)
        .map(|_| {
            if !validate_only {
                tracing::info!(topic, "topic configs changed");
            }
        })
        .map_err(|e| (errors::code(&e), e.to_string()))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use weir_core::TopicId;
    use weir_storage::store::TopicPartition;

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::*;
    use crate::errors::{INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION};

    fn resource(
        kind: i8,
        name: &str,
        configs: &[(&'static str, &'static str)],
    ) -> AlterConfigsResource {
        AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_static_str(k))
                            .with_value(Some(StrBytes::from_static_str(v)))
                    })
                    .collect(),
            )
    }

    fn request(resources: Vec<AlterConfigsResource>, validate_only: bool) -> AlterConfigsRequest {
        AlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only)
    }

    #[test]
    fn replaces_overrides_and_the_store_applies_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let configs = vec![("retention.ms".to_string(), "1000".to_string())];
        context
            .broker
            .create_topic("t", TopicId([1; 16]), 2, &configs, false)
            .expect("create");
        for version in versions(ApiKey::AlterConfigs) {
            let response = handle(
                &context,
                &header(version),
                request(
                    vec![resource(
                        RESOURCE_TOPIC,
                        "t",
                        &[
                            ("max.message.bytes", "2048"),
                            ("message.timestamp.type", "LogAppendTime"),
                        ],
                    )],
                    false,
                ),
            );
            assert_encodes(&response, version);
            assert_eq!(response.responses[0].error_code, NONE);
        }
        let topic = context.broker.topic("t").expect("exists");
        assert_eq!(topic.overrides.len(), 2);
        assert!(
            !topic.overrides.contains_key("retention.ms"),
            "reverted to default"
        );
        for partition in 0..2 {
            let live = context
                .broker
                .store()
                .topic_config(&TopicPartition::new("t", partition))
                .expect("config");
            assert_eq!(live.max_message_bytes, 2048);
            assert_eq!(
                live.partition.retention_ms,
                weir_storage::topic_config::TopicConfig::default()
                    .partition
                    .retention_ms
            );
        }
    }

    #[test]
    fn refusals_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic(
                "t",
                TopicId([1; 16]),
                1,
                &[("segment.ms".to_string(), "5000".to_string())],
                false,
            )
            .expect("create");
        let response = handle(
            &context,
            &header(2),
            request(
                vec![
                    resource(RESOURCE_TOPIC, "t", &[("retention.ms", "soon")]),
                    resource(RESOURCE_TOPIC, "missing", &[("retention.ms", "1")]),
                    resource(
                        RESOURCE_BROKER,
                        &NODE_ID.to_string(),
                        &[("num.partitions", "1")],
                    ),
                    resource(RESOURCE_TOPIC, "dup", &[]),
                    resource(RESOURCE_TOPIC, "dup", &[]),
                ],
                false,
            ),
        );
        assert_encodes(&response, 2);
        let codes: Vec<i16> = response.responses.iter().map(|r| r.error_code).collect();
        assert_eq!(
            codes,
            vec![
                INVALID_CONFIG,
                UNKNOWN_TOPIC_OR_PARTITION,
                INVALID_REQUEST,
                INVALID_REQUEST
            ]
        );
        let response = handle(
            &context,
            &header(2),
            request(
                vec![resource(RESOURCE_TOPIC, "t", &[("retention.ms", "1")])],
                true,
            ),
        );
        assert_eq!(response.responses[0].error_code, NONE);
        let topic = context.broker.topic("t").expect("exists");
        assert_eq!(
            topic.overrides.get("segment.ms").map(String::as_str),
            Some("5000")
        );
        assert!(
            !topic.overrides.contains_key("retention.ms"),
            "validate_only"
        );
    }
}
