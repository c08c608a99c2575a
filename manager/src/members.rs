//! Member identities: which set-wide member index lives in which cluster, with which votes and
//! priority, and which members are on their way out.
//!
//! Identities are stable: a member keeps its index (hence its Service `<name>-mongodb-<i>`, its
//! NodePort and its address) for as long as it lives in its cluster. Scaling a cluster up adds the
//! lowest free indexes; scaling down retires the highest indexes of that cluster; a member whose
//! cluster leaves the placement is retired and its replacement gets a *new* index in the new
//! cluster, so an old member coming back with a recovered cluster can never be mistaken for the
//! new one.
//!
//! Retiring members are not in the host list (so the agents remove them from the replica set) but
//! keep their Service and their place in their cluster's `MongoDB` (with votes 0, priority 0) until
//! the status shows them gone ([`confirm_gone`]); only then are they forgotten. That is how a
//! scale-down waits for the agents, and how a lost cluster's members are never lost track of.

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::limits::{MAX_MEMBER_INDEX, MAX_VOTERS};
use fedstate_api::scheduler_result::SchedulerResult;
/// Priority of voting data members when the annotation gives none.
pub const DEFAULT_PRIORITY: i32 = 1;

/// A member we created earlier, as recorded on its Service in the Karmada apiserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    pub index: i32,
    pub cluster: String,
    pub arbiter: bool,
    /// Allocated by the Karmada apiserver for the member's NodePort Service.
    pub node_port: Option<i32>,
}

/// Whether a member is wanted or on its way out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Active,
    Retiring,
}

/// One member of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedMember {
    pub index: i32,
    pub cluster: String,
    pub arbiter: bool,
    pub votes: i32,
    pub priority: i32,
    pub phase: Phase,
}

impl PlannedMember {
    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }
}

/// Every member that exists or should, in canonical order (data before arbiters, then index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    pub members: Vec<PlannedMember>,
    /// Clusters of the placement, in the annotation's order (some may hold only retiring members
    /// or only an arbiter).
    pub planned_clusters: Vec<String>,
}

impl Assignment {
    /// The data members (active or retiring) in one cluster.
    pub fn data_members<'a>(
        &'a self,
        cluster: &'a str,
    ) -> impl Iterator<Item = &'a PlannedMember> + 'a {
        self.members
            .iter()
            .filter(move |m| !m.arbiter && m.cluster == cluster)
    }
}

/// Why no assignment can be made. Messages become condition messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembersError {
    #[error(
        "no free member index for cluster {cluster:?}: {retiring} members are still leaving the replica set; new members are added once they are gone"
    )]
    NoFreeIndex { cluster: String, retiring: usize },
    #[error(
        "the placement gives {voters} votes; MongoDB allows at most {MAX_VOTERS} voting members. Fix the votes in the schedulerResult annotation"
    )]
    TooManyVoters { voters: i32 },
}

