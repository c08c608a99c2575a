//! fedstate-scheduler: the placement engine and its adapters.
//!
//! * [`placement`]: the pure engine of `docs/placement.md` (no I/O).
//! * [`adapter`]: the middleware seam ([`adapter::Schedulable`], what the service asks of a
//!   federated kind; MongoDB's implementation in `adapter/mongodb.rs`) and Karmada `Cluster`s →
//!   engine inputs, including the general capacity estimate from `status.resourceSummary`.
//! * [`karmada`]: karmada-scheduler's own pipeline for ResourceBindings (a separate pure module).
//! * [`plan`]: the offline `fedstate-scheduler plan` command (parse, place, render).
//! * [`service`]: `fedstate-scheduler run`, the controllers on the Karmada apiserver.

// Indexing or slicing that may panic is refused in this crate (it reads user objects, Karmada's
// Clusters and estimators' answers); tests may (clippy.toml). Each remaining case carries an
// allow at the narrowest scope saying why it cannot fail.
#![warn(clippy::indexing_slicing)]

pub mod adapter;
pub mod karmada;
pub mod placement;
pub mod plan;
pub mod service;
