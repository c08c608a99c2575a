//! Voters, quorum safety and priorities (rules 2, 3 and 6).
//!
//! A placement is quorum-safe when losing any one cluster leaves a voting majority: no cluster
//! holds more than ⌊(V−1)/2⌋ of the V votes. Data members beyond the voters vote 0 and have
//! priority 0, which is what lets 3+2 data members on two clusters plus an arbiter in a third
//! vote 2/2/1.

use fedstate_api::limits::MAX_VOTERS;
use fedstate_api::quorum::max_votes_per_cluster;

/// The number of voters and whether it can be made safe with these capacities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VotePlan {
    pub voters: u32,
    /// ⌊(V−1)/2⌋.
    pub max_per_cluster: u32,
    /// A safe layout exists for `voters` given the capacities.
    pub feasible: bool,
    /// What rule 2 alone gives: the largest odd number ≤ min(R + arbiter, 7).
    pub rule2_voters: u32,
}

impl VotePlan {
    pub fn describe(&self, r: u32, arbiter: bool) -> String {
        let base = format!(
            "{} voters: largest odd number <= min({r} data{}, 7)",
            self.rule2_voters,
            if arbiter { " + 1 arbiter" } else { "" }
        );
        if self.voters < self.rule2_voters {
            format!(
                "{} voters: {base} would be {}, which no layout over these clusters keeps safe",
                self.voters, self.rule2_voters
            )
        } else {
            base
        }
    }
}

/// The largest odd V ≤ min(R + arbiter, 7) that can be laid out safely (rule 3 prefers it);
/// rule 2's V when none can.
#[allow(
    clippy::indexing_slicing,
    reason = "sum and small have 4 entries, indexed by m in 1..=3: the loop's range, and (v - 1) / 2 with v <= MAX_VOTERS = 7"
)]
pub fn choose_voters(r: u32, arbiter: bool, caps: impl Iterator<Item = u32>) -> VotePlan {
    let members = r + u32::from(arbiter);
    let mut rule2 = members.min(u32::from(MAX_VOTERS));
    if rule2.is_multiple_of(2) {
        rule2 -= 1;
    }
    // Σ min(cap, m) for m = 1, 2, 3, and whether a cluster with cap < m exists (the arbiter's
    // vote then always counts: that cluster can never reach m data votes).
    let mut sum = [0u64; 4];
    let mut small = [false; 4];
    for cap in caps {
        for m in 1..=3u32 {
            sum[m as usize] += u64::from(cap.min(m));
            small[m as usize] |= cap < m;
        }
    }
    let mut v = rule2;
    while v >= 3 {
        let m = max_votes_per_cluster(v);
        let arb_gain = u64::from(arbiter && small[m as usize]);
        if sum[m as usize] + arb_gain >= u64::from(v) {
            return VotePlan {
                voters: v,
                max_per_cluster: m,
                feasible: true,
                rule2_voters: rule2,
            };
        }
        v -= 2;
    }
    VotePlan {
        voters: rule2,
        max_per_cluster: max_votes_per_cluster(rule2),
        feasible: false,
        rule2_voters: rule2,
    }
}

/// Says what is missing for quorum safety, in the words of a condition message.
pub fn shortfall(r: u32, arbiter: bool, caps: &[u32], plan: VotePlan) -> String {
    if r + u32::from(arbiter) < 3 {
        return format!(
            "quorum safety needs at least 3 voting members, found {} ({r} data{}); raise spec.replicaset or enable spec.config.arbiter",
            r + u32::from(arbiter),
            if arbiter { " + arbiter" } else { "" }
        );
    }
    let with_room = caps.iter().filter(|c| **c > 0).count();
    let voting_clusters = if arbiter && caps.len() > with_room {
        with_room + 1
    } else {
        with_room
    };
    if voting_clusters < 3 {
        return format!("3 eligible clusters needed, {voting_clusters} found");
    }
    if plan.feasible {
        return "the previous placement could not be made safe without moving more members".into();
    }
    "the eligible clusters' capacity is too uneven to keep every cluster at a minority of the votes"
        .into()
}

/// Votes and priorities per placed cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assigned {
    pub votes: Vec<u32>,
    pub priorities: Vec<u32>,
}

