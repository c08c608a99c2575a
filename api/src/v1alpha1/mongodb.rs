//! `MongoDB`: the members one cluster runs (created by the manager through Karmada, or by a user
//! for a single-cluster replica set).

// Each `printcolumn(...)` repeats `type_ = ...`; clippy's duplicated_attributes reads that as
// one attribute given twice.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, PodSecurityContext, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ImagePullSecret, SecretKeyRef, redact};
use super::multicloud_mongodb::PullPolicy;
use crate::condition::Condition;

/// MongoDB replica-set members in one cluster.
// `Debug` (below) shows whether a password is set, never the password.
#[derive(CustomResource, KubeSchema, Clone, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "middleware.fedstate.io",
    version = "v1alpha1",
    kind = "MongoDB",
    plural = "mongodbs",
    // Not `mongodb`/`mdb`: the MongoDB Community/Enterprise operator's `mongodb.mongodb.com` uses
    // those, and kubectl would pick one of the two kinds at random.
    singular = "fedstatemongodb",
    shortname = "fsmdb",
    category = "fedstate",
    namespaced,
    status = "MongoDBStatus",
    printcolumn(name = "STATE", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "MEMBERS",
        type_ = "integer",
        json_path = ".spec.members",
        description = "data-bearing members in this cluster"
    ),
    printcolumn(
        name = "READY",
        type_ = "integer",
        json_path = ".status.currentInfo.members",
        description = "members running"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[x_kube(validation = Rule::new("!(has(self.rootPassword) && has(self.rootPasswordSecretRef))").message("spec: set either rootPassword or rootPasswordSecretRef, not both (prefer rootPasswordSecretRef)"))]
#[x_kube(validation = Rule::new("!has(self.memberRoles) || size(self.memberRoles) == self.members").message("spec.memberRoles must list exactly spec.members entries, one per data member"))]
#[serde(rename_all = "camelCase")]
pub struct MongoDBSpec {
    /// Data-bearing members in this cluster (0 to 50).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 50").message("spec.members must be between 0 and 50 (MongoDB allows at most 50 members)"))]
    pub members: i32,
    /// MongoDB image, 4.4 to 8.0; defaults to `mongo:7.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<ImagePullSecret>,
    /// mongod settings as name/value pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Vec<ConfigVar>>,
    /// ConfigMap (key `mongod.yaml`) with the user's mongod configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config_ref: Option<String>,
    /// Plain-text root password, accepted for FedState compatibility; prefer
    /// `rootPasswordSecretRef`. The manager never writes this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password_secret_ref: Option<SecretKeyRef>,
    /// Secret with the replica-set keyfile (key `keyfile`); generated when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyfile_secret_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_exporter_spec: Option<MetricsExporterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_spec: Option<PodSpec>,
    /// ConfigMap with the desired member list of the whole set (`<name>-hostconf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_config_ref: Option<String>,
    /// Run an arbiter in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<bool>,
    /// This cluster initiates the replica set (exactly one cluster of a set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rs_init: Option<bool>,
    /// Stop all changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<bool>,
    /// `ReplicaSet` (the only type).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// FedState's database user settings (kept for compatibility).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_user_spec: Option<DbUserSpec>,
    /// Replica set name; defaults to the object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repl_set_name: Option<String>,
    /// Stable identity, votes and priority of each data member, set by the manager; without it
    /// members are numbered 0.. and all vote (single-cluster use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_roles: Option<Vec<MemberRole>>,
    /// Set by the manager: a keyed digest of the mongod configuration it propagates (`config`,
    /// `customConfigRef` and that ConfigMap's content), never the content. The agent puts it on
    /// the members' pod template, so a new configuration is applied by a rolling restart that
    /// the manager releases one cluster at a time (`docs/mongodb.md#rolling-changes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// Set by the manager: a keyed digest of the exporter's login (the clusterMonitor password of
    /// the credentials Secret), never the password nor anything it could be found from without
    /// the key. The agent puts it on the pod template of members with an exporter, so a rotation
    /// restarts the exporters one cluster at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exporter_login_digest: Option<String>,
}

impl std::fmt::Debug for MongoDBSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field (a test checks none is left out), the password redacted.
        f.debug_struct("MongoDBSpec")
            .field("members", &self.members)
            .field("image", &self.image)
            .field("image_pull_policy", &self.image_pull_policy)
            .field("image_pull_secret", &self.image_pull_secret)
            .field("config", &self.config)
            .field("custom_config_ref", &self.custom_config_ref)
            .field("root_password", &redact(&self.root_password))
            .field("root_password_secret_ref", &self.root_password_secret_ref)
            .field("keyfile_secret_ref", &self.keyfile_secret_ref)
            .field("resources", &self.resources)
            .field("persistence", &self.persistence)
            .field("metrics_exporter_spec", &self.metrics_exporter_spec)
            .field("pod_spec", &self.pod_spec)
            .field("member_config_ref", &self.member_config_ref)
            .field("arbiter", &self.arbiter)
            .field("rs_init", &self.rs_init)
            .field("pause", &self.pause)
            .field("type_", &self.type_)
            .field("db_user_spec", &self.db_user_spec)
            .field("repl_set_name", &self.repl_set_name)
            .field("member_roles", &self.member_roles)
            .field("config_digest", &self.config_digest)
            .field("exporter_login_digest", &self.exporter_login_digest)
            .finish()
    }
}

