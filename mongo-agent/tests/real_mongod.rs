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
use fedstate_mongo_agent::planner::{Desired, ForceOptIn};
use fedstate_mongo_agent::replset::{Login, Password, ReplSetAdmin, ReplSetError};
use mongodb::bson::Document;

/// Kills the processes and removes their directory on drop.
struct Mongods {
    children: Vec<Child>,
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
    let dir = std::env::temp_dir().join(format!("fedstate-real-mongod-{}", std::process::id()));
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
    let mut children = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..n {
        let port = free_port();
        let db = dir.join(format!("db{i}"));
        std::fs::create_dir_all(&db).unwrap();
        let log = std::fs::File::create(dir.join(format!("mongod{i}.log"))).unwrap();
        let child = Command::new(mongod)
            .args(["--replSet", "rs", "--bind_ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--dbpath")
            .arg(&db)
            .arg("--keyFile")
            .arg(&keyfile)
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
        hosts.push(format!("127.0.0.1:{port}"));
    }
    (Mongods { children, dir }, hosts)
}

fn entries(hosts: &[String]) -> Vec<HostEntry> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| HostEntry {
            host: h.clone(),
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

#[tokio::test]
#[ignore = "needs a real mongod: set FEDSTATE_MONGOD=/path/to/mongod and pass --include-ignored (none can be installed on these machines)"]
async fn the_replica_set_code_works_against_real_mongod() {
    let mongod = std::env::var_os("FEDSTATE_MONGOD")
        .map(PathBuf::from)
        .expect("FEDSTATE_MONGOD=/path/to/mongod: this test runs the agent's code against it");
    let (procs, hosts) = start(&mongod, 3);
    let admin = ReplSetAdmin::new(None, Duration::from_secs(5));
    // Wait for the processes to answer hello.
    for h in &hosts {
        let mut up = false;
        for _ in 0..120 {
            if admin.hello(h).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(up, "{h} did not start");
    }
    let own: BTreeSet<String> = hosts.iter().cloned().collect();
    let goal = |n: usize| SetGoal {
        set_name: "rs".into(),
        rs_init: true,
        desired: Desired {
            hosts: entries(&hosts[..n]),
            own: own.clone(),
            ready: own.clone(),
        },
        force: ForceOptIn(None),
        fcv: None,
    };
    let password_file = procs.dir.join("root-password");
    std::fs::write(&password_file, "Real-Root-Pass-1").unwrap();
    let pod = LocalPod { password_file };
    // Initiate with one member in its "pod" (the localhost exception), then create the users.
    let log = converge_until_done(&admin, &pod, &goal(1)).await;
    assert_eq!(
        log.iter()
            .filter(|o| matches!(o, Outcome::Initiated { .. }))
            .count(),
        1
    );
    let login = |u: &str, p: &str| Login {
        user: u.into(),
        password: Password::new(p),
    };
    let users = Users {
        root: login("root", "Real-Root-Pass-1"),
        cluster_admin: login("fedstate-cluster-admin", "Real-Admin-Pass-1"),
        cluster_monitor: login("fedstate-monitor", "Real-Monitor-Pass-1"),
    };
    // Without a user, observing needs a primary found by hello (replSetGetConfig needs a login).
    let mut primary = None;
    for _ in 0..120 {
        for h in &hosts {
            if admin.hello(h).await.is_ok_and(|x| x.is_primary) {
                primary = Some(h.clone());
            }
        }
        if primary.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let primary = primary.unwrap();
    let changes = converge::ensure_users(&admin, &pod, &primary, &users)
        .await
        .unwrap();
    assert_eq!(changes.created.len(), 3);

    // Grow to three voters, one at a time, as the cluster admin.
    let as_admin = admin.with_login(Some(users.cluster_admin.clone()));
    converge_until_done(&as_admin, &pod, &goal(3)).await;
    let obs = as_admin.observe("rs", &own).await.unwrap();
    assert_eq!(obs.observed.config.as_ref().unwrap().voters(), 3);
    // Shrink to two.
    converge_until_done(&as_admin, &pod, &goal(2)).await;
    let obs = as_admin.observe("rs", &own).await.unwrap();
    assert_eq!(obs.observed.config.as_ref().unwrap().voters(), 2);
    // Rotation.
    let rotated = Users {
        cluster_monitor: login("fedstate-monitor", "Real-Monitor-Pass-2"),
        ..users.clone()
    };
    let changes = converge::ensure_users(&admin, &pod, obs.primary.as_ref().unwrap(), &rotated)
        .await
        .unwrap();
    assert_eq!(changes.rotated, ["fedstate-monitor"]);
}
