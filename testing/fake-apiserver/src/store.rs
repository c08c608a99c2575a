//! The stateful fake: objects by (collection, namespace, name), where a collection is
//! `"<group>/<version>/<plural>"` (`"v1/<plural>"` for the core group), e.g.
//! `"v1/services"` or `"policy.karmada.io/v1alpha1/propagationpolicies"`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::Method;
use serde_json::{Value, json};

use crate::{Request, RequestLog, failure, serve};

type Key = (String, String, String);

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    next_node_port: i64,
    /// The last `resourceVersion` given out: every write that changes an object gets the next.
    resource_version: u64,
}

impl State {
    /// Give `obj` the next `resourceVersion`, as the apiserver does on every write that
    /// changes an object.
    fn stamp(&mut self, obj: &mut Value) {
        self.resource_version += 1;
        obj["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
    }
}

/// The apiserver's optimistic concurrency: a patch or apply whose body names a
/// `resourceVersion` is refused with 409 Conflict unless it is the stored object's.
fn stale(existing: &Value, body: &Value) -> bool {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(rv) => existing["metadata"]["resourceVersion"].as_str() != Some(rv),
        None => false,
    }
}

/// An in-memory apiserver. Clone it freely: clones share the store and the request log.
#[derive(Clone, Debug, Default)]
pub struct FakeApiserver {
    state: Arc<Mutex<State>>,
    log: RequestLog,
}

/// Where a request path points.
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

/// `labelSelector=a=b,c==d` (equality terms only). Anything else — a set-based or `!=` term, a
/// term without a value — is refused with a 400 naming the term, as the apiserver answers a
/// selector it cannot parse, rather than filtering wrongly; the query is decoded as a form
/// (`%xx`, `+`), an undecodable `%` sequence kept as written.
fn label_selector(query: &str) -> Result<Vec<(String, String)>, String> {
    let mut terms = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "labelSelector" {
            continue;
        }
        for term in value.split(',').filter(|t| !t.is_empty()) {
            match term.split_once('=') {
                Some((k, v)) if !k.is_empty() && !k.ends_with('!') => {
                    let v = v.strip_prefix('=').unwrap_or(v);
                    terms.push((k.to_owned(), v.to_owned()));
                }
                _ => {
                    return Err(format!(
                        "unable to parse requirement {term:?}: this fake apiserver supports equality terms (key=value) only"
                    ));
                }
            }
        }
    }
    Ok(terms)
}

/// A JSON patch as the apiserver applies it: all or nothing, and a `test` of `null` passes on
/// a missing path (kube's finalizer helper relies on that for objects without finalizers).
fn json_patch(obj: &mut Value, ops: &Value) -> Result<(), String> {
    let ops: Vec<Value> = ops
        .as_array()
        .ok_or("a JSON patch is an array")?
        .iter()
        .filter(|op| {
            let path = op["path"].as_str().unwrap_or_default();
            !(op["op"] == "test" && op["value"].is_null() && obj.pointer(path).is_none())
        })
        .cloned()
        .collect();
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).map_err(|e| e.to_string())?;
    json_patch::patch(obj, &patch).map_err(|e| e.to_string())
}

