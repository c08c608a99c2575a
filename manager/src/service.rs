//! The `fedstate-manager` service: flags, admin server, leader election, the controller.

use std::time::Duration;

use fedstate_runtime::{CommonArgs, admin, leader};
use tokio_util::sync::CancellationToken;

use crate::controller::{self, Options};

/// Flags of `fedstate-manager`.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "fedstate-manager",
    version,
    about = "FedState manager: turns placed MultiCloudMongoDBs into per-cluster MongoDB objects, Services, Secrets and Karmada policies on the Karmada apiserver, and reports their status",
    long_about = "FedState manager: the control plane of MultiCloudMongoDB.\n\nRun it against the Karmada apiserver (--kubeconfig pointing at karmada-apiserver). It watches MultiCloudMongoDB objects in every namespace, waits for the scheduler's schedulerResult annotation, and keeps the member MongoDB template, its PropagationPolicy and OverridePolicy, the member NodePort Services, the <name>-hostconf ConfigMap and the keyfile/credential Secrets in sync; it aggregates the members' status from the ResourceBinding.\n\nExample: fedstate-manager --kubeconfig karmada-apiserver.config --admin-addr 127.0.0.1:8082"
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Seconds between re-checks while members are being added, removed or failed over (watch
    /// events still trigger immediate reconciles).
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub busy_requeue_seconds: u64,
    /// Seconds between resyncs of an object when nothing is in flight.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub idle_requeue_seconds: u64,
}

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Client(#[from] fedstate_runtime::ClientError),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
}

/// Run until SIGTERM: the admin server always, the controller while we lead.
pub async fn run(args: Args) -> Result<(), ServiceError> {
    let stop = fedstate_runtime::shutdown::signal();
    let client = fedstate_runtime::client(&args.common).await?;
    let prometheus = admin::install_metrics_recorder()?;
    metrics::describe_counter!(
        "fedstate_manager_reconcile_total",
        "MultiCloudMongoDB reconciles by result (ok, error)"
    );
    metrics::describe_histogram!(
        "fedstate_manager_reconcile_duration_seconds",
        "Duration of one MultiCloudMongoDB reconcile"
    );
    let health = admin::Health::default();
    let (listener, addr) = admin::bind(args.common.admin_addr).await?;
    tracing::info!(%addr, "admin server listening");
    let admin_task = tokio::spawn(admin::serve(
        listener,
        health.clone(),
        Some(prometheus),
        stop.clone(),
    ));
    let options = Options {
        busy_requeue: Duration::from_secs(args.busy_requeue_seconds),
        idle_requeue: Duration::from_secs(args.idle_requeue_seconds),
    };
    let work = |term: CancellationToken| {
        let (client, options, health) = (client.clone(), options.clone(), health.clone());
        async move { controller::run(client, options, health, term).await }
    };
    if args.common.leader_elect {
        let lease = leader::LeaderOptions::new(&args.common.lease_namespace, "fedstate-manager");
        leader::run_as_leader(client.clone(), lease, stop.clone(), work).await?;
    } else {
        work(stop.clone()).await;
    }
    stop.cancel();
    if let Ok(Err(e)) = admin_task.await {
        tracing::warn!(error = %e, "admin server");
    }
    Ok(())
}
