//! Who a request comes from, and the translation between Kafka's ACL wire codes and
//! `weir_core::acl`. Until SASL exists every connection's principal is `User:ANONYMOUS`;
//! its host is the peer's IP address, as Kafka's ACL hosts name it (no leading `/`).

use weir_core::acl::{Action, Operation, PatternType, Permission, Requester, ResourceType};

use crate::api::Context;

/// Kafka's principal for a connection that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";
/// The name of the one CLUSTER resource (Kafka's `kafka-cluster`).
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The principal and host of one connection's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: String,
    /// The peer's IP address ("127.0.0.1"); empty when it could not be read.
    pub host: String,
}

impl Default for Session {
    fn default() -> Self {
        Self {
            principal: ANONYMOUS.to_string(),
            host: String::new(),
        }
    }
}

impl Context {
    /// Whether this connection's principal may perform `operation` on the named resource.
    pub(crate) fn allowed(
        &self,
        resource_type: ResourceType,
        name: &str,
        operation: Operation,
    ) -> bool {
        self.broker.authorize(
            &Requester {
                principal: &self.session.principal,
                host: &self.session.host,
            },
            &Action {
                resource_type,
                name,
                operation,
            },
        )
    }

    pub(crate) fn topic_allowed(&self, topic: &str, operation: Operation) -> bool {
        self.allowed(ResourceType::Topic, topic, operation)
    }

    pub(crate) fn group_allowed(&self, group: &str, operation: Operation) -> bool {
        self.allowed(ResourceType::Group, group, operation)
    }

    pub(crate) fn cluster_allowed(&self, operation: Operation) -> bool {
        self.allowed(ResourceType::Cluster, CLUSTER_NAME, operation)
    }
}

// Kafka's codes (`org.apache.kafka.common.resource.ResourceType`, `PatternType`,
// `acl.AclOperation`, `acl.AclPermissionType`). 0 is UNKNOWN, 1 is ANY in each.
pub const ANY: i8 = 1;
/// PatternType MATCH (filters only).
pub const PATTERN_MATCH: i8 = 2;

const RESOURCE_TYPES: &[(i8, ResourceType)] = &[
    (2, ResourceType::Topic),
    (3, ResourceType::Group),
    (4, ResourceType::Cluster),
    (5, ResourceType::TransactionalId),
    (6, ResourceType::DelegationToken),
    (7, ResourceType::User),
];
const PATTERN_TYPES: &[(i8, PatternType)] =
    &[(3, PatternType::Literal), (4, PatternType::Prefixed)];
const OPERATIONS: &[(i8, Operation)] = &[
    (2, Operation::All),
    (3, Operation::Read),
    (4, Operation::Write),
    (5, Operation::Create),
    (6, Operation::Delete),
    (7, Operation::Alter),
    (8, Operation::Describe),
    (9, Operation::ClusterAction),
    (10, Operation::DescribeConfigs),
    (11, Operation::AlterConfigs),
    (12, Operation::IdempotentWrite),
    (13, Operation::CreateTokens),
    (14, Operation::DescribeTokens),
];
const PERMISSIONS: &[(i8, Permission)] = &[(2, Permission::Deny), (3, Permission::Allow)];

fn from_code<T: Copy>(table: &[(i8, T)], code: i8) -> Option<T> {
    table.iter().find(|(c, _)| *c == code).map(|(_, v)| *v)
}

fn to_code<T: Copy + PartialEq>(table: &[(i8, T)], value: T) -> i8 {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map(|(c, _)| *c)
        .unwrap_or(0)
}

pub fn resource_type(code: i8) -> Option<ResourceType> {
    from_code(RESOURCE_TYPES, code)
}
pub fn pattern_type(code: i8) -> Option<PatternType> {
    from_code(PATTERN_TYPES, code)
}
pub fn operation(code: i8) -> Option<Operation> {
    from_code(OPERATIONS, code)
}
pub fn permission(code: i8) -> Option<Permission> {
    from_code(PERMISSIONS, code)
}
pub fn resource_type_code(value: ResourceType) -> i8 {
    to_code(RESOURCE_TYPES, value)
}
pub fn pattern_type_code(value: PatternType) -> i8 {
    to_code(PATTERN_TYPES, value)
}
pub fn operation_code(value: Operation) -> i8 {
    to_code(OPERATIONS, value)
}
pub fn permission_code(value: Permission) -> i8 {
    to_code(PERMISSIONS, value)
}

/// A filter field that may be ANY (`Ok(None)`), a value (`Ok(Some)`), or UNKNOWN or out of
/// range (`Err`).
fn filter_field<T>(code: i8, parse: fn(i8) -> Option<T>) -> Result<Option<T>, ()> {
    if code == ANY {
        Ok(None)
    } else {
        parse(code).map(Some).ok_or(())
    }
}

