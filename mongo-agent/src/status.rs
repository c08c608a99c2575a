//! The `MongoDB` status, pure: `replset` from `replSetGetStatus`, `currentInfo`, state and
//! conditions. One sick member makes the object `Degraded` (a condition), not `Error`.

use fedstate_api::condition::{Condition, ConditionStatus, set_condition, types};
use fedstate_api::v1alpha1::{
    CurrentInfo, ForcedReconfigStatus, MongoDBStatus, MongoState, ReplSetMemberStatus,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ResourceRequirements;

use crate::converge::Outcome;
use crate::version::Progress;

/// The user's one-shot opt-in to a forced reconfig: `<generation>/<configVersion>`, the
/// object's generation and the config version `QuorumLost` names. Used once (recorded in
/// `status.forcedReconfig`); a forced reconfig raises the config version, so it cannot apply
/// to a later loss.
pub const FORCE_RECONFIG_ANNOTATION: &str = "middleware.fedstate.io/force-reconfig";

/// The opt-in value for `generation` and `config_version`.
pub fn force_opt_in(generation: Option<i64>, config_version: i64) -> String {
    format!("{}/{config_version}", generation.unwrap_or(0))
}

pub const READY: &str = "ServerReady";
pub const DEGRADED: &str = "Degraded";
pub const QUORUM_LOST: &str = "QuorumLost";
pub const SCALING: &str = "ScalingInProgress";
pub const CONFIG_VALID: &str = "ConfigValid";
/// True while StatefulSets the object no longer wants are kept because their member's address
/// cannot be resolved (whether the member left the set cannot be told).
pub const WORKLOAD_RETAINED: &str = "WorkloadRetained";
/// True while a version change is under way; False with `Refused` when MongoDB does not
/// support the change `spec.image` asks for (the message says what to do).
pub const VERSION_UPGRADE: &str = "VersionUpgrade";

/// What one reconcile learnt.
#[derive(Clone, Debug, Default)]
pub struct Observation<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub generation: Option<i64>,
    pub paused: bool,
    /// A spec problem the user must fix (unsupported image, bad user config).
    pub spec_error: Option<String>,
    /// Replica-set step result, or why it could not run.
    pub outcome: Option<Result<Outcome, String>>,
    pub members: &'a [ReplSetMemberStatus],
    /// Own member pods running now.
    pub running: i32,
    pub resources: Option<ResourceRequirements>,
    pub ignored_config: &'a [String],
    /// Where a version change stands (`None`: not looked at in this reconcile).
    pub version: Option<&'a Progress>,
    /// The pod revision every own member runs (`status.currentRevision`; `None`: not one yet).
    /// The manager rolls the next cluster only once it is the one it gave this cluster.
    pub revision: Option<String>,
    /// Unwanted StatefulSets kept because their member's address is unknown (`None`: not
    /// looked at in this reconcile).
    pub retained: Option<&'a [String]>,
    /// The host list carries the manager's whole-set teardown mark: recorded as
    /// `TeardownMarked`, which stays.
    pub teardown: bool,
    /// The rolling restart of own members: `RollingUpdate` (in progress, reason, message);
    /// `None`: not looked at in this reconcile.
    pub rolling: Option<(bool, &'static str, String)>,
}

fn cond(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    g: Option<i64>,
) -> Condition {
    Condition::new(type_, ConditionStatus::from_bool(ok), reason, message, g)
}

/// The message of `QuorumLost`: which voters are unreachable, what a force costs and the exact
/// opt-in. No password: the command names the object and the opt-in only.
pub fn quorum_lost_message(
    name: &str,
    namespace: &str,
    generation: Option<i64>,
    reachable: usize,
    voters: usize,
    config_version: i64,
    unreachable: &[String],
) -> String {
    let who = if unreachable.is_empty() {
        String::new()
    } else {
        format!(" (unreachable: {})", unreachable.join(", "))
    };
    format!(
        "only {reachable} of {voters} voting members are reachable{who}, so the replica set has no primary and cannot change its members; FedState never forces a reconfig on its own. If the unreachable members will not come back, allow one forced reconfig of config version {config_version} from the reachable members: writes acknowledged after the last majority commit that the reachable members did not replicate may be rolled back, and the unreachable members are removed from the set (the opt-in is used once): kubectl -n {namespace} annotate mongodb {name} {FORCE_RECONFIG_ANNOTATION}={} --overwrite",
        force_opt_in(generation, config_version)
    )
}

/// The new status from the previous one and this reconcile's observation.
pub fn compute(
    previous: Option<&MongoDBStatus>,
    o: &Observation<'_>,
    now: Timestamp,
) -> MongoDBStatus {
    let mut s = previous.cloned().unwrap_or_default();
    let g = o.generation;
    s.observed_generation = g;
    if !o.members.is_empty() {
        s.replset = o.members.to_vec();
    }
    s.current_revision = o.revision.clone();
    s.current_info = Some(CurrentInfo {
        members: o.running,
        resources: o.resources.clone(),
        custom_config: None,
    });
    let sick: Vec<&str> = o
        .members
        .iter()
        .filter(|m| m.health == 0 || !matches!(m.state, 1 | 2 | 7))
        .map(|m| m.name.as_str())
        .collect();
    if let Some(Ok(Outcome::ForcedReconfig { on, from, version })) = &o.outcome {
        s.forced_reconfig = Some(ForcedReconfigStatus {
            opt_in: force_opt_in(g, *from),
            member: on.clone(),
            from_version: *from,
            version: *version,
            time: now.to_string(),
        });
    }
    let mut conds = std::mem::take(&mut s.conditions);
    let mut set = |c: Condition| {
        set_condition(&mut conds, c, now);
    };
    if let Some((on, reason, message)) = &o.rolling {
        set(cond(types::ROLLING_UPDATE, *on, reason, message.clone(), g));
    }
    if o.teardown {
        set(cond(
            types::TEARDOWN_MARKED,
            true,
            "WholeSetTeardown",
            "the MultiCloudMongoDB is being deleted with every member: once this object is deleted, its members go without leaving the replica set first",
            g,
        ));
    }
    if !o.ignored_config.is_empty() {
        set(cond(
            CONFIG_VALID,
            false,
            "IgnoredConfig",
            format!(
                "spec.config: {} are not mongod configuration paths (use dotted names such as operationProfiling.mode) and were ignored",
                o.ignored_config.join(", ")
            ),
            g,
        ));
    } else {
        set(cond(CONFIG_VALID, true, "Valid", "", g));
    }
    let state = if o.paused {
        set(cond(
            READY,
            false,
            "Paused",
            "spec.pause is true: the agent changes nothing",
            g,
        ));
        MongoState::Pause
    } else if let Some(e) = &o.spec_error {
        set(cond(READY, false, "InvalidSpec", e.clone(), g));
        MongoState::Error
    } else {
        match &o.outcome {
            None => MongoState::Reconciling,
            Some(Err(e)) => {
                set(cond(READY, false, "ReplicaSetUnreachable", e.clone(), g));
                MongoState::Reconciling
            }
            Some(Ok(outcome)) => outcome_state(outcome, o, g, &mut set),
        }
    };
    match o.version {
        Some(Progress::Current) => set(cond(VERSION_UPGRADE, false, "Current", "", g)),
        Some(Progress::Changing(what)) => {
            set(cond(VERSION_UPGRADE, true, "InProgress", what.clone(), g))
        }
        Some(Progress::Refused(why)) => {
            set(cond(VERSION_UPGRADE, false, "Refused", why.clone(), g))
        }
        None => {}
    }
    match o.retained {
        Some([]) => set(cond(WORKLOAD_RETAINED, false, "NoneRetained", "", g)),
        Some(kept) => set(cond(
            WORKLOAD_RETAINED,
            true,
            "MemberAddressUnknown",
            format!(
                "StatefulSets {} are no longer wanted, but their member's address cannot be resolved (no Service with a NodePort, none recorded on the StatefulSet), so the agent cannot tell whether the member left the replica set and keeps them; restore the member's Service, or delete the StatefulSet by hand once rs.conf() no longer lists the member",
                kept.join(", ")
            ),
            g,
        )),
        None => {}
    }
    if sick.is_empty() {
        set(cond(DEGRADED, false, "AllMembersHealthy", "", g));
    } else {
        set(cond(
            DEGRADED,
            true,
            "MembersUnhealthy",
            format!("not healthy: {}", sick.join(", ")),
            g,
        ));
    }
    s.conditions = conds;
    s.state = Some(state);
    s
}

/// The conditions a replica-set step's outcome sets, and the object's state.
fn outcome_state(
    outcome: &Outcome,
    o: &Observation<'_>,
    g: Option<i64>,
    set: &mut impl FnMut(Condition),
) -> MongoState {
    let lost = matches!(outcome, Outcome::QuorumLost { .. });
    match outcome {
        Outcome::QuorumLost {
            reachable_voters,
            voters,
            config_version,
            unreachable,
        } => set(cond(
            QUORUM_LOST,
            true,
            "MajorityUnreachable",
            quorum_lost_message(
                o.name,
                o.namespace,
                g,
                *reachable_voters,
                *voters,
                *config_version,
                unreachable,
            ),
            g,
        )),
        _ => set(cond(QUORUM_LOST, false, "MajorityReachable", "", g)),
    }
    let done = *outcome == Outcome::Done;
    set(cond(
        SCALING,
        !done && !lost,
        if done { "Converged" } else { "InProgress" },
        match outcome {
            Outcome::Waiting(w) => w.clone(),
            Outcome::Reconfigured { reason, version } => {
                format!("config version {version}: {reason}")
            }
            Outcome::Initiated { on } => format!("initiated on {on}"),
            Outcome::SteppedDown { host } => format!("stepped down {host}"),
            Outcome::FeatureCompatibilitySet { version } => {
                format!("set featureCompatibilityVersion {version}")
            }
            Outcome::DefaultWriteConcernSet { reason } => {
                format!("set the cluster-wide default write concern to majority ({reason})")
            }
            Outcome::ForcedReconfig { on, from, version } => format!(
                "forced reconfig on {on} from config version {from} to {version} by the user's one-shot opt-in {}",
                force_opt_in(g, *from)
            ),
            Outcome::ForeignSet { host, set_name } => format!(
                "{host} already belongs to replica set {set_name}; FedState will not join or re-initiate it"
            ),
            _ => String::new(),
        },
        g,
    ));
    match outcome {
        Outcome::ForeignSet { .. } => {
            set(cond(
                READY,
                false,
                "ForeignReplicaSet",
                "a desired host belongs to another replica set",
                g,
            ));
            MongoState::Error
        }
        Outcome::QuorumLost { .. } => {
            set(cond(READY, false, "QuorumLost", "no primary", g));
            MongoState::Error
        }
        Outcome::Done => {
            set(cond(READY, true, "Running", "", g));
            MongoState::Running
        }
        _ => MongoState::Reconciling,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn member(i: i32, health: i32, state: i32) -> ReplSetMemberStatus {
        ReplSetMemberStatus {
            id: i,
            name: format!("127.0.1.{i}:30000"),
            health,
            state,
            state_str: String::new(),
            sync_source_host: None,
            syncing_to: None,
        }
    }

    fn find<'a>(s: &'a MongoDBStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn one_sick_member_is_degraded_not_error() {
        let members = [member(0, 1, 1), member(1, 1, 2), member(2, 0, 8)];
        let o = Observation {
            name: "demo",
            namespace: "ns",
            generation: Some(3),
            outcome: Some(Ok(Outcome::Done)),
            members: &members,
            running: 1,
            ..Default::default()
        };
        let s = compute(None, &o, Timestamp::UNIX_EPOCH);
        assert_eq!(s.state, Some(MongoState::Running));
        assert!(find(&s, DEGRADED).is_true());
        assert!(
            find(&s, DEGRADED)
                .message
                .as_ref()
                .unwrap()
                .contains("127.0.1.2:30000")
        );
        assert_eq!(s.replset.len(), 3);
        assert_eq!(s.observed_generation, Some(3));
    }

    /// A workload kept because its member's address is unknown is named, with what to do.
    #[test]
    fn a_retained_workload_is_reported_until_it_is_resolved() {
        let kept = ["demo-mongodb-4".to_owned()];
        let o = Observation {
            name: "demo",
            outcome: Some(Ok(Outcome::Done)),
            retained: Some(&kept),
            ..Default::default()
        };
        let s = compute(None, &o, Timestamp::UNIX_EPOCH);
        let c = find(&s, WORKLOAD_RETAINED);
        assert!(c.is_true());
        let message = c.message.as_ref().unwrap();
        assert!(
            message.contains("demo-mongodb-4") && message.contains("restore the member's Service")
        );
        let o = Observation {
            retained: Some(&[]),
            ..o
        };
        assert!(
            !find(
                &compute(Some(&s), &o, Timestamp::UNIX_EPOCH),
                WORKLOAD_RETAINED
            )
            .is_true()
        );
    }

    #[test]
    fn quorum_lost_tells_the_exact_opt_in() {
        let o = Observation {
            name: "demo",
            namespace: "ns",
            generation: Some(7),
            outcome: Some(Ok(Outcome::QuorumLost {
                reachable_voters: 1,
                voters: 3,
                config_version: 12,
                unreachable: vec!["10.0.0.2:30001".into(), "10.0.0.3:30002".into()],
            })),
            ..Default::default()
        };
        let s = compute(None, &o, Timestamp::UNIX_EPOCH);
        assert_eq!(s.state, Some(MongoState::Error));
        let msg = find(&s, QUORUM_LOST).message.clone().unwrap();
        assert!(
            msg.contains(
                "kubectl -n ns annotate mongodb demo middleware.fedstate.io/force-reconfig=7/12"
            ),
            "{msg}"
        );
        assert!(msg.contains("1 of 3"));
        // Issue 15: which members are gone, and what a force costs.
        assert!(
            msg.contains("(unreachable: 10.0.0.2:30001, 10.0.0.3:30002)"),
            "{msg}"
        );
        assert!(
            msg.contains("writes acknowledged after the last majority commit")
                && msg.contains("may be rolled back"),
            "{msg}"
        );
        assert!(!msg.to_lowercase().contains("password"), "{msg}");
        assert_eq!(s.forced_reconfig, None);
    }

    #[test]
    fn a_forced_reconfig_is_recorded_and_the_record_stays() {
        let forced = Observation {
            name: "demo",
            namespace: "ns",
            generation: Some(7),
            outcome: Some(Ok(Outcome::ForcedReconfig {
                on: "h0:27017".into(),
                from: 12,
                version: 13,
            })),
            ..Default::default()
        };
        let s = compute(None, &forced, Timestamp::UNIX_EPOCH);
        let record = s.forced_reconfig.clone().unwrap();
        assert_eq!(
            (record.opt_in.as_str(), record.from_version, record.version),
            ("7/12", 12, 13)
        );
        let later = Observation {
            outcome: Some(Ok(Outcome::Done)),
            ..forced
        };
        assert_eq!(
            compute(Some(&s), &later, Timestamp::UNIX_EPOCH).forced_reconfig,
            Some(record)
        );
    }

    #[test]
    fn pause_and_spec_errors_win() {
        let o = Observation {
            name: "demo",
            paused: true,
            outcome: Some(Ok(Outcome::Done)),
            ..Default::default()
        };
        assert_eq!(
            compute(None, &o, Timestamp::UNIX_EPOCH).state,
            Some(MongoState::Pause)
        );
        let o = Observation {
            name: "demo",
            spec_error: Some("spec.image: image \"mongo:3.6\" is MongoDB 3.6; supported versions are 4.4 to 8.0 (e.g. mongo:7.0)".into()),
            ..Default::default()
        };
        let s = compute(None, &o, Timestamp::UNIX_EPOCH);
        assert_eq!(s.state, Some(MongoState::Error));
        assert!(
            find(&s, READY)
                .message
                .as_ref()
                .unwrap()
                .contains("spec.image")
        );
    }
}
