//! The local federation as a whole: `up`, `status`, `kill_member`/`restore_member`, `down`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::binaries::Binaries;
use crate::bootstrap;
use crate::components::{Components, kwok_config_path};
use crate::error::{Error, Result};
use crate::kubeconfig;
use crate::layout::{
    MAX_MEMBER_CLUSTERS, NODE_PORTS, PortPlan, RunLayout, loopback, member_name, member_vip,
};
use crate::pki::Pki;
use crate::probe;
use crate::process::{self, ProcessRecord, ProcessSpec};

/// Label every member Cluster carries with its VIP (`127.0.1.<N>`).
pub const VIP_LABEL: &str = "vip";

/// How long processes get to exit on SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `kill_member` simulates a failure: a short SIGTERM grace (kube-apiserver's graceful shutdown
/// can take over 10 s while clients hold watches), then SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long each bring-up step (a component healthy, the Clusters Ready) may take.
const BRING_UP_STEP: Duration = Duration::from_secs(240);

/// Options of [`Federation::up`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Number of member clusters (1..=9).
    pub members: u32,
    /// First port of the port plan.
    pub ports: PortPlan,
    /// Run directory (logs, certificates, kubeconfigs, state).
    pub run_dir: PathBuf,
    /// Budget for the whole `up`.
    pub timeout: Duration,
}

impl Default for Options {
    /// 3 members, ports from `$FEDSTATE_LOCAL_PORT_BASE` (default 31000), run directory from
    /// [`RunLayout::default_root`], 10 minutes.
    fn default() -> Self {
        let base = std::env::var("FEDSTATE_LOCAL_PORT_BASE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(PortPlan::DEFAULT_BASE);
        Self {
            members: 3,
            ports: PortPlan { base },
            run_dir: RunLayout::default_root(),
            timeout: Duration::from_secs(600),
        }
    }
}

/// What `state.json` records: enough for another process (`status`, `down`, `kill-member`,
/// `restore-member`) to find and manage the running federation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct State {
    members: u32,
    ports: PortPlan,
    bin_dir: PathBuf,
    processes: Vec<ProcessRecord>,
}

#[derive(Debug)]
struct Running {
    record: ProcessRecord,
    /// Present when this `Federation` started the process (so it can reap it).
    child: Option<Child>,
    /// Stopped on purpose (`kill_member`): not a failure.
    stopped: bool,
}

/// TLS material for dialing the estimators (they require a client certificate of our CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimatorTls {
    pub ca_cert: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Health of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    pub name: String,
    pub pid: u32,
    pub running: bool,
    pub healthy: bool,
    /// What was probed.
    pub probe: String,
    pub log: PathBuf,
}

/// State of one member's Cluster object in Karmada.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub name: String,
    pub ready: bool,
    pub vip: Option<String>,
    pub has_resource_summary: bool,
}

/// Result of [`Federation::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederationStatus {
    pub run_dir: PathBuf,
    pub components: Vec<ComponentStatus>,
    pub clusters: Vec<ClusterStatus>,
}

impl FederationStatus {
    pub fn all_healthy(&self) -> bool {
        !self.components.is_empty()
            && self.components.iter().all(|c| c.running && c.healthy)
            && self
                .clusters
                .iter()
                .all(|c| c.ready && c.has_resource_summary)
    }
}

/// A running local federation. Dropping it stops every process it manages unless it was
/// [`detach`](Federation::detach)ed (the CLI's `up`) or [`attach`](Federation::attach)ed.
#[derive(Debug)]
pub struct Federation {
    layout: RunLayout,
    ports: PortPlan,
    members: u32,
    bin_dir: PathBuf,
    processes: Mutex<Vec<Running>>,
    detached: AtomicBool,
}

/// `cluster.karmada.io/v1alpha1` Cluster.
pub fn cluster_resource() -> ApiResource {
    ApiResource {
        group: "cluster.karmada.io".into(),
        version: "v1alpha1".into(),
        api_version: "cluster.karmada.io/v1alpha1".into(),
        kind: "Cluster".into(),
        plural: "clusters".into(),
    }
}

