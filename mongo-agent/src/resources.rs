//! The Kubernetes objects one `MongoDB` wants, computed purely from its spec.
//!
//! **One StatefulSet per member** (`<name>-mongodb-<memberIndex>`, one replica), each with its own
//! PVC and its own NodePort Service of the same name. Why not one StatefulSet per cluster: member
//! identities are set-wide and sparse (the manager may place members 0, 3, 4 in one cluster and
//! move member 3 away on failover); a StatefulSet's ordinals are dense and per cluster, so scaling
//! one down would always drop the highest ordinal, not the member the plan removes. One StatefulSet
//! per member keeps `memberIndex` → Service → NodePort → replica-set host stable across restarts,
//! rescheduling and scaling. Updates use `OnDelete`: the agent rolls pods itself, secondaries
//! first and the primary last after a step-down ([`crate::rollout`]).
//!
//! Addresses are `<cluster VIP>:<nodePort>` ([`MemberAddressing`]); a LoadBalancer-per-member or
//! mesh-DNS scheme would be another variant there.

use std::collections::BTreeMap;

use fedstate_api::names::{
    self, LABEL_MEMBER_INDEX, LABEL_MEMBER_ROLE, ROLE_ARBITER, ROLE_DATA, managed_labels,
};
use fedstate_api::revision::{SPEC_REVISION_ANNOTATION, spec_revision};
use fedstate_api::v1alpha1::{DEFAULT_IMAGE, ImagePullSecret, MongoDB, MongoDBSpec};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

/// Key of the mongod configuration in the rendered ConfigMap.
pub const MONGOD_CONF_KEY: &str = "mongod.conf";
/// Key of the user's configuration in `customConfigRef` (`docs/architecture.md#api`).
pub const USER_CONFIG_KEY: &str = "mongod.yaml";
/// Exporter image (the sidecar of `metricsExporterSpec`).
pub const EXPORTER_IMAGE: &str = "percona/mongodb_exporter:0.40";
pub const MONGOD_PORT: i32 = 27017;
pub const EXPORTER_PORT: i32 = 9216;
/// The user MongoDB's official image runs as.
const MONGODB_UID: i64 = 999;
/// Where mongod reads the keyfile (an emptyDir the init container fills).
pub const KEYFILE_DIR: &str = "/etc/mongod-keyfile";
/// Where the init container reads the keyfile Secret.
const KEYFILE_SECRET_DIR: &str = "/etc/mongod-keyfile-secret";
/// Where the mongod container mounts the root password (`crate::inpod::ROOT_PASSWORD_FILE`).
pub const CREDENTIALS_DIR: &str = "/etc/mongod-credentials";
const ROOT_PASSWORD_FILE_NAME: &str = "root-password";

/// Secret names and keys, shared with the manager.
pub use fedstate_api::secrets::{
    CLUSTER_ADMIN_PASSWORD_KEY, CLUSTER_MONITOR_PASSWORD_KEY, KEYFILE_KEY, ROOT_PASSWORD_KEY,
    credentials_secret_name, keyfile_secret_name,
};
pub const ROOT_USER: &str = "root";
pub const CLUSTER_ADMIN_USER: &str = "fedstate-cluster-admin";
pub const CLUSTER_MONITOR_USER: &str = "fedstate-monitor";

/// The ConfigMap holding the rendered mongod configuration.
pub fn mongod_config_name(name: &str) -> String {
    format!("{name}-mongod-config")
}

/// How members are addressed from other clusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberAddressing {
    /// FedState's model: `<cluster VIP>:<nodePort>`.
    NodePort { vip: String },
}

impl MemberAddressing {
    /// The address of a member whose Service got `node_port`.
    pub fn address(&self, node_port: i32) -> String {
        match self {
            Self::NodePort { vip } => names::member_address(vip, node_port),
        }
    }
}

/// Why the objects cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("MongoDB {0} has no namespace or uid yet")]
    Metadata(String),
    #[error(
        "spec.customConfigRef {name:?}: key {USER_CONFIG_KEY:?} is not a YAML mapping: {source}"
    )]
    UserConfig {
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{0}")]
    Serde(#[from] serde_json::Error),
}

/// One data member this cluster runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMember {
    pub index: i32,
    pub votes: i32,
    pub priority: i32,
}

/// The data members this cluster runs: `memberRoles` from the manager, or 0..members (all voting
/// up to 7) for single-cluster use.
pub fn local_members(spec: &MongoDBSpec) -> Vec<LocalMember> {
    match &spec.member_roles {
        Some(roles) => roles
            .iter()
            .map(|r| LocalMember {
                index: r.member_index,
                votes: r.votes,
                priority: r.priority,
            })
            .collect(),
        None => (0..spec.members.max(0))
            .map(|i| LocalMember {
                index: i,
                votes: i32::from(i < 7),
                priority: i32::from(i < 7),
            })
            .collect(),
    }
}

/// The replica set's name.
pub fn set_name(mdb: &MongoDB) -> String {
    mdb.spec
        .repl_set_name
        .clone()
        .unwrap_or_else(|| mdb.name_any())
}

fn owner(mdb: &MongoDB) -> Result<OwnerReference, ResourceError> {
    mdb.controller_owner_ref(&())
        .ok_or_else(|| ResourceError::Metadata(mdb.name_any()))
}

fn meta(mdb: &MongoDB, name: &str, extra: &[(&str, &str)]) -> Result<Value, ResourceError> {
    let mut labels = managed_labels(&mdb.name_any());
    for (k, v) in extra {
        labels.insert((*k).to_owned(), (*v).to_owned());
    }
    Ok(json!({
        "name": name,
        "namespace": mdb.namespace().ok_or_else(|| ResourceError::Metadata(mdb.name_any()))?,
        "labels": labels,
        "ownerReferences": [owner(mdb)?],
    }))
}

