//! The `fedstate-mongo-agent` process: its flags and its work under the shared process skeleton
//! (`fedstate_runtime::run`: admin server, leader election, shutdown).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fedstate_runtime::CommonArgs;

use crate::controller::{self, Context, Settings};
use crate::resources::MemberAddressing;

/// Reconciles `MongoDB` objects (middleware.fedstate.io/v1alpha1) in one member cluster: one
/// StatefulSet and NodePort Service per member, the replica set through the official MongoDB
/// driver (initiate once, one voting change per reconfig, never `force` without the user's
/// opt-in), users and password rotation, rolling restarts, and the object's status.
#[derive(Parser, Debug)]
#[command(name = "fedstate-mongo-agent", version)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// The address other clusters reach this cluster's NodePorts on (the cluster's VIP, the
    /// `vip` label of its Karmada Cluster). Member addresses are `<member-host>:<nodePort>`.
    #[arg(long, env = "FEDSTATE_MEMBER_HOST", value_name = "IP")]
    pub member_host: String,

    /// This cluster's name in the host list (`cluster` of its entries).
    #[arg(long, env = "FEDSTATE_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "FEDSTATE_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,

    /// Timeout of each MongoDB connection and command, in seconds.
    #[arg(long, default_value_t = 5)]
    pub mongo_timeout_seconds: u64,
}

/// What `fedstate-mongo-agent` is to the process skeleton.
pub const COMPONENT: fedstate_runtime::Component = fedstate_runtime::Component {
    name: "fedstate-mongo-agent",
    describe_metrics,
};

fn describe_metrics() {
    metrics::describe_counter!(
        "fedstate_agent_reconciles_total",
        "MongoDB reconciles started by this agent"
    );
    metrics::describe_counter!(
        "fedstate_agent_reconcile_errors_total",
        "MongoDB reconciles that failed (retried with backoff)"
    );
    metrics::describe_counter!(
        "fedstate_agent_replset_steps_total",
        "Replica-set actions taken, by step (the Event reason: initiate, reconfig, forced reconfig, quorum lost, ...)"
    );
    // Exported from the start (at 0), so dashboards and alerts see the series before the first
    // reconcile or error.
    metrics::counter!("fedstate_agent_reconciles_total").absolute(0);
    metrics::counter!("fedstate_agent_reconcile_errors_total").absolute(0);
}

/// Run until SIGTERM/Ctrl-C under the shared process skeleton.
pub async fn run(args: Args) -> Result<(), fedstate_runtime::ProcessError> {
    let settings = Settings {
        addressing: MemberAddressing::NodePort {
            vip: args.member_host.clone(),
        },
        cluster_name: args.cluster_name.clone(),
        namespace: args.namespace.clone(),
        mongo_timeout: Duration::from_secs(args.mongo_timeout_seconds.max(1)),
    };
    fedstate_runtime::run(COMPONENT, &args.common, |w: fedstate_runtime::Worker| {
        let ctx = Arc::new(Context::new(w.client, settings.clone()));
        async move {
            controller::run(ctx, w.stop).await;
            Ok::<(), std::convert::Infallible>(())
        }
    })
    .await
}
