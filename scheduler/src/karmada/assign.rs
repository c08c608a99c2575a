//! How many replicas each selected cluster gets, by karmada-scheduler's rules:
//!
//! * **Duplicated**: every selected cluster gets all of them.
//! * **Static weights**: Webster over the weights, the maximum weight of the rules a cluster
//!   matches; clusters no rule matches get nothing; capacity is not consulted; every cluster
//!   weighs 1 when no rule matches any.
//! * **Dynamic weights** (available replicas) and **Aggregated**, from the current split
//!   (`spec.clusters`): equal → unchanged; scale up → only the difference, divided by what each
//!   cluster can still take; scale down → the new total divided in proportion to the current
//!   split; a requested reschedule (`rescheduleTriggeredAt`) → everything afresh. Aggregated
//!   divides over the shortest prefix of clusters (current ones first, then most available) that
//!   can take the replicas.
//! * **Overflow affinities**: the main group is filled first, then each overflow group in turn.
//!
//! A Duplicated or Divided binding of 0 replicas ends with no cluster at all; a kind without
//! replicas goes to every selected cluster with 0.

use fedstate_api::karmada::binding::ResourceBindingSpec;
use fedstate_api::karmada::binding_status::TargetCluster;

use super::filter::cluster_matches;
use super::select::Candidate;
use super::webster::{self, TieOrder};
use super::{ScheduleError, Strategy};

