//! Kubernetes objects → engine inputs. The engine never sees a Kubernetes type.
//!
//! * [`schedulable`]: the seam, [`Schedulable`], what the scheduler service asks of a federated
//!   middleware kind; [`mongodb`]: `MultiCloudMongoDB`'s implementation.
//! * [`request`]: the shared placement vocabulary → the engine's request parts, for any kind.
//! * [`capacity`]: the general estimate from a Cluster's `status.resourceSummary`.
//! * [`cluster`]: a Karmada `Cluster` → [`ClusterCandidate`](crate::placement::ClusterCandidate).

pub mod capacity;
pub mod cluster;
pub mod mongodb;
pub mod request;
pub mod schedulable;

pub use capacity::{CapacityError, MemberShape, general_estimate};
pub use cluster::{candidate, candidate_with_capacity};
pub use request::{
    PlacementRules, RequestError, cluster_filter, member_shape, mode, object_uid, placement_rules,
    spread_rule, toleration,
};
pub use schedulable::{MemberSpec, Schedulable};
