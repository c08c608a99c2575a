//! Mock-apiserver scenarios: the manager's reconcile against an in-memory Karmada apiserver
//! (`fedstate-fake-apiserver`), checking what a user would see: the objects that get created, the
//! conditions and events, and what is *not* touched when the input is bad.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use base64::Engine;
use fedstate_api::karmada::Cluster;
use fedstate_api::{MultiCloudMongoDB, names};
use fedstate_fake_apiserver::FakeApiserver as Fake;
use fedstate_manager::controller::{Context, FINALIZER, Options, reconcile};
use fedstate_manager::mongodb::MongoDb;
use fedstate_manager::triggers::ClusterTrigger;
use http::Method;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use serde_json::{Value, json};

const NS: &str = "demo";
const NAME: &str = "multicloudmongodb-sample";
const MCM: &str = "middleware.fedstate.io/v1alpha1/multicloudmongodbs";
const MONGODB: &str = "middleware.fedstate.io/v1alpha1/mongodbs";
const SERVICES: &str = "v1/services";
const CONFIGMAPS: &str = "v1/configmaps";
const SECRETS: &str = "v1/secrets";
const PPS: &str = "policy.karmada.io/v1alpha1/propagationpolicies";
const OPS: &str = "policy.karmada.io/v1alpha1/overridepolicies";
const RBS: &str = "work.karmada.io/v1alpha2/resourcebindings";
const WORKS: &str = "work.karmada.io/v1alpha1/works";
const EVENTS: &str = "events.k8s.io/v1/events";
const SEED: &str = include_str!("../../deploy/samples/seed/multicloudmongodb-full.yaml");
const PLAN: &str = r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":2,"votes":2,"priority":2},{"cluster":"member2","replicaset":2,"votes":2,"priority":1},{"cluster":"member3","replicaset":1,"votes":1,"priority":1}],"generation":1}"#;

fn cluster(i: u32, ready: bool) -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": format!("member{i}"), "labels": {"vip": format!("127.0.1.{i}")}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
            "reason": "x", "message": "x", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    }))
    .unwrap()
}

/// The seed sample as a user applies it, with a supported image and the scheduler's annotation.
fn seed_object(image: &str, annotation: Option<&str>) -> Value {
    let mut v: Value = serde_yaml::from_str(SEED).unwrap();
    v["metadata"]["namespace"] = json!(NS);
    v["metadata"]["uid"] = json!("mcm-uid");
    v["metadata"]["generation"] = json!(1);
    v["metadata"]["finalizers"] = json!([FINALIZER]);
    v["spec"]["imageSetting"]["image"] = json!(image);
    if let Some(a) = annotation {
        v["metadata"]["annotations"] = json!({ names::SCHEDULER_RESULT_ANNOTATION: a });
    }
    v
}

struct World {
    fake: Fake,
    ctx: Arc<Context>,
    /// The Cluster cache, as the reflector would fill it.
    clusters: std::sync::Mutex<reflector::store::Writer<Cluster>>,
}

fn world(clusters: &[(u32, bool)]) -> World {
    let fake = Fake::default();
    let (store, mut writer) = reflector::store::<Cluster>();
    for (i, ready) in clusters {
        writer.apply_watcher_event(&watcher::Event::Apply(cluster(*i, *ready)));
    }
    let client = fake.client();
    let ctx = Arc::new(Context::new(client, store, Options::default()));
    World {
        fake,
        ctx,
        clusters: std::sync::Mutex::new(writer),
    }
}

impl World {
    /// A Cluster appears or changes in the cache.
    fn cluster_event(&self, c: Cluster) {
        self.clusters
            .lock()
            .unwrap()
            .apply_watcher_event(&watcher::Event::Apply(c));
    }

