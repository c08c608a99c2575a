//! Side-by-side scheduling benchmark (`benches/README.md`): karmada-scheduler, fedstate-scheduler
//! and a trivial ceiling scheduler, each its own process with its own client certificate, on one
//! local federation (real Karmada apiserver, controller-manager, webhook, one real
//! karmada-scheduler-estimator per member; nodes faked by kwok), in one run.
//!
//! Method:
//! * Every scheduler runs as a user runs it, with its own identity; the federation's own
//!   karmada-scheduler is stopped and the benchmark runs it again with the flags of the budget
//!   under test. Each is warm (watches synced, estimator channels up, one warm-up batch placed)
//!   before any clock starts.
//! * Client budgets: karmada-scheduler's defaults for both (`--kube-api-qps 40
//!   --kube-api-burst 60`), both unthrottled, and each at its own default (no flag).
//! * Rounds interleave the schedulers (the order rotates each round); every figure is reported
//!   as the median over rounds with the range.
//! * Requests are counted by the Karmada apiserver: its audit log records every request of the
//!   three benchmark identities (`fedstate_benches::audit`).
//! * CPU time and peak RSS of each scheduler process from `/proc` (`fedstate_benches::procstat`).
//! * Backlog phases: the scheduler is paused (SIGSTOP) while the benchmark creates N bindings,
//!   then resumed; throughput = N / (last scheduled − resume). Trickle phases: bindings created
//!   at a steady rate below every scheduler's capacity; latency = creation → Scheduled, both as
//!   seen by a watch.
//! * Workloads: one shape on the real members, a new shape per binding (cache misses), and a
//!   federation with many simulated member Clusters (`fedstate_benches::simulated`: Pull-mode
//!   Cluster objects whose heartbeat and estimator this process plays).
//! * A MultiCloudMongoDB burst (ours against a one-write ceiling) and the footprint of ours with
//!   1,000 Clusters and 10,000 bindings cached.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use fedstate_api::MultiCloudMongoDB;
use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_benches::audit::{AuditLog, Requests};
use fedstate_benches::procstat;
use fedstate_benches::simulated::{ServerTls, Simulated};
use fedstate_benches::stats::{self, percentile};
use fedstate_benches::workload::{self, Shapes};
use fedstate_local::process::{ProcessRecord, ProcessSpec};
use fedstate_local::{AUDITED_GROUP, Federation, Options, PortPlan};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const FIELD_MANAGER: &str = "fedstate-bench";
const OUR_NAME: &str = fedstate_api::names::DEFAULT_SCHEDULER_NAME;
const CEILING_NAME: &str = "bench-ceiling";

/// Side-by-side scheduling benchmark of karmada-scheduler, fedstate-scheduler and a ceiling on
/// the local federation. Brings up its own federation (private ports and run directory) and
/// stops it at the end. Run it under the machine's e2e lock.
#[derive(Parser, Debug, Clone)]
#[command(name = "side_by_side")]
struct Args {
    /// Bindings per backlog phase.
    #[arg(long, default_value_t = 1000)]
    bindings: usize,
    /// Replicas per binding (divided over the clusters by available replicas).
    #[arg(long, default_value_t = 3)]
    replicas: u32,
    /// Rounds; each round runs every scheduler once, in an order that rotates.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Client budgets: `QPS/BURST`, `unthrottled`, `default` (each scheduler's own default).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "40/60,unthrottled,default"
    )]
    budgets: Vec<Budget>,
    /// Workloads of the backlog phases: `uniform`, `varied`, `many-clusters`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "uniform,varied,many-clusters"
    )]
    workloads: Vec<Workload>,
    /// Budgets for the `many-clusters` and `varied` workloads (the full list for `uniform`).
    #[arg(long, value_delimiter = ',', default_value = "40/60,unthrottled")]
    other_budgets: Vec<Budget>,
    /// Simulated member Clusters added for `many-clusters`.
    #[arg(long, default_value_t = 100)]
    simulated_clusters: usize,
    /// Bindings per trickle phase (0: none); at 40/60, on the uniform and varied workloads.
    #[arg(long, default_value_t = 200)]
    trickle_bindings: usize,
    /// Bindings created per second in a trickle phase.
    #[arg(long, default_value_t = 4.0)]
    trickle_rate: f64,
    /// MultiCloudMongoDBs per burst (0: none).
    #[arg(long, default_value_t = 1000)]
    mcm: usize,
    /// Budgets of the MultiCloudMongoDB bursts.
    #[arg(long, value_delimiter = ',', default_value = "40/60,unthrottled")]
    mcm_budgets: Vec<Budget>,
    /// Clusters and bindings of the footprint measurement (0 bindings: none).
    #[arg(long, default_value_t = 1000)]
    footprint_clusters: usize,
    #[arg(long, default_value_t = 10000)]
    footprint_bindings: usize,
    /// Reconciles in flight: ours' `--concurrency` and the ceiling's.
    #[arg(long, default_value_t = 32)]
    concurrency: u16,
    /// Member clusters of the federation.
    #[arg(long, default_value_t = 3)]
    members: u32,
    /// First port of the federation's port plan: one no other federation on the machine uses
    /// (the demo's is 31000, e2e's 32000), below Linux's ephemeral range (32768–60999), where
    /// any client's outgoing connection may hold a port the plan needs.
    #[arg(long, default_value_t = 30000)]
    port_base: u16,
    /// Run directory of the federation (logs, certificates, the audit log).
    #[arg(long, default_value = "/tmp/fed-bench")]
    run_dir: PathBuf,
    /// Give up on a phase after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    phase_timeout: Duration,
    /// Raw results, one JSON object per phase.
    #[arg(long)]
    json: Option<PathBuf>,
    /// CI smoke test: 200 bindings, one round, 40/60, uniform, no trickle, MultiCloudMongoDB or
    /// footprint; fails if ours makes more than 2 binding writes per decision or any scheduler
    /// fails to place everything.
    #[arg(long)]
    smoke: bool,
}

impl Args {
    fn smoke(mut self) -> Self {
        self.bindings = 200;
        self.rounds = 1;
        self.budgets = vec![Budget::Limited(40.0, 60)];
        self.workloads = vec![Workload::Uniform];
        self.trickle_bindings = 0;
        self.mcm = 0;
        self.footprint_bindings = 0;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Budget {
    Limited(f64, u64),
    Unthrottled,
    Default,
}

impl std::str::FromStr for Budget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "unthrottled" => Ok(Budget::Unthrottled),
            "default" => Ok(Budget::Default),
            _ => {
                let (q, b) = s.split_once('/').ok_or_else(|| {
                    format!("budget {s:?}: use QPS/BURST, unthrottled or default")
                })?;
                let q: f64 = q.parse().map_err(|e| format!("budget {s:?}: QPS: {e}"))?;
                let b: u64 = b.parse().map_err(|e| format!("budget {s:?}: BURST: {e}"))?;
                Ok(Budget::Limited(q, b))
            }
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Budget::Limited(q, b) => write!(f, "{q}/{b}"),
            Budget::Unthrottled => f.write_str("unthrottled"),
            Budget::Default => f.write_str("default"),
        }
    }
}

