//! The agent's replica-set code (adapter + planner) through the real driver against the
//! replica-set simulator: initiate once, scale 3→5→3 one voter per reconfig, users and rotation,
//! quorum loss without automatic force. As in production, the agent talks to members over
//! their addresses (no localhost exception there) and runs the two in-pod steps (initiate, the
//! first user) inside the member's pod, here the simulator's in-pod socket.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use fedstate_api::hostconf::HostEntry;
use fedstate_mongo_agent::converge::{self, Outcome, SetGoal, Users};
use fedstate_mongo_agent::inpod::InPod;
use fedstate_mongo_agent::planner::{Desired, ForceOptIn};
use fedstate_mongo_agent::replset::{Login, Password, ReplSetAdmin, ReplSetError};
use fedstate_rs_sim::{Settings, Simulator};
use mongodb::bson::Document;

/// The member pods: a shell on the member's own localhost interface, with the root password
/// file the pod mounts.
struct Pods<'a> {
    sim: &'a Simulator,
    root_password: String,
}

impl InPod for Pods<'_> {
    async fn run(
        &self,
        host: &str,
        command: &Document,
        password_from_file: bool,
    ) -> Result<(), ReplSetError> {
        let mut cmd = command.clone();
        if password_from_file {
            cmd.insert("pwd", self.root_password.clone());
        }
        let mut opts = mongodb::options::ClientOptions::default();
        opts.hosts = vec![mongodb::options::ServerAddress::Unix {
            path: self.sim.in_pod_socket(host),
        }];
        opts.direct_connection = Some(true);
        opts.server_selection_timeout = Some(Duration::from_secs(2));
        let client = mongodb::Client::with_options(opts).unwrap();
        let r = client.database("admin").run_command(cmd).await;
        r.map(drop).map_err(|e| match e.kind.as_ref() {
            mongodb::error::ErrorKind::Command(c) => ReplSetError::Command {
                host: host.into(),
                command: "in-pod",
                code: c.code,
                code_name: c.code_name.clone(),
                message: c.message.clone(),
            },
            _ => ReplSetError::Unreachable {
                host: host.into(),
                command: "in-pod",
                reason: e.to_string(),
            },
        })
    }
}

fn users() -> Users {
    let login = |u: &str, p: &str| Login {
        user: u.into(),
        password: Password::new(p),
    };
    Users {
        root: login("root", "Root-Pass-0001"),
        cluster_admin: login("fedstate-cluster-admin", "Admin-Pass-0001"),
        cluster_monitor: login("fedstate-monitor", "Monitor-Pass-0001"),
    }
}

/// One agent as the controller runs it: the cluster admin's login when it works anywhere,
/// else nobody (then only `hello`); the first user in the primary's pod; users after each step.
struct Agent<'a> {
    anonymous: ReplSetAdmin,
    admin: ReplSetAdmin,
    pods: Pods<'a>,
    users: Users,
    goal: SetGoal,
}

impl<'a> Agent<'a> {
    fn new(sim: &'a Simulator, goal: SetGoal) -> Self {
        Self::with_timeout(sim, goal, Duration::from_secs(2))
    }

    /// An agent whose calls give up on a silent host after `timeout` (the default 2 s makes a
    /// step with several stopped members slow).
    fn with_timeout(sim: &'a Simulator, goal: SetGoal, timeout: Duration) -> Self {
        let users = users();
        // As the controller: one adapter family per object, sharing its clients.
        let anonymous = ReplSetAdmin::new(None, timeout);
        Self {
            admin: anonymous.with_login(Some(users.cluster_admin.clone())),
            anonymous,
            pods: Pods {
                sim,
                root_password: users.root.password.expose().to_owned(),
            },
            users,
            goal,
        }
    }

    async fn step(
        &self,
        known: &BTreeSet<String>,
    ) -> Result<(Outcome, fedstate_mongo_agent::replset::Observation), ReplSetError> {
        let mut hosts: BTreeSet<String> = self
            .goal
            .desired
            .hosts
            .iter()
            .map(|h| h.host.clone())
            .collect();
        hosts.extend(self.goal.desired.own.iter().cloned());
        let mut logged_in = false;
        for h in &hosts {
            if self.admin.hello(h).await.is_ok() {
                logged_in = true;
                break;
            }
        }
        if !logged_in {
            for h in &hosts {
                if self.anonymous.hello(h).await.is_ok_and(|x| x.is_primary) {
                    let _ =
                        converge::ensure_users(&self.anonymous, &self.pods, h, &self.users).await;
                    logged_in = true;
                }
            }
        }
        let admin = if logged_in {
            &self.admin
        } else {
            &self.anonymous
        };
        let r = converge::step(admin, &self.pods, &self.goal, known).await?;
        if let Some(p) = &r.1.primary {
            converge::ensure_users(&self.anonymous, &self.pods, p, &self.users).await?;
        }
        Ok(r)
    }
}

/// Let `n` simulated seconds pass.
/// A primary–secondary–arbiter set `rs` initiated from inside `first`'s pod, its first primary
/// elected (one election timeout, 10 s, after initiating) and the root user created there.
async fn initiate_psa(pods: &Pods<'_>, first: &str, second: &str, arbiter: &str) {
    use mongodb::bson::doc;
    let members = vec![
        doc! {"_id": 0, "host": first},
        doc! {"_id": 1, "host": second},
        doc! {"_id": 2, "host": arbiter, "arbiterOnly": true},
    ];
    pods.run(
        first,
        &doc! {"replSetInitiate": {"_id": "rs", "members": members}},
        false,
    )
    .await
    .unwrap();
    ticks(pods.sim, 10);
    pods.run(first, &doc! {"createUser": "root", "roles": ["root"]}, true)
        .await
        .unwrap();
}

fn ticks(sim: &Simulator, n: u32) {
    for _ in 0..n {
        sim.world().tick();
    }
}

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
        force: ForceOptIn(None),
        fcv: None,
    }
}

