//! Watch health. A watch that drops (the apiserver restarts, a proxy cuts an idle stream, the
//! resourceVersion is too old) reports one error and the watcher reconnects under backoff: each
//! such error is counted in `fedstate_watch_errors_total{watch, error}` and logged as a warning,
//! so a watch that keeps reconnecting shows on a dashboard instead of only in debug logs.

use std::time::Duration;

use kube::runtime::controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;

/// The backoff of our watches: 0.5 s doubling to at most [`WatchBackoff::MAX`] (5 s), back to
/// the first delay as soon as an event arrives. kube-runtime's default (client-go's: 0.8 s
/// doubling to 30 s, reset only after 120 s without an error) was too slow to recover: after an
/// apiserver restart, every watch's reconnect meets a `410 Expired` (the restarted apiserver's
/// watch cache starts later than the old resourceVersion) and waited out a 30 s step before its
/// relist, so a controller heard nothing for a minute and more while its objects were edited.
/// Our controllers have a handful of watches each; retrying them every 5 s while an apiserver is
/// down costs it nothing.
///
/// A kube-runtime `Controller` also applies one backoff to all its trigger watches merged: the
/// errors of different watches then wait for each other (five watches meeting a `410` after a
/// restart, five steps in a row). There, [`WatchBackoff::shared`] (at most 1 s): each watch
/// that has its own backoff keeps it, the shared one only spaces the errors out.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl WatchBackoff {
    /// The first delay of a single watch.
    pub const MIN: Duration = Duration::from_millis(500);
    /// The longest delay of a single watch.
    pub const MAX: Duration = Duration::from_secs(5);
    /// The longest delay of a controller's merged trigger watches.
    pub const SHARED_MAX: Duration = Duration::from_secs(1);

    /// For a controller's merged trigger watches (`Controller::trigger_backoff`).
    pub fn shared() -> Self {
        Self {
            first: Duration::from_millis(250),
            max: Self::SHARED_MAX,
            next: Duration::from_millis(250),
        }
    }
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            first: Self::MIN,
            max: Self::MAX,
            next: Self::MIN,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (now * 2).min(self.max);
        Some(now)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = self.first;
    }
}

/// `fedstate_watch_errors_total{watch, error}`: watch errors, each followed by a reconnect.
pub const WATCH_ERRORS: &str = "fedstate_watch_errors_total";

/// Register the HELP text; call after the recorder is installed.
pub fn describe() {
    metrics::describe_counter!(
        WATCH_ERRORS,
        "Watch errors by watch and kind; the watcher reconnects after each (under backoff)"
    );
}

/// Export the counters of the watch named `watch` at 0, so a dashboard or an alert sees the series
/// before the first error (Prometheus cannot take a rate of a series that does not exist yet).
pub fn register(watch: &'static str) {
    for kind in ERROR_KINDS {
        metrics::counter!(WATCH_ERRORS, "watch" => watch, "error" => kind).increment(0);
    }
}

/// Every value of the `error` label.
const ERROR_KINDS: [&str; 5] = [
    "initial_list_failed",
    "watch_start_failed",
    "watch_error",
    "watch_failed",
    "no_resource_version",
];

/// The `error` label: which step of the list-then-watch failed.
pub fn error_kind(e: &watcher::Error) -> &'static str {
    match e {
        watcher::Error::InitialListFailed(_) => "initial_list_failed",
        watcher::Error::WatchStartFailed(_) => "watch_start_failed",
        watcher::Error::WatchError(_) => "watch_error",
        watcher::Error::WatchFailed(_) => "watch_failed",
        watcher::Error::NoResourceVersion => "no_resource_version",
    }
}

/// Count and log one error of the watch named `watch` (a resource such as `clusters`, or a
/// controller's name for the watches it merges).
pub fn record(watch: &'static str, e: &watcher::Error) {
    metrics::counter!(WATCH_ERRORS, "watch" => watch, "error" => error_kind(e)).increment(1);
    tracing::warn!(watch, error = %e, "watch error; reconnecting");
}

