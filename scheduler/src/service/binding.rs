//! Karmada-native scheduling on the apiserver (`docs/karmada.md#scheduling-resourcebindings`):
//! `ResourceBinding`s and `ClusterResourceBinding`s whose policy names our scheduler are placed by
//! [`crate::karmada`], karmada-scheduler's own rules, and written as it writes them: one merge
//! patch of `spec.clusters` with the `applied-placement` annotation, one of the status (our
//! `Scheduled` condition, `schedulerObservedGeneration` of the generation our patch produced,
//! `lastScheduledTime`, the affinity group), and its two events, sent off the critical path.
//!
//! gather (clusters, trigger, capacities) → [`decide`] (pure) → apply. Unlike karmada-scheduler:
//! a pass that finds the placement in force still right writes nothing, and one estimator
//! failing costs only its own cluster its accurate answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::{
    APPLIED_PLACEMENT_ANNOTATION, ClusterResourceBinding, ResourceBinding, ResourceBindingSpec,
};
use fedstate_api::karmada::binding_status::{ResourceBindingStatus, TargetCluster};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::cached::CachedBinding;
use super::events::Note;
use super::metrics::{self, AttemptResult};
use super::written::Written;
use super::{Context, Error};
use crate::karmada::triggers::{self, Trigger};
use crate::karmada::{self, Outcome, ScheduleError};

/// Karmada's condition message on success.
pub const SUCCESS_MESSAGE: &str = "Binding has been scheduled successfully.";

/// What the service needs of either kind of binding.
pub trait Binding:
    Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Serialize + Send + Sync + 'static
{
    /// `ResourceBinding` or `ClusterResourceBinding`.
    const KIND: &'static str;
    fn spec(&self) -> &ResourceBindingSpec;
    fn status(&self) -> Option<&ResourceBindingStatus>;
    /// The Api this binding lives in.
    fn api(&self, client: Client) -> Api<Self>;
    /// Drops what the scheduler never reads before the object is cached: each cluster's
    /// reflected member status (it can be the largest part of a binding).
    fn strip_unread(&mut self);
    fn set_status(&mut self, status: ResourceBindingStatus);
    /// The parts [`super::cached::CachedBinding`] keeps and rebuilds the binding from.
    fn into_parts(
        self,
    ) -> (
        ObjectMeta,
        ResourceBindingSpec,
        Option<ResourceBindingStatus>,
    );
    fn from_parts(
        metadata: ObjectMeta,
        spec: ResourceBindingSpec,
        status: Option<ResourceBindingStatus>,
    ) -> Self;
}

fn strip_status(status: Option<&mut ResourceBindingStatus>) {
    for item in status
        .into_iter()
        .flat_map(|s| s.aggregated_status.iter_mut())
    {
        item.status = None;
    }
}

/// Karmada's two binding kinds have the same parts; one implementation serves both, each with
/// its API scope (`|binding, client| Api`).
macro_rules! binding_kind {
    ($ty:ty, $kind:literal, |$b:pat_param, $client:ident| $api:expr) => {
        impl Binding for $ty {
            const KIND: &'static str = $kind;
            fn into_parts(
                self,
            ) -> (
                ObjectMeta,
                ResourceBindingSpec,
                Option<ResourceBindingStatus>,
            ) {
                (self.metadata, self.spec, self.status)
            }
            fn from_parts(
                metadata: ObjectMeta,
                spec: ResourceBindingSpec,
                status: Option<ResourceBindingStatus>,
            ) -> Self {
                Self {
                    metadata,
                    spec,
                    status,
                }
            }
            fn spec(&self) -> &ResourceBindingSpec {
                &self.spec
            }
            fn status(&self) -> Option<&ResourceBindingStatus> {
                self.status.as_ref()
            }
            fn api(&self, $client: Client) -> Api<Self> {
                let $b = self;
                $api
            }
            fn strip_unread(&mut self) {
                strip_status(self.status.as_mut());
            }
            fn set_status(&mut self, status: ResourceBindingStatus) {
                self.status = Some(status);
            }
        }
    };
}

binding_kind!(ResourceBinding, "ResourceBinding", |b, client| {
    Api::namespaced(client, &b.namespace().unwrap_or_default())
});
binding_kind!(
    ClusterResourceBinding,
    "ClusterResourceBinding",
    |_, client| Api::all(client)
);

