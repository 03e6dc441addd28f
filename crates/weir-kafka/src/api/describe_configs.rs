//! DescribeConfigs (v1–4): a topic's settings — every key weir understands
//! (`weir_storage::topic_config::KEYS`) with its value and where it comes from (an
//! override set on the topic, or the default) — and a few read-only settings of this
//! broker. Requested names filter the list; synonyms (v1+) and config types (v3+) are
//! given; documentation is not.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use weir_core::TopicInfo;
use weir_storage::topic_config::TopicConfig;

use super::Context;
use crate::errors::{INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION};

/// Kafka's ConfigResource types.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Kafka's ConfigSource values.
pub(crate) const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

/// Kafka's ConfigType values (v3+), so tools can show and validate values.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// Kafka's broker-level defaults that have no setting in weir: one node, one replica.
const DEFAULT_REPLICATION_FACTOR: &str = "1";
const MIN_INSYNC_REPLICAS: &str = "1";

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let synonyms = request.include_synonyms;
    let results = request
        .resources
        .into_iter()
        .map(|resource| {
            let keys = resource.configuration_keys.as_deref();
            let name = resource.resource_name.as_str();
            let outcome = match resource.resource_type {
                RESOURCE_TOPIC => topic(context, name, keys, synonyms),
                RESOURCE_BROKER => broker(context, name, keys),
                other => Err((
                    INVALID_REQUEST,
                    format!("resource type {other} is not supported"),
                )),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match outcome {
                Ok(configs) => result
                    .with_error_code(NONE)
                    .with_error_message(None)
                    .with_configs(configs),
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

type Failure = (i16, String);

fn topic(
    context: &Context,
    name: &str,
    keys: Option<&[StrBytes]>,
    synonyms: bool,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    let info = context.broker.topic(name).ok_or_else(|| {
        (
            UNKNOWN_TOPIC_OR_PARTITION,
            format!("topic {name} does not exist"),
        )
    })?;
    Ok(topic_entries(&info)
        .into_iter()
        .filter(|e| wanted(keys, e.name))
        .map(|e| {
            let synonyms = if synonyms { e.synonyms() } else { Vec::new() };
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(e.name))
                .with_value(Some(StrBytes::from_string(e.value)))
                .with_read_only(false)
                .with_config_source(e.source)
                .with_is_sensitive(false)
                .with_synonyms(synonyms)
                .with_config_type(topic_config_type(e.name))
                .with_documentation(None)
        })
        .collect())
}

/// One topic setting as DescribeConfigs and CreateTopics (v5+) report it.
pub(crate) struct TopicEntry {
    pub name: &'static str,
    pub value: String,
    pub source: i8,
    /// The value the setting has when not overridden.
    pub default: String,
}

impl TopicEntry {
    /// Kafka lists the setting's sources, most specific first.
    fn synonyms(&self) -> Vec<DescribeConfigsSynonym> {
        let synonym = |value: &str, source| {
            DescribeConfigsSynonym::default()
                .with_name(StrBytes::from_static_str(self.name))
                .with_value(Some(StrBytes::from_string(value.to_string())))
                .with_source(source)
        };
        let mut out = Vec::with_capacity(2);
        if self.source == SOURCE_DYNAMIC_TOPIC {
            out.push(synonym(&self.value, SOURCE_DYNAMIC_TOPIC));
        }
        out.push(synonym(&self.default, SOURCE_DEFAULT));
        out
    }
}

/// Every setting of `topic`, in `KEYS` order, marked as override or default.
pub(crate) fn topic_entries(topic: &TopicInfo) -> Vec<TopicEntry> {
    let defaults = TopicConfig::default().to_pairs();
    topic
        .config
        .to_pairs()
        .into_iter()
        .map(|(name, value)| {
            let default = defaults
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let source = if topic.overrides.contains_key(name) {
                SOURCE_DYNAMIC_TOPIC
            } else {
                SOURCE_DEFAULT
            };
            TopicEntry {
                name,
                value,
                source,
                default,
            }
        })
        .collect()
}

fn topic_config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "flush.policy" | "message.timestamp.type" => TYPE_STRING,
        "index.interval.bytes" | "max.message.bytes" | "segment.bytes" => TYPE_INT,
        _ => TYPE_LONG,
    }
}

fn wanted(keys: Option<&[StrBytes]>, name: &str) -> bool {
    keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
}

/// The broker's settings, all read-only: `resource_name` is this node's id, or empty for
/// the cluster-wide defaults (which on one node are the same).
fn broker(
    context: &Context,
    name: &str,
    keys: Option<&[StrBytes]>,
) -> Result<Vec<DescribeConfigsResourceResult>, Failure> {
    let node_id = context.config.node_id;
    if !name.is_empty() && name != node_id.to_string() {
        return Err((
            INVALID_REQUEST,
            format!("broker {name} is not this broker ({node_id})"),
        ));
    }
    let config = context.broker.config();
    let defaults = TopicConfig::default();
    let partition = &defaults.partition;
    let cleanup = TopicConfig::default()
        .to_pairs()
        .into_iter()
        .find(|(k, _)| *k == "cleanup.policy")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let listener = format!(
        "PLAINTEXT://{}:{}",
        context.config.advertised_host, context.config.advertised_port
    );
    let entries: Vec<(&'static str, String, i8, i8)> = vec![
        (
            "advertised.listeners",
            listener.clone(),
            SOURCE_STATIC_BROKER,
            TYPE_LIST,
        ),
        (
            "auto.create.topics.enable",
            config.auto_create_topics.to_string(),
            SOURCE_STATIC_BROKER,
            TYPE_BOOLEAN,
        ),
        (
            "broker.id",
            node_id.to_string(),
            SOURCE_STATIC_BROKER,
            TYPE_INT,
        ),
        ("listeners", listener, SOURCE_STATIC_BROKER, TYPE_LIST),
        (
            "default.replication.factor",
            DEFAULT_REPLICATION_FACTOR.to_string(),
            SOURCE_DEFAULT,
            TYPE_INT,
        ),
        ("log.cleanup.policy", cleanup, SOURCE_DEFAULT, TYPE_LIST),
        (
            "log.retention.bytes",
            partition.retention_bytes.to_string(),
            SOURCE_DEFAULT,
            TYPE_LONG,
        ),
        (
            "log.retention.ms",
            partition.retention_ms.to_string(),
            SOURCE_DEFAULT,
            TYPE_LONG,
        ),
        (
            "log.segment.bytes",
            partition.segment_bytes.to_string(),
            SOURCE_DEFAULT,
            TYPE_INT,
        ),
        (
            "message.max.bytes",
            defaults.max_message_bytes.to_string(),
            SOURCE_DEFAULT,
            TYPE_INT,
        ),
        (
            "min.insync.replicas",
            MIN_INSYNC_REPLICAS.to_string(),
            SOURCE_DEFAULT,
            TYPE_INT,
        ),
        (
            "num.partitions",
            config.num_partitions.to_string(),
            SOURCE_STATIC_BROKER,
            TYPE_INT,
        ),
    ];
    Ok(entries
        .into_iter()
        .filter(|(name, ..)| wanted(keys, name))
        .map(|(name, value, source, config_type)| {
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(true)
                .with_config_source(source)
                .with_is_sensitive(false)
                .with_config_type(config_type)
                .with_documentation(None)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use weir_core::TopicId;
    use weir_storage::topic_config::KEYS;

    use super::super::metadata::testing::{NODE_ID, assert_encodes, context, header, versions};
    use super::*;

    fn resource(kind: i8, name: &str, keys: Option<&[&'static str]>) -> DescribeConfigsResource {
        DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(
                keys.map(|k| k.iter().map(|s| StrBytes::from_static_str(s)).collect()),
            )
    }

    fn find<'a>(
        configs: &'a [DescribeConfigsResourceResult],
        name: &str,
    ) -> &'a DescribeConfigsResourceResult {
        configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} listed"))
    }

    #[test]
    fn topic_settings_show_overrides_and_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let configs = vec![("retention.ms".to_string(), "1234".to_string())];
        context
            .broker
            .create_topic("t", TopicId([1; 16]), 1, &configs, false)
            .expect("create");
        for version in versions(ApiKey::DescribeConfigs) {
            let request = DescribeConfigsRequest::default()
                .with_resources(vec![resource(RESOURCE_TOPIC, "t", None)])
                .with_include_synonyms(true);
            let response = handle(&context, &header(version), request);
            assert_encodes(&response, version);
            let result = &response.results[0];
            assert_eq!(result.error_code, NONE);
            assert_eq!(result.configs.len(), KEYS.len());
            let retention = find(&result.configs, "retention.ms");
            assert_eq!(retention.value.as_ref().map(|v| v.as_str()), Some("1234"));
            assert_eq!(retention.config_source, SOURCE_DYNAMIC_TOPIC);
            assert_eq!(retention.synonyms.len(), 2);
            assert_eq!(retention.synonyms[0].source, SOURCE_DYNAMIC_TOPIC);
            assert_eq!(retention.synonyms[1].source, SOURCE_DEFAULT);
            let cleanup = find(&result.configs, "cleanup.policy");
            assert_eq!(cleanup.value.as_ref().map(|v| v.as_str()), Some("delete"));
            assert_eq!(cleanup.config_source, SOURCE_DEFAULT);
            assert!(!cleanup.read_only);
        }
    }

    #[test]
    fn names_filter_and_errors_are_per_resource() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("t", TopicId([1; 16]), 1, &[], false)
            .expect("create");
        let request = DescribeConfigsRequest::default().with_resources(vec![
            resource(RESOURCE_TOPIC, "t", Some(&["segment.bytes", "no.such"])),
            resource(RESOURCE_TOPIC, "missing", None),
            resource(
                RESOURCE_BROKER,
                &NODE_ID.to_string(),
                Some(&["num.partitions"]),
            ),
            resource(RESOURCE_BROKER, "", None),
            resource(RESOURCE_BROKER, "99", None),
            resource(8, "x", None),
        ]);
        let response = handle(&context, &header(4), request);
        assert_encodes(&response, 4);
        let r = &response.results;
        assert_eq!(r[0].configs.len(), 1);
        assert_eq!(r[0].configs[0].name.as_str(), "segment.bytes");
        assert!(r[0].configs[0].synonyms.is_empty(), "not asked for");
        assert_eq!(r[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert_eq!(r[2].configs.len(), 1);
        assert_eq!(
            r[2].configs[0].value.as_ref().map(|v| v.as_str()),
            Some("4")
        );
        assert!(r[2].configs[0].read_only);
        assert!(
            r[3].configs
                .iter()
                .any(|c| c.name.as_str() == "auto.create.topics.enable")
        );
        assert_eq!(r[4].error_code, INVALID_REQUEST);
        assert_eq!(r[5].error_code, INVALID_REQUEST);
    }
}
