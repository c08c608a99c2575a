//! Objects of a federated middleware kind ([`Schedulable`]; MongoDB's `MultiCloudMongoDB`) that
//! name us: place them and write the placement as the `schedulerResult` annotation (the
//! manager's input), with the `Scheduled`, `ServerScheduledResult` and `QuorumAtRisk` conditions
//! and `status.placement`. Nothing here knows the kind beyond the trait.
//!
//! [`reconcile`] is gather → decide → apply: `gather` reads the cluster store and the
//! capacities and runs the engine; [`decide`] is pure (the object, what the engine said, the
//! clock in; what to write out); `apply` makes at most two writes, a merge patch of the
//! annotation and a server-side apply of our status fields; its event goes to the background
//! queue ([`super::events`]), off the critical path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedstate_api::SchedulerResultError;
use fedstate_api::condition::{Condition, ConditionStatus, find_condition, set_condition, types};
use fedstate_api::names::{FIELD_MANAGER_SCHEDULER, SCHEDULER_RESULT_ANNOTATION};
use fedstate_api::placement::PlacementStatus;
use fedstate_api::scheduler_result::{SchedulerResult, summary};
use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::capacity;
use super::metrics::{self, AttemptResult};
use super::{Context, Error, RETRY_UNSCHEDULABLE};
use crate::adapter::Schedulable;
use crate::placement::{
    self, ClusterCandidate, PlacementError, PlacementPlan, PreviousPlacement, QuorumStatus, Verdict,
};

/// What the engine made of the object.
#[derive(Debug)]
pub enum Outcome {
    /// A plan, and the clusters of the previous placement that are gone or no longer eligible.
    Placed {
        plan: PlacementPlan,
        lost: Vec<String>,
    },
    /// The spec cannot be turned into a request (bad selector, quantity, …).
    InvalidSpec(String),
    Unplaceable(PlacementError),
}

/// What to write.
#[derive(Debug, Default, PartialEq)]
pub struct Decision {
    /// A new annotation value, when the placement or its generation changed.
    pub annotation: Option<String>,
    /// Our conditions and `status.placement`, when they changed.
    pub status: Option<serde_json::Value>,
    /// An event for `kubectl describe`.
    pub event: Option<(EventType, String, String)>,
    pub result: Option<AttemptResult>,
    pub requeue: Option<Duration>,
}

/// The placement in force: the annotation when it parses; when it was deleted or broken by
/// hand, the last placement we recorded in `status.placement`, so such an edit never causes a
/// fresh placement that moves the whole set (the members stay where they run, and the
/// annotation is written again). A broken annotation is reported and replaced.
pub fn previous<K: Schedulable>(
    obj: &K,
) -> (Option<SchedulerResult>, Option<SchedulerResultError>) {
    let (parsed, broken) = match obj.annotations().get(SCHEDULER_RESULT_ANNOTATION) {
        None => (None, None),
        Some(raw) => match SchedulerResult::parse(raw) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        },
    };
    (parsed.or_else(|| recorded(obj)), broken)
}

/// The last placement recorded in `status.placement`, written in one apply with the `Scheduled`
/// reason that explains it. The reason of a change is judged against this, not against the
/// annotation: a reconcile that reads a cache which has our annotation patch but not yet our
/// status apply would otherwise see "nothing changed" and overwrite the reason (`Failover`)
/// with the older one.
fn recorded<K: Schedulable>(obj: &K) -> Option<SchedulerResult> {
    obj.placement_status()
        .filter(|p| !p.clusters.is_empty())
        .map(|p| SchedulerResult {
            clusters: p.clusters.clone(),
            generation: p.generation,
            quorum_safe: p.quorum_safe,
            ..Default::default()
        })
}

/// Why the placement moved, for the condition reason and the event.
fn change_reason(
    before: Option<&SchedulerResult>,
    plan: &PlacementPlan,
    lost: &[String],
) -> &'static str {
    match before {
        None => "Scheduled",
        Some(_) if !lost.is_empty() => "Failover",
        Some(b) if b.total_data_members() != i64::from(plan.replicas) => "Rescaled",
        Some(_) => "Rescheduled",
    }
}

