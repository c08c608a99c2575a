//! End-to-end tests of `fedstate-scheduler` on the local federation (real Karmada apiserver,
//! controller-manager, karmada-scheduler and one real karmada-scheduler-estimator per member;
//! nodes faked by kwok). The scheduler runs in-process (its real controllers, dialing the real
//! estimators over mTLS). The scenarios share one federation; each creates its own objects and
//! node labels, so any one can run alone:
//!
//! 0. Capacity really comes from the estimators: with a node selector that matches no node of
//!    one member, that member's estimator answers 0 and it gets no member, although its Cluster
//!    resourceSummary shows room (a placement from the summary alone would use it).
//! 1. FedState's own MultiCloudMongoDB sample applies unchanged and gets a quorum-safe placement
//!    over three clusters from the estimators' capacity.
//! 2. Scaling 3 → 5 → 3 changes exactly the added or removed members.
//! 3. Karmada-native: a Deployment whose PropagationPolicy names our scheduler gets
//!    `spec.clusters` from us (karmada-scheduler leaves it alone) and its pods run.
//! 4. A member whose estimator cannot be reached falls back to the general estimate without
//!    stalling the others, and the others keep their accurate answers.
//! 5. Killing a member moves only that member's share to the survivors, with the Failover reason
//!    and QuorumAtRisk; an object whose members cannot fit on the survivors keeps its placement
//!    and says why.
//! 6. A member whose estimator hangs (accepts the call, never answers), then one whose estimator
//!    answers garbage (a negative count that is not Karmada's −1), costs only that member its
//!    accurate answer: the object is placed within the estimator budget, not stalled.
//!
//! Runs only with `FEDSTATE_E2E=1` (see `fedstate_e2e::harness`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use fedstate_api::scheduler_result::SchedulerResult;
use fedstate_api::{MultiCloudMongoDB, names::SCHEDULER_RESULT_ANNOTATION};
use fedstate_e2e::harness::{apply_json, eventually, propagation_policy_resource};
use fedstate_e2e::scenarios;
use fedstate_e2e::stack;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_estimator_client::proto::pb;
use fedstate_estimator_client::proto::service::estimator_server::{Estimator, EstimatorServer};
use fedstate_local::{Federation, member_name};
use fedstate_scheduler::service;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NAMESPACE: &str = "fedstate-e2e-scheduler";
const WAIT: Duration = Duration::from_secs(120);
/// Node label scenario 0 selects on.
const POOL_LABEL: &str = "fedstate-e2e/pool";

fn main() -> std::process::ExitCode {
    Suite::new("scheduler", |fed, karmada| Box::pin(setup(fed, karmada)))
        .scenarios(scenarios![
            accurate_capacity_comes_from_the_estimators,
            seed_sample_is_placed_quorum_safe,
            scaling_changes_exactly_the_difference,
            deployment_naming_us_is_scheduled_by_us,
            unreachable_estimator_falls_back,
            hung_or_garbage_estimator_falls_back_without_stalling,
            lost_member_moves_only_its_share,
        ])
        .teardown(|env| Box::pin(teardown(env)))
        .run()
}

