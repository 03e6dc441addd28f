use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn topic_id(name: &str) -> TopicId {
    let mut id = [0u8; 16];
    for (slot, byte) in id.iter_mut().zip(name.bytes()) {
        *slot = byte;
    }
    id[15] = name.len() as u8;
    TopicId(id)
}

fn view(topics: &[(&str, i32)]) -> TopicsView {
    TopicsView {
        by_name: topics
            .iter()
            .map(|(n, c)| (n.to_string(), (topic_id(n), *c)))
            .collect(),
    }
}

fn config() -> GroupConfig {
    GroupConfig::default()
}

/// A well-behaved client: it owns exactly what the last assignment said, gives up revoked
/// partitions at once, and reports what it owns on every heartbeat.
#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    instance_id: Option<String>,
    epoch: i32,
    owned: Assignment,
    topics: Vec<String>,
    regex: Option<String>,
}

impl Client {
    fn new(member_id: &str, topics: &[&str]) -> Self {
        Self {
            member_id: member_id.to_string(),
            instance_id: None,
            epoch: 0,
            owned: Assignment::new(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            regex: None,
        }
    }

    fn request(&self) -> HeartbeatRequest {
        let joining = self.epoch == 0;
        HeartbeatRequest {
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            group_instance_id: self.instance_id.clone(),
            rebalance_timeout_ms: if joining { 60_000 } else { -1 },
            subscribed_topic_names: if joining {
                Some(self.topics.clone())
            } else {
                None
            },
            subscribed_topic_regex: if joining { self.regex.clone() } else { None },
            owned: Some(to_pairs(&self.owned)),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..Default::default()
        }
    }

    fn heartbeat(
        &mut self,
        group: &mut ConsumerGroup,
        topics: &TopicsView,
        now_ms: i64,
    ) -> HeartbeatResponse {
        let (result, _) = group.heartbeat(self.request(), topics, &config(), now_ms);
        let response = result.expect("heartbeat accepted");
        self.apply(&response);
        response
    }

    fn apply(&mut self, response: &HeartbeatResponse) {
        self.member_id = response.member_id.clone();
        self.epoch = response.member_epoch;
        if let Some(assignment) = &response.assignment {
            self.owned = assignment
                .iter()
                .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                .collect();
            self.owned
                .retain(|_, ps: &mut BTreeSet<i32>| !ps.is_empty());
        }
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }
}

/// No partition is owned by two members, neither in the group's view nor the clients'.
fn assert_exclusive(group: &ConsumerGroup, clients: &[Client]) {
    let mut seen = BTreeSet::new();
    for (member, owned) in group.owned_partitions() {
        for (t, ps) in owned {
            for p in ps {
                assert!(
                    seen.insert((t, p)),
                    "{t:?}/{p} owned twice in the group (second: {member})"
                );
            }
        }
    }
    let mut seen = BTreeSet::new();
    for client in clients {
        for (t, ps) in &client.owned {
            for p in ps {
                assert!(
                    seen.insert((*t, *p)),
                    "{t:?}/{p} owned by two clients (second: {})",
                    client.member_id
                );
            }
        }
    }
}

/// Heartbeats every client in turn until the group is Stable (bounded).
fn converge(group: &mut ConsumerGroup, clients: &mut [Client], topics: &TopicsView, now_ms: i64) {
    for _ in 0..20 {
        for client in clients.iter_mut() {
            client.heartbeat(group, topics, now_ms);
            assert_exclusive(group, &[]);
        }
        assert_exclusive(group, clients);
        if group.state() == ConsumerGroupState::Stable {
            return;
        }
    }
    panic!("group did not converge: {:?}", group.describe(topics));
}

#[test]
fn one_member_gets_every_partition() {
    let topics = view(&[("a", 3), ("b", 2), ("other", 5)]);
    let mut group = ConsumerGroup::new("g".into());
    assert_eq!(group.state(), ConsumerGroupState::Empty);
    let mut client = Client::new("", &["a", "b"]);
    let response = client.heartbeat(&mut group, &topics, 1_000);
    assert!(
        !response.member_id.is_empty(),
        "a v0 join gets a generated member id"
    );
    assert_eq!(response.member_epoch, 1);
    assert_eq!(group.group_epoch(), 1);
    assert_eq!(
        response.heartbeat_interval_ms,
        config().consumer_heartbeat_interval_ms
    );
    let expected = vec![(topic_id("a"), vec![0, 1, 2]), (topic_id("b"), vec![0, 1])];
    let mut got = response.assignment.expect("a join gets its assignment");
    got.sort();
    let mut expected_sorted = expected;
    expected_sorted.sort();
    assert_eq!(got, expected_sorted);
    assert_eq!(group.state(), ConsumerGroupState::Stable);
    // A plain heartbeat afterwards changes nothing and carries no assignment.
    let (result, changed) = group.heartbeat(client.request(), &topics, &config(), 2_000);
    let response = result.expect("heartbeat");
    assert_eq!(response.assignment, None);
    assert!(
        !changed,
        "a heartbeat that changes nothing needs no snapshot"
    );
}

#[test]
fn v1_member_id_from_the_client_is_kept_and_generated_ids_are_unique() {
    let topics = view(&[("a", 1)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut own = Client::new("my-uuid", &["a"]);
    assert_eq!(own.heartbeat(&mut group, &topics, 0).member_id, "my-uuid");
    let mut ids = BTreeSet::new();
    for _ in 0..20 {
        let mut c = Client::new("", &["a"]);
        ids.insert(c.heartbeat(&mut group, &topics, 0).member_id);
    }
    assert_eq!(ids.len(), 20);
    assert!(ids.iter().all(|id| id.len() == 36), "UUID-shaped: {ids:?}");
}

#[test]
fn three_members_share_twelve_partitions_without_double_ownership() {
    let topics = view(&[("t", 12)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut clients = vec![Client::new("a", &["t"])];
    clients[0].heartbeat(&mut group, &topics, 0);
    assert_eq!(clients[0].count(), 12);
    clients.push(Client::new("b", &["t"]));
    clients.push(Client::new("c", &["t"]));
    // The newcomers join while "a" still owns everything: they must get nothing yet.
    for client in clients.iter_mut().skip(1) {
        client.heartbeat(&mut group, &topics, 10);
        assert_eq!(client.count(), 0, "nothing is free until a revokes");
    }
    assert_eq!(group.group_epoch(), 3);
    assert_eq!(group.state(), ConsumerGroupState::Reconciling);
    assert_exclusive(&group, &clients);
    converge(&mut group, &mut clients, &topics, 20);
    for client in &clients {
        assert_eq!(client.count(), 4, "{client:?}");
        assert_eq!(client.epoch, 3);
    }
}

#[test]
fn a_leaving_member_hands_its_partitions_over() {
    let topics = view(&[("t", 6)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    converge(&mut group, &mut clients, &topics, 0);
    let epoch = group.group_epoch();
    let leave = HeartbeatRequest {
        member_id: "b".into(),
        member_epoch: LEAVE_GROUP_MEMBER_EPOCH,
        ..Default::default()
    };
    let (result, changed) = group.heartbeat(leave, &topics, &config(), 5);
    assert_eq!(result.expect("leave").member_epoch, -1);
    assert!(changed);
    assert_eq!(group.group_epoch(), epoch + 1);
    clients.truncate(1);
    converge(&mut group, &mut clients, &topics, 6);
    assert_eq!(clients[0].count(), 6);
    // A member that left is unknown afterwards.
    let late = HeartbeatRequest {
        member_id: "b".into(),
        member_epoch: 2,
        ..Default::default()
    };
    assert_eq!(
        group.heartbeat(late, &topics, &config(), 7).0,
        Err(GroupError::UnknownMemberId)
    );
}

#[test]
fn a_silent_member_is_removed_after_the_session_timeout() {
    let topics = view(&[("t", 4)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    converge(&mut group, &mut clients, &topics, 0);
    let session = i64::from(config().consumer_session_timeout_ms);
    // Only "a" keeps heartbeating.
    clients[0].heartbeat(&mut group, &topics, 30_000);
    assert_eq!(
        group.next_deadline(),
        Some(session),
        "b's session ends first"
    );
    assert!(!group.tick(&topics, &config(), session - 1));
    let epoch = group.group_epoch();
    assert!(group.tick(&topics, &config(), session));
    assert_eq!(group.group_epoch(), epoch + 1);
    assert_eq!(group.describe(&topics).members.len(), 1);
    clients.truncate(1);
    converge(&mut group, &mut clients, &topics, session + 1);
    assert_eq!(clients[0].count(), 4);
    // The last one expires too: the group is Empty from then on.
    assert!(group.tick(&topics, &config(), session + 1 + session));
    assert!(group.is_empty());
    assert_eq!(group.state(), ConsumerGroupState::Empty);
    assert_eq!(group.state_timestamp_ms(), session + 1 + session);
    assert_eq!(group.next_deadline(), None);
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let topics = view(&[("t", 4)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut a = Client::new("a", &["t"]);
    a.heartbeat(&mut group, &topics, 0);
    let mut b = Client::new("b", &["t"]);
    b.heartbeat(&mut group, &topics, 100);
    // "a" hears it must revoke two partitions but keeps reporting all four.
    let stubborn = |epoch: i32| HeartbeatRequest {
        member_id: "a".into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(vec![(topic_id("t"), vec![0, 1, 2, 3])]),
        ..Default::default()
    };
    let response = group
        .heartbeat(stubborn(1), &topics, &config(), 200)
        .0
        .expect("heartbeat");
    assert_eq!(
        response.member_epoch, 1,
        "the epoch waits for the revocation"
    );
    assert_eq!(response.assignment.map(|a| a[0].1.len()), Some(2));
    group
        .heartbeat(stubborn(1), &topics, &config(), 30_000)
        .0
        .expect("heartbeat");
    b.heartbeat(&mut group, &topics, 30_000);
    assert_eq!(
        b.count(),
        0,
        "b's partitions are the ones a has not revoked"
    );
    assert_eq!(
        group.next_deadline(),
        Some(200 + 60_000),
        "the rebalance timeout runs from the revocation order"
    );
    assert!(!group.tick(&topics, &config(), 60_199));
    assert!(group.tick(&topics, &config(), 60_200), "rebalance timeout");
    assert_eq!(
        group.heartbeat(stubborn(1), &topics, &config(), 60_201).0,
        Err(GroupError::UnknownMemberId)
    );
    b.heartbeat(&mut group, &topics, 60_202);
    assert_eq!(b.count(), 4);
}

#[test]
fn a_static_member_restarting_gets_its_partitions_back_without_a_rebalance() {
    let topics = view(&[("t", 6)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut a = Client::new("a1", &["t"]);
    a.instance_id = Some("host-a".into());
    let mut b = Client::new("b1", &["t"]);
    b.instance_id = Some("host-b".into());
    let mut clients = vec![a, b];
    converge(&mut group, &mut clients, &topics, 0);
    let epoch = group.group_epoch();
    let owned_before = clients[0].owned.clone();

    // A second live instance with the same id is refused.
    let mut impostor = Client::new("a2", &["t"]);
    impostor.instance_id = Some("host-a".into());
    assert_eq!(
        group.heartbeat(impostor.request(), &topics, &config(), 1).0,
        Err(GroupError::UnreleasedInstanceId)
    );

    let leave = HeartbeatRequest {
        member_id: "a1".into(),
        member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH,
        group_instance_id: Some("host-a".into()),
        ..Default::default()
    };
    let (result, changed) = group.heartbeat(leave, &topics, &config(), 2);
    assert_eq!(result.expect("static leave").member_epoch, -2);
    assert!(changed);
    assert_eq!(
        group.group_epoch(),
        epoch,
        "a temporary leave does not rebalance"
    );
    assert_exclusive(&group, &clients[1..]);
    // While it is away its partitions stay with it: b does not get them.
    let b_before = clients[1].owned.clone();
    clients[1].heartbeat(&mut group, &topics, 2);
    assert_eq!(clients[1].owned, b_before);
    assert_eq!(
        group.state(),
        ConsumerGroupState::Reconciling,
        "a member at epoch -2 is not reconciled"
    );

    let mut restarted = Client::new("a2", &["t"]);
    restarted.instance_id = Some("host-a".into());
    let response = restarted.heartbeat(&mut group, &topics, 3);
    assert_eq!(response.member_id, "a2");
    assert_eq!(response.member_epoch, epoch);
    assert_eq!(restarted.owned, owned_before);
    assert_eq!(group.group_epoch(), epoch);
    assert_eq!(group.state(), ConsumerGroupState::Stable);
    assert_eq!(group.describe(&topics).members.len(), 2);
    // The old member id is fenced by the new one.
    let old = HeartbeatRequest {
        member_id: "a1".into(),
        member_epoch: epoch,
        group_instance_id: Some("host-a".into()),
        ..Default::default()
    };
    assert_eq!(
        group.heartbeat(old, &topics, &config(), 4).0,
        Err(GroupError::FencedInstanceId)
    );
}

#[test]
fn a_static_member_that_stays_away_is_removed_at_its_session_timeout() {
    let topics = view(&[("t", 2)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut a = Client::new("a1", &["t"]);
    a.instance_id = Some("host-a".into());
    a.heartbeat(&mut group, &topics, 0);
    let leave = HeartbeatRequest {
        member_id: "a1".into(),
        member_epoch: LEAVE_GROUP_STATIC_MEMBER_EPOCH,
        group_instance_id: Some("host-a".into()),
        ..Default::default()
    };
    group
        .heartbeat(leave, &topics, &config(), 10)
        .0
        .expect("static leave");
    assert_eq!(
        group.next_deadline(),
        Some(45_000),
        "the session runs from its last heartbeat"
    );
    assert!(group.tick(&topics, &config(), 45_000));
    assert!(group.is_empty());
}

#[test]
fn a_regex_subscription_picks_up_new_topics() {
    let mut topics = view(&[("orders-eu", 2), ("orders", 1), ("payments", 3)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut client = Client::new("a", &[]);
    client.regex = Some("orders-.*".into());
    client.heartbeat(&mut group, &topics, 0);
    assert_eq!(
        client.owned.keys().copied().collect::<Vec<_>>(),
        vec![topic_id("orders-eu")],
        "whole-name match"
    );
    let epoch = group.group_epoch();
    topics
        .by_name
        .insert("orders-us".into(), (topic_id("orders-us"), 2));
    let response = client.heartbeat(&mut group, &topics, 1);
    assert_eq!(group.group_epoch(), epoch + 1);
    assert!(response.assignment.is_some());
    assert_eq!(client.count(), 4);
    assert_eq!(
        group.subscribed_topics(&topics),
        ["orders-eu".to_string(), "orders-us".to_string()]
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    // librdkafka's shape: explicit names plus its patterns joined into one regex.
    let mut mixed = Client::new("m", &["payments"]);
    mixed.regex = Some("^orders-e.*|^nothing$".into());
    mixed.heartbeat(&mut group, &topics, 2);
    let d = group.describe(&topics);
    let target = &d
        .members
        .iter()
        .find(|m| m.member_id == "m")
        .expect("m")
        .target_assignment;
    let names: BTreeSet<&str> = target.iter().map(|t| t.topic_name.as_str()).collect();
    assert!(
        names.contains("payments"),
        "only m subscribes to payments: {names:?}"
    );
    assert!(
        names.is_subset(&["payments", "orders-eu"].into_iter().collect()),
        "{names:?}"
    );
    assert!(group.subscribed_topics(&topics).contains("payments"));
    let mut bad = Client::new("b", &[]);
    bad.regex = Some("orders-(".into());
    assert_eq!(
        group.heartbeat(bad.request(), &topics, &config(), 2).0,
        Err(GroupError::InvalidRegularExpression)
    );
    bad.regex = Some("a".repeat(SUBSCRIBED_REGEX_MAX_BYTES + 1));
    assert_eq!(
        group.heartbeat(bad.request(), &topics, &config(), 2).0,
        Err(GroupError::InvalidRegularExpression)
    );
    assert_eq!(
        group.describe(&topics).members.len(),
        2,
        "a refused join leaves no member behind"
    );
}

#[test]
fn more_partitions_bump_the_epoch() {
    let mut topics = view(&[("t", 2), ("unrelated", 1)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut client = Client::new("a", &["t"]);
    client.heartbeat(&mut group, &topics, 0);
    let epoch = group.group_epoch();
    topics
        .by_name
        .insert("unrelated".into(), (topic_id("unrelated"), 5));
    client.heartbeat(&mut group, &topics, 1);
    assert_eq!(
        group.group_epoch(),
        epoch,
        "a topic nobody subscribes to does not matter"
    );
    topics.by_name.insert("t".into(), (topic_id("t"), 4));
    let response = client.heartbeat(&mut group, &topics, 2);
    assert_eq!(group.group_epoch(), epoch + 1);
    assert_eq!(response.member_epoch, epoch + 1);
    assert_eq!(client.count(), 4);
}

#[test]
fn epochs_and_member_ids_are_checked() {
    let topics = view(&[("t", 4)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut a = Client::new("a", &["t"]);
    a.heartbeat(&mut group, &topics, 0);
    let mut b = Client::new("b", &["t"]);
    b.heartbeat(&mut group, &topics, 0);
    let mut clients = vec![a, b];
    converge(&mut group, &mut clients, &topics, 1);
    let epoch = clients[0].epoch;
    assert_eq!(epoch, 2);
    let hb = |member: &str, epoch: i32, owned: Option<Vec<(TopicId, Vec<i32>)>>| HeartbeatRequest {
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned,
        ..Default::default()
    };
    let err = |r: (Result<HeartbeatResponse, GroupError>, bool)| r.0.err();
    assert_eq!(
        err(group.heartbeat(hb("nobody", 2, None), &topics, &config(), 2)),
        Some(GroupError::UnknownMemberId)
    );
    assert_eq!(
        err(group.heartbeat(hb("a", 3, None), &topics, &config(), 2)),
        Some(GroupError::FencedMemberEpoch)
    );
    // a's previous epoch is 1: accepted only if what it owns is within its assignment.
    let owned_a = to_pairs(&clients[0].owned);
    assert_eq!(
        err(group.heartbeat(hb("a", 1, None), &topics, &config(), 2)),
        Some(GroupError::FencedMemberEpoch)
    );
    let outside = vec![(topic_id("t"), vec![0, 1, 2, 3])];
    assert_eq!(
        err(group.heartbeat(hb("a", 1, Some(outside)), &topics, &config(), 2)),
        Some(GroupError::FencedMemberEpoch)
    );
    let ok = group
        .heartbeat(hb("a", 1, Some(owned_a)), &topics, &config(), 2)
        .0
        .expect("lost response forgiven");
    assert_eq!(ok.member_epoch, 2);
    assert_eq!(
        ok.assignment, None,
        "not a full request, and the assignment did not change"
    );
    assert_eq!(
        err(group.heartbeat(hb("a", -3, None), &topics, &config(), 2)),
        Some(GroupError::InvalidRequest)
    );
    assert_eq!(
        err(group.heartbeat(hb("", 2, None), &topics, &config(), 2)),
        Some(GroupError::InvalidRequest)
    );

    // Offset commits: any other epoch is stale.
    assert_eq!(group.validate_offset_commit("a", 2), Ok(()));
    assert_eq!(
        group.validate_offset_commit("a", 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        group.validate_offset_commit("a", 3),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        group.validate_offset_commit("x", 2),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        group.validate_offset_commit("", -1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        ConsumerGroup::new("e".into()).validate_offset_commit("", -1),
        Ok(())
    );
    assert_eq!(group.validate_offset_fetch(None, -1), Ok(()));
    assert_eq!(
        group.validate_offset_fetch(None, 2),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(group.validate_offset_fetch(Some("a"), 2), Ok(()));
    assert_eq!(
        group.validate_offset_fetch(Some("a"), 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        group.validate_offset_fetch(Some("zz"), 2),
        Err(GroupError::UnknownMemberId)
    );

    // A fenced client rejoins with epoch 0 and the same id, having dropped its partitions.
    let mut a = clients[0].clone();
    a.epoch = 0;
    a.owned.clear();
    a.heartbeat(&mut group, &topics, 3);
    assert_eq!(a.epoch, 2);
    assert_eq!(a.count(), 2);
    assert_eq!(
        group.group_epoch(),
        2,
        "a rejoin with the same subscription does not rebalance"
    );
}

#[test]
fn joins_are_validated() {
    let topics = view(&[("t", 1)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut join = Client::new("a", &["t"]).request();
    join.server_assignor = Some("sticky".into());
    assert_eq!(
        group.heartbeat(join.clone(), &topics, &config(), 0).0,
        Err(GroupError::UnsupportedAssignor)
    );
    join.server_assignor = None;
    join.subscribed_topic_names = Some(vec![]);
    assert_eq!(
        group.heartbeat(join.clone(), &topics, &config(), 0).0,
        Err(GroupError::InvalidRequest)
    );
    join.subscribed_topic_names = Some(vec!["t".into(); SUBSCRIBED_TOPICS_MAX + 1]);
    assert_eq!(
        group.heartbeat(join.clone(), &topics, &config(), 0).0,
        Err(GroupError::InvalidRequest)
    );
    join.subscribed_topic_names = Some(vec!["t".into()]);
    join.owned = Some(vec![(topic_id("t"), vec![0])]);
    assert_eq!(
        group.heartbeat(join.clone(), &topics, &config(), 0).0,
        Err(GroupError::InvalidRequest)
    );
    join.owned = Some(vec![(topic_id("t"), vec![0; OWNED_PARTITIONS_MAX + 1])]);
    assert_eq!(
        group.heartbeat(join.clone(), &topics, &config(), 0).0,
        Err(GroupError::InvalidRequest)
    );
    join.owned = None;
    join.group_instance_id = Some(String::new());
    assert_eq!(
        group.heartbeat(join.clone(), &topics, &config(), 0).0,
        Err(GroupError::InvalidRequest)
    );
    join.group_instance_id = None;
    join.rebalance_timeout_ms = -1;
    assert_eq!(
        group.heartbeat(join.clone(), &topics, &config(), 0).0,
        Err(GroupError::InvalidRequest)
    );
    assert!(group.is_empty());

    let small = GroupConfig {
        consumer_max_size: 2,
        ..config()
    };
    for id in ["a", "b"] {
        group
            .heartbeat(Client::new(id, &["t"]).request(), &topics, &small, 0)
            .0
            .expect("join");
    }
    let third = Client::new("c", &["t"]).request();
    assert_eq!(
        group.heartbeat(third, &topics, &small, 0).0,
        Err(GroupError::GroupMaxSizeReached)
    );
    // Members already in the group still get through.
    let again = Client::new("a", &["t"]).request();
    assert!(group.heartbeat(again, &topics, &small, 0).0.is_ok());
}

#[test]
fn range_is_used_when_members_ask_for_it() {
    let topics = view(&[("x", 4), ("y", 4)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut clients = vec![Client::new("a", &["x", "y"]), Client::new("b", &["x", "y"])];
    for c in &mut clients {
        let mut req = c.request();
        req.server_assignor = Some("range".into());
        let response = group.heartbeat(req, &topics, &config(), 0).0.expect("join");
        c.apply(&response);
    }
    converge(&mut group, &mut clients, &topics, 1);
    assert_eq!(group.describe(&topics).assignor_name, "range");
    let expected: Assignment = [
        (topic_id("x"), [0, 1].into()),
        (topic_id("y"), [0, 1].into()),
    ]
    .into_iter()
    .collect();
    assert_eq!(clients[0].owned, expected, "co-partitioned ranges");
}

#[test]
fn describe_reports_members_and_assignments() {
    let topics = view(&[("t", 2)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut c = Client::new("a", &["t"]);
    let mut req = c.request();
    req.rack_id = Some("r1".into());
    c.apply(&group.heartbeat(req, &topics, &config(), 0).0.expect("join"));
    let d = group.describe(&topics);
    assert_eq!(
        (d.group_epoch, d.assignment_epoch, d.state.name()),
        (1, 1, "Stable")
    );
    assert_eq!(d.assignor_name, "uniform");
    let m = &d.members[0];
    assert_eq!(
        (m.member_id.as_str(), m.rack_id.as_deref(), m.member_epoch),
        ("a", Some("r1"), 1)
    );
    assert_eq!(m.subscribed_topic_names, vec!["t".to_string()]);
    assert_eq!(m.assignment, m.target_assignment);
    assert_eq!(m.assignment[0].topic_name, "t");
    assert_eq!(m.assignment[0].partitions, vec![0, 1]);
    group.mark_dead();
    assert_eq!(group.state(), ConsumerGroupState::Dead);
    assert_eq!(
        group.heartbeat(c.request(), &topics, &config(), 1).0,
        Err(GroupError::CoordinatorNotAvailable)
    );
}

#[test]
fn snapshot_restore_round_trips_through_json() {
    let topics = view(&[("t", 6), ("orders-1", 2)]);
    let mut group = ConsumerGroup::new("g".into());
    let mut a = Client::new("a", &["t"]);
    a.instance_id = Some("host-a".into());
    let mut b = Client::new("b", &[]);
    b.regex = Some("orders-.*|t".into());
    let mut clients = vec![a, b];
    converge(&mut group, &mut clients, &topics, 0);
    // Leave one member mid-revocation so that state is covered too.
    let mut c = Client::new("c", &["t"]);
    c.heartbeat(&mut group, &topics, 10);
    clients[0].heartbeat(&mut group, &topics, 11);

    let snapshot = group.snapshot();
    let json = serde_json::to_string(&snapshot).expect("serialize");
    let back: ConsumerGroupSnapshot = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, snapshot);
    let mut restored = ConsumerGroup::restore("g".into(), back, 1_000);
    assert_eq!(restored.snapshot(), snapshot);
    assert_eq!(restored.group_epoch(), group.group_epoch());
    assert_eq!(restored.state(), group.state());
    assert_eq!(restored.describe(&topics), group.describe(&topics));
    assert_eq!(
        restored.next_deadline(),
        Some(1_000 + 45_000),
        "sessions restart at restore"
    );
    clients.push(c);
    converge(&mut restored, &mut clients, &topics, 1_001);
    assert_eq!(
        restored.group_epoch(),
        group.group_epoch(),
        "no rebalance after a restore"
    );
    let total: usize = clients.iter().map(Client::count).sum();
    assert_eq!(total, 8);
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Heartbeat(usize),
    /// Heartbeat without the owned list (a client that reports nothing new).
    QuietHeartbeat(usize),
    Leave(usize),
    /// A static member (clients 3 and 4) stops for a while with epoch -2.
    StaticLeave(usize),
    Resubscribe(usize, bool),
    Grow(usize),
    Advance(i64),
    /// The coordinator restarts: snapshot → JSON → restore.
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..5usize).prop_map(Op::Join),
        8 => (0..5usize).prop_map(Op::Heartbeat),
        1 => (0..5usize).prop_map(Op::QuietHeartbeat),
        1 => (0..5usize).prop_map(Op::Leave),
        1 => (3..5usize).prop_map(Op::StaticLeave),
        1 => (0..5usize, any::<bool>()).prop_map(|(i, b)| Op::Resubscribe(i, b)),
        1 => (0..2usize).prop_map(Op::Grow),
        1 => (0..70_000i64).prop_map(Op::Advance),
        1 => Just(Op::Restore),
    ]
}

/// Sends one request for client `i`; on an error the client has lost its membership and
/// drops everything (as librdkafka does before rejoining).
fn send(
    group: &mut ConsumerGroup,
    clients: &mut [Option<Client>],
    i: usize,
    req: HeartbeatRequest,
    topics: &TopicsView,
    now: i64,
) {
    let Some(client) = clients[i].as_mut() else {
        return;
    };
    match group.heartbeat(req, topics, &config(), now).0 {
        Ok(response) => client.apply(&response),
        Err(_) => clients[i] = None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Whatever members do and whenever (joins, leaves, static bounces, timeouts, more
    /// partitions, restarts of the coordinator), no partition is owned by two members; and
    /// once everyone heartbeats, the group settles with every partition assigned once.
    #[test]
    fn no_partition_is_ever_owned_twice(ops in proptest::collection::vec(op(), 1..100)) {
        let names = ["t0", "t1"];
        let mut counts = [3i32, 5];
        let topics_of = |counts: &[i32; 2]| view(&[(names[0], counts[0]), (names[1], counts[1])]);
        let mut topics = topics_of(&counts);
        let mut group = ConsumerGroup::new("g".into());
        let mut clients: Vec<Option<Client>> = vec![None; 5];
        let mut incarnation = 0u32;
        let mut now = 0i64;
        for op in ops {
            match op {
                Op::Join(i) => {
                    if clients[i].is_none() {
                        incarnation += 1;
                        let mut c = Client::new(&format!("m{i}-{incarnation}"), &names);
                        if i % 2 == 1 { c.topics = vec!["t1".into()]; }
                        if i >= 3 { c.instance_id = Some(format!("host-{i}")); }
                        let request = c.request();
                        clients[i] = Some(c);
                        send(&mut group, &mut clients, i, request, &topics, now);
                    }
                }
                Op::Heartbeat(i) | Op::QuietHeartbeat(i) => {
                    if let Some(c) = &clients[i] {
                        let mut req = c.request();
                        if matches!(op, Op::QuietHeartbeat(_)) { req.owned = None; }
                        send(&mut group, &mut clients, i, req, &topics, now);
                    }
                }
                Op::Leave(i) | Op::StaticLeave(i) => {
                    if let Some(c) = clients[i].take() {
                        let epoch = if matches!(op, Op::Leave(_)) { -1 } else { -2 };
                        let req = HeartbeatRequest {
                            member_id: c.member_id,
                            member_epoch: epoch,
                            group_instance_id: c.instance_id,
                            ..Default::default()
                        };
                        let _ = group.heartbeat(req, &topics, &config(), now);
                    }
                }
                Op::Resubscribe(i, both) => {
                    if let Some(c) = &clients[i] {
                        let mut req = c.request();
                        let subscription: Vec<String> = if both { names.iter().map(|s| s.to_string()).collect() } else { vec!["t0".into()] };
                        req.subscribed_topic_names = Some(subscription);
                        send(&mut group, &mut clients, i, req, &topics, now);
                    }
                }
                Op::Grow(t) => {
                    counts[t] += 1;
                    topics = topics_of(&counts);
                }
                Op::Advance(ms) => {
                    now += ms;
                    group.tick(&topics, &config(), now);
                }
                Op::Restore => {
                    let json = serde_json::to_string(&group.snapshot()).expect("serialize");
                    let snapshot: ConsumerGroupSnapshot = serde_json::from_str(&json).expect("deserialize");
                    let restored = ConsumerGroup::restore("g".into(), snapshot.clone(), now);
                    prop_assert_eq!(restored.snapshot(), snapshot);
                    prop_assert_eq!(restored.state(), group.state());
                    group = restored;
                }
            }
            // A client the group already dropped (session expired) is a zombie whatever it
            // believes; Kafka's guarantee covers members.
            let owned = group.owned_partitions();
            let live: Vec<Client> =
                clients.iter().flatten().filter(|c| owned.contains_key(&c.member_id)).cloned().collect();
            assert_exclusive(&group, &live);
            // Clients own no more than the group thinks they do.
            for c in &live {
                let server = &owned[&c.member_id];
                for (t, ps) in &c.owned {
                    prop_assert!(ps.iter().all(|p| server.get(t).is_some_and(|s| s.contains(p))));
                }
            }
            let state = group.state();
            prop_assert!(state != ConsumerGroupState::Assigning && state != ConsumerGroupState::Dead);
            prop_assert_eq!(state == ConsumerGroupState::Empty, group.is_empty());
        }
        // Members nobody drives any more (static members away, clients dropped) time out;
        // everyone else heartbeats until the group settles.
        now += i64::from(config().consumer_session_timeout_ms);
        for i in 0..clients.len() {
            if let Some(c) = &clients[i] {
                let req = c.request();
                send(&mut group, &mut clients, i, req, &topics, now);
            }
        }
        group.tick(&topics, &config(), now);
        let mut live: Vec<Client> = clients.into_iter().flatten().collect();
        let known = group.owned_partitions();
        live.retain(|c| known.contains_key(&c.member_id));
        prop_assert_eq!(live.len(), known.len(), "every member left has a client");
        if !live.is_empty() {
            converge(&mut group, &mut live, &topics, now);
            let mut assigned: BTreeMap<(TopicId, i32), usize> = BTreeMap::new();
            for c in &live {
                for (t, ps) in &c.owned {
                    for p in ps { *assigned.entry((*t, *p)).or_default() += 1; }
                }
            }
            let subscribed = group.subscribed_topics(&topics);
            for name in subscribed {
                let (id, count) = topics.by_name[&name];
                for p in 0..count {
                    prop_assert_eq!(assigned.get(&(id, p)).copied(), Some(1), "{}/{} assigned once", name, p);
                }
            }
        }
    }
}
