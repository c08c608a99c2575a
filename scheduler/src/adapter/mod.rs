//! Kubernetes objects → engine inputs. The engine never sees a Kubernetes type.
//!
//! * [`capacity`]: the general estimate from a Cluster's `status.resourceSummary`.
//! * [`cluster`]: a Karmada `Cluster` → [`ClusterCandidate`](crate::placement::ClusterCandidate).
//! * [`request`]: a `MultiCloudMongoDB` → [`PlacementRequest`](crate::placement::PlacementRequest).

pub mod capacity;
pub mod cluster;
pub mod request;

pub use capacity::{CapacityError, MemberShape, general_estimate};
pub use cluster::{candidate, candidate_with_capacity};
pub use request::{
    RequestError, cluster_filter, member_shape, mode, placement_request, spread_rule, toleration,
};
