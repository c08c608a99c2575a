//! The fake behaves like the apiserver where our controllers depend on it.

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::*;

fn service(name: &str, instance: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "db", "labels": {"app.kubernetes.io/instance": instance}},
        "spec": {"type": "NodePort", "ports": [{"port": 27017}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn apply_creates_allocates_a_node_port_once_and_lists_by_label() {
    let fake = FakeApiserver::default();
    let api: Api<Service> = Api::namespaced(fake.client(), "db");
    let pp = PatchParams::apply("test").force();
    let first = api
        .patch("a", &pp, &Patch::Apply(service("a", "x")))
        .await
        .unwrap();
    let port = first.spec.unwrap().ports.unwrap()[0].node_port;
    assert!(port.is_some());
    let again = api
        .patch("a", &pp, &Patch::Apply(service("a", "x")))
        .await
        .unwrap();
    assert_eq!(again.spec.unwrap().ports.unwrap()[0].node_port, port);
    api.patch("b", &pp, &Patch::Apply(service("b", "y")))
        .await
        .unwrap();
    let listed = api
        .list(&ListParams::default().labels("app.kubernetes.io/instance=y"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(fake.list("v1/services").len(), 2);
    let verbs: Vec<bool> = fake.requests().iter().map(Request::is_apply).collect();
    assert_eq!(verbs, [true, true, true, false], "three applies, one list");
}

#[tokio::test]
async fn json_patches_are_all_or_nothing_and_test_their_preconditions() {
    let fake = FakeApiserver::default();
    fake.put(
        "v1/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "db"}}),
    );
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "db");
    // kube's finalizer helper on an object without finalizers.
    let add: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
    ]))
    .unwrap();
    let patched = api
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(add))
        .await
        .unwrap();
    assert_eq!(patched.metadata.finalizers, Some(vec!["f".to_owned()]));
    // A failed test changes nothing.
    let stale: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "other"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    let err = api
        .patch("c", &PatchParams::default(), &Patch::<()>::Json(stale))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422),
        "{err}"
    );
    assert_eq!(
        fake.get("v1/configmaps", "db", "c").unwrap()["metadata"]["finalizers"],
        json!(["f"])
    );
}

#[tokio::test]
async fn a_scripted_apiserver_answers_and_records() {
    let (client, log) = scripted(Arc::new(|_: &Request| conflict()));
    let api: Api<ConfigMap> = Api::namespaced(client, "db");
    let err = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "v"}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );
    let seen = log.all();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].is_merge_patch());
    assert_eq!(seen[0].path, "/api/v1/namespaces/db/configmaps/c");
    assert_eq!(seen[0].body["data"]["k"], "v");
}

/// A selector the fake cannot evaluate is a 400 naming the term (it used to panic the test's
/// apiserver task), and a decoded `==` term filters as `=`.
#[tokio::test]
async fn a_selector_it_cannot_evaluate_is_a_bad_request_not_a_panic() {
    let fake = FakeApiserver::default();
    let api: Api<Service> = Api::namespaced(fake.client(), "db");
    let pp = PatchParams::apply("test").force();
    api.patch("a", &pp, &Patch::Apply(service("a", "x")))
        .await
        .unwrap();
    for selector in ["app.kubernetes.io/instance!=x", "env in (a,b)", "tier"] {
        let err = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap_err();
        match err {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 400, "{selector}");
                assert!(
                    status.message.contains("equality terms"),
                    "{}",
                    status.message
                );
            }
            other => panic!("{selector}: {other}"),
        }
    }
    let listed = api
        .list(&ListParams::default().labels("app.kubernetes.io/instance==x"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
}

/// The apiserver's optimistic concurrency, which the agent's status writes rely on: every
/// change gives the object a new `resourceVersion`, a patch naming another one is refused with
/// 409 and changes nothing, and a patch that changes nothing keeps the version.
#[tokio::test]
async fn a_patch_naming_a_stale_resource_version_is_refused() {
    let fake = FakeApiserver::default();
    fake.put(
        "v1/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "db"}}),
    );
    let api: Api<ConfigMap> = Api::namespaced(fake.client(), "db");
    let first = api
        .get("c")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let pp = PatchParams::default();
    let changed = api
        .patch(
            "c",
            &pp,
            &Patch::Merge(json!({"metadata": {"resourceVersion": first}, "data": {"k": "1"}})),
        )
        .await
        .unwrap();
    let second = changed.metadata.resource_version.unwrap();
    assert_ne!(second, first);
    let err = api
        .patch(
            "c",
            &pp,
            &Patch::Merge(json!({"metadata": {"resourceVersion": first}, "data": {"k": "2"}})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err}"
    );
    let same = api
        .patch("c", &pp, &Patch::Merge(json!({"data": {"k": "1"}})))
        .await
        .unwrap();
    assert_eq!(
        same.data.unwrap()["k"],
        "1",
        "the refused patch changed nothing"
    );
    assert_eq!(
        same.metadata.resource_version.unwrap(),
        second,
        "a no-op keeps the version"
    );
}