    /// The user deletes the object: the apiserver sets its deletionTimestamp (our finalizer
    /// keeps it).
    fn mark_deleted(&self) {
        let mut obj = self.fake.get(MCM, NS, NAME).unwrap();
        obj["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        self.fake.put(MCM, obj);
    }

    fn object(&self) -> MultiCloudMongoDB {
        serde_json::from_value(self.fake.get(MCM, NS, NAME).unwrap()).unwrap()
    }

    async fn reconcile(&self) -> Result<(), String> {
        let obj: MultiCloudMongoDB =
            serde_json::from_value(self.fake.get(MCM, NS, NAME).unwrap()).unwrap();
        reconcile(Arc::new(obj), self.ctx.clone())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn status(&self) -> Value {
        self.fake.get(MCM, NS, NAME).unwrap()["status"].clone()
    }

    fn condition(&self, t: &str) -> Value {
        self.status()["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn applies(&self) -> Vec<String> {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method == Method::PATCH && !r.path.ends_with("/status"))
            .map(|r| r.path.clone())
            .collect()
    }

    fn events(&self) -> Vec<Value> {
        self.fake.list(EVENTS)
    }

    /// Karmada creates the binding once the template's policy matches it.
    fn karmada_creates_binding(&self) {
        self.fake.put(
            RBS,
            json!({"apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
              "metadata": {"name": format!("{NAME}-mongodb"), "namespace": NS, "generation": 1},
              "spec": {"resource": {"apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
                                    "name": NAME, "namespace": NS}, "replicas": 5}}),
        );
    }

    fn hosts(&self) -> Vec<String> {
        let cm = self
            .fake
            .get(CONFIGMAPS, NS, &format!("{NAME}-hostconf"))
            .unwrap();
        let list: Vec<Value> =
            serde_json::from_str(cm["data"]["hostconf.json"].as_str().unwrap()).unwrap();
        list.iter()
            .map(|h| h["host"].as_str().unwrap().to_owned())
            .collect()
    }

    /// What the members would report: a healthy set of exactly `hosts`.
    fn members_report(&self, hosts: &[String], clusters: &[&str]) {
        let mut rb = self.fake.get(RBS, NS, &format!("{NAME}-mongodb")).unwrap();
        let replset: Vec<Value> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                json!({"_id": i, "name": h, "health": 1, "state": if i == 0 {1} else {2},
                "stateStr": if i == 0 {"PRIMARY"} else {"SECONDARY"}})
            })
            .collect();
        rb["status"]["aggregatedStatus"] = json!(
            clusters
                .iter()
                .map(
                    |c| json!({"clusterName": c, "applied": true, "health": "Healthy",
                "status": {"state": "Running", "replset": replset, "currentInfo": {"members": 1}}})
                )
                .collect::<Vec<_>>()
        );
        self.fake.put(RBS, rb);
    }
}

#[tokio::test]
async fn the_seed_sample_as_written_is_refused_with_a_condition_and_nothing_applied() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:3.6", Some(PLAN)));
    w.reconcile().await.unwrap();
    let c = w.condition("SpecValid");
    assert_eq!(c["status"], "False");
    let msg = c["message"].as_str().unwrap();
    assert!(msg.contains("spec.imageSetting.image"), "{msg}");
    assert!(msg.contains("4.4 to 8.0"), "{msg}");
    assert_eq!(w.condition("ServerReady")["reason"], "UnsupportedImage");
    assert!(w.applies().is_empty(), "nothing applied: {:?}", w.applies());
    let ev = w.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["type"], "Warning");
    assert_eq!(ev[0]["reason"], "UnsupportedImage");
}

#[tokio::test]
async fn bad_annotations_name_the_problem_and_change_nothing() {
    for (annotation, expect) in [
        ("{not json", "schedulerResult annotation is not valid"),
        (
            r#"{"ClusterWithReplicaset":[{"cluster":"member9","replicaset":5}]}"#,
            "names cluster \"member9\", which is not a Karmada member cluster",
        ),
        (
            r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":4}]}"#,
            "places 4 data members but spec.replicaset is 5",
        ),
        (
            r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":5}],"generation":0}"#,
            "computed for generation 0; waiting for the scheduler to place generation 1",
        ),
    ] {
        let w = world(&[(1, true), (2, true), (3, true)]);
        w.fake.put(MCM, seed_object("mongo:7.0", Some(annotation)));
        w.reconcile().await.unwrap();
        let c = w.condition("ServerReady");
        assert_eq!(c["status"], "False");
        assert!(
            c["message"].as_str().unwrap().contains(expect),
            "{annotation}: {c}"
        );
        assert!(w.applies().is_empty(), "{annotation}: {:?}", w.applies());
    }
}

