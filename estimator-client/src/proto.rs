//! Code generated from `proto/*.proto` (our own files, wire format in
//! `docs/karmada.md#estimator-wire-format`).
//!
//! * [`k8s`]: the proto2 Kubernetes messages (`Quantity`, `NodeSelector`, `Toleration`, …).
//! * [`pb`]: Karmada's estimator messages (package `github.com.karmada_io.karmada.pkg.estimator.pb`).
//! * [`service`]: the `Estimator` service client and server; the package gives the gRPC path.

#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/estimator_protos.rs"));
}

pub use generated::fedstate::k8s;
pub use generated::github::com::karmada_io::karmada::pkg::estimator::{pb, service};

/// The gRPC service name; methods are at `/<SERVICE_NAME>/<Method>`.
pub const SERVICE_NAME: &str = "github.com.karmada_io.karmada.pkg.estimator.service.Estimator";
