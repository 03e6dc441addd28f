//! Produce (v3–11): appends each partition's record batch, as the producer sent it, to the
//! partition log. The store validates the batch (CRC, framing, every codec, size against
//! `max.message.bytes`) and stamps offsets (and LogAppendTime when the topic asks).
//!
//! - Unknown topics are auto-created when `auto.create.topics.enable` is on, and the
//!   produce then succeeds (Kafka itself only creates on Metadata; clients accept both).
//! - v3+ carries exactly one batch per partition; anything else is INVALID_RECORD.
//! - acks 0: no response, the connection is closed if any partition failed (so the
//!   producer notices); acks 1: answer once appended; acks −1: answer once the append is
//!   durable under the topic's flush policy — every partition's append is started first,
//!   then their fsync waits are awaited together, never blocking the task on an fsync.
//! - Batches with a producer id (idempotent producers, ids from InitProducerId) are checked
//!   by the store under the partition lock: a retry of one of the producer's last 5
//!   batches answers the original base offset and appends nothing; a gap is
//!   OUT_OF_ORDER_SEQUENCE_NUMBER, a stale epoch INVALID_PRODUCER_EPOCH, an unknown
//!   producer not starting at sequence 0 UNKNOWN_PRODUCER_ID (`errors::store_code`).
//! - A transactional batch is accepted only when its producer's transaction (by producer id
//!   and epoch) is Ongoing and includes the partition (AddPartitionsToTxn came first);
//!   otherwise INVALID_TXN_STATE, INVALID_PRODUCER_EPOCH (an older epoch) or
//!   INVALID_PRODUCER_ID_MAPPING (no transactional id has that producer id). An accepted
//!   batch outside a transaction would open one that no marker ever closes, holding every
//!   read_committed reader of the partition at its first offset.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;
use weir_core::{CoreError, TopicId};
use weir_storage::batch;
use weir_storage::store::{Appended, TopicPartition};
use weir_storage::topic_config::FlushPolicy;
use weir_storage::wal::WalError;

use super::{Context, Outcome};
use crate::errors;
use weir_core::group_log::is_internal_topic;

/// First version with `log_start_offset` in the response.
const LOG_START_OFFSET_VERSION: i16 = 5;
/// First version with a per-partition `error_message` in the response.
const ERROR_MESSAGE_VERSION: i16 = 8;

