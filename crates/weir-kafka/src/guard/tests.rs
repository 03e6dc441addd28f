//! The guard against kafka-protocol's own encoder: every supported (key, version) encoded
//! from a request with every field and nullable set, walked, and decoded to the same end.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;

use super::*;
use crate::api::SUPPORTED;

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(text: &'static str) -> TopicName {
    TopicName(s(text))
}

fn group(text: &'static str) -> GroupId {
    GroupId(s(text))
}

fn id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)
}

/// A tagged field no schema knows, so flexible walks skip one.
fn unknown_tags(version: i16, flexible_from: i16) -> std::collections::BTreeMap<i32, Bytes> {
    let mut tags = std::collections::BTreeMap::new();
    if version >= flexible_from {
        tags.insert(77, Bytes::from_static(b"opaque"));
    }
    tags
}

/// A realistic request of `key` at `version`: arrays with several elements, nullables both
/// null and set, every field the version has.
fn request(key: ApiKey, v: i16) -> RequestKind {
    match key {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(topic("orders"))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(Bytes::from_static(&[1, 2, 3, 4, 5]))),
                            produce_request::PartitionProduceData::default()
                                .with_index(1)
                                .with_records(None),
                        ])
                        .with_unknown_tagged_fields(unknown_tags(v, 9)),
                    produce_request::TopicProduceData::default().with_name(topic("empty")),
                ]),
        ),
        ApiKey::Fetch => {
            let partition = |p: i32| {
                fetch_request::FetchPartition::default()
                    .with_partition(p)
                    .with_current_leader_epoch(if v >= 9 { 3 } else { -1 })
                    .with_fetch_offset(42)
                    .with_last_fetched_epoch(if v >= 12 { 2 } else { -1 })
                    .with_log_start_offset(if v >= 5 { 7 } else { -1 })
                    .with_partition_max_bytes(1 << 20)
                    .with_replica_directory_id(if v >= 17 { id() } else { uuid::Uuid::nil() })
            };
            let mut topic_entry = fetch_request::FetchTopic::default().with_partitions(vec![
                partition(0),
                partition(1),
                partition(2),
            ]);
            let mut forgotten =
                fetch_request::ForgottenTopic::default().with_partitions(vec![4, 5]);
            if v >= 13 {
                topic_entry = topic_entry.with_topic_id(id());
                forgotten = forgotten.with_topic_id(id());
            } else {
                topic_entry = topic_entry.with_topic(topic("orders"));
                forgotten = forgotten.with_topic(topic("old"));
            }
            let mut request = FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(50 << 20)
                .with_isolation_level(1)
                .with_topics(vec![topic_entry]);
            if v >= 7 {
                request = request
                    .with_session_id(9)
                    .with_session_epoch(1)
                    .with_forgotten_topics_data(vec![forgotten]);
            }
            if v >= 11 {
                request = request.with_rack_id(s("rack-a"));
            }
            if v >= 12 {
                request = request.with_cluster_id(Some(s("cluster")));
            }
            if v >= 15 {
                request = request.with_replica_state(
                    fetch_request::ReplicaState::default()
                        .with_replica_id(BrokerId(-1))
                        .with_replica_epoch(5),
                );
            } else {
                request = request.with_replica_id(BrokerId(-1));
            }
            RequestKind::Fetch(request.with_unknown_tagged_fields(unknown_tags(v, 12)))
        }
        ApiKey::ListOffsets => {
            let partition = |p: i32| {
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(p)
                    .with_current_leader_epoch(if v >= 4 { 1 } else { -1 })
                    .with_timestamp(-2)
            };
            let mut request = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![partition(0), partition(1)]),
                ]);
            if v >= 2 {
                request = request.with_isolation_level(1);
            }
            if v >= 10 {
                request = request.with_timeout_ms(1000);
            }
            RequestKind::ListOffsets(request)
        }
        ApiKey::Metadata => {
            let named = |name| {
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(topic(name)))
                    .with_unknown_tagged_fields(unknown_tags(v, 9))
            };
            let mut topics = vec![named("a"), named("b")];
            if v >= 10 {
                topics.push(
                    metadata_request::MetadataRequestTopic::default()
                        .with_topic_id(id())
                        .with_name(None),
                );
            }
            let mut request = MetadataRequest::default().with_topics(Some(topics));
            if v >= 4 {
                request = request.with_allow_auto_topic_creation(false);
            }
            if (8..=10).contains(&v) {
                request = request.with_include_cluster_authorized_operations(true);
            }
            if v >= 8 {
                request = request.with_include_topic_authorized_operations(true);
            }
            RequestKind::Metadata(request)
        }
        ApiKey::ApiVersions => {
            let mut request = ApiVersionsRequest::default();
            if v >= 3 {
                request = request
                    .with_client_software_name(s("weir-test"))
                    .with_client_software_version(s("1.0"));
            }
            RequestKind::ApiVersions(request)
        }
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_topics(vec![
                    create_topics_request::CreatableTopic::default()
                        .with_name(topic("new"))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_assignments(vec![
                            create_topics_request::CreatableReplicaAssignment::default()
                                .with_partition_index(0)
                                .with_broker_ids(vec![BrokerId(1), BrokerId(2)]),
                        ])
                        .with_configs(vec![
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1000"))),
                            create_topics_request::CreatableTopicConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(None),
                        ]),
                ])
                .with_timeout_ms(5000)
                .with_validate_only(true),
        ),
        ApiKey::DeleteTopics => {
            let request = if v >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(topic("gone"))),
                    delete_topics_request::DeleteTopicState::default()
                        .with_name(None)
                        .with_topic_id(id()),
                ])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![topic("gone"), topic("too")])
            };
            RequestKind::DeleteTopics(request.with_timeout_ms(5000))
        }
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_topics(vec![
                    delete_records_request::DeleteRecordsTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(10),
                        ]),
                ])
                .with_timeout_ms(5000),
        ),
        ApiKey::DescribeConfigs => {
            let mut request = DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configuration_keys(Some(vec![s("retention.ms"), s("segment.bytes")])),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("0"))
                    .with_configuration_keys(None),
            ]);
            request = request.with_include_synonyms(true);
            if v >= 3 {
                request = request.with_include_documentation(true);
            }
            RequestKind::DescribeConfigs(request)
        }
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(
            AlterConfigsRequest::default()
                .with_resources(vec![
                    alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("orders"))
                        .with_configs(vec![
                            alter_configs_request::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("1"))),
                            alter_configs_request::AlterableConfig::default()
                                .with_name(s("segment.bytes"))
                                .with_value(None),
                        ]),
                ])
                .with_validate_only(true),
        ),
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![0, 1, 2]),
            ])))
        }
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(topic("orders"))
                        .with_count(8)
                        .with_assignments(Some(vec![
                            create_partitions_request::CreatePartitionsAssignment::default()
                                .with_broker_ids(vec![BrokerId(1)]),
                        ])),
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(topic("other"))
                        .with_count(2)
                        .with_assignments(None),
                ])
                .with_timeout_ms(5000)
                .with_validate_only(false),
        ),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default()
                .with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("orders"))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_config_operation(0)
                                .with_value(Some(s("5"))),
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s("segment.bytes"))
                                .with_config_operation(1)
                                .with_value(None),
                        ]),
                ])
                .with_validate_only(true),
        ),
        ApiKey::DescribeCluster => {
            let mut request =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            if v >= 1 {
                request = request.with_endpoint_type(2);
            }
            RequestKind::DescribeCluster(request)
        }
        ApiKey::InitProducerId => {
            let mut request = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000);
            if v >= 3 {
                request = request
                    .with_producer_id(ProducerId(42))
                    .with_producer_epoch(3);
            }
            RequestKind::InitProducerId(request)
        }
        ApiKey::FindCoordinator => {
            let mut request = FindCoordinatorRequest::default();
            if v <= 3 {
                request = request.with_key(s("orders-consumers"));
            }
            if v >= 1 {
                request = request.with_key_type(0);
            }
            if v >= 4 {
                request = request.with_coordinator_keys(vec![s("group-a"), s("group-b")]);
            }
            RequestKind::FindCoordinator(request.with_unknown_tagged_fields(unknown_tags(v, 3)))
        }
        ApiKey::OffsetCommit => {
            let partition = |p: i32, metadata: Option<StrBytes>| {
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(1000 + i64::from(p))
                    .with_committed_leader_epoch(if v >= 6 { 4 } else { -1 })
                    .with_committed_metadata(metadata)
                    .with_unknown_tagged_fields(unknown_tags(v, 8))
            };
            let mut request = OffsetCommitRequest::default()
                .with_group_id(group("orders-consumers"))
                .with_generation_id_or_member_epoch(7)
                .with_member_id(s("consumer-1-4f2a"))
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            partition(0, Some(s("checkpoint"))),
                            partition(1, None),
                            partition(2, Some(s(""))),
                        ])
                        .with_unknown_tagged_fields(unknown_tags(v, 8)),
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic("payments"))
                        .with_partitions(vec![partition(0, None)]),
                ]);
            if v >= 7 {
                request = request.with_group_instance_id(Some(s("instance-1")));
            }
            if v <= 4 {
                request = request.with_retention_time_ms(86_400_000);
            }
            RequestKind::OffsetCommit(request.with_unknown_tagged_fields(unknown_tags(v, 8)))
        }
        ApiKey::OffsetFetch => {
            let mut request = OffsetFetchRequest::default();
            if v <= 7 {
                request = request
                    .with_group_id(group("orders-consumers"))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic("orders"))
                            .with_partition_indexes(vec![0, 1, 2])
                            .with_unknown_tagged_fields(unknown_tags(v, 6)),
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic("payments"))
                            .with_partition_indexes(vec![3]),
                    ]));
            } else {
                let mut with_topics = offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(group("orders-consumers"))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(topic("orders"))
                            .with_partition_indexes(vec![0, 1])
                            .with_unknown_tagged_fields(unknown_tags(v, 6)),
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(topic("payments"))
                            .with_partition_indexes(vec![]),
                    ]))
                    .with_unknown_tagged_fields(unknown_tags(v, 6));
                if v >= 9 {
                    with_topics = with_topics
                        .with_member_id(Some(s("member-9")))
                        .with_member_epoch(5);
                }
                // Null topics: every committed offset of the group.
                let all_topics = offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(group("audit"))
                    .with_topics(None);
                request = request.with_groups(vec![with_topics, all_topics]);
            }
            if v >= 7 {
                request = request.with_require_stable(true);
            }
            RequestKind::OffsetFetch(request.with_unknown_tagged_fields(unknown_tags(v, 6)))
        }
        ApiKey::JoinGroup => {
            let protocol = |name: &'static str, metadata: &'static [u8]| {
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(s(name))
                    .with_metadata(Bytes::from_static(metadata))
                    .with_unknown_tagged_fields(unknown_tags(v, 6))
            };
            let mut request = JoinGroupRequest::default()
                .with_group_id(group("orders-consumers"))
                .with_session_timeout_ms(45_000)
                .with_member_id(s("consumer-1-4f2a"))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    protocol(
                        "range",
                        &[0, 3, 0, 0, 0, 1, 0, 6, b'o', b'r', b'd', b'e', b'r', b's'],
                    ),
                    protocol("cooperative-sticky", &[0, 3, 0, 0, 0, 0]),
                ]);
            if v >= 1 {
                request = request.with_rebalance_timeout_ms(300_000);
            }
            if v >= 5 {
                request = request.with_group_instance_id(Some(s("instance-1")));
            }
            if v >= 8 {
                request = request.with_reason(Some(s("rebalance after metadata change")));
            }
            RequestKind::JoinGroup(request.with_unknown_tagged_fields(unknown_tags(v, 6)))
        }
        ApiKey::Heartbeat => {
            let mut request = HeartbeatRequest::default()
                .with_group_id(group("orders-consumers"))
                .with_generation_id(7)
                .with_member_id(s("consumer-1-4f2a"));
            if v >= 3 {
                request = request.with_group_instance_id(Some(s("instance-1")));
            }
            RequestKind::Heartbeat(request.with_unknown_tagged_fields(unknown_tags(v, 4)))
        }
        ApiKey::LeaveGroup => {
            let mut request = LeaveGroupRequest::default().with_group_id(group("orders-consumers"));
            if v <= 2 {
                request = request.with_member_id(s("consumer-1-4f2a"));
            } else {
                let member = |id: &'static str, instance: Option<StrBytes>| {
                    leave_group_request::MemberIdentity::default()
                        .with_member_id(s(id))
                        .with_group_instance_id(instance)
                        .with_unknown_tagged_fields(unknown_tags(v, 4))
                };
                let mut members = vec![
                    member("consumer-1-4f2a", None),
                    member("", Some(s("instance-2"))),
                ];
                if v >= 5 {
                    members[0].reason = Some(s("shutting down"));
                }
                request = request.with_members(members);
            }
            RequestKind::LeaveGroup(request.with_unknown_tagged_fields(unknown_tags(v, 4)))
        }
        ApiKey::SyncGroup => {
            let assignment = |member: &'static str, bytes: &'static [u8]| {
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(member))
                    .with_assignment(Bytes::from_static(bytes))
                    .with_unknown_tagged_fields(unknown_tags(v, 4))
            };
            let mut request = SyncGroupRequest::default()
                .with_group_id(group("orders-consumers"))
                .with_generation_id(7)
                .with_member_id(s("consumer-1-4f2a"))
                .with_assignments(vec![
                    assignment(
                        "consumer-1-4f2a",
                        &[0, 3, 0, 0, 0, 1, 0, 1, b'o', 0, 0, 0, 1],
                    ),
                    assignment("consumer-2-9c1b", &[]),
                ]);
            if v >= 3 {
                request = request.with_group_instance_id(Some(s("instance-1")));
            }
            if v >= 5 {
                request = request
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")));
            }
            RequestKind::SyncGroup(request.with_unknown_tagged_fields(unknown_tags(v, 4)))
        }
        ApiKey::DescribeGroups => {
            let mut request = DescribeGroupsRequest::default()
                .with_groups(vec![group("orders-consumers"), group("audit")]);
            if v >= 3 {
                request = request.with_include_authorized_operations(true);
            }
            RequestKind::DescribeGroups(request.with_unknown_tagged_fields(unknown_tags(v, 5)))
        }
        ApiKey::ListGroups => {
            let mut request = ListGroupsRequest::default();
            if v >= 4 {
                request = request.with_states_filter(vec![s("Stable"), s("Empty")]);
            }
            if v >= 5 {
                request = request.with_types_filter(vec![s("classic"), s("consumer")]);
            }
            RequestKind::ListGroups(request.with_unknown_tagged_fields(unknown_tags(v, 3)))
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default()
                .with_groups_names(vec![group("orders-consumers"), group("audit")])
                .with_unknown_tagged_fields(unknown_tags(v, 2)),
        ),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(group("orders-consumers"))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(3),
                        ]),
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic("payments")),
                ]),
        ),
        ApiKey::ConsumerGroupHeartbeat => {
            let mut request = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("orders-consumers"))
                .with_member_id(s("4f2a9c1b-member"))
                .with_member_epoch(3)
                .with_instance_id(None)
                .with_rack_id(Some(s("rack-a")))
                .with_rebalance_timeout_ms(300_000)
                .with_subscribed_topic_names(Some(vec![topic("orders"), topic("payments")]))
                .with_server_assignor(Some(s("uniform")))
                .with_topic_partitions(Some(vec![
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(id())
                        .with_partitions(vec![0, 2, 4])
                        .with_unknown_tagged_fields(unknown_tags(v, 0)),
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(uuid::Uuid::nil())
                        .with_partitions(vec![]),
                ]));
            if v >= 1 {
                request = request.with_subscribed_topic_regex(Some(s("^orders-.*")));
            }
            RequestKind::ConsumerGroupHeartbeat(
                request.with_unknown_tagged_fields(unknown_tags(v, 0)),
            )
        }
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![group("orders-consumers"), group("audit")])
                .with_include_authorized_operations(true)
                .with_unknown_tagged_fields(unknown_tags(v, 0)),
        ),
        // Admin APIs of a one-node cluster (kafka-python's admin tests).
        ApiKey::DescribeTopicPartitions => {
            let t = |name| {
                describe_topic_partitions_request::TopicRequest::default()
                    .with_name(topic(name))
                    .with_unknown_tagged_fields(unknown_tags(v, 0))
            };
            RequestKind::DescribeTopicPartitions(
                DescribeTopicPartitionsRequest::default()
                    .with_topics(vec![t("orders"), t("audit"), t("")])
                    .with_response_partition_limit(2000)
                    .with_cursor(Some(
                        describe_topic_partitions_request::Cursor::default()
                            .with_topic_name(topic("orders"))
                            .with_partition_index(3)
                            .with_unknown_tagged_fields(unknown_tags(v, 0)),
                    ))
                    .with_unknown_tagged_fields(unknown_tags(v, 0)),
            )
        }
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(
            DescribeQuorumRequest::default()
                .with_topics(vec![
                    describe_quorum_request::TopicData::default()
                        .with_topic_name(topic("__cluster_metadata"))
                        .with_partitions(vec![
                            describe_quorum_request::PartitionData::default()
                                .with_partition_index(0)
                                .with_unknown_tagged_fields(unknown_tags(v, 0)),
                            describe_quorum_request::PartitionData::default()
                                .with_partition_index(1),
                        ]),
                    describe_quorum_request::TopicData::default().with_topic_name(topic("other")),
                ])
                .with_unknown_tagged_fields(unknown_tags(v, 0)),
        ),
        // Replica administration (one node: nothing to elect, move or reassign).
        ApiKey::ElectLeaders => {
            let named = |name, partitions: Vec<i32>| {
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic(name))
                    .with_partitions(partitions)
                    .with_unknown_tagged_fields(unknown_tags(v, 2))
            };
            RequestKind::ElectLeaders(
                ElectLeadersRequest::default()
                    .with_election_type(if v >= 1 { 1 } else { 0 })
                    .with_topic_partitions(Some(vec![
                        named("orders", vec![0, 1, 2]),
                        named("audit", vec![]),
                    ]))
                    .with_timeout_ms(60_000),
            )
        }
        ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(60_000)
                .with_allow_replication_factor_change(v == 0)
                .with_topics(vec![
                    alter_partition_reassignments_request::ReassignableTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            alter_partition_reassignments_request::ReassignablePartition::default()
                                .with_partition_index(0)
                                .with_replicas(Some(vec![BrokerId(1), BrokerId(2)])),
                            alter_partition_reassignments_request::ReassignablePartition::default()
                                .with_partition_index(1)
                                .with_replicas(None)
                                .with_unknown_tagged_fields(unknown_tags(v, 0)),
                        ]),
                ])
                .with_unknown_tagged_fields(unknown_tags(v, 0)),
        ),
        ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(
            ListPartitionReassignmentsRequest::default()
                .with_timeout_ms(60_000)
                .with_topics(Some(vec![
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                        .with_name(topic("orders"))
                        .with_partition_indexes(vec![0, 3]),
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                        .with_name(topic("audit"))
                        .with_partition_indexes(vec![1]),
                ])),
        ),
        ApiKey::AlterReplicaLogDirs => {
            let dir = |path, name| {
                alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                    .with_path(s(path))
                    .with_topics(vec![
                        alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                            .with_name(topic(name))
                            .with_partitions(vec![0, 1]),
                    ])
            };
            RequestKind::AlterReplicaLogDirs(
                AlterReplicaLogDirsRequest::default()
                    .with_dirs(vec![dir("/var/lib/weir", "orders"), dir("/mnt/b", "audit")])
                    .with_unknown_tagged_fields(unknown_tags(v, 2)),
            )
        }
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
                .with_v3_and_below_producer_id(ProducerId(42))
                .with_v3_and_below_producer_epoch(3)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![0, 2]),
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic("audit"))
                        .with_partitions(vec![1]),
                ])
                .with_unknown_tagged_fields(unknown_tags(v, 3)),
        ),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(42))
                .with_producer_epoch(3)
                .with_group_id(group("orders-consumers"))
                .with_unknown_tagged_fields(unknown_tags(v, 3)),
        ),
        ApiKey::EndTxn => RequestKind::EndTxn(
            EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(42))
                .with_producer_epoch(3)
                .with_committed(true)
                .with_unknown_tagged_fields(unknown_tags(v, 3)),
        ),
        ApiKey::TxnOffsetCommit => {
            let partition = |p: i32, metadata: Option<StrBytes>| {
                let mut partition = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(1_000 + i64::from(p))
                    .with_committed_metadata(metadata);
                if v >= 2 {
                    partition = partition.with_committed_leader_epoch(5);
                }
                partition
            };
            let mut request = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(group("orders-consumers"))
                .with_producer_id(ProducerId(42))
                .with_producer_epoch(3)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![partition(0, Some(s("m"))), partition(1, None)]),
                ]);
            if v >= 3 {
                request = request
                    .with_generation_id(4)
                    .with_member_id(s("member-1"))
                    .with_group_instance_id(Some(s("instance-1")));
            }
            RequestKind::TxnOffsetCommit(request.with_unknown_tagged_fields(unknown_tags(v, 3)))
        }
        ApiKey::CreateAcls => RequestKind::CreateAcls(
            kafka_protocol::messages::CreateAclsRequest::default()
                .with_creations(vec![
                    kafka_protocol::messages::create_acls_request::AclCreation::default()
                        .with_resource_type(2)
                        .with_resource_name(s("orders"))
                        .with_resource_pattern_type(4)
                        .with_principal(s("User:alice"))
                        .with_host(s("*"))
                        .with_operation(3)
                        .with_permission_type(3),
                ])
                .with_unknown_tagged_fields(unknown_tags(v, 2)),
        ),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(
            kafka_protocol::messages::DescribeAclsRequest::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s("orders")))
                .with_pattern_type_filter(2)
                .with_principal_filter(None)
                .with_host_filter(Some(s("*")))
                .with_operation(1)
                .with_permission_type(1)
                .with_unknown_tagged_fields(unknown_tags(v, 2)),
        ),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(
            kafka_protocol::messages::DeleteAclsRequest::default()
                .with_filters(vec![
                    kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
                        .with_resource_type_filter(1)
                        .with_resource_name_filter(None)
                        .with_pattern_type_filter(1)
                        .with_principal_filter(Some(s("User:alice")))
                        .with_host_filter(None)
                        .with_operation(3)
                        .with_permission_type(2),
                ])
                .with_unknown_tagged_fields(unknown_tags(v, 2)),
        ),
        other => panic!("no test request for {other:?}"),
    }
}

