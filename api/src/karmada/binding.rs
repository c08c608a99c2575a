//! `work.karmada.io/v1alpha2` `ResourceBinding`: one resource template and where it goes. Karmada's
//! detector creates it from a PropagationPolicy; the scheduler the policy names fills
//! `spec.clusters` (`docs/karmada.md#scheduling-resourcebindings`). Only the fields a scheduler
//! reads or writes are modelled.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelector, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::binding_status::{ResourceBindingStatus, TargetCluster};
use super::policy::{ClusterAffinity, SpreadConstraint};
use super::propagation::ReplicaSchedulingStrategy;

/// Karmada's name for its own scheduler; an empty `schedulerName` means this one.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// Labels that mark a binding as managed by a (cluster)propagation policy; a scheduler only
/// handles bindings that carry one of them.
pub const MANAGED_BINDING_LABELS: [&str; 3] = [
    "propagationpolicy.karmada.io/permanent-id",
    "clusterpropagationpolicy.karmada.io/permanent-id",
    "binding.karmada.io/managed-by",
];
/// Annotation holding the JSON of the placement a binding was scheduled with.
pub const APPLIED_PLACEMENT_ANNOTATION: &str = "policy.karmada.io/applied-placement";

/// A Karmada ResourceBinding. Karmada serves the CRD; the derive only gives a typed `Api`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "work.karmada.io",
    version = "v1alpha2",
    kind = "ResourceBinding",
    plural = "resourcebindings",
    namespaced,
    status = "ResourceBindingStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBindingSpec {
    #[serde(default)]
    pub resource: ObjectReference,
    /// Desired replicas of the template (0 for kinds without replicas).
    #[serde(default)]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_requirements: Option<ReplicaRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<BindingPlacement>,
    /// The scheduling result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<TargetCluster>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,
    /// Asks for a reschedule when later than `status.lastScheduledTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_triggered_at: Option<Time>,
    /// Clusters the workload is being evicted from; a scheduler must not choose them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graceful_eviction_tasks: Vec<GracefulEvictionTask>,
}

/// An eviction in progress (Karmada's taint manager or a failover), as far as a scheduler cares.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GracefulEvictionTask {
    pub from_cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_mode: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// What one replica needs (from the resource interpreter's `GetReplicas`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_claim: Option<NodeClaim>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_request: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaim {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_node_affinity: Option<NodeSelector>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// The placement the policy asked for, as copied onto the binding. Fields a scheduler does not
/// read are kept (`extra`), so the `applied-placement` annotation and placement comparisons see
/// the whole placement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingPlacement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_affinity: Option<ClusterAffinity>,
    /// Ordered affinity groups: the first group that fits is used, the next ones are fallbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_affinities: Option<Vec<ClusterAffinityTerm>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread_constraints: Vec<SpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_scheduling: Option<ReplicaSchedulingStrategy>,
    /// Every other placement field (e.g. `workloadAffinity`), kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// One named group of `clusterAffinities`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterAffinityTerm {
    pub affinity_name: String,
    #[serde(flatten)]
    pub affinity: ClusterAffinity,
    /// Groups used when the main one runs out of room (workloads only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overflow_affinities: Vec<OverflowClusterAffinity>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverflowClusterAffinity {
    pub affinity_name: String,
    #[serde(flatten)]
    pub affinity: ClusterAffinity,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<bool>,
}

/// Karmada's `ClusterResourceBinding`: the binding of a cluster-scoped template (a ClusterRole, a
/// Namespace, a CRD) or of one a ClusterPropagationPolicy selects. Same spec and status as a
/// [`ResourceBinding`]; only the scope differs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterResourceBinding {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ResourceBindingSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceBindingStatus>,
}

impl kube::Resource for ClusterResourceBinding {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "ClusterResourceBinding".into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "work.karmada.io".into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1alpha2".into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "clusterresourcebindings".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl ResourceBindingSpec {
    /// Whether the scheduler called `scheduler_name` should place a binding with this spec and
    /// these labels: the names match (empty means Karmada's default), scheduling is not
    /// suspended, and a policy manages the binding.
    pub fn is_for_scheduler(
        &self,
        labels: Option<&BTreeMap<String, String>>,
        scheduler_name: &str,
    ) -> bool {
        let wanted = self
            .scheduler_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_SCHEDULER_NAME);
        let suspended = self
            .suspension
            .as_ref()
            .and_then(|s| s.scheduling)
            .unwrap_or(false);
        let managed =
            labels.is_some_and(|l| MANAGED_BINDING_LABELS.iter().any(|k| l.contains_key(*k)));
        wanted == scheduler_name && !suspended && managed
    }

    /// A workload has replicas (or per-replica requirements); other kinds (ConfigMaps, Services,
    /// CRDs without replicas) are only propagated.
    pub fn is_workload(&self) -> bool {
        self.replicas > 0 || self.replica_requirements.is_some()
    }
}