/// The writes of one decision; each `None` is a write not needed.
#[derive(Clone, Debug)]
pub struct Writes {
    /// Merge patch of the annotation and `spec.clusters`.
    pub spec: Option<Value>,
    /// Merge patch of the status.
    pub status: Option<Value>,
    /// Karmada's events: on the binding and on the template.
    pub events: Vec<Note>,
    pub result: AttemptResult,
}

/// The Scheduled condition as Karmada's `meta.SetStatusCondition` leaves it: the transition time
/// moves only when the status flips.
fn scheduled_condition(
    existing: &[Condition],
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(existing.len() + 1);
    let mut transition = now.to_string();
    for c in existing {
        if c.type_ == "Scheduled" {
            if c.status == status {
                transition = c.last_transition_time.0.to_string();
            }
        } else {
            out.push(serde_json::to_value(c).unwrap_or(Value::Null));
        }
    }
    out.push(
        json!({"type": "Scheduled", "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": transition}),
    );
    out
}

fn already_scheduled(status: &ResourceBindingStatus, generation: Option<i64>) -> bool {
    status.scheduler_observed_generation == generation
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Scheduled" && c.status == "True" && c.reason == "Success")
}

/// Pure: the writes for an outcome. `placement`: the JSON of the placement scheduled with.
pub fn decide<B: Binding>(b: &B, trigger: Trigger, outcome: &Outcome, now: Timestamp) -> Writes {
    let spec = b.spec();
    let status = b.status().cloned().unwrap_or_default();
    let placement = serde_json::to_string(&spec.placement).unwrap_or_default();
    let annotation_current = b.annotations().get(APPLIED_PLACEMENT_ANNOTATION) == Some(&placement);
    let spec_write = outcome.clusters.as_ref().and_then(|targets| {
        (!(annotation_current && spec.clusters == *targets)).then(|| {
            json!({
                "metadata": {"annotations": {APPLIED_PLACEMENT_ANNOTATION: placement}},
                "spec": {"clusters": if targets.is_empty() { Value::Null } else { json!(targets) }},
            })
        })
    });
    let template = template_ref(spec);
    let binding_ref = b.object_ref(&());
    match &outcome.result {
        Ok(()) => {
            let targets = outcome.clusters.clone().unwrap_or_default();
            let affinity_current = outcome.affinity_name.is_none()
                || outcome.affinity_name == status.scheduler_observed_affinity_name;
            // Nothing changed and the status already says so: the pass costs no write (Karmada
            // would rewrite lastScheduledTime; a requested reschedule must move it).
            if spec_write.is_none()
                && affinity_current
                && trigger != Trigger::RescheduleRequested
                && already_scheduled(&status, b.meta().generation)
            {
                return Writes {
                    spec: None,
                    status: None,
                    events: Vec::new(),
                    result: AttemptResult::Unchanged,
                };
            }
            let mut st = json!({
                "conditions": scheduled_condition(&status.conditions, "True", "Success", SUCCESS_MESSAGE, now),
                "schedulerObservedGeneration": b.meta().generation,
                "lastScheduledTime": now.to_string(),
            });
            if let Some(a) = &outcome.affinity_name {
                #[allow(
                    clippy::indexing_slicing,
                    reason = "inserts into the object literal built just above: IndexMut on a JSON object cannot panic"
                )]
                {
                    st["schedulerObservedAffinityName"] = json!(a);
                }
            }
            let sep = if B::KIND == "ResourceBinding" {
                ": "
            } else {
                " "
            };
            let message = format!(
                "{SUCCESS_MESSAGE} Result{sep}{{{}}}",
                result_string(&targets)
            );
            Writes {
                spec: spec_write,
                status: Some(json!({ "status": st })),
                events: notes(
                    &binding_ref,
                    template,
                    EventType::Normal,
                    "ScheduleBindingSucceed",
                    &message,
                ),
                result: AttemptResult::Scheduled,
            }
        }
        Err(e) => {
            let st = json!({"conditions": scheduled_condition(&status.conditions, "False", e.reason(), &e.to_string(), now)});
            Writes {
                spec: spec_write,
                status: Some(json!({ "status": st })),
                events: notes(
                    &binding_ref,
                    template,
                    EventType::Warning,
                    "ScheduleBindingFailed",
                    &e.to_string(),
                ),
                result: AttemptResult::Unschedulable,
            }
        }
    }
}

/// `m1:2, m2:4`, as Karmada's events list a result.
fn result_string(targets: &[TargetCluster]) -> String {
    targets
        .iter()
        .map(|t| format!("{}:{}", t.name, t.replicas))
        .collect::<Vec<_>>()
        .join(", ")
}

