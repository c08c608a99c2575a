//! Karmada-native scheduling (`docs/karmada.md#scheduling-resourcebindings`): `ResourceBinding`s
//! whose policy names our scheduler are placed by the same engine and written the way
//! karmada-scheduler writes them — one merge patch of `spec.clusters` with the `applied-placement`
//! annotation, one of the status — and nothing at all when the placement in force is still right.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::{
    APPLIED_PLACEMENT_ANNOTATION, BindingPlacement, ResourceBinding,
};
use fedstate_api::karmada::binding_status::TargetCluster;
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use super::metrics::{self, AttemptResult};
use super::{Context, Error};
use crate::adapter::{RequestError, cluster_filter, spread_rule, toleration};
use crate::placement::{
    self, ClusterCandidate, ClusterFilter, Distribution, PlacementPlan, PlacementRequest,
    PreviousPlacement,
};

/// How the policy asks replicas to be divided, in the engine's words.
pub fn distribution(placement: Option<&BindingPlacement>) -> Distribution {
    let Some(rs) = placement.and_then(|p| p.replica_scheduling.as_ref()) else {
        return Distribution::Duplicated;
    };
    match (
        rs.replica_scheduling_type.as_deref(),
        rs.replica_division_preference.as_deref(),
    ) {
        (Some("Divided"), Some("Aggregated")) => Distribution::Aggregated,
        (Some("Divided"), _) => match rs.weight_preference.as_ref() {
            Some(w) if w.dynamic_weight.as_deref() == Some("AvailableReplicas") => {
                Distribution::Weighting
            }
            // Static weights; no weight preference at all means every cluster weighs 1.
            _ => Distribution::StaticWeighted,
        },
        _ => Distribution::Duplicated,
    }
}

/// The engine's request for a binding. Bindings of kinds without replicas (`spec.replicas: 0`)
/// are placed as one replica and written with 0, as Karmada does.
pub fn binding_request(rb: &ResourceBinding) -> Result<PlacementRequest, RequestError> {
    let placement = rb.spec.placement.clone().unwrap_or_default();
    let filter = match &placement.cluster_affinity {
        Some(a) => cluster_filter("spec.placement.clusterAffinity", a)?,
        None => ClusterFilter::default(),
    };
    let tolerations = placement
        .cluster_tolerations
        .iter()
        .enumerate()
        .map(|(i, t)| toleration(&format!("spec.placement.clusterTolerations[{i}]"), t))
        .collect::<Result<_, _>>()?;
    let spread = placement
        .spread_constraints
        .iter()
        .enumerate()
        .map(|(i, c)| spread_rule(&format!("spec.placement.spreadConstraints[{i}]"), c))
        .collect::<Result<_, _>>()?;
    Ok(PlacementRequest {
        uid: rb
            .spec
            .resource
            .uid
            .clone()
            .or_else(|| rb.metadata.uid.clone())
            .unwrap_or_else(|| rb.name_any()),
        replicas: u32::try_from(rb.spec.replicas).unwrap_or(0).max(1),
        distribution: distribution(Some(&placement)),
        replica_set: None,
        filter,
        tolerations,
        spread,
        primary: Default::default(),
        require_vip: false,
    })
}

/// Static weight of each cluster under the policy's `staticWeightList` (first matching entry;
/// 1 for every cluster when the list is empty, 0 for clusters no entry names).
pub fn static_weights(
    rb: &ResourceBinding,
    clusters: &[ClusterCandidate],
) -> Result<Vec<u32>, RequestError> {
    let list = rb
        .spec
        .placement
        .as_ref()
        .and_then(|p| p.replica_scheduling.as_ref())
        .and_then(|r| r.weight_preference.as_ref())
        .map(|w| w.static_weight_list.clone())
        .unwrap_or_default();
    if list.is_empty() {
        return Ok(vec![1; clusters.len()]);
    }
    let filters = list
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let field = format!("spec.placement.replicaScheduling.weightPreference.staticWeightList[{i}].targetCluster");
            Ok((cluster_filter(&field, &w.target_cluster)?, u32::try_from(w.weight).unwrap_or(0)))
        })
        .collect::<Result<Vec<_>, RequestError>>()?;
    Ok(clusters
        .iter()
        .map(|c| {
            filters
                .iter()
                .find(|(f, _)| matches(f, c))
                .map_or(0, |(_, w)| *w)
        })
        .collect())
}

