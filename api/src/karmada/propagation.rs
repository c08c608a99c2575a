//! `policy.karmada.io/v1alpha1` `PropagationPolicy`: which resources go to which clusters.
//!
//! Only the fields FedState writes are modelled; serde ignores the rest on read.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Toleration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::policy::ClusterAffinity;

/// A Karmada PropagationPolicy. Karmada serves the CRD; the derive only gives a typed `Api`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "policy.karmada.io",
    version = "v1alpha1",
    kind = "PropagationPolicy",
    plural = "propagationpolicies",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct PropagationPolicySpec {
    pub resource_selectors: Vec<ResourceSelector>,
    #[serde(default)]
    pub placement: Placement,
    /// The scheduler that fills the ResourceBinding's `spec.clusters` (empty: `default-scheduler`).
    /// Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// Higher wins when several policies match a resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// Selects resource templates by kind and name or labels (Karmada's `ResourceSelector`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSelector {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
}

/// Karmada's `Placement` (the parts we write).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_affinity: Option<ClusterAffinity>,
    /// Cluster taints tolerated (keeps Karmada's taint manager from evicting on its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_scheduling: Option<ReplicaSchedulingStrategy>,
}

/// `Duplicated` (every cluster gets the whole template) or `Divided` (replicas split).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSchedulingStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_scheduling_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_division_preference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_preference: Option<ClusterPreferences>,
}

/// Static weights per cluster, or a dynamic weight factor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPreferences {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_weight_list: Vec<StaticClusterWeight>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_weight: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticClusterWeight {
    pub target_cluster: ClusterAffinity,
    pub weight: i64,
}

/// `Duplicated`.
pub const REPLICA_SCHEDULING_DUPLICATED: &str = "Duplicated";
/// `Divided`.
pub const REPLICA_SCHEDULING_DIVIDED: &str = "Divided";

/// Labels Karmada puts on a resource template claimed by a PropagationPolicy.
pub const LABEL_POLICY_NAME: &str = "propagationpolicy.karmada.io/name";
pub const LABEL_POLICY_NAMESPACE: &str = "propagationpolicy.karmada.io/namespace";

/// Convenience: a selector of one named object.
pub fn select_named(api_version: &str, kind: &str, name: &str) -> ResourceSelector {
    ResourceSelector {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// Convenience: a selector by labels.
pub fn select_labelled(
    api_version: &str,
    kind: &str,
    labels: BTreeMap<String, String>,
) -> ResourceSelector {
    ResourceSelector {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        label_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_a_karmada_policy_and_writes_camel_case() {
        let yaml = r#"
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: demo, namespace: ns}
spec:
  schedulerName: fedstate-manager
  resourceSelectors:
  - {apiVersion: middleware.fedstate.io/v1alpha1, kind: MongoDB, name: demo}
  placement:
    clusterAffinity: {clusterNames: [member1, member2]}
    clusterTolerations: [{key: cluster.karmada.io/not-ready, operator: Exists, effect: NoExecute}]
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted}
  propagateDeps: true
"#;
        let p: PropagationPolicy = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(p.spec.scheduler_name.as_deref(), Some("fedstate-manager"));
        assert_eq!(
            p.spec
                .placement
                .cluster_affinity
                .as_ref()
                .unwrap()
                .cluster_names,
            ["member1", "member2"]
        );
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(
            back["spec"]["placement"]["replicaScheduling"]["replicaSchedulingType"],
            "Divided"
        );
        assert_eq!(back["spec"]["resourceSelectors"][0]["kind"], "MongoDB");
    }

    #[test]
    fn the_dynamic_resource_is_karmadas() {
        // e2e and the benches list and apply policies through this one definition.
        let r = kube::core::ApiResource::erase::<PropagationPolicy>(&());
        assert_eq!(
            (r.api_version.as_str(), r.kind.as_str(), r.plural.as_str()),
            (
                "policy.karmada.io/v1alpha1",
                "PropagationPolicy",
                "propagationpolicies"
            )
        );
    }
}
