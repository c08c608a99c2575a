//! Mock-apiserver scenarios: the agent's reconcile against an in-memory member apiserver
//! (`fedstate-fake-apiserver`), checking what a user would see: the Secrets and member objects
//! that get created, the status, and what is *not* touched when the input is bad. The replica
//! set is out of reach here (nothing listens on the members' addresses): its path has its own
//! tiers (`tests/sim_replset.rs`, the e2e suites).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use fedstate_api::MongoDB;
use fedstate_fake_apiserver::{FakeApiserver as Fake, Request};
use fedstate_mongo_agent::controller::{Context, FINALIZER, Settings, reconcile};
use fedstate_mongo_agent::resources::MemberAddressing;
use http::Method;
use serde_json::{Value, json};

const NS: &str = "demo";
const NAME: &str = "mongodb-sample";
const MONGODBS: &str = "middleware.fedstate.io/v1alpha1/mongodbs";
const SECRETS: &str = "v1/secrets";
const CONFIGMAPS: &str = "v1/configmaps";
const SERVICES: &str = "v1/services";
const STATEFULSETS: &str = "apps/v1/statefulsets";
const SEED: &str = include_str!("../../deploy/samples/seed/mongodb-single-cluster.yaml");

/// The seed's single-cluster sample as a user applies it, with a supported image.
fn seed(members: i32) -> Value {
    let mut v: Value = serde_yaml::from_str(SEED).unwrap();
    v["metadata"]["namespace"] = json!(NS);
    v["metadata"]["uid"] = json!("mdb-uid");
    v["metadata"]["generation"] = json!(1);
    v["metadata"]["finalizers"] = json!([FINALIZER]);
    v["spec"]["image"] = json!("mongo:7.0");
    v["spec"]["members"] = json!(members);
    v
}

struct Cluster {
    fake: Fake,
    ctx: Arc<Context>,
}

fn cluster(object: Value) -> Cluster {
    let fake = Fake::default();
    fake.put(MONGODBS, object);
    let ctx = Arc::new(Context::new(
        fake.client(),
        Settings {
            // Nothing listens there: the replica-set step finds no member and waits.
            addressing: MemberAddressing::NodePort {
                vip: "127.0.42.1".into(),
            },
            cluster_name: Some("member1".into()),
            namespace: None,
            mongo_timeout: Duration::from_millis(300),
        },
    ));
    Cluster { fake, ctx }
}

impl Cluster {
    async fn reconcile(&self) -> Result<(), String> {
        let obj: MongoDB =
            serde_json::from_value(self.fake.get(MONGODBS, NS, NAME).unwrap()).unwrap();
        reconcile(Arc::new(obj), self.ctx.clone())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
    fn object(&self) -> Value {
        self.fake.get(MONGODBS, NS, NAME).unwrap()
    }
    fn condition(&self, type_: &str) -> Value {
        self.object()["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or(Value::Null)
    }
    fn names(&self, collection: &str) -> Vec<String> {
        self.fake
            .list(collection)
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }
    /// Writes other than the object's status and Events.
    fn object_writes(&self) -> Vec<Request> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method != Method::GET && !r.is_status() && !r.is_event())
            .collect()
    }
    fn secret_value(&self, name: &str, key: &str) -> Option<String> {
        use base64::Engine;
        let s = self.fake.get(SECRETS, NS, name)?;
        let b64 = s["data"][key].as_str()?;
        Some(
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap(),
        )
    }
}

