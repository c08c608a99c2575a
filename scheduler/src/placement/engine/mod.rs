//! The placement algorithm, one phase per module, each a function over the working state
//! `Work` (as Karmada's scheduling framework keeps filter, score and assign apart):
//!
//! 1. `gather`: check the request, filter the clusters (rule 1), build one `Slot` per
//!    eligible cluster with its capacity (previous members included) and spread groups, and
//!    refuse what cannot fit at all;
//! 2. `rank`: order the eligible clusters once (primary preference, capacity, tie-break hash);
//! 3. `keep`: keep what still fits (rule 4), scale down one member at a time from the cluster
//!    the mode likes least, and repair the quorum by moving surplus non-voting members (rule 3);
//! 4. `add`: add members one at a time where the mode wants them (rule 5), bent only by
//!    quorum safety and the spread rules' `minGroups`;
//! 5. `finish`: arbiter, votes, priorities (rules 2, 3, 6), the plan and its explanation.
//!
//! Every placement, from scratch or not, is built incrementally from the previous one (empty
//! when there is none). So a scale by ±k moves exactly k members, a lost cluster's members are
//! the only ones to move, and from scratch the add rule *is* the mode (fewest members first for
//! `Uniform`, highest Sainte-Laguë quotient `w/(2d+1)` for `Weighting`, best-ranked first for
//! `Aggregated`).
//!
//! Cost: one pass over the clusters (filter, hashes), one sort of the eligible ones, then
//! O(R) steps over the clusters in use plus the next unused one in rank order: O(n log n).

mod add;
mod finish;
mod gather;
mod keep;
mod rank;

use std::cmp::Ordering;

use super::explain::{ClusterRecord, CountReason, Explanation};
use super::input::{ClusterCandidate, Distribution, PlacementRequest, PreviousPlacement};
use super::votes::{self, VotePlan};
use super::{PlacementError, PlacementPlan};

/// Compute a placement. Pure and deterministic: the same inputs give the same plan.
pub fn place(
    req: &PlacementRequest,
    clusters: &[ClusterCandidate],
    previous: Option<&PreviousPlacement>,
) -> Result<PlacementPlan, PlacementError> {
    gather::validate(req, clusters)?;
    let mut work = gather::gather(req, clusters, previous)?;
    rank::rank(&mut work);
    gather::check_feasible(&mut work, req)?;
    let vote_plan = req
        .replica_set
        .map(|rs| votes::choose_voters(req.replicas, rs.arbiter, work.slots.iter().map(|s| s.cap)));
    work.set_vote_target(vote_plan, req.replica_set.is_some_and(|rs| rs.arbiter));
    keep::keep(&mut work);
    keep::scale_down(&mut work);
    keep::repair_quorum(&mut work);
    add::add(&mut work)?;
    finish::finish(work, req, clusters, previous, vote_plan)
}

/// An eligible cluster and its working state.
#[derive(Clone, Debug, Default)]
struct Slot {
    /// Index into the input slice.
    idx: u32,
    /// Capacity for this object, its previous members included.
    cap: u32,
    /// Data members here in the previous placement.
    prev: u32,
    /// Data members here now.
    d: u32,
    /// Tie-break hash of (object UID, cluster name).
    hash: u64,
    /// Position in the primary preference (0 first), [`NOT_PREFERRED`] otherwise.
    pref: u32,
    /// Position in the rank order (0 best).
    rank: u32,
    /// What decided `d`, for the explanation.
    count: CountReason,
}

/// [`Slot::pref`] of a cluster outside the primary preference.
const NOT_PREFERRED: u32 = u32::MAX;

/// Per spread rule: the group of each slot and how many members each used group holds.
#[derive(Debug)]
struct SpreadState {
    min: u32,
    max: u32,
    /// Group id per slot.
    group: Vec<u64>,
    /// (group id, members) for groups in use.
    used: Vec<(u64, u32)>,
}

impl SpreadState {
    fn members_in(&self, g: u64) -> u32 {
        self.used
            .iter()
            .find(|(x, _)| *x == g)
            .map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, g: u64, n: u32) {
        if n == 0 {
            return;
        }
        match self.used.iter_mut().find(|(x, _)| *x == g) {
            Some((_, have)) => *have += n,
            None => self.used.push((g, n)),
        }
    }

    fn remove(&mut self, g: u64) {
        if let Some(pos) = self.used.iter().position(|(x, _)| *x == g)
            && let Some((_, have)) = self.used.get_mut(pos)
        {
            *have -= 1;
            if *have == 0 {
                self.used.swap_remove(pos);
            }
        }
    }

    fn groups(&self) -> u32 {
        self.used.len() as u32
    }

    /// Slot `s` would open a group this rule's `maxGroups` has no room for.
    #[allow(
        clippy::indexing_slicing,
        reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
    )]
    fn blocks(&self, s: usize) -> bool {
        self.max > 0 && self.groups() >= self.max && self.members_in(self.group[s]) == 0
    }
}

