//! Capacity of member clusters for FedState's scheduler: Karmada's scheduler-estimator over gRPC,
//! the general estimate from `Cluster.status`, node spread and our own not-yet-visible placements,
//! merged per cluster and cached (`docs/placement.md#the-capacity-plugin-chain`,
//! `docs/karmada.md#the-scheduler-estimator-service`, `docs/karmada.md#finding-an-estimator`).
//!
//! | module | owns |
//! |---|---|
//! | [`proto`] | code generated from our own `.proto` files (Karmada's wire format) |
//! | [`shape`] | [`MemberShape`]: a member's requests and node claim, and its wire form (both field layouts) |
//! | [`tls`] | channels: plain or TLS/mTLS/insecure-skip-verify, lazy connect, connect timeout |
//! | [`client`] | [`EstimatorClient`]: the three RPCs with deadlines, metadata, metrics |
//! | [`discovery`] | where each cluster's estimator is (pure), the channel registry and its watches |
//! | [`plugin`] | the [`CapacityPlugin`] trait, the merge, and the accurate/general/node-spread plugins |
//! | [`ledger`] | the assumed-workload ledger |
//! | [`cache`] | the (cluster, shape) capacity cache and its freshness policy |
//! | [`estimator`] | [`CapacityEstimator`]: fan-out with deadlines, cache, ledger — what the scheduler calls |
//! | [`metrics`] | metric names (`fedstate_estimator_*`) |
//!
//! ```no_run
//! # async fn demo(kube: kube::Client, clusters: Vec<fedstate_api::karmada::Cluster>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use fedstate_estimator_client::*;
//!
//! let factory = ChannelFactory::new(&ChannelConfig::default())?;
//! let registry = EstimatorRegistry::new(DiscoveryConfig::default(), factory);
//! let estimator = CapacityEstimator::new(
//!     vec![
//!         Arc::new(KarmadaAccurate::new(registry.clone())),
//!         Arc::new(GeneralEstimate),
//!         Arc::new(NodeSpread),
//!     ],
//!     EstimatorConfig::default(),
//! );
//! let on_change = estimator.clone();
//! tokio::spawn(discovery::watch(kube, registry, move |c| on_change.cluster_changed(c)));
//!
//! let shape = MemberShape::from_requests([("cpu", "1"), ("memory", "2Gi")]);
//! let clusters: Vec<ClusterRef> = clusters.into_iter().map(ClusterRef::new).collect();
//! let caps = estimator.capacities(&clusters, &shape, &CapacityQuery::default()).await;
//! for c in &caps {
//!     println!("{}: {:?} (by {:?})", c.cluster, c.capacity.replicas, c.capacity.decided_by);
//! }
//! estimator.assume("db/demo", "member1", &shape, 2); // after writing the placement
//! # Ok(()) }
//! ```

// Indexing or slicing that may panic is refused in this crate too (it handles user input and
// answers from other processes); tests may (clippy.toml). Not yet workspace-wide (README).
#![warn(clippy::indexing_slicing)]

pub mod cache;
pub mod client;
pub mod discovery;
pub mod estimator;
pub mod ledger;
pub mod metrics;
pub mod plugin;
pub mod proto;
pub mod shape;
pub mod tls;

pub use client::{ClientError, EstimatorClient, ObjectRef};
pub use discovery::{DiscoveryConfig, DiscoveryError, EstimatorRegistry, resolve_addresses};
pub use estimator::{CapacityEstimator, CapacityQuery, ClusterCapacity, EstimatorConfig, Source};
pub use ledger::AssumedLedger;
pub use plugin::{
    Capacity, CapacityPlugin, ClusterRef, Estimate, GeneralEstimate, KarmadaAccurate, NodeSpread,
    PluginAnswer, general_estimate, merge,
};
pub use shape::{MemberRequirements, MemberShape, ShapeId};
pub use tls::{ChannelConfig, ChannelFactory, TlsError, TlsOptions};
