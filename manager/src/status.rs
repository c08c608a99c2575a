//! The member binding's `aggregatedStatus` → the status a user reads: FedState's `state`,
//! `externalAddr` and per-cluster `result[]`, plus our conditions (`ServerReady`,
//! `ScalingInProgress`, `FailoverInProgress`, `Degraded`). Pure and kind-independent: the
//! middleware reads each cluster's reflected status into a [`ClusterReport`].

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::condition::{Condition, ConditionStatus, types};
use fedstate_api::karmada::binding_status::{AggregatedStatusItem, TargetCluster};
use fedstate_api::scheduler_result::SchedulerResult;
use fedstate_api::v1alpha1::{ServiceState, ServiceTopology};

use crate::desired::binding_clusters;
use crate::members::{Assignment, ClusterObservation, Phase, PlannedMember};
use crate::middleware::{ClusterReport, FederatedStatus, Middleware, SeenMember};
use kube::Resource;

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
    pub status: FederatedStatus,
    pub conditions: Vec<Condition>,
}

/// Each cluster's readable report, by cluster name.
pub fn reports<M: Middleware>(
    middleware: &M,
    aggregated: &[AggregatedStatusItem],
) -> BTreeMap<String, ClusterReport> {
    aggregated
        .iter()
        .filter_map(|a| {
            let report = middleware.member_report(a.status.as_ref()?)?;
            Some((a.cluster_name.clone(), report))
        })
        .collect()
}

/// What each cluster says, for [`crate::members::confirm_gone`].
pub fn observations<M: Middleware>(
    middleware: &M,
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
    for (cluster, report) in reports(middleware, aggregated) {
        if let Some(obs) = out.get_mut(&cluster) {
            obs.reported = true;
            obs.replset_hosts = report.members.iter().map(|m| m.host.clone()).collect();
        }
    }
    out
}

/// The status view shared by the parts below.
struct View<'a> {
    i: StatusInputs<'a>,
    /// The member kind, for messages.
    member_kind: String,
    reports: BTreeMap<String, ClusterReport>,
    items: BTreeMap<&'a str, &'a AggregatedStatusItem>,
    clusters: Vec<TargetCluster>,
    active: Vec<&'a PlannedMember>,
}

impl<'a> View<'a> {
    fn host_of(&self, m: &PlannedMember) -> Option<&'a String> {
        self.i.addresses.get(&(m.index, m.arbiter))
    }

    /// A member as seen: its own cluster's view first, then any other cluster's.
    fn seen(&self, cluster: &str, host: &str) -> Option<&SeenMember> {
        fn find<'r>(r: &'r ClusterReport, host: &str) -> Option<&'r SeenMember> {
            r.members.iter().find(|m| m.host == host)
        }
        self.reports
            .get(cluster)
            .and_then(|r| find(r, host))
            .or_else(|| self.reports.values().find_map(|r| find(r, host)))
    }

    fn topology(&self) -> Vec<ServiceTopology> {
        self.clusters
            .iter()
            .map(|c| {
                let report = self.reports.get(&c.name);
                let roles: BTreeMap<String, String> = self
                    .active
                    .iter()
                    .filter(|m| m.cluster == c.name)
                    .filter_map(|m| self.host_of(m))
                    .map(|h| {
                        let role = self
                            .seen(&c.name, h)
                            .map_or_else(|| "UNKNOWN".to_owned(), |s| s.role.clone());
                        (h.clone(), role)
                    })
                    .collect();
                ServiceTopology {
                    cluster: Some(c.name.clone()),
                    replicaset_spec: Some(
                        self.active
                            .iter()
                            .filter(|m| m.cluster == c.name && !m.arbiter)
                            .count()
                            .try_into()
                            .unwrap_or(0),
                    ),
                    replicaset_status: report.and_then(|r| r.running),
                    connect_addr_with_role: Some(roles),
                    state: report
                        .and_then(|r| r.state.clone())
                        .or_else(|| Some("Unknown".to_owned())),
                    current_revision: report.and_then(|r| r.revision.clone()),
                    applied: Some(self.items.get(c.name.as_str()).is_some_and(|a| a.applied)),
                }
            })
            .collect()
    }

    /// Per active member: how it is seen.
    fn members(&self) -> Members {
        let mut out = Members::default();
        for m in &self.active {
            let Some(h) = self.host_of(m) else {
                out.missing
                    .push(format!("member {} in {}", m.index, m.cluster));
                continue;
            };
            match self.seen(&m.cluster, h) {
                None => out.missing.push(format!("{h} ({})", m.cluster)),
                Some(s) if s.healthy => {
                    if s.primary {
                        out.primary = Some(h.clone());
                    }
                }
                Some(s) => out
                    .unhealthy
                    .push(format!("{h} ({}) is {}", m.cluster, s.role)),
            }
        }
        out
    }

    fn not_applied(&self) -> Vec<String> {
        self.clusters
            .iter()
            .filter_map(|c| match self.items.get(c.name.as_str()) {
                Some(a) if a.applied => None,
                Some(a) => Some(format!(
                    "{}: {}",
                    c.name,
                    a.applied_message.as_deref().unwrap_or("not applied yet")
                )),
                None => Some(format!("{}: not applied yet", c.name)),
            })
            .collect()
    }

    fn errors(&self) -> Vec<String> {
        self.reports
            .iter()
            .filter(|(_, r)| r.failed)
            .map(|(c, _)| format!("the {} in {c} reports Error", self.member_kind))
            .collect()
    }
}

