//! What the engine is given: the request, the candidate clusters, the previous placement.
//!
//! Plain data only: adapters (`crate::adapter`) build these from Kubernetes objects, the
//! benchmarks and property tests build them directly.

use std::collections::BTreeMap;

pub use fedstate_api::placement::QuorumPolicy;

use super::selector::{FieldMatcher, LabelMatcher};

/// How the data members are divided over the chosen clusters (`docs/placement.md#modes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Distribution {
    /// As even as possible (max − min ≤ 1 where capacity allows).
    #[default]
    Uniform,
    /// Proportional to available capacity, Webster/Sainte-Laguë rounding (Karmada's dynamic
    /// weighting by available replicas).
    Weighting,
    /// The fewest clusters that satisfy the hard constraints and the quorum.
    Aggregated,
}

impl Distribution {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uniform => "Uniform",
            Self::Weighting => "Weighting",
            Self::Aggregated => "Aggregated",
        }
    }
}

/// Replica-set rules: votes, arbiter, quorum. Absent for plain Karmada workloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSetRules {
    pub arbiter: bool,
    pub quorum_policy: QuorumPolicy,
}

/// The topology level a spread rule counts groups at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpreadKey {
    Cluster,
    Region,
    Zone,
    Provider,
    Label(String),
}

impl std::fmt::Display for SpreadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cluster => f.write_str("cluster"),
            Self::Region => f.write_str("region"),
            Self::Zone => f.write_str("zone"),
            Self::Provider => f.write_str("provider"),
            Self::Label(l) => write!(f, "label {l}"),
        }
    }
}

/// Use at least `min_groups` and at most `max_groups` distinct groups (0 = no bound).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpreadRule {
    pub key: SpreadKey,
    pub min_groups: u32,
    pub max_groups: u32,
}

/// Which clusters may be used at all (Karmada's `ClusterAffinity`).
#[derive(Clone, Debug, Default)]
pub struct ClusterFilter {
    /// Only these clusters; empty means any.
    pub names: Vec<String>,
    /// Never these clusters.
    pub exclude: Vec<String>,
    pub labels: Option<LabelMatcher>,
    pub fields: Option<FieldMatcher>,
}

/// Which clusters should host the primary (highest priority).
#[derive(Clone, Debug, Default)]
pub struct PrimaryRule {
    pub names: Vec<String>,
    pub labels: Option<LabelMatcher>,
}

impl PrimaryRule {
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.labels.is_none()
    }
}

/// A cluster taint's effect; only the two that keep new members out filter clusters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NoSchedule" => Some(Self::NoSchedule),
            "PreferNoSchedule" => Some(Self::PreferNoSchedule),
            "NoExecute" => Some(Self::NoExecute),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSchedule => "NoSchedule",
            Self::PreferNoSchedule => "PreferNoSchedule",
            Self::NoExecute => "NoExecute",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

/// Kubernetes toleration semantics: empty key with `Exists` tolerates everything; no effect
/// matches every effect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    /// `Exists` (true) or `Equal` (false, the default).
    pub exists: bool,
    pub value: String,
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    pub fn tolerates(&self, t: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != t.effect) {
            return false;
        }
        if self.key.is_empty() {
            return self.exists;
        }
        self.key == t.key && (self.exists || self.value == t.value)
    }
}

/// Everything the engine is asked to do for one object.
#[derive(Clone, Debug, Default)]
pub struct PlacementRequest {
    /// Object UID: tie-breaks hash it with the cluster name so equal objects spread out.
    pub uid: String,
    /// Data members (MongoDB) or replicas (Karmada workloads), 1..=50 for replica sets.
    pub replicas: u32,
    pub distribution: Distribution,
    /// `Some` for MongoDB replica sets: votes, arbiter, quorum safety.
    pub replica_set: Option<ReplicaSetRules>,
    pub filter: ClusterFilter,
    pub tolerations: Vec<Toleration>,
    pub spread: Vec<SpreadRule>,
    pub primary: PrimaryRule,
    /// Clusters without a `vip` label cannot host MongoDB members (the member address needs it).
    pub require_vip: bool,
}

/// One member cluster as the engine sees it.
#[derive(Clone, Debug, Default)]
pub struct ClusterCandidate {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub provider: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub taints: Vec<Taint>,
    pub ready: bool,
    pub has_vip: bool,
    /// How many more members of this shape the cluster can take, from the estimator chain,
    /// not counting the members of this object it already hosts.
    pub capacity: u32,
}

/// Where the members were before: the input of rule 4 (stability).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreviousPlacement {
    /// Data members per cluster.
    pub members: Vec<(String, u32)>,
    /// The cluster that ran the arbiter.
    pub arbiter: Option<String>,
}

impl From<&fedstate_api::SchedulerResult> for PreviousPlacement {
    fn from(r: &fedstate_api::SchedulerResult) -> Self {
        Self {
            members: r
                .clusters
                .iter()
                .map(|c| (c.cluster.clone(), u32::try_from(c.replicaset).unwrap_or(0)))
                .collect(),
            arbiter: r.arbiter_cluster().map(str::to_owned),
        }
    }
}
