//! What a deleted `MongoDB`'s agent does before its finalizer goes.
//!
//! The rule: the finalizer never goes while one of this cluster's members is still a voting
//! member of a replica set that lives on in other clusters (deleting its workload then takes a
//! vote from the set, and with another member down, its majority). Two deletions look alike
//! here and are told apart by the host list:
//! * **the whole set is deleted** (the `MultiCloudMongoDB`): the manager marks the host list
//!   ([`fedstate_api::hostconf::TEARDOWN_KEY`]) before it deletes the member objects, so every
//!   agent releases at once, even while another cluster is unreachable (nothing lives on; the
//!   manager's own finalizer waits for that cluster, and the volumes are kept);
//! * **one cluster leaves a set that lives on** (no mark): its members must leave the set first
//!   (primary stepped down first). Until they have, the finalizer stays, the `Deleting`
//!   condition names them and says why, and the agent looks again with backoff.
//!
//! A host list that no longer names another cluster's member (single-cluster use, the last
//! cluster, or the manager dropped the lost ones) means the set lives on nowhere else. A host
//! list that cannot be read is no such proof: then own members are asked directly, and the
//! finalizer goes only once none of them votes in a config with members of other clusters.

use std::collections::BTreeSet;
use std::time::Duration;

use fedstate_api::condition::{Condition, ConditionStatus, find_condition, set_condition, types};
use fedstate_api::v1alpha1::{MongoDB, MongoDBStatus};
use kube::ResourceExt;

use crate::controller::Settings;
use crate::converge::{self, Outcome, SetGoal};
use crate::decide;
use crate::gather::Seen;
use crate::inpod::InPod;
use crate::planner::{Desired, ForceOptIn, HostProbe, RsConfig};
use crate::replset::ReplSetAdmin;
use crate::resources;

/// What is needed before the finalizer may go.
#[derive(Clone, Debug)]
pub enum Plan {
    /// Nothing of this cluster votes in a set that lives on elsewhere.
    Release(String),
    /// Take `goal.desired.own` out of the set (the other clusters' members stay).
    Leave(SetGoal),
    /// The host list cannot be read (`why`): ask own members whether they still vote with
    /// others.
    Check {
        set_name: String,
        own: BTreeSet<String>,
        why: String,
    },
    /// Cannot be done now.
    Blocked(Blocked),
}

/// Why the finalizer stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// This cluster's members that still (or may still) vote in the set.
    pub members: Vec<String>,
    pub why: String,
}

/// The result of [`run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Released(String),
    Blocked(Blocked),
}

/// Own members' addresses: their Services, the addresses their StatefulSets recorded, and the
/// host list's entries of this cluster.
fn own_hosts(mdb: &MongoDB, seen: &Seen, settings: &Settings) -> BTreeSet<String> {
    let members = decide::members(&seen.services, &seen.pods, &settings.addressing);
    let mut own = members.own();
    own.extend(
        seen.statefulsets
            .iter()
            .filter_map(|s| s.annotations().get(resources::MEMBER_HOST_ANNOTATION))
            .cloned(),
    );
    if let (Some(cluster), Ok(hosts)) = (
        settings.cluster_name.as_deref(),
        decide::hosts(mdb, seen, &members, settings.cluster_name.as_deref()),
    ) {
        own.extend(
            hosts
                .into_iter()
                .filter(|h| h.cluster == cluster)
                .map(|h| h.host),
        );
    }
    own
}