/// A DescribeAcls or DeleteAcls filter in core terms, or the reason Kafka refuses it
/// (INVALID_REQUEST).
#[allow(clippy::too_many_arguments)]
pub fn filter(
    resource_type_code: i8,
    name: Option<&str>,
    pattern_type_code: i8,
    principal: Option<&str>,
    host: Option<&str>,
    operation_code: i8,
    permission_code: i8,
) -> Result<weir_core::acl::AclFilter, String> {
    use weir_core::acl::{AclFilter, PatternFilter};
    let resource_type = filter_field(resource_type_code, resource_type)
        .map_err(|()| format!("unknown resource type {resource_type_code}"))?;
    let pattern = match pattern_type_code {
        ANY => PatternFilter::Any,
        PATTERN_MATCH => PatternFilter::Match,
        code => PatternFilter::Only(
            pattern_type(code).ok_or_else(|| format!("unknown pattern type {code}"))?,
        ),
    };
    let operation = filter_field(operation_code, operation)
        .map_err(|()| format!("unknown operation {operation_code}"))?;
    let permission = filter_field(permission_code, permission)
        .map_err(|()| format!("unknown permission type {permission_code}"))?;
    Ok(AclFilter {
        resource_type,
        name: name.map(str::to_string),
        pattern,
        principal: principal.map(str::to_string),
        host: host.map(str::to_string),
        operation,
        permission,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknowns_are_refused() {
        for (code, value) in RESOURCE_TYPES {
            assert_eq!(resource_type(*code), Some(*value));
            assert_eq!(resource_type_code(*value), *code);
        }
        for (code, value) in OPERATIONS {
            assert_eq!(operation(*code), Some(*value));
            assert_eq!(operation_code(*value), *code);
        }
        for (code, value) in PATTERN_TYPES {
            assert_eq!(pattern_type_code(*value), *code);
        }
        for (code, value) in PERMISSIONS {
            assert_eq!(permission_code(*value), *code);
        }
        for bad in [0, ANY, 15, -1, i8::MAX] {
            assert_eq!(operation(bad), None);
            assert_eq!(permission(bad), None);
        }
        assert!(filter(ANY, None, ANY, None, None, ANY, ANY).is_ok());
        assert!(filter(0, None, ANY, None, None, ANY, ANY).is_err());
        assert!(filter(ANY, None, 0, None, None, ANY, ANY).is_err());
        assert!(filter(ANY, None, ANY, None, None, 99, ANY).is_err());
    }
}

/// The handlers' enforcement, through the handlers themselves on a real broker.
#[cfg(test)]
mod enforcement {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        CreateTopicsRequest, DeleteGroupsRequest, DeleteTopicsRequest, DescribeGroupsRequest,
        FetchRequest, GroupId, HeartbeatRequest, MetadataRequest, OffsetCommitRequest,
    };
    use kafka_protocol::protocol::StrBytes;
    use weir_core::acl::{AclBinding, ResourcePattern};

    use super::*;
    use crate::api::produce::testing::{Harness, harness, header, topic_name};
    use crate::api::{
        create_topics, delete_groups, delete_topics, describe_groups, fetch, heartbeat, metadata,
        offset_commit,
    };
    use crate::errors;

    fn deny(h: &Harness, resource_type: ResourceType, name: &str, operation: Operation) {
        acl(h, resource_type, name, operation, Permission::Deny);
    }

    fn acl(
        h: &Harness,
        resource_type: ResourceType,
        name: &str,
        operation: Operation,
        permission: Permission,
    ) {
        let binding = AclBinding {
            pattern: ResourcePattern {
                resource_type,
                name: name.into(),
                pattern_type: PatternType::Literal,
            },
            principal: ANONYMOUS.into(),
            host: "*".into(),
            operation,
            permission,
        };
        h.context
            .broker
            .create_acls(vec![binding])
            .expect("create acl");
    }

    #[tokio::test]
    async fn produce_is_refused_with_topic_authorization_failed() {
        let h = harness();
        h.create("open", 1, &[]);
        h.create("closed", 1, &[]);
        deny(&h, ResourceType::Topic, "closed", Operation::Write);
        let open = h.produce("open", 0, &[(1, b"a")], 9).await;
        assert_eq!(open.responses[0].partition_responses[0].error_code, 0);
        let closed = h.produce("closed", 0, &[(1, b"a")], 9).await;
        assert_eq!(
            closed.responses[0].partition_responses[0].error_code,
            errors::TOPIC_AUTHORIZATION_FAILED
        );
        assert_eq!(
            h.context
                .broker
                .store()
                .offsets(&weir_storage::store::TopicPartition::new("closed", 0))
                .expect("offsets")
                .log_end_offset,
            0,
            "nothing was appended"
        );
    }

    #[tokio::test]
    async fn fetch_metadata_and_topic_admin_are_enforced() {
        let h = harness();
        h.create("t", 1, &[]);
        h.create("hidden", 1, &[]);
        // Once a topic has ACLs only what they allow passes; DENY wins over the ALLOW ALL.
        acl(
            &h,
            ResourceType::Topic,
            "t",
            Operation::All,
            Permission::Allow,
        );
        deny(&h, ResourceType::Topic, "t", Operation::Read);
        deny(&h, ResourceType::Topic, "t", Operation::Delete);
        deny(&h, ResourceType::Topic, "hidden", Operation::Describe);
        // CREATE is allowed on the cluster or the topic: both must deny it.
        deny(&h, ResourceType::Cluster, CLUSTER_NAME, Operation::Create);
        deny(&h, ResourceType::Topic, "new", Operation::Create);

        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name("t"))
                    .with_partitions(vec![FetchPartition::default().with_partition(0)]),
            ]);
        let response = fetch::handle(&h.context, &header(11), request).await;
        assert_eq!(
            response.responses[0].partitions[0].error_code,
            errors::TOPIC_AUTHORIZATION_FAILED
        );

        let all = metadata::handle(
            &h.context,
            &header(12),
            MetadataRequest::default().with_topics(None),
        );
        let names: Vec<String> = all
            .topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
            .collect();
        assert_eq!(names, ["t"], "a topic denied DESCRIBE is left out");
        let named = metadata::handle(
            &h.context,
            &header(12),
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name("hidden"))),
            ])),
        );
        assert_eq!(
            named.topics[0].error_code,
            errors::TOPIC_AUTHORIZATION_FAILED
        );

        let created = create_topics::handle(
            &h.context,
            &header(5),
            CreateTopicsRequest::default().with_topics(
                ["new", "other"]
                    .iter()
                    .map(|name| {
                        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                            .with_name(topic_name(name))
                            .with_num_partitions(1)
                            .with_replication_factor(1)
                    })
                    .collect(),
            ),
        );
        assert_eq!(
            created.topics[0].error_code,
            errors::TOPIC_AUTHORIZATION_FAILED
        );
        assert_eq!(
            created.topics[1].error_code, 0,
            "a topic without ACLs is open"
        );
        assert!(h.context.broker.topic("new").is_none());

        let deleted = delete_topics::handle(
            &h.context,
            &header(5),
            DeleteTopicsRequest::default().with_topic_names(vec![topic_name("t")]),
        );
        assert_eq!(
            deleted.responses[0].error_code,
            errors::TOPIC_AUTHORIZATION_FAILED
        );
        assert!(h.context.broker.topic("t").is_some());
    }

    #[tokio::test]
    async fn group_apis_are_enforced() {
        let h = harness();
        h.create("t", 1, &[]);
        h.create("secret", 1, &[]);
        deny(&h, ResourceType::Group, "g", Operation::Read);
        deny(&h, ResourceType::Topic, "secret", Operation::Read);
        let heartbeat = heartbeat::handle(
            &h.context,
            &header(4),
            HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))),
        );
        assert_eq!(heartbeat.error_code, errors::GROUP_AUTHORIZATION_FAILED);

        let commit = |group: &'static str| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str(group)))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(
                    ["t", "secret"]
                        .iter()
                        .map(|t| {
                            OffsetCommitRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partitions(vec![
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(0)
                                        .with_committed_offset(5),
                                ])
                        })
                        .collect(),
                )
        };
        let denied = offset_commit::handle(&h.context, &header(8), commit("g")).await;
        for topic in &denied.topics {
            assert_eq!(
                topic.partitions[0].error_code,
                errors::GROUP_AUTHORIZATION_FAILED
            );
        }
        let partly = offset_commit::handle(&h.context, &header(8), commit("other")).await;
        let codes: Vec<i16> = partly
            .topics
            .iter()
            .map(|t| t.partitions[0].error_code)
            .collect();
        assert_eq!(codes, [0, errors::TOPIC_AUTHORIZATION_FAILED]);

        // "g" has ACLs and none allows DESCRIBE or DELETE; "other" has none.
        let names = || {
            ["g", "other"]
                .iter()
                .map(|g| GroupId(StrBytes::from_static_str(g)))
                .collect::<Vec<_>>()
        };
        let described = describe_groups::handle(
            &h.context,
            &header(5),
            DescribeGroupsRequest::default().with_groups(names()),
        );
        assert_eq!(
            described.groups[0].error_code,
            errors::GROUP_AUTHORIZATION_FAILED
        );
        assert_ne!(
            described.groups[1].error_code,
            errors::GROUP_AUTHORIZATION_FAILED
        );
        let deleted = delete_groups::handle(
            &h.context,
            &header(2),
            DeleteGroupsRequest::default().with_groups_names(names()),
        )
        .await;
        let codes: Vec<(String, i16)> = deleted
            .results
            .iter()
            .map(|r| (r.group_id.0.to_string(), r.error_code))
            .collect();
        assert!(codes.contains(&("g".into(), errors::GROUP_AUTHORIZATION_FAILED)));
        assert!(
            codes
                .iter()
                .any(|(g, c)| g == "other" && *c != errors::GROUP_AUTHORIZATION_FAILED)
        );
    }
}
