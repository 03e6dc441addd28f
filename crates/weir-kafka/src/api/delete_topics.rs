//! DeleteTopics (v1–6): removes each topic and all its data, by name, or (v6) by topic id.
//! A topic that does not exist answers UNKNOWN_TOPIC_OR_PARTITION (by name) or
//! UNKNOWN_TOPIC_ID (by id).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use weir_core::TopicId;
use weir_core::acl::Operation;

use super::Context;
use super::metadata::topic_name;
use crate::errors::{self, INVALID_REQUEST, NONE, UNKNOWN_TOPIC_ID};
use weir_core::group_log::is_internal_topic;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v1–5 fill `topic_names`, v6 `topics`; the codec leaves the other empty.
    let by_name = request
        .topic_names
        .into_iter()
        .map(|name| delete_by_name(context, name.as_str()));
    let by_state = request.topics.into_iter().map(|state| match state.name {
        Some(name) => delete_by_name(context, name.as_str()),
        None => delete_by_id(context, state.topic_id),
    });
    let responses = by_name.chain(by_state).collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

fn delete_by_name(context: &Context, name: &str) -> DeletableTopicResult {
    let result = DeletableTopicResult::default().with_name(Some(topic_name(name)));
    if !context.topic_allowed(name, Operation::Delete) {
        return result
            .with_error_code(errors::TOPIC_AUTHORIZATION_FAILED)
            .with_error_message(Some(StrBytes::from_string(format!(
                "not authorized to delete topic {name}"
            ))));
    }
    if is_internal_topic(name) {
        // The coordinator's state lives there: deleting it would forget every group.
        return result
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(StrBytes::from_static_str(
                "internal topics cannot be deleted",
            )));
    }
    match context.broker.delete_topic(name) {
        Ok(info) => {
            tracing::info!(topic = name, "deleted topic");
            // Its committed offsets go too (tombstones; durable with the next flush).
            let _ = context
                .groups
                .coordinator()
                .topic_deleted(name, crate::groups::now_ms());
            result
                .with_topic_id(Uuid::from_bytes(info.id.0))
                .with_error_code(NONE)
        }
        Err(e) => result
            .with_error_code(errors::code(&e))
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}

fn delete_by_id(context: &Context, id: Uuid) -> DeletableTopicResult {
    let result = DeletableTopicResult::default()
        .with_name(None)
        .with_topic_id(id);
    if id.is_nil() {
        return result
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(StrBytes::from_static_str(
                "neither a topic name nor a topic id",
            )));
    }
    let Some(info) = context.broker.topic_by_id(TopicId(id.into_bytes())) else {
        return result
            .with_error_code(UNKNOWN_TOPIC_ID)
            .with_error_message(Some(StrBytes::from_string(format!("no topic has id {id}"))));
    };
    let mut answer = delete_by_name(context, &info.name);
    answer.topic_id = id;
    answer
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use weir_storage::batch::BatchBuilder;
    use weir_storage::store::TopicPartition;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;
    use crate::errors::UNKNOWN_TOPIC_OR_PARTITION;

    #[test]
    fn deletes_by_name_with_data_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for version in versions(ApiKey::DeleteTopics) {
            context
                .broker
                .create_topic("gone", TopicId([3; 16]), 2, &[], false)
                .expect("create");
            let mut builder = BatchBuilder::new(0, 1);
            builder.push(1, None, Some(b"v"), &[]);
            let id = TopicPartition::new("gone", 1);
            context
                .broker
                .append(&id, &builder.build(), 0)
                .expect("append");
            let request = if version >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![
                    DeleteTopicState::default().with_name(Some(topic_name("gone"))),
                    DeleteTopicState::default().with_name(Some(topic_name("never"))),
                ])
            } else {
                DeleteTopicsRequest::default()
                    .with_topic_names(vec![topic_name("gone"), topic_name("never")])
            };
            let response = handle(&context, &header(version), request);
            assert_encodes(&response, version);
            assert_eq!(response.responses[0].error_code, NONE);
            assert_eq!(response.responses[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
            assert!(context.broker.topic("gone").is_none());
            assert!(context.broker.store().partitions().is_empty());
            assert_eq!(
                context.broker.partition_size_bytes(&id),
                None,
                "data removed"
            );
        }
    }

    #[test]
    fn deletes_by_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let id = TopicId([6; 16]);
        context
            .broker
            .create_topic("by-id", id, 1, &[], false)
            .expect("create");
        let request = DeleteTopicsRequest::default().with_topics(vec![
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(Uuid::from_bytes(id.0)),
            DeleteTopicState::default()
                .with_name(None)
                .with_topic_id(Uuid::from_bytes([1; 16])),
        ]);
        let response = handle(&context, &header(6), request);
        assert_encodes(&response, 6);
        assert_eq!(response.responses[0].error_code, NONE);
        assert_eq!(
            response.responses[0].name.as_ref().map(|n| n.as_str()),
            Some("by-id")
        );
        assert_eq!(response.responses[1].error_code, UNKNOWN_TOPIC_ID);
        assert!(context.broker.topic("by-id").is_none());
    }
}
