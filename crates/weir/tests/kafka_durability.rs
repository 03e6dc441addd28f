//! What weir acknowledges over the Kafka protocol survives SIGKILL.
//!
//! A topic with `flush.policy=sync` acknowledges an acks=all Produce only after the
//! write-ahead log's fsync. This test pipelines Produce v3 requests (acks=-1) over one
//! connection to the real `weir serve`, SIGKILLs it while requests are in flight, restarts
//! it on the same data directory, and checks that every acknowledged record is at the
//! offset weir acknowledged it at, in produce order, and that the restarted broker appends
//! after them. Requests are encoded by hand (the non-flexible Produce v3 layout is short)
//! so the test needs no Kafka client library; tests/clients/ runs real clients, including
//! the same scenario through confluent-kafka.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir_core::{Broker, BrokerConfig, TopicId};
use weir_storage::batch::{BatchBuilder, decode_records, headers};
use weir_storage::store::{StoreConfig, TopicPartition};

/// Bound on any wait for the broker (start, acknowledgements, exit).
const WAIT: Duration = Duration::from_secs(30);
/// Requests sent ahead of their responses, so the kill lands with many in flight.
const IN_FLIGHT_MAX: usize = 32;
/// Records per Produce request (one batch each).
const RECORDS_PER_BATCH: usize = 10;
/// Acknowledged batches after which the broker is killed.
const KILL_AFTER_ACKED: usize = 200;
/// Upper bound on batches sent, so a broker that never acknowledges cannot loop forever.
const BATCHES_MAX: usize = 100_000;
/// Largest response frame this test accepts (a Produce v3 response for one partition is
/// a few dozen bytes).
const RESPONSE_BYTES_MAX: usize = 1 << 20;
const TOPIC: &str = "durable";

const PRODUCE_KEY: i16 = 0;
const PRODUCE_VERSION: i16 = 3;

mod common;

/// The real broker and the address its Kafka listener took.
struct Server {
    process: common::Weir,
    addr: String,
}

impl Server {
    fn start(data: &Path) -> Server {
        let (process, addr) = common::Weir::serve(data);
        Server {
            process,
            addr: addr.to_string(),
        }
    }

    fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.process.wait_exit()
    }

    fn log_text(&mut self) -> String {
        self.process.log_text()
    }
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit i64")
}

fn value_of(seq: usize) -> Vec<u8> {
    format!("r{seq:08}").into_bytes()
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&i16::try_from(s.len()).expect("short string").to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// One size-prefixed Produce v3 request (acks=-1) carrying one batch for partition 0.
fn produce_request(correlation_id: i32, batch: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&PRODUCE_KEY.to_be_bytes());
    body.extend_from_slice(&PRODUCE_VERSION.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    put_str(&mut body, "kafka-durability-test");
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks: all
    body.extend_from_slice(&10_000i32.to_be_bytes()); // timeout_ms
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    put_str(&mut body, TOPIC);
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes()); // partition 0
    body.extend_from_slice(
        &i32::try_from(batch.len())
            .expect("batch fits")
            .to_be_bytes(),
    );
    body.extend_from_slice(batch);
    let mut frame = i32::try_from(body.len())
        .expect("frame fits")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn batch_of(first_seq: usize) -> Vec<u8> {
    let ts = now_ms();
    let mut builder = BatchBuilder::new(0, ts);
    for seq in first_seq..first_seq + RECORDS_PER_BATCH {
        builder.push(ts, None, Some(&value_of(seq)), &[]);
    }
    builder.build()
}

/// A Produce v3 response for one partition: (correlation id, error code, base offset).
fn read_produce_response(stream: &mut impl Read) -> std::io::Result<(i32, i16, i64)> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = usize::try_from(i32::from_be_bytes(len)).map_err(std::io::Error::other)?;
    if len > RESPONSE_BYTES_MAX {
        return Err(std::io::Error::other(format!("response of {len} bytes")));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf)?;
    let mut r = Reader { buf: &buf, pos: 0 };
    let correlation_id = r.i32()?;
    let topics = r.i32()?;
    if topics != 1 {
        return Err(std::io::Error::other(format!(
            "{topics} topics in response"
        )));
    }
    let name_len = usize::try_from(r.i16()?).map_err(std::io::Error::other)?;
    r.skip(name_len)?;
    let partitions = r.i32()?;
    if partitions != 1 {
        return Err(std::io::Error::other(format!(
            "{partitions} partitions in response"
        )));
    }
    let _index = r.i32()?;
    let error_code = r.i16()?;
    let base_offset = r.i64()?;
    Ok((correlation_id, error_code, base_offset))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or_else(|| std::io::Error::other("response too short"))?;
        self.pos += N;
        Ok(bytes.try_into().expect("N bytes"))
    }
    fn skip(&mut self, n: usize) -> std::io::Result<()> {
        if self.pos + n > self.buf.len() {
            return Err(std::io::Error::other("response too short"));
        }
        self.pos += n;
        Ok(())
    }
    fn i16(&mut self) -> std::io::Result<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> std::io::Result<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> std::io::Result<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// An acknowledged batch: where weir put it and which records it held.
#[derive(Debug, Clone, Copy)]
struct Acked {
    base_offset: i64,
    first_seq: usize,
}

