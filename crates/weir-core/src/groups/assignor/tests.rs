use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn topic_id(n: u8) -> TopicId {
    TopicId([n; 16])
}

fn view(counts: &[i32]) -> TopicsView {
    TopicsView {
        by_name: counts
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("t{i}"), (topic_id(i as u8), *c)))
            .collect(),
    }
}

fn member(id: &str, topics: &[u8]) -> AssignMember {
    AssignMember {
        member_id: id.to_string(),
        subscribed: topics.iter().map(|t| topic_id(*t)).collect(),
        current: Assignment::new(),
        rack: None,
    }
}

fn load(assignment: &Assignment) -> usize {
    assignment.values().map(BTreeSet::len).sum()
}

/// Every partition of a subscribed topic goes to exactly one member, and only to subscribers.
fn check_complete(
    members: &[AssignMember],
    topics: &TopicsView,
    out: &BTreeMap<String, Assignment>,
) {
    assert_eq!(out.len(), members.len(), "an entry for every member");
    let mut owner: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
    for m in members {
        for (t, ps) in &out[&m.member_id] {
            assert!(
                m.subscribed.contains(t),
                "{} got a topic it does not subscribe to",
                m.member_id
            );
            for p in ps {
                assert!(
                    owner.insert((*t, *p), &m.member_id).is_none(),
                    "{t:?}/{p} assigned twice"
                );
            }
        }
    }
    for (id, count) in topics.by_name.values() {
        let subscribed = members.iter().any(|m| m.subscribed.contains(id));
        for p in 0..*count {
            assert_eq!(owner.contains_key(&(*id, p)), subscribed, "{id:?}/{p}");
        }
    }
}

#[test]
fn names_and_lookup() {
    assert_eq!(
        assignor_by_name("uniform").map(|a| a.name()),
        Some("uniform")
    );
    assert_eq!(assignor_by_name("range").map(|a| a.name()), Some("range"));
    assert!(assignor_by_name("cooperative-sticky").is_none());
    assert_eq!(DEFAULT_ASSIGNOR, "uniform");
}

#[test]
fn uniform_balances_and_sticks() {
    let topics = view(&[7, 5]);
    let mut members: Vec<AssignMember> = ["a", "b", "c"]
        .iter()
        .map(|id| member(id, &[0, 1]))
        .collect();
    let first = UniformAssignor.assign(&members, &topics);
    check_complete(&members, &topics, &first);
    let loads: Vec<usize> = first.values().map(load).collect();
    assert_eq!(loads.iter().sum::<usize>(), 12);
    assert!(loads.iter().all(|l| *l == 4), "{loads:?}");

    // A fourth member: each old member gives up exactly one partition and keeps the rest.
    for m in &mut members {
        m.current = first[&m.member_id].clone();
    }
    members.push(member("d", &[0, 1]));
    let second = UniformAssignor.assign(&members, &topics);
    check_complete(&members, &topics, &second);
    for m in &members[..3] {
        let kept: usize = m
            .current
            .iter()
            .map(|(t, ps)| {
                second[&m.member_id]
                    .get(t)
                    .map_or(0, |now| ps.intersection(now).count())
            })
            .sum();
        assert_eq!(
            (kept, load(&second[&m.member_id])),
            (3, 3),
            "{}",
            m.member_id
        );
    }
    assert_eq!(load(&second["d"]), 3);

    // Same input, same output.
    assert_eq!(UniformAssignor.assign(&members, &topics), second);
}

#[test]
fn uniform_respects_subscriptions() {
    let topics = view(&[4, 4]);
    let members = vec![member("a", &[0]), member("b", &[0, 1]), member("c", &[1])];
    let out = UniformAssignor.assign(&members, &topics);
    check_complete(&members, &topics, &out);
    let loads: Vec<usize> = out.values().map(load).collect();
    assert!(
        loads.iter().max().unwrap_or(&0) - loads.iter().min().unwrap_or(&0) <= 1,
        "{loads:?}"
    );
}

#[test]
fn uniform_drops_partitions_that_no_longer_fit() {
    let topics = view(&[2]);
    let mut a = member("a", &[0]);
    a.current = [(topic_id(0), [0, 1, 7].into()), (topic_id(9), [0].into())]
        .into_iter()
        .collect();
    let out = UniformAssignor.assign(&[a.clone()], &topics);
    assert_eq!(
        out["a"],
        [(topic_id(0), [0, 1].into())]
            .into_iter()
            .collect::<Assignment>()
    );
}

