//! The pod revision of a member object: which of the `MongoDB` spec's fields reach the members'
//! pods, and one name for the values they have. The manager rolls a change of these fields out
//! one member cluster at a time; each cluster's agent reports, as `status.currentRevision`, the
//! revision every one of its members runs (`docs/mongodb.md#rolling-changes`). Both compute it
//! here, from the spec as JSON, so the names agree.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `MongoDB` spec fields (JSON names) whose change gives the members' StatefulSets a new pod
/// template, so the agent restarts the members. The mongod configuration is a mounted ConfigMap
/// that mongod reads only when it starts: `config` is pinned with the rest, and `configDigest`
/// (the manager's keyed digest of `config`, `customConfigRef` and that ConfigMap's content) is
/// what the agent puts on the pod template. `customConfigRef` itself is not pinned: only the
/// ConfigMap it names now is propagated, so a held cluster could not keep reading an older one;
/// its change reaches the pods through `configDigest`. `exporterLoginDigest` does the same for
/// a new monitor password (the exporter reads it from its environment, once).
pub const POD_FIELDS: [&str; 11] = [
    "image",
    "imagePullPolicy",
    "imagePullSecret",
    "resources",
    "metricsExporterSpec",
    "podSpec",
    "keyfileSecretRef",
    "rootPasswordSecretRef",
    "config",
    "configDigest",
    "exporterLoginDigest",
];

/// The annotation on each member StatefulSet (not on its pod template, so adding it restarts
/// nothing): the revision of the spec the StatefulSet was built from.
pub const SPEC_REVISION_ANNOTATION: &str = "middleware.fedstate.io/spec-revision";

/// The fields of `spec` (a member spec as JSON) that reach the pods; absent fields are left out.
pub fn pod_fields(spec: &Value) -> Map<String, Value> {
    POD_FIELDS
        .iter()
        .filter_map(|f| {
            let v = spec.get(*f)?;
            (!v.is_null()).then(|| ((*f).to_owned(), v.clone()))
        })
        .collect()
}

/// JSON with every object's keys sorted, whatever order the map kept them in.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(k) {
                    canonical(x, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `<name>-<10 hex digits>`, FedState's shape of a revision: the same for the same pod fields,
/// whatever their key order.
pub fn revision_of_fields(name: &str, fields: &Map<String, Value>) -> String {
    let mut text = String::new();
    canonical(&Value::Object(fields.clone()), &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{name}-{hex}")
}

/// The pod revision of a member spec (as JSON).
pub fn spec_revision(name: &str, spec: &Value) -> String {
    revision_of_fields(name, &pod_fields(spec))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::v1alpha1::MongoDBSpec;
    use serde_json::json;

    #[test]
    fn only_pod_fields_count_and_key_order_does_not() {
        let a = json!({"members": 2, "image": "mongo:7.0", "rsInit": true,
                       "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}});
        let b = json!({"resources": {"limits": {"memory": "1Gi", "cpu": "1"}}, "image": "mongo:7.0",
                       "members": 3, "memberRoles": [], "customConfigRef": "mine"});
        assert_eq!(spec_revision("db", &a), spec_revision("db", &b));
        let c =
            json!({"image": "mongo:8.0", "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}});
        assert_ne!(spec_revision("db", &a), spec_revision("db", &c));
        // The mongod configuration reaches the pods (at their restart) too.
        let mut d = a.clone();
        d["config"] = json!([{"name": "net.maxIncomingConnections", "value": "100"}]);
        assert_ne!(spec_revision("db", &a), spec_revision("db", &d));
        let mut e = a.clone();
        e["configDigest"] = json!("0123456789abcdef");
        assert_ne!(spec_revision("db", &a), spec_revision("db", &e));
        let mut f = a.clone();
        f["exporterLoginDigest"] = json!("0123456789abcdef");
        assert_ne!(spec_revision("db", &a), spec_revision("db", &f));
        assert!(spec_revision("db", &a).starts_with("db-"));
        assert_eq!(spec_revision("db", &a).len(), "db-".len() + 10);
    }

    #[test]
    fn a_typed_spec_and_its_json_round_trip_name_the_same_revision() {
        let spec: MongoDBSpec = serde_json::from_value(json!({
            "members": 1, "image": "mongo:7.0", "imagePullPolicy": "Always",
            "resources": {"requests": {"cpu": "500m"}}, "podSpec": {"nodeSelector": {"a": "b"}}
        }))
        .unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        let back: MongoDBSpec = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            spec_revision("x", &v),
            spec_revision("x", &serde_json::to_value(&back).unwrap())
        );
        assert_eq!(pod_fields(&v).len(), 4);
    }
}
