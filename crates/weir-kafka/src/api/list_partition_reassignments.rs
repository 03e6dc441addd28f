//! ListPartitionReassignments (v0): Kafka lists only reassignments in progress, and on one
//! node none ever is (AlterPartitionReassignments can only confirm the current replica
//! set), so the answer is always an empty list. Kafka leaves unknown topics and partitions
//! out without an error, and so does weir.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, RequestHeader,
};

use super::Context;
use crate::errors::NONE;

pub fn handle(
    _context: &Context,
    _header: &RequestHeader,
    _request: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
        .with_error_code(NONE)
        .with_error_message(None)
        .with_topics(Vec::new())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use weir_core::TopicId;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::super::metadata::topic_name;
    use super::*;

    #[test]
    fn nothing_is_ever_being_reassigned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        context
            .broker
            .create_topic("l", TopicId([6; 16]), 2, &[], false)
            .expect("create");
        for version in versions(ApiKey::ListPartitionReassignments) {
            for topics in [
                None,
                Some(vec![
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name("l"))
                        .with_partition_indexes(vec![0, 1]),
                    ListPartitionReassignmentsTopics::default()
                        .with_name(topic_name("missing"))
                        .with_partition_indexes(vec![0]),
                ]),
            ] {
                let request = ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(1000)
                    .with_topics(topics);
                let response = handle(&context, &header(version), request);
                assert_encodes(&response, version);
                assert_eq!(response.error_code, NONE);
                assert!(response.topics.is_empty());
            }
        }
    }
}
