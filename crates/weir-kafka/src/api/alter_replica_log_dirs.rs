//! AlterReplicaLogDirs (v1–2): weir has one log directory, the data directory, reported
//! by DescribeLogDirs as its canonical path. Moving a replica to that directory is where
//! it already is: success, nothing moves. Any other path answers LOG_DIR_NOT_FOUND (Kafka
//! checks the path before the partition); an unknown topic or partition in the one
//! directory answers UNKNOWN_TOPIC_OR_PARTITION. As in Kafka, a partition named under
//! several paths is answered once, for the last of them, and results are grouped by topic.

use std::collections::HashMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, RequestHeader, TopicName,
};

use super::Context;
use crate::errors::{NONE, UNKNOWN_TOPIC_OR_PARTITION};

const LOG_DIR_NOT_FOUND: i16 = ResponseError::LogDirNotFound.code();

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let dir = context.broker.data_dir();
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    // The name DescribeLogDirs reports, and the directory as configured.
    let names = [canonical.display().to_string(), dir.display().to_string()];
    // (topic, partition) -> whether the last path named for it is weir's log dir.
    let mut wanted: HashMap<(TopicName, i32), bool> = HashMap::new();
    // Topics in order of first appearance, each with its partitions in that order.
    let mut order: Vec<(TopicName, Vec<i32>)> = Vec::new();
    let mut topic_index: HashMap<TopicName, usize> = HashMap::new();
    for entry in request.dirs {
        let ours = names.iter().any(|n| n.as_str() == entry.path.as_str());
        for topic in entry.topics {
            let slot = *topic_index.entry(topic.name.clone()).or_insert_with(|| {
                order.push((topic.name.clone(), Vec::new()));
                order.len() - 1
            });
            for partition in topic.partitions {
                let key = (topic.name.clone(), partition);
                if wanted.insert(key, ours).is_none()
                    && let Some((_, partitions)) = order.get_mut(slot)
                {
                    partitions.push(partition);
                }
            }
        }
    }
    let results = order
        .into_iter()
        .map(|(name, partitions)| {
            let info = context.broker.topic(name.as_str());
            let partitions = partitions
                .into_iter()
                .map(|p| {
                    let ours = wanted.get(&(name.clone(), p)).copied().unwrap_or(false);
                    let exists = info
                        .as_ref()
                        .is_some_and(|i| (0..i.partitions).contains(&p));
                    let code = if !ours {
                        LOG_DIR_NOT_FOUND
                    } else if !exists {
                        UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        NONE
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            AlterReplicaLogDirTopicResult::default()
                .with_topic_name(name)
                .with_partitions(partitions)
        })
        .collect();
    AlterReplicaLogDirsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };
    use kafka_protocol::protocol::StrBytes;
    use weir_core::TopicId;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::super::metadata::topic_name;
    use super::*;

    fn dir(path: String, topics: Vec<(&str, Vec<i32>)>) -> AlterReplicaLogDir {
        AlterReplicaLogDir::default()
            .with_path(StrBytes::from_string(path))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        AlterReplicaLogDirTopic::default()
                            .with_name(topic_name(name))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    #[test]
    fn the_one_log_dir_succeeds_and_other_paths_are_not_found() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let context = context(tmp.path());
        context
            .broker
            .create_topic("m", TopicId([8; 16]), 2, &[], false)
            .expect("create");
        let canonical = std::fs::canonicalize(tmp.path())
            .expect("canonical")
            .display()
            .to_string();
        for version in versions(ApiKey::AlterReplicaLogDirs) {
            let request = AlterReplicaLogDirsRequest::default().with_dirs(vec![
                dir(
                    canonical.clone(),
                    vec![("m", vec![0, 1, 2]), ("missing", vec![0])],
                ),
                dir(
                    "/elsewhere".to_string(),
                    vec![("m", vec![1]), ("other", vec![3])],
                ),
            ]);
            let response = handle(&context, &header(version), request);
            assert_encodes(&response, version);
            let codes: Vec<(String, Vec<(i32, i16)>)> = response
                .results
                .iter()
                .map(|t| {
                    (
                        t.topic_name.as_str().to_string(),
                        t.partitions
                            .iter()
                            .map(|p| (p.partition_index, p.error_code))
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(
                codes,
                vec![
                    // m-1 was named again under another path: the last path wins.
                    (
                        "m".to_string(),
                        vec![
                            (0, NONE),
                            (1, LOG_DIR_NOT_FOUND),
                            (2, UNKNOWN_TOPIC_OR_PARTITION)
                        ]
                    ),
                    ("missing".to_string(), vec![(0, UNKNOWN_TOPIC_OR_PARTITION)]),
                    ("other".to_string(), vec![(3, LOG_DIR_NOT_FOUND)]),
                ]
            );
        }
        // The directory as configured names the same log dir.
        let as_configured = tmp.path().display().to_string();
        let request = AlterReplicaLogDirsRequest::default()
            .with_dirs(vec![dir(as_configured, vec![("m", vec![0])])]);
        let response = handle(&context, &header(2), request);
        assert_eq!(response.results[0].partitions[0].error_code, NONE);
        // Nothing moved: the partition is still where DescribeLogDirs says.
        assert_eq!(context.broker.topic("m").map(|t| t.partitions), Some(2));
    }
}
