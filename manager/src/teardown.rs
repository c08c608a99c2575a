//! Ordered deletion of one federated object (pure): the host list is marked first (every
//! member goes, so no agent need take its members out of a set that does not live on; without
//! the mark an agent whose member object is deleted leaves the set first and keeps its
//! finalizer until it has); then the member template goes, so Karmada
//! deletes the member objects and each agent tears its members down; then we wait until Karmada
//! reports no Work of that template left in any cluster, reachable or not (a member in an
//! unreachable cluster may still be running and voting: the finalizer never goes while one may);
//! only then do the policies, Services, ConfigMaps and Secrets go (the agents may need them while
//! they tear down), and the finalizer is released once nothing of ours is left. Each step names
//! exactly what to delete or what it waits for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use fedstate_api::condition::types;
use fedstate_api::karmada::binding::ResourceBinding;
use serde_json::Value;

/// The kinds of object the manager creates for one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnedKind {
    /// The member template (`MongoDB` for MongoDB).
    Template,
    Service,
    ConfigMap,
    Secret,
    PropagationPolicy,
    OverridePolicy,
}

impl OwnedKind {
    /// Everything but the template, in deletion order.
    pub const OWNED: [OwnedKind; 5] = [
        OwnedKind::Service,
        OwnedKind::ConfigMap,
        OwnedKind::Secret,
        OwnedKind::PropagationPolicy,
        OwnedKind::OverridePolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OwnedKind::Template => "template",
            OwnedKind::Service => "Service",
            OwnedKind::ConfigMap => "ConfigMap",
            OwnedKind::Secret => "Secret",
            OwnedKind::PropagationPolicy => "PropagationPolicy",
            OwnedKind::OverridePolicy => "OverridePolicy",
        }
    }
}

/// One object of ours, by kind and name (the namespace is the instance's).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnedRef {
    pub kind: OwnedKind,
    pub name: String,
}

impl OwnedRef {
    pub fn new(kind: OwnedKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for OwnedRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.as_str(), self.name)
    }
}

/// What is left, as the controller found it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TeardownView {
    /// The member template, while it still exists in the Karmada apiserver.
    pub template: Option<OwnedRef>,
    /// Reachable clusters where a Work of the template remains (member object not deleted yet).
    pub works_in_reachable_clusters: Vec<String>,
    /// Unreachable clusters where a Work remains: waited for too (their members may still be
    /// running and voting); Karmada deletes the member objects when they return, and removes
    /// their Works when a cluster leaves the federation.
    pub works_in_unreachable_clusters: Vec<String>,
    /// Our other objects (policies, Services, ConfigMaps, Secrets) still present.
    pub owned_left: Vec<OwnedRef>,
    /// Our host-list ConfigMap, while it exists without the whole-set teardown mark
    /// (`fedstate_api::hostconf::TEARDOWN_KEY`).
    pub unmarked_host_list: Option<OwnedRef>,
    /// Clusters of the template's binding whose member object does not report the mark yet
    /// (`TeardownMarked`, [`unacknowledged`]): reachable ones, then unreachable ones.
    pub unacknowledged: (Vec<String>, Vec<String>),
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TeardownStep {
    /// Tell every agent the whole set goes (before any member object is deleted).
    MarkHostList {
        host_list: OwnedRef,
    },
    /// The mark is set; the agents of these clusters (`unreachable`: not Ready in Karmada) have
    /// not recorded it yet. Deleting the member objects before they have could leave one whose
    /// agent never sees the mark (the host list is deleted once Karmada removed the Works, which
    /// does not wait for the member objects; a cluster that returns gets the mark and the
    /// deletion in no set order): it would wait for its members to leave a set nobody is left
    /// to change. So an unreachable cluster is waited for here too, until it returns or leaves
    /// the federation.
    WaitForAcknowledgment {
        clusters: Vec<String>,
        unreachable: Vec<String>,
    },
    DeleteTemplate {
        template: OwnedRef,
    },
    /// Member objects remain: in `clusters` (being deleted) and in `unreachable` ones.
    WaitForMembers {
        clusters: Vec<String>,
        unreachable: Vec<String>,
    },
    DeleteOwned {
        objects: Vec<OwnedRef>,
    },
    Done,
}