/// The in-process scheduler every scenario talks to.
#[derive(Debug)]
struct Scheduler {
    stop: CancellationToken,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

async fn setup(fed: &Federation, karmada: &kube::Client) -> Scheduler {
    stack::install_crds(karmada, "karmada").await;
    stack::ensure_namespace(karmada, NAMESPACE).await;
    label_nodes_for_the_sample(fed).await;
    let stop = CancellationToken::new();
    let task = start_scheduler(fed, karmada.clone(), stop.clone());
    Scheduler {
        stop,
        task: std::sync::Mutex::new(Some(task)),
    }
}

async fn teardown(env: &Env<Scheduler>) {
    env.ctx.stop.cancel();
    let task = env.ctx.task.lock().ok().and_then(|mut t| t.take());
    if let Some(task) = task {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
}

/// Pool labels: members whose index is in `with` carry `POOL_LABEL=a`, the others none.
async fn pool_on(fed: &Federation, with: &[u32]) {
    for i in 1..=fed.members() {
        let client = fed.member_client(i).await.expect("member client");
        let value = with.contains(&i).then_some("a");
        stack::label_nodes(&client, POOL_LABEL, value).await;
    }
}

fn start_scheduler(
    fed: &Federation,
    client: kube::Client,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let args = stack::scheduler_args(&fed.karmada_kubeconfig(), &fed.estimator_tls());
    tokio::spawn(async move {
        let health = fedstate_runtime::admin::Health::default();
        if let Err(e) = service::controllers(client, &args, health, stop).await {
            panic!("scheduler stopped: {e}");
        }
    })
}

/// The seed sample selects nodes `deploy: mongo`; give every member's nodes that label so the
/// estimators count them (a member without such nodes would rightly report 0).
async fn label_nodes_for_the_sample(fed: &Federation) {
    for i in 1..=fed.members() {
        let client = fed.member_client(i).await.expect("member client");
        stack::label_nodes(&client, "deploy", Some("mongo")).await;
    }
}

fn sample(file: &str, name: &str) -> serde_json::Value {
    let path = fedstate_local::layout::repository_root()
        .join("deploy/samples/seed")
        .join(file);
    let mut v: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("sample")).expect("yaml");
    v["metadata"]["name"] = json!(name);
    v["metadata"]["namespace"] = json!(NAMESPACE);
    v
}

fn mcm_resource() -> ApiResource {
    ApiResource::erase::<MultiCloudMongoDB>(&())
}

/// Waits until the object's annotation is a placement for its current generation.
async fn placement_of(
    karmada: &kube::Client,
    name: &str,
    what: &str,
    accept: impl Fn(&SchedulerResult) -> bool,
) -> (MultiCloudMongoDB, SchedulerResult) {
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NAMESPACE);
    eventually(what, WAIT, || {
        let api = api.clone();
        let accept = &accept;
        async move {
            let obj = api.get(name).await.map_err(|e| e.to_string())?;
            let raw = obj
                .annotations()
                .get(SCHEDULER_RESULT_ANNOTATION)
                .cloned()
                .ok_or("no schedulerResult yet")?;
            let r = SchedulerResult::parse(&raw).map_err(|e| e.to_string())?;
            if r.generation != obj.metadata.generation {
                return Err(format!(
                    "placement is for generation {:?}, object is at {:?}",
                    r.generation, obj.metadata.generation
                ));
            }
            if !accept(&r) {
                return Err(format!("placement {raw} not accepted yet"));
            }
            Ok((obj, r))
        }
    })
    .await
}

fn per_cluster(r: &SchedulerResult) -> BTreeMap<String, i32> {
    r.clusters
        .iter()
        .filter(|c| c.replicaset > 0)
        .map(|c| (c.cluster.clone(), c.replicaset))
        .collect()
}

fn condition<'a>(obj: &'a MultiCloudMongoDB, type_: &str) -> Option<&'a fedstate_api::Condition> {
    obj.status
        .as_ref()
        .and_then(|s| fedstate_api::condition::find_condition(&s.conditions, type_))
}