/// A single-cluster object gets a valid keyfile and its passwords (the root one from
/// `spec.rootPassword`), the mongod ConfigMap, one Service and StatefulSet per member, and a
/// status saying what it waits for. The keyfile is made once; no password is in any request
/// but the credentials Secret's.
#[tokio::test]
async fn a_single_cluster_object_gets_its_secrets_members_and_a_status() {
    let c = cluster(seed(3));
    c.reconcile().await.unwrap();
    assert_eq!(
        c.names(SECRETS),
        ["mongodb-sample-credentials", "mongodb-sample-keyfile"]
    );
    let keyfile = c.secret_value("mongodb-sample-keyfile", "keyfile").unwrap();
    fedstate_api::secrets::check_keyfile(&keyfile).unwrap();
    assert_eq!(
        c.secret_value("mongodb-sample-credentials", "password")
            .as_deref(),
        Some("123456")
    );
    let admin = c
        .secret_value("mongodb-sample-credentials", "clusterAdminPassword")
        .unwrap();
    let monitor = c
        .secret_value("mongodb-sample-credentials", "clusterMonitorPassword")
        .unwrap();
    assert_eq!(c.names(CONFIGMAPS), ["mongodb-sample-mongod-config"]);
    assert_eq!(c.names(SERVICES).len(), 3);
    assert_eq!(c.names(STATEFULSETS).len(), 3);
    assert_eq!(c.object()["status"]["state"], "Reconciling");
    assert_eq!(c.condition("ScalingInProgress")["status"], "True");
    // Again: the NodePorts are known now, the members are not Running: still waiting, nothing
    // regenerated.
    c.fake.clear_requests();
    c.reconcile().await.unwrap();
    assert_eq!(
        c.secret_value("mongodb-sample-keyfile", "keyfile"),
        Some(keyfile)
    );
    assert_eq!(
        c.secret_value("mongodb-sample-credentials", "clusterAdminPassword"),
        Some(admin.clone())
    );
    assert!(
        !c.fake
            .requests()
            .iter()
            .any(|r| r.path.contains("/secrets") && r.method != Method::GET),
        "the Secrets are complete: not written again"
    );
    let message = c.condition("ScalingInProgress")["message"].to_string();
    // Not initiated while its members' pods are not Ready: each is named.
    assert!(
        message.contains("not initiating the replica set")
            && message.contains("(an own member whose pod is not Ready) does not answer"),
        "{message}"
    );
    for r in c.fake.requests() {
        for p in ["123456", admin.as_str(), monitor.as_str()] {
            assert!(!r.text.contains(p), "a password in {} {}", r.method, r.path);
        }
    }
}

/// `spec.pause: true`: the status says so and nothing else is written.
#[tokio::test]
async fn a_paused_object_changes_nothing_but_its_status() {
    let mut obj = seed(3);
    obj["spec"]["pause"] = json!(true);
    let c = cluster(obj);
    c.reconcile().await.unwrap();
    assert!(c.object_writes().is_empty(), "{:?}", c.object_writes());
    assert_eq!(c.object()["status"]["state"], "Pause");
    assert_eq!(c.condition("ServerReady")["reason"], "Paused");
}

/// A user-given keyfile mongod would refuse (a `-` is not base64) is reported on the object,
/// naming the field and what to put there, and no member rolls out with it.
#[tokio::test]
async fn a_user_keyfile_mongod_would_refuse_is_reported_and_nothing_rolls_out() {
    let mut obj = seed(3);
    obj["spec"]["keyfileSecretRef"] = json!("my-keyfile");
    let c = cluster(obj);
    use base64::Engine;
    c.fake.put(
        SECRETS,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "my-keyfile", "namespace": NS},
               "data": {"keyfile": base64::engine::general_purpose::STANDARD.encode("not-a-base64-key")}}),
    );
    c.reconcile().await.unwrap();
    assert!(c.names(STATEFULSETS).is_empty());
    assert!(c.object_writes().is_empty(), "{:?}", c.object_writes());
    let ready = c.condition("ServerReady");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("spec.keyfileSecretRef") && message.contains("base64"),
        "{message}"
    );
    assert!(
        !message.contains("not-a-base64-key"),
        "the key is never echoed"
    );
    assert_eq!(c.object()["status"]["state"], "Error");
}

/// A credentials Secret of our name that FedState did not create (single-cluster mode) is
/// neither written into nor given our owner reference (which would have Kubernetes delete it
/// with the object): the object says which Secret and what to do. Failed before: the agent
/// server-side applied its keys, labels and owner reference over it.
#[tokio::test]
async fn a_credentials_secret_we_did_not_create_is_not_taken_over() {
    let c = cluster(seed(3));
    let theirs = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "mongodb-sample-credentials", "namespace": NS, "labels": {"team": "db"}},
        "data": {"password": "dXNlcg=="}});
    c.fake.put(SECRETS, theirs);
    // As stored (with its resourceVersion): a write of any kind would change it.
    let theirs = c
        .fake
        .get(SECRETS, NS, "mongodb-sample-credentials")
        .unwrap();
    c.reconcile().await.unwrap();
    assert!(c.object_writes().is_empty(), "{:?}", c.object_writes());
    assert_eq!(
        c.fake
            .get(SECRETS, NS, "mongodb-sample-credentials")
            .unwrap(),
        theirs
    );
    let ready = c.condition("ServerReady");
    assert_eq!(ready["reason"], "InvalidSpec");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("Secret demo/mongodb-sample-credentials")
            && message.contains("kubectl -n demo label secret mongodb-sample-credentials"),
        "{message}"
    );
}

