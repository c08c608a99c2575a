//! Scheduler metrics, named after Karmada's scheduler metrics (`karmada_scheduler_*`,
//! `docs/karmada.md#metric-names`) under our prefix, so existing dashboards translate one to one.

/// Counter `{result, schedule_type, kind, outcome}`: every decision. `result` and `schedule_type`
/// take karmada-scheduler's values (`scheduled`/`error`, `ReconcileSchedule`), so its dashboards
/// and alerts read ours; `kind` is the object (`MultiCloudMongoDB`, `ResourceBinding`) and
/// `outcome` ours (`placed`, `unchanged`, `unschedulable`, `error`).
pub const SCHEDULE_ATTEMPTS: &str = "fedstate_scheduler_schedule_attempts_total";
/// Histogram `{result, schedule_type, kind}`: from reconcile start to the last write, seconds.
pub const E2E_DURATION: &str = "fedstate_scheduler_e2e_scheduling_duration_seconds";
/// Histogram `{schedule_step}`: time in one step, seconds: `Estimate` (asking the estimators) and
/// `AssignReplicas` (the placement itself, karmada-scheduler's step name).
pub const ALGORITHM_DURATION: &str = "fedstate_scheduler_scheduling_algorithm_duration_seconds";
/// Counter `{event}`: triggers that put objects in the queue.
pub const QUEUE_INCOMING: &str = "fedstate_scheduler_queue_incoming_bindings_total";
/// Gauge `{queue}`: reconciles in flight.
pub const PENDING: &str = "fedstate_scheduler_pending_bindings";
/// Counter `{kind, verb}`: writes to the apiserver, to check "≤ 2 writes per decision".
pub const API_WRITES: &str = "fedstate_scheduler_api_writes_total";

/// What a scheduling attempt ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// A new or changed placement was written.
    Scheduled,
    /// The placement in force is still right; nothing written.
    Unchanged,
    /// No placement satisfies the constraints; the object says why.
    Unschedulable,
    /// An API or estimator error; retried with backoff.
    Error,
}

impl AttemptResult {
    /// karmada-scheduler's `result` label: an attempt that ended without a placement error is
    /// `scheduled` (also when the placement in force stayed right), one that could not place or
    /// failed is `error`.
    pub fn karmada_result(self) -> &'static str {
        match self {
            Self::Scheduled | Self::Unchanged => "scheduled",
            Self::Unschedulable | Self::Error => "error",
        }
    }

    /// Our `outcome` label.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::Scheduled => "placed",
            Self::Unchanged => "unchanged",
            Self::Unschedulable => "unschedulable",
            Self::Error => "error",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Unchanged => "unchanged",
            Self::Unschedulable => "unschedulable",
            Self::Error => "error",
        }
    }
}

/// karmada-scheduler's `schedule_type` for a placement decision.
pub const SCHEDULE_TYPE: &str = "ReconcileSchedule";

pub fn describe() {
    metrics::describe_counter!(
        SCHEDULE_ATTEMPTS,
        "Scheduling attempts by result (scheduled, error), schedule type, kind and outcome"
    );
    metrics::describe_histogram!(
        E2E_DURATION,
        metrics::Unit::Seconds,
        "E2e scheduling latency in seconds: reconcile start to the last write"
    );
    metrics::describe_histogram!(
        ALGORITHM_DURATION,
        metrics::Unit::Seconds,
        "Scheduling algorithm latency in seconds per step (Estimate, AssignReplicas)"
    );
    metrics::describe_counter!(QUEUE_INCOMING, "Triggers that queued an object, by event");
    metrics::describe_gauge!(PENDING, "Reconciles in flight");
    metrics::describe_counter!(API_WRITES, "Writes to the apiserver by kind and verb");
}

/// Record one finished attempt on an object of `kind`; `schedule_type` as karmada-scheduler labels
/// it (`ScaleSchedule`, `ReconcileSchedule`).
pub fn attempt(
    kind: &'static str,
    schedule_type: &'static str,
    result: AttemptResult,
    started: std::time::Instant,
) {
    metrics::counter!(SCHEDULE_ATTEMPTS, "result" => result.karmada_result(), "schedule_type" => schedule_type, "kind" => kind, "outcome" => result.outcome()).increment(1);
    metrics::histogram!(E2E_DURATION, "result" => result.karmada_result(), "schedule_type" => schedule_type, "kind" => kind)
        .record(started.elapsed().as_secs_f64());
}

/// Record one step: `estimate` is exported as `Estimate`, `place` as karmada-scheduler's
/// `AssignReplicas`.
pub fn step(step: &'static str, started: std::time::Instant) {
    let step = match step {
        "estimate" => "Estimate",
        "place" => "AssignReplicas",
        other => other,
    };
    metrics::histogram!(ALGORITHM_DURATION, "schedule_step" => step)
        .record(started.elapsed().as_secs_f64());
}

/// A trigger that queued work, by what happened (`ClusterChanged`, `SpecChanged`, …).
pub fn counter_incoming(event: &'static str) {
    metrics::counter!(QUEUE_INCOMING, "event" => event).increment(1);
}

pub fn write(kind: &'static str, verb: &'static str) {
    metrics::counter!(API_WRITES, "kind" => kind, "verb" => verb).increment(1);
}

/// Counts a reconcile in flight for as long as it lives.
#[derive(Debug)]
pub struct InFlight(&'static str);

impl InFlight {
    pub fn start(queue: &'static str) -> Self {
        metrics::gauge!(PENDING, "queue" => queue).increment(1.0);
        Self(queue)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(PENDING, "queue" => self.0).decrement(1.0);
    }
}
