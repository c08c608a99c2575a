//! Which federated objects a Karmada Cluster event matters to. Karmada rewrites Cluster status
//! every few seconds (capacity, conditions); reconciling every object on each of those — ten and
//! more API calls each — would be polling in disguise. The manager reads three facts of a
//! Cluster: that it exists, its VIP label and whether it is Ready ([`ClusterFacts`]). So:
//!
//! * an event that changes none of those facts, for any cluster, triggers nothing;
//! * a change looks again only at the objects it concerns ([`concerns`]): those the placement
//!   puts in the cluster, those with members there (the status topology lists every binding
//!   cluster, retiring-only ones included), those blocked on cluster facts (an unknown cluster or
//!   a missing VIP in the placement), and those being deleted.
//!
//! Each event is compared against the whole Cluster store, not only the cluster it names: the
//! shared reflector dispatches no event for a deletion, so a cluster gone from the store is
//! noticed with the next event of any cluster. (An object with members in a lost cluster is busy
//! and requeued on its own meanwhile.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use fedstate_api::condition::types;
use fedstate_api::karmada::Cluster;
use fedstate_api::{SchedulerResult, names};
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::decide::{CLUSTER_DEPENDENT_REASONS, ClusterFacts};
use crate::gather;
use crate::middleware::Middleware;

/// The cluster facts last seen, by name; shared by the mapper calls of one controller.
#[derive(Debug, Default)]
pub struct ClusterTrigger {
    seen: Mutex<BTreeMap<String, ClusterFacts>>,
}

impl ClusterTrigger {
    /// The clusters whose facts differ from what was seen last (appeared, changed, or gone),
    /// remembering the new facts.
    pub fn changed(&self, now: impl IntoIterator<Item = ClusterFacts>) -> BTreeSet<String> {
        let now: BTreeMap<String, ClusterFacts> =
            now.into_iter().map(|c| (c.name.clone(), c)).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let gone = seen.keys().filter(|n| !now.contains_key(*n)).cloned();
        let differ = now
            .iter()
            .filter(|(n, c)| seen.get(*n) != Some(*c))
            .map(|(n, _)| n.clone());
        let changed = gone.chain(differ).collect();
        *seen = now;
        changed
    }

    /// The objects to look at again after an event of a Cluster.
    pub fn affected<M: Middleware>(
        &self,
        middleware: &M,
        clusters: &Store<Cluster>,
        objects: &Store<M::Federated>,
    ) -> Vec<ObjectRef<M::Federated>> {
        let changed = self.changed(clusters.state().iter().map(|c| gather::facts(c)));
        if changed.is_empty() {
            return Vec::new();
        }
        objects
            .state()
            .iter()
            .filter(|o| changed.iter().any(|c| concerns(middleware, &***o, c)))
            .map(|o| ObjectRef::from_obj(&**o))
            .collect()
    }
}

/// Whether a change of `cluster`'s facts can change what the manager writes for `obj`.
pub fn concerns<M: Middleware>(middleware: &M, obj: &M::Federated, cluster: &str) -> bool {
    let meta = obj.meta();
    if meta.deletion_timestamp.is_some() {
        return true;
    }
    let placed_there = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::SCHEDULER_RESULT_ANNOTATION))
        .and_then(|a| SchedulerResult::parse(a).ok())
        .is_some_and(|r| r.clusters.iter().any(|c| c.cluster == cluster));
    if placed_there {
        return true;
    }
    let status = middleware.current_status(obj);
    let members_there = status
        .result
        .iter()
        .any(|t| t.cluster.as_deref() == Some(cluster));
    let blocked_on_clusters = status.conditions.iter().any(|c| {
        c.type_ == types::SERVER_READY
            && !c.is_true()
            && c.reason
                .as_deref()
                .is_some_and(|r| CLUSTER_DEPENDENT_REASONS.contains(&r))
    });
    members_there || blocked_on_clusters
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mongodb::MongoDb;
    use fedstate_api::MultiCloudMongoDB;
    use serde_json::json;

    fn facts(name: &str, vip: Option<&str>, ready: bool) -> ClusterFacts {
        ClusterFacts {
            name: name.into(),
            vip: vip.map(str::to_owned),
            ready,
        }
    }

    #[test]
    fn only_a_change_of_existence_vip_or_readiness_counts() {
        let t = ClusterTrigger::default();
        let m1 = facts("m1", Some("127.0.1.1"), true);
        let m2 = facts("m2", Some("127.0.1.2"), true);
        assert_eq!(
            t.changed([m1.clone(), m2.clone()]),
            BTreeSet::from(["m1".into(), "m2".into()]),
            "first sight"
        );
        // A status refresh (capacity, heartbeats) leaves the facts as they were.
        assert!(t.changed([m1.clone(), m2.clone()]).is_empty());
        assert_eq!(
            t.changed([m1.clone(), facts("m2", Some("127.0.1.2"), false)]),
            BTreeSet::from(["m2".into()])
        );
        assert_eq!(
            t.changed([
                facts("m1", Some("127.0.1.9"), true),
                facts("m2", Some("127.0.1.2"), false)
            ]),
            BTreeSet::from(["m1".into()])
        );
        // Gone from the store: noticed even though no event names it.
        assert_eq!(
            t.changed([facts("m1", Some("127.0.1.9"), true)]),
            BTreeSet::from(["m2".into()])
        );
    }

    fn object(annotation: Option<&str>, status: serde_json::Value) -> MultiCloudMongoDB {
        let mut v = json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MultiCloudMongoDB",
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"replicaset": 3},
            "status": status,
        });
        if let Some(a) = annotation {
            v["metadata"]["annotations"] = json!({ names::SCHEDULER_RESULT_ANNOTATION: a });
        }
        serde_json::from_value(v).unwrap()
    }

    fn server_ready(status: &str, reason: &str) -> serde_json::Value {
        json!({"conditions": [{"type": "ServerReady", "status": status, "reason": reason,
            "message": "m", "lastTransitionTime": "2026-01-01T00:00:00Z"}]})
    }

    #[test]
    fn a_cluster_concerns_the_objects_placed_there_with_members_there_or_blocked_on_clusters() {
        let m = MongoDb;
        let placed = object(
            Some(r#"{"ClusterWithReplicaset":[{"cluster":"m1","replicaset":3}]}"#),
            server_ready("True", "ServerReady"),
        );
        assert!(concerns(&m, &placed, "m1"));
        assert!(
            !concerns(&m, &placed, "m2"),
            "a healthy object placed elsewhere"
        );
        let not_placed = object(None, server_ready("False", "WaitingForPlacement"));
        assert!(
            !concerns(&m, &not_placed, "m1"),
            "the scheduler's annotation, not a cluster, unblocks it"
        );
        // Moved away from m2 but still has (retiring) members there: m2 coming back matters.
        let mut moved = object(
            Some(r#"{"ClusterWithReplicaset":[{"cluster":"m1","replicaset":3}]}"#),
            json!({"result": [{"cluster": "m1"}, {"cluster": "m2"}]}),
        );
        assert!(concerns(&m, &moved, "m2"));
        // Blocked because a cluster was unknown or had no VIP: any cluster change may unblock it.
        for reason in CLUSTER_DEPENDENT_REASONS {
            let blocked = object(
                Some(r#"{"ClusterWithReplicaset":[{"cluster":"m1","replicaset":3}]}"#),
                server_ready("False", reason),
            );
            assert!(concerns(&m, &blocked, "m9"), "{reason}");
        }
        moved.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert!(
            concerns(&m, &moved, "m9"),
            "teardown waits on cluster readiness"
        );
    }
}