fn template_ref(spec: &ResourceBindingSpec) -> ObjectReference {
    ObjectReference {
        api_version: Some(spec.resource.api_version.clone()),
        kind: Some(spec.resource.kind.clone()),
        namespace: spec.resource.namespace.clone(),
        name: Some(spec.resource.name.clone()),
        uid: spec.resource.uid.clone(),
        ..Default::default()
    }
}

fn notes(
    binding: &ObjectReference,
    template: ObjectReference,
    kind: EventType,
    reason: &'static str,
    message: &str,
) -> Vec<Note> {
    [binding.clone(), template]
        .into_iter()
        .map(|regarding| Note {
            regarding,
            kind,
            reason: reason.into(),
            message: message.to_owned(),
        })
        .collect()
}

/// The condition a failed spec write leaves: Karmada's `QuotaExceeded` for a quota refusal,
/// `SchedulerError` otherwise.
fn write_failure_status(
    status: &ResourceBindingStatus,
    error: &kube::Error,
    now: Timestamp,
) -> Value {
    let (reason, message) = match error {
        kube::Error::Api(s) if s.code == 403 && s.reason == "QuotaExceeded" => {
            ("QuotaExceeded", s.message.clone())
        }
        other => ("SchedulerError", other.to_string()),
    };
    json!({"status": {"conditions": scheduled_condition(&status.conditions, "False", reason, &message, now)}})
}

/// One binding, from the cache: gather → decide → apply.
pub async fn reconcile<B: Binding>(
    cached: Arc<CachedBinding<B>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let b = Arc::new(cached.to_binding());
    drop(cached);
    let spec = b.spec();
    let for_us = spec.is_for_scheduler(b.meta().labels.as_ref(), &ctx.scheduler_name);
    if !for_us || b.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if spec.placement.is_none() {
        tracing::warn!(binding = %key(&*b), "binding has no placement; nothing to schedule");
        return Ok(Action::await_change());
    }
    let b = ctx.written.view(b);
    let spec = b.spec();
    let status = b.status().cloned().unwrap_or_default();
    let clusters = ctx.clusters.state();
    let refs: Vec<&Cluster> = clusters.iter().map(AsRef::as_ref).collect();
    let applied = b
        .annotations()
        .get(APPLIED_PLACEMENT_ANNOTATION)
        .map(String::as_str);
    let api = b.api(ctx.client.clone());
    let Some(trigger) = triggers::trigger(spec, &status, applied, &refs) else {
        // Karmada's late patch: the scheduler has seen this generation, nothing to place.
        if status.scheduler_observed_generation != b.meta().generation {
            let patch = json!({"status": {"schedulerObservedGeneration": b.meta().generation}});
            write_status(&api, &*b, &patch, &ctx.written, read_version(&*b)).await?;
        }
        return Ok(Action::await_change());
    };
    let _in_flight = metrics::InFlight::start(B::KIND);
    let _deciding = ctx.events.deciding();
    let started = Instant::now();
    metrics::counter_incoming(trigger_label(trigger));
    let binding_key = key(&*b);
    let estimate_started = Instant::now();
    let (shape, capacity) = gather_capacities(&ctx, &*b, &status, &clusters).await;
    metrics::step("estimate", estimate_started);

    // Decide.
    let place_started = Instant::now();
    let outcome = karmada::schedule(spec, &status, &refs, &|n| {
        capacity.get(n).copied().flatten()
    });
    metrics::step("place", place_started);
    let writes = decide(&*b, trigger, &outcome, Timestamp::now());

    // Apply.
    let applied = apply(&api, &*b, &writes, &ctx, &status).await;
    let result = if applied.is_err() {
        AttemptResult::Error
    } else {
        writes.result
    };
    metrics::attempt(B::KIND, trigger.schedule_type(), result, started);
    applied?;
    if let (Ok(()), Some(targets)) = (&outcome.result, &outcome.clusters) {
        assume(&ctx, &binding_key, spec, &shape, targets);
    }
    Ok(match &outcome.result {
        Err(ScheduleError::Unschedulable(_) | ScheduleError::Error(_)) => {
            Action::requeue(super::RETRY_UNSCHEDULABLE)
        }
        _ => Action::await_change(),
    })
}

/// The trigger's label on the scheduler's incoming-queue counter (Karmada's event names).
fn trigger_label(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::PlacementChanged => "PlacementChanged",
        Trigger::ReplicasChanged => "ReplicasChanged",
        Trigger::RescheduleRequested => "RescheduleTriggered",
        Trigger::FollowsClusters => "ClusterChanged",
        Trigger::TargetTerminating => "ClusterTerminating",
    }
}

