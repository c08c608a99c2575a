//! The agent's replica-set code (adapter + planner) through the real driver against the
//! replica-set simulator: initiate once, scale 3→5→3 one voter per reconfig, users and rotation,
//! quorum loss without automatic force.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use fedstate_api::hostconf::HostEntry;
use fedstate_mongo_agent::converge::{self, Outcome, SetGoal, Users};
use fedstate_mongo_agent::planner::{Desired, ForceOptIn};
use fedstate_mongo_agent::replset::{Login, Password, ReplSetAdmin};
use fedstate_rs_sim::{Settings, Simulator};

fn manual_sim() -> Simulator {
    Simulator::start(
        Settings {
            sync_ticks: 1,
            stepdown_ticks: 3,
        },
        Duration::from_secs(3600),
    )
}

fn entries(hosts: &[String], cluster_of: impl Fn(usize) -> &'static str) -> Vec<HostEntry> {
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| HostEntry {
            host: h.clone(),
            member_index: i as i32,
            votes: 1,
            priority: 1,
            arbiter_only: false,
            cluster: cluster_of(i).into(),
        })
        .collect()
}

fn goal(desired: Vec<HostEntry>, own: &[String], rs_init: bool) -> SetGoal {
    let own: BTreeSet<String> = own.iter().cloned().collect();
    SetGoal {
        set_name: "rs".into(),
        rs_init,
        desired: Desired {
            hosts: desired,
            ready: own.clone(),
            own,
        },
        force: ForceOptIn(false),
    }
}

