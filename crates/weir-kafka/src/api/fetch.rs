//! Fetch (v4–17): reads whole stored batches, as the log holds them, for each requested
//! partition — nothing is decoded or re-encoded on the way out. Record sets of
//! `connection::DEFER_RECORD_BYTES_MIN` and more are not read here at all: the connection
//! streams them from the segment file as it writes the response.
//!
//! - Long poll: while fewer than `min_bytes` are available the request waits for an append
//!   to any of its partitions (listeners are taken before each read, so none is missed) or
//!   for `max_wait_ms` (capped by [`FETCH_WAIT_MS_MAX`]); no polling loop.
//! - Sizing (KIP-74): `max_bytes` for the response and `partition_max_bytes` per partition,
//!   except that the first batch of the first partition with data is sent even when larger;
//!   a fetch offset inside a batch gets the whole batch.
//! - Offsets: OFFSET_OUT_OF_RANGE outside [log start, log end]; exactly at the high
//!   watermark, empty records (empty bytes: librdkafka refuses a null record set).
//! - Isolation: read_uncommitted (0) reads up to the high watermark and answers an empty
//!   AbortedTransactions list; read_committed (1) reads up to the last stable offset and
//!   answers the aborted transactions overlapping the batches returned (marker at or past
//!   the fetch offset, first offset below the end of the returned range), which the client
//!   uses to drop their records. LastStableOffset is reported truthfully either way.
//! - Fetch sessions (KIP-227, v7+) are declined: every response carries session id 0, so
//!   clients keep sending full fetch requests. An incremental request (session epoch other
//!   than 0 or −1) names a session weir never created: FETCH_SESSION_ID_NOT_FOUND.
//! - v13+ names topics by id (UNKNOWN_TOPIC_ID when unknown), older versions by name.
//! - Replica and rack fields are ignored: one node, every partition's leader.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, RequestHeader, TopicName};
use tokio::time::{Duration, Instant};
use weir_core::acl::Operation;
use weir_core::{Broker, TopicId};
use weir_storage::partition::ReadSlice;
use weir_storage::store::{PartitionOffsets, TopicPartition};

use super::Context;
use crate::limits::FETCH_WAIT_MS_MAX;
use crate::{connection, errors};

/// Most bytes of records one response carries, whatever the client asks for: Kafka's
/// broker-side `fetch.max.bytes` default (55 MiB). KIP-74 may add one batch beyond it, and
/// a batch is bounded by the topic's `max.message.bytes`.
const RESPONSE_BYTES_MAX: i32 = 55 * 1024 * 1024;
/// First version that names topics by id instead of by name.
const TOPIC_IDS_VERSION: i16 = 13;
/// Session epochs of a full (sessionless) fetch: INITIAL asks for a session, which weir
/// declines by answering session id 0; FINAL asks for none.
const SESSION_EPOCH_INITIAL: i32 = 0;
const SESSION_EPOCH_FINAL: i32 = -1;
/// Kafka's FETCH_SESSION_ID_NOT_FOUND: an incremental fetch for a session the broker does
/// not hold (weir holds none).
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
/// The request's isolation level that reads only committed data.
const READ_COMMITTED: i8 = 1;

pub async fn handle(
    context: &Context,
    header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    if !matches!(
        request.session_epoch,
        SESSION_EPOCH_INITIAL | SESSION_EPOCH_FINAL
    ) {
        return FetchResponse::default().with_error_code(FETCH_SESSION_ID_NOT_FOUND);
    }
    let broker = &context.broker;
    let targets = resolve(context, &request.topics, header.request_api_version);
    let ids: Vec<TopicPartition> = targets
        .iter()
        .flat_map(|t| t.partitions.iter().filter_map(|p| p.id.clone()))
        .collect();
    let wait_ms = request.max_wait_ms.clamp(0, FETCH_WAIT_MS_MAX);
    let deadline = Instant::now() + Duration::from_millis(u64::from(wait_ms.unsigned_abs()));
    let min_bytes = u64::from(request.min_bytes.max(0).unsigned_abs());
    let max_bytes = u64::from(
        request
            .max_bytes
            .clamp(0, RESPONSE_BYTES_MAX)
            .unsigned_abs(),
    );
    let read_committed = request.isolation_level == READ_COMMITTED;
    loop {
        // Taken before reading: an append after the read still wakes the wait.
        let appends = broker.listen_appends_any(&ids);
        let plan = plan(broker, &targets, max_bytes, read_committed);
        // Kafka answers at once on any error, and when there is nothing to wait for.
        let done = plan.bytes >= min_bytes
            || plan.has_error
            || ids.is_empty()
            || Instant::now() >= deadline;
        if done {
            return respond(targets, plan);
        }
        // On timeout the loop reads once more and answers, deadline being past.
        let _ = tokio::time::timeout_at(deadline, appends).await;
    }
}