/// Gather: the binding's pod shape and the capacities of only the clusters the pipeline may read
/// them for (the reflector's own objects, shared, not copied, picked by identity).
async fn gather_capacities<B: Binding>(
    ctx: &Context,
    b: &B,
    status: &ResourceBindingStatus,
    clusters: &[Arc<Cluster>],
) -> (
    fedstate_estimator_client::MemberShape,
    HashMap<String, Option<i32>>,
) {
    let spec = b.spec();
    let to_estimate: Vec<Arc<Cluster>> = {
        let refs: Vec<&Cluster> = clusters.iter().map(AsRef::as_ref).collect();
        let picked: HashSet<*const Cluster> = karmada::clusters_to_estimate(spec, status, &refs)
            .into_iter()
            .map(std::ptr::from_ref)
            .collect();
        clusters
            .iter()
            .filter(|c| picked.contains(&Arc::as_ptr(c)))
            .cloned()
            .collect()
    };
    let shape = super::capacity::binding_shape(spec, b.meta().namespace.as_deref());
    let capacity =
        super::capacity::binding_capacities(&ctx.estimator, &to_estimate, &shape, &key(b)).await;
    (shape, capacity)
}

fn key<B: Binding>(b: &B) -> String {
    match b.namespace() {
        Some(ns) => format!("{}/{ns}/{}", B::KIND, b.name_any()),
        None => format!("{}/{}", B::KIND, b.name_any()),
    }
}

/// The replicas of each target cluster are held in the ledger until they are healthy there (as
/// karmada-scheduler's assumed workloads are); clusters the binding left are released.
fn assume(
    ctx: &Context,
    object: &str,
    spec: &ResourceBindingSpec,
    shape: &fedstate_estimator_client::MemberShape,
    targets: &[TargetCluster],
) {
    if !spec.is_workload() {
        return;
    }
    let now: BTreeMap<&str, i32> = targets
        .iter()
        .map(|t| (t.name.as_str(), t.replicas))
        .collect();
    for old in &spec.clusters {
        if !now.contains_key(old.name.as_str()) {
            ctx.estimator.release_cluster(object, &old.name);
        }
    }
    for t in targets {
        ctx.estimator
            .assume(object, &t.name, shape, t.replicas.max(0).unsigned_abs());
    }
}

/// What the binding watch tells the ledger: a deleted binding's replicas, and those that became
/// healthy in a cluster, are visible to the estimators (or gone) and stop being assumed.
pub fn release_visible<B: Binding>(ctx: &Context, event: &kube::runtime::watcher::Event<B>) {
    use kube::runtime::watcher::Event;
    ctx.written.seen(event);
    match event {
        Event::Delete(b) => ctx.estimator.release(&key(b)),
        Event::Apply(b) | Event::InitApply(b) => {
            for item in b
                .status()
                .map(|s| s.aggregated_status.as_slice())
                .unwrap_or_default()
            {
                if item.health.as_deref() == Some("Healthy") {
                    ctx.estimator.release_cluster(&key(b), &item.cluster_name);
                }
            }
        }
        _ => {}
    }
}

/// Patches the status and remembers the binding as written (see [`Written`]); `older`: the
/// versions the cache can show that predate this write.
async fn write_status<B: Binding>(
    api: &Api<B>,
    b: &B,
    patch: &Value,
    written: &Written,
    older: Vec<String>,
) -> Result<(), Error> {
    let mut patched = api
        .patch_status(&b.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| Error::Write {
            what: "binding status",
            object: key(b),
            source,
        })?;
    metrics::write(B::KIND, "patch-status");
    // Kept as the cache keeps bindings.
    kube::ResourceExt::managed_fields_mut(&mut patched).clear();
    patched.strip_unread();
    written.record(patched, older);
    Ok(())
}

/// The version `b` was read at.
fn read_version<B: Binding>(b: &B) -> Vec<String> {
    b.meta().resource_version.iter().cloned().collect()
}