fn matches(f: &ClusterFilter, c: &ClusterCandidate) -> bool {
    (f.names.is_empty() || f.names.contains(&c.name))
        && !f.exclude.contains(&c.name)
        && f.labels.as_ref().is_none_or(|l| l.matches(&c.labels))
        && f.fields.as_ref().is_none_or(|m| {
            m.matches(
                c.provider.as_deref(),
                c.region.as_deref(),
                c.zone.as_deref(),
            )
        })
}

/// Why the binding must be (re)scheduled now, or `None` when the result in force stands.
pub fn schedule_reason(
    rb: &ResourceBinding,
    clusters: &HashMap<String, Arc<Cluster>>,
) -> Option<&'static str> {
    let status = rb.status.clone().unwrap_or_default();
    if rb.spec.clusters.is_empty() {
        return Some("Unscheduled");
    }
    if status.scheduler_observed_generation != rb.metadata.generation {
        return Some("SpecChanged");
    }
    let applied = rb
        .annotations()
        .get(APPLIED_PLACEMENT_ANNOTATION)
        .and_then(|a| serde_json::from_str::<BindingPlacement>(a).ok());
    if applied.as_ref() != Some(&rb.spec.placement.clone().unwrap_or_default()) {
        return Some("PlacementChanged");
    }
    if let (Some(trigger), Some(last)) = (
        &rb.spec.reschedule_triggered_at,
        &status.last_scheduled_time,
    ) && trigger.0 > last.0
    {
        return Some("RescheduleTriggered");
    }
    let divided = distribution(rb.spec.placement.as_ref()) != Distribution::Duplicated;
    if divided
        && rb
            .spec
            .clusters
            .iter()
            .map(|c| i64::from(c.replicas))
            .sum::<i64>()
            != i64::from(rb.spec.replicas)
    {
        return Some("ReplicasChanged");
    }
    let lost = rb
        .spec
        .clusters
        .iter()
        .any(|t| match clusters.get(&t.name) {
            None => true,
            Some(c) => c.metadata.deletion_timestamp.is_some() || !c.is_ready(),
        });
    lost.then_some("ClusterLost")
}