/// Clusters of the previous placement that are gone from `candidates` or were filtered out.
pub fn lost_clusters(
    before: Option<&SchedulerResult>,
    plan: &PlacementPlan,
    candidates: &[ClusterCandidate],
) -> Vec<String> {
    let Some(before) = before else {
        return Vec::new();
    };
    let filtered: HashSet<&str> = plan
        .explanation
        .clusters
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Filtered(_)))
        .filter_map(|r| candidates.get(r.index as usize).map(|c| c.name.as_str()))
        .collect();
    before
        .clusters
        .iter()
        .filter(|c| c.replicaset > 0 || c.has_arbiter())
        .filter(|c| {
            filtered.contains(c.cluster.as_str()) || !candidates.iter().any(|k| k.name == c.cluster)
        })
        .map(|c| c.cluster.clone())
        .collect()
}

/// The object's conditions and placement status as [`decide`] changes them.
struct StatusDraft {
    conditions: Vec<Condition>,
    placement: Option<PlacementStatus>,
}

/// The pure heart of the reconcile.
pub fn decide<K: Schedulable>(obj: &K, outcome: Outcome, now: Timestamp) -> Decision {
    let generation = obj.meta().generation;
    let mut draft = StatusDraft {
        conditions: obj.conditions().to_vec(),
        placement: obj.placement_status().cloned(),
    };
    let mut decision = match outcome {
        Outcome::Placed { plan, lost } => placed(obj, &plan, &lost, &mut draft, now),
        Outcome::InvalidSpec(message)
        | Outcome::Unplaceable(PlacementError::InvalidRequest(message)) => {
            not_placed(&mut draft, "InvalidSpec", message, generation, now)
        }
        Outcome::Unplaceable(err) => {
            // Keep the placement in force: members keep running where they are.
            let kept = if previous(obj).0.is_some() {
                " The current placement stays in force."
            } else {
                ""
            };
            let mut d = not_placed(
                &mut draft,
                err.reason(),
                format!("{err}.{kept}"),
                generation,
                now,
            );
            d.requeue = Some(RETRY_UNSCHEDULABLE);
            d
        }
    };
    decision.status = changed_status(obj, draft);
    decision
}

/// A plan: the annotation and an event when it changed, and our three conditions.
fn placed<K: Schedulable>(
    obj: &K,
    plan: &PlacementPlan,
    lost: &[String],
    draft: &mut StatusDraft,
    now: Timestamp,
) -> Decision {
    let generation = obj.meta().generation;
    let (before, broken) = previous(obj);
    let result = plan.to_scheduler_result(generation);
    let changed = before.as_ref().is_none_or(|b| *b != result);
    let summary_text = summary(&result.clusters);
    // The reason tells what the last recorded change was; a re-plan that changes nothing keeps it.
    let recorded = recorded(obj);
    let unchanged_since_recorded = recorded
        .as_ref()
        .is_some_and(|r| r.clusters == result.clusters && r.generation == result.generation);
    let kept_reason = find_condition(obj.conditions(), types::SCHEDULED)
        .filter(|c| c.is_true())
        .and_then(|c| c.reason.clone());
    let reason: String = match (unchanged_since_recorded, kept_reason) {
        (true, Some(r)) => r,
        _ => change_reason(recorded.as_ref().or(before.as_ref()), plan, lost).to_owned(),
    };
    let mut decision = Decision::default();
    if changed {
        decision.annotation = Some(result.to_annotation());
        let placement_changed = before
            .as_ref()
            .is_none_or(|b| b.clusters != result.clusters);
        if placement_changed {
            let note = if lost.is_empty() {
                format!("placed {} members: {summary_text}", plan.replicas)
            } else {
                format!(
                    "clusters {} lost; members moved: {summary_text}",
                    lost.join(", ")
                )
            };
            decision.event = Some((EventType::Normal, reason.clone(), note));
        }
        decision.result = Some(AttemptResult::Scheduled);
    } else {
        decision.result = Some(AttemptResult::Unchanged);
    }
    let message = format!(
        "{summary_text} ({} voters, mode {}){}",
        plan.voters,
        plan.mode.as_str(),
        broken
            .as_ref()
            .map(|e| format!("; replaced an invalid annotation: {e}"))
            .unwrap_or_default()
    );
    let conditions = &mut draft.conditions;
    let scheduled = Condition::new(
        types::SCHEDULED,
        ConditionStatus::True,
        &reason,
        message,
        generation,
    );
    set_condition(conditions, scheduled, now);
    let result_condition = Condition::new(
        types::SERVER_SCHEDULED_RESULT,
        ConditionStatus::True,
        "GetSchedulerSuccess",
        format!(
            "scheduler result for generation {}: {}",
            generation.unwrap_or(0),
            result.to_annotation()
        ),
        generation,
    );
    set_condition(conditions, result_condition, now);
    set_condition(conditions, quorum_condition(&plan.quorum, generation), now);
    draft.placement = Some(PlacementStatus {
        summary: summary_text,
        clusters: result.clusters.clone(),
        generation,
        quorum_safe: result.quorum_safe,
    });
    decision
}

