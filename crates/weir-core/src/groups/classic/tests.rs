//! The classic group driven directly, with explicit times: every state transition and
//! error of the module docs, then a proptest over random request sequences.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 60_000;
const DELAY_MS: i64 = 3_000;

/// A consumer protocol subscription (version 0: topics, null user data).
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: DELAY_MS,
        ..GroupConfig::default()
    }
}

fn join_req(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        protocol_type: "consumer".to_owned(),
        protocols: vec![("range".to_owned(), subscription(&["t1"]))],
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        require_known_member_id: false,
        supports_skip_assignment: true,
        client_id: "client".to_owned(),
        client_host: "/127.0.0.1".to_owned(),
        reason: None,
    }
}

fn static_req(member_id: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.to_owned()),
        ..join_req(member_id)
    }
}

fn sync_req(member_id: &str, generation_id: i32, assignments: &[(&str, &[u8])]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_owned(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".to_owned()),
        protocol_name: Some("range".to_owned()),
        assignments: assignments
            .iter()
            .map(|(m, a)| ((*m).to_owned(), Bytes::copy_from_slice(a)))
            .collect(),
    }
}

/// A group plus a clock and a ticket counter; collects every reply.
struct Harness {
    group: ClassicGroup,
    config: GroupConfig,
    now_ms: i64,
    next_ticket: Ticket,
    joins: BTreeMap<Ticket, Result<JoinResponse, JoinError>>,
    syncs: BTreeMap<Ticket, Result<SyncResponse, GroupError>>,
    changed: bool,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(config())
    }

    fn with_config(config: GroupConfig) -> Self {
        Self {
            group: ClassicGroup::new("g".to_owned(), 0),
            config,
            now_ms: 0,
            next_ticket: 1,
            joins: BTreeMap::new(),
            syncs: BTreeMap::new(),
            changed: false,
        }
    }

    fn absorb(&mut self, out: Effects) {
        self.changed |= out.changed;
        for reply in out.replies {
            match reply {
                Reply::Join(t, r) => {
                    assert!(self.joins.insert(t, r).is_none(), "join {t} answered twice")
                }
                Reply::Sync(t, r) => {
                    assert!(self.syncs.insert(t, r).is_none(), "sync {t} answered twice")
                }
            }
        }
        check_invariants(&self.group);
    }

    fn join(&mut self, req: JoinRequest) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let mut out = Effects::default();
        self.group
            .join(req, ticket, &self.config, self.now_ms, &mut out);
        self.absorb(out);
        ticket
    }

    fn sync(&mut self, req: SyncRequest) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let mut out = Effects::default();
        self.group.sync(req, ticket, self.now_ms, &mut out);
        self.absorb(out);
        ticket
    }

    fn heartbeat(&mut self, member_id: &str, generation_id: i32) -> Result<(), GroupError> {
        self.group
            .heartbeat(member_id, None, generation_id, self.now_ms)
    }

    fn leave(&mut self, members: &[LeaveMember]) -> Vec<Result<(), GroupError>> {
        let mut out = Effects::default();
        let r = self
            .group
            .leave(members, &self.config, self.now_ms, &mut out);
        self.absorb(out);
        r
    }

    fn advance_to(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
        let mut out = Effects::default();
        self.group.tick(&self.config, now_ms, &mut out);
        self.absorb(out);
    }

    fn joined(&self, ticket: Ticket) -> &JoinResponse {
        match self.joins.get(&ticket) {
            Some(Ok(r)) => r,
            other => panic!("join {ticket}: {other:?}"),
        }
    }

    fn join_error(&self, ticket: Ticket) -> GroupError {
        match self.joins.get(&ticket) {
            Some(Err(e)) => e.error,
            other => panic!("join {ticket}: {other:?}"),
        }
    }

    fn synced(&self, ticket: Ticket) -> &SyncResponse {
        match self.syncs.get(&ticket) {
            Some(Ok(r)) => r,
            other => panic!("sync {ticket}: {other:?}"),
        }
    }

    fn sync_error(&self, ticket: Ticket) -> GroupError {
        match self.syncs.get(&ticket) {
            Some(Err(e)) => *e,
            other => panic!("sync {ticket}: {other:?}"),
        }
    }

    fn answered(&self, ticket: Ticket) -> bool {
        self.joins.contains_key(&ticket) || self.syncs.contains_key(&ticket)
    }

    /// One member joins an empty group, waits out the initial delay, and syncs: returns
    /// its member id; the group is Stable at generation 1.
    fn stable_with_one(&mut self) -> String {
        let t = self.join(join_req(""));
        self.advance_to(self.now_ms + DELAY_MS);
        let id = self.joined(t).member_id.clone();
        let s = self.sync(sync_req(&id, 1, &[(&id, b"a1")]));
        assert_eq!(self.synced(s).assignment, Bytes::from_static(b"a1"));
        id
    }
}

/// What must hold after every call.
fn check_invariants(g: &ClassicGroup) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (id, m) in &g.members {
        assert_eq!(id, &m.id);
        for (name, _) in &m.protocols {
            *counts.entry(name.clone()).or_insert(0) += 1;
        }
        if m.join_ticket.is_some() {
            assert_eq!(
                g.state,
                ClassicState::PreparingRebalance,
                "parked join outside PreparingRebalance"
            );
        }
        if m.sync_ticket.is_some() {
            assert_eq!(
                g.state,
                ClassicState::CompletingRebalance,
                "parked sync outside CompletingRebalance"
            );
        }
        if g.state == ClassicState::Stable {
            assert_eq!(
                m.assignment_generation,
                Some(g.generation_id),
                "Stable member {id} without an assignment"
            );
        }
        if let Some(instance) = &m.instance_id {
            assert_eq!(g.static_members.get(instance), Some(id));
        }
    }
    assert_eq!(counts, g.protocol_counts);
    assert_eq!(
        g.static_members.len(),
        g.members
            .values()
            .filter(|m| m.instance_id.is_some())
            .count()
    );
    match &g.leader {
        Some(l) => assert!(g.members.contains_key(l)),
        None => assert!(g.members.is_empty()),
    }
    if g.state == ClassicState::Empty {
        assert!(g.members.is_empty());
        assert!(g.protocol_name.is_none());
    }
    if matches!(
        g.state,
        ClassicState::Stable | ClassicState::CompletingRebalance
    ) {
        assert!(g.protocol_name.is_some());
        assert!(!g.members.is_empty());
    }
}