impl Federation {
    /// Starts the Karmada control plane and `options.members` member clusters, joins the members
    /// in Push mode, and waits until every Cluster is Ready with a resource summary.
    pub async fn up(options: Options) -> Result<Self> {
        if options.members == 0 || options.members > MAX_MEMBER_CLUSTERS {
            return Err(Error::InvalidArgument(format!(
                "--members must be between 1 and {MAX_MEMBER_CLUSTERS}, not {}",
                options.members
            )));
        }
        let highest = u32::from(options.ports.base) + 100 * options.members + 19;
        let node_ports = u32::from(*NODE_PORTS.start())..=u32::from(*NODE_PORTS.end());
        if u32::from(options.ports.base) <= *node_ports.end() && highest >= *node_ports.start() {
            return Err(Error::InvalidArgument(format!(
                "port base {}: the federation's ports would overlap the members' NodePort range \
                 {}-{} (where the simulator serves MongoDB members); pick a base above {}",
                options.ports.base,
                NODE_PORTS.start(),
                NODE_PORTS.end(),
                NODE_PORTS.end()
            )));
        }
        if options.ports.base == 0 || highest > u32::from(u16::MAX) {
            return Err(Error::InvalidArgument(format!(
                "port base {} leaves no room for {} members (highest port would be {highest})",
                options.ports.base, options.members
            )));
        }
        let layout = RunLayout::new(&options.run_dir);
        if let Ok(state) = read_state(&layout)
            && state.processes.iter().any(ProcessRecord::is_alive)
        {
            return Err(Error::AlreadyRunning {
                run_dir: layout.root.clone(),
            });
        }
        check_ports(options.ports, options.members)?;
        let bins = Binaries::locate()?;
        prepare_run_dir(&layout)?;
        let fed = Self {
            layout,
            ports: options.ports,
            members: options.members,
            bin_dir: bins.dir.clone(),
            processes: Mutex::new(Vec::new()),
            detached: AtomicBool::new(false),
        };
        let started = Instant::now();
        match tokio::time::timeout(options.timeout, fed.bring_up(&bins)).await {
            Ok(Ok(())) => {
                tracing::info!(
                    seconds = started.elapsed().as_secs(),
                    run_dir = %fed.layout.root.display(),
                    "federation up"
                );
                Ok(fed)
            }
            Ok(Err(e)) => Err(fed.fail(e)),
            Err(_) => Err(fed.fail(Error::Timeout {
                what: "the whole federation to come up".into(),
                seconds: options.timeout.as_secs(),
            })),
        }
    }

    /// Attaches to a federation started by another process (from its `state.json`). Dropping
    /// the result does not stop anything.
    pub fn attach(run_dir: impl Into<PathBuf>) -> Result<Self> {
        let layout = RunLayout::new(run_dir);
        let state = read_state(&layout)?;
        Ok(Self {
            layout,
            ports: state.ports,
            members: state.members,
            bin_dir: state.bin_dir,
            processes: Mutex::new(
                state
                    .processes
                    .into_iter()
                    .map(|record| Running {
                        stopped: !record.is_alive(),
                        record,
                        child: None,
                    })
                    .collect(),
            ),
            detached: AtomicBool::new(true),
        })
    }

    /// Keeps the processes running after this value is dropped (stop them with `down`).
    pub fn detach(self) {
        self.detached.store(true, Ordering::SeqCst);
    }

    /// Stops every process of the federation (and any stray process of our binaries that names
    /// this run directory), and removes `state.json`. Logs stay in the run directory.
    pub fn down(self) -> Result<()> {
        self.stop_everything();
        let state = self.layout.state_file();
        if state.exists() {
            std::fs::remove_file(&state).map_err(Error::io("remove", &state))?;
        }
        Ok(())
    }

    /// Stops a member's kube-apiserver and karmada-scheduler-estimator (the member becomes
    /// unreachable; Karmada marks its Cluster NotReady after its failure threshold).
    pub fn kill_member(&self, index: u32) -> Result<()> {
        self.check_member(index)?;
        let name = member_name(index);
        self.stop_processes(&[
            format!("{name}-kube-apiserver"),
            format!("{name}-karmada-scheduler-estimator"),
        ])?;
        tracing::info!(member = %name, "member apiserver and estimator stopped");
        Ok(())
    }

