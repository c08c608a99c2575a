//! The placement algorithm: filter, rank, keep, remove, add, arbiter, votes, priorities.
//!
//! Every placement, from scratch or not, is built incrementally from the previous one (empty
//! when there is none): keep what still fits, remove what scale-down or quorum safety asks,
//! then add members one at a time to the cluster the mode prefers. So a scale by ±k moves
//! exactly k members, a lost cluster's members are the only ones to move, and from scratch
//! the add rule *is* the mode (fewest members first for `Uniform`, highest Sainte-Laguë
//! quotient `w/(2d+1)` for the weighted modes, best-ranked first for `Aggregated`).
//!
//! Cost: one pass over the clusters (filter, hashes), one sort of the eligible ones, then
//! O(R) steps over the clusters in use plus the next unused one in rank order: O(n log n).

use std::cmp::Ordering;

use fedstate_api::limits::MAX_MEMBERS;

use super::explain::{ClusterRecord, CountReason, Explanation, Filtered, Verdict};
use super::input::{
    ClusterCandidate, Distribution, PlacementRequest, PreviousPlacement, QuorumPolicy, SpreadKey,
    TaintEffect,
};
use super::tiebreak;
use super::votes;
use super::{ClusterPlacement, PlacementError, PlacementPlan, QuorumStatus};

const NOT_PREFERRED: u32 = u32::MAX;

/// An eligible cluster and its working state.
#[derive(Clone, Debug, Default)]
struct Slot {
    /// Index into the input slice.
    idx: u32,
    /// Capacity for this object, its previous members included.
    cap: u32,
    prev: u32,
    d: u32,
    /// Webster weight (capacity or static weight).
    weight: u64,
    hash: u64,
    /// Position in the primary preference (0 first), `NOT_PREFERRED` otherwise.
    pref: u32,
    /// Position in the rank order (0 best).
    rank: u32,
    count: CountReason,
}

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

    fn add(&mut self, g: u64) {
        match self.used.iter_mut().find(|(x, _)| *x == g) {
            Some((_, n)) => *n += 1,
            None => self.used.push((g, 1)),
        }
    }

    fn remove(&mut self, g: u64) {
        if let Some(pos) = self.used.iter().position(|(x, _)| *x == g) {
            self.used[pos].1 -= 1;
            if self.used[pos].1 == 0 {
                self.used.swap_remove(pos);
            }
        }
    }

    fn groups(&self) -> u32 {
        self.used.len() as u32
    }
}

