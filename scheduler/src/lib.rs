//! fedstate-scheduler: the placement engine and its adapters.
//!
//! * [`placement`]: the pure engine of `spec/03` (no I/O).
//! * [`adapter`]: Karmada `Cluster` objects and `MultiCloudMongoDB` specs → engine inputs,
//!   including the general capacity estimate from `status.resourceSummary`.
//! * [`binding`]: Karmada ResourceBinding replica scheduling strategies through the engine.
//! * [`plan`]: the offline `fedstate-scheduler plan` command (parse, place, render).

pub mod adapter;
pub mod placement;
pub mod plan;
#[cfg(feature = "service")]
pub mod service;
