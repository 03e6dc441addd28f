//! The group coordinator of the real `weir serve` binary against hostile JoinGroups, spoken
//! over raw TCP (frames encoded with kafka-protocol): 10,000 protocols in one member, a
//! 10 MiB metadata blob, 2,000 members joining one group at once. Each is answered with an
//! error code or a closed connection, the broker's memory stays bounded, and another group
//! on another connection still joins and syncs meanwhile. Also the error codes clients act
//! on (INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL, UNKNOWN_MEMBER_ID,
//! ILLEGAL_GENERATION).
//!
//! The same for KIP-848: 2,000 ConsumerGroupHeartbeats into one group and one heartbeat
//! subscribing to 100,000 topic names.
//!
//! Sizes: the 10 MiB JoinGroup is sent 8 times; the classic crowd is 250 connections × 8
//! pipelined JoinGroups (each connection answers at most 16 at once), about 3 s; the
//! KIP-848 crowd is 20 connections × 100 pipelined heartbeats, about 15-20 s in a debug
//! build (each admitted member's first heartbeat recomputes the group's assignment).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, RequestHeader, RequestKind, ResponseHeader, SyncGroupRequest,
    SyncGroupResponse, TopicName, join_group_request::JoinGroupRequestProtocol,
    sync_group_request::SyncGroupRequestAssignment,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

mod common;

/// How long a test waits for the broker to answer (a parked JoinGroup is answered within
/// the initial rebalance delay or, at worst, the rebalance timeout the request gives).
const WAIT: Duration = Duration::from_secs(30);
/// JoinGroup and SyncGroup at the versions librdkafka uses (non-flexible).
const JOIN_VERSION: i16 = 5;
const SYNC_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
/// Timeouts the test members ask for: within the broker's default bounds (6 s .. 30 min).
const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 10_000;
/// The broker's `group.max.size` default (weir bounds it; Kafka's is unbounded).
const GROUP_MAX_SIZE: usize = 1_000;
/// The initial rebalance delay the broker runs with here: long enough that a crowd that
/// arrives within it joins one generation, short enough to keep the test quick.
const INITIAL_DELAY_MS: &str = "1000";
/// A healthy group's join + sync must finish within this while the hostile traffic goes on
/// (the initial delay plus scheduling on a loaded 2-core machine).
const HEALTHY_JOIN_MAX: Duration = Duration::from_secs(8);

const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_MAX_SIZE_REACHED: i16 = 81;

struct Weir {
    process: common::Weir,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Weir {
    fn start(extra: &[&str]) -> Weir {
        let data = tempfile::tempdir().expect("data dir");
        let dir = data.path().to_str().expect("utf-8 path").to_owned();
        let mut args = vec!["--data-dir", &dir];
        args.extend_from_slice(extra);
        let mut process = common::Weir::spawn(&args, &[]);
        let addr = process.kafka_addr();
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

    fn assert_running(&mut self, after: &str) {
        if let Some(status) = self.process.child.try_wait().expect("wait") {
            panic!(
                "broker exited ({status}) after {after}:\n{}",
                self.process.log_text()
            );
        }
        let log = self.process.log_text();
        assert!(
            !log.contains("panicked at"),
            "broker panicked after {after}:\n{log}"
        );
    }
}

fn frame(key: ApiKey, version: i16, correlation_id: i32, request: &RequestKind) -> Vec<u8> {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("groups-wire-test")))
        .encode(&mut body, key.request_header_version(version))
        .expect("header encodes");
    request.encode(&mut body, version).expect("request encodes");
    let mut out = Vec::from((body.len() as i32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// One response body after its header (checked against `correlation_id`), or `None` when
/// the broker closed the connection.
fn read_response(
    stream: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Option<Bytes> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ) =>
        {
            return None;
        }
        Err(e) => panic!("reading a {key:?} response: {e}"),
    }
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("response body");
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
        .expect("response header");
    assert_eq!(
        header.correlation_id, correlation_id,
        "{key:?} answered out of order"
    );
    Some(body)
}

fn subscription() -> Bytes {
    // ConsumerProtocolSubscription v0: topics ["t"], no user data. Opaque to the broker.
    Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff])
}

