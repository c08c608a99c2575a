//! Side-by-side scheduling benchmark (`docs/performance.md`): the same N ResourceBindings
//! (estimators on) scheduled once by `karmada-scheduler` and once by `fedstate-scheduler`, on one
//! local federation (real Karmada apiserver, controller-manager, karmada-scheduler, one real
//! karmada-scheduler-estimator per member; nodes faked by kwok), in one run.
//!
//! For each scheduler in turn (Karmada first, then ours, each in its own namespace) it creates N
//! Deployments with one PropagationPolicy each (`Divided`/`Weighted`, `dynamicWeight:
//! AvailableReplicas`, so the estimators are asked; `suspension.dispatching: true`, so no Work is
//! pushed to the members and the run measures scheduling, not kwok), and a client-side watch of
//! the namespace's ResourceBindings records, per binding:
//!
//! * latency: from the watch event that first shows the binding to the first event showing its
//!   `Scheduled` condition True with `spec.clusters` set;
//! * API writes per decision: binding update events seen between those two events (every writer
//!   of the binding in that window — the detector too — counted the same way for both);
//! * throughput: bindings / (last scheduled − first created).
//!
//! Ours also reports `fedstate_scheduler_api_writes_total{kind="ResourceBinding"}` divided by its
//! scheduled decisions. Our scheduler runs in this process (its real controllers, dialing the
//! estimators over mTLS), started only for its own phase.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_local::{Federation, Options, PortPlan};
use fedstate_scheduler::service::{self, RunArgs};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const FIELD_MANAGER: &str = "fedstate-bench";

/// Side-by-side scheduling benchmark of karmada-scheduler and fedstate-scheduler on the local
/// federation. Brings up its own federation (private ports and run directory) and stops it at
/// the end.
#[derive(Parser, Debug)]
#[command(name = "side_by_side")]
struct Args {
    /// ResourceBindings per scheduler.
    #[arg(long, default_value_t = 1000)]
    bindings: usize,
    /// Replicas of each Deployment (divided over the members by available replicas).
    #[arg(long, default_value_t = 3)]
    replicas: u32,
    /// Creations in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Member clusters of the federation.
    #[arg(long, default_value_t = 3)]
    members: u32,
    /// First port of the federation's port plan (pick one no other federation on the machine uses).
    #[arg(long, default_value_t = 38000)]
    port_base: u16,
    /// Run directory of the federation (logs, certificates, state).
    #[arg(long, default_value = "/tmp/fed-bench")]
    run_dir: PathBuf,
    /// Also run the backlog variant: each scheduler is held (karmada-scheduler stopped with
    /// SIGSTOP, ours not started) until all N bindings exist and the detector is done with them,
    /// then released at once; throughput = N / (last scheduled − release).
    #[arg(long, default_value_t = false)]
    backlog: bool,
    /// Give up on a phase after this long.
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    phase_timeout: Duration,
}

#[derive(Parser)]
struct SchedulerCli {
    #[command(flatten)]
    run: RunArgs,
}

/// What the watch saw of one binding.
#[derive(Debug, Default, Clone)]
struct Seen {
    created: Option<Instant>,
    scheduled: Option<Instant>,
    /// When each update event (after the creation event) arrived.
    updates: Vec<Instant>,
    /// Last resourceVersion seen: a watch restart re-lists every binding, which is no update.
    resource_version: Option<String>,
}

#[derive(Debug)]
struct PhaseResult {
    scheduler: &'static str,
    bindings: usize,
    create_window: Duration,
    throughput: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    writes_per_decision: f64,
    updates_per_binding: f64,
    /// Times the binding watch failed and re-listed (events in the gap are seen late).
    watch_restarts: u32,
    /// Ours only: api_writes_total / scheduled decisions.
    metric_writes: Option<(f64, f64, f64)>,
}

fn is_scheduled(rb: &ResourceBinding) -> bool {
    !rb.spec.clusters.is_empty()
        && rb.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Scheduled" && c.status == "True")
        })
}

fn policy_resource() -> ApiResource {
    ApiResource::erase::<fedstate_api::karmada::propagation::PropagationPolicy>(&())
}