/// The mongod configuration: the user's `mongod.yaml`, then `spec.config` (dotted names are YAML
/// paths), then what the agent must own (port, bind, replica-set name, keyfile, auth, dbPath).
/// Returns the YAML and the `spec.config` names that were ignored (not dotted paths).
pub fn mongod_config(
    mdb: &MongoDB,
    user_yaml: Option<&str>,
) -> Result<(String, Vec<String>), ResourceError> {
    let mut root: serde_yaml::Mapping = match user_yaml {
        Some(y) if !y.trim().is_empty() => {
            serde_yaml::from_str(y).map_err(|source| ResourceError::UserConfig {
                name: mdb.spec.custom_config_ref.clone().unwrap_or_default(),
                source,
            })?
        }
        _ => serde_yaml::Mapping::new(),
    };
    let mut ignored = Vec::new();
    for c in mdb.spec.config.iter().flatten() {
        let (Some(name), Some(value)) = (&c.name, &c.value) else {
            continue;
        };
        if !name.contains('.') {
            ignored.push(name.clone());
            continue;
        }
        let v: serde_yaml::Value =
            serde_yaml::from_str(value).unwrap_or(serde_yaml::Value::String(value.clone()));
        set_path(&mut root, name, v);
    }
    // mongod refuses `net.bindIp` together with `net.bindIpAll` (which members need: they are
    // reached through the node's address): drop the user's and say so.
    if let Some(serde_yaml::Value::Mapping(net)) = root.get_mut("net")
        && net.remove("bindIp").is_some()
    {
        ignored.push("net.bindIp".to_owned());
    }
    let owned = [
        ("net.port", serde_yaml::Value::from(MONGOD_PORT)),
        ("net.bindIpAll", serde_yaml::Value::from(true)),
        (
            "replication.replSetName",
            serde_yaml::Value::from(set_name(mdb)),
        ),
        (
            "security.keyFile",
            serde_yaml::Value::from(format!("{KEYFILE_DIR}/{KEYFILE_KEY}")),
        ),
        ("security.authorization", serde_yaml::Value::from("enabled")),
        ("storage.dbPath", serde_yaml::Value::from("/data/db")),
    ];
    for (path, v) in owned {
        set_path(&mut root, path, v);
    }
    let yaml = serde_yaml::to_string(&root).unwrap_or_default();
    Ok((yaml, ignored))
}

fn set_path(root: &mut serde_yaml::Mapping, path: &str, value: serde_yaml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = root;
    for p in parts {
        let key = serde_yaml::Value::from(p);
        if !cur.get(&key).is_some_and(serde_yaml::Value::is_mapping) {
            cur.insert(key.clone(), serde_yaml::Value::Mapping(Default::default()));
        }
        match cur.get_mut(&key) {
            Some(serde_yaml::Value::Mapping(m)) => cur = m,
            _ => return,
        }
    }
    cur.insert(serde_yaml::Value::from(last), value);
}

/// The rendered mongod ConfigMap.
pub fn config_map(mdb: &MongoDB, mongod_conf: &str) -> Result<ConfigMap, ResourceError> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": meta(mdb, &mongod_config_name(&mdb.name_any()), &[])?,
        "data": {MONGOD_CONF_KEY: mongod_conf},
    }))?)
}

/// The NodePort Service of one member (`index` `None` = the arbiter).
pub fn member_service(mdb: &MongoDB, index: Option<i32>) -> Result<Service, ResourceError> {
    let name = mdb.name_any();
    let (svc, member_labels) = member_names(&name, index);
    let mut selector = managed_labels(&name);
    selector.remove(names::LABEL_MANAGED_BY);
    selector.extend(member_labels.clone());
    let extra: Vec<(&str, &str)> = member_labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(mdb, &svc, &extra)?,
        "spec": {
            "type": "NodePort",
            // Members must find each other before they are ready (initial sync, elections).
            "publishNotReadyAddresses": true,
            "selector": selector,
            "ports": [{"name": "mongodb", "port": MONGOD_PORT, "targetPort": MONGOD_PORT, "protocol": "TCP"}],
        },
    }))?)
}

/// The object name and the member labels of a data member (`Some(index)`) or the arbiter.
fn member_names(name: &str, index: Option<i32>) -> (String, BTreeMap<String, String>) {
    match index {
        Some(i) => (
            names::member_service_name(name, i.max(0) as u32),
            BTreeMap::from([
                (LABEL_MEMBER_ROLE.to_owned(), ROLE_DATA.to_owned()),
                (LABEL_MEMBER_INDEX.to_owned(), i.to_string()),
            ]),
        ),
        None => (
            names::arbiter_service_name(name),
            BTreeMap::from([(LABEL_MEMBER_ROLE.to_owned(), ROLE_ARBITER.to_owned())]),
        ),
    }
}

/// Where a member's pod may run unless the spec gives its own affinity. Data members of one set
/// never share a node (required): one node failure must not take two voters, and the scheduler's
/// node-spread bound (at most one data member per ready node) assumes it. The arbiter only
/// prefers a node without a data member of its set, so it never blocks a data member's node.
fn default_affinity(name: &str, arbiter: bool) -> serde_json::Value {
    let mut data_members = managed_labels(name);
    data_members.insert(LABEL_MEMBER_ROLE.to_owned(), ROLE_DATA.to_owned());
    let term = json!({
        "labelSelector": {"matchLabels": data_members},
        "topologyKey": "kubernetes.io/hostname",
    });
    if arbiter {
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": term,
        }]}})
    } else {
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}})
    }
}

/// The PVC a data member's StatefulSet `sts` creates for its one pod (`data-<sts>-0`).
pub fn data_claim_name(sts: &str) -> String {
    format!("data-{sts}-0")
}