#[test]
fn range_gives_contiguous_co_partitioned_ranges() {
    let topics = view(&[5, 5, 2]);
    let members = vec![
        member("b", &[0, 1, 2]),
        member("a", &[0, 1]),
        member("c", &[0, 1, 2]),
    ];
    let out = RangeAssignor.assign(&members, &topics);
    check_complete(&members, &topics, &out);
    let set = |ps: &[i32]| ps.iter().copied().collect::<BTreeSet<i32>>();
    // Topics 0 and 1: a, b, c in id order take [0,1], [2,3], [4].
    for t in [0u8, 1] {
        assert_eq!(out["a"][&topic_id(t)], set(&[0, 1]));
        assert_eq!(out["b"][&topic_id(t)], set(&[2, 3]));
        assert_eq!(out["c"][&topic_id(t)], set(&[4]));
    }
    // Topic 2 has only b and c.
    assert_eq!(out["b"][&topic_id(2)], set(&[0]));
    assert_eq!(out["c"][&topic_id(2)], set(&[1]));
    assert!(!out["a"].contains_key(&topic_id(2)));
}

#[test]
fn more_members_than_partitions_leaves_some_empty() {
    let topics = view(&[2]);
    let members: Vec<AssignMember> = ["a", "b", "c"].iter().map(|id| member(id, &[0])).collect();
    for assignor in [&UniformAssignor as &dyn Assignor, &RangeAssignor] {
        let out = assignor.assign(&members, &topics);
        check_complete(&members, &topics, &out);
        assert_eq!(
            out.values().filter(|a| a.is_empty()).count(),
            1,
            "{}",
            assignor.name()
        );
    }
}

/// Which of up to five topics a member subscribes to, and (topic, partition) pairs it held.
type MemberSpec = (Vec<bool>, Vec<(u8, i32)>);

fn members_strategy() -> impl Strategy<Value = (Vec<i32>, Vec<MemberSpec>)> {
    let topics = proptest::collection::vec(0..12i32, 1..5);
    let members = proptest::collection::vec(
        (
            proptest::collection::vec(any::<bool>(), 5),
            proptest::collection::vec((0..5u8, 0..12i32), 0..8),
        ),
        1..8,
    );
    (topics, members)
}

fn build(counts: &[i32], spec: &[MemberSpec], homogeneous: bool) -> Vec<AssignMember> {
    spec.iter()
        .enumerate()
        .map(|(i, (subs, current))| {
            let subscribed: BTreeSet<TopicId> = (0..counts.len())
                .filter(|t| homogeneous || subs[*t])
                .map(|t| topic_id(t as u8))
                .collect();
            let mut cur = Assignment::new();
            for (t, p) in current {
                cur.entry(topic_id(*t)).or_default().insert(*p);
            }
            AssignMember {
                member_id: format!("m{i}"),
                subscribed,
                current: cur,
                rack: None,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any members, subscriptions and (even contradictory) current assignments: every
    /// subscribed partition is assigned exactly once, only to a subscriber.
    #[test]
    fn every_subscribed_partition_is_assigned_once((counts, spec) in members_strategy()) {
        let topics = view(&counts);
        let members = build(&counts, &spec, false);
        check_complete(&members, &topics, &UniformAssignor.assign(&members, &topics));
        check_complete(&members, &topics, &RangeAssignor.assign(&members, &topics));
    }

    /// With everyone subscribed to the same topics, uniform is balanced to within one
    /// partition, whatever members held before.
    #[test]
    fn uniform_is_balanced_for_equal_subscriptions((counts, spec) in members_strategy()) {
        let topics = view(&counts);
        let members = build(&counts, &spec, true);
        let out = UniformAssignor.assign(&members, &topics);
        check_complete(&members, &topics, &out);
        let loads: Vec<usize> = out.values().map(load).collect();
        let (max, min) = (loads.iter().max().copied().unwrap_or(0), loads.iter().min().copied().unwrap_or(0));
        prop_assert!(max - min <= 1, "{:?}", loads);
        // And a second run from its own output moves nothing (stable under stickiness).
        let again: Vec<AssignMember> = members.iter().map(|m| AssignMember { current: out[&m.member_id].clone(), ..m.clone() }).collect();
        prop_assert_eq!(UniformAssignor.assign(&again, &topics), out);
    }
}
