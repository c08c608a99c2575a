//! The `MongoDB` binding's `aggregatedStatus` → the `MultiCloudMongoDB` status a user reads:
//! FedState's `state`, `externalAddr` and per-cluster `result[]`, plus our conditions
//! (`ServerReady`, `ScalingInProgress`, `FailoverInProgress`, `Degraded`). Pure.

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::condition::{Condition, ConditionStatus, types};
use fedstate_api::karmada::binding_status::AggregatedStatusItem;
use fedstate_api::scheduler_result::SchedulerResult;
use fedstate_api::v1alpha1::{
    MongoDBStatus, MongoState, MultiCloudMongoDBStatus, ServiceState, ServiceTopology,
};

use crate::desired::binding_clusters;
use crate::members::{Assignment, ClusterObservation, Phase, PlannedMember};

/// Roles a healthy member reports.
const GOOD_STATES: [&str; 3] = ["PRIMARY", "SECONDARY", "ARBITER"];

/// Everything the status is computed from.
#[derive(Clone, Copy, Debug)]
pub struct StatusInputs<'a> {
    pub generation: Option<i64>,
    pub plan: &'a SchedulerResult,
    pub assignment: &'a Assignment,
    /// `<vip>:<nodePort>` per member (index, arbiter).
    pub addresses: &'a BTreeMap<(i32, bool), String>,
    pub aggregated: &'a [AggregatedStatusItem],
    /// Karmada Clusters by name: Ready or not. Missing: the cluster left the federation.
    pub cluster_ready: &'a BTreeMap<String, bool>,
}

/// The computed status (conditions not yet merged into the old ones).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub status: MultiCloudMongoDBStatus,
    pub conditions: Vec<Condition>,
}

