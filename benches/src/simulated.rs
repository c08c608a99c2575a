//! Member Clusters without member clusters, for a federation of many: Cluster objects in the
//! Karmada apiserver in `Pull` mode (so karmada-controller-manager does not try to reach them),
//! whose agent and estimator this process plays:
//!
//! * the agent: the status (Ready, the API enablements and the resource and node summaries of a
//!   real member, copied), and the heartbeat Lease in `karmada-cluster` renewed every 10 s, as
//!   karmada-agent does; without it Karmada's cluster controller marks the cluster Unknown after
//!   its 40 s grace period and taints it;
//! * the estimator: one in-process gRPC server speaking Karmada's estimator protocol with mutual
//!   TLS (the federation's serving certificate and CA), behind one ExternalName Service per
//!   cluster (`karmada-scheduler-estimator-<cluster>`), so karmada-scheduler and ours dial it
//!   exactly as they dial a real one. It answers from a fixed capacity per cluster and counts
//!   the calls.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use fedstate_api::karmada::Cluster;
use fedstate_estimator_client::proto::service::estimator_server::{Estimator, EstimatorServer};
use fedstate_estimator_client::proto::{k8s, pb};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

const FIELD_MANAGER: &str = "fedstate-bench";
/// Karmada's namespace of cluster heartbeat Leases.
const LEASE_NAMESPACE: &str = "karmada-cluster";

/// Capacity of simulated cluster `index`: 16–64 CPUs, 64–256 GiB, 2,500 pods.
fn capacity(index: usize) -> BTreeMap<&'static str, i128> {
    let f = 1 + (index % 4) as i128;
    [
        ("cpu", 16_000 * f),
        ("memory", (64i128 << 30) * 1000 * f),
        ("pods", 2_500_000),
    ]
    .into()
}

/// The simulated estimator of every simulated cluster.
#[derive(Clone, Debug, Default)]
pub struct SimEstimator {
    /// Cluster name → index (its capacity).
    clusters: Arc<BTreeMap<String, usize>>,
    /// Calls answered so far.
    pub calls: Arc<AtomicU64>,
}

fn millis(q: &k8s::Quantity) -> Option<i128> {
    let s = q.string.as_deref()?;
    fedstate_api::quantity::parse_quantity(
        &k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.to_owned()),
    )
    .ok()
}

impl SimEstimator {
    /// Replicas of `requests` (milli-units) that fit in cluster `index`.
    pub fn answer(index: usize, requests: &BTreeMap<String, i128>) -> i32 {
        let cap = capacity(index);
        let mut most = cap["pods"] / 1000;
        for (r, want) in requests {
            if *want <= 0 {
                continue;
            }
            if let Some(have) = cap.get(r.as_str()) {
                most = most.min(have / want);
            }
        }
        i32::try_from(most).unwrap_or(i32::MAX)
    }
}

