//! The form the binding reflector caches a `ResourceBinding` or `ClusterResourceBinding` in.
//!
//! With 10,000 bindings the API type is the scheduler's largest structure (≈ 4.9 KiB each:
//! the typed spec with its placement, three mostly empty B-tree nodes, a score of small strings;
//! `benches/README.md`, "Where the footprint goes"). A [`CachedBinding`] keeps only what the
//! scheduler reads, and shares what bindings have in common:
//!
//! * the spec without its per-binding parts (the template's name and uid, the replicas, the
//!   target clusters) is interned: bindings of one policy and one pod shape share one copy of
//!   the placement and the replica requirements;
//! * the target clusters' names and the `applied-placement` annotation (the placement's JSON)
//!   are interned strings;
//! * of the metadata, the identity the controller needs (name, namespace, uid, resourceVersion,
//!   generation, deletionTimestamp) and the one label the scheduler tests for (Karmada's
//!   managed-binding label); no `managedFields`, no other labels or annotations;
//! * of the status, what [`super::binding::Binding::strip_unread`] leaves.
//!
//! The decision code reads the API type: [`CachedBinding::to_binding`] rebuilds it, with every
//! field the scheduler reads, once per decision (a few small allocations, freed when the
//! decision ends).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock, Mutex};

use fedstate_api::karmada::binding::{
    APPLIED_PLACEMENT_ANNOTATION, MANAGED_BINDING_LABELS, ResourceBindingSpec,
};
use fedstate_api::karmada::binding_status::{ResourceBindingStatus, TargetCluster};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::watcher::Event;
use serde::{Deserialize, Deserializer};

use super::binding::Binding;

/// A binding as the scheduler caches it (see the module docs).
#[derive(Clone, Debug)]
pub struct CachedBinding<B> {
    metadata: ObjectMeta,
    /// The managed-binding label the binding carries (the key is one of Karmada's three).
    managed_label: Option<(&'static str, Box<str>)>,
    applied_placement: Option<Arc<str>>,
    /// The spec without `resource.name`, `resource.uid`, `replicas` and `clusters`; shared.
    shared_spec: Arc<ResourceBindingSpec>,
    resource_name: Box<str>,
    resource_uid: Option<Box<str>>,
    replicas: i32,
    clusters: Box<[(Arc<str>, i32)]>,
    status: Option<Box<ResourceBindingStatus>>,
    kind: PhantomData<fn() -> B>,
}

impl<B: Binding> CachedBinding<B> {
    /// The cached form of `b` (interned in the process's [`Interner`]).
    pub fn new(b: B) -> Self {
        Self::with(b, &INTERNER)
    }

    fn with(mut b: B, interner: &Interner) -> Self {
        b.strip_unread();
        let (meta, mut spec, status) = b.into_parts();
        let managed_label = meta.labels.as_ref().and_then(|labels| {
            MANAGED_BINDING_LABELS
                .iter()
                .find_map(|k| labels.get(*k).map(|v| (*k, v.as_str().into())))
        });
        let applied_placement = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(APPLIED_PLACEMENT_ANNOTATION))
            .map(|a| interner.name(a));
        let resource_name = std::mem::take(&mut spec.resource.name).into_boxed_str();
        let resource_uid = spec.resource.uid.take().map(String::into_boxed_str);
        let replicas = std::mem::take(&mut spec.replicas);
        let clusters = std::mem::take(&mut spec.clusters)
            .into_iter()
            .map(|t| (interner.name(&t.name), t.replicas))
            .collect();
        let metadata = ObjectMeta {
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            resource_version: meta.resource_version,
            generation: meta.generation,
            deletion_timestamp: meta.deletion_timestamp,
            ..ObjectMeta::default()
        };
        Self {
            metadata,
            managed_label,
            applied_placement,
            shared_spec: interner.spec(spec),
            resource_name,
            resource_uid,
            replicas,
            clusters,
            status: status.map(Box::new),
            kind: PhantomData,
        }
    }

    /// The spec, whole again.
    pub fn spec(&self) -> ResourceBindingSpec {
        let mut spec = (*self.shared_spec).clone();
        spec.resource.name = self.resource_name.to_string();
        spec.resource.uid = self.resource_uid.as_deref().map(str::to_owned);
        spec.replicas = self.replicas;
        spec.clusters = self
            .clusters
            .iter()
            .map(|(name, replicas)| TargetCluster {
                name: name.to_string(),
                replicas: *replicas,
            })
            .collect();
        spec
    }

    pub fn status(&self) -> Option<&ResourceBindingStatus> {
        self.status.as_deref()
    }

    /// The API object with every field the scheduler reads (what the decision code takes).
    pub fn to_binding(&self) -> B {
        let mut meta = self.metadata.clone();
        meta.labels = self
            .managed_label
            .as_ref()
            .map(|(k, v)| BTreeMap::from([((*k).to_owned(), v.to_string())]));
        meta.annotations = self
            .applied_placement
            .as_ref()
            .map(|a| BTreeMap::from([(APPLIED_PLACEMENT_ANNOTATION.to_owned(), a.to_string())]));
        B::from_parts(meta, self.spec(), self.status.as_deref().cloned())
    }
}