/// `QuorumAtRisk`: true with what is missing, or false.
fn quorum_condition(quorum: &QuorumStatus, generation: Option<i64>) -> Condition {
    match quorum {
        QuorumStatus::AtRisk { missing } => Condition::new(
            types::QUORUM_AT_RISK,
            ConditionStatus::True,
            "QuorumAtRisk",
            format!("losing one cluster can lose the voting majority: {missing}"),
            generation,
        ),
        _ => Condition::new(
            types::QUORUM_AT_RISK,
            ConditionStatus::False,
            "QuorumSafe",
            "every cluster holds less than half of the votes",
            generation,
        ),
    }
}

/// No placement: `Scheduled=False` with the reason, and a warning event when that is news. The
/// annotation and `status.placement` in force are kept.
fn not_placed(
    draft: &mut StatusDraft,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Decision {
    let mut decision = Decision {
        result: Some(AttemptResult::Unschedulable),
        ..Decision::default()
    };
    let c = Condition::new(
        types::SCHEDULED,
        ConditionStatus::False,
        reason,
        message.clone(),
        generation,
    );
    if set_condition(&mut draft.conditions, c, now) {
        decision.event = Some((EventType::Warning, reason.to_owned(), message));
    }
    decision
}

/// Our conditions and `status.placement` to apply, when they differ from the object's.
fn changed_status<K: Schedulable>(obj: &K, draft: StatusDraft) -> Option<serde_json::Value> {
    let ours = |c: &&Condition| {
        [
            types::SCHEDULED,
            types::SERVER_SCHEDULED_RESULT,
            types::QUORUM_AT_RISK,
        ]
        .contains(&c.type_.as_str())
    };
    let old_ours: Vec<&Condition> = obj.conditions().iter().filter(ours).collect();
    let new_ours: Vec<&Condition> = draft.conditions.iter().filter(ours).collect();
    if old_ours == new_ours && obj.placement_status() == draft.placement.as_ref() {
        return None;
    }
    let mut status = json!({ "conditions": new_ours });
    if let Some(p) = draft.placement {
        #[allow(
            clippy::expect_used,
            reason = "PlacementStatus is strings, integers and a unit enum: serde_json cannot fail on them"
        )]
        let placement = serde_json::to_value(p).expect("placement status serializes");
        #[allow(
            clippy::indexing_slicing,
            reason = "inserts into the object literal built above: IndexMut on a JSON object cannot panic"
        )]
        {
            status["placement"] = placement;
        }
    }
    Some(status)
}

