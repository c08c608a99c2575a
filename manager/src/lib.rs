//! fedstate-manager: the control plane of federated middleware on the Karmada apiserver,
//! MongoDB first.
//!
//! Every reconcile is gather → decide → apply, and everything kind-specific sits behind one
//! trait:
//! * [`middleware`]: the seam, [`middleware::Middleware`] (validate, member template, per-cluster
//!   overrides, Secrets, member health from the reflected status);
//! * [`mongodb`]: MongoDB's implementation (`MultiCloudMongoDB` → per-cluster `MongoDB`);
//! * [`members`]: stable member identities, votes and priorities from a placement (pure);
//! * [`desired`]: placement + spec → every object we apply on the Karmada apiserver (pure);
//! * [`status`]: the binding's `aggregatedStatus` → our status and conditions (pure);
//! * [`rollout`]: a change of the members' pods reaches one member cluster at a time (pure);
//! * [`teardown`]: the ordered deletion steps, naming what to delete (pure);
//! * [`decide`]: the decisions of one reconcile (pure);
//! * [`gather`] and [`apply`]: the reads and the writes;
//! * [`controller`]: the kube-runtime controller, finalizer, error policy;
//! * [`triggers`]: which objects a Cluster change concerns (pure but for the stores);
//! * [`service`]: flags and the process (admin server, leader election) from `fedstate-runtime`.

// Indexing or slicing that may panic is refused in this crate too (it handles user input and
// answers from other processes); tests may (clippy.toml). Not yet workspace-wide (README).
#![warn(clippy::indexing_slicing)]

pub mod apply;
pub mod controller;
pub mod decide;
pub mod desired;
pub mod gather;
pub mod members;
pub mod middleware;
pub mod mongodb;
pub mod owned;
pub mod rollout;
pub mod service;
pub mod status;
pub mod teardown;
pub mod triggers;
