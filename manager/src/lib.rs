//! fedstate-manager: the control plane of `MultiCloudMongoDB` on the Karmada apiserver.
//!
//! Pure core, thin edges:
//! * [`members`]: stable member identities, votes and priorities from a placement (pure).
//! * [`desired`]: placement + spec → every object we apply on the Karmada apiserver (pure).
//! * [`secrets`]: keyfile and credential Secrets, generated once and never echoed (pure + `rand`).
//! * [`status`]: the binding's `aggregatedStatus` → our status and conditions (pure).
//! * [`teardown`]: the ordered deletion steps (pure).
//! * [`controller`]: the kube-runtime controller that gathers inputs and applies outputs.
//! * [`service`]: flags, admin server (`/metrics`, `/healthz`, `/readyz`), leader election.

pub mod controller;
pub mod desired;
pub mod members;
pub mod secrets;
pub mod service;
pub mod status;
pub mod teardown;
