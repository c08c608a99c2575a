//! The placement vocabulary every federated middleware kind shares: which scheduler places the
//! object and how (mode, quorum policy, cluster affinity, tolerations, primary preference), how
//! its members spread over clusters and nodes, and the placement its status reports.
//!
//! `MultiCloudMongoDB` embeds these types (re-exported from [`crate::v1alpha1`], so its CRD is
//! unchanged); a second middleware's federated kind embeds the same ones and the scheduler places
//! it with the same engine (`docs/adding-a-middleware.md`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::karmada::{ClusterAffinity, SpreadConstraint};
use crate::scheduler_result::ClusterWithReplicaset;

/// How members are spread over clusters (docs/placement.md#modes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SchedulerMode {
    /// As even as possible over the chosen clusters.
    #[default]
    Uniform,
    /// Proportional to each cluster's available capacity.
    Weighting,
    /// The fewest clusters that keep the quorum safe.
    Aggregated,
}

/// What to do when no placement survives the loss of any one cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum QuorumPolicy {
    /// Refuse such placements (`Scheduled=False`, reason `QuorumUnsatisfiable`).
    Required,
    /// Place anyway and set `QuorumAtRisk`.
    #[default]
    Preferred,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerSetting {
    /// Only objects naming our scheduler are placed by it; defaults to
    /// `multicloud-middleware-scheduler`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "multicloud-middleware-scheduler"))]
    pub scheduler_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_mode: Option<SchedulerMode>,
    /// Karmada cluster affinity: label selector, cluster names, exclusions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<ClusterAffinity>,
    /// Cluster taints this object tolerates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Clusters that should host the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_preference: Option<PrimaryPreference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_policy: Option<QuorumPolicy>,
}

/// Ordered cluster names, or a label selector, for the clusters that should host the primary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryPreference {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpreadConstraints {
    /// Karmada spread constraints over cluster / region / zone / provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_constraints: Option<Vec<SpreadConstraint>>,
    /// nodeSelector of every member pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_select: Option<BTreeMap<String, String>>,
    /// Topology spread of member pods inside each cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// FedState field, kept for compatibility; has no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_dynamic_scheduler: Option<bool>,
}

impl SchedulerSetting {
    /// The scheduler an object with this setting asks for (FedState's default when unset).
    pub fn name_or_default(setting: Option<&Self>) -> &str {
        setting
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(crate::names::DEFAULT_SCHEDULER_NAME)
    }

    /// The mode asked for, `Uniform` when unset.
    pub fn mode_or_default(setting: Option<&Self>) -> SchedulerMode {
        setting.and_then(|s| s.scheduler_mode).unwrap_or_default()
    }

    /// The quorum policy asked for, `Preferred` when unset.
    pub fn quorum_policy_or_default(setting: Option<&Self>) -> QuorumPolicy {
        setting.and_then(|s| s.quorum_policy).unwrap_or_default()
    }
}

/// The placement in force, with votes and priorities.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// e.g. `a:2,b:2,c:1+arbiter`.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<ClusterWithReplicaset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum_safe: Option<bool>,
}
