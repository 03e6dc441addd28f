//! The Kafka listener of the real `weir serve` binary, spoken to over raw TCP: ApiVersions
//! negotiation, pipelining, and hostile input — each bad frame gets an error or a closed
//! connection, the broker keeps serving new connections, and its memory stays small.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, RequestKind, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// How long a test waits for the broker to start or to answer.
const WAIT: Duration = Duration::from_secs(30);
/// weir's resident memory after these tests must stay under this: a few idle connections
/// and a tiny store need a few tens of MiB, while any honoured huge length or count would
/// take hundreds.
const RSS_KIB_MAX: u64 = 96 * 1024;

mod common;

/// The real broker, with the raw-TCP helpers these tests need.
struct Weir {
    process: common::Weir,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Weir {
    fn start() -> Weir {
        let data = tempfile::tempdir().expect("data dir");
        let (process, addr) = common::Weir::serve(data.path());
        Weir {
            process,
            addr,
            _data: data,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        stream
    }

    fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
    }

    /// A fresh connection still gets an ApiVersions answer, and the process is running.
    fn assert_serving(&mut self, after: &str) {
        assert!(
            self.process.child.try_wait().expect("wait").is_none(),
            "broker exited after {after}"
        );
        let mut stream = self.connect();
        let response = api_versions(&mut stream, 0, 77);
        assert_eq!(response.error_code, 0, "after {after}");
    }
}

fn frame(key: ApiKey, version: i16, correlation_id: i32, request: &RequestKind) -> Vec<u8> {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("kafka-wire-test")))
        .encode(&mut body, key.request_header_version(version))
        .expect("header encodes");
    request.encode(&mut body, version).expect("request encodes");
    let mut out = Vec::from((body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// One response frame body, or `None` when the broker closed the connection.
fn read_response(stream: &mut TcpStream) -> Option<Bytes> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(e) => panic!("reading a response: {e}"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("response body");
    Some(Bytes::from(body))
}

fn assert_closed(stream: &mut TcpStream, what: &str) {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected a closed connection, got {other:?}"),
    }
}

fn api_versions(stream: &mut TcpStream, version: i16, correlation_id: i32) -> ApiVersionsResponse {
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request = request
            .with_client_software_name(StrBytes::from_static_str("kafka-wire-test"))
            .with_client_software_version(StrBytes::from_static_str("1"));
    }
    let request = RequestKind::ApiVersions(request);
    // The request header of a version weir does not know: v2 for anything from v3 on.
    let header_version = if version >= 3 { 3 } else { version };
    let mut bytes = frame(
        ApiKey::ApiVersions,
        header_version,
        correlation_id,
        &request,
    );
    bytes[6..8].copy_from_slice(&version.to_be_bytes());
    stream.write_all(&bytes).expect("send ApiVersions");
    let mut body = read_response(stream).expect("an ApiVersions response");
    // The ApiVersions response header is always v0.
    let header = ResponseHeader::decode(&mut body, 0).expect("response header");
    assert_eq!(header.correlation_id, correlation_id);
    // KIP-511: an unknown version is answered at v0.
    let body_version = if version > 4 { 0 } else { version };
    ApiVersionsResponse::decode(&mut body, body_version).expect("ApiVersions response")
}

fn range(response: &ApiVersionsResponse, key: ApiKey) -> Option<(i16, i16)> {
    response
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .map(|k| (k.min_version, k.max_version))
}

