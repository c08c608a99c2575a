//! End-to-end tests of `fedstate-mongo-agent` on the local federation: real member apiservers,
//! kube-controller-manager (StatefulSets, PVC binding), kwok running the pods, and the replica-set
//! simulator serving every Running member pod at `<cluster VIP>:<nodePort>`
//! (`docs/local-federation.md#the-replica-set-simulator`). One agent per member cluster runs
//! in-process (its real controller against the member apiserver). Scenarios:
//!
//! 1. The seed's single-cluster sample as written (mongo:3.6) gets a condition naming `spec.image`
//!    and no StatefulSet; with a supported image it becomes a working one-member set (PRIMARY).
//! 2. Scaling that object to 3 members adds them one voter at a time; no forced reconfig.
//! 3. A new clusterMonitor password in the credentials Secret reaches mongod (`updateUser`) and
//!    every member's pod is recreated (the exporter reads its password only at start), the set
//!    keeping one PRIMARY and two SECONDARY.
//! 4. The forced-reconfig opt-in is used once: two of the three members stop answering (their
//!    pods stay Running), the agent offers `QuorumLost` with the opt-in command and forces
//!    nothing; the user runs the command, the agent forces once and records it in
//!    `status.forcedReconfig` and a Warning event; the members come back and rejoin. A second
//!    loss at the same generation, the annotation still set, is offered again and never forced.
//! 5. No password of the run appears in any process log, the agents' log, a status or an event.
//!
//! Runs only with `FEDSTATE_E2E=1` (see `fedstate_e2e::harness`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::sync::Arc;
use std::time::Duration;

use fedstate_api::MongoDB;
use fedstate_api::v1alpha1::MongoState;
use fedstate_e2e::harness::{self, eventually};
use fedstate_e2e::scenarios;
use fedstate_e2e::stack;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_local::{Federation, member_name, member_vip};
use fedstate_mongo_agent::resources::{self};
use fedstate_mongo_agent::status;
use fedstate_rs_sim::bridge::{self};
use fedstate_rs_sim::{Simulator, world};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "fedstate-e2e-agent";
const NAME: &str = "mongodb-sample";
const WAIT: Duration = Duration::from_secs(180);
/// A rolling restart of all three members.
const ROLL_WAIT: Duration = Duration::from_secs(360);
const SEED: &str = include_str!("../../deploy/samples/seed/mongodb-single-cluster.yaml");

fn main() -> std::process::ExitCode {
    // The agents' own log, checked for passwords at the end (the harness's subscriber is then a
    // no-op: only one global subscriber can exist).
    let agent_log = agent_log();
    let file = std::fs::File::create(&agent_log).expect("agent log file");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "info,fedstate_mongo_agent=debug,fedstate_rs_sim=debug",
        ))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
    let code = Suite::new("agent_replset", |_, _| Box::pin(async {}))
        .scenarios(scenarios![single_cluster_set_from_seed_to_scale])
        .run();
    if code == std::process::ExitCode::SUCCESS {
        let _ = std::fs::remove_file(&agent_log);
    } else {
        // What the agents and the simulator's bridge did, for the failure above.
        eprintln!("agents' and bridge's log kept: {}", agent_log.display());
    }
    code
}

/// The agents' log file of this test process.
fn agent_log() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fedstate-e2e-agent-{}.log", std::process::id()))
}

async fn single_cluster_set_from_seed_to_scale(env: &Env<()>) {
    let fed = &env.fed;
    let agent_log = agent_log();
    let stop = CancellationToken::new();
    let sim = Arc::new(Simulator::start(
        world::Settings {
            sync_ticks: 2,
            stepdown_ticks: 20,
        },
        Duration::from_millis(250),
    ));
    let mut clusters = Vec::new();
    for i in 1..=fed.members() {
        let client = fed.member_client(i).await.expect("member client");
        stack::install_crds(&client, &member_name(i)).await;
        stack::ensure_namespace(&client, NS).await;
        clusters.push(stack::start_agent(client, i, &stop));
    }
    let shell = fedstate_e2e::stack::pod_shell();
    let pods_dir = shell.dir.clone();
    tokio::spawn(bridge::run_with_shell(
        sim.clone(),
        clusters,
        Some(shell),
        stop.child_token(),
    ));
    let member1 = fed.member_client(1).await.expect("member client");

    eprintln!("scenario 1: the seed single-cluster sample becomes a working set");
    single_cluster_sample_becomes_a_working_set(&member1, &sim).await;
    eprintln!("scenario 2: scale the single-cluster set 1 -> 3");
    single_cluster_scales_one_voter_at_a_time(&member1, &sim).await;
    eprintln!("scenario 3: a rotated monitor password rolls the members' exporters");
    a_rotated_monitor_password_recreates_every_member(&member1).await;
    eprintln!("scenario 4: the forced-reconfig opt-in is used once");
    a_force_opt_in_is_used_once(&member1, &sim).await;
    eprintln!("scenario 5: a status computed from a stale view is refused by the apiserver");
    a_stale_status_write_is_refused(&member1).await;
    eprintln!("scenario 6: no password in any log, status or event");
    stop.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&pods_dir);
    no_password_anywhere(fed, &member1, &agent_log).await;
}