fn join_request(
    group: &str,
    member_id: &str,
    protocols: Vec<JoinGroupRequestProtocol>,
) -> RequestKind {
    RequestKind::JoinGroup(
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(StrBytes::from_string(member_id.to_owned()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(protocols),
    )
}

fn range_protocol(metadata: Bytes) -> Vec<JoinGroupRequestProtocol> {
    vec![
        JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(metadata),
    ]
}

fn send(stream: &mut TcpStream, bytes: &[u8]) {
    // The broker may close before reading a hostile frame whole: a failed write is fine,
    // the read that follows sees the close.
    let _ = stream.write_all(bytes);
}

fn join(
    stream: &mut TcpStream,
    correlation_id: i32,
    request: &RequestKind,
) -> Option<JoinGroupResponse> {
    send(
        stream,
        &frame(ApiKey::JoinGroup, JOIN_VERSION, correlation_id, request),
    );
    let mut body = read_response(stream, ApiKey::JoinGroup, JOIN_VERSION, correlation_id)?;
    Some(JoinGroupResponse::decode(&mut body, JOIN_VERSION).expect("a JoinGroup v5 response"))
}

/// What a hostile JoinGroup got: the broker's final answer (after one MEMBER_ID_REQUIRED
/// round trip, which a v4+ join without a member id may get first), or a closed connection.
fn hostile_join(
    weir: &Weir,
    group: &str,
    protocols: Vec<JoinGroupRequestProtocol>,
) -> Result<i16, ()> {
    let mut stream = weir.connect();
    let Some(first) = join(&mut stream, 1, &join_request(group, "", protocols.clone())) else {
        return Err(());
    };
    if first.error_code != MEMBER_ID_REQUIRED {
        return Ok(first.error_code);
    }
    let request = join_request(group, first.member_id.as_str(), protocols);
    match join(&mut stream, 2, &request) {
        Some(second) => Ok(second.error_code),
        None => Err(()),
    }
}

/// A well-behaved single-member group: FindCoordinator, JoinGroup (with the
/// MEMBER_ID_REQUIRED round trip), SyncGroup with its own assignment, Heartbeat. Panics
/// unless each step succeeds; returns how long it took.
fn healthy_join_and_sync(weir: &Weir, group: &str) -> Duration {
    let started = Instant::now();
    let mut stream = weir.connect();
    let find = RequestKind::FindCoordinator(
        FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_owned()))
            .with_key_type(0),
    );
    send(&mut stream, &frame(ApiKey::FindCoordinator, 2, 10, &find));
    let mut body = read_response(&mut stream, ApiKey::FindCoordinator, 2, 10)
        .expect("FindCoordinator answered");
    let found = FindCoordinatorResponse::decode(&mut body, 2).expect("FindCoordinator v2");
    assert_eq!(found.error_code, 0, "FindCoordinator for {group}");
    assert_eq!(
        found.port,
        i32::from(weir.addr.port()),
        "the coordinator is this broker"
    );

    let first = join(
        &mut stream,
        11,
        &join_request(group, "", range_protocol(subscription())),
    )
    .expect("JoinGroup answered");
    let member_id = if first.error_code == MEMBER_ID_REQUIRED {
        let second = join(
            &mut stream,
            12,
            &join_request(
                group,
                first.member_id.as_str(),
                range_protocol(subscription()),
            ),
        )
        .expect("second JoinGroup answered");
        assert_eq!(second.error_code, 0, "healthy JoinGroup of {group}");
        assert_eq!(second.leader, second.member_id, "the only member leads");
        assert_eq!(second.members.len(), 1);
        (second.member_id, second.generation_id)
    } else {
        assert_eq!(first.error_code, 0, "healthy JoinGroup of {group}");
        (first.member_id, first.generation_id)
    };
    let (member_id, generation_id) = member_id;
    let assignment = Bytes::from_static(b"assignment-bytes");
    let sync = RequestKind::SyncGroup(
        SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id(generation_id)
            .with_member_id(member_id.clone())
            .with_assignments(vec![
                SyncGroupRequestAssignment::default()
                    .with_member_id(member_id.clone())
                    .with_assignment(assignment.clone()),
            ]),
    );
    send(
        &mut stream,
        &frame(ApiKey::SyncGroup, SYNC_VERSION, 13, &sync),
    );
    let mut body = read_response(&mut stream, ApiKey::SyncGroup, SYNC_VERSION, 13)
        .expect("SyncGroup answered");
    let synced = SyncGroupResponse::decode(&mut body, SYNC_VERSION).expect("SyncGroup v3");
    assert_eq!(synced.error_code, 0, "healthy SyncGroup of {group}");
    assert_eq!(
        synced.assignment, assignment,
        "the leader's assignment comes back"
    );
    let beat = RequestKind::Heartbeat(
        HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id(generation_id)
            .with_member_id(member_id),
    );
    send(
        &mut stream,
        &frame(ApiKey::Heartbeat, HEARTBEAT_VERSION, 14, &beat),
    );
    let mut body = read_response(&mut stream, ApiKey::Heartbeat, HEARTBEAT_VERSION, 14)
        .expect("Heartbeat answered");
    let beat = HeartbeatResponse::decode(&mut body, HEARTBEAT_VERSION).expect("Heartbeat v3");
    assert_eq!(beat.error_code, 0, "healthy Heartbeat of {group}");
    started.elapsed()
}

