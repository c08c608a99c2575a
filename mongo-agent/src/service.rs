//! The `fedstate-mongo-agent` process: flags, admin server, leader election, the controller.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fedstate_runtime::{CommonArgs, admin, leader};

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

/// Run until SIGTERM/Ctrl-C.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = fedstate_runtime::shutdown::signal();
    let client = fedstate_runtime::client(&args.common).await?;
    let metrics = admin::install_metrics_recorder().ok();
    let health = admin::Health::default();
    let (listener, addr) = admin::bind(args.common.admin_addr).await?;
    tracing::info!(%addr, "admin server listening");
    let admin_task = tokio::spawn(admin::serve(
        listener,
        health.clone(),
        metrics,
        shutdown.clone(),
    ));
    let settings = Settings {
        addressing: MemberAddressing::NodePort {
            vip: args.member_host.clone(),
        },
        cluster_name: args.cluster_name.clone(),
        namespace: args.namespace.clone(),
        mongo_timeout: Duration::from_secs(args.mongo_timeout_seconds.max(1)),
    };
    let ctx = Arc::new(Context::new(client.clone(), settings));
    health.set_ready(true);
    if args.common.leader_elect {
        let opts =
            leader::LeaderOptions::new(args.common.lease_namespace.clone(), "fedstate-mongo-agent");
        leader::run_as_leader(client, opts, shutdown.clone(), |term| {
            controller::run(ctx.clone(), term)
        })
        .await?;
    } else {
        controller::run(ctx, shutdown.clone()).await;
    }
    shutdown.cancel();
    let _ = admin_task.await;
    Ok(())
}