/// The plan for a deleted object (pure). `logged_in`: the agent's login is known.
pub fn plan(mdb: &MongoDB, seen: &Seen, settings: &Settings, logged_in: bool) -> Plan {
    if seen.teardown {
        return Plan::Release(
            "the whole replica set is being deleted (the host list is marked for teardown)".into(),
        );
    }
    // Recorded while the object was live: the host list may be gone by now (the manager
    // deletes it once Karmada removed the member objects' Works, which does not wait for them).
    let recorded = mdb
        .status
        .as_ref()
        .and_then(|s| find_condition(&s.conditions, types::TEARDOWN_MARKED))
        .is_some_and(Condition::is_true);
    if recorded {
        return Plan::Release(
            "the whole replica set is being deleted (this object recorded the host list's teardown mark: TeardownMarked)".into(),
        );
    }
    let own = own_hosts(mdb, seen, settings);
    if own.is_empty() {
        return Plan::Release("this cluster runs no member".into());
    }
    let members = decide::members(&seen.services, &seen.pods, &settings.addressing);
    let hosts = decide::hosts(mdb, seen, &members, settings.cluster_name.as_deref());
    let others: Option<Vec<_>> = hosts.as_ref().ok().map(|h| {
        h.iter()
            .filter(|e| !own.contains(&e.host))
            .cloned()
            .collect()
    });
    if others.as_ref().is_some_and(Vec::is_empty) {
        return Plan::Release(
            "no member of another cluster is in the host list: the set does not live on elsewhere"
                .into(),
        );
    }
    let blocked = |why: String| {
        Plan::Blocked(Blocked {
            members: own.iter().cloned().collect(),
            why,
        })
    };
    if mdb.spec.pause == Some(true) {
        return blocked(
            "spec.pause is set, so the agent does not change the replica set and these members cannot leave it; unset spec.pause".into(),
        );
    }
    if !logged_in {
        return blocked(format!(
            "waiting for Secret {} to log in to the set",
            resources::credentials_secret_name(&mdb.name_any())
        ));
    }
    let set_name = resources::set_name(mdb);
    match (others, hosts) {
        (Some(others), _) => Plan::Leave(SetGoal {
            set_name,
            rs_init: false,
            desired: Desired {
                hosts: others,
                own,
                ready: BTreeSet::new(),
            },
            force: ForceOptIn(None),
            fcv: None,
        }),
        (None, Err(why)) => Plan::Check { set_name, own, why },
        (None, Ok(_)) => unreachable!("others is Some whenever the host list was read"),
    }
}

/// Own members that vote in `config` while it also holds another cluster's member.
pub fn shared_voters(config: &RsConfig, own: &BTreeSet<String>) -> Vec<String> {
    if config.members.iter().all(|m| own.contains(&m.host)) {
        return Vec::new();
    }
    config
        .members
        .iter()
        .filter(|m| m.is_voter() && own.contains(&m.host))
        .map(|m| m.host.clone())
        .collect()
}

/// Carry the plan out: leave the set step by step for at most `budget` (a reconcile must not
/// hang; the next one continues), or check own members.
pub async fn run(
    admin: &ReplSetAdmin,
    in_pod: &impl InPod,
    plan: Plan,
    budget: Duration,
) -> Verdict {
    match plan {
        Plan::Release(why) => Verdict::Released(why),
        Plan::Blocked(b) => Verdict::Blocked(b),
        Plan::Leave(goal) => leave(admin, in_pod, &goal, budget).await,
        Plan::Check { set_name, own, why } => check(admin, &set_name, &own, &why).await,
    }
}

async fn leave(
    admin: &ReplSetAdmin,
    in_pod: &impl InPod,
    goal: &SetGoal,
    budget: Duration,
) -> Verdict {
    let own = &goal.desired.own;
    let deadline = tokio::time::Instant::now() + budget;
    let none_pending = BTreeSet::new();
    let mut still: Vec<String> = own.iter().cloned().collect();
    let why = loop {
        let step = converge::step(admin, in_pod, goal, &none_pending);
        match tokio::time::timeout_at(deadline, step).await {
            Err(_elapsed) => {
                break format!(
                    "leaving the replica set did not finish within {} s",
                    budget.as_secs()
                );
            }
            Ok(Ok((outcome, obs))) => {
                if let Some(config) = &obs.observed.config {
                    still = shared_voters(config, own);
                    if config.members.iter().all(|m| !own.contains(&m.host)) {
                        return Verdict::Released(format!(
                            "this cluster's members left the replica set (config version {})",
                            config.version
                        ));
                    }
                }
                match outcome {
                    Outcome::Done => {
                        return Verdict::Released(
                            "this cluster's members left the replica set".into(),
                        );
                    }
                    Outcome::QuorumLost { unreachable, .. } => {
                        break format!(
                            "the set has no primary (unreachable: {}), so it cannot change its members",
                            unreachable.join(", ")
                        );
                    }
                    o if o.changed() => {}
                    Outcome::Waiting(w) if tokio::time::Instant::now() + STEP_PAUSE >= deadline => {
                        break w;
                    }
                    Outcome::ForeignSet { host, set_name } => {
                        break format!("{host} belongs to another replica set ({set_name})");
                    }
                    _ => {}
                }
            }
            Ok(Err(e)) => break e.to_string(),
        }
        tokio::time::sleep(STEP_PAUSE).await;
    };
    if still.is_empty() {
        // Non-voting leftovers take no vote from the set.
        return Verdict::Released(
            "no member of this cluster votes in the replica set any more".into(),
        );
    }
    Verdict::Blocked(Blocked {
        members: still,
        why,
    })
}