/// What a controller's `run` stream yields, handled alike by every controller: its watches'
/// errors are counted under `controller` ([`record`]); a failed reconcile was already logged and
/// counted by the reconciler's error policy, so it is only traced here.
pub fn controller_result<K, E>(
    controller: &'static str,
    result: &Result<(ObjectRef<K>, controller::Action), controller::Error<E, watcher::Error>>,
) where
    K: kube::Resource,
    E: std::error::Error + 'static,
{
    match result {
        Err(controller::Error::QueueError(e)) => record(controller, e),
        Err(e) => tracing::debug!(controller, error = %e, "reconcile"),
        Ok(_) => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn watch_backoff_doubles_to_five_seconds_and_resets_at_once() {
        let mut b = WatchBackoff::default();
        let secs: Vec<f32> = b.by_ref().take(6).map(|d| d.as_secs_f32()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]);
        b.reset();
        assert_eq!(b.next(), Some(WatchBackoff::MIN));
        let shared: Vec<f32> = WatchBackoff::shared()
            .take(4)
            .map(|d| d.as_secs_f32())
            .collect();
        assert_eq!(shared, [0.25, 0.5, 1.0, 1.0]);
    }

    fn watch_errors(
        snapshot: Vec<(
            metrics_util::CompositeKey,
            Option<metrics::Unit>,
            Option<metrics::SharedString>,
            DebugValue,
        )>,
    ) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = snapshot
            .into_iter()
            .filter(|(k, ..)| k.key().name() == WATCH_ERRORS)
            .map(|(k, _, _, v)| {
                let labels: Vec<String> = k
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = v else {
                    panic!("{WATCH_ERRORS} is a counter")
                };
                (labels.join(","), n)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn queue_errors_are_counted_by_kind_and_reconcile_errors_are_not() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            type R = Result<
                (ObjectRef<ConfigMap>, controller::Action),
                controller::Error<std::io::Error, watcher::Error>,
            >;
            let dropped: R = Err(controller::Error::QueueError(
                watcher::Error::NoResourceVersion,
            ));
            controller_result("manager", &dropped);
            controller_result("manager", &dropped);
            let failed: R = Err(controller::Error::ReconcilerFailed(
                std::io::Error::other("conflict"),
                Box::new(ObjectRef::<ConfigMap>::new("a").erase()),
            ));
            controller_result("manager", &failed);
            let ok: R = Ok((ObjectRef::new("a"), controller::Action::await_change()));
            controller_result("manager", &ok);
            record("clusters", &watcher::Error::NoResourceVersion);
            register("agent");
        });
        assert_eq!(
            watch_errors(snapshotter.snapshot().into_vec()),
            [
                ("watch=agent,error=initial_list_failed".to_owned(), 0),
                ("watch=agent,error=no_resource_version".to_owned(), 0),
                ("watch=agent,error=watch_error".to_owned(), 0),
                ("watch=agent,error=watch_failed".to_owned(), 0),
                ("watch=agent,error=watch_start_failed".to_owned(), 0),
                ("watch=clusters,error=no_resource_version".to_owned(), 1),
                ("watch=manager,error=no_resource_version".to_owned(), 2),
            ]
        );
        for kind in ERROR_KINDS {
            assert!(
                [
                    watcher::Error::InitialListFailed(kube::Error::LinesCodecMaxLineLengthExceeded),
                    watcher::Error::WatchStartFailed(kube::Error::LinesCodecMaxLineLengthExceeded),
                    watcher::Error::WatchError(Box::default()),
                    watcher::Error::WatchFailed(kube::Error::LinesCodecMaxLineLengthExceeded),
                    watcher::Error::NoResourceVersion,
                ]
                .iter()
                .any(|e| error_kind(e) == kind),
                "{kind} is a kind error_kind returns"
            );
        }
    }

    /// A dashboard sees the series before the first error: the Prometheus exporter renders the
    /// registered counters at 0.
    #[test]
    fn registered_watches_are_exported_at_zero() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || register("clusters"));
        let text = handle.render();
        assert!(
            text.contains(
                r#"fedstate_watch_errors_total{watch="clusters",error="watch_failed"} 0"#
            ),
            "{text}"
        );
    }
}