/// The state the phases share: one slot per eligible cluster and the counters over them.
#[derive(Debug)]
struct Work {
    mode: Distribution,
    /// R: data members wanted.
    replicas: u32,
    /// Eligible clusters, in input order.
    slots: Vec<Slot>,
    /// One per spread rule of the request.
    spreads: Vec<SpreadState>,
    /// Slot indices, best-ranked first.
    order: Vec<u32>,
    /// One record per input cluster, in input order.
    records: Vec<ClusterRecord>,
    /// Σ d.
    total: u32,
    /// Σ min(d, max_votes): members that can hold one of the data votes.
    useful: u32,
    /// Votes one cluster may hold in a safe layout, ⌊(V−1)/2⌋; unbounded without a feasible
    /// vote plan.
    max_votes: u32,
    /// Data votes a safe layout must seat (V less the arbiter's); 0 without a feasible plan.
    data_target: u32,
}

impl Work {
    /// Rules 2 and 3 as the later phases see them: how many votes a cluster may hold and how
    /// many data votes must find a seat.
    fn set_vote_target(&mut self, plan: Option<VotePlan>, arbiter: bool) {
        (self.max_votes, self.data_target) = match plan {
            Some(p) if p.feasible => (p.max_per_cluster, p.voters - u32::from(arbiter)),
            _ => (u32::MAX, 0),
        };
    }

    /// One more data member in slot `s`.
    #[inline]
    #[allow(
        clippy::indexing_slicing,
        reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
    )]
    fn add_member(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if slot.d < self.max_votes {
            self.useful += 1;
        }
        slot.d += 1;
        self.total += 1;
        for st in &mut self.spreads {
            st.add(st.group[s], 1);
        }
    }

    /// One data member less in slot `s`.
    #[inline]
    #[allow(
        clippy::indexing_slicing,
        reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
    )]
    fn remove_member(&mut self, s: usize) {
        let slot = &mut self.slots[s];
        if slot.d <= self.max_votes {
            self.useful -= 1;
        }
        slot.d -= 1;
        self.total -= 1;
        for st in &mut self.spreads {
            st.remove(st.group[s]);
        }
    }

    /// The explanation so far, for an error (the records are not needed after it).
    fn explain_failure(&mut self, decisions: Vec<String>) -> Box<Explanation> {
        Box::new(Explanation {
            clusters: std::mem::take(&mut self.records),
            decisions,
        })
    }
}

/// Sainte-Laguë quotient comparison `w_a/(2d_a+1)` vs `w_b/(2d_b+1)` without division.
#[inline]
fn quotient_cmp(wa: u32, da: u32, wb: u32, db: u32) -> Ordering {
    let lhs = u128::from(wa) * u128::from(2 * u64::from(db) + 1);
    let rhs = u128::from(wb) * u128::from(2 * u64::from(da) + 1);
    lhs.cmp(&rhs)
}

/// Builders for the phases' unit tests.
#[cfg(test)]
mod testing {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::placement::input::{QuorumPolicy, ReplicaSetRules};

    /// An eligible cluster `name` with room for `capacity` members.
    pub fn cluster(name: &str, capacity: u32) -> ClusterCandidate {
        ClusterCandidate {
            name: name.into(),
            ready: true,
            has_vip: true,
            capacity,
            region: Some(format!("region-{name}")),
            ..Default::default()
        }
    }

    /// `m1`, `m2`, … with these capacities.
    pub fn clusters(caps: &[u32]) -> Vec<ClusterCandidate> {
        caps.iter()
            .enumerate()
            .map(|(i, c)| cluster(&format!("m{}", i + 1), *c))
            .collect()
    }

    /// A MongoDB replica set of `replicas` data members, no arbiter, policy `Preferred`.
    pub fn request(replicas: u32, mode: Distribution) -> PlacementRequest {
        PlacementRequest {
            uid: "uid-1".into(),
            replicas,
            distribution: mode,
            replica_set: Some(ReplicaSetRules {
                arbiter: false,
                quorum_policy: QuorumPolicy::Preferred,
            }),
            require_vip: true,
            ..Default::default()
        }
    }

    /// The previous placement `(cluster, data members)`.
    pub fn previous(members: &[(&str, u32)]) -> PreviousPlacement {
        PreviousPlacement {
            members: members.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect(),
            arbiter: None,
        }
    }

    /// The working state after gather, rank and the vote target: the input of `keep`.
    pub fn work(
        req: &PlacementRequest,
        cs: &[ClusterCandidate],
        prev: Option<&PreviousPlacement>,
    ) -> Work {
        let mut w = gather::gather(req, cs, prev).unwrap();
        rank::rank(&mut w);
        let plan = req.replica_set.map(|rs| {
            votes::choose_voters(req.replicas, rs.arbiter, w.slots.iter().map(|s| s.cap))
        });
        w.set_vote_target(plan, req.replica_set.is_some_and(|rs| rs.arbiter));
        w
    }

    /// Data members per slot, in input order.
    pub fn counts(w: &Work) -> Vec<u32> {
        w.slots.iter().map(|s| s.d).collect()
    }
}
