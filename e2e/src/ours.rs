//! FedState's control plane as processes on the local federation, with the flags our charts give
//! them: `fedstate-scheduler run`, `fedstate-manager` (both against the Karmada apiserver) and one
//! `fedstate-mongo-agent` per member cluster. Single replicas (`--leader-elect=false`), each with
//! its own admin port. Any of them can be killed with SIGKILL (a crash, an OOM kill, a lost node:
//! nothing of its own clean-up runs) and started again with the same flags, as the kubelet
//! restarts a container; each start writes its own log (`<name>.<start>.log`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: its functions are called by the e2e trials, and a panic is how they fail the trial"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fedstate_local::{Federation, member_name, member_vip};

use crate::process::{OurProcess, our_binary};
use crate::stack;

/// The environment our images set (`deploy/images/Dockerfile`, `scripts/build-images.sh`), so
/// the processes here run as they run in a pod. `MALLOC_ARENA_MAX=2`: glibc's malloc keeps one
/// arena per thread that allocated (up to 8 per core), each holding the pages freed there; two
/// arenas cut the scheduler's footprint (1,000 Clusters × 10,000 bindings, release) by 5–16 MiB
/// (82.4 → 77.2 MiB in one run; `benches/README.md`, "footprint").
pub const IMAGE_ENV: &[(&str, &str)] = &[("MALLOC_ARENA_MAX", "2")];

/// One component: how to start it, and the process running now.
#[derive(Debug)]
pub struct Component {
    pub name: String,
    binary: PathBuf,
    args: Vec<String>,
    log_dir: PathBuf,
    starts: u32,
    admin: SocketAddr,
    process: Option<OurProcess>,
}

impl Component {
    fn start(&mut self) {
        self.starts += 1;
        // A fresh admin port per start: the killed process's socket may linger.
        self.admin = free_port();
        let mut args = self.args.clone();
        args.push(format!("--admin-addr={}", self.admin));
        let mut command = std::process::Command::new(&self.binary);
        command.args(&args).envs(IMAGE_ENV.iter().copied());
        let log = self
            .log_dir
            .join(format!("{}.{}.log", self.name, self.starts));
        self.process = Some(OurProcess::spawn(&self.name, command, &log));
    }

    /// Whether the process of its last start still runs.
    pub fn running(&mut self) -> bool {
        self.process.as_mut().is_some_and(OurProcess::running)
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    fn log_tail(&self) -> String {
        self.process
            .as_ref()
            .map(|p| format!("log {}:\n{}", p.log.display(), p.log_tail(20)))
            .unwrap_or_default()
    }
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}

/// Every component of ours, running until dropped.
#[derive(Debug)]
pub struct Ours {
    pub components: Vec<Component>,
}

impl Ours {
    /// Starts the scheduler, the manager and one agent per member (our CRDs and the interpreter
    /// must be installed).
    pub fn start(fed: &Federation) -> Self {
        let log_dir = fed.logs_dir();
        let karmada = fed.karmada_kubeconfig().display().to_string();
        let mut components = Vec::new();
        let mut add = |name: String, binary: &str, mut args: Vec<String>| {
            args.push("--leader-elect=false".to_owned());
            components.push(Component {
                name,
                binary: our_binary(binary),
                args,
                log_dir: log_dir.clone(),
                starts: 0,
                admin: free_port(),
                process: None,
            });
        };
        let mut scheduler = vec!["run".to_owned()];
        scheduler.extend(
            stack::scheduler_flags(&fed.karmada_kubeconfig(), &fed.estimator_tls())
                .into_iter()
                .filter(|f| !f.starts_with("--admin-addr")),
        );
        add(
            "fedstate-scheduler".to_owned(),
            "fedstate-scheduler",
            scheduler,
        );
        // deploy/charts/fedstate values: busyRequeueSeconds 15, idleRequeueSeconds 300.
        add(
            "fedstate-manager".to_owned(),
            "fedstate-manager",
            vec![
                format!("--kubeconfig={karmada}"),
                "--busy-requeue-seconds=15".to_owned(),
                "--idle-requeue-seconds=300".to_owned(),
            ],
        );
        for i in 1..=fed.members() {
            // deploy/charts/fedstate-member: memberHost (the VIP), clusterName,
            // mongoTimeoutSeconds 5.
            add(
                format!("fedstate-mongo-agent-{}", member_name(i)),
                "fedstate-mongo-agent",
                vec![
                    format!("--kubeconfig={}", fed.member_kubeconfig(i).display()),
                    format!("--member-host={}", member_vip(i)),
                    format!("--cluster-name={}", member_name(i)),
                    "--mongo-timeout-seconds=5".to_owned(),
                ],
            );
        }
        for c in &mut components {
            c.start();
        }
        Self { components }
    }

    fn component(&mut self, name: &str) -> &mut Component {
        self.components
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no component {name}"))
    }

    /// Each component's name and the pid of its running process.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.components
            .iter()
            .filter_map(|c| Some((c.name.clone(), c.process.as_ref()?.pid())))
            .collect()
    }

    /// The components' names.
    pub fn names(&self) -> Vec<String> {
        self.components.iter().map(|c| c.name.clone()).collect()
    }

    /// SIGKILL to `name`'s process.
    pub fn kill(&mut self, name: &str) {
        if let Some(p) = self.component(name).process.as_mut() {
            p.kill();
        }
    }

    /// Starts `name` again with the same flags.
    pub fn restart(&mut self, name: &str) {
        self.component(name).start();
    }

    /// Waits until every component answers `/readyz`; an error names one that exited or is not
    /// ready within `bound`.
    pub async fn ready(&mut self, bound: Duration) -> Result<(), String> {
        let deadline = Instant::now() + bound;
        for c in &mut self.components {
            while !fedstate_local::probe::http_ok(c.admin, "/readyz").await {
                if !c.running() {
                    return Err(format!("{} exited; {}", c.name, c.log_tail()));
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "{} not ready after {} s; {}",
                        c.name,
                        bound.as_secs(),
                        c.log_tail()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Ok(())
    }

    /// The components whose process exited without being killed, with their logs' tails.
    pub fn exited(&mut self) -> Vec<String> {
        self.components
            .iter_mut()
            .filter_map(|c| (!c.running()).then(|| format!("{} exited; {}", c.name, c.log_tail())))
            .collect()
    }
}