async fn apply(api: &Api<DynamicObject>, manifest: serde_json::Value) -> anyhow::Result<()> {
    let obj: DynamicObject = serde_json::from_value(manifest)?;
    let name = obj.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("apply {name}"))?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `name{labels} value` lines of a Prometheus rendering whose labels contain all of `with`.
fn metric_sum(rendered: &str, name: &str, with: &[&str]) -> f64 {
    rendered
        .lines()
        .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with('{')))
        .filter(|l| with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    karmada: &kube::Client,
    label: &'static str,
    namespace: &str,
    scheduler_name: Option<&str>,
    args: &Args,
    metrics: Option<&metrics_exporter_prometheus::PrometheusHandle>,
    release: Option<Box<dyn FnOnce() + Send + '_>>,
) -> anyhow::Result<PhaseResult> {
    let metrics_before = metrics.map(our_writes);
    let namespaces: Api<Namespace> = Api::all(karmada.clone());
    namespaces
        .patch(
            namespace,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            ),
        )
        .await?;

    // The watch first, so no binding is created before we look.
    let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
    let bindings: Api<ResourceBinding> = Api::namespaced(karmada.clone(), namespace);
    let watch_stop = CancellationToken::new();
    let restarts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let watch = {
        let seen = seen.clone();
        let stop = watch_stop.clone();
        let restarts = restarts.clone();
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut events = std::pin::pin!(watcher(bindings, watcher::Config::default()));
            loop {
                let event = tokio::select! {
                    _ = stop.cancelled() => break,
                    e = events.next() => e,
                };
                let Some(event) = event else { break };
                let now = Instant::now();
                let rb = match event {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(watcher::Event::Apply(rb) | watcher::Event::InitApply(rb)) => rb,
                    Ok(_) => continue,
                    Err(e) => {
                        restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        eprintln!("binding watch: {e}");
                        continue;
                    }
                };
                let name = rb.metadata.name.clone().unwrap_or_default();
                let mut seen = seen.lock().await;
                let s = seen.entry(name).or_default();
                if rb.metadata.resource_version == s.resource_version {
                    continue;
                }
                s.resource_version.clone_from(&rb.metadata.resource_version);
                if s.created.is_none() {
                    s.created = Some(now);
                } else {
                    s.updates.push(now);
                }
                if s.scheduled.is_none() && is_scheduled(&rb) {
                    s.scheduled = Some(now);
                }
            }
        })
    };
    ready_rx
        .await
        .context("binding watch ended before its first list")?;

    let deployments = Api::<DynamicObject>::namespaced_with(
        karmada.clone(),
        namespace,
        &ApiResource::erase::<Deployment>(&()),
    );
    let policies =
        Api::<DynamicObject>::namespaced_with(karmada.clone(), namespace, &policy_resource());
    let started = Instant::now();
    stream::iter(0..args.bindings)
        .map(|i| {
            let (deployments, policies) = (deployments.clone(), policies.clone());
            let name = format!("w{i:04}");
            let replicas = args.replicas;
            async move {
                let mut policy = json!({
                    "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {
                        "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name}],
                        "suspension": {"dispatching": true},
                        "placement": {"replicaScheduling": {
                            "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                            "weightPreference": {"dynamicWeight": "AvailableReplicas"}}}
                    }
                });
                if let Some(s) = scheduler_name {
                    policy["spec"]["schedulerName"] = json!(s);
                }
                apply(&policies, policy).await?;
                apply(&deployments, json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                    "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                             "template": {"metadata": {"labels": {"app": name}},
                                          "spec": {"containers": [{"name": "c", "image": "busybox",
                                                   "resources": {"requests": {"cpu": "2m", "memory": "2Mi"}}}]}}}
                }))
                .await
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let created_in = started.elapsed();
    eprintln!(
        "[{label}] {} Deployments + PropagationPolicies created in {:.1}s",
        args.bindings,
        created_in.as_secs_f64()
    );

    // Backlog: wait until every binding exists and nothing changed for 3 s, then release.
    let deadline = Instant::now() + args.phase_timeout;
    let released = match release {
        None => None,
        Some(release) => {
            loop {
                let (count, last) = {
                    let seen = seen.lock().await;
                    let last = seen
                        .values()
                        .flat_map(|s| s.created.iter().chain(s.updates.iter()))
                        .max()
                        .copied();
                    (seen.len(), last)
                };
                if count >= args.bindings
                    && last.is_some_and(|l| l.elapsed() > Duration::from_secs(3))
                {
                    break;
                }
                if Instant::now() > deadline {
                    watch_stop.cancel();
                    bail!(
                        "[{label}] only {count} of {} bindings created",
                        args.bindings
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            eprintln!(
                "[{label}] all {} bindings exist after {:.1}s; releasing the scheduler",
                args.bindings,
                started.elapsed().as_secs_f64()
            );
            let t0 = Instant::now();
            release();
            Some(t0)
        }
    };

    // Wait for every binding to be scheduled.
    loop {
        let (total, done) = {
            let seen = seen.lock().await;
            (
                seen.len(),
                seen.values().filter(|s| s.scheduled.is_some()).count(),
            )
        };
        if done >= args.bindings {
            break;
        }
        if Instant::now() > deadline {
            watch_stop.cancel();
            bail!(
                "[{label}] only {done} of {} bindings scheduled ({total} created) after {:?}",
                args.bindings,
                args.phase_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Writes that land right after the Scheduled event still count towards the total updates.
    tokio::time::sleep(Duration::from_secs(5)).await;
    watch_stop.cancel();
    let _ = watch.await;

    let seen = seen.lock().await;
    let first_created = match released {
        Some(t0) => t0,
        None => seen
            .values()
            .filter_map(|s| s.created)
            .min()
            .context("no binding")?,
    };
    let last_scheduled = seen
        .values()
        .filter_map(|s| s.scheduled)
        .max()
        .context("none scheduled")?;
    // Latency and writes count from the later of creation and release.
    let from = |s: &Seen| s.created.map(|c| released.map_or(c, |t0| c.max(t0)));
    let mut latencies: Vec<Duration> = seen
        .values()
        .filter_map(|s| Some(s.scheduled? - from(s)?))
        .collect();
    latencies.sort_unstable();
    let n = seen.len() as f64;
    let metric_writes = metrics.map(|h| {
        let (w0, d0, a0) = metrics_before.unwrap_or_default();
        let (w, d, a) = our_writes(h);
        (w - w0, d - d0, a - a0)
    });
    let writes_to_scheduled = |s: &Seen| {
        let (Some(start), Some(end)) = (from(s), s.scheduled) else {
            return 0.0;
        };
        s.updates
            .iter()
            .filter(|t| **t > start && **t <= end)
            .count() as f64
    };
    Ok(PhaseResult {
        scheduler: label,
        bindings: seen.len(),
        create_window: created_in,
        throughput: n / (last_scheduled - first_created).as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or_default(),
        writes_per_decision: seen.values().map(writes_to_scheduled).sum::<f64>() / n,
        updates_per_binding: seen.values().map(|s| s.updates.len() as f64).sum::<f64>() / n,
        watch_restarts: restarts.load(std::sync::atomic::Ordering::Relaxed),
        metric_writes,
    })
}

/// Our scheduler's binding writes, scheduled decisions and attempts so far.
fn our_writes(h: &metrics_exporter_prometheus::PrometheusHandle) -> (f64, f64, f64) {
    let rendered = h.render();
    let writes = metric_sum(
        &rendered,
        service::metrics::API_WRITES,
        &["kind=\"ResourceBinding\""],
    );
    let decisions = metric_sum(
        &rendered,
        service::metrics::SCHEDULE_ATTEMPTS,
        &["schedule_type=\"ResourceBinding\"", "result=\"scheduled\""],
    );
    let attempts = metric_sum(
        &rendered,
        service::metrics::SCHEDULE_ATTEMPTS,
        &["schedule_type=\"ResourceBinding\""],
    );
    (writes, decisions, attempts)
}

fn start_scheduler(
    fed: &Federation,
    client: kube::Client,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let tls = fed.estimator_tls();
    let cli = SchedulerCli::parse_from([
        "fedstate-scheduler".to_owned(),
        format!("--kubeconfig={}", fed.karmada_kubeconfig().display()),
        "--admin-addr=127.0.0.1:0".to_owned(),
        format!("--scheduler-estimator-ca-file={}", tls.ca_cert.display()),
        format!(
            "--scheduler-estimator-cert-file={}",
            tls.client_cert.display()
        ),
        format!(
            "--scheduler-estimator-key-file={}",
            tls.client_key.display()
        ),
    ]);
    tokio::spawn(async move {
        let health = fedstate_runtime::admin::Health::default();
        if let Err(e) = service::controllers(client, &cli.run, health, stop).await {
            eprintln!("fedstate-scheduler stopped: {e}");
        }
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn report(args: &Args, karmada: &PhaseResult, ours: &PhaseResult) {
    println!(
        "inputs: {} bindings per scheduler, {} replicas each (Divided/Weighted, dynamicWeight AvailableReplicas, estimators on, dispatching suspended), {} members, {} creations in flight",
        args.bindings, args.replicas, args.members, args.concurrency
    );
    println!(
        "| scheduler | bindings | create window s | throughput bindings/s | p50 ms | p99 ms | max ms | binding updates create→Scheduled | binding updates in all | api_writes_total / decisions | watch restarts |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in [karmada, ours] {
        let metric = r.metric_writes.map_or_else(
            || "n/a".to_owned(),
            |(w, d, a)| {
                format!(
                    "{w} / {d} = {:.2} ({a} attempts)",
                    if d > 0.0 { w / d } else { f64::NAN }
                )
            },
        );
        println!(
            "| {} | {} | {:.1} | {:.1} | {} | {} | {} | {:.2} | {:.2} | {metric} | {} |",
            r.scheduler,
            r.bindings,
            r.create_window.as_secs_f64(),
            r.throughput,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            r.writes_per_decision,
            r.updates_per_binding,
            r.watch_restarts,
        );
    }
    println!(
        "ratios (ours vs karmada): throughput {:.2}x (goal >= 10x); p99 latency {:.3} (goal <= 0.2); p50 latency {:.3}; binding updates per decision {:.2} vs {:.2} (goal <= 2)",
        ours.throughput / karmada.throughput,
        ours.p99.as_secs_f64() / karmada.p99.as_secs_f64(),
        ours.p50.as_secs_f64() / karmada.p50.as_secs_f64(),
        ours.writes_per_decision,
        karmada.writes_per_decision,
    );
}

/// Pods each extra node admits: the test bed's two nodes per member admit 220 pods, and Karmada
/// counts the replicas of scheduled-but-undispatched bindings against them, so 1,000 bindings of
/// 3 replicas would not fit. One big kwok node per member makes room for both runs.
const BENCH_NODE_PODS: u32 = 2500;

/// Adds one large kwok node to every member (in this benchmark's own federation only) and waits
/// until Karmada's Cluster objects show the room.
async fn add_bench_nodes(
    fed: &Federation,
    karmada: &kube::Client,
    members: u32,
) -> anyhow::Result<()> {
    let resources = json!({"cpu": "64", "memory": "256Gi", "pods": BENCH_NODE_PODS.to_string()});
    for i in 1..=members {
        let nodes: Api<Node> = Api::all(fed.member_client(i).await?);
        let name = format!("member{i}-bench-node");
        nodes
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name,
                                 "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                                 "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                            "kubernetes.io/arch": "amd64", "fedstate.io/node-index": "bench"}},
                })),
            )
            .await
            .with_context(|| format!("create node {name}"))?;
        nodes
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"capacity": resources, "allocatable": resources}})),
            )
            .await
            .with_context(|| format!("set capacity of node {name}"))?;
    }
    let clusters: Api<fedstate_api::karmada::Cluster> = Api::all(karmada.clone());
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let list = clusters.list(&Default::default()).await?;
        let roomy = list
            .items
            .iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.resource_summary.as_ref())
                    .and_then(|r| r.allocatable.get("pods"))
                    .and_then(|q| q.0.parse::<u32>().ok())
                    .is_some_and(|p| p >= BENCH_NODE_PODS)
            })
            .count();
        if roomy >= members as usize {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {roomy} of {members} Clusters show the bench nodes after 180 s");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Pid of this federation's karmada-scheduler, from its `state.json`.
fn karmada_scheduler_pid(fed: &Federation) -> anyhow::Result<u32> {
    let path = fed.run_dir().join("state.json");
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    state["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["spec"]["name"] == "karmada-scheduler")
        .and_then(|p| p["pid"].as_u64())
        .and_then(|p| u32::try_from(p).ok())
        .with_context(|| format!("no karmada-scheduler in {}", path.display()))
}

/// Pause (`STOP`) or resume (`CONT`) a process of our own federation.
fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("kill -{sig} {pid}: {status}");
    }
    Ok(())
}

