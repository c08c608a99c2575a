//! Rolling restarts (`docs/mongodb.md#rolling-changes`), pure: which own member to restart next
//! when its pod runs an outdated revision. The order is MongoDB's maintenance and upgrade
//! procedure (manual, "Perform Maintenance on Replica Set Members": starting with a secondary,
//! ending with the primary; "Upgrade a Replica Set": one secondary at a time, each back to
//! SECONDARY before the next, then the primary after a step-down): the arbiter and the
//! secondaries first (the arbiter before them: it holds no data, so it is back at once), the
//! primary last, after a step-down. A restart happens only while every voting member of the
//! whole set is healthy and every data-bearing voter has caught up with the primary (its optime
//! within [`CAUGHT_UP_SECONDS`] of the primary's), so at most one voting member is down or
//! behind at a time across clusters: the other agents see the restarted member as unhealthy, or
//! as lagging while it replays what it missed, and wait.

use std::collections::BTreeMap;

use crate::planner::MemberState;

/// How far (in seconds of optime) a data-bearing voter may be behind the primary and still
/// count as caught up. mongod's `replSetStepDown` waits up to 10 s
/// (`secondaryCatchUpPeriodSecs`) for a secondary to catch up; a member further behind than
/// that is still replaying what it missed.
pub const CAUGHT_UP_SECONDS: u32 = 10;

/// A member's last applied operation (`replSetGetStatus.members[].optime`: `ts` and term `t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct OpTime {
    /// `ts`: seconds since the epoch and the increment within that second.
    pub seconds: u32,
    pub increment: u32,
    pub term: i64,
}

impl OpTime {
    /// mongod reports `Timestamp(0, 0)` (term -1) for a member it has no optime of (down, or
    /// in initial sync).
    pub fn is_known(&self) -> bool {
        self.seconds > 0
    }
}

/// One own member's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRollout {
    /// The pod's name (what a restart deletes).
    pub pod: String,
    /// The member index; `None` for the arbiter.
    pub index: Option<i32>,
    pub host: String,
    /// The pod runs an older revision than its StatefulSet wants.
    pub outdated: bool,
    pub ready: bool,
}

/// A voting member of the set as the agent saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Voter {
    pub state: MemberState,
    pub arbiter: bool,
    /// `None`: not reported (an arbiter has no oplog).
    pub optime: Option<OpTime>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    Done,
    Wait(String),
    /// Delete this pod so its StatefulSet recreates it at the new revision.
    Restart {
        pod: String,
    },
    StepDown {
        host: String,
    },
}

