//! The `schedulerResult` annotation: where the scheduler put the members, read by the manager.
//!
//! FedState's minimal form is `{"ClusterWithReplicaset":[{"cluster":"a","replicaset":4},…]}`; we add
//! optional `arbiter`, `votes`, `priority` per cluster and `generation`, `mode`, `quorumSafe` at
//! the top, so FedState's own parser still reads what we write.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::limits::MAX_VOTERS;
use crate::v1alpha1::SchedulerMode;

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
        "schedulerResult annotation gives {votes} votes in all; MongoDB allows at most 7 voting members"
    )]
    TooManyVotes { votes: i32 },
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
            for (field, value) in [
                ("replicaset", Some(c.replicaset)),
                ("votes", c.votes),
                ("priority", c.priority),
            ] {
                if let Some(value) = value.filter(|v| *v < 0) {
                    return Err(SchedulerResultError::Negative {
                        cluster: c.cluster.clone(),
                        field,
                        value,
                    });
                }
            }
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
        let votes: i32 = self.clusters.iter().filter_map(|c| c.votes).sum();
        if votes > i32::from(MAX_VOTERS) {
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

    proptest! {
        // Anything we produce, we read back identically; anything at all never panics the parser.
        #[test]
        fn round_trips(counts in proptest::collection::vec((0i32..50, proptest::option::of(0i32..2)), 1..8), generation in proptest::option::of(0i64..1000)) {
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
    }
}
