//! `policy.karmada.io/v1alpha1` `OverridePolicy`: per-cluster changes to propagated resources.
//! Karmada applies overrides after the replica revision, so what an override sets wins.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::policy::ClusterAffinity;
use super::propagation::ResourceSelector;

/// A Karmada OverridePolicy. Karmada serves the CRD; the derive only gives a typed `Api`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "policy.karmada.io",
    version = "v1alpha1",
    kind = "OverridePolicy",
    plural = "overridepolicies",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct OverridePolicySpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_selectors: Vec<ResourceSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_rules: Vec<RuleWithCluster>,
}

/// Overriders for the clusters `targetCluster` selects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleWithCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster: Option<ClusterAffinity>,
    pub overriders: Overriders,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Overriders {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plaintext: Vec<PlaintextOverrider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels_overrider: Vec<LabelAnnotationOverrider>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations_overrider: Vec<LabelAnnotationOverrider>,
}

/// A JSON-patch-like operation: `add`, `remove` or `replace` at a JSON pointer `path`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaintextOverrider {
    pub path: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// Adds, removes or replaces labels or annotations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelAnnotationOverrider {
    pub operator: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub value: BTreeMap<String, String>,
}

pub const OP_ADD: &str = "add";
pub const OP_REMOVE: &str = "remove";
pub const OP_REPLACE: &str = "replace";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_karmada_override_rules() {
        let yaml = r#"
apiVersion: policy.karmada.io/v1alpha1
kind: OverridePolicy
metadata: {name: demo, namespace: ns}
spec:
  resourceSelectors: [{apiVersion: middleware.fedstate.io/v1alpha1, kind: MongoDB, name: demo}]
  overrideRules:
  - targetCluster: {clusterNames: [member1]}
    overriders:
      plaintext: [{path: /spec/members, operator: replace, value: 2}]
      labelsOverrider: [{operator: add, value: {app.multicloudmongodb.io/vip: 10.0.0.1}}]
"#;
        let p: OverridePolicy = serde_yaml::from_str(yaml).unwrap();
        let rule = &p.spec.override_rules[0];
        assert_eq!(
            rule.overriders.plaintext[0].value,
            Some(serde_json::json!(2))
        );
        assert_eq!(
            rule.overriders.labels_overrider[0].value["app.multicloudmongodb.io/vip"],
            "10.0.0.1"
        );
    }
}