async fn accurate_capacity_comes_from_the_estimators(env: &Env<Scheduler>) {
    let (fed, karmada) = (&env.fed, &env.karmada);
    // Only the nodes of members 1 and 2 carry the pool label. The Cluster resourceSummary of
    // member 3 still shows plenty of CPU, so only member 3's estimator can say "0 fit".
    let last = fed.members();
    pool_on(fed, &(1..last).collect::<Vec<_>>()).await;
    let mut obj = sample("multicloudmongodb-minimal.yaml", "pooled");
    obj["spec"]["replicaset"] = json!(3);
    obj["spec"]["spreadConstraints"] = json!({"nodeSelect": {POOL_LABEL: "a"}});
    apply_json(karmada, &mcm_resource(), obj).await;
    let (_, r) = placement_of(karmada, "pooled", "the pooled object is placed", |_| true).await;
    let placed = per_cluster(&r);
    assert!(
        !placed.contains_key(&member_name(last)),
        "{} has no matching node, its estimator says 0: {r:?}",
        member_name(last)
    );
    assert_eq!(placed.values().sum::<i32>(), 3);
    // Two clusters cannot keep a majority through the loss of either: the object says so.
    assert_eq!(r.quorum_safe, Some(false), "{r:?}");
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NAMESPACE);
    let obj = eventually("QuorumAtRisk is set", WAIT, || {
        let api = api.clone();
        async move {
            let o = api.get("pooled").await.map_err(|e| e.to_string())?;
            if condition(&o, "QuorumAtRisk").is_some_and(|c| c.is_true()) {
                Ok(o)
            } else {
                Err(format!("{:?}", condition(&o, "QuorumAtRisk")))
            }
        }
    })
    .await;
    assert!(
        condition(&obj, "QuorumAtRisk")
            .unwrap()
            .message
            .as_deref()
            .unwrap_or("")
            .contains("cluster")
    );
    api.delete("pooled", &Default::default())
        .await
        .expect("delete");
}

async fn seed_sample_is_placed_quorum_safe(env: &Env<Scheduler>) {
    seed_sample_placed_as(&env.karmada, "seed-full").await;
}

/// FedState's full sample, unchanged but for its name, placed quorum-safe 2/2/1.
async fn seed_sample_placed_as(karmada: &kube::Client, name: &str) -> SchedulerResult {
    apply_json(
        karmada,
        &mcm_resource(),
        sample("multicloudmongodb-full.yaml", name),
    )
    .await;
    let (_, r) = placement_of(karmada, name, "the seed sample is placed", |_| true).await;
    assert_eq!(r.total_data_members(), 5);
    assert_eq!(
        per_cluster(&r).len(),
        3,
        "5 members over 3 members clusters: {r:?}"
    );
    assert_eq!(r.quorum_safe, Some(true), "{r:?}");
    assert!(
        r.clusters.iter().all(|c| c.votes.unwrap_or(0) <= 2),
        "no cluster may hold a voting majority: {r:?}"
    );
    // The status tells the same story.
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NAMESPACE);
    let obj = eventually("status shows the placement", WAIT, || {
        let api = api.clone();
        async move {
            let obj = api.get(name).await.map_err(|e| e.to_string())?;
            if obj
                .status
                .as_ref()
                .and_then(|s| s.placement.as_ref())
                .is_some()
            {
                Ok(obj)
            } else {
                Err("no status.placement".into())
            }
        }
    })
    .await;
    assert_eq!(
        condition(&obj, "Scheduled").map(|c| c.is_true()),
        Some(true)
    );
    assert_eq!(
        condition(&obj, "QuorumAtRisk").map(|c| c.is_true()),
        Some(false)
    );
    assert_eq!(obj.status.unwrap().placement.unwrap().summary, r.summary());
    r
}

async fn set_replicas(karmada: &kube::Client, name: &str, replicas: i32) {
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NAMESPACE);
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicaset": replicas}})),
    )
    .await
    .expect("scale");
}

fn moved(before: &BTreeMap<String, i32>, after: &BTreeMap<String, i32>) -> i32 {
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .map(|n| (before.get(n).copied().unwrap_or(0) - after.get(n).copied().unwrap_or(0)).abs())
        .sum()
}

