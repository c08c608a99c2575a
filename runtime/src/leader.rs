//! Leader election through a `coordination.k8s.io` Lease, so several replicas can run and only
//! one of them writes. Work runs while we hold the Lease.
//!
//! What [`Elector::run`] guarantees:
//! * **Lost leadership: no write once the loss is noticed.** The work is dropped at once, without
//!   grace: its in-flight reconciles are never polled again, so none sends another request (one
//!   already sent may still complete). Tasks the work spawned are only told, through its token.
//!   The replica goes back to standby.
//! * **Shutdown while leading:** the work is told to stop and gets up to [`STOP_GRACE`] to finish
//!   (we still hold the Lease, so its writes are still ours), then the Lease is released. A loss
//!   during that grace drops the work at once too.
//! * **The work returns by itself while leading** (a controller stream ended, an error): no
//!   leader renews with nothing running. The Lease is released and `run` returns
//!   [`LeaderError::WorkEnded`]; the process exits non-zero and a standby takes over.
//!
//! What remains: the window between the Lease's expiry and our noticing. kube-lease-manager
//! renews `duration − grace` after the last renewal (with the defaults of `--leader-elect-*`:
//! 15 s Lease, renewed after 10 s, 5 s before it expires), and reports a loss only when it
//! reads the Lease and sees another holder. A failed renewal (apiserver unreachable, a timeout)
//! is retried after 1 s, doubling up to 30 s, and the replica meanwhile still counts as leader:
//! it never steps down by its own clock. So a leader cut off from the apiserver for longer than
//! 5 s after a failed renewal may be superseded (a standby takes over 15 s after the last
//! successful renewal) before it notices; its writes fail while it is cut off, but one accepted
//! after the connection is back and before the next renewal attempt reads the Lease (up to 30 s
//! later) lands while another replica leads. The same holds for a process stalled past 15 s.
//! Every controller here starts from what it reads, so such a write is redone from the facts by
//! the current leader's next reconcile of that object. Bounding this by our own clock (stepping
//! down when no renewal succeeded within the renew deadline, as client-go does) would need
//! renewal results, which kube-lease-manager's `watch()` does not expose.

use std::future::Future;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "leader election on Lease {namespace}/{name} failed: {source} (the namespace must exist and the account may get, create and update Leases there; --leader-elect=false runs without a Lease)"
    )]
    Lease {
        namespace: String,
        name: String,
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error(
        "--leader-elect-renew-deadline ({renew:?}) must be at least 1s and shorter than --leader-elect-lease-duration ({duration:?}), and --leader-elect-retry-period ({retry:?}) shorter than the renew deadline"
    )]
    Timing {
        duration: Duration,
        renew: Duration,
        retry: Duration,
    },
    #[error(
        "the work stopped while leading (Lease {namespace}/{name} released, so a standby takes over); the log says why"
    )]
    WorkEnded { namespace: String, name: String },
}

/// Where the Lease lives, who we are and how long a Lease lasts.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per replica; the pod name is a good choice.
    pub identity: String,
    /// Lease duration, whole seconds.
    pub duration_seconds: u64,
    /// The holder renews this many seconds before its Lease expires (duration − renew deadline).
    pub grace_seconds: u64,
}

impl LeaderOptions {
    /// Identity from `POD_NAME` (downward API), else host name and process id (two processes on
    /// one host must not share an identity). Default timing: 15 s Lease, renewed after 10 s.
    pub fn new(namespace: impl Into<String>, lease_name: impl Into<String>) -> Self {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
            format!("{host}_{}", std::process::id())
        });
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity,
            duration_seconds: 15,
            grace_seconds: 5,
        }
    }

    /// Karmada-style timing: the Lease lasts `duration`, the holder renews it after
    /// `renew_deadline`; `retry` is only checked (see `--leader-elect-retry-period`).
    pub fn with_timing(
        mut self,
        duration: Duration,
        renew_deadline: Duration,
        retry: Duration,
    ) -> Result<Self, LeaderError> {
        let (d, r) = (duration.as_secs(), renew_deadline.as_secs());
        if r == 0 || r >= d || retry >= renew_deadline {
            return Err(LeaderError::Timing {
                duration,
                renew: renew_deadline,
                retry,
            });
        }
        self.duration_seconds = d;
        self.grace_seconds = d - r;
        Ok(self)
    }
}

