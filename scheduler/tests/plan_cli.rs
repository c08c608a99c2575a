//! `fedstate-scheduler plan` as a user runs it.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn plan(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fedstate-scheduler"))
        .current_dir(repo())
        .arg("plan")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const CLUSTERS: &str = "scheduler/testdata/clusters.yaml";
const SAMPLE: &str = "deploy/samples/seed/multicloudmongodb-full.yaml";

#[test]
fn json_output_holds_the_annotation_the_scheduler_writes() {
    let (code, out, err) = plan(&[
        "--clusters",
        CLUSTERS,
        "--object",
        SAMPLE,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["quorumSafe"], true);
    let ann = serde_json::to_string(&v["schedulerResult"]).unwrap();
    let parsed =
        fedstate_api::SchedulerResult::parse_for(&ann, 5, |c| c.starts_with("member")).unwrap();
    assert_eq!(parsed.summary(), "member1:2,member2:2,member3:1");
    assert_eq!(parsed.quorum_safe, Some(true));
    assert_eq!(parsed.generation, Some(1));
    // member4 is NotReady: explained, not used.
    let m4 = v["explanation"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cluster"] == "member4")
        .unwrap();
    assert_eq!(m4["verdict"], "filtered");
    assert_eq!(m4["why"], "filtered: not Ready");
}

#[test]
fn text_output_is_a_table_with_reasons() {
    let (code, out, _) = plan(&["--clusters", CLUSTERS, "--object", SAMPLE]);
    assert_eq!(code, 0);
    assert!(
        out.contains("5 data members, mode Uniform, 5 voters, quorum-safe"),
        "{out}"
    );
    assert!(out.contains("CLUSTER"));
    assert!(
        out.lines()
            .any(|l| l.starts_with("member4") && l.ends_with("filtered: not Ready")),
        "{out}"
    );
    assert!(out.contains("schedulerResult: {\"ClusterWithReplicaset\":"));
}

fn counts_with_previous(name: &str, previous: &str) -> (Vec<i64>, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("fedstate-plan-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prev = dir.join("previous.json");
    std::fs::write(&prev, previous).unwrap();
    let (code, out, err) = plan(&[
        "--clusters",
        CLUSTERS,
        "--object",
        SAMPLE,
        "--previous",
        prev.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let counts = v["schedulerResult"]["ClusterWithReplicaset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["replicaset"].as_i64().unwrap())
        .collect();
    (counts, v)
}

#[test]
fn a_safe_previous_placement_is_kept() {
    let (counts, v) = counts_with_previous(
        "kept",
        r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":1},{"cluster":"member2","replicaset":2},{"cluster":"member3","replicaset":2}]}"#,
    );
    // From scratch it would be 2/2/1; the previous 1/2/2 is safe and still fits.
    assert_eq!(counts, vec![1, 2, 2]);
    assert_eq!(v["quorumSafe"], true);
}

#[test]
fn an_unsafe_previous_placement_moves_one_member_for_quorum() {
    // 1/3/1 seats only 1+2+1 = 4 of 5 voters at ≤ 2 per cluster: one member must move.
    let (counts, v) = counts_with_previous(
        "moved",
        r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":1},{"cluster":"member2","replicaset":3},{"cluster":"member3","replicaset":1}]}"#,
    );
    assert_eq!(counts, vec![2, 2, 1]);
    assert_eq!(v["quorumSafe"], true);
    let why: Vec<&str> = v["explanation"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["why"].as_str().unwrap())
        .collect();
    assert_eq!(why[1], "kept 2; -1 moved elsewhere for quorum safety");
}

#[test]
fn invalid_input_names_the_file_and_field() {
    let dir = std::env::temp_dir().join(format!("fedstate-plan-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("clusters.yaml");
    std::fs::write(
        &bad,
        "kind: List\nitems:\n- kind: Cluster\n  metadata: {name: a}\n  spec: {}\n  status:\n    resourceSummary:\n      allocatable: {cpu: lots}\n",
    )
    .unwrap();
    let (code, _, err) = plan(&["--clusters", bad.to_str().unwrap(), "--object", SAMPLE]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "clusters.yaml: items[0] (a).status.resourceSummary.allocatable.cpu: quantity \"lots\""
        ),
        "{err}"
    );

    let (code, _, err) = plan(&["--clusters", CLUSTERS, "--object", CLUSTERS]);
    assert_eq!(code, 2);
    assert!(
        err.contains("clusters.yaml: kind: expected MultiCloudMongoDB, found List"),
        "{err}"
    );

    let obj = dir.join("mcm.yaml");
    std::fs::write(&obj, "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: x}\nspec:\n  replicaset: 0\n").unwrap();
    let (code, _, err) = plan(&["--clusters", CLUSTERS, "--object", obj.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("mcm.yaml: spec: spec.replicaset is 0; it must be between 1 and 50"),
        "{err}"
    );

    let (code, _, err) = plan(&["--clusters", "/nonexistent.yaml", "--object", SAMPLE]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.yaml: cannot read"), "{err}");
}

#[test]
fn an_impossible_required_quorum_exits_one_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("fedstate-plan-req-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("mcm.yaml");
    std::fs::write(
        &obj,
        "apiVersion: middleware.fedstate.io/v1alpha1\nkind: MultiCloudMongoDB\nmetadata: {name: x, namespace: db}\nspec:\n  replicaset: 3\n  scheduler:\n    quorumPolicy: Required\n    affinity: {clusterNames: [member1, member2]}\n",
    )
    .unwrap();
    let (code, out, err) = plan(&["--clusters", CLUSTERS, "--object", obj.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("NOT PLACED (QuorumUnsatisfiable)"), "{out}");
    assert!(err.contains("3 eligible clusters needed, 2 found"), "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("member3") && l.contains("not in affinity.clusterNames")),
        "{out}"
    );
}

/// Members of one set go to different nodes: a cluster with one ready node gets one data member,
/// however much room its resources have (member1 has room for 5 by resources).
#[test]
fn a_cluster_with_one_ready_node_gets_one_data_member() {
    let dir = std::env::temp_dir().join(format!("fedstate-plan-nodes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(repo().join(CLUSTERS)).unwrap();
    let mut docs: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    let member1 = docs["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["metadata"]["name"] == "member1")
        .unwrap();
    member1["status"]["nodeSummary"] = serde_json::json!({"totalNum": 3, "readyNum": 1});
    let clusters = dir.join("clusters.yaml");
    std::fs::write(&clusters, serde_yaml::to_string(&docs).unwrap()).unwrap();
    let (code, out, err) = plan(&[
        "--clusters",
        clusters.to_str().unwrap(),
        "--object",
        SAMPLE,
        "--output",
        "json",
    ]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let placed: Vec<(String, i64)> = v["schedulerResult"]["ClusterWithReplicaset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["cluster"].as_str().unwrap().to_owned(),
                c["replicaset"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(placed.contains(&("member1".to_owned(), 1)), "{placed:?}");
    assert_eq!(placed.iter().map(|(_, n)| n).sum::<i64>(), 5, "{placed:?}");
}