#[test]
fn api_versions_at_v0_v3_and_an_unknown_v5() {
    let mut weir = Weir::start();
    let mut stream = weir.connect();

    let v0 = api_versions(&mut stream, 0, 1);
    assert_eq!(v0.error_code, 0);
    let v3 = api_versions(&mut stream, 3, 2);
    assert_eq!(v3.error_code, 0);
    for (key, min, max) in weir_kafka::api::SUPPORTED {
        assert_eq!(range(&v0, *key), Some((*min, *max)), "{key:?} at v0");
        assert_eq!(range(&v3, *key), Some((*min, *max)), "{key:?} at v3");
    }
    assert_eq!(v3.api_keys.len(), weir_kafka::api::SUPPORTED.len());
    assert_eq!(range(&v3, ApiKey::Produce), Some((3, 11)));
    assert_eq!(range(&v3, ApiKey::Fetch), Some((4, 17)));
    assert_eq!(range(&v3, ApiKey::Metadata), Some((0, 13)));

    let v5 = api_versions(&mut stream, 5, 3);
    assert_eq!(v5.error_code, 35, "UNSUPPORTED_VERSION");
    assert_eq!(range(&v5, ApiKey::ApiVersions), Some((0, 4)));

    // The connection survives all three.
    assert_eq!(api_versions(&mut stream, 4, 4).error_code, 0);
    weir.assert_serving("ApiVersions");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let weir = Weir::start();
    let mut stream = weir.connect();
    let mut batch = Vec::new();
    batch.extend(frame(
        ApiKey::ApiVersions,
        3,
        100,
        &RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
    ));
    batch.extend(frame(
        ApiKey::Metadata,
        12,
        101,
        &RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![]))),
    ));
    batch.extend(frame(
        ApiKey::ApiVersions,
        0,
        102,
        &RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ));
    stream
        .write_all(&batch)
        .expect("send three requests at once");

    let mut first = read_response(&mut stream).expect("first");
    assert_eq!(
        ResponseHeader::decode(&mut first, 0)
            .expect("h")
            .correlation_id,
        100
    );
    let mut second = read_response(&mut stream).expect("second");
    let header = ResponseHeader::decode(&mut second, ApiKey::Metadata.response_header_version(12));
    assert_eq!(header.expect("h").correlation_id, 101);
    MetadataResponse::decode(&mut second, 12).expect("a Metadata v12 response");
    assert!(
        second.is_empty(),
        "the Metadata response fills its frame exactly"
    );
    let mut third = read_response(&mut stream).expect("third");
    assert_eq!(
        ResponseHeader::decode(&mut third, 0)
            .expect("h")
            .correlation_id,
        102
    );
}

/// A Metadata v1 frame (4-byte size, then the body) with its size prefix as given.
fn metadata_body() -> Vec<u8> {
    let bytes = frame(
        ApiKey::Metadata,
        1,
        5,
        &RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![]))),
    );
    bytes[4..].to_vec()
}

fn with_size(size: i32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::from(size.to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn hostile_frames_close_the_connection_and_the_broker_keeps_serving() {
    let mut weir = Weir::start();
    let body = metadata_body();
    let mut unknown_key = body.clone();
    unknown_key[0..2].copy_from_slice(&9999i16.to_be_bytes());
    let mut unsupported = body.clone();
    unsupported[2..4].copy_from_slice(&99i16.to_be_bytes());
    let mut old_produce = body.clone();
    old_produce[0..4].copy_from_slice(&[0, 0, 0, 2]); // Produce v2: not advertised
    let mut garbage = vec![0u8; 64];
    let mut seed: u32 = 0x9e37_79b9;
    for byte in garbage.iter_mut() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        *byte = seed as u8;
    }
    garbage[0..4].copy_from_slice(&60i32.to_be_bytes()); // a plausible size, garbage after

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("2 GiB length prefix", with_size(i32::MAX, &body)),
        ("negative length prefix", with_size(i32::MIN, &body)),
        (
            "frame longer than the maximum",
            with_size(100 * 1024 * 1024 + 1, &body),
        ),
        ("frame shorter than 8 bytes", with_size(4, &[0, 3, 0, 1])),
        ("zero-length frame", with_size(0, &[])),
        ("garbage", garbage),
        (
            "unknown api key",
            with_size(unknown_key.len() as i32, &unknown_key),
        ),
        (
            "unsupported Metadata version",
            with_size(unsupported.len() as i32, &unsupported),
        ),
        (
            "unadvertised Produce v2",
            with_size(old_produce.len() as i32, &old_produce),
        ),
        (
            "request truncated inside its frame",
            with_size(body.len() as i32 - 3, &body[..body.len() - 3]),
        ),
    ];
    for (what, bytes) in cases {
        let mut stream = weir.connect();
        // The broker may close before reading everything: a failed write is fine.
        let _ = stream.write_all(&bytes);
        assert_closed(&mut stream, what);
        weir.assert_serving(what);
    }

    // Stops mid-frame, then hangs up: the broker sees end of stream inside a frame.
    let mut stream = weir.connect();
    let whole = with_size(body.len() as i32, &body);
    stream
        .write_all(&whole[..whole.len() / 2])
        .expect("half a frame");
    stream.shutdown(Shutdown::Write).expect("half close");
    assert_closed(&mut stream, "end of stream mid-frame");
    weir.assert_serving("end of stream mid-frame");
}

