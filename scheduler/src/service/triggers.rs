//! Which objects a Cluster change can affect. Karmada rewrites every Cluster's status about
//! every 10 s; re-placing every object on each of those would be polling in disguise. So:
//!
//! * a change of what filters clusters (readiness, taints, labels, topology, deletion)
//!   re-places every object that names us;
//! * a change of capacity only (`resourceSummary`, node counts) looks again at the objects
//!   placed on that cluster (do they still fit?) and at those not placed yet (do they fit now?);
//! * anything else (heartbeats) triggers nothing.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use crate::adapter::Schedulable;
use crate::karmada::triggers::{cluster_change_can_matter, cluster_change_matters};
use fedstate_api::condition::{find_condition, types};
use fedstate_api::karmada::Cluster;

use super::binding::Binding;
use super::cached::CachedBinding;
use fedstate_api::karmada::binding_status::ResourceBindingStatus;
use fedstate_api::names::SCHEDULER_RESULT_ANNOTATION;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

/// What changed in a Cluster since we last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterChange {
    Nothing,
    Capacity,
    Scheduling,
}

fn digest<T: serde::Serialize>(value: &T) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

/// Remembers the last digests of every Cluster; shared by the mapper calls of one controller.
#[derive(Clone, Debug, Default)]
pub struct ClusterTrigger {
    seen: Arc<Mutex<HashMap<String, (u64, u64)>>>,
}

impl ClusterTrigger {
    /// Classify an event for `cluster`; `still_exists` is false for a deletion.
    pub fn classify(&self, cluster: &Cluster, still_exists: bool) -> ClusterChange {
        let name = cluster.name_any();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if !still_exists {
            seen.remove(&name);
            return ClusterChange::Scheduling;
        }
        let status = cluster.status.as_ref();
        let scheduling = digest(&(
            cluster.labels(),
            &cluster.spec.provider,
            &cluster.spec.region,
            &cluster.spec.zone,
            &cluster.spec.zones,
            &cluster.spec.taints,
            cluster.is_ready(),
            cluster.metadata.deletion_timestamp.is_some(),
        ));
        let capacity = digest(&(
            status.and_then(|s| s.resource_summary.as_ref()),
            status.and_then(|s| s.node_summary.as_ref()),
        ));
        match seen.insert(name, (scheduling, capacity)) {
            None => ClusterChange::Scheduling,
            Some((s, _)) if s != scheduling => ClusterChange::Scheduling,
            Some((_, c)) if c != capacity => ClusterChange::Capacity,
            Some(_) => ClusterChange::Nothing,
        }
    }

    /// Objects of a middleware kind to look at again after this Cluster event.
    pub fn affected_objects<K: Schedulable>(
        &self,
        cluster: &Cluster,
        clusters: &Store<Cluster>,
        objects: &Store<K>,
    ) -> Vec<ObjectRef<K>> {
        let name = cluster.name_any();
        let change = self.classify(cluster, clusters.get(&ObjectRef::new(&name)).is_some());
        if change == ClusterChange::Nothing {
            return Vec::new();
        }
        super::metrics::counter_incoming(if change == ClusterChange::Scheduling {
            "ClusterChanged"
        } else {
            "CapacityChanged"
        });
        objects
            .state()
            .iter()
            .filter(|o| {
                change == ClusterChange::Scheduling
                    || placed_on(&***o, &name)
                    || !is_scheduled(&***o)
            })
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect()
    }
}

/// Which bindings a Cluster change wakes, by karmada-scheduler's rule
/// ([`crate::karmada::triggers::cluster_change_matters`]): it keeps the last version of every
/// Cluster to compare with. A cluster seen for the first time wakes nothing (Karmada's do not
/// either; a joining cluster matters once its `not-ready` taint goes, which is a spec change).
#[derive(Clone, Debug, Default)]
pub struct BindingTrigger {
    last: Arc<Mutex<HashMap<String, Arc<Cluster>>>>,
}

impl BindingTrigger {
    pub fn affected<B: Binding>(
        &self,
        cluster: &Arc<Cluster>,
        bindings: &Store<CachedBinding<B>>,
    ) -> Vec<ObjectRef<CachedBinding<B>>> {
        let name = cluster.name_any();
        let old = self
            .last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name, cluster.clone());
        // A status update (every heartbeat) wakes nothing: decided once, not per binding.
        let Some(old) = old.filter(|old| cluster_change_can_matter(old, cluster)) else {
            return Vec::new();
        };
        let no_status = ResourceBindingStatus::default();
        let woken: Vec<ObjectRef<CachedBinding<B>>> = bindings
            .state()
            .iter()
            .filter(|b| {
                let status = b.status().unwrap_or(&no_status);
                cluster_change_matters(&b.spec(), status, b.meta().generation, &old, cluster)
            })
            .map(|b| ObjectRef::from_obj(b.as_ref()))
            .collect();
        if !woken.is_empty() {
            super::metrics::counter_incoming("ClusterChanged");
        }
        woken
    }
}

fn placed_on<K: Schedulable>(obj: &K, cluster: &str) -> bool {
    obj.annotations()
        .get(SCHEDULER_RESULT_ANNOTATION)
        .is_some_and(|a| {
            fedstate_api::SchedulerResult::parse(a)
                .is_ok_and(|r| r.clusters.iter().any(|c| c.cluster == cluster))
        })
}

fn is_scheduled<K: Schedulable>(obj: &K) -> bool {
    find_condition(obj.conditions(), types::SCHEDULED).is_some_and(|c| c.is_true())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cluster(ready: bool, cpu: &str, heartbeat: &str) -> Cluster {
        serde_json::from_value(json!({
            "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": "m1", "labels": {"vip": "127.0.1.1"}},
            "spec": {},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "r", "message": "", "lastTransitionTime": heartbeat}],
                "resourceSummary": {"allocatable": {"cpu": cpu}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn heartbeats_trigger_nothing_capacity_and_readiness_are_told_apart() {
        let t = ClusterTrigger::default();
        assert_eq!(
            t.classify(&cluster(true, "8", "2026-01-01T00:00:00Z"), true),
            ClusterChange::Scheduling
        );
        assert_eq!(
            t.classify(&cluster(true, "8", "2026-01-01T00:00:10Z"), true),
            ClusterChange::Nothing
        );
        assert_eq!(
            t.classify(&cluster(true, "6", "2026-01-01T00:00:20Z"), true),
            ClusterChange::Capacity
        );
        assert_eq!(
            t.classify(&cluster(false, "6", "2026-01-01T00:00:30Z"), true),
            ClusterChange::Scheduling
        );
        assert_eq!(
            t.classify(&cluster(false, "6", "2026-01-01T00:00:30Z"), false),
            ClusterChange::Scheduling
        );
    }
}
