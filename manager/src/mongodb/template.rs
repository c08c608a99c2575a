//! The `MongoDB` member template and what differs per cluster (the OverridePolicy rule).
//!
//! The template carries every field of the `MultiCloudMongoDB` spec, Secrets by reference only;
//! the rule of each binding cluster sets `members`, `memberRoles` (identity, votes, priority),
//! `rsInit` (exactly one cluster initiates the set), `arbiter`, and FedState's VIP label.

use std::collections::BTreeMap;

use fedstate_api::karmada::binding_status::TargetCluster;
use fedstate_api::karmada::override_policy::{
    LabelAnnotationOverrider, OP_ADD, OP_REPLACE, Overriders, PlaintextOverrider,
};
use fedstate_api::names::{self, LABEL_MEMBER_VIP};
use fedstate_api::v1alpha1::{
    ConfigVar, ImagePullSecret, MemberRole, MetricsExporterSpec, MongoDBSpec, PersistenceSpec,
    PodSpec,
};
use fedstate_api::{MongoDB, MultiCloudMongoDB};
use serde_json::json;

use super::secrets;
use crate::desired::meta;
use crate::members::Assignment;

/// The finalizer FedState (Go) put on objects it created; such sets keep `replset-0`.
pub const FEDSTATE_GO_FINALIZER: &str = "multiCloudMongoDB.finalizers.middleware.fedstate.io";

fn instance(mcm: &MultiCloudMongoDB) -> String {
    mcm.metadata.name.clone().unwrap_or_default()
}

/// The ConfigMap holding the host list (`spec.member.memberConfigRef` or `<name>-hostconf`).
pub fn hostconf_name(mcm: &MultiCloudMongoDB) -> String {
    mcm.spec
        .member
        .as_ref()
        .and_then(|m| m.member_config_ref.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::hostconf_name(&instance(mcm)))
}

/// The cluster that initiates the replica set: the planned cluster with the highest priority
/// among those with an active data member (first in placement order on ties).
pub fn rs_init_cluster(assignment: &Assignment) -> Option<&str> {
    let mut best: Option<(&str, i32)> = None;
    for c in &assignment.planned_clusters {
        let prio = assignment
            .data_members(c)
            .filter(|m| m.is_active())
            .map(|m| m.priority)
            .max();
        if let Some(p) = prio
            && best.is_none_or(|(_, b)| p > b)
        {
            best = Some((c.as_str(), p));
        }
    }
    best.map(|(c, _)| c)
}

/// The `MongoDB` template: every field of the spec, cluster-independent parts only;
/// `members` is the total over the binding clusters (each cluster's rule sets its own).
pub fn mongodb_template(mcm: &MultiCloudMongoDB, members: i32) -> MongoDB {
    let spec = &mcm.spec;
    let name = instance(mcm);
    let legacy = mcm
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FEDSTATE_GO_FINALIZER));
    let export = spec.export.as_ref();
    let storage = spec.storage.as_ref();
    let spread = spec.spread_constraints.as_ref();
    let pod_spec = PodSpec {
        node_selector: spread.and_then(|s| s.node_select.clone()),
        topology_spread_constraints: spread.and_then(|s| s.topology_spread_constraints.clone()),
        ..Default::default()
    };
    let mut m = MongoDB::new(
        &name,
        MongoDBSpec {
            members,
            image: Some(spec.image().to_owned()),
            image_pull_policy: spec
                .image_setting
                .as_ref()
                .and_then(|i| i.image_pull_policy),
            image_pull_secret: secrets::pull_secret_ref(mcm).map(ImagePullSecret::Name),
            config: spec
                .config
                .as_ref()
                .and_then(|c| c.config_set.as_ref())
                .map(|set| {
                    set.iter()
                        .map(|(k, v)| ConfigVar {
                            name: Some(k.clone()),
                            value: Some(v.clone()),
                        })
                        .collect()
                }),
            custom_config_ref: user_config_ref(mcm).map(str::to_owned),
            root_password: None,
            root_password_secret_ref: Some(secrets::root_password_ref(mcm)),
            keyfile_secret_ref: Some(secrets::keyfile_secret_name(&name)),
            resources: spec.resource.clone(),
            persistence: Some(PersistenceSpec {
                storage: storage
                    .and_then(|s| s.storage_size.as_ref())
                    .map(|q| q.0.clone()),
                storage_class_name: storage
                    .and_then(|s| s.storage_class.clone())
                    .filter(|c| !c.is_empty()),
                delete_on_teardown: storage.and_then(|s| s.delete_on_teardown).filter(|d| *d),
            }),
            metrics_exporter_spec: Some(MetricsExporterSpec {
                enable: Some(export.and_then(|e| e.enable).unwrap_or(false)),
                resources: export.and_then(|e| e.resource.clone()),
            }),
            pod_spec: (pod_spec != PodSpec::default()).then_some(pod_spec),
            member_config_ref: Some(hostconf_name(mcm)),
            arbiter: Some(false),
            rs_init: Some(false),
            pause: None,
            type_: Some("ReplicaSet".into()),
            db_user_spec: None,
            repl_set_name: Some(names::replica_set_name(&name, legacy)),
            member_roles: None,
            // Stamped from the Secrets and the user's ConfigMap (`pod_inputs`).
            config_digest: None,
            exporter_login_digest: None,
        },
    );
    m.metadata = meta(mcm, name);
    m
}

/// The user's mongod configuration ConfigMap (`spec.config.configRef`), if any.
pub fn user_config_ref(mcm: &MultiCloudMongoDB) -> Option<&str> {
    mcm.spec
        .config
        .as_ref()
        .and_then(|c| c.config_ref.as_deref())
        .filter(|r| !r.is_empty())
}

/// One binding cluster's rule: its members, their identities, votes and priorities, whether it
/// initiates the set, whether it runs the arbiter, and its VIP label.
pub fn cluster_overrides(
    assignment: &Assignment,
    cluster: &TargetCluster,
    vip: Option<&str>,
) -> Overriders {
    let roles: Vec<MemberRole> = assignment
        .data_members(&cluster.name)
        .map(|m| MemberRole {
            member_index: m.index,
            votes: m.votes,
            priority: m.priority,
        })
        .collect();
    let arbiter = assignment
        .members
        .iter()
        .any(|m| m.arbiter && m.cluster == cluster.name);
    let init = rs_init_cluster(assignment) == Some(cluster.name.as_str());
    let plaintext = vec![
        replace("/spec/members", json!(cluster.replicas)),
        PlaintextOverrider {
            path: "/spec/memberRoles".into(),
            operator: OP_ADD.into(),
            value: Some(json!(roles)),
        },
        replace("/spec/rsInit", json!(init)),
        replace("/spec/arbiter", json!(arbiter)),
    ];
    let labels_overrider = vip
        .map(|vip| LabelAnnotationOverrider {
            operator: OP_ADD.into(),
            value: BTreeMap::from([(LABEL_MEMBER_VIP.to_owned(), vip.to_owned())]),
        })
        .into_iter()
        .collect();
    Overriders {
        plaintext,
        labels_overrider,
        annotations_overrider: Vec::new(),
    }
}

fn replace(path: &str, value: serde_json::Value) -> PlaintextOverrider {
    PlaintextOverrider {
        path: path.into(),
        operator: OP_REPLACE.into(),
        value: Some(value),
    }
}
