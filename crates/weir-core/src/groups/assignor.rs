//! Server-side assignors of KIP-848 groups: given the members (what each subscribes to and
//! what it was last given) and the topics, say which partitions each member should own.
//!
//! - `uniform` (the default, as in Kafka): every subscribed partition to exactly one
//!   subscriber, member loads as even as subscriptions allow (max − min ≤ 1 when everyone
//!   subscribes to the same topics), and sticky: a member keeps what it was given unless
//!   balance requires moving it.
//! - `range`: per topic, the subscribers in member-id order take contiguous ranges, so
//!   topics with the same partition count and subscribers are co-partitioned.
//!
//! What it must never do: look at time, randomness or anything but its arguments (the same
//! input always gives the same output), or assign a partition of a topic a member does not
//! subscribe to. Rack awareness is not implemented: `rack` is carried for a later version.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::TopicId;

use super::consumer::TopicsView;

/// Partitions by topic, as assignors produce and members own them.
pub type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// One member as an assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignMember {
    pub member_id: String,
    /// Ids of the topics the member subscribes to (by name or by regex) that exist now.
    pub subscribed: BTreeSet<TopicId>,
    /// The member's previous target assignment, which a sticky assignor keeps where it can.
    pub current: Assignment,
    pub rack: Option<String>,
}

/// Computes a target assignment. Must be deterministic, and must return an entry for every
/// member (empty when it gets nothing).
pub trait Assignor: Send + Sync {
    fn name(&self) -> &'static str;
    fn assign(&self, members: &[AssignMember], topics: &TopicsView)
    -> BTreeMap<String, Assignment>;
}

/// The assignor a group uses when no member names one (Kafka's default).
pub const DEFAULT_ASSIGNOR: &str = "uniform";

static UNIFORM: UniformAssignor = UniformAssignor;
static RANGE: RangeAssignor = RangeAssignor;

/// The assignor called `name`, if the broker has it.
pub fn assignor_by_name(name: &str) -> Option<&'static dyn Assignor> {
    match name {
        "uniform" => Some(&UNIFORM),
        "range" => Some(&RANGE),
        _ => None,
    }
}

/// Partition counts by topic id, for the topics some member subscribes to.
fn subscribed_partition_counts(
    members: &[AssignMember],
    topics: &TopicsView,
) -> BTreeMap<TopicId, i32> {
    let wanted: BTreeSet<TopicId> = members
        .iter()
        .flat_map(|m| m.subscribed.iter().copied())
        .collect();
    topics
        .by_name
        .values()
        .filter(|(id, count)| *count > 0 && wanted.contains(id))
        .map(|(id, count)| (*id, *count))
        .collect()
}

/// Sticky, balanced assignment (Kafka's "uniform").
#[derive(Debug, Default, Clone, Copy)]
pub struct UniformAssignor;

impl Assignor for UniformAssignor {
    fn name(&self) -> &'static str {
        "uniform"
    }

    fn assign(
        &self,
        members: &[AssignMember],
        topics: &TopicsView,
    ) -> BTreeMap<String, Assignment> {
        let counts = subscribed_partition_counts(members, topics);
        // Members subscribed to each topic, by index into `members`.
        let mut subscribers: BTreeMap<TopicId, Vec<usize>> = BTreeMap::new();
        for (index, member) in members.iter().enumerate() {
            for topic in member.subscribed.iter().filter(|t| counts.contains_key(t)) {
                subscribers.entry(*topic).or_default().push(index);
            }
        }
        let mut given: Vec<Assignment> = vec![Assignment::new(); members.len()];
        let mut load: Vec<usize> = vec![0; members.len()];
        let mut taken: BTreeSet<(TopicId, i32)> = BTreeSet::new();

        // 1. Stickiness: keep what each member had, if it still exists, the member still
        // subscribes, and nobody earlier in the list already kept it.
        for (index, member) in members.iter().enumerate() {
            for (topic, partitions) in &member.current {
                let Some(&count) = counts.get(topic) else {
                    continue;
                };
                if !member.subscribed.contains(topic) {
                    continue;
                }
                for &partition in partitions.iter().filter(|p| (0..count).contains(*p)) {
                    if taken.insert((*topic, partition)) {
                        given[index].entry(*topic).or_default().insert(partition);
                        load[index] += 1;
                    }
                }
            }
        }

        // 2. Every partition nobody kept goes to its least-loaded subscriber.
        for (topic, &count) in &counts {
            let Some(candidates) = subscribers.get(topic) else {
                continue;
            };
            for partition in 0..count {
                if taken.contains(&(*topic, partition)) {
                    continue;
                }
                if let Some(&to) = candidates.iter().min_by_key(|&&i| (load[i], i)) {
                    given[to].entry(*topic).or_default().insert(partition);
                    load[to] += 1;
                    taken.insert((*topic, partition));
                }
            }
        }

        // 3. Balance: one partition at a time, from the most loaded member that has one a
        // subscriber with at least two fewer could take, to the least loaded such subscriber.
        // Each move lowers the sum of squared loads by at least 2, so this ends; the bound
        // only guards against a mistake here turning into a hang.
        let total: usize = load.iter().sum();
        for _ in 0..=total {
            let mut order: Vec<usize> = (0..members.len()).collect();
            order.sort_by_key(|&i| (std::cmp::Reverse(load[i]), i));
            let Some((from, topic, partition, to)) = order.iter().find_map(|&from| {
                given[from].iter().rev().find_map(|(topic, partitions)| {
                    let candidates = subscribers.get(topic)?;
                    let &to = candidates.iter().min_by_key(|&&i| (load[i], i))?;
                    let partition = *partitions.iter().next_back()?;
                    (load[from] > load[to] + 1).then_some((from, *topic, partition, to))
                })
            }) else {
                break;
            };
            if let Some(set) = given[from].get_mut(&topic) {
                set.remove(&partition);
                if set.is_empty() {
                    given[from].remove(&topic);
                }
            }
            given[to].entry(topic).or_default().insert(partition);
            load[from] -= 1;
            load[to] += 1;
        }

        members
            .iter()
            .map(|m| m.member_id.clone())
            .zip(given)
            .collect()
    }
}

/// Per-topic contiguous ranges (Kafka's "range").
#[derive(Debug, Default, Clone, Copy)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        members: &[AssignMember],
        topics: &TopicsView,
    ) -> BTreeMap<String, Assignment> {
        let counts = subscribed_partition_counts(members, topics);
        let mut out: BTreeMap<String, Assignment> = members
            .iter()
            .map(|m| (m.member_id.clone(), Assignment::new()))
            .collect();
        // Member-id order is the same for every topic: that is what co-partitions topics.
        let mut ordered: Vec<&AssignMember> = members.iter().collect();
        ordered.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        for (topic, &count) in &counts {
            let subscribers: Vec<&AssignMember> = ordered
                .iter()
                .copied()
                .filter(|m| m.subscribed.contains(topic))
                .collect();
            let n = subscribers.len();
            if n == 0 {
                continue;
            }
            let count = usize::try_from(count).unwrap_or(0);
            let (per, extra) = (count / n, count % n);
            let mut start = 0usize;
            for (i, member) in subscribers.iter().enumerate() {
                let len = per + usize::from(i < extra);
                let range = (start..start + len).filter_map(|p| i32::try_from(p).ok());
                let partitions: BTreeSet<i32> = range.collect();
                start += len;
                if partitions.is_empty() {
                    continue;
                }
                if let Some(entry) = out.get_mut(&member.member_id) {
                    entry.insert(*topic, partitions);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
