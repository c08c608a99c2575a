//! The agent's replica-set code against a real `mongod` (`docs/local-federation.md#the-replica-set-simulator`: the simulator
//! is checked against MongoDB itself whenever one is available). Set
//! `FEDSTATE_MONGOD=/path/to/mongod` and run it with `--include-ignored` (`scripts/test-all.sh
//! mongod` does); otherwise cargo reports it ignored, with the reason. Three local processes with a generated keyfile (so access control and
//! the localhost exception are on) form the set; all listen on 127.0.0.1 only and are killed when
//! the test ends; their logs are kept (and their directory printed) when it fails.
//!
//! Never run here: no mongod can be installed on these machines. It is written to pass against
//! mongod 4.4–8.0: the in-pod steps (initiate, the first user) go over 127.0.0.1, which is what
//! the member's pod gives, with the root password read from a file as the pod's shell does.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fedstate_api::hostconf::HostEntry;
use fedstate_mongo_agent::converge::{self, Outcome, SetGoal, Users};
use fedstate_mongo_agent::inpod::InPod;
use fedstate_mongo_agent::planner::{Desired, ForceOptIn, RsConfig};
use fedstate_mongo_agent::replset::{Login, Password, ReplSetAdmin, ReplSetError};
use mongodb::bson::Document;

/// Kills the processes and removes their directory on drop.
struct Mongods {
    children: Vec<Child>,
    ports: Vec<u16>,
    dir: PathBuf,
}

