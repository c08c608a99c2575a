//! Our processes killed at random points of a change, on the local federation: the scheduler,
//! the manager and one agent per member cluster run as processes with our charts' flags
//! (`fedstate_e2e::ours`), the replica-set simulator serves the member pods (mongod's stand-in,
//! see testing/rs-sim/README.md). A MultiCloudMongoDB of 3 members, placed by our scheduler, goes
//! through three changes:
//!
//! 1. scale 3 → 5,
//! 2. an image change on the 5 members, placed 2/2/1 (every member restarts, one voter at a
//!    time across the clusters: the manager releases one cluster at a time, each agent restarts
//!    its own members one at a time),
//! 3. scale 5 → 3.
//!
//! During each change, kills chosen by a seeded random generator: each picks a component
//! (scheduler, manager or an agent), a moment in the first seconds of the change and how long it
//! stays down, then SIGKILL and a restart with the same flags. The seed of each change is printed;
//! `FEDSTATE_E2E_RESTART_SEED=<n>` replays a run. The base seed comes from the clock, except
//! under `CI=true`, where it is fixed (as the proptests' seed is), so a red run is red again.
//!
//! Checked at every simulator tick, from the first change to the last convergence: one set only
//! (no second initiate), no forced reconfig, no member host twice in the config, at most one
//! voter down, at most one PRIMARY, no election of a member that lacks the majority commit
//! point (no write acknowledged with `w: "majority"` lost). After each change: the object
//! converges (placed, `Health`, every member running the change's image) and the set has
//! exactly the target members, each PRIMARY or SECONDARY. The number of ticks checked, the
//! ticks without a primary and the violations (0) are printed.
//!
//! Runs only with `FEDSTATE_E2E=1` (see `fedstate_e2e::harness`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedstate_api::{MongoDB, MultiCloudMongoDB, names};
use fedstate_e2e::harness::eventually;
use fedstate_e2e::invariants::Monitor;
use fedstate_e2e::ours::Ours;
use fedstate_e2e::ready::mcm_ready;
use fedstate_e2e::scenarios;
use fedstate_e2e::stack;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_local::capacity::STORAGE_CLASS;
use fedstate_local::{member_name, member_vip};
use fedstate_rs_sim::{Simulator, bridge, world};
use k8s_openapi::api::core::v1::{PersistentVolume, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "fedstate-e2e-restarts";
const NAME: &str = "restarts";
/// How long a change may take to converge, kills and restarts included.
const CONVERGE: Duration = Duration::from_secs(300);
/// How long the image change may take: five restarts one after another across three clusters
/// (each member back as a caught-up SECONDARY before the next), 200–250 s here with two kills.
const ROLL: Duration = Duration::from_secs(600);
/// The image the set starts with and the one it is rolled to (a patch release: the simulated
/// mongod's version follows the tag, and 7.0 → 7.0.14 needs no FCV step).
const OLD_IMAGE: &str = "mongo:7.0";
const NEW_IMAGE: &str = "mongo:7.0.14";
/// The base seed under `CI=true`.
const CI_SEED: u64 = 20_261_201;
/// Kills per change.
const KILLS: usize = 2;

fn main() -> std::process::ExitCode {
    Suite::new("restarts", |_, _| Box::pin(async {}))
        .scenarios(scenarios![
            killed_at_random_points_of_a_scale_and_a_rollout_everything_converges
        ])
        .run()
}

/// One kill: which component, when after the change starts, and for how long it stays down.
#[derive(Debug)]
struct Kill {
    component: String,
    after: Duration,
    down: Duration,
}

fn kills(seed: u64, components: &[String]) -> Vec<Kill> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out: Vec<Kill> = (0..KILLS)
        .map(|_| Kill {
            component: components[rng.random_range(0..components.len())].clone(),
            after: Duration::from_millis(rng.random_range(0..8_000)),
            down: Duration::from_millis(rng.random_range(200..3_000)),
        })
        .collect();
    out.sort_by_key(|k| k.after);
    out
}

/// Runs the kills of one change (from its start), each restarting the component it killed.
async fn chaos(ours: &tokio::sync::Mutex<Ours>, plan: &[Kill]) {
    let start = Instant::now();
    for k in plan {
        tokio::time::sleep_until((start + k.after).into()).await;
        ours.lock().await.kill(&k.component);
        tokio::time::sleep(k.down).await;
        ours.lock().await.restart(&k.component);
    }
}