/// The StatefulSet of one member (`index` `None` = the arbiter, without PVC or exporter).
pub fn member_statefulset(mdb: &MongoDB, index: Option<i32>) -> Result<StatefulSet, ResourceError> {
    let name = mdb.name_any();
    let spec = &mdb.spec;
    let (sts, member_labels) = member_names(&name, index);
    let mut labels = managed_labels(&name);
    labels.extend(member_labels.clone());
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    let pull_policy = spec
        .image_pull_policy
        .as_ref()
        .and_then(|p| serde_json::to_value(p).ok())
        .unwrap_or(json!("IfNotPresent"));
    let creds = credentials_secret_name(&name);
    let root_ref = spec.root_password_secret_ref.clone();
    let (root_secret, root_key) = match &root_ref {
        Some(r) => (r.name.clone(), r.key_or_default().to_owned()),
        None => (creds.clone(), ROOT_PASSWORD_KEY.to_owned()),
    };
    let arbiter = index.is_none();
    let mongod = mongod_container(spec, &image, &pull_policy)?;
    let mut containers = vec![mongod];
    if let Some(c) = exporter_container(spec, &creds).filter(|_| !arbiter) {
        containers.push(c?);
    }
    let pod_spec = spec.pod_spec.clone().unwrap_or_default();
    let affinity = match &pod_spec.affinity {
        Some(a) => serde_json::to_value(a)?,
        None => default_affinity(&name, arbiter),
    };
    let security = match &pod_spec.security_context {
        Some(s) => serde_json::to_value(s)?,
        None => {
            json!({"runAsNonRoot": true, "runAsUser": MONGODB_UID, "fsGroup": MONGODB_UID, "seccompProfile": {"type": "RuntimeDefault"}})
        }
    };
    let keyfile_init = keyfile_init_container(&image, &pull_policy);
    let mut pod = json!({
        "initContainers": [keyfile_init],
        "containers": containers,
        "affinity": affinity,
        "securityContext": security,
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 30,
        "volumes": [
            {"name": "config", "configMap": {"name": mongod_config_name(&name)}},
            // Readable by the copying user whatever the pod's fsGroup; only the init container
            // mounts it.
            {"name": "keyfile-secret", "secret": {"secretName": spec.keyfile_secret_ref.clone().unwrap_or_else(|| keyfile_secret_name(&name)), "defaultMode": 0o444}},
            {"name": "keyfile", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            // Only the mongod container mounts it (the same user as mongod reads it).
            {"name": "credentials", "secret": {"secretName": root_secret, "items": [{"key": root_key, "path": ROOT_PASSWORD_FILE_NAME}], "defaultMode": 0o444}},
        ],
    });
    #[allow(
        clippy::indexing_slicing,
        reason = "inserts by key into the object literal `pod`: IndexMut on a JSON object cannot panic"
    )]
    {
        if let Some(ns) = &pod_spec.node_selector {
            pod["nodeSelector"] = serde_json::to_value(ns)?;
        }
        if let Some(t) = &pod_spec.tolerations {
            pod["tolerations"] = serde_json::to_value(t)?;
        }
        if let Some(t) = &pod_spec.topology_spread_constraints {
            pod["topologySpreadConstraints"] = serde_json::to_value(t)?;
        }
        if let Some(ImagePullSecret::Name(n)) = &spec.image_pull_secret
            && !n.is_empty()
        {
            pod["imagePullSecrets"] = json!([{"name": n}]);
        }
    }
    let mut sts_spec = json!({
        "replicas": 1,
        "serviceName": sts,
        "selector": {"matchLabels": labels},
        "updateStrategy": {"type": "OnDelete"},
        "podManagementPolicy": "Parallel",
        "template": {"metadata": {"labels": labels}, "spec": pod},
    });
    #[allow(
        clippy::indexing_slicing,
        reason = "inserts by key into the object literals `sts_spec` and `pvc`: IndexMut on a JSON object cannot panic"
    )]
    if arbiter {
        if let Some(v) = sts_spec
            .pointer_mut("/template/spec/volumes")
            .and_then(Value::as_array_mut)
        {
            v.push(json!({"name": "data", "emptyDir": {}}));
        }
    } else {
        let persistence = spec.persistence.clone().unwrap_or_default();
        let mut pvc = json!({
            "metadata": {"name": "data", "labels": managed_labels(&name)},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": persistence.storage.clone().unwrap_or_else(|| "1Gi".to_owned())}},
            },
        });
        if let Some(sc) = persistence.storage_class_name.filter(|s| !s.is_empty()) {
            pvc["spec"]["storageClassName"] = json!(sc);
        }
        sts_spec["volumeClaimTemplates"] = json!([pvc]);
        // Fail safe: deleting a StatefulSet (by hand, by the owner reference when this object is
        // deleted, or by any mistake) keeps the member's data unless the user asked for
        // `persistence.deleteOnTeardown`. A member that left the set by scale-down has its PVC
        // deleted explicitly, after it left the config (`decide::after_step`), so it cannot
        // rejoin later with stale data.
        let when_deleted = if persistence.delete_on_teardown == Some(true) {
            "Delete"
        } else {
            "Retain"
        };
        sts_spec["persistentVolumeClaimRetentionPolicy"] =
            json!({"whenDeleted": when_deleted, "whenScaled": "Retain"});
    }
    let mut metadata = meta(
        mdb,
        &sts,
        &member_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    )?;
    // Which spec the StatefulSet was built from (`status.currentRevision` once its member runs
    // it); on the StatefulSet, not its pod template, so adding it restarts nothing.
    #[allow(
        clippy::indexing_slicing,
        reason = "`meta` returns an object literal: IndexMut on a JSON object cannot panic"
    )]
    {
        metadata["annotations"] = json!({
            SPEC_REVISION_ANNOTATION: spec_revision(&name, &serde_json::to_value(spec)?),
        });
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": metadata,
        "spec": sts_spec,
    }))?)
}

/// The mongod container: the config file only on its command line, probes (a startupProbe
/// first), the security context, the keyfile, credentials and data mounts.
fn mongod_container(
    spec: &MongoDBSpec,
    image: &str,
    pull_policy: &Value,
) -> Result<Value, ResourceError> {
    let mut mongod = json!({
        "name": "mongod",
        "image": image,
        "imagePullPolicy": pull_policy,
        // The configuration file only: no password on the command line.
        "args": ["--config", "/etc/mongod/mongod.conf"],
        "ports": [{"name": "mongodb", "containerPort": MONGOD_PORT}],
        // WiredTiger recovery after an unclean stop can take long: liveness starts only once
        // mongod listens (up to 30 minutes), so it never kills a recovering member.
        "startupProbe": {"tcpSocket": {"port": MONGOD_PORT}, "periodSeconds": 10, "failureThreshold": 180},
        "readinessProbe": {"tcpSocket": {"port": MONGOD_PORT}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": MONGOD_PORT}, "periodSeconds": 20, "failureThreshold": 6},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "runAsUser": MONGODB_UID,
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/mongod", "readOnly": true},
            {"name": "keyfile", "mountPath": KEYFILE_DIR, "readOnly": true},
            // The root password, for the agent's in-pod first-user script (crate::inpod).
            {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": true},
            {"name": "data", "mountPath": "/data/db"},
        ],
    });
    #[allow(
        clippy::indexing_slicing,
        reason = "`mongod` is an object literal: IndexMut on a JSON object cannot panic"
    )]
    if let Some(r) = &spec.resources {
        mongod["resources"] = serde_json::to_value(r)?;
    }
    Ok(mongod)
}