/// Assigns replicas over the selected clusters. `fresh`: a reschedule was requested;
/// `overflow`: the `clusterAffinities` group in use has overflow groups.
pub fn assign(
    spec: &ResourceBindingSpec,
    strategy: &Strategy,
    selected: &[Candidate<'_>],
    fresh: bool,
    overflow: bool,
) -> Result<Vec<TargetCluster>, ScheduleError> {
    if selected.is_empty() {
        return Err(ScheduleError::Error(
            "failed to assign replicas: no clusters available to schedule".into(),
        ));
    }
    if !spec.is_workload() {
        return Ok(selected.iter().map(|c| target(c.name, 0)).collect());
    }
    let wrap = |e: ScheduleError| e.context("failed to assign replicas");
    if !overflow {
        return to_clusters(spec, strategy, selected, spec.replicas, fresh).map_err(wrap);
    }
    let deepest = selected.iter().map(|c| c.overflow_order).max().unwrap_or(0);
    let mut remaining = spec.replicas;
    let mut out = Vec::new();
    for tier in 0..=deepest {
        let clusters: Vec<Candidate<'_>> = selected
            .iter()
            .filter(|c| c.overflow_order == tier)
            .cloned()
            .collect();
        if clusters.is_empty() {
            continue;
        }
        let room: i64 = clusters.iter().map(|c| c.available).sum();
        let share = i32::try_from(i64::from(remaining).min(room)).unwrap_or(i32::MAX);
        out.extend(to_clusters(spec, strategy, &clusters, share, fresh).map_err(wrap)?);
        remaining -= share;
        if remaining <= 0 {
            break;
        }
    }
    if remaining > 0 {
        return Err(wrap(ScheduleError::Unschedulable(
            "Clusters available replicas are not enough to schedule.".into(),
        )));
    }
    Ok(out)
}

fn target(name: &str, replicas: i32) -> TargetCluster {
    TargetCluster {
        name: name.to_owned(),
        replicas,
    }
}

/// One strategy over one set of clusters, without the clusters left with 0.
fn to_clusters(
    spec: &ResourceBindingSpec,
    strategy: &Strategy,
    clusters: &[Candidate<'_>],
    replicas: i32,
    fresh: bool,
) -> Result<Vec<TargetCluster>, ScheduleError> {
    let ties = TieOrder::for_uid(spec.resource.uid.as_deref().unwrap_or(""));
    let out = match strategy {
        Strategy::Duplicated => clusters.iter().map(|c| target(c.name, replicas)).collect(),
        Strategy::StaticWeight => static_weights(spec, clusters, replicas, ties),
        Strategy::DynamicWeight | Strategy::Aggregated => dynamic(
            spec,
            *strategy == Strategy::Aggregated,
            clusters,
            replicas,
            fresh,
            ties,
        )?,
        Strategy::Unsupported(why) => {
            return Err(ScheduleError::Error(format!(
                "unsupported replica scheduling strategy, {why}, please try another scheduling strategy"
            )));
        }
    };
    Ok(out.into_iter().filter(|t| t.replicas > 0).collect())
}

fn static_weights(
    spec: &ResourceBindingSpec,
    clusters: &[Candidate<'_>],
    replicas: i32,
    ties: TieOrder,
) -> Vec<TargetCluster> {
    let rules = spec
        .placement
        .as_ref()
        .and_then(|p| p.replica_scheduling.as_ref())
        .and_then(|r| r.weight_preference.as_ref())
        .map(|w| w.static_weight_list.as_slice());
    let mut weights: Vec<(&str, i64)> = match rules {
        // No weight preference at all: every selected cluster weighs 1.
        None => clusters.iter().map(|c| (c.name, 1)).collect(),
        Some(rules) => clusters
            .iter()
            .filter_map(|c| {
                let w = rules
                    .iter()
                    .filter(|r| cluster_matches(c.cluster, &r.target_cluster))
                    .map(|r| r.weight)
                    .fold(0, i64::max);
                (w > 0).then_some((c.name, w))
            })
            .collect(),
    };
    if weights.iter().map(|(_, w)| w).sum::<i64>() == 0 {
        weights = clusters.iter().map(|c| (c.name, 1)).collect();
    }
    webster::allocate(replicas, &weights, ties)
}

/// Dynamic weights and Aggregated: from the current split, as the module docs say.
fn dynamic(
    spec: &ResourceBindingSpec,
    aggregated: bool,
    clusters: &[Candidate<'_>],
    replicas: i32,
    fresh: bool,
    ties: TieOrder,
) -> Result<Vec<TargetCluster>, ScheduleError> {
    // The current split, over the clusters still selected.
    let mut scheduled: Vec<TargetCluster> = spec
        .clusters
        .iter()
        .filter(|t| clusters.iter().any(|c| c.name == t.name))
        .cloned()
        .collect();
    let assigned: i64 = scheduled.iter().map(|t| i64::from(t.replicas)).sum();
    let (step, mut available, target) = if fresh {
        let available = clusters
            .iter()
            .map(|c| {
                let had = scheduled
                    .iter()
                    .find(|t| t.name == c.name)
                    .map_or(0, |t| t.replicas);
                target(c.name, c.allocatable.saturating_add(had))
            })
            .collect();
        scheduled.clear();
        ("failed to do fresh scale", available, replicas)
    } else if assigned > i64::from(replicas) {
        let available = std::mem::take(&mut scheduled);
        ("failed to scale down", available, replicas)
    } else if assigned < i64::from(replicas) {
        let available = clusters
            .iter()
            .map(|c| target(c.name, c.allocatable))
            .collect();
        let delta = i32::try_from(i64::from(replicas) - assigned).unwrap_or(i32::MAX);
        ("failed to scale up", available, delta)
    } else {
        return Ok(scheduled);
    };
    // Stable, as Go's sort is for the few clusters a binding has (insertion sort up to 12).
    available.sort_by(webster::by_replicas_desc_stable);
    let total: i64 = available.iter().map(|t| i64::from(t.replicas)).sum();
    if total < i64::from(target) {
        return Err(ScheduleError::Unschedulable(format!(
            "Clusters available replicas {total} are not enough to schedule."
        ))
        .context(step));
    }
    if aggregated {
        // Clusters the binding uses keep their place at the front.
        let (mut first, rest): (Vec<_>, Vec<_>) = available
            .into_iter()
            .partition(|a| scheduled.iter().any(|s| s.name == a.name && s.replicas > 0));
        first.extend(rest);
        let mut sum = 0_i64;
        let mut keep = first.len();
        for (i, a) in first.iter().enumerate() {
            sum += i64::from(a.replicas);
            if sum >= i64::from(target) {
                keep = i + 1;
                break;
            }
        }
        first.truncate(keep);
        available = first;
    }
    let weights: Vec<(&str, i64)> = available
        .iter()
        .map(|a| (a.name.as_str(), i64::from(a.replicas)))
        .collect();
    let mut out = webster::allocate(target, &weights, ties);
    // Add the new share to what each cluster already runs.
    for s in scheduled {
        match out.iter_mut().find(|o| o.name == s.name) {
            Some(o) => o.replicas += s.replicas,
            None => out.push(s),
        }
    }
    Ok(out)
}
