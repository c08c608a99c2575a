//! Smoke tests of the local federation (`deploy/local`): real Karmada and Kubernetes processes,
//! nodes faked by kwok. One federation is shared by the scenarios (each can run alone):
//!
//! 1. a Deployment propagated by a PropagationPolicy reaches every member and its pods Run;
//! 2. dynamic weighting by available replicas splits a Deployment in proportion to the capacity
//!    the members' karmada-scheduler-estimators report (not the cluster-wide summary);
//! 3. killing a member's apiserver turns its Cluster NotReady; restoring it brings it back;
//! 4. a test that panics with a federation of its own (other ports) leaves no process behind.
//!
//! Runs only with `FEDSTATE_E2E=1` (see `fedstate_e2e::harness`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use fedstate_e2e::harness::{self, apply_json, eventually, propagation_policy_resource};
use fedstate_e2e::scenarios;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_local::capacity::{NODE_INDEX_LABEL, member_cpu_millis, replicas_fitting};
use fedstate_local::{ClusterStatus, Federation, member_name};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ApiResource, ListParams, PostParams};
use serde_json::json;

const NAMESPACE: &str = "fedstate-smoke";

fn main() -> std::process::ExitCode {
    Suite::new("federation_smoke", |_, _| Box::pin(async {}))
        .scenarios(scenarios![
            deployment_propagates_and_pods_run,
            dynamic_weight_follows_estimator_capacity,
            killed_member_goes_not_ready_and_comes_back,
        ])
        .standalone(
            "panicking_test_leaves_no_process",
            panicking_test_leaves_no_process,
        )
        .run()
}

/// Brings up a one-member federation in a thread that then panics; once the thread is gone, no
/// process of that federation may remain.
fn panicking_test_leaves_no_process() {
    // Its own run directory and ports: the suite's shared federation may be up.
    let shared = harness::e2e_options();
    let options = fedstate_local::Options {
        members: 1,
        run_dir: shared.run_dir.with_extension("panic"),
        ports: fedstate_local::PortPlan {
            base: shared.ports.base + 1000,
        },
        ..shared
    };
    let marker = options.run_dir.display().to_string();
    let run_dir = options.run_dir.clone();
    let bin_dir = fedstate_local::binaries::bin_dir().expect("binaries");
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            let fed = Federation::up(options).await.expect("up");
            assert!(
                !fedstate_local::process::strays(fed.bin_dir(), &run_dir.display().to_string())
                    .is_empty(),
                "the federation's processes should be visible while it runs"
            );
            panic!("deliberate panic with a running federation");
        })
    })
    .join();
    assert!(outcome.is_err(), "the thread was expected to panic");
    let left = fedstate_local::process::strays(&bin_dir, &marker);
    assert!(
        left.is_empty(),
        "processes left after a panic: {:?}",
        left.iter()
            .map(|p| (p.pid, &p.spec.name))
            .collect::<Vec<_>>()
    );
}

async fn create_namespace(karmada: &kube::Client) {
    let namespaces: Api<Namespace> = Api::all(karmada.clone());
    if namespaces
        .get_opt(NAMESPACE)
        .await
        .expect("get namespace")
        .is_none()
    {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).expect("namespace");
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
    }
}

fn deployment(name: &str, replicas: i32, pod_spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    })
}

fn deployment_resource() -> ApiResource {
    ApiResource::erase::<Deployment>(&())
}

/// Pods of `app` in a member, by phase.
async fn pod_phases(member: &kube::Client, app: &str) -> Result<BTreeMap<String, usize>, String> {
    let pods: Api<Pod> = Api::namespaced(member.clone(), NAMESPACE);
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map_err(|e| e.to_string())?;
    let mut phases = BTreeMap::new();
    for p in list.items {
        let phase = p
            .status
            .and_then(|s| s.phase)
            .unwrap_or_else(|| "Unknown".into());
        *phases.entry(phase).or_insert(0) += 1;
    }
    Ok(phases)
}

async fn deployment_propagates_and_pods_run(env: &Env<()>) {
    let fed = &env.fed;
    let karmada = fed.karmada_client().await.expect("karmada client");
    create_namespace(&karmada).await;
    let replicas = 2;
    apply_json(
        &karmada,
        &deployment_resource(),
        deployment(
            "web",
            replicas,
            json!({"containers": [{"name": "web", "image": "nginx:1.27"}]}),
        ),
    )
    .await;
    apply_json(
        &karmada,
        &propagation_policy_resource(),
        json!({
            "apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": "web", "namespace": NAMESPACE},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
                "placement": {"clusterAffinity": {"clusterNames": fed.member_names()}},
            },
        }),
    )
    .await;

    for i in 1..=fed.members() {
        let member = fed.member_client(i).await.expect("member client");
        let name = member_name(i);
        eventually(
            &format!("{replicas} Running pods of Deployment web in {name}"),
            Duration::from_secs(180),
            || async {
                let phases = pod_phases(&member, "web").await?;
                if phases.get("Running") == Some(&(replicas as usize)) && phases.len() == 1 {
                    Ok(())
                } else {
                    Err(format!("{phases:?}"))
                }
            },
        )
        .await;
    }

    // Karmada aggregates the members' status back into the template a user looks at.
    let deployments: Api<Deployment> = Api::namespaced(karmada.clone(), NAMESPACE);
    let expected_ready = replicas * fed.members() as i32;
    eventually(
        &format!("Deployment web in Karmada reporting {expected_ready} ready replicas"),
        Duration::from_secs(120),
        || async {
            let d = deployments.get("web").await.map_err(|e| e.to_string())?;
            let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            if ready == expected_ready {
                Ok(())
            } else {
                Err(format!("readyReplicas={ready}"))
            }
        },
    )
    .await;
}