/// Pod-template annotation of a member with an exporter: a digest of the exporter's login
/// ([`exporter_login_digest`]), so that a new monitor password makes a new StatefulSet revision.
///
/// Why: `percona/mongodb_exporter` takes its login only from flags or environment variables
/// (`--mongodb.user`/`MONGODB_USER`, `--mongodb.password`/`MONGODB_PASSWORD`, or the URI), reads
/// them once at start and has no option to read a file (its image is `FROM scratch`: no shell
/// to wrap it either). Environment variables from a Secret are resolved only when the container
/// is created, so after a rotation the exporter keeps logging in with the old password until its
/// pod is recreated. The new revision makes the agent's rolling restart ([`crate::rollout`])
/// recreate the pods one member at a time, secondaries first and the primary last after a
/// step-down, only while every voting member is healthy. The restart comes at the earliest in
/// the reconcile after the one that applied the new revision (restarts are decided on the
/// revisions read at its start), that is after the agent ran `updateUser` with the new password
/// ([`crate::converge::ensure_users`]); and should that have failed, the recreated exporter
/// still catches up by itself, since it opens a new connection (and logs in again) on every
/// scrape unless `--mongodb.global-conn-pool` is given, which we do not.
pub const EXPORTER_LOGIN_ANNOTATION: &str = "middleware.fedstate.io/exporter-login";

/// Pod-template annotation of every member (the arbiter's too: it runs mongod with the same
/// file): which mongod configuration the pod was started with. mongod reads its configuration
/// file only when it starts, so a new configuration must give the StatefulSets a new revision
/// for the agent's rolling restart ([`crate::rollout`]) to apply it, one member at a time.
/// Under the manager it is the manager's `spec.configDigest` (the rendered file in this cluster
/// changes as soon as the user's ConfigMap does, in every cluster at once; the manager releases
/// the digest one cluster at a time); without one, in single-cluster use, a digest of the
/// rendered file ([`mongod_config_digest`]). Under a manager that sets no digest (an older
/// one) nothing is stamped, as before.
pub const MONGOD_CONFIG_ANNOTATION: &str = "middleware.fedstate.io/mongod-config";

/// The digest [`MONGOD_CONFIG_ANNOTATION`] carries in single-cluster use: SHA-256 over the
/// object's uid and the rendered configuration (20 hex digits), never the configuration.
pub fn mongod_config_digest(uid: &str, mongod_conf: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in ["fedstate mongod config", uid, mongod_conf] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize()
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn stamp_template(s: &mut StatefulSet, key: &str, value: String) {
    if let Some(spec) = s.spec.as_mut() {
        spec.template
            .metadata
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
    }
}

/// On a member's StatefulSet: the member's address (`<vip>:<nodePort>`), recorded while its
/// Service gives it, so the agent can still tell whether the member left the replica set after
/// the Service is gone (a StatefulSet is deleted only once its member is out of the config).
pub const MEMBER_HOST_ANNOTATION: &str = "middleware.fedstate.io/member-host";

/// The digest [`EXPORTER_LOGIN_ANNOTATION`] carries: SHA-256 over the object's uid, the user and
/// the password (the uid keeps equal passwords of two objects from looking equal). Never the
/// password; generated monitor passwords are 32 random alphanumeric characters, out of reach of
/// guessing from their digest.
pub fn exporter_template_digest(uid: &str, user: &str, password: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in ["fedstate exporter login", uid, user, password] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The exporter-login digest a StatefulSet's pod template carries, if any.
fn template_digest(s: &StatefulSet) -> Option<String> {
    s.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(EXPORTER_LOGIN_ANNOTATION)
        .cloned()
}

/// Stamp the exporter's login digest onto the StatefulSets that run an exporter. Under the
/// manager (`spec.exporterLoginDigest` set) the digest is the manager's: the credentials Secret
/// reaches every member cluster at once, but the manager releases the new digest one cluster at
/// a time (`docs/mongodb.md#rolling-changes`), so the exporters of one cluster restart at a
/// time; what this cluster's Secret holds does not matter then. Otherwise it is computed from
/// the monitor password of the credentials Secret (`None`: not known yet). While it is not known a
/// member that already exists keeps the digest it has (nothing rolls because a Secret could not
/// be read), and one that does not exist yet is left out: its pod could not start the exporter
/// without the Secret anyway, and creating it without the digest would only restart it once
/// the Secret arrives. StatefulSets without an exporter (the arbiter, or
/// `metricsExporterSpec.enable: false`) are kept as they are.
pub fn stamp_exporter_login(
    mdb: &MongoDB,
    desired: Vec<StatefulSet>,
    monitor_password: Option<&str>,
    live: &[StatefulSet],
) -> Vec<StatefulSet> {
    let uid = mdb.uid().unwrap_or_default();
    let digest = match &mdb.spec.exporter_login_digest {
        Some(d) => Some(d.clone()),
        None => monitor_password.map(|p| exporter_template_digest(&uid, CLUSTER_MONITOR_USER, p)),
    };
    desired
        .into_iter()
        .filter_map(|mut s| {
            if !has_exporter(&s) {
                return Some(s);
            }
            let value = match &digest {
                Some(d) => Some(d.clone()),
                None => {
                    let existing = live.iter().find(|l| l.name_any() == s.name_any())?;
                    template_digest(existing)
                }
            };
            if let Some(v) = value {
                stamp_template(&mut s, EXPORTER_LOGIN_ANNOTATION, v);
            }
            Some(s)
        })
        .collect()
}

fn has_exporter(s: &StatefulSet) -> bool {
    s.spec
        .as_ref()
        .and_then(|sp| sp.template.spec.as_ref())
        .is_some_and(|p| p.containers.iter().any(|c| c.name == "exporter"))
}

/// The exporter sidecar of `metricsExporterSpec` (on by default), logged in as the cluster
/// monitor with the password from the credentials Secret (a `secretKeyRef`, never a literal;
/// it follows a rotation through [`EXPORTER_LOGIN_ANNOTATION`]).
fn exporter_container(spec: &MongoDBSpec, creds: &str) -> Option<Result<Value, ResourceError>> {
    let enabled = spec
        .metrics_exporter_spec
        .as_ref()
        .is_none_or(|m| m.enable.unwrap_or(true));
    if !enabled {
        return None;
    }
    let mut c = json!({
        "name": "exporter",
        "image": EXPORTER_IMAGE,
        "args": ["--mongodb.uri=mongodb://127.0.0.1:27017/admin?directConnection=true", "--collect-all", "--compatible-mode"],
        "env": [
            {"name": "MONGODB_USER", "value": CLUSTER_MONITOR_USER},
            {"name": "MONGODB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": creds, "key": CLUSTER_MONITOR_PASSWORD_KEY}}},
        ],
        "ports": [{"name": "metrics", "containerPort": EXPORTER_PORT}],
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": true, "runAsUser": 65534},
    });
    if let Some(r) = spec
        .metrics_exporter_spec
        .as_ref()
        .and_then(|m| m.resources.as_ref())
    {
        match serde_json::to_value(r) {
            #[allow(
                clippy::indexing_slicing,
                reason = "`c` is an object literal: IndexMut on a JSON object cannot panic"
            )]
            Ok(v) => c["resources"] = v,
            Err(e) => return Some(Err(e.into())),
        }
    }
    Some(Ok(c))
}