const STEP_PAUSE: Duration = Duration::from_millis(500);

async fn check(admin: &ReplSetAdmin, set_name: &str, own: &BTreeSet<String>, why: &str) -> Verdict {
    let blocked = |members: Vec<String>, what: String| {
        Verdict::Blocked(Blocked {
            members,
            why: format!("the host list cannot be read ({why}) and {what}"),
        })
    };
    match admin.observe(set_name, own).await {
        Err(e) => blocked(
            own.iter().cloned().collect(),
            format!("the set cannot be read: {e}"),
        ),
        Ok(obs) => match &obs.observed.config {
            Some(config) => {
                let voting = shared_voters(config, own);
                if voting.is_empty() {
                    Verdict::Released(
                        "no member of this cluster votes with another cluster's members".into(),
                    )
                } else {
                    blocked(
                        voting,
                        "they still vote with other clusters' members".into(),
                    )
                }
            }
            None => {
                let mut silent = Vec::new();
                for h in own {
                    if admin.probe(h).await == HostProbe::Unreachable {
                        silent.push(h.clone());
                    }
                }
                if silent.is_empty() {
                    Verdict::Released("no member of this cluster is in the set".into())
                } else {
                    blocked(silent, "they do not answer".into())
                }
            }
        },
    }
}

/// The `Deleting` condition's message for a blocked deletion: which members, why, what to do.
pub fn blocked_message(mdb: &MongoDB, b: &Blocked) -> String {
    let ns = mdb.namespace().unwrap_or_default();
    format!(
        "the finalizer stays: {} of this cluster still vote in replica set {} that lives on in other clusters, and deleting them now takes their votes from it ({}). The deletion completes by itself once they left the set, which needs the set's primary: bring back the unreachable members or clusters. To delete anyway, accepting that the set loses these votes (with another member down, its majority): kubectl -n {ns} patch mongodb {} --type=json -p '[{{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}}]'",
        b.members.join(", "),
        resources::set_name(mdb),
        b.why,
        mdb.name_any(),
    )
}

