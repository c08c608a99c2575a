//! MongoDB, the first middleware: what the manager needs to know about `MultiCloudMongoDB` and
//! its per-cluster `MongoDB` (the [`Middleware`] implementation).
//!
//! * [`template`]: the `MongoDB` template and each cluster's override rule (pure);
//! * [`secrets`]: keyfile and credential Secrets, generated once and never echoed (pure + `rand`);
//! * [`pod_inputs`]: the configuration's and the exporter login's keyed digests in the template;
//! * here: validation, names, and reading a member cluster's reflected `MongoDB` status.

pub mod pod_inputs;
pub mod secrets;
pub mod template;

use std::collections::BTreeMap;

use fedstate_api::karmada::binding_status::TargetCluster;
use fedstate_api::karmada::override_policy::Overriders;
use fedstate_api::karmada::propagation::{ResourceSelector, select_named};
use fedstate_api::names;
use fedstate_api::placement::QuorumPolicy;
use fedstate_api::v1alpha1::{MongoDBStatus, MongoState, check_image};
use fedstate_api::{MongoDB, MultiCloudMongoDB};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rand::Rng;

use crate::members::Assignment;
use crate::middleware::{ClusterReport, FederatedStatus, Invalid, Middleware, SeenMember};

/// mongod's port in every member pod.
pub const MONGODB_PORT: i32 = 27017;
/// Roles a healthy member reports.
const GOOD_STATES: [&str; 3] = ["PRIMARY", "SECONDARY", "ARBITER"];

/// MongoDB replica sets across clusters: `MultiCloudMongoDB` → per-cluster `MongoDB`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MongoDb;

impl Middleware for MongoDb {
    type Federated = MultiCloudMongoDB;
    type Member = MongoDB;

    const CONTROLLER: &'static str = "fedstate-manager";

    fn validate(&self, obj: &MultiCloudMongoDB) -> Result<(), Invalid> {
        check_image("spec.imageSetting.image", obj.spec.image()).map_err(|e| Invalid {
            reason: "UnsupportedImage",
            message: e.to_string(),
        })
    }

    fn replicas(&self, obj: &MultiCloudMongoDB) -> i32 {
        obj.spec.replicaset
    }

    fn scheduler_name<'a>(&self, obj: &'a MultiCloudMongoDB) -> &'a str {
        obj.spec.scheduler_name()
    }

    fn quorum_policy(&self, obj: &MultiCloudMongoDB) -> QuorumPolicy {
        obj.spec.quorum_policy()
    }

    fn member_port(&self) -> i32 {
        MONGODB_PORT
    }

    fn member_port_name(&self) -> &'static str {
        "mongodb"
    }

    fn member_service_name(&self, instance: &str, index: i32, arbiter: bool) -> String {
        match (arbiter, u32::try_from(index)) {
            (false, Ok(i)) => names::member_service_name(instance, i),
            (true, Ok(0)) => names::arbiter_service_name(instance),
            _ => format!("{}-{index}", names::arbiter_service_name(instance)),
        }
    }

    fn host_list_name(&self, obj: &MultiCloudMongoDB) -> String {
        template::hostconf_name(obj)
    }

    fn host_list_field(&self, obj: &MultiCloudMongoDB) -> Option<&'static str> {
        (template::hostconf_name(obj)
            != names::hostconf_name(&obj.metadata.name.clone().unwrap_or_default()))
        .then_some("spec.member.memberConfigRef")
    }

    fn member_template(&self, obj: &MultiCloudMongoDB, members: i32) -> MongoDB {
        template::mongodb_template(obj, members)
    }

    fn cluster_overrides(
        &self,
        _obj: &MultiCloudMongoDB,
        assignment: &Assignment,
        cluster: &TargetCluster,
        vip: Option<&str>,
    ) -> Overriders {
        template::cluster_overrides(assignment, cluster, vip)
    }

    fn secret_names(&self, obj: &MultiCloudMongoDB) -> Vec<String> {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let mut out = vec![
            secrets::keyfile_secret_name(&name),
            secrets::credentials_secret_name(&name),
        ];
        out.extend(secrets::pull_secret(obj).and_then(|s| s.metadata.name));
        out
    }

    fn secrets(
        &self,
        obj: &MultiCloudMongoDB,
        existing: &BTreeMap<String, Secret>,
        rng: &mut impl Rng,
    ) -> Vec<Secret> {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let keyfile = existing.get(&secrets::keyfile_secret_name(&name));
        let creds = existing.get(&secrets::credentials_secret_name(&name));
        let mut out = vec![
            secrets::keyfile_secret(&name, keyfile, rng),
            secrets::credentials_secret(obj, creds, rng),
        ];
        out.extend(secrets::pull_secret(obj));
        out
    }

    fn shared_objects(&self, obj: &MultiCloudMongoDB) -> Vec<ResourceSelector> {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let mut shared = vec![
            select_named("v1", "Secret", &secrets::keyfile_secret_name(&name)),
            select_named("v1", "Secret", &secrets::credentials_secret_name(&name)),
        ];
        if let Some(r) = secrets::user_root_secret(obj) {
            shared.push(select_named("v1", "Secret", &r.name));
        }
        if let Some(p) = secrets::pull_secret_ref(obj) {
            shared.push(select_named("v1", "Secret", &p));
        }
        if let Some(c) = template::user_config_ref(obj) {
            shared.push(select_named("v1", "ConfigMap", c));
        }
        shared
    }

    fn referenced_config_maps(&self, obj: &MultiCloudMongoDB) -> Vec<String> {
        template::user_config_ref(obj)
            .map(str::to_owned)
            .into_iter()
            .collect()
    }

    fn stamp_pod_inputs(
        &self,
        obj: &MultiCloudMongoDB,
        template: &mut MongoDB,
        secrets: &BTreeMap<String, Secret>,
        config_maps: &BTreeMap<String, ConfigMap>,
    ) {
        pod_inputs::stamp(obj, template, secrets, config_maps);
    }

    fn pod_fields(&self) -> &'static [&'static str] {
        &fedstate_api::revision::POD_FIELDS
    }

    fn pod_revision(
        &self,
        instance: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> String {
        fedstate_api::revision::revision_of_fields(instance, fields)
    }

    fn member_report(&self, reflected: &serde_json::Value) -> Option<ClusterReport> {
        let status: MongoDBStatus = serde_json::from_value(reflected.clone()).ok()?;
        Some(ClusterReport {
            members: status
                .replset
                .iter()
                .map(|m| SeenMember {
                    host: m.name.clone(),
                    role: m.state_str.clone(),
                    healthy: m.health == 1 && GOOD_STATES.contains(&m.state_str.as_str()),
                    primary: m.health == 1 && m.state_str == "PRIMARY",
                })
                .collect(),
            running: status.current_info.as_ref().map(|ci| ci.members),
            state: status.state.map(|s| format!("{s:?}")),
            failed: status.state == Some(MongoState::Error),
            revision: status.current_revision.clone(),
        })
    }

    fn current_status(&self, obj: &MultiCloudMongoDB) -> FederatedStatus {
        let s = obj.status.clone().unwrap_or_default();
        FederatedStatus {
            state: s.state,
            external_addr: s.external_addr,
            result: s.result,
            conditions: s.conditions,
            observed_generation: s.observed_generation,
        }
    }
}
