//! `MultiCloudMongoDB`: one replica set spread over Karmada member clusters.

// Each `printcolumn(...)` repeats `type_ = ...`; clippy's duplicated_attributes reads that as
// one attribute given twice.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ImagePullSecret, SecretKeyRef};
use crate::condition::Condition;
// The kind-independent placement vocabulary, re-exported so `v1alpha1::*` keeps naming it.
pub use crate::placement::{
    PlacementStatus, PrimaryPreference, QuorumPolicy, SchedulerMode, SchedulerSetting,
    SpreadConstraints,
};

/// A MongoDB replica set across the member clusters of a Karmada federation.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "middleware.fedstate.io",
    version = "v1alpha1",
    kind = "MultiCloudMongoDB",
    plural = "multicloudmongodbs",
    shortname = "mcm",
    category = "fedstate",
    namespaced,
    status = "MultiCloudMongoDBStatus",
    printcolumn(
        name = "STATE",
        type_ = "string",
        json_path = ".status.state",
        description = "Health, SubHealth, UnHealth or UnKnown"
    ),
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "the Ready condition: every member in the replica set and healthy"
    ),
    printcolumn(
        name = "SIZE",
        type_ = "integer",
        json_path = ".spec.replicaset",
        description = "data-bearing members"
    ),
    printcolumn(
        name = "MEMBERS-READY",
        type_ = "string",
        json_path = ".status.result[*].replicasetStatus",
        description = "members running, per cluster"
    ),
    printcolumn(
        name = "VERSION",
        type_ = "string",
        json_path = ".spec.imageSetting.image",
        description = "the MongoDB image"
    ),
    printcolumn(
        name = "PLACEMENT",
        type_ = "string",
        json_path = ".status.placement.summary",
        description = "data members per cluster"
    ),
    printcolumn(
        name = "HOSTS",
        type_ = "string",
        json_path = ".status.externalAddr",
        description = "the connection string's host list",
        priority = "1"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    cel
)]
#[serde(rename_all = "camelCase")]
pub struct MultiCloudMongoDBSpec {
    /// Number of data-bearing members (1 to 50, MongoDB's limit).
    #[x_kube(validation = Rule::new("self >= 1 && self <= 50").message("spec.replicaset must be between 1 and 50 (MongoDB allows at most 50 members); set it to the number of data-bearing members"))]
    pub replicaset: i32,

    /// Requests and limits of each member's mongod container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "512Mi"}}))]
    pub resource: Option<ResourceRequirements>,

    /// Root password: prefer `rootPasswordSecretRef`; when neither is set a strong one is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSetting>,

    /// FedState's member settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberSetting>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_setting: Option<ImageSetting>,

    /// Persistent volume of each data member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSetting>,

    /// MongoDB exporter sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSetting>,

    /// Arbiter, user ConfigMap and mongod settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigSetting>,

    /// Which scheduler places this object and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerSetting>,

    /// Cluster spread constraints and member pod placement inside each cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_constraints: Option<SpreadConstraints>,
}

/// Root credentials.
// `Debug` (below) shows whether a password is set, never the password.
#[derive(KubeSchema, Clone, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("!(has(self.rootPasswd) && has(self.rootPasswordSecretRef))").message("spec.auth: set either rootPasswd or rootPasswordSecretRef, not both (prefer rootPasswordSecretRef)"))]
#[serde(rename_all = "camelCase")]
pub struct AuthSetting {
    /// Plain-text root password, accepted for FedState compatibility. It never leaves this object:
    /// the manager moves it into a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_passwd: Option<String>,
    /// Secret key holding the root password (preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_password_secret_ref: Option<SecretKeyRef>,
}

impl std::fmt::Debug for AuthSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSetting")
            .field("root_passwd", &super::common::redact(&self.root_passwd))
            .field("root_password_secret_ref", &self.root_password_secret_ref)
            .finish()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberSetting {
    /// Name of the host-list ConfigMap; defaults to `<name>-hostconf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_config_ref: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSetting {
    /// MongoDB image, 4.4 to 8.0; defaults to `mongo:7.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<ImagePullSecret>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSetting {
    /// StorageClass of each member's PVC; empty means the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Size of each member's PVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "2Gi"))]
    pub storage_size: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// Delete the members' PVCs (their data) in every cluster when this object is deleted. Off
    /// by default: deleting the object keeps every member's PVC, so its data can be recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_on_teardown: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportSetting {
    /// Run the MongoDB exporter sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRequirements>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSetting {
    /// Add an arbiter (votes, holds no data) in a cluster without a voting majority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<bool>,
    /// ConfigMap (key `mongod.yaml`) propagated to every member cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_ref: Option<String>,
    /// mongod settings merged into the configuration, e.g. `net.maxIncomingConnections: "2000"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_set: Option<BTreeMap<String, String>>,
}