    /// Stops only a member's karmada-scheduler-estimator (the member stays up; every gRPC call to
    /// its estimator fails). [`Federation::restore_member`] starts it again.
    pub fn stop_estimator(&self, index: u32) -> Result<()> {
        self.check_member(index)?;
        let name = member_name(index);
        self.stop_processes(&[format!("{name}-karmada-scheduler-estimator")])?;
        tracing::info!(member = %name, "member estimator stopped");
        Ok(())
    }

    /// Stops one process of the federation by component name (`karmada-scheduler`, …); it stays
    /// stopped (`status` reports it so) until the federation goes down. A benchmark runs its own
    /// copy in its place, with other flags: see [`Federation::component`].
    pub fn stop_component(&self, name: &str) -> Result<()> {
        if self.component(name).is_none() {
            return Err(Error::InvalidArgument(format!(
                "no component {name} in this federation"
            )));
        }
        self.stop_processes(&[name.to_owned()])?;
        tracing::info!(component = name, "stopped");
        Ok(())
    }

    /// Restarts the Karmada apiserver (stop, start with the same flags and data) and waits until
    /// it is ready again: every client's watches on it drop and must reconnect (fault injection).
    pub async fn restart_karmada_apiserver(&self) -> Result<()> {
        const NAME: &str = "karmada-apiserver";
        self.stop_processes(&[NAME.to_owned()])?;
        {
            let mut procs = self.lock();
            for r in procs.iter_mut().filter(|r| r.record.spec.name == NAME) {
                let (record, child) = r.record.spec.spawn()?;
                *r = Running {
                    record,
                    child: Some(child),
                    stopped: false,
                };
            }
        }
        self.save_state()?;
        let client = self.karmada_client().await?;
        self.wait_until(
            "karmada-apiserver ready after its restart",
            Duration::from_secs(120),
            || probe::apiserver_ready(&client),
        )
        .await?;
        tracing::info!("karmada-apiserver restarted");
        Ok(())
    }

    /// How a component of the federation is run (program, flags, log).
    pub fn component(&self, name: &str) -> Option<ProcessSpec> {
        self.lock()
            .iter()
            .find(|r| r.record.spec.name == name)
            .map(|r| r.record.spec.clone())
    }

    /// A kubeconfig for the Karmada apiserver with a client certificate of its own for `user` in
    /// `group` (e.g. [`crate::layout::AUDITED_GROUP`] to have its requests counted in the audit
    /// log; what the group may do is up to RBAC): `<run>/kubeconfig/<user>.kubeconfig`.
    pub fn karmada_kubeconfig_for(&self, user: &str, group: &str) -> Result<PathBuf> {
        let pki = Pki::at(self.layout.pki_dir());
        let (cert, key) = pki.client_certificate(user, group)?;
        let path = self
            .layout
            .kubeconfig_dir()
            .join(format!("{user}.kubeconfig"));
        kubeconfig::write_client(
            &path,
            "karmada-apiserver",
            self.ports.karmada_apiserver(),
            &pki,
            &cert,
            &key,
        )?;
        Ok(path)
    }

    /// The Karmada apiserver's audit log (requests of clients in
    /// [`crate::layout::AUDITED_GROUP`]).
    pub fn audit_log(&self) -> PathBuf {
        self.layout.audit_log()
    }

    fn stop_processes(&self, targets: &[String]) -> Result<()> {
        {
            let mut procs = self.lock();
            let records: Vec<ProcessRecord> = procs
                .iter()
                .filter(|r| targets.contains(&r.record.spec.name))
                .map(|r| r.record.clone())
                .collect();
            process::stop_all(&records.iter().collect::<Vec<_>>(), KILL_GRACE);
            for r in procs
                .iter_mut()
                .filter(|r| targets.contains(&r.record.spec.name))
            {
                r.stopped = true;
                if let Some(child) = r.child.as_mut() {
                    let _ = child.wait();
                }
                r.child = None;
            }
        }
        self.save_state()
    }

