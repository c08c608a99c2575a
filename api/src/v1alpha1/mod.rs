//! `middleware.fedstate.io/v1alpha1`: field names follow FedState's Go API so its objects (and the
//! samples in its documents) apply unchanged; everything new is optional.
//!
//! Presence is kept: optional fields are `Option`, so an object read and written back loses and
//! gains nothing. Defaults live in the CRD schema (the apiserver applies them) and in the
//! `effective_*` accessors, never in serde.

mod common;
mod mongodb;
mod multicloud_mongodb;

pub use common::*;
pub use mongodb::*;
pub use multicloud_mongodb::*;
