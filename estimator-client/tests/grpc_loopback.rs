//! Our client against an in-process tonic server implementing the same `Estimator` service over
//! real loopback gRPC: scripted answers, delays, errors and hangs.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedstate_api::karmada::{Cluster, ClusterStatus, ResourceSummary};
use fedstate_estimator_client::metrics as names;
use fedstate_estimator_client::proto::pb;
use fedstate_estimator_client::proto::service::estimator_server::{Estimator, EstimatorServer};
use fedstate_estimator_client::{
    CapacityEstimator, CapacityPlugin, CapacityQuery, ChannelConfig, ChannelFactory, ClusterRef,
    DiscoveryConfig, Estimate, EstimatorClient, EstimatorConfig, EstimatorRegistry,
    GeneralEstimate, KarmadaAccurate, MemberShape, ObjectRef, client,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::{Code, Request, Response, Status};

#[derive(Clone, Debug)]
enum Behaviour {
    Answer(i32),
    Delay(Duration, i32),
    Fail(Code),
    Hang,
}

#[derive(Debug, Default)]
struct Seen {
    replicas: Vec<(pb::MaxAvailableReplicasRequest, Option<String>)>,
    unschedulable: Vec<pb::UnschedulableReplicasRequest>,
}

#[derive(Clone, Debug)]
struct Scripted {
    behaviour: Arc<Mutex<Behaviour>>,
    /// Pre-1.16 estimator: no MaxAvailableComponentSets.
    old: bool,
    seen: Arc<Mutex<Seen>>,
}

impl Scripted {
    async fn act(&self) -> Result<i32, Status> {
        let b = self.behaviour.lock().unwrap().clone();
        match b {
            Behaviour::Answer(n) => Ok(n),
            Behaviour::Delay(d, n) => {
                tokio::time::sleep(d).await;
                Ok(n)
            }
            Behaviour::Fail(code) => Err(Status::new(code, "scripted failure")),
            Behaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Err(Status::internal("hung"))
            }
        }
    }
}

#[tonic::async_trait]
impl Estimator for Scripted {
    async fn max_available_replicas(
        &self,
        request: Request<pb::MaxAvailableReplicasRequest>,
    ) -> Result<Response<pb::MaxAvailableReplicasResponse>, Status> {
        let object = request
            .metadata()
            .get("object")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.seen
            .lock()
            .unwrap()
            .replicas
            .push((request.into_inner(), object));
        let max_replicas = self.act().await?;
        Ok(Response::new(pb::MaxAvailableReplicasResponse {
            max_replicas,
        }))
    }

    async fn max_available_component_sets(
        &self,
        _request: Request<pb::MaxAvailableComponentSetsRequest>,
    ) -> Result<Response<pb::MaxAvailableComponentSetsResponse>, Status> {
        if self.old {
            return Err(Status::unimplemented("unknown method"));
        }
        let max_sets = self.act().await?;
        Ok(Response::new(pb::MaxAvailableComponentSetsResponse {
            max_sets,
        }))
    }

    async fn get_unschedulable_replicas(
        &self,
        request: Request<pb::UnschedulableReplicasRequest>,
    ) -> Result<Response<pb::UnschedulableReplicasResponse>, Status> {
        self.seen
            .lock()
            .unwrap()
            .unschedulable
            .push(request.into_inner());
        let unschedulable_replicas = self.act().await?;
        Ok(Response::new(pb::UnschedulableReplicasResponse {
            unschedulable_replicas,
        }))
    }
}

/// A running loopback estimator; `stop` shuts it down (every test stops what it starts).
struct TestServer {
    addr: SocketAddr,
    scripted: Scripted,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    async fn start(behaviour: Behaviour) -> Self {
        Self::start_at("127.0.0.1:0".parse().unwrap(), behaviour, false).await
    }

