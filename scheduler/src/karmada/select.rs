//! Which of the feasible clusters a binding goes to: karmada-scheduler's scoring (a cluster the
//! binding already uses scores 100, others 0), its order (overflow tier, score, available
//! replicas, name) and its spread-constraint selection (by cluster: the best `min(n, maxGroups)`
//! clusters that together have room; by region: the best regions by a depth-first search, then
//! the best cluster of each and the best of the rest up to the cluster `maxGroups`).
//!
//! Spread constraints are ignored under static weights, as in Karmada; zone and provider spread
//! only filter (clusters without the property), they do not select.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use fedstate_api::karmada::binding::ResourceBindingSpec;
use fedstate_api::karmada::{Cluster, SpreadConstraint, SpreadField};

use super::filter::cluster_matches;
use super::{ScheduleError, Strategy};

/// A feasible cluster with what ordering and division need.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    pub cluster: &'a Cluster,
    pub name: &'a str,
    /// 100 when the binding already targets this cluster, else 0.
    pub score: i64,
    /// 0 for the main affinity group, `i + 1` for its i-th overflow group.
    pub overflow_order: i32,
    /// What the estimators say still fits, plus what the binding already has here.
    pub available: i64,
    /// What the estimators say still fits.
    pub allocatable: i32,
}

/// Karmada's cluster order: overflow tier, then score, then available replicas (most first),
/// then name.
fn order(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.overflow_order
        .cmp(&b.overflow_order)
        .then(b.score.cmp(&a.score))
        .then(b.available.cmp(&a.available))
        .then_with(|| a.name.cmp(b.name))
}

/// The overflow tier of a cluster under the `clusterAffinities` group being tried.
fn overflow_order(spec: &ResourceBindingSpec, group: Option<&str>, cluster: &Cluster) -> i32 {
    let Some(placement) = spec.placement.as_ref() else {
        return 0;
    };
    if placement.cluster_affinity.is_some() {
        return 0;
    }
    let Some(terms) = placement
        .cluster_affinities
        .as_ref()
        .filter(|t| !t.is_empty())
    else {
        return 0;
    };
    let Some(term) = terms
        .iter()
        .find(|t| t.affinity_name == group.unwrap_or(""))
    else {
        return 1000;
    };
    if cluster_matches(cluster, &term.affinity) {
        return 0;
    }
    term.overflow_affinities
        .iter()
        .position(|o| cluster_matches(cluster, &o.affinity))
        .map_or(1000, |i| i32::try_from(i + 1).unwrap_or(i32::MAX))
}

/// Scores, capacities and Karmada's order for the feasible clusters.
pub fn candidates<'a>(
    spec: &ResourceBindingSpec,
    group: Option<&str>,
    feasible: &[&'a Cluster],
    allocatable: &dyn Fn(&str) -> i32,
) -> Vec<Candidate<'a>> {
    let mut out: Vec<Candidate<'a>> = feasible
        .iter()
        .map(|c| {
            let name = c.metadata.name.as_deref().unwrap_or_default();
            let assigned = spec
                .clusters
                .iter()
                .find(|t| t.name == name)
                .map_or(0, |t| t.replicas);
            let allocatable = allocatable(name);
            Candidate {
                cluster: c,
                name,
                score: if spec.clusters.iter().any(|t| t.name == name) {
                    100
                } else {
                    0
                },
                overflow_order: overflow_order(spec, group, c),
                available: i64::from(allocatable) + i64::from(assigned),
                allocatable,
            }
        })
        .collect();
    out.sort_by(order);
    out
}

/// The spread constraint on `field`, the last one when several name it (Karmada reads them
/// into a map).
fn constraint(list: &[SpreadConstraint], field: SpreadField) -> Option<&SpreadConstraint> {
    list.iter().rev().find(|c| c.spread_by_field == Some(field))
}

fn min_groups(c: Option<&SpreadConstraint>) -> i64 {
    c.and_then(|c| c.min_groups).map_or(0, i64::from)
}

fn max_groups(c: Option<&SpreadConstraint>) -> i64 {
    c.and_then(|c| c.max_groups).map_or(0, i64::from)
}