/// Split the clusters where a Work of the template remains into reachable ones and unreachable
/// ones (both are waited for; the split only says why): a cluster Karmada knows and reports not
/// Ready, or one it no longer knows (it left the federation). A Cluster cache that knows no
/// cluster at all says nothing about readiness (it is not filled yet), so then every cluster
/// counts as reachable.
pub fn split_works(
    clusters: impl IntoIterator<Item = String>,
    ready: &BTreeMap<String, bool>,
) -> (Vec<String>, Vec<String>) {
    clusters
        .into_iter()
        .partition(|c| ready.is_empty() || ready.get(c).copied().unwrap_or(false))
}

/// The clusters of `binding` whose reflected member status (`status.aggregatedStatus[].status`)
/// lacks the condition `TeardownMarked` with status True: the agents that have not recorded the
/// whole-set teardown mark yet, split as [`split_works`] does into reachable and unreachable
/// ones. A cluster Karmada no longer knows is not waited for (it left the federation: nothing
/// will come from it, and its Works went with it); one it knows but reports not Ready is.
pub fn unacknowledged(
    binding: Option<&ResourceBinding>,
    ready: &BTreeMap<String, bool>,
) -> (Vec<String>, Vec<String>) {
    let Some(rb) = binding else {
        return Default::default();
    };
    let marked = |status: Option<&Value>| {
        status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.get("type").and_then(Value::as_str) == Some(types::TEARDOWN_MARKED)
                        && c.get("status").and_then(Value::as_str) == Some("True")
                })
            })
    };
    let acknowledged: BTreeSet<&str> = rb
        .status
        .iter()
        .flat_map(|s| &s.aggregated_status)
        .filter(|i| marked(i.status.as_ref()))
        .map(|i| i.cluster_name.as_str())
        .collect();
    let waiting = rb
        .spec
        .clusters
        .iter()
        .map(|c| c.name.clone())
        .filter(|c| ready.is_empty() || ready.contains_key(c))
        .filter(|c| !acknowledged.contains(c.as_str()));
    split_works(waiting, ready)
}