/// One requested topic, resolved against the catalog.
struct TopicTarget {
    name: TopicName,
    topic_id: uuid::Uuid,
    partitions: Vec<PartitionTarget>,
}

struct PartitionTarget {
    /// None when the topic or the partition does not exist.
    id: Option<TopicPartition>,
    partition: i32,
    /// The error answered when `id` is None.
    unknown_code: i16,
    fetch_offset: i64,
    partition_max_bytes: i32,
}

/// A topic the requester may not READ resolves as absent, with TOPIC_AUTHORIZATION_FAILED.
fn resolve(context: &Context, topics: &[FetchTopic], version: i16) -> Vec<TopicTarget> {
    let broker = &context.broker;
    topics
        .iter()
        .map(|topic| {
            let (info, unknown_code) = if version >= TOPIC_IDS_VERSION {
                let id = TopicId(*topic.topic_id.as_bytes());
                (broker.topic_by_id(id), errors::UNKNOWN_TOPIC_ID)
            } else {
                (
                    broker.topic(&topic.topic),
                    errors::UNKNOWN_TOPIC_OR_PARTITION,
                )
            };
            let name = info
                .as_ref()
                .map_or(topic.topic.as_str(), |t| t.name.as_str());
            let (info, unknown_code) = if context.topic_allowed(name, Operation::Read) {
                (info, unknown_code)
            } else {
                (None, errors::TOPIC_AUTHORIZATION_FAILED)
            };
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let exists = info
                        .as_ref()
                        .filter(|t| (0..t.partitions).contains(&p.partition));
                    PartitionTarget {
                        id: exists.map(|t| TopicPartition::new(t.name.clone(), p.partition)),
                        partition: p.partition,
                        unknown_code: if info.is_some() {
                            errors::UNKNOWN_TOPIC_OR_PARTITION
                        } else {
                            unknown_code
                        },
                        fetch_offset: p.fetch_offset,
                        partition_max_bytes: p.partition_max_bytes,
                    }
                })
                .collect();
            let name = match &info {
                Some(t) if version >= TOPIC_IDS_VERSION => TopicName(
                    kafka_protocol::protocol::StrBytes::from_string(t.name.clone()),
                ),
                _ => topic.topic.clone(),
            };
            TopicTarget {
                name,
                topic_id: topic.topic_id,
                partitions,
            }
        })
        .collect()
}

/// What one pass over the partitions found: where the data is (not read yet) and how much.
struct Plan {
    /// Per topic, per partition, in request order.
    reads: Vec<Vec<PartitionRead>>,
    bytes: u64,
    has_error: bool,
}

struct PartitionRead {
    code: i16,
    /// Known for every partition that exists, even with an error (e.g. out of range).
    offsets: Option<PartitionOffsets>,
    slice: Option<ReadSlice>,
    /// `None` under read_uncommitted; under read_committed, (producer id, first offset) of
    /// each aborted transaction overlapping `slice`.
    aborted: Option<Vec<(i64, i64)>>,
}