/// The object's key in the estimators' assumed-members ledger.
fn ledger_key<K: Schedulable>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::LEDGER_PREFIX,
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// gather → decide → apply, for an object that names us.
pub async fn reconcile<K: Schedulable>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    if obj.scheduler_name() != ctx.scheduler_name {
        return Ok(Action::await_change());
    }
    if obj.meta().deletion_timestamp.is_some() {
        ctx.estimator.release(&ledger_key(&*obj));
        return Ok(Action::await_change());
    }
    // Our own annotation patch reaches the cache before our status apply does: decide from
    // what we wrote, or that view costs a second status apply.
    let obj = ctx.written.view(obj);
    let _in_flight = metrics::InFlight::start(K::QUEUE);
    let _deciding = ctx.events.deciding();
    let started = Instant::now();
    let outcome = gather(&*obj, &ctx).await;
    let decision = decide(&*obj, outcome, Timestamp::now());
    let result = apply(&*obj, &ctx, &decision).await;
    let attempt = if result.is_err() {
        AttemptResult::Error
    } else {
        decision.result.unwrap_or(AttemptResult::Unchanged)
    };
    metrics::attempt(K::KIND, metrics::SCHEDULE_TYPE, attempt, started);
    result?;
    Ok(decision
        .requeue
        .map_or_else(Action::await_change, Action::requeue))
}

/// Read the clusters and their capacities for one member, run the engine, and hold the members
/// it adds in the ledger (so the next object placed does not count the same room).
async fn gather<K: Schedulable>(obj: &K, ctx: &Context) -> Outcome {
    let request = match obj.placement_request() {
        Ok(r) => r,
        Err(e) => return Outcome::InvalidSpec(e.to_string()),
    };
    let (before, _) = previous(obj);
    let previous_placement = before.as_ref().map(PreviousPlacement::from);
    let hosted: HashMap<&str, u32> = before
        .iter()
        .flat_map(|b| b.clusters.iter())
        .map(|c| (c.cluster.as_str(), u32::try_from(c.replicaset).unwrap_or(0)))
        .collect();
    let clusters = ctx.clusters.state();
    let shape = capacity::estimator_shape(obj);
    let key = ledger_key(obj);
    let estimate_started = Instant::now();
    let candidates = capacity::candidates(&ctx.estimator, &clusters, &shape, &key, &hosted).await;
    metrics::step("estimate", estimate_started);
    let place_started = Instant::now();
    let placed = placement::place(&request, &candidates, previous_placement.as_ref());
    metrics::step("place", place_started);
    match placed {
        Ok(plan) => {
            for c in &plan.clusters {
                let before_here = hosted.get(c.cluster.as_str()).copied().unwrap_or(0);
                if c.data > before_here {
                    ctx.estimator
                        .assume(&key, &c.cluster, &shape, c.data - before_here);
                }
            }
            // Judged against the recorded placement, as the reason is (see `recorded`).
            let reference = recorded(obj).or(before);
            let lost = lost_clusters(reference.as_ref(), &plan, &candidates);
            Outcome::Placed { plan, lost }
        }
        Err(e) => Outcome::Unplaceable(e),
    }
}

/// Write what [`decide`] said: the annotation (guarded by resourceVersion), our status fields,
/// the event (a failed event fails nothing). The object as the last write left it is
/// remembered until the cache shows it ([`super::written`]).
async fn apply<K: Schedulable>(obj: &K, ctx: &Context, decision: &Decision) -> Result<(), Error> {
    let mut older: Vec<String> = obj.meta().resource_version.iter().cloned().collect();
    let mut last: Option<K> = None;
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let write_error = |what: &'static str| {
        let object = format!("{ns}/{name}");
        move |source| Error::Write {
            what,
            object,
            source,
        }
    };
    if let Some(value) = &decision.annotation {
        // Guarded by resourceVersion: a placement computed from a stale object is retried, never
        // written over a newer spec.
        let patch = json!({"metadata": {
            "resourceVersion": obj.resource_version(),
            "annotations": {SCHEDULER_RESULT_ANNOTATION: value}
        }});
        let patched = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(write_error("schedulerResult annotation"))?;
        metrics::write(K::KIND, "patch");
        older.extend(patched.meta().resource_version.clone());
        last = Some(patched);
    }
    if let Some(status) = &decision.status {
        let applied = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER_SCHEDULER).force(),
                &Patch::Apply(&K::status_apply(status)),
            )
            .await;
        match applied {
            Ok(applied) => {
                metrics::write(K::KIND, "apply-status");
                last = Some(applied);
            }
            Err(source) => {
                // The annotation is written: a pass reading the older cache must not write it
                // again.
                remember(ctx, last, older);
                return Err(write_error("status")(source));
            }
        }
    }
    remember(ctx, last, older);
    // Off the critical path, as the bindings' events: published once no decision is in flight.
    if let Some((kind, reason, message)) = &decision.event {
        ctx.events.send(super::events::Note {
            regarding: obj.object_ref(&()),
            kind: *kind,
            reason: reason.clone().into(),
            message: message.clone(),
        });
    }
    Ok(())
}