/// Compute the members for `plan`, keeping the identities in `previous`.
pub fn assign(
    previous: &[MemberRecord],
    plan: &SchedulerResult,
) -> Result<Assignment, MembersError> {
    let retiring_count = |members: &[PlannedMember]| {
        members
            .iter()
            .filter(|m| m.phase == Phase::Retiring)
            .count()
    };
    let mut members: Vec<PlannedMember> = Vec::new();
    let planned: BTreeMap<&str, &fedstate_api::ClusterWithReplicaset> = plan
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c))
        .collect();

    // Keep the lowest indexes of each planned cluster, retire the rest.
    let mut by_cluster: BTreeMap<&str, Vec<&MemberRecord>> = BTreeMap::new();
    for r in previous.iter().filter(|r| !r.arbiter) {
        by_cluster.entry(r.cluster.as_str()).or_default().push(r);
    }
    for (cluster, mut records) in by_cluster {
        records.sort_by_key(|r| r.index);
        let keep = planned
            .get(cluster)
            .map_or(0, |c| usize::try_from(c.replicaset).unwrap_or(0));
        for (i, r) in records.into_iter().enumerate() {
            members.push(planned_member(
                r,
                if i < keep {
                    Phase::Active
                } else {
                    Phase::Retiring
                },
            ));
        }
    }
    // Arbiters: keep the one in the arbiter's cluster, retire any other.
    let arbiter_cluster = plan.arbiter_cluster();
    let mut arbiter_kept = false;
    let mut arbiters: Vec<&MemberRecord> = previous.iter().filter(|r| r.arbiter).collect();
    arbiters.sort_by_key(|r| r.index);
    for r in arbiters {
        let keep = !arbiter_kept && Some(r.cluster.as_str()) == arbiter_cluster;
        arbiter_kept |= keep;
        members.push(planned_member(
            r,
            if keep { Phase::Active } else { Phase::Retiring },
        ));
    }

    // Add what is missing, lowest free index first, clusters in the annotation's order.
    let mut used: BTreeSet<i32> = members
        .iter()
        .filter(|m| !m.arbiter)
        .map(|m| m.index)
        .collect();
    for c in &plan.clusters {
        let have = members
            .iter()
            .filter(|m| !m.arbiter && m.is_active() && m.cluster == c.cluster)
            .count();
        for _ in have..usize::try_from(c.replicaset).unwrap_or(0) {
            let index = (0..=i32::from(MAX_MEMBER_INDEX))
                .find(|i| !used.contains(i))
                .ok_or_else(|| MembersError::NoFreeIndex {
                    cluster: c.cluster.clone(),
                    retiring: retiring_count(&members),
                })?;
            used.insert(index);
            members.push(new_member(index, &c.cluster, false));
        }
    }
    if let (Some(cluster), false) = (arbiter_cluster, arbiter_kept) {
        let used: BTreeSet<i32> = members
            .iter()
            .filter(|m| m.arbiter)
            .map(|m| m.index)
            .collect();
        let index = (0..=i32::from(MAX_MEMBER_INDEX))
            .find(|i| !used.contains(i))
            .ok_or_else(|| MembersError::NoFreeIndex {
                cluster: cluster.to_owned(),
                retiring: retiring_count(&members),
            })?;
        members.push(new_member(index, cluster, true));
    }

    assign_votes(&mut members, plan)?;
    members.sort_by_key(|m| (m.arbiter, m.index));
    Ok(Assignment {
        members,
        planned_clusters: plan.clusters.iter().map(|c| c.cluster.clone()).collect(),
    })
}

fn planned_member(r: &MemberRecord, phase: Phase) -> PlannedMember {
    PlannedMember {
        index: r.index,
        cluster: r.cluster.clone(),
        arbiter: r.arbiter,
        votes: 0,
        priority: 0,
        phase,
    }
}

fn new_member(index: i32, cluster: &str, arbiter: bool) -> PlannedMember {
    PlannedMember {
        index,
        cluster: cluster.to_owned(),
        arbiter,
        votes: 0,
        priority: 0,
        phase: Phase::Active,
    }
}

