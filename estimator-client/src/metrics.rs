//! Metric names (all `fedstate_estimator_*`) and their descriptions, through the `metrics` facade.
//! The binary installs the Prometheus exporter; this crate only records. Install it before
//! creating a `CapacityEstimator`: the cache metric handles are registered once, at creation.

/// Histogram, seconds, labels `cluster`, `method`.
pub const RPC_DURATION: &str = "fedstate_estimator_rpc_duration_seconds";
/// Counter, labels `cluster`, `method`, `outcome` (`ok`, `no_opinion`, `unimplemented`,
/// `unavailable`, `deadline`, `error`).
pub const RPC_TOTAL: &str = "fedstate_estimator_rpc_total";
/// Counter: capacity lookups answered from a fresh cache entry.
pub const CACHE_HITS: &str = "fedstate_estimator_cache_hits_total";
/// Counter: lookups without a fresh cache entry; label `reason` (`missing`, `stale`: served
/// and refreshed in the background, `expired`: too old to serve).
pub const CACHE_MISSES: &str = "fedstate_estimator_cache_misses_total";
/// Histogram, seconds: age of the cache entry a lookup used.
pub const CACHE_ENTRY_AGE: &str = "fedstate_estimator_cache_entry_age_seconds";
/// Gauge: live entries of the assumed-workload ledger.
pub const LEDGER_ENTRIES: &str = "fedstate_estimator_ledger_entries";
/// Counter, labels `cluster`, `plugin`: a plugin failed or missed its deadline for a cluster.
pub const PLUGIN_FAILURES: &str = "fedstate_estimator_plugin_failures_total";

/// Registers units and help texts with the installed recorder; call once at start-up.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        RPC_DURATION,
        Unit::Seconds,
        "Latency of scheduler-estimator RPCs per cluster and method"
    );
    describe_counter!(
        RPC_TOTAL,
        "Scheduler-estimator RPCs per cluster, method and outcome"
    );
    describe_counter!(
        CACHE_HITS,
        "Capacity lookups answered from a fresh cache entry"
    );
    describe_counter!(
        CACHE_MISSES,
        "Capacity lookups without a fresh cache entry (missing or stale)"
    );
    describe_histogram!(
        CACHE_ENTRY_AGE,
        Unit::Seconds,
        "Age of the capacity cache entry a lookup used"
    );
    describe_gauge!(
        LEDGER_ENTRIES,
        "Placements assumed but not yet visible to the estimators"
    );
    describe_counter!(
        PLUGIN_FAILURES,
        "Capacity plugin failures or deadline misses per cluster and plugin"
    );
}
