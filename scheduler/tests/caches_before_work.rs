//! `fedstate-scheduler run` places nothing (and does not even list the objects it places) before
//! the Cluster cache is synced: until then every placed cluster would look lost. The real
//! `controllers` against a scripted apiserver (`fedstate-fake-apiserver`): Clusters answered or
//! refused, every watch refused (the watchers back off), every other list empty.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedstate_fake_apiserver::{Request, failure, scripted};
use fedstate_runtime::admin::Health;
use fedstate_scheduler::service::{RunArgs, controllers};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn args() -> RunArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }
    <Cli as clap::Parser>::parse_from([
        "fedstate-scheduler",
        "--enable-scheduler-estimator=false",
        "--admin-addr=127.0.0.1:0",
    ])
    .run
}

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
                      "metadata": {"name": "member1", "resourceVersion": "1"}, "spec": {}}]})
}

/// Runs the controllers with `clusters` answering the Cluster list until `done` says enough,
/// then stops them and returns what was requested and whether the scheduler became ready.
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
    let scheduler = {
        let (health, stop) = (health.clone(), stop.clone());
        tokio::spawn(async move { controllers(client, &args(), health, stop).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(&log.all()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = health.is_ready();
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), scheduler)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    (log.all(), ready)
}

#[tokio::test]
async fn nothing_is_listed_or_placed_while_the_cluster_cache_is_not_synced() {
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
    assert!(!ready);
}

#[tokio::test]
async fn once_the_cluster_cache_is_synced_both_controllers_start() {
    let (requests, ready) = run_until(
        || (200, cluster_list()),
        |r| {
            r.iter().any(|r| r.path.ends_with("/multicloudmongodbs"))
                && r.iter().any(|r| r.path.ends_with("/resourcebindings"))
        },
    )
    .await;
    let first = |suffix: &str| requests.iter().position(|r| r.path.ends_with(suffix));
    let clusters = first("/clusters").unwrap();
    assert!(clusters < first("/multicloudmongodbs").expect("MultiCloudMongoDBs listed"));
    assert!(clusters < first("/resourcebindings").expect("ResourceBindings listed"));
    assert!(ready);
}