fn plan(broker: &Broker, targets: &[TopicTarget], max_bytes: u64, read_committed: bool) -> Plan {
    let store = broker.store();
    let mut remaining = max_bytes;
    let mut bytes = 0u64;
    let mut has_error = false;
    let mut reads = Vec::with_capacity(targets.len());
    for topic in targets {
        let mut topic_reads = Vec::with_capacity(topic.partitions.len());
        for target in &topic.partitions {
            let Some(id) = &target.id else {
                has_error = true;
                topic_reads.push(PartitionRead {
                    code: target.unknown_code,
                    offsets: None,
                    slice: None,
                    aborted: None,
                });
                continue;
            };
            let limit = u64::from(target.partition_max_bytes.max(0).unsigned_abs()).min(remaining);
            // KIP-74: until some data is in the response, the first batch goes in whatever
            // its size; after that, only what fits.
            let first = bytes == 0;
            let limit_u32 = u32::try_from(limit).unwrap_or(u32::MAX);
            let read = if !first && limit == 0 {
                Ok(None)
            } else if read_committed {
                store
                    .last_stable_offset(id)
                    .and_then(|lso| store.read_bounded(id, target.fetch_offset, lso, limit_u32))
            } else {
                store.read(id, target.fetch_offset, limit_u32)
            };
            let (code, slice) = match read {
                Ok(Some(slice)) if first || slice.len <= limit => (errors::NONE, Some(slice)),
                Ok(_) => (errors::NONE, None),
                Err(error) => (errors::store_code(&error), None),
            };
            if let Some(slice) = &slice {
                bytes += slice.len;
                remaining = remaining.saturating_sub(slice.len);
            }
            // Read after the data, so the high watermark covers every batch returned.
            let offsets = store.offsets(id).ok();
            let code = match offsets {
                Some(_) => code,
                // Deleted since it was resolved.
                None => errors::UNKNOWN_TOPIC_OR_PARTITION,
            };
            has_error |= code != errors::NONE;
            let aborted = match &slice {
                _ if !read_committed => None,
                // Kafka's bound: transactions that began before the end of what is returned.
                Some(slice) => Some(
                    store
                        .aborted_transactions(id, target.fetch_offset, slice.last_offset + 1)
                        .unwrap_or_default(),
                ),
                None => Some(Vec::new()),
            };
            topic_reads.push(PartitionRead {
                code,
                offsets,
                slice,
                aborted,
            });
        }
        reads.push(topic_reads);
    }
    Plan {
        reads,
        bytes,
        has_error,
    }
}