fn default_request(key: ApiKey) -> RequestKind {
    match key {
        ApiKey::Produce => RequestKind::Produce(Default::default()),
        ApiKey::Fetch => RequestKind::Fetch(Default::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(Default::default()),
        ApiKey::Metadata => RequestKind::Metadata(Default::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(Default::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(Default::default()),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(Default::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(Default::default()),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(Default::default()),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(Default::default()),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(Default::default()),
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(Default::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(Default::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(Default::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(Default::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(Default::default()),
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(Default::default()),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(Default::default()),
        // Admin APIs of a one-node cluster (kafka-python's admin tests).
        ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(Default::default()),
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(Default::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(Default::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(Default::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(Default::default())
        }
        ApiKey::AlterReplicaLogDirs => RequestKind::AlterReplicaLogDirs(Default::default()),
        ApiKey::AddPartitionsToTxn => RequestKind::AddPartitionsToTxn(Default::default()),
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(Default::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(Default::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(Default::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(Default::default()),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(Default::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(Default::default()),
        other => panic!("no default request for {other:?}"),
    }
}

/// A whole frame body (no size prefix): header then request.
fn frame(key: ApiKey, version: i16, request: &RequestKind) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(11)
        .with_client_id(Some(s("guard-test")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("header encodes");
    request
        .encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} encodes: {e:?}"));
    buf.freeze()
}

fn every_supported() -> Vec<(ApiKey, i16)> {
    SUPPORTED
        .iter()
        .flat_map(|(key, min, max)| (*min..=*max).map(move |v| (*key, v)))
        .collect()
}

/// Decodes as the connection does; returns the bytes left over.
fn decode(frame: &Bytes) -> anyhow::Result<usize> {
    let mut buf = frame.clone();
    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]]))
        .map_err(|_| anyhow::anyhow!("key"))?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    RequestHeader::decode(&mut buf, key.request_header_version(version))?;
    RequestKind::decode(key, &mut buf, version)?;
    Ok(bytes::Buf::remaining(&buf))
}

fn valid_frames() -> &'static [Bytes] {
    static FRAMES: std::sync::OnceLock<Vec<Bytes>> = std::sync::OnceLock::new();
    FRAMES.get_or_init(|| {
        every_supported()
            .into_iter()
            .map(|(key, v)| frame(key, v, &request(key, v)))
            .collect()
    })
}

#[test]
fn every_supported_version_has_a_shape_and_only_those() {
    for (key, v) in every_supported() {
        assert!(shape(key, v).is_some(), "{key:?} v{v} has no shape");
    }
    for shape in SHAPES {
        for v in shape.min..=shape.max {
            assert!(
                crate::api::is_supported(shape.key, v),
                "{:?} v{v} is not supported",
                shape.key
            );
        }
    }
}

#[test]
fn realistic_requests_of_every_version_walk_to_their_exact_end() {
    for (key, v) in every_supported() {
        let frame = frame(key, v, &request(key, v));
        let walked = check_request(&frame).unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
        assert_eq!(walked.consumed, frame.len(), "{key:?} v{v}");
        assert_eq!((walked.api_key, walked.version), (key, v));
        assert_eq!(decode(&frame).expect("decodes"), 0, "{key:?} v{v}");
    }
}

#[test]
fn defaults_of_every_version_walk_too() {
    // Empty arrays and empty strings, and the nulls a default carries.
    for (key, v) in every_supported() {
        let default = default_request(key);
        let frame = frame(key, v, &default);
        let walked = check_request(&frame).unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
        assert_eq!(walked.consumed, frame.len(), "{key:?} v{v}");
    }
}

#[test]
fn unsupported_versions_and_keys_fail_closed() {
    let mut probe = frame(ApiKey::Produce, 11, &request(ApiKey::Produce, 11)).to_vec();
    for version in [-1i16, 0, 2, 12, 13, i16::MAX] {
        probe[2..4].copy_from_slice(&version.to_be_bytes());
        assert_eq!(
            check_request(&probe),
            Err(GuardError::NoShape { key: 0, version })
        );
    }
    // Vote: a real API (KRaft's own) weir has no shape for.
    probe[0..2].copy_from_slice(&52i16.to_be_bytes());
    probe[2..4].copy_from_slice(&0i16.to_be_bytes());
    assert!(matches!(
        check_request(&probe),
        Err(GuardError::NoShape { key: 52, .. })
    ));
    // A group API beyond the versions weir supports.
    probe[0..2].copy_from_slice(&11i16.to_be_bytes());
    probe[2..4].copy_from_slice(&10i16.to_be_bytes());
    assert!(matches!(
        check_request(&probe),
        Err(GuardError::NoShape {
            key: 11,
            version: 10
        })
    ));
    probe[0..2].copy_from_slice(&i16::MAX.to_be_bytes());
    assert!(matches!(
        check_request(&probe),
        Err(GuardError::UnknownApiKey(_))
    ));
}

/// A frame whose top-level array declares `count` elements and holds none.
fn huge_array_frame(key: ApiKey, version: i16, prefix: &[u8], count: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&(key as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    if key.request_header_version(version) >= 2 {
        frame.push(0); // no header tags
    }
    frame.extend_from_slice(prefix);
    frame.extend_from_slice(count);
    frame.extend_from_slice(&[0; 8]);
    frame
}

#[test]
fn array_counts_beyond_the_frame_are_refused() {
    let max = i32::MAX.to_be_bytes();
    // u32::MAX as a varint: length + 1, so 2^32 - 2 elements.
    let compact = [0xff, 0xff, 0xff, 0xff, 0x0f];
    let cases: Vec<Vec<u8>> = vec![
        huge_array_frame(ApiKey::Metadata, 4, &[], &max),
        huge_array_frame(ApiKey::Metadata, 12, &[], &compact),
        huge_array_frame(ApiKey::Produce, 7, &[0xff, 0xff, 0, 1, 0, 0, 0, 1], &max),
        huge_array_frame(ApiKey::Produce, 9, &[0, 0, 1, 0, 0, 0, 1], &compact),
        huge_array_frame(ApiKey::DescribeLogDirs, 1, &[], &max),
        huge_array_frame(ApiKey::CreateTopics, 4, &[], &max),
        huge_array_frame(ApiKey::DeleteTopics, 3, &[], &max),
        huge_array_frame(ApiKey::DescribeConfigs, 4, &[], &compact),
        huge_array_frame(ApiKey::Fetch, 11, &[0; 4 * 3 + 1 + 4 * 3], &max),
        huge_array_frame(ApiKey::DescribeGroups, 0, &[], &max),
        huge_array_frame(ApiKey::DeleteGroups, 2, &[], &compact),
        huge_array_frame(ApiKey::ConsumerGroupDescribe, 1, &[], &compact),
        huge_array_frame(ApiKey::ListGroups, 4, &[], &compact),
        // OffsetCommit v2: empty group id, generation, empty member id, retention.
        huge_array_frame(ApiKey::OffsetCommit, 2, &[0; 2 + 4 + 2 + 8], &max),
        // JoinGroup v0: empty group id, session timeout, empty member id and protocol type.
        huge_array_frame(ApiKey::JoinGroup, 0, &[0; 2 + 4 + 2 + 2], &max),
        // OffsetFetch v8: the groups array is the first field.
        huge_array_frame(ApiKey::OffsetFetch, 8, &[], &compact),
        // Replica administration: ElectLeaders v0 and AlterReplicaLogDirs v1 start with
        // their array; the reassignment APIs put a timeout before it.
        huge_array_frame(ApiKey::ElectLeaders, 0, &[], &max),
        huge_array_frame(ApiKey::AlterReplicaLogDirs, 1, &[], &max),
        huge_array_frame(ApiKey::AlterPartitionReassignments, 0, &[0; 4], &compact),
        huge_array_frame(ApiKey::ListPartitionReassignments, 0, &[0; 4], &compact),
    ];
    for frame in cases {
        match check_request(&frame) {
            Err(GuardError::CountTooLarge { count, .. }) => assert!(count >= i32::MAX as u64),
            other => panic!("{other:?} for {frame:02x?}"),
        }
    }
}

#[test]
fn nested_and_string_lengths_beyond_the_frame_are_refused() {
    let valid = frame(ApiKey::Produce, 7, &request(ApiKey::Produce, 7)).to_vec();
    // The records length of the first partition: find the 5-byte records and grow it.
    let records_at = valid
        .windows(9)
        .position(|w| w == [0, 0, 0, 5, 1, 2, 3, 4, 5])
        .expect("records in frame");
    let mut bad = valid.clone();
    bad[records_at..records_at + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    assert!(matches!(
        check_request(&bad),
        Err(GuardError::Truncated { .. })
    ));
    let mut negative = valid;
    negative[records_at..records_at + 4].copy_from_slice(&(-7i32).to_be_bytes());
    assert!(matches!(
        check_request(&negative),
        Err(GuardError::NegativeLength { .. })
    ));
}

#[test]
fn every_truncation_of_a_valid_frame_is_refused() {
    for frame in valid_frames() {
        for len in 0..frame.len() {
            let cut = &frame[..len];
            assert!(
                check_request(cut).is_err(),
                "{len} of {} bytes",
                frame.len()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random byte changes, insertions and truncations of valid frames: whenever the
    /// guard accepts, every array it saw fits in the frame, and the decoder (which then
    /// runs, as in the connection) stops exactly where the guard did. The decoder running
    /// at all is the other half: an unguarded huge count would abort this test process.
    #[test]
    fn mutated_frames_never_reach_the_decoder_with_impossible_counts(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let frames = valid_frames();
        let mut frame = frames[pick.index(frames.len())].to_vec();
        for (at, byte, op) in edits {
            // Keep the api key and version: mutate what the shape walk reads.
            let at = 4 + at.index(frame.len() - 4);
            match op {
                0 => frame[at] = byte,
                1 => frame.insert(at, byte),
                _ => frame[at] = 0xff,
            }
        }
        if truncate {
            frame.truncate(cut.index(frame.len() + 1));
        }
        if let Ok(walked) = check_request(&frame) {
            prop_assert!(walked.count_max <= frame.len() as u64);
            let frame = Bytes::from(frame);
            if let Ok(left) = decode(&frame) {
                prop_assert_eq!(frame.len() - left, walked.consumed);
            }
        }
    }

    /// Arbitrary bytes after a real (key, version) prefix.
    #[test]
    fn arbitrary_bodies_are_walked_safely(
        pick in any::<prop::sample::Index>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let all = every_supported();
        let (key, version) = all[pick.index(all.len())];
        let mut frame = Vec::new();
        frame.extend_from_slice(&(key as i16).to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&body);
        if let Ok(walked) = check_request(&frame) {
            prop_assert!(walked.count_max <= frame.len() as u64);
            let frame = Bytes::from(frame);
            if let Ok(left) = decode(&frame) {
                prop_assert_eq!(frame.len() - left, walked.consumed);
            }
        }
    }
}

#[test]
fn admin_api_counts_and_cursor_markers_are_walked_as_the_decoder_reads_them() {
    let compact = [0xff, 0xff, 0xff, 0xff, 0x0f];
    for key in [ApiKey::DescribeTopicPartitions, ApiKey::DescribeQuorum] {
        match check_request(&huge_array_frame(key, 0, &[], &compact)) {
            Err(GuardError::CountTooLarge { count, .. }) => assert!(count >= i32::MAX as u64),
            other => panic!("{key:?}: {other:?}"),
        }
    }
    // DescribeTopicPartitions with no topics, a limit, then the cursor's presence marker:
    // the decoder reads a struct only after 1 and null after anything else, and so does
    // the walk (a struct behind any other marker would be trailing bytes, not a cursor).
    for (marker, cursor) in [(1u8, true), (0xff, false), (0, false), (7, false)] {
        let mut frame = huge_array_frame(ApiKey::DescribeTopicPartitions, 0, &[], &[1]);
        frame.truncate(frame.len() - 8);
        frame.extend_from_slice(&100i32.to_be_bytes());
        frame.push(marker);
        if cursor {
            frame.extend_from_slice(&[2, b'a', 0, 0, 0, 3, 0]); // "a", partition 3, no tags
        }
        frame.push(0); // no request tags
        let walked = check_request(&frame).unwrap_or_else(|e| panic!("marker {marker}: {e}"));
        assert_eq!(walked.consumed, frame.len(), "marker {marker}");
        assert_eq!(decode(&Bytes::from(frame)).expect("decodes"), 0);
    }
    // A cursor cut short is refused before the decoder sees it.
    let mut cut = huge_array_frame(ApiKey::DescribeTopicPartitions, 0, &[], &[1]);
    cut.truncate(cut.len() - 8);
    cut.extend_from_slice(&100i32.to_be_bytes());
    cut.extend_from_slice(&[1, 2, b'a', 0]);
    assert!(matches!(
        check_request(&cut),
        Err(GuardError::Truncated { .. })
    ));
}