/// `voters` are the set's voting members by host.
pub fn next_restart(
    pods: &[PodRollout],
    voters: &BTreeMap<String, Voter>,
    primary: Option<&str>,
) -> RolloutStep {
    let mut outdated: Vec<&PodRollout> = pods.iter().filter(|p| p.outdated).collect();
    if outdated.is_empty() {
        return RolloutStep::Done;
    }
    if let Some(p) = pods.iter().find(|p| !p.ready) {
        return RolloutStep::Wait(format!("member {} is not ready yet", p.host));
    }
    if let Some((h, _)) = voters.iter().find(|(_, v)| {
        !matches!(
            v.state,
            MemberState::Primary | MemberState::Secondary | MemberState::Arbiter
        )
    }) {
        return RolloutStep::Wait(format!("voting member {h} is not healthy; one at a time"));
    }
    let Some(primary) = primary else {
        return RolloutStep::Wait("no primary: restarts wait for one".into());
    };
    let Some(newest) = voters
        .get(primary)
        .and_then(|v| v.optime)
        .filter(OpTime::is_known)
    else {
        return RolloutStep::Wait(format!("the optime of primary {primary} is not known yet"));
    };
    for (h, v) in voters.iter().filter(|(h, v)| !v.arbiter && *h != primary) {
        match v.optime.filter(OpTime::is_known) {
            None => {
                return RolloutStep::Wait(format!(
                    "voting member {h} reports no optime yet; restarts wait until it has caught up"
                ));
            }
            Some(t) if newest.seconds.saturating_sub(t.seconds) > CAUGHT_UP_SECONDS => {
                return RolloutStep::Wait(format!(
                    "voting member {h} is {} s behind the primary; restarts wait until it is within {CAUGHT_UP_SECONDS} s",
                    newest.seconds - t.seconds
                ));
            }
            Some(_) => {}
        }
    }
    // The arbiter (no index) first, then the secondaries by index.
    outdated.sort_by_key(|p| p.index);
    match outdated.iter().find(|p| p.host != primary) {
        Some(p) => RolloutStep::Restart { pod: p.pod.clone() },
        None => RolloutStep::StepDown {
            host: primary.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(i: i32, outdated: bool) -> PodRollout {
        PodRollout {
            pod: format!("m-{i}-0"),
            index: Some(i),
            host: format!("h:{i}"),
            outdated,
            ready: true,
        }
    }

    fn at(seconds: u32) -> Option<OpTime> {
        Some(OpTime {
            seconds,
            increment: 1,
            term: 1,
        })
    }

    fn healthy(n: i32, primary: i32) -> BTreeMap<String, Voter> {
        (0..n)
            .map(|i| {
                let state = if i == primary {
                    MemberState::Primary
                } else {
                    MemberState::Secondary
                };
                let v = Voter {
                    state,
                    arbiter: false,
                    optime: at(1000),
                };
                (format!("h:{i}"), v)
            })
            .collect()
    }

    #[test]
    fn secondaries_roll_first_and_the_primary_steps_down_last() {
        let pods = [pod(0, true), pod(1, true), pod(2, true)];
        let voters = healthy(3, 0);
        assert_eq!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::Restart {
                pod: "m-1-0".into()
            }
        );
        let pods = [pod(0, true), pod(1, false), pod(2, false)];
        assert_eq!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::StepDown { host: "h:0".into() }
        );
        // After the step-down member 0 is a secondary and is restarted.
        assert_eq!(
            next_restart(&pods, &healthy(3, 1), Some("h:1")),
            RolloutStep::Restart {
                pod: "m-0-0".into()
            }
        );
        assert_eq!(
            next_restart(&[pod(0, false)], &voters, Some("h:0")),
            RolloutStep::Done
        );
    }

    #[test]
    fn one_voting_member_down_anywhere_blocks_the_next_restart() {
        let pods = [pod(0, true), pod(1, true)];
        let mut voters = healthy(3, 0);
        voters.insert(
            "other-cluster:2".into(),
            Voter {
                state: MemberState::Down,
                arbiter: false,
                optime: None,
            },
        );
        assert!(matches!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::Wait(_)
        ));
        let mut pods = [pod(0, false), pod(1, true)];
        pods[0].ready = false;
        assert!(matches!(
            next_restart(&pods, &healthy(2, 1), Some("h:1")),
            RolloutStep::Wait(_)
        ));
    }

    /// Issue 15: "up again" is not enough. A restarted member is SECONDARY while it replays
    /// what it missed; the next restart (in any cluster) waits until its optime is within
    /// CAUGHT_UP_SECONDS of the primary's. Without a primary there is nothing to measure
    /// against (and no one to take writes): wait.
    #[test]
    fn the_next_restart_waits_until_the_last_restarted_member_caught_up() {
        let pods = [pod(0, true), pod(1, true)];
        let mut voters = healthy(3, 0);
        // Member 2 (another cluster's, just restarted) is SECONDARY but 30 s behind.
        if let Some(v) = voters.get_mut("h:2") {
            v.optime = at(970);
        }
        let step = next_restart(&pods, &voters, Some("h:0"));
        assert!(
            matches!(&step, RolloutStep::Wait(why) if why.contains("h:2") && why.contains("30 s behind")),
            "{step:?}"
        );
        // Not reported yet (mongod's Timestamp(0, 0)): not caught up either.
        if let Some(v) = voters.get_mut("h:2") {
            v.optime = Some(OpTime::default());
        }
        assert!(matches!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::Wait(_)
        ));
        if let Some(v) = voters.get_mut("h:2") {
            v.optime = at(1000 - CAUGHT_UP_SECONDS);
        }
        assert_eq!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::Restart {
                pod: "m-1-0".into()
            }
        );
        let mut no_primary = healthy(3, 9);
        no_primary.remove("h:9");
        assert!(matches!(
            next_restart(&pods, &no_primary, None),
            RolloutStep::Wait(why) if why.contains("no primary")
        ));
    }

    /// Issue 13: the arbiter is rolled too, first (it holds no data and reports no optime),
    /// under the same one-at-a-time rule.
    #[test]
    fn the_arbiter_rolls_first_and_under_the_same_rule() {
        let arbiter = PodRollout {
            pod: "m-arbiter-0".into(),
            index: None,
            host: "h:9".into(),
            outdated: true,
            ready: true,
        };
        let mut voters = healthy(2, 0);
        voters.insert(
            "h:9".into(),
            Voter {
                state: MemberState::Arbiter,
                arbiter: true,
                optime: None,
            },
        );
        let pods = [pod(1, true), arbiter.clone()];
        assert_eq!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::Restart {
                pod: "m-arbiter-0".into()
            }
        );
        if let Some(v) = voters.get_mut("h:1") {
            v.state = MemberState::Down;
        }
        assert!(matches!(
            next_restart(&[arbiter], &voters, Some("h:0")),
            RolloutStep::Wait(_)
        ));
    }
}
