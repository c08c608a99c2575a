//! End-to-end: a replica set across three member clusters, with the manager (in-process, against
//! the real Karmada apiserver) propagating the members and the host list, one agent per member
//! cluster (in-process), and the replica-set simulator serving the Running member pods. The
//! placement annotation is written by the test, as the scheduler would. Scenarios, in order:
//!
//! 1. Placed 1/1/1, the set is initiated once and reaches one PRIMARY and two SECONDARY.
//! 2. Scaled 3→5 (2/2/1) and back 5→3 (1/1/1), through reconfigs the simulator only accepts
//!    with one voting change each; then moved 1/1/1 → 2/1/0 → 1/1/1: at every tick at least 3
//!    voters are up (a cluster's agent removes its voter only once the replacement elsewhere
//!    votes).
//!    A partition then cuts member3's member and agent off from the rest (MongoDB's network
//!    only): member3's agent never offers a forced reconfig, the majority keeps a primary, and
//!    after the heal the set is whole, nobody twice.
//! 3. `kill-member` of a cluster holding a minority of the voters: the set keeps a primary,
//!    nothing is forced, the surviving objects report `Degraded`.
//! 4. Deleting the object while that cluster is unreachable: the host list is marked for
//!    teardown, but no member object is deleted anywhere until member3's agent has recorded the
//!    mark (when it returns, Karmada would deliver the mark and the deletion in no set order);
//!    the members elsewhere keep running, the finalizer waits and the status names member3 and
//!    says how to go on. Once it is back, the teardown completes in every cluster, member3's
//!    agent releasing its own finalizer, and every PVC is kept.
//!
//! Scaling down (2) deletes the PVC of each member that left the set; every StatefulSet keeps
//! its PVC when deleted (`Retain`).
//!
//! Through scenarios 1–3 the set's invariants are checked at every simulator tick
//! (`fedstate_e2e::invariants`: one set, no forced reconfig, no host twice, at most one voter
//! down, at most one PRIMARY, no majority-committed write lost); the ticks checked and the
//! violations (0) are printed.
//!
//! Runs only with `FEDSTATE_E2E=1` (see `fedstate_e2e::harness`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fedstate_api::{MongoDB, MultiCloudMongoDB, names};
use fedstate_e2e::harness::{self, eventually};
use fedstate_e2e::invariants::Monitor;
use fedstate_e2e::scenarios;
use fedstate_e2e::stack;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_local::capacity::STORAGE_CLASS;
use fedstate_local::{member_name, member_vip};
use fedstate_mongo_agent::resources;
use fedstate_rs_sim::bridge::{self};
use fedstate_rs_sim::{Simulator, world};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "fedstate-e2e-agent-fed";
const NAME: &str = "fed-sample";
const WAIT: Duration = Duration::from_secs(240);
const SEED: &str = include_str!("../../deploy/samples/seed/multicloudmongodb-minimal.yaml");

fn main() -> std::process::ExitCode {
    Suite::new("agent_federated", |_, _| Box::pin(async {}))
        .scenarios(scenarios![three_clusters_form_scale_and_survive_a_loss])
        .run()
}

