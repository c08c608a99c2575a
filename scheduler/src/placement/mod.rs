//! The placement engine (`docs/placement.md`): a pure function from a request, candidate clusters
//! and the previous placement to a placement plan with votes, priorities and an explanation.
//!
//! * [`input`]: the request and cluster types the engine reads.
//! * [`selector`]: label and field selectors.
//! * [`engine`]: the algorithm ([`place`]).
//! * [`votes`]: voters, quorum safety, priorities.
//! * [`webster`]: Webster/Sainte-Laguë apportionment and its brute-force reference.
//! * [`explain`]: why each cluster got what it got.
//! * [`tiebreak`]: deterministic (UID, cluster) hashes.
//!
//! No I/O, no async, no clock: the same inputs always give the same plan.

pub mod engine;
pub mod explain;
pub mod input;
pub mod selector;
pub mod tiebreak;
pub mod votes;
pub mod webster;

use fedstate_api::placement::SchedulerMode;
use fedstate_api::scheduler_result::{ClusterWithReplicaset, SchedulerResult};
use serde::Serialize;

pub use engine::place;
pub use explain::{ClusterRecord, CountReason, Explanation, Filtered, Verdict};
pub use input::{
    ClusterCandidate, ClusterFilter, Distribution, PlacementRequest, PreviousPlacement,
    PrimaryRule, QuorumPolicy, ReplicaSetRules, SpreadKey, SpreadRule, Taint, TaintEffect,
    Toleration,
};

/// One cluster's share of the placement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterPlacement {
    pub cluster: String,
    /// Data-bearing members.
    pub data: u32,
    /// Votes held here, the arbiter's included.
    pub votes: u32,
    /// Priority of this cluster's voting data members (0 when none of them votes).
    pub priority: u32,
    pub arbiter: bool,
}

/// Whether losing any one cluster keeps a voting majority.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum QuorumStatus {
    Safe,
    /// Placed anyway (policy `Preferred`); `missing` says what would make it safe. The
    /// scheduler sets condition `QuorumAtRisk` with it.
    AtRisk {
        missing: String,
    },
    /// Not a replica set (Karmada workloads).
    NotApplicable,
}

/// The engine's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementPlan {
    pub replicas: u32,
    /// Σ votes (V).
    pub voters: u32,
    pub mode: Distribution,
    /// Clusters with data members or the arbiter, by input order.
    pub clusters: Vec<ClusterPlacement>,
    pub quorum: QuorumStatus,
    pub explanation: Explanation,
}

impl PlacementPlan {
    pub fn quorum_safe(&self) -> bool {
        self.quorum == QuorumStatus::Safe
    }

    pub fn data_in(&self, cluster: &str) -> u32 {
        self.clusters
            .iter()
            .find(|c| c.cluster == cluster)
            .map_or(0, |c| c.data)
    }

    pub fn arbiter_cluster(&self) -> Option<&str> {
        self.clusters
            .iter()
            .find(|c| c.arbiter)
            .map(|c| c.cluster.as_str())
    }

    /// The `schedulerResult` annotation the scheduler writes for this plan, clusters sorted by
    /// name so the value only changes when the placement does.
    pub fn to_scheduler_result(&self, generation: Option<i64>) -> SchedulerResult {
        let mut clusters: Vec<ClusterWithReplicaset> = self
            .clusters
            .iter()
            .map(|c| ClusterWithReplicaset {
                cluster: c.cluster.clone(),
                replicaset: i32::try_from(c.data).unwrap_or(i32::MAX),
                arbiter: Some(c.arbiter),
                votes: Some(c.votes as i32),
                priority: Some(c.priority as i32),
            })
            .collect();
        clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
        SchedulerResult {
            clusters,
            generation,
            mode: match self.mode {
                Distribution::Uniform => Some(SchedulerMode::Uniform),
                Distribution::Weighting => Some(SchedulerMode::Weighting),
                Distribution::Aggregated => Some(SchedulerMode::Aggregated),
            },
            quorum_safe: match self.quorum {
                QuorumStatus::Safe => Some(true),
                QuorumStatus::AtRisk { .. } => Some(false),
                QuorumStatus::NotApplicable => None,
            },
        }
    }

    /// The previous placement to pass to the next [`place`] call.
    pub fn as_previous(&self) -> PreviousPlacement {
        PreviousPlacement {
            members: self
                .clusters
                .iter()
                .map(|c| (c.cluster.clone(), c.data))
                .collect(),
            arbiter: self.arbiter_cluster().map(str::to_owned),
        }
    }
}

/// Why no placement was made. Messages become `Scheduled=False` condition messages.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("invalid placement request: {0}")]
    InvalidRequest(String),
    #[error(
        "no eligible cluster: all {filtered} clusters were filtered (see the explanation for each)"
    )]
    NoEligibleCluster {
        filtered: usize,
        explanation: Box<Explanation>,
    },
    #[error(
        "not enough capacity: {needed} members needed, the eligible clusters can take {available}"
    )]
    InsufficientCapacity {
        needed: u32,
        available: u64,
        explanation: Box<Explanation>,
    },
    #[error(
        "spread constraint by {key} needs at least {min_groups} groups with room, {found} available"
    )]
    SpreadUnsatisfiable {
        key: String,
        min_groups: u32,
        found: u32,
        explanation: Box<Explanation>,
    },
    #[error("QuorumUnsatisfiable: {missing} (quorumPolicy is Required)")]
    QuorumUnsatisfiable {
        missing: String,
        explanation: Box<Explanation>,
    },
}

impl PlacementError {
    /// The condition reason the scheduler sets with `Scheduled=False`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "InvalidSpec",
            Self::NoEligibleCluster { .. } => "NoClusterFit",
            Self::InsufficientCapacity { .. } => "InsufficientCapacity",
            Self::SpreadUnsatisfiable { .. } => "SpreadUnsatisfiable",
            Self::QuorumUnsatisfiable { .. } => "QuorumUnsatisfiable",
        }
    }

    pub fn explanation(&self) -> Option<&Explanation> {
        match self {
            Self::InvalidRequest(_) => None,
            Self::NoEligibleCluster { explanation, .. }
            | Self::InsufficientCapacity { explanation, .. }
            | Self::SpreadUnsatisfiable { explanation, .. }
            | Self::QuorumUnsatisfiable { explanation, .. } => Some(explanation),
        }
    }
}
