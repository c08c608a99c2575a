//! Kubernetes objects → engine inputs. The engine never sees a Kubernetes type.
//!
//! * [`capacity`]: the general estimate from a Cluster's `status.resourceSummary`.
//! * [`cluster`]: a Karmada `Cluster` → [`ClusterCandidate`](crate::placement::ClusterCandidate).
//! * [`request`]: a `MultiCloudMongoDB` → [`PlacementRequest`](crate::placement::PlacementRequest).

pub mod capacity;
pub mod cluster;
pub mod request;
