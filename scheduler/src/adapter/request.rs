//! A `MultiCloudMongoDB` → [`PlacementRequest`].

use fedstate_api::MultiCloudMongoDB;
use fedstate_api::karmada::{ClusterAffinity, SpreadConstraint, SpreadField};
use fedstate_api::limits::MAX_MEMBERS;
use fedstate_api::placement::SchedulerMode;
use k8s_openapi::api::core::v1::Toleration as K8sToleration;

use super::capacity::{CapacityError, MemberShape};
use crate::placement::selector::{FieldMatcher, LabelMatcher, SelectorError};
use crate::placement::{
    ClusterFilter, Distribution, PlacementRequest, PrimaryRule, ReplicaSetRules, SpreadKey,
    SpreadRule, TaintEffect, Toleration,
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

/// Requests of one member pod: mongod's `spec.resource.requests` (the CRD's defaults when unset)
/// plus the exporter sidecar's `spec.export.resource.requests` when enabled, the same shape the
/// scheduler service asks the estimators about.
pub fn member_shape(obj: &MultiCloudMongoDB) -> Result<MemberShape, RequestError> {
    let spec = &obj.spec;
    let mut shape = MemberShape::from_requests("spec.resource.requests", &spec.mongod_requests())?;
    if let Some(r) = spec.exporter_requests() {
        let sidecar = MemberShape::from_requests("spec.export.resource.requests", r)?;
        for (name, v) in sidecar.requests {
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

/// Everything of the object the engine needs.
pub fn placement_request(obj: &MultiCloudMongoDB) -> Result<PlacementRequest, RequestError> {
    let spec = &obj.spec;
    let replicas = u32::try_from(spec.replicaset)
        .ok()
        .filter(|r| (1..=u32::from(MAX_MEMBERS)).contains(r))
        .ok_or(RequestError::Replicas(spec.replicaset))?;
    let sched = spec.scheduler.clone().unwrap_or_default();
    let filter = match &sched.affinity {
        Some(a) => cluster_filter("spec.scheduler.affinity", a)?,
        None => ClusterFilter::default(),
    };
    let tolerations = sched
        .tolerations
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, t)| toleration(&format!("spec.scheduler.tolerations[{i}]"), t))
        .collect::<Result<_, _>>()?;
    let primary = match &sched.primary_preference {
        Some(p) => PrimaryRule {
            names: p.cluster_names.clone(),
            labels: p
                .label_selector
                .as_ref()
                .map(|s| LabelMatcher::compile("spec.scheduler.primaryPreference.labelSelector", s))
                .transpose()?,
        },
        None => PrimaryRule::default(),
    };
    let spread = spec
        .spread_constraints
        .as_ref()
        .and_then(|s| s.spread_constraints.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| spread_rule(&format!("spec.spreadConstraints.spreadConstraints[{i}]"), c))
        .collect::<Result<_, _>>()?;
    Ok(PlacementRequest {
        uid: obj.metadata.uid.clone().unwrap_or_else(|| {
            // Offline plans of objects not yet created: namespace/name keeps ties stable.
            format!(
                "{}/{}",
                obj.metadata.namespace.as_deref().unwrap_or("default"),
                obj.metadata.name.as_deref().unwrap_or("")
            )
        }),
        replicas,
        distribution: mode(spec.scheduler_mode()),
        replica_set: Some(ReplicaSetRules {
            arbiter: spec.arbiter(),
            quorum_policy: spec.quorum_policy(),
        }),
        filter,
        tolerations,
        spread,
        primary,
        require_vip: true,
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

    fn obj(yaml: &str) -> MultiCloudMongoDB {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_member_pod_requests_mongod_plus_the_enabled_exporter() {
        let o = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a}\nspec:\n  replicaset: 3\n  resource: {requests: {cpu: '1', memory: 512Mi}}\n  export: {enable: true, resource: {requests: {cpu: 200m, memory: 256Mi}}}\n",
        );
        let s = member_shape(&o).unwrap();
        assert_eq!(s.requests["cpu"], 1200);
        assert_eq!(s.requests["memory"], 768 * 1024 * 1024 * 1000);
        let o = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a}\nspec:\n  replicaset: 3\n  export: {enable: false, resource: {requests: {cpu: '9'}}}\n",
        );
        let s = member_shape(&o).unwrap();
        assert_eq!(
            s.requests["cpu"], 500,
            "the CRD default, no disabled exporter"
        );
    }

    #[test]
    fn spec_fields_become_the_request() {
        let o = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a, namespace: db, uid: u-1}\nspec:\n  replicaset: 5\n  config: {arbiter: true}\n  scheduler:\n    schedulerMode: Weighting\n    quorumPolicy: Required\n    affinity: {clusterNames: [m1, m2], exclude: [m3]}\n    tolerations: [{key: k, operator: Exists, effect: NoSchedule}]\n    primaryPreference: {clusterNames: [m2]}\n  spreadConstraints:\n    spreadConstraints: [{spreadByField: region, minGroups: 2, maxGroups: 3}]\n",
        );
        let r = placement_request(&o).unwrap();
        assert_eq!(r.uid, "u-1");
        assert_eq!(r.replicas, 5);
        assert_eq!(r.distribution, Distribution::Weighting);
        let rs = r.replica_set.unwrap();
        assert!(rs.arbiter);
        assert_eq!(rs.quorum_policy, crate::placement::QuorumPolicy::Required);
        assert_eq!(r.filter.names, vec!["m1", "m2"]);
        assert_eq!(r.filter.exclude, vec!["m3"]);
        assert!(r.tolerations[0].exists);
        assert_eq!(r.primary.names, vec!["m2"]);
        assert_eq!(
            r.spread[0],
            SpreadRule {
                key: SpreadKey::Region,
                min_groups: 2,
                max_groups: 3
            }
        );
        let bad = obj(
            "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: a}\nspec:\n  replicaset: 3\n  spreadConstraints:\n    spreadConstraints: [{spreadByField: zone, minGroups: 4, maxGroups: 2}]\n",
        );
        let e = placement_request(&bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.spreadConstraints.spreadConstraints[0]: minGroups 4 is larger than maxGroups 2"
        );
    }
}
