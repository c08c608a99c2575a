//! Leader election through a `coordination.k8s.io` Lease, so several replicas can run and only
//! one of them writes. Work runs while we hold the Lease and is cancelled when we lose it.

use std::future::Future;

use kube_lease_manager::LeaseManagerBuilder;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election on Lease {namespace}/{name} failed: {source}")]
    Lease {
        namespace: String,
        name: String,
        source: kube_lease_manager::LeaseManagerError,
    },
}

/// Where the Lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    pub namespace: String,
    pub lease_name: String,
    /// Unique per replica; the pod name is a good choice.
    pub identity: String,
}

impl LeaderOptions {
    /// Identity from `POD_NAME` (downward API) or the host name.
    pub fn new(namespace: impl Into<String>, lease_name: impl Into<String>) -> Self {
        let identity = std::env::var("POD_NAME")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity,
        }
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
    let lease_err = |source| LeaderError::Lease {
        namespace: options.namespace.clone(),
        name: options.lease_name.clone(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client, options.lease_name.clone())
        .with_namespace(options.namespace.clone())
        .with_identity(options.identity.clone())
        .build()
        .await
        .map_err(lease_err)?;
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
        tokio::join!(work(term.clone()), async {
            tokio::select! {
                _ = watch_leadership => {}
                _ = term.cancelled() => {}
            }
        });
        if shutdown.is_cancelled() {
            return release(is_leader, task).await.map_err(lease_err);
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
