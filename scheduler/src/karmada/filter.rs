//! Which clusters may take a binding at all: karmada-scheduler's filter plugins (API enablement,
//! taint toleration, cluster affinity, spread-constraint properties, cluster eviction) and its
//! rule that a cluster being deleted is never a candidate.
//!
//! Karmada does not filter by readiness: a NotReady cluster is kept out only by the
//! `cluster.karmada.io/not-ready` taint its controllers add, and clusters a binding already uses
//! pass the taint and API filters (NoSchedule applies to new targets only).

use std::collections::BTreeMap;

use fedstate_api::karmada::binding::ResourceBindingSpec;
use fedstate_api::karmada::{Cluster, ClusterAffinity, SpreadField};
use k8s_openapi::api::core::v1::{Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Why a cluster was filtered, worded as karmada-scheduler words it (these strings end up in
/// the `Scheduled=False` message: "0/3 clusters are available: 2 cluster(s) …").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unfit {
    ApiNotServed,
    Taint(String),
    Affinity,
    NoProvider,
    NoRegion,
    NoZones,
    Evicting,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiNotServed => f.write_str("cluster(s) did not have the API resource"),
            Self::Taint(t) => write!(f, "cluster(s) had untolerated taint {{{t}}}"),
            Self::Affinity => {
                f.write_str("cluster(s) did not match the placement cluster affinity constraint")
            }
            Self::NoProvider => f.write_str("cluster(s) did not have provider property"),
            Self::NoRegion => f.write_str("cluster(s) did not have region property"),
            Self::NoZones => f.write_str("cluster(s) did not have zones property"),
            Self::Evicting => f.write_str("cluster(s) is in the process of eviction"),
        }
    }
}

/// The affinities a cluster must match one of: the policy's `clusterAffinity`, or the
/// `clusterAffinities` group being tried (with its overflow groups, for workloads).
pub fn affinities<'a>(
    spec: &'a ResourceBindingSpec,
    group: Option<&str>,
) -> Vec<&'a ClusterAffinity> {
    let Some(placement) = spec.placement.as_ref() else {
        return Vec::new();
    };
    if let Some(a) = &placement.cluster_affinity {
        return vec![a];
    }
    let Some(terms) = &placement.cluster_affinities else {
        return Vec::new();
    };
    let Some(term) = terms
        .iter()
        .find(|t| Some(t.affinity_name.as_str()) == group.or(Some("")))
    else {
        return Vec::new();
    };
    let mut out = vec![&term.affinity];
    if spec.is_workload() {
        out.extend(term.overflow_affinities.iter().map(|o| &o.affinity));
    }
    out
}

/// Runs the filters on one cluster; `None` when it fits. `group` is the `clusterAffinities`
/// group being tried.
pub fn unfit(spec: &ResourceBindingSpec, group: Option<&str>, cluster: &Cluster) -> Option<Unfit> {
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let targeted = spec.clusters.iter().any(|c| c.name == name);
    if !targeted && !api_served(cluster, &spec.resource.api_version, &spec.resource.kind) {
        return Some(Unfit::ApiNotServed);
    }
    if !targeted {
        let tolerations = spec
            .placement
            .as_ref()
            .map(|p| p.cluster_tolerations.as_slice())
            .unwrap_or_default();
        if let Some(t) = untolerated(&cluster.spec.taints, tolerations) {
            return Some(Unfit::Taint(taint_string(t)));
        }
    }
    let affinities = affinities(spec, group);
    if !affinities.is_empty() && !affinities.iter().any(|a| cluster_matches(cluster, a)) {
        return Some(Unfit::Affinity);
    }
    for c in spec
        .placement
        .as_ref()
        .map(|p| p.spread_constraints.as_slice())
        .unwrap_or_default()
    {
        match c.spread_by_field {
            Some(SpreadField::Provider) if empty(&cluster.spec.provider) => {
                return Some(Unfit::NoProvider);
            }
            Some(SpreadField::Region) if empty(&cluster.spec.region) => {
                return Some(Unfit::NoRegion);
            }
            Some(SpreadField::Zone) if cluster.spec.zones.is_empty() => {
                return Some(Unfit::NoZones);
            }
            _ => {}
        }
    }
    if spec
        .graceful_eviction_tasks
        .iter()
        .any(|t| t.from_cluster == name)
    {
        return Some(Unfit::Evicting);
    }
    None
}

fn empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

/// The member serves `kind` of `api_version` according to its `apiEnablements` (a kind Karmada
/// has not seen there counts as not served).
pub fn api_served(cluster: &Cluster, api_version: &str, kind: &str) -> bool {
    cluster.status.as_ref().is_some_and(|s| {
        s.api_enablements
            .iter()
            .filter(|e| e.group_version == api_version)
            .any(|e| e.resources.iter().any(|r| r.kind == kind))
    })
}

/// The first NoSchedule or NoExecute taint no toleration tolerates.
fn untolerated<'a>(taints: &'a [Taint], tolerations: &[Toleration]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Kubernetes' toleration rule (`Toleration.ToleratesTaint`): the effect matches (or is empty),
/// the key matches (or is empty with `Exists`), and the value matches for `Equal`.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "" | "Equal" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

fn taint_string(t: &Taint) -> String {
    match t.value.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("{}={v}:{}", t.key, t.effect),
        None => format!("{}:{}", t.key, t.effect),
    }
}

