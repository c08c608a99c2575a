//! A small in-memory Karmada apiserver behind kube's `tower-test` mock service: enough of GET,
//! LIST (label selectors), server-side apply (with NodePort allocation for Services), merge and
//! JSON patches, DELETE and Event creation to run the manager's reconcile against it, recording
//! every request for assertions.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub content_type: String,
    pub body: String,
}

#[derive(Default, Debug)]
pub struct State {
    /// (collection "group/version/plural", namespace, name) → object
    pub objects: BTreeMap<(String, String, String), Value>,
    pub requests: Vec<Seen>,
    next_node_port: i64,
}

#[derive(Clone, Default, Debug)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
}

/// Where a path points.
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Target {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (gv, rest) = if parts[0] == "api" {
        (parts[1].to_owned(), &parts[2..])
    } else {
        (format!("{}/{}", parts[1], parts[2]), &parts[3..])
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    Target {
        collection: format!("{gv}/{}", rest[0]),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else if bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn label_selector(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "labelSelector")
        .flat_map(|(_, v)| {
            percent_decode(v)
                .split(',')
                .filter_map(|p| p.split_once('=').map(|(a, b)| (a.to_owned(), b.to_owned())))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": reason})
}

impl Fake {
    /// A client whose requests this fake answers until the client is dropped.
    pub fn client(&self) -> kube::Client {
        let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            let mut handle = pin!(handle);
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect_bytes().await.unwrap();
                let (code, value) = fake.handle(
                    &parts.method,
                    parts.uri.path(),
                    parts.uri.query().unwrap_or(""),
                    parts
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .map(|v| v.to_str().unwrap().to_owned())
                        .unwrap_or_default(),
                    &bytes,
                );
                let resp = Response::builder()
                    .status(StatusCode::from_u16(code).unwrap())
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&value).unwrap()))
                    .unwrap();
                send.send_response(resp);
            }
        });
        kube::Client::new(svc, "default")
    }

    pub fn put(&self, collection: &str, obj: Value) {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        self.state
            .lock()
            .unwrap()
            .objects
            .insert((collection.to_owned(), ns, name), obj);
    }

    pub fn get(&self, collection: &str, ns: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(&(collection.to_owned(), ns.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn remove(&self, collection: &str, ns: &str, name: &str) {
        self.state.lock().unwrap().objects.remove(&(
            collection.to_owned(),
            ns.to_owned(),
            name.to_owned(),
        ));
    }

    pub fn list(&self, collection: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|((c, _, _), _)| c == collection)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    fn handle(
        &self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: String,
        body: &[u8],
    ) -> (u16, Value) {
        let mut st = self.state.lock().unwrap();
        st.requests.push(Seen {
            method: method.clone(),
            path: path.to_owned(),
            content_type: content_type.clone(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
        let t = parse_path(path);
        let ns = t.namespace.clone().unwrap_or_default();
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(body).unwrap()
        };
        match (method.clone(), &t.name) {
            (Method::GET, None) => {
                let sel = label_selector(query);
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((c, n, _), _)| {
                        *c == t.collection && t.namespace.as_ref().is_none_or(|x| x == n)
                    })
                    .map(|(_, v)| v.clone())
                    .filter(|v| {
                        sel.iter()
                            .all(|(k, val)| v["metadata"]["labels"][k].as_str() == Some(val))
                    })
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => {
                match st.objects.get(&(t.collection.clone(), ns, name.clone())) {
                    Some(v) => (200, v.clone()),
                    None => (404, status(404, "NotFound")),
                }
            }
            (Method::POST, _) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("generated-{}", st.requests.len()));
                let mut obj = body.clone();
                obj["metadata"]["name"] = json!(name);
                st.objects
                    .insert((t.collection.clone(), ns, name), obj.clone());
                (201, obj)
            }
            (Method::DELETE, Some(name)) => {
                match st.objects.remove(&(t.collection.clone(), ns, name.clone())) {
                    Some(_) => (
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    ),
                    None => (404, status(404, "NotFound")),
                }
            }
            (Method::PATCH, Some(name)) => {
                let key = (t.collection.clone(), ns.clone(), name.clone());
                let existing = st.objects.get(&key).cloned();
                let is_status = t.subresource.as_deref() == Some("status");
                let mut obj = match (&existing, content_type.as_str()) {
                    (None, ct) if ct.contains("apply-patch") && !is_status => {
                        let mut o = body.clone();
                        o["metadata"]["uid"] = json!(format!("uid-{name}"));
                        o["metadata"]["generation"] = json!(1);
                        o
                    }
                    (None, _) => return (404, status(404, "NotFound")),
                    (Some(e), _) => e.clone(),
                };
                if content_type.contains("apply-patch") {
                    if is_status {
                        obj["status"] = body["status"].clone();
                    } else if existing.is_some() {
                        let keep_meta = obj["metadata"].clone();
                        let old_ports = obj["spec"]["ports"].clone();
                        let status_before = obj.get("status").cloned();
                        obj = body.clone();
                        for k in [
                            "uid",
                            "generation",
                            "finalizers",
                            "deletionTimestamp",
                            "annotations",
                        ] {
                            if !keep_meta[k].is_null() && obj["metadata"][k].is_null() {
                                obj["metadata"][k] = keep_meta[k].clone();
                            }
                        }
                        if let Some(s) = status_before {
                            obj["status"] = s;
                        }
                        if t.collection == "v1/services"
                            && obj["spec"]["ports"][0]["nodePort"].is_null()
                        {
                            obj["spec"]["ports"][0]["nodePort"] = old_ports[0]["nodePort"].clone();
                        }
                    }
                    if t.collection == "v1/services"
                        && obj["spec"]["ports"][0]["nodePort"].is_null()
                    {
                        st.next_node_port += 1;
                        obj["spec"]["ports"][0]["nodePort"] = json!(30000 + st.next_node_port);
                    }
                } else if content_type.contains("merge-patch") {
                    merge(&mut obj, &body);
                } else if content_type.contains("json-patch") {
                    for op in body.as_array().unwrap() {
                        let p = op["path"].as_str().unwrap();
                        match op["op"].as_str().unwrap() {
                            "test" => {}
                            "add" if p == "/metadata/finalizers" => {
                                obj["metadata"]["finalizers"] = op["value"].clone()
                            }
                            "add" if p == "/metadata/finalizers/-" => {
                                if obj["metadata"]["finalizers"].is_null() {
                                    obj["metadata"]["finalizers"] = json!([]);
                                }
                                obj["metadata"]["finalizers"]
                                    .as_array_mut()
                                    .unwrap()
                                    .push(op["value"].clone());
                            }
                            "remove" => {
                                let idx: usize = p.rsplit('/').next().unwrap().parse().unwrap();
                                obj["metadata"]["finalizers"]
                                    .as_array_mut()
                                    .unwrap()
                                    .remove(idx);
                            }
                            other => panic!("json-patch op {other} {p} not supported by the fake"),
                        }
                    }
                }
                st.objects.insert(key, obj.clone());
                (200, obj)
            }
            (m, n) => panic!("fake apiserver: {m} {path} (name {n:?}) not supported"),
        }
    }
}