    /// Restarts every stopped process of a member (apiserver first) and waits until its
    /// apiserver is ready and its estimator healthy.
    pub async fn restore_member(&self, index: u32) -> Result<()> {
        self.check_member(index)?;
        let name = member_name(index);
        let prefix = format!("{name}-");
        {
            let mut procs = self.lock();
            for r in procs
                .iter_mut()
                .filter(|r| r.record.spec.name.starts_with(&prefix))
            {
                if !r.record.is_alive() {
                    let (record, child) = r.record.spec.spawn()?;
                    *r = Running {
                        record,
                        child: Some(child),
                        stopped: false,
                    };
                }
            }
        }
        self.save_state()?;
        let client = self.member_client(index).await?;
        self.wait_until(
            &format!("{name} apiserver ready"),
            Duration::from_secs(120),
            || probe::apiserver_ready(&client),
        )
        .await?;
        let health = loopback(self.ports.member(index).estimator_health);
        self.wait_until(
            &format!("{name} estimator healthy"),
            Duration::from_secs(60),
            || probe::http_ok(health, "/healthz"),
        )
        .await?;
        tracing::info!(member = %name, "member restored");
        Ok(())
    }

    /// Health of every process and every member Cluster.
    pub async fn status(&self) -> FederationStatus {
        let records: Vec<ProcessRecord> = self.lock().iter().map(|r| r.record.clone()).collect();
        let karmada = self.karmada_client().await.ok();
        let mut components = Vec::new();
        for record in records {
            let running = record.is_alive();
            let (probe_name, healthy) = if running {
                self.probe(&record.spec.name, karmada.as_ref()).await
            } else {
                ("process".to_string(), false)
            };
            components.push(ComponentStatus {
                name: record.spec.name.clone(),
                pid: record.pid,
                running,
                healthy,
                probe: probe_name,
                log: record.spec.log.clone(),
            });
        }
        let clusters = match karmada {
            Some(client) => self.cluster_statuses(&client).await.unwrap_or_default(),
            None => Vec::new(),
        };
        FederationStatus {
            run_dir: self.layout.root.clone(),
            components,
            clusters,
        }
    }

    pub fn members(&self) -> u32 {
        self.members
    }
    pub fn member_names(&self) -> Vec<String> {
        (1..=self.members).map(member_name).collect()
    }
    pub fn ports(&self) -> PortPlan {
        self.ports
    }
    pub fn run_dir(&self) -> &Path {
        &self.layout.root
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.layout.logs_dir()
    }
    pub fn kubeconfig_dir(&self) -> PathBuf {
        self.layout.kubeconfig_dir()
    }
    /// Admin kubeconfig of the Karmada apiserver.
    pub fn karmada_kubeconfig(&self) -> PathBuf {
        self.layout.karmada_kubeconfig()
    }
    /// Admin kubeconfig of member `index` (1-based).
    pub fn member_kubeconfig(&self, index: u32) -> PathBuf {
        self.layout.member_kubeconfig(index)
    }
    pub async fn karmada_client(&self) -> Result<kube::Client> {
        kubeconfig::client(&self.karmada_kubeconfig()).await
    }
    pub async fn member_client(&self, index: u32) -> Result<kube::Client> {
        self.check_member(index)?;
        kubeconfig::client(&self.member_kubeconfig(index)).await
    }
    /// Where member `index`'s karmada-scheduler-estimator serves gRPC (TLS, see
    /// [`estimator_tls`](Self::estimator_tls)).
    pub fn estimator_address(&self, index: u32) -> SocketAddr {
        loopback(self.ports.member(index).estimator_grpc)
    }
    pub fn estimator_tls(&self) -> EstimatorTls {
        let pki = Pki::at(self.layout.pki_dir());
        EstimatorTls {
            ca_cert: pki.ca_cert(),
            client_cert: pki.admin_cert(),
            client_key: pki.admin_key(),
        }
    }
    /// Directory of the Go binaries this federation runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    // ---- internals ----

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.processes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_member(&self, index: u32) -> Result<()> {
        if index == 0 || index > self.members {
            return Err(Error::InvalidArgument(format!(
                "no member {index}: the federation has members 1..={}",
                self.members
            )));
        }
        Ok(())
    }

    fn fail(&self, e: Error) -> Error {
        tracing::error!(error = %e, logs = %self.layout.logs_dir().display(), "up failed; stopping everything");
        self.stop_everything();
        Error::UpFailed {
            logs: self.layout.logs_dir(),
            source: Box::new(e),
        }
    }