/// mongod refuses a keyfile readable by group or others, and a Secret volume cannot give
/// "0400, owned by the mongod user" (0440 under an fsGroup, root-owned without one): an init
/// container copies it to a memory emptyDir as that user, as the MongoDB and Percona operators
/// do.
fn keyfile_init_container(image: &str, pull_policy: &Value) -> Value {
    json!({
        "name": "keyfile",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["sh", "-c", format!(
            "rm -f {KEYFILE_DIR}/{KEYFILE_KEY} && cp {KEYFILE_SECRET_DIR}/{KEYFILE_KEY} {KEYFILE_DIR}/{KEYFILE_KEY} && chmod 0400 {KEYFILE_DIR}/{KEYFILE_KEY}"
        )],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "runAsUser": MONGODB_UID,
        },
        "volumeMounts": [
            {"name": "keyfile-secret", "mountPath": KEYFILE_SECRET_DIR, "readOnly": true},
            {"name": "keyfile", "mountPath": KEYFILE_DIR},
        ],
    })
}

/// Every object for `mdb`: the mongod ConfigMap, then per member a Service and a StatefulSet.
#[derive(Clone, Debug)]
pub struct DesiredObjects {
    pub config_map: ConfigMap,
    pub services: Vec<Service>,
    pub statefulsets: Vec<StatefulSet>,
    /// `spec.config` names that are not mongod YAML paths (reported in a condition).
    pub ignored_config: Vec<String>,
}

pub fn desired_objects(
    mdb: &MongoDB,
    user_yaml: Option<&str>,
) -> Result<DesiredObjects, ResourceError> {
    let (conf, ignored_config) = mongod_config(mdb, user_yaml)?;
    let mut indexes: Vec<Option<i32>> = local_members(&mdb.spec)
        .into_iter()
        .map(|m| Some(m.index))
        .collect();
    if mdb.spec.arbiter == Some(true) {
        indexes.push(None);
    }
    let config_digest = match (&mdb.spec.config_digest, &mdb.spec.member_config_ref) {
        (Some(d), _) => Some(d.clone()),
        (None, None) => Some(mongod_config_digest(&mdb.uid().unwrap_or_default(), &conf)),
        (None, Some(_)) => None,
    };
    let mut statefulsets: Vec<StatefulSet> = indexes
        .iter()
        .map(|i| member_statefulset(mdb, *i))
        .collect::<Result<_, _>>()?;
    if let Some(d) = config_digest {
        for s in &mut statefulsets {
            stamp_template(s, MONGOD_CONFIG_ANNOTATION, d.clone());
        }
    }
    Ok(DesiredObjects {
        config_map: config_map(mdb, &conf)?,
        services: indexes
            .iter()
            .map(|i| member_service(mdb, *i))
            .collect::<Result<_, _>>()?,
        statefulsets,
        ignored_config,
    })
}

/// The member index a managed object is for (`None` for the arbiter or foreign objects).
pub fn member_index_of(labels: &BTreeMap<String, String>) -> Option<i32> {
    if is_arbiter(labels) {
        return None;
    }
    labels.get(LABEL_MEMBER_INDEX)?.parse().ok()
}

