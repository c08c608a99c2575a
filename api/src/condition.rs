//! Conditions as the Kubernetes API conventions define them.
//!
//! We keep our own type instead of `k8s_openapi`'s `Condition` because FedState's `MongoDB`
//! status wrote conditions without a `reason`, and those objects must round-trip unchanged.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `True`, `False` or `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// One observation of one aspect of an object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The aspect, e.g. `Scheduled` or `ServerReady`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// One CamelCase word a program can switch on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What a human should know, including what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When `status` last changed (not when the message or reason did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition without a time; [`set_condition`] stamps it.
    pub fn new(
        type_: impl Into<String>,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
        observed_generation: Option<i64>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: None,
            observed_generation,
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Insert or update `new` in `conditions` following the API conventions: the
/// `lastTransitionTime` moves to `now` only when the status flips (or the condition is new);
/// reason, message and observedGeneration are always refreshed. Returns whether anything changed,
/// so callers can skip a status write that would change nothing.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: Timestamp) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            new.last_transition_time =
                if old.status == new.status && old.last_transition_time.is_some() {
                    old.last_transition_time.clone()
                } else {
                    Some(Time(now))
                };
            if *old == new {
                return false;
            }
            *old = new;
            true
        }
        None => {
            new.last_transition_time = Some(Time(now));
            conditions.push(new);
            true
        }
    }
}

/// The condition of this type, if any.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Condition types of `MultiCloudMongoDB` (`docs/architecture.md#conditions`).
pub mod types {
    pub const SCHEDULED: &str = "Scheduled";
    pub const SERVER_READY: &str = "ServerReady";
    /// kstatus' and `kubectl wait --for=condition=Ready`'s condition: the same status, reason and
    /// message as `ServerReady` (FedState's own name, kept for its users).
    pub const READY: &str = "Ready";
    /// FedState's name for "the scheduler result was read".
    pub const SERVER_SCHEDULED_RESULT: &str = "ServerScheduledResult";
    pub const SCALING_IN_PROGRESS: &str = "ScalingInProgress";
    pub const QUORUM_AT_RISK: &str = "QuorumAtRisk";
    pub const FAILOVER_IN_PROGRESS: &str = "FailoverInProgress";
    pub const DEGRADED: &str = "Degraded";
    /// Set on an object whose spec we cannot act on (e.g. an unsupported image version).
    pub const SPEC_VALID: &str = "SpecValid";
    /// Set by the manager while a deleted object is torn down: the message says what the
    /// deletion waits for (e.g. members in an unreachable cluster, which may still vote).
    pub const DELETING: &str = "Deleting";
    /// Set by the manager while a change of the members' pods is rolled out one member cluster
    /// at a time: the message names the cluster rolling and what the next one waits for.
    pub const ROLLING_UPDATE: &str = "RollingUpdate";
    /// Set by the agent when the replica set lost its voting majority
    /// (`docs/mongodb.md#quorum-lost-and-forced-reconfig`).
    pub const QUORUM_LOST: &str = "QuorumLost";
    /// Set (True) by the agent on a member `MongoDB` once it saw the manager's whole-set teardown
    /// mark on the host list, and never cleared: when the object is then deleted, its members
    /// go without leaving the set first, even if the host list is already gone by then. The
    /// manager deletes the member objects only once every reachable cluster reports it
    /// (through Karmada's status reflection).
    pub const TEARDOWN_MARKED: &str = "TeardownMarked";
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid timestamp")
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conds = Vec::new();
        let ready = |status, msg: &str| Condition::new("ServerReady", status, "R", msg, Some(1));
        assert!(set_condition(
            &mut conds,
            ready(ConditionStatus::False, "waiting"),
            t(10)
        ));
        assert_eq!(conds[0].last_transition_time, Some(Time(t(10))));

        // Same status, new message: message changes, time stays.
        assert!(set_condition(
            &mut conds,
            ready(ConditionStatus::False, "still waiting"),
            t(20)
        ));
        assert_eq!(conds[0].last_transition_time, Some(Time(t(10))));
        assert_eq!(conds[0].message.as_deref(), Some("still waiting"));

        // Identical: nothing to write.
        assert!(!set_condition(
            &mut conds,
            ready(ConditionStatus::False, "still waiting"),
            t(30)
        ));

        // Flip: time moves.
        assert!(set_condition(
            &mut conds,
            ready(ConditionStatus::True, "up"),
            t(40)
        ));
        assert_eq!(conds[0].last_transition_time, Some(Time(t(40))));
        assert_eq!(conds.len(), 1);
    }

    #[test]
    fn observed_generation_is_refreshed_without_moving_time() {
        let mut conds = Vec::new();
        set_condition(
            &mut conds,
            Condition::new("Scheduled", ConditionStatus::True, "Success", "ok", Some(1)),
            t(1),
        );
        assert!(set_condition(
            &mut conds,
            Condition::new("Scheduled", ConditionStatus::True, "Success", "ok", Some(2)),
            t(5)
        ));
        assert_eq!(conds[0].observed_generation, Some(2));
        assert_eq!(conds[0].last_transition_time, Some(Time(t(1))));
    }
}