#[test]
fn join_group_with_10000_protocols_is_refused() {
    let mut weir = Weir::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let before = weir.rss_kib();
    let protocols: Vec<_> = (0..10_000)
        .map(|i| {
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_string(format!("protocol-{i}")))
                .with_metadata(subscription())
        })
        .collect();
    for round in 0..3 {
        let answer = hostile_join(&weir, "many-protocols", protocols.clone());
        eprintln!("10,000 protocols, round {round}: {answer:?} (Err: connection closed)");
        assert!(
            !matches!(answer, Ok(0) | Ok(MEMBER_ID_REQUIRED)),
            "round {round}: a JoinGroup with 10,000 protocols was accepted (expected INVALID_REQUEST or a close)"
        );
        weir.assert_running("a JoinGroup with 10,000 protocols");
    }
    let took = healthy_join_and_sync(&weir, "healthy-after-protocols");
    assert!(
        took < HEALTHY_JOIN_MAX,
        "a healthy group took {took:?} to join and sync"
    );
    let after = weir.rss_kib();
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB after three JoinGroups of 10,000 protocols"
    );
}

#[test]
fn join_group_with_a_10_mib_metadata_blob_is_refused() {
    let mut weir = Weir::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let before = weir.rss_kib();
    let blob = Bytes::from(vec![0x5a; 10 << 20]);
    // Eight times, each on a new connection, under a new member: a broker that kept any
    // of them would hold 80 MiB more.
    for round in 0..8 {
        let answer = hostile_join(&weir, "huge-metadata", range_protocol(blob.clone()));
        eprintln!("10 MiB metadata, round {round}: {answer:?} (Err: connection closed)");
        assert!(
            !matches!(answer, Ok(0) | Ok(MEMBER_ID_REQUIRED)),
            "round {round}: a JoinGroup with 10 MiB of protocol metadata was accepted \
             (expected INVALID_REQUEST or a close)"
        );
        weir.assert_running("a JoinGroup with 10 MiB of metadata");
    }
    let took = healthy_join_and_sync(&weir, "healthy-after-blob");
    assert!(
        took < HEALTHY_JOIN_MAX,
        "a healthy group took {took:?} to join and sync"
    );
    let after = weir.rss_kib();
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB after eight 10 MiB JoinGroups"
    );
}

/// Connections and JoinGroups pipelined on each: 2,000 members in all.
const CROWD_CONNECTIONS: usize = 250;
const CROWD_PER_CONNECTION: usize = 8;