/// Votes and priorities per the annotation: each cluster's `votes` go to its arbiter first, then
/// to its data members by index, with the cluster's `priority`. Without any `votes` (FedState's
/// minimal form) up to seven members vote, spread round-robin over the clusters in order.
/// Retiring members and arbiters never get a priority; retiring members never vote.
fn assign_votes(members: &mut [PlannedMember], plan: &SchedulerResult) -> Result<(), MembersError> {
    members.sort_by_key(|m| (!m.arbiter, m.index));
    // Counts below are bounded: the plan's by its parser (≤ 50 members, ≤ 7 votes), the rest by
    // the members list; decrements are guarded by `> 0`.
    let explicit = plan.clusters.iter().any(|c| c.votes.is_some());
    let mut budget: BTreeMap<&str, i32> = BTreeMap::new();
    if explicit {
        for c in &plan.clusters {
            let in_cluster = members
                .iter()
                .filter(|m| m.is_active() && m.cluster == c.cluster)
                .count();
            let default = i32::try_from(in_cluster).unwrap_or(i32::MAX);
            budget.insert(c.cluster.as_str(), c.votes.unwrap_or(default));
        }
    } else {
        let mut left = i32::from(MAX_VOTERS);
        // The arbiter votes first: it exists only to break ties.
        if let Some(a) = members.iter().find(|m| m.arbiter && m.is_active()) {
            *budget.entry(plan_cluster(plan, &a.cluster)).or_default() += 1;
            left -= 1;
        }
        let mut remaining: BTreeMap<&str, i32> = plan
            .clusters
            .iter()
            .map(|c| (c.cluster.as_str(), c.replicaset))
            .collect();
        while left > 0 && remaining.values().any(|n| *n > 0) {
            for c in &plan.clusters {
                let r = remaining.entry(c.cluster.as_str()).or_default();
                if left > 0 && *r > 0 {
                    *r -= 1;
                    left -= 1;
                    *budget.entry(c.cluster.as_str()).or_default() += 1;
                }
            }
        }
    }
    let priorities: BTreeMap<&str, i32> = plan
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c.priority.unwrap_or(DEFAULT_PRIORITY)))
        .collect();
    let mut voters = 0;
    for m in members.iter_mut().filter(|m| m.is_active()) {
        let left = budget.entry(m.cluster.as_str()).or_default();
        if *left > 0 {
            *left -= 1;
            m.votes = 1;
            voters += 1;
            m.priority = if m.arbiter {
                0
            } else {
                priorities.get(m.cluster.as_str()).copied().unwrap_or(0)
            };
        }
    }
    if voters > i32::from(MAX_VOTERS) {
        return Err(MembersError::TooManyVoters { voters });
    }
    Ok(())
}

fn plan_cluster<'a>(plan: &'a SchedulerResult, cluster: &str) -> &'a str {
    plan.clusters
        .iter()
        .find(|c| c.cluster == cluster)
        .map_or("", |c| c.cluster.as_str())
}

/// What the status says about one member cluster, for deciding whether retiring members are gone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterObservation {
    /// The Karmada Cluster exists and is Ready.
    pub ready: bool,
    /// The cluster's `MongoDB` reported a status through Karmada.
    pub reported: bool,
    /// Every host any cluster's replica set view (`status.replset[].name`) lists.
    pub replset_hosts: BTreeSet<String>,
}

