//! The bridge from the estimator chain to the engine's candidates: per-member shapes of our
//! objects (any [`Schedulable`] kind) and of Karmada bindings, and a capacity for every cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBindingSpec;
use fedstate_estimator_client::{
    CapacityEstimator, CapacityQuery, ClusterRef, MemberRequirements, MemberShape, PluginAnswer,
    merge,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::adapter::{Schedulable, candidate_with_capacity};
use crate::placement::ClusterCandidate;

/// One member as the estimators must see it: its requests summed over its containers
/// (`Schedulable::member`: for MongoDB mongod's, the CRD defaults when unset, plus the exporter
/// sidecar's when enabled), the pods' nodeSelector, the object's namespace.
pub fn estimator_shape<K: Schedulable>(obj: &K) -> MemberShape {
    let member = obj.member();
    let mut requests: BTreeMap<String, i128> = BTreeMap::new();
    for (_, container) in &member.requests {
        add_requests(&mut requests, container);
    }
    MemberShape::new(MemberRequirements {
        resource_request: requests
            .into_iter()
            .map(|(k, millis)| (k, Quantity(format!("{millis}m"))))
            .collect(),
        node_selector: member.node_selector,
        namespace: obj.meta().namespace.clone().unwrap_or_default(),
        ..Default::default()
    })
}

/// Sum quantities in milli-units; one that does not parse is left out (the CRD schema and the
/// engine's own request check report it with the field name).
fn add_requests(into: &mut BTreeMap<String, i128>, requests: &BTreeMap<String, Quantity>) {
    for (name, q) in requests {
        if let Ok(millis) = fedstate_api::quantity::parse_quantity(q) {
            *into.entry(name.clone()).or_default() += millis;
        }
    }
}

/// One replica of a Karmada binding, from its `replicaRequirements`; `namespace`: the binding's.
pub fn binding_shape(spec: &ResourceBindingSpec, namespace: Option<&str>) -> MemberShape {
    let req = spec.replica_requirements.clone().unwrap_or_default();
    let claim = req.node_claim.unwrap_or_default();
    MemberShape::new(MemberRequirements {
        resource_request: req.resource_request,
        node_selector: claim.node_selector,
        node_affinity: claim.hard_node_affinity,
        tolerations: claim.tolerations,
        namespace: req
            .namespace
            .or_else(|| namespace.map(str::to_owned))
            .unwrap_or_default(),
        priority_class_name: req.priority_class_name.unwrap_or_default(),
    })
}

/// What the estimator chain says each of `clusters` can still take of one replica of a Karmada
/// binding: resource answers only (replicas of a workload may share nodes), less every placement
/// the ledger holds, the binding's own included — as karmada-scheduler's estimates are with its
/// assumed workloads, until the replicas are healthy in their cluster; `None` where no estimator
/// had an opinion.
pub async fn binding_capacities(
    estimator: &CapacityEstimator,
    clusters: &[Arc<Cluster>],
    shape: &MemberShape,
    object: &str,
) -> HashMap<String, Option<i32>> {
    if clusters.is_empty() {
        return HashMap::new();
    }
    // The reflector's objects, shared: no copy per decision.
    let refs: Vec<ClusterRef> = clusters
        .iter()
        .map(|c| ClusterRef::from_arc(c.clone()))
        .collect();
    let query = CapacityQuery {
        object: None,
        hosted: HashMap::new(),
    };
    estimator
        .capacities(&refs, shape, &query)
        .await
        .into_iter()
        .map(|cap| {
            let resource_answers: Vec<PluginAnswer> = cap
                .answers
                .iter()
                .filter(|a| !a.counts_hosted_members)
                .cloned()
                .collect();
            let replicas = merge(&resource_answers, 0, cap.capacity.assumed).replicas;
            tracing::debug!(object, cluster = %cap.cluster, capacity = ?replicas, source = ?cap.source, "binding capacity");
            (
                cap.cluster.to_string(),
                replicas.map(|r| i32::try_from(r).unwrap_or(i32::MAX)),
            )
        })
        .collect()
}

/// Candidates for every cluster in `clusters`, with capacity from the estimator chain.
/// `hosted`: members of this object each cluster already runs; the engine counts them as room.
pub async fn candidates(
    estimator: &CapacityEstimator,
    clusters: &[Arc<Cluster>],
    shape: &MemberShape,
    object: &str,
    hosted: &HashMap<&str, u32>,
) -> Vec<ClusterCandidate> {
    let refs: Vec<ClusterRef> = clusters
        .iter()
        .map(|c| ClusterRef::from_arc(c.clone()))
        .collect();
    let query = CapacityQuery {
        object: Some(object),
        hosted: hosted.clone(),
    };
    let caps = estimator.capacities(&refs, shape, &query).await;
    clusters
        .iter()
        .zip(caps)
        .map(|(c, cap)| {
            let replicas = cap.capacity.replicas;
            tracing::debug!(
                object,
                cluster = %cap.cluster,
                capacity = ?replicas,
                decided_by = ?cap.capacity.decided_by,
                assumed = cap.capacity.assumed,
                source = ?cap.source,
                answers = ?cap.answers.iter().map(|a| (a.plugin, &a.estimate)).collect::<Vec<_>>(),
                "cluster capacity"
            );
            // No plugin had an opinion: nothing known bounds this cluster.
            candidate_with_capacity(c, replicas.unwrap_or(u32::MAX / 4))
        })
        .collect()
}
