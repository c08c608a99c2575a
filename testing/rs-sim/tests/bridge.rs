//! The bridge against an apiserver (the in-memory fake): which pod's data a served member holds.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use fedstate_fake_apiserver::FakeApiserver;
use fedstate_rs_sim::bridge::{self, MemberCluster};
use fedstate_rs_sim::world::Session;
use fedstate_rs_sim::{Settings, Simulator};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NS: &str = "db";

/// A Running member pod of StatefulSet `sts` on claim `data-<sts>-0`, and its NodePort Service.
fn member(fake: &FakeApiserver, sts: &str, uid: &str, node_port: u16) {
    fake.put(
        "v1/pods",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{sts}-0"), "namespace": NS, "uid": uid,
                "labels": {"app.kubernetes.io/managed-by": "fedstate", "app": sts}},
            "spec": {
                "containers": [{"name": "mongod", "image": "mongo:7.0.14"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": format!("data-{sts}-0")}}],
            },
            "status": {"phase": "Running"},
        }),
    );
    fake.put(
        "v1/services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("{sts}-0"), "namespace": NS,
                "labels": {"app.kubernetes.io/managed-by": "fedstate"}},
            "spec": {"type": "NodePort", "selector": {"app": sts},
                "ports": [{"port": 27017, "nodePort": node_port}]},
        }),
    );
}

fn gone(fake: &FakeApiserver, sts: &str) {
    fake.remove("v1/pods", NS, &format!("{sts}-0"));
    fake.remove("v1/services", NS, &format!("{sts}-0"));
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}

/// A member's data is on its claim. A rolled pod (new uid, same claim) finds its set again;
/// a new set's member behind a NodePort a deleted set's member had (the apiserver hands freed
/// NodePorts out again) is on another claim, so it starts empty: in no set, and it can be
/// initiated. Before, the simulator kept the address's data, so the new member answered as a
/// member of the deleted set and the agent, seeing a foreign set, never initiated (the likely
/// cause of the soak's short runs that failed: one object whose members all ran, not initiated).
#[tokio::test]
async fn a_member_on_another_claim_behind_a_reused_node_port_starts_empty() {
    let sim = Arc::new(Simulator::start(
        Settings {
            sync_ticks: 1,
            stepdown_ticks: 5,
        },
        Duration::from_secs(3600),
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let fake = FakeApiserver::default();
    let stop = CancellationToken::new();
    let cluster = MemberCluster {
        name: "member1".into(),
        vip: "127.0.0.1".into(),
        client: fake.client(),
    };
    tokio::spawn(bridge::run(sim.clone(), vec![cluster], stop.child_token()));
    let served = |up: bool| {
        let sim = sim.clone();
        let host = host.clone();
        move || sim.served().contains(&host) == up
    };

    member(&fake, "old", "uid-1", port);
    until("the old set's member served", served(true)).await;
    let r = sim.world().handle(
        &host,
        &mut Session::new(true, 1),
        &doc! {"replSetInitiate": {"_id": "old", "members": [{"_id": 0, "host": &host}]}},
    );
    assert_eq!(r.get_f64("ok").ok(), Some(1.0), "{r}");

    // Rolled: the pod goes and comes back on its claim.
    fake.remove("v1/pods", NS, "old-0");
    until("the rolled pod's member not served", served(false)).await;
    member(&fake, "old", "uid-2", port);
    until("the rolled pod's member served", served(true)).await;
    assert!(
        sim.world().set_of(&host).is_some(),
        "a rolled pod keeps its data"
    );

    // Deleted; a new set's member gets the same NodePort.
    gone(&fake, "old");
    until("the deleted set's member not served", served(false)).await;
    member(&fake, "new", "uid-3", port);
    until("the new set's member served", served(true)).await;
    let hello = sim
        .world()
        .handle(&host, &mut Session::new(false, 2), &doc! {"hello": 1});
    assert!(
        hello.get_str("setName").is_err(),
        "the new member is in no set: {hello}"
    );
    let r = sim.world().handle(
        &host,
        &mut Session::new(true, 3),
        &doc! {"replSetInitiate": {"_id": "new", "members": [{"_id": 0, "host": &host}]}},
    );
    assert_eq!(r.get_f64("ok").ok(), Some(1.0), "{r}");
    stop.cancel();
}
