//! The soak test: on its own local federation, with fedstate-scheduler, fedstate-manager and one
//! fedstate-mongo-agent per member running as processes (the flags our charts give them; the
//! replica-set simulator stands in for mongod, as in e2e), it keeps a steady population of
//! `--mcm` MultiCloudMongoDBs and `--bindings` Karmada ResourceBindings for our scheduler
//! churning for `--duration`: each slot creates its object (3 members / 3 replicas), waits until
//! it is ready (placed, `Health`, every member running) or placed (`Scheduled=True`, every
//! replica), scales it (5 members / 6 replicas), waits again, deletes it, waits until it and its
//! member MongoDBs are gone, and starts over under a new name. Each wait has a bound
//! (`--converge-timeout`); an object that misses it fails the run with its name and what it
//! still shows. Every `--sample-every` the RSS of each of our processes is read from
//! `/proc/<pid>/status`; the run fails if any process's mean RSS in the last quarter of the
//! churn is more than `--max-growth-percent` above its mean in the second quarter, if any
//! process exited, or if the run was too short to complete a cycle per MultiCloudMongoDB slot.
//! It prints a report (markdown: convergence times, RSS by quarter, a text plot), also written
//! to `--report`.
//!
//! Names are new in every cycle, so a map keyed by object that is never pruned grows. Slots
//! start spread over the first eighth of the run (at most 30 s), so the population is in every
//! phase at once and the quarters compare like with like. The agent keeps each member's PVC
//! when its MongoDB is deleted (by design: data outlives the object); the soak, as an operator
//! would, deletes those claims once the object is gone and makes their Retained volumes
//! available again.
//!
//! Run it with `benches/soak.sh` (builds what it needs); `--smoke` is the CI version.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_api::{MongoDB, MultiCloudMongoDB};
use fedstate_benches::soak::{self, Sample};
use fedstate_benches::{procstat, workload};
use fedstate_e2e::ours::Ours;
use fedstate_e2e::stack;
use fedstate_local::capacity::STORAGE_CLASS;
use fedstate_local::{Federation, Options, PortPlan, member_name, member_vip};
use futures::{FutureExt, StreamExt, stream};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NS: &str = "fedstate-soak";
const FIELD_MANAGER: &str = "fedstate-soak";
const OURS: &str = fedstate_api::names::DEFAULT_SCHEDULER_NAME;
/// Members and binding replicas before and after the scale step.
const MEMBERS: (i32, i32) = (3, 5);
const REPLICAS: (i32, i32) = (3, 6);