#[test]
fn two_thousand_members_joining_at_once_are_bounded_and_other_groups_still_join() {
    let mut weir = Weir::start(&["--group-initial-rebalance-delay-ms", INITIAL_DELAY_MS]);
    let before = weir.rss_kib();
    let group = "crowd";
    let mut streams: Vec<TcpStream> = (0..CROWD_CONNECTIONS).map(|_| weir.connect()).collect();

    // Round 1: every member asks without a member id (MEMBER_ID_REQUIRED gives it one).
    for stream in streams.iter_mut() {
        let mut batch = Vec::new();
        for k in 0..CROWD_PER_CONNECTION {
            batch.extend(frame(
                ApiKey::JoinGroup,
                JOIN_VERSION,
                k as i32,
                &join_request(group, "", range_protocol(subscription())),
            ));
        }
        send(stream, &batch);
    }
    let mut member_ids: Vec<Vec<Option<String>>> = Vec::new();
    let mut refused_early = 0usize;
    for (c, stream) in streams.iter_mut().enumerate() {
        let mut ids = Vec::new();
        for k in 0..CROWD_PER_CONNECTION {
            let Some(mut body) = read_response(stream, ApiKey::JoinGroup, JOIN_VERSION, k as i32)
            else {
                panic!("connection {c} closed in the MEMBER_ID_REQUIRED round");
            };
            let r = JoinGroupResponse::decode(&mut body, JOIN_VERSION).expect("JoinGroup v5");
            match r.error_code {
                MEMBER_ID_REQUIRED => {
                    assert!(
                        !r.member_id.is_empty(),
                        "MEMBER_ID_REQUIRED without a member id"
                    );
                    ids.push(Some(r.member_id.to_string()));
                }
                GROUP_MAX_SIZE_REACHED => {
                    refused_early += 1;
                    ids.push(None);
                }
                other => panic!("connection {c}, join {k}: first JoinGroup answered {other}"),
            }
        }
        member_ids.push(ids);
    }
    let rss_round1 = weir.rss_kib();

    // Round 2: all of them join with their ids at once; the admitted ones park until the
    // rebalance completes.
    let sent_at = Instant::now();
    let mut expected: Vec<Vec<i32>> = Vec::new();
    for (stream, ids) in streams.iter_mut().zip(&member_ids) {
        let mut batch = Vec::new();
        let mut corr = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            if let Some(id) = id {
                let correlation_id = 1_000 + k as i32;
                batch.extend(frame(
                    ApiKey::JoinGroup,
                    JOIN_VERSION,
                    correlation_id,
                    &join_request(group, id, range_protocol(subscription())),
                ));
                corr.push(correlation_id);
            }
        }
        send(stream, &batch);
        expected.push(corr);
    }

    // Meanwhile another group, on its own connection, joins and syncs.
    let took = healthy_join_and_sync(&weir, "healthy-beside-the-crowd");
    assert!(
        took < HEALTHY_JOIN_MAX,
        "a healthy group took {took:?} to join and sync while 2,000 members joined another group"
    );
    let rss_parked = weir.rss_kib();

    let mut joined = Vec::new();
    let mut refused = refused_early;
    let mut closed = 0usize;
    let mut other_codes = Vec::new();
    for (c, (stream, corr)) in streams.iter_mut().zip(&expected).enumerate() {
        for &correlation_id in corr {
            match read_response(stream, ApiKey::JoinGroup, JOIN_VERSION, correlation_id) {
                None => {
                    closed += 1;
                    break;
                }
                Some(mut body) => {
                    let r =
                        JoinGroupResponse::decode(&mut body, JOIN_VERSION).expect("JoinGroup v5");
                    match r.error_code {
                        0 => joined.push(r),
                        GROUP_MAX_SIZE_REACHED => refused += 1,
                        other => other_codes.push((c, correlation_id, other)),
                    }
                }
            }
        }
    }
    let answered_in = sent_at.elapsed();
    weir.assert_running("2,000 members joining at once");
    assert!(
        other_codes.is_empty(),
        "unexpected JoinGroup answers (connection, correlation id, error): {:?}",
        &other_codes[..other_codes.len().min(10)]
    );
    assert!(
        !joined.is_empty(),
        "no member of the crowd joined (refused {refused}, closed connections {closed})"
    );
    assert!(
        joined.len() <= GROUP_MAX_SIZE,
        "{} members joined one group, more than group.max.size {GROUP_MAX_SIZE}",
        joined.len()
    );
    assert!(
        refused >= 2_000 - GROUP_MAX_SIZE || closed > 0,
        "only {refused} of 2,000 refused with GROUP_MAX_SIZE_REACHED and {} joined",
        joined.len()
    );
    // The admitted members joined one generation, and the leader was told of all of them.
    let generation = joined[0].generation_id;
    assert!(
        joined.iter().all(|r| r.generation_id == generation),
        "the crowd's members were answered with different generations"
    );
    let leaders: Vec<_> = joined.iter().filter(|r| r.leader == r.member_id).collect();
    assert_eq!(leaders.len(), 1, "exactly one member is the leader");
    assert_eq!(
        leaders[0].members.len(),
        joined.len(),
        "the leader's member list matches the members that joined"
    );
    let rss_end = weir.rss_kib();
    assert!(
        rss_end < before + 128 * 1024 && rss_parked < before + 128 * 1024,
        "RSS {before} KiB at start, {rss_round1} KiB after round 1, {rss_parked} KiB with the \
         crowd parked, {rss_end} KiB at the end"
    );
    eprintln!(
        "crowd: {} joined, {refused} refused ({refused_early} at once), {closed} connections closed, \
         answered in {answered_in:?}; healthy group took {took:?}; RSS {before} → {rss_parked} → {rss_end} KiB",
        joined.len()
    );
}