#[test]
fn state_names_are_kafkas() {
    assert_eq!(ClassicState::Empty.name(), "Empty");
    assert_eq!(
        ClassicState::PreparingRebalance.name(),
        "PreparingRebalance"
    );
    assert_eq!(
        ClassicState::CompletingRebalance.name(),
        "CompletingRebalance"
    );
    assert_eq!(ClassicState::Stable.name(), "Stable");
    assert_eq!(ClassicState::Dead.name(), "Dead");
}

#[test]
fn first_member_waits_the_initial_delay_then_leads() {
    let mut h = Harness::new();
    let t = h.join(join_req(""));
    assert!(!h.answered(t));
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    assert_eq!(h.group.next_deadline(), Some(DELAY_MS));
    h.advance_to(DELAY_MS - 1);
    assert!(!h.answered(t), "answered before the initial delay");
    h.advance_to(DELAY_MS);
    let r = h.joined(t).clone();
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, r.member_id);
    assert!(r.member_id.starts_with("client-"));
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, subscription(&["t1"]));
    assert!(!r.skip_assignment);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    assert!(!h.changed, "nothing durable until the assignment");
    let s = h.sync(sync_req(&r.member_id, 1, &[(&r.member_id, b"x")]));
    assert_eq!(h.synced(s).assignment, Bytes::from_static(b"x"));
    assert_eq!(h.synced(s).protocol_name.as_deref(), Some("range"));
    assert_eq!(h.group.state(), ClassicState::Stable);
    assert!(h.changed);
    let snap = h.group.snapshot();
    assert_eq!(snap.generation_id, 1);
    assert_eq!(snap.members.len(), 1);
    assert_eq!(snap.members[0].assignment, Bytes::from_static(b"x"));
}

#[test]
fn each_new_joiner_extends_the_initial_delay() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    h.now_ms = 1_000;
    let t2 = h.join(join_req(""));
    h.advance_to(DELAY_MS);
    assert!(
        !h.answered(t1) && !h.answered(t2),
        "a joiner during the delay extends it"
    );
    assert_eq!(h.group.next_deadline(), Some(2 * DELAY_MS));
    h.advance_to(2 * DELAY_MS);
    assert_eq!(h.joined(t1).generation_id, 1);
    assert_eq!(h.joined(t2).generation_id, 1);
    let leader = h.joined(t1).leader.clone();
    assert_eq!(leader, h.joined(t1).member_id);
    assert_eq!(h.joined(t1).members.len(), 2);
    assert!(
        h.joined(t2).members.is_empty(),
        "only the leader gets the member list"
    );
}

#[test]
fn the_initial_delay_never_passes_the_rebalance_timeout() {
    let mut h = Harness::new();
    let short = |id: &str| JoinRequest {
        rebalance_timeout_ms: 5_000,
        ..join_req(id)
    };
    let t1 = h.join(short(""));
    h.now_ms = 1_000;
    h.join(short(""));
    h.advance_to(3_000); // extended by min(3000, 5000 - 3000) = 2000
    assert!(!h.answered(t1));
    h.now_ms = 4_000;
    h.join(short(""));
    h.advance_to(5_000); // no time left: completes despite the new joiner
    assert_eq!(h.joined(t1).generation_id, 1);
    assert_eq!(h.joined(t1).members.len(), 3);
}

#[test]
fn a_new_member_must_rejoin_with_the_id_it_was_given() {
    let mut h = Harness::new();
    let t = h.join(JoinRequest {
        require_known_member_id: true,
        ..join_req("")
    });
    let id = match h.joins.get(&t) {
        Some(Err(JoinError {
            error: GroupError::MemberIdRequired,
            member_id,
        })) => member_id.clone(),
        other => panic!("{other:?}"),
    };
    assert!(id.starts_with("client-") && id.len() > "client-".len() + 30);
    assert_eq!(h.group.state(), ClassicState::Empty);
    assert_eq!(h.group.member_count(), 0);
    let t = h.join(join_req(&id));
    h.advance_to(DELAY_MS);
    assert_eq!(h.joined(t).member_id, id);
    assert_eq!(h.joined(t).generation_id, 1);
}

