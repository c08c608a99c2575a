//! FedState on a running local federation, in-process: our CRDs and the Karmada resource
//! interpreter installed, and fedstate-scheduler, fedstate-manager, one fedstate-mongo-agent per
//! member and the replica-set simulator (the test stand-in for mongod) running as tasks. Used by
//! the demo (`scripts/demo.sh`) and end-to-end tests that need the whole story.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: its functions are called by the e2e trials, and a panic is how they fail the trial"
)]

use std::sync::Arc;
use std::time::Duration;

use fedstate_api::{MongoDB, MultiCloudMongoDB};
use fedstate_local::{Federation, member_name, member_vip};
use fedstate_mongo_agent::controller::{Context as AgentContext, Settings as AgentSettings};
use fedstate_mongo_agent::resources::MemberAddressing;
use fedstate_rs_sim::bridge::MemberCluster;
use fedstate_rs_sim::{Simulator, world};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolume};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::harness::{self, eventually};

/// The Karmada resource interpreter for `MongoDB` we ship.
pub const INTERPRETER: &str = include_str!("../../deploy/karmada/resourceinterpreter-mongodb.yaml");

/// Our two CRDs (as `deploy/crds` has them), served before this returns.
pub async fn install_crds(client: &kube::Client, what: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [MultiCloudMongoDB::crd(), MongoDB::crd()] {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply(harness::FIELD_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("install CRD {name} in {what}: {e}"));
    }
    eventually(
        &format!("our CRDs served in {what}"),
        Duration::from_secs(120),
        || async {
            Api::<MongoDB>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            Api::<MultiCloudMongoDB>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        },
    )
    .await;
}

/// Set (or, with `None`, remove) a label on every node of one cluster.
pub async fn label_nodes(client: &kube::Client, key: &str, value: Option<&str>) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    for node in nodes
        .list(&ListParams::default())
        .await
        .expect("list nodes")
        .items
    {
        nodes
            .patch(
                &node.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .unwrap_or_else(|e| panic!("label node {}: {e}", node.name_any()));
    }
}

pub async fn ensure_namespace(client: &kube::Client, ns: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces
        .get_opt(ns)
        .await
        .expect("get namespace")
        .is_none()
    {
        let obj: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
            .expect("namespace");
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .expect("create namespace");
    }
}

/// Karmada's `ResourceInterpreterCustomization` resource.
pub fn interpreter_resource() -> ApiResource {
    ApiResource {
        group: "config.karmada.io".into(),
        version: "v1alpha1".into(),
        api_version: "config.karmada.io/v1alpha1".into(),
        kind: "ResourceInterpreterCustomization".into(),
        plural: "resourceinterpretercustomizations".into(),
    }
}

/// Our interpreter for `MongoDB`, applied to the Karmada apiserver.
pub async fn install_interpreter(karmada: &kube::Client) {
    let interpreter: serde_json::Value =
        serde_yaml::from_str(INTERPRETER).expect("interpreter yaml");
    harness::apply_json(karmada, &interpreter_resource(), interpreter).await;
}

/// One fedstate-mongo-agent for member `index` (our CRDs must be installed there), running until
/// `stop`; returns the member as the simulator's bridge needs it.
pub fn start_agent(client: kube::Client, index: u32, stop: &CancellationToken) -> MemberCluster {
    let vip = member_vip(index).to_string();
    let ctx = Arc::new(AgentContext::new(
        client.clone(),
        AgentSettings {
            addressing: MemberAddressing::NodePort { vip: vip.clone() },
            cluster_name: Some(member_name(index)),
            namespace: None,
            mongo_timeout: Duration::from_secs(2),
        },
    ));
    tokio::spawn(fedstate_mongo_agent::controller::run(
        ctx,
        stop.child_token(),
    ));
    MemberCluster {
        name: member_name(index),
        vip,
        client,
    }
}

/// `pods/exec` into simulated members: the `fedstate-sim-shell` binary built next to this one
/// (cargo builds the package's binaries before its tests; the demo builds it too).
pub fn pod_shell() -> fedstate_rs_sim::bridge::PodShell {
    let exe = std::env::current_exe().expect("current exe");
    let shell = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("fedstate-sim-shell"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "fedstate-sim-shell not built next to {} (cargo build -p fedstate-e2e --bins)",
                exe.display()
            )
        });
    fedstate_rs_sim::bridge::PodShell {
        shell,
        dir: std::env::temp_dir().join(format!("fedstate-sim-pods-{}", std::process::id())),
    }
}

/// Everything of FedState running against `fed`, until [`Stack::stop`].
#[derive(Debug)]
pub struct Stack {
    stop: CancellationToken,
    pub simulator: Arc<Simulator>,
    /// The simulated pods' files (removed on drop).
    pods_dir: std::path::PathBuf,
}

