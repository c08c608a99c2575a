//! Phase 4, add (rule 5, constrained by rules 1 and 3): add members one at a time where the
//! mode wants them. An addition goes elsewhere only when the additions left are all needed to
//! seat the missing data votes (quorum safety) or to open the groups a spread rule's
//! `minGroups` still lacks; `maxGroups` is never exceeded.

use std::cmp::Ordering;

use super::super::input::Distribution;
use super::{PlacementError, Slot, Work, quotient_cmp};

/// What bends the next addition away from the mode's own choice.
struct Forced {
    /// Every addition left is needed to seat the missing data votes.
    quorum: bool,
    /// Per spread rule: every addition left is needed to open the missing groups.
    spread: Vec<bool>,
}

impl Forced {
    fn now(work: &Work) -> Self {
        let left = work.replicas - work.total;
        let deficit = work.data_target.saturating_sub(work.useful);
        Self {
            quorum: deficit > 0 && deficit >= left,
            spread: work
                .spreads
                .iter()
                .map(|st| st.min > st.groups() && st.min - st.groups() >= left)
                .collect(),
        }
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
    )]
    fn any_spread(&self) -> bool {
        self.spread.iter().any(|f| *f)
    }
}

/// The next member's cluster and which constraint, if any, sent it there.
struct Addition {
    slot: usize,
    for_quorum: bool,
    for_spread: bool,
}

/// Add members until there are R; `InsufficientCapacity` when `maxGroups` leaves too little.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
pub(super) fn add(work: &mut Work) -> Result<(), PlacementError> {
    // Clusters in use; unused ones are taken in rank order from `cursor`.
    let mut used: Vec<u32> = (0..work.slots.len() as u32)
        .filter(|&s| work.slots[s as usize].d > 0)
        .collect();
    let mut cursor = 0usize;
    while work.total < work.replicas {
        let forced = Forced::now(work);
        cursor = skip_unusable(work, cursor);
        let Some(a) = pick(work, &used, cursor, &forced) else {
            let within: u64 = work.slots.iter().map(|s| u64::from(s.d)).sum();
            return Err(PlacementError::InsufficientCapacity {
                needed: work.replicas,
                available: within,
                explanation: work.explain_failure(vec![
                    "spread constraints' maxGroups leave too little capacity".into(),
                ]),
            });
        };
        if work.slots[a.slot].d == 0 {
            used.push(a.slot as u32);
        }
        work.add_member(a.slot);
        let count = &mut work.slots[a.slot].count;
        count.added += 1;
        count.added_for_quorum += u32::from(a.for_quorum);
        count.added_for_spread += u32::from(a.for_spread && !a.for_quorum);
    }
    Ok(())
}

/// Move `cursor` past unused clusters that can never take a member: in use already (they are
/// in `used`), without room, or opening a group `maxGroups` has no room for.
#[inline]
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
fn skip_unusable(work: &Work, mut cursor: usize) -> usize {
    while let Some(&s) = work.order.get(cursor) {
        let slot = &work.slots[s as usize];
        let full = slot.d > 0 || slot.cap == 0;
        if full || work.spreads.iter().any(|st| st.blocks(s as usize)) {
            cursor += 1;
        } else {
            break;
        }
    }
    cursor
}

/// The mode's choice, unless a forced constraint needs another cluster: then the best cluster
/// that serves both, else the spread rules, else the mode's own.
fn pick(work: &Work, used: &[u32], cursor: usize, forced: &Forced) -> Option<Addition> {
    let free = best(work, used, cursor, forced, false, false);
    let any_spread = forced.any_spread();
    if !forced.quorum && !any_spread {
        return free.map(|slot| Addition {
            slot,
            for_quorum: false,
            for_spread: false,
        });
    }
    let (slot, quorum_kept) = best(work, used, cursor, forced, true, true)
        .map(|s| (s, true))
        .or_else(|| best(work, used, cursor, forced, false, true).map(|s| (s, false)))
        .or(free.map(|s| (s, false)))?;
    // Credit a constraint only when it changed the mode's own choice.
    let bent = Some(slot) != free;
    Some(Addition {
        slot,
        for_quorum: bent && quorum_kept && forced.quorum,
        for_spread: bent && any_spread,
    })
}