/// Pipelines batches until the connection breaks, pushing each acknowledged one to
/// `acked` in response order (the caller watches it to decide when to kill). Returns how
/// many requests were written whole.
fn produce_until_broken(addr: &str, acked: Arc<Mutex<Vec<Acked>>>) -> usize {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let mut reader = stream.try_clone().expect("clone stream");
    // The writer blocks here when IN_FLIGHT_MAX requests await responses.
    let (pending_tx, pending_rx) = mpsc::sync_channel::<(i32, usize)>(IN_FLIGHT_MAX);
    let responses = std::thread::spawn(move || {
        while let Ok((correlation_id, first_seq)) = pending_rx.recv() {
            let Ok((got_id, error_code, base_offset)) = read_produce_response(&mut reader) else {
                return; // the broker is gone
            };
            assert_eq!(got_id, correlation_id, "responses come in request order");
            assert_eq!(error_code, 0, "produce to the sync topic failed");
            acked.lock().expect("acked lock").push(Acked {
                base_offset,
                first_seq,
            });
        }
    });
    let mut writer = stream;
    let mut sent = 0;
    for n in 0..BATCHES_MAX {
        let first_seq = n * RECORDS_PER_BATCH;
        let correlation_id = i32::try_from(n).expect("fits i32");
        if pending_tx.send((correlation_id, first_seq)).is_err() {
            break; // the response reader stopped: the broker is gone
        }
        if writer
            .write_all(&produce_request(correlation_id, &batch_of(first_seq)))
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    drop(pending_tx);
    responses.join().expect("response reader");
    sent
}

/// Every record of the partition, offset → value, read from the store directly.
fn stored_values(data: &Path, id: &TopicPartition) -> HashMap<i64, Vec<u8>> {
    let (broker, _) = Broker::open(
        data,
        StoreConfig::default(),
        BrokerConfig::default(),
        now_ms(),
    )
    .expect("open the data dir");
    let store = broker.store();
    let high_watermark = store.offsets(id).expect("offsets").high_watermark;
    let mut values = HashMap::new();
    let mut offset = 0;
    while offset < high_watermark {
        let slice = store
            .read(id, offset, 1 << 20)
            .expect("read")
            .expect("data below the high watermark");
        let buf = slice.read_to_vec().expect("read slice");
        for item in headers(&buf) {
            let (pos, header) = item.expect("stored batch header");
            let records = decode_records(&buf[pos..]).expect("stored records");
            for record in records {
                let at = header.base_offset + i64::from(record.offset_delta);
                values.insert(at, record.value.expect("value"));
            }
        }
        offset = slice.last_offset + 1;
    }
    broker.close(now_ms()).expect("close");
    values
}

#[test]
fn acknowledged_produce_to_a_sync_topic_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    {
        let (broker, _) =
            Broker::open(&data, StoreConfig::default(), BrokerConfig::default(), 0).expect("open");
        broker
            .create_topic(
                TOPIC,
                TopicId([7; 16]),
                1,
                &[("flush.policy".to_string(), "sync".to_string())],
                false,
            )
            .expect("create the sync topic");
        broker.close(0).expect("close");
    }

    let mut server = Server::start(&data);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let producer = {
        let addr = server.addr.clone();
        let acked = Arc::clone(&acked);
        std::thread::spawn(move || produce_until_broken(&addr, acked))
    };
    let deadline = Instant::now() + WAIT;
    while acked.lock().expect("acked lock").len() < KILL_AFTER_ACKED {
        assert!(
            Instant::now() < deadline && !producer.is_finished(),
            "only {} batches acknowledged; log:\n{}",
            acked.lock().expect("acked lock").len(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    server.signal("-KILL");
    assert!(!server.wait_exit().success());
    let sent = producer.join().expect("producer thread");
    let acked = acked.lock().expect("acked lock").clone();
    assert!(acked.len() >= KILL_AFTER_ACKED);
    // The writer runs up to IN_FLIGHT_MAX requests ahead of the acknowledgements.
    assert!(
        sent > acked.len(),
        "the kill did not land with requests in flight ({sent} sent, {} acknowledged)",
        acked.len()
    );

    // In order: acknowledgements (in request order) have increasing, contiguous offsets.
    for (n, ack) in acked.iter().enumerate() {
        assert_eq!(ack.first_seq, n * RECORDS_PER_BATCH);
        assert_eq!(
            ack.base_offset,
            i64::try_from(n * RECORDS_PER_BATCH).expect("fits"),
            "batch {n}"
        );
    }
    let acked_end = i64::try_from(acked.len() * RECORDS_PER_BATCH).expect("fits");

    // Restart on the same directory: it serves again and appends after what it kept.
    let mut server = Server::start(&data);
    let mut stream = TcpStream::connect(&server.addr).expect("connect after restart");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let after_seq = BATCHES_MAX * RECORDS_PER_BATCH;
    stream
        .write_all(&produce_request(1, &batch_of(after_seq)))
        .expect("send after restart");
    let (id, error_code, after_offset) =
        read_produce_response(&mut stream).expect("response after restart");
    assert_eq!((id, error_code), (1, 0), "log:\n{}", server.log_text());
    assert!(
        after_offset >= acked_end,
        "appended at {after_offset}, inside the acknowledged range ending at {acked_end}"
    );
    drop(stream);
    server.signal("-TERM");
    assert!(server.wait_exit().success(), "log:\n{}", server.log_text());

    let values = stored_values(&data, &TopicPartition::new(TOPIC, 0));
    for ack in &acked {
        for k in 0..RECORDS_PER_BATCH {
            let offset = ack.base_offset + i64::try_from(k).expect("fits");
            assert_eq!(
                values.get(&offset).map(Vec::as_slice),
                Some(value_of(ack.first_seq + k).as_slice()),
                "acknowledged record at offset {offset} lost or changed"
            );
        }
    }
    assert_eq!(
        values.get(&after_offset).map(Vec::as_slice),
        Some(value_of(after_seq).as_slice())
    );
}