#[test]
fn a_pending_member_id_expires_after_one_session_timeout() {
    let mut h = Harness::new();
    let t = h.join(JoinRequest {
        require_known_member_id: true,
        ..join_req("")
    });
    let id = match h.joins.get(&t) {
        Some(Err(e)) => e.member_id.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(h.group.next_deadline(), Some(i64::from(SESSION_MS)));
    h.advance_to(i64::from(SESSION_MS));
    assert_eq!(h.group.next_deadline(), None);
    let t = h.join(join_req(&id));
    assert_eq!(h.join_error(t), GroupError::UnknownMemberId);
}

#[test]
fn a_pending_member_holds_a_rebalance_until_it_joins() {
    let mut h = Harness::new();
    let id1 = h.stable_with_one();
    let t = h.join(JoinRequest {
        require_known_member_id: true,
        ..join_req("")
    });
    let pending = match h.joins.get(&t) {
        Some(Err(e)) => e.member_id.clone(),
        other => panic!("{other:?}"),
    };
    // The leader rejoins: a rebalance that waits for the pending member too.
    let t1 = h.join(join_req(&id1));
    assert!(!h.answered(t1));
    let t2 = h.join(join_req(&pending));
    assert_eq!(h.joined(t1).generation_id, 2);
    assert_eq!(h.joined(t2).generation_id, 2);
    assert_eq!(h.joined(t1).members.len(), 2);
}

#[test]
fn join_errors() {
    let mut h = Harness::new();
    let bad_session = h.join(JoinRequest {
        session_timeout_ms: 1,
        ..join_req("")
    });
    assert_eq!(h.join_error(bad_session), GroupError::InvalidSessionTimeout);
    let too_long = h.join(JoinRequest {
        session_timeout_ms: h.config.max_session_timeout_ms + 1,
        ..join_req("")
    });
    assert_eq!(h.join_error(too_long), GroupError::InvalidSessionTimeout);
    let no_protocols = h.join(JoinRequest {
        protocols: vec![],
        ..join_req("")
    });
    assert_eq!(
        h.join_error(no_protocols),
        GroupError::InconsistentGroupProtocol
    );
    let no_type = h.join(JoinRequest {
        protocol_type: String::new(),
        ..join_req("")
    });
    assert_eq!(h.join_error(no_type), GroupError::InconsistentGroupProtocol);
    let unknown = h.join(join_req("nobody"));
    assert_eq!(h.join_error(unknown), GroupError::UnknownMemberId);
    assert_eq!(h.group.state(), ClassicState::Empty);

    let id = h.stable_with_one();
    let other_type = h.join(JoinRequest {
        protocol_type: "connect".to_owned(),
        ..join_req("")
    });
    assert_eq!(
        h.join_error(other_type),
        GroupError::InconsistentGroupProtocol
    );
    let no_common = h.join(JoinRequest {
        protocols: vec![("roundrobin".to_owned(), Bytes::new())],
        ..join_req("")
    });
    assert_eq!(
        h.join_error(no_common),
        GroupError::InconsistentGroupProtocol
    );
    let unknown = h.join(join_req("nobody"));
    assert_eq!(h.join_error(unknown), GroupError::UnknownMemberId);
    assert_eq!(
        h.group.state(),
        ClassicState::Stable,
        "errors leave the group as it was"
    );
    assert_eq!(h.heartbeat(&id, 1), Ok(()));
}

#[test]
fn join_bounds_store_nothing() {
    let mut h = Harness::new();
    let many = (0..=PROTOCOLS_PER_MEMBER_MAX)
        .map(|i| (format!("p{i}"), Bytes::new()))
        .collect();
    let cases = vec![
        JoinRequest {
            protocols: many,
            ..join_req("")
        },
        JoinRequest {
            protocols: vec![("x".repeat(NAME_MAX_BYTES + 1), Bytes::new())],
            ..join_req("")
        },
        JoinRequest {
            protocols: vec![(
                "range".to_owned(),
                Bytes::from(vec![0; MEMBER_METADATA_MAX_BYTES + 1]),
            )],
            ..join_req("")
        },
        JoinRequest {
            protocols: vec![
                ("range".to_owned(), Bytes::new()),
                ("range".to_owned(), Bytes::new()),
            ],
            ..join_req("")
        },
        JoinRequest {
            client_id: "c".repeat(NAME_MAX_BYTES + 1),
            ..join_req("")
        },
        JoinRequest {
            group_instance_id: Some(String::new()),
            ..join_req("")
        },
    ];
    for req in cases {
        let t = h.join(req);
        assert_eq!(h.join_error(t), GroupError::InvalidRequest);
        assert_eq!(h.group.state(), ClassicState::Empty);
        assert_eq!(h.group.member_count(), 0);
    }
    // At the bound exactly is fine.
    let at_bound = h.join(JoinRequest {
        protocols: vec![(
            "range".to_owned(),
            Bytes::from(vec![0; MEMBER_METADATA_MAX_BYTES - "range".len()]),
        )],
        ..join_req("")
    });
    assert!(!h.answered(at_bound));
    assert_eq!(h.group.member_count(), 1);
}

#[test]
fn the_group_total_is_bounded() {
    let mut h = Harness::new();
    let big = Bytes::from(vec![0; MEMBER_METADATA_MAX_BYTES - 16]);
    let fit = GROUP_METADATA_MAX_BYTES / MEMBER_METADATA_MAX_BYTES;
    for _ in 0..fit {
        let t = h.join(JoinRequest {
            protocols: vec![("range".to_owned(), big.clone())],
            ..join_req("")
        });
        assert!(!h.answered(t));
    }
    let t = h.join(JoinRequest {
        protocols: vec![("range".to_owned(), big.clone())],
        ..join_req("")
    });
    assert_eq!(h.join_error(t), GroupError::InvalidRequest);
    assert_eq!(h.group.member_count(), fit);
}

#[test]
fn a_full_group_refuses_new_members() {
    let mut h = Harness::with_config(GroupConfig {
        max_size: 2,
        ..config()
    });
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    let t3 = h.join(join_req(""));
    assert_eq!(h.join_error(t3), GroupError::GroupMaxSizeReached);
    h.advance_to(2 * DELAY_MS);
    assert_eq!(h.joined(t1).members.len(), 2);
    assert!(h.joins.contains_key(&t2));
    let t4 = h.join(join_req(""));
    assert_eq!(h.join_error(t4), GroupError::GroupMaxSizeReached);
    let t5 = h.join(JoinRequest {
        require_known_member_id: true,
        ..join_req("")
    });
    assert_eq!(h.join_error(t5), GroupError::GroupMaxSizeReached);
}

/// Three members join together and sync; returns their ids (leader first).
fn three_stable(h: &mut Harness) -> Vec<String> {
    let tickets: Vec<Ticket> = (0..3).map(|_| h.join(join_req(""))).collect();
    h.advance_to(h.now_ms + 2 * DELAY_MS);
    let ids: Vec<String> = tickets
        .iter()
        .map(|t| h.joined(*t).member_id.clone())
        .collect();
    let leader = h.joined(tickets[0]).leader.clone();
    assert_eq!(leader, ids[0]);
    assert_eq!(h.joined(tickets[0]).members.len(), 3);
    // Followers sync first and wait for the leader.
    let s1 = h.sync(sync_req(&ids[1], 1, &[]));
    let s2 = h.sync(sync_req(&ids[2], 1, &[]));
    assert!(!h.answered(s1) && !h.answered(s2));
    assert_eq!(
        h.heartbeat(&ids[1], 1),
        Ok(()),
        "heartbeats are fine while completing"
    );
    let s0 = h.sync(sync_req(
        &ids[0],
        1,
        &[(&ids[0], b"a0"), (&ids[1], b"a1"), (&ids[2], b"a2")],
    ));
    assert_eq!(h.synced(s0).assignment, Bytes::from_static(b"a0"));
    assert_eq!(h.synced(s1).assignment, Bytes::from_static(b"a1"));
    assert_eq!(h.synced(s2).assignment, Bytes::from_static(b"a2"));
    assert_eq!(h.group.state(), ClassicState::Stable);
    ids
}

#[test]
fn three_members_join_and_sync() {
    let mut h = Harness::new();
    let ids = three_stable(&mut h);
    let d = h.group.describe();
    assert_eq!(d.state, ClassicState::Stable);
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.protocol_name, "range");
    assert_eq!(d.members.len(), 3);
    let mine = d
        .members
        .iter()
        .find(|m| m.member_id == ids[2])
        .expect("described");
    assert_eq!(mine.assignment, Bytes::from_static(b"a2"));
    assert_eq!(mine.metadata, subscription(&["t1"]));
    assert_eq!(mine.client_host, "/127.0.0.1");
}

