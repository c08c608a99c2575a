//! Quorum safety of a vote layout (docs/placement.md, "Quorum safety"), shared by the scheduler
//! (rule 3 of its placements) and the manager (which refuses, under `quorumPolicy: Required`, a
//! placement that breaks it, whoever wrote the annotation).
//!
//! * A **layout** is quorum-safe when losing any one cluster leaves a voting majority: with `V`
//!   votes in all, no cluster holds more than ⌊(V−1)/2⌋ of them. That needs `V ≥ 3` and at least
//!   three clusters that vote.
//! * A **change** from the voters that run to the voters a new placement wants is quorum-safe when
//!   it replaces at most as many running voters at once as one cluster may hold (⌊(V−1)/2⌋ of
//!   the `V` running voters), i.e. what losing one cluster may take: the voters it keeps are then
//!   a majority of the running ones. Voters removed because the set shrinks (the new placement has
//!   fewer voters) are not replaced and do not count; the agents remove them one at a time.

use std::collections::{BTreeMap, BTreeSet};

/// The most votes one cluster may hold so that losing it keeps a majority of `voters` votes.
pub const fn max_votes_per_cluster(voters: u32) -> u32 {
    voters.saturating_sub(1) / 2
}

/// One voting member, by identity: the cluster it lives in, its set-wide member index, and
/// whether it is the arbiter (arbiters have their own index space).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Voter {
    pub cluster: String,
    pub index: i32,
    pub arbiter: bool,
}

/// Why a layout or a change is not quorum-safe. Messages say what a user would lose.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsafe {
    #[error(
        "it gives {voters} voting member(s); a majority survives the loss of a cluster only with at least 3 voters in at least 3 clusters"
    )]
    TooFewVoters { voters: u32 },
    #[error(
        "cluster {cluster:?} holds {votes} of the {voters} votes, more than {max}: losing that one cluster loses the voting majority"
    )]
    ClusterHoldsTooMany {
        cluster: String,
        votes: u32,
        voters: u32,
        max: u32,
    },
    #[error(
        "it replaces {replaced} of the {running} running voters at once ({which}); at most {max} may be replaced in one change (as many as one cluster may hold), so that the voters kept stay a majority"
    )]
    TooManyReplaced {
        replaced: u32,
        running: u32,
        max: u32,
        which: String,
    },
}

/// Judge a layout given as (cluster, votes) pairs (a cluster may appear more than once; its votes
/// add up). The first over-full cluster in name order is the one reported.
pub fn check_layout<'a>(votes: impl IntoIterator<Item = (&'a str, u32)>) -> Result<(), Unsafe> {
    let mut per_cluster: BTreeMap<&str, u32> = BTreeMap::new();
    for (cluster, v) in votes {
        let e = per_cluster.entry(cluster).or_default();
        *e = e.saturating_add(v);
    }
    let voters = per_cluster
        .values()
        .fold(0u32, |sum, v| sum.saturating_add(*v));
    if voters < 3 {
        return Err(Unsafe::TooFewVoters { voters });
    }
    let max = max_votes_per_cluster(voters);
    match per_cluster.into_iter().find(|(_, v)| *v > max) {
        Some((cluster, votes)) => Err(Unsafe::ClusterHoldsTooMany {
            cluster: cluster.to_owned(),
            votes,
            voters,
            max,
        }),
        None => Ok(()),
    }
}