fn voters(sim: &Simulator) -> BTreeSet<String> {
    sim.world()
        .set("rs")
        .map(|s| {
            s.config
                .members
                .iter()
                .filter(|m| m.votes > 0)
                .map(|m| m.host.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Run agents round-robin until each says Done, ticking the simulator between rounds. Checks
/// after every step that the set's voters changed by at most one.
async fn converge_all(
    sim: &Simulator,
    agents: &[(&ReplSetAdmin, SetGoal)],
    known: &BTreeSet<String>,
) -> Vec<Outcome> {
    let mut log = Vec::new();
    let mut before = voters(sim);
    for _round in 0..60 {
        let mut all_done = true;
        for (admin, goal) in agents {
            let (outcome, _) = converge::step(admin, goal, known).await.unwrap();
            let after = voters(sim);
            assert!(
                before.symmetric_difference(&after).count() <= 1,
                "more than one voting change in one step: {before:?} -> {after:?} ({outcome:?})"
            );
            before = after;
            if outcome != Outcome::Done {
                all_done = false;
            }
            log.push(outcome);
        }
        if all_done {
            return log;
        }
        sim.world().tick();
    }
    panic!("no convergence: {log:?}");
}

fn admin() -> ReplSetAdmin {
    ReplSetAdmin::new(None, Duration::from_secs(2))
}

fn states(sim: &Simulator) -> (usize, usize) {
    let w = sim.world();
    let set = w.set("rs").unwrap();
    let primaries = usize::from(set.primary.is_some());
    (primaries, set.config.members.len())
}

#[tokio::test]
async fn single_cluster_initiates_once_and_scales_three_five_three() {
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..5 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let admin = admin();
    let known = BTreeSet::new();
    let three = goal(entries(&hosts[..3], |_| "a"), &hosts, true);
    let log = converge_all(&sim, &[(&admin, three.clone())], &known).await;
    assert_eq!(
        log.iter()
            .filter(|o| matches!(o, Outcome::Initiated { .. }))
            .count(),
        1,
        "{log:?}"
    );
    assert_eq!(voters(&sim).len(), 3);
    assert_eq!(states(&sim), (1, 3));

    // Scale up to 5: each new member joins non-voting, then is promoted on its own reconfig.
    let five = goal(entries(&hosts, |_| "a"), &hosts, true);
    let v_before = sim.world().set("rs").unwrap().config.version;
    let log = converge_all(&sim, &[(&admin, five)], &known).await;
    assert_eq!(voters(&sim).len(), 5);
    let v_after = sim.world().set("rs").unwrap().config.version;
    assert!(
        v_after - v_before >= 3,
        "one add batch and two promotions: {log:?}"
    );

    // Scale down to members 2..5: the primary (member 0) is stepped down before it is removed.
    let down = goal(entries(&hosts[2..], |_| "a"), &hosts, true);
    let log = converge_all(&sim, &[(&admin, down)], &known).await;
    assert!(
        log.iter().any(|o| matches!(o, Outcome::SteppedDown { .. })),
        "{log:?}"
    );
    let v: BTreeSet<String> = hosts[2..].iter().cloned().collect();
    assert_eq!(voters(&sim), v);
    let w = sim.world();
    let set = w.set("rs").unwrap();
    assert!(hosts[2..].contains(set.primary.as_ref().unwrap()));
    assert_eq!(set.forced_reconfigs, 0);
}

#[tokio::test]
async fn three_clusters_initiate_once_and_survive_losing_one_without_force() {
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let cluster = |i: usize| ["a", "b", "c"][i];
    let desired = entries(&hosts, cluster);
    let admins: Vec<ReplSetAdmin> = (0..3).map(|_| admin()).collect();
    let agents: Vec<(&ReplSetAdmin, SetGoal)> = (0..3)
        .map(|i| (&admins[i], goal(desired.clone(), &hosts[i..=i], i == 0)))
        .collect();
    let known = BTreeSet::new();
    let log = converge_all(&sim, &agents, &known).await;
    assert_eq!(
        log.iter()
            .filter(|o| matches!(o, Outcome::Initiated { .. }))
            .count(),
        1
    );
    assert_eq!(voters(&sim).len(), 3);

    // Cluster c goes away: a majority remains, there is still a primary, nothing is forced.
    sim.stop(&hosts[2]);
    sim.world().tick();
    let (o, obs) = converge::step(agents[0].0, &agents[0].1, &known)
        .await
        .unwrap();
    assert_eq!(o, Outcome::Done);
    assert!(obs.primary.is_some());
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);

    // Cluster b goes too: quorum lost, reported, not forced...
    sim.stop(&hosts[1]);
    sim.world().tick();
    let (o, _) = converge::step(agents[0].0, &agents[0].1, &known)
        .await
        .unwrap();
    assert_eq!(
        o,
        Outcome::QuorumLost {
            reachable_voters: 1,
            voters: 3
        }
    );
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);
    // ...until the user opts in.
    let mut forced = agents[0].1.clone();
    forced.force = ForceOptIn(true);
    let (o, _) = converge::step(agents[0].0, &forced, &known).await.unwrap();
    assert!(matches!(o, Outcome::ForcedReconfig { .. }), "{o:?}");
    sim.world().tick();
    assert_eq!(
        sim.world().set("rs").unwrap().primary.as_deref(),
        Some(hosts[0].as_str())
    );
}

#[tokio::test]
async fn users_are_created_through_the_localhost_exception_and_rotated() {
    let sim = manual_sim();
    let a = sim.serve_new("127.0.0.1").await.unwrap();
    let admin = admin();
    let g = goal(
        entries(std::slice::from_ref(&a), |_| "a"),
        std::slice::from_ref(&a),
        true,
    );
    converge_all(&sim, &[(&admin, g)], &BTreeSet::new()).await;
    let login = |u: &str, p: &str| Login {
        user: u.into(),
        password: Password::new(p),
    };
    let users = Users {
        root: login("root", "Root-Pass-0001"),
        cluster_admin: login("fedstate-cluster-admin", "Admin-Pass-0001"),
        cluster_monitor: login("fedstate-monitor", "Monitor-Pass-0001"),
    };
    let changes = converge::ensure_users(&admin, &a, &users).await.unwrap();
    assert_eq!(changes.created.len(), 3, "{changes:?}");
    // Idempotent.
    let changes = converge::ensure_users(&admin, &a, &users).await.unwrap();
    assert_eq!(changes, Default::default());
    // The localhost exception is closed now.
    assert!(admin.user_exists(&a, "root").await.is_err());
    // Rotation: the monitor and root Secrets changed.
    let rotated = Users {
        root: login("root", "Root-Pass-0002"),
        cluster_monitor: login("fedstate-monitor", "Monitor-Pass-0002"),
        ..users.clone()
    };
    let changes = converge::ensure_users(&admin, &a, &rotated).await.unwrap();
    assert_eq!(changes.rotated.len(), 2, "{changes:?}");
    assert!(!admin.can_login(&a, &users.cluster_monitor).await.unwrap());
    assert!(admin.can_login(&a, &rotated.cluster_monitor).await.unwrap());
    assert!(admin.can_login(&a, &rotated.root).await.unwrap());
    // The agent's own login: replica-set commands work with it.
    let as_admin = admin.with_login(Some(users.cluster_admin.clone()));
    assert!(
        as_admin
            .observe("rs", &[a.clone()].into())
            .await
            .unwrap()
            .primary
            .is_some()
    );
}