/// Compute a placement. Pure and deterministic: the same inputs give the same plan.
pub fn place(
    req: &PlacementRequest,
    clusters: &[ClusterCandidate],
    previous: Option<&PreviousPlacement>,
) -> Result<PlacementPlan, PlacementError> {
    let r = req.replicas;
    if r == 0 {
        return Err(PlacementError::InvalidRequest(
            "replicas must be at least 1".into(),
        ));
    }
    if req.replica_set.is_some() && r > u32::from(MAX_MEMBERS) {
        return Err(PlacementError::InvalidRequest(format!(
            "spec.replicaset is {r}; MongoDB allows at most {MAX_MEMBERS} members"
        )));
    }
    if clusters.len() > u32::MAX as usize {
        return Err(PlacementError::InvalidRequest("too many clusters".into()));
    }

    // Previous members keyed by the same (UID, name) hash the tie-breaks use, so matching
    // thousands of clusters against them costs a u64 binary search each, not string compares.
    let seed = tiebreak::seed(&req.uid);
    let mut prev_members: Vec<(u64, &str, u32)> = previous
        .map(|p| {
            p.members
                .iter()
                .map(|(n, d)| (tiebreak::cluster_hash(seed, n), n.as_str(), *d))
                .collect()
        })
        .unwrap_or_default();
    prev_members.sort_unstable();
    prev_members.dedup_by(|a, b| a.1 == b.1);
    let prev_of = |hash: u64, name: &str| -> u32 {
        if prev_members.is_empty() {
            return 0;
        }
        let from = prev_members.partition_point(|(h, _, _)| *h < hash);
        prev_members[from..]
            .iter()
            .take_while(|(h, _, _)| *h == hash)
            .find(|(_, n, _)| *n == name)
            .map_or(0, |(_, _, d)| *d)
    };
    let prev_arbiter = previous.and_then(|p| p.arbiter.as_deref());

    // 1. Filter (rule 1) and gather what ranking needs.
    let mut records: Vec<ClusterRecord> = Vec::with_capacity(clusters.len());
    let mut slots: Vec<Slot> = Vec::with_capacity(clusters.len());
    let mut spreads: Vec<SpreadState> = req
        .spread
        .iter()
        .map(|s| SpreadState {
            min: s.min_groups,
            max: s.max_groups,
            group: Vec::with_capacity(clusters.len()),
            used: Vec::new(),
        })
        .collect();
    for (i, c) in clusters.iter().enumerate() {
        let hash = tiebreak::cluster_hash(seed, &c.name);
        let prev = prev_of(hash, &c.name);
        let mut record = ClusterRecord {
            index: i as u32,
            capacity: 0,
            previous: prev,
            data: 0,
            votes: 0,
            arbiter: false,
            verdict: Verdict::NotChosen,
        };
        if let Some(why) = filter(req, c) {
            record.verdict = Verdict::Filtered(why);
            records.push(record);
            continue;
        }
        let cap = c.capacity.saturating_add(prev);
        record.capacity = cap;
        if cap == 0 {
            record.verdict = Verdict::NoCapacity;
        }
        for (rule, state) in req.spread.iter().zip(spreads.iter_mut()) {
            state.group.push(match &rule.key {
                SpreadKey::Cluster => tiebreak::string_hash(&c.name),
                SpreadKey::Region => tiebreak::string_hash(c.region.as_deref().unwrap_or("")),
                SpreadKey::Zone => tiebreak::string_hash(c.zone.as_deref().unwrap_or("")),
                SpreadKey::Provider => tiebreak::string_hash(c.provider.as_deref().unwrap_or("")),
                SpreadKey::Label(l) => {
                    tiebreak::string_hash(c.labels.get(l).map_or("", String::as_str))
                }
            });
        }
        let weight = u64::from(cap);
        slots.push(Slot {
            idx: i as u32,
            cap,
            prev,
            weight,
            hash,
            pref: preference(req, c),
            ..Slot::default()
        });
        records.push(record);
    }
    let fail = |records: Vec<ClusterRecord>, decisions: Vec<String>| {
        Box::new(Explanation {
            clusters: records,
            decisions,
        })
    };
    if slots.is_empty() {
        return Err(PlacementError::NoEligibleCluster {
            filtered: clusters.len(),
            explanation: fail(records, Vec::new()),
        });
    }

    // 2. Rank: primary preference, then capacity (or weight), then the tie-break hash.
    let weighted = req.distribution == Distribution::Weighting;
    let mut order: Vec<(u128, u32)> = slots
        .iter()
        .enumerate()
        .map(|(s, slot)| {
            let big = u128::from(u32::MAX - slot.weight.min(u64::from(u32::MAX)) as u32);
            let pref = u128::from(slot.pref);
            let hi = if weighted {
                (big << 32) | pref
            } else {
                let cap = u128::from(u32::MAX - slot.cap);
                (pref << 32) | cap
            };
            ((hi << 64) | u128::from(slot.hash), s as u32)
        })
        .collect();
    order.sort_unstable();
    for (rank, (_, s)) in order.iter().enumerate() {
        slots[*s as usize].rank = rank as u32;
    }
    let order: Vec<u32> = order.into_iter().map(|(_, s)| s).collect();

    // Hard capacity and spread feasibility.
    let available: u64 = slots.iter().map(|s| u64::from(s.cap)).sum();
    if available < u64::from(r) {
        return Err(PlacementError::InsufficientCapacity {
            needed: r,
            available,
            explanation: fail(records, Vec::new()),
        });
    }
    for (rule, state) in req.spread.iter().zip(&spreads) {
        if state.min == 0 {
            continue;
        }
        let mut groups: Vec<u64> = slots
            .iter()
            .zip(&state.group)
            .filter(|(s, _)| s.cap > 0)
            .map(|(_, g)| *g)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        let found = groups.len() as u32;
        if found < state.min || r < state.min {
            return Err(PlacementError::SpreadUnsatisfiable {
                key: rule.key.to_string(),
                min_groups: state.min,
                found: found.min(r),
                explanation: fail(records, Vec::new()),
            });
        }
    }

    // 3. Votes: the largest odd V that can be made quorum-safe (rules 2 and 3).
    let rs = req.replica_set;
    let arb = rs.is_some_and(|s| s.arbiter);
    let vote_plan = rs.map(|_| votes::choose_voters(r, arb, slots.iter().map(|s| s.cap)));
    let (m, data_target) = match vote_plan {
        Some(p) if p.feasible => (p.max_per_cluster, p.voters - u32::from(arb)),
        _ => (u32::MAX, 0),
    };

    // 4. Keep what still fits (rule 4).
    let mut total: u32 = 0;
    let mut useful: u32 = 0;
    for (s, slot) in slots.iter_mut().enumerate() {
        let keep = slot.prev.min(slot.cap);
        slot.d = keep;
        slot.count.kept = keep;
        slot.count.removed_for_capacity = slot.prev - keep;
        total += keep;
        useful += keep.min(m);
        for st in spreads.iter_mut() {
            for _ in 0..keep {
                st.add(st.group[s]);
            }
        }
    }

    // 5. Scale down: remove one at a time from the cluster the mode likes least.
    while total > r {
        let Some(s) = pick_removal(req.distribution, &slots, &spreads, useful, data_target, m)
        else {
            break;
        };
        let slot = &mut slots[s];
        if slot.d <= m {
            useful -= 1;
        }
        slot.d -= 1;
        slot.count.kept -= 1;
        slot.count.removed_for_scale += 1;
        total -= 1;
        for st in spreads.iter_mut() {
            st.remove(st.group[s]);
        }
    }

    // 6. Quorum repair: if the additions left cannot reach a safe vote layout, move surplus
    //    (non-voting) members out of over-full clusters (rule 3 over rule 4).
    let deficit = data_target.saturating_sub(useful);
    let room = r - total;
    if deficit > room {
        for _ in 0..(deficit - room) {
            let Some(s) = (0..slots.len())
                .filter(|&s| slots[s].d > m)
                .max_by(|&a, &b| {
                    (slots[a].d - m)
                        .cmp(&(slots[b].d - m))
                        .then(slots[a].rank.cmp(&slots[b].rank))
                })
            else {
                break;
            };
            slots[s].d -= 1;
            slots[s].count.kept -= 1;
            slots[s].count.moved_for_quorum += 1;
            total -= 1;
            for st in spreads.iter_mut() {
                st.remove(st.group[s]);
            }
        }
    }

    // 7. Add one at a time (rule 5, constrained by rules 1 and 3).
    let mut used: Vec<u32> = (0..slots.len() as u32)
        .filter(|&s| slots[s as usize].d > 0)
        .collect();
    let mut cursor = 0usize;
    while total < r {
        let left = r - total;
        let deficit = data_target.saturating_sub(useful);
        let quorum_forced = deficit > 0 && deficit >= left;
        let spread_forced: Vec<bool> = spreads
            .iter()
            .map(|st| st.min > st.groups() && st.min - st.groups() >= left)
            .collect();
        let any_spread_forced = spread_forced.iter().any(|f| *f);
        // Permanently unusable clusters at the cursor are skipped for good.
        while let Some(&s) = order.get(cursor) {
            let slot = &slots[s as usize];
            let full = slot.d > 0 || slot.cap == 0;
            let blocked = spreads.iter().any(|st| {
                st.max > 0 && st.groups() >= st.max && st.members_in(st.group[s as usize]) == 0
            });
            if full || blocked {
                cursor += 1;
            } else {
                break;
            }
        }
        let find = |use_quorum: bool, use_spread: bool| -> Option<usize> {
            let ok = |s: usize| {
                let slot = &slots[s];
                if slot.d >= slot.cap {
                    return false;
                }
                for (st, forced) in spreads.iter().zip(&spread_forced) {
                    let new_group = st.members_in(st.group[s]) == 0;
                    if new_group && st.max > 0 && st.groups() >= st.max {
                        return false;
                    }
                    if use_spread && *forced && !new_group {
                        return false;
                    }
                }
                !(use_quorum && quorum_forced && slot.d >= m)
            };
            let mut best: Option<usize> = None;
            for &s in &used {
                let s = s as usize;
                if ok(s) && best.is_none_or(|b| better_add(req.distribution, &slots[s], &slots[b]))
                {
                    best = Some(s);
                }
            }
            // The first acceptable unused cluster in rank order is the best unused one.
            if let Some(&s) = order[cursor.min(order.len())..]
                .iter()
                .find(|&&s| slots[s as usize].d == 0 && ok(s as usize))
            {
                let s = s as usize;
                if best.is_none_or(|b| better_add(req.distribution, &slots[s], &slots[b])) {
                    best = Some(s);
                }
            }
            best
        };
        let free = find(false, false);
        let pick = if quorum_forced || any_spread_forced {
            find(true, true)
                .map(|s| (s, true))
                .or_else(|| find(false, true).map(|s| (s, false)))
                .or(free.map(|s| (s, false)))
                .map(|(s, quorum_kept)| {
                    // Credit a constraint only when it changed the mode's own choice.
                    let bent = Some(s) != free;
                    (
                        s,
                        bent && quorum_kept && quorum_forced,
                        bent && any_spread_forced,
                    )
                })
        } else {
            free.map(|s| (s, false, false))
        };
        let Some((s, for_quorum, for_spread)) = pick else {
            let within: u64 = slots.iter().map(|s| u64::from(s.d)).sum();
            return Err(PlacementError::InsufficientCapacity {
                needed: r,
                available: within,
                explanation: fail(
                    records,
                    vec!["spread constraints' maxGroups leave too little capacity".into()],
                ),
            });
        };
        let slot = &mut slots[s];
        if slot.d == 0 {
            used.push(s as u32);
        }
        if slot.d < m {
            useful += 1;
        }
        slot.d += 1;
        slot.count.added += 1;
        slot.count.added_for_quorum += u32::from(for_quorum);
        slot.count.added_for_spread += u32::from(for_spread && !for_quorum);
        total += 1;
        for st in spreads.iter_mut() {
            st.add(st.group[s]);
        }
    }

    // 8. Arbiter, votes, priorities.
    let mut decisions = Vec::new();
    let arbiter_slot = if arb {
        Some(choose_arbiter(&slots, m, prev_arbiter, clusters))
    } else {
        None
    };
    let mut placed: Vec<usize> = (0..slots.len())
        .filter(|&s| slots[s].d > 0 || arbiter_slot == Some(s))
        .collect();
    placed.sort_unstable_by_key(|&s| slots[s].idx);

    let (quorum, slot_votes, priorities) = match (rs, vote_plan) {
        (Some(rules), Some(vp)) => {
            let members: Vec<(u32, bool, u32, u32)> = placed
                .iter()
                .map(|&s| {
                    (
                        slots[s].d,
                        arbiter_slot == Some(s),
                        slots[s].pref,
                        slots[s].rank,
                    )
                })
                .collect();
            let assigned = votes::assign(&members, vp.voters, vp.max_per_cluster);
            let safe = vp.voters >= 3
                && assigned.votes.iter().all(|v| *v <= vp.max_per_cluster)
                && assigned.votes.iter().sum::<u32>() == vp.voters;
            decisions.push(vp.describe(r, arb));
            if let Some(a) = arbiter_slot {
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
                    vp.max_per_cluster, vp.voters
                ));
                QuorumStatus::Safe
            } else {
                let missing =
                    votes::shortfall(r, arb, &slots.iter().map(|s| s.cap).collect::<Vec<_>>(), vp);
                if rules.quorum_policy == QuorumPolicy::Required {
                    return Err(PlacementError::QuorumUnsatisfiable {
                        missing,
                        explanation: fail(records, decisions),
                    });
                }
                decisions.push(format!(
                    "quorum at risk (policy Preferred places anyway): {missing}"
                ));
                QuorumStatus::AtRisk { missing }
            };
            (quorum, assigned.votes, assigned.priorities)
        }
        _ => (
            QuorumStatus::NotApplicable,
            vec![0; placed.len()],
            vec![0; placed.len()],
        ),
    };

    // 9. Output and explanation.
    let mut out = Vec::with_capacity(placed.len());
    for (k, &s) in placed.iter().enumerate() {
        let slot = &slots[s];
        let c = &clusters[slot.idx as usize];
        out.push(ClusterPlacement {
            cluster: c.name.clone(),
            data: slot.d,
            votes: slot_votes[k],
            priority: priorities[k],
            arbiter: arbiter_slot == Some(s),
        });
        let rec = &mut records[slot.idx as usize];
        rec.data = slot.d;
        rec.votes = slot_votes[k];
        rec.arbiter = arbiter_slot == Some(s);
    }
    for slot in &mut slots {
        let rec = &mut records[slot.idx as usize];
        slot.count.at_capacity = slot.d == slot.cap;
        slot.count.rule = match req.distribution {
            Distribution::Uniform => "even share",
            Distribution::Weighting => "Webster share of capacity",
            Distribution::Aggregated => "packed into the fewest clusters",
        };
        if slot.d > 0 || slot.prev > 0 {
            rec.verdict = Verdict::Placed {
                count: std::mem::take(&mut slot.count),
            };
        }
    }
    let voters = slot_votes.iter().sum();
    Ok(PlacementPlan {
        replicas: r,
        voters,
        mode: req.distribution,
        clusters: out,
        quorum,
        explanation: Explanation {
            clusters: records,
            decisions,
        },
    })
}