/// Whether a managed object is for the arbiter.
pub fn is_arbiter(labels: &BTreeMap<String, String>) -> bool {
    labels
        .get(LABEL_MEMBER_ROLE)
        .is_some_and(|r| r == ROLE_ARBITER)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fedstate_api::v1alpha1::MemberRole;

    fn sample() -> MongoDB {
        let yaml = include_str!("../../deploy/samples/seed/mongodb-single-cluster.yaml");
        let mut m: MongoDB = serde_yaml::from_str(yaml).unwrap();
        m.metadata.namespace = Some("demo".into());
        m.metadata.uid = Some("u-1".into());
        m
    }

    #[test]
    fn the_seed_sample_gets_one_statefulset_and_nodeport_service_per_member() {
        let mut m = sample();
        m.spec.members = 3;
        let d = desired_objects(&m, None).unwrap();
        assert_eq!(d.statefulsets.len(), 3);
        let names: Vec<String> = d.services.iter().map(|s| s.name_any()).collect();
        assert_eq!(
            names,
            [
                "mongodb-sample-mongodb-0",
                "mongodb-sample-mongodb-1",
                "mongodb-sample-mongodb-2"
            ]
        );
        assert_eq!(
            d.services[0].spec.as_ref().unwrap().type_.as_deref(),
            Some("NodePort")
        );
        let sts = &d.statefulsets[1];
        assert_eq!(sts.owner_references()[0].name, "mongodb-sample");
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(
            spec.update_strategy.as_ref().unwrap().type_.as_deref(),
            Some("OnDelete")
        );
        let pod = spec.template.spec.as_ref().unwrap();
        let mongod = &pod.containers[0];
        assert_eq!(mongod.image.as_deref(), Some("mongo:3.6"));
        assert_eq!(mongod.image_pull_policy.as_deref(), Some("Always"));
        assert!(mongod.readiness_probe.is_some() && mongod.liveness_probe.is_some());
        let limits = mongod.resources.as_ref().unwrap().limits.as_ref().unwrap();
        assert_eq!(limits["memory"].0, "512Mi");
        assert!(pod.affinity.as_ref().unwrap().pod_anti_affinity.is_some());
        assert_eq!(
            pod.containers.len(),
            2,
            "exporter sidecar enabled in the sample"
        );
        // Storage: size from the spec; an empty class means the cluster default (no field).
        let pvc = &spec.volume_claim_templates.as_ref().unwrap()[0];
        let pvc_spec = pvc.spec.as_ref().unwrap();
        assert_eq!(
            pvc_spec
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()["storage"]
                .0,
            "1Gi"
        );
        assert_eq!(pvc_spec.storage_class_name, None);
    }

    #[test]
    fn deleting_a_statefulset_keeps_the_members_data_unless_asked() {
        let retention = |m: &MongoDB| {
            let d = desired_objects(m, None).unwrap();
            let p = d.statefulsets[0]
                .spec
                .as_ref()
                .unwrap()
                .persistent_volume_claim_retention_policy
                .clone()
                .unwrap();
            (p.when_deleted.unwrap(), p.when_scaled.unwrap())
        };
        let mut m = sample();
        assert_eq!(retention(&m), ("Retain".into(), "Retain".into()));
        m.spec.persistence.as_mut().unwrap().delete_on_teardown = Some(false);
        assert_eq!(retention(&m), ("Retain".into(), "Retain".into()));
        m.spec.persistence.as_mut().unwrap().delete_on_teardown = Some(true);
        assert_eq!(retention(&m), ("Delete".into(), "Retain".into()));
        let sts = desired_objects(&m, None).unwrap().statefulsets[0].name_any();
        assert_eq!(data_claim_name(&sts), "data-mongodb-sample-mongodb-0-0");
    }

    #[test]
    fn storage_class_reaches_the_pvc_and_member_roles_pick_the_indexes() {
        let mut m = sample();
        m.spec.persistence.as_mut().unwrap().storage_class_name = Some("fast".into());
        m.spec.members = 2;
        m.spec.member_roles = Some(vec![
            MemberRole {
                member_index: 3,
                votes: 1,
                priority: 2,
            },
            MemberRole {
                member_index: 5,
                votes: 0,
                priority: 0,
            },
        ]);
        let d = desired_objects(&m, None).unwrap();
        let names: Vec<String> = d.statefulsets.iter().map(|s| s.name_any()).collect();
        assert_eq!(
            names,
            ["mongodb-sample-mongodb-3", "mongodb-sample-mongodb-5"]
        );
        let pvc = &d.statefulsets[0]
            .spec
            .as_ref()
            .unwrap()
            .volume_claim_templates
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            pvc.spec.as_ref().unwrap().storage_class_name.as_deref(),
            Some("fast")
        );
        assert_eq!(member_index_of(d.services[1].labels()), Some(5));
    }

    #[test]
    fn no_password_in_any_generated_object() {
        let m = sample();
        let d = desired_objects(&m, None).unwrap();
        let all = serde_json::to_string(&(&d.config_map, &d.services, &d.statefulsets)).unwrap();
        // The sample's rootPassword and pull-secret password.
        assert!(!all.contains("123456"));
        assert!(!all.contains("\"admin\""));
        // Passwords reach pods only as Secret references (files or env from a Secret).
        assert!(all.contains("\"secretName\":\"mongodb-sample-credentials\""));
        assert!(all.contains("secretKeyRef"));
        for sts in &d.statefulsets {
            for c in &sts
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers
            {
                for a in c.args.iter().flatten() {
                    assert!(!a.to_lowercase().contains("password"), "{a}");
                }
            }
        }
    }

    #[test]
    fn mongod_config_merges_user_yaml_and_spec_but_keeps_what_the_agent_owns() {
        let mut m = sample();
        m.spec.config = Some(vec![
            fedstate_api::v1alpha1::ConfigVar {
                name: Some("operationProfiling.mode".into()),
                value: Some("slowOp".into()),
            },
            fedstate_api::v1alpha1::ConfigVar {
                name: Some("LOG_LEVEL".into()),
                value: Some("info".into()),
            },
        ]);
        let (yaml, ignored) = mongod_config(
            &m,
            Some("net:\n  port: 1234\n  maxIncomingConnections: 100\nreplication:\n  replSetName: evil\n"),
        )
        .unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(v["net"]["port"], serde_yaml::Value::from(27017));
        assert_eq!(
            v["net"]["maxIncomingConnections"],
            serde_yaml::Value::from(100)
        );
        assert_eq!(
            v["replication"]["replSetName"],
            serde_yaml::Value::from("mongodb-sample")
        );
        assert_eq!(
            v["operationProfiling"]["mode"],
            serde_yaml::Value::from("slowOp")
        );
        assert_eq!(
            v["security"]["authorization"],
            serde_yaml::Value::from("enabled")
        );
        assert_eq!(ignored, ["LOG_LEVEL"]);
        assert!(mongod_config(&m, Some("- not a map")).is_err());
    }

    fn pod_of(sts: &StatefulSet) -> &k8s_openapi::api::core::v1::PodSpec {
        sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
    }

    /// mongod refuses a keyfile readable by group or others ("Internal/Membership
    /// Authentication": "the keyfile must not have group or world permissions"). A Secret
    /// volume mounted straight into mongod is 0440 under the pod's fsGroup, or root-owned and
    /// unreadable by mongod (999) without one: the keyfile must come from an emptyDir an init
    /// container fills as the mongod user, chmod 0400.
    #[test]
    fn the_keyfile_is_copied_as_the_mongod_user_with_mode_0400() {
        let d = desired_objects(&sample(), None).unwrap();
        for sts in &d.statefulsets {
            let pod = pod_of(sts);
            let mongod = &pod.containers[0];
            let mount = mongod
                .volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == KEYFILE_DIR)
                .unwrap();
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .unwrap();
            assert!(
                volume.secret.is_none(),
                "mongod must not read the Secret volume"
            );
            assert_eq!(
                volume.empty_dir.as_ref().unwrap().medium.as_deref(),
                Some("Memory")
            );
            let init = &pod.init_containers.as_ref().unwrap()[0];
            let script = init.command.as_ref().unwrap().join(" ");
            assert!(
                script.contains("chmod 0400 /etc/mongod-keyfile/keyfile"),
                "{script}"
            );
            let uid = init.security_context.as_ref().unwrap().run_as_user;
            assert_eq!(
                uid,
                mongod.security_context.as_ref().unwrap().run_as_user,
                "copied as the user mongod runs as"
            );
            assert!(
                init.volume_mounts
                    .iter()
                    .flatten()
                    .any(|m| m.name == mount.name)
            );
            // The simulator's rule (kubelet ownership and modes, mongod's checks) agrees.
            let pod = k8s_openapi::api::core::v1::Pod {
                spec: Some(pod.clone()),
                ..Default::default()
            };
            let path = format!("{KEYFILE_DIR}/{KEYFILE_KEY}");
            assert_eq!(
                fedstate_rs_sim::keyfile::check(&pod, "mongod", &path),
                Ok(())
            );
        }
    }

    /// A startupProbe holds liveness off while mongod recovers (WiredTiger recovery after an
    /// unclean shutdown may take minutes); the root password is a file for the in-pod script.
    #[test]
    fn members_have_a_startup_probe_and_the_root_password_file() {
        let d = desired_objects(&sample(), None).unwrap();
        let mongod = &pod_of(&d.statefulsets[0]).containers[0];
        let startup = mongod.startup_probe.as_ref().unwrap();
        assert!(startup.failure_threshold.unwrap() * startup.period_seconds.unwrap() >= 600);
        assert!(
            mongod
                .liveness_probe
                .as_ref()
                .unwrap()
                .initial_delay_seconds
                .is_none()
        );
        assert!(
            mongod
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == CREDENTIALS_DIR)
        );
        assert_eq!(
            format!("{CREDENTIALS_DIR}/{ROOT_PASSWORD_FILE_NAME}"),
            crate::inpod::ROOT_PASSWORD_FILE
        );
        assert!(mongod.env.is_none(), "no MONGO_INITDB_* entrypoint path");
    }

    /// mongod refuses to start with both `net.bindIp` and `net.bindIpAll`; the agent owns the
    /// bind setting, so a user's `net.bindIp` is dropped and reported.
    #[test]
    fn a_users_bind_ip_does_not_collide_with_the_agents() {
        let (yaml, ignored) = mongod_config(
            &sample(),
            Some("net:\n  bindIp: 10.0.0.1\n  compression: {}\n"),
        )
        .unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert!(v["net"].get("bindIp").is_none(), "{yaml}");
        assert_eq!(v["net"]["bindIpAll"], serde_yaml::Value::from(true));
        assert!(ignored.contains(&"net.bindIp".to_owned()), "{ignored:?}");
    }

    #[test]
    fn arbiter_has_no_volume_claim_and_single_cluster_votes_stop_at_seven() {
        let mut m = sample();
        m.spec.arbiter = Some(true);
        m.spec.members = 9;
        let d = desired_objects(&m, None).unwrap();
        assert_eq!(
            d.statefulsets.last().unwrap().name_any(),
            "mongodb-sample-mongodb-arbiter"
        );
        assert!(
            d.statefulsets
                .last()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
                .volume_claim_templates
                .is_none()
        );
        let voters = local_members(&m.spec)
            .iter()
            .filter(|l| l.votes == 1)
            .count();
        assert_eq!(voters, 7);
    }

    /// One node failure must not take two voters: data members of a set repel each other by
    /// hostname (required), and the arbiter only prefers a node without one, so it never takes a
    /// data member's node. A user's own affinity replaces ours.
    #[test]
    fn data_members_never_share_a_node_and_the_arbiter_only_prefers_not_to() {
        let mut m = sample();
        m.spec.members = 2;
        m.spec.arbiter = Some(true);
        let anti = |m: &MongoDB, index: Option<i32>| {
            let sts = member_statefulset(m, index).unwrap();
            let pod = sts.spec.unwrap().template.spec.unwrap();
            pod.affinity.and_then(|a| a.pod_anti_affinity)
        };
        let data = anti(&m, Some(1)).unwrap();
        let required = data
            .required_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(required.len(), 1);
        assert_eq!(required[0].topology_key, "kubernetes.io/hostname");
        let labels = required[0]
            .label_selector
            .clone()
            .unwrap()
            .match_labels
            .unwrap();
        assert_eq!(labels[LABEL_MEMBER_ROLE], ROLE_DATA);
        assert_eq!(labels[names::LABEL_INSTANCE], "mongodb-sample");
        assert!(
            data.preferred_during_scheduling_ignored_during_execution
                .is_none()
        );

        let arbiter = anti(&m, None).unwrap();
        assert!(
            arbiter
                .required_during_scheduling_ignored_during_execution
                .is_none()
        );
        let preferred = arbiter
            .preferred_during_scheduling_ignored_during_execution
            .unwrap();
        assert_eq!(
            preferred[0].pod_affinity_term.label_selector,
            required[0].label_selector
        );

        let own: k8s_openapi::api::core::v1::Affinity = serde_json::from_value(json!({
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 1,
                "podAffinityTerm": {"topologyKey": "topology.kubernetes.io/zone"},
            }]}
        }))
        .unwrap();
        m.spec.pod_spec = Some(fedstate_api::v1alpha1::PodSpec {
            affinity: Some(own.clone()),
            ..Default::default()
        });
        assert_eq!(anti(&m, Some(1)), own.pod_anti_affinity);
    }

    /// The exporter reads its password only at start (an env var from the Secret): a new
    /// monitor password must change the members' pod template, so the rolling restart recreates
    /// them; the arbiter (no exporter) is not rolled for it; the template names the password
    /// only by `secretKeyRef` and its digest is not the password.
    #[test]
    fn a_new_monitor_password_changes_the_pod_template_of_members_with_an_exporter() {
        let mut m = sample();
        m.spec.members = 2;
        m.spec.arbiter = Some(true);
        let render = |password: &str| {
            stamp_exporter_login(
                &m,
                desired_objects(&m, None).unwrap().statefulsets,
                Some(password),
                &[],
            )
        };
        let before = render("Monitor-Password-1");
        let after = render("Monitor-Password-2");
        assert_eq!(before.len(), 3);
        for (b, a) in before.iter().zip(&after).take(2) {
            let (db, da) = (template_digest(b).unwrap(), template_digest(a).unwrap());
            assert_ne!(db, da, "{}: a rotation must roll the member", b.name_any());
            assert_eq!(
                b.spec.as_ref().unwrap().template.spec,
                a.spec.as_ref().unwrap().template.spec,
                "only the annotation changes"
            );
            let text = serde_json::to_string(a).unwrap();
            assert!(!text.contains("Monitor-Password"), "{text}");
        }
        let arbiter = (&before[2], &after[2]);
        assert!(template_digest(arbiter.0).is_none());
        assert_eq!(
            arbiter.0, arbiter.1,
            "no exporter on the arbiter: not rolled"
        );
        // The same password renders the same digest (no restart on every reconcile); another
        // object's digest of it differs.
        assert_eq!(render("Monitor-Password-1"), before);
        assert_ne!(
            exporter_template_digest("u-1", CLUSTER_MONITOR_USER, "p"),
            exporter_template_digest("u-2", CLUSTER_MONITOR_USER, "p")
        );
        // The exporter gets the password from the Secret, not from its spec.
        let pod = before[0]
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        let exporter = pod
            .containers
            .iter()
            .find(|c| c.name == "exporter")
            .unwrap();
        let env = exporter.env.as_ref().unwrap();
        let pw = env.iter().find(|e| e.name == "MONGODB_PASSWORD").unwrap();
        assert!(pw.value.is_none());
        let key = pw
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(key.key, CLUSTER_MONITOR_PASSWORD_KEY);
        assert_eq!(key.name, "mongodb-sample-credentials");
    }

    /// The monitor password not known (the manager's Secret not here yet, or not readable): an
    /// existing member keeps its digest, a new one is not created yet; without an exporter
    /// nothing waits.
    #[test]
    fn without_the_monitor_password_existing_members_keep_their_digest_and_new_ones_wait() {
        let mut m = sample();
        m.spec.members = 2;
        let desired = desired_objects(&m, None).unwrap().statefulsets;
        let live = stamp_exporter_login(&m, desired.clone(), Some("Monitor-1"), &[]);
        let kept = stamp_exporter_login(&m, desired.clone(), None, &live[..1]);
        assert_eq!(kept.len(), 1, "member 1 does not exist yet: not created");
        assert_eq!(template_digest(&kept[0]), template_digest(&live[0]));
        assert_eq!(kept[0], live[0]);
        m.spec.metrics_exporter_spec =
            Some(serde_json::from_value(json!({"enable": false})).unwrap());
        let desired = desired_objects(&m, None).unwrap().statefulsets;
        let plain = stamp_exporter_login(&m, desired.clone(), None, &[]);
        assert_eq!(plain, desired, "no exporter: nothing to wait for or stamp");
    }

    fn template_annotation(s: &StatefulSet, key: &str) -> Option<String> {
        s.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get(key)
            .cloned()
    }

    fn templates(d: &DesiredObjects) -> Vec<Value> {
        d.statefulsets
            .iter()
            .map(|s| serde_json::to_value(&s.spec.as_ref().unwrap().template).unwrap())
            .collect()
    }

    /// mongod reads its configuration file only when it starts: a new configuration must give
    /// every member's StatefulSet (the arbiter's too) a new pod template, so the rolling
    /// restart applies it. Before, the template did not change and the new file waited,
    /// unannounced, for the next restart.
    #[test]
    fn a_new_mongod_configuration_changes_every_members_pod_template() {
        let mut m = sample();
        m.spec.members = 2;
        m.spec.arbiter = Some(true);
        let before = desired_objects(&m, Some("operationProfiling:\n  mode: off\n")).unwrap();
        let after = desired_objects(&m, Some("operationProfiling:\n  mode: slowOp\n")).unwrap();
        assert_eq!(before.statefulsets.len(), 3);
        for (b, a) in templates(&before).iter().zip(&templates(&after)) {
            assert_ne!(b, a, "a new configuration must roll the member");
        }
        let mut with_config = m.clone();
        with_config.spec.config = Some(vec![fedstate_api::v1alpha1::ConfigVar {
            name: Some("net.maxIncomingConnections".into()),
            value: Some("100".into()),
        }]);
        let c = desired_objects(&with_config, None).unwrap();
        let plain = desired_objects(&m, None).unwrap();
        assert_ne!(templates(&c), templates(&plain));
        // The same configuration, the same template (no restart on every reconcile); the
        // annotation is a digest, not the configuration.
        let again = desired_objects(&m, Some("operationProfiling:\n  mode: off\n")).unwrap();
        assert_eq!(templates(&again), templates(&before));
        let text = serde_json::to_string(&after.statefulsets).unwrap();
        assert!(!text.contains("slowOp"), "{text}");
        let d = template_annotation(&after.statefulsets[0], MONGOD_CONFIG_ANNOTATION).unwrap();
        assert_eq!(d.len(), 20);
    }

    /// Under the manager, the user's ConfigMap and the credentials Secret reach every member
    /// cluster at once; the pod template must follow the digests the manager releases one
    /// cluster at a time, not what this cluster's copies hold. Before, a cluster the manager
    /// still held restarted its members as soon as the Secret (or ConfigMap) arrived.
    #[test]
    fn under_the_manager_the_pod_template_follows_its_digests_not_the_propagated_content() {
        let mut m = sample();
        m.spec.members = 2;
        m.spec.member_config_ref = Some("mongodb-sample-hostconf".into());
        m.spec.member_roles = Some(vec![
            MemberRole {
                member_index: 0,
                votes: 1,
                priority: 1,
            },
            MemberRole {
                member_index: 3,
                votes: 1,
                priority: 1,
            },
        ]);
        m.spec.config_digest = Some("c0ffee0000000000000a".into());
        m.spec.exporter_login_digest = Some("beef00000000000000aa".into());
        let render = |m: &MongoDB, yaml: &str, password: &str| {
            let d = desired_objects(m, Some(yaml)).unwrap();
            stamp_exporter_login(m, d.statefulsets, Some(password), &[])
        };
        // Held: the new ConfigMap content and the new monitor password are here, the digests
        // are the ones it runs: nothing restarts.
        let held_old = render(&m, "a: 1\n", "Monitor-1");
        let held_new = render(&m, "a: 2\n", "Monitor-2");
        assert_eq!(held_old, held_new);
        assert_eq!(
            template_annotation(&held_old[0], MONGOD_CONFIG_ANNOTATION).as_deref(),
            Some("c0ffee0000000000000a")
        );
        assert_eq!(
            template_annotation(&held_old[0], EXPORTER_LOGIN_ANNOTATION).as_deref(),
            Some("beef00000000000000aa")
        );
        // Released: the manager's new digests roll the members.
        let mut released = m.clone();
        released.spec.config_digest = Some("c0ffee0000000000000b".into());
        let r = render(&released, "a: 2\n", "Monitor-2");
        assert_ne!(
            r[0].spec.as_ref().unwrap().template,
            held_new[0].spec.as_ref().unwrap().template
        );
        let mut released = m.clone();
        released.spec.exporter_login_digest = Some("beef00000000000000bb".into());
        let r = render(&released, "a: 2\n", "Monitor-2");
        assert_ne!(
            r[0].spec.as_ref().unwrap().template,
            held_new[0].spec.as_ref().unwrap().template
        );
        // A manager that sets no config digest (older): no config annotation, as before.
        let mut older = m.clone();
        older.spec.config_digest = None;
        let o = render(&older, "a: 1\n", "Monitor-1");
        assert!(template_annotation(&o[0], MONGOD_CONFIG_ANNOTATION).is_none());
    }
}
