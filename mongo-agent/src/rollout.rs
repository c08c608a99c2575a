//! Rolling restarts (`docs/mongodb.md#rolling-changes`), pure: which own member to restart next
//! when its pod runs an outdated revision. Secondaries first; the primary last, after a step-down;
//! and only while every voting member of the whole set is healthy, so at most one voting member is
//! down at a time across clusters (the other agents see the restarting member as unhealthy and
//! wait).

use std::collections::BTreeMap;

use crate::planner::MemberState;

/// One own member's pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRollout {
    pub index: i32,
    pub host: String,
    /// The pod runs an older revision than its StatefulSet wants.
    pub outdated: bool,
    pub ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    Done,
    Wait(String),
    /// Delete this member's pod so its StatefulSet recreates it at the new revision.
    Restart {
        index: i32,
    },
    StepDown {
        host: String,
    },
}

/// `voters` are the set's voting members with their states.
pub fn next_restart(
    pods: &[PodRollout],
    voters: &BTreeMap<String, MemberState>,
    primary: Option<&str>,
) -> RolloutStep {
    let mut outdated: Vec<&PodRollout> = pods.iter().filter(|p| p.outdated).collect();
    if outdated.is_empty() {
        return RolloutStep::Done;
    }
    if let Some(p) = pods.iter().find(|p| !p.ready) {
        return RolloutStep::Wait(format!("member {} is not ready yet", p.index));
    }
    if let Some((h, _)) = voters.iter().find(|(_, s)| {
        !matches!(
            s,
            MemberState::Primary | MemberState::Secondary | MemberState::Arbiter
        )
    }) {
        return RolloutStep::Wait(format!("voting member {h} is not healthy; one at a time"));
    }
    outdated.sort_by_key(|p| p.index);
    match outdated.iter().find(|p| Some(p.host.as_str()) != primary) {
        Some(p) => RolloutStep::Restart { index: p.index },
        None => RolloutStep::StepDown {
            // Cannot fail: `outdated` is not empty (returned above when it is).
            host: outdated[0].host.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(i: i32, outdated: bool) -> PodRollout {
        PodRollout {
            index: i,
            host: format!("h:{i}"),
            outdated,
            ready: true,
        }
    }

    fn healthy(n: i32, primary: i32) -> BTreeMap<String, MemberState> {
        (0..n)
            .map(|i| {
                let s = if i == primary {
                    MemberState::Primary
                } else {
                    MemberState::Secondary
                };
                (format!("h:{i}"), s)
            })
            .collect()
    }

    #[test]
    fn secondaries_roll_first_and_the_primary_steps_down_last() {
        let pods = [pod(0, true), pod(1, true), pod(2, true)];
        let voters = healthy(3, 0);
        assert_eq!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::Restart { index: 1 }
        );
        let pods = [pod(0, true), pod(1, false), pod(2, false)];
        assert_eq!(
            next_restart(&pods, &voters, Some("h:0")),
            RolloutStep::StepDown { host: "h:0".into() }
        );
        // After the step-down member 0 is a secondary and is restarted.
        assert_eq!(
            next_restart(&pods, &healthy(3, 1), Some("h:1")),
            RolloutStep::Restart { index: 0 }
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
        voters.insert("other-cluster:2".into(), MemberState::Down);
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
}