impl FakeApiserver {
    /// A client whose requests this fake answers (for as long as the client lives).
    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        serve(
            Arc::new(move |r: &Request| fake.handle(r)),
            self.log.clone(),
        )
    }

    /// Store an object as if someone else had written it (a user, Karmada, an agent).
    pub fn put(&self, collection: &str, obj: Value) {
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        let mut obj = obj;
        let mut st = self.state.lock().unwrap();
        st.stamp(&mut obj);
        st.objects.insert((collection.to_owned(), ns, name), obj);
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

    /// Every object of a collection, in every namespace.
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

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.all()
    }

    pub fn clear_requests(&self) {
        self.log.clear();
    }

    fn handle(&self, r: &Request) -> (u16, Value) {
        let mut st = self.state.lock().unwrap();
        let t = parse_path(&r.path);
        let ns = t.namespace.clone().unwrap_or_default();
        match (&r.method, &t.name) {
            (&Method::GET, None) => {
                let sel = match label_selector(&r.query) {
                    Ok(sel) => sel,
                    Err(message) => return (400, failure(400, "BadRequest", &message)),
                };
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
                    json!({"apiVersion": "v1", "kind": "List",
                           "metadata": {"resourceVersion": st.resource_version.to_string()},
                           "items": items}),
                )
            }
            (&Method::GET, Some(name)) => {
                match st.objects.get(&(t.collection.clone(), ns, name.clone())) {
                    Some(v) => (200, v.clone()),
                    None => (404, failure(404, "NotFound", "not found")),
                }
            }
            (&Method::POST, _) => {
                let name = r.body["metadata"]["name"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("generated-{}", st.objects.len()));
                let key = (t.collection.clone(), ns, name.clone());
                if st.objects.contains_key(&key) {
                    return (409, failure(409, "AlreadyExists", "already exists"));
                }
                let mut obj = r.body.clone();
                obj["metadata"]["name"] = json!(name);
                st.stamp(&mut obj);
                st.objects.insert(key, obj.clone());
                (201, obj)
            }
            (&Method::DELETE, Some(name)) => {
                match st.objects.remove(&(t.collection.clone(), ns, name.clone())) {
                    Some(_) => (
                        200,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
                    ),
                    None => (404, failure(404, "NotFound", "not found")),
                }
            }
            (&Method::PATCH, Some(name)) => {
                let key = (t.collection.clone(), ns, name.clone());
                let existing = st.objects.get(&key).cloned();
                let is_status = t.subresource.as_deref() == Some("status");
                let mut obj = match &existing {
                    None if r.is_apply() && !is_status => {
                        let mut o = r.body.clone();
                        o["metadata"]["uid"] = json!(format!("uid-{name}"));
                        o["metadata"]["generation"] = json!(1);
                        o
                    }
                    None => return (404, failure(404, "NotFound", "not found")),
                    Some(e) if stale(e, &r.body) => return crate::conflict(),
                    Some(e) => e.clone(),
                };
                if r.is_apply() {
                    if is_status {
                        obj["status"] = r.body["status"].clone();
                    } else if existing.is_some() {
                        obj = reapplied(&obj, &r.body, &t.collection);
                    }
                    if t.collection == "v1/services"
                        && obj["spec"]["ports"][0]["nodePort"].is_null()
                    {
                        // The NodePort allocator: a port once given stays (see `reapplied`).
                        st.next_node_port += 1;
                        obj["spec"]["ports"][0]["nodePort"] = json!(30000 + st.next_node_port);
                    }
                } else if r.is_merge_patch() {
                    crate::merge(&mut obj, &r.body);
                } else if r.is_json_patch() {
                    if let Err(e) = json_patch(&mut obj, &r.body) {
                        return (422, failure(422, "Invalid", &e));
                    }
                } else {
                    panic!("fake apiserver: PATCH {} as {:?}", r.path, r.content_type);
                }
                // A patch that changes nothing keeps the object's resourceVersion.
                match &existing {
                    Some(e) if *e == obj => {}
                    _ => st.stamp(&mut obj),
                }
                st.objects.insert(key, obj.clone());
                (200, obj)
            }
            (m, n) => panic!("fake apiserver: {m} {} (name {n:?}) not supported", r.path),
        }
    }
}

/// Server-side apply over an existing object: the applied body, keeping what the server and
/// other writers own (uid, generation, finalizers, deletion, annotations, status, NodePort).
fn reapplied(old: &Value, body: &Value, collection: &str) -> Value {
    let mut obj = body.clone();
    for k in [
        "uid",
        "resourceVersion",
        "generation",
        "finalizers",
        "deletionTimestamp",
        "annotations",
    ] {
        if !old["metadata"][k].is_null() && obj["metadata"][k].is_null() {
            obj["metadata"][k] = old["metadata"][k].clone();
        }
    }
    if let Some(s) = old.get("status") {
        obj["status"] = s.clone();
    }
    if collection == "v1/services" && obj["spec"]["ports"][0]["nodePort"].is_null() {
        obj["spec"]["ports"][0]["nodePort"] = old["spec"]["ports"][0]["nodePort"].clone();
    }
    obj
}

#[cfg(test)]
mod selector_tests {
    use super::label_selector;

    /// A query kube never sends (a `%` without two hex digits) used to panic the decoder.
    #[test]
    fn an_undecodable_percent_is_kept_as_written() {
        assert_eq!(
            label_selector("labelSelector=a%3Db%zz,c%3D%2").unwrap(),
            vec![
                ("a".to_owned(), "b%zz".to_owned()),
                ("c".to_owned(), "%2".to_owned())
            ]
        );
        assert_eq!(
            label_selector("limit=5&labelSelector=k+1%3Dv").unwrap(),
            vec![("k 1".to_owned(), "v".to_owned())]
        );
    }
}