#[test]
fn a_late_sync_gets_its_assignment_at_once() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (leader, follower) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    let s = h.sync(sync_req(&leader, 1, &[(&follower, b"f")]));
    assert_eq!(
        h.synced(s).assignment,
        Bytes::new(),
        "a member the leader left out gets empty bytes"
    );
    h.now_ms += 1_000;
    let late = h.sync(sync_req(&follower, 1, &[]));
    assert_eq!(h.synced(late).assignment, Bytes::from_static(b"f"));
}

#[test]
fn sync_errors() {
    let mut h = Harness::new();
    let none = h.sync(sync_req("nobody", 0, &[]));
    assert_eq!(h.sync_error(none), GroupError::UnknownMemberId);
    let t1 = h.join(join_req(""));
    let prep = h.sync(sync_req("nobody", 0, &[]));
    assert_eq!(h.sync_error(prep), GroupError::UnknownMemberId);
    h.advance_to(DELAY_MS);
    let id = h.joined(t1).member_id.clone();
    let wrong_gen = h.sync(sync_req(&id, 7, &[]));
    assert_eq!(h.sync_error(wrong_gen), GroupError::IllegalGeneration);
    let wrong_name = h.sync(SyncRequest {
        protocol_name: Some("roundrobin".to_owned()),
        ..sync_req(&id, 1, &[])
    });
    assert_eq!(
        h.sync_error(wrong_name),
        GroupError::InconsistentGroupProtocol
    );
    let wrong_type = h.sync(SyncRequest {
        protocol_type: Some("connect".to_owned()),
        ..sync_req(&id, 1, &[])
    });
    assert_eq!(
        h.sync_error(wrong_type),
        GroupError::InconsistentGroupProtocol
    );
    let dup = h.sync(sync_req(&id, 1, &[(&id, b"a"), (&id, b"b")]));
    assert_eq!(h.sync_error(dup), GroupError::InvalidRequest);
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
    // Without type and name (SyncGroup < v5) is fine.
    let ok = h.sync(SyncRequest {
        protocol_type: None,
        protocol_name: None,
        ..sync_req(&id, 1, &[(&id, b"a")])
    });
    assert_eq!(h.synced(ok).assignment, Bytes::from_static(b"a"));
    // The leader rejoins: PreparingRebalance answers syncs RebalanceInProgress.
    h.join(join_req(&id));
    let t2 = h.join(join_req(""));
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    let _ = t2;
    let during = h.sync(sync_req(&id, h.group.generation_id(), &[]));
    assert_eq!(h.sync_error(during), GroupError::RebalanceInProgress);
}

#[test]
fn a_parked_sync_is_answered_when_a_new_rebalance_starts() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let follower = h.joined(t2).member_id.clone();
    let leader = h.joined(t1).member_id.clone();
    let parked = h.sync(sync_req(&follower, 1, &[]));
    assert!(!h.answered(parked));
    // A new member arrives while completing: the generation is abandoned.
    let t3 = h.join(join_req(""));
    assert_eq!(h.sync_error(parked), GroupError::RebalanceInProgress);
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(&leader, 1),
        Err(GroupError::RebalanceInProgress)
    );
    let r1 = h.join(join_req(&leader));
    let r2 = h.join(join_req(&follower));
    assert_eq!(h.joined(r1).generation_id, 2);
    assert_eq!(h.joined(r2).generation_id, 2);
    assert_eq!(h.joined(t3).generation_id, 2);
    assert_eq!(h.joined(r1).members.len(), 3);
}

#[test]
fn heartbeat_outcomes() {
    let mut h = Harness::new();
    assert_eq!(h.heartbeat("nobody", 0), Err(GroupError::UnknownMemberId));
    let id = h.stable_with_one();
    assert_eq!(h.heartbeat(&id, 1), Ok(()));
    assert_eq!(h.heartbeat(&id, 0), Err(GroupError::IllegalGeneration));
    assert_eq!(h.heartbeat("nobody", 1), Err(GroupError::UnknownMemberId));
    assert_eq!(
        h.group.heartbeat(&id, Some("not-mine"), 1, h.now_ms),
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn a_silent_member_expires_and_the_group_rebalances() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (a, b) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&a, 1, &[(&a, b"a"), (&b, b"b")]));
    h.sync(sync_req(&b, 1, &[]));
    let start = h.now_ms;
    // b heartbeats, a does not.
    for step in 1..=2 {
        h.advance_to(start + step * 4_000);
        assert_eq!(h.heartbeat(&b, 1), Ok(()));
    }
    assert_eq!(h.group.state(), ClassicState::Stable);
    h.advance_to(start + i64::from(SESSION_MS) - 1);
    assert_eq!(h.group.state(), ClassicState::Stable);
    h.advance_to(start + i64::from(SESSION_MS));
    assert_eq!(
        h.group.state(),
        ClassicState::PreparingRebalance,
        "a expired at start+10s"
    );
    assert!(!h.group.members.contains_key(&a));
    assert_eq!(h.heartbeat(&b, 1), Err(GroupError::RebalanceInProgress));
    let r = h.join(join_req(&b));
    assert_eq!(h.joined(r).generation_id, 2);
    assert_eq!(
        h.joined(r).leader,
        b,
        "the leader left: a remaining member leads"
    );
}

#[test]
fn the_rebalance_timeout_removes_a_member_that_does_not_rejoin() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (a, b) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&a, 1, &[]));
    h.sync(sync_req(&b, 1, &[]));
    let start = h.now_ms;
    let r = h.join(join_req(&a)); // the leader rejoining starts a rebalance
    assert!(!h.answered(r));
    assert_eq!(h.group.next_deadline(), Some(start + i64::from(SESSION_MS)));
    // b keeps heartbeating (so its session lives) but never rejoins.
    let mut now = start;
    while now + 5_000 < start + i64::from(REBALANCE_MS) {
        now += 5_000;
        h.advance_to(now);
        assert_eq!(h.heartbeat(&b, 1), Err(GroupError::RebalanceInProgress));
    }
    assert!(!h.answered(r));
    h.advance_to(start + i64::from(REBALANCE_MS));
    assert_eq!(h.joined(r).generation_id, 2);
    assert_eq!(h.joined(r).members.len(), 1);
    assert_eq!(h.heartbeat(&b, 2), Err(GroupError::UnknownMemberId));
}