/// Soak test of FedState's control plane on the local federation (see the module docs in
/// benches/src/bin/soak.rs and benches/README.md).
#[derive(Parser, Debug, Clone)]
#[command(name = "soak")]
struct Args {
    /// MultiCloudMongoDBs per round.
    #[arg(long, default_value_t = 200)]
    mcm: usize,
    /// ResourceBindings per round.
    #[arg(long, default_value_t = 2000)]
    bindings: usize,
    /// Start rounds until this much time has passed (the last round runs to its end).
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Binding changes (create, scale, delete) per second, over all binding slots (a slot
    /// waits its turn before each), so the scheduler runs below its client budget
    /// (`--kube-api-qps` 40: about 10 decisions a second) and a slow binding means a slow
    /// scheduler, not a queue the soak built; the bindings exist all the while. 0: no pacing (a
    /// saturation test).
    #[arg(long, default_value_t = 6.0)]
    binding_changes_per_second: f64,
    /// RSS sampling interval.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    sample_every: Duration,
    /// Bound of each phase: every object placed/ready, or deleted, within it.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    converge_timeout: Duration,
    /// Allowed growth of a process's mean RSS from the second quarter to the last.
    #[arg(long, default_value_t = 10.0)]
    max_growth_percent: f64,
    /// The CI version: 5 MultiCloudMongoDBs, 200 bindings, 5 minutes of churn (about 2 minutes
    /// per MultiCloudMongoDB cycle here, so several cycles, and a first quarter long enough for
    /// the processes' warm-up), each wait bounded by 150 s.
    #[arg(long)]
    smoke: bool,
    /// Member clusters of the federation.
    #[arg(long, default_value_t = 3)]
    members: u32,
    /// First port of the federation's port plan (the demo uses 31000, e2e 32000, the
    /// side-by-side benchmark 30000).
    #[arg(long, default_value_t = 30500)]
    port_base: u16,
    /// Run directory of the federation (logs of every process under `logs/`).
    #[arg(long, default_value = "/tmp/fed-soak")]
    run_dir: PathBuf,
    /// Also write the report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

impl Args {
    fn smoke(mut self) -> Self {
        self.mcm = 5;
        self.bindings = 200;
        self.duration = Duration::from_secs(300);
        self.converge_timeout = Duration::from_secs(150);
        self
    }
}

/// Where cargo put our binaries: next to this one.
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no parent of this binary")?.join(name);
    if !path.is_file() {
        bail!(
            "{} is not built: build it with this binary (`benches/soak.sh` does)",
            path.display()
        );
    }
    Ok(path)
}

/// RSS curves, sampled by a task until cancelled.
type Curves = Arc<Mutex<BTreeMap<String, Vec<Sample>>>>;

fn sample_rss(
    pids: Vec<(String, u32)>,
    every: Duration,
    started: Instant,
    stop: CancellationToken,
) -> (Curves, tokio::task::JoinHandle<()>) {
    let curves: Curves = Arc::default();
    let into = curves.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let at = started.elapsed();
            let Ok(mut curves) = into.lock() else { return };
            for (name, pid) in &pids {
                // A process that is gone has no sample; the verdict notices the gap.
                if let Ok(m) = procstat::memory(*pid) {
                    curves
                        .entry(name.clone())
                        .or_default()
                        .push(Sample { at, rss: m.rss });
                }
            }
        }
    });
    (curves, task)
}

/// Convergence times, by kind and phase.
type Phases = Arc<Mutex<BTreeMap<(&'static str, &'static str), Vec<Duration>>>>;

/// A watch-fed cache of one kind in our namespace, until `stop`.
async fn store<K>(api: Api<K>, stop: &CancellationToken) -> anyhow::Result<Store<K>>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(|_| async {});
    let stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = stream => {}
        }
    });
    reader
        .wait_until_ready()
        .await
        .context("a watch of the soak's objects did not start")?;
    Ok(reader)
}

struct Soak {
    args: Args,
    fed: Federation,
    karmada: kube::Client,
    members: Vec<kube::Client>,
}

/// What the churn tasks share.
struct Churn<'a> {
    soak: &'a Soak,
    mcms: Store<MultiCloudMongoDB>,
    bindings: Store<ResourceBinding>,
    member_mongodbs: Vec<Store<MongoDB>>,
    /// Paces the binding cycles (`--binding-cycles-per-second`).
    binding_pace: Option<tokio::sync::Mutex<tokio::time::Interval>>,
    /// Set by the first task that fails: every other task stops waiting.
    stop: CancellationToken,
    /// No new cycle starts after this.
    until: Instant,
    phases: Phases,
    /// The soak's own writes tried again after a transient apiserver error.
    retried: std::sync::atomic::AtomicUsize,
}

impl Soak {
    fn mcms(&self) -> Api<MultiCloudMongoDB> {
        Api::namespaced(self.karmada.clone(), NS)
    }

    fn bindings(&self) -> Api<ResourceBinding> {
        Api::namespaced(self.karmada.clone(), NS)
    }

