//! How soon an object is looked at again after a reconcile that worked. [`crate::decide`] says
//! why ([`Requeue`]); [`Pacing`] turns that into a delay: 30 s once the set is as wanted, 2 s
//! after a step, and while nothing can be done (waiting for members, quorum lost, a foreign set,
//! a replica-set error) 2 s, 4 s, 8 s … up to 60 s as long as the same state repeats, back to
//! 2 s as soon as it changes. A watch event (the object, its StatefulSets, Services or host
//! list) still reconciles at once; only the timer waits longer. Failed reconciles have their own
//! backoff (`fedstate_runtime::backoff`, in `error_policy`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// A converged object is looked at again after this long (elections and members syncing happen
/// outside Kubernetes, so no watch event tells).
pub const CONVERGED: Duration = Duration::from_secs(30);
/// After a step, and the first delay of a stalled state.
pub const FIRST: Duration = Duration::from_secs(2);
/// The longest delay of a state that repeats.
pub const MAX: Duration = Duration::from_secs(60);

/// Why the object should be looked at again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// The set is as wanted.
    Converged,
    /// A step was taken: the next one may follow soon.
    Progress,
    /// Nothing could be done; `state` says what was seen (the same text is the same state).
    Stalled(String),
}

type Delays = <ExponentialBuilder as BackoffBuilder>::Backoff;

fn delays() -> Delays {
    ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_max_delay(MAX)
        .without_max_times()
        .build()
}

/// One object's run of the same stalled state.
#[derive(Debug)]
struct Streak {
    state: String,
    delays: Delays,
}

/// The stalled states of every object, and their delays.
#[derive(Debug, Default)]
pub struct Pacing {
    streaks: Mutex<HashMap<String, Streak>>,
}

impl Pacing {
    /// The delay before `object` (`namespace/name`) is looked at again, for `why`.
    pub fn next(&self, object: &str, why: &Requeue) -> Duration {
        let state = match why {
            Requeue::Converged => {
                self.forget(object);
                return CONVERGED;
            }
            Requeue::Progress => {
                self.forget(object);
                return FIRST;
            }
            Requeue::Stalled(state) => state,
        };
        let mut streaks = self
            .streaks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let streak = streaks.entry(object.to_owned()).or_insert_with(|| Streak {
            state: state.clone(),
            delays: delays(),
        });
        if streak.state != *state {
            *streak = Streak {
                state: state.clone(),
                delays: delays(),
            };
        }
        // Without a limit of times the iterator never ends; MAX is what it would give.
        streak.delays.next().unwrap_or(MAX)
    }

    /// Forget `object` (it made progress, converged or was deleted).
    pub fn forget(&self, object: &str) {
        self.streaks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(object);
    }

    /// How many objects have a stalled state on record.
    pub fn tracked(&self) -> usize {
        self.streaks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(p: &Pacing, object: &str, why: &Requeue) -> u64 {
        p.next(object, why).as_secs()
    }

    #[test]
    fn a_repeated_state_waits_longer_up_to_a_minute_and_a_change_starts_again() {
        let p = Pacing::default();
        let quorum = Requeue::Stalled("QuorumLost { reachable_voters: 1, voters: 3 }".into());
        assert_eq!(
            (0..8)
                .map(|_| secs(&p, "db/a", &quorum))
                .collect::<Vec<_>>(),
            [2, 4, 8, 16, 32, 60, 60, 60]
        );
        // Another object has its own streak.
        assert_eq!(secs(&p, "db/b", &quorum), 2);
        // Another stalled state starts from the first delay.
        let foreign = Requeue::Stalled("ForeignSet { host: h:1, set_name: other }".into());
        assert_eq!(secs(&p, "db/a", &foreign), 2);
        assert_eq!(secs(&p, "db/a", &foreign), 4);
        // A step resets; so does converging.
        assert_eq!(secs(&p, "db/a", &Requeue::Progress), 2);
        assert_eq!(secs(&p, "db/a", &foreign), 2);
        assert_eq!(secs(&p, "db/a", &foreign), 4);
        assert_eq!(secs(&p, "db/a", &Requeue::Converged), 30);
        assert_eq!(secs(&p, "db/a", &foreign), 2);
    }

    #[test]
    fn deleted_objects_are_forgotten() {
        let p = Pacing::default();
        let waiting = Requeue::Stalled("Waiting(no primary)".into());
        p.next("db/a", &waiting);
        p.next("db/b", &waiting);
        p.forget("db/a");
        assert_eq!(p.tracked(), 1);
        p.next("db/b", &Requeue::Converged);
        assert_eq!(p.tracked(), 0);
    }
}