/// The first reason a cluster cannot host members, if any (rule 1).
fn filter(req: &PlacementRequest, c: &ClusterCandidate) -> Option<Filtered> {
    if !c.ready {
        return Some(Filtered::NotReady);
    }
    for t in &c.taints {
        if t.effect != TaintEffect::PreferNoSchedule
            && !req.tolerations.iter().any(|tol| tol.tolerates(t))
        {
            return Some(Filtered::tainted(&t.key, t.effect));
        }
    }
    let f = &req.filter;
    if !f.names.is_empty() && !f.names.contains(&c.name) {
        return Some(Filtered::NotInClusterNames);
    }
    if f.exclude.contains(&c.name) {
        return Some(Filtered::Excluded);
    }
    if f.labels.as_ref().is_some_and(|m| !m.matches(&c.labels)) {
        return Some(Filtered::LabelSelectorMismatch);
    }
    if f.fields.as_ref().is_some_and(|m| {
        !m.matches(
            c.provider.as_deref(),
            c.region.as_deref(),
            c.zone.as_deref(),
        )
    }) {
        return Some(Filtered::FieldSelectorMismatch);
    }
    if req.require_vip && !c.has_vip {
        return Some(Filtered::NoVip);
    }
    for rule in &req.spread {
        let missing = match &rule.key {
            SpreadKey::Cluster => false,
            SpreadKey::Region => c.region.is_none(),
            SpreadKey::Zone => c.zone.is_none(),
            SpreadKey::Provider => c.provider.is_none(),
            SpreadKey::Label(l) => !c.labels.contains_key(l),
        };
        if missing {
            return Some(Filtered::MissingTopology {
                field: rule.key.to_string(),
            });
        }
    }
    None
}