/// Static weights (a weighted division with no weight preference, or a static list and no
/// dynamic weight) ignore spread constraints.
fn ignores_spread(spec: &ResourceBindingSpec) -> bool {
    let Some(rs) = spec
        .placement
        .as_ref()
        .and_then(|p| p.replica_scheduling.as_ref())
    else {
        return false;
    };
    let weighted = rs.replica_scheduling_type.as_deref() == Some("Divided")
        && rs.replica_division_preference.as_deref() == Some("Weighted");
    weighted
        && rs.weight_preference.as_ref().is_none_or(|w| {
            !w.static_weight_list.is_empty() && w.dynamic_weight.as_deref().unwrap_or("").is_empty()
        })
}

/// Selects the clusters a binding is divided over (or duplicated to), in Karmada's order.
pub fn select<'a>(
    spec: &ResourceBindingSpec,
    strategy: &Strategy,
    sorted: Vec<Candidate<'a>>,
) -> Result<Vec<Candidate<'a>>, ScheduleError> {
    let spreads = spec
        .placement
        .as_ref()
        .map(|p| p.spread_constraints.as_slice())
        .unwrap_or_default();
    if spreads.is_empty() || ignores_spread(spec) {
        return Ok(sorted);
    }
    // Duplicated copies need no room: pick by order alone.
    let need = match strategy {
        Strategy::Duplicated => None,
        _ => Some(i64::from(spec.replicas)),
    };
    if let Some(region) = constraint(spreads, SpreadField::Region) {
        by_region(
            spec,
            strategy,
            region,
            constraint(spreads, SpreadField::Cluster),
            sorted,
        )
    } else if let Some(cluster) = constraint(spreads, SpreadField::Cluster) {
        by_cluster(cluster, sorted, need)
    } else {
        // Karmada refuses zone, provider and label spread ("just support cluster and region
        // spread constraint"); ours spreads by them (a deliberate extension).
        match spreads.first() {
            Some(first) => by_groups(first, sorted, need),
            // Not reached: no constraint returned early above.
            None => Ok(sorted),
        }
    }
}

/// The spread group of a cluster under a zone, provider or label constraint (its first zone for
/// zone spread).
fn group_of<'a>(c: &SpreadConstraint, cluster: &'a Cluster) -> Option<&'a str> {
    let value = match (c.spread_by_field, c.spread_by_label.as_deref()) {
        (Some(SpreadField::Zone), _) => cluster.spec.zones.first().map(String::as_str),
        (Some(SpreadField::Provider), _) => cluster.spec.provider.as_deref(),
        (None, Some(label)) => cluster
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(label))
            .map(String::as_str),
        _ => None,
    };
    value.filter(|v| !v.is_empty())
}

/// Zone, provider or label spread: groups are taken in the order of their best cluster, at
/// least `minGroups` and (for divided replicas) until they have room, at most `maxGroups` (0: no
/// limit); the binding goes to every cluster of the chosen groups.
fn by_groups<'a>(
    c: &SpreadConstraint,
    sorted: Vec<Candidate<'a>>,
    need: Option<i64>,
) -> Result<Vec<Candidate<'a>>, ScheduleError> {
    let mut groups: Vec<(&'a str, Vec<Candidate<'a>>)> = Vec::new();
    for cand in sorted {
        let Some(g) = group_of(c, cand.cluster) else {
            continue;
        };
        match groups.iter_mut().find(|(name, _)| *name == g) {
            Some((_, members)) => members.push(cand),
            None => groups.push((g, vec![cand])),
        }
    }
    let (min, max) = (min_groups(Some(c)).max(1), max_groups(Some(c)));
    let limit = if max > 0 { max } else { i64::MAX };
    let mut chosen: Vec<Candidate<'a>> = Vec::new();
    let mut taken = 0_i64;
    for (_, members) in groups {
        let room = chosen.iter().map(|x| x.available).sum::<i64>();
        if taken >= limit || (taken >= min && need.is_none_or(|n| room >= n)) {
            break;
        }
        chosen.extend(members);
        taken += 1;
    }
    let room = chosen.iter().map(|x| x.available).sum::<i64>();
    if taken < min || need.is_some_and(|n| room < n) {
        return Err(ScheduleError::Error(format!(
            "failed to select clusters: spread needs {min} to {max} groups with room for the replicas, {taken} found"
        )));
    }
    Ok(chosen)
}