/// Give `voters` votes to clusters `(data, has_arbiter, preference, rank)`: the arbiter's vote
/// first, then data votes round-robin (preferred clusters, then rank, first) up to `m` per
/// cluster; only if that cannot seat everyone, up to each cluster's members (unsafe).
/// Priority: 2 for the voters of the preferred cluster(s) (without a preference, or when no
/// preferred cluster has a voting data member: the cluster with the most voters), 1 for other
/// voting data members, 0 for clusters whose data members do not vote.
#[allow(
    clippy::indexing_slicing,
    reason = "every k is < clusters.len() (0..n or an enumerate over clusters), and votes and data_votes have n = clusters.len() entries"
)]
pub fn assign(clusters: &[(u32, bool, u32, u32)], voters: u32, m: u32) -> Assigned {
    let n = clusters.len();
    let mut votes = vec![0u32; n];
    let mut data_votes = vec![0u32; n];
    let mut left = voters;
    for (k, c) in clusters.iter().enumerate() {
        if c.1 && left > 0 {
            votes[k] = 1;
            left -= 1;
        }
    }
    let mut by_pref: Vec<usize> = (0..n).collect();
    by_pref.sort_unstable_by_key(|&k| (clusters[k].2, clusters[k].3));
    for limit in [m, u32::MAX] {
        loop {
            let mut progressed = false;
            for &k in &by_pref {
                if left == 0 {
                    break;
                }
                if votes[k] < limit && data_votes[k] < clusters[k].0 {
                    votes[k] += 1;
                    data_votes[k] += 1;
                    left -= 1;
                    progressed = true;
                }
            }
            if left == 0 || !progressed {
                break;
            }
        }
    }
    let preferred: Vec<usize> = by_pref
        .iter()
        .copied()
        .filter(|&k| clusters[k].2 != u32::MAX && data_votes[k] > 0)
        .collect();
    let top = if preferred.is_empty() {
        by_pref
            .iter()
            .copied()
            .filter(|&k| data_votes[k] > 0)
            .max_by(|&a, &b| {
                data_votes[a]
                    .cmp(&data_votes[b])
                    .then(clusters[b].3.cmp(&clusters[a].3))
            })
            .into_iter()
            .collect()
    } else {
        preferred
    };
    let priorities = (0..n)
        .map(|k| match data_votes[k] {
            0 => 0,
            _ if top.contains(&k) => 2,
            _ => 1,
        })
        .collect();
    Assigned { votes, priorities }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_follow_rule_two_when_safe() {
        let p = choose_voters(5, false, [5, 5, 5].into_iter());
        assert_eq!((p.voters, p.max_per_cluster, p.feasible), (5, 2, true));
        let p = choose_voters(4, false, [5, 5, 5].into_iter());
        assert_eq!(p.voters, 3);
        let p = choose_voters(9, true, [9, 9, 9].into_iter());
        assert_eq!(p.voters, 7);
    }

    #[test]
    fn voters_shrink_to_the_largest_safe_odd_number() {
        // 7 members on capacities 5/1/1: only 1+1+1 votes can be kept at a minority each.
        let p = choose_voters(7, false, [5, 1, 1].into_iter());
        assert_eq!((p.voters, p.feasible, p.rule2_voters), (3, true, 7));
        // Two clusters can never be safe.
        let p = choose_voters(5, false, [5, 5].into_iter());
        assert_eq!((p.voters, p.feasible), (5, false));
        // ...unless an arbiter goes to a third (capacity-less) cluster.
        let p = choose_voters(4, true, [5, 5, 0].into_iter());
        assert_eq!((p.voters, p.feasible), (5, true));
    }

    #[test]
    fn arbiter_votes_and_extra_data_members_do_not() {
        // 3 + 2 data, arbiter in a third cluster: 2/2/1.
        let a = assign(
            &[
                (3, false, u32::MAX, 0),
                (2, false, u32::MAX, 1),
                (0, true, u32::MAX, 2),
            ],
            5,
            2,
        );
        assert_eq!(a.votes, vec![2, 2, 1]);
        assert_eq!(a.priorities, vec![2, 1, 0]);
    }

    #[test]
    fn the_preferred_cluster_gets_priority_two() {
        let a = assign(
            &[
                (2, false, u32::MAX, 0),
                (2, false, 0, 1),
                (1, false, u32::MAX, 2),
            ],
            5,
            2,
        );
        assert_eq!(a.votes, vec![2, 2, 1]);
        assert_eq!(a.priorities, vec![1, 2, 1]);
    }
}
