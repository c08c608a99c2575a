//! Mock-apiserver scenarios for the reconcile paths (kube's `tower-test` pattern): the real
//! `middleware::reconcile` and `binding::reconcile` run against a scripted apiserver
//! (`fedstate-fake-apiserver`) that records every request and answers it, with a `Context` whose
//! cluster store is filled by hand and whose estimator has only the general estimate and the node
//! spread (no gRPC). Each scenario asserts
//! the exact writes a user would see: which objects, which verbs, which bodies, and that nothing
//! else was written.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use fedstate_api::MultiCloudMongoDB;
use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::{APPLIED_PLACEMENT_ANNOTATION, ResourceBinding};
use fedstate_api::names::{FIELD_MANAGER_SCHEDULER, SCHEDULER_RESULT_ANNOTATION};
use fedstate_api::scheduler_result::SchedulerResult;
use fedstate_estimator_client::{CapacityEstimator, EstimatorConfig, GeneralEstimate, NodeSpread};
use fedstate_fake_apiserver::{Answer, Request as Seen, RequestLog, conflict, merge, scripted};
use http::Method;
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::{Context, Error, binding, error_policy, middleware};

/// An apiserver that accepts every write of `object`: merge patches answer the patched object,
/// status applies the object with the applied status, events are created.
fn accepting(object: Value) -> Arc<Answer> {
    Arc::new(move |req: &Seen| {
        if req.is_event() {
            return (201, req.body.clone());
        }
        let mut obj = object.clone();
        if req.content_type.contains("merge-patch") {
            merge(&mut obj, &req.body);
        } else if req.content_type.contains("apply-patch") {
            obj["status"] = req.body["status"].clone();
        }
        (200, obj)
    })
}

fn cluster(name: &str, vip: &str) -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name, "labels": {"vip": vip}},
        "spec": {"syncMode": "Push"},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterReady", "message": "",
                            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            // Room for 8 members of 1 CPU each, on 3 ready nodes: the node spread allows 3.
            "nodeSummary": {"totalNum": 3, "readyNum": 3},
            "resourceSummary": {"allocatable": {"cpu": "8", "memory": "64Gi", "pods": "330"}},
            "apiEnablements": [{"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]}]
        }
    }))
    .unwrap()
}

fn three_clusters() -> Vec<Cluster> {
    vec![
        cluster("m1", "127.0.1.1"),
        cluster("m2", "127.0.1.2"),
        cluster("m3", "127.0.1.3"),
    ]
}