#[test]
fn a_member_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (a, b) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    let s = h.sync(sync_req(&a, 1, &[]));
    assert!(h.answered(s));
    let done = h.now_ms;
    // b heartbeats but never sends SyncGroup.
    let mut now = done;
    while now + 5_000 < done + i64::from(REBALANCE_MS) {
        now += 5_000;
        h.advance_to(now);
        assert_eq!(h.heartbeat(&b, 1), Ok(()));
        assert_eq!(h.heartbeat(&a, 1), Ok(()));
    }
    assert!(h.group.members.contains_key(&b));
    h.advance_to(done + i64::from(REBALANCE_MS));
    assert!(!h.group.members.contains_key(&b));
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
}

#[test]
fn static_member_restart_keeps_the_generation_and_assignment() {
    let mut h = Harness::new();
    let t1 = h.join(static_req("", "i1"));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (old, dyn_id) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    assert!(
        old.starts_with("i1-"),
        "static ids start with the instance id"
    );
    assert_eq!(h.joined(t1).leader, old);
    h.sync(SyncRequest {
        group_instance_id: Some("i1".to_owned()),
        ..sync_req(&old, 1, &[(&old, b"s"), (&dyn_id, b"d")])
    });
    h.sync(sync_req(&dyn_id, 1, &[]));
    h.changed = false;
    // The static member restarts: it has lost its member id.
    let again = h.join(static_req("", "i1"));
    let r = h.joined(again).clone();
    assert_ne!(r.member_id, old);
    assert_eq!(r.generation_id, 1, "no rebalance");
    assert_eq!(r.leader, r.member_id);
    assert!(
        r.skip_assignment,
        "the leader need not assign again (JoinGroup v9)"
    );
    assert_eq!(r.members.len(), 2);
    assert_eq!(h.group.state(), ClassicState::Stable);
    assert!(h.changed, "the new member id is durable");
    assert_eq!(
        h.group.snapshot().leader.as_deref(),
        Some(r.member_id.as_str())
    );
    let s = h.sync(SyncRequest {
        group_instance_id: Some("i1".to_owned()),
        ..sync_req(&r.member_id, 1, &[])
    });
    assert_eq!(h.synced(s).assignment, Bytes::from_static(b"s"));
    // The old id is fenced.
    assert_eq!(
        h.group.heartbeat(&old, Some("i1"), 1, h.now_ms),
        Err(GroupError::FencedInstanceId)
    );
    let fenced = h.join(static_req(&old, "i1"));
    assert_eq!(h.join_error(fenced), GroupError::FencedInstanceId);
    assert_eq!(
        h.heartbeat(&dyn_id, 1),
        Ok(()),
        "the other member carries on"
    );
}

#[test]
fn static_rejoin_before_v9_names_the_old_leader() {
    let mut h = Harness::new();
    let t1 = h.join(static_req("", "i1"));
    h.advance_to(DELAY_MS);
    let old = h.joined(t1).member_id.clone();
    h.sync(sync_req(&old, 1, &[(&old, b"s")]));
    let again = h.join(JoinRequest {
        supports_skip_assignment: false,
        ..static_req("", "i1")
    });
    let r = h.joined(again);
    assert_eq!(r.leader, old);
    assert!(r.members.is_empty());
    assert!(!r.skip_assignment);
}

#[test]
fn static_rejoin_with_new_protocols_rebalances() {
    let mut h = Harness::new();
    let t1 = h.join(static_req("", "i1"));
    h.advance_to(DELAY_MS);
    let old = h.joined(t1).member_id.clone();
    h.sync(sync_req(&old, 1, &[(&old, b"s")]));
    let again = h.join(JoinRequest {
        protocols: vec![
            ("roundrobin".to_owned(), Bytes::new()),
            ("range".to_owned(), Bytes::new()),
        ],
        ..static_req("", "i1")
    });
    // Alone in the group, every member (just it) has rejoined: completes at once.
    let r = h.joined(again);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.protocol_name.as_deref(), Some("roundrobin"));
}

#[test]
fn a_static_member_that_does_not_rejoin_stays_until_its_session_expires() {
    let mut h = Harness::new();
    let t1 = h.join(static_req("", "i1"));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (s, d) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&s, 1, &[]));
    h.sync(sync_req(&d, 1, &[]));
    let start = h.now_ms;
    // d's subscription changes, which starts a rebalance; the static member is silent.
    let r = h.join(JoinRequest {
        protocols: vec![("range".to_owned(), subscription(&["t1", "t2"]))],
        ..join_req(&d)
    });
    assert!(!h.answered(r));
    h.advance_to(start + i64::from(SESSION_MS) - 1);
    assert!(!h.answered(r), "the static member is waited for");
    assert!(h.group.static_members.contains_key("i1"));
    h.advance_to(start + i64::from(SESSION_MS));
    // Its session ran out first: it is removed, and the rebalance completes without it.
    assert_eq!(h.joined(r).generation_id, 2);
    assert_eq!(h.joined(r).members.len(), 1);
    assert!(h.group.static_members.is_empty());
}

#[test]
fn leave_group() {
    let mut h = Harness::new();
    let ids = three_stable(&mut h);
    h.changed = false;
    let results = h.leave(&[
        LeaveMember {
            member_id: ids[1].clone(),
            group_instance_id: None,
        },
        LeaveMember {
            member_id: "nobody".to_owned(),
            group_instance_id: None,
        },
        LeaveMember {
            member_id: ids[2].clone(),
            group_instance_id: Some("not-it".to_owned()),
        },
    ]);
    assert_eq!(
        results,
        vec![
            Ok(()),
            Err(GroupError::UnknownMemberId),
            Err(GroupError::UnknownMemberId)
        ]
    );
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    let r0 = h.join(join_req(&ids[0]));
    let r2 = h.join(join_req(&ids[2]));
    assert_eq!(h.joined(r0).generation_id, 2);
    assert_eq!(h.joined(r2).generation_id, 2);
    h.sync(sync_req(&ids[0], 2, &[]));
    h.sync(sync_req(&ids[2], 2, &[]));
    // Everyone leaves: the group goes Empty with a new generation, durably.
    h.changed = false;
    let results = h.leave(&[
        LeaveMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
        },
        LeaveMember {
            member_id: ids[2].clone(),
            group_instance_id: None,
        },
    ]);
    assert_eq!(results, vec![Ok(()), Ok(())]);
    assert_eq!(h.group.state(), ClassicState::Empty);
    assert_eq!(h.group.generation_id(), 3);
    assert!(h.changed);
    assert!(h.group.snapshot().members.is_empty());
    assert_eq!(h.group.snapshot().generation_id, 3);
}