async fn scaling_changes_exactly_the_difference(env: &Env<Scheduler>) {
    let karmada = &env.karmada;
    let mut obj = sample("multicloudmongodb-minimal.yaml", "scaling");
    obj["spec"]["replicaset"] = json!(3);
    apply_json(karmada, &mcm_resource(), obj).await;
    let (_, three) = placement_of(karmada, "scaling", "3 members placed", |r| {
        r.total_data_members() == 3
    })
    .await;
    set_replicas(karmada, "scaling", 5).await;
    let (_, five) = placement_of(karmada, "scaling", "scaled to 5", |r| {
        r.total_data_members() == 5
    })
    .await;
    assert_eq!(
        moved(&per_cluster(&three), &per_cluster(&five)),
        2,
        "3 -> 5 must add exactly 2: {three:?} -> {five:?}"
    );
    set_replicas(karmada, "scaling", 3).await;
    let (_, back) = placement_of(karmada, "scaling", "scaled back to 3", |r| {
        r.total_data_members() == 3
    })
    .await;
    assert_eq!(
        moved(&per_cluster(&five), &per_cluster(&back)),
        2,
        "5 -> 3 must remove exactly 2: {five:?} -> {back:?}"
    );
    assert_eq!(back.quorum_safe, Some(true));
}

async fn deployment_naming_us_is_scheduled_by_us(env: &Env<Scheduler>) {
    let (fed, karmada) = (&env.fed, &env.karmada);
    let name = "native";
    apply_json(karmada, &ApiResource::erase::<Deployment>(&()), json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {"replicas": 6, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}}
    }))
    .await;
    apply_json(karmada, &propagation_policy_resource(), json!({
        "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "schedulerName": fedstate_api::names::DEFAULT_SCHEDULER_NAME,
            "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
            "placement": {"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                                                "weightPreference": {"staticWeightList": [
                                                    {"targetCluster": {"clusterNames": [member_name(1)]}, "weight": 1},
                                                    {"targetCluster": {"clusterNames": [member_name(2)]}, "weight": 2}]}}}
        }
    }))
    .await;
    let bindings: Api<fedstate_api::karmada::binding::ResourceBinding> =
        Api::namespaced(karmada.clone(), NAMESPACE);
    let rb = eventually("the binding is scheduled", WAIT, || {
        let bindings = bindings.clone();
        async move {
            let rb = bindings
                .get(&format!("{name}-deployment"))
                .await
                .map_err(|e| e.to_string())?;
            let scheduled = rb.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Scheduled" && c.status == "True")
            });
            if scheduled && !rb.spec.clusters.is_empty() {
                Ok(rb)
            } else {
                Err(format!("clusters {:?}", rb.spec.clusters))
            }
        }
    })
    .await;
    let got: BTreeMap<String, i32> = rb
        .spec
        .clusters
        .iter()
        .map(|c| (c.name.clone(), c.replicas))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([(member_name(1), 2), (member_name(2), 4)]),
        "static weights 1:2 over 6 replicas; binding placement: {}",
        serde_json::to_string(&rb.spec.placement).unwrap_or_default()
    );
    let message = &rb
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Scheduled")
        .unwrap()
        .message;
    assert_eq!(
        message,
        fedstate_scheduler::service::binding::SUCCESS_MESSAGE,
        "the condition karmada-scheduler writes"
    );
    // And our scheduler wrote it: its event on the binding names it as the reporting controller.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(karmada.clone(), NAMESPACE);
    eventually(
        "our ScheduleBindingSucceed event on the binding",
        WAIT,
        || {
            let events = events.clone();
            async move {
                let list = events
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let ours = list.items.iter().any(|e| {
                    e.reason.as_deref() == Some("ScheduleBindingSucceed")
                        && e.reporting_controller.as_deref()
                            == Some(fedstate_api::names::DEFAULT_SCHEDULER_NAME)
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some(&*format!("{name}-deployment"))
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains(&format!("{}:2", member_name(1))))
                });
                if ours {
                    Ok(())
                } else {
                    Err(format!("{} events, none ours yet", list.items.len()))
                }
            }
        },
    )
    .await;
    assert!(
        rb.annotations()
            .contains_key(fedstate_api::karmada::binding::APPLIED_PLACEMENT_ANNOTATION)
    );
    // And the workload really lands: pods Running under kwok in member 2.
    let pods: Api<Pod> = Api::namespaced(
        fed.member_client(2).await.expect("member client"),
        NAMESPACE,
    );
    eventually("4 pods run in member 2", WAIT, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .map_err(|e| e.to_string())?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if running == 4 {
                Ok(())
            } else {
                Err(format!("{running} running"))
            }
        }
    })
    .await;
}

