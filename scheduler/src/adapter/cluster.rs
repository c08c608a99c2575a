//! A Karmada `Cluster` → [`ClusterCandidate`].

use fedstate_api::karmada::Cluster;

use super::capacity::{CapacityError, MemberShape, general_estimate};
use crate::placement::{ClusterCandidate, Taint, TaintEffect};

/// The engine's view of a Cluster, with capacity from the general estimate.
pub fn candidate(c: &Cluster, shape: &MemberShape) -> Result<ClusterCandidate, CapacityError> {
    let capacity = general_estimate(
        c.status.as_ref().and_then(|s| s.resource_summary.as_ref()),
        shape,
    )?;
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
