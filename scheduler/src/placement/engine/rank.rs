//! Phase 2, rank: one order of the eligible clusters, computed once, that every later phase
//! breaks its ties by and that chooses the clusters when there are more than members.
//!
//! `Uniform` and `Aggregated`: primary preference (rule 6), then capacity, then the tie-break
//! hash (rule 7). `Weighting`: capacity first (its weight), then preference, then the hash.

use super::super::input::Distribution;
use super::Work;

/// Sort the slots into [`Work::order`] and give each its [`rank`](super::Slot::rank).
#[allow(
    clippy::indexing_slicing,
    reason = "slot indexes are < slots.len() (from 0..slots.len() or from order, which gather builds from the slots); each spread rule's group holds one entry per slot and records one per cluster, the index slot.idx names: gather builds them together"
)]
pub(super) fn rank(work: &mut Work) {
    let weighted = work.mode == Distribution::Weighting;
    let mut order: Vec<(u128, u32)> = work
        .slots
        .iter()
        .enumerate()
        .map(|(s, slot)| {
            let room = u128::from(u32::MAX - slot.cap);
            let pref = u128::from(slot.pref);
            let hi = if weighted {
                (room << 32) | pref
            } else {
                (pref << 32) | room
            };
            ((hi << 64) | u128::from(slot.hash), s as u32)
        })
        .collect();
    order.sort_unstable();
    for (rank, (_, s)) in order.iter().enumerate() {
        work.slots[*s as usize].rank = rank as u32;
    }
    work.order = order.into_iter().map(|(_, s)| s).collect();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::gather;
    use super::super::testing::*;
    use super::*;

    fn ranked(mode: Distribution, caps: &[u32], preferred: &[&str], uid: &str) -> Vec<u32> {
        let mut req = request(1, mode);
        req.uid = uid.into();
        req.primary.names = preferred.iter().map(|n| (*n).to_owned()).collect();
        let mut w = gather::gather(&req, &clusters(caps), None).unwrap();
        rank(&mut w);
        w.order.iter().map(|&s| w.slots[s as usize].idx).collect()
    }

    #[test]
    fn rule6_preferred_clusters_rank_first_then_by_capacity() {
        assert_eq!(
            ranked(Distribution::Uniform, &[3, 9, 5], &[], "u"),
            vec![1, 2, 0]
        );
        assert_eq!(
            ranked(Distribution::Uniform, &[3, 9, 5], &["m1"], "u"),
            vec![0, 1, 2]
        );
        assert_eq!(
            ranked(Distribution::Aggregated, &[3, 9, 5], &["m3", "m1"], "u"),
            vec![2, 0, 1]
        );
    }

    #[test]
    fn rule5_weighting_ranks_by_capacity_before_the_preference() {
        assert_eq!(
            ranked(Distribution::Weighting, &[3, 9, 5], &["m1"], "u"),
            vec![1, 2, 0]
        );
        assert_eq!(
            ranked(Distribution::Weighting, &[5, 9, 5], &["m3"], "u"),
            vec![1, 2, 0]
        );
    }

    #[test]
    fn rule7_equal_clusters_are_ordered_by_the_uid_hash() {
        let orders: std::collections::BTreeSet<Vec<u32>> = (0..20)
            .map(|i| ranked(Distribution::Uniform, &[5, 5, 5], &[], &format!("uid-{i}")))
            .collect();
        assert!(orders.len() > 1, "every object ranked equal clusters alike");
        assert_eq!(
            ranked(Distribution::Uniform, &[5, 5, 5], &[], "uid-7"),
            ranked(Distribution::Uniform, &[5, 5, 5], &[], "uid-7"),
        );
    }

    #[test]
    fn ranks_and_order_agree() {
        let mut w = gather::gather(
            &request(1, Distribution::Uniform),
            &clusters(&[1, 7, 4]),
            None,
        )
        .unwrap();
        rank(&mut w);
        for (rank, &s) in w.order.iter().enumerate() {
            assert_eq!(w.slots[s as usize].rank, rank as u32);
        }
    }
}