/// A `customConfigRef` whose `mongod.yaml` is not a YAML mapping is reported on the object
/// (not only in the agent's log), and nothing is applied.
#[tokio::test]
async fn a_custom_config_that_is_not_a_mapping_is_reported() {
    let c = cluster(seed(1));
    c.fake.put(
        CONFIGMAPS,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "mongo-operator-mongo-default-config", "namespace": NS},
               "data": {"mongod.yaml": "- not a map"}}),
    );
    c.reconcile().await.unwrap();
    assert!(c.object_writes().is_empty(), "{:?}", c.object_writes());
    let ready = c.condition("ServerReady");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("spec.customConfigRef"),
        "{ready}"
    );
}

/// A federated object (a host list from the manager): the agent writes no Secret and no
/// Service (the manager propagates them), only the ConfigMap and its members' StatefulSets,
/// and says it waits for the host list.
#[tokio::test]
async fn a_federated_object_leaves_secrets_and_services_to_the_manager() {
    let mut obj = seed(2);
    obj["spec"]["memberConfigRef"] = json!("mongodb-sample-hostconf");
    obj["spec"]["memberRoles"] = json!([
        {"memberIndex": 0, "votes": 1, "priority": 2},
        {"memberIndex": 3, "votes": 1, "priority": 1},
    ]);
    let c = cluster(obj);
    c.reconcile().await.unwrap();
    assert!(c.names(SECRETS).is_empty());
    assert!(c.names(SERVICES).is_empty());
    // The members' exporters need the manager's credentials Secret: no member before it.
    assert!(c.names(STATEFULSETS).is_empty());
    let message = c.condition("ScalingInProgress")["message"].to_string();
    assert!(message.contains("mongodb-sample-hostconf"), "{message}");
    c.fake.put(SECRETS, credentials("Monitor-From-Manager-1"));
    c.reconcile().await.unwrap();
    assert_eq!(c.names(SECRETS), ["mongodb-sample-credentials"]);
    assert_eq!(
        c.names(STATEFULSETS),
        ["mongodb-sample-mongodb-0", "mongodb-sample-mongodb-3"]
    );
}

/// The manager's credentials Secret, as it propagates it.
fn credentials(monitor: &str) -> Value {
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": "mongodb-sample-credentials", "namespace": NS},
           "data": {"password": b64("Root-Password-1"),
                    "clusterAdminPassword": b64("Admin-Password-1"),
                    "clusterMonitorPassword": b64(monitor)}})
}

/// The exporter's login digest on a member's pod template.
fn exporter_login(c: &Cluster, sts: &str) -> Value {
    c.fake.get(STATEFULSETS, NS, sts).unwrap()["spec"]["template"]["metadata"]["annotations"]
        ["middleware.fedstate.io/exporter-login"]
        .clone()
}

/// A new clusterMonitor password in the credentials Secret: the exporter reads it only when
/// its container starts (an env var from the Secret), so the members' pod templates change and
/// the agent's rolling restart recreates them; no password appears in a StatefulSet.
#[tokio::test]
async fn a_rotated_monitor_password_changes_the_members_pod_templates() {
    let c = cluster(seed(2));
    c.reconcile().await.unwrap();
    let old = c
        .secret_value("mongodb-sample-credentials", "clusterMonitorPassword")
        .unwrap();
    let before = exporter_login(&c, "mongodb-sample-mongodb-0");
    assert!(before.is_string(), "{before}");
    // The user rotates the password in the Secret.
    let mut secret = c
        .fake
        .get(SECRETS, NS, "mongodb-sample-credentials")
        .unwrap();
    use base64::Engine;
    secret["data"]["clusterMonitorPassword"] =
        json!(base64::engine::general_purpose::STANDARD.encode("Rotated-Monitor-Password-2"));
    c.fake.put(SECRETS, secret);
    c.fake.clear_requests();
    c.reconcile().await.unwrap();
    for sts in ["mongodb-sample-mongodb-0", "mongodb-sample-mongodb-1"] {
        let after = exporter_login(&c, sts);
        assert!(after.is_string(), "{after}");
        assert_ne!(after, before, "{sts}: the exporter must be recreated");
        let text = c.fake.get(STATEFULSETS, NS, sts).unwrap().to_string();
        for p in [old.as_str(), "Rotated-Monitor-Password-2"] {
            assert!(!text.contains(p), "a password in {sts}");
        }
    }
    assert_eq!(
        c.secret_value("mongodb-sample-credentials", "clusterMonitorPassword")
            .as_deref(),
        Some("Rotated-Monitor-Password-2"),
        "the agent keeps the user's password"
    );
    // Unchanged since: the template stays (no restart on every reconcile).
    let now = exporter_login(&c, "mongodb-sample-mongodb-0");
    c.reconcile().await.unwrap();
    assert_eq!(exporter_login(&c, "mongodb-sample-mongodb-0"), now);
}

