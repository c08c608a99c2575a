//! `fedstate-local` CLI; see `deploy/local/README.md`.

// As in the library: indexing or slicing that may panic is refused (lib.rs).
#![warn(clippy::indexing_slicing)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fedstate_local::{Federation, Options, PortPlan, RunLayout};

/// Real Kubernetes and Karmada processes on this machine (no containers): a Karmada control
/// plane plus N member clusters whose nodes are faked by kwok, all on loopback.
///
/// Binaries come from `deploy/local/build.sh` (run `fedstate-local build` first). Admin
/// kubeconfigs are written to <run-dir>/kubeconfig/, process logs to <run-dir>/logs/.
#[derive(Debug, Parser)]
#[command(name = "fedstate-local", version, after_long_help = ENVIRONMENT)]
struct Cli {
    /// Run directory (state, logs, certificates, kubeconfigs).
    /// Default: <repository>/.fedstate-local/run.
    #[arg(long, global = true, env = "FEDSTATE_LOCAL_DIR")]
    run_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build (or reuse from the cache) the pinned Go binaries; prints the bin directory.
    Build,
    /// Start the federation and wait until every member Cluster is Ready; then return, leaving
    /// the processes running (stop them with `down`).
    Up {
        /// Number of member clusters (1-9).
        #[arg(long, default_value_t = 3)]
        members: u32,
        /// First port of the loopback port plan (control plane base..base+19, member N at
        /// base+100*N..+6).
        #[arg(long, env = "FEDSTATE_LOCAL_PORT_BASE", default_value_t = PortPlan::DEFAULT_BASE)]
        port_base: u16,
        /// Give up (and stop everything) after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// Show every process (pid, health probe) and every member Cluster; exits 1 unless all are
    /// healthy.
    Status,
    /// Stop every process of the federation; leaves logs in the run directory.
    Down,
    /// Stop member N's kube-apiserver and karmada-scheduler-estimator (failover tests).
    KillMember {
        /// Member index, 1-based.
        index: u32,
    },
    /// Restart member N's stopped processes and wait until its apiserver is ready.
    RestoreMember {
        /// Member index, 1-based.
        index: u32,
    },
}

const ENVIRONMENT: &str = "\
Environment:
  FEDSTATE_LOCAL_DIR        run directory (default <repository>/.fedstate-local/run)
  FEDSTATE_LOCAL_PORT_BASE  first port of the plan (default 31000)
  FEDSTATE_LOCAL_BIN_DIR    use the Go binaries in this directory instead of build.sh's cache
  FEDSTATE_LOCAL_CACHE      cache root of build.sh (default ~/.cache/fedstate-local)
  RUST_LOG                  log filter (default info)

Files (in the run directory):
  kubeconfig/karmada.kubeconfig, kubeconfig/member<N>.kubeconfig   admin kubeconfigs
  logs/<component>.log                                           one log per process
  state.json                                                     what `up` started

Ports (127.0.0.1): etcd base, Karmada apiserver base+10, member N apiserver base+100*N,
member N estimator gRPC base+100*N+4 (TLS, client certificate required). See
deploy/local/README.md for the full plan, node capacities and measured times.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(fedstate_local::DEFAULT_LOG_FILTER)
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let run_dir = cli.run_dir.unwrap_or_else(RunLayout::default_root);
    match cli.command {
        Command::Build => {
            let dir = fedstate_local::binaries::build()?;
            println!("{}", dir.display());
        }
        Command::Up {
            members,
            port_base,
            timeout_secs,
        } => {
            let started = Instant::now();
            let fed = Federation::up(Options {
                members,
                ports: PortPlan { base: port_base },
                run_dir,
                timeout: Duration::from_secs(timeout_secs),
            })
            .await?;
            println!("federation up in {}s", started.elapsed().as_secs());
            println!("run directory: {}", fed.run_dir().display());
            println!("logs:          {}", fed.logs_dir().display());
            println!("kubeconfigs:   {}", fed.kubeconfig_dir().display());
            println!("  karmada:     {}", fed.karmada_kubeconfig().display());
            for i in 1..=fed.members() {
                println!(
                    "  {}:     {}  (estimator {})",
                    fedstate_local::member_name(i),
                    fed.member_kubeconfig(i).display(),
                    fed.estimator_address(i)
                );
            }
            fed.detach();
        }
        Command::Status => {
            let fed = Federation::attach(&run_dir)?;
            let status = fed.status().await;
            println!("run directory: {}", status.run_dir.display());
            for c in &status.components {
                let state = match (c.running, c.healthy) {
                    (true, true) => "healthy",
                    (true, false) => "UNHEALTHY",
                    (false, _) => "STOPPED",
                };
                println!("{:<44} pid {:<8} {:<10} {}", c.name, c.pid, state, c.probe);
            }
            for c in &status.clusters {
                println!(
                    "Cluster {:<36} ready={} vip={} resourceSummary={}",
                    c.name,
                    c.ready,
                    c.vip.as_deref().unwrap_or("-"),
                    c.has_resource_summary
                );
            }
            if !status.all_healthy() {
                anyhow::bail!(
                    "not all components are healthy; logs in {}",
                    fed.logs_dir().display()
                );
            }
        }
        Command::Down => match Federation::attach(&run_dir) {
            Ok(fed) => {
                fed.down().context("stopping the federation")?;
                println!(
                    "federation stopped; logs kept in {}",
                    run_dir.join("logs").display()
                );
            }
            Err(fedstate_local::Error::NotRunning { .. }) => {
                println!("no federation running from {}", run_dir.display());
            }
            Err(e) => return Err(e.into()),
        },
        Command::KillMember { index } => {
            Federation::attach(&run_dir)?.kill_member(index)?;
            println!("member{index}: kube-apiserver and estimator stopped");
        }
        Command::RestoreMember { index } => {
            Federation::attach(&run_dir)?.restore_member(index).await?;
            println!("member{index}: restored");
        }
    }
    Ok(())
}