pub fn next_step(v: &TeardownView) -> TeardownStep {
    if let (Some(_), Some(host_list)) = (&v.template, &v.unmarked_host_list) {
        TeardownStep::MarkHostList {
            host_list: host_list.clone(),
        }
    } else if v.template.is_some()
        && (!v.unacknowledged.0.is_empty() || !v.unacknowledged.1.is_empty())
    {
        TeardownStep::WaitForAcknowledgment {
            clusters: v.unacknowledged.0.clone(),
            unreachable: v.unacknowledged.1.clone(),
        }
    } else if let Some(template) = &v.template {
        TeardownStep::DeleteTemplate {
            template: template.clone(),
        }
    } else if !v.works_in_reachable_clusters.is_empty()
        || !v.works_in_unreachable_clusters.is_empty()
    {
        TeardownStep::WaitForMembers {
            clusters: v.works_in_reachable_clusters.clone(),
            unreachable: v.works_in_unreachable_clusters.clone(),
        }
    } else if !v.owned_left.is_empty() {
        TeardownStep::DeleteOwned {
            objects: v.owned_left.clone(),
        }
    } else {
        TeardownStep::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_go_before_what_they_need_and_unreachable_members_are_waited_for() {
        let template = OwnedRef::new(OwnedKind::Template, "demo");
        let keyfile = OwnedRef::new(OwnedKind::Secret, "demo-keyfile");
        let host_list = OwnedRef::new(OwnedKind::ConfigMap, "demo-hostconf");
        let mut v = TeardownView {
            template: Some(template.clone()),
            works_in_reachable_clusters: vec!["a".into()],
            works_in_unreachable_clusters: vec!["b".into()],
            owned_left: vec![keyfile.clone()],
            unmarked_host_list: Some(host_list.clone()),
            unacknowledged: Default::default(),
        };
        // The agents learn that the whole set goes before any member object is deleted (else
        // each would keep its finalizer until its members left a set that does not live on).
        assert_eq!(next_step(&v), TeardownStep::MarkHostList { host_list });
        v.unmarked_host_list = None;
        // Then every cluster's agent records it before its member object goes, an unreachable
        // cluster's too (it gets the mark when it returns).
        v.unacknowledged = (vec!["a".into()], vec!["b".into()]);
        assert_eq!(
            next_step(&v),
            TeardownStep::WaitForAcknowledgment {
                clusters: vec!["a".into()],
                unreachable: vec!["b".into()],
            }
        );
        v.unacknowledged.0.clear();
        assert_eq!(
            next_step(&v),
            TeardownStep::WaitForAcknowledgment {
                clusters: vec![],
                unreachable: vec!["b".into()],
            },
            "an unreachable cluster's agent may see the deletion before the mark when it returns"
        );
        v.unacknowledged.1.clear();
        assert_eq!(next_step(&v), TeardownStep::DeleteTemplate { template });
        v.template = None;
        assert_eq!(
            next_step(&v),
            TeardownStep::WaitForMembers {
                clusters: vec!["a".into()],
                unreachable: vec!["b".into()],
            }
        );
        // Only an unreachable cluster's member is left: it may still vote, so nothing else goes
        // (the Secrets, the host list) and the finalizer stays.
        v.works_in_reachable_clusters.clear();
        assert_eq!(
            next_step(&v),
            TeardownStep::WaitForMembers {
                clusters: vec![],
                unreachable: vec!["b".into()],
            }
        );
        v.works_in_unreachable_clusters.clear();
        assert_eq!(
            next_step(&v),
            TeardownStep::DeleteOwned {
                objects: vec![keyfile]
            }
        );
        assert_eq!(v.owned_left[0].to_string(), "Secret/demo-keyfile");
        v.owned_left.clear();
        assert_eq!(next_step(&v), TeardownStep::Done);
    }

    #[test]
    fn an_empty_cluster_cache_never_makes_every_cluster_unreachable() {
        let works = || ["a".to_owned(), "b".to_owned(), "gone".to_owned()];
        let ready = BTreeMap::from([("a".to_owned(), true), ("b".to_owned(), false)]);
        assert_eq!(
            split_works(works(), &ready),
            (vec!["a".into()], vec!["b".into(), "gone".into()])
        );
        assert_eq!(
            split_works(works(), &BTreeMap::new()),
            (vec!["a".into(), "b".into(), "gone".into()], vec![]),
            "nothing known: none is called unreachable"
        );
    }

    /// Which agents have recorded the mark, from the binding's reflected statuses: a cluster
    /// counts once its member object reports `TeardownMarked` True; an unreachable cluster is
    /// waited for too (when it returns, Karmada delivers the mark and the deletion in no set
    /// order), one Karmada no longer knows is not (it left the federation).
    #[test]
    fn the_agents_that_have_not_recorded_the_mark_are_waited_for() {
        let rb: ResourceBinding = serde_json::from_value(serde_json::json!({
            "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
            "metadata": {"name": "demo-mongodb", "namespace": "ns"},
            "spec": {"resource": {"apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB", "name": "demo"},
                     "clusters": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "gone"}]},
            "status": {"aggregatedStatus": [
                {"clusterName": "a", "applied": true, "status": {"conditions": [
                    {"type": "TeardownMarked", "status": "True", "reason": "WholeSetTeardown"}]}},
                {"clusterName": "b", "applied": true, "status": {"conditions": [
                    {"type": "TeardownMarked", "status": "False"}, {"type": "Ready", "status": "True"}]}},
                {"clusterName": "c", "applied": true},
            ]}
        }))
        .unwrap();
        let ready: BTreeMap<String, bool> = [("a", true), ("b", true), ("c", true), ("d", false)]
            .into_iter()
            .map(|(c, r)| (c.to_owned(), r))
            .collect();
        assert_eq!(
            unacknowledged(Some(&rb), &ready),
            (vec!["b".into(), "c".into()], vec!["d".into()])
        );
        assert_eq!(unacknowledged(None, &ready), Default::default());
    }
}
