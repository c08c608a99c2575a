//! The Karmada types FedState reads or embeds. Only the fields we use are modelled; serde ignores
//! the rest, so newer Karmada versions keep working.

pub mod binding;
pub mod binding_status;
pub mod cluster;
pub mod override_policy;
pub mod policy;
pub mod propagation;
pub mod work;

pub use cluster::{Cluster, ClusterSpec, ClusterStatus, NodeSummary, ResourceSummary};
pub use policy::{ClusterAffinity, FieldSelector, SpreadConstraint, SpreadField};

/// Taint Karmada puts on a Cluster whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "cluster.karmada.io/not-ready";
/// Taint Karmada puts on a Cluster whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "cluster.karmada.io/unreachable";
