//! Estimator client benchmarks (`docs/performance.md#what-is-measured-and-the-goals`):
//! * `estimator/cache_hit`: one capacity lookup from a fresh cache entry (merge + ledger
//!   included), alone and with a writer thread inserting entries meanwhile; the baseline is a
//!   bare `DashMap::get` of a (String, u64) key in the same run.
//! * `estimator/fanout_100`: capacities of 100 clusters, each with its own loopback gRPC
//!   estimator answering after 1–5 ms, with an empty cache; once with all healthy, once with
//!   one estimator hung: the decision should cost about the per-cluster deadline (200 ms), not
//!   the hang.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fedstate_api::karmada::{Cluster, ClusterStatus, ResourceSummary};
use fedstate_estimator_client::proto::pb;
use fedstate_estimator_client::proto::service::estimator_server::{Estimator, EstimatorServer};
use fedstate_estimator_client::{
    CapacityEstimator, CapacityQuery, ChannelConfig, ChannelFactory, ClusterRef, DiscoveryConfig,
    EstimatorConfig, EstimatorRegistry, GeneralEstimate, KarmadaAccurate, MemberShape, NodeSpread,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tonic::{Request, Response, Status};

#[derive(Clone, Debug)]
struct Simulated {
    delay: Duration,
    answer: i32,
}

#[tonic::async_trait]
impl Estimator for Simulated {
    async fn max_available_replicas(
        &self,
        _r: Request<pb::MaxAvailableReplicasRequest>,
    ) -> Result<Response<pb::MaxAvailableReplicasResponse>, Status> {
        tokio::time::sleep(self.delay).await;
        Ok(Response::new(pb::MaxAvailableReplicasResponse {
            max_replicas: self.answer,
        }))
    }
    async fn max_available_component_sets(
        &self,
        _r: Request<pb::MaxAvailableComponentSetsRequest>,
    ) -> Result<Response<pb::MaxAvailableComponentSetsResponse>, Status> {
        Err(Status::unimplemented("not simulated"))
    }
    async fn get_unschedulable_replicas(
        &self,
        _r: Request<pb::UnschedulableReplicasRequest>,
    ) -> Result<Response<pb::UnschedulableReplicasResponse>, Status> {
        Err(Status::unimplemented("not simulated"))
    }
}

async fn serve(sim: Simulated, stop: tokio::sync::watch::Receiver<bool>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut stop = stop;
        let _ = tonic::transport::Server::builder()
            .add_service(EstimatorServer::new(sim))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await;
    });
    addr
}

fn cluster(name: &str) -> ClusterRef {
    let mut c = Cluster::new(name, Default::default());
    c.status = Some(ClusterStatus {
        resource_summary: Some(ResourceSummary {
            allocatable: [
                ("cpu".to_string(), Quantity("64".into())),
                ("memory".to_string(), Quantity("256Gi".into())),
                ("pods".to_string(), Quantity("110".into())),
            ]
            .into(),
            ..ResourceSummary::default()
        }),
        ..ClusterStatus::default()
    });
    ClusterRef::new(c)
}

fn external(config: &DiscoveryConfig, cluster: &str, addr: SocketAddr) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(config.service_name(cluster)),
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

fn cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let estimator = CapacityEstimator::new(
        vec![Arc::new(GeneralEstimate), Arc::new(NodeSpread)],
        EstimatorConfig::default(),
    );
    let clusters: Vec<ClusterRef> = (0..100).map(|i| cluster(&format!("member{i}"))).collect();
    let shape = MemberShape::from_requests([("cpu", "1"), ("memory", "2Gi")]);
    let query = CapacityQuery::default();
    rt.block_on(estimator.capacities(&clusters, &shape, &query));
    let probe = clusters[42].clone();
    assert!(estimator.cached(&probe, &shape, &query).is_some());

    let baseline: dashmap::DashMap<(String, u64), u32> = clusters
        .iter()
        .map(|c| ((c.name.to_string(), shape.id().0), 5))
        .collect();
    let key = (probe.name.to_string(), shape.id().0);

    let mut g = c.benchmark_group("estimator/cache_hit");
    // A change is reported (against `--baseline`) only beyond 20 %: the regression bound.
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .noise_threshold(0.20);
    g.bench_function("baseline_dashmap_get", |b| {
        b.iter(|| *std::hint::black_box(&baseline).get(&key).unwrap())
    });
    g.bench_function("capacity_lookup", |b| {
        b.iter(|| estimator.cached(std::hint::black_box(&probe), &shape, &query))
    });
    // One writer filling other shapes of every cluster while we read.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, estimator, clusters) = (stop.clone(), estimator.clone(), clusters.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let other = MemberShape::from_requests([
                    ("cpu", "1"),
                    ("memory", &format!("{}Mi", n % 4096)),
                ]);
                rt.block_on(estimator.capacities(
                    &clusters[..10],
                    &other,
                    &CapacityQuery::default(),
                ));
            }
        })
    };
    g.bench_function("capacity_lookup_with_writer", |b| {
        b.iter(|| estimator.cached(std::hint::black_box(&probe), &shape, &query))
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let config = DiscoveryConfig::default();
    let registry = EstimatorRegistry::new(
        config.clone(),
        ChannelFactory::new(&ChannelConfig::default()).unwrap(),
    );
    let clusters: Vec<ClusterRef> = (0..100).map(|i| cluster(&format!("member{i}"))).collect();
    rt.block_on(async {
        for (i, c) in clusters.iter().enumerate() {
            let delay = if i == 99 {
                Duration::from_secs(3600) // hung
            } else {
                Duration::from_millis(1 + (i as u64 % 5))
            };
            let addr = serve(Simulated { delay, answer: 7 }, stop_rx.clone()).await;
            registry.apply_service(&external(&config, &c.name, addr));
        }
    });
    let estimator = CapacityEstimator::new(
        vec![
            Arc::new(KarmadaAccurate::new(registry.clone())),
            Arc::new(GeneralEstimate),
        ],
        EstimatorConfig {
            per_cluster_deadline: Duration::from_millis(200),
            budget: Duration::from_secs(3),
            ..EstimatorConfig::default()
        },
    );
    let shape = MemberShape::from_requests([("cpu", "1"), ("memory", "2Gi")]);
    let query = CapacityQuery::default();
    // Connect all channels once and check the answers: 99 accurate, the hung one general.
    let caps = rt.block_on(estimator.capacities(&clusters, &shape, &query));
    let accurate = caps
        .iter()
        .filter(|c| c.capacity.replicas == Some(7))
        .count();
    let hung = &caps[99];
    println!(
        "fan-out check: {accurate}/100 accurate answers; hung cluster {} → {:?} by {:?}",
        hung.cluster, hung.capacity.replicas, hung.capacity.decided_by
    );

    let mut g = c.benchmark_group("estimator/fanout_100");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    let healthy = &clusters[..99];
    g.bench_function("99_healthy_1_to_5ms", |b| {
        b.to_async(&rt).iter(|| async {
            for c in healthy {
                estimator.cluster_deleted(&c.name);
            }
            estimator.capacities(healthy, &shape, &query).await
        })
    });
    g.bench_function("100_with_one_hung_deadline_200ms", |b| {
        b.to_async(&rt).iter(|| async {
            for c in &clusters {
                estimator.cluster_deleted(&c.name);
            }
            estimator.capacities(&clusters, &shape, &query).await
        })
    });
    g.finish();
    let _ = stop_tx.send(true);
}

criterion_group!(benches, cache_hit, fanout);
criterion_main!(benches);