/// How long the work may take to return once shutdown starts while we lead (a lost leadership
/// gets no grace). Past that it is dropped (its in-flight reconciles with it), so the Lease is
/// handed back and the process exits well within a pod's termination grace period; every
/// controller here starts from what it reads, so an abandoned reconcile is redone by the next
/// leader.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// Wait for `work` to return, at most `grace`.
pub async fn stop_within<F: Future<Output = ()>>(grace: Duration, work: F) {
    if tokio::time::timeout(grace, work).await.is_err() {
        tracing::warn!(
            seconds = grace.as_secs(),
            "the work did not stop in time; abandoning what it had in flight"
        );
    }
}

/// A Lease we take part in: reached (read or created) but not necessarily held.
pub struct Elector {
    manager: kube_lease_manager::LeaseManager,
    options: LeaderOptions,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Elector {
    /// Reach the Lease (creating it if absent): proves the apiserver answers and the account may
    /// use Leases there, which is what a standby needs to take over.
    pub async fn connect(
        client: kube::Client,
        options: LeaderOptions,
    ) -> Result<Self, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, options.lease_name.clone())
            .with_namespace(options.namespace.clone())
            .with_identity(options.identity.clone())
            .with_duration(options.duration_seconds)
            .with_grace(options.grace_seconds)
            .build()
            .await
            .map_err(|source| LeaderError::Lease {
                namespace: options.namespace.clone(),
                name: options.lease_name.clone(),
                source,
            })?;
        Ok(Self { manager, options })
    }
}

/// Run `work` whenever we hold the Lease, until `shutdown`. `work` gets a token that is cancelled
/// when leadership is lost or shutdown starts; on a loss the work is also dropped at once.
pub async fn run_as_leader<F, Fut>(
    client: kube::Client,
    options: LeaderOptions,
    shutdown: CancellationToken,
    work: F,
) -> Result<(), LeaderError>
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    Elector::connect(client, options)
        .await?
        .run(shutdown, work, || {})
        .await
}

impl Elector {
    /// Run `work` whenever we hold the Lease, until `shutdown`; `after_term` runs each time a
    /// term ends by a loss of leadership (back to standby). A work that returns while we lead and
    /// are not shutting down ends the process: the Lease is released and this returns
    /// [`LeaderError::WorkEnded`].
    pub async fn run<F, Fut>(
        self,
        shutdown: CancellationToken,
        work: F,
        after_term: impl Fn(),
    ) -> Result<(), LeaderError>
    where
        F: Fn(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let Self { manager, options } = self;
        let (mut is_leader, task) = manager.watch().await;
        let ended = lead(
            &mut is_leader,
            &shutdown,
            work,
            after_term,
            &options.lease_name,
        )
        .await;
        let released = release(is_leader, task).await;
        let lease_err = |source| LeaderError::Lease {
            namespace: options.namespace.clone(),
            name: options.lease_name.clone(),
            source,
        };
        match ended {
            Ok(()) => released.map_err(lease_err),
            Err(WorkEnded) => {
                if let Err(e) = released {
                    tracing::warn!(error = %e, lease = %options.lease_name, "could not release the Lease; a standby takes over when it expires");
                }
                Err(LeaderError::WorkEnded {
                    namespace: options.namespace.clone(),
                    name: options.lease_name.clone(),
                })
            }
        }
    }
}

/// How a term ends, and so what becomes of the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TermEnd {
    /// Leadership was lost: another replica may lead already, so the work is dropped at once
    /// (its in-flight reconciles never get past their next await) and we go back to standby.
    Lost,
    /// Shutdown while we still lead: the work gets [`STOP_GRACE`] to finish (we hold the Lease,
    /// so its writes are still ours), then the Lease is released.
    Shutdown,
    /// The work returned by itself while we lead (a stream ended, an error): the Lease is
    /// released and the process stops with an error, so a standby takes over.
    WorkEnded,
}

/// The work returned while we led and nobody had asked it to stop.
#[derive(Debug)]
struct WorkEnded;