async fn three_clusters_form_scale_and_survive_a_loss(env: &Env<()>) {
    let fed = &env.fed;
    let karmada = env.karmada.clone();
    let stop = CancellationToken::new();
    let sim = Arc::new(Simulator::start(
        world::Settings {
            sync_ticks: 2,
            stepdown_ticks: 20,
        },
        Duration::from_millis(250),
    ));
    stack::install_crds(&karmada, "karmada").await;
    stack::ensure_namespace(&karmada, NS).await;
    let mut clusters = Vec::new();
    for i in 1..=fed.members() {
        let client = fed.member_client(i).await.expect("member client");
        stack::install_crds(&client, &member_name(i)).await;
        stack::ensure_namespace(&client, NS).await;
        clusters.push(stack::start_agent(client, i, &stop));
    }
    stack::install_interpreter(&karmada).await;
    let shell = fedstate_e2e::stack::pod_shell();
    let pods_dir = shell.dir.clone();
    tokio::spawn(bridge::run_with_shell(
        sim.clone(),
        clusters,
        Some(shell),
        stop.child_token(),
    ));
    {
        let (client, stop) = (karmada.clone(), stop.child_token());
        tokio::spawn(async move {
            let options = fedstate_manager::controller::Options {
                busy_requeue: Duration::from_secs(3),
                idle_requeue: Duration::from_secs(60),
            };
            fedstate_manager::controller::run(client, options, Default::default(), stop).await
        });
    }

    // Checked at every tick through scenarios 1–3 (fedstate_e2e::invariants): one set, no forced
    // reconfig, no host twice, at most one voter down (member3's in scenario 3), at most one
    // PRIMARY, no majority-committed write lost. Scenario 4 deletes every member.
    let monitor = Monitor::start(sim.clone(), NAME, 1);
    eprintln!("scenario 1: three clusters form one set");
    let mut seed: Value = serde_yaml::from_str(SEED).expect("seed");
    seed["metadata"]["name"] = json!(NAME);
    seed["metadata"]["namespace"] = json!(NS);
    seed["spec"]["replicaset"] = json!(3);
    seed["spec"]["imageSetting"]["image"] = json!("mongo:7.0");
    seed["spec"]["storage"]["storageClass"] = json!(STORAGE_CLASS);
    harness::apply_json(
        &karmada,
        &ApiResource::erase::<MultiCloudMongoDB>(&()),
        seed,
    )
    .await;
    place(&karmada, &[1, 1, 1]).await;
    converged(&sim, 3).await;

    eprintln!("scenario 2: scale 3 -> 5 -> 3, one voter at a time");
    scale(&karmada, 5, &[2, 2, 1]).await;
    converged(&sim, 5).await;
    scale(&karmada, 3, &[1, 1, 1]).await;
    converged(&sim, 3).await;

    eprintln!("scenario 2b: moves between clusters, adds before removes across clusters");
    // member3's voter moves to member1 and back: member3's agent may remove its member only
    // once member1's new one votes (the set's voter count after the removal is still 3), so at
    // no tick are fewer than 3 voters up.
    let floor = Monitor::start_with_floor(sim.clone(), NAME, 0, 3);
    place(&karmada, &[2, 1, 0]).await;
    placed(&sim, &[2, 1, 0]).await;
    place(&karmada, &[1, 1, 1]).await;
    placed(&sim, &[1, 1, 1]).await;
    let w = floor.finish().await;
    eprintln!("  invariants through the moves (3 voters up at every tick): {w}");
    assert!(w.ticks > 0, "the monitor saw no tick");
    assert_eq!(w.violations, 0, "violations: {:?}", w.described);

    // Each cluster runs one member, whose StatefulSet keeps its PVC. member3's member left with
    // the move and came back, possibly under another member index (the manager assigns the
    // identity): the PVC of the member that left is kept then (a cluster's object deleted
    // keeps its volumes; only a scale-down within the cluster deletes one), so member3 may
    // hold one more PVC than it runs.
    for i in 1..=fed.members() {
        let member = fed.member_client(i).await.expect("member client");
        eventually(
            &format!(
                "{}: one member, its PVC kept by its StatefulSet",
                member_name(i)
            ),
            WAIT,
            || async {
                let claims = pvcs(&member).await?;
                let sts: Api<StatefulSet> = Api::namespaced(member.clone(), NS);
                let sets = sts
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items;
                let retain = Some("Retain".to_owned());
                let ok = sets.len() == 1
                    && sets.iter().all(|s| {
                        claims.contains(&resources::data_claim_name(&s.name_any()))
                            && s.spec
                                .as_ref()
                                .and_then(|sp| sp.persistent_volume_claim_retention_policy.as_ref())
                                .is_some_and(|p| {
                                    (p.when_deleted.clone(), p.when_scaled.clone())
                                        == (retain.clone(), retain.clone())
                                })
                    })
                    && (claims.len() == 1 || (i == 3 && claims.len() == 2));
                if ok {
                    Ok(())
                } else {
                    let names: Vec<_> = sets.iter().map(|s| s.name_any()).collect();
                    Err(format!("StatefulSets {names:?}, PVCs {claims:?}"))
                }
            },
        )
        .await;
    }

    // Every cluster's member PVCs, for scenario 4 (member3's cannot be listed once it is down).
    let mut kept = Vec::new();
    for i in 1..=fed.members() {
        kept.push(pvcs(&fed.member_client(i).await.expect("member client")).await);
    }

    eprintln!("scenario 2c: a partition isolates member3's member");
    // Its members and its agent's driver clients (by their appName) on one side, member1's and
    // member2's on the other; the apiservers and Karmada stay connected (only MongoDB's network
    // is cut). member3's agent then sees a set whose majority it cannot reach, while Karmada
    // reports member1 and member2 Ready: it must not offer a forced reconfig. The majority
    // keeps (or elects) a primary; after the heal the set is whole again, nobody twice.
    let isolated: Vec<String> = {
        let w = sim.world();
        let prefix = format!("{}:", member_vip(3));
        w.set(NAME)
            .expect("set")
            .config
            .members
            .iter()
            .map(|m| m.host.clone())
            .filter(|h| h.starts_with(&prefix))
            .collect()
    };
    assert_eq!(isolated.len(), 1, "member3 holds one member");
    sim.world()
        .split(
            &isolated,
            &[format!("fedstate-mongo-agent@{}", member_name(3))],
        )
        .expect("cut member3 off");
    let member3 = fed.member_client(3).await.expect("member3");
    let member3_mdbs: Api<MongoDB> = Api::namespaced(member3, NS);
    // Over 60 s (the members' 10 s heartbeat timeout and election timeout several times over),
    // every 2 s: member3's object never says QuorumLost (which would offer the force).
    // And it did see the cut: some condition of its names a member of the other side.
    let others = [format!("{}:", member_vip(1)), format!("{}:", member_vip(2))];
    let mut looked = 0;
    let mut saw_cut = None;
    let mut last = Vec::new();
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let m = member3_mdbs.get(NAME).await.expect("member3's MongoDB");
        let conditions = m.status.map(|s| s.conditions).unwrap_or_default();
        let offered = conditions
            .iter()
            .find(|c| c.type_ == "QuorumLost" && c.is_true());
        assert!(
            offered.is_none(),
            "member3's agent offered a forced reconfig from the minority side: {offered:?}"
        );
        if saw_cut.is_none() {
            saw_cut = conditions
                .iter()
                .find(|c| {
                    c.is_true()
                        && c.message
                            .as_deref()
                            .is_some_and(|m| others.iter().any(|o| m.contains(o.as_str())))
                })
                .map(|c| format!("{}: {}", c.type_, c.message.clone().unwrap_or_default()));
        }
        last = conditions;
        looked += 1;
    }
    let saw_cut = saw_cut.unwrap_or_else(|| {
        panic!(
            "member3's agent never reported the other side unreachable; its conditions: {last:?}"
        )
    });
    eprintln!("  member3's agent saw the cut: {saw_cut}");
    {
        let w = sim.world();
        let set = w.set(NAME).expect("set");
        assert_eq!(set.forced_reconfigs, 0);
        let primary = set
            .primary
            .clone()
            .expect("the majority side has a primary");
        assert!(
            !isolated.contains(&primary),
            "the primary {primary} is on the majority side"
        );
    }
    eprintln!(
        "  member3's status read {looked} times over 60 s: no QuorumLost; the majority kept its primary"
    );
    sim.world().heal();
    placed(&sim, &[1, 1, 1]).await;

    eprintln!("scenario 3: kill-member of a minority cluster");
    fed.kill_member(3).expect("kill member3");
    let survivors = eventually("a primary with member3 unreachable", WAIT, || async {
        let w = sim.world();
        let set = w.set(NAME).ok_or("no set")?;
        let down: Vec<&String> = set
            .config
            .members
            .iter()
            .map(|m| &m.host)
            .filter(|h| !w.is_up(h))
            .collect();
        match (&set.primary, down.len()) {
            (Some(p), 1)
                if p.starts_with(&format!("{}:", member_vip(1)))
                    || p.starts_with(&format!("{}:", member_vip(2))) =>
            {
                Ok(p.clone())
            }
            _ => Err(format!("primary {:?}, down {down:?}", set.primary)),
        }
    })
    .await;
    eprintln!("  primary {survivors}");
    let member1 = fed.member_client(1).await.expect("member1");
    let mdbs: Api<MongoDB> = Api::namespaced(member1, NS);
    eventually("Degraded on member1's object, not Error", WAIT, || async {
        let m = mdbs.get(NAME).await.map_err(|e| e.to_string())?;
        let st = m.status.unwrap_or_default();
        // Degraded because of member3's member, not for anything else.
        let degraded = st.conditions.iter().any(|c| {
            c.type_ == "Degraded"
                && c.is_true()
                && c.message
                    .as_deref()
                    .is_some_and(|m| m.contains(&format!("{}:", member_vip(3))))
        });
        if degraded && st.state != Some(fedstate_api::v1alpha1::MongoState::Error) {
            Ok(())
        } else {
            Err(format!(
                "state {:?}, conditions {:?}",
                st.state, st.conditions
            ))
        }
    })
    .await;
    assert_eq!(sim.world().set(NAME).expect("set").forced_reconfigs, 0);
    let w = monitor.finish().await;
    eprintln!("  invariants through scenarios 1-3: {w}");
    assert!(w.ticks > 0, "the monitor saw no tick");
    assert_eq!(w.violations, 0, "violations: {:?}", w.described);

    eprintln!("scenario 4: delete the object while member3 is unreachable");
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NS);
    api.delete(NAME, &Default::default()).await.expect("delete");
    let waiting = eventually(
        "the finalizer waits, the status names member3",
        Duration::from_secs(180),
        || async {
            let o = api.get(NAME).await.map_err(|e| e.to_string())?;
            let st = o.status.unwrap_or_default();
            let c = st
                .conditions
                .iter()
                .find(|c| c.type_ == "Deleting")
                .ok_or("no Deleting condition")?;
            let msg = c.message.clone().unwrap_or_default();
            if o.metadata.finalizers.unwrap_or_default().is_empty() {
                Err("finalizer released".into())
            } else if c.reason.as_deref() == Some("WaitingForUnreachableClusters")
                && msg.contains("member3")
                && msg.contains("TeardownMarked")
            {
                Ok(msg)
            } else {
                Err(format!("{c:?}"))
            }
        },
    )
    .await;
    eprintln!("  Deleting: {waiting}");
    // Nothing was deleted meanwhile: the members in member1 and member2 still run, with their
    // PVCs, and the set still has its primary.
    for i in 1..=2 {
        let member = fed.member_client(i).await.expect("member client");
        let mdbs: Api<MongoDB> = Api::namespaced(member.clone(), NS);
        let m = mdbs.get(NAME).await.expect("member object");
        assert!(
            m.metadata.deletion_timestamp.is_none(),
            "{}'s MongoDB deleted while member3's agent had not seen the teardown mark",
            member_name(i)
        );
        assert_eq!(pvcs(&member).await.as_ref(), kept[i as usize - 1].as_ref());
    }
    assert!(
        sim.world().set(NAME).is_some_and(|s| s.primary.is_some()),
        "the set keeps its primary while the deletion waits"
    );
    fed.restore_member(3).await.expect("restore member3");
    eventually(
        "the object is gone once member3 is back",
        Duration::from_secs(300),
        || async {
            match api.get_opt(NAME).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(o) => Err(format!("still there: {:?}", o.status.map(|s| s.conditions))),
            }
        },
    )
    .await;
    // Every cluster's agent tears its members down and releases its own finalizer (member3's
    // too: it recorded the mark before its object was deleted); the data is kept everywhere.
    for i in 1..=fed.members() {
        let member = fed.member_client(i).await.expect("member client");
        let mdbs: Api<MongoDB> = Api::namespaced(member.clone(), NS);
        eventually(
            &format!("{}: MongoDB torn down, PVC kept", member_name(i)),
            Duration::from_secs(180),
            || async {
                if let Some(m) = mdbs.get_opt(NAME).await.map_err(|e| e.to_string())? {
                    return Err(format!(
                        "MongoDB still there, finalizers {:?}, conditions {:?}",
                        m.finalizers(),
                        m.status.as_ref().map(|s| &s.conditions)
                    ));
                }
                let claims = pvcs(&member).await?;
                if Ok(&claims) == kept[i as usize - 1].as_ref() {
                    Ok(())
                } else {
                    Err(format!(
                        "PVCs {claims:?}, before {:?}",
                        kept[i as usize - 1]
                    ))
                }
            },
        )
        .await;
    }

    stop.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&pods_dir);
}

