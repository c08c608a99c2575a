//! fedstate-scheduler: the placement engine and its adapters.
//!
//! * [`placement`]: the pure engine of `docs/placement.md` (no I/O).
//! * [`adapter`]: Karmada `Cluster` objects and `MultiCloudMongoDB` specs → engine inputs,
//!   including the general capacity estimate from `status.resourceSummary`.
//! * [`binding`]: Karmada ResourceBinding replica scheduling strategies through the engine.
//! * [`plan`]: the offline `fedstate-scheduler plan` command (parse, place, render).
//! * [`service`]: `fedstate-scheduler run`, the controllers on the Karmada apiserver.

pub mod adapter;
pub mod karmada;
pub mod placement;
pub mod plan;
pub mod service;
