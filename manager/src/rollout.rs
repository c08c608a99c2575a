//! Rolling changes across clusters (pure): a change of the fields that reach the members' pods
//! (image, resources, …: [`Middleware::pod_fields`]) reaches one member cluster at a time.
//!
//! Each agent restarts its own members one at a time, but from its own view of the set: two
//! agents that both see "every voter healthy" at the same moment would each restart one, and
//! with 1/1/1 or 2/2/1 placements two voters would be down together. The manager has the one
//! view across clusters, so it sequences them: the member template carries the new spec, and
//! every cluster not yet released is held at the pod fields it runs by its OverridePolicy rule
//! (a *pin*). The next cluster is released only when
//! * every cluster that has the new fields reports (through Karmada's status reflection) that
//!   all its members run them (`currentRevision` = [`Middleware::pod_revision`] of the fields)
//!   and its members are healthy again (PRIMARY/SECONDARY/ARBITER), and
//! * every member outside the cluster to release is healthy, its cluster Ready.
//!
//! So an unreachable cluster holds the rollout (its members are down voters already; restarting
//! another could take the majority down) and the `RollingUpdate` condition says so; it goes on
//! when the cluster returns (or once it leaves the placement). A cluster new to the binding
//! gets the new fields at once (nothing of it runs yet), and so does everything on the first
//! apply. What a cluster runs is derived from what the manager last applied (the live template
//! and the pins of the live OverridePolicy), never from a field a user writes.

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::condition::{Condition, ConditionStatus, types};
use fedstate_api::karmada::override_policy::{
    OP_ADD, OP_REMOVE, OP_REPLACE, OverridePolicy, PlaintextOverrider,
};
use serde_json::{Map, Value};

use crate::middleware::{ClusterReport, SeenMember};

/// The pod fields of a member spec (JSON names → values; absent fields left out).
pub type PodFields = Map<String, Value>;

/// The pod fields of a member spec as JSON, among `fields`.
pub fn pod_fields(spec: Option<&Value>, fields: &[&str]) -> PodFields {
    fields
        .iter()
        .filter_map(|f| {
            let v = spec?.get(*f)?;
            (!v.is_null()).then(|| ((*f).to_owned(), v.clone()))
        })
        .collect()
}

fn field_of_path<'a>(path: &'a str, fields: &[&str]) -> Option<&'a str> {
    let f = path.strip_prefix("/spec/")?;
    fields.contains(&f).then_some(f)
}

/// What each cluster of the live binding runs (or is being rolled to): the live template's pod
/// fields with that cluster's pins from the live OverridePolicy. Clusters not in the live
/// binding are left out (they are new), and so is everything before the first apply.
pub fn applied(
    template_spec: Option<&Value>,
    overrides: Option<&OverridePolicy>,
    binding_clusters: &[String],
    fields: &[&str],
) -> BTreeMap<String, PodFields> {
    let Some(spec) = template_spec else {
        return BTreeMap::new();
    };
    let base = pod_fields(Some(spec), fields);
    binding_clusters
        .iter()
        .map(|c| {
            let mut current = base.clone();
            let rules = overrides.into_iter().flat_map(|p| &p.spec.override_rules);
            for rule in rules.filter(|r| {
                r.target_cluster
                    .as_ref()
                    .is_some_and(|t| t.cluster_names.iter().any(|n| n == c))
            }) {
                for p in &rule.overriders.plaintext {
                    let Some(f) = field_of_path(&p.path, fields) else {
                        continue;
                    };
                    match (p.operator.as_str(), &p.value) {
                        (OP_ADD | OP_REPLACE, Some(v)) => {
                            current.insert(f.to_owned(), v.clone());
                        }
                        (OP_REMOVE, _) => {
                            current.remove(f);
                        }
                        _ => {}
                    }
                }
            }
            (c.clone(), current)
        })
        .collect()
}

/// The overriders that hold one cluster at `current` while the template has `template`.
pub fn pin(current: &PodFields, template: &PodFields, fields: &[&str]) -> Vec<PlaintextOverrider> {
    fields
        .iter()
        .filter_map(|f| match (current.get(*f), template.get(*f)) {
            (Some(c), t) if Some(c) != t => Some(PlaintextOverrider {
                path: format!("/spec/{f}"),
                operator: OP_ADD.into(),
                value: Some(c.clone()),
            }),
            (None, Some(_)) => Some(PlaintextOverrider {
                path: format!("/spec/{f}"),
                operator: OP_REMOVE.into(),
                value: None,
            }),
            _ => None,
        })
        .collect()
}