/// One side-by-side comparison: Karmada first, then ours, each in its own namespace.
async fn compare(
    args: &Args,
    fed: &Federation,
    karmada: &kube::Client,
    prometheus: &metrics_exporter_prometheus::PrometheusHandle,
    backlog: bool,
) -> anyhow::Result<(PhaseResult, PhaseResult)> {
    let suffix = if backlog { "-backlog" } else { "" };
    eprintln!("karmada-scheduler{suffix}");
    let pid = karmada_scheduler_pid(fed)?;
    let theirs = if backlog {
        signal(pid, "STOP")?;
        let r = phase(
            karmada,
            "karmada-scheduler",
            &format!("bench-karmada{suffix}"),
            None,
            args,
            None,
            Some(Box::new(move || {
                if let Err(e) = signal(pid, "CONT") {
                    eprintln!("{e}");
                }
            })),
        )
        .await;
        // Never leave it stopped, whatever happened.
        signal(pid, "CONT")?;
        r?
    } else {
        phase(
            karmada,
            "karmada-scheduler",
            &format!("bench-karmada{suffix}"),
            None,
            args,
            None,
            None,
        )
        .await?
    };
    eprintln!("{theirs:?}");

    eprintln!("fedstate-scheduler{suffix}");
    let stop = CancellationToken::new();
    let handle = std::sync::Mutex::new(None);
    let start = || {
        *handle.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(start_scheduler(fed, karmada.clone(), stop.clone()));
    };
    let release: Option<Box<dyn FnOnce() + Send + '_>> = if backlog {
        Some(Box::new(start))
    } else {
        start();
        None
    };
    let ours = phase(
        karmada,
        "fedstate-scheduler",
        &format!("bench-fedstate{suffix}"),
        Some(fedstate_api::names::DEFAULT_SCHEDULER_NAME),
        args,
        Some(prometheus),
        release,
    )
    .await;
    stop.cancel();
    let scheduler = handle.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(scheduler) = scheduler {
        let _ = tokio::time::timeout(Duration::from_secs(10), scheduler).await;
    }
    let ours = ours?;
    eprintln!("{ours:?}");
    Ok((theirs, ours))
}