#[tokio::test]
async fn a_cluster_joining_clears_invalid_scheduler_result_and_a_status_refresh_triggers_nothing() {
    // member3 is not known yet (it joins later, or the cache missed it): the placement is blocked.
    let w = world(&[(1, true), (2, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    let c = w.condition("ServerReady");
    assert_eq!(c["reason"], "InvalidSchedulerResult", "{c}");
    assert!(w.applies().is_empty());

    let trigger = ClusterTrigger::default();
    let (objects, mut objects_writer) = reflector::store::<MultiCloudMongoDB>();
    objects_writer.apply_watcher_event(&watcher::Event::Apply(w.object()));
    let affected = || trigger.affected(&MongoDb, &w.ctx.clusters, &objects);
    affected(); // first sight of member1 and member2
    w.cluster_event(cluster(3, true));
    assert_eq!(affected(), [ObjectRef::new(NAME).within(NS)]);
    w.reconcile().await.unwrap();
    let c = w.condition("ServerReady");
    assert_ne!(c["reason"], "InvalidSchedulerResult", "stale: {c}");
    assert_eq!(w.condition("SpecValid")["status"], "True");
    assert!(!w.applies().is_empty(), "the placement is applied");

    // Karmada refreshing member3's status (capacity, heartbeat) concerns nobody.
    objects_writer.apply_watcher_event(&watcher::Event::Apply(w.object()));
    let mut refreshed = cluster(3, true);
    refreshed.status.as_mut().unwrap().resource_summary = Some(Default::default());
    w.cluster_event(refreshed);
    assert!(affected().is_empty());
    // member3 losing readiness concerns the object placed there.
    w.cluster_event(cluster(3, false));
    assert_eq!(affected(), [ObjectRef::new(NAME).within(NS)]);
}

#[tokio::test]
async fn without_a_placement_the_manager_waits() {
    let w = world(&[(1, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", None));
    w.reconcile().await.unwrap();
    let c = w.condition("ServerReady");
    assert_eq!(c["reason"], "WaitingForPlacement");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("multicloud-middleware-scheduler")
    );
    assert!(w.applies().is_empty());
}

#[tokio::test]
async fn a_placed_object_becomes_members_services_host_list_and_policies() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();

    // The template carries the spec, by reference for secrets.
    let t = w.fake.get(MONGODB, NS, NAME).unwrap();
    assert_eq!(t["spec"]["image"], "mongo:7.0");
    assert_eq!(
        t["spec"]["persistence"]["storageClassName"],
        "managed-nfs-storage"
    );
    assert_eq!(t["metadata"]["ownerReferences"][0]["uid"], "mcm-uid");
    // Five NodePort Services, the host list names each at its cluster's VIP.
    let svcs = w.fake.list(SERVICES);
    assert_eq!(svcs.len(), 5);
    let hosts = w.hosts();
    assert_eq!(hosts.len(), 5);
    for s in &svcs {
        let port = s["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        let cluster = s["metadata"]["labels"]["middleware.fedstate.io/cluster"]
            .as_str()
            .unwrap();
        let vip = format!("127.0.1.{}", cluster.trim_start_matches("member"));
        assert!(hosts.contains(&format!("{vip}:{port}")), "{hosts:?}");
    }
    // Policies: the template (scheduled by us), shared objects, one per cluster for Services.
    let pps: Vec<String> = w
        .fake
        .list(PPS)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pps.len(), 5, "{pps:?}");
    assert_eq!(
        w.fake.get(PPS, NS, NAME).unwrap()["spec"]["schedulerName"],
        "fedstate-manager"
    );
    assert_eq!(
        w.fake.get(OPS, NS, NAME).unwrap()["spec"]["overrideRules"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Secrets exist; the status says where things stand.
    assert!(
        w.fake
            .get(SECRETS, NS, &format!("{NAME}-keyfile"))
            .is_some()
    );
    assert!(
        w.fake
            .get(SECRETS, NS, &format!("{NAME}-credentials"))
            .is_some()
    );
    assert_eq!(w.condition("SpecValid")["status"], "True");
    assert_eq!(w.condition("ServerReady")["status"], "False");
    assert_eq!(
        w.status()["externalAddr"]
            .as_str()
            .unwrap()
            .split(',')
            .count(),
        5
    );

    // Karmada creates the binding; the manager writes exactly the planned members per cluster.
    w.karmada_creates_binding();
    w.reconcile().await.unwrap();
    let rb = w.fake.get(RBS, NS, &format!("{NAME}-mongodb")).unwrap();
    assert_eq!(
        rb["spec"]["clusters"],
        json!([{"name": "member1", "replicas": 2}, {"name": "member2", "replicas": 2}, {"name": "member3", "replicas": 1}])
    );
    assert_eq!(rb["status"]["conditions"][0]["type"], "Scheduled");
    assert!(w.events().iter().any(|e| e["reason"] == "PlacementApplied"));

    // The members report a healthy set: Health, FedState's topology per cluster.
    w.members_report(&hosts, &["member1", "member2", "member3"]);
    w.fake.clear_requests();
    w.reconcile().await.unwrap();
    let st = w.status();
    assert_eq!(st["state"], "Health");
    assert_eq!(w.condition("ServerReady")["status"], "True");
    assert_eq!(st["result"][0]["cluster"], "member1");
    assert_eq!(st["result"][0]["replicasetSpec"], 2);
    assert_eq!(st["result"][0]["connectAddrWithRole"][&hosts[0]], "PRIMARY");
    assert_eq!(st["observedGeneration"], 1);
    // Secrets are generated once: nothing rewrites them.
    assert!(
        !w.applies().iter().any(|p| p.contains("/secrets/")),
        "{:?}",
        w.applies()
    );
}

#[tokio::test]
async fn the_root_password_travels_only_inside_the_credentials_secret() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    w.karmada_creates_binding();
    w.reconcile().await.unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("mypasswd");
    let credentials = format!("/secrets/{NAME}-credentials");
    for r in w.fake.requests() {
        if r.path.ends_with(&credentials) {
            if r.method == Method::PATCH {
                assert!(r.text.contains(&b64), "the Secret holds it");
            }
            continue;
        }
        assert!(
            !r.text.contains("mypasswd") && !r.text.contains(&b64),
            "password in {} {}",
            r.method,
            r.path
        );
    }
}

impl World {
    /// What Karmada renders for `cluster`: the template with that cluster's override rule.
    fn member_spec(&self, cluster: &str) -> Value {
        let mut obj = self.fake.get(MONGODB, NS, NAME).unwrap();
        let policy = self.fake.get(OPS, NS, NAME).unwrap();
        for rule in policy["spec"]["overrideRules"].as_array().unwrap() {
            if rule["targetCluster"]["clusterNames"][0] != cluster {
                continue;
            }
            for p in rule["overriders"]["plaintext"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let path = p["path"].as_str().unwrap();
                let (parent, key) = path.rsplit_once('/').unwrap();
                let target = obj.pointer_mut(parent).unwrap().as_object_mut().unwrap();
                match p["operator"].as_str().unwrap() {
                    "remove" => {
                        target.remove(key);
                    }
                    _ => {
                        target.insert(key.into(), p["value"].clone());
                    }
                }
            }
        }
        obj["spec"].clone()
    }

    /// Each cluster's agent reports the revision its members run (`None`: still the old one).
    fn report_revisions(&self, hosts: &[String], revisions: &[(&str, String)]) {
        let clusters: Vec<&str> = revisions.iter().map(|(c, _)| *c).collect();
        self.members_report(hosts, &clusters);
        let mut rb = self.fake.get(RBS, NS, &format!("{NAME}-mongodb")).unwrap();
        for item in rb["status"]["aggregatedStatus"].as_array_mut().unwrap() {
            let c = item["clusterName"].as_str().unwrap().to_owned();
            let rev = &revisions.iter().find(|(n, _)| *n == c).unwrap().1;
            item["status"]["currentRevision"] = json!(rev);
        }
        self.fake.put(RBS, rb);
    }

    fn images(&self) -> Vec<(String, Value)> {
        ["member1", "member2", "member3"]
            .iter()
            .map(|c| ((*c).to_owned(), self.member_spec(c)["image"].clone()))
            .collect()
    }
}

#[tokio::test]
async fn an_image_change_reaches_one_member_cluster_at_a_time() {
    // Failed before: the new template reached every cluster at once (three clusters with
    // mongo:8.0 after the first reconcile), so two agents could each restart a voter.
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    w.karmada_creates_binding();
    w.reconcile().await.unwrap();
    let hosts = w.hosts();
    let all = ["member1", "member2", "member3"];
    let rev = |c: &str| fedstate_api::revision::spec_revision(NAME, &w.member_spec(c));
    let reported: Vec<(&str, String)> = all.iter().map(|c| (*c, rev(c))).collect();
    w.report_revisions(&hosts, &reported);
    w.reconcile().await.unwrap();
    assert_eq!(w.condition("RollingUpdate")["status"], "False");
    assert_eq!(w.status()["state"], "Health");

    let mut obj = w.fake.get(MCM, NS, NAME).unwrap();
    obj["spec"]["imageSetting"]["image"] = json!("mongo:8.0");
    obj["metadata"]["generation"] = json!(2);
    obj["metadata"]["annotations"][names::SCHEDULER_RESULT_ANNOTATION] =
        json!(PLAN.replace(r#""generation":1"#, r#""generation":2"#));
    w.fake.put(MCM, obj);
    let mut order = Vec::new();
    let mut reported = reported;
    for step in 1..=3 {
        // Twice: a reconcile that sees nothing new releases nothing more.
        for _ in 0..2 {
            w.reconcile().await.unwrap();
            let new: Vec<String> = w
                .images()
                .into_iter()
                .filter(|(_, i)| i == "mongo:8.0")
                .map(|(c, _)| c)
                .collect();
            assert_eq!(new.len(), step, "step {step}: {:?}", w.images());
            let c = w.condition("RollingUpdate");
            assert_eq!(c["status"], "True", "{c}");
        }
        let now = w
            .images()
            .into_iter()
            .find(|(c, i)| i == "mongo:8.0" && !order.contains(c))
            .unwrap()
            .0;
        let msg = w.condition("RollingUpdate")["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(msg.contains(&now), "{msg}");
        // Everything else (members, roles) is the same in every cluster: only the pod spec waits.
        assert_eq!(
            w.member_spec(&now)["resources"],
            w.member_spec("member1")["resources"]
        );
        order.push(now.clone());
        // Its agent rolled its members: it reports the new revision.
        let r = rev(&now);
        for (c, v) in reported.iter_mut() {
            if *c == now {
                *v = r.clone();
            }
        }
        w.report_revisions(&hosts, &reported);
    }
    // The primary's cluster (the first host is PRIMARY in the report) goes last.
    assert_eq!(
        order.last().map(String::as_str),
        Some("member1"),
        "{order:?}"
    );
    w.reconcile().await.unwrap();
    let c = w.condition("RollingUpdate");
    assert_eq!(c["status"], "False", "{c}");
    assert_eq!(c["reason"], "Current");
}

#[tokio::test]
async fn scale_down_waits_for_the_agents_before_dropping_members() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    w.karmada_creates_binding();
    w.reconcile().await.unwrap();
    let five = w.hosts();
    w.members_report(&five, &["member1", "member2", "member3"]);

    // The user scales to 3; the scheduler places generation 2.
    let mut obj = w.fake.get(MCM, NS, NAME).unwrap();
    obj["spec"]["replicaset"] = json!(3);
    obj["metadata"]["generation"] = json!(2);
    obj["metadata"]["annotations"][names::SCHEDULER_RESULT_ANNOTATION] = json!(
        r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":1},{"cluster":"member2","replicaset":1},{"cluster":"member3","replicaset":1}],"generation":2}"#
    );
    w.fake.put(MCM, obj);
    w.reconcile().await.unwrap();
    let three = w.hosts();
    assert_eq!(three.len(), 3);
    assert!(
        three.iter().all(|h| five.contains(h)),
        "kept members keep their address"
    );
    assert_eq!(
        w.fake.list(SERVICES).len(),
        5,
        "leaving members keep their Service"
    );
    assert_eq!(
        w.condition("ScalingInProgress")["reason"],
        "RemovingMembers"
    );

    // The agents removed them from the set: now they go.
    w.members_report(&three, &["member1", "member2", "member3"]);
    w.reconcile().await.unwrap();
    assert_eq!(w.fake.list(SERVICES).len(), 3);
    let rb = w.fake.get(RBS, NS, &format!("{NAME}-mongodb")).unwrap();
    assert_eq!(
        rb["spec"]["clusters"],
        json!([{"name": "member1", "replicas": 1}, {"name": "member2", "replicas": 1}, {"name": "member3", "replicas": 1}])
    );
    assert_eq!(w.condition("ScalingInProgress")["status"], "False");
    assert_eq!(w.status()["state"], "Health");
}

#[tokio::test]
async fn a_lost_clusters_members_leave_the_host_list_but_stay_tracked() {
    let w = world(&[(1, true), (2, true), (3, false)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    w.karmada_creates_binding();
    w.reconcile().await.unwrap();
    let five = w.hosts();
    w.members_report(&five, &["member1", "member2"]);
    // member3 is lost; the scheduler moves its member to member1.
    let mut obj = w.fake.get(MCM, NS, NAME).unwrap();
    obj["metadata"]["generation"] = json!(2);
    obj["metadata"]["annotations"][names::SCHEDULER_RESULT_ANNOTATION] = json!(
        r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":3},{"cluster":"member2","replicaset":2}],"generation":2}"#
    );
    w.fake.put(MCM, obj);
    w.reconcile().await.unwrap();
    let hosts = w.hosts();
    assert_eq!(hosts.len(), 5);
    assert!(
        !hosts.iter().any(|h| h.starts_with("127.0.1.3:")),
        "{hosts:?}"
    );
    assert_eq!(w.condition("FailoverInProgress")["status"], "True");
    // The lost cluster stays in the binding (its member is tracked) with the retiring member.
    let rb = w.fake.get(RBS, NS, &format!("{NAME}-mongodb")).unwrap();
    assert!(
        rb["spec"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "member3")
    );
    assert_eq!(w.fake.list(SERVICES).len(), 6);
}

#[tokio::test]
async fn a_quorum_unsafe_hand_edit_is_refused_under_required_and_what_runs_is_kept() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    let mut obj = seed_object("mongo:7.0", Some(PLAN));
    obj["spec"]["scheduler"]["quorumPolicy"] = json!("Required");
    w.fake.put(MCM, obj);
    w.reconcile().await.unwrap();
    w.karmada_creates_binding();
    w.reconcile().await.unwrap();
    let five = w.hosts();
    w.members_report(&five, &["member1", "member2", "member3"]);
    w.reconcile().await.unwrap();
    let services = w.fake.list(SERVICES).len();
    let rb_before = w.fake.get(RBS, NS, &format!("{NAME}-mongodb")).unwrap()["spec"].clone();

    // Someone edits the annotation by hand: valid, but member1 would hold 3 of the 5 votes.
    let mut obj = w.fake.get(MCM, NS, NAME).unwrap();
    obj["metadata"]["annotations"][names::SCHEDULER_RESULT_ANNOTATION] = json!(
        r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":3},{"cluster":"member2","replicaset":2}],"generation":1}"#
    );
    w.fake.put(MCM, obj);
    w.fake.clear_requests();
    w.reconcile().await.unwrap();
    let c = w.condition("ServerReady");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "QuorumUnsafePlacement");
    let msg = c["message"].as_str().unwrap();
    for part in [
        "schedulerResult annotation places member1:3,member2:2",
        "cluster \"member1\" holds 3 of the 5 votes",
        "the members keep the placement last applied (member1:2,member2:2,member3:1)",
        "edit the annotation back",
        "quorumPolicy: Preferred",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    // Nothing moved: the host list, the Services and the binding are what ran before.
    assert!(w.applies().is_empty(), "{:?}", w.applies());
    assert_eq!(w.hosts(), five);
    assert_eq!(w.fake.list(SERVICES).len(), services);
    assert_eq!(
        w.fake.get(RBS, NS, &format!("{NAME}-mongodb")).unwrap()["spec"],
        rb_before
    );
    let ev = w.events();
    let refused: Vec<&Value> = ev
        .iter()
        .filter(|e| e["reason"] == "QuorumUnsafePlacement")
        .collect();
    assert_eq!(refused.len(), 1, "{ev:?}");
    assert_eq!(refused[0]["type"], "Warning");

    // With quorumPolicy Preferred the user takes the risk: the edit is applied.
    let mut obj = w.fake.get(MCM, NS, NAME).unwrap();
    obj["spec"]["scheduler"]["quorumPolicy"] = json!("Preferred");
    w.fake.put(MCM, obj);
    w.reconcile().await.unwrap();
    assert_ne!(
        w.condition("ServerReady")["reason"],
        "QuorumUnsafePlacement"
    );
    let hosts = w.hosts();
    assert_eq!(
        hosts.iter().filter(|h| h.starts_with("127.0.1.1:")).count(),
        3,
        "{hosts:?}"
    );
}

#[tokio::test]
async fn objects_we_did_not_create_are_neither_taken_over_nor_deleted() {
    // Failed before: a user's Secret named <name>-credentials and the ConfigMap
    // spec.member.memberConfigRef names were force-applied (our labels, owner and data written
    // over theirs) and deleted with the object.
    let w = world(&[(1, true), (2, true), (3, true)]);
    let mut obj = seed_object("mongo:7.0", Some(PLAN));
    obj["spec"]["member"] = json!({"memberConfigRef": "my-hosts"});
    w.fake.put(MCM, obj);
    let theirs_secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{NAME}-credentials"), "namespace": NS, "labels": {"team": "db"}},
        "data": {"clusterAdminPassword": "dXNlcg=="}});
    let theirs_cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "my-hosts", "namespace": NS}, "data": {"hosts": "mine"}});
    w.fake.put(SECRETS, theirs_secret.clone());
    w.fake.put(CONFIGMAPS, theirs_cm.clone());
    w.reconcile().await.unwrap();
    let c = w.condition("ServerReady");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "AdoptionRefused");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("Secret {NS}/{NAME}-credentials")),
        "{msg}"
    );
    assert!(
        msg.contains("spec.member.memberConfigRef names ConfigMap demo/my-hosts"),
        "{msg}"
    );
    assert!(msg.contains("kubectl -n demo label secret"), "{msg}");
    assert!(w.applies().is_empty(), "nothing applied: {:?}", w.applies());
    assert_eq!(w.events()[0]["reason"], "AdoptionRefused");
    let secret = w
        .fake
        .get(SECRETS, NS, &format!("{NAME}-credentials"))
        .unwrap();
    assert_eq!(secret["metadata"]["labels"], json!({"team": "db"}));
    assert_eq!(secret["data"], theirs_secret["data"]);

    // The user points memberConfigRef elsewhere; their credentials Secret is still not ours.
    let mut obj = w.fake.get(MCM, NS, NAME).unwrap();
    obj["spec"]["member"] = json!({});
    w.fake.put(MCM, obj);
    w.reconcile().await.unwrap();
    let msg = w.condition("ServerReady")["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("credentials") && !msg.contains("my-hosts"),
        "{msg}"
    );
    // Handing it over by label: it is used, its value kept.
    let mut handed = theirs_secret.clone();
    handed["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "fedstate",
        "app.kubernetes.io/instance": NAME});
    w.fake.put(SECRETS, handed);
    w.reconcile().await.unwrap();
    assert_ne!(w.condition("ServerReady")["reason"], "AdoptionRefused");
    let secret = w
        .fake
        .get(SECRETS, NS, &format!("{NAME}-credentials"))
        .unwrap();
    assert_eq!(
        secret["data"]["clusterAdminPassword"], "dXNlcg==",
        "the user's value is kept"
    );

    // Deleting the object deletes what is ours, never their ConfigMap.
    w.mark_deleted();
    for _ in 0..4 {
        w.reconcile().await.unwrap();
    }
    assert_eq!(
        w.fake.get(CONFIGMAPS, NS, "my-hosts").unwrap()["data"],
        theirs_cm["data"]
    );
    assert!(
        w.fake
            .get(CONFIGMAPS, NS, &format!("{NAME}-hostconf"))
            .is_none()
    );
}