impl Stack {
    /// Install CRDs (Karmada and members) and the interpreter, then start every component.
    pub async fn start(fed: &Federation) -> Self {
        let karmada = fed.karmada_client().await.expect("karmada client");
        install_crds(&karmada, "karmada").await;
        install_interpreter(&karmada).await;

        let stop = CancellationToken::new();
        let simulator = Arc::new(Simulator::start(
            world::Settings::default(),
            Duration::from_millis(250),
        ));
        let mut clusters = Vec::new();
        for i in 1..=fed.members() {
            let client = fed.member_client(i).await.expect("member client");
            install_crds(&client, &member_name(i)).await;
            clusters.push(start_agent(client, i, &stop));
        }
        let shell = pod_shell();
        let pods_dir = shell.dir.clone();
        tokio::spawn(fedstate_rs_sim::bridge::run_with_shell(
            simulator.clone(),
            clusters,
            Some(shell),
            stop.child_token(),
        ));

        let (client, token) = (karmada.clone(), stop.child_token());
        tokio::spawn(async move {
            let options = fedstate_manager::controller::Options {
                busy_requeue: Duration::from_secs(3),
                idle_requeue: Duration::from_secs(60),
            };
            fedstate_manager::controller::run(client, options, Default::default(), token).await
        });

        let tls = fed.estimator_tls();
        let args = scheduler_args(&fed.karmada_kubeconfig(), &tls);
        let (client, token) = (karmada, stop.child_token());
        tokio::spawn(async move {
            let health = fedstate_runtime::admin::Health::default();
            if let Err(e) =
                fedstate_scheduler::service::controllers(client, &args, health, token).await
            {
                tracing::error!(error = %e, "scheduler stopped");
            }
        });
        Self {
            stop,
            simulator,
            pods_dir,
        }
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.pods_dir);
    }
}

/// The scheduler's flags for this federation (estimators over mTLS with its CA).
/// The flags fedstate-scheduler gets on the local federation: the Karmada kubeconfig, an
/// ephemeral admin port, the estimators' mTLS files and the e2e deadlines.
pub fn scheduler_flags(
    kubeconfig: &std::path::Path,
    tls: &fedstate_local::EstimatorTls,
) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--admin-addr=127.0.0.1:0".to_owned(),
        format!("--scheduler-estimator-ca-file={}", tls.ca_cert.display()),
        format!(
            "--scheduler-estimator-cert-file={}",
            tls.client_cert.display()
        ),
        format!(
            "--scheduler-estimator-key-file={}",
            tls.client_key.display()
        ),
        "--scheduler-estimator-timeout=2s".to_owned(),
        "--scheduler-estimator-budget=4s".to_owned(),
    ]
}

pub fn scheduler_args(
    kubeconfig: &std::path::Path,
    tls: &fedstate_local::EstimatorTls,
) -> fedstate_scheduler::service::RunArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: fedstate_scheduler::service::RunArgs,
    }
    let cli = <Cli as clap::Parser>::parse_from(
        std::iter::once("fedstate-scheduler".to_owned()).chain(scheduler_flags(kubeconfig, tls)),
    );
    cli.run
}

/// What the seed sample needs in every member (nodes labelled `deploy=mongo`, its StorageClass
/// and volumes) and in Karmada (the user's mongod ConfigMap it names, in `namespace`).
pub async fn prepare_seed_sample(fed: &Federation, namespace: &str) {
    for i in 1..=fed.members() {
        let client = fed.member_client(i).await.expect("member client");
        label_nodes(&client, "deploy", Some("mongo")).await;
        let apply = PatchParams::apply(harness::FIELD_MANAGER).force();
        let classes: Api<StorageClass> = Api::all(client.clone());
        let class = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "managed-nfs-storage"},
                           "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"});
        classes
            .patch("managed-nfs-storage", &apply, &Patch::Apply(&class))
            .await
            .expect("storage class");
        let pvs: Api<PersistentVolume> = Api::all(client.clone());
        for v in 0..8 {
            let pv_name = format!("demo-nfs-{}-{v}", member_name(i));
            let pv = json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
                            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "managed-nfs-storage",
                                     "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": format!("/tmp/fedstate-demo/{pv_name}")}}});
            pvs.patch(&pv_name, &apply, &Patch::Apply(&pv))
                .await
                .expect("persistent volume");
        }
    }
    // The user's mongod configuration the sample names in spec.config.configRef, on Karmada (the
    // manager propagates it).
    let karmada = fed.karmada_client().await.expect("karmada client");
    let cms: Api<ConfigMap> = Api::namespaced(karmada, namespace);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "my-custome-configmap", "namespace": namespace},
                    "data": {"mongod.yaml": "operationProfiling:\n  slowOpThresholdMs: 200\n"}});
    cms.patch(
        "my-custome-configmap",
        &PatchParams::apply(harness::FIELD_MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await
    .expect("configmap");
}
