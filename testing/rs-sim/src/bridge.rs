//! The simulator on the local federation (`docs/local-federation.md#the-replica-set-simulator`):
//! every member pod that kwok reports Running is served at `<cluster VIP>:<nodePort>` of the
//! Service selecting it; a member stops being served when its pod goes away or its cluster stops
//! answering (as a real mongod would become unreachable). Polls the member apiservers: this is a
//! test fixture, not a controller.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::Simulator;

/// One member cluster the bridge watches.
#[derive(Clone)]
pub struct MemberCluster {
    pub name: String,
    /// The cluster's VIP (its Karmada Cluster's `vip` label), a loopback address here.
    pub vip: String,
    pub client: Client,
}

impl std::fmt::Debug for MemberCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCluster")
            .field("name", &self.name)
            .field("vip", &self.vip)
            .finish()
    }
}

/// Only pods and Services FedState manages.
const SELECTOR: &str = "app.kubernetes.io/managed-by=fedstate";

/// The hosts one cluster should serve now; `None` when the cluster does not answer.
pub async fn running_members(cluster: &MemberCluster) -> Option<BTreeSet<String>> {
    let lp = ListParams::default().labels(SELECTOR);
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let svcs: Api<Service> = Api::all(cluster.client.clone());
    let list = async { Ok::<_, kube::Error>((pods.list(&lp).await?, svcs.list(&lp).await?)) };
    let (pods, svcs) = tokio::time::timeout(Duration::from_secs(4), list)
        .await
        .ok()?
        .ok()?;
    let mut hosts = BTreeSet::new();
    for pod in pods.items {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let labels = pod.labels();
        for svc in svcs
            .items
            .iter()
            .filter(|s| s.namespace() == pod.namespace())
        {
            let Some(spec) = &svc.spec else { continue };
            let selects = spec.selector.as_ref().is_some_and(|sel| {
                !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
            });
            let port = spec
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.node_port);
            if let (true, Some(port)) = (selects, port) {
                hosts.insert(format!("{}:{port}", cluster.vip));
            }
        }
    }
    Some(hosts)
}

/// Keep serving what the clusters run until `stop`.
pub async fn run(sim: Arc<Simulator>, clusters: Vec<MemberCluster>, stop: CancellationToken) {
    let mut served: BTreeSet<String> = BTreeSet::new();
    loop {
        let mut want = BTreeSet::new();
        for c in &clusters {
            if let Some(hosts) = running_members(c).await {
                want.extend(hosts);
            }
        }
        for h in served.difference(&want) {
            tracing::info!(host = %h, "member gone: no longer served");
            sim.stop(h);
        }
        for h in want.difference(&served) {
            match sim.serve(h).await {
                Ok(()) => tracing::info!(host = %h, "serving member"),
                Err(e) => tracing::warn!(host = %h, error = %e, "cannot serve member"),
            }
        }
        served = sim.served().into_iter().collect::<BTreeSet<_>>();
        served.retain(|h| want.contains(h));
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    for h in served {
        sim.stop(&h);
    }
}
