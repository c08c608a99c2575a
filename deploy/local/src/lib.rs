//! `fedstate-local`: real Kubernetes and Karmada processes on one machine, no containers
//! (the local federation of `docs/local-federation.md`).
//!
//! The library brings the federation up for the e2e tests; the `fedstate-local` binary wraps it
//! as a CLI (`up`, `status`, `down`, `kill-member`, `restore-member`, `build`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), fedstate_local::Error> {
//! use fedstate_local::{Federation, Options};
//! let fed = Federation::up(Options { members: 3, ..Options::default() }).await?;
//! let karmada = fed.karmada_client().await?;
//! fed.kill_member(2)?;
//! fed.restore_member(2).await?;
//! fed.down()?;
//! # Ok(()) }
//! ```
//!
//! Modules: [`layout`] (ports, run directory), [`capacity`] (the fake nodes' capacity),
//! [`binaries`] (the pinned Go binaries), [`pki`] and [`kubeconfig`] (generated at `up`),
//! [`components`] (command lines), [`bootstrap`] (objects installed at `up`), [`process`]
//! (start/stop), [`probe`] (health checks), [`federation`] (the whole).

// Indexing or slicing that may panic is refused in this crate (it reads manifests, files and the
// apiservers' answers); tests may (clippy.toml). Each remaining case carries an allow at the
// narrowest scope saying why it cannot fail.
#![warn(clippy::indexing_slicing)]

pub mod binaries;
pub mod bootstrap;
pub mod capacity;
pub mod components;
pub mod error;
pub mod federation;
pub mod kubeconfig;
pub mod layout;
pub mod pki;
pub mod probe;
pub mod process;

pub use error::{Error, Result};
pub use federation::{
    ClusterStatus, ComponentStatus, EstimatorTls, Federation, FederationStatus, Options, VIP_LABEL,
};
pub use layout::{AUDITED_GROUP, PortPlan, RunLayout, member_name, member_vip};

/// Port the estimator Services in the Karmada apiserver expose (karmada-scheduler's
/// `--scheduler-estimator-port`, Karmada's default); their `targetPort` is the real loopback port.
pub const ESTIMATOR_SERVICE_PORT: u16 = 10352;

/// Default `RUST_LOG` filter of the CLI and the e2e harness: progress at info; kube-client's
/// per-request errors (expected while apiservers start) silenced.
pub const DEFAULT_LOG_FILTER: &str = "info,kube_client=off";
