//! The one process skeleton every FedState binary runs: logs are set up by `main`, then
//! [`run`] installs the metrics recorder, builds the client, serves the admin endpoints, reaches
//! the apiserver (and the Lease), and runs the binary's work — while it leads, with leader
//! election — until SIGTERM.
//!
//! Readiness means "able to take over": a replica is ready once it has reached the apiserver and,
//! with leader election, read its Lease. A standby is therefore ready, so a rolling update of a
//! Deployment with several replicas completes. The work may report itself unready (for example
//! when it stopped with an error); each new term of a standby starts ready again.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::leader::{self, Elector, LeaderOptions};
use crate::{ClientError, CommonArgs};

/// What a binary tells the skeleton about itself.
#[derive(Clone, Copy, Debug)]
pub struct Component {
    /// The binary's name: default Lease name, `component` label of `fedstate_build_info`.
    pub name: &'static str,
    /// Registers HELP text and units of the binary's metrics (runs after the recorder is installed).
    pub describe_metrics: fn(),
}

/// What the work gets for one term.
#[derive(Clone)]
pub struct Worker {
    pub client: kube::Client,
    pub health: Health,
    /// Cancelled when the process stops (the work must return within [`leader::STOP_GRACE`]) or
    /// leadership is lost (the work is then dropped at once). Returning before that is a failure.
    pub stop: CancellationToken,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("health", &self.health)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

/// Why a process could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
    #[error("{component} stopped: {message}")]
    Work {
        component: &'static str,
        message: String,
    },
}

/// Run `work` under the skeleton until SIGTERM/Ctrl-C. An error of the work, or a return nobody
/// asked for, ends the process with an error (after the Lease is released and the admin server
/// has stopped), so the kubelet restarts it and a standby takes over. On a lost Lease the work is
/// dropped at once and the replica waits as a standby ([`leader`] says what is guaranteed).
pub async fn run<W, Fut, E>(
    component: Component,
    common: &CommonArgs,
    work: W,
) -> Result<(), ProcessError>
where
    W: Fn(Worker) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let stop = crate::shutdown::signal();
    let prometheus = admin::install_metrics_recorder()?;
    admin::describe_process_metrics();
    crate::watch::describe();
    (component.describe_metrics)();
    admin::build_info(component.name);
    let lease = if common.leader.enabled {
        let name = common
            .leader
            .resource_name
            .clone()
            .unwrap_or_else(|| component.name.to_owned());
        Some(
            LeaderOptions::new(&common.leader.resource_namespace, name).with_timing(
                common.leader.lease_duration,
                common.leader.renew_deadline,
                common.leader.retry_period,
            )?,
        )
    } else {
        None
    };
    let client = crate::client(common).await?;
    let health = Health::default();
    let (listener, addr) = admin::bind(common.admin_addr).await?;
    tracing::info!(%addr, component = component.name, version = env!("CARGO_PKG_VERSION"), "admin server listening");
    let admin_task = tokio::spawn(admin::serve(
        listener,
        health.clone(),
        Some(prometheus),
        stop.clone(),
    ));

    let failure = std::sync::Mutex::new(None::<String>);
    let term = |stop: CancellationToken| {
        let worker = Worker {
            client: client.clone(),
            health: health.clone(),
            stop: stop.clone(),
        };
        let (failure, health) = (&failure, health.clone());
        let fut = work(worker);
        async move {
            let result = fut.await;
            if let Some(message) = work_failure(result, stop.is_cancelled()) {
                tracing::error!(error = %message, component = component.name, "work stopped");
                health.set_ready(false);
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
            }
        }
    };
    let result = async {
        match lease {
            Some(options) => {
                let elector = tokio::select! {
                    e = connect_until_ok(&client, options, &stop) => e,
                    _ = stop.cancelled() => None,
                };
                let Some(elector) = elector else {
                    return Ok(());
                };
                health.set_ready(true);
                tracing::info!("reached the Lease; ready (standby until elected)");
                let after_term = || {
                    if failure.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
                        health.set_ready(true);
                    }
                };
                let stop_all = stop.clone();
                elector
                    .run(stop.clone(), &term, after_term)
                    .await
                    .inspect_err(|_| stop_all.cancel())
            }
            None => {
                let reached = tokio::select! {
                    r = reach_apiserver(&client, &stop) => r,
                    _ = stop.cancelled() => false,
                };
                if reached {
                    health.set_ready(true);
                    let work_done = term(stop.clone());
                    tokio::pin!(work_done);
                    tokio::select! {
                        biased;
                        () = stop.cancelled() => {
                            leader::stop_within(leader::STOP_GRACE, &mut work_done).await;
                        }
                        () = &mut work_done => {}
                    }
                }
                Ok(())
            }
        }
    }
    .await;
    stop.cancel();
    if let Ok(Err(e)) = admin_task.await {
        tracing::warn!(error = %e, "admin server");
    }
    // The work's own failure says more than the elector's "the work ended".
    if let Some(message) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(ProcessError::Work {
            component: component.name,
            message,
        });
    }
    result?;
    Ok(())
}

/// Why the work's return ends the process, if it does: an error, or a return nobody asked for
/// (a controller stream ended while the work was meant to run). A return after being told to
/// stop is normal.
fn work_failure<E: std::fmt::Display>(result: Result<(), E>, told_to_stop: bool) -> Option<String> {
    match result {
        Err(e) => Some(e.to_string()),
        Ok(()) if !told_to_stop => Some(
            "the work ended though nothing told it to stop (a watch or controller stream ended)"
                .into(),
        ),
        Ok(()) => None,
    }
}

/// Runs `main` on a multi-threaded tokio runtime and exits without waiting for stray blocking
/// tasks (a client library's) more than 5 s once `main` has returned: the process's own work has
/// stopped and its Lease is released by then.
pub fn block_on<F: Future>(main: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let out = runtime.block_on(main);
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(out)
}

/// Retry delays while the apiserver or the Lease cannot be reached at start-up.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(4))
}

async fn connect_until_ok(
    client: &kube::Client,
    options: LeaderOptions,
    stop: &CancellationToken,
) -> Option<Elector> {
    let mut attempt = 0;
    loop {
        match Elector::connect(client.clone(), options.clone()).await {
            Ok(e) => return Some(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the Lease yet; not ready, retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt)) => {}
            _ = stop.cancelled() => return None,
        }
        attempt += 1;
    }
}

async fn reach_apiserver(client: &kube::Client, stop: &CancellationToken) -> bool {
    let mut attempt = 0;
    loop {
        match client.apiserver_version().await {
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach the apiserver yet; not ready, retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt)) => {}
            _ = stop.cancelled() => return false,
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_that_returns_unasked_or_fails_ends_the_process() {
        let failed: Result<(), &str> = Err("watch gone");
        assert_eq!(work_failure(failed, false).as_deref(), Some("watch gone"));
        let failed: Result<(), &str> = Err("watch gone");
        assert_eq!(work_failure(failed, true).as_deref(), Some("watch gone"));
        let ended = work_failure(Ok::<(), &str>(()), false).unwrap_or_default();
        assert!(ended.contains("nothing told it to stop"), "{ended}");
        assert_eq!(
            work_failure(Ok::<(), &str>(()), true),
            None,
            "a stop asked for"
        );
    }
}