/// One active member as the rollout needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberHealth {
    pub cluster: String,
    /// `<vip>:<nodePort>`, or a description when the address is not known yet.
    pub host: String,
    pub healthy: bool,
    pub primary: bool,
    /// What the user reads when it is not healthy.
    pub why: String,
}

/// How each active member is seen: through its own cluster's report first, then any other's; a
/// member of a cluster that is not Ready is not healthy, whatever its last report said (Karmada
/// keeps the last reflected status of a cluster it cannot reach).
pub fn member_health(
    active: &[(String, Option<String>)],
    reports: &BTreeMap<String, ClusterReport>,
    cluster_ready: &BTreeMap<String, bool>,
) -> Vec<MemberHealth> {
    let find = |r: &ClusterReport, h: &str| -> Option<SeenMember> {
        r.members.iter().find(|m| m.host == h).cloned()
    };
    active
        .iter()
        .map(|(cluster, host)| {
            let ready = cluster_ready.get(cluster).copied().unwrap_or(false);
            let Some(h) = host else {
                return MemberHealth {
                    cluster: cluster.clone(),
                    host: format!("a member in {cluster}"),
                    healthy: false,
                    primary: false,
                    why: "has no address yet".into(),
                };
            };
            let seen = reports
                .get(cluster)
                .and_then(|r| find(r, h))
                .or_else(|| reports.values().find_map(|r| find(r, h)));
            let (healthy, primary, why) = match (&seen, ready) {
                (_, false) => (false, false, format!("cluster {cluster} is not Ready")),
                (None, true) => (false, false, "is not reported yet".to_owned()),
                (Some(s), true) => (s.healthy, s.primary, format!("is {}", s.role)),
            };
            MemberHealth {
                cluster: cluster.clone(),
                host: h.clone(),
                healthy,
                primary,
                why,
            }
        })
        .collect()
}

/// One cluster of the binding (placement order).
#[derive(Clone, Debug, PartialEq)]
pub struct RollCluster {
    pub name: String,
    /// What it runs or is being rolled to; `None`: new to the binding.
    pub current: Option<PodFields>,
    /// The revision its agent reports all its members run.
    pub reported: Option<String>,
}

/// The rollout's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Roll {
    /// Clusters held at what they run: cluster → its pod fields.
    pub pins: BTreeMap<String, PodFields>,
    /// `RollingUpdate`: true while a cluster is rolling or waiting for its turn.
    pub in_progress: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Roll {
    pub fn condition(&self, generation: Option<i64>) -> Condition {
        Condition::new(
            types::ROLLING_UPDATE,
            ConditionStatus::from_bool(self.in_progress),
            self.reason,
            self.message.clone(),
            generation,
        )
    }
}

fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(", ")
}

fn unhealthy<'a>(members: impl IntoIterator<Item = &'a MemberHealth>) -> Vec<String> {
    members
        .into_iter()
        .filter(|m| !m.healthy)
        .map(|m| format!("{} ({}) {}", m.host, m.cluster, m.why))
        .collect()
}

