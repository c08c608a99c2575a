//! Events off the critical path: a decision hands its events to a bounded queue and a background
//! task publishes them, so a slow or throttled events API never delays a placement. Events share
//! the client's budget (`--kube-api-qps`/`--kube-api-burst`) with the placements, and yield to
//! them: the task publishes only while no decision is in flight, so a backlog drains at the rate
//! of its binding writes and its events follow. When the queue is full an event is dropped and
//! counted (events are best-effort in Kubernetes too; client-go's broadcaster drops them the
//! same way).

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
}

impl EventSink {
    /// A sink whose events `recorder` publishes from a background task, until `stop`.
    pub fn spawn(recorder: Recorder, stop: CancellationToken) -> Self {
        let (tx, mut rx) = mpsc::channel::<Note>(QUEUE);
        tokio::spawn(async move {
            loop {
                let note = tokio::select! {
                    _ = stop.cancelled() => break,
                    n = rx.recv() => match n { Some(n) => n, None => break },
                };
                // Placements first: wait until no decision is in flight.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = super::metrics::idle() => {}
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
        Self { tx }
    }

    /// A sink and the receiving end, for tests that check what would be published.
    pub fn capture() -> (Self, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self { tx }, rx)
    }

    pub fn send(&self, note: Note) {
        if self.tx.try_send(note).is_err() {
            metrics::counter!(EVENTS_DROPPED).increment(1);
        }
    }
}