const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;

fn sync(
    stream: &mut TcpStream,
    correlation_id: i32,
    group: &str,
    generation_id: i32,
    member_id: &str,
) -> i16 {
    let request = RequestKind::SyncGroup(
        SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id(generation_id)
            .with_member_id(StrBytes::from_string(member_id.to_owned())),
    );
    send(
        stream,
        &frame(ApiKey::SyncGroup, SYNC_VERSION, correlation_id, &request),
    );
    let mut body = read_response(stream, ApiKey::SyncGroup, SYNC_VERSION, correlation_id)
        .expect("SyncGroup answered");
    SyncGroupResponse::decode(&mut body, SYNC_VERSION)
        .expect("SyncGroup v3")
        .error_code
}

fn heartbeat(
    stream: &mut TcpStream,
    correlation_id: i32,
    group: &str,
    generation_id: i32,
    member_id: &str,
) -> i16 {
    let request = RequestKind::Heartbeat(
        HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id(generation_id)
            .with_member_id(StrBytes::from_string(member_id.to_owned())),
    );
    send(
        stream,
        &frame(
            ApiKey::Heartbeat,
            HEARTBEAT_VERSION,
            correlation_id,
            &request,
        ),
    );
    let mut body = read_response(stream, ApiKey::Heartbeat, HEARTBEAT_VERSION, correlation_id)
        .expect("Heartbeat answered");
    HeartbeatResponse::decode(&mut body, HEARTBEAT_VERSION)
        .expect("Heartbeat v3")
        .error_code
}

