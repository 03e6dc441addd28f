//! Metadata (v0–13): this node as the only broker and controller, and the topics asked
//! for with their partitions (all led by this node, one replica each). Unknown topics are
//! auto-created when both the request (v4+; always for v0–3) and the broker allow it; the
//! partitions exist at once, so the created topic is answered directly rather than with
//! LEADER_NOT_AVAILABLE. Topic ids (v10+) come from the catalog, and v10+ requests may
//! name topics by id alone.

use std::collections::HashSet;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, MetadataRequest, MetadataResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_core::acl::Operation;
use weir_core::{TopicId, TopicInfo};

use super::Context;
use super::create_topics::PARTITIONS_PER_REQUEST_MAX;
use crate::errors::{
    self, INVALID_REQUEST, INVALID_TOPIC_EXCEPTION, LEADER_NOT_AVAILABLE, NONE, UNKNOWN_TOPIC_ID,
    UNKNOWN_TOPIC_OR_PARTITION,
};
use weir_core::group_log::is_internal_topic;

/// Kafka's "authorized operations not requested / not known" value.
pub(crate) const AUTHORIZED_OPERATIONS_UNKNOWN: i32 = i32::MIN;

/// Version from which an empty topic list means "no topics" (v0: empty means all).
const EMPTY_LIST_MEANS_NONE_VERSION: i16 = 1;

pub fn handle(
    context: &Context,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    let node_id = context.config.node_id;
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(node_id))
        .with_host(StrBytes::from_string(
            context.config.advertised_host.clone(),
        ))
        .with_port(context.config.advertised_port)
        .with_rack(None);
    let topics = match request.topics {
        None => all_topics(context),
        Some(list) if list.is_empty() && version < EMPTY_LIST_MEANS_NONE_VERSION => {
            all_topics(context)
        }
        Some(list) => requested_topics(context, list, request.allow_auto_topic_creation),
    };
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_string(
            context.config.cluster_id.clone(),
        )))
        .with_controller_id(BrokerId(node_id))
        .with_topics(topics)
}

fn all_topics(context: &Context) -> Vec<MetadataResponseTopic> {
    let node_id = context.config.node_id;
    context
        .broker
        .topics()
        .iter()
        // Kafka leaves out the topics the requester may not DESCRIBE.
        .filter(|t| context.topic_allowed(&t.name, Operation::Describe))
        .map(|t| describe(t, node_id))
        .collect()
}

fn requested_topics(
    context: &Context,
    list: Vec<MetadataRequestTopic>,
    allow_auto_create: bool,
) -> Vec<MetadataResponseTopic> {
    // Each topic is answered once, however often it is asked for.
    let mut seen_names: HashSet<StrBytes> = HashSet::new();
    let mut seen_ids: HashSet<Uuid> = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    let mut budget = PARTITIONS_PER_REQUEST_MAX;
    for topic in list {
        let fresh = match &topic.name {
            Some(name) => seen_names.insert(name.0.clone()),
            None => seen_ids.insert(topic.topic_id),
        };
        if fresh {
            out.push(one_topic(context, topic, allow_auto_create, &mut budget));
        }
    }
    out
}

/// `budget`: partitions this request may still auto-create.
fn one_topic(
    context: &Context,
    topic: MetadataRequestTopic,
    allow_auto_create: bool,
    budget: &mut i64,
) -> MetadataResponseTopic {
    let node_id = context.config.node_id;
    let Some(name) = topic.name else {
        return by_id(context, topic.topic_id);
    };
    let error = |code: i16| {
        MetadataResponseTopic::default()
            .with_error_code(code)
            .with_name(Some(name.clone()))
    };
    if !context.topic_allowed(name.as_str(), Operation::Describe) {
        return error(errors::TOPIC_AUTHORIZATION_FAILED);
    }
    if let Some(info) = context.broker.topic(name.as_str()) {
        return describe(&info, node_id);
    }
    if weir_storage::store::validate_topic_name(name.as_str()).is_err() {
        return error(INVALID_TOPIC_EXCEPTION);
    }
    if !allow_auto_create {
        return error(UNKNOWN_TOPIC_OR_PARTITION);
    }
    // Auto-creation needs CREATE on the cluster or on the topic, as Kafka asks.
    if !context.cluster_allowed(Operation::Create)
        && !context.topic_allowed(name.as_str(), Operation::Create)
    {
        return error(errors::TOPIC_AUTHORIZATION_FAILED);
    }
    let partitions = i64::from(context.broker.config().num_partitions);
    if partitions > *budget {
        // Kafka's answer while a topic is being created: the client asks again later.
        return error(LEADER_NOT_AVAILABLE);
    }
    *budget -= partitions;
    let id = TopicId(Uuid::new_v4().into_bytes());
    match context.broker.topic_or_auto_create(name.as_str(), id) {
        Ok(Some(info)) => {
            tracing::info!(
                topic = name.as_str(),
                partitions = info.partitions,
                "auto-created topic"
            );
            describe(&info, node_id)
        }
        Ok(None) => error(UNKNOWN_TOPIC_OR_PARTITION),
        Err(e) => {
            tracing::warn!(topic = name.as_str(), error = %e, "auto-creating a topic failed");
            error(errors::code(&e))
        }
    }
}

