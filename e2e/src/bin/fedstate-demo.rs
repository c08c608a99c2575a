//! `scripts/demo.sh`: the main job on the local federation. Brings up real Kubernetes + Karmada
//! processes, starts FedState (scheduler, manager, one agent per member, and the replica-set
//! simulator standing in for mongod), applies FedState's own MultiCloudMongoDB sample unchanged,
//! and prints the placement and the status as `kubectl get -o yaml` would show them.
//!
//! The sample refers to things a user provides: nodes labelled `deploy: mongo`, the StorageClass
//! `managed-nfs-storage`, the ConfigMap `my-custome-configmap`. The demo creates them in each
//! member first. It asks for `mongo:3.6`, below the supported 4.4: FedState says so in a
//! condition, and the demo then does what the condition says (image `mongo:7.0`).
//!
//! `--keep` leaves everything running until Ctrl-C; otherwise it tears down at the end.

use std::time::{Duration, Instant};

use fedstate_api::MultiCloudMongoDB;
use fedstate_e2e::harness;
use fedstate_e2e::stack::{self, Stack, ensure_namespace};
use fedstate_local::{Federation, Options, PortPlan};
use kube::api::{Api, ApiResource, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

const NAMESPACE: &str = "fedstate-demo";
const SAMPLE: &str = include_str!("../../../deploy/samples/seed/multicloudmongodb-full.yaml");

fn step(text: &str) {
    println!("\n==> {text}");
}

#[allow(
    clippy::expect_used,
    reason = "the demo is built on the e2e harness, which fails by panicking; unwinding runs the drops that stop our processes and the federation (process::exit would leave them running)"
)]
#[tokio::main]
async fn main() {
    let keep = std::env::args().any(|a| a == "--keep");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let started = Instant::now();
    let run_dir = fedstate_local::layout::repository_root()
        .join(".fedstate-local")
        .join("demo");
    step(&format!(
        "bringing up the local federation (3 members) in {}",
        run_dir.display()
    ));
    let fed = match Federation::up(Options {
        members: 3,
        ports: PortPlan { base: 31000 },
        run_dir,
        timeout: Duration::from_secs(900),
    })
    .await
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("demo: the federation did not come up: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "    up in {}s; kubeconfigs in {}",
        started.elapsed().as_secs(),
        fed.kubeconfig_dir().display()
    );

    step(
        "starting fedstate-scheduler, fedstate-manager, 3 x fedstate-mongo-agent and the replica-set simulator",
    );
    let stack = Stack::start(&fed).await;
    let karmada = fed.karmada_client().await.expect("karmada client");
    ensure_namespace(&karmada, NAMESPACE).await;
    stack::prepare_seed_sample(&fed, NAMESPACE).await;

    step(
        "applying FedState's MultiCloudMongoDB sample, unchanged (deploy/samples/seed/multicloudmongodb-full.yaml)",
    );
    let mut sample: serde_json::Value = serde_yaml::from_str(SAMPLE).expect("sample");
    sample["metadata"]["namespace"] = json!(NAMESPACE);
    harness::apply_json(
        &karmada,
        &ApiResource::erase::<MultiCloudMongoDB>(&()),
        sample,
    )
    .await;
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), NAMESPACE);
    let name = "multicloudmongodb-sample";

    let obj = wait_for(&api, name, "a placement", Duration::from_secs(120), |o| {
        o.status
            .as_ref()
            .and_then(|s| s.placement.as_ref())
            .is_some()
    })
    .await;
    print_placement(&obj);
    let obj = wait_for(
        &api,
        name,
        "the image check",
        Duration::from_secs(120),
        |o| condition(o, "SpecValid").is_some(),
    )
    .await;
    if let Some(c) = condition(&obj, "SpecValid").filter(|c| !c.is_true()) {
        println!(
            "    SpecValid=False: {}",
            c.message.as_deref().unwrap_or("")
        );
        step("doing what the condition says: spec.imageSetting.image = mongo:7.0");
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"imageSetting": {"image": "mongo:7.0"}}})),
        )
        .await
        .expect("patch image");
    }

    step("waiting for the replica set: one PRIMARY, the rest SECONDARY, state Health");
    let healthy = wait_for(&api, name, "state Health", Duration::from_secs(420), |o| {
        o.status.as_ref().and_then(|s| s.state)
            == Some(fedstate_api::v1alpha1::ServiceState::Health)
    })
    .await;
    print_status(&healthy);
    println!(
        "\n    kubectl --kubeconfig {} get mcm -n {NAMESPACE}",
        fed.karmada_kubeconfig().display()
    );
    println!("    done in {}s", started.elapsed().as_secs());

    if keep {
        step("--keep: everything stays up; Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
    }
    stack.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Err(e) = fed.down() {
        eprintln!("demo: teardown: {e}");
    }
}

fn condition<'a>(o: &'a MultiCloudMongoDB, type_: &str) -> Option<&'a fedstate_api::Condition> {
    o.status
        .as_ref()
        .and_then(|s| fedstate_api::condition::find_condition(&s.conditions, type_))
}

/// Poll until `done`; on timeout print what there is and exit non-zero.
async fn wait_for(
    api: &Api<MultiCloudMongoDB>,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&MultiCloudMongoDB) -> bool,
) -> MultiCloudMongoDB {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < timeout {
        if let Ok(o) = api.get(name).await {
            if done(&o) {
                println!("    {what} after {:.0}s", started.elapsed().as_secs_f32());
                return o;
            }
            last = Some(o);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!("demo: no {what} after {}s; last status:", timeout.as_secs());
    if let Some(o) = last {
        print_status(&o);
    }
    std::process::exit(1);
}

fn print_placement(o: &MultiCloudMongoDB) {
    let Some(p) = o.status.as_ref().and_then(|s| s.placement.as_ref()) else {
        return;
    };
    println!("    NAME                       STATE   SIZE  PLACEMENT");
    let state = o
        .status
        .as_ref()
        .and_then(|s| s.state)
        .map(|s| format!("{s:?}"))
        .unwrap_or_default();
    println!(
        "    {:<26} {:<7} {:<5} {}",
        o.name_any(),
        state,
        o.spec.replicaset,
        p.summary
    );
    println!("    CLUSTER    DATA  VOTES  PRIORITY  ARBITER");
    for c in &p.clusters {
        println!(
            "    {:<10} {:<5} {:<6} {:<9} {}",
            c.cluster,
            c.replicaset,
            c.votes.unwrap_or(0),
            c.priority.unwrap_or(0),
            c.arbiter.unwrap_or(false)
        );
    }
    println!("    quorum-safe: {}", p.quorum_safe.unwrap_or(false));
}

fn print_status(o: &MultiCloudMongoDB) {
    let view = json!({
        "apiVersion": MultiCloudMongoDB::api_version(&()),
        "kind": MultiCloudMongoDB::kind(&()),
        "metadata": {"name": o.name_any(), "namespace": o.namespace(), "generation": o.metadata.generation,
                     "annotations": {"schedulerResult": o.annotations().get("schedulerResult")}},
        "status": o.status,
    });
    for line in serde_yaml::to_string(&view).unwrap_or_default().lines() {
        println!("    {line}");
    }
}