/// The names of the object's member PVCs in one cluster.
async fn pvcs(member: &kube::Client) -> Result<Vec<String>, String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(member.clone(), NS);
    let prefix = format!("data-{NAME}-mongodb-");
    Ok(api
        .list(&Default::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.starts_with(&prefix))
        .collect())
}

/// What the scheduler would do: the placement for the object's current generation.
async fn place(karmada: &kube::Client, per_cluster: &[i32]) {
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NS);
    let obj = api.get(NAME).await.expect("get object");
    let generation = obj.metadata.generation.expect("generation");
    let clusters: Vec<Value> = per_cluster
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"cluster": member_name(i as u32 + 1), "replicaset": n}))
        .collect();
    let plan = json!({"ClusterWithReplicaset": clusters, "generation": generation}).to_string();
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {names::SCHEDULER_RESULT_ANNOTATION: plan}}}),
        ),
    )
    .await
    .expect("write schedulerResult");
}

async fn scale(karmada: &kube::Client, replicaset: i32, per_cluster: &[i32]) {
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NS);
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicaset": replicaset}})),
    )
    .await
    .expect("scale");
    place(karmada, per_cluster).await;
}

/// The set converged ([`converged`]) with `per_cluster[i]` voting members in member `i + 1`
/// (told by the members' addresses: each cluster's VIP).
async fn placed(sim: &Simulator, per_cluster: &[usize]) {
    let n = per_cluster.iter().sum();
    converged(sim, n).await;
    eventually(
        &format!("voting members per cluster {per_cluster:?}"),
        WAIT,
        || async {
            let w = sim.world();
            let set = w.set(NAME).ok_or("no set")?;
            let counts: Vec<usize> = (1..=per_cluster.len() as u32)
                .map(|i| {
                    let prefix = format!("{}:", member_vip(i));
                    set.config
                        .members
                        .iter()
                        .filter(|m| m.votes > 0 && m.host.starts_with(&prefix))
                        .count()
                })
                .collect();
            if counts == per_cluster && set.config.members.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "per cluster {counts:?}, members {}",
                    set.config.members.len()
                ))
            }
        },
    )
    .await;
    converged(sim, n).await;
}

/// One set holding `n` voting members, all up: one PRIMARY, the rest SECONDARY, nothing forced.
async fn converged(sim: &Simulator, n: usize) {
    eventually(
        &format!("{n} voting members, one PRIMARY, the rest SECONDARY"),
        WAIT,
        || async {
            let w = sim.world();
            let set = w.set(NAME).ok_or("no set yet")?;
            let voters: BTreeSet<&str> = set
                .config
                .members
                .iter()
                .filter(|m| m.votes > 0)
                .map(|m| m.host.as_str())
                .collect();
            let all_up = set.config.members.iter().all(|m| w.is_up(&m.host));
            let secondaries = set
                .config
                .members
                .iter()
                .filter(|m| set.state(&m.host) == Some(world::SECONDARY))
                .count();
            if voters.len() == n
                && set.config.members.len() == n
                && all_up
                && set.primary.is_some()
                && secondaries == n - 1
                && set.forced_reconfigs == 0
            {
                Ok(())
            } else {
                Err(format!(
                    "members {:?}, primary {:?}",
                    set.config
                        .members
                        .iter()
                        .map(|m| (&m.host, m.votes))
                        .collect::<Vec<_>>(),
                    set.primary
                ))
            }
        },
    )
    .await;
}
