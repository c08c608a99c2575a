//! The general capacity estimate (`docs/karmada.md#the-general-estimate`): how many members of one
//! shape fit in a cluster, from `status.resourceSummary`: `min over requested resources of
//! (allocatable − allocated − allocating) / request`, also bounded by `pods`; 0 when the summary is
//! missing.

use std::collections::BTreeMap;

use fedstate_api::karmada::ResourceSummary;
use fedstate_api::quantity::{QuantityError, parse_quantity};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// A quantity in a summary or a request that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {source}")]
pub struct CapacityError {
    /// e.g. `status.resourceSummary.allocatable.cpu`.
    pub field: String,
    #[source]
    pub source: QuantityError,
}

/// One member's resource requests, in milli-units per resource name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberShape {
    pub requests: BTreeMap<String, i128>,
}

impl MemberShape {
    /// `field` prefixes error messages, e.g. `spec.resource.requests`.
    pub fn from_requests(
        field: &str,
        requests: &BTreeMap<String, Quantity>,
    ) -> Result<Self, CapacityError> {
        let mut out = BTreeMap::new();
        for (name, q) in requests {
            let v = parse_quantity(q).map_err(|source| CapacityError {
                field: format!("{field}.{name}"),
                source,
            })?;
            out.insert(name.clone(), v);
        }
        Ok(Self { requests: out })
    }
}

/// Members of `shape` the summary has room for (saturated to `u32`).
pub fn general_estimate(
    summary: Option<&ResourceSummary>,
    shape: &MemberShape,
) -> Result<u32, CapacityError> {
    let Some(s) = summary else { return Ok(0) };
    let free = |name: &str| -> Result<Option<i128>, CapacityError> {
        let get = |map: &BTreeMap<String, Quantity>, part: &str| {
            map.get(name)
                .map(|q| {
                    parse_quantity(q).map_err(|source| CapacityError {
                        field: format!("status.resourceSummary.{part}.{name}"),
                        source,
                    })
                })
                .transpose()
        };
        let Some(alloc) = get(&s.allocatable, "allocatable")? else {
            return Ok(None);
        };
        let used = get(&s.allocated, "allocated")?.unwrap_or(0)
            + get(&s.allocating, "allocating")?.unwrap_or(0);
        Ok(Some((alloc - used).max(0)))
    };
    // Every member is one pod, and a summary that reports no pods has room for none (Karmada's
    // general estimator, `getAllowedPodNumber`; the estimator client's copy agrees).
    let pods = free("pods")?.unwrap_or(0);
    let mut best = i128::from(u32::MAX).min(pods / 1000);
    for (name, request) in &shape.requests {
        if *request <= 0 {
            continue;
        }
        // A requested resource the cluster does not report at all: no room (what Karmada does).
        let available = free(name)?.unwrap_or(0);
        best = best.min(available / request);
    }
    Ok(u32::try_from(best.max(0)).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn q(m: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        m.iter()
            .map(|(k, v)| ((*k).into(), Quantity((*v).into())))
            .collect()
    }

    fn shape() -> MemberShape {
        MemberShape::from_requests(
            "spec.resource.requests",
            &q(&[("cpu", "1"), ("memory", "512Mi")]),
        )
        .unwrap()
    }

    #[test]
    fn the_scarcest_resource_decides() {
        let s = ResourceSummary {
            allocatable: q(&[("cpu", "8"), ("memory", "16Gi"), ("pods", "110")]),
            allocated: q(&[("cpu", "2500m"), ("memory", "2Gi"), ("pods", "20")]),
            allocating: q(&[("cpu", "500m")]),
        };
        // cpu: (8 − 2.5 − 0.5) / 1 = 5; memory: 14Gi / 512Mi = 28; pods: 90.
        assert_eq!(general_estimate(Some(&s), &shape()).unwrap(), 5);
    }

    #[test]
    fn pods_bound_and_missing_data_mean_no_room() {
        let s = ResourceSummary {
            allocatable: q(&[("cpu", "64"), ("memory", "256Gi"), ("pods", "3")]),
            allocated: q(&[("pods", "1")]),
            ..Default::default()
        };
        assert_eq!(general_estimate(Some(&s), &shape()).unwrap(), 2);
        assert_eq!(general_estimate(None, &shape()).unwrap(), 0);
        let no_memory = ResourceSummary {
            allocatable: q(&[("cpu", "64")]),
            ..Default::default()
        };
        assert_eq!(general_estimate(Some(&no_memory), &shape()).unwrap(), 0);
        // Over-committed clusters have no room, not negative room.
        let over = ResourceSummary {
            allocatable: q(&[("cpu", "1"), ("memory", "1Gi")]),
            allocated: q(&[("cpu", "2")]),
            ..Default::default()
        };
        assert_eq!(general_estimate(Some(&over), &shape()).unwrap(), 0);
        // No pods reported: no room, as in Karmada (found by the estimator fuzz target, which
        // compares this copy of the formula with the estimator client's; this said u32::MAX).
        let no_pods = ResourceSummary {
            allocatable: q(&[("cpu", "64"), ("memory", "256Gi")]),
            ..Default::default()
        };
        assert_eq!(general_estimate(Some(&no_pods), &shape()).unwrap(), 0);
        assert_eq!(
            general_estimate(Some(&ResourceSummary::default()), &MemberShape::default()).unwrap(),
            0
        );
    }

    #[test]
    fn a_bad_quantity_names_its_field() {
        let s = ResourceSummary {
            allocatable: q(&[("cpu", "lots")]),
            ..Default::default()
        };
        let e = general_estimate(Some(&s), &shape()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("status.resourceSummary.allocatable.cpu: "),
            "{e}"
        );
    }
}