#[tokio::test]
async fn a_secret_of_our_name_owned_by_another_object_is_not_deleted() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    // Someone gives our keyfile Secret to another controller, labels kept.
    let mut s = w.fake.get(SECRETS, NS, &format!("{NAME}-keyfile")).unwrap();
    s["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "other", "uid": "other-uid", "controller": true}]);
    w.fake.put(SECRETS, s);
    w.reconcile().await.unwrap();
    assert_eq!(w.condition("ServerReady")["reason"], "AdoptionRefused");
    w.mark_deleted();
    for _ in 0..4 {
        w.reconcile().await.unwrap();
    }
    assert!(
        w.fake
            .get(SECRETS, NS, &format!("{NAME}-keyfile"))
            .is_some()
    );
    assert!(
        w.fake
            .get(SECRETS, NS, &format!("{NAME}-credentials"))
            .is_none()
    );
}

#[tokio::test]
async fn deletion_waits_for_members_then_removes_everything() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    // Karmada has Works for the template in two clusters.
    for c in ["member1", "member2"] {
        w.fake.put(
            WORKS,
            json!({"apiVersion": "work.karmada.io/v1alpha1", "kind": "Work",
                "metadata": {"name": format!("{NAME}-abc"), "namespace": format!("karmada-es-{c}"),
                    "annotations": {"resourcebinding.karmada.io/name": format!("{NAME}-mongodb"),
                                    "resourcebinding.karmada.io/namespace": NS}}}),
        );
    }
    w.mark_deleted();

    // First the agents learn that the whole set goes (they then release at once instead of
    // leaving a set that does not live on); the host list itself is kept.
    w.reconcile().await.unwrap();
    let host_list = w
        .fake
        .get(CONFIGMAPS, NS, &format!("{NAME}-hostconf"))
        .unwrap();
    assert_eq!(host_list["data"]["teardown"], json!("whole-set"));
    assert!(host_list["data"]["hostconf.json"].is_string());
    assert!(
        w.fake.get(MONGODB, NS, NAME).is_some(),
        "marked before members go"
    );
    w.reconcile().await.unwrap();
    assert!(w.fake.get(MONGODB, NS, NAME).is_none(), "members go first");
    w.reconcile().await.unwrap();
    assert!(
        !w.fake.list(SECRETS).is_empty(),
        "Secrets stay while members tear down"
    );
    assert_eq!(
        w.fake.get(MCM, NS, NAME).unwrap()["metadata"]["finalizers"],
        json!([FINALIZER])
    );
    // Karmada removed the member objects.
    w.fake
        .remove(WORKS, "karmada-es-member1", &format!("{NAME}-abc"));
    w.fake
        .remove(WORKS, "karmada-es-member2", &format!("{NAME}-abc"));
    w.reconcile().await.unwrap();
    for c in [SERVICES, CONFIGMAPS, SECRETS, PPS, OPS] {
        assert!(w.fake.list(c).is_empty(), "{c} left behind");
    }
    w.reconcile().await.unwrap();
    assert_eq!(
        w.fake.get(MCM, NS, NAME).unwrap()["metadata"]["finalizers"],
        json!([]),
        "finalizer released once nothing is left"
    );
}