async fn unreachable_estimator_falls_back(env: &Env<Scheduler>) {
    let (fed, karmada) = (&env.fed, &env.karmada);
    // Only member 2's nodes carry the pool label: member 1's estimator answers 0 for the pool.
    // Member 3 has no such node either, and its estimator becomes unreachable: only then does the
    // general estimate (which cannot see node labels) stand in, for member 3 alone. Were every
    // accurate answer dropped on one failure (Karmada issue #6815), member 1 would get members.
    pool_on(fed, &[2]).await;
    let member = fed.members();
    let services: Api<Service> = Api::namespaced(karmada.clone(), "karmada-system");
    let svc_name = format!("karmada-scheduler-estimator-{}", member_name(member));
    let port = fedstate_local::ESTIMATOR_SERVICE_PORT;
    let break_it = json!({"spec": {"ports": [{"name": "grpc-or-https", "port": port, "protocol": "TCP", "targetPort": 9}]}});
    services
        .patch(&svc_name, &PatchParams::default(), &Patch::Merge(&break_it))
        .await
        .expect("break estimator service");

    let mut obj = sample("multicloudmongodb-minimal.yaml", "fallback");
    obj["spec"]["replicaset"] = json!(3);
    // Small members: the room other scenarios' placements hold in the ledger does not matter.
    obj["spec"]["resource"] = json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}});
    obj["spec"]["spreadConstraints"] = json!({"nodeSelect": {POOL_LABEL: "a"}});
    let started = std::time::Instant::now();
    apply_json(karmada, &mcm_resource(), obj).await;
    let (_, r) = placement_of(
        karmada,
        "fallback",
        "placed despite one unreachable estimator",
        |_| true,
    )
    .await;
    let placed = per_cluster(&r);
    eprintln!(
        "  placed {:.1}s after create with {} unreachable: {}",
        started.elapsed().as_secs_f32(),
        member_name(member),
        r.summary()
    );
    assert!(
        !placed.contains_key(&member_name(1)),
        "member1's own estimator still says 0 for the pool: {r:?}"
    );
    assert!(
        placed.contains_key(&member_name(member)),
        "the unreachable member counts with its general estimate: {r:?}"
    );
    assert_eq!(placed.values().sum::<i32>(), 3, "{r:?}");

    let restore = json!({"spec": {"ports": [{"name": "grpc-or-https", "port": port, "protocol": "TCP", "targetPort": fed.estimator_address(member).port()}]}});
    services
        .patch(&svc_name, &PatchParams::default(), &Patch::Merge(&restore))
        .await
        .expect("restore estimator service");
}

/// How a faulty estimator misbehaves.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Takes the call and never answers.
    Hang,
    /// Answers every call with this count.
    Garbage(i32),
}

#[tonic::async_trait]
impl Estimator for Fault {
    async fn max_available_replicas(
        &self,
        _r: tonic::Request<pb::MaxAvailableReplicasRequest>,
    ) -> Result<tonic::Response<pb::MaxAvailableReplicasResponse>, tonic::Status> {
        match *self {
            Fault::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Err(tonic::Status::deadline_exceeded("hung"))
            }
            Fault::Garbage(n) => Ok(tonic::Response::new(pb::MaxAvailableReplicasResponse {
                max_replicas: n,
            })),
        }
    }

    async fn max_available_component_sets(
        &self,
        _r: tonic::Request<pb::MaxAvailableComponentSetsRequest>,
    ) -> Result<tonic::Response<pb::MaxAvailableComponentSetsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("faulty estimator"))
    }

    async fn get_unschedulable_replicas(
        &self,
        _r: tonic::Request<pb::UnschedulableReplicasRequest>,
    ) -> Result<tonic::Response<pb::UnschedulableReplicasResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::UnschedulableReplicasResponse {
            unschedulable_replicas: 0,
        }))
    }
}

