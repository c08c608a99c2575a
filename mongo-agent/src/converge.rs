//! One step of replica-set management: observe through the adapter, ask the pure planner, apply
//! its single step. The controller calls [`step`] on every reconcile and requeues until
//! [`Outcome::Done`]; users and passwords are handled by [`ensure_users`].

use std::collections::{BTreeMap, BTreeSet};

use mongodb::bson::{Bson, doc};

use crate::inpod::InPod;
use crate::planner::{self, Desired, ForceOptIn, HostProbe, InitDecision, Step};
use crate::replset::{Login, Observation, ReplSetAdmin, ReplSetError, render_config};

/// What one agent wants of its set.
#[derive(Clone, Debug)]
pub struct SetGoal {
    pub set_name: String,
    /// This cluster initiates the set (the manager sets it on exactly one cluster).
    pub rs_init: bool,
    pub desired: Desired,
    pub force: ForceOptIn,
    /// The feature compatibility version to set once the set is otherwise converged
    /// ([`crate::version::plan`]).
    pub fcv: Option<(u32, u32)>,
}

/// What the step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Initiated {
        on: String,
    },
    Reconfigured {
        version: i64,
        reason: String,
    },
    SteppedDown {
        host: String,
    },
    /// A forced reconfig from config version `from` to `version` (the user's one-shot opt-in).
    ForcedReconfig {
        on: String,
        from: i64,
        version: i64,
    },
    /// The set's feature compatibility version was set (an upgrade or downgrade step).
    FeatureCompatibilitySet {
        version: String,
    },
    /// A cluster-wide default write concern was set (MongoDB 5.0+ needs one before a reconfig
    /// that changes the implicit default, such as adding an arbiter).
    DefaultWriteConcernSet {
        reason: String,
    },
    Waiting(String),
    /// A desired host belongs to another replica set: nothing is done until the user looks.
    ForeignSet {
        host: String,
        set_name: String,
    },
    QuorumLost {
        reachable_voters: usize,
        voters: usize,
        config_version: i64,
        /// The voters that do not answer.
        unreachable: Vec<String>,
    },
    Done,
}

impl Outcome {
    /// Whether the set changed (so the caller should look again soon).
    pub fn changed(&self) -> bool {
        matches!(
            self,
            Self::Initiated { .. }
                | Self::Reconfigured { .. }
                | Self::SteppedDown { .. }
                | Self::ForcedReconfig { .. }
                | Self::DefaultWriteConcernSet { .. }
                | Self::FeatureCompatibilitySet { .. }
        )
    }
}

/// Observe the set, then take the planner's one next step. Initiating runs inside the chosen
/// member's pod ([`InPod`]): with access control on and no user yet, only the localhost
/// exception allows it.
pub async fn step(
    admin: &ReplSetAdmin,
    in_pod: &impl InPod,
    goal: &SetGoal,
    known: &BTreeSet<String>,
) -> Result<(Outcome, Observation), ReplSetError> {
    let mut hosts: BTreeSet<String> = goal.desired.hosts.iter().map(|h| h.host.clone()).collect();
    hosts.extend(goal.desired.own.iter().cloned());
    hosts.extend(known.iter().cloned());
    let obs = admin.observe(&goal.set_name, &hosts).await?;
    let Some(config) = obs.observed.config.clone() else {
        // Every host the set ever had is asked before an initiate (`planner::decide_init`).
        let answers = futures::future::join_all(hosts.iter().map(|h| admin.probe(h))).await;
        let probes: BTreeMap<String, HostProbe> = hosts.iter().cloned().zip(answers).collect();
        let decision =
            planner::decide_init(&goal.set_name, goal.rs_init, &goal.desired, known, &probes);
        let outcome = match decision {
            InitDecision::Initiate { on, config } => {
                let cmd = doc! {"replSetInitiate": render_config(None, &config)};
                in_pod.run(&on, &cmd, false).await?;
                tracing::info!(set = %goal.set_name, %on, "initiated the replica set");
                Outcome::Initiated { on }
            }
            InitDecision::Join { via } => {
                Outcome::Waiting(format!("joining the set through {via}"))
            }
            InitDecision::ForeignSet { host, set_name } => Outcome::ForeignSet { host, set_name },
            InitDecision::Wait(w) => Outcome::Waiting(w),
        };
        return Ok((outcome, obs));
    };
    let outcome = match planner::next_step(&goal.desired, &obs.observed, goal.force) {
        Step::Done => match (goal.fcv, obs.primary.clone()) {
            (Some(fcv), Some(primary)) => {
                // 7.0+ wants `confirm: true`, older servers refuse the unknown field.
                let confirm = obs.observed.server.version.is_some_and(|v| v >= (7, 0));
                admin
                    .set_feature_compatibility(&primary, fcv, confirm)
                    .await?;
                let version = format!("{}.{}", fcv.0, fcv.1);
                tracing::info!(set = %goal.set_name, %version, "set the feature compatibility version");
                Outcome::FeatureCompatibilitySet { version }
            }
            _ => Outcome::Done,
        },
        Step::Wait(w) => Outcome::Waiting(w),
        Step::QuorumLost {
            reachable_voters,
            voters,
            config_version,
            unreachable,
        } => Outcome::QuorumLost {
            reachable_voters,
            voters,
            config_version,
            unreachable,
        },
        Step::Reconfig {
            config: next,
            reason,
        } => {
            let Some(primary) = obs.primary.clone() else {
                return Ok((Outcome::Waiting("no primary".into()), obs));
            };
            match admin
                .reconfig(&primary, obs.raw_config.as_ref(), &next, false)
                .await
            {
                Ok(()) => {}
                // The set was not ready within maxTimeMS, or the new config has not reached a
                // majority yet: the next observation tells.
                Err(e) if e.is_server_timeout() => {
                    return Ok((Outcome::Waiting(format!("{reason}: {e}")), obs));
                }
                Err(e) => return Err(e),
            }
            tracing::info!(set = %goal.set_name, version = next.version, %reason, "reconfigured");
            Outcome::Reconfigured {
                version: next.version,
                reason,
            }
        }
        Step::SetDefaultWriteConcern { reason } => {
            let Some(primary) = obs.primary.clone() else {
                return Ok((Outcome::Waiting("no primary".into()), obs));
            };
            admin.set_default_write_concern(&primary).await?;
            tracing::info!(set = %goal.set_name, %reason, "set the cluster-wide default write concern to majority");
            Outcome::DefaultWriteConcernSet { reason }
        }
        Step::StepDown { host } => {
            admin.step_down(&host).await?;
            tracing::info!(set = %goal.set_name, %host, "stepped the primary down");
            Outcome::SteppedDown { host }
        }
        Step::ForceReconfig { config: next, on } => {
            admin
                .reconfig(&on, obs.raw_config.as_ref(), &next, true)
                .await?;
            tracing::warn!(set = %goal.set_name, %on, from = config.version, "forced reconfig by the user's opt-in");
            Outcome::ForcedReconfig {
                on,
                from: config.version,
                version: next.version,
            }
        }
    };
    Ok((outcome, obs))
}