async fn dynamic_weight_follows_estimator_capacity(env: &Env<()>) {
    let fed = &env.fed;
    let karmada = fed.karmada_client().await.expect("karmada client");
    create_namespace(&karmada).await;
    const CPU_MILLIS: u64 = 1000;
    // Pinned to node-0, whose size differs per member; only the per-node estimators know that
    // node-1 (same size everywhere) cannot take these pods.
    let expected: BTreeMap<String, i32> = (1..=fed.members())
        .map(|i| (member_name(i), replicas_fitting(i, 0, CPU_MILLIS) as i32))
        .collect();
    let total: i32 = expected.values().sum();
    // The split a scheduler would compute from cluster-wide CPU (the resource summary) differs,
    // so a correct split shows the estimators answered.
    let total_cpu: u64 = (1..=fed.members()).map(member_cpu_millis).sum();
    let summary_split: Vec<f64> = (1..=fed.members())
        .map(|i| f64::from(total) * member_cpu_millis(i) as f64 / total_cpu as f64)
        .collect();
    assert!(
        expected
            .values()
            .zip(&summary_split)
            .any(|(e, s)| (f64::from(*e) - s).abs() >= 1.0),
        "test design: estimator split {expected:?} must differ from the summary split {summary_split:?}"
    );

    apply_json(
        &karmada,
        &deployment_resource(),
        deployment(
            "weighted",
            total,
            json!({
                "nodeSelector": {NODE_INDEX_LABEL: "0"},
                "containers": [{
                    "name": "app",
                    "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": format!("{CPU_MILLIS}m")}},
                }],
            }),
        ),
    )
    .await;
    apply_json(
        &karmada,
        &propagation_policy_resource(),
        json!({
            "apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": "weighted", "namespace": NAMESPACE},
            "spec": {
                "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "weighted"}],
                "placement": {
                    "clusterAffinity": {"clusterNames": fed.member_names()},
                    "replicaScheduling": {
                        "replicaSchedulingType": "Divided",
                        "replicaDivisionPreference": "Weighted",
                        "weightPreference": {"dynamicWeight": "AvailableReplicas"},
                    },
                },
            },
        }),
    )
    .await;

    for i in 1..=fed.members() {
        let name = member_name(i);
        let want = expected[&name];
        let member = fed.member_client(i).await.expect("member client");
        let deployments: Api<Deployment> = Api::namespaced(member.clone(), NAMESPACE);
        eventually(
            &format!("{name} running {want} replicas of weighted (estimator capacity)"),
            Duration::from_secs(180),
            || async {
                let d = deployments
                    .get_opt("weighted")
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("not propagated yet")?;
                let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(0);
                let phases = pod_phases(&member, "weighted").await?;
                if replicas == want
                    && phases.get("Running") == Some(&(want as usize))
                    && phases.len() == 1
                {
                    Ok(())
                } else {
                    Err(format!("spec.replicas={replicas}, pods {phases:?}"))
                }
            },
        )
        .await;
    }
}

async fn cluster_status(fed: &Federation, name: &str) -> Result<ClusterStatus, String> {
    fed.status()
        .await
        .clusters
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| format!("no Cluster {name}"))
}

async fn killed_member_goes_not_ready_and_comes_back(env: &Env<()>) {
    let fed = &env.fed;
    let index = fed.members();
    let name = member_name(index);
    let member = fed.member_client(index).await.expect("member client");
    fed.kill_member(index).expect("kill member");
    assert!(
        member.apiserver_version().await.is_err(),
        "{name}'s apiserver still answers after kill_member"
    );
    eventually(
        &format!("Cluster {name} NotReady"),
        Duration::from_secs(120),
        || async {
            let c = cluster_status(fed, &name).await?;
            if c.ready {
                Err("still Ready".into())
            } else {
                Ok(())
            }
        },
    )
    .await;
    for i in 1..index {
        let other = cluster_status(fed, &member_name(i)).await.expect("cluster");
        assert!(
            other.ready,
            "Cluster {} went NotReady with {name}",
            other.name
        );
    }

    fed.restore_member(index).await.expect("restore member");
    eventually(
        &format!("Cluster {name} Ready again"),
        Duration::from_secs(120),
        || async {
            let c = cluster_status(fed, &name).await?;
            if c.ready {
                Ok(())
            } else {
                Err("NotReady".into())
            }
        },
    )
    .await;
    let status = fed.status().await;
    let unhealthy: Vec<_> = status
        .components
        .iter()
        .filter(|c| !(c.running && c.healthy))
        .map(|c| c.name.clone())
        .collect();
    assert!(
        unhealthy.is_empty(),
        "unhealthy after restore: {unhealthy:?}"
    );
}
