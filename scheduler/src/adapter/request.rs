//! The shared placement vocabulary (`fedstate_api::placement`) → the engine's request parts,
//! for any federated kind: cluster filter, tolerations, primary rule, spread rules, mode, the
//! object UID, and one member's requests. Errors name the field.

use fedstate_api::karmada::{ClusterAffinity, SpreadConstraint, SpreadField};
use fedstate_api::limits::MAX_MEMBERS;
use fedstate_api::placement::{SchedulerMode, SchedulerSetting, SpreadConstraints};
use k8s_openapi::api::core::v1::Toleration as K8sToleration;
use kube::api::ObjectMeta;

use super::capacity::{CapacityError, MemberShape};
use super::schedulable::Schedulable;
use crate::placement::selector::{FieldMatcher, LabelMatcher, SelectorError};
use crate::placement::{
    ClusterFilter, Distribution, PrimaryRule, SpreadKey, SpreadRule, TaintEffect, Toleration,
};

/// A spec field the engine cannot use.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("spec.replicaset is {0}; it must be between 1 and {MAX_MEMBERS}")]
    Replicas(i32),
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Quantity(#[from] CapacityError),
    #[error("{field}: {problem}")]
    Field { field: String, problem: String },
}

/// One member pod's requests, summed over its containers (`Schedulable::member`), the shape the
/// offline general estimate divides by.
pub fn member_shape<K: Schedulable>(obj: &K) -> Result<MemberShape, RequestError> {
    let mut shape = MemberShape::default();
    for (field, requests) in obj.member().requests {
        for (name, v) in MemberShape::from_requests(field, &requests)?.requests {
            *shape.requests.entry(name).or_insert(0) += v;
        }
    }
    Ok(shape)
}

pub fn mode(m: SchedulerMode) -> Distribution {
    match m {
        SchedulerMode::Uniform => Distribution::Uniform,
        SchedulerMode::Weighting => Distribution::Weighting,
        SchedulerMode::Aggregated => Distribution::Aggregated,
    }
}

/// The object UID the tie-breaks hash; `namespace/name` for offline plans of objects not
/// created yet, which keeps their ties stable.
pub fn object_uid(meta: &ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_else(|| {
        format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("")
        )
    })
}

/// Which clusters, and which of them for the primary, from the shared vocabulary.
#[derive(Debug, Default)]
pub struct PlacementRules {
    pub filter: ClusterFilter,
    pub tolerations: Vec<Toleration>,
    pub spread: Vec<SpreadRule>,
    pub primary: PrimaryRule,
}

/// The engine's rules from a kind's `SchedulerSetting` (at `scheduler_field`, e.g.
/// `spec.scheduler`) and `SpreadConstraints` (at `spread_field`, e.g. `spec.spreadConstraints`).
pub fn placement_rules(
    scheduler: Option<&SchedulerSetting>,
    scheduler_field: &str,
    spread: Option<&SpreadConstraints>,
    spread_field: &str,
) -> Result<PlacementRules, RequestError> {
    let sched = scheduler.cloned().unwrap_or_default();
    let filter = match &sched.affinity {
        Some(a) => cluster_filter(&format!("{scheduler_field}.affinity"), a)?,
        None => ClusterFilter::default(),
    };
    let tolerations = sched
        .tolerations
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| toleration(&format!("{scheduler_field}.tolerations[{i}]"), t))
        .collect::<Result<_, _>>()?;
    let primary = match &sched.primary_preference {
        Some(p) => PrimaryRule {
            names: p.cluster_names.clone(),
            labels: p
                .label_selector
                .as_ref()
                .map(|s| {
                    LabelMatcher::compile(
                        &format!("{scheduler_field}.primaryPreference.labelSelector"),
                        s,
                    )
                })
                .transpose()?,
        },
        None => PrimaryRule::default(),
    };
    let spread = spread
        .and_then(|s| s.spread_constraints.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| spread_rule(&format!("{spread_field}.spreadConstraints[{i}]"), c))
        .collect::<Result<_, _>>()?;
    Ok(PlacementRules {
        filter,
        tolerations,
        spread,
        primary,
    })
}

