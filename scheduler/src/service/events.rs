//! Events off the critical path: a decision hands its events to a bounded queue and a background
//! task publishes them, so a slow or throttled events API never delays a placement. Events share
//! the client's budget (`--kube-api-qps`/`--kube-api-burst`) with the placements, and yield to
//! them: the task publishes only while no decision is in flight, so a backlog drains at the rate
//! of its binding writes and its events follow. When the queue is full an event is dropped and
//! counted (events are best-effort in Kubernetes too; client-go's broadcaster drops them the
//! same way).
//!
//! Each event is one `create` of an `events.k8s.io/v1` Event, as kube's `Recorder` writes it
//! (same name scheme and fields), without the Recorder's cache: it keeps every event for six
//! minutes to count repeats into a series, and scans all of them on each publish. A scheduler's
//! events are about a different binding each time, so there are no repeats to count, and at
//! fleet rates the cache would be the largest thing in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::runtime::events::{EventType, Reporter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Counter: events dropped because the publishing queue was full.
pub const EVENTS_DROPPED: &str = "fedstate_scheduler_events_dropped_total";

/// Events waiting to be published: two per decision of a 4,096-binding backlog.
const QUEUE: usize = 8192;

/// Events being published at once.
const PUBLISHING: usize = 4;

/// One event to publish.
#[derive(Clone, Debug)]
pub struct Note {
    pub regarding: ObjectReference,
    pub kind: EventType,
    pub reason: std::borrow::Cow<'static, str>,
    pub message: String,
}

/// Where decisions send their events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<Note>,
    deciding: Arc<Deciding>,
}

/// Decisions in flight: what the client's budget serves first.
#[derive(Debug, Default)]
struct Deciding {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Deciding {
    /// Returns once no decision is in flight (at once if none is).
    async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A decision in flight, for as long as it lives ([`EventSink::deciding`]).
#[derive(Debug)]
pub struct DecidingGuard(Arc<Deciding>);

impl Drop for DecidingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl EventSink {
    /// A sink whose events are published with `client` as `reporter`'s, from a background task,
    /// until `stop`.
    pub fn spawn(client: kube::Client, reporter: Reporter, stop: CancellationToken) -> Self {
        let (tx, mut rx) = mpsc::channel::<Note>(QUEUE);
        let deciding = Arc::new(Deciding::default());
        let waiting = deciding.clone();
        let reporter = Arc::new(reporter);
        tokio::spawn(async move {
            let mut publishing = tokio::task::JoinSet::new();
            loop {
                let note = tokio::select! {
                    _ = stop.cancelled() => return publishing.abort_all(),
                    n = rx.recv() => match n { Some(n) => n, None => break },
                };
                // Placements first: wait until no decision is in flight.
                tokio::select! {
                    _ = stop.cancelled() => return publishing.abort_all(),
                    _ = waiting.idle() => {}
                }
                while publishing.len() >= PUBLISHING {
                    publishing.join_next().await;
                }
                let (client, reporter) = (client.clone(), reporter.clone());
                publishing.spawn(async move {
                    let event = event(&note, &reporter, jiff::Timestamp::now());
                    let ns = event.metadata.namespace.clone().unwrap_or_default();
                    if let Err(e) = Api::<Event>::namespaced(client, &ns)
                        .create(&PostParams::default(), &event)
                        .await
                    {
                        tracing::debug!(error = %e, reason = %note.reason, "cannot publish event");
                    }
                });
            }
            // Every sender is gone: publish what was queued, unless stopped meanwhile.
            tokio::select! {
                _ = stop.cancelled() => publishing.abort_all(),
                _ = async { while publishing.join_next().await.is_some() {} } => {}
            }
        });
        Self { tx, deciding }
    }

    /// A sink and the receiving end, for tests that check what would be published.
    pub fn capture() -> (Self, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Self {
                tx,
                deciding: Arc::default(),
            },
            rx,
        )
    }

    /// Marks a decision in flight until the guard is dropped: events wait for none to run.
    pub fn deciding(&self) -> DecidingGuard {
        self.deciding.count.fetch_add(1, Ordering::SeqCst);
        DecidingGuard(self.deciding.clone())
    }

    pub fn send(&self, note: Note) {
        if self.tx.try_send(note).is_err() {
            metrics::counter!(EVENTS_DROPPED).increment(1);
        }
    }
}

/// The Event kube's `Recorder` would create for `note` (action `Scheduling`).
fn event(note: &Note, reporter: &Reporter, now: jiff::Timestamp) -> Event {
    let name = note
        .regarding
        .name
        .as_deref()
        .unwrap_or(&reporter.controller);
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            // Cluster-scoped objects' events go to `default`, as the Recorder puts them.
            namespace: Some(
                note.regarding
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".to_owned()),
            ),
            ..ObjectMeta::default()
        },
        action: Some("Scheduling".into()),
        reason: Some(note.reason.to_string()),
        note: Some(note.message.clone()),
        event_time: Some(MicroTime(now)),
        regarding: Some(note.regarding.clone()),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(
            reporter
                .instance
                .clone()
                .unwrap_or_else(|| reporter.controller.clone()),
        ),
        type_: Some(
            match note.kind {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .into(),
        ),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn events_are_written_as_kubes_recorder_writes_them() {
        let note = Note {
            regarding: ObjectReference {
                kind: Some("ResourceBinding".into()),
                namespace: Some("web".into()),
                name: Some("web-deployment".into()),
                ..ObjectReference::default()
            },
            kind: EventType::Normal,
            reason: "ScheduleBindingSucceed".into(),
            message: "Binding has been scheduled successfully.".into(),
        };
        let reporter = Reporter {
            controller: "multicloud-middleware-scheduler".into(),
            instance: None,
        };
        let now = jiff::Timestamp::from_second(1_900_000_000).unwrap_or_default();
        let e = event(&note, &reporter, now);
        assert_eq!(
            e.metadata.name.as_deref(),
            Some(&*format!("web-deployment.{:x}", now.as_nanosecond()))
        );
        assert_eq!(e.metadata.namespace.as_deref(), Some("web"));
        assert_eq!(e.reason.as_deref(), Some("ScheduleBindingSucceed"));
        assert_eq!(e.type_.as_deref(), Some("Normal"));
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("multicloud-middleware-scheduler")
        );
        assert_eq!(
            e.reporting_instance.as_deref(),
            Some("multicloud-middleware-scheduler")
        );
        assert_eq!(e.event_time, Some(MicroTime(now)));
        let cluster_scoped = Note {
            regarding: ObjectReference {
                name: Some("crb".into()),
                ..ObjectReference::default()
            },
            ..note
        };
        assert_eq!(
            event(&cluster_scoped, &reporter, now)
                .metadata
                .namespace
                .as_deref(),
            Some("default")
        );
    }

    #[tokio::test]
    async fn idle_waits_for_the_decisions_in_flight() {
        let (sink, _rx) = EventSink::capture();
        let first = sink.deciding();
        let second = sink.deciding();
        let deciding = sink.deciding.clone();
        let waiter = tokio::spawn(async move { deciding.idle().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "two decisions in flight");
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one decision in flight");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("idle once the decisions ended")
            .expect("no panic");
    }
}