/// Which clusters get the new pod fields now and which are held, given what each runs and
/// reports. `revision` names the revision of the template's pod fields.
pub fn decide(
    desired: &PodFields,
    revision: &str,
    clusters: &[RollCluster],
    members: &[MemberHealth],
) -> Roll {
    let has_new = |c: &RollCluster| c.current.as_ref().is_none_or(|f| f == desired);
    let pending: Vec<&RollCluster> = clusters.iter().filter(|c| !has_new(c)).collect();
    fn of<'m>(members: &'m [MemberHealth], c: &'m str) -> impl Iterator<Item = &'m MemberHealth> {
        members.iter().filter(move |m| m.cluster == c)
    }
    // A cluster with the new fields is done once it says its members run them and they are
    // healthy again.
    let rolling: Vec<(&RollCluster, Vec<String>)> = clusters
        .iter()
        .filter(|c| has_new(c))
        .filter_map(|c| {
            let mut why = unhealthy(of(members, &c.name));
            if c.reported.as_deref() != Some(revision) {
                why.insert(
                    0,
                    format!(
                        "its members do not all run revision {revision} yet (it reports {})",
                        c.reported.as_deref().unwrap_or("none")
                    ),
                );
            }
            (!why.is_empty()).then_some((c, why))
        })
        .collect();
    let held = |except: Option<&str>| -> BTreeMap<String, PodFields> {
        pending
            .iter()
            .filter(|c| Some(c.name.as_str()) != except)
            .filter_map(|c| Some((c.name.clone(), c.current.clone()?)))
            .collect()
    };
    if pending.is_empty() {
        // Nothing held back; a cluster whose agent reports another revision is still rolling.
        let behind: Vec<String> = clusters
            .iter()
            .filter(|c| c.reported.as_ref().is_some_and(|r| r != revision))
            .map(|c| c.name.clone())
            .collect();
        return if behind.is_empty() {
            Roll {
                pins: BTreeMap::new(),
                in_progress: false,
                reason: "Current",
                message: format!("every cluster has the members' pod revision {revision}"),
            }
        } else {
            Roll {
                pins: BTreeMap::new(),
                in_progress: true,
                reason: "RollingCluster",
                message: format!(
                    "rolling revision {revision}: waiting for {} to report that all its members run it",
                    behind.join(", ")
                ),
            }
        };
    }
    let waiting = list(pending.iter().map(|c| c.name.as_str()));
    if !rolling.is_empty() {
        let detail: Vec<String> = rolling
            .iter()
            .map(|(c, why)| format!("{}: {}", c.name, why.join("; ")))
            .collect();
        return Roll {
            pins: held(None),
            in_progress: true,
            reason: "RollingCluster",
            message: format!(
                "rolling revision {revision} one cluster at a time; rolling {}; {waiting} keep their previous pod spec until then",
                detail.join(" | ")
            ),
        };
    }
    // Clusters without the primary first, so the primary moves once, at the end.
    let mut order: Vec<&RollCluster> = pending.clone();
    order.sort_by_key(|c| of(members, &c.name).any(|m| m.primary));
    let next = order
        .iter()
        .find(|c| members.iter().all(|m| m.cluster == c.name || m.healthy));
    match next {
        Some(c) => {
            let rest: Vec<&str> = pending
                .iter()
                .map(|p| p.name.as_str())
                .filter(|n| *n != c.name)
                .collect();
            Roll {
                pins: held(Some(&c.name)),
                in_progress: true,
                reason: "RollingCluster",
                message: format!(
                    "rolling revision {revision} one cluster at a time: now {}; waiting for its members to run it and be healthy{}",
                    c.name,
                    if rest.is_empty() {
                        String::new()
                    } else {
                        format!("; then {}", rest.join(", "))
                    }
                ),
            }
        }
        None => {
            let sick: BTreeSet<String> = unhealthy(members).into_iter().collect();
            Roll {
                pins: held(None),
                in_progress: true,
                reason: "WaitingForHealthyMembers",
                message: format!(
                    "rolling revision {revision} one cluster at a time: {waiting} wait, because members are not healthy: {} (restarting another voter now could take the majority down; an unreachable cluster's members count as down until it returns or leaves the placement)",
                    list(sick.iter().map(String::as_str))
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fedstate_api::karmada::ClusterAffinity;
    use fedstate_api::karmada::override_policy::{OverridePolicySpec, Overriders, RuleWithCluster};
    use serde_json::json;

    const FIELDS: [&str; 2] = ["image", "resources"];

    fn fields(image: &str) -> PodFields {
        pod_fields(Some(&json!({"image": image, "members": 1})), &FIELDS)
    }

    fn rev(image: &str) -> String {
        format!("rev-{image}")
    }

    fn cluster(name: &str, image: Option<&str>, reported: Option<&str>) -> RollCluster {
        RollCluster {
            name: name.into(),
            current: image.map(fields),
            reported: reported.map(rev),
        }
    }

    fn member(cluster: &str, i: i32, healthy: bool, primary: bool) -> MemberHealth {
        MemberHealth {
            cluster: cluster.into(),
            host: format!("10.0.0.{i}:3000{i}"),
            healthy,
            primary,
            why: if healthy { "is SECONDARY" } else { "is DOWN" }.into(),
        }
    }

    /// 1/1/1, the primary in a.
    fn healthy_set() -> Vec<MemberHealth> {
        vec![
            member("a", 1, true, true),
            member("b", 2, true, false),
            member("c", 3, true, false),
        ]
    }

    fn released(r: &Roll, all: &[&str]) -> Vec<String> {
        all.iter()
            .filter(|c| !r.pins.contains_key(**c))
            .map(|c| (*c).to_owned())
            .collect()
    }

    #[test]
    fn an_image_change_reaches_one_cluster_and_the_others_keep_their_spec() {
        // Old code: every cluster got the new template at once (nothing was ever held).
        let new = fields("mongo:8.0");
        let clusters = [
            cluster("a", Some("mongo:7.0"), Some("mongo:7.0")),
            cluster("b", Some("mongo:7.0"), Some("mongo:7.0")),
            cluster("c", Some("mongo:7.0"), Some("mongo:7.0")),
        ];
        let r = decide(&new, &rev("mongo:8.0"), &clusters, &healthy_set());
        assert!(r.in_progress);
        // One cluster released, and not the primary's.
        assert_eq!(released(&r, &["a", "b", "c"]), ["b"]);
        assert_eq!(r.pins["a"], fields("mongo:7.0"));
        assert_eq!(r.pins["c"], fields("mongo:7.0"));
        assert!(r.message.contains("now b"), "{}", r.message);
    }

    #[test]
    fn the_next_cluster_waits_until_the_rolled_one_reports_the_revision_and_is_healthy() {
        let new = fields("mongo:8.0");
        let r8 = rev("mongo:8.0");
        // b has the new spec but still reports the old revision: nobody else moves.
        let clusters = [
            cluster("a", Some("mongo:7.0"), Some("mongo:7.0")),
            cluster("b", Some("mongo:8.0"), Some("mongo:7.0")),
            cluster("c", Some("mongo:7.0"), Some("mongo:7.0")),
        ];
        let r = decide(&new, &r8, &clusters, &healthy_set());
        assert_eq!(released(&r, &["a", "b", "c"]), ["b"]);
        assert!(r.message.contains("rolling b"), "{}", r.message);
        // b reports the revision but its member is not back yet: still nobody.
        let mut members = healthy_set();
        members[1] = member("b", 2, false, false);
        let clusters = [
            cluster("a", Some("mongo:7.0"), Some("mongo:7.0")),
            cluster("b", Some("mongo:8.0"), Some("mongo:8.0")),
            cluster("c", Some("mongo:7.0"), Some("mongo:7.0")),
        ];
        let r = decide(&new, &r8, &clusters, &members);
        assert_eq!(released(&r, &["a", "b", "c"]), ["b"]);
        assert!(r.message.contains("is DOWN"), "{}", r.message);
        // b done and healthy: c next (a holds the primary, last).
        let r = decide(&new, &r8, &clusters, &healthy_set());
        assert_eq!(released(&r, &["a", "b", "c"]), ["b", "c"]);
        // c done: a last.
        let clusters = [
            cluster("a", Some("mongo:7.0"), Some("mongo:7.0")),
            cluster("b", Some("mongo:8.0"), Some("mongo:8.0")),
            cluster("c", Some("mongo:8.0"), Some("mongo:8.0")),
        ];
        let r = decide(&new, &r8, &clusters, &healthy_set());
        assert_eq!(released(&r, &["a", "b", "c"]), ["a", "b", "c"]);
        assert!(r.in_progress);
        // Every cluster reports the new revision: done.
        let clusters = [
            cluster("a", Some("mongo:8.0"), Some("mongo:8.0")),
            cluster("b", Some("mongo:8.0"), Some("mongo:8.0")),
            cluster("c", Some("mongo:8.0"), Some("mongo:8.0")),
        ];
        let r = decide(&new, &r8, &clusters, &healthy_set());
        assert!(!r.in_progress);
        assert!(r.pins.is_empty());
        assert_eq!(r.reason, "Current");
    }

    #[test]
    fn an_unreachable_cluster_holds_the_others_and_the_condition_says_so() {
        let new = fields("mongo:8.0");
        let clusters = [
            cluster("a", Some("mongo:7.0"), Some("mongo:7.0")),
            cluster("b", Some("mongo:7.0"), Some("mongo:7.0")),
        ];
        // 2/2/1-like: b's member down (its cluster not Ready), c already rolled.
        let members = vec![
            member("a", 1, true, true),
            member("b", 2, false, false),
            member("c", 3, true, false),
        ];
        let all = [
            clusters[0].clone(),
            clusters[1].clone(),
            cluster("c", Some("mongo:8.0"), Some("mongo:8.0")),
        ];
        let r = decide(&new, &rev("mongo:8.0"), &all, &members);
        // a may not roll (b's voter is down); b itself may: it is down already.
        assert_eq!(released(&r, &["a", "b", "c"]), ["b", "c"]);
        // Once b has the new spec it must report before a moves.
        let all = [
            clusters[0].clone(),
            cluster("b", Some("mongo:8.0"), None),
            cluster("c", Some("mongo:8.0"), Some("mongo:8.0")),
        ];
        let r = decide(&new, &rev("mongo:8.0"), &all, &members);
        assert_eq!(released(&r, &["a", "b", "c"]), ["b", "c"]);
        assert!(r.message.contains("rolling b"), "{}", r.message);
        // With two down elsewhere, nothing is released and the message names them.
        let members = vec![
            member("a", 1, false, false),
            member("b", 2, false, false),
            member("c", 3, true, true),
        ];
        let r = decide(&new, &rev("mongo:8.0"), &clusters, &members);
        assert_eq!(r.pins.len(), 2);
        assert_eq!(r.reason, "WaitingForHealthyMembers");
        assert!(
            r.message.contains("10.0.0.1:30001 (a) is DOWN"),
            "{}",
            r.message
        );
    }

    #[test]
    fn new_clusters_and_the_first_apply_get_the_new_spec_at_once() {
        let new = fields("mongo:8.0");
        let clusters = [cluster("a", None, None), cluster("b", None, None)];
        let r = decide(&new, &rev("mongo:8.0"), &clusters, &healthy_set());
        assert!(r.pins.is_empty());
        assert!(!r.in_progress, "nothing reports another revision");
    }

    #[test]
    fn a_second_change_mid_rollout_waits_for_the_cluster_still_restarting() {
        // a was released to 8.0 and is restarting its member; the user now asks for 8.1.
        let new = fields("mongo:8.1");
        let clusters = [
            cluster("a", Some("mongo:8.0"), Some("mongo:7.0")),
            cluster("b", Some("mongo:7.0"), Some("mongo:7.0")),
        ];
        let members = vec![member("a", 1, false, false), member("b", 2, true, true)];
        let r = decide(&new, &rev("mongo:8.1"), &clusters, &members);
        // Only a (down already) may move on; b keeps 7.0.
        assert_eq!(released(&r, &["a", "b"]), ["a"]);
        assert_eq!(r.pins["b"], fields("mongo:7.0"));
    }

    #[test]
    fn pins_round_trip_through_the_override_policy() {
        let template = pod_fields(
            Some(&json!({"image": "mongo:8.0", "resources": {"limits": {"cpu": "2"}}})),
            &FIELDS,
        );
        let old = fields("mongo:7.0"); // no resources
        let ops = pin(&old, &template, &FIELDS);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].operator, OP_ADD);
        assert_eq!(ops[1].operator, OP_REMOVE);
        assert_eq!(ops[1].path, "/spec/resources");
        let policy = OverridePolicy::new(
            "db",
            OverridePolicySpec {
                resource_selectors: Vec::new(),
                override_rules: vec![RuleWithCluster {
                    target_cluster: Some(ClusterAffinity {
                        cluster_names: vec!["a".into()],
                        ..Default::default()
                    }),
                    overriders: Overriders {
                        plaintext: ops,
                        ..Default::default()
                    },
                }],
            },
        );
        let spec =
            json!({"image": "mongo:8.0", "resources": {"limits": {"cpu": "2"}}, "members": 3});
        let got = applied(
            Some(&spec),
            Some(&policy),
            &["a".into(), "b".into()],
            &FIELDS,
        );
        assert_eq!(got["a"], old);
        assert_eq!(got["b"], template);
        // No pin where nothing differs.
        assert!(pin(&template, &template, &FIELDS).is_empty());
        assert!(applied(None, Some(&policy), &["a".into()], &FIELDS).is_empty());
    }

    #[test]
    fn a_member_of_a_cluster_that_is_not_ready_is_not_healthy_whatever_it_last_said() {
        let report = ClusterReport {
            members: vec![SeenMember {
                host: "h:1".into(),
                role: "SECONDARY".into(),
                healthy: true,
                primary: false,
            }],
            ..Default::default()
        };
        let reports = BTreeMap::from([("b".to_owned(), report)]);
        let active = [("b".to_owned(), Some("h:1".to_owned()))];
        let ready = BTreeMap::from([("b".to_owned(), false)]);
        let h = member_health(&active, &reports, &ready);
        assert!(!h[0].healthy);
        assert!(h[0].why.contains("not Ready"));
        let ready = BTreeMap::from([("b".to_owned(), true)]);
        assert!(member_health(&active, &reports, &ready)[0].healthy);
    }

    /// A new mongod configuration (here the content of the user's `configRef` ConfigMap, which
    /// Karmada propagates as it is) and a rotated monitor password reach the pods only through
    /// a restart; with MongoDB's real pod fields both are rolled one cluster at a time, the
    /// others pinned at the digest they run. Before, neither changed the pod fields: every
    /// cluster restarted (or, for the configuration, did not restart at all) at once.
    #[test]
    fn a_config_change_and_a_monitor_password_rotation_reach_one_cluster_at_a_time() {
        use crate::middleware::Middleware;
        use crate::mongodb::MongoDb;
        use fedstate_api::MultiCloudMongoDB;
        use k8s_openapi::ByteString;
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};

        let mcm: MultiCloudMongoDB = serde_yaml::from_str(include_str!(
            "../../deploy/samples/seed/multicloudmongodb-full.yaml"
        ))
        .unwrap();
        let name = mcm.metadata.name.clone().unwrap();
        let secret = |n: String, k: &str, v: &str| {
            let mut s = Secret {
                data: Some(BTreeMap::from([(k.to_owned(), ByteString(v.into()))])),
                ..Default::default()
            };
            s.metadata.name = Some(n.clone());
            (n, s)
        };
        let spec = |content: &str, monitor: &str| -> Value {
            let secrets = BTreeMap::from([
                secret(format!("{name}-keyfile"), "keyfile", "K3yf1le-of-this-set"),
                secret(
                    format!("{name}-credentials"),
                    "clusterMonitorPassword",
                    monitor,
                ),
            ]);
            let cm = ConfigMap {
                data: Some(BTreeMap::from([(
                    "mongod.yaml".to_owned(),
                    content.to_owned(),
                )])),
                ..Default::default()
            };
            let cms = BTreeMap::from([("my-custome-configmap".to_owned(), cm)]);
            let mut t = MongoDb.member_template(&mcm, 5);
            MongoDb.stamp_pod_inputs(&mcm, &mut t, &secrets, &cms);
            serde_json::to_value(t).unwrap()["spec"].take()
        };
        let fields = MongoDb.pod_fields();
        let live = spec("operationProfiling: {mode: off}", "Monitor-Pw-1");
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let running = applied(Some(&live), None, &names, fields);
        let live_fields = pod_fields(Some(&live), fields);
        let live_rev = MongoDb.pod_revision(&name, &live_fields);
        let clusters: Vec<RollCluster> = names
            .iter()
            .map(|c| RollCluster {
                name: c.clone(),
                current: running.get(c).cloned(),
                reported: Some(live_rev.clone()),
            })
            .collect();
        for (what, desired) in [
            (
                "config",
                spec("operationProfiling: {mode: slowOp}", "Monitor-Pw-1"),
            ),
            (
                "password",
                spec("operationProfiling: {mode: off}", "Monitor-Pw-2"),
            ),
        ] {
            let d = pod_fields(Some(&desired), fields);
            let r = decide(
                &d,
                &MongoDb.pod_revision(&name, &d),
                &clusters,
                &healthy_set(),
            );
            assert_eq!(released(&r, &["a", "b", "c"]), ["b"], "{what}");
            assert_eq!(r.pins["a"], live_fields, "{what}");
            assert_eq!(r.pins["c"], live_fields, "{what}");
            // What the OverridePolicy would carry: the old digest, never content or password.
            let ops = serde_json::to_string(&pin(&r.pins["a"], &d, fields)).unwrap();
            assert!(ops.contains("Digest"), "{what}: {ops}");
            for secret in ["Monitor-Pw", "slowOp", "mode: off", "K3yf1le"] {
                assert!(!ops.contains(secret), "{what}: {ops}");
                assert!(!desired.to_string().contains(secret), "{what}: {desired}");
            }
        }
        // Nothing changed: nothing held.
        let r = decide(&live_fields, &live_rev, &clusters, &healthy_set());
        assert!(r.pins.is_empty() && !r.in_progress);
    }
}