/// A member cluster's reported `MongoDB` status, if it reported one we can read.
pub fn member_status(item: &AggregatedStatusItem) -> Option<MongoDBStatus> {
    item.status
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// What each cluster says, for [`crate::members::confirm_gone`].
pub fn observations(
    aggregated: &[AggregatedStatusItem],
    cluster_ready: &BTreeMap<String, bool>,
) -> BTreeMap<String, ClusterObservation> {
    let mut out: BTreeMap<String, ClusterObservation> = cluster_ready
        .iter()
        .map(|(c, ready)| {
            (
                c.clone(),
                ClusterObservation {
                    ready: *ready,
                    ..Default::default()
                },
            )
        })
        .collect();
    for item in aggregated {
        let Some(status) = member_status(item) else {
            continue;
        };
        if let Some(obs) = out.get_mut(&item.cluster_name) {
            obs.reported = true;
            obs.replset_hosts = status.replset.iter().map(|m| m.name.clone()).collect();
        }
    }
    out
}

/// One member as some cluster's replica set view reports it.
#[derive(Clone, Debug)]
struct Seen {
    state: String,
    healthy: bool,
}

pub fn observe(i: StatusInputs<'_>) -> Observed {
    let g = i.generation;
    let reports: BTreeMap<&str, MongoDBStatus> = i
        .aggregated
        .iter()
        .filter_map(|a| Some((a.cluster_name.as_str(), member_status(a)?)))
        .collect();
    let items: BTreeMap<&str, &AggregatedStatusItem> = i
        .aggregated
        .iter()
        .map(|a| (a.cluster_name.as_str(), a))
        .collect();
    // A member's role: its own cluster's view first, then any other cluster's.
    let seen = |cluster: &str, host: &str| -> Option<Seen> {
        let find = |s: &MongoDBStatus| {
            s.replset.iter().find(|m| m.name == host).map(|m| Seen {
                state: m.state_str.clone(),
                healthy: m.health == 1,
            })
        };
        reports
            .get(cluster)
            .and_then(find)
            .or_else(|| reports.values().find_map(find))
    };

    let active: Vec<_> = i
        .assignment
        .members
        .iter()
        .filter(|m| m.is_active())
        .collect();
    let host_of = |m: &PlannedMember| i.addresses.get(&(m.index, m.arbiter));

    let mut result = Vec::new();
    for c in binding_clusters(i.assignment) {
        let report = reports.get(c.name.as_str());
        let roles: BTreeMap<String, String> = active
            .iter()
            .filter(|m| m.cluster == c.name)
            .filter_map(|m| host_of(m))
            .map(|h| {
                let role = seen(&c.name, h).map_or_else(|| "UNKNOWN".to_owned(), |s| s.state);
                (h.clone(), role)
            })
            .collect();
        result.push(ServiceTopology {
            cluster: Some(c.name.clone()),
            replicaset_spec: Some(
                active
                    .iter()
                    .filter(|m| m.cluster == c.name && !m.arbiter)
                    .count()
                    .try_into()
                    .unwrap_or(0),
            ),
            replicaset_status: report
                .and_then(|r| r.current_info.as_ref())
                .map(|ci| ci.members),
            connect_addr_with_role: Some(roles),
            state: report
                .and_then(|r| r.state)
                .map(|s| format!("{s:?}"))
                .or_else(|| Some("Unknown".to_owned())),
            current_revision: report.and_then(|r| r.current_revision.clone()),
            applied: Some(items.get(c.name.as_str()).is_some_and(|a| a.applied)),
        });
    }

    // Per active member: how it is seen.
    let mut missing = Vec::new();
    let mut unhealthy = Vec::new();
    let mut primary = None;
    for m in &active {
        let Some(h) = host_of(m) else {
            missing.push(format!("member {} in {}", m.index, m.cluster));
            continue;
        };
        match seen(&m.cluster, h) {
            None => missing.push(format!("{h} ({})", m.cluster)),
            Some(s) if s.healthy && GOOD_STATES.contains(&s.state.as_str()) => {
                if s.state == "PRIMARY" {
                    primary = Some(h.clone());
                }
            }
            Some(s) => unhealthy.push(format!("{h} ({}) is {}", m.cluster, s.state)),
        }
    }
    let retiring: Vec<_> = i
        .assignment
        .members
        .iter()
        .filter(|m| m.phase == Phase::Retiring)
        .collect();
    let ready = |c: &str| i.cluster_ready.get(c).copied().unwrap_or(false);
    let (retiring_lost, retiring_here): (Vec<&PlannedMember>, Vec<&PlannedMember>) =
        retiring.iter().copied().partition(|m| !ready(&m.cluster));
    let not_applied: Vec<String> = binding_clusters(i.assignment)
        .iter()
        .filter_map(|c| {
            let item = items.get(c.name.as_str());
            match item {
                Some(a) if a.applied => None,
                Some(a) => Some(format!(
                    "{}: {}",
                    c.name,
                    a.applied_message.as_deref().unwrap_or("not applied yet")
                )),
                None => Some(format!("{}: not applied yet", c.name)),
            }
        })
        .collect();
    let errors: Vec<String> = reports
        .iter()
        .filter(|(_, r)| r.state == Some(MongoState::Error))
        .map(|(c, _)| format!("the MongoDB in {c} reports Error"))
        .collect();

    let state = if reports.values().all(|r| r.replset.is_empty()) {
        if reports.is_empty() {
            ServiceState::UnKnown
        } else {
            ServiceState::UnHealth
        }
    } else if primary.is_none() {
        ServiceState::UnHealth
    } else if missing.is_empty()
        && unhealthy.is_empty()
        && retiring.is_empty()
        && not_applied.is_empty()
    {
        ServiceState::Health
    } else {
        ServiceState::SubHealth
    };

    let mut conditions = Vec::new();
    let cond = |t: &str, s: bool, reason: &str, msg: String| {
        Condition::new(t, ConditionStatus::from_bool(s), reason, msg, g)
    };
    conditions.push(if state == ServiceState::Health {
        cond(
            types::SERVER_READY,
            true,
            "ServerReady",
            "Service Dispatch Successful And Ready For External Service".into(),
        )
    } else {
        let mut why = Vec::new();
        if primary.is_none() {
            why.push("no member reports PRIMARY".to_owned());
        }
        if !missing.is_empty() {
            why.push(format!(
                "not in the replica set yet: {}",
                missing.join(", ")
            ));
        }
        if !not_applied.is_empty() {
            why.push(format!("not applied: {}", not_applied.join("; ")));
        }
        if !retiring.is_empty() {
            why.push(format!("{} members still leaving", retiring.len()));
        }
        if !unhealthy.is_empty() {
            why.push(format!("unhealthy: {}", unhealthy.join(", ")));
        }
        cond(
            types::SERVER_READY,
            false,
            "NotReady",
            format!("{:?}: {}", state, why.join("; ")),
        )
    });
    let adding = !missing.is_empty() && !reports.is_empty();
    conditions.push(if !retiring_here.is_empty() || adding {
        let mut msg = Vec::new();
        if adding {
            msg.push(format!("adding {}", missing.join(", ")));
        }
        if !retiring_here.is_empty() {
            msg.push(format!(
                "removing members {} (kept until the agents report them gone)",
                retiring_here
                    .iter()
                    .map(|m| format!("{} in {}", m.index, m.cluster))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        cond(
            types::SCALING_IN_PROGRESS,
            true,
            if retiring_here.is_empty() {
                "AddingMembers"
            } else {
                "RemovingMembers"
            },
            msg.join("; "),
        )
    } else {
        cond(
            types::SCALING_IN_PROGRESS,
            false,
            "Stable",
            "the members match the placement".into(),
        )
    });
    let lost: BTreeSet<&str> = retiring_lost.iter().map(|m| m.cluster.as_str()).collect();
    conditions.push(if lost.is_empty() {
        cond(
            types::FAILOVER_IN_PROGRESS,
            false,
            "NoFailover",
            "no member is in a lost cluster".into(),
        )
    } else {
        cond(
            types::FAILOVER_IN_PROGRESS,
            true,
            "ClusterLost",
            format!(
                "{} members in unreachable cluster(s) {} are out of the host list so the survivors remove them; they stay tracked until their cluster returns or leaves the federation",
                retiring_lost.len(),
                lost.into_iter().collect::<Vec<_>>().join(", ")
            ),
        )
    });
    let degraded: Vec<String> = unhealthy.iter().cloned().chain(errors).collect();
    conditions.push(if degraded.is_empty() {
        cond(
            types::DEGRADED,
            false,
            "AllMembersHealthy",
            "no member reports a problem".into(),
        )
    } else {
        cond(
            types::DEGRADED,
            true,
            "MembersUnhealthy",
            degraded.join("; "),
        )
    });

    let external: Vec<String> = active.iter().filter_map(|m| host_of(m).cloned()).collect();
    Observed {
        status: MultiCloudMongoDBStatus {
            state: Some(state),
            external_addr: (!external.is_empty()).then(|| external.join(",")),
            internal_addr: None,
            result,
            conditions: Vec::new(),
            observed_generation: g,
            // The scheduler owns `placement` (and `Scheduled`, `ServerScheduledResult`,
            // `QuorumAtRisk`): with server-side apply each writer applies only its own fields.
            placement: None,
        },
        conditions,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::members::{MemberRecord, assign};
    use fedstate_api::condition::find_condition;
    use serde_json::json;

    fn plan(v: &str) -> SchedulerResult {
        SchedulerResult::parse(v).unwrap()
    }

    const PLAN: &str = r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":2},{"cluster":"b","replicaset":2},{"cluster":"c","replicaset":1}]}"#;

    fn addresses(a: &Assignment) -> BTreeMap<(i32, bool), String> {
        let vip = |c: &str| match c {
            "a" => "10.0.0.1",
            "b" => "10.0.0.2",
            _ => "10.0.0.3",
        };
        a.members
            .iter()
            .map(|m| {
                (
                    (m.index, m.arbiter),
                    format!("{}:{}", vip(&m.cluster), 30000 + m.index),
                )
            })
            .collect()
    }

    fn replset(members: &[(&str, &str, i32)]) -> serde_json::Value {
        json!(
            members
                .iter()
                .enumerate()
                .map(|(id, (h, s, health))| json!({"_id": id, "name": h, "stateStr": s, "health": health, "state": 2}))
                .collect::<Vec<_>>()
        )
    }

    fn item(cluster: &str, status: serde_json::Value) -> AggregatedStatusItem {
        AggregatedStatusItem {
            cluster_name: cluster.into(),
            status: Some(status),
            applied: true,
            applied_message: None,
            health: Some("Healthy".into()),
        }
    }

    fn all_ready() -> BTreeMap<String, bool> {
        ["a", "b", "c"].map(|c| (c.to_owned(), true)).into()
    }

    fn healthy_set() -> serde_json::Value {
        replset(&[
            ("10.0.0.1:30000", "PRIMARY", 1),
            ("10.0.0.1:30001", "SECONDARY", 1),
            ("10.0.0.2:30002", "SECONDARY", 1),
            ("10.0.0.2:30003", "SECONDARY", 1),
            ("10.0.0.3:30004", "SECONDARY", 1),
        ])
    }

    #[test]
    fn a_healthy_set_reads_like_fedstate_and_is_ready() {
        let p = plan(PLAN);
        let a = assign(&[], &p).unwrap();
        let addr = addresses(&a);
        let agg: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|c| {
                item(
                    c,
                    json!({"state": "Running", "currentRevision": format!("rev-{c}"),
                           "currentInfo": {"members": if *c == "c" {1} else {2}},
                           "replset": healthy_set()}),
                )
            })
            .collect();
        let o = observe(StatusInputs {
            generation: Some(3),
            plan: &p,
            assignment: &a,
            addresses: &addr,
            aggregated: &agg,
            cluster_ready: &all_ready(),
        });
        assert_eq!(o.status.state, Some(ServiceState::Health));
        assert_eq!(
            o.status.external_addr.as_deref(),
            Some("10.0.0.1:30000,10.0.0.1:30001,10.0.0.2:30002,10.0.0.2:30003,10.0.0.3:30004")
        );
        let a0 = &o.status.result[0];
        assert_eq!(a0.cluster.as_deref(), Some("a"));
        assert_eq!(a0.replicaset_spec, Some(2));
        assert_eq!(a0.replicaset_status, Some(2));
        assert_eq!(a0.state.as_deref(), Some("Running"));
        assert_eq!(a0.current_revision.as_deref(), Some("rev-a"));
        assert_eq!(
            a0.connect_addr_with_role.as_ref().unwrap()["10.0.0.1:30000"],
            "PRIMARY"
        );
        assert!(
            find_condition(&o.conditions, types::SERVER_READY)
                .unwrap()
                .is_true()
        );
        assert!(find_condition(&o.conditions, types::QUORUM_AT_RISK).is_none());
        assert_eq!(o.status.observed_generation, Some(3));
    }

    #[test]
    fn no_status_yet_is_unknown_and_never_errors() {
        let p = plan(PLAN);
        let a = assign(&[], &p).unwrap();
        let agg = vec![AggregatedStatusItem {
            cluster_name: "a".into(),
            status: None,
            applied: false,
            applied_message: Some("no matches for kind MongoDB".into()),
            health: None,
        }];
        let o = observe(StatusInputs {
            generation: Some(1),
            plan: &p,
            assignment: &a,
            addresses: &addresses(&a),
            aggregated: &agg,
            cluster_ready: &all_ready(),
        });
        assert_eq!(o.status.state, Some(ServiceState::UnKnown));
        let ready = find_condition(&o.conditions, types::SERVER_READY).unwrap();
        assert!(!ready.is_true());
        assert!(
            ready
                .message
                .as_ref()
                .unwrap()
                .contains("a: no matches for kind MongoDB")
        );
        assert_eq!(o.status.result[1].applied, Some(false));
    }

    #[test]
    fn a_sick_member_degrades_without_failing_the_whole_set() {
        let p = plan(PLAN);
        let a = assign(&[], &p).unwrap();
        let mut set = healthy_set();
        set[4]["health"] = json!(0);
        set[4]["stateStr"] = json!("(not reachable/healthy)");
        let agg = vec![item("a", json!({"state": "Running", "replset": set}))];
        let o = observe(StatusInputs {
            generation: Some(1),
            plan: &p,
            assignment: &a,
            addresses: &addresses(&a),
            aggregated: &agg,
            cluster_ready: &all_ready(),
        });
        assert_eq!(o.status.state, Some(ServiceState::SubHealth));
        let d = find_condition(&o.conditions, types::DEGRADED).unwrap();
        assert!(d.is_true());
        assert!(d.message.as_ref().unwrap().contains("10.0.0.3:30004 (c)"));
    }

    #[test]
    fn losing_a_cluster_reports_failover_and_scale_down_reports_scaling() {
        let p = plan(PLAN);
        let before = assign(&[], &p).unwrap();
        let recs: Vec<MemberRecord> = before
            .members
            .iter()
            .map(|m| MemberRecord {
                index: m.index,
                cluster: m.cluster.clone(),
                arbiter: false,
                node_port: None,
            })
            .collect();
        let after_plan = plan(
            r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":2},{"cluster":"c","replicaset":2}]}"#,
        );
        let after = assign(&recs, &after_plan).unwrap();
        let mut ready = all_ready();
        ready.insert("b".into(), false);
        let agg = vec![item(
            "a",
            json!({"state": "Running", "replset": healthy_set()}),
        )];
        let o = observe(StatusInputs {
            generation: Some(2),
            plan: &after_plan,
            assignment: &after,
            addresses: &addresses(&after),
            aggregated: &agg,
            cluster_ready: &ready,
        });
        let f = find_condition(&o.conditions, types::FAILOVER_IN_PROGRESS).unwrap();
        assert!(f.is_true());
        assert!(
            f.message
                .as_ref()
                .unwrap()
                .contains("unreachable cluster(s) b")
        );
        let s = find_condition(&o.conditions, types::SCALING_IN_PROGRESS).unwrap();
        assert!(s.is_true(), "the replacement in c is not in the set yet");
        assert_eq!(o.status.state, Some(ServiceState::SubHealth));
        // The lost cluster is still listed: its members are tracked.
        assert!(
            o.status
                .result
                .iter()
                .any(|r| r.cluster.as_deref() == Some("b"))
        );
    }
}
