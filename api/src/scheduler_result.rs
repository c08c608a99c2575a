//! The `schedulerResult` annotation: where the scheduler put the members, read by the manager.
//!
//! FedState's minimal form is `{"ClusterWithReplicaset":[{"cluster":"a","replicaset":4},…]}`; we add
//! optional `arbiter`, `votes`, `priority` per cluster and `generation`, `mode`, `quorumSafe` at
//! the top, so FedState's own parser still reads what we write.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::{MAX_MEMBERS, MAX_PRIORITY, MAX_VOTERS};
use crate::placement::SchedulerMode;

/// The whole annotation value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerResult {
    /// Per cluster: how many data members (and our extensions).
    #[serde(rename = "ClusterWithReplicaset")]
    pub clusters: Vec<ClusterWithReplicaset>,
    /// The `metadata.generation` the placement was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SchedulerMode>,
    /// Losing any one cluster keeps a voting majority.
    #[serde(
        default,
        rename = "quorumSafe",
        skip_serializing_if = "Option::is_none"
    )]
    pub quorum_safe: Option<bool>,
}

/// One cluster's share.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterWithReplicaset {
    /// Karmada Cluster name.
    pub cluster: String,
    /// Data-bearing members in this cluster.
    pub replicaset: i32,
    /// This cluster also runs the arbiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<bool>,
    /// Votes held in this cluster, the arbiter's included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub votes: Option<i32>,
    /// Priority of this cluster's voting data members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// What is wrong with an annotation value. Messages name the cluster and field, and end with
/// what a user can do, because they become condition messages.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedulerResultError {
    #[error(
        "schedulerResult annotation is not valid: {0}; expected JSON like {{\"ClusterWithReplicaset\":[{{\"cluster\":\"member1\",\"replicaset\":3}}]}}"
    )]
    Malformed(String),
    #[error(
        "schedulerResult annotation lists no cluster; remove the annotation to let the scheduler place the object again"
    )]
    Empty,
    #[error("schedulerResult annotation: entry {index} has an empty cluster name")]
    EmptyClusterName { index: usize },
    #[error(
        "schedulerResult annotation lists cluster {cluster:?} twice; each cluster may appear once"
    )]
    Duplicate { cluster: String },
    #[error(
        "schedulerResult annotation: cluster {cluster:?} has negative {field} {value}; counts must be 0 or more"
    )]
    Negative {
        cluster: String,
        field: &'static str,
        value: i32,
    },
    #[error(
        "schedulerResult annotation: cluster {cluster:?} has {field} {value}, above {max}: {why}"
    )]
    TooLarge {
        cluster: String,
        field: &'static str,
        value: i32,
        max: i32,
        why: &'static str,
    },
    #[error(
        "schedulerResult annotation: cluster {cluster:?} has {votes} votes but only {members} members that can vote"
    )]
    VotesExceedMembers {
        cluster: String,
        votes: i32,
        members: i32,
    },
    #[error(
        "schedulerResult annotation places an arbiter in {count} clusters; a replica set has at most one"
    )]
    SeveralArbiters { count: usize },
    #[error(
        "schedulerResult annotation gives {votes} votes in all; MongoDB allows at most {MAX_VOTERS} voting members"
    )]
    TooManyVotes { votes: i64 },
    #[error(
        "schedulerResult annotation places {members} members in all (arbiter included); MongoDB allows at most {MAX_MEMBERS} members in a replica set"
    )]
    TooManyMembers { members: i64 },
    #[error(
        "schedulerResult annotation places {actual} data members but spec.replicaset is {expected}; the scheduler will re-place the object, or fix the annotation so the counts sum to spec.replicaset"
    )]
    WrongSum { expected: i32, actual: i64 },
    #[error(
        "schedulerResult annotation names cluster {cluster:?}, which is not a Karmada member cluster; check `kubectl get clusters`"
    )]
    UnknownCluster { cluster: String },
}

impl SchedulerResult {
    /// Parse and check an annotation value on its own (shape, names, counts, limits).
    pub fn parse(value: &str) -> Result<Self, SchedulerResultError> {
        let parsed: Self = serde_json::from_str(value)
            .map_err(|e| SchedulerResultError::Malformed(e.to_string()))?;
        parsed.check()?;
        Ok(parsed)
    }