/// Karmada `ClusterAffinity` → the engine's filter.
pub fn cluster_filter(field: &str, a: &ClusterAffinity) -> Result<ClusterFilter, RequestError> {
    Ok(ClusterFilter {
        names: a.cluster_names.clone(),
        exclude: a.exclude.clone(),
        labels: a
            .label_selector
            .as_ref()
            .map(|s| LabelMatcher::compile(&format!("{field}.labelSelector"), s))
            .transpose()?,
        fields: a
            .field_selector
            .as_ref()
            .map(|s| FieldMatcher::compile(&format!("{field}.fieldSelector"), s))
            .transpose()?,
    })
}

/// A Kubernetes toleration → the engine's.
pub fn toleration(field: &str, t: &K8sToleration) -> Result<Toleration, RequestError> {
    let exists = match t.operator.as_deref() {
        None | Some("Equal") => false,
        Some("Exists") => true,
        Some(other) => {
            return Err(RequestError::Field {
                field: format!("{field}.operator"),
                problem: format!("unknown operator {other:?} (use Equal or Exists)"),
            });
        }
    };
    let effect = match t.effect.as_deref() {
        None | Some("") => None,
        Some(e) => Some(TaintEffect::parse(e).ok_or_else(|| RequestError::Field {
            field: format!("{field}.effect"),
            problem: format!(
                "unknown effect {e:?} (use NoSchedule, PreferNoSchedule or NoExecute)"
            ),
        })?),
    };
    Ok(Toleration {
        key: t.key.clone().unwrap_or_default(),
        exists,
        value: t.value.clone().unwrap_or_default(),
        effect,
    })
}

/// A Karmada `SpreadConstraint` → the engine's rule.
pub fn spread_rule(field: &str, c: &SpreadConstraint) -> Result<SpreadRule, RequestError> {
    let key = match (&c.spread_by_field, &c.spread_by_label) {
        (Some(f), None) => match f {
            SpreadField::Cluster => SpreadKey::Cluster,
            SpreadField::Region => SpreadKey::Region,
            SpreadField::Zone => SpreadKey::Zone,
            SpreadField::Provider => SpreadKey::Provider,
        },
        (None, Some(l)) => SpreadKey::Label(l.clone()),
        _ => {
            return Err(RequestError::Field {
                field: field.to_owned(),
                problem: "set exactly one of spreadByField and spreadByLabel".into(),
            });
        }
    };
    let groups = |name: &str, v: Option<i32>| -> Result<u32, RequestError> {
        u32::try_from(v.unwrap_or(0)).map_err(|_| RequestError::Field {
            field: format!("{field}.{name}"),
            problem: "must be 0 or more".into(),
        })
    };
    let rule = SpreadRule {
        key,
        min_groups: groups("minGroups", c.min_groups)?,
        max_groups: groups("maxGroups", c.max_groups)?,
    };
    if rule.max_groups > 0 && rule.min_groups > rule.max_groups {
        return Err(RequestError::Field {
            field: field.to_owned(),
            problem: format!(
                "minGroups {} is larger than maxGroups {}",
                rule.min_groups, rule.max_groups
            ),
        });
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rules_name_the_kinds_own_fields() {
        let setting: SchedulerSetting = serde_json::from_value(serde_json::json!({
            "tolerations": [{"key": "k", "operator": "Sometimes"}]
        }))
        .unwrap();
        let e = placement_rules(Some(&setting), "spec.placement", None, "spec.spread").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.placement.tolerations[0].operator: unknown operator \"Sometimes\" (use Equal or Exists)"
        );
        let r = placement_rules(None, "spec.scheduler", None, "spec.spreadConstraints").unwrap();
        assert!(r.filter.names.is_empty() && r.tolerations.is_empty() && r.spread.is_empty());
    }
}