/// The identity and voting role of one data member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRole {
    /// Set-wide, stable index: the member's Service is `<name>-mongodb-<memberIndex>`.
    #[schemars(range(min = 0, max = 49))]
    pub member_index: i32,
    /// 0 or 1.
    #[schemars(range(min = 0, max = 1))]
    pub votes: i32,
    /// 0 for non-voters.
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigVar {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistenceSpec {
    /// PVC size of each member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// StorageClass; empty uses the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Delete the members' PVCs (their data) when this object is deleted. Off by default: the
    /// StatefulSets keep their PVCs (`persistentVolumeClaimRetentionPolicy` `Retain`), so a
    /// deletion never takes a member's data with it unless asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_teardown: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricsExporterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// The pod-level settings FedState copied from `corev1.PodSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
}

// `Debug` (below) shows whether a password is set, never the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DbUserSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Accepted for compatibility and never echoed anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
}

impl std::fmt::Debug for DbUserSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbUserSpec")
            .field("name", &self.name)
            .field("user", &self.user)
            .field("password", &redact(&self.password))
            .field("enable", &self.enable)
            .finish()
    }
}

/// `Running`, `Pause`, `Reconciling`, `Error`, `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MongoState {
    Running,
    Pause,
    Reconciling,
    Error,
    Unknown,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MongoDBStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MongoState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    /// Members as `replSetGetStatus` reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replset: Vec<ReplSetMemberStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_info: Option<CurrentInfo>,
    /// Keyed by `type`, so each component server-side-applies only the conditions it owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The last forced reconfig, run by the user's one-shot opt-in (never used twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_reconfig: Option<ForcedReconfigStatus>,
}

/// A forced reconfig the agent ran, and the opt-in it used up.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForcedReconfigStatus {
    /// The opt-in annotation's value it used (`<generation>/<configVersion>`).
    pub opt_in: String,
    /// The member it ran on (not `on`: YAML 1.1 readers such as Helm's take `on` for `true`).
    pub member: String,
    /// The config version it was forced from, and the one it wrote.
    pub from_version: i64,
    pub version: i64,
    /// When (RFC 3339).
    pub time: String,
}

/// One entry of `replSetGetStatus.members`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplSetMemberStatus {
    #[serde(rename = "_id")]
    pub id: i32,
    /// `host:port`.
    pub name: String,
    /// 1 up, 0 down.
    #[serde(default)]
    pub health: i32,
    /// MongoDB's numeric state (1 PRIMARY, 2 SECONDARY, 7 ARBITER, …).
    #[serde(default)]
    pub state: i32,
    #[serde(default)]
    pub state_str: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_source_host: Option<String>,
    /// Pre-4.4 name of `syncSourceHost`, kept for FedState objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncing_to: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentInfo {
    /// Members running now.
    #[serde(default)]
    pub members: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config: Option<String>,
}
