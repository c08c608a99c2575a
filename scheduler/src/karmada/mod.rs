//! Karmada-native scheduling: place a `ResourceBinding` or `ClusterResourceBinding` whose policy
//! names our scheduler exactly as karmada-scheduler v1.18 would, so a platform team can switch
//! `schedulerName` without any policy changing its meaning (`docs/karmada.md#scheduling-resourcebindings`).
//!
//! The pipeline is Karmada's, one small pure unit per step, each tested on its own:
//!
//! 1. [`filter`]: which clusters may take the binding (API served, taints, affinity, spread
//!    properties, eviction; clusters being deleted never).
//! 2. [`select`]: score, order, and pick by spread constraints.
//! 3. [`assign`]: divide the replicas (duplicated, static or dynamic weights, aggregated,
//!    overflow groups), with [`webster`]'s Karmada-compatible tie-breaks.
//! 4. [`triggers`]: whether a binding must be scheduled again, and which cluster changes matter.
//!
//! `clusterAffinities` groups are tried in order from the one in use, as Karmada does. The only
//! input from outside is each cluster's capacity for one replica (the estimator chain's answer),
//! asked for only where it matters ([`clusters_to_estimate`]). No I/O here.

pub mod assign;
pub mod filter;
pub mod select;
pub mod triggers;
pub mod webster;

use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBindingSpec;
use fedstate_api::karmada::binding_status::{ResourceBindingStatus, TargetCluster};

/// How the placement asks replicas to be divided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    Duplicated,
    StaticWeight,
    DynamicWeight,
    Aggregated,
    /// A combination Karmada refuses, with its description.
    Unsupported(String),
}

impl Strategy {
    pub fn of(spec: &ResourceBindingSpec) -> Self {
        let Some(rs) = spec
            .placement
            .as_ref()
            .and_then(|p| p.replica_scheduling.as_ref())
        else {
            return Self::Duplicated;
        };
        let kind = rs.replica_scheduling_type.as_deref().unwrap_or("");
        let preference = rs.replica_division_preference.as_deref().unwrap_or("");
        match (kind, preference) {
            ("Duplicated", _) => Self::Duplicated,
            ("Divided", "Aggregated") => Self::Aggregated,
            ("Divided", "Weighted") => match rs.weight_preference.as_ref() {
                Some(w) if w.dynamic_weight.as_deref().is_some_and(|d| !d.is_empty()) => {
                    Self::DynamicWeight
                }
                _ => Self::StaticWeight,
            },
            _ => Self::Unsupported(format!(
                "replicaSchedulingType: {kind}, replicaDivisionPreference: {preference}"
            )),
        }
    }
}

/// Why a binding was not placed, as karmada-scheduler classifies it; the message is the one it
/// would write into the `Scheduled=False` condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// No cluster passed the filters (`spec.clusters` is cleared).
    #[error("{0}")]
    NoClusterFit(String),
    /// The feasible clusters lack room (the placement in force stays).
    #[error("{0}")]
    Unschedulable(String),
    /// Anything else, e.g. a spread constraint that cannot be met (the placement stays).
    #[error("{0}")]
    Error(String),
}

impl ScheduleError {
    /// The condition reason Karmada writes with `Scheduled=False`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoClusterFit(_) => "NoClusterFit",
            Self::Unschedulable(_) => "Unschedulable",
            Self::Error(_) => "SchedulerError",
        }
    }

    /// The same failure, its message prefixed with `what: ` (as Go wraps errors).
    pub fn context(self, what: &str) -> Self {
        match self {
            Self::NoClusterFit(m) => Self::NoClusterFit(format!("{what}: {m}")),
            Self::Unschedulable(m) => Self::Unschedulable(format!("{what}: {m}")),
            Self::Error(m) => Self::Error(format!("{what}: {m}")),
        }
    }
}

/// The result of one scheduling attempt: what to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// New `spec.clusters`; `None` leaves the placement in force (an empty list clears it).
    pub clusters: Option<Vec<TargetCluster>>,
    /// New `status.schedulerObservedAffinityName` (placements with `clusterAffinities` only).
    pub affinity_name: Option<String>,
    pub result: Result<(), ScheduleError>,
}

/// Whether the binding's replicas need an estimate at all (Karmada asks estimators only for
/// bindings with replicas).
pub fn needs_capacity(spec: &ResourceBindingSpec) -> bool {
    spec.replicas > 0
}

/// The `clusterAffinities` groups an attempt tries, in order: from the one in use to the last.
fn groups(spec: &ResourceBindingSpec, status: &ResourceBindingStatus) -> Option<Vec<String>> {
    let terms = spec
        .placement
        .as_ref()?
        .cluster_affinities
        .as_ref()
        .filter(|t| !t.is_empty())?;
    let observed = status
        .scheduler_observed_affinity_name
        .as_deref()
        .unwrap_or("");
    let start = terms
        .iter()
        .position(|t| !observed.is_empty() && t.affinity_name == observed)
        .unwrap_or(0);
    Some(
        terms
            .iter()
            .skip(start)
            .map(|t| t.affinity_name.clone())
            .collect(),
    )
}