fn respond(targets: Vec<TopicTarget>, plan: Plan) -> FetchResponse {
    let responses = targets
        .into_iter()
        .zip(plan.reads)
        .map(|(topic, reads)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(reads)
                .map(|(target, read)| partition_data(target.partition, read))
                .collect();
            FetchableTopicResponse::default()
                .with_topic(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

fn partition_data(partition: i32, read: PartitionRead) -> PartitionData {
    let mut code = read.code;
    // A large record set is streamed from its file as the response is written (see
    // `connection::defer_records`); only small ones are read here.
    let deferred = read
        .slice
        .as_ref()
        .filter(|s| s.len >= connection::DEFER_RECORD_BYTES_MIN)
        .and_then(|s| connection::defer_records(s.clone()));
    let records = match deferred
        .map(Ok)
        .or_else(|| read.slice.map(|s| s.read_to_vec().map(Bytes::from)))
    {
        Some(Ok(bytes)) => bytes,
        Some(Err(error)) => {
            tracing::warn!(partition, %error, "reading stored batches failed");
            code = errors::KAFKA_STORAGE_ERROR;
            Bytes::new()
        }
        None => Bytes::new(),
    };
    let (high_watermark, last_stable_offset, log_start_offset) =
        read.offsets.map_or((-1, -1, -1), |o| {
            (o.high_watermark, o.last_stable_offset, o.log_start_offset)
        });
    let aborted = read
        .aborted
        .unwrap_or_default()
        .into_iter()
        .map(|(producer_id, first_offset)| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(producer_id))
                .with_first_offset(first_offset)
        })
        .collect();
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(code)
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(last_stable_offset)
        .with_log_start_offset(log_start_offset)
        .with_aborted_transactions(Some(aborted))
        .with_records(Some(records))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kafka_protocol::messages::fetch_request::FetchPartition;
    use kafka_protocol::protocol::Encodable;
    use weir_storage::batch;

    use super::*;
    use crate::api::produce::testing::*;

    fn fetch_request(topic: &str, partitions: &[(i32, i64)]) -> FetchRequest {
        let partitions = partitions
            .iter()
            .map(|(p, offset)| {
                FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(*offset)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(50 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions),
            ])
    }

    async fn fetch(h: &Harness, request: FetchRequest, version: i16) -> FetchResponse {
        let response = handle(&h.context, &header(version), request).await;
        // Every answer must encode at the version asked (records as empty bytes, not null).
        let mut buf = bytes::BytesMut::new();
        response.encode(&mut buf, version).expect("encodes");
        response
    }

    fn partition(response: &FetchResponse, index: usize) -> &PartitionData {
        &response.responses[0].partitions[index]
    }

    /// Base offsets and record counts of the batches in `records`.
    fn batches(records: &Option<Bytes>) -> Vec<(i64, i32)> {
        let records = records.as_ref().expect("records are never null");
        batch::headers(records)
            .map(|h| h.expect("whole batches"))
            .map(|(_, h)| (h.base_offset, h.record_count))
            .collect()
    }

    #[tokio::test]
    async fn produced_batches_come_back_whole_with_the_offsets() {
        let h = harness();
        h.create("t", 1, &[]);
        h.produce("t", 0, &[(1, b"a"), (2, b"b"), (3, b"c")], 9)
            .await;
        h.produce("t", 0, &[(4, b"d")], 9).await;
        for version in [4, 11, 12, 16, 17] {
            let mut request = fetch_request("t", &[(0, 0)]);
            if version >= TOPIC_IDS_VERSION {
                let id = h.context.broker.topic("t").expect("topic").id;
                request.topics[0].topic_id = uuid::Uuid::from_bytes(id.0);
            }
            let response = fetch(&h, request, version).await;
            let p = partition(&response, 0);
            assert_eq!(p.error_code, 0, "v{version}");
            assert_eq!((p.high_watermark, p.last_stable_offset), (4, 4));
            assert_eq!(p.log_start_offset, 0);
            assert_eq!(p.aborted_transactions, Some(Vec::new()));
            assert_eq!(batches(&p.records), vec![(0, 3), (3, 1)]);
        }
        // An offset inside the first batch still gets that whole batch.
        let response = fetch(&h, fetch_request("t", &[(0, 1)]), 11).await;
        assert_eq!(batches(&partition(&response, 0).records)[0], (0, 3));
    }

    /// A transactional batch of `records` records from `pid` (epoch 0) at sequence `seq`.
    fn txn_batch(pid: i64, seq: i32, records: usize) -> Vec<u8> {
        let mut builder = batch::BatchBuilder::new(0, 1);
        builder.producer_id = pid;
        builder.producer_epoch = 0;
        builder.base_sequence = seq;
        builder.attributes = 0x10; // transactional
        for _ in 0..records {
            builder.push(1, None, Some(b"t"), &[]);
        }
        builder.build()
    }

    fn committed(topic: &str, offset: i64) -> FetchRequest {
        fetch_request(topic, &[(0, offset)]).with_isolation_level(READ_COMMITTED)
    }

    #[tokio::test]
    async fn read_committed_stops_at_the_lso_and_names_aborted_transactions() {
        let h = harness();
        h.create("t", 1, &[]);
        let store = h.context.broker.store();
        let id = TopicPartition::new("t", 0);
        h.produce("t", 0, &[(1, b"a")], 9).await; // 0
        store.append(&id, &txn_batch(7, 0, 2), 1).expect("txn 7"); // 1..=2
        store.append(&id, &txn_batch(8, 0, 1), 1).expect("txn 8"); // 3
        h.produce("t", 0, &[(1, b"b")], 9).await; // 4
        for version in [4, 11, 17] {
            let mut request = committed("t", 0);
            if version >= TOPIC_IDS_VERSION {
                let topic_id = h.context.broker.topic("t").expect("topic").id;
                request.topics[0].topic_id = uuid::Uuid::from_bytes(topic_id.0);
            }
            let response = fetch(&h, request, version).await;
            let p = partition(&response, 0);
            assert_eq!(
                (p.high_watermark, p.last_stable_offset),
                (5, 1),
                "v{version}"
            );
            assert_eq!(batches(&p.records), vec![(0, 1)], "only below the LSO");
            assert_eq!(p.aborted_transactions, Some(Vec::new()));
        }
        // Nothing committed past the fetch offset: empty, not an error.
        let mut request = committed("t", 1);
        request.min_bytes = 0;
        let p = fetch(&h, request, 11).await.responses[0].partitions[0].clone();
        assert_eq!((p.error_code, p.records), (0, Some(Bytes::new())));
        // read_uncommitted is unchanged, and reports the LSO truthfully.
        let response = fetch(&h, fetch_request("t", &[(0, 0)]), 11).await;
        let p = partition(&response, 0);
        assert_eq!(batches(&p.records), vec![(0, 1), (1, 2), (3, 1), (4, 1)]);
        assert_eq!((p.high_watermark, p.last_stable_offset), (5, 1));
        assert_eq!(p.aborted_transactions, Some(Vec::new()));

        store
            .append_control(&id, 7, 0, false, 0, 1)
            .expect("abort 7"); // 5
        store
            .append_control(&id, 8, 0, true, 0, 1)
            .expect("commit 8"); // 6
        let response = fetch(&h, committed("t", 0), 11).await;
        let p = partition(&response, 0);
        assert_eq!((p.high_watermark, p.last_stable_offset), (7, 7));
        assert_eq!(batches(&p.records).len(), 6, "data and both markers");
        let aborted: Vec<_> = p
            .aborted_transactions
            .iter()
            .flatten()
            .map(|t| (t.producer_id.0, t.first_offset))
            .collect();
        assert_eq!(aborted, vec![(7, 1)]);
        // A fetch past the abort marker is told of no aborted transaction.
        let response = fetch(&h, committed("t", 6), 11).await;
        assert_eq!(
            partition(&response, 0).aborted_transactions,
            Some(Vec::new())
        );
        // A fetch whose returned range ends before the aborted transaction began.
        let mut request = committed("t", 0);
        request.topics[0].partitions[0].partition_max_bytes = 1;
        let response = fetch(&h, request, 11).await;
        let p = partition(&response, 0);
        assert_eq!(batches(&p.records), vec![(0, 1)]);
        assert_eq!(p.aborted_transactions, Some(Vec::new()));
    }

    #[tokio::test]
    async fn the_high_watermark_is_empty_and_beyond_the_log_is_out_of_range() {
        let h = harness();
        h.create("t", 1, &[]);
        h.produce("t", 0, &[(1, b"a"), (2, b"b")], 9).await;
        let mut request = fetch_request("t", &[(0, 2)]);
        request.min_bytes = 0;
        let response = fetch(&h, request, 11).await;
        let p = partition(&response, 0);
        assert_eq!(p.error_code, 0);
        assert_eq!(p.records, Some(Bytes::new()));
        let response = fetch(&h, fetch_request("t", &[(0, 3)]), 11).await;
        assert_eq!(
            partition(&response, 0).error_code,
            errors::OFFSET_OUT_OF_RANGE
        );
        // Below the log start, once records are deleted.
        let id = TopicPartition::new("t", 0);
        h.context
            .broker
            .store()
            .delete_records(&id, 1)
            .expect("delete");
        let response = fetch(&h, fetch_request("t", &[(0, 0)]), 11).await;
        let p = partition(&response, 0);
        assert_eq!(p.error_code, errors::OFFSET_OUT_OF_RANGE);
        assert_eq!((p.log_start_offset, p.high_watermark), (1, 2));
    }

    #[tokio::test]
    async fn unknown_topics_partitions_and_ids() {
        let h = harness();
        h.create("t", 1, &[]);
        let response = fetch(&h, fetch_request("nope", &[(0, 0)]), 11).await;
        assert_eq!(
            partition(&response, 0).error_code,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
        let response = fetch(&h, fetch_request("t", &[(5, 0)]), 11).await;
        assert_eq!(
            partition(&response, 0).error_code,
            errors::UNKNOWN_TOPIC_OR_PARTITION
        );
        let mut request = fetch_request("", &[(0, 0)]);
        let unknown = uuid::Uuid::from_bytes([42; 16]);
        request.topics[0].topic_id = unknown;
        let response = fetch(&h, request, 13).await;
        assert_eq!(response.responses[0].topic_id, unknown);
        assert_eq!(partition(&response, 0).error_code, errors::UNKNOWN_TOPIC_ID);
        assert!(
            h.context.broker.topic("nope").is_none(),
            "fetch creates nothing"
        );
    }

    #[tokio::test]
    async fn kip_74_the_first_batch_always_then_only_what_fits() {
        let h = harness();
        h.create("t", 2, &[]);
        let big = vec![1u8; 3000];
        h.produce("t", 0, &[(1, &big)], 9).await;
        h.produce("t", 0, &[(2, &big)], 9).await;
        h.produce("t", 1, &[(1, b"small")], 9).await;
        // Larger than both limits: the first batch alone.
        let mut request = fetch_request("t", &[(0, 0), (1, 0)]);
        request.max_bytes = 100;
        request.topics[0].partitions[0].partition_max_bytes = 100;
        let response = fetch(&h, request, 11).await;
        assert_eq!(batches(&partition(&response, 0).records), vec![(0, 1)]);
        // The response is full: the second partition gets nothing, and no error.
        let p1 = partition(&response, 1);
        assert_eq!((p1.error_code, p1.high_watermark), (0, 1));
        assert_eq!(p1.records, Some(Bytes::new()));
        // partition_max_bytes alone limits a partition to what fits after the first batch.
        let mut request = fetch_request("t", &[(0, 0), (1, 0)]);
        request.topics[0].partitions[0].partition_max_bytes = 3500;
        let response = fetch(&h, request, 11).await;
        assert_eq!(batches(&partition(&response, 0).records), vec![(0, 1)]);
        assert_eq!(batches(&partition(&response, 1).records), vec![(0, 1)]);
        // A later partition whose first batch is over its limit gets nothing this time.
        let mut request = fetch_request("t", &[(1, 0), (0, 0)]);
        request.topics[0].partitions[1].partition_max_bytes = 100;
        let response = fetch(&h, request, 11).await;
        assert_eq!(batches(&partition(&response, 0).records), vec![(0, 1)]);
        assert_eq!(partition(&response, 1).records, Some(Bytes::new()));
    }

    #[tokio::test]
    async fn a_long_poll_ends_at_max_wait_without_data() {
        let h = harness();
        h.create("t", 1, &[]);
        let mut request = fetch_request("t", &[(0, 0)]);
        request.max_wait_ms = 300;
        let started = std::time::Instant::now();
        let response = fetch(&h, request, 11).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_millis(2000), "{waited:?}");
        let p = partition(&response, 0);
        assert_eq!((p.error_code, p.high_watermark), (0, 0));
        assert_eq!(p.records, Some(Bytes::new()));
    }

    #[tokio::test]
    async fn a_long_poll_wakes_on_an_append_to_any_of_its_partitions() {
        let h = Arc::new(harness());
        h.create("t", 3, &[]);
        let mut request = fetch_request("t", &[(0, 0), (1, 0), (2, 0)]);
        request.max_wait_ms = 10_000;
        let poller = {
            let h = h.clone();
            tokio::spawn(async move { handle(&h.context, &header(11), request).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!poller.is_finished(), "nothing to read yet");
        let appended = std::time::Instant::now();
        let id = TopicPartition::new("t", 2);
        let records = batch(&[(1, b"wake")]);
        h.context.broker.append(&id, &records, 0).expect("append");
        let response = poller.await.expect("fetch task");
        let latency = appended.elapsed();
        assert!(
            latency < Duration::from_millis(500),
            "woke after {latency:?}"
        );
        assert_eq!(batches(&partition(&response, 2).records), vec![(0, 1)]);
        assert_eq!(partition(&response, 0).records, Some(Bytes::new()));
    }

    #[tokio::test]
    async fn a_long_poll_waits_for_min_bytes() {
        let h = Arc::new(harness());
        h.create("t", 1, &[]);
        let mut request = fetch_request("t", &[(0, 0)]);
        request.max_wait_ms = 10_000;
        request.min_bytes = 300;
        let poller = {
            let h = h.clone();
            tokio::spawn(async move { handle(&h.context, &header(11), request).await })
        };
        let id = TopicPartition::new("t", 0);
        h.context
            .broker
            .append(&id, &batch(&[(1, b"x")]), 0)
            .expect("append");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!poller.is_finished(), "one small batch is below min_bytes");
        let big = vec![0u8; 400];
        h.context
            .broker
            .append(&id, &batch(&[(2, &big)]), 0)
            .expect("append");
        let response = tokio::time::timeout(Duration::from_secs(2), poller)
            .await
            .expect("woken")
            .expect("fetch task");
        assert_eq!(
            batches(&partition(&response, 0).records),
            vec![(0, 1), (1, 1)]
        );
    }

    #[tokio::test]
    async fn fetch_sessions_are_declined() {
        let h = harness();
        h.create("t", 1, &[]);
        h.produce("t", 0, &[(1, b"a")], 9).await;
        // A full request asking for a session gets data and session id 0.
        let mut request = fetch_request("t", &[(0, 0)]);
        request.session_epoch = SESSION_EPOCH_INITIAL;
        let response = fetch(&h, request, 12).await;
        assert_eq!((response.error_code, response.session_id), (0, 0));
        assert_eq!(batches(&partition(&response, 0).records), vec![(0, 1)]);
        // An incremental request names a session weir never created.
        let mut request = fetch_request("t", &[(0, 0)]);
        request.session_id = 7;
        request.session_epoch = 3;
        let response = fetch(&h, request, 12).await;
        assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);
        assert!(response.responses.is_empty());
    }
}