/// Karmada's `ClusterMatches`: not excluded, and the label selector, field selector and names
/// all match where given. A selector Kubernetes would reject matches nothing.
pub fn cluster_matches(cluster: &Cluster, affinity: &ClusterAffinity) -> bool {
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    if affinity.exclude.iter().any(|n| n == name) {
        return false;
    }
    if let Some(sel) = &affinity.label_selector {
        let empty = BTreeMap::new();
        let labels = cluster.metadata.labels.as_ref().unwrap_or(&empty);
        if !labels_match(sel, labels) {
            return false;
        }
    }
    if let Some(fields) = &affinity.field_selector {
        for e in &fields.match_expressions {
            let values = e.values.as_deref().unwrap_or_default();
            let ok = if e.key == "zone" {
                zones_match(&e.operator, values, &cluster.spec.zones)
            } else {
                let value = match e.key.as_str() {
                    "provider" => cluster.spec.provider.as_deref(),
                    "region" => cluster.spec.region.as_deref(),
                    _ => None,
                }
                .filter(|v| !v.is_empty());
                requirement_matches(&e.operator, values, value)
            };
            if !ok {
                return false;
            }
        }
    }
    affinity.cluster_names.is_empty() || affinity.cluster_names.iter().any(|n| n == name)
}

/// A `zone` field requirement against every zone of the cluster: `In` needs one of them listed,
/// `NotIn` none, `Exists` some zone, `DoesNotExist` none.
fn zones_match(operator: &str, values: &[String], zones: &[String]) -> bool {
    match operator {
        "In" => zones.iter().any(|z| values.contains(z)),
        "NotIn" => !zones.iter().any(|z| values.contains(z)),
        "Exists" => !zones.is_empty(),
        "DoesNotExist" => zones.is_empty(),
        _ => false,
    }
}

/// One node-selector-style requirement (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`).
fn requirement_matches(operator: &str, values: &[String], value: Option<&str>) -> bool {
    match operator {
        "In" => !values.is_empty() && value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !values.is_empty() && value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => values.is_empty() && value.is_some(),
        "DoesNotExist" => values.is_empty() && value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if operator == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Kubernetes label selector semantics (`matchLabels` and `matchExpressions`, all must hold).
fn labels_match(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_label
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            match e.operator.as_str() {
                "Gt" | "Lt" => false,
                op => requirement_matches(op, values, labels.get(&e.key).map(String::as_str)),
            }
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cluster(v: serde_json::Value) -> Cluster {
        serde_json::from_value(v).unwrap()
    }

    fn affinity(v: serde_json::Value) -> ClusterAffinity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn field_selector_on_zone_matches_any_of_the_zones() {
        let c = cluster(json!({"metadata": {"name": "m1"}, "spec": {"zones": ["z1", "z2"]}}));
        let in_second = affinity(json!({"fieldSelector": {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z2"]}]}}));
        assert!(cluster_matches(&c, &in_second));
        let not_in_first = affinity(json!({"fieldSelector": {"matchExpressions": [
            {"key": "zone", "operator": "NotIn", "values": ["z1"]}]}}));
        assert!(!cluster_matches(&c, &not_in_first));
    }

    #[test]
    fn field_selector_reads_provider_and_region() {
        let c = cluster(
            json!({"metadata": {"name": "m1"}, "spec": {"provider": "aws", "region": "eu"}}),
        );
        let ok = affinity(json!({"fieldSelector": {"matchExpressions": [
            {"key": "provider", "operator": "In", "values": ["aws"]},
            {"key": "region", "operator": "NotIn", "values": ["us"]}]}}));
        assert!(cluster_matches(&c, &ok));
        let no = affinity(json!({"fieldSelector": {"matchExpressions": [
            {"key": "region", "operator": "In", "values": ["us"]}]}}));
        assert!(!cluster_matches(&c, &no));
    }

    #[test]
    fn excluded_names_win_over_everything() {
        let c = cluster(json!({"metadata": {"name": "m1", "labels": {"env": "prod"}}, "spec": {}}));
        let a = affinity(json!({"clusterNames": ["m1"], "exclude": ["m1"]}));
        assert!(!cluster_matches(&c, &a));
        let by_label = affinity(json!({"labelSelector": {"matchLabels": {"env": "prod"}}}));
        assert!(cluster_matches(&c, &by_label));
    }

    #[test]
    fn toleration_rules_follow_kubernetes() {
        let taint: Taint = serde_json::from_value(
            json!({"key": "cluster.karmada.io/not-ready", "effect": "NoExecute"}),
        )
        .unwrap();
        let t = |v| serde_json::from_value::<Toleration>(v).unwrap();
        assert!(tolerates(&t(json!({"operator": "Exists"})), &taint));
        assert!(tolerates(
            &t(
                json!({"key": "cluster.karmada.io/not-ready", "operator": "Exists", "effect": "NoExecute"})
            ),
            &taint
        ));
        assert!(!tolerates(
            &t(
                json!({"key": "cluster.karmada.io/not-ready", "operator": "Exists", "effect": "NoSchedule"})
            ),
            &taint
        ));
        assert!(!tolerates(
            &t(json!({"key": "cluster.karmada.io/not-ready", "value": "x"})),
            &taint
        ));
    }
}
