//! Phase 5, finish: the arbiter's cluster, votes and priorities (rules 2, 3 and 6), then the
//! plan and its explanation.

use fedstate_api::quorum;

use super::super::explain::{Explanation, Verdict};
use super::super::input::{
    ClusterCandidate, Distribution, PlacementRequest, PreviousPlacement, QuorumPolicy,
    ReplicaSetRules,
};
use super::super::votes::{self, VotePlan};
use super::super::{ClusterPlacement, PlacementError, PlacementPlan, QuorumStatus};
use super::{Slot, Work};

/// Votes and priorities of the placed slots, and what was decided, in words.
struct Voting {
    quorum: QuorumStatus,
    votes: Vec<u32>,
    priorities: Vec<u32>,
    decisions: Vec<String>,
}

/// Seat the arbiter, deal the votes and build the plan; `QuorumUnsatisfiable` when the policy
/// is `Required` and the layout is not safe.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
pub(super) fn finish(
    mut work: Work,
    req: &PlacementRequest,
    clusters: &[ClusterCandidate],
    previous: Option<&PreviousPlacement>,
    vote_plan: Option<VotePlan>,
) -> Result<PlacementPlan, PlacementError> {
    let arbiter = req.replica_set.is_some_and(|rs| rs.arbiter).then(|| {
        let prev = previous.and_then(|p| p.arbiter.as_deref());
        choose_arbiter(&work.slots, work.max_votes, prev, clusters)
    });
    let mut placed: Vec<usize> = (0..work.slots.len())
        .filter(|&s| work.slots[s].d > 0 || arbiter == Some(s))
        .collect();
    placed.sort_unstable_by_key(|&s| work.slots[s].idx);
    let voting = match (req.replica_set, vote_plan) {
        (Some(rules), Some(plan)) => vote(&mut work, &placed, arbiter, rules, plan, clusters)?,
        _ => Voting {
            quorum: QuorumStatus::NotApplicable,
            votes: vec![0; placed.len()],
            priorities: vec![0; placed.len()],
            decisions: Vec::new(),
        },
    };
    Ok(plan(work, &placed, arbiter, voting, clusters))
}

/// The arbiter's cluster: where its vote counts (fewer than `m` data votes there), then the
/// previous one (stability), then a cluster without data (a separate failure domain), then
/// the fewest data members, then rank.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
fn choose_arbiter(
    slots: &[Slot],
    m: u32,
    prev: Option<&str>,
    clusters: &[ClusterCandidate],
) -> usize {
    let key = |s: &Slot| {
        let counts = s.d < m;
        let was = prev.is_some_and(|p| clusters[s.idx as usize].name == p);
        (
            std::cmp::Reverse(counts),
            std::cmp::Reverse(was),
            std::cmp::Reverse(s.d == 0),
            s.d,
            s.rank,
        )
    };
    (0..slots.len())
        .min_by_key(|&s| key(&slots[s]))
        .unwrap_or_default()
}

/// Deal V votes over the placed slots and judge the layout (rules 2, 3 and 6).
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
fn vote(
    work: &mut Work,
    placed: &[usize],
    arbiter: Option<usize>,
    rules: ReplicaSetRules,
    plan: VotePlan,
    clusters: &[ClusterCandidate],
) -> Result<Voting, PlacementError> {
    let r = work.replicas;
    let slots = &work.slots;
    let members: Vec<(u32, bool, u32, u32)> = placed
        .iter()
        .map(|&s| (slots[s].d, arbiter == Some(s), slots[s].pref, slots[s].rank))
        .collect();
    let assigned = votes::assign(&members, plan.voters, plan.max_per_cluster);
    // Every vote seated, and the layout quorum-safe by the rule the manager checks too.
    let safe = assigned.votes.iter().sum::<u32>() == plan.voters
        && quorum::check_layout(
            placed
                .iter()
                .zip(&assigned.votes)
                .map(|(&s, &v)| (clusters[slots[s].idx as usize].name.as_str(), v)),
        )
        .is_ok();
    let mut decisions = vec![plan.describe(r, rules.arbiter)];
    if let Some(a) = arbiter {
        decisions.push(format!(
            "arbiter in {}: {}",
            clusters[slots[a].idx as usize].name,
            if slots[a].d == 0 {
                "a cluster without data members, so losing a data cluster keeps the majority"
            } else {
                "the cluster with the fewest data members"
            }
        ));
    }
    let quorum = if safe {
        decisions.push(format!(
            "quorum-safe: no cluster holds more than {} of {} votes",
            plan.max_per_cluster, plan.voters
        ));
        QuorumStatus::Safe
    } else {
        let caps: Vec<u32> = slots.iter().map(|s| s.cap).collect();
        let missing = votes::shortfall(r, rules.arbiter, &caps, plan);
        if rules.quorum_policy == QuorumPolicy::Required {
            return Err(PlacementError::QuorumUnsatisfiable {
                missing,
                explanation: work.explain_failure(decisions),
            });
        }
        decisions.push(format!(
            "quorum at risk (policy Preferred places anyway): {missing}"
        ));
        QuorumStatus::AtRisk { missing }
    };
    Ok(Voting {
        quorum,
        votes: assigned.votes,
        priorities: assigned.priorities,
        decisions,
    })
}