/// Three members served, one in each cluster a, b and c, and each cluster's agent (a's
/// initiates), all given the whole host list — `adjust` may change it first (a priority).
/// Returns the hosts, the host list and the agents, in cluster order.
async fn three_clusters<'s>(
    sim: &'s Simulator,
    adjust: impl FnOnce(&mut [HostEntry]),
) -> (Vec<String>, Vec<HostEntry>, Vec<Agent<'s>>) {
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let mut desired = entries(&hosts, |i| ["a", "b", "c"][i]);
    adjust(&mut desired);
    let agents = (0..3)
        .map(|i| Agent::new(sim, goal(desired.clone(), &hosts[i..=i], i == 0)))
        .collect();
    (hosts, desired, agents)
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
#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
async fn converge_all(
    sim: &Simulator,
    agents: &[&Agent<'_>],
    known: &BTreeSet<String>,
) -> Vec<Outcome> {
    converge_keeping(sim, agents, known, 0).await
}

/// [`converge_all`], also checking after every step that the set has at least `floor` voters.
#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
async fn converge_keeping(
    sim: &Simulator,
    agents: &[&Agent<'_>],
    known: &BTreeSet<String>,
    floor: usize,
) -> Vec<Outcome> {
    let mut log = Vec::new();
    let mut before = voters(sim);
    for _round in 0..60 {
        let mut all_done = true;
        for agent in agents {
            let (outcome, _) = agent.step(known).await.unwrap();
            let after = voters(sim);
            assert!(
                before.symmetric_difference(&after).count() <= 1,
                "more than one voting change in one step: {before:?} -> {after:?} ({outcome:?})"
            );
            assert!(
                after.len() >= floor,
                "voters dropped below {floor}: {after:?} after {outcome:?}"
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
    let known = BTreeSet::new();
    let three = Agent::new(&sim, goal(entries(&hosts[..3], |_| "a"), &hosts, true));
    let log = converge_all(&sim, &[&three], &known).await;
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
    let five = Agent::new(&sim, goal(entries(&hosts, |_| "a"), &hosts, true));
    let v_before = sim.world().set("rs").unwrap().config.version;
    let log = converge_all(&sim, &[&five], &known).await;
    assert_eq!(voters(&sim).len(), 5);
    let v_after = sim.world().set("rs").unwrap().config.version;
    assert!(
        v_after - v_before >= 3,
        "one add batch and two promotions: {log:?}"
    );

    // Scale down to members 2..5: the primary (member 0) is stepped down before it is removed.
    let down = Agent::new(&sim, goal(entries(&hosts[2..], |_| "a"), &hosts, true));
    let log = converge_all(&sim, &[&down], &known).await;
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

/// How long the initiate-guard test's agents wait for a stopped member.
const FAST: Duration = Duration::from_millis(300);

/// The initiate-once guard: the simulator, like mongod, lets a second `replSetInitiate` of the
/// same name happen next to an existing set; the agent must not issue it while a host the set
/// ever had cannot be asked.
#[tokio::test]
async fn no_second_set_while_a_host_the_set_ever_had_cannot_be_asked() {
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..4 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let none = BTreeSet::new();
    let three = Agent::new(&sim, goal(entries(&hosts[..3], |_| "a"), &hosts[..3], true));
    converge_all(&sim, &[&three], &none).await;
    assert_eq!(sim.world().sets_named("rs").len(), 1);
    let known: BTreeSet<String> = hosts[..3].iter().cloned().collect();

    // The set's three pods go down (their data stays on their PVCs) while a fourth member is
    // added; only the new, empty one is Ready.
    for h in &hosts[..3] {
        sim.stop(h);
    }
    let mut grown = goal(entries(&hosts, |_| "a"), &hosts, true);
    grown.desired.ready = [hosts[3].clone()].into();
    let agent = Agent::with_timeout(&sim, grown, FAST);
    for _ in 0..2 {
        let (outcome, _) = agent.step(&none).await.unwrap();
        let Outcome::Waiting(why) = &outcome else {
            panic!("expected a wait, got {outcome:?}")
        };
        for h in &hosts[..3] {
            assert!(
                why.contains(&format!(
                    "{h} (an own member whose pod is not Ready) does not answer"
                )),
                "{why}"
            );
        }
        sim.world().tick();
    }
    assert_eq!(
        sim.world().sets_named("rs").len(),
        1,
        "a second set was initiated"
    );

    // The host list moved to the new host only: the hosts status remembers still hold it back.
    let moved = Agent::with_timeout(
        &sim,
        goal(entries(&hosts[3..], |_| "b"), &hosts[3..], true),
        FAST,
    );
    let (outcome, _) = moved.step(&known).await.unwrap();
    let Outcome::Waiting(why) = &outcome else {
        panic!("expected a wait, got {outcome:?}")
    };
    assert!(
        why.contains(&format!(
            "{} (remembered in status.replset) does not answer",
            hosts[0]
        )),
        "{why}"
    );
    assert_eq!(
        sim.world().sets_named("rs").len(),
        1,
        "a second set was initiated"
    );

    // The old members come back: the fourth joins the one set, nothing is initiated again.
    for h in &hosts[..3] {
        sim.serve(h).await.unwrap();
        sim.world().set_up(h, true);
    }
    let all = Agent::new(&sim, goal(entries(&hosts, |_| "a"), &hosts, true));
    let log = converge_all(&sim, &[&all], &known).await;
    assert!(
        !log.iter().any(|o| matches!(o, Outcome::Initiated { .. })),
        "{log:?}"
    );
    assert_eq!(sim.world().sets_named("rs").len(), 1);
    assert!(
        sim.world()
            .set("rs")
            .unwrap()
            .config
            .member(&hosts[3])
            .is_some()
    );
}

#[tokio::test]
async fn three_clusters_initiate_once_and_survive_losing_one_without_force() {
    let sim = manual_sim();
    let (hosts, desired, agents) = three_clusters(&sim, |_| {}).await;
    let known = BTreeSet::new();
    let log = converge_all(&sim, &agents.iter().collect::<Vec<_>>(), &known).await;
    assert_eq!(
        log.iter()
            .filter(|o| matches!(o, Outcome::Initiated { .. }))
            .count(),
        1
    );
    assert_eq!(voters(&sim).len(), 3);

    // Cluster c goes away: a majority remains, there is still a primary, nothing is forced.
    // (The others mark it down at their next heartbeat, 2 s.)
    sim.stop(&hosts[2]);
    ticks(&sim, 2);
    let (o, obs) = agents[0].step(&known).await.unwrap();
    assert_eq!(o, Outcome::Done);
    assert!(obs.primary.is_some());
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);

    // Cluster b goes too: quorum lost, reported, not forced... Right after, the survivor still
    // reports b as it last heard of it: nothing drastic happens meanwhile.
    sim.stop(&hosts[1]);
    let (o, _) = agents[0].step(&known).await.unwrap();
    assert!(!matches!(o, Outcome::ForcedReconfig { .. }), "{o:?}");
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);
    ticks(&sim, 2);
    // While the host list still holds b and c (their clusters not reported lost), a's agent
    // cannot tell a loss from a partition: it waits.
    let (o, _) = agents[0].step(&known).await.unwrap();
    assert!(
        matches!(&o, Outcome::Waiting(w) if w.contains("still in the host list")),
        "{o:?}"
    );
    // The manager dropped them (Karmada reports their clusters lost): the loss is offered.
    let survivor = Agent::new(&sim, goal(desired[..1].to_vec(), &hosts[..1], true));
    let (o, _) = survivor.step(&known).await.unwrap();
    let Outcome::QuorumLost {
        reachable_voters: 1,
        voters: 3,
        config_version,
        unreachable,
    } = o
    else {
        panic!("expected QuorumLost, got {o:?}")
    };
    // The condition names the voters that are gone (issue 15).
    assert_eq!(unreachable, hosts[1..].to_vec());
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);
    // An opt-in for another config version is no consent...
    let mut forced = survivor.goal.clone();
    forced.force = ForceOptIn(Some(config_version - 1));
    let (o, _) = converge::step(&survivor.admin, &survivor.pods, &forced, &known)
        .await
        .unwrap();
    assert!(matches!(o, Outcome::QuorumLost { .. }), "{o:?}");
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);
    // ...the one for this config version is.
    forced.force = ForceOptIn(Some(config_version));
    let (o, _) = converge::step(&survivor.admin, &survivor.pods, &forced, &known)
        .await
        .unwrap();
    assert!(
        matches!(o, Outcome::ForcedReconfig { from, .. } if from == config_version),
        "{o:?}"
    );
    sim.world().tick();
    assert_eq!(
        sim.world().set("rs").unwrap().primary.as_deref(),
        Some(hosts[0].as_str())
    );
    // The same opt-in again forces nothing more.
    let (o, _) = converge::step(&survivor.admin, &survivor.pods, &forced, &known)
        .await
        .unwrap();
    assert!(!matches!(o, Outcome::ForcedReconfig { .. }), "{o:?}");
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 1);
}

/// Issue 15: a move between clusters (a:1,b:1,c:1 → a:1,b:1,d:1), each cluster's agent seeing
/// only its own members and c's agent acting before d's in every round: the set never has fewer
/// than 3 voters; c leaves once d votes, with its primary stepped down first when it is c.
#[tokio::test]
async fn a_move_between_clusters_keeps_the_target_voter_count() {
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..4 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let cluster = |i: usize| ["a", "b", "c", "d"][i];
    let abc = entries(&hosts[..3], cluster);
    let formed: Vec<Agent> = (0..3)
        .map(|i| Agent::new(&sim, goal(abc.clone(), &hosts[i..=i], i == 0)))
        .collect();
    let known = BTreeSet::new();
    converge_all(&sim, &formed.iter().collect::<Vec<_>>(), &known).await;
    assert_eq!(voters(&sim).len(), 3);
    // Make c the primary, the hardest case: it must not even step down before d votes.
    let c_priority = {
        let mut e = abc.clone();
        e[2].priority = 2;
        e
    };
    let c_first: Vec<Agent> = (0..3)
        .map(|i| Agent::new(&sim, goal(c_priority.clone(), &hosts[i..=i], false)))
        .collect();
    converge_all(&sim, &c_first.iter().collect::<Vec<_>>(), &known).await;
    for _ in 0..10 {
        sim.world().tick();
    }
    assert_eq!(
        sim.world().set("rs").unwrap().primary.as_deref(),
        Some(hosts[2].as_str())
    );

    let mut abd = entries(&hosts, cluster);
    abd.remove(2);
    let moved: Vec<Agent> = (0..4)
        .map(|i| Agent::new(&sim, goal(abd.clone(), &hosts[i..=i], false)))
        .collect();
    let log = converge_keeping(&sim, &moved.iter().collect::<Vec<_>>(), &known, 3).await;
    assert!(
        log.iter()
            .any(|o| matches!(o, Outcome::Waiting(w) if w.contains("adds before removes") && w.contains(&hosts[3]))),
        "c's agent said what it waits for: {log:?}"
    );
    assert!(
        log.iter()
            .any(|o| matches!(o, Outcome::SteppedDown { host } if *host == hosts[2])),
        "{log:?}"
    );
    let want: BTreeSet<String> = [&hosts[0], &hosts[1], &hosts[3]]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(voters(&sim), want);
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);
}

/// How long a partition scenario's agents wait for a member on the other side (each such
/// call costs this much wall time; the simulator answers a reachable one at once).
const CUT: Duration = Duration::from_millis(100);

/// An outcome that offers or makes a forced reconfig.
fn offers_force(o: &Outcome) -> bool {
    matches!(
        o,
        Outcome::QuorumLost { .. } | Outcome::ForcedReconfig { .. }
    )
}

/// Issue 15, scenario "partition isolating one cluster": a 1/1/1 set whose primary is c's
/// member; c's members and c's agent are cut off from a and b (per observer: each side gets no
/// answer from the other). Checked at every tick: c's agent, which reaches only its own
/// member (that member marks a and b down and steps down), is never offered a forced reconfig
/// (it waits); a and b's agents neither; nothing is forced; never more than one primary
/// reaching a majority; the majority side has a primary within an election timeout and keeps
/// it. Heal: one set, no member twice, every member PRIMARY or SECONDARY.
#[tokio::test]
async fn a_partition_isolating_one_cluster_offers_no_force_on_either_side() {
    let sim = manual_sim();
    let (hosts, desired, formed) = three_clusters(&sim, |d| d[2].priority = 2).await;
    let cluster = |i: usize| ["a", "b", "c"][i];
    let known = BTreeSet::new();
    converge_all(&sim, &formed.iter().collect::<Vec<_>>(), &known).await;
    ticks(&sim, 30);
    assert_eq!(
        sim.world().set("rs").unwrap().primary.as_deref(),
        Some(hosts[2].as_str()),
        "c's member (priority 2) took over"
    );
    let agents: Vec<Agent> = (0..3)
        .map(|i| {
            let mut a = Agent::with_timeout(&sim, goal(desired.clone(), &hosts[i..=i], false), CUT);
            let app = format!("agent-{}", cluster(i));
            a.anonymous = a.anonymous.clone().with_app_name(app);
            a.admin = a.anonymous.with_login(Some(a.users.cluster_admin.clone()));
            a
        })
        .collect();
    sim.world()
        .split(&hosts[2..], &["agent-c".to_owned()])
        .unwrap();
    let election = sim.world().set("rs").unwrap().config.timing().election;

    let mut checked = 0u32;
    let mut violations: Vec<String> = Vec::new();
    let mut c_looked = 0u32;
    let mut kept: Option<String> = None;
    for t in 1..=16u64 {
        sim.world().tick();
        // c's agent every tick, the majority's every fourth (each call across the cut costs
        // `CUT` of wall time).
        let stepping: &[usize] = if t % 4 == 0 { &[2, 0, 1] } else { &[2] };
        for &i in stepping {
            let a = &agents[i];
            match converge::step(&a.admin, &a.pods, &a.goal, &known).await {
                Ok((o, obs)) => {
                    if offers_force(&o) {
                        violations.push(format!("tick {t}: {}'s agent: {o:?}", cluster(i)));
                    }
                    if i == 2 && obs.observed.config.is_some() {
                        c_looked += 1;
                    }
                }
                Err(e) => violations.push(format!("tick {t}: {}'s agent: {e}", cluster(i))),
            }
        }
        let w = sim.world();
        let set = w.set("rs").unwrap();
        if set.forced_reconfigs != 0 {
            violations.push(format!(
                "tick {t}: {} forced reconfigs",
                set.forced_reconfigs
            ));
        }
        let primaries = w.primaries("rs");
        let majority: Vec<&String> = primaries
            .iter()
            .filter(|(_, reach)| *reach >= 2)
            .map(|(p, _)| p)
            .collect();
        if majority.len() > 1 {
            violations.push(format!("tick {t}: primaries {primaries:?}"));
        }
        if t >= election {
            match (majority.first(), &kept) {
                (None, _) => violations.push(format!(
                    "tick {t}: no primary on the majority side {} ticks after the cut",
                    t
                )),
                (Some(p), Some(k)) if *p != k => {
                    violations.push(format!("tick {t}: primary moved from {k} to {p}"))
                }
                (Some(p), _) => kept = Some((*p).clone()),
            }
        }
        checked += 1;
    }
    assert!(
        c_looked >= 12,
        "c's agent read its member's view: {c_looked}"
    );

    sim.world().heal();
    // The agents that formed the set (their clients never dialled across the cut).
    let all: Vec<&Agent> = formed.iter().collect();
    converge_all(&sim, &all, &known).await;
    for t in 1..=12u64 {
        sim.world().tick();
        let w = sim.world();
        let with_majority = w
            .primaries("rs")
            .iter()
            .filter(|(_, reach)| *reach >= 2)
            .count();
        if with_majority > 1 {
            violations.push(format!("heal tick {t}: {:?}", w.primaries("rs")));
        }
        checked += 1;
    }
    let w = sim.world();
    if w.sets_named("rs").len() != 1 {
        violations.push(format!("{} sets named rs", w.sets_named("rs").len()));
    }
    let set = w.set("rs").unwrap();
    let listed: BTreeSet<&str> = set.config.members.iter().map(|m| m.host.as_str()).collect();
    let ids: BTreeSet<i32> = set.config.members.iter().map(|m| m.id).collect();
    if listed.len() != set.config.members.len() || ids.len() != listed.len() || listed.len() != 3 {
        violations.push(format!("members after heal: {:?}", set.config.members));
    }
    for h in &hosts {
        let state = set.state(h);
        if !matches!(state, Some(1 | 2)) || !w.is_up(h) {
            violations.push(format!("{h} after heal: state {state:?}"));
        }
    }
    if set.forced_reconfigs != 0 {
        violations.push(format!("{} forced reconfigs", set.forced_reconfigs));
    }
    eprintln!(
        "partition isolating one cluster: invariants: {checked} ticks checked, violations: {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Issue 15, scenario "force opt-in used once": a 1/1/1 set loses b and c (the manager drops
/// them from the host list and places two replacements in a); the user gives the opt-in the
/// `QuorumLost` condition prints; the agent forces once and the status records it. The set
/// grows back to three voters, then loses both replacements at the same generation: the agent
/// offers the loss again at every tick and never forces, whether or not the status still
/// holds the record. The simulator counts exactly one forced reconfig.
#[tokio::test]
async fn a_force_opt_in_is_used_once_and_a_second_loss_is_only_offered() {
    use fedstate_mongo_agent::{decide, status};
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..5 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let abc = entries(&hosts[..3], |i| ["a", "b", "c"][i]);
    let formed: Vec<Agent> = (0..3)
        .map(|i| Agent::new(&sim, goal(abc.clone(), &hosts[i..=i], i == 0)))
        .collect();
    let known = BTreeSet::new();
    converge_all(&sim, &formed.iter().collect::<Vec<_>>(), &known).await;
    let generation = Some(4);
    let mut checked = 0u32;
    let mut violations: Vec<String> = Vec::new();
    let check = |want: u32, when: &str, checked: &mut u32, violations: &mut Vec<String>| {
        *checked += 1;
        let n = sim.world().set("rs").unwrap().forced_reconfigs;
        if n != want {
            violations.push(format!("{when}: {n} forced reconfigs, {want} expected"));
        }
    };

    // First loss: b and c go; the host list now holds a and two replacements in a.
    sim.stop(&hosts[1]);
    sim.stop(&hosts[2]);
    ticks(&sim, 2);
    let mut replaced = entries(&hosts, |_| "a");
    replaced.retain(|e| e.host != hosts[1] && e.host != hosts[2]);
    let own = [hosts[0].clone(), hosts[3].clone(), hosts[4].clone()];
    let mut agent = Agent::with_timeout(&sim, goal(replaced.clone(), &own, false), CUT);
    let (o, _) = agent.step(&known).await.unwrap();
    let condition = status::compute(
        None,
        &status::Observation {
            name: "demo",
            namespace: "ns",
            generation,
            outcome: Some(Ok(o.clone())),
            ..Default::default()
        },
        jiff::Timestamp::UNIX_EPOCH,
    );
    let message = condition
        .conditions
        .iter()
        .find(|c| c.type_ == status::QUORUM_LOST)
        .and_then(|c| c.message.clone())
        .unwrap_or_else(|| panic!("no QuorumLost condition after {o:?}"));
    // What the user runs: the annotation value the condition prints.
    let annotation = message
        .split(&format!("{}=", status::FORCE_RECONFIG_ANNOTATION))
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    check(0, "offered", &mut checked, &mut violations);
    agent.goal.force = decide::force_opt_in(Some(&annotation), generation, None);
    let (o, _) = agent.step(&known).await.unwrap();
    let Outcome::ForcedReconfig { .. } = &o else {
        panic!("expected the forced reconfig, got {o:?}")
    };
    let recorded = status::compute(
        Some(&condition),
        &status::Observation {
            name: "demo",
            namespace: "ns",
            generation,
            outcome: Some(Ok(o.clone())),
            ..Default::default()
        },
        jiff::Timestamp::UNIX_EPOCH,
    );
    let record = recorded.forced_reconfig.clone().unwrap();
    assert_eq!(record.opt_in, annotation);
    check(1, "forced", &mut checked, &mut violations);

    // The set grows back: the replacements join and vote (the opt-in is used up).
    agent.goal.force = decide::force_opt_in(Some(&annotation), generation, Some(&record.opt_in));
    converge_all(&sim, &[&agent], &known).await;
    assert_eq!(voters(&sim).len(), 3);
    check(1, "grown back", &mut checked, &mut violations);

    // Second loss, same generation, annotation still set: offered at every tick, never forced,
    // with the status record (the agent's way) and without it (the config version alone).
    sim.stop(&hosts[3]);
    sim.stop(&hosts[4]);
    // a marks them down at its next heartbeat and steps down.
    ticks(&sim, 2);
    agent.goal.desired.hosts.retain(|e| e.host == hosts[0]);
    let mut offered = 0;
    for t in 1..=6u32 {
        sim.world().tick();
        for used in [Some(record.opt_in.as_str()), None] {
            let mut g = agent.goal.clone();
            g.force = decide::force_opt_in(Some(&annotation), generation, used);
            let (o, _) = converge::step(&agent.admin, &agent.pods, &g, &known)
                .await
                .unwrap();
            match o {
                Outcome::ForcedReconfig { .. } => {
                    violations.push(format!("tick {t}: forced again ({used:?}): {o:?}"))
                }
                Outcome::QuorumLost { config_version, .. } => {
                    offered += 1;
                    if config_version == record.from_version {
                        violations.push(format!("tick {t}: the used version offered again"));
                    }
                }
                _ => {}
            }
        }
        check(
            1,
            &format!("second loss, tick {t}"),
            &mut checked,
            &mut violations,
        );
    }
    assert!(offered >= 8, "the second loss was offered: {offered}");
    eprintln!(
        "force opt-in used once: invariants: {checked} ticks checked, violations: {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

/// Issue 15: a rolling restart goes on only once the member restarted last (in any cluster) is
/// a SECONDARY that has caught up. Through the driver: the simulator reports optimes as mongod
/// does, a member back from a restart is SECONDARY but behind the primary (it missed the
/// writes made while it was down), and the next restart waits until it replayed them.
#[tokio::test]
async fn the_next_restart_waits_for_the_restarted_member_to_catch_up() {
    use fedstate_mongo_agent::decide;
    use fedstate_mongo_agent::rollout::{self, PodRollout, RolloutStep};
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let agent = Agent::new(&sim, goal(entries(&hosts, |_| "a"), &hosts, true));
    let known = BTreeSet::new();
    converge_all(&sim, &[&agent], &known).await;
    let all: BTreeSet<String> = hosts.iter().cloned().collect();
    let primary = sim.world().set("rs").unwrap().primary.clone().unwrap();
    let restarted = hosts.iter().find(|h| **h != primary).unwrap().clone();
    // Another cluster's agent restarted `restarted`: down for 30 s of writes, then back.
    sim.world().set_up(&restarted, false);
    for _ in 0..30 {
        sim.world().tick();
    }
    sim.world().set_up(&restarted, true);
    let pods = |restarted: &str| -> Vec<PodRollout> {
        hosts
            .iter()
            .enumerate()
            .map(|(i, h)| PodRollout {
                pod: format!("m-{i}-0"),
                index: Some(i as i32),
                host: h.clone(),
                outdated: *h != restarted,
                ready: true,
            })
            .collect()
    };
    // Starting up (STARTUP, STARTUP2, RECOVERING): not healthy, the next restart waits.
    for _ in 0..3 {
        let obs = agent.admin.observe("rs", &all).await.unwrap();
        let step = rollout::next_restart(
            &pods(&restarted),
            &decide::voters(&obs),
            obs.primary.as_deref(),
        );
        assert!(
            matches!(&step, RolloutStep::Wait(why) if why.contains(&restarted) && why.contains("not healthy")),
            "{step:?}"
        );
        sim.world().tick();
    }
    let pods: Vec<PodRollout> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| PodRollout {
            pod: format!("m-{i}-0"),
            index: Some(i as i32),
            host: h.clone(),
            outdated: *h != restarted,
            ready: true,
        })
        .collect();
    let obs = agent.admin.observe("rs", &all).await.unwrap();
    assert_eq!(
        obs.observed.state(&restarted),
        fedstate_mongo_agent::planner::MemberState::Secondary,
        "back and SECONDARY: the old rule would restart the next member now"
    );
    let step = rollout::next_restart(&pods, &decide::voters(&obs), obs.primary.as_deref());
    assert!(
        matches!(&step, RolloutStep::Wait(why) if why.contains(&restarted) && why.contains("behind")),
        "{step:?}"
    );
    // It replays what it missed (sync_ticks later): the next member may go.
    sim.world().tick();
    sim.world().tick();
    let obs = agent.admin.observe("rs", &all).await.unwrap();
    let step = rollout::next_restart(&pods, &decide::voters(&obs), obs.primary.as_deref());
    assert!(matches!(step, RolloutStep::Restart { .. }), "{step:?}");
}

#[tokio::test]
async fn the_first_user_is_created_in_the_primarys_pod_and_passwords_rotate() {
    let sim = manual_sim();
    let a = sim.serve_new("127.0.0.1").await.unwrap();
    let anonymous = ReplSetAdmin::new(None, Duration::from_secs(2));
    let pods = Pods {
        sim: &sim,
        root_password: users().root.password.expose().to_owned(),
    };
    let g = goal(
        entries(std::slice::from_ref(&a), |_| "a"),
        std::slice::from_ref(&a),
        true,
    );
    // Initiated from the pod (the agent's own connection may not initiate).
    let (o, _) = converge::step(&anonymous, &pods, &g, &BTreeSet::new())
        .await
        .unwrap();
    assert!(matches!(o, Outcome::Initiated { .. }), "{o:?}");
    sim.world().tick();
    let users = users();
    // Over the network, without a user, nothing but hello works: no exception for the agent.
    let e = anonymous.user_exists(&a, "root").await.unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
    let changes = converge::ensure_users(&anonymous, &pods, &a, &users)
        .await
        .unwrap();
    assert_eq!(changes.created.len(), 3, "{changes:?}");
    // Idempotent.
    let changes = converge::ensure_users(&anonymous, &pods, &a, &users)
        .await
        .unwrap();
    assert_eq!(changes, Default::default());
    // The localhost exception is closed now, in the pod too.
    let again = pods
        .run(
            &a,
            &mongodb::bson::doc! {"createUser": "intruder", "roles": []},
            true,
        )
        .await
        .unwrap_err();
    assert!(again.is_unauthorized(), "{again}");
    // Rotation: the monitor and root Secrets changed.
    let login = |u: &str, p: &str| Login {
        user: u.into(),
        password: Password::new(p),
    };
    let rotated = Users {
        root: login("root", "Root-Pass-0002"),
        cluster_monitor: login("fedstate-monitor", "Monitor-Pass-0002"),
        ..users.clone()
    };
    let changes = converge::ensure_users(&anonymous, &pods, &a, &rotated)
        .await
        .unwrap();
    assert_eq!(changes.rotated.len(), 2, "{changes:?}");
    assert!(
        !anonymous
            .can_login(&a, &users.cluster_monitor)
            .await
            .unwrap()
    );
    assert!(
        anonymous
            .can_login(&a, &rotated.cluster_monitor)
            .await
            .unwrap()
    );
    assert!(anonymous.can_login(&a, &rotated.root).await.unwrap());
    // The agent's own login: replica-set commands work with it.
    let as_admin = anonymous.with_login(Some(users.cluster_admin.clone()));
    assert!(
        as_admin
            .observe("rs", &[a.clone()].into())
            .await
            .unwrap()
            .primary
            .is_some()
    );
}

/// `hello` exists from 4.4.2 only (manual, `hello`); on an older server the agent asks `isMaster`.
#[tokio::test]
async fn hello_falls_back_to_is_master_before_4_4_2() {
    let sim = manual_sim();
    let a = sim.serve_new("127.0.0.1").await.unwrap();
    sim.world().set_version(&a, "4.4.1");
    let pods = Pods {
        sim: &sim,
        root_password: users().root.password.expose().to_owned(),
    };
    let anonymous = ReplSetAdmin::new(None, Duration::from_secs(2));
    let g = goal(
        entries(std::slice::from_ref(&a), |_| "a"),
        std::slice::from_ref(&a),
        true,
    );
    let (o, _) = converge::step(&anonymous, &pods, &g, &BTreeSet::new())
        .await
        .unwrap();
    assert!(matches!(o, Outcome::Initiated { .. }), "{o:?}");
    sim.world().tick();
    let hello = anonymous.hello(&a).await.unwrap();
    assert_eq!(hello.set_name.as_deref(), Some("rs"));
    assert!(hello.is_primary);
}

fn arbiter_entry(host: &str, index: i32) -> HostEntry {
    HostEntry {
        host: host.to_owned(),
        member_index: index,
        votes: 1,
        priority: 0,
        arbiter_only: true,
        cluster: "a".into(),
    }
}

/// MongoDB 5.0+ (the simulated nodes run 7.0): an arbiter joins only after a cluster-wide
/// default write concern is set (it changes the implicit one), and a data member joining a
/// primary + arbiter gets its vote with priority 0 before its priority ("Modify a PSA Replica
/// Set Safely"). Nothing is forced and no step is refused.
#[tokio::test]
async fn an_arbiter_and_a_secondary_join_a_5_0_set_the_documented_way() {
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let mut desired = entries(&hosts[..2], |_| "a");
    desired.push(arbiter_entry(&hosts[2], 2));
    // Member 1 is not ready yet: the set is the primary and the arbiter first.
    let mut early = goal(desired.clone(), &hosts, true);
    early.desired.ready.remove(&hosts[1]);
    let early = Agent::new(&sim, early);
    let mut log = Vec::new();
    for _ in 0..20 {
        let (o, _) = early.step(&BTreeSet::new()).await.unwrap();
        log.push(o);
        sim.world().tick();
        let has_arbiter = sim
            .world()
            .set("rs")
            .is_some_and(|s| s.config.member(&hosts[2]).is_some());
        if has_arbiter {
            break;
        }
    }
    assert!(
        log.iter()
            .any(|o| matches!(o, Outcome::DefaultWriteConcernSet { .. })),
        "{log:?}"
    );
    assert!(
        sim.world()
            .set("rs")
            .unwrap()
            .default_write_concern
            .is_some()
    );
    let all = Agent::new(&sim, goal(desired, &hosts, true));
    let log = converge_all(&sim, &[&all], &BTreeSet::new()).await;
    assert!(
        log.iter().any(
            |o| matches!(o, Outcome::Reconfigured { reason, .. } if reason.contains("priority 0 first"))
        ),
        "{log:?}"
    );
    let w = sim.world();
    let set = w.set("rs").unwrap();
    let m1 = set.config.member(&hosts[1]).unwrap();
    assert_eq!((m1.votes, m1.priority), (1, 1.0));
    assert!(set.config.member(&hosts[2]).unwrap().arbiter_only);
    assert_eq!(set.forced_reconfigs, 0);
}

/// Elections take time (manual, "Replica Set Elections"): after the primary of a PSA set dies,
/// the survivors report it as PRIMARY until their heartbeats mark it down, and no primary exists
/// until the secondary's election timeout ran out. The agent still observes the set meanwhile,
/// from the data-bearing survivor (an arbiter has no users, so the agent cannot log in to it: the
/// old `observe` read from whichever host sorted first, here the arbiter, and failed with
/// Unauthorized for the whole window), reports no writable primary, and does not force anything.
#[tokio::test]
async fn the_set_is_observed_through_the_window_without_a_primary() {
    let sim = manual_sim();
    // The arbiter's address sorts first.
    let arbiter = sim.serve_new("127.0.0.1").await.unwrap();
    let data = [
        sim.serve_new("127.0.0.2").await.unwrap(),
        sim.serve_new("127.0.0.2").await.unwrap(),
    ];
    let pods = Pods {
        sim: &sim,
        root_password: users().root.password.expose().to_owned(),
    };
    initiate_psa(&pods, &data[0], &data[1], &arbiter).await;
    let old = sim.world().set("rs").unwrap().primary.clone().unwrap();
    let survivor = data.iter().find(|h| **h != old).unwrap().clone();
    sim.stop(&old);
    let root = ReplSetAdmin::new(Some(users().root), Duration::from_millis(300));
    let known: BTreeSet<String> = data.iter().chain([&arbiter]).cloned().collect();
    let mut saw_stale = false;
    let mut saw_none = false;
    for _ in 0..12 {
        let obs = root
            .observe("rs", &known)
            .await
            .expect("the set is observed while it has no primary");
        assert!(obs.observed.config.is_some());
        match obs.primary.as_deref() {
            Some(p) if p == old => saw_stale = true,
            None => saw_none = true,
            Some(p) => assert_eq!(p, survivor),
        }
        sim.world().tick();
    }
    assert!(
        saw_stale,
        "right after the kill the dead primary is still reported"
    );
    assert!(saw_none, "then a window without a primary");
    let obs = root.observe("rs", &known).await.unwrap();
    assert_eq!(obs.primary.as_deref(), Some(survivor.as_str()));
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);
}

/// A reconfig the set cannot start (its current config is not committed: a PSA set whose
/// primary died has no write majority) gives up within its `maxTimeMS` with
/// CurrentConfigNotCommittedYet instead of holding the reconcile forever, and the planner then
/// only waits.
#[tokio::test]
async fn a_reconfig_that_cannot_start_gives_up_within_its_max_time_ms() {
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let pods = Pods {
        sim: &sim,
        root_password: users().root.password.expose().to_owned(),
    };
    initiate_psa(&pods, &hosts[0], &hosts[1], &hosts[2]).await;
    sim.stop(&hosts[0]);
    let root = ReplSetAdmin::new(Some(users().root), Duration::from_secs(1));
    let known: BTreeSet<String> = hosts.iter().cloned().collect();
    // No primary until the secondary's election timeout ran out.
    let obs = root.observe("rs", &known).await.unwrap();
    assert_ne!(obs.primary.as_deref(), Some(hosts[1].as_str()));
    ticks(&sim, 10);
    let obs = root.observe("rs", &known).await.unwrap();
    assert_eq!(obs.primary.as_deref(), Some(hosts[1].as_str()));
    assert!(!obs.observed.committed, "commitmentStatus says: not ready");
    let mut demoted = obs.observed.config.clone().unwrap();
    demoted.version += 1;
    demoted.members[0].votes = 0;
    demoted.members[0].priority = 0;
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        root.reconfig(&hosts[1], obs.raw_config.as_ref(), &demoted, false),
    )
    .await
    .expect("the reconfig must not hang");
    let e = r.unwrap_err();
    assert_eq!(
        e.code(),
        Some(fedstate_mongo_agent::replset::CURRENT_CONFIG_NOT_COMMITTED_YET),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(e.is_server_timeout());
}

/// A member that stops answering (its storage hangs; `maxTimeMS` does not help there) costs a
/// reconcile at most the agent's own client timeout, never the reconcile itself.
#[tokio::test]
async fn a_member_that_stops_answering_does_not_hang_the_agent() {
    let sim = manual_sim();
    let a = sim.serve_new("127.0.0.1").await.unwrap();
    let agent = Agent::new(
        &sim,
        goal(
            entries(std::slice::from_ref(&a), |_| "a"),
            std::slice::from_ref(&a),
            true,
        ),
    );
    converge_all(&sim, &[&agent], &BTreeSet::new()).await;
    // Connected and logged in before the member stops answering.
    let admin = ReplSetAdmin::new(Some(users().cluster_admin), Duration::from_secs(1));
    assert!(admin.observe("rs", &[a.clone()].into()).await.is_ok());
    sim.world().stall(&a, true);
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        admin.observe("rs", &[a.clone()].into()),
    )
    .await
    .expect("observing a stalled member must not hang");
    let e = r.unwrap_err();
    assert!(
        matches!(&e, ReplSetError::Unreachable { reason, .. } if reason.contains("no answer")),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Upgrades go one major at a time with `setFeatureCompatibilityVersion` at each step (manual,
/// "Upgrade a Replica Set to 6.0 / 7.0"): a skipped major is refused and the members keep their
/// image; the FCV is raised before the binaries move and again once they all moved (with
/// `confirm: true` on 7.0); a binary two majors ahead of the FCV does not start.
#[tokio::test]
async fn an_upgrade_moves_one_major_at_a_time_with_its_fcv() {
    use fedstate_mongo_agent::version::{self, Progress, Running};
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        let h = sim.serve_new("127.0.0.1").await.unwrap();
        sim.world().set_version(&h, "5.0.26");
        hosts.push(h);
    }
    let agent = Agent::new(&sim, goal(entries(&hosts, |_| "a"), &hosts, true));
    converge_all(&sim, &[&agent], &BTreeSet::new()).await;
    assert_eq!(sim.world().set("rs").unwrap().fcv, (5, 0));
    // The pods roll to 6.0 images (the kubelet's part, by hand here): 6.0 runs on FCV 5.0.
    for h in &hosts {
        sim.world().set_version(h, "6.0.14");
        assert!(sim.world().start_failure(h).is_none());
    }
    let known: BTreeSet<String> = hosts.iter().cloned().collect();
    let running = |image: &str| {
        let (admin, known, image) = (&agent.admin, &known, image.to_owned());
        async move {
            Running {
                binaries: admin.binaries(known).await,
                fcv: admin.feature_compatibility(known).await,
                image: Some(image),
            }
        }
    };
    let step = |fcv: Option<(u32, u32)>| {
        let mut g = agent.goal.clone();
        g.fcv = fcv;
        let (agent, known) = (&agent, &known);
        async move {
            converge::step(&agent.admin, &agent.pods, &g, known)
                .await
                .unwrap()
                .0
        }
    };
    // spec.image asks for 8.0: two majors up, refused; the members keep 6.0.
    let p = version::plan("mongo:8.0", &running("mongo:6.0").await);
    assert!(matches!(&p.progress, Progress::Refused(m) if m.contains("7.0 image first")));
    assert_eq!((p.image.as_str(), p.fcv), ("mongo:6.0", None));
    // 7.0: FCV 6.0 first, the members still on 6.0.
    let p = version::plan("mongo:7.0", &running("mongo:6.0").await);
    assert_eq!((p.image.as_str(), p.fcv), ("mongo:6.0", Some((6, 0))));
    assert_eq!(
        step(p.fcv).await,
        Outcome::FeatureCompatibilitySet {
            version: "6.0".into()
        }
    );
    let p = version::plan("mongo:7.0", &running("mongo:6.0").await);
    assert_eq!(
        (p.image.as_str(), p.fcv),
        ("mongo:7.0", None),
        "now they roll"
    );
    // An 8.0 binary would not start on FCV 6.0 data.
    sim.world().set_version(&hosts[2], "8.0.4");
    assert!(sim.world().start_failure(&hosts[2]).is_some());
    for h in &hosts {
        sim.world().set_version(h, "7.0.12");
    }
    sim.world().tick();
    let p = version::plan("mongo:7.0", &running("mongo:7.0").await);
    assert_eq!(p.fcv, Some((7, 0)), "{p:?}");
    assert_eq!(
        step(p.fcv).await,
        Outcome::FeatureCompatibilitySet {
            version: "7.0".into()
        }
    );
    let p = version::plan("mongo:7.0", &running("mongo:7.0").await);
    assert_eq!(p.progress, Progress::Current);
    assert_eq!(sim.world().set("rs").unwrap().fcv, (7, 0));
}

/// Wait (up to 10 s) until no network connection to `host` is open.
async fn closed(sim: &Simulator, host: &str) -> usize {
    for _ in 0..100 {
        if sim.open_connections(host) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sim.open_connections(host)
}

/// The agent's driver clients: a reconcile logs in to a member once per user it needs and the
/// next reconcile not at all (it reuses the authenticated connections); a rotation replaces the
/// rotated user's client instead of adding one; a member that is no longer part of the object
/// loses its clients, and nothing dials it any more.
#[tokio::test]
async fn a_reconcile_logs_in_once_rotations_and_departed_members_leave_no_client() {
    let sim = manual_sim();
    let hosts = vec![
        sim.serve_new("127.0.0.1").await.unwrap(),
        sim.serve_new("127.0.0.1").await.unwrap(),
    ];
    let known = BTreeSet::new();
    let setup = Agent::new(&sim, goal(entries(&hosts, |_| "a"), &hosts, true));
    converge_all(&sim, &[&setup], &known).await;
    drop(setup);

    // A new agent (a restart) on the converged set: one login per (member, user) it uses.
    let mut agent = Agent::new(&sim, goal(entries(&hosts, |_| "a"), &hosts, true));
    let before = sim.logins();
    let (o, _) = agent.step(&known).await.unwrap();
    assert_eq!(o, Outcome::Done);
    let clients = agent.anonymous.clients().await;
    let logged_in = clients.iter().filter(|(_, u)| u.is_some()).count() as u64;
    assert_eq!(sim.logins() - before, logged_in, "{clients:?}");
    assert!(
        logged_in <= 2 * 3,
        "two members, three users at most: {clients:?}"
    );
    // The next reconciles log in no more.
    let before = sim.logins();
    for _ in 0..3 {
        agent.step(&known).await.unwrap();
    }
    assert_eq!(sim.logins() - before, 0, "a reconcile reuses its clients");

    // Three rotations of the monitor's password: the same clients, the last password.
    for i in 2..5 {
        agent.users.cluster_monitor.password = Password::new(format!("Monitor-Pass-000{i}"));
        agent.step(&known).await.unwrap();
        assert_eq!(agent.anonymous.clients().await, clients, "rotation {i}");
    }
    assert!(
        agent
            .anonymous
            .can_login(&hosts[0], &agent.users.cluster_monitor)
            .await
            .unwrap()
    );

    // Member 1 leaves the object: its clients go and its connections close.
    let kept: BTreeSet<String> = [hosts[0].clone()].into();
    agent.anonymous.retain_hosts(&kept).await;
    assert!(
        agent
            .anonymous
            .clients()
            .await
            .iter()
            .all(|(h, _)| *h == hosts[0]),
        "{:?}",
        agent.anonymous.clients().await
    );
    assert_eq!(closed(&sim, &hosts[1]).await, 0, "nothing dials member 1");
    assert!(sim.open_connections(&hosts[0]) > 0);
    // The object is deleted: with the last adapter its clients go.
    drop(agent);
    assert_eq!(closed(&sim, &hosts[0]).await, 0, "nothing dials member 0");
}

/// Issue 15, "deletes fail open" and scenario 6 at the agent's level. A 1/1/1 set; c's
/// cluster is cut off. (1) a's member object is deleted on its own (the host list carries no
/// teardown mark: the set lives on in b and c): a's member may not leave while c is away (the
/// set of b and c would have no majority), so at every tick the deletion stays blocked, names
/// a's member, and a keeps its vote; the old code deleted anyway after its 40 s budget. After
/// the heal a leaves and only then is released. (2) The whole set is deleted while c is still
/// cut off (the manager marked the host list): b's agent releases at once, c's member is left
/// alone until its cluster returns.
#[tokio::test]
async fn a_deleted_cluster_keeps_its_finalizer_while_it_votes_and_a_whole_set_teardown_completes() {
    use fedstate_mongo_agent::leave::{self, Plan, Verdict};
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let cluster = |i: usize| ["a", "b", "c"][i];
    let desired = entries(&hosts, cluster);
    let formed: Vec<Agent> = (0..3)
        .map(|i| Agent::new(&sim, goal(desired.clone(), &hosts[i..=i], i == 0)))
        .collect();
    let known = BTreeSet::new();
    converge_all(&sim, &formed.iter().collect::<Vec<_>>(), &known).await;
    ticks(&sim, 30);
    let mut a = Agent::with_timeout(&sim, goal(desired.clone(), &hosts[..1], false), CUT);
    a.anonymous = a.anonymous.clone().with_app_name("agent-a");
    a.admin = a.anonymous.with_login(Some(a.users.cluster_admin.clone()));
    sim.world()
        .split(&hosts[2..], &["agent-c".to_owned()])
        .unwrap();
    // What leave::plan makes of a's deleted object: the other clusters' entries stay.
    let leaving = || {
        let mut g = a.goal.clone();
        g.desired.hosts.retain(|h| h.cluster != "a");
        g.desired.ready.clear();
        Plan::Leave(g)
    };
    let a_votes = |sim: &Simulator| voters(sim).contains(&hosts[0]);

    let mut checked = 0u32;
    let mut violations: Vec<String> = Vec::new();
    for t in 1..=8u64 {
        sim.world().tick();
        let verdict = leave::run(&a.admin, &a.pods, leaving(), Duration::from_secs(1)).await;
        match &verdict {
            Verdict::Released(why) => {
                violations.push(format!("tick {t}: released ({why}) while c is cut off"))
            }
            Verdict::Blocked(b) if b.members != [hosts[0].clone()] => {
                violations.push(format!("tick {t}: blocked on {:?}", b.members))
            }
            Verdict::Blocked(_) => {}
        }
        if !a_votes(&sim) {
            violations.push(format!("tick {t}: a no longer votes while c is cut off"));
        }
        if sim.world().set("rs").unwrap().forced_reconfigs != 0 {
            violations.push(format!("tick {t}: a forced reconfig"));
        }
        checked += 1;
    }
    // The condition names the member and what to do, and no password.
    if let Verdict::Blocked(b) =
        leave::run(&a.admin, &a.pods, leaving(), Duration::from_secs(1)).await
    {
        let mdb: fedstate_api::v1alpha1::MongoDB = serde_json::from_value(serde_json::json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": {"members": 1},
        }))
        .unwrap();
        let m = leave::blocked_message(&mdb, &b);
        assert!(m.contains(&hosts[0]) && m.contains("bring back"), "{m}");
        assert!(!m.contains("Pass-0001"), "{m}");
    }

    sim.world().heal();
    let mut released = false;
    for t in 1..=30u64 {
        sim.world().tick();
        match leave::run(&a.admin, &a.pods, leaving(), Duration::from_secs(2)).await {
            Verdict::Released(_) => {
                if a_votes(&sim) {
                    violations.push(format!("heal tick {t}: released while a still votes"));
                }
                released = true;
                break;
            }
            Verdict::Blocked(_) => {}
        }
        checked += 1;
    }
    if !released {
        violations.push("a never left the set after the heal".into());
    }
    {
        let w = sim.world();
        let set = w.set("rs").unwrap();
        let left: BTreeSet<&str> = set.config.members.iter().map(|m| m.host.as_str()).collect();
        if left != hosts[1..].iter().map(String::as_str).collect() {
            violations.push(format!("members after a left: {left:?}"));
        }
    }

    // (2) The whole set goes while c is cut off: the mark releases b at once, nothing changes
    // the set (c's member keeps its data and is torn down when its cluster returns).
    sim.world()
        .split(&hosts[2..], &["agent-c".to_owned()])
        .unwrap();
    let before = sim.world().set("rs").unwrap().config.version;
    let verdict = leave::run(
        &formed[1].admin,
        &formed[1].pods,
        Plan::Release("the whole replica set is being deleted".into()),
        Duration::from_secs(1),
    )
    .await;
    if !matches!(verdict, Verdict::Released(_)) {
        violations.push(format!("teardown: b {verdict:?}"));
    }
    if sim.world().set("rs").unwrap().config.version != before {
        violations.push("teardown changed the set".into());
    }
    checked += 1;
    eprintln!(
        "delete while one cluster is unreachable: invariants: {checked} ticks checked, violations: {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

/// A single-cluster set whose two secondaries stop answering (their pods still Running: the
/// agent keeps its connections to them) is offered the forced reconfig, and nothing is forced
/// without the opt-in. Before the simulator closed a stopped node's open connections, the
/// agent read the set's status from one of the stopped members, which still called itself
/// SECONDARY, and waited for an election for ever.
#[tokio::test]
async fn losing_two_own_members_of_three_offers_the_forced_reconfig() {
    let sim = manual_sim();
    let mut hosts = Vec::new();
    for _ in 0..3 {
        hosts.push(sim.serve_new("127.0.0.1").await.unwrap());
    }
    let known = BTreeSet::new();
    // The default client timeout: a stopped member answers at once (a closed port), and a
    // short one fails the convergence on a loaded machine.
    let agent = Agent::new(&sim, goal(entries(&hosts, |_| "a"), &hosts, true));
    converge_all(&sim, &[&agent], &known).await;
    let primary = sim.world().set("rs").unwrap().primary.clone().unwrap();
    let lost: BTreeSet<String> = hosts.iter().filter(|h| **h != primary).cloned().collect();
    for h in &lost {
        sim.world().set_up(h, false);
    }
    let mut offered = None;
    for _ in 0..3 {
        ticks(&sim, 1);
        let (o, _) = agent.step(&known).await.unwrap();
        if let Outcome::QuorumLost { unreachable, .. } = o {
            offered = Some(unreachable.into_iter().collect::<BTreeSet<_>>());
            break;
        }
    }
    assert_eq!(
        offered.as_ref(),
        Some(&lost),
        "QuorumLost naming both lost members"
    );
    assert_eq!(sim.world().set("rs").unwrap().forced_reconfigs, 0);
}
