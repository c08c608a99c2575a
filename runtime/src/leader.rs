//! Leader election through a `coordination.k8s.io` Lease, so several replicas can run and only
//! one of them writes. Work runs while we hold the Lease and is cancelled when we lose it.

use std::future::Future;
use std::time::Duration;

use kube_lease_manager::LeaseManagerBuilder;
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

/// How long the work may take to return once it is told to stop (shutdown or lost leadership).
/// Past that it is dropped (its in-flight reconciles with it), so the Lease is handed back and
/// the process exits well within a pod's termination grace period; every controller here
/// starts from what it reads, so an abandoned reconcile is redone by the next leader.
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
/// when leadership is lost or shutdown starts, and must return soon after.
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
    /// term ends while the process goes on (back to standby).
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
        let lease_err = |source| LeaderError::Lease {
            namespace: options.namespace.clone(),
            name: options.lease_name.clone(),
            source,
        };
        let (mut is_leader, task) = manager.watch().await;
        loop {
            // Wait until we lead (or stop).
            while !*is_leader.borrow_and_update() {
                tokio::select! {
                    _ = shutdown.cancelled() => return release(is_leader, task).await.map_err(lease_err),
                    changed = is_leader.changed() => if changed.is_err() { return release(is_leader, task).await.map_err(lease_err) },
                }
            }
            tracing::info!(lease = %options.lease_name, identity = %options.identity, "became leader");
            let term = shutdown.child_token();
            let stop_work = term.clone();
            let watch_leadership = async {
                loop {
                    if is_leader.changed().await.is_err() || !*is_leader.borrow_and_update() {
                        break;
                    }
                }
                tracing::warn!(lease = %options.lease_name, "lost leadership; stopping work");
                stop_work.cancel();
            };
            let work_done = work(term.clone());
            tokio::pin!(work_done);
            tokio::select! {
                () = &mut work_done => {}
                () = async {
                    tokio::select! {
                        () = watch_leadership => {}
                        () = term.cancelled() => {}
                    }
                } => {
                    term.cancel();
                    stop_within(STOP_GRACE, &mut work_done).await;
                }
            }
            if shutdown.is_cancelled() {
                return release(is_leader, task).await.map_err(lease_err);
            }
            after_term();
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