/// The elector's loop over a leadership signal (kube-lease-manager's `is_leader` channel; a
/// plain watch channel in tests). Returns on shutdown, or `Err` when the work ended by itself.
async fn lead<F, Fut>(
    is_leader: &mut watch::Receiver<bool>,
    shutdown: &CancellationToken,
    work: F,
    after_term: impl Fn(),
    lease: &str,
) -> Result<(), WorkEnded>
where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        // Wait until we lead (or stop).
        while !*is_leader.borrow_and_update() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                changed = is_leader.changed() => if changed.is_err() { return Ok(()) },
            }
        }
        tracing::info!(%lease, "became leader");
        let term = shutdown.child_token();
        // Boxed so that it can be dropped, in-flight reconciles with it, the moment we lose.
        let mut work_done = Box::pin(work(term.clone()));
        // Biased: once the loss is in the channel, the work is never polled again.
        let end = tokio::select! {
            biased;
            () = lost(is_leader) => TermEnd::Lost,
            () = shutdown.cancelled() => TermEnd::Shutdown,
            () = &mut work_done => TermEnd::WorkEnded,
        };
        term.cancel();
        match end {
            TermEnd::Lost => {
                drop(work_done);
                tracing::warn!(%lease, "lost leadership; dropped the work at once (no grace), standby");
                after_term();
            }
            TermEnd::Shutdown => {
                tokio::select! {
                    biased;
                    () = lost(is_leader) => {
                        drop(work_done);
                        tracing::warn!(%lease, "lost leadership while stopping; dropped the work at once");
                    }
                    () = stop_within(STOP_GRACE, &mut work_done) => {}
                }
                return Ok(());
            }
            TermEnd::WorkEnded => {
                tracing::error!(%lease, "the work ended while leading; releasing the Lease and stopping, so a standby takes over");
                return Err(WorkEnded);
            }
        }
    }
}

/// Resolves once we no longer lead: the channel says so, or the Lease manager is gone (nobody
/// renews any more).
async fn lost(is_leader: &mut watch::Receiver<bool>) {
    while *is_leader.borrow_and_update() {
        if is_leader.changed().await.is_err() {
            return;
        }
    }
}