/// Judge the change from the voters that run to the voters wanted (see the module docs). With
/// nothing running yet, any change is safe.
pub fn check_change(running: &BTreeSet<Voter>, wanted: &BTreeSet<Voter>) -> Result<(), Unsafe> {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let gone: Vec<&Voter> = running.difference(wanted).collect();
    let shrink = count(running.len()).saturating_sub(count(wanted.len()));
    let replaced = count(gone.len()).saturating_sub(shrink);
    let max = max_votes_per_cluster(count(running.len()));
    if replaced <= max {
        return Ok(());
    }
    let which = gone
        .iter()
        .map(|v| {
            let role = if v.arbiter { "arbiter" } else { "member" };
            format!("{role} {} in {}", v.index, v.cluster)
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(Unsafe::TooManyReplaced {
        replaced,
        running: count(running.len()),
        max,
        which,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn voters(list: &[(&str, i32)]) -> BTreeSet<Voter> {
        list.iter()
            .map(|(c, i)| Voter {
                cluster: (*c).to_owned(),
                index: *i,
                arbiter: false,
            })
            .collect()
    }

    #[test]
    fn a_layout_is_safe_when_no_cluster_holds_half_the_votes() {
        assert_eq!(max_votes_per_cluster(3), 1);
        assert_eq!(max_votes_per_cluster(5), 2);
        assert_eq!(max_votes_per_cluster(7), 3);
        assert_eq!(max_votes_per_cluster(0), 0);
        assert!(check_layout([("a", 1), ("b", 1), ("c", 1)]).is_ok());
        assert!(check_layout([("a", 2), ("b", 2), ("c", 1)]).is_ok());
        assert!(check_layout([("a", 3), ("b", 3), ("c", 1)]).is_ok());
        assert_eq!(
            check_layout([("a", 2), ("b", 1)]).unwrap_err(),
            Unsafe::ClusterHoldsTooMany {
                cluster: "a".into(),
                votes: 2,
                voters: 3,
                max: 1
            }
        );
        // A cluster named twice adds up.
        assert!(check_layout([("a", 1), ("b", 1), ("a", 1)]).is_err());
        assert_eq!(
            check_layout([("a", 1), ("b", 1)]).unwrap_err(),
            Unsafe::TooFewVoters { voters: 2 }
        );
        assert_eq!(
            check_layout([("a", 3), ("b", 1), ("c", 1)])
                .unwrap_err()
                .to_string(),
            "cluster \"a\" holds 3 of the 5 votes, more than 2: losing that one cluster loses the voting majority"
        );
    }

    #[test]
    fn a_change_replaces_at_most_one_clusters_share_of_the_running_voters() {
        let run = voters(&[("a", 0), ("b", 1), ("c", 2)]);
        // Nothing runs yet: anything goes.
        assert!(check_change(&BTreeSet::new(), &run).is_ok());
        // One cluster's member moves (a failover): safe.
        assert!(check_change(&run, &voters(&[("a", 0), ("b", 1), ("d", 3)])).is_ok());
        // The whole set moves at once: refused, naming who would be replaced.
        let e = check_change(&run, &voters(&[("d", 3), ("e", 4), ("f", 5)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it replaces 3 of the 3 running voters at once (member 0 in a, member 1 in b, member 2 in c); at most 1 may be replaced in one change (as many as one cluster may hold), so that the voters kept stay a majority"
        );
        // Scaling up adds voters and replaces none; scaling down 7 → 3 removes without replacing.
        let seven = voters(&[
            ("a", 0),
            ("b", 1),
            ("c", 2),
            ("a", 3),
            ("b", 4),
            ("c", 5),
            ("d", 6),
        ]);
        assert!(check_change(&run, &seven).is_ok());
        assert!(check_change(&seven, &run).is_ok());
        // 7 → 3 keeping one running voter replaces 2 (at most 3 of 7): safe; 7 → 5 all elsewhere
        // replaces 5: refused.
        assert!(check_change(&seven, &voters(&[("a", 0), ("e", 7), ("f", 8)])).is_ok());
        assert!(
            check_change(
                &seven,
                &voters(&[("e", 7), ("f", 8), ("g", 9), ("e", 10), ("f", 11)])
            )
            .is_err()
        );
        // 2/2/1 → two clusters' members moved at once: 4 replaced of 5, at most 2.
        let five = voters(&[("a", 0), ("a", 1), ("b", 2), ("b", 3), ("c", 4)]);
        assert!(
            check_change(
                &five,
                &voters(&[("d", 5), ("d", 6), ("b", 2), ("b", 3), ("c", 4)])
            )
            .is_ok()
        );
        assert!(matches!(
            check_change(
                &five,
                &voters(&[("d", 5), ("d", 6), ("e", 7), ("e", 8), ("c", 4)])
            ),
            Err(Unsafe::TooManyReplaced {
                replaced: 4,
                running: 5,
                max: 2,
                ..
            })
        ));
        // A shrink that also moves: 5 → 3 keeping 2 and adding 1 replaces 1.
        assert!(check_change(&five, &voters(&[("a", 0), ("b", 2), ("d", 5)])).is_ok());
    }
}