#[test]
fn leave_by_instance_id_and_fencing() {
    let mut h = Harness::new();
    let t1 = h.join(static_req("", "i1"));
    let t2 = h.join(static_req("", "i2"));
    h.advance_to(2 * DELAY_MS);
    let (a, b) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&a, 1, &[]));
    h.sync(sync_req(&b, 1, &[]));
    let results = h.leave(&[
        LeaveMember {
            member_id: "stale".to_owned(),
            group_instance_id: Some("i1".to_owned()),
        },
        LeaveMember {
            member_id: String::new(),
            group_instance_id: Some("i2".to_owned()),
        },
        LeaveMember {
            member_id: String::new(),
            group_instance_id: Some("i3".to_owned()),
        },
    ]);
    assert_eq!(
        results,
        vec![
            Err(GroupError::FencedInstanceId),
            Ok(()),
            Err(GroupError::UnknownMemberId)
        ]
    );
    assert!(!h.group.members.contains_key(&b));
    assert!(h.group.members.contains_key(&a));
}

#[test]
fn offset_commit_checks() {
    let mut h = Harness::new();
    assert_eq!(
        h.group.validate_offset_commit("", None, -1),
        Ok(()),
        "standalone commit on an empty group"
    );
    assert_eq!(
        h.group.validate_offset_commit("x", None, 3),
        Err(GroupError::UnknownMemberId)
    );
    let t = h.join(join_req(""));
    assert_eq!(
        h.group.validate_offset_commit("", None, -1),
        Err(GroupError::UnknownMemberId)
    );
    h.advance_to(DELAY_MS);
    let id = h.joined(t).member_id.clone();
    assert_eq!(
        h.group.validate_offset_commit(&id, None, 1),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        h.group.validate_offset_commit(&id, None, 0),
        Err(GroupError::IllegalGeneration)
    );
    h.sync(sync_req(&id, 1, &[]));
    assert_eq!(h.group.validate_offset_commit(&id, None, 1), Ok(()));
    assert_eq!(
        h.group.validate_offset_commit(&id, Some("i9"), 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        h.group.validate_offset_commit("", None, -1),
        Err(GroupError::UnknownMemberId)
    );
    let mut out = Effects::default();
    h.group.mark_dead(&mut out);
    assert_eq!(
        h.group.validate_offset_commit(&id, None, 1),
        Err(GroupError::CoordinatorNotAvailable)
    );
}

#[test]
fn snapshot_restore_round_trip() {
    let mut h = Harness::new();
    let t1 = h.join(static_req("", "i1"));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (s, d) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&s, 1, &[(&s, b"S"), (&d, b"D")]));
    let snap = h.group.snapshot();
    assert_eq!(snap.protocol_type, "consumer");
    assert_eq!(snap.protocol_name.as_deref(), Some("range"));
    assert_eq!(snap.leader.as_deref(), Some(s.as_str()));
    assert_eq!(snap.members.len(), 2);

    let restart_ms = 1_000_000;
    let mut r = Harness::new();
    r.group = ClassicGroup::restore("g".to_owned(), snap.clone(), restart_ms);
    r.now_ms = restart_ms;
    check_invariants(&r.group);
    assert_eq!(r.group.state(), ClassicState::Stable);
    assert_eq!(r.group.generation_id(), 1);
    assert_eq!(r.group.snapshot(), snap);
    assert_eq!(
        r.group.next_deadline(),
        Some(restart_ms + i64::from(SESSION_MS))
    );
    assert_eq!(r.heartbeat(&d, 1), Ok(()));
    let late = r.sync(sync_req(&d, 1, &[]));
    assert_eq!(r.synced(late).assignment, Bytes::from_static(b"D"));
    // The static member comes back with no id: still no rebalance.
    let again = r.join(static_req("", "i1"));
    assert_eq!(r.joined(again).generation_id, 1);
    assert_eq!(r.group.state(), ClassicState::Stable);
    // Sessions restarted at restore time.
    r.advance_to(restart_ms + i64::from(SESSION_MS) + 1);
    assert_ne!(r.group.state(), ClassicState::Stable);

    // An empty snapshot comes back Empty with its generation.
    let empty = ClassicGroupSnapshot {
        protocol_type: "consumer".to_owned(),
        generation_id: 5,
        protocol_name: None,
        leader: None,
        state_timestamp_ms: 7,
        members: vec![],
    };
    let g = ClassicGroup::restore("g".to_owned(), empty, 100);
    assert_eq!(g.state(), ClassicState::Empty);
    assert_eq!(g.generation_id(), 5);
    assert_eq!(g.state_timestamp_ms(), 7);
    assert_eq!(g.next_deadline(), None);
}

#[test]
fn protocol_selection_by_votes() {
    let mut h = Harness::new();
    let p = |names: &[&str]| -> Vec<(String, Bytes)> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), Bytes::new()))
            .collect()
    };
    let t1 = h.join(JoinRequest {
        protocols: p(&["a", "b", "c"]),
        ..join_req("")
    });
    h.join(JoinRequest {
        protocols: p(&["b", "a"]),
        ..join_req("")
    });
    h.join(JoinRequest {
        protocols: p(&["b", "a"]),
        ..join_req("")
    });
    h.advance_to(2 * DELAY_MS);
    assert_eq!(h.joined(t1).protocol_name.as_deref(), Some("b"));
}