/// Built-in roles of the users the agent manages.
pub const ROOT_ROLES: &[&str] = &["root"];
/// The agent's own user: replica-set administration, and user administration for rotations.
pub const CLUSTER_ADMIN_ROLES: &[&str] = &["clusterAdmin", "userAdminAnyDatabase"];
/// The exporter's user.
pub const CLUSTER_MONITOR_ROLES: &[&str] = &["clusterMonitor"];

/// The three users of a set, with the passwords their Secrets hold now.
#[derive(Clone, Debug)]
pub struct Users {
    pub root: Login,
    pub cluster_admin: Login,
    pub cluster_monitor: Login,
}

/// What [`ensure_users`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub created: Vec<String>,
    pub rotated: Vec<String>,
}

/// Make the users exist with the passwords of their Secrets, on the primary: root inside the
/// primary's pod through the localhost exception when no user exists yet ([`InPod`], the
/// password read from the pod's credentials file), the others with root or the cluster admin,
/// and `updateUser` when a Secret's password changed (rotation).
pub async fn ensure_users(
    base: &ReplSetAdmin,
    in_pod: &impl InPod,
    primary: &str,
    users: &Users,
) -> Result<UserChanges, ReplSetError> {
    let mut changes = UserChanges::default();
    let admin_ok = base.can_login(primary, &users.cluster_admin).await?;
    let actor = if admin_ok {
        users.cluster_admin.clone()
    } else if base.can_login(primary, &users.root).await? {
        users.root.clone()
    } else {
        // No login works: either no user exists yet (localhost exception), or root's password
        // was rotated and the cluster admin's too (then only the user can help).
        let roles: Vec<Bson> = ROOT_ROLES
            .iter()
            .map(|r| Bson::Document(doc! {"role": *r, "db": "admin"}))
            .collect();
        let cmd =
            doc! {"createUser": &users.root.user, "roles": roles, "mechanisms": ["SCRAM-SHA-256"]};
        match in_pod.run(primary, &cmd, true).await {
            Ok(()) => {
                changes.created.push(users.root.user.clone());
                users.root.clone()
            }
            // The exception is closed (a user exists) or root exists with another password.
            Err(e) if matches!(e.code(), Some(13 | 51003)) || e.is_unauthorized() => {
                return Err(ReplSetError::Auth {
                    host: primary.to_owned(),
                    command: "login",
                    user: users.root.user.clone(),
                });
            }
            Err(e) => return Err(e),
        }
    };
    let by = base.with_login(Some(actor.clone()));
    for (login, roles) in [
        (&users.cluster_admin, CLUSTER_ADMIN_ROLES),
        (&users.cluster_monitor, CLUSTER_MONITOR_ROLES),
        (&users.root, ROOT_ROLES),
    ] {
        if login.user == actor.user {
            continue;
        }
        if !by.user_exists(primary, &login.user).await? {
            match by.create_user(primary, login, roles).await {
                Ok(()) => changes.created.push(login.user.clone()),
                // Another agent was faster.
                Err(e) if e.code() == Some(51003) => {}
                Err(e) => return Err(e),
            }
        } else if !base.can_login(primary, login).await? {
            by.set_password(primary, login).await?;
            changes.rotated.push(login.user.clone());
        }
    }
    Ok(changes)
}