/// The error codes clients act on, over the wire: a session timeout below the broker's
/// minimum, a join without protocols, a member id the group never gave, and a stale
/// generation on SyncGroup and Heartbeat (as Kafka answers each).
#[test]
fn join_sync_and_heartbeat_answer_the_error_codes_clients_expect() {
    let mut weir = Weir::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let mut stream = weir.connect();

    let short = RequestKind::JoinGroup(
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("codes")))
            .with_session_timeout_ms(1_000) // the default minimum is 6,000
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(range_protocol(subscription())),
    );
    let answer = join(&mut stream, 1, &short).expect("answered");
    assert_eq!(
        answer.error_code, INVALID_SESSION_TIMEOUT,
        "JoinGroup with a 1 s session timeout"
    );

    let answer = join(&mut stream, 2, &join_request("codes", "", vec![])).expect("answered");
    assert!(
        matches!(
            answer.error_code,
            INCONSISTENT_GROUP_PROTOCOL | MEMBER_ID_REQUIRED
        ),
        "JoinGroup without protocols answered {}",
        answer.error_code
    );
    if answer.error_code == MEMBER_ID_REQUIRED {
        let again = join(
            &mut stream,
            3,
            &join_request("codes", answer.member_id.as_str(), vec![]),
        )
        .expect("answered");
        assert_eq!(
            again.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "JoinGroup without protocols"
        );
    }

    // A member id the group never gave out.
    let answer = join(
        &mut stream,
        4,
        &join_request("codes", "made-up-member", range_protocol(subscription())),
    )
    .expect("answered");
    assert_eq!(
        answer.error_code, UNKNOWN_MEMBER_ID,
        "JoinGroup with an unknown member id"
    );

    // A real member at generation g: g + 1 is refused on SyncGroup and Heartbeat.
    let first = join(
        &mut stream,
        5,
        &join_request("codes", "", range_protocol(subscription())),
    )
    .expect("answered");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let member = first.member_id.to_string();
    let joined = join(
        &mut stream,
        6,
        &join_request("codes", &member, range_protocol(subscription())),
    )
    .expect("answered");
    assert_eq!(joined.error_code, 0, "the real member joins");
    let generation = joined.generation_id;
    assert_eq!(
        sync(&mut stream, 7, "codes", generation + 1, &member),
        ILLEGAL_GENERATION,
        "SyncGroup at g + 1"
    );
    assert_eq!(
        sync(&mut stream, 8, "codes", generation, &member),
        0,
        "SyncGroup at g"
    );
    assert_eq!(
        heartbeat(&mut stream, 9, "codes", generation + 1, &member),
        ILLEGAL_GENERATION,
        "Heartbeat at g + 1"
    );
    assert_eq!(
        heartbeat(&mut stream, 10, "codes", generation, "made-up-member"),
        UNKNOWN_MEMBER_ID,
        "Heartbeat of an unknown member"
    );
    assert_eq!(
        heartbeat(&mut stream, 11, "codes", generation, &member),
        0,
        "Heartbeat at g"
    );
    weir.assert_running("error-code requests");
}

/// ConsumerGroupHeartbeat v1 (KIP-848; librdkafka's `group.protocol=consumer`).
const CGH_VERSION: i16 = 1;
/// The broker's `group.consumer.max.size` default (weir bounds it).
const CONSUMER_GROUP_MAX_SIZE: usize = 1_000;

fn cgh_request(group: &str, member_id: &str, topics: Vec<String>) -> RequestKind {
    RequestKind::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_member_id(StrBytes::from_string(member_id.to_owned()))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_subscribed_topic_names(Some(
                topics
                    .into_iter()
                    .map(|t| TopicName(StrBytes::from_string(t)))
                    .collect(),
            ))
            .with_topic_partitions(Some(vec![])),
    )
}

fn read_cgh(stream: &mut TcpStream, correlation_id: i32) -> Option<ConsumerGroupHeartbeatResponse> {
    let mut body = read_response(
        stream,
        ApiKey::ConsumerGroupHeartbeat,
        CGH_VERSION,
        correlation_id,
    )?;
    Some(
        ConsumerGroupHeartbeatResponse::decode(&mut body, CGH_VERSION)
            .expect("ConsumerGroupHeartbeat v1"),
    )
}

