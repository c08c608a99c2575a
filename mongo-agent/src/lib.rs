//! fedstate-mongo-agent: the data plane of FedState in each member cluster.
//!
//! Pure core:
//! * [`planner`]: the replica-set planner (initiate once, non-voting adds then one voter per
//!   reconfig, step-down before removal, never `force` without the user's opt-in).
//! * [`rollout`]: rolling-restart order (secondaries first, primary last after a step-down).
//! * [`resources`]: the Kubernetes objects a `MongoDB` wants (one StatefulSet and NodePort
//!   Service per member; see the module docs for why).
//! * [`status`]: the `MongoDB` status and conditions.
//! * [`version`]: versions and the feature compatibility version (one major at a time).
//!
//! Edges:
//! * [`replset`]: the narrow adapter over the official `mongodb` driver.
//! * [`inpod`]: what only the member's own pod may do (initiate, the first user), by `pods/exec`.
//! * [`converge`]: one observe → plan → apply step, and users/password rotation.
//! * [`leave`]: what a deleted object's agent does before its finalizer goes (the delete rule).
//! * [`controller`]: the kube-runtime controller, each reconcile [`gather`] → [`decide`] (pure)
//!   → [`apply`]; [`service`]: the process.

// Indexing or slicing that may panic is refused in this crate (it reads the mongod's answers,
// the user's objects and the pod's files); tests may (clippy.toml). Each remaining case carries
// an allow at the narrowest scope saying why it cannot fail.
#![warn(clippy::indexing_slicing)]

pub mod apply;
pub mod controller;
pub mod converge;
pub mod decide;
pub mod gather;
pub mod inpod;
pub mod leave;
pub mod pacing;
pub mod planner;
pub mod replset;
pub mod resources;
pub mod rollout;
pub mod service;
#[cfg(test)]
mod silent;
pub mod status;
pub mod version;