/// The agent's status write carries the resourceVersion it was computed from, and the real
/// apiserver refuses it (409) once the object changed: a reconcile working from a lagging watch
/// cache cannot replace newer conditions with older ones (`TeardownMarked`, whose loss kept a
/// deleted object's finalizer for ever in the install suite; the scenario test
/// `a_status_from_a_stale_view_does_not_erase_the_teardown_record` shows that path).
async fn a_stale_status_write_is_refused(member: &kube::Client) {
    let api: Api<MongoDB> = Api::namespaced(member.clone(), NS);
    let stale = api.get(NAME).await.expect("the sample");
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"fedstate-e2e/touched": "stale-write"}}}),
        ),
    )
    .await
    .expect("another writer changes the object");
    let ctx = fedstate_mongo_agent::controller::Context::new(
        member.clone(),
        fedstate_mongo_agent::controller::Settings {
            addressing: resources::MemberAddressing::NodePort {
                vip: member_vip(1).to_string(),
            },
            cluster_name: None,
            namespace: None,
            mongo_timeout: Duration::from_secs(2),
        },
    );
    let mut from_stale = stale.status.clone().unwrap_or_default();
    fedstate_api::condition::set_condition(
        &mut from_stale.conditions,
        fedstate_api::condition::Condition::new(
            "E2eStaleWrite",
            fedstate_api::condition::ConditionStatus::True,
            "Stale",
            "written from a stale view",
            None,
        ),
        jiff::Timestamp::now(),
    );
    let e = fedstate_mongo_agent::apply::write_status(&ctx, &stale, from_stale)
        .await
        .expect_err("a status computed from the older object is refused");
    assert!(
        fedstate_runtime::backoff::ReconcileError::is_conflict(&e),
        "a 409 Conflict, retried after a second: {e}"
    );
    let now = api.get(NAME).await.expect("the sample");
    assert!(
        condition(&now, "E2eStaleWrite").is_none(),
        "the refused status is not there"
    );
}

fn condition(m: &MongoDB, t: &str) -> Option<fedstate_api::Condition> {
    m.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .cloned()
}

async fn single_cluster_sample_becomes_a_working_set(member: &kube::Client, sim: &Simulator) {
    let api: Api<MongoDB> = Api::namespaced(member.clone(), NS);
    let mut seed: Value = serde_yaml::from_str(SEED).expect("seed");
    seed["metadata"]["namespace"] = json!(NS);
    // The test bed's members have two nodes and scenario 2 runs three members in one cluster, so
    // the set asks only to prefer distinct nodes (by default data members require them), as a
    // user with a small cluster would.
    seed["spec"]["podSpec"]["affinity"] = json!({"podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": fedstate_api::names::managed_labels(NAME)},
                "topologyKey": "kubernetes.io/hostname",
            },
        }],
    }});
    let obj: MongoDB = serde_json::from_value(seed).expect("seed parses");
    api.patch(
        NAME,
        &PatchParams::apply(harness::FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply the seed sample");
    eventually(
        "a condition naming spec.image and the supported range",
        WAIT,
        || async {
            let m = api.get(NAME).await.map_err(|e| e.to_string())?;
            let c = condition(&m, "ServerReady").ok_or("no ServerReady yet")?;
            let msg = c.message.unwrap_or_default();
            if m.status.as_ref().and_then(|s| s.state) == Some(MongoState::Error)
                && msg.contains("spec.image")
                && msg.contains("4.4 to 8.0")
            {
                Ok(())
            } else {
                Err(msg)
            }
        },
    )
    .await;
    let sts: Api<StatefulSet> = Api::namespaced(member.clone(), NS);
    assert!(
        sts.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "no StatefulSet for an unsupported image"
    );

    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": "mongo:7.0"}})),
    )
    .await
    .expect("supported image");
    let m = eventually("the sample Running with one PRIMARY", WAIT, || async {
        let m = api.get(NAME).await.map_err(|e| e.to_string())?;
        let st = m.status.clone().unwrap_or_default();
        let primaries = st
            .replset
            .iter()
            .filter(|r| r.state_str == "PRIMARY")
            .count();
        if st.state == Some(MongoState::Running) && primaries == 1 && st.replset.len() == 1 {
            Ok(m)
        } else {
            Err(format!(
                "state {:?}, replset {:?}, conditions {:?}",
                st.state, st.replset, st.conditions
            ))
        }
    })
    .await;
    let host = &m.status.as_ref().expect("status").replset[0].name;
    assert!(host.starts_with(&format!("{}:", member_vip(1))), "{host}");
    let w = sim.world();
    let set = w.set(NAME).expect("the simulator holds the set");
    assert_eq!(set.primary.as_deref(), Some(host.as_str()));
}