/// Position of the cluster in the primary preference (0 = first), or `NOT_PREFERRED`.
fn preference(req: &PlacementRequest, c: &ClusterCandidate) -> u32 {
    if let Some(p) = req.primary.names.iter().position(|n| *n == c.name) {
        return p as u32;
    }
    if req
        .primary
        .labels
        .as_ref()
        .is_some_and(|m| m.matches(&c.labels))
    {
        return req.primary.names.len() as u32;
    }
    NOT_PREFERRED
}

/// Sainte-Laguë quotient comparison `w_a/(2d_a+1)` vs `w_b/(2d_b+1)` without division.
fn quotient_cmp(wa: u64, da: u32, wb: u64, db: u32) -> Ordering {
    let lhs = u128::from(wa) * u128::from(2 * u64::from(db) + 1);
    let rhs = u128::from(wb) * u128::from(2 * u64::from(da) + 1);
    lhs.cmp(&rhs)
}

/// Is `a` a better place for the next member than `b`?
fn better_add(mode: Distribution, a: &Slot, b: &Slot) -> bool {
    let by_mode = match mode {
        Distribution::Uniform => b.d.cmp(&a.d),
        Distribution::Weighting => quotient_cmp(a.weight, a.d, b.weight, b.d),
        // Keep packing the clusters in use before opening another.
        Distribution::Aggregated => (a.d > 0).cmp(&(b.d > 0)),
    };
    by_mode.then(b.rank.cmp(&a.rank)) == Ordering::Greater
}

