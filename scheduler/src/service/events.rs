//! Events off the critical path: a decision hands its events to a bounded queue and a background
//! task publishes them, so a slow or throttled events API never delays a placement. Events share
//! the client's budget (`--kube-api-qps`/`--kube-api-burst`) with the placements, and yield to
//! them: the task publishes only while no decision is in flight, so a backlog drains at the rate
//! of its binding writes and its events follow. When the queue is full an event is dropped and
//! counted (events are best-effort in Kubernetes too; client-go's broadcaster drops them the
//! same way).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Counter: events dropped because the publishing queue was full.
pub const EVENTS_DROPPED: &str = "fedstate_scheduler_events_dropped_total";

/// Events waiting to be published: two per decision of a 4,096-binding backlog.
const QUEUE: usize = 8192;

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
    /// A sink whose events `recorder` publishes from a background task, until `stop`.
    pub fn spawn(recorder: Recorder, stop: CancellationToken) -> Self {
        let (tx, mut rx) = mpsc::channel::<Note>(QUEUE);
        let deciding = Arc::new(Deciding::default());
        let waiting = deciding.clone();
        tokio::spawn(async move {
            loop {
                let note = tokio::select! {
                    _ = stop.cancelled() => break,
                    n = rx.recv() => match n { Some(n) => n, None => break },
                };
                // Placements first: wait until no decision is in flight.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = waiting.idle() => {}
                }
                let event = Event {
                    type_: note.kind,
                    reason: note.reason.to_string(),
                    note: Some(note.message),
                    action: "Scheduling".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&event, &note.regarding).await {
                    tracing::debug!(error = %e, reason = %note.reason, "cannot publish event");
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