impl<B: Binding> From<B> for CachedBinding<B> {
    fn from(b: B) -> Self {
        Self::new(b)
    }
}

/// The reflector's event for the watcher's.
pub fn cached_event<B: Binding>(event: Event<B>) -> Event<CachedBinding<B>> {
    match event {
        Event::Apply(b) => Event::Apply(b.into()),
        Event::Delete(b) => Event::Delete(b.into()),
        Event::InitApply(b) => Event::InitApply(b.into()),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    }
}

impl<B: Binding> Resource for CachedBinding<B> {
    type DynamicType = ();
    type Scope = B::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        B::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        B::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        B::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        B::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Read as the API type, then made compact (kube's `Controller` wants its objects readable).
impl<'de, B: Binding> Deserialize<'de> for CachedBinding<B> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        B::deserialize(d).map(Self::new)
    }
}

/// One shared copy of each string and spec the cached bindings hold. An entry no binding holds
/// any more is dropped once the table has doubled since the last sweep.
#[derive(Debug, Default)]
pub struct Interner {
    names: Mutex<Table<HashSet<Arc<str>>>>,
    specs: Mutex<Table<HashMap<String, Arc<ResourceBindingSpec>>>>,
}

#[derive(Debug, Default)]
struct Table<M> {
    entries: M,
    /// Entries after the last sweep.
    swept_at: usize,
}

static INTERNER: LazyLock<Interner> = LazyLock::new(Interner::default);

impl Interner {
    fn name(&self, s: &str) -> Arc<str> {
        let mut t = self.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = t.entries.get(s) {
            return found.clone();
        }
        if t.entries.len() >= 2 * t.swept_at.max(512) {
            t.entries.retain(|a| Arc::strong_count(a) > 1);
            t.swept_at = t.entries.len();
        }
        let a: Arc<str> = s.into();
        t.entries.insert(a.clone());
        a
    }

    fn spec(&self, spec: ResourceBindingSpec) -> Arc<ResourceBindingSpec> {
        let Ok(key) = serde_json::to_string(&spec) else {
            return Arc::new(spec);
        };
        let mut t = self.specs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = t.entries.get(&key) {
            return found.clone();
        }
        if t.entries.len() >= 2 * t.swept_at.max(64) {
            t.entries.retain(|_, a| Arc::strong_count(a) > 1);
            t.swept_at = t.entries.len();
        }
        let a = Arc::new(spec);
        t.entries.insert(key, a.clone());
        a
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let specs = self.specs.lock().unwrap_or_else(|p| p.into_inner());
        (names.entries.len(), specs.entries.len())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fedstate_api::karmada::Cluster;
    use fedstate_api::karmada::binding::ResourceBinding;
    use kube::ResourceExt;
    use serde_json::json;

    use crate::karmada::{self, triggers};

    /// A binding with every part the scheduler reads set: placement with spread constraints and
    /// affinities, replica requirements, target clusters, the applied placement, the managed
    /// label, a status with conditions, an affinity name and the clusters' health, an eviction
    /// task and a requested reschedule.
    fn full() -> ResourceBinding {
        serde_json::from_value(json!({
            "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
            "metadata": {
                "name": "web-deployment", "namespace": "default", "uid": "rb-1",
                "resourceVersion": "41", "generation": 3,
                "labels": {"propagationpolicy.karmada.io/permanent-id": "p-1", "team": "x"},
                "annotations": {
                    "policy.karmada.io/applied-placement": "{\"clusterAffinity\":{\"clusterNames\":[\"m1\",\"m2\"]}}",
                    "propagationpolicy.karmada.io/name": "web"
                },
                "managedFields": [{"manager": "karmada-controller-manager", "operation": "Update"}]
            },
            "spec": {
                "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web", "uid": "d-1"},
                "replicas": 7,
                "replicaRequirements": {"resourceRequest": {"cpu": "250m", "memory": "64Mi"}, "namespace": "default",
                    "nodeClaim": {"nodeSelector": {"disk": "ssd"}}},
                "schedulerName": "multicloud-middleware-scheduler",
                "rescheduleTriggeredAt": "2026-12-01T10:00:00Z",
                "gracefulEvictionTasks": [{"fromCluster": "m4", "reason": "TaintUntolerated"}],
                "placement": {
                    "clusterAffinities": [
                        {"affinityName": "primary", "clusterNames": ["m1", "m2"]},
                        {"affinityName": "backup", "clusterNames": ["m1", "m2", "m3"]}
                    ],
                    "spreadConstraints": [{"spreadByField": "cluster", "minGroups": 1, "maxGroups": 3}],
                    "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                        "weightPreference": {"dynamicWeight": "AvailableReplicas"}}
                },
                "clusters": [{"name": "m1", "replicas": 4}, {"name": "m2", "replicas": 3}]
            },
            "status": {
                "schedulerObservedGeneration": 2,
                "schedulerObservedAffinityName": "primary",
                "lastScheduledTime": "2026-12-01T09:00:00Z",
                "conditions": [{"type": "Scheduled", "status": "True", "reason": "Success", "message": "ok",
                    "lastTransitionTime": "2026-12-01T09:00:00Z"}],
                "aggregatedStatus": [{"clusterName": "m1", "applied": true, "health": "Healthy",
                    "status": {"readyReplicas": 4}}]
            }
        }))
        .unwrap()
    }

