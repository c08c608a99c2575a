//! What every FedState binary shares, so each `main.rs` stays a dozen lines:
//! [`CommonArgs`] (kubeconfig, admin address, log format, leader election), [`telemetry`],
//! the [`admin`] server (`/metrics`, `/healthz`, `/readyz`), [`leader`] election through a Lease,
//! and [`shutdown`] on SIGTERM/Ctrl-C.

pub mod admin;
pub mod leader;
pub mod shutdown;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use telemetry::LogFormat;

/// Flags every long-running FedState binary takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Kubeconfig file to use. Without it: $KUBECONFIG, then ~/.kube/config, then the in-cluster
    /// service account.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Address of the admin server serving /metrics, /healthz and /readyz.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8080",
        env = "FEDSTATE_ADMIN_ADDR"
    )]
    pub admin_addr: SocketAddr,

    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Run only while holding a Lease, so several replicas can run and only one writes.
    #[arg(long, default_value_t = false)]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease.
    #[arg(long, value_name = "NS", default_value = "fedstate-system")]
    pub lease_namespace: String,
}

/// Why a kube client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error(
        "cannot build a client configuration (kubeconfig {kubeconfig:?}, context {context:?}): {source}"
    )]
    Config {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig and not in a cluster: {0}; pass --kubeconfig")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot create a Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// A client for the apiserver the flags name.
pub async fn client(args: &CommonArgs) -> Result<kube::Client, ClientError> {
    let options = kube::config::KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                ClientError::Kubeconfig {
                    path: path.clone(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|source| ClientError::Config {
                    kubeconfig: args.kubeconfig.clone(),
                    context: args.context.clone(),
                    source,
                })?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|source| ClientError::Config {
                kubeconfig: None,
                context: args.context.clone(),
                source,
            })?,
        (None, None) => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}
