//! DescribeLogDirs (v1–4): weir's one log directory (the data directory) and the size of
//! each partition in it, for all topics or the partitions asked for. Nothing is ever being
//! moved between directories, so every offset lag is 0 and no replica is a future one.
//! Volume sizes (v4) are reported as unknown (-1).

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use weir_core::TopicInfo;
use weir_storage::store::TopicPartition;

use super::Context;
use super::metadata::topic_name;
use crate::errors::{KAFKA_STORAGE_ERROR, NONE};

/// A volume size nobody measured (Kafka's default for `total_bytes` / `usable_bytes`).
const BYTES_UNKNOWN: i64 = -1;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    // (topic, partitions asked for: None = all of them)
    let wanted: Vec<(TopicInfo, Option<Vec<i32>>)> = match request.topics {
        None => context
            .broker
            .topics()
            .into_iter()
            .map(|t| (t, None))
            .collect(),
        // Topics this node does not hold are left out, as Kafka does.
        Some(topics) => topics
            .into_iter()
            .filter_map(|t| {
                let info = context.broker.topic(t.topic.as_str())?;
                Some((info, Some(t.partitions)))
            })
            .collect(),
    };
    let mut error_code = NONE;
    let mut topics = Vec::with_capacity(wanted.len());
    for (info, partitions) in wanted {
        let indexes: Vec<i32> = match partitions {
            None => (0..info.partitions).collect(),
            Some(list) => list
                .into_iter()
                .filter(|p| (0..info.partitions).contains(p))
                .collect(),
        };
        let mut described = Vec::with_capacity(indexes.len());
        for index in indexes {
            let id = TopicPartition::new(info.name.clone(), index);
            let size = match context.broker.partition_size_bytes(&id) {
                Ok(Some(bytes)) => i64::try_from(bytes).unwrap_or(i64::MAX),
                // Deleted since the topic was listed.
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(partition = %id, error = %e, "reading a partition's size failed");
                    error_code = KAFKA_STORAGE_ERROR;
                    continue;
                }
            };
            described.push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(index)
                    .with_partition_size(size)
                    .with_offset_lag(0)
                    .with_is_future_key(false),
            );
        }
        topics.push(
            DescribeLogDirsTopic::default()
                .with_name(topic_name(&info.name))
                .with_partitions(described),
        );
    }
    let dir = context.broker.data_dir();
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let result = DescribeLogDirsResult::default()
        .with_error_code(error_code)
        .with_log_dir(StrBytes::from_string(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(BYTES_UNKNOWN)
        .with_usable_bytes(BYTES_UNKNOWN);
    DescribeLogDirsResponse::default()
        .with_error_code(NONE)
        .with_results(vec![result])
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use weir_core::TopicId;
    use weir_storage::batch::BatchBuilder;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;

    #[test]
    fn reports_the_data_dir_and_partition_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for (name, id) in [("a", 1u8), ("b", 2)] {
            context
                .broker
                .create_topic(name, TopicId([id; 16]), 2, &[], false)
                .expect("create");
        }
        let mut builder = BatchBuilder::new(0, 1);
        builder.push(1, None, Some(b"value"), &[]);
        let batch = builder.build();
        context
            .broker
            .append(&TopicPartition::new("a", 1), &batch, 0)
            .expect("append");
        for version in versions(ApiKey::DescribeLogDirs) {
            let response = handle(
                &context,
                &header(version),
                DescribeLogDirsRequest::default().with_topics(None),
            );
            assert_encodes(&response, version);
            let result = &response.results[0];
            assert_eq!(result.error_code, NONE);
            let canonical = std::fs::canonicalize(dir.path()).expect("canonical");
            assert_eq!(result.log_dir.as_str(), canonical.display().to_string());
            assert_eq!(result.topics.len(), 2);
            let a = &result.topics[0];
            assert_eq!(a.name.as_str(), "a");
            assert_eq!(a.partitions[0].partition_size, 0);
            assert_eq!(a.partitions[1].partition_size, batch.len() as i64);
        }
        let some = DescribeLogDirsRequest::default().with_topics(Some(vec![
            DescribableLogDirTopic::default()
                .with_topic(topic_name("a"))
                .with_partitions(vec![1, 5]),
            DescribableLogDirTopic::default()
                .with_topic(topic_name("missing"))
                .with_partitions(vec![0]),
        ]));
        let response = handle(&context, &header(4), some);
        let topics = &response.results[0].topics;
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].partitions.len(), 1);
        assert_eq!(topics[0].partitions[0].partition_index, 1);
    }
}