/// The status of a blocked deletion: the previous one with `Deleting` saying why.
pub fn blocked_status(mdb: &MongoDB, b: &Blocked, now: jiff::Timestamp) -> MongoDBStatus {
    let mut s = mdb.status.clone().unwrap_or_default();
    let c = Condition::new(
        types::DELETING,
        ConditionStatus::True,
        "LeavingReplicaSet",
        blocked_message(mdb, b),
        mdb.metadata.generation,
    );
    set_condition(&mut s.conditions, c, now);
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::resources::MemberAddressing;

    fn mdb(pause: bool) -> MongoDB {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"members": 1, "memberConfigRef": "db-hostconf", "pause": pause},
        }))
        .unwrap()
    }

    fn settings() -> Settings {
        Settings {
            addressing: MemberAddressing::NodePort {
                vip: "10.0.0.1".into(),
            },
            cluster_name: Some("a".into()),
            namespace: None,
            mongo_timeout: Duration::from_secs(1),
        }
    }

    fn seen(clusters: &[&str], teardown: bool) -> Seen {
        let list: Vec<_> = clusters
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({"host": format!("10.0.0.{}:3000{i}", i + 1), "memberIndex": i,
                    "votes": 1, "priority": 1, "cluster": c})
            })
            .collect();
        Seen {
            hostconf: Some(Ok(serde_json::to_string(&list).unwrap())),
            teardown,
            ..Default::default()
        }
    }

    /// Issue 15: a deleted member object whose set lives on in other clusters leaves it first;
    /// only the manager's whole-set mark, or a host list without another cluster's member,
    /// releases at once.
    #[test]
    fn only_a_whole_set_teardown_or_a_set_living_nowhere_else_releases_at_once() {
        let s = settings();
        let Plan::Leave(goal) = plan(&mdb(false), &seen(&["a", "b", "c"], false), &s, true) else {
            panic!("expected to leave first")
        };
        assert_eq!(
            goal.desired.own,
            BTreeSet::from(["10.0.0.1:30000".to_owned()])
        );
        let others: Vec<&str> = goal
            .desired
            .hosts
            .iter()
            .map(|h| h.cluster.as_str())
            .collect();
        assert_eq!(others, ["b", "c"]);
        assert!(matches!(
            plan(&mdb(false), &seen(&["a", "b", "c"], true), &s, true),
            Plan::Release(_)
        ));
        assert!(matches!(
            plan(&mdb(false), &seen(&["a"], false), &s, true),
            Plan::Release(_)
        ));
        // Paused, or no login: the members cannot leave, so the finalizer stays.
        let Plan::Blocked(b) = plan(&mdb(true), &seen(&["a", "b"], false), &s, true) else {
            panic!("a paused object must not drop its finalizer")
        };
        assert_eq!(b.members, ["10.0.0.1:30000"]);
        assert!(matches!(
            plan(&mdb(false), &seen(&["a", "b"], false), &s, false),
            Plan::Blocked(_)
        ));
        // An unreadable host list proves nothing: own members are asked.
        let mut unreadable = seen(&["a", "b"], false);
        unreadable.hostconf = Some(Err("ConfigMap db-hostconf: gone".into()));
        assert!(matches!(
            plan(&mdb(false), &unreadable, &s, true),
            Plan::Check { .. } | Plan::Release(_)
        ));
    }

    #[test]
    fn only_own_voters_next_to_other_clusters_members_block() {
        use crate::planner::RsMember;
        let m = |id: i32, host: &str, votes: i32| RsMember {
            id,
            host: host.into(),
            votes,
            priority: votes,
            arbiter_only: false,
        };
        let own = BTreeSet::from(["a:1".to_owned(), "a:2".to_owned()]);
        let config = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![m(0, "a:1", 1), m(1, "a:2", 0), m(2, "b:1", 1)],
        };
        assert_eq!(shared_voters(&config, &own), ["a:1"]);
        let alone = RsConfig {
            members: vec![m(0, "a:1", 1), m(1, "a:2", 1)],
            ..config
        };
        assert!(shared_voters(&alone, &own).is_empty());
    }

    /// The mark the agent recorded while the object was live (`TeardownMarked`) releases the
    /// finalizer when the host list is gone by the time the object is deleted: the manager
    /// deletes the host list once Karmada removed the member objects' Works, which does not
    /// wait for their finalizers. Without the record, a gone host list proves nothing and the
    /// members would be asked whether they still vote with the other clusters' (they do, and
    /// nobody is left to take them out: the finalizer stayed forever).
    #[test]
    fn a_recorded_teardown_mark_releases_after_the_host_list_is_gone() {
        let s = settings();
        let mut gone = seen(&["a", "b"], false);
        gone.hostconf = Some(Err("waiting for the host list ConfigMap db-hostconf".into()));
        // Its member's address, as its StatefulSet recorded it.
        gone.statefulsets = vec![
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "db-mongodb-0", "annotations": {
                    resources::MEMBER_HOST_ANNOTATION: "10.0.0.1:30000"}}
            }))
            .unwrap(),
        ];
        let mut m = mdb(false);
        assert!(
            !matches!(plan(&m, &gone, &s, true), Plan::Release(_)),
            "without the record a gone host list must not release"
        );
        let marked = crate::status::compute(
            None,
            &crate::status::Observation {
                name: "db",
                teardown: true,
                ..Default::default()
            },
            jiff::Timestamp::UNIX_EPOCH,
        );
        // Recorded once, kept by every later status (the mark's ConfigMap is gone by then).
        let later = crate::status::compute(
            Some(&marked),
            &crate::status::Observation {
                name: "db",
                ..Default::default()
            },
            jiff::Timestamp::UNIX_EPOCH,
        );
        m.status = Some(later);
        assert!(matches!(plan(&m, &gone, &s, true), Plan::Release(_)));
    }
}