/// The plan: placed clusters in input order, every record completed with its count and why.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together; as for the slots; voting holds one vote and one priority per placed slot, in placed's order (vote builds it from placed)"
)]
fn plan(
    mut work: Work,
    placed: &[usize],
    arbiter: Option<usize>,
    voting: Voting,
    clusters: &[ClusterCandidate],
) -> PlacementPlan {
    let mut out = Vec::with_capacity(placed.len());
    for (k, &s) in placed.iter().enumerate() {
        let slot = &work.slots[s];
        out.push(ClusterPlacement {
            cluster: clusters[slot.idx as usize].name.clone(),
            data: slot.d,
            votes: voting.votes[k],
            priority: voting.priorities[k],
            arbiter: arbiter == Some(s),
        });
        let rec = &mut work.records[slot.idx as usize];
        rec.data = slot.d;
        rec.votes = voting.votes[k];
        rec.arbiter = arbiter == Some(s);
    }
    let rule = match work.mode {
        Distribution::Uniform => "even share",
        Distribution::Weighting => "Webster share of capacity",
        Distribution::Aggregated => "packed into the fewest clusters",
    };
    for slot in &mut work.slots {
        slot.count.at_capacity = slot.d == slot.cap;
        slot.count.rule = rule;
        if slot.d > 0 || slot.prev > 0 {
            work.records[slot.idx as usize].verdict = Verdict::Placed {
                count: std::mem::take(&mut slot.count),
            };
        }
    }
    PlacementPlan {
        replicas: work.replicas,
        voters: voting.votes.iter().sum(),
        mode: work.mode,
        clusters: out,
        quorum: voting.quorum,
        explanation: Explanation {
            clusters: work.records,
            decisions: voting.decisions,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::super::add::add;
    use super::super::keep::keep;
    use super::super::testing::*;
    use super::*;

    /// Everything up to finish, then finish.
    fn finished(
        req: &PlacementRequest,
        cs: &[ClusterCandidate],
        prev: Option<&PreviousPlacement>,
    ) -> Result<PlacementPlan, PlacementError> {
        let mut w = work(req, cs, prev);
        keep(&mut w);
        add(&mut w).unwrap();
        let plan = req.replica_set.map(|rs| {
            votes::choose_voters(req.replicas, rs.arbiter, w.slots.iter().map(|s| s.cap))
        });
        finish(w, req, cs, prev, plan)
    }

    fn with_arbiter(mut req: PlacementRequest) -> PlacementRequest {
        req.replica_set = req.replica_set.map(|rs| ReplicaSetRules {
            arbiter: true,
            ..rs
        });
        req
    }

    #[test]
    fn rule3_the_arbiter_goes_to_a_cluster_without_data_members() {
        let cs = clusters(&[10, 10, 0]);
        let p = finished(&with_arbiter(request(4, Distribution::Uniform)), &cs, None).unwrap();
        assert_eq!(p.arbiter_cluster(), Some("m3"));
        let votes: Vec<u32> = p.clusters.iter().map(|c| c.votes).collect();
        assert_eq!(votes, vec![2, 2, 1]);
        assert!(p.explanation.decisions[1].starts_with("arbiter in m3: a cluster without data"));
    }

    #[test]
    fn rule4_the_arbiter_stays_where_it_was_among_clusters_where_its_vote_counts() {
        // Two data clusters, two empty ones: either empty cluster would do, the previous wins.
        let cs = clusters(&[10, 10, 10, 10]);
        let req = with_arbiter(request(2, Distribution::Uniform));
        let first = finished(&req, &cs, None).unwrap();
        let was = first.arbiter_cluster().unwrap();
        let other = cs
            .iter()
            .map(|c| c.name.as_str())
            .find(|n| first.data_in(n) == 0 && *n != was)
            .unwrap();
        let mut prev = first.as_previous();
        prev.arbiter = Some(other.to_owned());
        let p = finished(&req, &cs, Some(&prev)).unwrap();
        assert_eq!(p.arbiter_cluster(), Some(other));
        let data = |p: &PlacementPlan| -> Vec<(String, u32)> {
            p.clusters
                .iter()
                .filter(|c| c.data > 0)
                .map(|c| (c.cluster.clone(), c.data))
                .collect()
        };
        assert_eq!(data(&p), data(&first), "the data members do not move");
    }

    #[test]
    fn rule2_data_members_beyond_seven_voters_vote_zero_with_priority_zero() {
        let p = finished(
            &request(9, Distribution::Uniform),
            &clusters(&[3, 3, 3]),
            None,
        )
        .unwrap();
        assert_eq!(p.voters, 7);
        assert!(p.quorum_safe());
        assert!(p.clusters.iter().all(|c| c.votes <= 3));
        assert_eq!(
            p.explanation.decisions[0],
            "7 voters: largest odd number <= min(9 data, 7)"
        );
    }

    #[test]
    fn rule6_the_cluster_with_the_most_voters_gets_priority_two_without_a_preference() {
        let p = finished(
            &request(5, Distribution::Uniform),
            &clusters(&[10, 10, 10]),
            None,
        )
        .unwrap();
        let top: Vec<&ClusterPlacement> = p.clusters.iter().filter(|c| c.priority == 2).collect();
        assert_eq!(top.len(), 1);
        assert_eq!(top[0].votes, 2);
        let mut req = request(5, Distribution::Uniform);
        req.primary.names = vec!["m3".into()];
        let p = finished(&req, &clusters(&[10, 10, 10]), None).unwrap();
        let m3 = p.clusters.iter().find(|c| c.cluster == "m3").unwrap();
        assert_eq!(m3.priority, 2);
    }

    #[test]
    fn rule3_an_unsafe_layout_is_refused_under_required_and_at_risk_under_preferred() {
        let cs = clusters(&[10, 10]);
        let p = finished(&request(3, Distribution::Uniform), &cs, None).unwrap();
        assert_eq!(
            p.quorum,
            QuorumStatus::AtRisk {
                missing: "3 eligible clusters needed, 2 found".into()
            }
        );
        assert!(
            p.explanation
                .decisions
                .last()
                .unwrap()
                .starts_with("quorum at risk")
        );
        let mut req = request(3, Distribution::Uniform);
        req.replica_set = Some(ReplicaSetRules {
            arbiter: false,
            quorum_policy: QuorumPolicy::Required,
        });
        let e = finished(&req, &cs, None).unwrap_err();
        let PlacementError::QuorumUnsatisfiable {
            missing,
            explanation,
        } = e
        else {
            panic!("expected QuorumUnsatisfiable");
        };
        assert_eq!(missing, "3 eligible clusters needed, 2 found");
        assert_eq!(explanation.clusters.len(), 2, "every cluster explained");
    }

    #[test]
    fn without_a_replica_set_nothing_votes() {
        let mut req = request(4, Distribution::Uniform);
        req.replica_set = None;
        let p = finished(&req, &clusters(&[10, 10]), None).unwrap();
        assert_eq!(p.quorum, QuorumStatus::NotApplicable);
        assert_eq!(p.voters, 0);
        assert!(p.explanation.decisions.is_empty());
    }

    #[test]
    fn the_explanation_says_what_decided_each_count() {
        let mut cs = clusters(&[0, 10, 10, 10]);
        cs[3].ready = false;
        let prev = previous(&[("m1", 1), ("m4", 1)]);
        let p = finished(&request(3, Distribution::Uniform), &cs, Some(&prev)).unwrap();
        let rec = &p.explanation.clusters;
        assert_eq!(rec.len(), 4);
        let Verdict::Placed { count } = &rec[0].verdict else {
            panic!("m1 keeps its member: {:?}", rec[0].verdict);
        };
        assert_eq!((count.kept, count.added, count.rule), (1, 0, "even share"));
        assert!(count.at_capacity);
        assert_eq!(rec[0].why(), "kept 1; full");
        assert!(matches!(rec[3].verdict, Verdict::Filtered(_)));
        assert_eq!(p.clusters.iter().map(|c| c.data).sum::<u32>(), 3);
    }
}