async fn single_cluster_scales_one_voter_at_a_time(member: &kube::Client, sim: &Simulator) {
    let api: Api<MongoDB> = Api::namespaced(member.clone(), NS);
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"members": 3}})),
    )
    .await
    .expect("scale to 3");
    eventually(
        "3 voting members, one PRIMARY and two SECONDARY",
        WAIT,
        || async {
            let m = api.get(NAME).await.map_err(|e| e.to_string())?;
            let st = m.status.clone().unwrap_or_default();
            let by_state = |s: &str| st.replset.iter().filter(|r| r.state_str == s).count();
            let voters = sim
                .world()
                .set(NAME)
                .map(|s| s.config.members.iter().filter(|m| m.votes > 0).count())
                .unwrap_or(0);
            if voters == 3
                && by_state("PRIMARY") == 1
                && by_state("SECONDARY") == 2
                && st.state == Some(MongoState::Running)
            {
                Ok(())
            } else {
                Err(format!(
                    "voters {voters}, replset {:?}, state {:?}",
                    st.replset, st.state
                ))
            }
        },
    )
    .await;
    // The simulator refuses any reconfig changing two voters, so getting here proves the agent
    // went one voter at a time; and nothing was forced.
    assert_eq!(sim.world().set(NAME).expect("set").forced_reconfigs, 0);
}

