//! One `error_policy` for every controller: how soon a failed reconcile of an object runs again.
//!
//! The convention: each controller's error enum says what failed on which object and implements
//! [`ReconcileError`], which exposes the apiserver error behind it (if any). A write conflict
//! (409) means a newer version of the object is on its way through the watch, so it is retried
//! after [`Backoff::conflict`], without growing; any other failure waits `first`, then twice as
//! long on each consecutive failure of the same object, up to `max`. A successful reconcile
//! forgets the object's failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// What [`Backoff`] needs to know about a controller's error.
pub trait ReconcileError: std::error::Error {
    /// The apiserver error that caused this one, when there is one.
    fn kube_error(&self) -> Option<&kube::Error>;

    /// Someone else wrote the object since we read it.
    fn is_conflict(&self) -> bool {
        matches!(self.kube_error(), Some(kube::Error::Api(s)) if s.code == 409)
    }
}

/// Consecutive failures per object, and the delays they give.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    conflict: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Conflicts are retried after one second.
    pub const CONFLICT: Duration = Duration::from_secs(1);

    /// `first` after one failure, doubling per further failure, never more than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            conflict: Self::CONFLICT,
            failures: Mutex::default(),
        }
    }

    /// The delay after a conflict.
    pub fn conflict(&self) -> Duration {
        self.conflict
    }

    /// Record a failed reconcile of `object` (e.g. `namespace/name`) and say when to retry.
    pub fn failed(&self, object: &str, error: &impl ReconcileError) -> Duration {
        if error.is_conflict() {
            return self.conflict;
        }
        let n = self
            .failures
            .lock()
            .map(|mut f| {
                let n = f.entry(object.to_owned()).or_default();
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1);
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// Forget `object`'s failures after a reconcile that worked.
    pub fn succeeded(&self, object: &str) {
        self.forget(object);
    }

    /// Forget `object` altogether, e.g. once it is deleted: entries of objects that no longer
    /// exist would otherwise stay for the life of the process.
    pub fn forget(&self, object: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(object);
        }
    }

    /// How many objects have failures on record.
    pub fn tracked(&self) -> usize {
        self.failures.lock().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("write failed: {0}")]
    struct Failed(kube::Error);

    impl ReconcileError for Failed {
        fn kube_error(&self) -> Option<&kube::Error> {
            Some(&self.0)
        }
    }

    fn api(code: u16) -> Failed {
        Failed(kube::Error::Api(Box::new(
            kube::core::Status::failure("x", "Reason").with_code(code),
        )))
    }

    #[test]
    fn failures_double_up_to_the_cap_conflicts_stay_short_and_success_resets() {
        let b = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
        let secs = |e: &Failed| b.failed("db/a", e).as_secs();
        assert_eq!(
            (1..=10).map(|_| secs(&api(500))).collect::<Vec<_>>(),
            [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
        );
        assert_eq!(
            secs(&api(409)),
            1,
            "a conflict does not wait for the backoff"
        );
        assert_eq!(
            b.failed("db/b", &api(500)),
            Duration::from_secs(2),
            "per object"
        );
        b.succeeded("db/a");
        assert_eq!(secs(&api(500)), 2);
    }
}