pub async fn handle(context: &Context, header: &RequestHeader, request: ProduceRequest) -> Outcome {
    let version = header.request_api_version;
    let acks = request.acks;
    // Kafka accepts acks 0, 1 and -1 (all) only.
    if !(-1..=1).contains(&acks) {
        let response = refuse_all(&request, errors::INVALID_REQUIRED_ACKS, version);
        return Outcome::Respond(Box::new(ResponseKind::Produce(response)));
    }
    let now_ms = now_ms();
    let mut failed = false;
    let mut durability: Vec<DurabilityWait> = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (topic_slot, topic) in request.topic_data.into_iter().enumerate() {
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for (partition_slot, data) in topic.partition_data.into_iter().enumerate() {
            let result = produce_partition(context, &topic.name, data.index, data.records, now_ms);
            let response = match result {
                Ok(appended) => {
                    if acks == -1 && appended.flush == FlushPolicy::Sync {
                        let (tx, rx) = oneshot::channel();
                        context.broker.store().on_durable(
                            &appended,
                            Box::new(move |r| {
                                let _ = tx.send(r);
                            }),
                        );
                        durability.push(DurabilityWait {
                            topic_slot,
                            partition_slot,
                            done: rx,
                        });
                    }
                    success(data.index, &appended, version)
                }
                Err(refusal) => {
                    failed = true;
                    tracing::debug!(
                        topic = %topic.name.0, partition = data.index,
                        code = refusal.code, reason = %refusal.message, "produce refused"
                    );
                    failure(data.index, refusal, version)
                }
            };
            partitions.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return if failed {
            Outcome::Close
        } else {
            Outcome::NoResponse
        };
    }
    // The appends are all in flight: awaiting them one after another waits as long as the
    // slowest, and the WAL's group commit covers them with as few fsyncs as it can.
    for wait in durability {
        let outcome = match wait.done.await {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "the write-ahead log closed before the append was durable".to_string(),
        };
        tracing::warn!(error = %outcome, "acks=-1 produce not made durable");
        if let Some(slot) = responses
            .get_mut(wait.topic_slot)
            .and_then(|t| t.partition_responses.get_mut(wait.partition_slot))
        {
            let refusal = Refusal {
                code: errors::KAFKA_STORAGE_ERROR,
                message: outcome,
            };
            *slot = failure(slot.index, refusal, version);
        }
    }
    let response = ProduceResponse::default().with_responses(responses);
    Outcome::Respond(Box::new(ResponseKind::Produce(response)))
}

/// An acks=-1 append to a `sync` topic, waiting for the fsync that covers it; the slots
/// say which partition response it belongs to.
struct DurabilityWait {
    topic_slot: usize,
    partition_slot: usize,
    done: oneshot::Receiver<Result<(), WalError>>,
}

/// Why a partition's records were not appended: the Kafka error code and a message for
/// clients that show one (v8+).
struct Refusal {
    code: i16,
    message: String,
}

impl Refusal {
    fn new(code: i16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn core(error: &CoreError) -> Self {
        Self::new(errors::code(error), error.to_string())
    }
}

fn produce_partition(
    context: &Context,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
    now_ms: i64,
) -> Result<Appended, Refusal> {
    if !context.topic_allowed(topic, weir_core::acl::Operation::Write) {
        return Err(Refusal::new(
            errors::TOPIC_AUTHORIZATION_FAILED,
            format!("not authorized to write to topic {topic}"),
        ));
    }
    let records = records.unwrap_or_default();
    if let Some((producer_id, epoch)) = check_one_batch(&records)? {
        context
            .txns
            .check_produce(producer_id, epoch, topic, partition)
            .map_err(|code| {
                Refusal::new(
                    code,
                    "transactional batch: the partition is not in the producer's ongoing transaction",
                )
            })?;
    }
    let broker = &context.broker;
    if is_internal_topic(topic) {
        // Kafka: only the coordinator writes its internal topics.
        return Err(Refusal::new(
            errors::INVALID_TOPIC_EXCEPTION,
            format!("cannot append to internal topic {topic}"),
        ));
    }
    let id = TopicPartition::new(topic, partition);
    match broker.append(&id, &records, now_ms) {
        Err(CoreError::UnknownPartition(_)) if broker.topic(topic).is_none() => {
            let new_id = TopicId(*uuid::Uuid::new_v4().as_bytes());
            match broker.topic_or_auto_create(topic, new_id) {
                Ok(Some(created)) if (0..created.partitions).contains(&partition) => broker
                    .append(&id, &records, now_ms)
                    .map_err(|e| Refusal::core(&e)),
                Ok(_) => Err(Refusal::new(
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("unknown topic or partition {id}"),
                )),
                Err(error) => Err(Refusal::core(&error)),
            }
        }
        other => other.map_err(|e| Refusal::core(&e)),
    }
}

/// Produce v3+ carries exactly one record batch per partition (Kafka's
/// `ProduceRequest.validateRecords`). Only the headers are walked here; the store checks the
/// batch itself. Returns the producer id and epoch of a transactional batch.
fn check_one_batch(records: &[u8]) -> Result<Option<(i64, i16)>, Refusal> {
    let mut walk = batch::headers(records);
    match (walk.next(), walk.next()) {
        (None, _) => Err(Refusal::new(
            errors::INVALID_RECORD,
            "produce v3+ needs exactly one record batch per partition; none was sent",
        )),
        (Some(Ok(_)), Some(Ok(_))) => Err(Refusal::new(
            errors::INVALID_RECORD,
            "produce v3+ needs exactly one record batch per partition; more were sent",
        )),
        (Some(Ok(_)), Some(Err(error))) => Err(Refusal::new(
            errors::CORRUPT_MESSAGE,
            format!("bytes after the record batch: {error}"),
        )),
        (Some(Ok((_, header))), None) if header.is_transactional() => {
            Ok(Some((header.producer_id, header.producer_epoch)))
        }
        // One batch, or a damaged first header that the store's validation reports.
        _ => Ok(None),
    }
}

fn success(index: i32, appended: &Appended, version: i16) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(appended.base_offset)
        .with_log_append_time_ms(appended.log_append_time_ms.unwrap_or(-1));
    if version >= LOG_START_OFFSET_VERSION {
        response.log_start_offset = appended.log_start_offset;
    }
    response
}

fn failure(index: i32, refusal: Refusal, version: i16) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(refusal.code)
        .with_base_offset(-1);
    if version >= ERROR_MESSAGE_VERSION {
        response.error_message = Some(StrBytes::from_string(refusal.message));
    }
    response
}