impl ResourceBinding {
    /// Whether the scheduler called `scheduler_name` should place this binding: the names match
    /// (empty means Karmada's default), scheduling is not suspended, and a policy manages the
    /// binding.
    pub fn is_for_scheduler(&self, scheduler_name: &str) -> bool {
        self.spec
            .is_for_scheduler(self.metadata.labels.as_ref(), scheduler_name)
    }
}

impl ClusterResourceBinding {
    /// As [`ResourceBinding::is_for_scheduler`].
    pub fn is_for_scheduler(&self, scheduler_name: &str) -> bool {
        self.spec
            .is_for_scheduler(self.metadata.labels.as_ref(), scheduler_name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BINDING: &str = r#"
apiVersion: work.karmada.io/v1alpha2
kind: ResourceBinding
metadata:
  name: nginx-deployment
  namespace: default
  generation: 2
  labels: {propagationpolicy.karmada.io/permanent-id: 7e8a}
spec:
  resource: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: nginx, uid: 1-2-3}
  replicas: 6
  replicaRequirements:
    nodeClaim:
      nodeSelector: {disk: ssd}
      tolerations: [{key: k, operator: Exists, effect: NoSchedule}]
    resourceRequest: {cpu: 500m, memory: 128Mi}
  placement:
    clusterAffinity: {clusterNames: [member1, member2]}
    replicaScheduling:
      replicaSchedulingType: Divided
      replicaDivisionPreference: Weighted
      weightPreference: {dynamicWeight: AvailableReplicas}
  schedulerName: multicloud-middleware-scheduler
  clusters: [{name: member1, replicas: 4}, {name: member2, replicas: 2}]
status:
  schedulerObservedGeneration: 1
  lastScheduledTime: "2026-11-22T00:00:00Z"
  conditions: [{type: Scheduled, status: "True", reason: Success, message: ok, lastTransitionTime: "2026-11-22T00:00:00Z"}]
"#;

    #[test]
    fn reads_a_binding_as_karmada_writes_it() {
        let rb: ResourceBinding = serde_yaml::from_str(BINDING).unwrap();
        assert_eq!(rb.spec.replicas, 6);
        assert_eq!(rb.spec.resource.kind, "Deployment");
        let req = rb.spec.replica_requirements.as_ref().unwrap();
        assert_eq!(req.resource_request["cpu"].0, "500m");
        assert_eq!(
            req.node_claim.as_ref().unwrap().node_selector["disk"],
            "ssd"
        );
        let rs = rb
            .spec
            .placement
            .as_ref()
            .unwrap()
            .replica_scheduling
            .as_ref()
            .unwrap();
        assert_eq!(
            rs.weight_preference
                .as_ref()
                .unwrap()
                .dynamic_weight
                .as_deref(),
            Some("AvailableReplicas")
        );
        assert_eq!(
            rb.spec.clusters[1],
            TargetCluster {
                name: "member2".into(),
                replicas: 2
            }
        );
        assert!(rb.status.as_ref().unwrap().last_scheduled_time.is_some());
    }

    #[test]
    fn only_managed_unsuspended_bindings_naming_us_are_ours() {
        let rb: ResourceBinding = serde_yaml::from_str(BINDING).unwrap();
        assert!(rb.is_for_scheduler("multicloud-middleware-scheduler"));
        assert!(!rb.is_for_scheduler("default-scheduler"));

        let mut suspended = rb.clone();
        suspended.spec.suspension = Some(Suspension {
            scheduling: Some(true),
        });
        assert!(!suspended.is_for_scheduler("multicloud-middleware-scheduler"));

        let mut unmanaged = rb.clone();
        unmanaged.metadata.labels = None;
        assert!(!unmanaged.is_for_scheduler("multicloud-middleware-scheduler"));

        let mut default = rb;
        default.spec.scheduler_name = None;
        assert!(default.is_for_scheduler("default-scheduler"));
    }
}
