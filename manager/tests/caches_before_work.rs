//! The manager's controller reconciles nothing (and does not even list its objects) before the
//! Cluster cache is synced: until then every placed cluster would look unknown, every retiring
//! member's cluster gone, and every cluster unreachable during teardown. The real `run` against
//! a scripted apiserver (`fedstate-fake-apiserver`): Clusters answered or refused, every watch
//! refused (the watchers back off), every other list empty.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedstate_fake_apiserver::{Request, failure, scripted};
use fedstate_manager::controller::{Options, run};
use fedstate_runtime::admin::Health;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn is_clusters(r: &Request) -> bool {
    r.path.ends_with("/clusters")
}

fn empty_list() -> Value {
    json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})
}

fn cluster_list() -> Value {
    json!({"kind": "ClusterList", "apiVersion": "cluster.karmada.io/v1alpha1",
           "metadata": {"resourceVersion": "1"},
           "items": [{"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
                      "metadata": {"name": "member1", "resourceVersion": "1", "labels": {"vip": "127.0.1.1"}},
                      "spec": {}}]})
}

/// Runs the manager with `clusters` answering the Cluster list until `done` says enough, then
/// stops it and returns what was requested and whether it became ready.
async fn run_until(
    clusters: fn() -> (u16, Value),
    done: impl Fn(&[Request]) -> bool,
) -> (Vec<Request>, bool) {
    let (client, log) = scripted(Arc::new(move |r: &Request| {
        if r.query.contains("watch=true") {
            (500, failure(500, "InternalError", "no watches here"))
        } else if is_clusters(r) {
            clusters()
        } else {
            (200, empty_list())
        }
    }));
    let (health, stop) = (Health::default(), CancellationToken::new());
    let manager = tokio::spawn(run(
        client,
        Options::default(),
        health.clone(),
        stop.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&log.all()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = health.is_ready();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), manager)
        .await
        .unwrap()
        .unwrap();
    (log.all(), ready)
}

#[tokio::test]
async fn nothing_is_listed_or_reconciled_while_the_cluster_cache_is_not_synced() {
    let (requests, ready) = run_until(
        || (500, failure(500, "InternalError", "Clusters unavailable")),
        // The Cluster watcher retries with backoff (0.8 s, then longer): two attempts.
        |r| r.iter().filter(|r| is_clusters(r)).count() >= 2,
    )
    .await;
    assert!(requests.iter().filter(|r| is_clusters(r)).count() >= 2);
    let other: Vec<&str> = requests
        .iter()
        .filter(|r| !is_clusters(r))
        .map(|r| r.path.as_str())
        .collect();
    assert!(
        other.is_empty(),
        "requested before the Cluster cache was synced: {other:?}"
    );
    assert!(!ready, "ready before the Cluster cache was synced");
}

#[tokio::test]
async fn once_the_cluster_cache_is_synced_the_controller_starts_and_the_manager_is_ready() {
    let (requests, ready) = run_until(
        || (200, cluster_list()),
        |r| r.iter().any(|r| r.path.ends_with("/multicloudmongodbs")),
    )
    .await;
    let first_cluster_list = requests.iter().position(is_clusters).unwrap();
    let first_mcm_list = requests
        .iter()
        .position(|r| r.path.ends_with("/multicloudmongodbs"))
        .expect("the controller lists its objects");
    assert!(first_cluster_list < first_mcm_list);
    assert!(ready);
}
