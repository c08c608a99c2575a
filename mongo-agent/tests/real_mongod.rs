//! The agent's replica-set code against a real `mongod`
//! (`docs/local-federation.md#the-replica-set-simulator`: the simulator is checked against MongoDB
//! itself whenever one is available). Set `FEDSTATE_MONGOD=/path/to/mongod`; without it this test
//! prints "skipped: no mongod" and passes. Three local processes with a keyfile (so access control
//! and the localhost exception are on) form the set; all listen on 127.0.0.1 only and are killed
//! when the test ends.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fedstate_api::hostconf::HostEntry;
use fedstate_mongo_agent::converge::{self, Outcome, SetGoal, Users};
use fedstate_mongo_agent::planner::{Desired, ForceOptIn};
use fedstate_mongo_agent::replset::{Login, Password, ReplSetAdmin};

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
        let _ = std::fs::remove_dir_all(&self.dir);
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

async fn converge_until_done(admin: &ReplSetAdmin, goal: &SetGoal) -> Vec<Outcome> {
    let mut log = Vec::new();
    // Real elections and initial syncs take seconds; bounded by attempts, not by a clock.
    for _ in 0..240 {
        match converge::step(admin, goal, &BTreeSet::new()).await {
            Ok((Outcome::Done, _)) => return log,
            Ok((o, _)) => log.push(o),
            Err(e) => log.push(Outcome::Waiting(e.to_string())),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("no convergence against real mongod: {log:?}");
}

#[tokio::test]
async fn the_replica_set_code_works_against_real_mongod() {
    let Some(mongod) = std::env::var_os("FEDSTATE_MONGOD").map(PathBuf::from) else {
        println!("skipped: no mongod (set FEDSTATE_MONGOD=/path/to/mongod)");
        return;
    };
    let (_procs, hosts) = start(&mongod, 3);
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
        force: ForceOptIn(false),
    };
    // Initiate with one member through the localhost exception, then create the users.
    let log = converge_until_done(&admin, &goal(1)).await;
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
    let obs = admin.observe("rs", &own).await.unwrap();
    let primary = obs.primary.clone().unwrap();
    let changes = converge::ensure_users(&admin, &primary, &users)
        .await
        .unwrap();
    assert_eq!(changes.created.len(), 3);

    // Grow to three voters, one at a time, as the cluster admin.
    let as_admin = admin.with_login(Some(users.cluster_admin.clone()));
    converge_until_done(&as_admin, &goal(3)).await;
    let obs = as_admin.observe("rs", &own).await.unwrap();
    assert_eq!(obs.observed.config.as_ref().unwrap().voters(), 3);
    // Shrink to two.
    converge_until_done(&as_admin, &goal(2)).await;
    let obs = as_admin.observe("rs", &own).await.unwrap();
    assert_eq!(obs.observed.config.as_ref().unwrap().voters(), 2);
    // Rotation.
    let rotated = Users {
        cluster_monitor: login("fedstate-monitor", "Real-Monitor-Pass-2"),
        ..users.clone()
    };
    let changes = converge::ensure_users(&admin, obs.primary.as_ref().unwrap(), &rotated)
        .await
        .unwrap();
    assert_eq!(changes.rotated, ["fedstate-monitor"]);
}
