//! Phase 3, keep (rule 4, bent only by rule 3): start from the previous placement, keep what
//! still fits, scale down one member at a time, and move surplus non-voting members only when
//! the additions left could not reach a quorum-safe layout otherwise.

use std::cmp::Ordering;

use super::super::input::Distribution;
use super::{Slot, SpreadState, Work, quotient_cmp};

/// Keep every previous member that still fits its cluster; the rest no longer fit.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
pub(super) fn keep(work: &mut Work) {
    let m = work.max_votes;
    for (s, slot) in work.slots.iter_mut().enumerate() {
        let keep = slot.prev.min(slot.cap);
        slot.d = keep;
        slot.count.kept = keep;
        slot.count.removed_for_capacity = slot.prev - keep;
        // Saturating: clusters given twice under one name each keep the previous count.
        work.total = work.total.saturating_add(keep);
        work.useful = work.useful.saturating_add(keep.min(m));
        for st in &mut work.spreads {
            st.add(st.group[s], keep);
        }
    }
}

/// While there are more than R members, remove one from the cluster the mode likes least.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
pub(super) fn scale_down(work: &mut Work) {
    while work.total > work.replicas {
        let Some(s) = pick_removal(work) else {
            break;
        };
        work.remove_member(s);
        let count = &mut work.slots[s].count;
        count.kept -= 1;
        count.removed_for_scale += 1;
    }
}

/// Which cluster gives up a member on scale-down: the mode's least-liked, preferring removals
/// that keep quorum safety and spread `minGroups`.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
fn pick_removal(work: &Work) -> Option<usize> {
    let (slots, m) = (&work.slots, work.max_votes);
    let mut best_ok: Option<usize> = None;
    let mut best_any: Option<usize> = None;
    for (s, slot) in slots.iter().enumerate() {
        if slot.d == 0 {
            continue;
        }
        let hurts_quorum = slot.d <= m && work.useful <= work.data_target;
        let hurts_spread = work.spreads.iter().any(|st| loses_a_needed_group(st, s));
        if best_any.is_none_or(|b| worse(work.mode, slot, &slots[b])) {
            best_any = Some(s);
        }
        if !hurts_quorum
            && !hurts_spread
            && best_ok.is_none_or(|b| worse(work.mode, slot, &slots[b]))
        {
            best_ok = Some(s);
        }
    }
    best_ok.or(best_any)
}

/// Removing slot `s`'s last member of its group would drop below the rule's `minGroups`.
#[inline]
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
fn loses_a_needed_group(st: &SpreadState, s: usize) -> bool {
    st.min > 0 && st.members_in(st.group[s]) == 1 && st.groups() <= st.min
}

/// Is `a` a better cluster than `b` to take a member from (rule 5 in reverse)?
#[inline]
fn worse(mode: Distribution, a: &Slot, b: &Slot) -> bool {
    let by_mode = match mode {
        Distribution::Uniform => a.d.cmp(&b.d),
        // The member with the weakest claim: lowest w/(2d−1), i.e. quotient at d−1.
        Distribution::Weighting => quotient_cmp(b.cap, b.d - 1, a.cap, a.d - 1),
        // Empty the smallest, lowest-ranked clusters first.
        Distribution::Aggregated => b.d.cmp(&a.d),
    };
    by_mode.then(a.rank.cmp(&b.rank)) == Ordering::Greater
}