/// `spec.rootPassword` (compatibility) changed: the credentials Secret follows (the agent then
/// rotates root with `updateUser`); the other passwords stay.
#[tokio::test]
async fn a_changed_root_password_reaches_the_credentials_secret_only() {
    let c = cluster(seed(1));
    c.reconcile().await.unwrap();
    let admin = c.secret_value("mongodb-sample-credentials", "clusterAdminPassword");
    let mut obj = c.object();
    obj["spec"]["rootPassword"] = json!("Another-Root-1");
    c.fake.put(MONGODBS, obj);
    c.fake.clear_requests();
    c.reconcile().await.unwrap();
    assert_eq!(
        c.secret_value("mongodb-sample-credentials", "password")
            .as_deref(),
        Some("Another-Root-1")
    );
    assert_eq!(
        c.secret_value("mongodb-sample-credentials", "clusterAdminPassword"),
        admin
    );
    for r in c.fake.requests() {
        if !r.path.contains("/secrets/") {
            assert!(
                !r.text.contains("Another-Root-1"),
                "{} {}",
                r.method,
                r.path
            );
        }
    }
}

/// An image of another major version rolls only once the members' versions and FCV are known
/// (they are not here: nothing answers): the StatefulSets keep the image they have and
/// `VersionUpgrade` says what the agent waits for.
#[tokio::test]
async fn an_image_of_another_major_waits_for_the_members_versions() {
    let mut obj = seed(1);
    obj["spec"]["image"] = json!("mongo:6.0");
    let c = cluster(obj);
    c.reconcile().await.unwrap();
    let image = |c: &Cluster| {
        c.fake
            .get(STATEFULSETS, NS, "mongodb-sample-mongodb-0")
            .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
            .clone()
    };
    assert_eq!(image(&c), "mongo:6.0");
    let mut obj = c.object();
    obj["spec"]["image"] = json!("mongo:7.0");
    c.fake.put(MONGODBS, obj);
    c.reconcile().await.unwrap();
    assert_eq!(image(&c), "mongo:6.0");
    let upgrade = c.condition("VersionUpgrade");
    assert_eq!(upgrade["status"], "True");
    assert!(
        upgrade["message"]
            .as_str()
            .unwrap()
            .contains("waiting for the members"),
        "{upgrade}"
    );
}

/// A status computed from a stale view of the object is refused instead of replacing a newer
/// one. What the install suite met after member2's apiserver restarted: while the agent's
/// watch of MongoDBs relisted, a reconcile read the object as it was before the agent recorded
/// the manager's teardown mark (`TeardownMarked`), found the host list gone, and its status
/// write replaced the conditions, mark included; the deleted object then waited for its
/// members to leave a set that nobody was left to change, and kept its finalizer for ever.
/// Now the write carries the resourceVersion it was computed from: the apiserver answers 409,
/// the record stays, and the next reconcile (of the object as it is) releases the finalizer.
#[tokio::test]
async fn a_status_from_a_stale_view_does_not_erase_the_teardown_record() {
    let c = cluster(seed(1));
    let stale: MongoDB = serde_json::from_value(c.object()).unwrap();
    // Since then: the mark was recorded, and the manager deleted the object.
    let mut now = c.object();
    now["status"] = json!({"conditions": [{
        "type": "TeardownMarked", "status": "True", "reason": "WholeSetTeardown",
        "message": "the MultiCloudMongoDB is being deleted with every member",
        "lastTransitionTime": "2026-12-03T17:11:09Z"}]});
    c.fake.put(MONGODBS, now);
    let e = reconcile(Arc::new(stale), c.ctx.clone())
        .await
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(e.contains("modified"), "a conflict: {e}");
    assert_eq!(c.condition("TeardownMarked")["status"], "True");

    let mut deleted = c.object();
    deleted["metadata"]["deletionTimestamp"] = json!("2026-12-03T17:11:10Z");
    c.fake.put(MONGODBS, deleted);
    c.reconcile().await.unwrap();
    assert_eq!(
        c.object()["metadata"]["finalizers"],
        json!([]),
        "the recorded mark releases the finalizer"
    );
}
