//! The seed documents' samples are our compatibility test
//! (`docs/architecture.md#compatibility-with-fedstate`): each one deserializes into
//! our types, round-trips without losing a field, and is accepted by the CRD schema we ship
//! (`deploy/crds/`, structure and CEL rules alike); bad input is refused with a message that
//! names the field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use fedstate_api::{MongoDB, MultiCloudMongoDB};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[allow(
    clippy::panic,
    reason = "test helper (not a #[test] itself): a panic fails the calling test"
)]
fn load_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sample(name: &str) -> Value {
    load_yaml(&repo().join("deploy/samples/seed").join(name))
}

/// YAML `key:` with nothing after it is null; our types (like FedState's `omitempty`) do not
/// write nulls back, so compare without them.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

const MCM_SAMPLES: [&str; 3] = [
    "multicloudmongodb-full.yaml",
    "multicloudmongodb-minimal.yaml",
    "multicloudmongodb-with-status.yaml",
];
const MONGODB_SAMPLES: [&str; 2] = [
    "mongodb-single-cluster.yaml",
    "mongodb-member-with-status.yaml",
];

#[test]
fn multicloudmongodb_samples_round_trip_without_losing_a_field() {
    for name in MCM_SAMPLES {
        let original = sample(name);
        let typed: MultiCloudMongoDB =
            serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = serde_json::to_value(&typed).unwrap();
        pretty_assertions::assert_eq!(without_nulls(&original), back, "{name}");
    }
}

#[test]
fn mongodb_samples_round_trip_without_losing_a_field() {
    for name in MONGODB_SAMPLES {
        let original = sample(name);
        let typed: MongoDB =
            serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = serde_json::to_value(&typed).unwrap();
        pretty_assertions::assert_eq!(without_nulls(&original), back, "{name}");
    }
}

#[test]
fn samples_read_as_fedstate_meant_them() {
    let full: MultiCloudMongoDB =
        serde_json::from_value(sample("multicloudmongodb-full.yaml")).unwrap();
    assert_eq!(full.spec.replicaset, 5);
    assert_eq!(full.spec.image(), "mongo:3.6");
    assert_eq!(
        full.spec.scheduler_name(),
        "multicloud-middleware-scheduler"
    );
    assert_eq!(
        full.spec.storage.as_ref().unwrap().storage_class.as_deref(),
        Some("managed-nfs-storage")
    );
    let status: MultiCloudMongoDB =
        serde_json::from_value(sample("multicloudmongodb-with-status.yaml")).unwrap();
    let annotation = &status.metadata.annotations.as_ref().unwrap()["schedulerResult"];
    let placed =
        fedstate_api::SchedulerResult::parse_for(annotation, status.spec.replicaset, |_| true)
            .unwrap();
    assert_eq!(placed.summary(), "10-29-14-21:4,10-29-14-25:1");
    let st = status.status.unwrap();
    assert_eq!(st.state, Some(fedstate_api::v1alpha1::ServiceState::Health));
    assert_eq!(
        st.result[0].connect_addr_with_role.as_ref().unwrap()["10.29.5.103:38640"],
        "PRIMARY"
    );
    // An image older than 4.4 is accepted as an object but gets a clear message.
    let err = fedstate_api::v1alpha1::check_image("spec.imageSetting.image", full.spec.image())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("supported versions are 4.4 to 8.0")
    );
}

/// The committed copies are the seed's own samples, byte for byte (checked when `shared/` is there).
#[test]
fn sample_copies_match_the_seed_document() {
    let seeds = repo().join("../shared/seeds");
    let Some(seed) = std::fs::read_dir(&seeds).ok().and_then(|d| {
        d.filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("002_"))
    }) else {
        eprintln!("skipped: {} not present", seeds.display());
        return;
    };
    let text = std::fs::read_to_string(seed).unwrap();
    let blocks: Vec<String> = text
        .split("```yaml\n")
        .skip(1)
        .map(|b| {
            let body = b.split("```").next().unwrap();
            let indent = body
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            body.lines()
                .map(|l| l.get(indent..).unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        })
        .collect();
    let ours = [
        "multicloudmongodb-full.yaml",
        "mongodb-single-cluster.yaml",
        "multicloudmongodb-minimal.yaml",
        "multicloudmongodb-with-status.yaml",
        "mongodb-member-with-status.yaml",
    ];
    assert_eq!(blocks.len(), ours.len());
    for (block, name) in blocks.iter().zip(ours) {
        let copy = std::fs::read_to_string(repo().join("deploy/samples/seed").join(name)).unwrap();
        assert_eq!(
            serde_yaml::from_str::<Value>(block).unwrap(),
            serde_yaml::from_str::<Value>(&copy).unwrap(),
            "{name}"
        );
    }
}