    /// Parse, then check against the object (`spec.replicaset`) and the known clusters.
    pub fn parse_for(
        value: &str,
        expected_replicas: i32,
        is_known_cluster: impl Fn(&str) -> bool,
    ) -> Result<Self, SchedulerResultError> {
        let parsed = Self::parse(value)?;
        parsed.check_sum(expected_replicas)?;
        if let Some(c) = parsed
            .clusters
            .iter()
            .find(|c| !is_known_cluster(&c.cluster))
        {
            return Err(SchedulerResultError::UnknownCluster {
                cluster: c.cluster.clone(),
            });
        }
        Ok(parsed)
    }

    /// Every count is bounded here, at parse time, by MongoDB's own limits (50 members, 7 voters,
    /// priorities 0..=1000), so whoever acts on a parsed value (the engine's stability pass, the
    /// manager's member loops) never iterates or sums beyond them. The number of entries is
    /// bounded by the apiserver's 256 KiB limit on all annotations together.
    fn check(&self) -> Result<(), SchedulerResultError> {
        if self.clusters.is_empty() {
            return Err(SchedulerResultError::Empty);
        }
        let mut seen = BTreeSet::new();
        for (index, c) in self.clusters.iter().enumerate() {
            if c.cluster.trim().is_empty() {
                return Err(SchedulerResultError::EmptyClusterName { index });
            }
            if !seen.insert(c.cluster.as_str()) {
                return Err(SchedulerResultError::Duplicate {
                    cluster: c.cluster.clone(),
                });
            }
            for (field, value, max, why) in [
                (
                    "replicaset",
                    Some(c.replicaset),
                    i32::from(MAX_MEMBERS),
                    "MongoDB allows at most 50 members in a replica set",
                ),
                (
                    "votes",
                    c.votes,
                    i32::from(MAX_VOTERS),
                    "MongoDB allows at most 7 voting members",
                ),
                (
                    "priority",
                    c.priority,
                    i32::from(MAX_PRIORITY),
                    "MongoDB priorities are 0 to 1000",
                ),
            ] {
                let Some(value) = value else { continue };
                if value < 0 {
                    return Err(SchedulerResultError::Negative {
                        cluster: c.cluster.clone(),
                        field,
                        value,
                    });
                }
                if value > max {
                    return Err(SchedulerResultError::TooLarge {
                        cluster: c.cluster.clone(),
                        field,
                        value,
                        max,
                        why,
                    });
                }
            }
            // Both at most 50 (checked above): no overflow.
            let members = c.replicaset + i32::from(c.has_arbiter());
            if let Some(votes) = c.votes.filter(|v| *v > members) {
                return Err(SchedulerResultError::VotesExceedMembers {
                    cluster: c.cluster.clone(),
                    votes,
                    members,
                });
            }
        }
        let arbiters = self.clusters.iter().filter(|c| c.has_arbiter()).count();
        if arbiters > 1 {
            return Err(SchedulerResultError::SeveralArbiters { count: arbiters });
        }
        let members = self.total_data_members() + i64::from(arbiters == 1);
        if members > i64::from(MAX_MEMBERS) {
            return Err(SchedulerResultError::TooManyMembers { members });
        }
        let votes: i64 = self
            .clusters
            .iter()
            .filter_map(|c| c.votes)
            .map(i64::from)
            .sum();
        if votes > i64::from(MAX_VOTERS) {
            return Err(SchedulerResultError::TooManyVotes { votes });
        }
        Ok(())
    }

    /// The data members sum to `expected`.
    pub fn check_sum(&self, expected: i32) -> Result<(), SchedulerResultError> {
        let actual = self.total_data_members();
        if actual != i64::from(expected) {
            return Err(SchedulerResultError::WrongSum { expected, actual });
        }
        Ok(())
    }

    /// The data members of every cluster. Summed in `i64`, so even an unchecked value (up to
    /// `i32::MAX` per entry, entries bounded by the annotation's size) cannot overflow.
    pub fn total_data_members(&self) -> i64 {
        self.clusters.iter().map(|c| i64::from(c.replicaset)).sum()
    }

    /// The cluster hosting the arbiter, if any.
    pub fn arbiter_cluster(&self) -> Option<&str> {
        self.clusters
            .iter()
            .find(|c| c.has_arbiter())
            .map(|c| c.cluster.as_str())
    }

    /// The annotation value (compact JSON).
    #[allow(
        clippy::expect_used,
        reason = "plain strings, integers, booleans and a unit enum: serde_json cannot fail on them"
    )]
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("SchedulerResult always serializes")
    }

    /// Short form for `kubectl get`: `a:2,b:2,c:1+arbiter`.
    pub fn summary(&self) -> String {
        summary(&self.clusters)
    }
}

