//! Harness of FedState's end-to-end tests on the local federation (`deploy/local`).
//!
//! The e2e tier runs only when `FEDSTATE_E2E=1`; otherwise each test prints `skipped: <why>` and
//! passes, so `cargo test --workspace` stays fast. With `FEDSTATE_E2E=1` a missing binary is a
//! failure, not a skip. Build the binaries with `deploy/local/build.sh`.

pub mod harness;
pub mod invariants;
pub mod ours;
pub mod pods;
pub mod process;
pub mod ready;
pub mod stack;
pub mod suite;