    async fn start_at(addr: SocketAddr, behaviour: Behaviour, old: bool) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scripted = Scripted {
            behaviour: Arc::new(Mutex::new(behaviour)),
            old,
            seen: Arc::default(),
        };
        let (tx, rx) = oneshot::channel();
        let svc = EstimatorServer::new(scripted.clone());
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = rx.await;
                    },
                )
                .await
                .unwrap();
        });
        Self {
            addr,
            scripted,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            // A hung handler keeps a graceful shutdown waiting: give it 2 s, then abort.
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

fn external_service(config: &DiscoveryConfig, cluster: &str, addr: SocketAddr) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(config.service_name(cluster)),
            namespace: Some(config.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(addr.ip().to_string()),
            ports: Some(vec![ServicePort {
                port: config.port,
                target_port: Some(IntOrString::Int(i32::from(addr.port()))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn registry() -> EstimatorRegistry {
    let factory = ChannelFactory::new(&ChannelConfig::default()).unwrap();
    EstimatorRegistry::new(DiscoveryConfig::default(), factory)
}

fn client_for(registry: &EstimatorRegistry, cluster: &str, addr: SocketAddr) -> EstimatorClient {
    registry.apply_service(&external_service(registry.config(), cluster, addr));
    registry.refresh(cluster, None).unwrap()
}

/// A Ready cluster whose resource summary fits `general` members of 1 CPU.
fn cluster(name: &str, general: u32) -> ClusterRef {
    let mut c = Cluster::new(name, Default::default());
    c.status = Some(ClusterStatus {
        resource_summary: Some(ResourceSummary {
            allocatable: BTreeMap::from([
                ("cpu".into(), Quantity(general.to_string())),
                ("pods".into(), Quantity("110".into())),
            ]),
            ..ResourceSummary::default()
        }),
        ..ClusterStatus::default()
    });
    ClusterRef::new(c)
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[tokio::test]
async fn the_three_rpcs_round_trip_with_cluster_name_metadata_and_nanoseconds() {
    let server = TestServer::start(Behaviour::Answer(7)).await;
    let registry = registry();
    let client = client_for(&registry, "member1", server.addr);
    let shape = MemberShape::from_requests([("cpu", "500m")]);
    let object = ObjectRef {
        api_version: "middleware.fedstate.io/v1alpha1".into(),
        kind: "MongoDB".into(),
        namespace: "db".into(),
        name: "demo".into(),
    };
    let n = client
        .max_available_replicas(&shape, Some(&object), soon(5000))
        .await
        .unwrap();
    assert_eq!(n, 7);
    let u = client
        .get_unschedulable_replicas(&object, Duration::from_secs(3), soon(5000))
        .await
        .unwrap();
    assert_eq!(u, 7);
    let sets = client
        .max_available_component_sets(
            "db",
            &[("mongo".into(), shape.clone(), 3)],
            None,
            soon(5000),
        )
        .await
        .unwrap();
    assert_eq!(sets, Some(7));
    {
        let seen = server.scripted.seen.lock().unwrap();
        let (req, meta) = &seen.replicas[0];
        assert_eq!(req.cluster, "member1");
        let rr = req.replica_requirements.as_ref().unwrap();
        assert_eq!(rr.resource_request["cpu"].string.as_deref(), Some("500m"));
        assert_eq!(rr.resource_request_bytes["cpu"], b"\x0a\x04500m");
        assert_eq!(meta.as_deref(), Some("kind=MongoDB, name=db/demo"));
        assert_eq!(seen.unschedulable[0].unschedulable_threshold, 3_000_000_000);
        assert_eq!(
            seen.unschedulable[0].resource.as_ref().unwrap().kind,
            "MongoDB"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn an_old_estimator_without_component_sets_is_recognised() {
    let server =
        TestServer::start_at("127.0.0.1:0".parse().unwrap(), Behaviour::Answer(4), true).await;
    let client = client_for(&registry(), "m1", server.addr);
    let shape = MemberShape::from_requests([("cpu", "1")]);
    let sets = client
        .max_available_component_sets(
            "db",
            &[("mongo".into(), shape.clone(), 1)],
            None,
            soon(5000),
        )
        .await
        .unwrap();
    assert_eq!(sets, None);
    // Its MaxAvailableReplicas still works.
    assert_eq!(
        client
            .max_available_replicas(&shape, None, soon(5000))
            .await
            .unwrap(),
        4
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failing_or_hung_estimator_costs_only_its_own_cluster() {
    let ok = TestServer::start(Behaviour::Answer(3)).await;
    let slow = TestServer::start(Behaviour::Delay(Duration::from_millis(50), 2)).await;
    let failing = TestServer::start(Behaviour::Fail(Code::Internal)).await;
    let hung = TestServer::start(Behaviour::Hang).await;
    let registry = registry();
    for (name, s) in [
        ("ok", &ok),
        ("slow", &slow),
        ("failing", &failing),
        ("hung", &hung),
    ] {
        client_for(&registry, name, s.addr);
    }
    let estimator = CapacityEstimator::new(
        vec![
            Arc::new(KarmadaAccurate::new(registry.clone())),
            Arc::new(GeneralEstimate),
        ],
        EstimatorConfig {
            per_cluster_deadline: Duration::from_millis(1500),
            budget: Duration::from_secs(3),
            ..EstimatorConfig::default()
        },
    );
    let clusters = [
        cluster("ok", 10),
        cluster("slow", 10),
        cluster("failing", 8),
        cluster("hung", 9),
    ];
    let shape = MemberShape::from_requests([("cpu", "1")]);
    let started = Instant::now();
    let caps = estimator
        .capacities(&clusters, &shape, &CapacityQuery::default())
        .await;
    // The hang is 30 s; we waited for its deadline only.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let got: HashMap<&str, (Option<u32>, Option<&str>)> = caps
        .iter()
        .map(|c| (&*c.cluster, (c.capacity.replicas, c.capacity.decided_by)))
        .collect();
    assert_eq!(got["ok"], (Some(3), Some(KarmadaAccurate::NAME)));
    assert_eq!(got["slow"], (Some(2), Some(KarmadaAccurate::NAME)));
    assert_eq!(got["failing"], (Some(8), Some(GeneralEstimate::NAME)));
    assert_eq!(got["hung"], (Some(9), Some(GeneralEstimate::NAME)));
    let hung_answer = &caps[3].answers[0];
    assert!(
        matches!(&hung_answer.estimate, Estimate::Failed(r) if r.contains("deadline")),
        "{hung_answer:?}"
    );
    for s in [ok, slow, failing, hung] {
        s.stop().await;
    }
}

#[tokio::test]
async fn the_client_reconnects_after_the_estimator_restarts() {
    let server = TestServer::start(Behaviour::Answer(5)).await;
    let addr = server.addr;
    let client = client_for(&registry(), "m1", addr);
    let shape = MemberShape::from_requests([("cpu", "1")]);
    assert_eq!(
        client
            .max_available_replicas(&shape, None, soon(5000))
            .await
            .unwrap(),
        5
    );
    server.stop().await;
    let down = client
        .max_available_replicas(&shape, None, soon(2000))
        .await;
    assert!(down.is_err(), "{down:?}");
    let again = TestServer::start_at(addr, Behaviour::Answer(6), false).await;
    // The same client (same lazy channel) gets through once the server is back.
    let mut last = None;
    for _ in 0..20 {
        match client
            .max_available_replicas(&shape, None, soon(2000))
            .await
        {
            Ok(n) => {
                last = Some(n);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(last, Some(6));
    again.stop().await;
}

#[tokio::test]
async fn a_changed_service_moves_the_channel_to_the_new_estimator() {
    let first = TestServer::start(Behaviour::Answer(1)).await;
    let second = TestServer::start(Behaviour::Answer(2)).await;
    let registry = registry();
    client_for(&registry, "m1", first.addr);
    let accurate = KarmadaAccurate::new(registry.clone());
    let c = cluster("m1", 10);
    let shape = MemberShape::from_requests([("cpu", "1")]);
    assert_eq!(
        accurate.estimate(&c, &shape, soon(5000)).await,
        Estimate::Replicas(1)
    );
    // The ExternalName Service now points at the second estimator (what the watcher applies).
    registry.apply_service(&external_service(registry.config(), "m1", second.addr));
    assert_eq!(
        accurate.estimate(&c, &shape, soon(5000)).await,
        Estimate::Replicas(2)
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn an_unreachable_first_address_falls_through_to_the_next() {
    let server = TestServer::start(Behaviour::Answer(9)).await;
    // Port 1 on loopback refuses connections.
    let factory = ChannelFactory::new(&ChannelConfig::default()).unwrap();
    let targets = ["127.0.0.1:1".to_string(), server.addr.to_string()]
        .into_iter()
        .map(|address| client::Target {
            channel: factory.channel(&address).unwrap(),
            address,
        })
        .collect();
    let client = EstimatorClient::new("m1", targets);
    let shape = MemberShape::from_requests([("cpu", "1")]);
    assert_eq!(
        client
            .max_available_replicas(&shape, None, soon(5000))
            .await
            .unwrap(),
        9
    );
    server.stop().await;
}

#[tokio::test]
async fn rpc_and_cache_metrics_are_emitted() {
    use metrics_util::debugging::DebuggingRecorder;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let server = TestServer::start(Behaviour::Answer(3)).await;
    let registry = registry();
    client_for(&registry, "m1", server.addr);
    let estimator = CapacityEstimator::new(
        vec![Arc::new(KarmadaAccurate::new(registry.clone()))],
        EstimatorConfig::default(),
    );
    let clusters = [cluster("m1", 10)];
    let shape = MemberShape::from_requests([("cpu", "1")]);
    let q = CapacityQuery::default();
    estimator.capacities(&clusters, &shape, &q).await; // miss → RPC
    estimator.capacities(&clusters, &shape, &q).await; // hit
    estimator.assume("db/x", "m1", &shape, 1);
    server.stop().await;

    let snapshot = snapshotter.snapshot().into_hashmap();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot.iter().find_map(|(k, (_, _, v))| {
            let key = k.key();
            let matches = key.name() == name
                && labels
                    .iter()
                    .all(|(l, val)| key.labels().any(|x| x.key() == *l && x.value() == *val));
            matches.then(|| format!("{v:?}"))
        })
    };
    assert_eq!(
        find(
            names::RPC_TOTAL,
            &[
                ("cluster", "m1"),
                ("method", "MaxAvailableReplicas"),
                ("outcome", "ok")
            ]
        )
        .as_deref(),
        Some("Counter(1)")
    );
    assert!(find(names::RPC_DURATION, &[("cluster", "m1")]).is_some());
    assert_eq!(find(names::CACHE_HITS, &[]).as_deref(), Some("Counter(1)"));
    assert!(find(names::CACHE_MISSES, &[("reason", "missing")]).is_some());
    assert!(find(names::CACHE_ENTRY_AGE, &[]).is_some());
    assert!(find(names::LEDGER_ENTRIES, &[]).is_some());
}