/// Remembers the object as our last write left it (without managedFields, unread).
fn remember<K: Schedulable>(ctx: &Context, written: Option<K>, older: Vec<String>) {
    if let Some(mut written) = written {
        kube::ResourceExt::managed_fields_mut(&mut written).clear();
        ctx.written.record(written, older);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::placement::PlacementRequest;
    use fedstate_api::MultiCloudMongoDB;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn object(replicas: i32, annotation: Option<&str>) -> MultiCloudMongoDB {
        let mut obj: MultiCloudMongoDB = serde_yaml::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../deploy/samples/seed/multicloudmongodb-minimal.yaml"
            ))
            .unwrap(),
        )
        .unwrap();
        obj.spec.replicaset = replicas;
        obj.metadata.generation = Some(3);
        obj.metadata.uid = Some("uid-1".into());
        if let Some(a) = annotation {
            obj.metadata.annotations =
                Some([(SCHEDULER_RESULT_ANNOTATION.to_owned(), a.to_owned())].into());
        }
        obj
    }

    fn cluster(name: &str, capacity: u32) -> ClusterCandidate {
        ClusterCandidate {
            name: name.into(),
            labels: [("vip".to_owned(), format!("10.0.0.{}", name.len()))].into(),
            ready: true,
            has_vip: true,
            capacity,
            ..Default::default()
        }
    }

    fn plan(obj: &MultiCloudMongoDB, clusters: &[ClusterCandidate]) -> Outcome {
        let req: PlacementRequest = obj.placement_request().unwrap();
        let (before, _) = previous(obj);
        match placement::place(
            &req,
            clusters,
            before.as_ref().map(PreviousPlacement::from).as_ref(),
        ) {
            Ok(plan) => Outcome::Placed {
                lost: lost_clusters(recorded(obj).or(before).as_ref(), &plan, clusters),
                plan,
            },
            Err(e) => Outcome::Unplaceable(e),
        }
    }

    fn with_status(mut obj: MultiCloudMongoDB, d: &Decision) -> MultiCloudMongoDB {
        if let Some(a) = &d.annotation {
            obj.metadata.annotations =
                Some([(SCHEDULER_RESULT_ANNOTATION.to_owned(), a.clone())].into());
        }
        if let Some(s) = &d.status {
            obj.status = Some(serde_json::from_value(s.clone()).unwrap());
        }
        obj
    }

    #[test]
    fn first_placement_writes_annotation_status_and_event() {
        let obj = object(5, None);
        let clusters = [cluster("a", 10), cluster("b", 10), cluster("c", 10)];
        let d = decide(&obj, plan(&obj, &clusters), t(100));
        let written = SchedulerResult::parse(d.annotation.as_deref().unwrap()).unwrap();
        assert_eq!(written.total_data_members(), 5);
        assert_eq!(written.generation, Some(3));
        assert_eq!(written.quorum_safe, Some(true));
        assert!(
            written.clusters.iter().all(|c| c.votes.unwrap() <= 2),
            "{written:?}"
        );
        let status = d.status.as_ref().unwrap();
        assert_eq!(
            status["placement"]["summary"],
            json!(summary(&written.clusters))
        );
        let conds = status["conditions"].as_array().unwrap();
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == "Scheduled" && c["status"] == "True")
        );
        assert!(
            conds
                .iter()
                .any(|c| c["type"] == "QuorumAtRisk" && c["status"] == "False")
        );
        assert_eq!(d.event.as_ref().unwrap().1, "Scheduled");
        assert_eq!(d.result, Some(AttemptResult::Scheduled));
    }

    #[test]
    fn replanning_an_unchanged_object_writes_nothing() {
        let obj = object(3, None);
        let clusters = [cluster("a", 10), cluster("b", 10), cluster("c", 10)];
        let first = decide(&obj, plan(&obj, &clusters), t(100));
        let placed = with_status(obj, &first);
        let again = decide(&placed, plan(&placed, &clusters), t(200));
        assert_eq!(
            again,
            Decision {
                result: Some(AttemptResult::Unchanged),
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_lost_cluster_is_a_failover_that_moves_only_its_members() {
        let obj = object(5, None);
        let mut clusters = vec![
            cluster("a", 10),
            cluster("b", 10),
            cluster("c", 10),
            cluster("d", 10),
        ];
        let placed = with_status(obj.clone(), &decide(&obj, plan(&obj, &clusters), t(1)));
        let before = previous(&placed).0.unwrap();
        let victim = before
            .clusters
            .iter()
            .find(|c| c.replicaset > 0)
            .unwrap()
            .cluster
            .clone();
        clusters
            .iter_mut()
            .find(|c| c.name == victim)
            .unwrap()
            .ready = false;
        let d = decide(&placed, plan(&placed, &clusters), t(2));
        let after = SchedulerResult::parse(d.annotation.as_deref().unwrap()).unwrap();
        assert_eq!(after.total_data_members(), 5);
        assert!(
            after
                .clusters
                .iter()
                .all(|c| c.cluster != victim || c.replicaset == 0)
        );
        // Survivors keep at least what they had.
        for c in &before.clusters {
            if c.cluster != victim {
                let now = after
                    .clusters
                    .iter()
                    .find(|a| a.cluster == c.cluster)
                    .map_or(0, |a| a.replicaset);
                assert!(
                    now >= c.replicaset,
                    "{} lost members: {before:?} -> {after:?}",
                    c.cluster
                );
            }
        }
        let (kind, reason, note) = d.event.unwrap();
        assert_eq!((kind, reason.as_str()), (EventType::Normal, "Failover"));
        assert!(note.contains(&victim));
    }

    /// The watch cache can deliver our annotation patch before our status apply; a reconcile of
    /// that view must write the same status as the one that moved the members, not overwrite
    /// `Failover` with the older reason.
    #[test]
    fn a_view_with_our_annotation_but_not_yet_our_status_keeps_the_failover_reason() {
        let obj = object(3, None);
        let mut clusters = vec![cluster("a", 10), cluster("b", 10), cluster("c", 10)];
        let placed = with_status(obj.clone(), &decide(&obj, plan(&obj, &clusters), t(1)));
        clusters[0].ready = false;
        let failover = decide(&placed, plan(&placed, &clusters), t(2));
        assert_eq!(failover.event.as_ref().unwrap().1, "Failover");
        // The annotation patch landed; the status apply is not in the cache yet.
        let stale = with_status(
            placed.clone(),
            &Decision {
                annotation: failover.annotation.clone(),
                ..Default::default()
            },
        );
        let d = decide(&stale, plan(&stale, &clusters), t(3));
        assert_eq!(d.annotation, None, "the annotation is already written");
        assert_eq!(d.event, None, "the move was announced once");
        // The same status as the reconcile that moved the members (a transition time may be
        // later: it is judged from the older view).
        let done = with_status(stale, &d);
        let moved = with_status(placed, &failover);
        assert_eq!(done.placement_status(), moved.placement_status());
        let scheduled = |o: &MultiCloudMongoDB| {
            find_condition(o.conditions(), types::SCHEDULED)
                .cloned()
                .unwrap()
        };
        assert_eq!(scheduled(&done), scheduled(&moved));
        assert_eq!(scheduled(&done).reason.as_deref(), Some("Failover"));
    }

    #[test]
    fn unplaceable_keeps_the_placement_and_says_why() {
        let obj = object(3, None);
        let clusters = [cluster("a", 10), cluster("b", 10), cluster("c", 10)];
        let placed = with_status(obj.clone(), &decide(&obj, plan(&obj, &clusters), t(1)));
        let mut bigger = placed.clone();
        bigger.spec.replicaset = 40;
        bigger.metadata.generation = Some(4);
        let d = decide(&bigger, plan(&bigger, &clusters), t(2));
        assert_eq!(d.annotation, None, "the placement in force must stay");
        assert_eq!(d.result, Some(AttemptResult::Unschedulable));
        assert_eq!(d.requeue, Some(RETRY_UNSCHEDULABLE));
        let conds = &d.status.unwrap()["conditions"];
        let scheduled = conds
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Scheduled")
            .unwrap();
        assert_eq!(scheduled["status"], "False");
        assert_eq!(scheduled["reason"], "InsufficientCapacity");
        assert!(
            scheduled["message"]
                .as_str()
                .unwrap()
                .contains("stays in force"),
            "{scheduled}"
        );
        assert_eq!(d.event.unwrap().0, EventType::Warning);
    }

    #[test]
    fn a_broken_annotation_is_replaced_and_reported() {
        let obj = object(3, Some("{not json"));
        let clusters = [cluster("a", 10), cluster("b", 10), cluster("c", 10)];
        let d = decide(&obj, plan(&obj, &clusters), t(1));
        assert!(SchedulerResult::parse(d.annotation.as_deref().unwrap()).is_ok());
        let conds = &d.status.unwrap()["conditions"];
        let scheduled = conds
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Scheduled")
            .unwrap();
        assert!(
            scheduled["message"]
                .as_str()
                .unwrap()
                .contains("replaced an invalid annotation")
        );
    }

    #[test]
    fn a_deleted_or_broken_annotation_falls_back_to_the_recorded_placement() {
        let obj = object(3, None);
        let few = [cluster("a", 2), cluster("b", 2), cluster("c", 2)];
        let placed = with_status(obj.clone(), &decide(&obj, plan(&obj, &few), t(1)));
        let kept = placed.status.as_ref().unwrap().placement.clone().unwrap();
        // More room elsewhere now: a fresh placement would go there.
        let more = [
            cluster("a", 2),
            cluster("b", 2),
            cluster("c", 2),
            cluster("dd", 50),
            cluster("eee", 50),
            cluster("ffff", 50),
        ];
        let clusters_of = |o: &Outcome| match o {
            Outcome::Placed { plan, .. } => plan.to_scheduler_result(Some(3)).clusters,
            other => panic!("not placed: {other:?}"),
        };
        let fresh = clusters_of(&plan(&object(3, None), &more));
        assert_ne!(
            fresh, kept.clusters,
            "the test needs a fresh placement that moves"
        );
        for edit in [None, Some("{not json")] {
            let mut edited = placed.clone();
            edited.metadata.annotations =
                edit.map(|a| [(SCHEDULER_RESULT_ANNOTATION.to_owned(), a.to_owned())].into());
            let outcome = plan(&edited, &more);
            assert_eq!(
                clusters_of(&outcome),
                kept.clusters,
                "{edit:?}: members moved"
            );
            let d = decide(&edited, outcome, t(2));
            // The annotation is written again, with the same placement; nothing moved.
            let written = SchedulerResult::parse(d.annotation.as_deref().unwrap()).unwrap();
            assert_eq!(written.clusters, kept.clusters);
            assert_eq!(d.event, None, "{edit:?}: no placement change to announce");
        }
    }

    #[test]
    fn a_two_cluster_placement_sets_quorum_at_risk() {
        let obj = object(5, None);
        let clusters = [cluster("a", 10), cluster("b", 10)];
        let d = decide(&obj, plan(&obj, &clusters), t(1));
        let conds = &d.status.unwrap()["conditions"];
        let risk = conds
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "QuorumAtRisk")
            .unwrap();
        assert_eq!(risk["status"], "True", "{risk}");
    }
}