/// The user puts a new `clusterMonitorPassword` into the credentials Secret: the agent sets it
/// in mongod and rolls every member (one at a time, through the StatefulSets' new revision) so
/// the exporters start with it; the set ends with one PRIMARY and two SECONDARY.
async fn a_rotated_monitor_password_recreates_every_member(member: &kube::Client) {
    use fedstate_mongo_agent::replset::{Login, Password, ReplSetAdmin};
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(member.clone(), NS);
    let uids = || async {
        let list = pods
            .list(
                &ListParams::default()
                    .labels(&format!("{}={NAME}", fedstate_api::names::LABEL_INSTANCE)),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(
            list.items
                .into_iter()
                .map(|p| (p.metadata.name.unwrap_or_default(), p.metadata.uid))
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
    };
    let before = uids().await.expect("pods");
    assert_eq!(before.len(), 3, "{before:?}");
    // 24 alphanumeric characters: counted by the password search of scenario 4.
    let rotated = "RotatedMonitor0123456789";
    Api::<Secret>::namespaced(member.clone(), NS)
        .patch(
            &resources::credentials_secret_name(NAME),
            &PatchParams::default(),
            &Patch::Merge(
                json!({"stringData": {resources::CLUSTER_MONITOR_PASSWORD_KEY: rotated}}),
            ),
        )
        .await
        .expect("rotate the monitor password");
    let monitor = Login {
        user: resources::CLUSTER_MONITOR_USER.to_owned(),
        password: Password::new(rotated),
    };
    let probe = ReplSetAdmin::new(None, Duration::from_secs(5));
    let api: Api<MongoDB> = Api::namespaced(member.clone(), NS);
    eventually(
        "the new monitor password logs in, every member recreated, 1 PRIMARY 2 SECONDARY",
        // Three restarts in turn, each waiting until the last one caught up: 121 s on a quiet
        // machine, over 180 s once under CI's load.
        ROLL_WAIT,
        || async {
            let m = api.get(NAME).await.map_err(|e| e.to_string())?;
            let st = m.status.clone().unwrap_or_default();
            let by_state = |s: &str| st.replset.iter().filter(|r| r.state_str == s).count();
            let primary = st
                .replset
                .iter()
                .find(|r| r.state_str == "PRIMARY")
                .ok_or("no PRIMARY")?;
            let logs_in = probe
                .can_login(&primary.name, &monitor)
                .await
                .map_err(|e| e.to_string())?;
            let now = uids().await?;
            let recreated = before
                .iter()
                .filter(|(name, uid)| now.get(*name).is_some_and(|u| u.is_some() && u != *uid))
                .count();
            if logs_in
                && recreated == 3
                && by_state("PRIMARY") == 1
                && by_state("SECONDARY") == 2
                && st.state == Some(MongoState::Running)
            {
                Ok(())
            } else {
                Err(format!(
                    "new password logs in: {logs_in}, recreated {recreated}/3, replset {:?}, state {:?}",
                    st.replset, st.state
                ))
            }
        },
    )
    .await;
}

/// The value of the opt-in annotation that a true `QuorumLost` condition's command sets
/// (`<generation>/<configVersion>`), as a user would copy it.
fn offered_opt_in(m: &MongoDB) -> Result<String, String> {
    let c = condition(m, status::QUORUM_LOST)
        .filter(|c| c.is_true())
        .ok_or_else(|| {
            format!(
                "QuorumLost not offered; conditions {:?}",
                m.status.as_ref().map(|s| &s.conditions)
            )
        })?;
    let msg = c.message.unwrap_or_default();
    msg.split(&format!("{}=", status::FORCE_RECONFIG_ANNOTATION))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .ok_or_else(|| format!("no opt-in command in {msg:?}"))
}

/// Issue 15's "force opt-in used once", on a member cluster's apiserver with the agent's real
/// controller. Two members stop answering while their pods stay Running (mongod hung, or its
/// node cut off), so the agent reaches one voter of three. The forced reconfig keeps the
/// reachable member only; the opt-in names the config version that lost its majority, and the
/// reconfig raises it, so the same annotation can never force again.
async fn a_force_opt_in_is_used_once(member: &kube::Client, sim: &Simulator) {
    let api: Api<MongoDB> = Api::namespaced(member.clone(), NS);
    let forced = || sim.world().set(NAME).map_or(0, |s| s.forced_reconfigs);
    let lost: Vec<String> = {
        let w = sim.world();
        let set = w.set(NAME).expect("set");
        let primary = set.primary.clone().expect("a primary");
        set.config
            .members
            .iter()
            .map(|m| m.host.clone())
            .filter(|h| *h != primary)
            .collect()
    };
    assert_eq!(lost.len(), 2, "two secondaries: {lost:?}");
    let answer = |up: bool| {
        let mut w = sim.world();
        for h in &lost {
            w.set_up(h, up);
        }
    };
    let whole = |what: &'static str| {
        let api = api.clone();
        async move {
            eventually(what, WAIT, || async {
                let m = api.get(NAME).await.map_err(|e| e.to_string())?;
                let st = m.status.clone().unwrap_or_default();
                let by_state = |s: &str| st.replset.iter().filter(|r| r.state_str == s).count();
                let voters = sim.world().set(NAME).map_or(0, |s| {
                    s.config.members.iter().filter(|m| m.votes > 0).count()
                });
                if voters == 3 && by_state("PRIMARY") == 1 && by_state("SECONDARY") == 2 {
                    Ok(())
                } else {
                    Err(format!(
                        "voters {voters}, replset {:?}, conditions {:?}",
                        st.replset, st.conditions
                    ))
                }
            })
            .await;
        }
    };
    let mut checked = 0u32;
    let mut violations = Vec::new();

    answer(false);
    let opt_in = eventually(
        "QuorumLost offered with the opt-in command",
        WAIT,
        || async {
            let m = api.get(NAME).await.map_err(|e| e.to_string())?;
            offered_opt_in(&m)
        },
    )
    .await;
    checked += 1;
    if forced() != 0 {
        violations.push(format!("{} forced reconfigs before the opt-in", forced()));
    }
    eprintln!("  offered: {opt_in}");
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {status::FORCE_RECONFIG_ANNOTATION: opt_in}}}),
        ),
    )
    .await
    .expect("the user's opt-in");
    let record = eventually(
        "the forced reconfig recorded in the status",
        WAIT,
        || async {
            let m = api.get(NAME).await.map_err(|e| e.to_string())?;
            let st = m.status.clone().unwrap_or_default();
            st.forced_reconfig.ok_or_else(|| {
                format!(
                    "not forced yet ({} in the simulator); annotation {:?}, generation {:?}, state {:?}, conditions {:?}",
                    forced(),
                    m.annotations().get(status::FORCE_RECONFIG_ANNOTATION),
                    m.metadata.generation,
                    st.state,
                    st.conditions
                )
            })
        },
    )
    .await;
    assert_eq!(record.opt_in, opt_in, "{record:?}");
    assert!(record.version > record.from_version, "{record:?}");
    checked += 1;
    if forced() != 1 {
        violations.push(format!(
            "{} forced reconfigs after the opt-in, 1 expected",
            forced()
        ));
    }
    let events = Api::<Event>::namespaced(member.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events");
    let event = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("ForcedReconfig"))
        .unwrap_or_else(|| panic!("no ForcedReconfig event"));
    assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
    eprintln!("  forced once: {record:?}");

    answer(true);
    whole("the members rejoin: 3 voters, 1 PRIMARY and 2 SECONDARY").await;

    // The second loss, at the same generation, the annotation still set.
    let generation = api.get(NAME).await.expect("object").metadata.generation;
    assert_eq!(
        opt_in.split('/').next(),
        generation.map(|g| g.to_string()).as_deref(),
        "the same generation"
    );
    answer(false);
    let again = eventually("the second loss offered again", WAIT, || async {
        let m = api.get(NAME).await.map_err(|e| e.to_string())?;
        let offered = offered_opt_in(&m)?;
        if offered == opt_in {
            Err(format!("the used opt-in offered again: {offered}"))
        } else {
            Ok(offered)
        }
    })
    .await;
    // The version offered now is far above the forced one: mongod raises a forced config's
    // version by a large random number (manual, `replSetReconfig`, `force`), as the simulator does.
    eprintln!("  offered again: {again}");
    // Over 30 s (the agent's backoff while the loss repeats reaches 16 s): nothing forced.
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        checked += 1;
        let m = api.get(NAME).await.expect("object");
        if forced() != 1 {
            violations.push(format!(
                "{} forced reconfigs after the second loss",
                forced()
            ));
        }
        if m.status.and_then(|s| s.forced_reconfig).as_ref() != Some(&record) {
            violations.push("status.forcedReconfig changed".into());
        }
    }
    eprintln!(
        "  force opt-in used once: invariants: {checked} checks, violations: {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
    answer(true);
    whole("the members answer again: 3 voters, 1 PRIMARY and 2 SECONDARY").await;
}