async fn killed_at_random_points_of_a_scale_and_a_rollout_everything_converges(env: &Env<()>) {
    let fed = &env.fed;
    let karmada = env.karmada.clone();
    stack::install_crds(&karmada, "karmada").await;
    stack::install_interpreter(&karmada).await;
    stack::ensure_namespace(&karmada, NS).await;
    let mut members = Vec::new();
    for i in 1..=fed.members() {
        let client = fed.member_client(i).await.expect("member client");
        stack::install_crds(&client, &member_name(i)).await;
        stack::ensure_namespace(&client, NS).await;
        // Volumes for every member a cluster may hold, and for the rolled ones' claims.
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        for n in 0..6 {
            let name = format!("{}-restarts-pv-{n}", member_name(i));
            let pv: PersistentVolume = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Retain", "storageClassName": STORAGE_CLASS,
                         "hostPath": {"path": format!("/tmp/fedstate-restarts/{name}")}},
            }))
            .expect("volume");
            match pvs.create(&PostParams::default(), &pv).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => panic!("create volume {name}: {e}"),
            }
        }
        members.push(bridge::MemberCluster {
            name: member_name(i),
            vip: member_vip(i).to_string(),
            client,
        });
    }
    let stop = CancellationToken::new();
    let _stop_on_return = stop.clone().drop_guard();
    let sim = Arc::new(Simulator::start(
        world::Settings {
            sync_ticks: 2,
            stepdown_ticks: 20,
        },
        Duration::from_millis(250),
    ));
    let shell = stack::pod_shell();
    let pods_dir = shell.dir.clone();
    tokio::spawn(bridge::run_with_shell(
        sim.clone(),
        members,
        Some(shell),
        stop.child_token(),
    ));
    let mut ours = Ours::start(fed);
    if let Err(e) = ours.ready(Duration::from_secs(120)).await {
        panic!("our processes ready: {e}");
    }
    let components = ours.names();
    let ours = tokio::sync::Mutex::new(ours);

    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NS);
    let obj: MultiCloudMongoDB = serde_json::from_value(json!({
        "apiVersion": fedstate_api::API_VERSION, "kind": "MultiCloudMongoDB",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "replicaset": 3,
            "export": {"enable": false},
            "resource": {"requests": {"cpu": "2m", "memory": "2Mi"}, "limits": {"cpu": "2m", "memory": "2Mi"}},
            "storage": {"storageClass": STORAGE_CLASS, "storageSize": "1Gi"},
            "imageSetting": {"image": OLD_IMAGE, "imagePullPolicy": "IfNotPresent"},
            "scheduler": {"schedulerName": names::DEFAULT_SCHEDULER_NAME, "schedulerMode": "Uniform"},
        }
    }))
    .expect("object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create the MultiCloudMongoDB");
    eprintln!("created {NS}/{NAME} with 3 members");
    converged(&api, &sim, fed, 3, OLD_IMAGE, CONVERGE).await;

    let monitor = Monitor::start(sim.clone(), NAME, 1);
    let base_seed: u64 = std::env::var("FEDSTATE_E2E_RESTART_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .or_else(|| (std::env::var("CI").as_deref() == Ok("true")).then_some(CI_SEED))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs())
        });
    eprintln!("seed {base_seed} (FEDSTATE_E2E_RESTART_SEED={base_seed} replays it)");
    let changes: [(&str, Value, i32, &str, Duration); 3] = [
        (
            "scale 3 → 5",
            json!({"spec": {"replicaset": 5}}),
            5,
            OLD_IMAGE,
            CONVERGE,
        ),
        (
            "image on 5 members (2/2/1)",
            json!({"spec": {"imageSetting": {"image": NEW_IMAGE}}}),
            5,
            NEW_IMAGE,
            ROLL,
        ),
        (
            "scale 5 → 3",
            json!({"spec": {"replicaset": 3}}),
            3,
            NEW_IMAGE,
            CONVERGE,
        ),
    ];
    for (n, (what, patch, target, image, bound)) in changes.into_iter().enumerate() {
        let seed = base_seed.wrapping_add(n as u64);
        let plan = kills(seed, &components);
        eprintln!("{what}: seed {seed}, kills {plan:?}");
        let started = Instant::now();
        api.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        tokio::join!(
            chaos(&ours, &plan),
            converged(&api, &sim, fed, target, image, bound)
        );
        eprintln!(
            "  {what}: converged in {:.1}s with the kills done",
            started.elapsed().as_secs_f32()
        );
        // Converged before a kill landed would leave that kill untested: look again after it.
        converged(&api, &sim, fed, target, image, bound).await;
    }
    let w = monitor.finish().await;
    stop.cancel();
    let exited = ours.lock().await.exited();
    assert!(exited.is_empty(), "exited on their own: {exited:?}");
    eprintln!("  invariants: {w}");
    assert!(w.ticks > 0, "the monitor saw no tick");
    assert_eq!(w.violations, 0, "violations: {:?}", w.described);
    drop(ours);
    let _ = std::fs::remove_dir_all(&pods_dir);
}