fn by_cluster<'a>(
    c: &SpreadConstraint,
    mut sorted: Vec<Candidate<'a>>,
    need: Option<i64>,
) -> Result<Vec<Candidate<'a>>, ScheduleError> {
    let total = sorted.len() as i64;
    if total < min_groups(Some(c)) {
        return Err(ScheduleError::Error(
            "failed to select clusters: the number of feasible clusters is less than spreadConstraint.MinGroups".into(),
        ));
    }
    let count = usize::try_from(total.min(max_groups(Some(c))).max(0)).unwrap_or(0);
    let Some(need) = need else {
        sorted.truncate(count);
        return Ok(sorted);
    };
    // Start from the best `count` and swap in the roomiest remaining cluster, from the last
    // chosen backwards, until they have room for every replica.
    let has_room = |s: &[Candidate<'_>]| s.iter().map(|c| c.available).sum::<i64>() >= need;
    let mut rest = sorted.split_off(count.min(sorted.len()));
    let mut slot = sorted.len();
    while !has_room(&sorted) && slot > 0 {
        slot -= 1;
        let mut best: Option<usize> = None;
        // Not reached with slot out of range: it starts at the length and only decreases.
        let Some(current) = sorted.get_mut(slot) else {
            break;
        };
        let mut most = current.available;
        for (i, r) in rest.iter().enumerate() {
            if r.available > most {
                most = r.available;
                best = Some(i);
            }
        }
        if let Some(roomiest) = best.and_then(|i| rest.get_mut(i)) {
            std::mem::swap(current, roomiest);
        }
    }
    if has_room(&sorted) {
        Ok(sorted)
    } else {
        Err(ScheduleError::Error(format!(
            "failed to select clusters: no enough resource when selecting {count} clusters"
        )))
    }
}

/// One region (or other group) as the group search sees it.
#[derive(Clone, Debug)]
struct Group<'a> {
    name: &'a str,
    /// Clusters in the group.
    value: i64,
    /// The group's score.
    weight: i64,
}

fn by_region<'a>(
    spec: &ResourceBindingSpec,
    strategy: &Strategy,
    region: &SpreadConstraint,
    cluster: Option<&SpreadConstraint>,
    sorted: Vec<Candidate<'a>>,
) -> Result<Vec<Candidate<'a>>, ScheduleError> {
    // Regions keep Karmada's cluster order inside them.
    let mut regions: BTreeMap<&'a str, Vec<Candidate<'a>>> = BTreeMap::new();
    for c in sorted {
        if let Some(r) = c.cluster.spec.region.as_deref().filter(|r| !r.is_empty()) {
            regions.entry(r).or_default().push(c);
        }
    }
    if (regions.len() as i64) < min_groups(Some(region)) {
        return Err(ScheduleError::Error(
            "failed to select clusters: the number of feasible region is less than spreadConstraint.MinGroups".into(),
        ));
    }
    let groups: Vec<Group<'a>> = regions
        .iter()
        .map(|(name, clusters)| Group {
            name,
            value: clusters.len() as i64,
            weight: group_score(spec, strategy, clusters, min_groups(Some(region)), cluster),
        })
        .collect();
    let chosen = select_groups(
        groups,
        min_groups(Some(region)),
        max_groups(Some(region)),
        min_groups(cluster),
    );
    if chosen.is_empty() {
        return Err(ScheduleError::Error(
            "failed to select clusters: the number of clusters is less than the cluster spreadConstraint.MinGroups".into(),
        ));
    }
    let mut selected = Vec::new();
    let mut rest = Vec::new();
    for name in chosen {
        let mut it = regions.remove(name).unwrap_or_default().into_iter();
        selected.extend(it.next());
        rest.extend(it);
    }
    let want = (selected.len() + rest.len()) as i64;
    let want = want.min(max_groups(cluster));
    let more = usize::try_from(want - selected.len() as i64).unwrap_or(0);
    if more > 0 {
        rest.sort_by(order);
        selected.extend(rest.into_iter().take(more));
    }
    Ok(selected)
}

const WEIGHT_UNIT: i64 = 1000;

