//! The seam between the scheduler and one middleware: what the kind-independent scheduler service
//! (`service::middleware`, the Cluster triggers, the capacity query) asks of a federated kind,
//! as Karmada's resource interpreter is what its scheduler asks of a workload kind.
//! MongoDB's implementation is in [`super::mongodb`]; what a second middleware adds is in
//! `docs/adding-a-middleware.md`.
//!
//! The placement is written as the `schedulerResult` annotation (the manager's input, the same
//! for every kind), and the scheduler's status fields, `conditions` (`Scheduled`,
//! `ServerScheduledResult`, `QuorumAtRisk`) and `placement` ([`PlacementStatus`]), by one
//! server-side apply whose body [`Schedulable::status_apply`] shapes.

use std::collections::BTreeMap;
use std::fmt::Debug;

use fedstate_api::Condition;
use fedstate_api::placement::PlacementStatus;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::request::RequestError;
use crate::placement::PlacementRequest;

/// A federated middleware kind the scheduler places (`MultiCloudMongoDB`), implemented on the
/// kind itself: a namespaced custom resource on the Karmada apiserver.
pub trait Schedulable: fedstate_api::kind::NamespacedKind {
    /// The kind in metrics labels (the attempts' and the writes' `kind`), e.g. `MultiCloudMongoDB`.
    const KIND: &'static str;
    /// Its reconcile queue in the pending-reconciles gauge, e.g. `multicloudmongodb`.
    const QUEUE: &'static str;
    /// Prefix of its objects' keys in the estimators' assumed-members ledger, e.g. `mcm`.
    const LEDGER_PREFIX: &'static str;

    /// The scheduler the object asks for; objects naming another scheduler are left alone.
    fn scheduler_name(&self) -> &str;

    /// The engine's request: members, mode, replica-set rules (votes, arbiter, quorum policy),
    /// cluster filter, tolerations, spread rules, primary preference. An error names the field.
    fn placement_request(&self) -> Result<PlacementRequest, RequestError>;

    /// What one member asks of a cluster, for the capacity estimators.
    fn member(&self) -> MemberSpec;

    /// The conditions of the object's status (the scheduler's among them).
    fn conditions(&self) -> &[Condition];

    /// The placement the object's status reports (`status.placement`).
    fn placement_status(&self) -> Option<&PlacementStatus>;

    /// The server-side apply body that sets the scheduler's status fields `status` (its
    /// `conditions` and `placement`). The default suits a kind whose status holds both under
    /// those names, as `MultiCloudMongoDB`'s does.
    fn status_apply(status: &serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": Self::api_version(&()),
            "kind": Self::kind(&()),
            "status": status,
        })
    }
}

/// One member's demands, as the object states them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberSpec {
    /// Resource requests per container of the member pod (summed for the estimators), each with
    /// the field it comes from, which errors name (e.g. `spec.resource.requests`).
    pub requests: Vec<(&'static str, BTreeMap<String, Quantity>)>,
    /// `nodeSelector` of the member pods.
    pub node_selector: BTreeMap<String, String>,
}
