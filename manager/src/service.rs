//! The `fedstate-manager` service: its flags and its work under the shared process skeleton
//! (`fedstate_runtime::run`: admin server, leader election, shutdown).

use std::time::Duration;

use fedstate_runtime::CommonArgs;

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

/// What `fedstate-manager` is to the process skeleton.
pub const COMPONENT: fedstate_runtime::Component = fedstate_runtime::Component {
    name: "fedstate-manager",
    describe_metrics,
};

fn describe_metrics() {
    metrics::describe_counter!(
        "fedstate_manager_reconcile_total",
        "MultiCloudMongoDB reconciles by result (ok, error)"
    );
    metrics::describe_histogram!(
        "fedstate_manager_reconcile_duration_seconds",
        metrics::Unit::Seconds,
        "Duration of one MultiCloudMongoDB reconcile"
    );
    // Exported from the start (at 0), so the error alert and the dashboard see the series.
    for result in ["ok", "error"] {
        metrics::counter!("fedstate_manager_reconcile_total", "result" => result).absolute(0);
    }
}

/// Run until SIGTERM under the shared process skeleton: the admin server always, the controller
/// while we lead.
pub async fn run(args: Args) -> Result<(), fedstate_runtime::ProcessError> {
    let options = Options {
        busy_requeue: Duration::from_secs(args.busy_requeue_seconds),
        idle_requeue: Duration::from_secs(args.idle_requeue_seconds),
    };
    fedstate_runtime::run(COMPONENT, &args.common, |w: fedstate_runtime::Worker| {
        let options = options.clone();
        async move {
            controller::run(w.client, options, w.health, w.stop).await;
            Ok::<(), std::convert::Infallible>(())
        }
    })
    .await
}