/// How the active members are seen.
#[derive(Default)]
struct Members {
    missing: Vec<String>,
    unhealthy: Vec<String>,
    primary: Option<String>,
}

/// The members on their way out, split by whether their cluster is lost.
struct Retiring<'a> {
    all: usize,
    lost: Vec<&'a PlannedMember>,
    here: Vec<&'a PlannedMember>,
}

fn retiring<'a>(i: &StatusInputs<'a>) -> Retiring<'a> {
    let retiring: Vec<&PlannedMember> = i
        .assignment
        .members
        .iter()
        .filter(|m| m.phase == Phase::Retiring)
        .collect();
    let ready = |c: &str| i.cluster_ready.get(c).copied().unwrap_or(false);
    let all = retiring.len();
    let (lost, here) = retiring.into_iter().partition(|m| !ready(&m.cluster));
    Retiring { all, lost, here }
}

fn service_state(
    reports: &BTreeMap<String, ClusterReport>,
    m: &Members,
    retiring: usize,
    not_applied: usize,
) -> ServiceState {
    if reports.values().all(|r| r.members.is_empty()) {
        if reports.is_empty() {
            ServiceState::UnKnown
        } else {
            ServiceState::UnHealth
        }
    } else if m.primary.is_none() {
        ServiceState::UnHealth
    } else if m.missing.is_empty() && m.unhealthy.is_empty() && retiring == 0 && not_applied == 0 {
        ServiceState::Health
    } else {
        ServiceState::SubHealth
    }
}

fn cond(t: &str, s: bool, reason: &str, msg: String, g: Option<i64>) -> Condition {
    Condition::new(t, ConditionStatus::from_bool(s), reason, msg, g)
}

fn ready_condition(
    state: ServiceState,
    m: &Members,
    not_applied: &[String],
    retiring: usize,
    g: Option<i64>,
) -> Condition {
    if state == ServiceState::Health {
        return cond(
            types::SERVER_READY,
            true,
            "ServerReady",
            "Service Dispatch Successful And Ready For External Service".into(),
            g,
        );
    }
    let mut why = Vec::new();
    if m.primary.is_none() {
        why.push("no member reports PRIMARY".to_owned());
    }
    if !m.missing.is_empty() {
        why.push(format!(
            "not in the replica set yet: {}",
            m.missing.join(", ")
        ));
    }
    if !not_applied.is_empty() {
        why.push(format!("not applied: {}", not_applied.join("; ")));
    }
    if retiring > 0 {
        why.push(format!("{retiring} members still leaving"));
    }
    if !m.unhealthy.is_empty() {
        why.push(format!("unhealthy: {}", m.unhealthy.join(", ")));
    }
    cond(
        types::SERVER_READY,
        false,
        "NotReady",
        format!("{:?}: {}", state, why.join("; ")),
        g,
    )
}