/// A faulty estimator on loopback with the federation's serving certificate and mutual TLS, as
/// the real ones; its port. Served until `stop`.
async fn serve_faulty(fed: &Federation, fault: Fault, stop: CancellationToken) -> u16 {
    use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
    let pki = fedstate_local::pki::Pki::at(fed.run_dir().join("pki"));
    let read = |p: std::path::PathBuf| {
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read(pki.server_cert()),
            read(pki.server_key()),
        ))
        .client_ca_root(Certificate::from_pem(read(pki.ca_cert())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the faulty estimator");
    let port = listener.local_addr().expect("its address").port();
    let server = Server::builder()
        .tls_config(tls)
        .expect("faulty estimator TLS")
        .add_service(EstimatorServer::new(fault));
    tokio::spawn(async move {
        let _ = server
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            )
            .await;
    });
    port
}

async fn hung_or_garbage_estimator_falls_back_without_stalling(env: &Env<Scheduler>) {
    let (fed, karmada) = (&env.fed, &env.karmada);
    // As in the unreachable case: only member 2's nodes are in the pool, so member 1's estimator
    // answers 0; member 3's estimator is replaced by a faulty one, and only its general estimate
    // (which cannot see node labels) may stand in, for member 3 alone.
    pool_on(fed, &[2]).await;
    let member = fed.members();
    let services: Api<Service> = Api::namespaced(karmada.clone(), "karmada-system");
    let svc_name = format!("karmada-scheduler-estimator-{}", member_name(member));
    let port = fedstate_local::ESTIMATOR_SERVICE_PORT;
    let target = |p: u16| json!({"spec": {"ports": [{"name": "grpc-or-https", "port": port, "protocol": "TCP", "targetPort": p}]}});
    // Each case its own CPU request: a new shape, so no cached answer of member 3 is used.
    for (fault, cpu) in [(Fault::Hang, "111m"), (Fault::Garbage(-987_654), "112m")] {
        let stop = CancellationToken::new();
        let faulty = serve_faulty(fed, fault, stop.clone()).await;
        services
            .patch(
                &svc_name,
                &PatchParams::default(),
                &Patch::Merge(&target(faulty)),
            )
            .await
            .expect("point the estimator service at the faulty estimator");
        let name = match fault {
            Fault::Hang => "hung-estimator",
            Fault::Garbage(_) => "garbage-estimator",
        };
        let mut obj = sample("multicloudmongodb-minimal.yaml", name);
        obj["spec"]["replicaset"] = json!(3);
        obj["spec"]["resource"] = json!({"requests": {"cpu": cpu, "memory": "128Mi"}, "limits": {"cpu": cpu, "memory": "128Mi"}});
        obj["spec"]["spreadConstraints"] = json!({"nodeSelect": {POOL_LABEL: "a"}});
        let started = std::time::Instant::now();
        apply_json(karmada, &mcm_resource(), obj).await;
        let (_, r) = placement_of(
            karmada,
            name,
            &format!("placed despite a {fault:?} estimator"),
            |_| true,
        )
        .await;
        let took = started.elapsed();
        let placed = per_cluster(&r);
        eprintln!(
            "  placed {:.1}s after create with {}'s estimator {fault:?}: {}",
            took.as_secs_f32(),
            member_name(member),
            r.summary()
        );
        // The scheduler's flags: 2 s per estimator call, 4 s for all of them; the rest is the
        // watch and two writes. A scheduler that waited for the hung call would not place at all.
        assert!(
            took < Duration::from_secs(20),
            "{fault:?}: placed only after {took:?}: the faulty estimator stalled the decision"
        );
        assert!(
            !placed.contains_key(&member_name(1)),
            "{fault:?}: member1's own estimator still says 0 for the pool: {r:?}"
        );
        assert!(
            placed.contains_key(&member_name(member)),
            "{fault:?}: the faulty member counts with its general estimate: {r:?}"
        );
        assert_eq!(placed.values().sum::<i32>(), 3, "{fault:?}: {r:?}");
        stop.cancel();
    }
    services
        .patch(
            &svc_name,
            &PatchParams::default(),
            &Patch::Merge(&target(fed.estimator_address(member).port())),
        )
        .await
        .expect("restore estimator service");
}