/// Karmada's group score: how many replicas the group can take toward its share (scaled by
/// 1000), plus the average cluster score.
fn group_score(
    spec: &ResourceBindingSpec,
    strategy: &Strategy,
    clusters: &[Candidate<'_>],
    min_groups: i64,
    cluster_constraint: Option<&SpreadConstraint>,
) -> i64 {
    if *strategy == Strategy::Duplicated {
        let target = i64::from(spec.replicas);
        let valid: Vec<&Candidate<'_>> =
            clusters.iter().filter(|c| c.available >= target).collect();
        if valid.is_empty() {
            return 0;
        }
        let n = valid.len() as i64;
        return n * WEIGHT_UNIT + valid.iter().map(|c| c.score).sum::<i64>() / n;
    }
    let target = if min_groups > 0 {
        (i64::from(spec.replicas) + min_groups - 1) / min_groups
    } else {
        // Karmada divides by a zero minGroups in float: the target is "infinite".
        i64::MAX / WEIGHT_UNIT
    };
    let cluster_min = min_groups.max(
        cluster_constraint
            .and_then(|c| c.min_groups)
            .map_or(0, i64::from),
    );
    let (mut sum_available, mut sum_score, mut valid) = (0_i64, 0_i64, 0_i64);
    for c in clusters {
        sum_available += c.available;
        sum_score += c.score;
        valid += 1;
        if valid >= cluster_min && sum_available >= target {
            break;
        }
    }
    if sum_available < target {
        return sum_available * WEIGHT_UNIT + sum_score / clusters.len().max(1) as i64;
    }
    target * WEIGHT_UNIT + sum_score / valid.max(1)
}

/// Karmada's group search: every combination of at least `min` and at most `max` groups whose
/// clusters add up to `target`, in its depth-first order; the heaviest wins, then the one with
/// more clusters, then the first found; the winner is then replaced by any shorter path that is
/// a prefix of it.
fn select_groups<'a>(mut groups: Vec<Group<'a>>, min: i64, max: i64, target: i64) -> Vec<&'a str> {
    if groups.is_empty() {
        return Vec::new();
    }
    groups.sort_by(|a, b| {
        a.value
            .cmp(&b.value)
            .then(b.weight.cmp(&a.weight))
            .then_with(|| a.name.cmp(b.name))
    });
    #[derive(Clone)]
    struct Path<'a> {
        id: usize,
        groups: Vec<Group<'a>>,
        weight: i64,
        value: i64,
    }
    fn dfs<'a>(
        groups: &[Group<'a>],
        path: &mut Vec<Group<'a>>,
        sum: i64,
        begin: usize,
        bounds: (i64, i64, i64),
        found: &mut Vec<Path<'a>>,
    ) {
        let (min, max, target) = bounds;
        let len = path.len() as i64;
        if sum >= target && len >= min && len <= max {
            let mut g = path.clone();
            g.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.name.cmp(b.name)));
            found.push(Path {
                id: found.len(),
                weight: g.iter().map(|x| x.weight).sum(),
                value: g.iter().map(|x| x.value).sum(),
                groups: g,
            });
            return;
        }
        if len >= max {
            return;
        }
        for (i, group) in groups.iter().enumerate().skip(begin) {
            path.push(group.clone());
            dfs(groups, path, sum + group.value, i + 1, bounds, found);
            if groups.len() as i64 == min {
                break;
            }
            path.pop();
        }
    }
    let mut found = Vec::new();
    dfs(
        &groups,
        &mut Vec::new(),
        0,
        0,
        (min, max, target),
        &mut found,
    );
    if found.is_empty() {
        return Vec::new();
    }
    found.sort_by(|a, b| {
        b.weight
            .cmp(&a.weight)
            .then(b.value.cmp(&a.value))
            .then(a.id.cmp(&b.id))
    });
    let Some((first, others)) = found.split_first() else {
        return Vec::new();
    };
    let (mut best, mut long) = (0, first);
    for (i, short) in others.iter().enumerate() {
        let prefix = short.groups.len() < long.groups.len()
            && short
                .groups
                .iter()
                .zip(&long.groups)
                .all(|(s, l)| s.name == l.name);
        if prefix {
            (best, long) = (i + 1, short);
        }
    }
    found
        .swap_remove(best)
        .groups
        .into_iter()
        .map(|g| g.name)
        .collect()
}
