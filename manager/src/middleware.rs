//! The seam between the manager and one middleware, as Karmada's resource interpreter is the seam
//! between Karmada and one kind: the kind-independent service code (members, desired objects,
//! status aggregation, teardown, the controller) asks a [`Middleware`] only what differs from one
//! middleware to the next. MongoDB's implementation lives in [`crate::mongodb`]; what adding a
//! second one takes is in `docs/adding-a-middleware.md`.

use std::collections::BTreeMap;
use std::fmt::Debug;

use fedstate_api::Condition;
use fedstate_api::karmada::binding_status::TargetCluster;
use fedstate_api::karmada::override_policy::Overriders;
use fedstate_api::karmada::propagation::ResourceSelector;
use fedstate_api::placement::QuorumPolicy;
use fedstate_api::v1alpha1::{ServiceState, ServiceTopology};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use rand::Rng;

use crate::members::Assignment;

/// A kind the manager can hold: a namespaced custom resource with a static type.
pub use fedstate_api::kind::NamespacedKind as Kind;

/// Why the spec cannot be acted on, as the user reads it in `SpecValid` and `ServerReady`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// Condition reason, e.g. `UnsupportedImage`.
    pub reason: &'static str,
    /// Names the field and what to do.
    pub message: String,
}

/// One member as some cluster's view of the set reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenMember {
    /// `<vip>:<nodePort>`, as in the host list.
    pub host: String,
    /// The middleware's word for its role (`PRIMARY`, `SECONDARY`, …), shown to users as is.
    pub role: String,
    /// Up and in a role that serves.
    pub healthy: bool,
    /// The member that takes writes.
    pub primary: bool,
}

/// What one member cluster's member object reports (its reflected status), in the words the
/// kind-independent status aggregation needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterReport {
    /// Every member this cluster's view of the set lists (own members and the others).
    pub members: Vec<SeenMember>,
    /// The cluster's own members that run.
    pub running: Option<i32>,
    /// The member object's state, e.g. `Running`.
    pub state: Option<String>,
    /// The member object reports an error the user must look at.
    pub failed: bool,
    /// The pod revision every one of the cluster's members runs ([`Middleware::pod_revision`]).
    pub revision: Option<String>,
}

/// The part of the federated object's status the manager owns and reads back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FederatedStatus {
    pub state: Option<ServiceState>,
    /// Comma-joined addresses of every active member.
    pub external_addr: Option<String>,
    /// Per-cluster topology.
    pub result: Vec<ServiceTopology>,
    pub conditions: Vec<Condition>,
    pub observed_generation: Option<i64>,
}

/// Everything the manager needs to know about one middleware.
///
/// The federated kind carries the `schedulerResult` annotation and the status; the member kind is
/// what Karmada propagates to each member cluster, where that middleware's agent runs the members.
pub trait Middleware: Send + Sync + 'static {
    /// What users write on the Karmada apiserver (`MultiCloudMongoDB`).
    type Federated: Kind;
    /// What each member cluster gets (`MongoDB`).
    type Member: Kind;

    /// Reporter name of the controller (events) and the field manager's component.
    const CONTROLLER: &'static str;

    /// Whether the spec can be acted on at all.
    fn validate(&self, obj: &Self::Federated) -> Result<(), Invalid>;
    /// Data members the spec asks for; the placement must sum to it.
    fn replicas(&self, obj: &Self::Federated) -> i32;
    /// The scheduler the object names (for "waiting for scheduler …").
    fn scheduler_name<'a>(&self, obj: &'a Self::Federated) -> &'a str;
    /// `spec.scheduler.quorumPolicy`: under `Required` a placement that is not quorum-safe, or
    /// replaces more running voters at once than is safe, is refused ([`crate::decide::members`]).
    fn quorum_policy(&self, obj: &Self::Federated) -> QuorumPolicy;

    /// The port every member listens on inside its pod (its Service's target port).
    fn member_port(&self) -> i32;
    /// The name of that port on member Services.
    fn member_port_name(&self) -> &'static str;
    /// The Service of one member (stable for as long as the member lives in its cluster).
    fn member_service_name(&self, instance: &str, index: i32, arbiter: bool) -> String;
    /// The ConfigMap carrying the host list to every cluster's agent.
    fn host_list_name(&self, obj: &Self::Federated) -> String;
    /// The spec field that names that ConfigMap, when the spec sets it (for messages).
    fn host_list_field(&self, obj: &Self::Federated) -> Option<&'static str>;

    /// The member template: every cluster-independent field, for `members` data members in all.
    fn member_template(&self, obj: &Self::Federated, members: i32) -> Self::Member;
    /// What differs in one binding cluster: its share of the members and their identities.
    fn cluster_overrides(
        &self,
        obj: &Self::Federated,
        assignment: &Assignment,
        cluster: &TargetCluster,
        vip: Option<&str>,
    ) -> Overriders;

    /// Names of the Secrets [`Middleware::secrets`] keeps (read before deciding).
    fn secret_names(&self, obj: &Self::Federated) -> Vec<String>;
    /// The Secrets every cluster needs, from the ones that exist (generated once, then kept).
    fn secrets(
        &self,
        obj: &Self::Federated,
        existing: &BTreeMap<String, Secret>,
        rng: &mut impl Rng,
    ) -> Vec<Secret>;
    /// Everything besides the host list that must reach every binding cluster: our Secrets and
    /// the user's objects the spec references (never copied).
    fn shared_objects(&self, obj: &Self::Federated) -> Vec<ResourceSelector>;

    /// Names of the user's ConfigMaps the spec references whose content reaches the members'
    /// pods (read before deciding, and watched: a change of one reconciles `obj`).
    fn referenced_config_maps(&self, _obj: &Self::Federated) -> Vec<String> {
        Vec::new()
    }
    /// What reaches the pods from outside the spec (a referenced ConfigMap's content, a
    /// password the pods read only at start) written into the member template as pod fields,
    /// as keyed digests (never the content), so its change is rolled out one member cluster at
    /// a time like any pod field. `secrets` are the Secrets as this reconcile leaves them;
    /// `config_maps` the referenced ConfigMaps that exist.
    fn stamp_pod_inputs(
        &self,
        _obj: &Self::Federated,
        _template: &mut Self::Member,
        _secrets: &BTreeMap<String, Secret>,
        _config_maps: &BTreeMap<String, ConfigMap>,
    ) {
    }

    /// The member spec fields (JSON names) that reach the members' pods: a change of one is
    /// rolled out one member cluster at a time ([`crate::rollout`]).
    fn pod_fields(&self) -> &'static [&'static str];
    /// The revision a cluster's agent reports (`ClusterReport::revision`) once all its members
    /// run these pod fields.
    fn pod_revision(
        &self,
        instance: &str,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> String;

    /// One cluster's reflected member status; `None` when it cannot be read.
    fn member_report(&self, reflected: &serde_json::Value) -> Option<ClusterReport>;
    /// The manager-owned part of the object's current status.
    fn current_status(&self, obj: &Self::Federated) -> FederatedStatus;
}
