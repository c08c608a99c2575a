//! Names and labels every component derives the same way (`docs/architecture.md#names-and-labels`).

use std::collections::BTreeMap;

/// The scheduler name objects select us by, FedState's default.
pub const DEFAULT_SCHEDULER_NAME: &str = "multicloud-middleware-scheduler";
/// The annotation carrying the placement on a `MultiCloudMongoDB`.
pub const SCHEDULER_RESULT_ANNOTATION: &str = "schedulerResult";
/// The Cluster label holding the cluster's VIP; [`LEGACY_VIP_LABEL`] is accepted too.
pub const VIP_LABEL: &str = "vip";
/// FedState's README told users to label clusters `VIP=...`.
pub const LEGACY_VIP_LABEL: &str = "VIP";
/// The replica-set name FedState hard-coded; kept for objects FedState created.
pub const LEGACY_REPLSET_NAME: &str = "replset-0";

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const MANAGED_BY: &str = "fedstate";
/// Field manager of every server-side apply we do (the manager's).
pub const FIELD_MANAGER: &str = "fedstate";
/// Field manager of the scheduler: it owns the annotation, `status.placement` and the
/// `Scheduled`, `ServerScheduledResult` and `QuorumAtRisk` conditions.
pub const FIELD_MANAGER_SCHEDULER: &str = "fedstate-scheduler";
/// Field manager of the mongo-agent in member clusters.
pub const FIELD_MANAGER_AGENT: &str = "fedstate-mongo-agent";

/// A member's set-wide index: on the manager's member Services (which select on it) and, set by
/// the agent, on data member pods.
pub const LABEL_MEMBER_INDEX: &str = "middleware.fedstate.io/member-index";
/// [`ROLE_DATA`] or [`ROLE_ARBITER`]: on member Services and (set by the agent) member pods.
pub const LABEL_MEMBER_ROLE: &str = "middleware.fedstate.io/member-role";
/// The member cluster a member Service belongs to (on our Services in the Karmada apiserver).
pub const LABEL_CLUSTER: &str = "middleware.fedstate.io/cluster";
/// FedState's label holding the cluster VIP on each member cluster's `MongoDB`.
pub const LABEL_MEMBER_VIP: &str = "app.multicloudmongodb.io/vip";
/// [`LABEL_MEMBER_ROLE`] of a data-bearing member.
pub const ROLE_DATA: &str = "data";
/// [`LABEL_MEMBER_ROLE`] of the arbiter.
pub const ROLE_ARBITER: &str = "arbiter";

/// The VIP of a cluster from its labels: `vip` wins over `VIP`; empty values do not count.
pub fn cluster_vip(labels: &BTreeMap<String, String>) -> Option<&str> {
    [VIP_LABEL, LEGACY_VIP_LABEL]
        .iter()
        .filter_map(|k| labels.get(*k))
        .map(String::as_str)
        .find(|v| !v.is_empty())
}

/// Labels on everything we create for the instance `name`.
pub fn managed_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_INSTANCE.to_owned(), name.to_owned()),
    ])
}

/// The NodePort Service of data member `index` (stable across scaling).
pub fn member_service_name(name: &str, index: u32) -> String {
    format!("{name}-mongodb-{index}")
}

/// The NodePort Service of the arbiter.
pub fn arbiter_service_name(name: &str) -> String {
    format!("{name}-mongodb-arbiter")
}

/// The ConfigMap listing every desired member address with votes and priority.
pub fn hostconf_name(name: &str) -> String {
    format!("{name}-hostconf")
}

/// Replica set name: the object's name, or FedState's `replset-0` for sets FedState created.
pub fn replica_set_name(name: &str, created_by_fedstate_go: bool) -> String {
    if created_by_fedstate_go {
        LEGACY_REPLSET_NAME.to_owned()
    } else {
        name.to_owned()
    }
}

/// Member address `<vip>:<port>` (`docs/mongodb.md#members`: the address scheme FedState uses).
pub fn member_address(vip: &str, port: i32) -> String {
    format!("{vip}:{port}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn vip_prefers_lowercase_label_and_ignores_empty() {
        let l = BTreeMap::from([
            ("VIP".to_owned(), "10.0.0.2".to_owned()),
            ("vip".to_owned(), "10.0.0.1".to_owned()),
        ]);
        assert_eq!(cluster_vip(&l), Some("10.0.0.1"));
        let l = BTreeMap::from([
            ("VIP".to_owned(), "10.0.0.2".to_owned()),
            ("vip".to_owned(), String::new()),
        ]);
        assert_eq!(cluster_vip(&l), Some("10.0.0.2"));
        assert_eq!(cluster_vip(&BTreeMap::new()), None);
    }

    #[test]
    fn names_follow_the_spec() {
        assert_eq!(member_service_name("demo", 3), "demo-mongodb-3");
        assert_eq!(arbiter_service_name("demo"), "demo-mongodb-arbiter");
        assert_eq!(hostconf_name("demo"), "demo-hostconf");
        assert_eq!(replica_set_name("demo", false), "demo");
        assert_eq!(replica_set_name("demo", true), "replset-0");
        assert_eq!(member_address("127.0.1.1", 30017), "127.0.1.1:30017");
    }
}