impl Drop for Mongods {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("mongod logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Mongods {
    /// Stop member `i` (SIGKILL: as a node that fails) and start it again from the same dbPath,
    /// port and keyfile with `binary` (the same one, or the next version for an upgrade).
    fn restart(&mut self, i: usize, binary: &Path) {
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        self.children[i] = spawn(binary, &self.dir, i, self.ports[i]);
    }
}

/// The member's pod as the agent's exec sees it: mongod's own localhost interface, and the root
/// password in a file (the pod's credentials mount).
struct LocalPod {
    password_file: PathBuf,
}

impl InPod for LocalPod {
    async fn run(
        &self,
        host: &str,
        command: &Document,
        password_from_file: bool,
    ) -> Result<(), ReplSetError> {
        let mut cmd = command.clone();
        if password_from_file {
            cmd.insert("pwd", std::fs::read_to_string(&self.password_file).unwrap());
        }
        let port = host.rsplit_once(':').unwrap().1;
        let local = ReplSetAdmin::new(None, Duration::from_secs(10));
        local
            .run_raw(&format!("127.0.0.1:{port}"), cmd)
            .await
            .map(drop)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(mongod: &Path, n: usize) -> (Mongods, Vec<String>) {
    let dir = std::env::temp_dir().join(format!(
        "fedstate-real-mongod-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let keyfile = dir.join("keyfile");
    // What production mounts: a generated keyfile (mongod refuses a `-` in it).
    let key = fedstate_api::secrets::generate_keyfile(&mut rand::rng());
    fedstate_api::secrets::check_keyfile(&key).unwrap();
    std::fs::write(&keyfile, key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&keyfile, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let children = ports
        .iter()
        .enumerate()
        .map(|(i, port)| spawn(mongod, &dir, i, *port))
        .collect();
    let hosts = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    (
        Mongods {
            children,
            ports,
            dir,
        },
        hosts,
    )
}

/// One member process: its own dbPath under `dir`, its log appended to (a restart keeps the
/// earlier run's lines).
fn spawn(mongod: &Path, dir: &Path, i: usize, port: u16) -> Child {
    let db = dir.join(format!("db{i}"));
    std::fs::create_dir_all(&db).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("mongod{i}.log")))
        .unwrap();
    Command::new(mongod)
        .args(["--replSet", "rs", "--bind_ip", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .arg("--dbpath")
        .arg(&db)
        .arg("--keyFile")
        .arg(dir.join("keyfile"))
        .stdout(Stdio::from(log))
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The host-list entries of `hosts[i]` for each `i` in `which` (`member_index` is `i`: a member
/// keeps its `_id` whatever else changes).
fn pick(hosts: &[String], which: &[usize]) -> Vec<HostEntry> {
    which
        .iter()
        .map(|&i| HostEntry {
            host: hosts[i].clone(),
            member_index: i as i32,
            votes: 1,
            priority: 1,
            arbiter_only: false,
            cluster: "local".into(),
        })
        .collect()
}

#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
async fn converge_until_done(admin: &ReplSetAdmin, pod: &LocalPod, goal: &SetGoal) -> Vec<Outcome> {
    let mut log = Vec::new();
    // Real elections and initial syncs take seconds; bounded by attempts, not by a clock.
    for _ in 0..240 {
        match converge::step(admin, pod, goal, &BTreeSet::new()).await {
            Ok((Outcome::Done, _)) => return log,
            Ok((o, _)) => log.push(o),
            Err(e) => log.push(Outcome::Waiting(e.to_string())),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no convergence against real mongod: {log:?}");
}

/// A set of real mongods the agent's code initiated and created its users on.
struct Real {
    procs: Mongods,
    hosts: Vec<String>,
    pod: LocalPod,
    /// The agent's view, logged in as its cluster admin.
    admin: ReplSetAdmin,
    users: Users,
}

#[allow(
    clippy::panic,
    reason = "test helpers (not #[test]s themselves): a panic fails the calling test"
)]
impl Real {
    fn goal(&self, members: Vec<HostEntry>, fcv: Option<(u32, u32)>) -> SetGoal {
        let own: BTreeSet<String> = self.hosts.iter().cloned().collect();
        SetGoal {
            set_name: "rs".into(),
            rs_init: true,
            desired: Desired {
                hosts: members,
                own: own.clone(),
                ready: own,
            },
            force: ForceOptIn(None),
            fcv,
        }
    }

    async fn converge(&self, goal: &SetGoal) -> Vec<Outcome> {
        converge_until_done(&self.admin, &self.pod, goal).await
    }

    async fn config(&self) -> RsConfig {
        let own: BTreeSet<String> = self.hosts.iter().cloned().collect();
        let obs = self.admin.observe("rs", &own).await.unwrap();
        obs.observed.config.unwrap()
    }

    async fn primary(&self) -> String {
        wait_for_primary(&self.admin, &self.hosts).await
    }

    /// Wait until member `i` answers `hello` as a member of the set (after a restart).
    async fn back(&self, i: usize) {
        let host = &self.hosts[i];
        for _ in 0..240 {
            if self
                .admin
                .hello(host)
                .await
                .is_ok_and(|h| h.set_name.as_deref() == Some("rs") && h.primary.is_some())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{host} did not rejoin the set after its restart");
    }
}

fn login(u: &str, p: &str) -> Login {
    Login {
        user: u.into(),
        password: Password::new(p),
    }
}

#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
fn mongod_from(var: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!("{var}=/path/to/mongod: this test runs the agent's code against it")
    })
}

#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
async fn wait_for_primary(admin: &ReplSetAdmin, hosts: &[String]) -> String {
    // A real election takes seconds (10 s election timeout after a kill).
    for _ in 0..120 {
        for h in hosts {
            if admin.hello(h).await.is_ok_and(|x| x.is_primary) {
                return h.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no primary among {hosts:?}");
}

/// Start `n` mongods from `mongod`, initiate the set on the first one from its "pod" (the
/// localhost exception), create the three users there as production does, and return the
/// agent's logged-in view. Only the first member is in the set.
async fn initiated(mongod: &Path, n: usize) -> Real {
    let (procs, hosts) = start(mongod, n);
    let anonymous = ReplSetAdmin::new(None, Duration::from_secs(5));
    for h in &hosts {
        let mut up = false;
        for _ in 0..120 {
            if anonymous.hello(h).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(up, "{h} did not start");
    }
    let password_file = procs.dir.join("root-password");
    std::fs::write(&password_file, "Real-Root-Pass-1").unwrap();
    let pod = LocalPod { password_file };
    let users = Users {
        root: login("root", "Real-Root-Pass-1"),
        cluster_admin: login("fedstate-cluster-admin", "Real-Admin-Pass-1"),
        cluster_monitor: login("fedstate-monitor", "Real-Monitor-Pass-1"),
    };
    let mut real = Real {
        procs,
        hosts,
        pod,
        admin: anonymous.clone(),
        users,
    };
    let log = real
        .converge(&real.goal(pick(&real.hosts, &[0]), None))
        .await;
    assert_eq!(
        log.iter()
            .filter(|o| matches!(o, Outcome::Initiated { .. }))
            .count(),
        1
    );
    // Without a user, observing needs a primary found by hello (replSetGetConfig needs a login).
    let primary = wait_for_primary(&anonymous, &real.hosts).await;
    let changes = converge::ensure_users(&anonymous, &real.pod, &primary, &real.users)
        .await
        .unwrap();
    assert_eq!(changes.created.len(), 3);
    real.admin = anonymous.with_login(Some(real.users.cluster_admin.clone()));
    real
}

#[tokio::test]
#[ignore = "needs a real mongod: set FEDSTATE_MONGOD=/path/to/mongod and pass --include-ignored (none can be installed on these machines)"]
async fn the_replica_set_code_works_against_real_mongod() {
    let real = initiated(&mongod_from("FEDSTATE_MONGOD"), 3).await;
    // Grow to three voters, one at a time, as the cluster admin.
    real.converge(&real.goal(pick(&real.hosts, &[0, 1, 2]), None))
        .await;
    assert_eq!(real.config().await.voters(), 3);
    // Shrink to two.
    real.converge(&real.goal(pick(&real.hosts, &[0, 1]), None))
        .await;
    assert_eq!(real.config().await.voters(), 2);
    // Rotation.
    let rotated = Users {
        cluster_monitor: login("fedstate-monitor", "Real-Monitor-Pass-2"),
        ..real.users.clone()
    };
    let primary = real.primary().await;
    let anonymous = ReplSetAdmin::new(None, Duration::from_secs(5));
    let changes = converge::ensure_users(&anonymous, &real.pod, &primary, &rotated)
        .await
        .unwrap();
    assert_eq!(changes.rotated, ["fedstate-monitor"]);
}

/// Removing the primary's member: mongod refuses a reconfig that removes the member it runs on
/// while it is primary, so the agent steps it down first (`replSetStepDown`), waits for the
/// election among the others, and removes it from the new primary. Afterwards the old primary is
/// out of the config, the set has a primary among the rest, and the kill of a secondary
/// (a real election timeout) leaves it converging again once the member returns.
#[tokio::test]
#[ignore = "needs a real mongod: set FEDSTATE_MONGOD=/path/to/mongod and pass --include-ignored (none can be installed on these machines)"]
async fn removing_the_primary_steps_it_down_first_on_real_mongod() {
    let mongod = mongod_from("FEDSTATE_MONGOD");
    let mut real = initiated(&mongod, 4).await;
    real.converge(&real.goal(pick(&real.hosts, &[0, 1, 2, 3]), None))
        .await;
    let primary = real.primary().await;
    let index = real.hosts.iter().position(|h| *h == primary).unwrap();
    let rest: Vec<usize> = (0..4).filter(|&i| i != index).collect();
    let log = real
        .converge(&real.goal(pick(&real.hosts, &rest), None))
        .await;
    let stepped = log
        .iter()
        .position(|o| matches!(o, Outcome::SteppedDown { host } if *host == primary));
    let removed = log
        .iter()
        .rposition(|o| matches!(o, Outcome::Reconfigured { .. }));
    assert!(
        matches!((stepped, removed), (Some(s), Some(r)) if s < r),
        "step down before the removal: {log:?}"
    );
    let config = real.config().await;
    assert_eq!(config.voters(), 3);
    assert!(config.members.iter().all(|m| m.host != primary));
    let new_primary = real.primary().await;
    assert_ne!(new_primary, primary);
    // A secondary fails and returns: the set keeps its primary and the goal stays met.
    let secondary = rest
        .iter()
        .copied()
        .find(|&i| real.hosts[i] != new_primary)
        .unwrap();
    real.procs.restart(secondary, &mongod);
    real.back(secondary).await;
    real.converge(&real.goal(pick(&real.hosts, &rest), None))
        .await;
    assert_eq!(real.config().await.voters(), 3);
    assert_eq!(
        real.primary().await,
        new_primary,
        "a secondary's restart moves no primary"
    );
}

/// An arbiter: from MongoDB 5.0 a reconfig that changes the implicit default write concern
/// (adding an arbiter to a two-member set does) is refused until a cluster-wide default is set
/// (`setDefaultRWConcern`); the agent sets it first. The arbiter votes, holds no data, and
/// refuses authentication, which the agent's observation must live with.
#[tokio::test]
#[ignore = "needs a real mongod: set FEDSTATE_MONGOD=/path/to/mongod and pass --include-ignored (none can be installed on these machines)"]
async fn an_arbiter_is_added_the_way_mongod_allows_on_real_mongod() {
    let real = initiated(&mongod_from("FEDSTATE_MONGOD"), 3).await;
    real.converge(&real.goal(pick(&real.hosts, &[0, 1]), None))
        .await;
    let version = real.admin.version(&real.hosts[0]).await.unwrap();
    let mut members = pick(&real.hosts, &[0, 1, 2]);
    members[2].arbiter_only = true;
    members[2].priority = 0;
    let log = real.converge(&real.goal(members, None)).await;
    let config = real.config().await;
    let arbiter = config
        .members
        .iter()
        .find(|m| m.host == real.hosts[2])
        .expect("the arbiter is in the config");
    assert!(arbiter.arbiter_only && arbiter.votes == 1, "{arbiter:?}");
    assert_eq!(config.voters(), 3);
    if version >= (5, 0) {
        let wc = log
            .iter()
            .position(|o| matches!(o, Outcome::DefaultWriteConcernSet { .. }));
        let added = log
            .iter()
            .position(|o| matches!(o, Outcome::Reconfigured { .. }));
        assert!(
            matches!((wc, added), (Some(w), Some(a)) if w < a),
            "{version:?}: the default write concern set before the arbiter is added: {log:?}"
        );
    }
}

/// Lost replies: steps run with a client that waits 1 ms for any answer, so each gives up at
/// whichever command it has sent, the reconfig among them once a step gets that far (the server
/// applies it, the agent never hears back, as when the network drops mid-command). The agent
/// keeps no memory of what it sent: the next patient steps observe the config as it now is and
/// go on from there, with no member added twice, no error that sticks, and the goal met.
#[tokio::test]
#[ignore = "needs a real mongod: set FEDSTATE_MONGOD=/path/to/mongod and pass --include-ignored (none can be installed on these machines)"]
async fn a_reconfig_whose_reply_is_lost_is_observed_not_repeated_on_real_mongod() {
    let real = initiated(&mongod_from("FEDSTATE_MONGOD"), 3).await;
    real.converge(&real.goal(pick(&real.hosts, &[0, 1]), None))
        .await;
    let before = real.config().await.version;
    let goal = real.goal(pick(&real.hosts, &[0, 1, 2]), None);
    // A client that waits 1 ms for any answer: the command is sent, the reply is not read.
    let impatient = ReplSetAdmin::new(
        Some(real.users.cluster_admin.clone()),
        Duration::from_millis(1),
    );
    for _ in 0..5 {
        let lost = converge::step(&impatient, &real.pod, &goal, &BTreeSet::new()).await;
        eprintln!("a step with lost replies: {lost:?}");
    }
    real.converge(&goal).await;
    let config = real.config().await;
    assert_eq!(config.voters(), 3);
    assert_eq!(config.members.len(), 3, "no member twice: {config:?}");
    assert!(config.version > before);
}

/// An upgrade by one major version, as MongoDB's upgrade pages do it: every member restarted on
/// the next version's binary (secondaries first, the primary after stepping down), then
/// `setFeatureCompatibilityVersion` to the new version once all run it. Needs both binaries:
/// `FEDSTATE_MONGOD` (e.g. 6.0) and `FEDSTATE_MONGOD_NEXT` (the next major, e.g. 7.0).
#[tokio::test]
#[ignore = "needs two real mongod versions: set FEDSTATE_MONGOD and FEDSTATE_MONGOD_NEXT (the next major) and pass --include-ignored (none can be installed on these machines)"]
async fn an_upgrade_by_one_major_sets_the_fcv_on_real_mongod() {
    let (old, next) = (
        mongod_from("FEDSTATE_MONGOD"),
        mongod_from("FEDSTATE_MONGOD_NEXT"),
    );
    let mut real = initiated(&old, 3).await;
    real.converge(&real.goal(pick(&real.hosts, &[0, 1, 2]), None))
        .await;
    let from = real.admin.version(&real.hosts[0]).await.unwrap();
    let all: BTreeSet<String> = real.hosts.iter().cloned().collect();
    assert_eq!(real.admin.feature_compatibility(&all).await, Some(from));
    let primary = real.primary().await;
    for i in 0..3 {
        if real.hosts[i] != primary {
            real.procs.restart(i, &next);
            real.back(i).await;
            real.converge(&real.goal(pick(&real.hosts, &[0, 1, 2]), None))
                .await;
        }
    }
    real.admin.step_down(&primary).await.unwrap();
    let index = real.hosts.iter().position(|h| *h == primary).unwrap();
    real.procs.restart(index, &next);
    real.back(index).await;
    let to = real.admin.version(&real.hosts[index]).await.unwrap();
    assert!(
        to > from,
        "FEDSTATE_MONGOD_NEXT runs {to:?}, not newer than {from:?}"
    );
    let log = real
        .converge(&real.goal(pick(&real.hosts, &[0, 1, 2]), Some(to)))
        .await;
    assert!(
        log.iter()
            .any(|o| matches!(o, Outcome::FeatureCompatibilitySet { .. })),
        "{log:?}"
    );
    assert_eq!(real.admin.feature_compatibility(&all).await, Some(to));
}