/// Drop the retiring members that are gone: no reported replica set lists their address any more,
/// and their own cluster either no longer exists in Karmada or is Ready and has reported since.
/// `retiring` maps a member (index, arbiter) to its address when it has one.
pub fn confirm_gone(
    records: &[MemberRecord],
    retiring: &BTreeMap<(i32, bool), Option<String>>,
    clusters: &BTreeMap<String, ClusterObservation>,
) -> Vec<MemberRecord> {
    let listed: BTreeSet<&str> = clusters
        .values()
        .flat_map(|c| c.replset_hosts.iter().map(String::as_str))
        .collect();
    records
        .iter()
        .filter(|r| {
            let Some(address) = retiring.get(&(r.index, r.arbiter)) else {
                return true; // active: keep
            };
            let still_listed = address.as_deref().is_some_and(|a| listed.contains(a));
            let own_cluster_settled = match clusters.get(&r.cluster) {
                None => true, // the cluster left the federation
                Some(c) => c.ready && c.reported,
            };
            still_listed || !own_cluster_settled
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fedstate_api::ClusterWithReplicaset;
    use proptest::prelude::*;

    fn plan(shares: &[(&str, i32)]) -> SchedulerResult {
        SchedulerResult {
            clusters: shares
                .iter()
                .map(|(c, n)| ClusterWithReplicaset {
                    cluster: (*c).into(),
                    replicaset: *n,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn records(a: &Assignment) -> Vec<MemberRecord> {
        a.members
            .iter()
            .map(|m| MemberRecord {
                index: m.index,
                cluster: m.cluster.clone(),
                arbiter: m.arbiter,
                node_port: None,
            })
            .collect()
    }

    fn active(a: &Assignment, cluster: &str) -> Vec<i32> {
        a.members
            .iter()
            .filter(|m| m.is_active() && !m.arbiter && m.cluster == cluster)
            .map(|m| m.index)
            .collect()
    }

    #[test]
    fn first_placement_numbers_members_by_cluster_order() {
        let a = assign(&[], &plan(&[("a", 2), ("b", 2), ("c", 1)])).unwrap();
        assert_eq!(active(&a, "a"), [0, 1]);
        assert_eq!(active(&a, "b"), [2, 3]);
        assert_eq!(active(&a, "c"), [4]);
        assert!(a.members.iter().all(|m| m.votes == 1 && m.priority == 1));
    }

    #[test]
    fn scaling_up_and_down_changes_only_the_added_or_removed_members() {
        let three = assign(&[], &plan(&[("a", 1), ("b", 1), ("c", 1)])).unwrap();
        let five = assign(&records(&three), &plan(&[("a", 2), ("b", 2), ("c", 1)])).unwrap();
        assert_eq!(active(&five, "a"), [0, 3]);
        assert_eq!(active(&five, "b"), [1, 4]);
        assert_eq!(active(&five, "c"), [2]);
        let back = assign(&records(&five), &plan(&[("a", 1), ("b", 1), ("c", 1)])).unwrap();
        assert_eq!(active(&back, "a"), [0]);
        assert_eq!(active(&back, "b"), [1]);
        let retiring: Vec<_> = back
            .members
            .iter()
            .filter(|m| m.phase == Phase::Retiring)
            .map(|m| (m.index, m.votes, m.priority))
            .collect();
        assert_eq!(retiring, [(3, 0, 0), (4, 0, 0)]);
    }

    #[test]
    fn a_lost_clusters_members_retire_and_replacements_get_new_indexes() {
        let before = assign(&[], &plan(&[("a", 2), ("b", 2), ("c", 1)])).unwrap();
        let after = assign(&records(&before), &plan(&[("a", 3), ("c", 2)])).unwrap();
        assert_eq!(active(&after, "a"), [0, 1, 5]);
        assert_eq!(active(&after, "c"), [4, 6]);
        let b: Vec<_> = after.members.iter().filter(|m| m.cluster == "b").collect();
        assert_eq!(b.len(), 2, "b's members are tracked until they are gone");
        assert!(b.iter().all(|m| m.phase == Phase::Retiring && m.votes == 0));
    }

    #[test]
    fn explicit_votes_and_priorities_and_the_arbiter() {
        let p: SchedulerResult = serde_json::from_str(
            r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":2,"votes":2,"priority":2},
            {"cluster":"b","replicaset":2,"votes":1,"priority":1},
            {"cluster":"c","replicaset":0,"arbiter":true,"votes":1}]}"#,
        )
        .unwrap();
        let a = assign(&[], &p).unwrap();
        let roles: Vec<_> = a
            .members
            .iter()
            .map(|m| (m.cluster.as_str(), m.index, m.arbiter, m.votes, m.priority))
            .collect();
        assert_eq!(
            roles,
            [
                ("a", 0, false, 1, 2),
                ("a", 1, false, 1, 2),
                ("b", 2, false, 1, 1),
                ("b", 3, false, 0, 0),
                ("c", 0, true, 1, 0),
            ]
        );
    }

    #[test]
    fn fedstate_minimal_form_caps_voters_at_seven() {
        let a = assign(&[], &plan(&[("a", 5), ("b", 4)])).unwrap();
        assert_eq!(a.members.iter().filter(|m| m.votes == 1).count(), 7);
        // Round-robin: both clusters keep voters.
        let a_voters = a
            .members
            .iter()
            .filter(|m| m.cluster == "a" && m.votes == 1)
            .count();
        assert_eq!(a_voters, 4);
    }

    #[test]
    fn moving_the_arbiter_retires_the_old_one_under_another_index() {
        let mut p = plan(&[("a", 1), ("b", 1), ("c", 0)]);
        p.clusters[2].arbiter = Some(true);
        let first = assign(&[], &p).unwrap();
        p.clusters[2].arbiter = None;
        p.clusters[1].arbiter = Some(true);
        let second = assign(&records(&first), &p).unwrap();
        let arbiters: Vec<_> = second
            .members
            .iter()
            .filter(|m| m.arbiter)
            .map(|m| (m.cluster.as_str(), m.index, m.phase))
            .collect();
        assert_eq!(
            arbiters,
            [("c", 0, Phase::Retiring), ("b", 1, Phase::Active)]
        );
    }

    #[test]
    fn gone_needs_absence_from_every_replset_and_a_settled_own_cluster() {
        let recs = vec![
            MemberRecord {
                index: 3,
                cluster: "a".into(),
                arbiter: false,
                node_port: Some(30003),
            },
            MemberRecord {
                index: 4,
                cluster: "b".into(),
                arbiter: false,
                node_port: Some(30004),
            },
            MemberRecord {
                index: 0,
                cluster: "a".into(),
                arbiter: false,
                node_port: Some(30000),
            },
        ];
        let retiring = BTreeMap::from([
            ((3, false), Some("10.0.0.1:30003".to_owned())),
            ((4, false), Some("10.0.0.2:30004".to_owned())),
        ]);
        let obs = |ready, reported, hosts: &[&str]| ClusterObservation {
            ready,
            reported,
            replset_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        };
        // b is unreachable: its member stays tracked even though a no longer lists it.
        let clusters = BTreeMap::from([
            ("a".to_owned(), obs(true, true, &["10.0.0.1:30000"])),
            ("b".to_owned(), obs(false, true, &[])),
        ]);
        let kept: Vec<i32> = confirm_gone(&recs, &retiring, &clusters)
            .iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(kept, [4, 0]);
        // Still listed by a's view: kept.
        let clusters = BTreeMap::from([(
            "a".to_owned(),
            obs(true, true, &["10.0.0.1:30000", "10.0.0.1:30003"]),
        )]);
        let kept: Vec<i32> = confirm_gone(&recs, &retiring, &clusters)
            .iter()
            .map(|r| r.index)
            .collect();
        assert_eq!(kept, [3, 0], "b left the federation: its member is gone");
    }

    proptest! {
        /// Whatever the sequence of placements: the active members match the plan exactly, no
        /// index is used twice, and a member that stays in its cluster keeps its index.
        #[test]
        fn identities_are_stable_and_counts_exact(
            steps in proptest::collection::vec(
                proptest::collection::vec(0i32..5, 3), 1..6)
        ) {
            let mut prev: Vec<MemberRecord> = Vec::new();
            for counts in steps {
                let shares: Vec<(&str, i32)> = ["a", "b", "c"].into_iter().zip(counts.clone()).collect();
                let p = plan(&shares);
                let a = assign(&prev, &p).unwrap();
                for (c, n) in &shares {
                    prop_assert_eq!(active(&a, c).len(), usize::try_from(*n).unwrap());
                }
                let idx: Vec<i32> = a.members.iter().filter(|m| !m.arbiter).map(|m| m.index).collect();
                let unique: BTreeSet<i32> = idx.iter().copied().collect();
                prop_assert_eq!(unique.len(), idx.len());
                for r in &prev {
                    let now = a.members.iter().find(|m| m.index == r.index && !m.arbiter);
                    prop_assert!(now.is_some(), "member {} was dropped without being retired", r.index);
                    prop_assert_eq!(&now.unwrap().cluster, &r.cluster);
                }
                prop_assert!(a.members.iter().filter(|m| m.votes == 1).count() <= 7);
                // Pretend everything retiring is gone before the next step.
                prev = records(&a).into_iter().zip(&a.members)
                    .filter(|(_, m)| m.is_active()).map(|(r, _)| r).collect();
            }
        }
    }
}
