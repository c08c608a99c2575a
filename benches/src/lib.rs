//! FedState benchmarks: the criterion benches (`benches/`) and the side-by-side scheduling
//! harness (`src/bin/side_by_side.rs`, see `README.md`), whose pieces live here so they can be
//! tested: [`audit`] (requests per client from the apiserver's audit log), [`procstat`] (CPU and
//! RSS of a process), [`stats`], [`workload`] (the objects placed), [`ceiling`] (the trivial
//! scheduler), [`kwok`] (one more fake node), [`simulated`] (member Clusters without member clusters, and their estimators); [`soak`] (the
//! soak test's verdicts, `src/bin/soak.rs`).

pub mod audit;
pub mod ceiling;
pub mod kwok;
pub mod procstat;
pub mod simulated;
pub mod soak;
pub mod stats;
pub mod workload;