/// Waits until the object is placed with `members`, `Health` at its generation with every member
/// running, the set has exactly `members` members (each PRIMARY or SECONDARY, one PRIMARY), and
/// every member pod runs `want_image` as its mongod.
async fn converged(
    api: &Api<MultiCloudMongoDB>,
    sim: &Simulator,
    fed: &fedstate_local::Federation,
    members: i32,
    want_image: &str,
    bound: Duration,
) {
    let mut clients = Vec::new();
    for i in 1..=fed.members() {
        clients.push(fed.member_client(i).await.expect("member client"));
    }
    let clients = &clients;
    eventually(
        &format!("{members} members, Health, every pod running {want_image}"),
        bound,
        || async move {
            let obj = api.get(NAME).await.map_err(|e| e.to_string())?;
            // What the manager says about the rollout, for a failure's message.
            let rolling = obj
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "RollingUpdate"))
                .map_or_else(String::new, |c| {
                    format!(
                        "; RollingUpdate {:?} {}: {}",
                        c.status,
                        c.reason.as_deref().unwrap_or(""),
                        c.message.as_deref().unwrap_or("")
                    )
                });
            mcm_ready(&obj, members).map_err(|e| format!("{e}{rolling}"))?;
            {
                let w = sim.world();
                let set = w.set(NAME).ok_or("no set yet")?;
                let hosts: Vec<(&str, Option<i32>, bool)> = set
                    .config
                    .members
                    .iter()
                    .map(|m| (m.host.as_str(), set.state(&m.host), w.is_up(&m.host)))
                    .collect();
                let primaries = hosts.iter().filter(|h| h.1 == Some(1)).count();
                let healthy = hosts.iter().all(|h| h.2 && matches!(h.1, Some(1 | 2)));
                if hosts.len() != members as usize || primaries != 1 || !healthy {
                    return Err(format!("set members (host, state, up): {hosts:?}"));
                }
            }
            let mut running = 0;
            for c in clients {
                let pods: Api<Pod> = Api::namespaced(c.clone(), NS);
                let lp = ListParams::default().labels(&format!("{}={NAME}", names::LABEL_INSTANCE));
                for p in pods.list(&lp).await.map_err(|e| e.to_string())? {
                    let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                    let image = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|c| c.name == "mongod"))
                        .and_then(|c| c.image.clone());
                    if p.metadata.deletion_timestamp.is_some()
                        || phase.as_deref() != Some("Running")
                        || image.as_deref() != Some(want_image)
                    {
                        // What that cluster's agent says about its rolling restart.
                        let agent = Api::<MongoDB>::namespaced(c.clone(), NS)
                            .get_opt(NAME)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|m| m.status)
                            .and_then(|s| {
                                s.conditions
                                    .into_iter()
                                    .find(|c| c.type_ == "RollingUpdate")
                            })
                            .map_or_else(String::new, |c| {
                                format!(
                                    "; its agent: RollingUpdate {:?} {}: {}",
                                    c.status,
                                    c.reason.unwrap_or_default(),
                                    c.message.unwrap_or_default()
                                )
                            });
                        return Err(format!(
                            "pod {:?}: phase {phase:?}, mongod image {image:?}{agent}{rolling}",
                            p.metadata.name
                        ));
                    }
                    running += 1;
                }
            }
            if running == members {
                Ok(())
            } else {
                Err(format!("{running} member pods running"))
            }
        },
    )
    .await;
}