    fn cluster(name: &str, ready: bool) -> Cluster {
        serde_json::from_value(json!({
            "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "spec": {},
            "status": {
                "apiEnablements": [{"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]}],
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "r", "message": "",
                    "lastTransitionTime": "2026-12-01T09:00:00Z"}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_rebuilt_binding_carries_what_the_scheduler_reads() {
        let b = full();
        let rebuilt = CachedBinding::with(b.clone(), &Interner::default()).to_binding();
        let mut expected = b.clone();
        expected.strip_unread();
        assert_eq!(rebuilt.spec, expected.spec, "the whole spec");
        assert_eq!(
            rebuilt.status, expected.status,
            "the status as cached before"
        );
        assert_eq!(
            (
                rebuilt.metadata.name.as_deref(),
                rebuilt.metadata.namespace.as_deref(),
                rebuilt.metadata.uid.as_deref(),
                rebuilt.metadata.resource_version.as_deref(),
                rebuilt.metadata.generation,
            ),
            (
                Some("web-deployment"),
                Some("default"),
                Some("rb-1"),
                Some("41"),
                Some(3)
            )
        );
        assert_eq!(
            rebuilt.annotations().get(APPLIED_PLACEMENT_ANNOTATION),
            b.annotations().get(APPLIED_PLACEMENT_ANNOTATION)
        );
        assert!(rebuilt.is_for_scheduler("multicloud-middleware-scheduler"));
        assert!(rebuilt.managed_fields().is_empty());
        assert_eq!(
            rebuilt.object_ref(&()),
            b.object_ref(&()),
            "events' regarding"
        );
    }

    #[test]
    fn the_compact_and_the_full_binding_get_the_same_decision() {
        let b = full();
        let cached = CachedBinding::with(b.clone(), &Interner::default());
        let cs = [
            cluster("m1", true),
            cluster("m2", true),
            cluster("m3", true),
            cluster("m4", false),
        ];
        let refs: Vec<&Cluster> = cs.iter().collect();
        let caps = |n: &str| match n {
            "m1" => Some(3),
            "m2" => Some(10),
            _ => Some(1),
        };
        let decide = |b: &ResourceBinding| {
            let status = b.status.clone().unwrap_or_default();
            let applied = b
                .annotations()
                .get(APPLIED_PLACEMENT_ANNOTATION)
                .map(String::as_str);
            let o = karmada::schedule(&b.spec, &status, &refs, &caps);
            (
                triggers::trigger(&b.spec, &status, applied, &refs),
                o.clusters,
                o.affinity_name,
                o.result.map_err(|e| e.to_string()),
                b.spec.is_for_scheduler(
                    b.metadata.labels.as_ref(),
                    "multicloud-middleware-scheduler",
                ),
                triggers::cluster_change_matters(
                    &b.spec,
                    &status,
                    b.metadata.generation,
                    &cluster("m3", true),
                    &cluster("m3", false),
                ),
            )
        };
        let full = decide(&b);
        assert!(full.1.is_some(), "the full binding is placed: {full:?}");
        assert_eq!(decide(&cached.to_binding()), full);
        // and with the spec and status read straight from the cached form
        let status = cached.status().cloned().unwrap_or_default();
        let o = karmada::schedule(&cached.spec(), &status, &refs, &caps);
        assert_eq!(o.clusters, full.1);
    }

    #[test]
    fn bindings_alike_share_their_spec_and_cluster_names() {
        let interner = Interner::default();
        let mut other = full();
        other.metadata.name = Some("api-deployment".into());
        other.spec.resource.name = "api".into();
        other.spec.resource.uid = Some("d-2".into());
        other.spec.replicas = 2;
        other.spec.clusters.truncate(1);
        let a = CachedBinding::with(full(), &interner);
        let b = CachedBinding::with(other, &interner);
        assert!(Arc::ptr_eq(&a.shared_spec, &b.shared_spec));
        assert!(Arc::ptr_eq(&a.clusters[0].0, &b.clusters[0].0));
        assert_eq!(b.to_binding().spec.resource.name, "api");
        assert_eq!(b.to_binding().spec.replicas, 2);
        // names: m1, m2, the applied placement; one spec
        assert_eq!(interner.len(), (3, 1));
    }

    #[test]
    fn entries_no_binding_holds_are_swept() {
        let interner = Interner::default();
        for i in 0..2000 {
            let mut b = full();
            b.spec.clusters[0].name = format!("gone{i}");
            b.spec.placement = None;
            b.spec.replicas = 1;
            b.spec.resource.kind = format!("Kind{i}");
            drop(CachedBinding::with(b, &interner));
        }
        let (names, specs) = interner.len();
        assert!(names < 1100 && specs < 200, "{names} names, {specs} specs");
    }
}
