//! An apiserver for mock scenarios: a `kube::Client` whose requests never leave the process
//! (kube's `tower-test` mock service), every request recorded for assertions.
//!
//! Two ways to answer, one transport:
//! * [`scripted`]: a closure answers each request (the scheduler's scenarios, which assert the
//!   exact writes one reconcile makes against one given object);
//! * [`FakeApiserver`]: an in-memory store that answers GET, LIST (label selectors), POST,
//!   DELETE, server-side apply, merge patches and JSON patches the way the apiserver does for the
//!   parts our controllers use (the manager's scenarios, which run several reconciles against a
//!   world that changes in between).
//!
//! What it does not do, so a scenario cannot pass because of it: no watches, no admission, no
//! field ownership (server-side apply replaces the object's spec/data with the applied body),
//! no garbage collection, and `DELETE` removes an object at once even when it has finalizers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod store;

use std::pin::pin;
use std::sync::{Arc, Mutex};

use http::{Method, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

pub use json_patch::merge;
pub use store::FakeApiserver;

/// One request as the apiserver saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    /// The body as sent, for "this never appears anywhere" assertions.
    pub text: String,
}

impl Request {
    /// A write to a `/status` subresource.
    pub fn is_status(&self) -> bool {
        self.path.ends_with("/status")
    }
    /// An Event being recorded.
    pub fn is_event(&self) -> bool {
        self.path.contains("/events")
    }
    pub fn is_apply(&self) -> bool {
        self.content_type.contains("apply-patch")
    }
    pub fn is_merge_patch(&self) -> bool {
        self.content_type.contains("merge-patch")
    }
    pub fn is_json_patch(&self) -> bool {
        self.content_type.contains("json-patch") && !self.is_merge_patch()
    }
}

/// Every request a client made, in order.
#[derive(Clone, Debug, Default)]
pub struct RequestLog(Arc<Mutex<Vec<Request>>>);

impl RequestLog {
    pub fn all(&self) -> Vec<Request> {
        self.0.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
    fn push(&self, r: Request) {
        self.0.lock().unwrap().push(r);
    }
}

/// How a request is answered: status code and JSON body.
pub type Answer = dyn Fn(&Request) -> (u16, Value) + Send + Sync;

/// A client whose every request is recorded in the returned log and answered by `answer`.
pub fn scripted(answer: Arc<Answer>) -> (kube::Client, RequestLog) {
    let log = RequestLog::default();
    (serve(answer, log.clone()), log)
}

/// A `Status` failure body, as the apiserver sends with a 4xx/5xx code.
pub fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
           "reason": reason, "message": message})
}

/// 409 Conflict, as an update guarded by a stale `resourceVersion` gets.
pub fn conflict() -> (u16, Value) {
    (
        409,
        failure(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version and try again",
        ),
    )
}

fn serve(answer: Arc<Answer>, log: RequestLog) -> kube::Client {
    let (svc, handle) = tower_test::mock::pair::<http::Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let request = Request {
                method: parts.method,
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or("").to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                body: if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                },
                text,
            };
            let (code, value) = answer(&request);
            log.push(request);
            send.send_response(
                Response::builder()
                    .status(StatusCode::from_u16(code).unwrap())
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&value).unwrap()))
                    .unwrap(),
            );
        }
    });
    kube::Client::new(svc, "default")
}

#[cfg(test)]
mod tests;