fn by_id(context: &Context, id: Uuid) -> MetadataResponseTopic {
    if id.is_nil() {
        // Neither a name nor an id: nothing to look up.
        return MetadataResponseTopic::default()
            .with_error_code(INVALID_REQUEST)
            .with_name(None);
    }
    match context.broker.topic_by_id(TopicId(id.into_bytes())) {
        Some(info) if !context.topic_allowed(&info.name, Operation::Describe) => {
            MetadataResponseTopic::default()
                .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
                .with_name(None)
                .with_topic_id(id)
        }
        Some(info) => describe(&info, context.config.node_id),
        None => MetadataResponseTopic::default()
            .with_error_code(UNKNOWN_TOPIC_ID)
            .with_name(None)
            .with_topic_id(id),
    }
}

/// A topic as Metadata shows it: every partition led by this node, its only replica.
pub(crate) fn describe(topic: &TopicInfo, node_id: i32) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_error_code(NONE)
                .with_partition_index(index)
                .with_leader_id(BrokerId(node_id))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)])
                .with_offline_replicas(Vec::new())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(NONE)
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(Uuid::from_bytes(topic.id.0))
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_UNKNOWN)
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Helpers the admin API tests share: a real broker in a temporary directory, and a check
/// that a response encodes at every version weir advertises for its API.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use kafka_protocol::messages::{ApiKey, RequestHeader};
    use kafka_protocol::protocol::Encodable;
    use weir_core::groups::GroupConfig;
    use weir_core::groups::coordinator::Coordinator;
    use weir_core::{Broker, BrokerConfig};
    use weir_storage::store::StoreConfig;

    use crate::groups::Groups;

    use crate::api::{Context, SUPPORTED};
    use crate::server::KafkaConfig;

    pub(crate) const NODE_ID: i32 = 7;

    pub(crate) fn context(dir: &std::path::Path) -> Context {
        context_with(dir, BrokerConfig::default())
    }

    pub(crate) fn context_with(dir: &std::path::Path, config: BrokerConfig) -> Context {
        let broker = Arc::new(
            Broker::open(dir, StoreConfig::default(), config, 0)
                .expect("open broker")
                .0,
        );
        let coordinator =
            Coordinator::open(broker.clone(), GroupConfig::default(), 0).expect("open coordinator");
        let groups = Groups::new(coordinator, broker.clone());
        let txns = crate::txns::Txns::new(
            crate::txns::restore(&broker, weir_core::txn::TxnConfig::default())
                .expect("restore transactions"),
            broker.clone(),
            groups.clone(),
        );
        Context {
            session: crate::acls::Session::default(),
            groups,
            txns,
            broker,
            config: KafkaConfig {
                advertised_host: "localhost".to_string(),
                advertised_port: 9092,
                node_id: NODE_ID,
                cluster_id: "weir-test".to_string(),
            },
        }
    }

    pub(crate) fn header(version: i16) -> RequestHeader {
        RequestHeader::default().with_request_api_version(version)
    }

    /// Versions weir advertises for `key`.
    pub(crate) fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
        let (_, min, max) = SUPPORTED
            .iter()
            .find(|(k, _, _)| *k == key)
            .expect("API is supported");
        *min..=*max
    }

    /// Fails the test if `response` cannot be encoded at `version` (the connection would
    /// close instead of answering).
    pub(crate) fn assert_encodes<R: Encodable>(response: &R, version: i16) {
        let mut buf = bytes::BytesMut::new();
        response
            .encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encoding at v{version}: {e}"));
        assert!(!buf.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use weir_core::BrokerConfig;

    use super::testing::{NODE_ID, assert_encodes, context, context_with, header, versions};
    use super::*;

    fn named(name: &str) -> MetadataRequestTopic {
        MetadataRequestTopic::default().with_name(Some(topic_name(name)))
    }

    fn request(topics: Option<Vec<MetadataRequestTopic>>, auto: bool) -> MetadataRequest {
        MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(auto)
    }

    #[test]
    fn answers_this_node_and_its_topics_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let id = TopicId([9; 16]);
        context
            .broker
            .create_topic("orders", id, 3, &[], false)
            .expect("create");
        for version in versions(ApiKey::Metadata) {
            let response = handle(&context, &header(version), request(None, true));
            assert_encodes(&response, version);
            assert_eq!(response.brokers.len(), 1);
            assert_eq!(response.brokers[0].node_id, BrokerId(NODE_ID));
            assert_eq!(response.brokers[0].port, 9092);
            assert_eq!(response.controller_id, BrokerId(NODE_ID));
            assert_eq!(response.topics.len(), 1);
            let topic = &response.topics[0];
            assert_eq!(topic.error_code, NONE);
            assert_eq!(topic.topic_id, Uuid::from_bytes(id.0));
            assert_eq!(topic.partitions.len(), 3);
            for (i, p) in topic.partitions.iter().enumerate() {
                assert_eq!(p.partition_index, i as i32);
                assert_eq!(p.leader_id, BrokerId(NODE_ID));
                assert_eq!(p.replica_nodes, vec![BrokerId(NODE_ID)]);
                assert_eq!(p.isr_nodes, vec![BrokerId(NODE_ID)]);
            }
        }
    }

    #[test]
    fn empty_list_is_all_topics_at_v0_and_none_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("a", TopicId([1; 16]), 1, &[], false)
            .expect("create");
        let v0 = handle(&context, &header(0), request(Some(vec![]), true));
        assert_eq!(v0.topics.len(), 1);
        let v1 = handle(&context, &header(1), request(Some(vec![]), true));
        assert!(v1.topics.is_empty());
    }

    #[test]
    fn unknown_topics_are_auto_created_only_when_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let refused = handle(&context, &header(4), request(Some(vec![named("x")]), false));
        assert_eq!(refused.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert!(context.broker.topic("x").is_none());

        let created = handle(&context, &header(12), request(Some(vec![named("x")]), true));
        let topic = &created.topics[0];
        assert_eq!(topic.error_code, NONE);
        assert_eq!(topic.partitions.len(), 4, "num.partitions default");
        let info = context.broker.topic("x").expect("created");
        assert_eq!(topic.topic_id, Uuid::from_bytes(info.id.0));
        assert!(!info.id.is_zero());

        let bad = handle(
            &context,
            &header(12),
            request(Some(vec![named("a b")]), true),
        );
        assert_eq!(bad.topics[0].error_code, INVALID_TOPIC_EXCEPTION);

        let dir2 = tempfile::tempdir().expect("tempdir");
        let off = context_with(
            dir2.path(),
            BrokerConfig {
                auto_create_topics: false,
                ..BrokerConfig::default()
            },
        );
        // One request auto-creates at most PARTITIONS_PER_REQUEST_MAX partitions; past
        // that the client is told to come back (creating 10,000 takes minutes of fsyncs,
        // so the bound is shown with one topic larger than it).
        let dir3 = tempfile::tempdir().expect("tempdir");
        let huge = context_with(
            dir3.path(),
            BrokerConfig {
                num_partitions: PARTITIONS_PER_REQUEST_MAX as i32 + 1,
                ..BrokerConfig::default()
            },
        );
        let response = handle(&huge, &header(12), request(Some(vec![named("z")]), true));
        assert_eq!(response.topics[0].error_code, LEADER_NOT_AVAILABLE);
        assert!(huge.broker.topic("z").is_none());

        // v0–3 always allow auto-creation, but the broker's setting still rules.
        let response = handle(&off, &header(3), request(Some(vec![named("y")]), true));
        assert_eq!(response.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        assert!(off.broker.topic("y").is_none());
    }

    #[test]
    fn topics_are_found_by_id_and_answered_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let id = TopicId([4; 16]);
        context
            .broker
            .create_topic("by-id", id, 2, &[], false)
            .expect("create");
        let by_id = MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(Uuid::from_bytes(id.0));
        let unknown = MetadataRequestTopic::default()
            .with_name(None)
            .with_topic_id(Uuid::from_bytes([8; 16]));
        let topics = vec![by_id, unknown, named("by-id"), named("by-id")];
        let response = handle(&context, &header(12), request(Some(topics), false));
        assert_encodes(&response, 12);
        assert_eq!(response.topics.len(), 3);
        assert_eq!(
            response.topics[0].name.as_ref().map(|n| n.as_str()),
            Some("by-id")
        );
        assert_eq!(response.topics[0].partitions.len(), 2);
        assert_eq!(response.topics[1].error_code, UNKNOWN_TOPIC_ID);
        assert_eq!(response.topics[2].error_code, NONE);
    }
}
