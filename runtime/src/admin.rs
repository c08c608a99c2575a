//! The admin server: `/metrics` (Prometheus text format from the `metrics` facade), `/healthz`
//! (the process is alive) and `/readyz` (it has synced its caches and can do its job). Kept off
//! the data ports so probes and scrapes never compete with real traffic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Readiness shared between the workers that know it and the server that reports it.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot install the Prometheus metrics recorder: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
    #[error("cannot listen on {addr} for the admin server: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin server failed: {0}")]
    Serve(std::io::Error),
}

/// Histogram buckets of every FedState histogram: karmada-scheduler's
/// (`prometheus.ExponentialBuckets(0.001, 2, 15)`: 1 ms … 16.384 s), so dashboards built for
/// Karmada's latency histograms read ours the same way.
pub fn karmada_buckets() -> Vec<f64> {
    (0..15).map(|i| 0.001 * f64::from(1u32 << i)).collect()
}

/// Install the process-wide Prometheus recorder behind the `metrics` facade; every histogram is
/// exported as a Prometheus histogram (`_bucket`, `_sum`, `_count`) with [`karmada_buckets`].
pub fn install_metrics_recorder() -> Result<PrometheusHandle, AdminError> {
    Ok(PrometheusBuilder::new()
        .set_buckets(&karmada_buckets())?
        .install_recorder()?)
}

/// The `process_*` series (CPU seconds, resident and virtual memory, open and max fds, threads,
/// start time), collected on every scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// Register HELP text of the `process_*` series; call after the recorder is installed.
pub fn describe_process_metrics() {
    process_collector().describe();
}

/// `fedstate_build_info{component, version} 1`.
pub const BUILD_INFO: &str = "fedstate_build_info";

/// Export the build info series for `component`; call after the recorder is installed.
pub fn build_info(component: &'static str) {
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; labels name the FedState component and its version"
    );
    metrics::gauge!(BUILD_INFO, "component" => component, "version" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

#[derive(Clone)]
struct AdminState {
    health: Health,
    metrics: Option<PrometheusHandle>,
}

/// Bind the admin address (port 0 picks a free one; the bound address is returned).
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), AdminError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Serve until `shutdown` is cancelled. `metrics` is `None` where a recorder is not ours to
/// install (tests); `/metrics` then answers 404.
pub async fn serve(
    listener: TcpListener,
    health: Health,
    metrics: Option<PrometheusHandle>,
    shutdown: CancellationToken,
) -> Result<(), AdminError> {
    if let Some(handle) = metrics.clone() {
        // Histograms and summaries need periodic upkeep, or they grow without bound.
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => handle.run_upkeep(),
                }
            }
        });
    }
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AdminState { health, metrics });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(AdminError::Serve)
}

async fn readyz(State(state): State<AdminState>) -> (StatusCode, &'static str) {
    if state.health.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn render_metrics(State(state): State<AdminState>) -> (StatusCode, String) {
    match state.metrics {
        Some(handle) => {
            process_collector().collect();
            (StatusCode::OK, handle.render())
        }
        None => (
            StatusCode::NOT_FOUND,
            "no metrics recorder installed\n".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn probes_follow_readiness_and_metrics_render() {
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let health = Health::default();
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("fedstate_test_total").increment(3)
        });
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, health.clone(), Some(handle), stop.clone()));

        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        health.set_ready(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(metrics.contains("fedstate_test_total 3"), "{metrics}");

        stop.cancel();
        server.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "server still listening after shutdown"
        );
    }
}
