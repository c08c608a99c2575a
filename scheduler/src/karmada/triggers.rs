//! When a binding is scheduled again, as karmada-scheduler decides it: its placement differs
//! from the one last applied, its replicas changed, a reschedule was requested, a cluster it uses
//! is being deleted — and always for Duplicated bindings and kinds without replicas, whose
//! placement follows the clusters (a new cluster matching the affinity gets them). And which
//! cluster changes wake a binding up: a cluster's labels or spec changing, or its deletion
//! starting, for bindings whose affinity matches it before or after.

use fedstate_api::karmada::binding::{BindingPlacement, ResourceBindingSpec};
use fedstate_api::karmada::binding_status::ResourceBindingStatus;
use fedstate_api::karmada::{Cluster, ClusterAffinity};

use super::filter::cluster_matches;

/// Why a binding is scheduled now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Never applied, or the placement changed since.
    PlacementChanged,
    /// `spec.replicas` no longer matches `spec.clusters`.
    ReplicasChanged,
    /// `rescheduleTriggeredAt` is later than `lastScheduledTime`: start afresh.
    RescheduleRequested,
    /// Duplicated, or a kind without replicas: re-evaluated on every pass.
    FollowsClusters,
    /// A cluster in `spec.clusters` is being deleted.
    TargetTerminating,
}

impl Trigger {
    /// The `schedule_type` label of `schedule_attempts_total`, as Karmada names it.
    pub fn schedule_type(self) -> &'static str {
        match self {
            Self::ReplicasChanged => "ScaleSchedule",
            _ => "ReconcileSchedule",
        }
    }
}

/// Why this binding must be scheduled now, or `None` when the placement in force stands.
/// `applied`: the `policy.karmada.io/applied-placement` annotation.
pub fn trigger(
    spec: &ResourceBindingSpec,
    status: &ResourceBindingStatus,
    applied: Option<&str>,
    clusters: &[&Cluster],
) -> Option<Trigger> {
    let placement = spec.placement.clone().unwrap_or_default();
    let observed = status
        .scheduler_observed_affinity_name
        .as_deref()
        .unwrap_or("");
    if placement_changed(&placement, applied, observed) {
        return Some(Trigger::PlacementChanged);
    }
    if replicas_changed(spec) {
        return Some(Trigger::ReplicasChanged);
    }
    if matches!(
        (&spec.reschedule_triggered_at, &status.last_scheduled_time),
        (Some(t), Some(l)) if t.0 > l.0
    ) {
        return Some(Trigger::RescheduleRequested);
    }
    if !spec.is_workload() || super::Strategy::of(spec) == super::Strategy::Duplicated {
        return Some(Trigger::FollowsClusters);
    }
    let terminating = clusters.iter().any(|c| {
        c.metadata.deletion_timestamp.is_some()
            && spec
                .clusters
                .iter()
                .any(|t| Some(t.name.as_str()) == c.metadata.name.as_deref())
    });
    terminating.then_some(Trigger::TargetTerminating)
}

/// Karmada's `placementChanged`: no (or an unreadable) applied placement counts as changed and
/// unchanged respectively; otherwise affinity, tolerations, spread constraints and replica
/// scheduling are compared, and of `clusterAffinities` only the group in use.
pub fn placement_changed(
    placement: &BindingPlacement,
    applied: Option<&str>,
    observed: &str,
) -> bool {
    let Some(applied) = applied.filter(|a| !a.is_empty()) else {
        return true;
    };
    let Ok(applied) = serde_json::from_str::<BindingPlacement>(applied) else {
        return false;
    };
    if *placement == applied {
        return false;
    }
    if placement.cluster_affinity != applied.cluster_affinity
        || placement.cluster_tolerations != applied.cluster_tolerations
        || placement.spread_constraints != applied.spread_constraints
        || placement.replica_scheduling != applied.replica_scheduling
    {
        return true;
    }
    if observed.is_empty() {
        return true;
    }
    let find = |p: &BindingPlacement| {
        p.cluster_affinities
            .iter()
            .flatten()
            .find(|t| t.affinity_name == observed)
            .cloned()
    };
    match (find(placement), find(&applied)) {
        (Some(now), Some(then)) => now != then,
        _ => true,
    }
}

/// Karmada's `IsBindingReplicasChanged`: a Duplicated target with other than `spec.replicas`, or
/// Divided targets that do not add up to it.
pub fn replicas_changed(spec: &ResourceBindingSpec) -> bool {
    let Some(rs) = spec
        .placement
        .as_ref()
        .and_then(|p| p.replica_scheduling.as_ref())
    else {
        return false;
    };
    match rs.replica_scheduling_type.as_deref() {
        Some("Duplicated") => spec.clusters.iter().any(|t| t.replicas != spec.replicas),
        Some("Divided") => {
            spec.clusters
                .iter()
                .map(|t| i64::from(t.replicas))
                .sum::<i64>()
                != i64::from(spec.replicas)
        }
        _ => false,
    }
}

/// The affinity a cluster event is checked against: the policy's `clusterAffinity`, or the
/// `clusterAffinities` group in use (`None`: any cluster matters).
fn affinity_in_use<'a>(
    spec: &'a ResourceBindingSpec,
    status: &ResourceBindingStatus,
) -> Option<&'a ClusterAffinity> {
    let p = spec.placement.as_ref()?;
    if let Some(terms) = p.cluster_affinities.as_ref() {
        let observed = status
            .scheduler_observed_affinity_name
            .as_deref()
            .unwrap_or("");
        let index = terms
            .iter()
            .position(|t| !observed.is_empty() && t.affinity_name == observed)
            .unwrap_or(0);
        return terms.get(index).map(|t| &t.affinity);
    }
    p.cluster_affinity.as_ref()
}

fn deletion_started(old: &Cluster, new: &Cluster) -> bool {
    old.metadata.deletion_timestamp.is_none() && new.metadata.deletion_timestamp.is_some()
}

/// Whether a change from `old` to `new` can wake any binding ([`cluster_change_matters`] is
/// false for every binding otherwise): the Cluster's labels or spec changed, or its deletion
/// started. A status update (a heartbeat, capacity) cannot.
pub fn cluster_change_can_matter(old: &Cluster, new: &Cluster) -> bool {
    let relabelled = old.metadata.labels != new.metadata.labels;
    let respecified = old.metadata.generation != new.metadata.generation || old.spec != new.spec;
    deletion_started(old, new) || relabelled || respecified
}

/// Whether a change from `old` to `new` (`old == None`: the deletion of `new` started) should
/// wake this binding up: its labels or spec changed, or it started terminating, and the binding's
/// affinity in use matches the cluster before or after (a binding not yet observed at its
/// generation is always woken).
pub fn cluster_change_matters(
    spec: &ResourceBindingSpec,
    status: &ResourceBindingStatus,
    generation: Option<i64>,
    old: &Cluster,
    new: &Cluster,
) -> bool {
    let deleting = deletion_started(old, new);
    if !cluster_change_can_matter(old, new) || spec.placement.is_none() {
        return false;
    }
    let clusters_affinity = spec
        .placement
        .as_ref()
        .is_some_and(|p| p.cluster_affinities.is_some());
    if clusters_affinity && status.scheduler_observed_generation != generation {
        return true;
    }
    match affinity_in_use(spec, status) {
        None => true,
        Some(a) => {
            if deleting {
                cluster_matches(new, a)
            } else {
                cluster_matches(old, a) || cluster_matches(new, a)
            }
        }
    }
}