/// `Health`, `SubHealth`, `UnHealth`, `UnKnown` (FedState's values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceState {
    /// Serving, and what runs is what was asked for.
    Health,
    /// Serving, but not everything asked for runs.
    SubHealth,
    /// Not serving.
    UnHealth,
    UnKnown,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MultiCloudMongoDBStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServiceState>,
    /// Comma-joined `host:port` of every member, arbiter included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_addr: Option<String>,
    /// Per-cluster topology.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result: Vec<ServiceTopology>,
    /// Keyed by `type`, so each component server-side-applies only the conditions it owns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What is placed now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementStatus>,
}

/// One cluster's part of the replica set, as FedState reported it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTopology {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicaset_spec: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicaset_status: Option<i32>,
    /// `"vip:port"` → `PRIMARY`, `SECONDARY`, `ARBITER`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_addr_with_role: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
}

impl MultiCloudMongoDBSpec {
    /// The scheduler this object asks for (FedState's default when unset).
    pub fn scheduler_name(&self) -> &str {
        SchedulerSetting::name_or_default(self.scheduler.as_ref())
    }

    pub fn scheduler_mode(&self) -> SchedulerMode {
        SchedulerSetting::mode_or_default(self.scheduler.as_ref())
    }

    pub fn quorum_policy(&self) -> QuorumPolicy {
        SchedulerSetting::quorum_policy_or_default(self.scheduler.as_ref())
    }

    pub fn arbiter(&self) -> bool {
        self.config
            .as_ref()
            .and_then(|c| c.arbiter)
            .unwrap_or(false)
    }

    /// The image to run (`mongo:7.0` when unset).
    pub fn image(&self) -> &str {
        self.image_setting
            .as_ref()
            .and_then(|i| i.image.as_deref())
            .filter(|i| !i.is_empty())
            .unwrap_or(super::DEFAULT_IMAGE)
    }

    /// mongod's requests of one member: `spec.resource.requests`, or
    /// [`DEFAULT_MONGOD_REQUESTS`] (the CRD's default) when unset.
    pub fn mongod_requests(&self) -> BTreeMap<String, Quantity> {
        self.resource
            .as_ref()
            .and_then(|r| r.requests.clone())
            .unwrap_or_else(|| {
                DEFAULT_MONGOD_REQUESTS
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
                    .collect()
            })
    }

    /// The exporter sidecar's requests, when the exporter is enabled and has any.
    pub fn exporter_requests(&self) -> Option<&BTreeMap<String, Quantity>> {
        self.export
            .as_ref()
            .filter(|e| e.enable.unwrap_or(false))
            .and_then(|e| e.resource.as_ref())
            .and_then(|r| r.requests.as_ref())
    }
}

/// mongod's requests when `spec.resource` is unset; the CRD schema's default for
/// `spec.resource.requests` says the same (checked by a test below).
pub const DEFAULT_MONGOD_REQUESTS: [(&str, &str); 2] = [("cpu", "500m"), ("memory", "512Mi")];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn the_default_mongod_requests_are_the_crds_default() {
        let crd = serde_json::to_value(MultiCloudMongoDB::crd()).unwrap();
        let default = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["resource"]["default"]["requests"];
        let expected: serde_json::Map<String, serde_json::Value> = DEFAULT_MONGOD_REQUESTS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
            .collect();
        assert_eq!(default, &serde_json::Value::Object(expected));
        let spec: MultiCloudMongoDBSpec = serde_json::from_value(serde_json::json!({
            "replicaset": 3,
            "export": {"enable": false, "resource": {"requests": {"cpu": "1"}}}
        }))
        .unwrap();
        assert_eq!(spec.mongod_requests()["memory"], Quantity("512Mi".into()));
        assert!(
            spec.exporter_requests().is_none(),
            "a disabled exporter asks for nothing"
        );
    }
}