/// Every partition of the request answered with `code` (a request-wide problem).
fn refuse_all(request: &ProduceRequest, code: i16, version: i16) -> ProduceResponse {
    let responses = request
        .topic_data
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_data
                .iter()
                .map(|p| failure(p.index, Refusal::new(code, "request refused"), version))
                .collect();
            TopicProduceResponse::default()
                .with_name(topic.name.clone())
                .with_partition_responses(partitions)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

/// Wall-clock milliseconds: the append time the store stamps (the front end reads the
/// clock, the store takes time as an argument).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Helpers for the data-path tests (produce, fetch, list offsets, delete records): a real
/// broker in a temporary directory and requests built the way clients build them.
#[cfg(test)]
pub(crate) mod testing {

    use bytes::Bytes;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        ProduceRequest, ProduceResponse, RequestHeader, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    use weir_core::{BrokerConfig, TopicId};
    use weir_storage::batch::BatchBuilder;

    use crate::api::{Context, Outcome};

    pub struct Harness {
        pub context: Context,
        _dir: tempfile::TempDir,
    }

    pub fn harness_with(config: BrokerConfig) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = crate::api::metadata::testing::context_with(dir.path(), config);
        Harness { context, _dir: dir }
    }

    pub fn harness() -> Harness {
        harness_with(BrokerConfig::default())
    }

    impl Harness {
        pub fn create(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) -> TopicId {
            let id = TopicId(*uuid::Uuid::new_v4().as_bytes());
            let configs: Vec<(String, String)> = configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.context
                .broker
                .create_topic(name, id, partitions, &configs, false)
                .expect("create topic");
            id
        }

        /// Produces one batch of `values` (timestamps as given) with acks=-1 at `version`.
        pub async fn produce(
            &self,
            topic: &str,
            partition: i32,
            records: &[(i64, &[u8])],
            version: i16,
        ) -> ProduceResponse {
            let request = produce_request(topic, partition, Some(batch(records)), -1);
            match super::handle(&self.context, &header(version), request).await {
                Outcome::Respond(response) => match *response {
                    ResponseKind::Produce(response) => response,
                    other => panic!("not a produce response: {other:?}"),
                },
                Outcome::NoResponse | Outcome::Close => panic!("acks=-1 must respond"),
            }
        }
    }

    pub fn header(version: i16) -> RequestHeader {
        RequestHeader::default().with_request_api_version(version)
    }

    pub fn topic_name(name: &str) -> TopicName {
        TopicName(StrBytes::from_string(name.to_string()))
    }

    /// One v2 batch, as a producer builds it (base offset 0).
    pub fn batch(records: &[(i64, &[u8])]) -> Bytes {
        let first = records.first().map_or(0, |r| r.0);
        let mut builder = BatchBuilder::new(0, first);
        for (timestamp, value) in records {
            builder.push(*timestamp, Some(b"key"), Some(value), &[("h", Some(b"1"))]);
        }
        Bytes::from(builder.build())
    }

    pub fn produce_request(
        topic: &str,
        partition: i32,
        records: Option<Bytes>,
        acks: i16,
    ) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(records),
                    ]),
            ])
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use weir_core::BrokerConfig;

    async fn respond(h: &Harness, request: ProduceRequest, version: i16) -> ProduceResponse {
        let response = match handle(&h.context, &header(version), request).await {
            Outcome::Respond(response) => match *response {
                ResponseKind::Produce(response) => response,
                other => panic!("not a produce response: {other:?}"),
            },
            Outcome::NoResponse => panic!("no response"),
            Outcome::Close => panic!("closed"),
        };
        // Every answer must encode at the version asked.
        let mut buf = bytes::BytesMut::new();
        kafka_protocol::protocol::Encodable::encode(&response, &mut buf, version).expect("encodes");
        response
    }

    fn only(response: &ProduceResponse) -> &PartitionProduceResponse {
        assert_eq!(response.responses.len(), 1);
        let partitions = &response.responses[0].partition_responses;
        assert_eq!(partitions.len(), 1);
        &partitions[0]
    }

    #[tokio::test]
    async fn appends_get_consecutive_offsets_and_the_log_start() {
        let h = harness();
        h.create("t", 2, &[]);
        let first = h.produce("t", 1, &[(10, b"a"), (11, b"b")], 9).await;
        let p = only(&first);
        assert_eq!((p.index, p.error_code, p.base_offset), (1, 0, 0));
        assert_eq!((p.log_append_time_ms, p.log_start_offset), (-1, 0));
        let second = h.produce("t", 1, &[(12, b"c")], 9).await;
        assert_eq!(only(&second).base_offset, 2);
        // Below v5 the log start offset is not part of the response.
        let old = h.produce("t", 0, &[(12, b"c")], 3).await;
        assert_eq!(only(&old).log_start_offset, -1);
    }

    #[tokio::test]
    async fn every_version_answers_and_encodes() {
        let h = harness();
        h.create("t", 1, &[]);
        for (n, version) in (3..=11).enumerate() {
            let request = produce_request("t", 0, Some(batch(&[(1, b"a")])), 1);
            let response = respond(&h, request, version).await;
            let p = only(&response);
            assert_eq!((p.error_code, p.base_offset), (0, n as i64), "v{version}");
            let refused = respond(&h, produce_request("t", 9, None, 1), version).await;
            assert_ne!(only(&refused).error_code, 0, "v{version}");
        }
    }

    #[tokio::test]
    async fn log_append_time_topics_answer_with_the_append_time() {
        let h = harness();
        h.create("lat", 1, &[("message.timestamp.type", "LogAppendTime")]);
        let before = now_ms();
        let response = h.produce("lat", 0, &[(1, b"a")], 7).await;
        let stamped = only(&response).log_append_time_ms;
        assert!(stamped >= before && stamped <= now_ms(), "{stamped}");
    }

    /// One request for partitions 0..n of `topic`, one batch each.
    fn request_for_partitions(topic: &str, n: i32, acks: i16) -> ProduceRequest {
        use kafka_protocol::messages::produce_request::PartitionProduceData;
        let mut request = produce_request(topic, 0, None, acks);
        request.topic_data[0].partition_data = (0..n)
            .map(|p| {
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(batch(&[(1, b"a")])))
            })
            .collect();
        request
    }

    #[tokio::test]
    async fn sync_topics_answer_acks_all_after_the_fsync() {
        let h = harness();
        h.create("s", 3, &[("flush.policy", "sync")]);
        let response = respond(&h, request_for_partitions("s", 3, -1), 9).await;
        let partitions = &response.responses[0].partition_responses;
        assert_eq!(partitions.len(), 3);
        assert!(
            partitions
                .iter()
                .all(|p| p.error_code == 0 && p.base_offset == 0)
        );
        let stats = h.context.broker.store().wal().stats();
        assert!(stats.written_index.is_some());
        assert!(
            stats.synced_index >= stats.written_index,
            "answered before the fsync: {stats:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_fsync_is_a_storage_error_for_acks_all() {
        let h = harness();
        h.create("s", 2, &[("flush.policy", "sync")]);
        h.context.broker.store().wal().fail_next_fsync();
        let response = respond(&h, request_for_partitions("s", 2, -1), 9).await;
        for p in &response.responses[0].partition_responses {
            assert_eq!(p.error_code, errors::KAFKA_STORAGE_ERROR, "{p:?}");
        }
    }

    #[tokio::test]
    async fn unknown_topics_are_auto_created_unless_disabled() {
        let h = harness();
        let response = h.produce("fresh", 3, &[(1, b"a")], 9).await;
        assert_eq!(only(&response).error_code, 0);
        assert_eq!(
            h.context.broker.topic("fresh").expect("created").partitions,
            4
        );
        // A partition the new topic does not have.
        let response = h.produce("fresh2", 4, &[(1, b"a")], 9).await;
        assert_eq!(
            only(&response).error_code,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );

        let off = harness_with(BrokerConfig {
            auto_create_topics: false,
            ..BrokerConfig::default()
        });
        let response = off.produce("fresh", 0, &[(1, b"a")], 9).await;
        let p = only(&response);
        assert_eq!(p.error_code, errors::UNKNOWN_TOPIC_OR_PARTITION);
        assert!(p.error_message.is_some(), "v8+ carries a message");
        assert!(off.context.broker.topic("fresh").is_none());
    }

    #[tokio::test]
    async fn exactly_one_batch_per_partition() {
        let h = harness();
        h.create("t", 1, &[]);
        let one = batch(&[(1, b"a")]);
        let mut two = one.to_vec();
        two.extend_from_slice(&one);
        for records in [None, Some(Bytes::new()), Some(Bytes::from(two))] {
            let response = respond(&h, produce_request("t", 0, records, 1), 9).await;
            assert_eq!(only(&response).error_code, errors::INVALID_RECORD);
        }
        let mut trailing = one.to_vec();
        trailing.extend_from_slice(&[0; 5]);
        let response = respond(&h, produce_request("t", 0, Some(trailing.into()), 1), 9).await;
        assert_eq!(only(&response).error_code, errors::CORRUPT_MESSAGE);
        let offsets = h
            .context
            .broker
            .store()
            .offsets(&TopicPartition::new("t", 0));
        assert_eq!(
            offsets.expect("offsets").log_end_offset,
            0,
            "nothing appended"
        );
    }

    #[tokio::test]
    async fn damaged_and_oversized_batches_are_refused_per_partition() {
        let h = harness();
        h.create("t", 1, &[("max.message.bytes", "2000")]);
        let mut damaged = batch(&[(1, b"a")]).to_vec();
        let last = damaged.len() - 1;
        damaged[last] ^= 0xff;
        let response = respond(&h, produce_request("t", 0, Some(damaged.into()), 1), 9).await;
        assert_eq!(only(&response).error_code, errors::CORRUPT_MESSAGE);
        let big = vec![7u8; 4000];
        let response = h.produce("t", 0, &[(1, &big)], 9).await;
        assert_eq!(only(&response).error_code, errors::MESSAGE_TOO_LARGE);
        let fine = h.produce("t", 0, &[(1, b"ok")], 9).await;
        assert_eq!((only(&fine).error_code, only(&fine).base_offset), (0, 0));
    }

    #[tokio::test]
    async fn acks_zero_sends_nothing_and_closes_on_failure() {
        let h = harness();
        h.create("t", 1, &[]);
        let ok = produce_request("t", 0, Some(batch(&[(1, b"a")])), 0);
        assert!(matches!(
            handle(&h.context, &header(9), ok).await,
            Outcome::NoResponse
        ));
        let bad = produce_request("t", 7, Some(batch(&[(1, b"a")])), 0);
        assert!(matches!(
            handle(&h.context, &header(9), bad).await,
            Outcome::Close
        ));
        let offsets = h
            .context
            .broker
            .store()
            .offsets(&TopicPartition::new("t", 0));
        assert_eq!(offsets.expect("offsets").log_end_offset, 1);
    }

    #[tokio::test]
    async fn other_acks_values_are_refused() {
        let h = harness();
        h.create("t", 1, &[]);
        let request = produce_request("t", 0, Some(batch(&[(1, b"a")])), 2);
        let response = respond(&h, request, 9).await;
        assert_eq!(only(&response).error_code, errors::INVALID_REQUIRED_ACKS);
        let offsets = h
            .context
            .broker
            .store()
            .offsets(&TopicPartition::new("t", 0));
        assert_eq!(offsets.expect("offsets").log_end_offset, 0);
    }

    /// `batch(records)` from producer `pid` at `epoch`, first sequence `seq`.
    fn idempotent(records: &[(i64, &[u8])], pid: i64, epoch: i16, seq: i32) -> Bytes {
        let mut builder = weir_storage::batch::BatchBuilder::new(0, 0);
        builder.producer_id = pid;
        builder.producer_epoch = epoch;
        builder.base_sequence = seq;
        for (timestamp, value) in records {
            builder.push(*timestamp, None, Some(value), &[]);
        }
        Bytes::from(builder.build())
    }

    #[tokio::test]
    async fn idempotent_retries_answer_the_original_offset() {
        let h = harness();
        h.create("t", 1, &[]);
        let records: &[(i64, &[u8])] = &[(1, b"a"), (2, b"b")];
        for (seq, expected) in [(0, 0), (2, 2)] {
            let request = produce_request("t", 0, Some(idempotent(records, 7, 0, seq)), -1);
            let p = only(&respond(&h, request, 9).await).clone();
            assert_eq!((p.error_code, p.base_offset), (errors::NONE, expected));
        }
        let retry = produce_request("t", 0, Some(idempotent(records, 7, 0, 0)), -1);
        let p = only(&respond(&h, retry, 9).await).clone();
        assert_eq!((p.error_code, p.base_offset), (errors::NONE, 0));
        let id = TopicPartition::new("t", 0);
        let offsets = h.context.broker.store().offsets(&id).expect("offsets");
        assert_eq!(offsets.log_end_offset, 4, "the retry appended nothing");
    }

    #[tokio::test]
    async fn sequence_and_epoch_errors_are_per_partition_codes() {
        let h = harness();
        h.create("t", 1, &[]);
        let records: &[(i64, &[u8])] = &[(1, b"a")];
        let send = |pid, epoch, seq| {
            produce_request("t", 0, Some(idempotent(records, pid, epoch, seq)), -1)
        };
        assert_eq!(
            only(&respond(&h, send(7, 1, 0), 9).await).error_code,
            errors::NONE
        );
        let gap = respond(&h, send(7, 1, 5), 9).await;
        assert_eq!(only(&gap).error_code, errors::OUT_OF_ORDER_SEQUENCE_NUMBER);
        assert!(only(&gap).error_message.is_some());
        let stale = respond(&h, send(7, 0, 1), 9).await;
        assert_eq!(only(&stale).error_code, errors::INVALID_PRODUCER_EPOCH);
        let unknown = respond(&h, send(8, 0, 3), 9).await;
        assert_eq!(only(&unknown).error_code, errors::UNKNOWN_PRODUCER_ID);
        assert_eq!(only(&unknown).base_offset, -1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transactional_batches_need_the_partition_in_an_ongoing_transaction() {
        use weir_core::txn::{
            Answer, InitProducerId, Producer, TopicPartition as TxnTp, TxnResult,
        };
        let h = harness();
        h.create("t", 2, &[]);
        let batch = |producer_id: i64, epoch: i16, sequence: i32| {
            let mut builder = weir_storage::batch::BatchBuilder::new(0, 0);
            builder.producer_id = producer_id;
            builder.producer_epoch = epoch;
            builder.base_sequence = sequence;
            builder.attributes |= 0x10; // the transactional bit
            builder.push(1, None, Some(b"in a transaction"), &[]);
            Some(Bytes::from(builder.build()))
        };
        let unknown = respond(&h, produce_request("t", 0, batch(7, 0, 0), -1), 9).await;
        assert_eq!(only(&unknown).error_code, 49, "INVALID_PRODUCER_ID_MAPPING");
        let id = TopicPartition::new("t", 0);
        let offsets = h.context.broker.store().offsets(&id).expect("offsets");
        assert_eq!(offsets.log_end_offset, 0, "nothing was appended");

        let txns = &h.context.txns;
        let init = InitProducerId {
            transactional_id: "tx".to_string(),
            timeout_ms: 60_000,
            current: None,
            producer_fenced_supported: true,
        };
        let Ok(Answer::ProducerId { producer_id, epoch }) = txns
            .call(|c, ticket, allocate, now| c.init_producer_id(&init, ticket, allocate, now))
            .await
        else {
            panic!("InitProducerId failed");
        };
        // Not yet added: refused.
        let early = respond(
            &h,
            produce_request("t", 0, batch(producer_id, epoch, 0), -1),
            9,
        )
        .await;
        assert_eq!(only(&early).error_code, errors::INVALID_TXN_STATE);
        let producer = Producer {
            producer_id,
            epoch,
            producer_fenced_supported: true,
        };
        let added = txns
            .call(|c, ticket, _, now| {
                c.add_partitions("tx", producer, &[TxnTp::new("t", 0)], ticket, now)
            })
            .await;
        assert_eq!(added, Ok(Answer::Done));
        let ok = respond(
            &h,
            produce_request("t", 0, batch(producer_id, epoch, 0), -1),
            9,
        )
        .await;
        assert_eq!(only(&ok).error_code, errors::NONE);
        let other = respond(
            &h,
            produce_request("t", 1, batch(producer_id, epoch, 0), -1),
            9,
        )
        .await;
        assert_eq!(
            only(&other).error_code,
            errors::INVALID_TXN_STATE,
            "partition not added"
        );
        let offsets = h.context.broker.store().offsets(&id).expect("offsets");
        assert_eq!(offsets.last_stable_offset, 0, "the transaction is open");
        let ended = txns
            .call(|c, ticket, _, now| c.end_txn("tx", producer, TxnResult::Commit, ticket, now))
            .await;
        assert_eq!(ended, Ok(Answer::Done));
        // The marker is written after the answer, on the runner's task.
        let mut lso = 0;
        for _ in 0..10_000 {
            lso = h
                .context
                .broker
                .store()
                .offsets(&id)
                .expect("offsets")
                .last_stable_offset;
            if lso == 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(lso, 2, "record and commit marker are stable");
        let after = respond(
            &h,
            produce_request("t", 0, batch(producer_id, epoch, 1), -1),
            9,
        )
        .await;
        assert_eq!(
            only(&after).error_code,
            errors::INVALID_TXN_STATE,
            "the transaction ended"
        );
    }
}