/// Quorum repair (rule 3 over rule 4): if the additions left cannot reach a safe vote layout,
/// move surplus (non-voting) members out of the most over-full clusters.
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
pub(super) fn repair_quorum(work: &mut Work) {
    let m = work.max_votes;
    let deficit = work.data_target.saturating_sub(work.useful);
    let room = work.replicas - work.total;
    if deficit <= room {
        return;
    }
    for _ in 0..(deficit - room) {
        let slots = &work.slots;
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
        work.remove_member(s);
        let count = &mut work.slots[s].count;
        count.kept -= 1;
        count.moved_for_quorum += 1;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::testing::*;
    use super::*;
    use crate::placement::input::{SpreadKey, SpreadRule};

    #[test]
    fn a_previous_placement_beyond_mongodbs_limits_is_read_as_at_most_50_per_cluster() {
        // Found by the placement fuzz target: u32::MAX previous members overflowed `total` and
        // scale-down took ~4·10⁹ steps.
        let cs = clusters(&[u32::MAX, u32::MAX, 5]);
        let prev = previous(&[("m1", u32::MAX), ("m2", u32::MAX)]);
        let mut w = work(&request(3, Distribution::Uniform), &cs, Some(&prev));
        keep(&mut w);
        assert_eq!(w.total, 100);
        scale_down(&mut w);
        assert_eq!(w.total, 3);
    }

    #[test]
    fn rule4_previous_members_are_kept_and_counted() {
        let cs = clusters(&[5, 5, 5]);
        let prev = previous(&[("m1", 1), ("m3", 2)]);
        let mut w = work(&request(5, Distribution::Uniform), &cs, Some(&prev));
        keep(&mut w);
        assert_eq!(counts(&w), vec![1, 0, 2]);
        assert_eq!((w.total, w.useful), (3, 3));
        assert_eq!(w.slots[2].count.kept, 2);
        assert_eq!(w.spreads.len(), 0);
    }

    #[test]
    fn rule4_keep_never_exceeds_a_clusters_capacity() {
        // The estimators count previous members as room, so this only guards the invariant.
        let prev = previous(&[("m1", 3)]);
        let mut w = work(
            &request(3, Distribution::Uniform),
            &clusters(&[0]),
            Some(&prev),
        );
        w.slots[0].cap = 1;
        keep(&mut w);
        assert_eq!(counts(&w), vec![1]);
        assert_eq!(w.slots[0].count.removed_for_capacity, 2);
    }

    #[test]
    fn rule3_kept_members_count_towards_the_data_votes_up_to_the_per_cluster_limit() {
        // Capacities 4/1/1 keep V = 3 safe only at one vote per cluster.
        let prev = previous(&[("m1", 4), ("m2", 1), ("m3", 1)]);
        let mut w = work(
            &request(6, Distribution::Uniform),
            &clusters(&[0, 0, 0]),
            Some(&prev),
        );
        keep(&mut w);
        assert_eq!((w.max_votes, w.data_target), (1, 3));
        assert_eq!((w.total, w.useful), (6, 3));
    }

    #[test]
    fn rule5_uniform_scale_down_takes_from_the_cluster_with_the_most() {
        let cs = clusters(&[10, 10, 10]);
        let prev = previous(&[("m1", 1), ("m2", 3), ("m3", 2)]);
        let mut w = work(&request(4, Distribution::Uniform), &cs, Some(&prev));
        keep(&mut w);
        scale_down(&mut w);
        assert_eq!(counts(&w), vec![1, 2, 1]);
        assert_eq!(w.slots[1].count.removed_for_scale, 1);
        assert_eq!(w.slots[2].count.removed_for_scale, 1);
    }

    #[test]
    fn rule5_weighting_scale_down_takes_the_member_with_the_weakest_claim() {
        // 2 members on capacity 10 and 2 on capacity 30: 10/3 < 30/3, the small cluster gives.
        let cs = clusters(&[8, 28]);
        let prev = previous(&[("m1", 2), ("m2", 2)]);
        let mut req = request(3, Distribution::Weighting);
        req.replica_set = None;
        let mut w = work(&req, &cs, Some(&prev));
        keep(&mut w);
        scale_down(&mut w);
        assert_eq!(counts(&w), vec![1, 2]);
    }

    #[test]
    fn rule5_aggregated_scale_down_empties_the_smallest_cluster_first() {
        let cs = clusters(&[10, 10]);
        let prev = previous(&[("m1", 4), ("m2", 1)]);
        let mut req = request(4, Distribution::Aggregated);
        req.replica_set = None;
        let mut w = work(&req, &cs, Some(&prev));
        keep(&mut w);
        scale_down(&mut w);
        assert_eq!(counts(&w), vec![4, 0]);
    }

    #[test]
    fn rule3_scale_down_avoids_removing_a_vote_the_safe_layout_needs() {
        // 3 + 1 + 1 scaled to 4 with V = 3 (one vote per cluster): Aggregated would empty a
        // smallest cluster, but each single member there holds a vote the layout needs.
        let cs = clusters(&[10, 10, 10]);
        let prev = previous(&[("m1", 3), ("m2", 1), ("m3", 1)]);
        let mut w = work(&request(4, Distribution::Aggregated), &cs, Some(&prev));
        keep(&mut w);
        assert_eq!((w.max_votes, w.data_target), (1, 3));
        scale_down(&mut w);
        assert_eq!(counts(&w), vec![2, 1, 1]);
    }

    #[test]
    fn spread_scale_down_keeps_min_groups() {
        let mut cs = clusters(&[10, 10]);
        for c in &mut cs {
            c.region = Some("r".into());
        }
        cs[1].region = Some("other".into());
        let prev = previous(&[("m1", 2), ("m2", 1)]);
        let mut req = request(2, Distribution::Aggregated);
        req.replica_set = None;
        req.spread.push(SpreadRule {
            key: SpreadKey::Region,
            min_groups: 2,
            max_groups: 0,
        });
        let mut w = work(&req, &cs, Some(&prev));
        keep(&mut w);
        scale_down(&mut w);
        // Aggregated would empty m2; the region rule keeps its only member.
        assert_eq!(counts(&w), vec![1, 1]);
    }

    #[test]
    fn rule3_repair_moves_surplus_members_only_when_additions_cannot_reach_safety() {
        // 4 members kept on m1, a fifth to add, V = 5 needs m1 at 2 votes and 3 more seated
        // elsewhere: one addition cannot seat 3, so 2 of m1's surplus move.
        let cs = clusters(&[10, 10, 10]);
        let prev = previous(&[("m1", 4)]);
        let mut w = work(&request(5, Distribution::Uniform), &cs, Some(&prev));
        keep(&mut w);
        assert_eq!((w.max_votes, w.data_target, w.useful), (2, 5, 2));
        repair_quorum(&mut w);
        assert_eq!(counts(&w), vec![2, 0, 0]);
        assert_eq!(w.slots[0].count.moved_for_quorum, 2);
        assert_eq!(w.total, 2);
        // With room for the three additions nothing moves.
        let mut w = work(
            &request(5, Distribution::Uniform),
            &cs,
            Some(&previous(&[("m1", 2)])),
        );
        keep(&mut w);
        repair_quorum(&mut w);
        assert_eq!(counts(&w), vec![2, 0, 0]);
    }
}
