//! What every FedState binary shares, so each `main.rs` stays a dozen lines:
//! [`CommonArgs`] (kubeconfig, client rate limit, admin address, log format, leader election),
//! [`telemetry`], the [`admin`] server (`/metrics`, `/healthz`, `/readyz`), [`leader`] election
//! through a Lease, [`shutdown`] on SIGTERM/Ctrl-C, [`watch`] health (every watch error counted), and [`process::run`], the one process
//! skeleton that ties them together.

// Indexing or slicing that may panic is refused in this crate too (it handles user input and
// answers from other processes); tests may (clippy.toml). Not yet workspace-wide (README).
#![warn(clippy::indexing_slicing)]

pub mod admin;
pub mod backoff;
pub mod leader;
pub mod process;
pub mod shutdown;
pub mod telemetry;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use process::{Component, ProcessError, Worker, run};
pub use telemetry::LogFormat;

/// Flags every long-running FedState binary takes. Names follow karmada-scheduler's where it has
/// the same setting; FedState's earlier names stay as aliases. Booleans take `--flag` and
/// `--flag=true|false` alike.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Kubeconfig file to use. Without it: $KUBECONFIG, then ~/.kube/config, then the in-cluster
    /// service account.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Make every request as this user (kubectl's `--as`), e.g.
    /// `system:serviceaccount:fedstate-system:fedstate-scheduler`: the apiserver then authorizes
    /// each request by that account's RBAC, whatever the kubeconfig's own identity may do.
    #[arg(long = "as", value_name = "USER")]
    pub impersonate: Option<String>,

    /// Requests per second to the apiserver, on average (client-side limit).
    #[arg(long, value_name = "QPS", default_value_t = 40.0)]
    pub kube_api_qps: f64,

    /// Requests the client may send at once before --kube-api-qps applies. The client lets
    /// through at most BURST requests in every window of BURST/QPS seconds.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub kube_api_burst: u64,

    /// Address of the admin server serving /metrics, /healthz and /readyz.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:8080",
        env = "FEDSTATE_ADMIN_ADDR"
    )]
    pub admin_addr: SocketAddr,

    /// Log format (text or json); the level comes from RUST_LOG (default `info`).
    #[arg(long = "logging-format", alias = "log-format", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// Leader election flags, as karmada-scheduler's (`--leader-elect*`).
#[derive(clap::Args, Debug, Clone)]
pub struct LeaderArgs {
    /// Run the controllers only while holding a Lease, so several replicas can run and only one
    /// writes. On by default; `--leader-elect=false` for a single process.
    #[arg(
        long = "leader-elect",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub enabled: bool,

    /// Name of the Lease (default: the binary's name).
    #[arg(long = "leader-elect-resource-name", value_name = "NAME")]
    pub resource_name: Option<String>,

    /// Namespace of the Lease.
    #[arg(
        long = "leader-elect-resource-namespace",
        alias = "lease-namespace",
        value_name = "NS",
        default_value = "fedstate-system"
    )]
    pub resource_namespace: String,

    /// How long a Lease stays valid after its last renewal; a standby takes over this long after
    /// the leader stopped renewing. Whole seconds.
    #[arg(long = "leader-elect-lease-duration", value_name = "DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// The leader renews its Lease this long after the last renewal (before it expires).
    /// Must be shorter than the lease duration. Whole seconds.
    #[arg(long = "leader-elect-renew-deadline", value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,

    /// Accepted with karmada-scheduler's meaning and checked (shorter than the renew deadline),
    /// but the Lease library FedState uses has no retry period: a standby tries again exactly
    /// when the holder's Lease expires, so this value does not change timing.
    #[arg(long = "leader-elect-retry-period", value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub retry_period: Duration,
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
    #[error(
        "--kube-api-qps must be a positive number and --kube-api-burst at least 1 (got {qps} and {burst})"
    )]
    RateLimit { qps: f64, burst: u64 },
}

/// The client-side limit: at most `burst` requests per window of `burst / qps` seconds.
fn rate_window(qps: f64, burst: u64) -> Result<Duration, ClientError> {
    let window = burst as f64 / qps;
    if !(qps.is_finite() && qps > 0.0 && burst >= 1 && window.is_finite()) {
        return Err(ClientError::RateLimit { qps, burst });
    }
    Ok(Duration::from_secs_f64(window))
}

/// A client for the apiserver the flags name, rate-limited by `--kube-api-qps`/`--kube-api-burst`.
pub async fn client(args: &CommonArgs) -> Result<kube::Client, ClientError> {
    let window = rate_window(args.kube_api_qps, args.kube_api_burst)?;
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
    let mut config = config;
    if let Some(user) = &args.impersonate {
        config.auth_info.impersonate = Some(user.clone());
    }
    let builder = kube::client::ClientBuilder::try_from(config)?;
    let limit = tower::limit::RateLimitLayer::new(args.kube_api_burst, window);
    Ok(builder.with_layer(&limit).build())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    fn parse(args: &[&str]) -> Result<CommonArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.common)
    }

    #[test]
    fn defaults_follow_karmada_scheduler() {
        let a = parse(&[]).unwrap();
        assert!(a.leader.enabled, "leader election is on by default");
        assert_eq!(a.leader.lease_duration, Duration::from_secs(15));
        assert_eq!(a.leader.renew_deadline, Duration::from_secs(10));
        assert_eq!(a.leader.retry_period, Duration::from_secs(2));
        assert_eq!(a.kube_api_qps, 40.0);
        assert_eq!(a.kube_api_burst, 60);
        assert_eq!(a.log_format, LogFormat::Text);
    }

    #[test]
    fn booleans_take_bare_and_valued_forms() {
        assert!(parse(&["--leader-elect"]).unwrap().leader.enabled);
        assert!(parse(&["--leader-elect=true"]).unwrap().leader.enabled);
        assert!(!parse(&["--leader-elect=false"]).unwrap().leader.enabled);
        assert!(parse(&["--leader-elect=maybe"]).is_err());
    }

    #[test]
    fn old_names_are_aliases() {
        let a = parse(&["--log-format=json", "--lease-namespace=ns1"]).unwrap();
        assert_eq!(a.log_format, LogFormat::Json);
        assert_eq!(a.leader.resource_namespace, "ns1");
        let b = parse(&[
            "--logging-format",
            "json",
            "--leader-elect-resource-namespace=ns2",
            "--leader-elect-resource-name=lock",
        ])
        .unwrap();
        assert_eq!(b.log_format, LogFormat::Json);
        assert_eq!(b.leader.resource_namespace, "ns2");
        assert_eq!(b.leader.resource_name.as_deref(), Some("lock"));
    }

    #[test]
    fn rate_limit_is_checked() {
        assert_eq!(rate_window(40.0, 60).unwrap(), Duration::from_millis(1500));
        for (qps, burst) in [(0.0, 60), (-1.0, 60), (40.0, 0), (f64::NAN, 1)] {
            let e = rate_window(qps, burst).unwrap_err().to_string();
            assert!(e.contains("--kube-api-qps"), "{e}");
        }
    }
}