impl Budget {
    /// The client flags both schedulers share (karmada-scheduler's names; ours are the same).
    fn flags(self) -> Vec<String> {
        let (q, b) = match self {
            Budget::Limited(q, b) => (q, b),
            // Far above what the apiserver serves on this machine.
            Budget::Unthrottled => (100_000.0, 100_000),
            Budget::Default => return Vec::new(),
        };
        vec![
            format!("--kube-api-qps={q}"),
            format!("--kube-api-burst={b}"),
        ]
    }

    fn tag(self) -> String {
        self.to_string().replace('/', "-")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    Uniform,
    Varied,
    ManyClusters,
}

impl Workload {
    fn shapes(self) -> Shapes {
        match self {
            Workload::Uniform => Shapes::Uniform,
            Workload::Varied | Workload::ManyClusters => Shapes::Varied,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Workload::Uniform => "uniform",
            Workload::Varied => "varied",
            Workload::ManyClusters => "many-clusters",
        }
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Workload as clap::ValueEnum>::from_str(s, true)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
enum Who {
    Karmada,
    Ours,
    Ceiling,
}

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::Karmada => "karmada-scheduler",
            Who::Ours => "fedstate-scheduler",
            Who::Ceiling => "ceiling",
        }
    }
    /// The client certificate's user.
    fn user(self) -> &'static str {
        match self {
            Who::Karmada => "bench-karmada-scheduler",
            Who::Ours => "bench-fedstate-scheduler",
            Who::Ceiling => "bench-ceiling",
        }
    }
    /// What bindings name to be placed by it.
    fn scheduler_name(self) -> Option<&'static str> {
        match self {
            Who::Karmada => None,
            Who::Ours => Some(OUR_NAME),
            Who::Ceiling => Some(CEILING_NAME),
        }
    }
}

/// A scheduler process of the benchmark; stopped on drop.
struct Proc {
    who: Who,
    record: ProcessRecord,
    child: std::process::Child,
    /// Ours: its admin server (/metrics, /readyz).
    admin: Option<SocketAddr>,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.record.pid
    }
    fn signal(&self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid())?);
        nix::sys::signal::kill(pid, sig).with_context(|| format!("{sig} to {}", self.who.label()))
    }
    fn pause(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }
    fn resume(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.resume();
        self.record.stop(Duration::from_secs(10));
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `GET http://addr/path`, the body.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if head.split_whitespace().nth(1) != Some("200") {
            bail!(
                "GET http://{addr}{path}: {}",
                head.lines().next().unwrap_or_default()
            );
        }
        anyhow::Ok(body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .with_context(|| format!("GET http://{addr}{path}: timeout"))?
}

/// Sum of the samples of `name` whose labels contain every one of `with`.
fn metric_sum(rendered: &str, name: &str, with: &[&str]) -> f64 {
    rendered
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter(|l| with.iter().all(|w| l.contains(w)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What one scheduler's own metrics say (ours only).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct OurCounters {
    decisions: f64,
    attempts: f64,
    writes: f64,
    estimator_rpcs: f64,
    events_dropped: f64,
}

async fn our_counters(admin: SocketAddr, kind: &str) -> anyhow::Result<OurCounters> {
    Ok(counters(&http_get(admin, "/metrics").await?, kind))
}

/// Ours' counters for objects of `kind` in a rendered /metrics page.
fn counters(text: &str, kind: &str) -> OurCounters {
    use fedstate_scheduler::service::metrics as m;
    let kind_label = format!("kind=\"{kind}\"");
    // Attempts are labelled with their object's kind (`ResourceBinding`, `MultiCloudMongoDB`, …):
    // a binding kind's figure is every attempt but MultiCloudMongoDB's.
    let mcm = "kind=\"MultiCloudMongoDB\"";
    let of_kind = |with: &[&str]| {
        let all = metric_sum(text, m::SCHEDULE_ATTEMPTS, with);
        let mcms = metric_sum(text, m::SCHEDULE_ATTEMPTS, &[with, &[mcm]].concat());
        if kind == "MultiCloudMongoDB" {
            mcms
        } else {
            all - mcms
        }
    };
    OurCounters {
        decisions: of_kind(&[&format!(
            "outcome=\"{}\"",
            m::AttemptResult::Scheduled.outcome()
        )]),
        attempts: of_kind(&[]),
        writes: metric_sum(text, m::API_WRITES, &[&kind_label]),
        estimator_rpcs: metric_sum(
            text,
            fedstate_estimator_client::metrics::RPC_TOTAL,
            &["method=\"MaxAvailableReplicas\""],
        ),
        events_dropped: metric_sum(
            text,
            fedstate_scheduler::service::events::EVENTS_DROPPED,
            &[],
        ),
    }
}

impl std::ops::Sub for OurCounters {
    type Output = OurCounters;
    fn sub(self, o: OurCounters) -> OurCounters {
        OurCounters {
            decisions: self.decisions - o.decisions,
            attempts: self.attempts - o.attempts,
            writes: self.writes - o.writes,
            estimator_rpcs: self.estimator_rpcs - o.estimator_rpcs,
            events_dropped: self.events_dropped - o.events_dropped,
        }
    }
}

/// One phase of one scheduler.
#[derive(Clone, Debug, serde::Serialize)]
struct PhaseResult {
    section: String,
    who: Who,
    round: usize,
    objects: usize,
    /// Objects per second, from release (backlog) or first creation (trickle, burst) to the last
    /// placement.
    throughput: f64,
    elapsed_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    requests: Requests,
    cpu_s: f64,
    peak_rss: u64,
    /// Calls the estimators (real and simulated) answered during the phase.
    estimator_calls: u64,
    ours: Option<OurCounters>,
    watch_restarts: u32,
}

impl PhaseResult {
    fn per(&self, n: u64) -> f64 {
        n as f64 / self.objects as f64
    }
}

/// What a watch saw of the objects of one namespace.
#[derive(Default)]
struct Seen {
    created: HashMap<String, Instant>,
    done: HashMap<String, Instant>,
    restarts: u32,
}

/// Watches one namespace's objects of kind `K`, recording when each first appeared and when it
/// first satisfied `done`.
struct Tracker {
    seen: Arc<Mutex<Seen>>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Tracker {
    async fn start<K>(api: Api<K>, done: fn(&K) -> bool) -> anyhow::Result<Tracker>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = {
            let (seen, stop) = (seen.clone(), stop.clone());
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
                loop {
                    let e = tokio::select! {
                        _ = stop.cancelled() => break,
                        e = events.next() => e,
                    };
                    let Some(e) = e else { break };
                    let now = Instant::now();
                    let obj = match e {
                        Ok(watcher::Event::InitDone) => {
                            if let Some(tx) = ready.take() {
                                let _ = tx.send(());
                            }
                            continue;
                        }
                        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
                        Ok(_) => continue,
                        Err(e) => {
                            seen.lock().await.restarts += 1;
                            eprintln!("watch: {e}");
                            continue;
                        }
                    };
                    let name = obj.meta().name.clone().unwrap_or_default();
                    let mut s = seen.lock().await;
                    s.created.entry(name.clone()).or_insert(now);
                    if done(&obj) {
                        s.done.entry(name).or_insert(now);
                    }
                }
            })
        };
        ready_rx
            .await
            .context("watch ended before its first list")?;
        Ok(Tracker {
            seen,
            stop,
            task: Some(task),
        })
    }

    async fn counts(&self) -> (usize, usize) {
        let s = self.seen.lock().await;
        (s.created.len(), s.done.len())
    }

    async fn wait(
        &self,
        what: &str,
        n: usize,
        created: bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let (c, d) = self.counts().await;
            if (if created { c } else { d }) >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what}: {d} of {n} done ({c} seen) after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finish(mut self) -> Seen {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        std::mem::take(&mut *self.seen.lock().await)
    }
}

/// Everything a phase needs.
struct Bench {
    args: Args,
    fed: Federation,
    karmada: kube::Client,
    audit: Mutex<AuditLog>,
    kubeconfigs: HashMap<Who, PathBuf>,
    /// Simulated clusters (the `many-clusters` workload and the footprint).
    simulated: Mutex<Vec<Simulated>>,
    results: Mutex<Vec<PhaseResult>>,
    json: Option<std::sync::Mutex<std::fs::File>>,
    bin_dir: PathBuf,
}

/// Where cargo put our binaries: next to this one.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no parent of this binary")?.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built: build it with this binary (`benches/side-by-side.sh` does)",
            path.display()
        );
    }
    Ok(path)
}