#[test]
fn subscribed_topics_decode_untrusted_bytes() {
    let mut h = Harness::new();
    h.join(JoinRequest {
        protocols: vec![("range".to_owned(), subscription(&["t1", "t2"]))],
        ..join_req("")
    });
    h.join(JoinRequest {
        protocols: vec![("range".to_owned(), subscription(&["t3"]))],
        ..join_req("")
    });
    // Claims 2^31-1 topics in 10 bytes: contributes nothing, allocates nothing.
    let mut bad = vec![0, 0, 0x7f, 0xff, 0xff, 0xff];
    bad.extend_from_slice(&[0, 1, b'x', 0]);
    h.join(JoinRequest {
        protocols: vec![("range".to_owned(), Bytes::from(bad))],
        ..join_req("")
    });
    assert!(
        h.group.subscribed_topics().is_empty(),
        "no protocol chosen yet"
    );
    h.advance_to(2 * DELAY_MS);
    let topics: Vec<String> = h.group.subscribed_topics().into_iter().collect();
    assert_eq!(topics, vec!["t1", "t2", "t3"]);
    assert_eq!(decode_subscription_topics(&[]), None);
    assert_eq!(decode_subscription_topics(&[0xff, 0xff, 0, 0, 0, 0]), None);
    assert_eq!(
        decode_subscription_topics(&[0, 3, 0, 0, 0, 1, 0xff, 0xff]),
        None
    );
    assert_eq!(
        decode_subscription_topics(&[0, 3, 0, 0, 0, 1, 0, 1, 0xc3]),
        None
    );
    assert_eq!(
        decode_subscription_topics(&[0, 3, 0, 0, 0, 0]),
        Some(vec![])
    );
}

#[test]
fn mark_dead_answers_parked_requests() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(JoinRequest {
        require_known_member_id: true,
        ..join_req("")
    });
    assert!(h.answered(t2));
    let mut out = Effects::default();
    h.group.mark_dead(&mut out);
    h.absorb(out);
    assert_eq!(h.join_error(t1), GroupError::CoordinatorNotAvailable);
    assert_eq!(h.group.state(), ClassicState::Dead);
    assert_eq!(h.group.next_deadline(), None);
    let t3 = h.join(join_req(""));
    assert_eq!(h.join_error(t3), GroupError::CoordinatorNotAvailable);
    let s = h.sync(sync_req("x", 1, &[]));
    assert_eq!(h.sync_error(s), GroupError::CoordinatorNotAvailable);
    assert_eq!(
        h.heartbeat("x", 1),
        Err(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(
        h.leave(&[LeaveMember {
            member_id: "x".to_owned(),
            group_instance_id: None
        }]),
        vec![Err(GroupError::CoordinatorNotAvailable)]
    );
}

#[test]
fn a_retried_join_supersedes_the_parked_one() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (a, b) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&a, 1, &[]));
    h.sync(sync_req(&b, 1, &[]));
    let first = h.join(join_req(&a));
    let retry = h.join(join_req(&a));
    assert_eq!(h.join_error(first), GroupError::RebalanceInProgress);
    assert!(!h.answered(retry));
    let rb = h.join(join_req(&b));
    assert_eq!(h.joined(retry).generation_id, 2);
    assert_eq!(h.joined(rb).generation_id, 2);
}

#[test]
fn describe_outside_stable_hides_metadata() {
    let mut h = Harness::new();
    let d = h.group.describe();
    assert_eq!(d.state, ClassicState::Empty);
    assert_eq!(d.protocol_type, "");
    h.join(join_req(""));
    let d = h.group.describe();
    assert_eq!(d.state, ClassicState::PreparingRebalance);
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.protocol_name, "");
    assert_eq!(d.members.len(), 1);
    assert!(d.members[0].metadata.is_empty());
}

// ---------------------------------------------------------------- proptest

#[derive(Debug, Clone)]
enum Op {
    /// Client `c` joins (with its known id, or none); `alt` offers other protocols.
    Join {
        c: usize,
        fresh: bool,
        alt: bool,
        require_known: bool,
    },
    Sync {
        c: usize,
        with_assignment: bool,
    },
    Heartbeat {
        c: usize,
    },
    Leave {
        c: usize,
    },
    Advance {
        ms: i64,
    },
    /// Jump to the group's next deadline.
    NextDeadline,
    /// The group's leader sends its assignment (as a client that got its answer would).
    LeaderSync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize, prop::bool::weighted(0.15), prop::bool::weighted(0.2), any::<bool>())
            .prop_map(|(c, fresh, alt, require_known)| Op::Join { c, fresh, alt, require_known }),
        4 => (0..5usize, prop::bool::weighted(0.7)).prop_map(|(c, with_assignment)| Op::Sync { c, with_assignment }),
        2 => (0..5usize).prop_map(|c| Op::Heartbeat { c }),
        1 => (0..5usize).prop_map(|c| Op::Leave { c }),
        3 => (0..20_000i64).prop_map(|ms| Op::Advance { ms }),
        2 => Just(Op::NextDeadline),
        2 => Just(Op::LeaderSync),
    ]
}