    fn stop_everything(&self) {
        let mut procs = self.lock();
        // Clients first, then the apiservers, then etcd: an apiserver whose etcd is gone takes
        // long to shut down.
        let tier = |name: &str| {
            if name == "etcd" {
                2
            } else if name.ends_with("apiserver") && !name.contains("aggregated") {
                1
            } else {
                0
            }
        };
        for t in 0..=2 {
            let records: Vec<ProcessRecord> = procs
                .iter()
                .filter(|r| tier(&r.record.spec.name) == t)
                .map(|r| r.record.clone())
                .collect();
            process::stop_all(&records.iter().collect::<Vec<_>>(), STOP_GRACE);
        }
        for r in procs.iter_mut() {
            r.stopped = true;
            if let Some(child) = r.child.as_mut() {
                let _ = child.wait();
            }
            r.child = None;
        }
        drop(procs);
        let strays = process::strays(&self.bin_dir, &self.layout.root.display().to_string());
        if !strays.is_empty() {
            tracing::warn!(
                count = strays.len(),
                "stopping stray processes of this run directory"
            );
            process::stop_all(&strays.iter().collect::<Vec<_>>(), STOP_GRACE);
        }
    }

    fn save_state(&self) -> Result<()> {
        let state = State {
            members: self.members,
            ports: self.ports,
            bin_dir: self.bin_dir.clone(),
            processes: self.lock().iter().map(|r| r.record.clone()).collect(),
        };
        let path = self.layout.state_file();
        let text = serde_json::to_string_pretty(&state).map_err(|e| Error::Manifest {
            what: "state.json".into(),
            detail: e.to_string(),
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(Error::io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("write", &path))
    }

    fn start(&self, spec: ProcessSpec) -> Result<()> {
        let (record, child) = spec.spawn()?;
        tracing::info!(component = %record.spec.name, pid = record.pid, "started");
        self.lock().push(Running {
            record,
            child: Some(child),
            stopped: false,
        });
        self.save_state()
    }

    /// Fails if a process that should run has exited.
    fn check_processes(&self) -> Result<()> {
        for r in self.lock().iter() {
            if !r.stopped && !r.record.is_alive() {
                let tail = process::log_tail(&r.record.spec.log, 15);
                tracing::error!(component = %r.record.spec.name, "exited; last log lines:\n{tail}");
                return Err(Error::ProcessExited {
                    component: r.record.spec.name.clone(),
                    log: r.record.spec.log.clone(),
                });
            }
        }
        Ok(())
    }

    async fn wait_until<F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        loop {
            if check().await {
                tracing::info!(seconds = started.elapsed().as_secs_f32(), "{what}");
                return Ok(());
            }
            self.check_processes()?;
            if started.elapsed() > timeout {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Every process and object of the federation, in dependency order: files, control plane,
    /// members, Karmada's controllers, the joins, then every component healthy.
    async fn bring_up(&self, bins: &Binaries) -> Result<()> {
        let layout = &self.layout;
        let pki = self.write_files(bins)?;
        let ca_b64 = STANDARD.encode(pki.ca_pem()?);
        let c = Components {
            bins,
            layout,
            ports: self.ports,
            pki: &pki,
        };
        let karmada = self.start_apiservers(&c, &ca_b64).await?;
        self.start_members(&c).await?;
        let clusters = self
            .start_karmada_controllers(&c, &karmada, &ca_b64)
            .await?;
        self.join_members(bins, &karmada, &clusters).await?;
        self.wait_healthy().await
    }

    /// The PKI, kubeconfigs, webhook serving pair, kwok stages and audit policy.
    fn write_files(&self, bins: &Binaries) -> Result<Pki> {
        let layout = &self.layout;
        let pki = Pki::generate(&layout.pki_dir(), self.members)?;
        kubeconfig::write_admin(
            &layout.karmada_kubeconfig(),
            "karmada-apiserver",
            self.ports.karmada_apiserver(),
            &pki,
        )?;
        for i in 1..=self.members {
            kubeconfig::write_admin(
                &layout.member_kubeconfig(i),
                &member_name(i),
                self.ports.member(i).apiserver,
                &pki,
            )?;
        }
        pki.install_serving_pair(&layout.webhook_cert_dir())?;
        let kwok_config = kwok_config_path(layout);
        std::fs::create_dir_all(layout.kwok_dir())
            .map_err(Error::io("create", layout.kwok_dir()))?;
        std::fs::write(&kwok_config, bootstrap::kwok_stages(&bins.kwok_module)?)
            .map_err(Error::io("write", &kwok_config))?;
        let policy = layout.audit_policy();
        std::fs::write(&policy, crate::layout::audit_policy())
            .map_err(Error::io("write", &policy))?;
        Ok(pki)
    }

    /// etcd, every apiserver, Karmada's CRDs and APIService, the aggregated apiserver, Karmada's
    /// kube-controller-manager and webhook.
    async fn start_apiservers(&self, c: &Components<'_>, ca_b64: &str) -> Result<Client> {
        self.start(c.etcd())?;
        let etcd = loopback(self.ports.etcd_client());
        self.wait_until("etcd healthy", BRING_UP_STEP, || {
            probe::http_ok(etcd, "/health")
        })
        .await?;
        self.start(c.karmada_apiserver())?;
        for i in 1..=self.members {
            self.start(c.member_apiserver(i))?;
        }
        let karmada = self.karmada_client().await?;
        self.wait_until("karmada-apiserver ready", BRING_UP_STEP, || {
            probe::apiserver_ready(&karmada)
        })
        .await?;
        bootstrap::install_control_plane_objects(
            &karmada,
            &c.bins.karmada_module,
            self.ports,
            ca_b64,
            self.members,
        )
        .await?;
        tracing::info!("Karmada CRDs, APIService and estimator Services installed");
        self.start(c.aggregated_apiserver())?;
        self.start(c.karmada_kube_controller_manager())?;
        self.start(c.webhook())?;
        Ok(karmada)
    }

    /// Each member's objects, controller manager, scheduler, kwok and estimator.
    async fn start_members(&self, c: &Components<'_>) -> Result<()> {
        let kwok_config = kwok_config_path(&self.layout);
        for i in 1..=self.members {
            let name = member_name(i);
            let member = self.member_client(i).await?;
            self.wait_until(&format!("{name} apiserver ready"), BRING_UP_STEP, || {
                probe::apiserver_ready(&member)
            })
            .await?;
            bootstrap::install_member_objects(&member, i, &c.bins.kwok_module).await?;
            self.start(c.member_controller_manager(i))?;
            self.start(c.member_scheduler(i))?;
            self.start(c.member_kwok(i, &kwok_config))?;
            self.start(c.member_estimator(i))?;
        }
        Ok(())
    }

    /// The webhook configurations once the webhook serves, then karmada-controller-manager and
    /// karmada-scheduler once Clusters are served through the aggregation layer.
    async fn start_karmada_controllers(
        &self,
        c: &Components<'_>,
        karmada: &Client,
        ca_b64: &str,
    ) -> Result<Api<DynamicObject>> {
        // karmada-webhook serves readiness only on its TLS port; accepting TLS connections
        // there means its certificate loaded and handlers are registered.
        let webhook = loopback(self.ports.webhook());
        self.wait_until("karmada-webhook serving", BRING_UP_STEP, || {
            probe::tcp(webhook)
        })
        .await?;
        bootstrap::install_webhook_configurations(
            karmada,
            &c.bins.karmada_module,
            self.ports.webhook(),
            ca_b64,
        )
        .await?;
        let clusters: Api<DynamicObject> = Api::all_with(karmada.clone(), &cluster_resource());
        self.wait_until(
            "cluster.karmada.io served through the aggregation layer",
            BRING_UP_STEP,
            || {
                let clusters = clusters.clone();
                async move { clusters.list(&ListParams::default()).await.is_ok() }
            },
        )
        .await?;
        self.start(c.controller_manager())?;
        self.start(c.scheduler())?;
        Ok(clusters)
    }

    /// Every member joined (once its nodes are Ready), labelled with its VIP, and Ready with a
    /// resource summary in Karmada.
    async fn join_members(
        &self,
        bins: &Binaries,
        karmada: &Client,
        clusters: &Api<DynamicObject>,
    ) -> Result<()> {
        for i in 1..=self.members {
            let member = self.member_client(i).await?;
            self.wait_until(
                &format!("{} nodes Ready", member_name(i)),
                BRING_UP_STEP,
                || nodes_ready(member.clone(), crate::capacity::member_nodes(i).len()),
            )
            .await?;
        }
        for i in 1..=self.members {
            self.join(bins, i).await?;
        }
        for i in 1..=self.members {
            let label = json!({"metadata": {"labels": {VIP_LABEL: member_vip(i).to_string()}}});
            clusters
                .patch(
                    &member_name(i),
                    &PatchParams::default(),
                    &Patch::Merge(&label),
                )
                .await
                .map_err(Error::kube(
                    format!("label Cluster {}", member_name(i)),
                    "karmada-apiserver",
                ))?;
        }
        self.wait_until(
            "every Cluster Ready with a resource summary",
            BRING_UP_STEP,
            || async {
                match self.cluster_statuses(karmada).await {
                    Ok(s) => {
                        s.len() == self.members as usize
                            && s.iter().all(|c| c.ready && c.has_resource_summary)
                    }
                    Err(_) => false,
                }
            },
        )
        .await
    }

    /// Every estimator, karmada-controller-manager and karmada-scheduler answer their health
    /// checks.
    async fn wait_healthy(&self) -> Result<()> {
        for i in 1..=self.members {
            let health = loopback(self.ports.member(i).estimator_health);
            self.wait_until(
                &format!("{} estimator healthy", member_name(i)),
                BRING_UP_STEP,
                || probe::http_ok(health, "/healthz"),
            )
            .await?;
        }
        for (name, health) in [
            (
                "karmada-controller-manager",
                self.ports.controller_manager_health(),
            ),
            ("karmada-scheduler", self.ports.scheduler_health()),
        ] {
            let addr = loopback(health);
            self.wait_until(&format!("{name} healthy"), BRING_UP_STEP, || {
                probe::http_ok(addr, "/healthz")
            })
            .await?;
        }
        Ok(())
    }

    /// `karmadactl join` in Push mode (creates the member's service account and the Cluster
    /// with its secrets in Karmada).
    async fn join(&self, bins: &Binaries, index: u32) -> Result<()> {
        let name = member_name(index);
        let karmadactl = bins.path("karmadactl");
        let log = self.layout.log(&format!("karmadactl-join-{name}"));
        let args = [
            "join".to_string(),
            name.clone(),
            format!("--kubeconfig={}", self.karmada_kubeconfig().display()),
            format!(
                "--cluster-kubeconfig={}",
                self.member_kubeconfig(index).display()
            ),
        ];
        let command = format!("karmadactl {}", args.join(" "));
        let out = tokio::process::Command::new(&karmadactl)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Command {
                command: command.clone(),
                detail: e.to_string(),
            })?;
        let mut text = out.stdout.clone();
        text.extend_from_slice(&out.stderr);
        std::fs::write(&log, &text).map_err(Error::io("write", &log))?;
        if !out.status.success() {
            return Err(Error::Command {
                command,
                detail: format!(
                    "{}; output in {}: {}",
                    out.status,
                    log.display(),
                    String::from_utf8_lossy(&text).trim()
                ),
            });
        }
        tracing::info!(member = %name, "joined in Push mode");
        Ok(())
    }

    async fn cluster_statuses(&self, karmada: &kube::Client) -> Result<Vec<ClusterStatus>> {
        let api: Api<DynamicObject> = Api::all_with(karmada.clone(), &cluster_resource());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(Error::kube("list Clusters", "karmada-apiserver"))?;
        let mut out: Vec<ClusterStatus> = list
            .items
            .iter()
            .map(|c| {
                let field = |cond: &serde_json::Value, key: &str, want: &str| {
                    cond.get(key).is_some_and(|v| v == want)
                };
                let ready = c
                    .data
                    .pointer("/status/conditions")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|cond| field(cond, "type", "Ready") && field(cond, "status", "True"));
                let has_resource_summary = c
                    .data
                    .pointer("/status/resourceSummary/allocatable")
                    .and_then(serde_json::Value::as_object)
                    .is_some_and(|m| !m.is_empty());
                ClusterStatus {
                    name: c.metadata.name.clone().unwrap_or_default(),
                    ready,
                    vip: c
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(VIP_LABEL).cloned()),
                    has_resource_summary,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn probe(&self, name: &str, karmada: Option<&kube::Client>) -> (String, bool) {
        let ports = self.ports;
        let http = |port: u16, path: &'static str| async move {
            (
                format!("GET http://127.0.0.1:{port}{path}"),
                probe::http_ok(loopback(port), path).await,
            )
        };
        let tcp = |port: u16| async move {
            (
                format!("tcp 127.0.0.1:{port}"),
                probe::tcp(loopback(port)).await,
            )
        };
        match name {
            "etcd" => http(ports.etcd_client(), "/health").await,
            "karmada-apiserver" => (
                format!("GET https://127.0.0.1:{}/readyz", ports.karmada_apiserver()),
                match karmada {
                    Some(c) => probe::apiserver_ready(c).await,
                    None => false,
                },
            ),
            "karmada-aggregated-apiserver" => {
                let ok = match karmada {
                    Some(c) => Api::<DynamicObject>::all_with(c.clone(), &cluster_resource())
                        .list(&ListParams::default().limit(1))
                        .await
                        .is_ok(),
                    None => false,
                };
                (
                    "list clusters.cluster.karmada.io via the APIService".into(),
                    ok,
                )
            }
            "karmada-kube-controller-manager" => tcp(ports.karmada_kube_controller_manager()).await,
            "karmada-webhook" => tcp(ports.webhook()).await,
            "karmada-controller-manager" => {
                http(ports.controller_manager_health(), "/healthz").await
            }
            "karmada-scheduler" => http(ports.scheduler_health(), "/healthz").await,
            _ => {
                let Some((index, component)) = name
                    .strip_prefix("member")
                    .and_then(|rest| rest.split_once('-'))
                    .and_then(|(i, c)| Some((i.parse::<u32>().ok()?, c)))
                else {
                    return ("unknown component".into(), false);
                };
                let m = ports.member(index);
                match component {
                    "kube-apiserver" => {
                        let ok = match self.member_client(index).await {
                            Ok(c) => probe::apiserver_ready(&c).await,
                            Err(_) => false,
                        };
                        (format!("GET https://127.0.0.1:{}/readyz", m.apiserver), ok)
                    }
                    "kube-controller-manager" => tcp(m.controller_manager).await,
                    "kube-scheduler" => tcp(m.scheduler).await,
                    "kwok" => tcp(m.kwok).await,
                    "karmada-scheduler-estimator" => http(m.estimator_health, "/healthz").await,
                    _ => ("unknown component".into(), false),
                }
            }
        }
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        if !self.detached.load(Ordering::SeqCst) {
            tracing::info!("federation dropped; stopping its processes");
            self.stop_everything();
            let _ = std::fs::remove_file(self.layout.state_file());
        }
    }
}

async fn nodes_ready(client: kube::Client, expected: usize) -> bool {
    use k8s_openapi::api::core::v1::Node;
    let Ok(list) = Api::<Node>::all(client).list(&ListParams::default()).await else {
        return false;
    };
    let ready = list
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    ready >= expected
}

fn read_state(layout: &RunLayout) -> Result<State> {
    let path = layout.state_file();
    let text = std::fs::read_to_string(&path).map_err(|_| Error::NotRunning {
        run_dir: layout.root.clone(),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Manifest {
        what: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Fails with the first port of the plan that cannot be bound. The estimator's gRPC port binds
/// every interface, so it is checked on 0.0.0.0 too.
fn check_ports(ports: PortPlan, members: u32) -> Result<()> {
    let estimator_ports: Vec<u16> = (1..=members)
        .map(|i| ports.member(i).estimator_grpc)
        .collect();
    for (port, purpose) in ports.all(members) {
        let mut hosts = vec![loopback(port)];
        if estimator_ports.contains(&port) {
            hosts.push(SocketAddr::from(([0, 0, 0, 0], port)));
        }
        for addr in hosts {
            if !probe::port_free(addr) {
                return Err(Error::PortInUse {
                    host: addr.ip().to_string(),
                    port,
                    purpose,
                });
            }
        }
    }
    Ok(())
}

/// Removes what a previous run left (only our own sub-paths: the run directory may be shared).
fn prepare_run_dir(layout: &RunLayout) -> Result<()> {
    for dir in [
        layout.pki_dir(),
        layout.kubeconfig_dir(),
        layout.logs_dir(),
        layout.etcd_dir(),
        layout.kwok_dir(),
    ] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(Error::io("remove", &dir))?;
        }
    }
    let state = layout.state_file();
    if state.exists() {
        std::fs::remove_file(&state).map_err(Error::io("remove", &state))?;
    }
    for dir in [layout.root.clone(), layout.logs_dir()] {
        std::fs::create_dir_all(&dir).map_err(Error::io("create", &dir))?;
    }
    Ok(())
}
