//! Events off the critical path: a decision hands its events to a bounded queue and a background
//! task publishes them, so a slow or throttled events API never delays a placement. When the
//! queue is full an event is dropped and counted (events are best-effort in Kubernetes too).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Counter: events dropped because the publishing queue was full.
pub const EVENTS_DROPPED: &str = "fedstate_scheduler_events_dropped_total";

/// One event to publish.
#[derive(Clone, Debug)]
pub struct Note {
    pub regarding: ObjectReference,
    pub kind: EventType,
    pub reason: &'static str,
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
        let (tx, mut rx) = mpsc::channel::<Note>(1024);
        tokio::spawn(async move {
            loop {
                let note = tokio::select! {
                    _ = stop.cancelled() => break,
                    n = rx.recv() => match n { Some(n) => n, None => break },
                };
                let event = Event {
                    type_: note.kind,
                    reason: note.reason.to_owned(),
                    note: Some(note.message),
                    action: "Scheduling".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&event, &note.regarding).await {
                    tracing::debug!(error = %e, reason = note.reason, "cannot publish event");
                }
            }
        });
        Self { tx }
    }

    /// A sink and the receiving end, for tests that check what would be published.
    pub fn capture() -> (Self, mpsc::Receiver<Note>) {
        let (tx, rx) = mpsc::channel(1024);
        (Self { tx }, rx)
    }

    pub fn send(&self, note: Note) {
        if self.tx.try_send(note).is_err() {
            metrics::counter!(EVENTS_DROPPED).increment(1);
        }
    }
}