/// `spec.clusters` for a plan: every chosen cluster with its replicas (all of them for
/// Duplicated; 0 for kinds without replicas), sorted by name.
pub fn target_clusters(rb: &ResourceBinding, plan: &PlacementPlan) -> Vec<TargetCluster> {
    let mut out: Vec<TargetCluster> = plan
        .clusters
        .iter()
        .filter(|c| c.data > 0)
        .map(|c| TargetCluster {
            name: c.cluster.clone(),
            replicas: if rb.spec.replicas == 0 {
                0
            } else {
                i32::try_from(c.data).unwrap_or(i32::MAX)
            },
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The two writes of a decision; `spec` is `None` when the clusters and the applied placement
/// are already right (only the status moves, e.g. a new generation with the same result).
#[derive(Debug, PartialEq)]
pub struct BindingWrites {
    pub spec: Option<Value>,
    pub status: Value,
}

pub fn scheduled_writes(
    rb: &ResourceBinding,
    targets: &[TargetCluster],
    now: Timestamp,
) -> BindingWrites {
    let placement = serde_json::to_string(&rb.spec.placement.clone().unwrap_or_default())
        .expect("placement serializes");
    let unchanged = rb.spec.clusters == targets
        && rb.annotations().get(APPLIED_PLACEMENT_ANNOTATION) == Some(&placement);
    let spec = (!unchanged).then(|| {
        json!({
            "metadata": {"annotations": {APPLIED_PLACEMENT_ANNOTATION: placement}},
            "spec": {"clusters": targets},
        })
    });
    let message = targets
        .iter()
        .map(|t| format!("{}:{}", t.name, t.replicas))
        .collect::<Vec<_>>()
        .join(",");
    BindingWrites {
        spec,
        status: status_patch(
            rb,
            "True",
            "Success",
            &format!("Binding has been scheduled successfully: {message}"),
            now,
        ),
    }
}

/// Status with our `Scheduled` condition merged into the others (which other controllers own).
pub fn status_patch(
    rb: &ResourceBinding,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Value {
    let existing = rb
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conditions: Vec<Value> = Vec::with_capacity(existing.len() + 1);
    let mut transition = now.to_string();
    for c in &existing {
        if c.type_ == "Scheduled" {
            if c.status == status {
                transition = c.last_transition_time.0.to_string();
            }
        } else {
            conditions.push(serde_json::to_value(c).expect("condition serializes"));
        }
    }
    conditions.push(json!({"type": "Scheduled", "status": status, "reason": reason, "message": message, "lastTransitionTime": transition}));
    let mut out = json!({"status": {"conditions": conditions, "schedulerObservedGeneration": rb.metadata.generation}});
    if status == "True" {
        out["status"]["lastScheduledTime"] = json!(now.to_string());
    }
    out
}

pub async fn reconcile(rb: Arc<ResourceBinding>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !rb.is_for_scheduler(&ctx.scheduler_name) {
        return Ok(Action::await_change());
    }
    let clusters = ctx.clusters.state();
    let by_name: HashMap<String, Arc<Cluster>> =
        clusters.iter().map(|c| (c.name_any(), c.clone())).collect();
    let Some(reason) = schedule_reason(&rb, &by_name) else {
        return Ok(Action::await_change());
    };
    let _in_flight = metrics::InFlight::start("resourcebinding");
    let started = Instant::now();
    metrics::counter_incoming(reason);
    let ns = rb.namespace().unwrap_or_default();
    let name = rb.name_any();
    let key = format!("rb/{ns}/{name}");
    let api: Api<ResourceBinding> = Api::namespaced(ctx.client.clone(), &ns);
    let outcome = async {
        let request = binding_request(&rb).map_err(|e| ("SchedulerError", e.to_string()))?;
        let shape = super::capacity::binding_shape(&rb);
        let hosted: HashMap<&str, u32> = rb
            .spec
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), u32::try_from(c.replicas).unwrap_or(0)))
            .collect();
        let estimate_started = Instant::now();
        let mut candidates = super::capacity::candidates(
            &ctx.estimator,
            &clusters,
            &shape,
            &key,
            &hosted,
            super::capacity::Workload::Replicas,
        )
        .await;
        metrics::step("estimate", estimate_started);
        if request.distribution == Distribution::StaticWeighted {
            let weights =
                static_weights(&rb, &candidates).map_err(|e| ("SchedulerError", e.to_string()))?;
            candidates
                .iter_mut()
                .zip(weights)
                .for_each(|(c, w)| c.static_weight = w);
        }
        let previous = PreviousPlacement {
            members: rb
                .spec
                .clusters
                .iter()
                .map(|c| (c.name.clone(), u32::try_from(c.replicas).unwrap_or(0)))
                .collect(),
            arbiter: None,
        };
        let place_started = Instant::now();
        let plan = placement::place(&request, &candidates, Some(&previous));
        metrics::step("place", place_started);
        let plan = plan.map_err(|e| {
            (
                if matches!(e, placement::PlacementError::NoEligibleCluster { .. }) {
                    "NoClusterFit"
                } else {
                    "Unschedulable"
                },
                e.to_string(),
            )
        })?;
        Ok::<_, (&'static str, String)>((plan, shape))
    }
    .await;
    let now = Timestamp::now();
    let (writes, result) = match outcome {
        Ok((plan, shape)) => {
            let targets = target_clusters(&rb, &plan);
            for t in &targets {
                let before = hosted_replicas(&rb, &t.name);
                if t.replicas > before {
                    ctx.estimator.assume(
                        &key,
                        &t.name,
                        &shape,
                        (t.replicas - before).unsigned_abs(),
                    );
                }
            }
            (
                scheduled_writes(&rb, &targets, now),
                AttemptResult::Scheduled,
            )
        }
        Err((why, message)) => (
            BindingWrites {
                spec: None,
                status: status_patch(&rb, "False", why, &message, now),
            },
            AttemptResult::Unschedulable,
        ),
    };
    let write = async {
        let mut status = writes.status.clone();
        if let Some(spec) = &writes.spec {
            let patched = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(spec))
                .await?;
            metrics::write("ResourceBinding", "patch");
            // Writing spec.clusters bumps the generation: observe the one we wrote, or our own
            // write looks like a spec change and costs another decision and status write.
            if patched.metadata.generation.is_some() {
                status["status"]["schedulerObservedGeneration"] =
                    json!(patched.metadata.generation);
            }
        }
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        metrics::write("ResourceBinding", "patch-status");
        Ok::<_, kube::Error>(())
    }
    .await;
    let attempt = if write.is_err() {
        AttemptResult::Error
    } else {
        result
    };
    metrics::attempt("ResourceBinding", attempt, started);
    write.map_err(|source| Error::Write {
        what: "binding",
        object: format!("{ns}/{name}"),
        source,
    })?;
    Ok(match result {
        AttemptResult::Unschedulable => Action::requeue(super::mcm::RETRY_UNSCHEDULABLE),
        _ => Action::await_change(),
    })
}

fn hosted_replicas(rb: &ResourceBinding, cluster: &str) -> i32 {
    rb.spec
        .clusters
        .iter()
        .find(|c| c.name == cluster)
        .map_or(0, |c| c.replicas)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeMap;

    fn rb(yaml: &str) -> ResourceBinding {
        serde_yaml::from_str(yaml).unwrap()
    }

    const BASE: &str = r#"
apiVersion: work.karmada.io/v1alpha2
kind: ResourceBinding
metadata: {name: web-deployment, namespace: default, generation: 1, uid: rb-1, labels: {propagationpolicy.karmada.io/permanent-id: x}}
spec:
  resource: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web, uid: d-1}
  replicas: 6
  schedulerName: multicloud-middleware-scheduler
  placement:
    clusterAffinity: {clusterNames: [m1, m2, m3]}
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {dynamicWeight: AvailableReplicas}}
"#;

    fn cand(name: &str, capacity: u32) -> ClusterCandidate {
        ClusterCandidate {
            name: name.into(),
            ready: true,
            capacity,
            ..Default::default()
        }
    }

    #[test]
    fn policy_strategies_map_to_engine_modes() {
        let mut b = rb(BASE);
        assert_eq!(
            distribution(b.spec.placement.as_ref()),
            Distribution::Weighting
        );
        let rs = b
            .spec
            .placement
            .as_mut()
            .unwrap()
            .replica_scheduling
            .as_mut()
            .unwrap();
        rs.replica_division_preference = Some("Aggregated".into());
        assert_eq!(
            distribution(b.spec.placement.as_ref()),
            Distribution::Aggregated
        );
        let rs = b
            .spec
            .placement
            .as_mut()
            .unwrap()
            .replica_scheduling
            .as_mut()
            .unwrap();
        rs.replica_division_preference = Some("Weighted".into());
        rs.weight_preference = None;
        assert_eq!(
            distribution(b.spec.placement.as_ref()),
            Distribution::StaticWeighted
        );
        b.spec.placement.as_mut().unwrap().replica_scheduling = None;
        assert_eq!(
            distribution(b.spec.placement.as_ref()),
            Distribution::Duplicated
        );
    }

    #[test]
    fn dynamic_weighting_splits_by_available_replicas() {
        let b = rb(BASE);
        let req = binding_request(&b).unwrap();
        let plan = placement::place(
            &req,
            &[
                cand("m1", 30),
                cand("m2", 20),
                cand("m3", 10),
                cand("m4", 100),
            ],
            None,
        )
        .unwrap();
        let t = target_clusters(&b, &plan);
        assert_eq!(
            t,
            vec![
                TargetCluster {
                    name: "m1".into(),
                    replicas: 3
                },
                TargetCluster {
                    name: "m2".into(),
                    replicas: 2
                },
                TargetCluster {
                    name: "m3".into(),
                    replicas: 1
                },
            ]
        );
    }

    #[test]
    fn static_weights_follow_the_list() {
        let b = rb(&BASE.replace(
            "weightPreference: {dynamicWeight: AvailableReplicas}",
            "weightPreference: {staticWeightList: [{targetCluster: {clusterNames: [m1]}, weight: 2}, {targetCluster: {clusterNames: [m2]}, weight: 1}]}",
        ));
        let mut cands = vec![cand("m1", 100), cand("m2", 100), cand("m3", 100)];
        let w = static_weights(&b, &cands).unwrap();
        assert_eq!(w, vec![2, 1, 0]);
        cands
            .iter_mut()
            .zip(w)
            .for_each(|(c, w)| c.static_weight = w);
        let plan = placement::place(&binding_request(&b).unwrap(), &cands, None).unwrap();
        let t = target_clusters(&b, &plan);
        assert_eq!(
            t,
            vec![
                TargetCluster {
                    name: "m1".into(),
                    replicas: 4
                },
                TargetCluster {
                    name: "m2".into(),
                    replicas: 2
                }
            ]
        );
    }

    #[test]
    fn duplicated_gives_every_cluster_all_replicas() {
        let b = rb(&BASE.replace(
            "replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {dynamicWeight: AvailableReplicas}}",
            "replicaScheduling: {replicaSchedulingType: Duplicated}",
        ));
        let plan = placement::place(
            &binding_request(&b).unwrap(),
            &[cand("m1", 10), cand("m2", 10), cand("m5", 10)],
            None,
        )
        .unwrap();
        let t = target_clusters(&b, &plan);
        assert_eq!(
            t,
            vec![
                TargetCluster {
                    name: "m1".into(),
                    replicas: 6
                },
                TargetCluster {
                    name: "m2".into(),
                    replicas: 6
                }
            ]
        );
    }

    fn ready_clusters(names: &[&str]) -> HashMap<String, Arc<Cluster>> {
        names
            .iter()
            .map(|n| {
                let c: Cluster = serde_json::from_value(json!({
                    "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": n}, "spec": {},
                    "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "x", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
                }))
                .unwrap();
                ((*n).to_owned(), Arc::new(c))
            })
            .collect()
    }

    #[test]
    fn reschedules_only_when_something_changed() {
        let mut b = rb(BASE);
        let clusters = ready_clusters(&["m1", "m2", "m3"]);
        assert_eq!(schedule_reason(&b, &clusters), Some("Unscheduled"));

        // As we would leave it after scheduling.
        let targets = vec![
            TargetCluster {
                name: "m1".into(),
                replicas: 4,
            },
            TargetCluster {
                name: "m2".into(),
                replicas: 2,
            },
        ];
        let w = scheduled_writes(&b, &targets, Timestamp::from_second(10).unwrap());
        let spec = w.spec.unwrap();
        b.spec.clusters = targets.clone();
        b.metadata.annotations = Some(BTreeMap::from([(
            APPLIED_PLACEMENT_ANNOTATION.to_owned(),
            spec["metadata"]["annotations"][APPLIED_PLACEMENT_ANNOTATION]
                .as_str()
                .unwrap()
                .to_owned(),
        )]));
        b.status = Some(serde_json::from_value(w.status["status"].clone()).unwrap());
        assert_eq!(schedule_reason(&b, &clusters), None);
        // Same result again: no spec write.
        assert_eq!(
            scheduled_writes(&b, &targets, Timestamp::from_second(20).unwrap()).spec,
            None
        );

        let mut scaled = b.clone();
        scaled.spec.replicas = 9;
        scaled.metadata.generation = Some(2);
        assert_eq!(schedule_reason(&scaled, &clusters), Some("SpecChanged"));

        let lost = ready_clusters(&["m1", "m3"]);
        assert_eq!(schedule_reason(&b, &lost), Some("ClusterLost"));

        let mut moved = b.clone();
        moved
            .spec
            .placement
            .as_mut()
            .unwrap()
            .cluster_affinity
            .as_mut()
            .unwrap()
            .cluster_names
            .push("m4".into());
        assert_eq!(schedule_reason(&moved, &clusters), Some("PlacementChanged"));
    }

    #[test]
    fn status_keeps_other_conditions_and_the_transition_time() {
        let mut b = rb(BASE);
        b.status = Some(serde_json::from_value(json!({"conditions": [
            {"type": "FullyApplied", "status": "True", "reason": "x", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Scheduled", "status": "True", "reason": "Success", "message": "", "lastTransitionTime": "2026-01-02T00:00:00Z"}
        ]})).unwrap());
        let s = status_patch(
            &b,
            "True",
            "Success",
            "ok",
            Timestamp::from_second(1_900_000_000).unwrap(),
        );
        let conds = s["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0]["type"], "FullyApplied");
        assert_eq!(conds[1]["lastTransitionTime"], "2026-01-02T00:00:00Z");
        assert_eq!(s["status"]["schedulerObservedGeneration"], 1);
        let failed = status_patch(
            &b,
            "False",
            "NoClusterFit",
            "none",
            Timestamp::from_second(1_900_000_000).unwrap(),
        );
        assert_ne!(
            failed["status"]["conditions"][1]["lastTransitionTime"],
            "2026-01-02T00:00:00Z"
        );
        assert!(failed["status"].get("lastScheduledTime").is_none());
    }
}