fn is_deleting(c: &Cluster) -> bool {
    c.metadata.deletion_timestamp.is_some()
}

/// The clusters whose capacity [`schedule`] may read: those that pass the filters under any
/// affinity group it may try. Empty for bindings without replicas.
pub fn clusters_to_estimate<'a>(
    spec: &ResourceBindingSpec,
    status: &ResourceBindingStatus,
    clusters: &[&'a Cluster],
) -> Vec<&'a Cluster> {
    if !needs_capacity(spec) {
        return Vec::new();
    }
    let groups = groups(spec, status);
    let tried: Vec<Option<&str>> = match &groups {
        Some(g) => g.iter().map(|n| Some(n.as_str())).collect(),
        None => vec![None],
    };
    clusters
        .iter()
        .filter(|c| !is_deleting(c))
        .filter(|c| tried.iter().any(|g| filter::unfit(spec, *g, c).is_none()))
        .copied()
        .collect()
}

/// Schedules a binding over `clusters` (every Cluster Karmada knows). `capacity` says how many
/// more replicas of this binding a cluster can take (`None`: no estimator had an opinion).
pub fn schedule(
    spec: &ResourceBindingSpec,
    status: &ResourceBindingStatus,
    clusters: &[&Cluster],
    capacity: &dyn Fn(&str) -> Option<i32>,
) -> Outcome {
    let Some(groups) = groups(spec, status) else {
        return match attempt(spec, status, None, clusters, capacity) {
            Ok(targets) => Outcome {
                clusters: Some(targets),
                affinity_name: None,
                result: Ok(()),
            },
            Err(e @ ScheduleError::NoClusterFit(_)) => Outcome {
                clusters: Some(Vec::new()),
                affinity_name: None,
                result: Err(e),
            },
            Err(e) => Outcome {
                clusters: None,
                affinity_name: None,
                result: Err(e),
            },
        };
    };
    let mut first_error = None;
    for group in &groups {
        match attempt(spec, status, Some(group), clusters, capacity) {
            Ok(targets) => {
                return Outcome {
                    clusters: Some(targets),
                    affinity_name: Some(group.clone()),
                    result: Ok(()),
                };
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e @ ScheduleError::NoClusterFit(_)) => Outcome {
            clusters: Some(Vec::new()),
            affinity_name: None,
            result: Err(e),
        },
        Some(e) => Outcome {
            clusters: None,
            affinity_name: None,
            result: Err(e),
        },
        None => Outcome {
            clusters: None,
            affinity_name: None,
            result: Ok(()),
        },
    }
}

/// One pass of the pipeline with one affinity group.
fn attempt(
    spec: &ResourceBindingSpec,
    status: &ResourceBindingStatus,
    group: Option<&str>,
    clusters: &[&Cluster],
    capacity: &dyn Fn(&str) -> Option<i32>,
) -> Result<Vec<TargetCluster>, ScheduleError> {
    let mut feasible = Vec::with_capacity(clusters.len());
    let mut unfit: Vec<filter::Unfit> = Vec::new();
    for c in clusters.iter().filter(|c| !is_deleting(c)) {
        match filter::unfit(spec, group, c) {
            None => feasible.push(*c),
            Some(why) => unfit.push(why),
        }
    }
    if feasible.is_empty() {
        return Err(ScheduleError::NoClusterFit(fit_message(
            clusters.len(),
            &unfit,
        )));
    }
    let strategy = Strategy::of(spec);
    let estimated = needs_capacity(spec);
    let allocatable = |name: &str| {
        if estimated {
            capacity(name).unwrap_or(spec.replicas)
        } else {
            i32::MAX
        }
    };
    let sorted = select::candidates(spec, group, &feasible, &allocatable);
    let selected = select::select(spec, &strategy, sorted)?;
    let fresh = matches!(
        (&spec.reschedule_triggered_at, &status.last_scheduled_time),
        (Some(t), Some(l)) if t.0 > l.0
    );
    assign::assign(spec, &strategy, &selected, fresh, overflow(spec, group))
}

/// The group in use has overflow groups (and no plain `clusterAffinity` overrides it).
fn overflow(spec: &ResourceBindingSpec, group: Option<&str>) -> bool {
    let Some(p) = spec.placement.as_ref() else {
        return false;
    };
    let Some(group) = group.filter(|g| !g.is_empty()) else {
        return false;
    };
    p.cluster_affinity.is_none()
        && p.cluster_affinities
            .iter()
            .flatten()
            .any(|t| t.affinity_name == group && !t.overflow_affinities.is_empty())
}

/// karmada-scheduler's "0/N clusters are available: …" message: how many clusters each filter
/// reason ruled out, sorted.
pub fn fit_message(all: usize, unfit: &[filter::Unfit]) -> String {
    if all == 0 || unfit.is_empty() {
        return format!("0/{all} clusters are available: no cluster exists.");
    }
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for u in unfit {
        *counts.entry(u.to_string()).or_default() += 1;
    }
    let mut parts: Vec<String> = counts
        .into_iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    parts.sort();
    format!("0/{all} clusters are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests;
