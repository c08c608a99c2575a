//! Bringing the federation up for a test binary, and small helpers tests share.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: its functions are called by the e2e trials, and a panic is how they fail the trial"
)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fedstate_local::{Federation, Options, PortPlan};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};

/// Field manager of objects the tests apply.
pub const FIELD_MANAGER: &str = "fedstate-e2e";

/// Port base of the e2e federation (kept apart from a developer's `fedstate-local up`, which
/// uses 31000); override with `FEDSTATE_E2E_PORT_BASE`.
pub const E2E_PORT_BASE: u16 = 32000;

/// Why the e2e tier does not run here, or `None` if it should run.
pub fn skip_reason() -> Option<String> {
    if std::env::var("FEDSTATE_E2E").is_ok_and(|v| v == "1") {
        return None;
    }
    let binaries = match fedstate_local::binaries::bin_dir() {
        Ok(_) => "binaries are built".to_string(),
        Err(e) => e.to_string(),
    };
    Some(format!("FEDSTATE_E2E is not set to 1 ({binaries})"))
}

/// Options of the e2e federation: `FEDSTATE_E2E_MEMBERS` members (default 3), run directory
/// `<repo>/.fedstate-local/e2e` (or `FEDSTATE_E2E_DIR`).
pub fn e2e_options() -> Options {
    let members = std::env::var("FEDSTATE_E2E_MEMBERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let base = std::env::var("FEDSTATE_E2E_PORT_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(E2E_PORT_BASE);
    let run_dir = std::env::var_os("FEDSTATE_E2E_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            fedstate_local::layout::repository_root()
                .join(".fedstate-local")
                .join("e2e")
        });
    Options {
        members,
        ports: PortPlan { base },
        run_dir,
        timeout: Duration::from_secs(900),
    }
}

/// Brings the e2e federation up (logging to stderr). Panics with the run directory on failure.
/// Dropping the returned value (also while unwinding from a failed assertion) stops it.
pub async fn federation() -> Federation {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(fedstate_local::DEFAULT_LOG_FILTER)
            }),
        )
        .with_test_writer()
        .try_init();
    let options = e2e_options();
    // A test run killed before its teardown (CI timeout, SIGKILL) leaves its processes running;
    // the e2e run directory is ours alone, so stop them rather than refuse to start.
    if let Ok(stale) = Federation::attach(&options.run_dir) {
        eprintln!(
            "stopping a federation left running in {} by an earlier run",
            options.run_dir.display()
        );
        if let Err(e) = stale.down() {
            panic!("cannot stop the stale federation: {e}");
        }
    }
    let started = Instant::now();
    match Federation::up(options).await {
        Ok(fed) => {
            eprintln!(
                "federation up in {}s; run directory {}",
                started.elapsed().as_secs(),
                fed.run_dir().display()
            );
            fed
        }
        Err(e) => panic!("{e}"),
    }
}

/// Polls `check` every second until it returns `Some`, or panics after `timeout` with `what`
/// and the last observation.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(v) => {
                eprintln!("  ok after {:.1}s: {what}", started.elapsed().as_secs_f32());
                return v;
            }
            Err(last) if started.elapsed() > timeout => {
                panic!(
                    "timed out after {}s waiting for {what}; last seen: {last}",
                    timeout.as_secs()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// `policy.karmada.io/v1alpha1` PropagationPolicy.
pub fn propagation_policy_resource() -> ApiResource {
    ApiResource::erase::<fedstate_api::karmada::propagation::PropagationPolicy>(&())
}

/// Server-side applies a manifest given as JSON (namespaced when `metadata.namespace` is set).
pub async fn apply_json(
    client: &kube::Client,
    resource: &ApiResource,
    manifest: serde_json::Value,
) -> DynamicObject {
    let obj: DynamicObject =
        serde_json::from_value(manifest).unwrap_or_else(|e| panic!("bad manifest: {e}"));
    let name = obj.metadata.name.clone().unwrap_or_default();
    let api: Api<DynamicObject> = match obj.metadata.namespace.as_deref() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {name}: {e}", resource.kind))
}
