//! A Karmada `Cluster` → [`ClusterCandidate`].

use fedstate_api::karmada::Cluster;

use super::capacity::{CapacityError, MemberShape, general_estimate};
use crate::placement::{ClusterCandidate, Taint, TaintEffect};

/// The engine's view of a Cluster offline, with the bounds the scheduler's own chain applies
/// without estimators: the general estimate from the resource summary, and at most one data
/// member of the set per ready node (`nodeSummary.readyNum`), `hosted` of them already there.
pub fn candidate(
    c: &Cluster,
    shape: &MemberShape,
    hosted: u32,
) -> Result<ClusterCandidate, CapacityError> {
    let status = c.status.as_ref();
    let resources = general_estimate(status.and_then(|s| s.resource_summary.as_ref()), shape)?;
    let nodes = status
        .and_then(|s| s.node_summary.as_ref())
        .map(|n| n.ready_num.max(0).unsigned_abs().saturating_sub(hosted));
    let capacity = nodes.map_or(resources, |n| n.min(resources));
    Ok(candidate_with_capacity(c, capacity))
}

/// The engine's view of a Cluster, with capacity from elsewhere (the estimator chain).
pub fn candidate_with_capacity(c: &Cluster, capacity: u32) -> ClusterCandidate {
    let taints = c
        .spec
        .taints
        .iter()
        .filter_map(|t| {
            Some(Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: TaintEffect::parse(&t.effect)?,
            })
        })
        .collect();
    ClusterCandidate {
        name: c.metadata.name.clone().unwrap_or_default(),
        labels: c.metadata.labels.clone().unwrap_or_default(),
        provider: c.spec.provider.clone(),
        region: c.spec.region.clone(),
        zone: c
            .spec
            .zones
            .first()
            .cloned()
            .or_else(|| c.spec.zone.clone()),
        taints,
        ready: c.is_ready(),
        has_vip: c.vip().is_some(),
        capacity,
    }
}