impl ClusterWithReplicaset {
    pub fn has_arbiter(&self) -> bool {
        self.arbiter.unwrap_or(false)
    }
}

/// `a:2,b:2,c:1+arbiter` for a list of cluster shares.
pub fn summary(clusters: &[ClusterWithReplicaset]) -> String {
    clusters
        .iter()
        .map(|c| {
            let arb = if c.has_arbiter() { "+arbiter" } else { "" };
            format!("{}:{}{arb}", c.cluster, c.replicaset)
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    const BLOG: &str = r#"{"ClusterWithReplicaset":[{"cluster":"10-29-14-21","replicaset":4},{"cluster":"10-29-14-25","replicaset":1}]}"#;

    #[test]
    fn reads_the_blog_value_fedstate_wrote() {
        let r = SchedulerResult::parse(BLOG).unwrap();
        assert_eq!(r.clusters.len(), 2);
        assert_eq!(r.clusters[0].cluster, "10-29-14-21");
        assert_eq!(r.clusters[0].replicaset, 4);
        assert_eq!(r.clusters[1].replicaset, 1);
        assert_eq!(r.total_data_members(), 5);
        assert_eq!(r.generation, None);
        // What we write back for it is byte-identical: FedState's parser keeps reading it.
        assert_eq!(r.to_annotation(), BLOG);
        let known = ["10-29-14-21", "10-29-14-25"];
        assert!(SchedulerResult::parse_for(BLOG, 5, |c| known.contains(&c)).is_ok());
    }

    #[test]
    fn reads_the_extended_form() {
        let v = r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":2,"arbiter":false,"votes":2,"priority":2},
                    {"cluster":"member2","replicaset":2,"votes":2,"priority":1},
                    {"cluster":"member3","replicaset":1,"arbiter":true,"votes":1,"priority":1}],
                    "generation":7,"mode":"Uniform","quorumSafe":true}"#;
        let r = SchedulerResult::parse(v).unwrap();
        assert_eq!(r.generation, Some(7));
        assert_eq!(r.mode, Some(SchedulerMode::Uniform));
        assert_eq!(r.quorum_safe, Some(true));
        assert_eq!(r.arbiter_cluster(), Some("member3"));
        assert_eq!(r.summary(), "member1:2,member2:2,member3:1+arbiter");
        assert_eq!(SchedulerResult::parse(&r.to_annotation()).unwrap(), r);
    }

    fn err(v: &str) -> String {
        SchedulerResult::parse(v).unwrap_err().to_string()
    }

    #[test]
    fn rejects_bad_values_with_a_message_naming_the_problem() {
        assert!(err("not json").starts_with("schedulerResult annotation is not valid:"));
        assert!(err(r#"{"clusters":[]}"#).contains("ClusterWithReplicaset"));
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":"2"}]}"#)
                .contains("not valid")
        );
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1.5}]}"#)
                .contains("not valid")
        );
        assert!(err(r#"{"ClusterWithReplicaset":[]}"#).contains("lists no cluster"));
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"","replicaset":1}]}"#)
                .contains("empty cluster name")
        );
        assert_eq!(
            err(
                r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1},{"cluster":"a","replicaset":2}]}"#
            ),
            "schedulerResult annotation lists cluster \"a\" twice; each cluster may appear once"
        );
        assert_eq!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":-1}]}"#),
            "schedulerResult annotation: cluster \"a\" has negative replicaset -1; counts must be 0 or more"
        );
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1,"votes":-1}]}"#)
                .contains("negative votes")
        );
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1,"votes":2}]}"#)
                .contains("2 votes but only 1")
        );
        assert!(err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1,"arbiter":true},{"cluster":"b","replicaset":1,"arbiter":true}]}"#).contains("arbiter in 2 clusters"));
        assert!(err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":4,"votes":4},{"cluster":"b","replicaset":4,"votes":4}]}"#).contains("at most 7"));
    }

    #[test]
    fn rejects_a_wrong_sum_and_unknown_clusters() {
        let e = SchedulerResult::parse_for(BLOG, 3, |_| true).unwrap_err();
        assert_eq!(
            e,
            SchedulerResultError::WrongSum {
                expected: 3,
                actual: 5
            }
        );
        assert!(
            e.to_string()
                .contains("places 5 data members but spec.replicaset is 3")
        );
        let e = SchedulerResult::parse_for(BLOG, 5, |c| c == "10-29-14-21").unwrap_err();
        assert!(
            e.to_string()
                .contains("\"10-29-14-25\", which is not a Karmada member cluster")
        );
    }

    #[test]
    fn counts_are_bounded_by_mongodbs_limits_at_parse_time() {
        // Two clusters of i32::MAX: before the bound, the scheduler's stability pass iterated
        // ~4·10⁹ times inside one reconcile.
        let e = err(
            r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":2147483647},{"cluster":"b","replicaset":2147483647}]}"#,
        );
        assert_eq!(
            e,
            "schedulerResult annotation: cluster \"a\" has replicaset 2147483647, above 50: MongoDB allows at most 50 members in a replica set"
        );
        // An arbiter next to i32::MAX members: `replicaset + 1` overflowed (a panic in debug).
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":2147483647,"arbiter":true,"votes":1}]}"#)
                .contains("has replicaset 2147483647, above 50")
        );
        // Votes summed over clusters: i32::MAX twice overflowed the i32 sum.
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1,"votes":2147483647},{"cluster":"b","replicaset":1,"votes":2147483647}]}"#)
                .contains("has votes 2147483647, above 7")
        );
        assert!(
            err(r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1,"priority":1001}]}"#)
                .contains("priority 1001, above 1000: MongoDB priorities are 0 to 1000")
        );
        // 25 + 25 data members and an arbiter: 51 members.
        assert_eq!(
            err(
                r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":25},{"cluster":"b","replicaset":25,"arbiter":true}]}"#
            ),
            "schedulerResult annotation places 51 members in all (arbiter included); MongoDB allows at most 50 members in a replica set"
        );
        // The limits themselves are fine.
        let at_limit = r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":49,"votes":4,"priority":1000},{"cluster":"b","replicaset":0,"arbiter":true,"votes":1}]}"#;
        assert_eq!(
            SchedulerResult::parse(at_limit)
                .unwrap()
                .total_data_members(),
            49
        );
    }

    fn count() -> impl Strategy<Value = i32> {
        prop_oneof![
            0i32..60,
            Just(i32::MAX),
            Just(i32::MAX - 1),
            Just(i32::MIN),
            any::<i32>()
        ]
    }

    proptest! {
        // Anything we produce (within MongoDB's 50 members: at most 7 × 7), we read back
        // identically; anything at all never panics the parser.
        #[test]
        fn round_trips(counts in proptest::collection::vec((0i32..8, proptest::option::of(0i32..2)), 1..8), generation in proptest::option::of(0i64..1000)) {
            let clusters = counts.iter().enumerate().map(|(i, (d, v))| ClusterWithReplicaset {
                cluster: format!("member{i}"), replicaset: *d, votes: v.map(|v| v.min(*d)), ..Default::default()
            }).collect();
            let r = SchedulerResult { clusters, generation, ..Default::default() };
            prop_assert_eq!(SchedulerResult::parse(&r.to_annotation()).unwrap(), r);
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = SchedulerResult::parse(&s);
        }

        // Well-formed JSON with any counts (small ones, MongoDB's limits and i32's extremes):
        // either an error, or a value within MongoDB's limits; never a panic.
        #[test]
        fn any_counts_parse_within_limits_or_fail(
            entries in proptest::collection::vec(
                (count(), proptest::option::of(count()), proptest::option::of(count()), proptest::option::of(any::<bool>())),
                1..6,
            ),
        ) {
            let clusters: Vec<_> = entries.iter().enumerate().map(|(i, (d, v, p, a))| ClusterWithReplicaset {
                cluster: format!("m{i}"), replicaset: *d, votes: *v, priority: *p, arbiter: *a,
            }).collect();
            let r = SchedulerResult { clusters, ..Default::default() };
            // What the object would have to ask for to match (when an i32 can say it).
            let expected = i32::try_from(r.total_data_members()).unwrap_or(i32::MAX);
            if let Ok(r) = SchedulerResult::parse_for(&r.to_annotation(), expected, |_| true) {
                prop_assert!(r.total_data_members() <= i64::from(MAX_MEMBERS));
                let votes: i32 = r.clusters.iter().filter_map(|c| c.votes).sum();
                prop_assert!(votes <= i32::from(MAX_VOTERS));                prop_assert!(votes <= i32::from(MAX_VOTERS));
            }
        }
    }
}