// ---- the shipped CRD schemas ----

fn crd_schema(file: &str) -> Value {
    let crd = load_yaml(&repo().join("deploy/crds").join(file));
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Turn a Kubernetes structural schema into JSON Schema with the apiserver's semantics:
/// `nullable` allows null, int-or-string allows both, and unknown fields are errors where the
/// schema lists properties (kubectl applies with strict field validation), except under
/// `x-kubernetes-preserve-unknown-fields` and in `metadata` (which the apiserver checks itself).
fn as_json_schema(s: &Value) -> Value {
    let Value::Object(m) = s else {
        return s.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in m {
        match k.as_str() {
            "properties" => {
                let props = v.as_object().unwrap().iter().map(|(name, p)| {
                    let p = if name == "metadata" {
                        json!({"type": "object"})
                    } else {
                        as_json_schema(p)
                    };
                    (name.clone(), p)
                });
                out.insert(k.clone(), Value::Object(props.collect()));
            }
            "items" | "additionalProperties" if v.is_object() => {
                out.insert(k.clone(), as_json_schema(v));
            }
            "nullable" | "x-kubernetes-validations" | "description" | "default" => {}
            k if k.starts_with("x-kubernetes") => {}
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if m.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if m.contains_key("properties")
        && m.get("x-kubernetes-preserve-unknown-fields") != Some(&json!(true))
    {
        out.insert("additionalProperties".into(), json!(false));
    }
    if m.get("nullable") == Some(&json!(true)) {
        if let Some(t) = out.get("type").cloned() {
            let mut types = match t {
                Value::Array(a) => a,
                other => vec![other],
            };
            types.push(json!("null"));
            out.insert("type".into(), Value::Array(types));
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    Value::Object(out)
}

/// Everything the apiserver would say about `obj`: structural errors and CEL rule failures.
fn admission_errors(schema: &Value, obj: &Value) -> Vec<String> {
    // The apiserver itself serves apiVersion, kind and metadata on every object.
    let mut root = schema.clone();
    root["properties"]["apiVersion"] = json!({"type": "string"});
    root["properties"]["kind"] = json!({"type": "string"});
    root["properties"]["metadata"] = json!({"type": "object"});
    let structural = jsonschema::validator_for(&as_json_schema(&root))
        .expect("CRD schema compiles as JSON Schema");
    let mut errors: Vec<String> = structural
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if let Err(cel) = kube::core::cel::Validator::new().validate(schema, obj, None) {
        errors.extend(cel.iter().map(ToString::to_string));
    }
    errors
}

#[test]
fn generated_schemas_accept_every_seed_sample() {
    let mcm = crd_schema("middleware.fedstate.io_multicloudmongodbs.yaml");
    for name in MCM_SAMPLES {
        assert_eq!(
            admission_errors(&mcm, &sample(name)),
            Vec::<String>::new(),
            "{name}"
        );
    }
    let mdb = crd_schema("middleware.fedstate.io_mongodbs.yaml");
    for name in MONGODB_SAMPLES {
        assert_eq!(
            admission_errors(&mdb, &sample(name)),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

fn with(mut obj: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    obj.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert(key.to_owned(), value);
    obj
}

#[test]
fn schemas_refuse_bad_input_naming_the_field() {
    let mcm = crd_schema("middleware.fedstate.io_multicloudmongodbs.yaml");
    let minimal = sample("multicloudmongodb-minimal.yaml");
    let cases = [
        (
            with(minimal.clone(), "/spec/replicaset", json!(0)),
            "spec.replicaset must be between 1 and 50",
        ),
        (
            with(minimal.clone(), "/spec/replicaset", json!(51)),
            "spec.replicaset must be between 1 and 50",
        ),
        (
            with(minimal.clone(), "/spec/replicaset", json!("five")),
            "/spec/replicaset",
        ),
        (
            with(
                minimal.clone(),
                "/spec/auth",
                json!({"rootPasswd": "x", "rootPasswordSecretRef": {"name": "s"}}),
            ),
            "spec.auth: set either rootPasswd or rootPasswordSecretRef, not both",
        ),
        (
            with(
                minimal.clone(),
                "/spec/scheduler",
                json!({"schedulerMode": "Random"}),
            ),
            "/spec/scheduler/schedulerMode",
        ),
        (
            with(
                minimal.clone(),
                "/spec/scheduler",
                json!({"quorumPolicy": "Maybe"}),
            ),
            "/spec/scheduler/quorumPolicy",
        ),
        (
            with(minimal.clone(), "/spec/replicas", json!(3)),
            "'replicas' was unexpected",
        ),
        (
            with(
                minimal.clone(),
                "/spec/storage",
                json!({"storageSize": ["1Gi"]}),
            ),
            "/spec/storage/storageSize",
        ),
    ];
    for (obj, expected) in cases {
        let errors = admission_errors(&mcm, &obj);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected an error containing {expected:?}, got {errors:?}"
        );
    }
    let mut no_replicaset = minimal;
    no_replicaset["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicaset");
    let errors = admission_errors(&mcm, &no_replicaset);
    assert!(
        errors.iter().any(|e| e.contains("replicaset")),
        "{errors:?}"
    );

    let mdb = crd_schema("middleware.fedstate.io_mongodbs.yaml");
    let single = sample("mongodb-single-cluster.yaml");
    let cases = [
        (
            with(single.clone(), "/spec/members", json!(51)),
            "spec.members must be between 0 and 50",
        ),
        (
            with(
                single.clone(),
                "/spec/rootPasswordSecretRef",
                json!({"name": "s"}),
            ),
            "set either rootPassword or rootPasswordSecretRef, not both",
        ),
        (
            with(
                single.clone(),
                "/spec/memberRoles",
                json!([{"memberIndex": 0, "votes": 1, "priority": 1}, {"memberIndex": 1, "votes": 1, "priority": 1}]),
            ),
            "spec.memberRoles must list exactly spec.members entries",
        ),
        (
            with(
                single,
                "/spec/memberRoles",
                json!([{"memberIndex": 0, "votes": 2, "priority": 1}]),
            ),
            "/spec/memberRoles/0/votes",
        ),
    ];
    for (obj, expected) in cases {
        let errors = admission_errors(&mdb, &obj);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected an error containing {expected:?}, got {errors:?}"
        );
    }
}

/// FedState's defaults (`500mi`, `1gi`) were not quantities and crashed its operator; ours are,
/// and the apiserver applies them to an object that gives none.
#[test]
fn defaults_are_valid_quantities_and_apply() {
    let mcm = crd_schema("middleware.fedstate.io_multicloudmongodbs.yaml");
    let mut obj = sample("multicloudmongodb-minimal.yaml");
    obj["spec"].as_object_mut().unwrap().remove("resource");
    obj["spec"]["storage"]
        .as_object_mut()
        .unwrap()
        .remove("storageSize");
    let defaulted = kube::core::cel::apply_defaults(&mcm, &obj);
    let resource = &defaulted["spec"]["resource"];
    let quantities = [
        &resource["limits"]["cpu"],
        &resource["limits"]["memory"],
        &resource["requests"]["cpu"],
        &resource["requests"]["memory"],
        &defaulted["spec"]["storage"]["storageSize"],
    ];
    for q in quantities {
        let q = q
            .as_str()
            .unwrap_or_else(|| panic!("default missing in {defaulted}"));
        let split = q
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(q.len());
        let (number, suffix) = q.split_at(split);
        assert!(number.parse::<f64>().is_ok(), "{q} has no number");
        assert!(
            ["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"].contains(&suffix),
            "{q} has suffix {suffix:?}"
        );
    }
    let typed: MultiCloudMongoDB = serde_json::from_value(defaulted.clone()).unwrap();
    assert_eq!(
        typed.spec.resource.unwrap().requests.unwrap()["cpu"].0,
        "500m"
    );
    assert_eq!(admission_errors(&mcm, &defaulted), Vec::<String>::new());
}