#[tonic::async_trait]
impl Estimator for SimEstimator {
    async fn max_available_replicas(
        &self,
        r: Request<pb::MaxAvailableReplicasRequest>,
    ) -> Result<Response<pb::MaxAvailableReplicasResponse>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r = r.into_inner();
        let Some(&index) = self.clusters.get(&r.cluster) else {
            return Err(Status::not_found(format!(
                "no simulated cluster {}",
                r.cluster
            )));
        };
        let req = r.replica_requirements.unwrap_or_default();
        let mut requests: BTreeMap<String, i128> = req
            .resource_request
            .iter()
            .filter_map(|(k, q)| Some((k.clone(), millis(q)?)))
            .collect();
        if requests.is_empty() {
            // 1.19's form: the same Quantity messages, serialized.
            for (k, b) in &req.resource_request_bytes {
                if let Ok(q) = <k8s::Quantity as prost::Message>::decode(b.as_slice())
                    && let Some(m) = millis(&q)
                {
                    requests.insert(k.clone(), m);
                }
            }
        }
        Ok(Response::new(pb::MaxAvailableReplicasResponse {
            max_replicas: Self::answer(index, &requests),
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
        Ok(Response::new(pb::UnschedulableReplicasResponse {
            unschedulable_replicas: 0,
        }))
    }
}

/// Simulated clusters and their estimator, until [`Simulated::stop`].
#[derive(Debug)]
pub struct Simulated {
    pub names: Vec<String>,
    pub estimator: SimEstimator,
    stop: CancellationToken,
}

/// TLS files of the federation for the estimator server.
#[derive(Clone, Debug)]
pub struct ServerTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
    pub client_ca: &'a Path,
}

impl Simulated {
    /// Creates `count` Pull-mode Clusters named `sim0001…` from number `first` on (regions
    /// `r0`–`r4`, providers `p0`–`p2`) with `template`'s status and, with `tls`, estimator
    /// Services and the estimator. With `heartbeat`, renews their Leases from now on and waits
    /// until every one is Ready and untainted; without, they turn Unknown after Karmada's grace
    /// period (the footprint benchmark only needs the objects).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        karmada: &kube::Client,
        first: usize,
        count: usize,
        template: &Cluster,
        tls: Option<ServerTls<'_>>,
        estimator_namespace: &str,
        service_port: u16,
        heartbeat: bool,
    ) -> anyhow::Result<Simulated> {
        let names: Vec<String> = (first..first + count)
            .map(|i| format!("sim{i:04}"))
            .collect();
        let estimator = SimEstimator {
            clusters: Arc::new(
                names
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, n)| (n, i))
                    .collect(),
            ),
            calls: Arc::default(),
        };
        let stop = CancellationToken::new();
        let estimator_port = match tls {
            Some(tls) => Some(serve(estimator.clone(), tls, stop.clone()).await?),
            None => None,
        };
        ensure_namespace(karmada, LEASE_NAMESPACE).await?;
        let clusters: Api<Cluster> = Api::all(karmada.clone());
        let services: Api<Service> = Api::namespaced(karmada.clone(), estimator_namespace);
        let status = template.status.clone().unwrap_or_default();
        stream::iter(names.iter().enumerate())
            .map(|(i, name)| {
                let (clusters, services, status) = (&clusters, &services, &status);
                async move {
                    let c = json!({
                        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
                        "metadata": {"name": name, "labels": {"fedstate.io/simulated": "true"}},
                        "spec": {"syncMode": "Pull", "region": format!("r{}", i % 5),
                                 "provider": format!("p{}", i % 3), "zones": [format!("z{}", i % 7)]},
                    });
                    clusters
                        .patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&c))
                        .await
                        .with_context(|| format!("create Cluster {name}"))?;
                    let mut st = serde_json::to_value(status)?;
                    let now = jiff::Timestamp::now().to_string();
                    st["conditions"] = json!([{"type": "Ready", "status": "True", "reason": "ClusterReady",
                        "message": "cluster is healthy and ready to accept workloads", "lastTransitionTime": now}]);
                    clusters
                        .patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": st})))
                        .await
                        .with_context(|| format!("status of Cluster {name}"))?;
                    if let Some(port) = estimator_port {
                        let svc = json!({
                            "apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": format!("karmada-scheduler-estimator-{name}")},
                            "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                                     "ports": [{"port": service_port, "targetPort": port, "protocol": "TCP"}]},
                        });
                        services
                            .patch(
                                &format!("karmada-scheduler-estimator-{name}"),
                                &PatchParams::apply(FIELD_MANAGER).force(),
                                &Patch::Apply(&svc),
                            )
                            .await
                            .with_context(|| format!("estimator Service of {name}"))?;
                    }
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await?;
        if heartbeat {
            renew_leases(karmada, &names).await?;

            let (karmada, names, stop) = (karmada.clone(), names.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                    }
                    if let Err(e) = renew_leases(&karmada, &names).await {
                        eprintln!("simulated clusters: lease renewal: {e:#}");
                    }
                }
            });
        }
        let sim = Simulated {
            names,
            estimator,
            stop,
        };
        if heartbeat {
            sim.wait_ready(karmada, Duration::from_secs(180)).await?;
        }
        Ok(sim)
    }

    async fn wait_ready(&self, karmada: &kube::Client, timeout: Duration) -> anyhow::Result<()> {
        let clusters: Api<Cluster> = Api::all(karmada.clone());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let list = clusters.list(&Default::default()).await?;
            let ready = list
                .items
                .iter()
                .filter(|c| {
                    self.names
                        .iter()
                        .any(|n| Some(n) == c.metadata.name.as_ref())
                })
                .filter(|c| c.is_ready() && c.spec.taints.is_empty())
                .count();
            if ready == self.names.len() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!(
                    "only {ready} of {} simulated Clusters Ready and untainted after {timeout:?}",
                    self.names.len()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Stops renewing and serving; the objects stay (the federation goes down with them).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Simulated {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn ensure_namespace(karmada: &kube::Client, name: &str) -> anyhow::Result<()> {
    let ns: Api<Namespace> = Api::all(karmada.clone());
    ns.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
    )
    .await
    .with_context(|| format!("namespace {name}"))?;
    Ok(())
}

async fn renew_leases(karmada: &kube::Client, names: &[String]) -> anyhow::Result<()> {
    let leases: Api<Lease> = Api::namespaced(karmada.clone(), LEASE_NAMESPACE);
    let now = jiff::Timestamp::now();
    let renew = now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    stream::iter(names.to_vec())
        .map(|name| {
            let leases = leases.clone();
            let renew = renew.clone();
            async move {
                let name = name.as_str();
                let body = json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew},
                });
                match leases.get_opt(name).await? {
                    None => {
                        let lease: Lease = serde_json::from_value(body)?;
                        leases.create(&PostParams::default(), &lease).await?;
                    }
                    Some(_) => {
                        leases
                            .patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"renewTime": renew}})))
                            .await?;
                    }
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Serves `estimator` with mutual TLS on a free loopback port; returns the port.
async fn serve(
    estimator: SimEstimator,
    tls: ServerTls<'_>,
    stop: CancellationToken,
) -> anyhow::Result<u16> {
    use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("read {}", p.display()));
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(read(tls.cert)?, read(tls.key)?))
        .client_ca_root(Certificate::from_pem(read(tls.client_ca)?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let server = Server::builder()
        .tls_config(config)?
        .add_service(EstimatorServer::new(estimator));
    tokio::spawn(async move {
        if let Err(e) = server
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            )
            .await
        {
            eprintln!("simulated estimator: {e}");
        }
    });
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_tightest_resource() {
        let req = |cpu: i128, mem: i128| -> BTreeMap<String, i128> {
            [("cpu".to_string(), cpu), ("memory".to_string(), mem)].into()
        };
        // Cluster 0: 16 CPUs, 64 GiB, 2,500 pods.
        assert_eq!(SimEstimator::answer(0, &req(1000, 1 << 30 << 10)), 16);
        assert_eq!(SimEstimator::answer(0, &req(2, 2 << 20 << 10)), 2500);
        // Cluster 1 has twice the CPUs.
        assert_eq!(SimEstimator::answer(1, &req(1000, 1000)), 32);
    }
}