async fn apply<B: Binding>(
    api: &Api<B>,
    b: &B,
    writes: &Writes,
    ctx: &Context,
    status_before: &ResourceBindingStatus,
) -> Result<(), Error> {
    let mut status = writes.status.clone();
    let mut older = read_version(b);
    if let Some(spec) = &writes.spec {
        match api
            .patch(&b.name_any(), &PatchParams::default(), &Patch::Merge(spec))
            .await
        {
            Ok(patched) => {
                metrics::write(B::KIND, "patch");
                older.extend(patched.meta().resource_version.clone());
                // Writing spec.clusters bumps the generation: the status observes the one we
                // wrote, or our own write would look like a spec change and cost another pass.
                if let (Some(st), Some(g)) = (status.as_mut(), patched.meta().generation)
                    && let Some(observed) = st
                        .get_mut("status")
                        .and_then(|s| s.get_mut("schedulerObservedGeneration"))
                {
                    *observed = json!(g);
                }
            }
            Err(source) => {
                let failed = write_failure_status(status_before, &source, Timestamp::now());
                let _ = write_status(api, b, &failed, &ctx.written, older).await;
                return Err(Error::Write {
                    what: "binding placement",
                    object: key(b),
                    source,
                });
            }
        }
    }
    if let Some(st) = &status {
        write_status(api, b, st, &ctx.written, older).await?;
    }
    for note in &writes.events {
        ctx.events.send(note.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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

    fn cluster(name: &str) -> Cluster {
        serde_json::from_value(json!({
            "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": name}, "spec": {},
            "status": {"apiEnablements": [{"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]}]}
        }))
        .unwrap()
    }

    fn targets(o: &Outcome) -> Vec<(String, i32)> {
        let mut v: Vec<_> = o
            .clusters
            .clone()
            .unwrap()
            .into_iter()
            .map(|t| (t.name, t.replicas))
            .collect();
        v.sort();
        v
    }

    fn place(b: &ResourceBinding, caps: &[(&str, i32)], names: &[&str]) -> Outcome {
        let cs: Vec<Cluster> = names.iter().map(|n| cluster(n)).collect();
        let refs: Vec<&Cluster> = cs.iter().collect();
        let caps: std::collections::HashMap<&str, i32> = caps.iter().copied().collect();
        karmada::schedule(
            &b.spec,
            &b.status.clone().unwrap_or_default(),
            &refs,
            &|n| caps.get(n).copied(),
        )
    }

    #[test]
    fn cached_bindings_keep_the_health_but_not_the_reflected_status() {
        let mut b = rb(&format!(
            "{BASE}status:\n  aggregatedStatus:\n  - clusterName: m1\n    applied: true\n    health: Healthy\n    status: {{readyReplicas: 2, conditions: [{{type: Available}}]}}\n"
        ));
        b.strip_unread();
        let item = &b.status.as_ref().unwrap().aggregated_status[0];
        assert_eq!(item.status, None);
        assert_eq!(
            (
                item.cluster_name.as_str(),
                item.health.as_deref(),
                item.applied
            ),
            ("m1", Some("Healthy"), true)
        );
    }

    #[test]
    fn dynamic_weighting_splits_by_available_replicas() {
        let o = place(
            &rb(BASE),
            &[("m1", 30), ("m2", 20), ("m3", 10), ("m4", 100)],
            &["m1", "m2", "m3", "m4"],
        );
        assert_eq!(
            targets(&o),
            [("m1".into(), 3), ("m2".into(), 2), ("m3".into(), 1)]
        );
    }

    #[test]
    fn static_weights_follow_the_list() {
        let b = rb(&BASE.replace(
            "weightPreference: {dynamicWeight: AvailableReplicas}",
            "weightPreference: {staticWeightList: [{targetCluster: {clusterNames: [m1]}, weight: 2}, {targetCluster: {clusterNames: [m2]}, weight: 1}]}",
        ));
        let o = place(&b, &[], &["m1", "m2", "m3"]);
        assert_eq!(targets(&o), [("m1".into(), 4), ("m2".into(), 2)]);
    }

    #[test]
    fn duplicated_gives_every_cluster_all_replicas() {
        let b = rb(&BASE.replace(
            "replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted, weightPreference: {dynamicWeight: AvailableReplicas}}",
            "replicaScheduling: {replicaSchedulingType: Duplicated}",
        ));
        let o = place(&b, &[], &["m1", "m2", "m5"]);
        assert_eq!(targets(&o), [("m1".into(), 6), ("m2".into(), 6)]);
    }

    fn after(b: &ResourceBinding, w: &Writes) -> ResourceBinding {
        let mut v = serde_json::to_value(b).unwrap();
        for patch in [&w.spec, &w.status].into_iter().flatten() {
            json_patch::merge(&mut v, patch);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_pass_that_changes_nothing_writes_nothing() {
        let b = rb(BASE);
        let o = place(&b, &[("m1", 9), ("m2", 9), ("m3", 9)], &["m1", "m2", "m3"]);
        let first = decide(
            &b,
            Trigger::PlacementChanged,
            &o,
            Timestamp::from_second(10).unwrap(),
        );
        assert!(first.spec.is_some() && first.status.is_some());
        assert_eq!(first.result, AttemptResult::Scheduled);
        assert_eq!(first.events.len(), 2, "on the binding and on the template");
        let done = after(&b, &first);
        let applied = done
            .annotations()
            .get(APPLIED_PLACEMENT_ANNOTATION)
            .map(String::as_str);
        let cs = [cluster("m1"), cluster("m2"), cluster("m3")];
        let refs: Vec<&Cluster> = cs.iter().collect();
        assert_eq!(
            triggers::trigger(&done.spec, done.status.as_ref().unwrap(), applied, &refs),
            None
        );
        let again = decide(
            &done,
            Trigger::FollowsClusters,
            &o,
            Timestamp::from_second(20).unwrap(),
        );
        assert_eq!((again.spec, again.status), (None, None));
        assert_eq!(again.result, AttemptResult::Unchanged);
    }

    #[test]
    fn success_writes_karmadas_condition_and_events() {
        let b = rb(BASE);
        let o = place(&b, &[("m1", 9), ("m2", 9), ("m3", 9)], &["m1", "m2", "m3"]);
        let w = decide(
            &b,
            Trigger::PlacementChanged,
            &o,
            Timestamp::from_second(10).unwrap(),
        );
        let st = &w.status.as_ref().unwrap()["status"];
        let cond = &st["conditions"][0];
        assert_eq!(
            (&cond["status"], &cond["reason"], &cond["message"]),
            (&json!("True"), &json!("Success"), &json!(SUCCESS_MESSAGE))
        );
        assert_eq!(st["schedulerObservedGeneration"], 1);
        assert_eq!(
            w.events[0].message,
            "Binding has been scheduled successfully. Result: {m1:2, m2:2, m3:2}"
        );
        assert_eq!(w.events[1].regarding.kind.as_deref(), Some("Deployment"));
    }

    #[test]
    fn no_cluster_fit_clears_the_clusters_and_keeps_the_observed_generation() {
        let mut b = rb(&BASE.replace("clusterNames: [m1, m2, m3]", "clusterNames: [m9]"));
        b.spec.clusters = vec![TargetCluster {
            name: "m1".into(),
            replicas: 6,
        }];
        let o = place(&b, &[], &["m1", "m2"]);
        let w = decide(
            &b,
            Trigger::PlacementChanged,
            &o,
            Timestamp::from_second(10).unwrap(),
        );
        assert_eq!(w.spec.as_ref().unwrap()["spec"]["clusters"], Value::Null);
        let st = &w.status.as_ref().unwrap()["status"];
        assert_eq!(st["conditions"][0]["reason"], "NoClusterFit");
        assert!(st.get("schedulerObservedGeneration").is_none());
        assert!(st.get("lastScheduledTime").is_none());
        assert_eq!(w.events[0].reason, "ScheduleBindingFailed");
    }

    #[test]
    fn a_quota_refusal_of_the_placement_is_reported_as_karmada_does() {
        let e = kube::Error::Api(
            kube::core::Status::failure("exceeded quota: compute", "QuotaExceeded")
                .with_code(403)
                .boxed(),
        );
        let s = write_failure_status(&Default::default(), &e, Timestamp::from_second(10).unwrap());
        let c = &s["status"]["conditions"][0];
        assert_eq!(
            (&c["status"], &c["reason"]),
            (&json!("False"), &json!("QuotaExceeded"))
        );
    }

    #[test]
    fn status_keeps_other_conditions_and_the_transition_time() {
        let existing: Vec<Condition> = serde_json::from_value(json!([
            {"type": "FullyApplied", "status": "True", "reason": "x", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Scheduled", "status": "True", "reason": "Success", "message": "", "lastTransitionTime": "2026-01-02T00:00:00Z"}
        ]))
        .unwrap();
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        let conds = scheduled_condition(&existing, "True", "Success", "ok", now);
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0]["type"], "FullyApplied");
        assert_eq!(conds[1]["lastTransitionTime"], "2026-01-02T00:00:00Z");
        let failed = scheduled_condition(&existing, "False", "NoClusterFit", "none", now);
        assert_ne!(failed[1]["lastTransitionTime"], "2026-01-02T00:00:00Z");
    }
}