impl Bench {
    async fn start(&self, who: Who, budget: Budget, extra: &[String]) -> anyhow::Result<Proc> {
        let kubeconfig = self.kubeconfigs[&who].display().to_string();
        let log = self
            .fed
            .logs_dir()
            .join(format!("bench-{}-{}.log", who.label(), budget.tag()));
        let mut admin = None;
        let (program, mut args) = match who {
            Who::Karmada => {
                let spec = self
                    .fed
                    .component("karmada-scheduler")
                    .context("the federation runs no karmada-scheduler")?;
                let args: Vec<String> = spec
                    .args
                    .iter()
                    .map(|a| {
                        if a.starts_with("--kubeconfig=") {
                            format!("--kubeconfig={kubeconfig}")
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                (spec.program, args)
            }
            Who::Ours => {
                let tls = self.fed.estimator_tls();
                let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
                admin = Some(addr);
                (
                    sibling("fedstate-scheduler")?,
                    vec![
                        "run".into(),
                        format!("--kubeconfig={kubeconfig}"),
                        format!("--admin-addr={addr}"),
                        "--leader-elect=false".into(),
                        format!("--concurrency={}", self.args.concurrency),
                        format!("--scheduler-estimator-ca-file={}", tls.ca_cert.display()),
                        format!(
                            "--scheduler-estimator-cert-file={}",
                            tls.client_cert.display()
                        ),
                        format!(
                            "--scheduler-estimator-key-file={}",
                            tls.client_key.display()
                        ),
                    ],
                )
            }
            Who::Ceiling => (
                sibling("ceiling_scheduler")?,
                vec![
                    format!("--kubeconfig={kubeconfig}"),
                    format!("--scheduler-name={CEILING_NAME}"),
                    format!("--concurrency={}", self.args.concurrency),
                    format!("--clusters={}", self.fed.member_names().join(",")),
                ],
            ),
        };
        args.extend(budget.flags());
        args.extend(extra.iter().cloned());
        let spec = ProcessSpec {
            name: format!("bench-{}", who.label()),
            program,
            args,
            log: log.clone(),
        };
        // Ours with what its image sets (`fedstate_e2e::ours::IMAGE_ENV`).
        let env = match who {
            Who::Ours => fedstate_e2e::ours::IMAGE_ENV,
            Who::Karmada | Who::Ceiling => &[],
        };
        let (record, child) = spec.spawn_with_env(env)?;
        let mut p = Proc {
            who,
            record,
            child,
            admin,
        };
        // Up and synced: ours says so on /readyz, karmada-scheduler on /healthz, the ceiling in
        // its log.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if !p.alive() {
                bail!(
                    "{} exited; log {}:\n{}",
                    who.label(),
                    log.display(),
                    fedstate_local::process::log_tail(&log, 20)
                );
            }
            let up = match who {
                Who::Ours => match admin {
                    Some(a) => fedstate_local::probe::http_ok(a, "/readyz").await,
                    None => false,
                },
                Who::Karmada => {
                    let health: SocketAddr =
                        format!("127.0.0.1:{}", self.fed.ports().scheduler_health()).parse()?;
                    fedstate_local::probe::http_ok(health, "/healthz").await
                }
                Who::Ceiling => std::fs::read_to_string(&log).is_ok_and(|t| t.contains("ready")),
            };
            if up {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready after 120 s; log {}",
                    who.label(),
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(p)
    }

    async fn namespace(&self, name: &str) -> anyhow::Result<()> {
        let ns: Api<Namespace> = Api::all(self.karmada.clone());
        ns.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            ),
        )
        .await
        .with_context(|| format!("create namespace {name}"))?;
        Ok(())
    }

    /// Deletes a namespace and waits until it is gone (its objects with it).
    async fn drop_namespace(&self, name: &str) -> anyhow::Result<()> {
        let ns: Api<Namespace> = Api::all(self.karmada.clone());
        let _ = ns.delete(name, &DeleteParams::background()).await;
        let deadline = Instant::now() + Duration::from_secs(300);
        while ns.get_opt(name).await?.is_some() {
            if Instant::now() > deadline {
                bail!("namespace {name} not gone after 300 s");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Ok(())
    }

    async fn create_bindings(
        &self,
        namespace: &str,
        range: std::ops::Range<usize>,
        shapes: Shapes,
        who: Who,
    ) -> anyhow::Result<()> {
        let api: Api<ResourceBinding> = Api::namespaced(self.karmada.clone(), namespace);
        let replicas = self.args.replicas;
        stream::iter(range)
            .map(|i| {
                let api = api.clone();
                async move {
                    let rb =
                        workload::binding(namespace, i, replicas, shapes, who.scheduler_name())?;
                    api.create(&PostParams::default(), &rb)
                        .await
                        .with_context(|| format!("create binding {i} in {namespace}"))?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn estimator_calls(&self) -> u64 {
        let mut total = 0.0;
        for i in 1..=self.fed.members() {
            let addr: SocketAddr =
                match format!("127.0.0.1:{}", self.fed.ports().member(i).estimator_metrics).parse()
                {
                    Ok(a) => a,
                    Err(_) => continue,
                };
            if let Ok(text) = http_get(addr, "/metrics").await {
                total += metric_sum(
                    &text,
                    "karmada_scheduler_estimator_estimating_request_total",
                    &[],
                );
            }
        }
        let sim: u64 = self
            .simulated
            .lock()
            .await
            .iter()
            .map(|s| s.estimator.calls.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        total as u64 + sim
    }

    async fn requests(&self, who: Who) -> anyhow::Result<Requests> {
        let mut log = self.audit.lock().await;
        log.poll()?;
        Ok(log.user(who.user()))
    }

    /// Waits until `who` sent nothing for 3 s (its late writes and queued events count towards
    /// the phase), at most `max`.
    async fn settle(&self, who: Who, max: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + max;
        let mut last = self.requests(who).await?;
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.requests(who).await?;
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
        Ok(())
    }

    async fn snapshot(
        &self,
        p: &Proc,
        kind: &str,
    ) -> anyhow::Result<(Requests, Duration, u64, Option<OurCounters>)> {
        let ours = match p.admin {
            Some(a) => Some(our_counters(a, kind).await?),
            None => None,
        };
        Ok((
            self.requests(p.who).await?,
            procstat::cpu_time(p.pid())?,
            self.estimator_calls().await,
            ours,
        ))
    }

    async fn record(&self, r: PhaseResult) {
        eprintln!(
            "[{}] {} round {}: {} objects, {:.1}/s, p50 {:.0} ms, p99 {:.0} ms, {:.2} object writes and {:.2} requests per decision, {:.2} ms CPU per decision",
            r.section,
            r.who.label(),
            r.round,
            r.objects,
            r.throughput,
            r.p50_ms,
            r.p99_ms,
            r.per(r.requests.object_writes()),
            r.per(r.requests.total()),
            r.cpu_s * 1000.0 / r.objects as f64
        );
        if let Some(f) = &self.json
            && let Ok(line) = serde_json::to_string(&r)
        {
            use std::io::Write;
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{line}");
        }
        self.results.lock().await.push(r);
    }

    /// Backlog: the scheduler paused while N bindings are created, then released.
    async fn backlog(
        &self,
        p: &Proc,
        section: &str,
        round: usize,
        shapes: Shapes,
        n: usize,
    ) -> anyhow::Result<PhaseResult> {
        let ns = format!("b-{}-{}", p.who.label(), unique());
        self.namespace(&ns).await?;
        let api: Api<ResourceBinding> = Api::namespaced(self.karmada.clone(), &ns);
        let tracker = Tracker::start(api, workload::is_scheduled).await?;
        // Counters first: a paused process answers no /metrics, and does nothing until resumed.
        let before = self.snapshot(p, "ResourceBinding").await?;
        p.pause()?;
        let created = self.create_bindings(&ns, 0..n, shapes, p.who).await;
        let seen = tracker
            .wait("bindings created", n, true, self.args.phase_timeout)
            .await;
        if let Err(e) = created.and(seen) {
            p.resume()?;
            return Err(e);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = procstat::reset_peak(p.pid());
        let t0 = Instant::now();
        p.resume()?;
        let placed = tracker
            .wait(
                &format!("[{section}] {}", p.who.label()),
                n,
                false,
                self.args.phase_timeout,
            )
            .await;
        let seen = tracker.finish().await;
        placed?;
        self.settle(p.who, Duration::from_secs(180)).await?;
        let after = self.snapshot(p, "ResourceBinding").await?;
        let memory = procstat::memory(p.pid())?;
        self.drop_namespace(&ns).await?;
        let mut latencies: Vec<Duration> = seen
            .done
            .values()
            .map(|d| d.saturating_duration_since(t0))
            .collect();
        latencies.sort_unstable();
        let elapsed = latencies.last().copied().unwrap_or_default();
        Ok(result(
            section,
            p.who,
            round,
            n,
            elapsed,
            &latencies,
            before,
            after,
            memory.peak,
            seen.restarts,
        ))
    }

    /// Trickle: bindings created at a steady rate while the scheduler runs.
    async fn trickle(
        &self,
        p: &Proc,
        section: &str,
        round: usize,
        shapes: Shapes,
    ) -> anyhow::Result<PhaseResult> {
        let n = self.args.trickle_bindings;
        let ns = format!("t-{}-{}", p.who.label(), unique());
        self.namespace(&ns).await?;
        let api: Api<ResourceBinding> = Api::namespaced(self.karmada.clone(), &ns);
        let tracker = Tracker::start(api.clone(), workload::is_scheduled).await?;
        let before = self.snapshot(p, "ResourceBinding").await?;
        let _ = procstat::reset_peak(p.pid());
        let t0 = Instant::now();
        let every = Duration::from_secs_f64(1.0 / self.args.trickle_rate);
        let mut creates = tokio::task::JoinSet::new();
        for i in 0..n {
            tokio::time::sleep_until((t0 + every * u32::try_from(i)?).into()).await;
            let (api, ns, replicas, who) = (api.clone(), ns.clone(), self.args.replicas, p.who);
            creates.spawn(async move {
                let rb = workload::binding(&ns, i, replicas, shapes, who.scheduler_name())?;
                api.create(&PostParams::default(), &rb).await?;
                anyhow::Ok(())
            });
        }
        while let Some(r) = creates.join_next().await {
            r??;
        }
        let placed = tracker
            .wait(
                &format!("[{section}] {}", p.who.label()),
                n,
                false,
                self.args.phase_timeout,
            )
            .await;
        let seen = tracker.finish().await;
        placed?;
        self.settle(p.who, Duration::from_secs(120)).await?;
        let after = self.snapshot(p, "ResourceBinding").await?;
        let memory = procstat::memory(p.pid())?;
        self.drop_namespace(&ns).await?;
        let mut latencies: Vec<Duration> = seen
            .done
            .iter()
            .filter_map(|(k, d)| Some(d.saturating_duration_since(*seen.created.get(k)?)))
            .collect();
        latencies.sort_unstable();
        let first = seen.created.values().min().copied().unwrap_or(t0);
        let last = seen.done.values().max().copied().unwrap_or(t0);
        Ok(result(
            section,
            p.who,
            round,
            n,
            last - first,
            &latencies,
            before,
            after,
            memory.peak,
            seen.restarts,
        ))
    }

    /// MultiCloudMongoDB burst: N objects created as fast as the apiserver takes them while the
    /// scheduler runs.
    async fn mcm_burst(
        &self,
        p: &Proc,
        section: &str,
        round: usize,
    ) -> anyhow::Result<PhaseResult> {
        let n = self.args.mcm;
        let ns = format!("m-{}-{}", p.who.label(), unique());
        self.namespace(&ns).await?;
        let api: Api<MultiCloudMongoDB> = Api::namespaced(self.karmada.clone(), &ns);
        let tracker = Tracker::start(api.clone(), workload::is_placed).await?;
        let before = self.snapshot(p, "MultiCloudMongoDB").await?;
        let _ = procstat::reset_peak(p.pid());
        let scheduler = if p.who == Who::Ours {
            OUR_NAME
        } else {
            CEILING_NAME
        };
        stream::iter(0..n)
            .map(|i| {
                let (api, ns) = (api.clone(), ns.clone());
                async move {
                    let obj = workload::mcm(&ns, i, scheduler)?;
                    api.create(&PostParams::default(), &obj)
                        .await
                        .with_context(|| format!("create MultiCloudMongoDB {i}"))?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        let placed = tracker
            .wait(
                &format!("[{section}] {}", p.who.label()),
                n,
                false,
                self.args.phase_timeout,
            )
            .await;
        let seen = tracker.finish().await;
        placed?;
        self.settle(p.who, Duration::from_secs(180)).await?;
        let after = self.snapshot(p, "MultiCloudMongoDB").await?;
        let memory = procstat::memory(p.pid())?;
        self.drop_namespace(&ns).await?;
        let mut latencies: Vec<Duration> = seen
            .done
            .iter()
            .filter_map(|(k, d)| Some(d.saturating_duration_since(*seen.created.get(k)?)))
            .collect();
        latencies.sort_unstable();
        let first = seen
            .created
            .values()
            .min()
            .copied()
            .unwrap_or_else(Instant::now);
        let last = seen.done.values().max().copied().unwrap_or(first);
        Ok(result(
            section,
            p.who,
            round,
            n,
            last - first,
            &latencies,
            before,
            after,
            memory.peak,
            seen.restarts,
        ))
    }

    /// A warm-up batch: watches, channels and caches of a fresh process filled before any clock.
    async fn warm(&self, p: &Proc, shapes: Shapes) -> anyhow::Result<()> {
        let ns = format!("warm-{}-{}", p.who.label(), unique());
        self.namespace(&ns).await?;
        let api: Api<ResourceBinding> = Api::namespaced(self.karmada.clone(), &ns);
        let tracker = Tracker::start(api, workload::is_scheduled).await?;
        self.create_bindings(&ns, 0..20, shapes, p.who).await?;
        let r = tracker
            .wait(
                &format!("warm-up of {}", p.who.label()),
                20,
                false,
                Duration::from_secs(180),
            )
            .await;
        tracker.finish().await;
        r?;
        self.settle(p.who, Duration::from_secs(60)).await?;
        self.drop_namespace(&ns).await
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn unique() -> usize {
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[allow(clippy::too_many_arguments)]
fn result(
    section: &str,
    who: Who,
    round: usize,
    n: usize,
    elapsed: Duration,
    sorted: &[Duration],
    before: (Requests, Duration, u64, Option<OurCounters>),
    after: (Requests, Duration, u64, Option<OurCounters>),
    peak_rss: u64,
    watch_restarts: u32,
) -> PhaseResult {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    PhaseResult {
        section: section.to_owned(),
        who,
        round,
        objects: n,
        throughput: n as f64 / elapsed.as_secs_f64().max(1e-9),
        elapsed_s: elapsed.as_secs_f64(),
        p50_ms: ms(percentile(sorted, 50.0)),
        p99_ms: ms(percentile(sorted, 99.0)),
        max_ms: ms(sorted.last().copied().unwrap_or_default()),
        requests: after.0.since(&before.0),
        cpu_s: (after.1.saturating_sub(before.1)).as_secs_f64(),
        peak_rss,
        estimator_calls: after.2.saturating_sub(before.2),
        ours: match (after.3, before.3) {
            (Some(a), Some(b)) => Some(a - b),
            _ => None,
        },
        watch_restarts,
    }
}

/// The schedulers of round `r`, rotated so that no scheduler always runs first.
fn order(mut who: Vec<Who>, r: usize) -> Vec<Who> {
    if !who.is_empty() {
        let k = r % who.len();
        who.rotate_left(k);
    }
    who
}

/// Pods each extra node admits: Karmada's general estimate and the estimators count the replicas
/// of scheduled-but-undispatched bindings, so the test bed's 220 pods per member would not fit a
/// phase. One big kwok node per member makes room.
const BENCH_NODE_PODS: u32 = 2500;

async fn add_bench_nodes(fed: &Federation, karmada: &kube::Client) -> anyhow::Result<()> {
    let pods = BENCH_NODE_PODS.to_string();
    for i in 1..=fed.members() {
        let name = format!("member{i}-bench-node");
        fedstate_benches::kwok::add_node(
            &fed.member_client(i).await?,
            FIELD_MANAGER,
            &name,
            "bench",
            ("64", "256Gi", &pods),
        )
        .await?;
    }
    let clusters: Api<Cluster> = Api::all(karmada.clone());
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
        if roomy >= fed.members() as usize {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {roomy} of {} Clusters show the bench nodes after 180 s",
                fed.members()
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Our CRDs (the MultiCloudMongoDB burst, and so that ours' MultiCloudMongoDB watch has
/// something to watch) and cluster-admin for the audited identities.
async fn prepare(karmada: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    let crds: Api<CustomResourceDefinition> = Api::all(karmada.clone());
    for crd in [MultiCloudMongoDB::crd(), fedstate_api::MongoDB::crd()] {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .context("install our CRDs")?;
    }
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "fedstate-bench-audited"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": AUDITED_GROUP}],
    });
    let api: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(karmada.clone());
    api.patch(
        "fedstate-bench-audited",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&binding),
    )
    .await
    .context("ClusterRoleBinding for the benchmark's identities")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Api::<MultiCloudMongoDB>::all(karmada.clone())
        .list(&Default::default())
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("MultiCloudMongoDB not served 60 s after installing the CRD");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

impl Bench {
    /// One workload at one budget: the three schedulers started (warm), `rounds` interleaved
    /// backlog rounds, then trickle rounds if asked.
    async fn section(
        &self,
        workload: Workload,
        budget: Budget,
        trickle: bool,
    ) -> anyhow::Result<()> {
        let section = format!("{} {budget}", workload.name());
        eprintln!("== {section}: starting the schedulers");
        let mut procs: Vec<Proc> = Vec::new();
        for who in [Who::Karmada, Who::Ours, Who::Ceiling] {
            let p = self.start(who, budget, &[]).await?;
            self.warm(&p, workload.shapes()).await?;
            procs.push(p);
        }
        let n = self.args.bindings;
        for round in 0..self.args.rounds {
            for who in order(vec![Who::Karmada, Who::Ours, Who::Ceiling], round) {
                let p = procs.iter().find(|p| p.who == who).context("process")?;
                let r = self
                    .backlog(p, &section, round, workload.shapes(), n)
                    .await?;
                self.record(r).await;
            }
        }
        if trickle && self.args.trickle_bindings > 0 {
            let section = format!("trickle {} {budget}", workload.name());
            for round in 0..self.args.rounds {
                for who in order(vec![Who::Karmada, Who::Ours, Who::Ceiling], round) {
                    let p = procs.iter().find(|p| p.who == who).context("process")?;
                    let r = self.trickle(p, &section, round, workload.shapes()).await?;
                    self.record(r).await;
                }
            }
        }
        for mut p in procs {
            if !p.alive() {
                bail!("{} died during {section}", p.who.label());
            }
        }
        Ok(())
    }

    async fn mcm_section(&self, budget: Budget) -> anyhow::Result<()> {
        let section = format!("MultiCloudMongoDB burst {budget}");
        eprintln!("== {section}");
        let ours = self.start(Who::Ours, budget, &[]).await?;
        let ceiling = self
            .start(Who::Ceiling, budget, &["--kind=mcm".to_owned()])
            .await?;
        for round in 0..self.args.rounds {
            for who in order(vec![Who::Ours, Who::Ceiling], round) {
                let p = if who == Who::Ours { &ours } else { &ceiling };
                let r = self.mcm_burst(p, &section, round).await?;
                self.record(r).await;
            }
        }
        Ok(())
    }

    async fn add_simulated(&self, count: usize, estimators: bool) -> anyhow::Result<()> {
        let clusters: Api<Cluster> = Api::all(self.karmada.clone());
        let template = clusters.get("member1").await?;
        let pki = fedstate_local::pki::Pki::at(self.fed.run_dir().join("pki"));
        let (cert, key, ca) = (pki.server_cert(), pki.server_key(), pki.ca_cert());
        let first = {
            let sims = self.simulated.lock().await;
            sims.iter().map(|s| s.names.len()).sum::<usize>() + 1
        };
        let sim = Simulated::start(
            &self.karmada,
            first,
            count,
            &template,
            estimators.then_some(ServerTls {
                cert: &cert,
                key: &key,
                client_ca: &ca,
            }),
            "karmada-system",
            fedstate_local::ESTIMATOR_SERVICE_PORT,
            estimators,
        )
        .await?;
        self.simulated.lock().await.push(sim);
        Ok(())
    }

    /// RSS of a fresh fedstate-scheduler once it cached `clusters` Clusters and `bindings`
    /// bindings.
    async fn footprint(&self) -> anyhow::Result<(String, u64)> {
        let clusters: Api<Cluster> = Api::all(self.karmada.clone());
        let have = clusters.list(&Default::default()).await?.items.len();
        if have < self.args.footprint_clusters {
            eprintln!(
                "== footprint: adding {} Clusters",
                self.args.footprint_clusters - have
            );
            self.add_simulated(self.args.footprint_clusters - have, false)
                .await?;
        }
        let ns = "footprint";
        self.namespace(ns).await?;
        let names = self.fed.member_names();
        let api: Api<ResourceBinding> = Api::namespaced(self.karmada.clone(), ns);
        eprintln!(
            "== footprint: creating {} bindings",
            self.args.footprint_bindings
        );
        stream::iter(0..self.args.footprint_bindings)
            .map(|i| {
                let (api, names) = (api.clone(), &names);
                async move {
                    let rb = workload::placed_binding(ns, i, names)?;
                    api.create(&PostParams::default(), &rb).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<()>>()
            .await?;
        let total_clusters = clusters.list(&Default::default()).await?.items.len();
        let total_bindings = Api::<ResourceBinding>::all(self.karmada.clone())
            .list(&Default::default())
            .await?
            .items
            .len();
        let p = self.start(Who::Ours, Budget::Unthrottled, &[]).await?;
        // Ready means the Cluster cache synced; the binding list follows. Wait until the RSS
        // holds still.
        let mut last = 0u64;
        let mut steady = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while steady < 5 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let m = procstat::memory(p.pid())?;
            if m.rss.abs_diff(last) * 100 <= m.rss {
                steady += 1;
            } else {
                steady = 0;
            }
            last = m.rss;
        }
        let m = procstat::memory(p.pid())?;
        let ours = match p.admin {
            Some(a) => http_get(a, "/metrics").await.unwrap_or_default(),
            None => String::new(),
        };
        let resident = metric_sum(&ours, "process_resident_memory_bytes", &[]);
        drop(p);
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        Ok((
            format!(
                "| {total_clusters} | {total_bindings} | {:.1} MiB | {:.1} MiB | {:.1} MiB | ≤ 64 MiB: {} |\n",
                mib(m.rss),
                mib(m.peak),
                resident / (1u64 << 20) as f64,
                if m.rss <= 64 << 20 { "met" } else { "not met" }
            ),
            m.rss,
        ))
    }
}

/// Median and range over rounds of one figure of one scheduler in one section.
fn figure(
    results: &[PhaseResult],
    section: &str,
    who: Who,
    f: impl Fn(&PhaseResult) -> f64,
) -> Vec<f64> {
    results
        .iter()
        .filter(|r| r.section == section && r.who == who)
        .map(f)
        .collect()
}

/// Per-round ratio of one figure of `a` to `b` in a section.
fn ratio(
    results: &[PhaseResult],
    section: &str,
    a: Who,
    b: Who,
    f: impl Fn(&PhaseResult) -> f64,
) -> Vec<f64> {
    let xs = figure(results, section, a, &f);
    let ys = figure(results, section, b, &f);
    xs.iter().zip(ys.iter()).map(|(x, y)| x / y).collect()
}

fn report(args: &Args, results: &[PhaseResult], load: &str) -> String {
    let mut out = String::new();
    let mut sections: Vec<&str> = Vec::new();
    for r in results {
        if !sections.contains(&r.section.as_str()) {
            sections.push(&r.section);
        }
    }
    let _ = writeln!(
        out,
        "inputs: {} bindings per backlog phase, {} replicas each (Divided/Weighted, dynamicWeight AvailableReplicas, estimators on), {} rounds, {} real members, ours' and the ceiling's concurrency {}; trickle {} bindings at {}/s; {}",
        args.bindings,
        args.replicas,
        args.rounds,
        args.members,
        args.concurrency,
        args.trickle_bindings,
        args.trickle_rate,
        load
    );
    for section in &sections {
        let _ = writeln!(out, "\n### {section}\n");
        let mcm = section.starts_with("MultiCloudMongoDB");
        let _ = writeln!(
            out,
            "| scheduler | objects | throughput /s | p50 ms | p99 ms | {} writes per decision | status writes | events | reads + watches + other | requests per decision | CPU ms per decision | peak RSS MiB | estimator calls per decision |",
            if mcm { "annotation" } else { "spec" }
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for who in [Who::Karmada, Who::Ours, Who::Ceiling] {
            let rows = figure(results, section, who, |r| r.objects as f64);
            if rows.is_empty() {
                continue;
            }
            let f = |g: &dyn Fn(&PhaseResult) -> f64, d: usize| {
                stats::show(&figure(results, section, who, g), d)
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                who.label(),
                f(&|r| r.objects as f64, 0),
                f(&|r| r.throughput, 1),
                f(&|r| r.p50_ms, 0),
                f(&|r| r.p99_ms, 0),
                f(&|r| r.per(r.requests.binding_spec + r.requests.mcm_spec), 2),
                f(
                    &|r| r.per(r.requests.binding_status + r.requests.mcm_status),
                    2
                ),
                f(&|r| r.per(r.requests.events), 2),
                f(
                    &|r| r.per(r.requests.reads + r.requests.watches + r.requests.other_writes),
                    2
                ),
                f(&|r| r.per(r.requests.total()), 2),
                f(&|r| r.cpu_s * 1000.0 / r.objects as f64, 2),
                f(&|r| r.peak_rss as f64 / (1u64 << 20) as f64, 0),
                f(&|r| r.per(r.estimator_calls), 2),
            );
        }
        let show = |v: Vec<f64>, d: usize| stats::show(&v, d);
        if !mcm {
            let _ = writeln!(
                out,
                "\nours / karmada-scheduler, per round: throughput {}×, p50 {}, p99 {}, CPU per decision {}; ours / ceiling: throughput {}",
                show(
                    ratio(results, section, Who::Ours, Who::Karmada, |r| r.throughput),
                    2
                ),
                show(
                    ratio(results, section, Who::Ours, Who::Karmada, |r| r.p50_ms),
                    3
                ),
                show(
                    ratio(results, section, Who::Ours, Who::Karmada, |r| r.p99_ms),
                    3
                ),
                show(
                    ratio(results, section, Who::Ours, Who::Karmada, |r| r.cpu_s
                        / r.objects as f64),
                    3
                ),
                show(
                    ratio(results, section, Who::Ours, Who::Ceiling, |r| r.throughput),
                    2
                ),
            );
        } else {
            let _ = writeln!(
                out,
                "\nours / one-write ceiling, per round: throughput {}, p99 {}",
                show(
                    ratio(results, section, Who::Ours, Who::Ceiling, |r| r.throughput),
                    2
                ),
                show(
                    ratio(results, section, Who::Ours, Who::Ceiling, |r| r.p99_ms),
                    2
                ),
            );
        }
        let ours: Vec<&PhaseResult> = results
            .iter()
            .filter(|r| r.section == *section && r.who == Who::Ours)
            .collect();
        if let Some(o) = ours.first().and_then(|r| r.ours) {
            let _ = writeln!(
                out,
                "ours' own metrics (round 0): {} decisions, {} attempts, {} writes, {} estimator RPCs, {} events dropped",
                o.decisions, o.attempts, o.writes, o.estimator_rpcs, o.events_dropped
            );
        }
    }
    out
}

/// Ours' binding writes (spec + status) per decision in every binding section, as the
/// apiserver counted them.
fn writes_per_decision(results: &[PhaseResult]) -> f64 {
    results
        .iter()
        .filter(|r| r.who == Who::Ours && !r.section.starts_with("MultiCloudMongoDB"))
        .map(|r| r.per(r.requests.binding_spec + r.requests.binding_status))
        .fold(0.0, f64::max)
}

/// The goals of `docs/performance.md`, each with what this run measured.
fn goals(results: &[PhaseResult], footprint_rss: Option<u64>) -> String {
    let sections = |prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = results
            .iter()
            .filter(|r| r.section.starts_with(prefix))
            .map(|r| r.section.clone())
            .collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    };
    let binding_sections: Vec<String> = sections("")
        .into_iter()
        .filter(|s| !s.starts_with("MultiCloudMongoDB"))
        .collect();
    let med = |v: Vec<f64>| stats::Spread::of(&v).map(|s| s.median);
    let per_section =
        |names: &[String], f: &dyn Fn(&str) -> Option<f64>, d: usize| -> (String, Vec<f64>) {
            let mut parts = Vec::new();
            let mut values = Vec::new();
            for n in names {
                if let Some(v) = f(n) {
                    parts.push(format!("{n}: {v:.d$}"));
                    values.push(v);
                }
            }
            (parts.join("; "), values)
        };
    let verdict = |values: &[f64], ok: &dyn Fn(f64) -> bool| {
        if values.is_empty() {
            "not measured"
        } else if values.iter().all(|v| ok(*v)) {
            "met"
        } else {
            "not met"
        }
    };
    let mut out = String::from(
        "\n### goals\n\n| measure | goal | this run (median over rounds) | verdict |\n|---|---|---|---|\n",
    );
    let mut row = |measure: &str,
                   goal: &str,
                   (text, values): (String, Vec<f64>),
                   ok: &dyn Fn(f64) -> bool| {
        let _ = writeln!(
            out,
            "| {measure} | {goal} | {text} | {} |",
            verdict(&values, ok)
        );
    };
    row(
        "binding writes per decision (ours, audit log)",
        "exactly 2",
        per_section(
            &binding_sections,
            &|n| {
                med(figure(results, n, Who::Ours, |r| {
                    r.per(r.requests.binding_spec + r.requests.binding_status)
                }))
            },
            2,
        ),
        &|v| (v - 2.0).abs() < 0.005,
    );
    let limited: Vec<String> = binding_sections
        .iter()
        .filter(|s| s.ends_with(" 40/60") && !s.starts_with("trickle"))
        .cloned()
        .collect();
    row(
        "throughput at 40/60, ours / karmada-scheduler",
        "≥ 2",
        per_section(
            &limited,
            &|n| med(ratio(results, n, Who::Ours, Who::Karmada, |r| r.throughput)),
            2,
        ),
        &|v| v >= 2.0,
    );
    let free: Vec<String> = binding_sections
        .iter()
        .filter(|s| s.ends_with(" unthrottled") && !s.starts_with("trickle"))
        .cloned()
        .collect();
    row(
        "throughput unthrottled, ours / ceiling",
        "≥ 0.9",
        per_section(
            &free,
            &|n| med(ratio(results, n, Who::Ours, Who::Ceiling, |r| r.throughput)),
            2,
        ),
        &|v| v >= 0.9,
    );
    row(
        "throughput unthrottled, ours / karmada-scheduler",
        "reported",
        per_section(
            &free,
            &|n| med(ratio(results, n, Who::Ours, Who::Karmada, |r| r.throughput)),
            2,
        ),
        &|_| true,
    );
    let backlog: Vec<String> = binding_sections
        .iter()
        .filter(|s| !s.starts_with("trickle"))
        .cloned()
        .collect();
    row(
        "CPU per decision, ours / karmada-scheduler",
        "≤ 0.1",
        per_section(
            &backlog,
            &|n| {
                med(ratio(results, n, Who::Ours, Who::Karmada, |r| {
                    r.cpu_s / r.objects as f64
                }))
            },
            3,
        ),
        &|v| v <= 0.1,
    );
    let trickle = sections("trickle");
    row(
        "p99 latency while trickling, ours / karmada-scheduler",
        "≤ 0.2",
        per_section(
            &trickle,
            &|n| med(ratio(results, n, Who::Ours, Who::Karmada, |r| r.p99_ms)),
            3,
        ),
        &|v| v <= 0.2,
    );
    let mcm = sections("MultiCloudMongoDB");
    row(
        "MultiCloudMongoDB burst, ours / one-write ceiling",
        "≥ 0.9 (every object placed)",
        per_section(
            &mcm,
            &|n| med(ratio(results, n, Who::Ours, Who::Ceiling, |r| r.throughput)),
            2,
        ),
        &|v| v >= 0.9,
    );
    let uniform: Vec<String> = backlog
        .iter()
        .filter(|s| s.starts_with("uniform"))
        .cloned()
        .collect();
    row(
        "estimator calls per decision, capacity unchanged (ours, one shape)",
        "0",
        per_section(
            &uniform,
            &|n| med(figure(results, n, Who::Ours, |r| r.per(r.estimator_calls))),
            3,
        ),
        &|v| v == 0.0,
    );
    let fp = footprint_rss.map(|b| b as f64 / (1u64 << 20) as f64);
    row(
        "RSS, 1,000 Clusters × 10,000 bindings (MiB)",
        "≤ 64",
        (
            fp.map(|v| format!("{v:.1}")).unwrap_or_default(),
            fp.into_iter().collect(),
        ),
        &|v| v <= 64.0,
    );
    out
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn run(args: &Args, fed: Federation) -> anyhow::Result<String> {
    let karmada = fed.karmada_client().await?;
    prepare(&karmada).await?;
    add_bench_nodes(&fed, &karmada).await?;
    // The federation's karmada-scheduler makes way for the benchmark's copies.
    fed.stop_component("karmada-scheduler")?;
    let mut kubeconfigs = HashMap::new();
    for who in [Who::Karmada, Who::Ours, Who::Ceiling] {
        kubeconfigs.insert(who, fed.karmada_kubeconfig_for(who.user(), AUDITED_GROUP)?);
    }
    let audit = AuditLog::from_end(&fed.audit_log())?;
    let json = match &args.json {
        Some(p) => Some(std::sync::Mutex::new(std::fs::File::create(p)?)),
        None => None,
    };
    let bin_dir = fed.bin_dir().to_path_buf();
    let bench = Bench {
        args: args.clone(),
        fed,
        karmada,
        audit: Mutex::new(audit),
        kubeconfigs,
        simulated: Mutex::default(),
        results: Mutex::default(),
        json,
        bin_dir,
    };
    let started = Instant::now();
    let mut loads = vec![load_average()];
    let outcome = bench.run_all().await;
    loads.push(load_average());
    let results = bench.results.lock().await.clone();
    let mut out = format!(
        "date {}; {} s; load average (1/5/15 min) at start {} and end {}; binaries {}\n",
        jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
        started.elapsed().as_secs(),
        loads[0],
        loads[1],
        bench.bin_dir.display()
    );
    out.push_str(&report(args, &results, ""));
    let mut rss = None;
    if let Ok((footprint, r)) = &outcome {
        out.push_str(footprint);
        rss = *r;
    }
    out.push_str(&goals(&results, rss));
    {
        let log = bench.audit.lock().await;
        if log.unparsed > 0 {
            let _ = writeln!(out, "\naudit log: {} lines did not parse", log.unparsed);
        }
    }
    let sims = std::mem::take(&mut *bench.simulated.lock().await);
    for s in &sims {
        s.stop();
    }
    let fed = bench.fed;
    if let Err(e) = &outcome {
        eprintln!(
            "benchmark failed: {e:#}; logs in {}",
            fed.logs_dir().display()
        );
    }
    // The audit log is large; the tables hold what it said.
    let _ = std::fs::remove_file(fed.audit_log());
    fed.down().context("stopping the federation")?;
    outcome?;
    println!("{out}");
    if args.smoke {
        let w = writes_per_decision(&results);
        println!("smoke: ours made at most {w:.2} binding writes per decision (limit 2)");
        if w > 2.0 {
            bail!("smoke: ours made {w:.2} binding writes per decision; the limit is 2");
        }
    }
    Ok(out)
}

impl Bench {
    async fn run_all(&self) -> anyhow::Result<(String, Option<u64>)> {
        let a = &self.args;
        for &workload in &a.workloads {
            if workload == Workload::ManyClusters {
                eprintln!("== adding {} simulated Clusters", a.simulated_clusters);
                self.add_simulated(a.simulated_clusters, true).await?;
            }
            let budgets = if workload == Workload::Uniform {
                &a.budgets
            } else {
                &a.other_budgets
            };
            for &budget in budgets {
                let trickle =
                    budget == Budget::Limited(40.0, 60) && workload != Workload::ManyClusters;
                self.section(workload, budget, trickle).await?;
            }
            if workload == Workload::Uniform && a.mcm > 0 {
                for &budget in &a.mcm_budgets {
                    self.mcm_section(budget).await?;
                }
            }
        }
        if a.footprint_bindings > 0 {
            let mut out = String::from(
                "\n### footprint\n\n| Clusters | bindings | ours' RSS | peak RSS | process_resident_memory_bytes | goal |\n|---:|---:|---:|---:|---:|---|\n",
            );
            let (row, rss) = self.footprint().await?;
            out.push_str(&row);
            return Ok((out, Some(rss)));
        }
        Ok((String::new(), None))
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args = args.smoke();
    }
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
        // Our binaries must be there before a federation comes up for nothing.
        sibling("fedstate-scheduler")?;
        sibling("ceiling_scheduler")?;
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
        run(&args, fed).await.map(drop)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_counters_tell_bindings_from_multicloudmongodbs() {
        let text = r#"fedstate_scheduler_schedule_attempts_total{result="scheduled",schedule_type="ReconcileSchedule",kind="ResourceBinding",outcome="placed"} 7
fedstate_scheduler_schedule_attempts_total{result="scheduled",schedule_type="ScaleSchedule",kind="ResourceBinding",outcome="placed"} 2
fedstate_scheduler_schedule_attempts_total{result="scheduled",schedule_type="ReconcileSchedule",kind="ResourceBinding",outcome="unchanged"} 3
fedstate_scheduler_schedule_attempts_total{result="scheduled",schedule_type="ReconcileSchedule",kind="MultiCloudMongoDB",outcome="placed"} 5
fedstate_scheduler_api_writes_total{kind="ResourceBinding",verb="patch"} 18
"#;
        let b = counters(text, "ResourceBinding");
        assert_eq!((b.decisions, b.attempts, b.writes), (9.0, 12.0, 18.0));
        let m = counters(text, "MultiCloudMongoDB");
        assert_eq!((m.decisions, m.attempts, m.writes), (5.0, 5.0, 0.0));
    }
}