/// The service's context over the mock client, with `clusters` in the Cluster store.
fn context(client: Client, clusters: Vec<Cluster>) -> Arc<Context> {
    let events_client = client.clone();
    let (store, mut writer) = reflector::store::<Cluster>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for c in clusters {
        writer.apply_watcher_event(&watcher::Event::InitApply(c));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    Arc::new(Context {
        client: client.clone(),
        scheduler_name: fedstate_api::names::DEFAULT_SCHEDULER_NAME.to_owned(),
        clusters: store,
        estimator: CapacityEstimator::new(
            vec![Arc::new(GeneralEstimate), Arc::new(NodeSpread)],
            EstimatorConfig::default(),
        ),
        backoff: super::backoff(),
        written: super::written::Written::default(),
        // Publishing to the mock apiserver, as the service does: off the critical path, once
        // no decision is in flight (see `events_published`).
        events: super::events::EventSink::spawn(
            events_client,
            Reporter {
                controller: "fedstate-scheduler".into(),
                instance: None,
            },
            tokio_util::sync::CancellationToken::new(),
        ),
    })
}

/// Waits until `n` events reached the mock apiserver (they follow the decision's writes).
async fn events_published(log: &RequestLog, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while requests(log).iter().filter(|r| r.is_event()).count() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} events not published: {:?}",
            requests(log)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The seed sample as created: namespace `db`, generation 1, resourceVersion "100".
fn mcm_object(replicas: i32) -> MultiCloudMongoDB {
    let mut obj: MultiCloudMongoDB = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/samples/seed/multicloudmongodb-minimal.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    obj.metadata.namespace = Some("db".into());
    obj.metadata.uid = Some("uid-mcm-1".into());
    obj.metadata.generation = Some(1);
    obj.metadata.resource_version = Some("100".into());
    obj.spec.replicaset = replicas;
    obj
}

const MCM_PATH: &str = "/apis/middleware.fedstate.io/v1alpha1/namespaces/db/multicloudmongodbs/multicloudmongodb-sample";

fn requests(log: &RequestLog) -> Vec<Seen> {
    log.all()
}

/// The requests in `log` that are not events.
fn writes(log: &RequestLog) -> Vec<Seen> {
    requests(log)
        .into_iter()
        .filter(|r| !r.is_event())
        .collect()
}

/// The object as the apiserver holds it after the writes in `log` (annotation and status).
fn after_writes(mut obj: MultiCloudMongoDB, log: &[Seen]) -> MultiCloudMongoDB {
    let mut value = serde_json::to_value(&obj).unwrap();
    for r in log.iter().filter(|r| !r.is_event()) {
        if r.content_type.contains("merge-patch") {
            merge(&mut value, &r.body);
        } else if r.content_type.contains("apply-patch") {
            value["status"] = r.body["status"].clone();
        }
    }
    obj = serde_json::from_value(value).unwrap();
    obj
}

fn scheduled_condition(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Scheduled")
        .cloned()
        .unwrap_or_else(|| panic!("no Scheduled condition in {status}"))
}

fn placed(log: &[Seen]) -> SchedulerResult {
    let patch = log
        .iter()
        .find(|r| r.method == Method::PATCH && !r.is_status() && !r.is_event())
        .expect("an annotation patch");
    SchedulerResult::parse(
        patch.body["metadata"]["annotations"][SCHEDULER_RESULT_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_new_object_gets_one_annotation_patch_one_status_apply_and_an_event() {
    let obj = mcm_object(5);
    let (client, log) = scripted(accepting(serde_json::to_value(&obj).unwrap()));
    let ctx = context(client, three_clusters());

    let action = middleware::reconcile(Arc::new(obj), ctx).await.unwrap();
    assert_eq!(action, Action::await_change());

    events_published(&log, 1).await;
    let log = requests(&log);
    let verbs: Vec<(String, &str)> = log
        .iter()
        .map(|r| (r.method.to_string(), r.path.as_str()))
        .collect();
    assert_eq!(
        verbs,
        [
            ("PATCH".to_owned(), MCM_PATH),
            ("PATCH".to_owned(), &*format!("{MCM_PATH}/status")),
            (
                "POST".to_owned(),
                "/apis/events.k8s.io/v1/namespaces/db/events"
            ),
        ]
    );
    let (annotation, status, event) = (&log[0], &log[1], &log[2]);

    // The annotation: a merge patch guarded by the resourceVersion we placed from.
    assert!(annotation.content_type.contains("merge-patch"));
    assert_eq!(annotation.body["metadata"]["resourceVersion"], "100");
    let result = placed(&log);
    assert_eq!(result.generation, Some(1));
    assert_eq!(result.total_data_members(), 5);
    assert_eq!(result.quorum_safe, Some(true));
    let mut members: Vec<i32> = result.clusters.iter().map(|c| c.replicaset).collect();
    members.sort_unstable();
    assert_eq!(members, [1, 2, 2], "5 members over 3 clusters: {result:?}");

    // The status: server-side apply with our field manager, Scheduled True and the placement.
    assert!(status.content_type.contains("apply-patch"));
    assert!(
        status
            .query
            .contains(&format!("fieldManager={FIELD_MANAGER_SCHEDULER}")),
        "{}",
        status.query
    );
    assert!(status.query.contains("force=true"), "{}", status.query);
    let scheduled = scheduled_condition(&status.body["status"]);
    assert_eq!(scheduled["status"], "True");
    assert_eq!(scheduled["reason"], "Scheduled");
    assert_eq!(scheduled["observedGeneration"], 1);
    assert_eq!(
        status.body["status"]["placement"]["clusters"],
        serde_json::to_value(&result.clusters).unwrap()
    );
    assert_eq!(status.body["status"]["placement"]["generation"], 1);

    // The event says where the members went.
    assert_eq!(event.body["reason"], "Scheduled");
    assert_eq!(event.body["type"], "Normal");
    assert_eq!(event.body["regarding"]["name"], "multicloudmongodb-sample");
    assert!(
        event.body["note"]
            .as_str()
            .unwrap()
            .starts_with("placed 5 members"),
        "{}",
        event.body["note"]
    );
}

/// What one MultiCloudMongoDB decision costs once the watch delivers its own writes: the
/// annotation patch reaches the cache first, then the status apply; neither view is news.
#[tokio::test]
async fn our_own_annotation_patch_does_not_cost_a_second_status_apply() {
    let obj = mcm_object(3);
    let (client, log) = scripted(stateful(serde_json::to_value(&obj).unwrap()));
    let ctx = context(client, three_clusters());
    middleware::reconcile(Arc::new(obj.clone()), ctx.clone())
        .await
        .unwrap();
    let first = writes(&log);
    assert_eq!(
        first.len(),
        2,
        "one annotation patch, one status apply: {first:?}"
    );
    // The cache as the watch shows our annotation patch (resourceVersion 101), then our status
    // apply (102): each wakes the object; neither costs a write.
    let mut annotated = after_writes(obj.clone(), &first[..1]);
    annotated.metadata.resource_version = Some("101".into());
    middleware::reconcile(Arc::new(annotated.clone()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(writes(&log).len(), 2, "{:?}", &writes(&log)[2..]);
    let mut applied = after_writes(obj.clone(), &first);
    applied.metadata.resource_version = Some("102".into());
    ctx.written.seen(&watcher::Event::Apply(applied.clone()));
    assert!(ctx.written.is_empty(), "the cache shows our write now");
    middleware::reconcile(Arc::new(applied), ctx.clone())
        .await
        .unwrap();
    assert_eq!(writes(&log).len(), 2, "{:?}", &writes(&log)[2..]);
    // Without the memory of our write, the annotated view costs a second status apply.
    let (client, log) = scripted(stateful(serde_json::to_value(&annotated).unwrap()));
    middleware::reconcile(Arc::new(annotated), context(client, three_clusters()))
        .await
        .unwrap();
    assert_eq!(writes(&log).len(), 1, "{:?}", writes(&log));
}

/// The memory of our write never hides someone else's newer one.
#[tokio::test]
async fn a_newer_edit_is_decided_from_as_the_cache_shows_it() {
    let obj = mcm_object(3);
    let (client, log) = scripted(stateful(serde_json::to_value(&obj).unwrap()));
    let ctx = context(client, three_clusters());
    middleware::reconcile(Arc::new(obj.clone()), ctx.clone())
        .await
        .unwrap();
    let first = writes(&log);
    // A user deletes the annotation (resourceVersion 103) before the watch brought ours.
    let mut edited = after_writes(obj, &first);
    edited.metadata.annotations = None;
    edited.metadata.resource_version = Some("103".into());
    middleware::reconcile(Arc::new(edited), ctx.clone())
        .await
        .unwrap();
    let again = writes(&log);
    assert_eq!(again.len(), 3, "{again:?}");
    assert_eq!(again[2].path, MCM_PATH, "the annotation is written again");
    assert_eq!(again[2].body["metadata"]["resourceVersion"], "103");
}

#[tokio::test]
async fn scaling_up_moves_exactly_the_added_members() {
    // First placement of 3 members.
    let obj = mcm_object(3);
    let (client, log) = scripted(accepting(serde_json::to_value(&obj).unwrap()));
    middleware::reconcile(Arc::new(obj.clone()), context(client, three_clusters()))
        .await
        .unwrap();
    let before = placed(&requests(&log));
    let mut scaled = after_writes(obj, &requests(&log));

    // The user scales to 5: generation 2, a new resourceVersion.
    scaled.spec.replicaset = 5;
    scaled.metadata.generation = Some(2);
    scaled.metadata.resource_version = Some("200".into());
    let (client, log) = scripted(accepting(serde_json::to_value(&scaled).unwrap()));
    middleware::reconcile(Arc::new(scaled), context(client, three_clusters()))
        .await
        .unwrap();
    let log = requests(&log);
    let writes: Vec<&Seen> = log.iter().filter(|r| !r.is_event()).collect();
    assert_eq!(writes.len(), 2, "one annotation patch, one status apply");
    assert_eq!(writes[0].body["metadata"]["resourceVersion"], "200");
    let after = placed(&log);
    assert_eq!(after.generation, Some(2));
    assert_eq!(after.total_data_members(), 5);
    // No member moves: every cluster keeps what it had, and the two new ones are added.
    let mut added = 0;
    for c in &before.clusters {
        let now = after
            .clusters
            .iter()
            .find(|a| a.cluster == c.cluster)
            .map_or(0, |a| a.replicaset);
        assert!(now >= c.replicaset, "{before:?} -> {after:?}");
        added += now - c.replicaset;
    }
    added += after
        .clusters
        .iter()
        .filter(|a| !before.clusters.iter().any(|b| b.cluster == a.cluster))
        .map(|a| a.replicaset)
        .sum::<i32>();
    assert_eq!(added, 2, "{before:?} -> {after:?}");
    let scheduled = scheduled_condition(&writes[1].body["status"]);
    assert_eq!(scheduled["reason"], "Rescaled");
    assert_eq!(scheduled["observedGeneration"], 2);
}

#[tokio::test]
async fn a_conflict_on_the_annotation_is_retried_soon_and_nothing_else_is_written() {
    let obj = Arc::new(mcm_object(3));
    let (client, log) = scripted(Arc::new(|_: &Seen| conflict()));
    let ctx = context(client, three_clusters());

    let err = middleware::reconcile(obj.clone(), ctx.clone())
        .await
        .unwrap_err();
    let Error::Write { what, source, .. } = &err;
    assert_eq!(*what, "schedulerResult annotation");
    assert!(
        matches!(source, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );
    let log = requests(&log);
    assert_eq!(log.len(), 1, "only the refused patch: {log:?}");
    assert_eq!(log[0].method, Method::PATCH);
    assert_eq!(log[0].path, MCM_PATH);
    // The newer object is on its way through the watch; look again in a second, not in ten.
    assert_eq!(
        error_policy(obj, &err, ctx),
        Action::requeue(Duration::from_secs(1))
    );
}

#[tokio::test]
async fn other_errors_back_off_longer_than_conflicts() {
    let obj = Arc::new(mcm_object(3));
    let (client, _log) = scripted(Arc::new(|_: &Seen| {
        (
            500,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500, "reason": "InternalError", "message": "etcd down"}),
        )
    }));
    let ctx = context(client, three_clusters());
    let err = middleware::reconcile(obj.clone(), ctx.clone())
        .await
        .unwrap_err();
    assert_eq!(
        error_policy(obj, &err, ctx),
        Action::requeue(Duration::from_secs(10))
    );
}

#[tokio::test]
async fn a_broken_annotation_is_replaced_and_the_condition_says_so() {
    let mut obj = mcm_object(3);
    obj.metadata.annotations = Some(
        [(
            SCHEDULER_RESULT_ANNOTATION.to_owned(),
            "{\"clusters\": [oops".to_owned(),
        )]
        .into(),
    );
    let (client, log) = scripted(accepting(serde_json::to_value(&obj).unwrap()));
    middleware::reconcile(Arc::new(obj), context(client, three_clusters()))
        .await
        .unwrap();
    let log = requests(&log);
    let result = placed(&log);
    assert_eq!(result.total_data_members(), 3);
    let status = log.iter().find(|r| r.is_status()).unwrap();
    let scheduled = scheduled_condition(&status.body["status"]);
    assert_eq!(scheduled["status"], "True");
    assert!(
        scheduled["message"]
            .as_str()
            .unwrap()
            .contains("replaced an invalid annotation"),
        "{scheduled}"
    );
}

#[tokio::test]
async fn an_invalid_spec_is_reported_and_no_placement_is_written() {
    let mut obj = mcm_object(3);
    obj.spec.scheduler = Some(
        serde_json::from_value(json!({"affinity": {"labelSelector": {"matchExpressions": [
            {"key": "region", "operator": "Near", "values": ["eu"]}
        ]}}}))
        .unwrap(),
    );
    let (client, log) = scripted(accepting(serde_json::to_value(&obj).unwrap()));
    let action = middleware::reconcile(Arc::new(obj), context(client, three_clusters()))
        .await
        .unwrap();
    // A spec error needs the user: no retry loop, the next edit brings it back.
    assert_eq!(action, Action::await_change());
    events_published(&log, 1).await;
    let log = requests(&log);
    assert!(
        log.iter()
            .all(|r| r.is_status() || r.is_event() || r.method != Method::PATCH),
        "no annotation write: {log:?}"
    );
    let status = log.iter().find(|r| r.is_status()).expect("a status apply");
    let scheduled = scheduled_condition(&status.body["status"]);
    assert_eq!(scheduled["status"], "False");
    assert_eq!(scheduled["reason"], "InvalidSpec");
    let message = scheduled["message"].as_str().unwrap();
    assert!(
        message.contains("spec.scheduler.affinity.labelSelector") && message.contains("Near"),
        "the message names the field and the operator: {message}"
    );
    assert!(status.body["status"].get("placement").is_none());
    let event = log.iter().find(|r| r.is_event()).expect("a warning event");
    assert_eq!(event.body["type"], "Warning");
    assert_eq!(event.body["reason"], "InvalidSpec");
}

#[tokio::test]
async fn an_object_naming_another_scheduler_causes_no_request() {
    let mut obj = mcm_object(3);
    obj.spec.scheduler =
        Some(serde_json::from_value(json!({"schedulerName": "someone-else"})).unwrap());
    let (client, log) = scripted(accepting(serde_json::to_value(&obj).unwrap()));
    let action = middleware::reconcile(Arc::new(obj), context(client, three_clusters()))
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(requests(&log).is_empty(), "{:?}", requests(&log));
}

const RB_PATH: &str =
    "/apis/work.karmada.io/v1alpha2/namespaces/web/resourcebindings/web-deployment";

/// The binding as the reflector caches it (what the controller hands `reconcile`).
fn cached(rb: ResourceBinding) -> Arc<super::cached::CachedBinding<ResourceBinding>> {
    Arc::new(rb.into())
}

fn binding(scheduler: &str) -> ResourceBinding {
    serde_json::from_value(json!({
        "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
        "metadata": {"name": "web-deployment", "namespace": "web", "generation": 1, "uid": "rb-1",
                     "resourceVersion": "10",
                     "labels": {"propagationpolicy.karmada.io/permanent-id": "p-1"}},
        "spec": {
            "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "web", "name": "web", "uid": "d-1"},
            "replicas": 6,
            "schedulerName": scheduler,
            "replicaRequirements": {"resourceRequest": {"cpu": "100m"}},
            "placement": {"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                                                "weightPreference": {"dynamicWeight": "AvailableReplicas"}}}
        }
    }))
    .unwrap()
}

/// The binding after the writes in `log`.
fn binding_after(rb: &ResourceBinding, log: &[Seen]) -> ResourceBinding {
    let mut value = serde_json::to_value(rb).unwrap();
    for r in log {
        merge(&mut value, &r.body);
    }
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn a_binding_naming_us_gets_one_spec_patch_and_one_status_patch() {
    let rb = binding(fedstate_api::names::DEFAULT_SCHEDULER_NAME);
    let (client, log) = scripted(accepting(serde_json::to_value(&rb).unwrap()));
    let ctx = context(client, three_clusters());
    let action = binding::reconcile(cached(rb.clone()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    let first = requests(&log);
    let verbs: Vec<(String, &str, bool)> = first
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.as_str(),
                r.content_type.contains("merge-patch"),
            )
        })
        .collect();
    assert_eq!(
        verbs,
        [
            ("PATCH".to_owned(), RB_PATH, true),
            ("PATCH".to_owned(), &*format!("{RB_PATH}/status"), true),
        ]
    );
    let (spec, status) = (&first[0].body, &first[1].body);
    // Every cluster has the same room: 6 replicas split 2/2/2.
    assert_eq!(
        spec["spec"]["clusters"],
        json!([{"name": "m1", "replicas": 2}, {"name": "m2", "replicas": 2}, {"name": "m3", "replicas": 2}])
    );
    let applied: Value = serde_json::from_str(
        spec["metadata"]["annotations"][APPLIED_PLACEMENT_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        applied,
        serde_json::to_value(rb.spec.placement.as_ref().unwrap()).unwrap()
    );
    let scheduled = scheduled_condition(&status["status"]);
    assert_eq!(
        (&scheduled["status"], &scheduled["reason"]),
        (&json!("True"), &json!("Success"))
    );
    assert_eq!(status["status"]["schedulerObservedGeneration"], 1);
    assert!(status["status"]["lastScheduledTime"].is_string());

    // Rescheduled (Karmada's rescheduleTriggeredAt) with the same result: the status only.
    let mut again = binding_after(&rb, &first);
    let last = again
        .status
        .as_ref()
        .unwrap()
        .last_scheduled_time
        .clone()
        .unwrap();
    again.spec.reschedule_triggered_at =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            last.0 + jiff::SignedDuration::from_secs(5),
        ));
    again.metadata.generation = Some(2);
    let (client, log) = scripted(accepting(serde_json::to_value(&again).unwrap()));
    binding::reconcile(cached(again), context(client, three_clusters()))
        .await
        .unwrap();
    let second = requests(&log);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].path, format!("{RB_PATH}/status"));
    assert_eq!(second[0].body["status"]["schedulerObservedGeneration"], 2);
}

/// Like [`accepting`], but a merge patch of the spec bumps `metadata.generation`, as the
/// apiserver does for any spec change of a custom resource.
fn accepting_with_generations(object: Value) -> Arc<Answer> {
    Arc::new(move |req: &Seen| {
        let mut obj = object.clone();
        merge(&mut obj, &req.body);
        if !req.is_status() && req.body.get("spec").is_some() {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        (200, obj)
    })
}

#[tokio::test]
async fn our_own_spec_write_does_not_cost_another_decision() {
    let rb = binding(fedstate_api::names::DEFAULT_SCHEDULER_NAME);
    let (client, log) = scripted(accepting_with_generations(
        serde_json::to_value(&rb).unwrap(),
    ));
    binding::reconcile(cached(rb.clone()), context(client, three_clusters()))
        .await
        .unwrap();
    let first = requests(&log);
    assert_eq!(first.len(), 2, "{first:?}");
    // The spec patch made generation 2; the status must say the scheduler saw it.
    assert_eq!(first[1].body["status"]["schedulerObservedGeneration"], 2);
    let mut done = binding_after(&rb, &first);
    done.metadata.generation = Some(2);
    let (client, log) = scripted(accepting(serde_json::to_value(&done).unwrap()));
    binding::reconcile(cached(done), context(client, three_clusters()))
        .await
        .unwrap();
    assert!(requests(&log).is_empty(), "{:?}", requests(&log));
}

/// An apiserver holding one object: every write merges into it and moves its resourceVersion
/// on; a spec write also moves its generation.
fn stateful(object: Value) -> Arc<Answer> {
    let state = std::sync::Mutex::new(object);
    Arc::new(move |req: &Seen| {
        let mut obj = state.lock().unwrap();
        merge(&mut obj, &req.body);
        if !req.is_status() && req.body.get("spec").is_some() {
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(0);
            obj["metadata"]["generation"] = json!(g + 1);
        }
        let rv: i64 = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        obj["metadata"]["resourceVersion"] = json!((rv + 1).to_string());
        (200, obj.clone())
    })
}

#[tokio::test]
async fn a_pass_before_our_status_write_reaches_the_cache_writes_nothing() {
    let rb = binding(fedstate_api::names::DEFAULT_SCHEDULER_NAME);
    let (client, log) = scripted(stateful(serde_json::to_value(&rb).unwrap()));
    let ctx = context(client, three_clusters());
    binding::reconcile(cached(rb.clone()), ctx.clone())
        .await
        .unwrap();
    let first = requests(&log);
    assert_eq!(first.len(), 2, "{first:?}");
    // What the cache holds once the watch delivered our spec patch but not yet our status
    // patch: generation 2, the placement, the old status, the spec patch's resourceVersion.
    let mut spec_only = binding_after(&rb, &first[..1]);
    spec_only.metadata.generation = Some(2);
    spec_only.metadata.resource_version = Some("11".into());
    binding::reconcile(cached(spec_only.clone()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(requests(&log).len(), 2, "{:?}", &requests(&log)[2..]);
    // The watch delivers our status write: nothing is remembered any more.
    assert_eq!(ctx.written.len(), 1);
    let mut delivered = binding_after(&rb, &first);
    delivered.metadata.generation = Some(2);
    delivered.metadata.resource_version = Some("12".into());
    binding::release_visible(&ctx, &watcher::Event::Apply(delivered));
    assert!(ctx.written.is_empty());
    // Without the memory of our write, the same pass patches the observed generation again.
    let (client, log) = scripted(stateful(serde_json::to_value(&spec_only).unwrap()));
    binding::reconcile(cached(spec_only), context(client, three_clusters()))
        .await
        .unwrap();
    assert_eq!(requests(&log).len(), 1, "{:?}", requests(&log));
}

#[tokio::test]
async fn a_scheduled_binding_that_still_fits_causes_no_request() {
    let rb = binding(fedstate_api::names::DEFAULT_SCHEDULER_NAME);
    let (client, log) = scripted(accepting(serde_json::to_value(&rb).unwrap()));
    binding::reconcile(cached(rb.clone()), context(client, three_clusters()))
        .await
        .unwrap();
    let done = binding_after(&rb, &requests(&log));
    let (client, log) = scripted(accepting(serde_json::to_value(&done).unwrap()));
    binding::reconcile(cached(done), context(client, three_clusters()))
        .await
        .unwrap();
    assert!(requests(&log).is_empty(), "{:?}", requests(&log));
}

#[tokio::test]
async fn a_binding_for_karmadas_scheduler_causes_no_request() {
    let rb = binding("default-scheduler");
    let (client, log) = scripted(accepting(serde_json::to_value(&rb).unwrap()));
    let action = binding::reconcile(cached(rb), context(client, three_clusters()))
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    assert!(requests(&log).is_empty(), "{:?}", requests(&log));
}

#[test]
fn the_fixture_cluster_is_ready_with_a_vip() {
    // Guards the scenarios above: a Cluster that failed to parse into a ready one would make
    // "no request" scenarios pass for the wrong reason.
    let c = cluster("m1", "127.0.1.1");
    assert!(c.is_ready());
    assert_eq!(c.vip(), Some("127.0.1.1"));
    assert_eq!(c.name_any(), "m1");
}