/// KIP-848: 2,000 members heartbeat into one group at once (20 connections × 100
/// pipelined), and one member subscribes to 100,000 topic names. The group admits at most
/// `group.consumer.max.size` members and refuses the rest with GROUP_MAX_SIZE_REACHED, the
/// huge subscription is answered or closed, memory stays bounded, and a member of another
/// group still gets an epoch meanwhile.
#[test]
fn kip848_crowd_and_huge_subscription_are_bounded() {
    let mut weir = Weir::start(&["--group-initial-rebalance-delay-ms", "0"]);
    let started = Instant::now();
    let before = weir.rss_kib();
    let mut streams: Vec<TcpStream> = (0..20).map(|_| weir.connect()).collect();
    for (c, stream) in streams.iter_mut().enumerate() {
        let mut batch = Vec::new();
        for k in 0..100 {
            let member = format!("crowd-member-{c:02}-{k:03}");
            batch.extend(frame(
                ApiKey::ConsumerGroupHeartbeat,
                CGH_VERSION,
                k,
                &cgh_request("crowd848", &member, vec!["crowd-topic".to_owned()]),
            ));
        }
        send(stream, &batch);
    }
    // Meanwhile: another group's member.
    let mut other = weir.connect();
    send(
        &mut other,
        &frame(
            ApiKey::ConsumerGroupHeartbeat,
            CGH_VERSION,
            1,
            &cgh_request("beside848", "lonely-member", vec!["t".to_owned()]),
        ),
    );
    let lonely_sent = Instant::now();
    let lonely = read_cgh(&mut other, 1).expect("the other group's heartbeat answered");
    let lonely_took = lonely_sent.elapsed();
    assert_eq!(
        lonely.error_code, 0,
        "another group's member while 2,000 heartbeat: {lonely:?}"
    );
    assert!(
        lonely.member_epoch >= 1,
        "the other group's member got epoch {}",
        lonely.member_epoch
    );

    let (mut admitted, mut refused, mut closed) = (0usize, 0usize, 0usize);
    let mut other_codes = Vec::new();
    for stream in streams.iter_mut() {
        for k in 0..100 {
            match read_cgh(stream, k) {
                None => {
                    closed += 1;
                    break;
                }
                Some(r) if r.error_code == 0 => admitted += 1,
                Some(r) if r.error_code == GROUP_MAX_SIZE_REACHED => refused += 1,
                Some(r) => other_codes.push(r.error_code),
            }
        }
    }
    assert!(
        other_codes.is_empty(),
        "unexpected heartbeat answers: {:?}",
        &other_codes[..other_codes.len().min(10)]
    );
    assert!(
        (1..=CONSUMER_GROUP_MAX_SIZE).contains(&admitted),
        "{admitted} members admitted to one KIP-848 group (max {CONSUMER_GROUP_MAX_SIZE})"
    );
    assert!(
        admitted + refused == 2_000 || closed > 0,
        "{admitted} admitted + {refused} refused of 2,000 heartbeats"
    );
    let rss_crowd = weir.rss_kib();
    let crowd_took = started.elapsed();

    // One member subscribing to 100,000 topic names (about 2.4 MB).
    let topics: Vec<String> = (0..100_000)
        .map(|i| format!("subscribed-topic-{i:06}"))
        .collect();
    let mut stream = weir.connect();
    send(
        &mut stream,
        &frame(
            ApiKey::ConsumerGroupHeartbeat,
            CGH_VERSION,
            7,
            &cgh_request("huge848", "huge-member", topics),
        ),
    );
    let huge_started = Instant::now();
    let huge = read_cgh(&mut stream, 7).map(|r| r.error_code);
    let huge_took = huge_started.elapsed();
    weir.assert_running("a heartbeat with 100,000 subscribed topics");
    let again = healthy_join_and_sync(&weir, "healthy-after-848");
    let rss_end = weir.rss_kib();
    eprintln!(
        "kip848 crowd: {admitted} admitted, {refused} refused, {closed} connections closed in \
         {crowd_took:?}; 100,000 topics answered {huge:?} (None: closed) in {huge_took:?}; healthy \
         classic join {again:?}; the other group's heartbeat took {lonely_took:?}; RSS {before} → {rss_crowd} → {rss_end} KiB"
    );
    assert!(
        rss_end < before + 128 * 1024,
        "RSS {before} KiB at start, {rss_crowd} KiB after the crowd, {rss_end} KiB after the huge subscription"
    );
}