/// The best acceptable cluster for the next member: among those in use, and the first
/// acceptable unused one in rank order (the best unused one, since the order is the mode's).
#[inline(always)]
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
fn best(
    work: &Work,
    used: &[u32],
    cursor: usize,
    forced: &Forced,
    use_quorum: bool,
    use_spread: bool,
) -> Option<usize> {
    let ok = |s: usize| acceptable(work, s, forced, use_quorum, use_spread);
    let mut best: Option<usize> = None;
    for &s in used {
        let s = s as usize;
        if ok(s) && best.is_none_or(|b| better(work.mode, &work.slots[s], &work.slots[b])) {
            best = Some(s);
        }
    }
    if let Some(&s) = work.order[cursor.min(work.order.len())..]
        .iter()
        .find(|&&s| work.slots[s as usize].d == 0 && ok(s as usize))
    {
        let s = s as usize;
        if best.is_none_or(|b| better(work.mode, &work.slots[s], &work.slots[b])) {
            best = Some(s);
        }
    }
    best
}

/// Slot `s` has room, opens no group beyond `maxGroups`, and, for the constraints considered,
/// opens a group a forced spread rule needs and takes a vote the forced quorum needs.
// Inlined into `best` so each of its calls is specialised on the two flags.
#[inline(always)]
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
fn acceptable(work: &Work, s: usize, forced: &Forced, use_quorum: bool, use_spread: bool) -> bool {
    let slot = &work.slots[s];
    if slot.d >= slot.cap {
        return false;
    }
    for (st, spread_forced) in work.spreads.iter().zip(&forced.spread) {
        let new_group = st.members_in(st.group[s]) == 0;
        if new_group && st.max > 0 && st.groups() >= st.max {
            return false;
        }
        if use_spread && *spread_forced && !new_group {
            return false;
        }
    }
    !(use_quorum && forced.quorum && slot.d >= work.max_votes)
}