async fn run(args: &Args, fed: &Federation) -> anyhow::Result<()> {
    let karmada = fed.karmada_client().await?;
    let prometheus = fedstate_runtime::admin::install_metrics_recorder()?;
    service::metrics::describe();
    add_bench_nodes(fed, &karmada, args.members).await?;
    let (theirs, ours) = compare(args, fed, &karmada, &prometheus, false).await?;
    println!("## created while running (latency from the binding's creation)");
    report(args, &theirs, &ours);
    if args.backlog {
        let (theirs, ours) = compare(args, fed, &karmada, &prometheus, true).await?;
        println!("## backlog (scheduler held until all bindings exist; latency from release)");
        report(args, &theirs, &ours);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off")),
            )
            .with_writer(std::io::stderr)
            .try_init();
        let started = Instant::now();
        let fed = Federation::up(Options {
            members: args.members,
            ports: PortPlan {
                base: args.port_base,
            },
            run_dir: args.run_dir.clone(),
            timeout: Duration::from_secs(900),
        })
        .await
        .context("bringing the federation up")?;
        eprintln!(
            "federation up in {}s; run directory {}",
            started.elapsed().as_secs(),
            fed.run_dir().display()
        );
        let result = run(&args, &fed).await;
        if let Err(e) = &result {
            eprintln!(
                "benchmark failed: {e:#}; logs in {}",
                fed.logs_dir().display()
            );
        }
        fed.down().context("stopping the federation")?;
        result
    })
}