/// Which cluster gives up a member on scale-down: the mode's least-liked, preferring removals
/// that keep quorum safety and spread `minGroups`.
fn pick_removal(
    mode: Distribution,
    slots: &[Slot],
    spreads: &[SpreadState],
    useful: u32,
    target: u32,
    m: u32,
) -> Option<usize> {
    let worse = |a: &Slot, b: &Slot| -> bool {
        let by_mode = match mode {
            Distribution::Uniform => a.d.cmp(&b.d),
            // The member with the weakest claim: lowest w/(2d−1), i.e. quotient at d−1.
            Distribution::Weighting => quotient_cmp(b.weight, b.d - 1, a.weight, a.d - 1),
            // Empty the smallest, lowest-ranked clusters first.
            Distribution::Aggregated => b.d.cmp(&a.d),
        };
        by_mode.then(a.rank.cmp(&b.rank)) == Ordering::Greater
    };
    let mut best_ok: Option<usize> = None;
    let mut best_any: Option<usize> = None;
    for (s, slot) in slots.iter().enumerate() {
        if slot.d == 0 {
            continue;
        }
        let hurts_quorum = slot.d <= m && useful <= target;
        let hurts_spread = spreads
            .iter()
            .any(|st| st.min > 0 && st.members_in(st.group[s]) == 1 && st.groups() <= st.min);
        if best_any.is_none_or(|b| worse(slot, &slots[b])) {
            best_any = Some(s);
        }
        if !hurts_quorum && !hurts_spread && best_ok.is_none_or(|b| worse(slot, &slots[b])) {
            best_ok = Some(s);
        }
    }
    best_ok.or(best_any)
}

/// The arbiter's cluster: where its vote counts (fewer than `m` data votes there), then the
/// previous one (stability), then a cluster without data (a separate failure domain), then
/// the fewest data members, then rank.
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