async fn no_password_anywhere(
    fed: &Federation,
    member: &kube::Client,
    agent_log: &std::path::Path,
) {
    let secrets: Api<Secret> = Api::namespaced(member.clone(), NS);
    let creds = secrets
        .get(&resources::credentials_secret_name(NAME))
        .await
        .expect("credentials Secret");
    let passwords: Vec<String> = creds
        .data
        .unwrap_or_default()
        .values()
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .filter(|p| p.len() >= 12)
        .collect();
    assert_eq!(
        passwords.len(),
        2,
        "generated clusterAdmin and clusterMonitor passwords"
    );
    let mut files = vec![agent_log.to_path_buf()];
    if let Ok(dir) = std::fs::read_dir(fed.logs_dir()) {
        files.extend(dir.flatten().map(|e| e.path()));
    }
    for f in &files {
        let Ok(text) = std::fs::read(f) else { continue };
        let text = String::from_utf8_lossy(&text);
        for p in &passwords {
            assert!(
                !text.contains(p.as_str()),
                "a password appears in {}",
                f.display()
            );
        }
    }
    // The seed's root password ("123456") in no status and no event.
    let m = Api::<MongoDB>::namespaced(member.clone(), NS)
        .get(NAME)
        .await
        .expect("object");
    let status = serde_json::to_string(&m.status).expect("json");
    let events = Api::<Event>::namespaced(member.clone(), NS)
        .list(&ListParams::default())
        .await
        .expect("events");
    let events = serde_json::to_string(&events.items).expect("json");
    for p in passwords.iter().map(String::as_str).chain(["123456"]) {
        assert!(!status.contains(p), "a password in the status");
        assert!(!events.contains(p), "a password in an event");
    }
}