/// Is `a` a better place for the next member than `b` (rule 5, ties by rank)?
#[inline]
fn better(mode: Distribution, a: &Slot, b: &Slot) -> bool {
    let by_mode = match mode {
        Distribution::Uniform => b.d.cmp(&a.d),
        Distribution::Weighting => quotient_cmp(a.cap, a.d, b.cap, b.d),
        // Keep packing the clusters in use before opening another.
        Distribution::Aggregated => (a.d > 0).cmp(&(b.d > 0)),
    };
    by_mode.then(b.rank.cmp(&a.rank)) == Ordering::Greater
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::super::keep::keep;
    use super::super::testing::*;
    use super::*;
    use crate::placement::input::{PlacementRequest, SpreadKey, SpreadRule};
    use crate::placement::webster;

    fn added(req: &PlacementRequest, caps: &[u32]) -> Work {
        let mut w = work(req, &clusters(caps), None);
        add(&mut w).unwrap();
        w
    }

    fn workload(replicas: u32, mode: Distribution) -> PlacementRequest {
        let mut req = request(replicas, mode);
        req.replica_set = None;
        req
    }

    #[test]
    fn rule5_uniform_adds_to_the_cluster_with_the_fewest_members() {
        let w = added(&workload(8, Distribution::Uniform), &[10, 10, 10]);
        let mut d = counts(&w);
        d.sort_unstable();
        assert_eq!(d, vec![2, 3, 3]);
        // Capacity bounds the even share.
        let w = added(&workload(8, Distribution::Uniform), &[1, 10, 10]);
        assert_eq!(counts(&w)[0], 1);
        assert!(w.slots[0].count.added == 1 && w.total == 8);
    }

    #[test]
    fn rule5_weighting_adds_by_the_highest_sainte_lague_quotient() {
        let caps = [13u32, 7, 29, 1];
        let w = added(&workload(10, Distribution::Weighting), &caps);
        let weights: Vec<u64> = caps.iter().map(|c| u64::from(*c)).collect();
        assert!(
            webster::is_webster(&weights, &caps, &counts(&w)),
            "{:?}",
            counts(&w)
        );
    }

    #[test]
    fn rule5_aggregated_packs_clusters_in_rank_order() {
        let w = added(&workload(12, Distribution::Aggregated), &[5, 8, 20]);
        assert_eq!(counts(&w), vec![0, 0, 12]);
        let w = added(&workload(25, Distribution::Aggregated), &[5, 8, 20]);
        assert_eq!(counts(&w), vec![0, 5, 20]);
    }

    #[test]
    fn rule4_scaling_up_adds_only_the_new_members() {
        let prev = previous(&[("m1", 1), ("m2", 1), ("m3", 1)]);
        let mut w = work(
            &request(5, Distribution::Uniform),
            &clusters(&[9, 9, 9]),
            Some(&prev),
        );
        keep(&mut w);
        add(&mut w).unwrap();
        assert!(counts(&w).iter().all(|d| *d >= 1));
        let added: u32 = w.slots.iter().map(|s| s.count.added).sum();
        let kept: u32 = w.slots.iter().map(|s| s.count.kept).sum();
        assert_eq!((kept, added, w.total), (3, 2, 5));
    }

    #[test]
    fn rule3_additions_leave_the_packed_cluster_when_the_quorum_needs_every_one() {
        // Aggregated alone would put all 3 in one cluster; V = 3 needs one vote per cluster.
        let w = added(&request(3, Distribution::Aggregated), &[10, 10, 10]);
        assert_eq!(counts(&w), vec![1, 1, 1]);
        let for_quorum: u32 = w.slots.iter().map(|s| s.count.added_for_quorum).sum();
        assert_eq!(
            for_quorum, 2,
            "the first addition was the mode's own choice"
        );
        // Without a replica set the same request packs.
        let w = added(&workload(3, Distribution::Aggregated), &[10, 10, 10]);
        let mut d = counts(&w);
        d.sort_unstable();
        assert_eq!(d, vec![0, 0, 3]);
    }

    #[test]
    fn spread_min_groups_opens_new_groups_when_every_addition_left_is_needed() {
        let mut req = workload(2, Distribution::Aggregated);
        req.spread.push(SpreadRule {
            key: SpreadKey::Cluster,
            min_groups: 2,
            max_groups: 0,
        });
        let w = added(&req, &[10, 10]);
        assert_eq!(counts(&w), vec![1, 1]);
        let for_spread: u32 = w.slots.iter().map(|s| s.count.added_for_spread).sum();
        assert_eq!(for_spread, 1);
    }

    #[test]
    fn spread_max_groups_is_never_exceeded_and_too_little_room_within_it_is_an_error() {
        let mut req = workload(4, Distribution::Uniform);
        req.spread.push(SpreadRule {
            key: SpreadKey::Cluster,
            min_groups: 0,
            max_groups: 2,
        });
        let w = added(&req, &[2, 2, 2]);
        assert_eq!(counts(&w).iter().filter(|d| **d > 0).count(), 2);
        req.replicas = 5;
        let mut w = work(&req, &clusters(&[2, 2, 2]), None);
        let e = add(&mut w).unwrap_err();
        let PlacementError::InsufficientCapacity {
            needed,
            available,
            explanation,
        } = e
        else {
            panic!("expected InsufficientCapacity");
        };
        assert_eq!((needed, available), (5, 4));
        assert_eq!(
            explanation.decisions,
            vec!["spread constraints' maxGroups leave too little capacity"]
        );
    }
}