async fn lost_member_moves_only_its_share(env: &Env<Scheduler>) {
    let (fed, karmada) = (&env.fed, &env.karmada);
    // A 3-member object sits one member per cluster; losing one cluster moves that member to a
    // survivor. A 5-member seed sample cannot move: the two survivors have 2 nodes each and
    // members of one set go to different nodes, so it keeps its placement and says why.
    let seed = seed_sample_placed_as(karmada, "failover-seed").await;
    let mut obj = sample("multicloudmongodb-minimal.yaml", "failover-3");
    obj["spec"]["replicaset"] = json!(3);
    apply_json(karmada, &mcm_resource(), obj).await;
    let (_, three) = placement_of(
        karmada,
        "failover-3",
        "the 3-member object is placed",
        |r| r.total_data_members() == 3,
    )
    .await;
    let before = per_cluster(&three);
    let victim_index = (1..=fed.members())
        .find(|i| {
            before.contains_key(&member_name(*i))
                && per_cluster(&seed).contains_key(&member_name(*i))
        })
        .expect("a member hosts members of both objects");
    let victim = member_name(victim_index);
    fed.kill_member(victim_index).expect("kill member");
    let (_, after) = placement_of(
        karmada,
        "failover-3",
        "the lost member's share moved",
        |r| {
            r.clusters
                .iter()
                .all(|c| c.cluster != victim || c.replicaset == 0)
        },
    )
    .await;
    let after = per_cluster(&after);
    assert_eq!(after.values().sum::<i32>(), 3);
    for (cluster, n) in &before {
        if *cluster != victim {
            assert!(
                after.get(cluster).copied().unwrap_or(0) >= *n,
                "{cluster} lost members: {before:?} -> {after:?}"
            );
        }
    }
    assert_eq!(
        moved(&before, &after),
        2 * before[&victim],
        "only the victim's members move: {before:?} -> {after:?}"
    );
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NAMESPACE);
    let obj = eventually(
        "the 3-member object says Failover and QuorumAtRisk",
        WAIT,
        || {
            let api = api.clone();
            async move {
                let o = api.get("failover-3").await.map_err(|e| e.to_string())?;
                let failover = condition(&o, "Scheduled")
                    .is_some_and(|c| c.is_true() && c.reason.as_deref() == Some("Failover"));
                let at_risk = condition(&o, "QuorumAtRisk").is_some_and(|c| c.is_true());
                if failover && at_risk {
                    Ok(o)
                } else {
                    Err(format!(
                        "{:?} / {:?}",
                        condition(&o, "Scheduled"),
                        condition(&o, "QuorumAtRisk")
                    ))
                }
            }
        },
    )
    .await;
    assert!(
        condition(&obj, "QuorumAtRisk")
            .unwrap()
            .message
            .as_deref()
            .unwrap_or("")
            .contains("majority")
    );

    let seed_obj = eventually("the seed sample says it cannot move", WAIT, || {
        let api = api.clone();
        async move {
            let o = api.get("failover-seed").await.map_err(|e| e.to_string())?;
            match condition(&o, "Scheduled") {
                Some(c) if !c.is_true() => Ok(o),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let scheduled = condition(&seed_obj, "Scheduled").unwrap();
    assert_eq!(
        scheduled.reason.as_deref(),
        Some("InsufficientCapacity"),
        "{scheduled:?}"
    );
    assert!(
        scheduled
            .message
            .as_deref()
            .unwrap_or("")
            .contains("stays in force"),
        "{scheduled:?}"
    );
    let kept = SchedulerResult::parse(&seed_obj.annotations()[SCHEDULER_RESULT_ANNOTATION])
        .expect("annotation");
    assert_eq!(
        per_cluster(&kept),
        per_cluster(&seed),
        "the placement in force is kept"
    );

    fed.restore_member(victim_index)
        .await
        .expect("restore member");
}