/// Every ticket handed to the group that it still holds.
fn parked(g: &ClassicGroup) -> BTreeSet<Ticket> {
    g.members
        .values()
        .flat_map(|m| m.join_ticket.into_iter().chain(m.sync_ticket))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut h = Harness::with_config(GroupConfig { max_size: 4, ..config() });
        // Client c's member id (from its last answer) and generation; clients 3 and 4 are static.
        let mut ids: Vec<String> = vec![String::new(); 5];
        let mut generations: Vec<i32> = vec![-1; 5];
        let mut issued: BTreeSet<Ticket> = BTreeSet::new();
        let mut last_generation = 0;
        let mut join_owner: BTreeMap<Ticket, usize> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Join { c, fresh, alt, require_known } => {
                    let id = if fresh { String::new() } else { ids[c].clone() };
                    let mut req = if c >= 3 { static_req(&id, &format!("i{c}")) } else { join_req(&id) };
                    req.require_known_member_id = require_known;
                    if alt {
                        req.protocols = vec![("roundrobin".to_owned(), subscription(&["t2"])), ("range".to_owned(), subscription(&["t1"]))];
                    }
                    let t = h.join(req);
                    issued.insert(t);
                    join_owner.insert(t, c);
                }
                Op::Sync { c, with_assignment } => {
                    let mut req = sync_req(&ids[c], generations[c], &[]);
                    if c >= 3 { req.group_instance_id = Some(format!("i{c}")); }
                    req.protocol_name = None;
                    if with_assignment {
                        req.assignments = h.group.members.keys().map(|m| (m.clone(), Bytes::from_static(b"x"))).collect();
                    }
                    issued.insert(h.sync(req));
                }
                Op::LeaderSync => {
                    if let Some(leader) = h.group.leader.clone() {
                        let mut req = sync_req(&leader, h.group.generation_id(), &[]);
                        req.group_instance_id = h.group.members.get(&leader).and_then(|m| m.instance_id.clone());
                        req.protocol_name = None;
                        req.assignments = h.group.members.keys().map(|m| (m.clone(), Bytes::from_static(b"x"))).collect();
                        issued.insert(h.sync(req));
                    }
                }
                Op::Heartbeat { c } => {
                    let instance = (c >= 3).then(|| format!("i{c}"));
                    let _ = h.group.heartbeat(&ids[c], instance.as_deref(), generations[c], h.now_ms);
                }
                Op::Leave { c } => {
                    let instance = (c >= 3).then(|| format!("i{c}"));
                    let r = h.leave(&[LeaveMember { member_id: ids[c].clone(), group_instance_id: instance }]);
                    prop_assert_eq!(r.len(), 1);
                }
                Op::Advance { .. } | Op::NextDeadline => {
                    let to = match op {
                        Op::Advance { ms } => h.now_ms + ms,
                        _ => h.group.next_deadline().unwrap_or(h.now_ms).max(h.now_ms),
                    };
                    h.advance_to(to);
                    if let Some(d) = h.group.next_deadline() {
                        prop_assert!(d > h.now_ms, "tick left work due at {} (now {})", d, h.now_ms);
                    }
                }
            }
            // Learn ids and generations from answers, as a client would.
            for (t, r) in &h.joins {
                if let Some(c) = join_owner.remove(t) {
                    match r {
                        Ok(resp) => { ids[c] = resp.member_id.clone(); generations[c] = resp.generation_id; }
                        Err(e) if e.error == GroupError::MemberIdRequired => ids[c] = e.member_id.clone(),
                        Err(_) => {}
                    }
                }
            }
            prop_assert!(h.group.generation_id() >= last_generation, "generation went down");
            last_generation = h.group.generation_id();
            // Every ticket is answered or still parked, never both.
            let held = parked(&h.group);
            for t in &issued {
                prop_assert!(h.answered(*t) != held.contains(t), "ticket {} answered={} parked={}", t, h.answered(*t), held.contains(t));
            }
        }
        // Time alone resolves every parked request: no ticket waits forever.
        for _ in 0..100 {
            match h.group.next_deadline() {
                Some(d) => h.advance_to(d.max(h.now_ms)),
                None => break,
            }
        }
        prop_assert!(parked(&h.group).is_empty(), "tickets still parked with no timer: {:?}", parked(&h.group));
        let mut out = Effects::default();
        h.group.mark_dead(&mut out);
        h.absorb(out);
        for t in &issued {
            prop_assert!(h.answered(*t), "ticket {} never answered", t);
        }
    }
}

#[test]
fn the_join_phase_ends_without_an_absent_static_member_but_keeps_it() {
    let mut h = Harness::new();
    let short = |req: JoinRequest| JoinRequest {
        rebalance_timeout_ms: 4_000,
        ..req
    };
    let t1 = h.join(short(static_req("", "i1")));
    let t2 = h.join(short(join_req("")));
    h.advance_to(2 * DELAY_MS);
    let (s, d) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&s, 1, &[]));
    h.sync(sync_req(&d, 1, &[]));
    let start = h.now_ms;
    let r = h.join(short(JoinRequest {
        protocols: vec![("range".to_owned(), subscription(&["t2"]))],
        ..join_req(&d)
    }));
    h.advance_to(start + 4_000);
    let resp = h.joined(r);
    assert_eq!(resp.generation_id, 2);
    assert_eq!(resp.leader, d, "a member that rejoined leads");
    assert_eq!(resp.members.len(), 2, "the static member is still a member");
    assert!(h.group.members.contains_key(&s));
}

#[test]
fn a_new_member_parked_too_long_is_dropped() {
    let mut h = Harness::new();
    let long = |req: JoinRequest| JoinRequest {
        rebalance_timeout_ms: 600_000,
        ..req
    };
    let t1 = h.join(long(join_req("")));
    h.advance_to(DELAY_MS);
    let a = h.joined(t1).member_id.clone();
    h.sync(sync_req(&a, 1, &[]));
    let start = h.now_ms;
    let newcomer = h.join(long(join_req("")));
    assert_eq!(h.group.state(), ClassicState::PreparingRebalance);
    // a heartbeats (RebalanceInProgress) but does not rejoin for five minutes.
    let mut now = start;
    while now + 5_000 < start + NEW_MEMBER_JOIN_TIMEOUT_MS {
        now += 5_000;
        h.advance_to(now);
        assert_eq!(h.heartbeat(&a, 1), Err(GroupError::RebalanceInProgress));
    }
    assert!(!h.answered(newcomer));
    h.advance_to(start + NEW_MEMBER_JOIN_TIMEOUT_MS);
    assert_eq!(h.join_error(newcomer), GroupError::UnknownMemberId);
    assert_eq!(h.group.member_count(), 1);
}

#[test]
fn a_join_while_completing_with_the_same_metadata_is_answered_again() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (a, b) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    let again = h.join(join_req(&a));
    let r = h.joined(again);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.members.len(), 2, "the leader gets the member list again");
    let again = h.join(join_req(&b));
    assert!(h.joined(again).members.is_empty());
    assert_eq!(h.group.state(), ClassicState::CompletingRebalance);
}

#[test]
fn a_shrunken_max_size_leaves_the_last_rejoiners_out() {
    let mut h = Harness::new();
    let t1 = h.join(join_req(""));
    let t2 = h.join(join_req(""));
    h.advance_to(2 * DELAY_MS);
    let (a, b) = (
        h.joined(t1).member_id.clone(),
        h.joined(t2).member_id.clone(),
    );
    h.sync(sync_req(&a, 1, &[]));
    h.sync(sync_req(&b, 1, &[]));
    h.config.max_size = 1;
    let ra = h.join(join_req(&a));
    assert!(!h.answered(ra));
    let rb = h.join(join_req(&b));
    assert_eq!(h.join_error(rb), GroupError::GroupMaxSizeReached);
    assert!(!h.group.members.contains_key(&b));
    assert_eq!(
        h.joined(ra).generation_id,
        2,
        "the rebalance completes without b"
    );
    assert_eq!(h.joined(ra).members.len(), 1);
}