#[tokio::test]
async fn deletion_waits_for_the_members_of_an_unreachable_cluster_and_says_why() {
    let w = world(&[(1, true), (2, true), (3, false)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    let work = |c: &str| {
        json!({"apiVersion": "work.karmada.io/v1alpha1", "kind": "Work",
            "metadata": {"name": format!("{NAME}-abc"), "namespace": format!("karmada-es-{c}"),
                "annotations": {"resourcebinding.karmada.io/name": format!("{NAME}-mongodb"),
                                "resourcebinding.karmada.io/namespace": NS}}})
    };
    w.fake.put(WORKS, work("member1"));
    w.fake.put(WORKS, work("member3"));
    w.mark_deleted();
    w.reconcile().await.unwrap();
    w.reconcile().await.unwrap();
    assert!(w.fake.get(MONGODB, NS, NAME).is_none(), "members go first");
    // member1's member is torn down; member3's cannot be while member3 is unreachable, and it
    // may still be voting: nothing else goes and the finalizer stays, however often we look.
    w.fake
        .remove(WORKS, "karmada-es-member1", &format!("{NAME}-abc"));
    for _ in 0..5 {
        w.reconcile().await.unwrap();
    }
    assert_eq!(
        w.fake.get(MCM, NS, NAME).unwrap()["metadata"]["finalizers"],
        json!([FINALIZER]),
        "the finalizer waits for member3"
    );
    assert!(!w.fake.list(SECRETS).is_empty(), "Secrets stay");
    assert!(!w.fake.list(CONFIGMAPS).is_empty(), "the host list stays");
    let deleting = w.condition("Deleting");
    assert_eq!(deleting["status"], "True");
    assert_eq!(deleting["reason"], "WaitingForUnreachableClusters");
    let msg = deleting["message"].as_str().unwrap();
    assert!(
        msg.contains("member3") && msg.contains("may still be running and voting"),
        "{msg}"
    );
    // member3 returns and Karmada removes its member: the teardown completes.
    w.cluster_event(cluster(3, true));
    w.fake
        .remove(WORKS, "karmada-es-member3", &format!("{NAME}-abc"));
    w.reconcile().await.unwrap();
    assert_eq!(w.condition("Deleting")["reason"], "DeletingObjects");
    for c in [SERVICES, CONFIGMAPS, SECRETS, PPS, OPS] {
        assert!(w.fake.list(c).is_empty(), "{c} left behind");
    }
    w.reconcile().await.unwrap();
    assert_eq!(
        w.fake.get(MCM, NS, NAME).unwrap()["metadata"]["finalizers"],
        json!([]),
        "finalizer released once nothing is left"
    );
}

/// The reflected status of `acked` clusters' member objects carries `TeardownMarked` (what each
/// agent records once it saw the host list's teardown mark); the binding places on all three.
fn binding_with_acks(w: &World, acked: &[&str]) {
    let status: Vec<Value> = acked
        .iter()
        .map(|c| {
            json!({"clusterName": c, "applied": true, "status": {"conditions": [
                {"type": "TeardownMarked", "status": "True", "reason": "WholeSetTeardown"}]}})
        })
        .collect();
    w.fake.put(
        RBS,
        json!({"apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
          "metadata": {"name": format!("{NAME}-mongodb"), "namespace": NS, "generation": 1},
          "spec": {"resource": {"apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
                                "name": NAME, "namespace": NS}, "replicas": 5,
                   "clusters": [{"name": "member1"}, {"name": "member2"}, {"name": "member3"}]},
          "status": {"aggregatedStatus": status}}),
    );
}

/// A cluster that is unreachable when the MultiCloudMongoDB is deleted gets the host list's
/// teardown mark and the member object's deletion in no set order when it returns; if the
/// deletion came first (and the host list went once Karmada dropped the Works), its agent would
/// wait forever for its members to leave a set nobody is left to change. So no member object is
/// deleted anywhere until every cluster's agent recorded the mark, and the condition says which
/// cluster is awaited and how to get on without it.
#[tokio::test]
async fn deletion_waits_for_an_unreachable_clusters_agent_to_record_the_teardown_mark() {
    let w = world(&[(1, true), (2, true), (3, false)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    binding_with_acks(&w, &[]);
    w.mark_deleted();
    w.reconcile().await.unwrap();
    let host_list = w
        .fake
        .get(CONFIGMAPS, NS, &format!("{NAME}-hostconf"))
        .unwrap();
    assert_eq!(host_list["data"]["teardown"], "whole-set", "marked first");
    // member1 and member2 record the mark; member3 cannot while it is unreachable.
    binding_with_acks(&w, &["member1", "member2"]);
    for _ in 0..3 {
        w.reconcile().await.unwrap();
    }
    assert!(
        w.fake.get(MONGODB, NS, NAME).is_some(),
        "no member object is deleted while member3's agent has not seen the mark"
    );
    let deleting = w.condition("Deleting");
    assert_eq!(deleting["reason"], "WaitingForUnreachableClusters");
    let msg = deleting["message"].as_str().unwrap();
    assert!(
        msg.contains("member3")
            && msg.contains("TeardownMarked")
            && msg.contains("removed from the Karmada federation"),
        "{msg}"
    );
    // member3 returns and its agent records the mark: the member objects go.
    w.cluster_event(cluster(3, true));
    binding_with_acks(&w, &["member1", "member2", "member3"]);
    w.reconcile().await.unwrap();
    assert!(w.fake.get(MONGODB, NS, NAME).is_none(), "members go now");
}

/// Every request the manager makes in a full life cycle is allowed by `deploy/manager/rbac.yaml`
/// (and the ClusterRole grants nothing the controller's watches and applies do not need).
#[tokio::test]
async fn the_cluster_role_covers_every_request() {
    let w = world(&[(1, true), (2, true), (3, true)]);
    w.fake.put(MCM, seed_object("mongo:7.0", Some(PLAN)));
    w.reconcile().await.unwrap();
    w.karmada_creates_binding();
    w.reconcile().await.unwrap();
    w.mark_deleted();
    for _ in 0..4 {
        w.reconcile().await.unwrap();
    }
    let rbac = include_str!("../../deploy/manager/rbac.yaml");
    let role: Value = rbac
        .split("\n---\n")
        .map(|d| serde_yaml::from_str::<Value>(d).unwrap())
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap();
    let allowed = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|r| {
            r["apiGroups"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == group)
                && r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|v| v == verb)
        })
    };
    for r in w.fake.requests() {
        let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        let (group, rest) = if parts[0] == "api" {
            ("", &parts[2..])
        } else {
            (parts[1], &parts[3..])
        };
        let rest = if rest.first() == Some(&"namespaces") {
            &rest[2..]
        } else {
            rest
        };
        let resource = match rest.get(2) {
            Some(sub) => format!("{}/{sub}", rest[0]),
            None => rest[0].to_owned(),
        };
        let verb = match (r.method.as_str(), rest.len()) {
            ("GET", 1) => "list",
            ("GET", _) => "get",
            ("PATCH", _) => "patch",
            ("POST", _) => "create",
            ("DELETE", _) => "delete",
            (m, _) => panic!("unexpected {m}"),
        };
        assert!(
            allowed(group, &resource, verb),
            "{verb} {group}/{resource} ({} {}) is not in deploy/manager/rbac.yaml",
            r.method,
            r.path
        );
        // Server-side apply may create: the role must allow that too.
        if r.content_type.contains("apply-patch") && !resource.contains('/') {
            assert!(
                allowed(group, &resource, "create"),
                "create {group}/{resource}"
            );
        }
    }
}