    /// Our CRDs and interpreter, the namespace everywhere, and room for the population:
    /// volumes (each member takes up to ⌈5/members⌉ members of every MultiCloudMongoDB, plus
    /// those of objects being torn down) and pods.
    async fn prepare(&self) -> anyhow::Result<()> {
        stack::install_crds(&self.karmada, "karmada").await;
        stack::install_interpreter(&self.karmada).await;
        stack::ensure_namespace(&self.karmada, NS).await;
        let per_member = self.args.mcm * (MEMBERS.1 as usize).div_ceil(self.members.len().max(1));
        let volumes = per_member + per_member / 2 + 4;
        for (i, client) in self.members.iter().enumerate() {
            let cluster = member_name(i as u32 + 1);
            stack::install_crds(client, &cluster).await;
            stack::ensure_namespace(client, NS).await;
            let pvs: Api<PersistentVolume> = Api::all(client.clone());
            let have = pvs.list(&ListParams::default()).await?.items.len();
            for n in have..volumes {
                let name = format!("{cluster}-soak-pv-{n:04}");
                let pv: PersistentVolume = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "PersistentVolume",
                    "metadata": {"name": name},
                    "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                             "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                             "hostPath": {"path": format!("/tmp/fedstate-soak/{name}")}},
                }))?;
                pvs.create(&PostParams::default(), &pv)
                    .await
                    .with_context(|| format!("create volume {name}"))?;
            }
            // Two nodes of 110 pods each; a larger population gets one more node.
            if volumes > 150 {
                let name = format!("{cluster}-soak-node");
                fedstate_benches::kwok::add_node(
                    client,
                    FIELD_MANAGER,
                    &name,
                    "soak",
                    ("64", "256Gi", "2000"),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// What an operator does with Retained volumes once the data may go: make the volumes
    /// whose claims were deleted available again. Every few seconds until `stop`.
    async fn volume_janitor(&self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            for client in &self.members {
                let pvs: Api<PersistentVolume> = Api::all(client.clone());
                let Ok(list) = pvs.list(&ListParams::default()).await else {
                    continue;
                };
                for pv in list.items {
                    let released =
                        pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released");
                    let ours = pv
                        .spec
                        .as_ref()
                        .and_then(|s| s.claim_ref.as_ref())
                        .and_then(|c| c.namespace.as_deref())
                        == Some(NS);
                    if released && ours {
                        let _ = pvs
                            .patch(
                                &pv.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(json!({"spec": {"claimRef": null}})),
                            )
                            .await;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }
}

impl Churn<'_> {
    /// Polls `check` on the caches until it passes; fails after the bound, or when another task
    /// failed.
    async fn until(
        &self,
        what: &str,
        mut check: impl FnMut() -> Result<(), String>,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let bound = self.soak.args.converge_timeout;
        loop {
            let last = match check() {
                Ok(()) => return Ok(started.elapsed()),
                Err(why) => why,
            };
            if started.elapsed() > bound {
                bail!("{what}: not converged within {} s: {last}", bound.as_secs());
            }
            tokio::select! {
                _ = self.stop.cancelled() => bail!("stopped"),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn pace(&self) {
        if let Some(pace) = &self.binding_pace {
            pace.lock().await.tick().await;
        }
    }

    /// One of the soak's own writes, made as any client must make it under load: a transient
    /// apiserver error ([`soak::attempt`]; in practice Karmada's admission webhook not answering
    /// within its timeout) is retried with backoff, within the converge bound, and counted in the
    /// report; `done_code` is the error that means an earlier attempt had done it. Any other error
    /// fails the run.
    async fn write<T, Fut>(
        &self,
        what: &str,
        done_code: Option<u16>,
        mut call: impl FnMut() -> Fut,
    ) -> anyhow::Result<()>
    where
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            let result = call().await;
            match soak::attempt(&result, done_code) {
                soak::Attempt::Done => return Ok(()),
                soak::Attempt::Transient
                    if started.elapsed() + pause < self.soak.args.converge_timeout =>
                {
                    self.retried
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::select! {
                        _ = self.stop.cancelled() => bail!("stopped"),
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                _ => return result.map(drop).with_context(|| what.to_owned()),
            }
        }
    }

    fn record(&self, kind: &'static str, phase: &'static str, took: Duration) {
        if let Ok(mut p) = self.phases.lock() {
            p.entry((kind, phase)).or_default().push(took);
        }
    }

    /// One MultiCloudMongoDB slot: create (3 members) → ready → scale (5) → ready → delete →
    /// gone everywhere, then its kept claims deleted; again with a new name until the time is up.
    async fn mcm_slot(&self, slot: usize, stagger: Duration) -> anyhow::Result<()> {
        tokio::time::sleep(stagger).await;
        let api = self.soak.mcms();
        let mut cycle = 0;
        while Instant::now() < self.until && !self.stop.is_cancelled() {
            let name = format!("db{slot:04}-{cycle:04}");
            let key = ObjectRef::<MultiCloudMongoDB>::new(&name).within(NS);
            let obj: MultiCloudMongoDB = serde_json::from_value(json!({
                "apiVersion": fedstate_api::API_VERSION, "kind": "MultiCloudMongoDB",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "replicaset": MEMBERS.0,
                    "export": {"enable": false},
                    "resource": {"requests": {"cpu": "2m", "memory": "2Mi"}, "limits": {"cpu": "2m", "memory": "2Mi"}},
                    "storage": {"storageClass": STORAGE_CLASS, "storageSize": "1Gi"},
                    "imageSetting": {"image": "mongo:7.0", "imagePullPolicy": "IfNotPresent"},
                    "scheduler": {"schedulerName": OURS, "schedulerMode": "Uniform"},
                }
            }))?;
            let create = PostParams::default();
            self.write(
                &format!("create MultiCloudMongoDB {name}"),
                Some(409),
                || api.create(&create, &obj),
            )
            .await?;
            for (phase, members) in [
                ("created → ready", MEMBERS.0),
                ("scaled → ready", MEMBERS.1),
            ] {
                if members != MEMBERS.0 {
                    let (params, patch) = (
                        PatchParams::default(),
                        Patch::Merge(json!({"spec": {"replicaset": members}})),
                    );
                    self.write(&format!("scale MultiCloudMongoDB {name}"), None, || {
                        api.patch(&name, &params, &patch)
                    })
                    .await?;
                }
                let took = self
                    .until(
                        &format!("MultiCloudMongoDB {name} ({phase} with {members} members)"),
                        || {
                            fedstate_e2e::ready::mcm_ready(
                                self.mcms
                                    .get(&key)
                                    .ok_or_else(|| "not in the cache yet".to_owned())?
                                    .as_ref(),
                                members,
                            )
                        },
                    )
                    .await?;
                self.record("MultiCloudMongoDB", phase, took);
            }
            let delete = DeleteParams::background();
            self.write(
                &format!("delete MultiCloudMongoDB {name}"),
                Some(404),
                || api.delete(&name, &delete),
            )
            .await?;
            let own = |n: &str| n == name || n.starts_with(&format!("{name}-"));
            let took = self
                .until(
                    &format!("MultiCloudMongoDB {name} (deleted → gone)"),
                    || {
                        if let Some(o) = self.mcms.get(&key) {
                            let state = o.status.as_ref().and_then(|s| s.state);
                            return Err(format!("still there (state {state:?})"));
                        }
                        for (i, s) in self.member_mongodbs.iter().enumerate() {
                            if let Some(m) = s.state().iter().find(|m| own(&m.name_any())) {
                                return Err(format!(
                                    "MongoDB {} still in {}",
                                    m.name_any(),
                                    member_name(i as u32 + 1)
                                ));
                            }
                        }
                        Ok(())
                    },
                )
                .await?;
            self.record("MultiCloudMongoDB", "deleted → gone", took);
            // The agent keeps each member's claim (data outlives the object); the operator's
            // part: delete them, the janitor then frees their volumes.
            let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={name}"));
            for client in &self.soak.members {
                let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
                self.write(&format!("delete the claims of {name}"), None, || {
                    pvcs.delete_collection(&delete, &lp)
                })
                .await?;
            }
            cycle += 1;
        }
        Ok(())
    }

    /// One binding slot: create (3 replicas) → placed → scale (6) → placed → delete → gone;
    /// again with a new name until the time is up.
    async fn binding_slot(&self, slot: usize, stagger: Duration) -> anyhow::Result<()> {
        tokio::time::sleep(stagger).await;
        let api = self.soak.bindings();
        let mut cycle = 0;
        loop {
            self.pace().await;
            if Instant::now() >= self.until || self.stop.is_cancelled() {
                break;
            }
            // A new name every cycle: a per-binding map that is never pruned grows.
            let index = cycle * self.soak.args.bindings + slot;
            let rb = workload::binding(
                NS,
                index,
                REPLICAS.0 as u32,
                workload::Shapes::Uniform,
                Some(OURS),
            )?;
            let name = rb.name_any();
            let key = ObjectRef::<ResourceBinding>::new(&name).within(NS);
            let create = PostParams::default();
            self.write(&format!("create ResourceBinding {name}"), Some(409), || {
                api.create(&create, &rb)
            })
            .await?;
            for (phase, replicas) in [
                ("created → placed", REPLICAS.0),
                ("scaled → placed", REPLICAS.1),
            ] {
                if replicas != REPLICAS.0 {
                    self.pace().await;
                    let (params, patch) = (
                        PatchParams::default(),
                        Patch::Merge(json!({"spec": {"replicas": replicas}})),
                    );
                    self.write(&format!("scale ResourceBinding {name}"), None, || {
                        api.patch(&name, &params, &patch)
                    })
                    .await?;
                }
                let took = self
                    .until(
                        &format!("ResourceBinding {name} ({phase}, {replicas} replicas)"),
                        || {
                            soak::binding_placed(
                                self.bindings
                                    .get(&key)
                                    .ok_or_else(|| "not in the cache yet".to_owned())?
                                    .as_ref(),
                                replicas,
                            )
                        },
                    )
                    .await?;
                self.record("ResourceBinding", phase, took);
            }
            self.pace().await;
            let delete = DeleteParams::background();
            self.write(&format!("delete ResourceBinding {name}"), Some(404), || {
                api.delete(&name, &delete)
            })
            .await?;
            let took = self
                .until(
                    &format!("ResourceBinding {name} (deleted → gone)"),
                    || match self.bindings.get(&key) {
                        Some(_) => Err("still there".to_owned()),
                        None => Ok(()),
                    },
                )
                .await?;
            self.record("ResourceBinding", "deleted → gone", took);
            cycle += 1;
        }
        Ok(())
    }
}

/// `| kind | phase | cycles | p50 | p99 | max |` of the recorded convergence times.
fn phase_table(phases: &BTreeMap<(&'static str, &'static str), Vec<Duration>>) -> String {
    let mut out =
        String::from("| kind | phase | times | p50 | p99 | max |\n|---|---|---:|---:|---:|---:|\n");
    for ((kind, phase), times) in phases {
        let mut t = times.clone();
        t.sort_unstable();
        let at = |q: f64| {
            let i = ((t.len().saturating_sub(1)) as f64 * q).round() as usize;
            t.get(i).map_or(0.0, Duration::as_secs_f64)
        };
        let _ = writeln!(
            out,
            "| {kind} | {phase} | {} | {:.1} s | {:.1} s | {:.1} s |",
            t.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    out
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The whole run on a federation that is up: prepare, start ours, rounds, verdict. The report
/// so far is returned with the outcome, so a failed run still shows its curves.
async fn run(args: &Args, fed: Federation) -> (Federation, String, anyhow::Result<()>) {
    let mut report = String::new();
    let clients = async {
        let karmada = fed.karmada_client().await?;
        let mut members = Vec::new();
        for i in 1..=fed.members() {
            members.push(fed.member_client(i).await?);
        }
        anyhow::Ok((karmada, members))
    }
    .await;
    let (karmada, members) = match clients {
        Ok(c) => c,
        Err(e) => return (fed, report, Err(e)),
    };
    let soak = Soak {
        args: args.clone(),
        fed,
        karmada,
        members,
    };
    let result = soak.body(&mut report).await;
    (soak.fed, report, result)
}

impl Soak {
    async fn body(&self, report: &mut String) -> anyhow::Result<()> {
        self.prepare().await?;
        // The replica-set simulator (mongod's stand-in) serves the members' pods and their
        // `pods/exec`, as in e2e.
        let stop = CancellationToken::new();
        let _stop_on_return = stop.clone().drop_guard();
        let simulator = Arc::new(fedstate_rs_sim::Simulator::start(
            fedstate_rs_sim::world::Settings::default(),
            Duration::from_millis(250),
        ));
        let clusters = (1..=self.fed.members())
            .zip(self.members.iter())
            .map(|(i, client)| fedstate_rs_sim::bridge::MemberCluster {
                name: member_name(i),
                vip: member_vip(i).to_string(),
                client: client.clone(),
            })
            .collect();
        let shell = stack::pod_shell();
        let pods_dir = shell.dir.clone();
        tokio::spawn(fedstate_rs_sim::bridge::run_with_shell(
            simulator,
            clusters,
            Some(shell),
            stop.child_token(),
        ));
        let outcome = self.with_ours(report).await;
        let _ = std::fs::remove_dir_all(&pods_dir);
        outcome
    }

    async fn with_ours(&self, report: &mut String) -> anyhow::Result<()> {
        let mut ours = Ours::start(&self.fed);
        ours.ready(Duration::from_secs(120))
            .await
            .map_err(anyhow::Error::msg)?;
        let stop = CancellationToken::new();
        let _stop_on_return = stop.clone().drop_guard();
        let mut member_mongodbs = Vec::new();
        for client in &self.members {
            member_mongodbs.push(store(Api::namespaced(client.clone(), NS), &stop).await?);
        }
        let pids = ours.pids();
        let load_start = load_average();
        let started = Instant::now();
        let churn = Churn {
            soak: self,
            mcms: store(self.mcms(), &stop).await?,
            bindings: store(self.bindings(), &stop).await?,
            member_mongodbs,
            stop: stop.child_token(),
            until: started + self.args.duration,
            phases: Arc::default(),
            retried: Default::default(),
            binding_pace: (self.args.binding_changes_per_second > 0.0).then(|| {
                let mut pace = tokio::time::interval(Duration::from_secs_f64(
                    1.0 / self.args.binding_changes_per_second,
                ));
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tokio::sync::Mutex::new(pace)
            }),
        };
        let (curves, sampler) = sample_rss(pids, self.args.sample_every, started, stop.clone());
        // Slots start spread over the first part of the run, so that the population is in every
        // phase at once (a steady load) rather than in lockstep.
        let spread = (self.args.duration / 8).min(Duration::from_secs(30));
        let stagger = |i: usize, n: usize| spread.mul_f64(i as f64 / n.max(1) as f64);
        let (a, churn) = (&self.args, &churn);
        let slots = stream::iter(0..a.mcm)
            .map(|i| churn.mcm_slot(i, stagger(i, a.mcm)).boxed())
            .chain(
                stream::iter(0..a.bindings)
                    .map(|i| churn.binding_slot(i, stagger(i, a.bindings)).boxed()),
            )
            .buffer_unordered(a.mcm + a.bindings)
            .map(|r: anyhow::Result<()>| {
                if let Err(e) = &r
                    && e.to_string() != "stopped"
                {
                    churn.stop.cancel();
                }
                r
            })
            .collect::<Vec<_>>();
        let janitor = self.volume_janitor(stop.child_token());
        let outcomes = tokio::select! {
            o = slots => o,
            _ = janitor => Vec::new(),
        };
        let drained = started.elapsed();
        stop.cancel();
        let _ = sampler.await;
        let mut failures: Vec<String> = outcomes
            .into_iter()
            .filter_map(Result::err)
            .map(|e| format!("{e:#}"))
            .filter(|e| e != "stopped")
            .collect();
        failures.extend(
            ours.exited()
                .into_iter()
                .map(|e| format!("during the soak: {e}")),
        );
        // Judged over the set time only: after it, the slots drain (no new objects).
        let total = self.args.duration.min(drained);
        let curves: BTreeMap<String, Vec<Sample>> = curves
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().filter(|s| s.at < total).collect()))
            .collect();
        let max_growth = self.args.max_growth_percent / 100.0;
        let verdicts = soak::judge(&curves, total, max_growth);
        let phases = churn.phases.lock().map(|p| p.clone()).unwrap_or_default();

        let _ = writeln!(
            report,
            "date {}; command `soak {}`; a steady population of {} MultiCloudMongoDBs ({}→{} members) and {} bindings \
             ({}→{} replicas, {} binding changes per second), each created, scaled and deleted in turn; {} s of churn ({} s until the last cycle ended); \
             RSS every {} s; load average (1/5/15 min) {} at start, {} at end\n",
            jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC"),
            std::env::args().skip(1).collect::<Vec<_>>().join(" "),
            a.mcm,
            MEMBERS.0,
            MEMBERS.1,
            a.bindings,
            REPLICAS.0,
            REPLICAS.1,
            a.binding_changes_per_second,
            total.as_secs(),
            drained.as_secs(),
            a.sample_every.as_secs_f64(),
            load_start,
            load_average()
        );
        let _ = writeln!(
            report,
            "The soak's own writes retried after a transient apiserver error (a 5xx such as \
             Karmada's admission webhook timing out, a 429, a connection error): {}\n",
            churn.retried.load(std::sync::atomic::Ordering::Relaxed)
        );
        report.push_str("Convergence (each object's time from the change to converged):\n\n");
        report.push_str(&phase_table(&phases));
        report.push_str("\nRSS by quarter of the churn, mean (min–max):\n\n");
        report.push_str(&soak::memory_table(&verdicts, max_growth));
        report.push_str("\nRSS over the churn (each line scaled to its own range):\n\n```text\n");
        report.push_str(&soak::sparklines(&curves, total, 60));
        report.push_str("```\n");

        if !failures.is_empty() {
            // Every slot stops at the first failure, so one cause can fail hundreds of slots:
            // the first few say what it was.
            let more = failures.len().saturating_sub(5);
            failures.truncate(5);
            if more > 0 {
                failures.push(format!("and {more} more"));
            }
            bail!("{}", failures.join("; "));
        }
        let memory: Vec<String> = verdicts.into_iter().filter_map(|v| v.failure).collect();
        if !memory.is_empty() {
            bail!("{}", memory.join("; "));
        }
        let cycles = phases
            .get(&("MultiCloudMongoDB", "deleted → gone"))
            .map_or(0, Vec::len);
        if a.mcm > 0 && cycles < a.mcm {
            bail!(
                "only {cycles} MultiCloudMongoDB cycles for {} slots in {} s: too few for a soak; give it a longer --duration",
                a.mcm,
                total.as_secs()
            );
        }
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    if args.smoke {
        args = args.smoke();
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(soak_main(&args)))
    {
        Ok(()) => {
            println!("soak: passed");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("soak: FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn soak_main(args: &Args) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kube_client=off")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // Our binaries must be there before a federation comes up for nothing.
    for b in [
        "fedstate-scheduler",
        "fedstate-manager",
        "fedstate-mongo-agent",
        "fedstate-sim-shell",
    ] {
        sibling(b)?;
    }
    if let Ok(stale) = Federation::attach(&args.run_dir) {
        eprintln!(
            "stopping a federation left running in {} by an earlier run",
            args.run_dir.display()
        );
        stale.down().context("stopping the stale federation")?;
    }
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
        "federation up in {} s; run directory {}",
        started.elapsed().as_secs(),
        fed.run_dir().display()
    );
    let logs = fed.logs_dir();
    let (fed, report, outcome) = run(args, fed).await;
    fed.down().context("stopping the federation")?;
    println!("{report}");
    if let Some(path) = &args.report {
        write_report(path, &report)?;
    }
    outcome.with_context(|| format!("logs in {}", logs.display()))
}

fn write_report(path: &Path, report: &str) -> anyhow::Result<()> {
    std::fs::write(path, report).with_context(|| format!("write {}", path.display()))
}