#[test]
fn stalled_and_oversized_claims_cost_no_memory() {
    let mut weir = Weir::start();
    let before = weir.rss_kib();
    // Twenty peers each claim a 100 MiB frame and send ten bytes of it, then stall.
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut stream = weir.connect();
        let mut bytes = Vec::from((100 * 1024 * 1024i32).to_be_bytes());
        bytes.extend_from_slice(&metadata_body()[..10]);
        stream.write_all(&bytes).expect("claim");
        stalled.push(stream);
    }
    // While they stall, others are served.
    weir.assert_serving("stalled claims");
    let during = weir.rss_kib();
    assert!(
        during < RSS_KIB_MAX && during < before + 32 * 1024,
        "RSS grew from {before} KiB to {during} KiB with 20 stalled 100 MiB claims"
    );
}

#[test]
fn huge_array_counts_in_small_frames_are_refused_without_allocating() {
    let mut weir = Weir::start();
    let header = |key: ApiKey, version: i16| {
        let mut h = Vec::new();
        h.extend_from_slice(&(key as i16).to_be_bytes());
        h.extend_from_slice(&version.to_be_bytes());
        h.extend_from_slice(&9i32.to_be_bytes());
        h.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
        if key.request_header_version(version) >= 2 {
            h.push(0); // no header tags
        }
        h
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Metadata v4: topics count i32::MAX, then nothing.
    let mut m = header(ApiKey::Metadata, 4);
    m.extend_from_slice(&i32::MAX.to_be_bytes());
    m.push(1);
    cases.push(("Metadata v4 topics = i32::MAX", m));
    // Metadata v12 (flexible): compact count 2^32 - 2.
    let mut m = header(ApiKey::Metadata, 12);
    m.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    cases.push(("Metadata v12 topics = 2^32 - 2", m));
    // Produce v7: null transactional id, acks, timeout, one topic "t" with i32::MAX partitions.
    let mut p = header(ApiKey::Produce, 7);
    p.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 0, 0x75, 0x30, 0, 0, 0, 1, 0, 1, b't']);
    p.extend_from_slice(&i32::MAX.to_be_bytes());
    cases.push(("Produce v7 partitions = i32::MAX", p));
    // CreateTopics v4: topics count i32::MAX.
    let mut c = header(ApiKey::CreateTopics, 4);
    c.extend_from_slice(&i32::MAX.to_be_bytes());
    cases.push(("CreateTopics v4 topics = i32::MAX", c));
    // ApiVersions v3 with a client software name claiming 2^32 - 2 bytes.
    let mut a = header(ApiKey::ApiVersions, 3);
    a.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    cases.push(("ApiVersions v3 name length = 2^32 - 2", a));

    for (what, body) in cases {
        let mut stream = weir.connect();
        stream
            .write_all(&with_size(body.len() as i32, &body))
            .expect("send");
        assert_closed(&mut stream, what);
        weir.assert_serving(what);
    }
    let rss = weir.rss_kib();
    assert!(rss < RSS_KIB_MAX, "broker RSS {rss} KiB after huge counts");
}