fn scaling_condition(
    adding: Option<&[String]>,
    here: &[&PlannedMember],
    g: Option<i64>,
) -> Condition {
    if here.is_empty() && adding.is_none() {
        return cond(
            types::SCALING_IN_PROGRESS,
            false,
            "Stable",
            "the members match the placement".into(),
            g,
        );
    }
    let mut msg = Vec::new();
    if let Some(missing) = adding {
        msg.push(format!("adding {}", missing.join(", ")));
    }
    if !here.is_empty() {
        msg.push(format!(
            "removing members {} (kept until the agents report them gone)",
            here.iter()
                .map(|m| format!("{} in {}", m.index, m.cluster))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let reason = if here.is_empty() {
        "AddingMembers"
    } else {
        "RemovingMembers"
    };
    cond(types::SCALING_IN_PROGRESS, true, reason, msg.join("; "), g)
}

fn failover_condition(lost_members: &[&PlannedMember], g: Option<i64>) -> Condition {
    let lost: BTreeSet<&str> = lost_members.iter().map(|m| m.cluster.as_str()).collect();
    if lost.is_empty() {
        return cond(
            types::FAILOVER_IN_PROGRESS,
            false,
            "NoFailover",
            "no member is in a lost cluster".into(),
            g,
        );
    }
    cond(
        types::FAILOVER_IN_PROGRESS,
        true,
        "ClusterLost",
        format!(
            "{} members in unreachable cluster(s) {} are out of the host list so the survivors remove them; they stay tracked until their cluster returns or leaves the federation",
            lost_members.len(),
            lost.into_iter().collect::<Vec<_>>().join(", ")
        ),
        g,
    )
}

fn degraded_condition(degraded: &[String], g: Option<i64>) -> Condition {
    if degraded.is_empty() {
        cond(
            types::DEGRADED,
            false,
            "AllMembersHealthy",
            "no member reports a problem".into(),
            g,
        )
    } else {
        cond(
            types::DEGRADED,
            true,
            "MembersUnhealthy",
            degraded.join("; "),
            g,
        )
    }
}

pub fn observe<M: Middleware>(middleware: &M, i: StatusInputs<'_>) -> Observed {
    let g = i.generation;
    let view = View {
        i,
        member_kind: M::Member::kind(&()).into_owned(),
        reports: reports(middleware, i.aggregated),
        items: i
            .aggregated
            .iter()
            .map(|a| (a.cluster_name.as_str(), a))
            .collect(),
        clusters: binding_clusters(i.assignment),
        active: i
            .assignment
            .members
            .iter()
            .filter(|m| m.is_active())
            .collect(),
    };
    let result = view.topology();
    let members = view.members();
    let retiring = retiring(&i);
    let not_applied = view.not_applied();
    let state = service_state(&view.reports, &members, retiring.all, not_applied.len());
    let adding = (!members.missing.is_empty() && !view.reports.is_empty())
        .then_some(members.missing.as_slice());
    let degraded: Vec<String> = members
        .unhealthy
        .iter()
        .cloned()
        .chain(view.errors())
        .collect();
    let server_ready = ready_condition(state, &members, &not_applied, retiring.all, g);
    // kstatus and `kubectl wait --for=condition=Ready` read `Ready`; it says what ServerReady says.
    let ready = Condition {
        type_: types::READY.to_owned(),
        ..server_ready.clone()
    };
    let conditions = vec![
        server_ready,
        ready,
        scaling_condition(adding, &retiring.here, g),
        failover_condition(&retiring.lost, g),
        degraded_condition(&degraded, g),
    ];
    let external: Vec<String> = view
        .active
        .iter()
        .filter_map(|m| view.host_of(m).cloned())
        .collect();
    Observed {
        // The scheduler owns `placement` (and `Scheduled`, `ServerScheduledResult`,
        // `QuorumAtRisk`): with server-side apply each writer applies only its own fields.
        status: FederatedStatus {
            state: Some(state),
            external_addr: (!external.is_empty()).then(|| external.join(",")),
            result,
            conditions: Vec::new(),
            observed_generation: g,
        },
        conditions,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::members::{MemberRecord, assign};
    use crate::mongodb::MongoDb;
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
        let o = observe(
            &MongoDb,
            StatusInputs {
                generation: Some(3),
                plan: &p,
                assignment: &a,
                addresses: &addr,
                aggregated: &agg,
                cluster_ready: &all_ready(),
            },
        );
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
        let kstatus = find_condition(&o.conditions, types::READY).unwrap();
        assert!(kstatus.is_true());
        assert_eq!(kstatus.observed_generation, Some(3));
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
        let o = observe(
            &MongoDb,
            StatusInputs {
                generation: Some(1),
                plan: &p,
                assignment: &a,
                addresses: &addresses(&a),
                aggregated: &agg,
                cluster_ready: &all_ready(),
            },
        );
        assert_eq!(o.status.state, Some(ServiceState::UnKnown));
        let ready = find_condition(&o.conditions, types::SERVER_READY).unwrap();
        assert!(!ready.is_true());
        let kstatus = find_condition(&o.conditions, types::READY).unwrap();
        assert!(!kstatus.is_true());
        assert_eq!(kstatus.message, ready.message);
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
        let o = observe(
            &MongoDb,
            StatusInputs {
                generation: Some(1),
                plan: &p,
                assignment: &a,
                addresses: &addresses(&a),
                aggregated: &agg,
                cluster_ready: &all_ready(),
            },
        );
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
        let o = observe(
            &MongoDb,
            StatusInputs {
                generation: Some(2),
                plan: &after_plan,
                assignment: &after,
                addresses: &addresses(&after),
                aggregated: &agg,
                cluster_ready: &ready,
            },
        );
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