async fn release(
    channel: tokio::sync::watch::Receiver<bool>,
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) -> kube_lease_manager::Result<()> {
    // Closing the channel ends the manager's task, which hands the Lease back.
    drop(channel);
    match task.await {
        Ok(Ok(manager)) => manager.release().await,
        Ok(Err(e)) => Err(e),
        Err(join) => {
            tracing::warn!(error = %join, "lease manager task ended abnormally");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use fedstate_fake_apiserver::FakeApiserver;
    use serde_json::json;

    const LEASES: &str = "coordination.k8s.io/v1/leases";

    /// A Lease of 2 s renewed after 1 s, so a loss is noticed within about a second.
    async fn elector(fake: &FakeApiserver, identity: &str) -> Elector {
        let mut options = LeaderOptions::new("ns", "lock")
            .with_timing(
                Duration::from_secs(2),
                Duration::from_secs(1),
                Duration::from_millis(500),
            )
            .unwrap();
        options.identity = identity.into();
        Elector::connect(fake.client(), options).await.unwrap()
    }

    fn holder(fake: &FakeApiserver) -> Option<String> {
        let lease = fake.get(LEASES, "ns", "lock").expect("the Lease exists");
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
    }

    /// Another replica takes the Lease, as if ours had expired while we did not notice.
    fn taken_over(fake: &FakeApiserver) {
        let mut lease = fake.get(LEASES, "ns", "lock").unwrap();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        lease["metadata"]["name"] = json!("lock");
        lease["metadata"]["namespace"] = json!("ns");
        lease["spec"]["holderIdentity"] = json!("other");
        lease["spec"]["acquireTime"] = json!(now);
        lease["spec"]["renewTime"] = json!(now);
        lease["spec"]["leaseDurationSeconds"] = json!(15);
        fake.put(LEASES, lease);
    }

    async fn wait_for(what: &str, within: Duration, done: impl Fn() -> bool) {
        let waited = tokio::time::timeout(within, async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "{what} within {within:?}");
    }

    /// A work that writes every 10 ms and does not look at its token (a reconcile in the middle
    /// of its writes) is stopped the moment the loss is noticed: not one write after that.
    #[tokio::test]
    async fn lost_leadership_stops_the_work_at_once() {
        let fake = FakeApiserver::default();
        let elector = elector(&fake, "me").await;
        let writes = Arc::new(AtomicU64::new(0));
        let back_to_standby = Arc::new(AtomicBool::new(false));
        let shutdown = CancellationToken::new();
        let work = |_stop: CancellationToken| {
            let writes = writes.clone();
            async move {
                loop {
                    writes.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let standby = back_to_standby.clone();
        let run = elector.run(shutdown.clone(), work, move || {
            standby.store(true, Ordering::SeqCst)
        });
        let drive = async {
            wait_for("leading and writing", Duration::from_secs(5), || {
                writes.load(Ordering::SeqCst) > 3
            })
            .await;
            taken_over(&fake);
            // Renewal after 1 s reads the Lease and sees the other holder.
            wait_for("back to standby", Duration::from_secs(5), || {
                back_to_standby.load(Ordering::SeqCst)
            })
            .await;
            let at_loss = writes.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                writes.load(Ordering::SeqCst),
                at_loss,
                "the work wrote after the loss was noticed"
            );
            shutdown.cancel();
        };
        let (result, ()) = tokio::join!(run, drive);
        result.unwrap();
        assert_eq!(
            holder(&fake).as_deref(),
            Some("other"),
            "not ours to release"
        );
    }

    /// A loss during the shutdown grace ends the grace: the work, still writing, is dropped at
    /// once instead of after STOP_GRACE. (A watch channel stands in for the Lease manager.)
    #[tokio::test]
    async fn a_loss_during_the_shutdown_grace_drops_the_work_at_once() {
        let (leader, mut is_leader) = watch::channel(true);
        let writes = AtomicU64::new(0);
        let shutdown = CancellationToken::new();
        let work = |_stop: CancellationToken| {
            let writes = &writes;
            async move {
                loop {
                    writes.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let run = lead(&mut is_leader, &shutdown, work, || {}, "lock");
        let drive = async {
            wait_for("writing", Duration::from_secs(5), || {
                writes.load(Ordering::SeqCst) > 3
            })
            .await;
            shutdown.cancel();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(writes.load(Ordering::SeqCst) > 5, "the grace lets it run");
            leader.send(false).unwrap();
        };
        let (result, ()) = tokio::time::timeout(STOP_GRACE / 3, async { tokio::join!(run, drive) })
            .await
            .expect("the work is dropped when the loss arrives, not after STOP_GRACE");
        assert!(result.is_ok(), "a shutdown, not a failure");
        let at_loss = writes.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(writes.load(Ordering::SeqCst), at_loss);
    }

    /// A work that returns while we lead (its controller stream ended) must not leave a leader
    /// that renews with nothing running: the Lease is handed back and `run` fails.
    #[tokio::test]
    async fn work_that_ends_while_leading_releases_the_lease_and_fails() {
        let fake = FakeApiserver::default();
        let elector = elector(&fake, "me").await;
        let starts = AtomicU64::new(0);
        let work = |_stop: CancellationToken| {
            starts.fetch_add(1, Ordering::SeqCst);
            async {}
        };
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            elector.run(CancellationToken::new(), work, || {}),
        )
        .await;
        let error = result.expect("run returns").expect_err("run fails");
        assert!(error.to_string().contains("lock"), "{error}");
        assert_eq!(starts.load(Ordering::SeqCst), 1, "started once, not again");
        assert_eq!(holder(&fake), None, "the Lease is released");
    }

    /// SIGTERM while leading: the work still gets its grace (we hold the Lease, finishing is
    /// safe), then the Lease is released.
    #[tokio::test]
    async fn shutdown_while_leading_lets_the_work_finish_then_releases() {
        let fake = FakeApiserver::default();
        let elector = elector(&fake, "me").await;
        let started = AtomicBool::new(false);
        let finished = AtomicBool::new(false);
        let shutdown = CancellationToken::new();
        let work = |stop: CancellationToken| {
            let (started, finished) = (&started, &finished);
            async move {
                started.store(true, Ordering::SeqCst);
                stop.cancelled().await;
                // The last writes of a reconcile that was in flight.
                tokio::time::sleep(Duration::from_millis(200)).await;
                finished.store(true, Ordering::SeqCst);
            }
        };
        let run = elector.run(shutdown.clone(), work, || {});
        let drive = async {
            wait_for("leading", Duration::from_secs(5), || {
                started.load(Ordering::SeqCst)
            })
            .await;
            assert_eq!(holder(&fake).as_deref(), Some("me"));
            shutdown.cancel();
        };
        let (result, ()) = tokio::join!(run, drive);
        result.unwrap();
        assert!(finished.load(Ordering::SeqCst), "the work finished");
        assert_eq!(holder(&fake), None, "the Lease is released");
    }
}
