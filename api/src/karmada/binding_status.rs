//! The status half of a Karmada `ResourceBinding` (`work.karmada.io/v1alpha2`): what each member
//! cluster reported through the resource interpreter's `statusReflection`, and the scheduling
//! result (`spec.clusters`) as a small patchable type.

use serde::{Deserialize, Serialize};

/// The API version of ResourceBinding.
pub const RESOURCE_BINDING_API_VERSION: &str = "work.karmada.io/v1alpha2";

/// The name Karmada gives the binding of a namespaced template: `<name>-<lowercase kind>`.
pub fn resource_binding_name(template_name: &str, kind: &str) -> String {
    format!("{template_name}-{}", kind.to_lowercase())
}

/// `ResourceBinding.status` (the fields we read).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBindingStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregated_status: Vec<AggregatedStatusItem>,
    /// When a scheduler last wrote `spec.clusters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// `Scheduled`, `FullyApplied`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    /// The `clusterAffinities` group the scheduler placed the binding with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_observed_affinity_name: Option<String>,
}

/// One cluster's reflected status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AggregatedStatusItem {
    pub cluster_name: String,
    /// What the interpreter's `ReflectStatus` returned for the member object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    #[serde(default)]
    pub applied: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_message: Option<String>,
    /// `Healthy`, `Unhealthy` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

/// One entry of `ResourceBinding.spec.clusters`: the scheduling result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetCluster {
    pub name: String,
    #[serde(default)]
    pub replicas: i32,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_aggregated_status_as_karmada_writes_it() {
        let json = serde_json::json!({
            "schedulerObservedGeneration": 3,
            "aggregatedStatus": [
                {"clusterName": "member1", "applied": true, "health": "Healthy",
                 "status": {"state": "Running"}},
                {"clusterName": "member2", "applied": false,
                 "appliedMessage": "no matches for kind \"MongoDB\""}
            ]
        });
        let s: ResourceBindingStatus = serde_json::from_value(json).unwrap();
        assert_eq!(s.aggregated_status.len(), 2);
        assert!(s.aggregated_status[0].applied);
        assert_eq!(s.aggregated_status[1].status, None);
        assert_eq!(resource_binding_name("demo", "MongoDB"), "demo-mongodb");
    }
}
