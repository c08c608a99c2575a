//! FedState installed as a platform engineer installs it: real Helm into the real apiservers of
//! the local federation, our binaries run as the rendered Deployments say (`fedstate_e2e::pods`),
//! with the credentials the charts wire by default, then the seed sample to `Health`. One story,
//! each step its own test; a step run alone first runs the steps it builds on (each step runs once
//! per run, and a failed step fails every later step that needs it with its first failure):
//!
//! 1. `helm install` the control-plane chart twice, with its defaults: `target=karmada` into the
//!    Karmada apiserver (CRDs, interpreter, ServiceAccounts, RBAC) and `target=host` into the host
//!    cluster (member1 plays the Karmada host cluster here), which holds the Secrets Karmada 1.18's
//!    installer creates: `karmada-scheduler-config` (the Karmada admin kubeconfig) and
//!    `karmada-cert` (the estimators' mTLS files).
//! 2. `helm install` the member chart once into the Karmada apiserver with `propagate.enabled`:
//!    Karmada rolls it out to every member, each with its own VIP and name.
//! 3. A scheduler pod with the admin kubeconfig acts as its ServiceAccount (`--as`): without its
//!    leader-election RoleBinding it is refused as that account and not ready; with it, ready.
//! 4. Every replica of every Deployment runs as a local process (2 schedulers, 2 managers, one agent
//!    per member): all of them become ready, standbys included, and each Lease has one holder.
//! 5. The seed sample (with the image its condition asks for) reaches `Health`. An RBAC gap of any
//!    chart shows here as a component that cannot do its job.
//! 6. Every process's `/metrics`: HELP for every series, histograms with karmada-scheduler's
//!    buckets, Karmada's `result` values, `process_*` and `fedstate_build_info`; every series the
//!    dashboard and the alerts query exists in the scrape (except kube-state-metrics' series).
//! 7. `helm upgrade` to the README's token kubeconfigs (no impersonation), one scheduler replica and
//!    a debug log level; the new pods replace the old ones (SIGTERM, clean exit) and take the Leases.
//! 8. Fault injection: the Karmada apiserver restarts. Every process keeps running (none
//!    restarted), counts its watches' drops in `fedstate_watch_errors_total`, is ready again, and
//!    acts on what changes after the restart: the scheduler places a new binding, and the next
//!    step's teardown is the manager's work after the restart. Then member2's apiserver restarts:
//!    its agent keeps running, counts the drop and is ready again (the teardown in member2 is
//!    its work after the restart).
//!    Then a second writer (another field manager, as `kubectl edit` would) edits what the
//!    manager created: it drops the tolerations of the sample's PropagationPolicy and adds a rule
//!    to its OverridePolicy. The running manager (after the restarts above) puts both back on its
//!    own, without a restart, and the sample stays `Health`.
//! 9. Deleting the sample is finished by the manager and, in every member, by its agent (no
//!    MongoDB left); then every process exits cleanly on SIGTERM within its pod's grace period.
//! 10. No Secret value of the sample in any pod's log.
//! 11. `helm uninstall` of every release leaves nothing of ours in any cluster.
//!
//! Standalone trials (no federation): `helm lint --strict` of both charts, a bad value named by
//! the schema; `promtool check rules` and `promtool test rules` on the shipped alerts; the default
//! wiring of the host chart (args, Secrets and mounts) is what the README says.
//!
//! Runs only with `FEDSTATE_E2E=1` (otherwise every trial is reported ignored), through
//! `deploy/local/e2e.sh`, which builds our binaries (`fedstate_e2e::process::our_binary`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fedstate_api::{MongoDB, MultiCloudMongoDB};
use fedstate_e2e::harness::{self, eventually};
use fedstate_e2e::pods::{self, Kubelet, Node, Pod};
use fedstate_e2e::scenarios;
use fedstate_e2e::stack;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_local::{Federation, member_name, member_vip};
use futures::FutureExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

const SAMPLE_NS: &str = "fedstate-install";
const SAMPLE: &str = "multicloudmongodb-sample";
const SEED: &str = include_str!("../../deploy/samples/seed/multicloudmongodb-full.yaml");
const KARMADA_NS: &str = "fedstate-system";
const HOST_NS: &str = "karmada-system";
const MEMBER_NS: &str = "fedstate-system";
const ADMIN_PORT: u16 = 8080;
const COMPONENTS: [&str; 2] = ["fedstate-scheduler", "fedstate-manager"];

fn main() -> std::process::ExitCode {
    Suite::new("install", |fed, karmada| Box::pin(setup(fed, karmada)))
        .scenarios(scenarios![
            control_plane_chart_installs_into_karmada_and_the_host,
            member_chart_rolls_out_through_karmada_with_each_vip,
            a_pod_acts_as_its_service_account_and_gets_only_its_rbac,
            every_replica_runs_ready_with_one_lease_holder,
            seed_sample_reaches_health,
            metrics_have_help_karmada_buckets_and_every_queried_series,
            helm_upgrade_to_token_kubeconfigs_rolls_out,
            the_karmada_apiserver_restarts_and_every_process_recovers,
            a_member_apiserver_restarts_and_its_agent_recovers,
            a_second_writer_edits_our_policies_and_the_manager_puts_them_back,
            deleting_the_sample_then_sigterm_stops_everything_cleanly,
            no_secret_value_in_any_log,
            helm_uninstall_leaves_nothing_behind,
        ])
        .standalone(
            "charts_are_lint_clean_and_the_schema_names_a_bad_field",
            charts_are_lint_clean_and_the_schema_names_a_bad_field,
        )
        .standalone(
            "alerts_pass_promtool_check_and_test_rules",
            alerts_pass_promtool_check_and_test_rules,
        )
        .standalone(
            "default_host_wiring_is_what_the_readme_says",
            default_host_wiring_is_what_the_readme_says,
        )
        .teardown(|env| Box::pin(teardown(env)))
        .run()
}

/// The checkout under test: cargo runs test binaries with CARGO_MANIFEST_DIR set to this crate.
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|e2e| e2e.parent().map(Path::to_path_buf))
        .unwrap_or_else(fedstate_local::layout::repository_root)
}

fn chart(name: &str) -> String {
    repo()
        .join("deploy/charts")
        .join(name)
        .display()
        .to_string()
}

/// A tool of the local federation's bin directory (helm, promtool; `deploy/local/build.sh`).
fn tool(name: &str) -> PathBuf {
    let dir = fedstate_local::binaries::bin_dir()
        .unwrap_or_else(|e| panic!("the local federation's tools: {e}"));
    dir.join(name)
}

/// Runs a tool, panics with its output unless it succeeds; returns stdout and stderr.
fn run(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{stdout}\n{stderr}",
        tool.display(),
        args.join(" "),
        out.status
    );
    stdout + &stderr
}

/// One step of the story, done at most once per run. A step that failed fails every later step
/// that needs it, with its first failure.
struct Once<T>(OnceCell<Result<T, String>>);

impl<T> Once<T> {
    fn new() -> Self {
        Self(OnceCell::new())
    }

    async fn get(&self, what: &str, step: impl Future<Output = T>) -> &T {
        let mut ran_here = false;
        let outcome = self
            .0
            .get_or_init(|| {
                ran_here = true;
                AssertUnwindSafe(step).catch_unwind().map(|r| {
                    r.map_err(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "panicked".to_owned())
                    })
                })
            })
            .await;
        match outcome {
            Ok(v) => v,
            Err(e) if ran_here => panic!("{what}: {e}"),
            Err(e) => panic!("needs the step `{what}`, which failed earlier in this run: {e}"),
        }
    }
}

/// The clusters, the pods running, and the steps done so far.
struct Story {
    helm: PathBuf,
    work: PathBuf,
    karmada: Node,
    host: Node,
    members: Vec<Node>,
    kubelet: Kubelet,
    /// (what, pod) of every process running as a pod.
    pods: tokio::sync::Mutex<Vec<(String, Pod)>>,
    /// Stops the replica-set simulator.
    simulator: CancellationToken,
    sim_pods: std::sync::Mutex<Option<PathBuf>>,
    control_plane: Once<()>,
    member_chart: Once<()>,
    impersonation: Once<()>,
    running: Once<()>,
    health: Once<Vec<String>>,
    upgraded: Once<()>,
    stopped: Once<()>,
}

impl std::fmt::Debug for Story {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Story")
            .field("work", &self.work)
            .finish_non_exhaustive()
    }
}

async fn setup(fed: &Federation, karmada: &kube::Client) -> Story {
    let work = fed.run_dir().join("install");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let mut members = Vec::new();
    for i in 1..=fed.members() {
        members.push(node(fed, i).await);
    }
    Story {
        helm: fed.bin_dir().join("helm"),
        kubelet: Kubelet::new(work.join("pods")),
        work,
        karmada: Node {
            cluster: "karmada".into(),
            client: karmada.clone(),
            kubeconfig: fed.karmada_kubeconfig(),
        },
        // member1 plays the Karmada host cluster.
        host: members[0].clone(),
        members,
        pods: tokio::sync::Mutex::new(Vec::new()),
        simulator: CancellationToken::new(),
        sim_pods: std::sync::Mutex::new(None),
        control_plane: Once::new(),
        member_chart: Once::new(),
        impersonation: Once::new(),
        running: Once::new(),
        health: Once::new(),
        upgraded: Once::new(),
        stopped: Once::new(),
    }
}

/// Stops what a failed or partial run left running: every pod (SIGTERM to all, then each its grace
/// period), the simulator.
async fn teardown(env: &Env<Story>) {
    let mut pods = env.ctx.pods.lock().await;
    stop_pods(&mut pods);
    env.ctx.simulator.cancel();
    let dir = env.ctx.sim_pods.lock().ok().and_then(|mut d| d.take());
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// SIGTERM to all, then each gets its pod's grace period, as the kubelet stops pods; the exit
/// status of each (`None`: killed).
fn stop_pods(
    pods: &mut Vec<(String, Pod)>,
) -> Vec<(String, Pod, Option<std::process::ExitStatus>)> {
    let stopping = std::time::Instant::now();
    for (_, p) in pods.iter() {
        p.process.terminate();
    }
    let mut out = Vec::new();
    for (what, mut p) in pods.drain(..) {
        let status = p.process.wait_stopped();
        eprintln!(
            "  {what} {} exited {status:?} ({:.1}s after SIGTERM)",
            p.name,
            stopping.elapsed().as_secs_f32()
        );
        out.push((what, p, status));
    }
    out
}

fn assert_clean_exits(stopped: &[(String, Pod, Option<std::process::ExitStatus>)]) {
    for (what, p, status) in stopped {
        assert!(
            status.is_some_and(|s| s.success()),
            "{what} ({}) did not stop cleanly on SIGTERM within its grace period: {status:?}; log {}",
            p.name,
            p.log().display()
        );
    }
}

/// Index N is member N.
async fn node(fed: &Federation, index: u32) -> Node {
    Node {
        cluster: member_name(index),
        client: fed.member_client(index).await.expect("member client"),
        kubeconfig: fed.member_kubeconfig(index),
    }
}

// ---- the story's steps, each memoized

async fn control_plane(env: &Env<Story>) {
    let s = &env.ctx;
    s.control_plane
        .get(
            "control-plane chart installed",
            install_control_plane(&env.fed, &s.helm, &s.karmada, &s.host),
        )
        .await;
}

async fn member_chart(env: &Env<Story>) {
    control_plane(env).await;
    let s = &env.ctx;
    s.member_chart
        .get(
            "member chart rolled out",
            install_members(&env.fed, &s.helm, &s.karmada, &s.members),
        )
        .await;
}

async fn impersonation(env: &Env<Story>) {
    control_plane(env).await;
    let s = &env.ctx;
    s.impersonation
        .get(
            "a pod acts as its ServiceAccount",
            impersonation_step(&s.kubelet, &s.karmada, &s.host),
        )
        .await;
}

async fn running(env: &Env<Story>) {
    member_chart(env).await;
    // Before any other pod runs: the check takes the scheduler's leader-election RoleBinding away
    // for a while.
    impersonation(env).await;
    let s = &env.ctx;
    s.running
        .get("every replica running", running_step(s))
        .await;
}

async fn health(env: &Env<Story>) -> &[String] {
    running(env).await;
    let s = &env.ctx;
    s.health
        .get("the seed sample Health", health_step(&env.fed, s))
        .await
}

async fn upgraded(env: &Env<Story>) {
    running(env).await;
    let s = &env.ctx;
    s.upgraded
        .get("helm upgrade rolled out", upgrade_step(s))
        .await;
}

async fn stopped(env: &Env<Story>) {
    health(env).await;
    let s = &env.ctx;
    s.stopped
        .get("the sample deleted and every pod stopped", stop_step(s))
        .await;
}

// ---- scenarios

async fn control_plane_chart_installs_into_karmada_and_the_host(env: &Env<Story>) {
    control_plane(env).await;
}

async fn member_chart_rolls_out_through_karmada_with_each_vip(env: &Env<Story>) {
    member_chart(env).await;
}

async fn a_pod_acts_as_its_service_account_and_gets_only_its_rbac(env: &Env<Story>) {
    impersonation(env).await;
}

async fn every_replica_runs_ready_with_one_lease_holder(env: &Env<Story>) {
    running(env).await;
}

async fn seed_sample_reaches_health(env: &Env<Story>) {
    health(env).await;
}

async fn metrics_have_help_karmada_buckets_and_every_queried_series(env: &Env<Story>) {
    health(env).await;
    let pods = env.ctx.pods.lock().await;
    check_metrics(&pods, &env.ctx.work).await;
}

async fn helm_upgrade_to_token_kubeconfigs_rolls_out(env: &Env<Story>) {
    upgraded(env).await;
}

async fn the_karmada_apiserver_restarts_and_every_process_recovers(env: &Env<Story>) {
    health(env).await;
    let s = &env.ctx;
    let mut pods = s.pods.lock().await;
    env.fed
        .restart_karmada_apiserver()
        .await
        .expect("restart the Karmada apiserver");
    for (what, pod) in pods.iter_mut() {
        assert!(
            pod.process.running(),
            "{what} {} exited when the Karmada apiserver restarted; log {}",
            pod.name,
            pod.log().display()
        );
    }
    all_ready(&pods).await;
    // Each control-plane component saw its watches drop and counted it (the standby replicas
    // watch nothing; the agents watch their member cluster).
    for component in COMPONENTS {
        let of_component: Vec<&Pod> = pods
            .iter()
            .filter(|(what, _)| what == component)
            .map(|(_, p)| p)
            .collect();
        eventually(
            &format!("{component} counts the dropped watches"),
            Duration::from_secs(60),
            || async {
                let mut total = 0.0;
                for pod in &of_component {
                    total += watch_errors(pod).await?;
                }
                if total > 0.0 {
                    Ok(())
                } else {
                    Err("fedstate_watch_errors_total is 0".to_owned())
                }
            },
        )
        .await;
    }
    drop(pods);
    // The scheduler's watches are live again: a ConfigMap propagated after the restart by a
    // policy naming it gets its clusters.
    let name = "after-apiserver-restart";
    let karmada = &s.karmada.client;
    harness::apply_json(
        karmada,
        &ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": SAMPLE_NS}, "data": {"a": "b"}}),
    )
    .await;
    let policy = harness::propagation_policy_resource();
    harness::apply_json(
        karmada,
        &policy,
        json!({"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
               "metadata": {"name": name, "namespace": SAMPLE_NS},
               "spec": {"schedulerName": scheduler_name(),
                        "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "name": name}],
                        "placement": {"clusterAffinity": {"clusterNames": [member_name(1)]}}}}),
    )
    .await;
    let bindings: Api<fedstate_api::karmada::binding::ResourceBinding> =
        Api::namespaced(karmada.clone(), SAMPLE_NS);
    let binding = format!("{name}-configmap");
    eventually(
        "the scheduler places a binding created after the restart",
        Duration::from_secs(120),
        || async {
            let b = bindings.get(&binding).await.map_err(|e| e.to_string())?;
            let clusters: Vec<String> = b.spec.clusters.iter().map(|c| c.name.clone()).collect();
            if clusters == [member_name(1)] {
                Ok(())
            } else {
                Err(format!("spec.clusters {clusters:?}"))
            }
        },
    )
    .await;
    let dp = DeleteParams::default();
    Api::<kube::api::DynamicObject>::namespaced_with(karmada.clone(), SAMPLE_NS, &policy)
        .delete(name, &dp)
        .await
        .expect("delete the policy");
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(karmada.clone(), SAMPLE_NS)
        .delete(name, &dp)
        .await
        .expect("delete the ConfigMap");
}

async fn a_member_apiserver_restarts_and_its_agent_recovers(env: &Env<Story>) {
    health(env).await;
    let s = &env.ctx;
    let mut pods = s.pods.lock().await;
    let agent = format!("fedstate-mongo-agent@{}", member_name(2));
    env.fed.kill_member(2).expect("stop member2's apiserver");
    // Long enough for every watch on it to notice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.fed
        .restore_member(2)
        .await
        .expect("start member2's apiserver again");
    let (_, pod) = pods
        .iter_mut()
        .find(|(what, _)| *what == agent)
        .unwrap_or_else(|| panic!("{agent} runs"));
    assert!(
        pod.process.running(),
        "{agent} exited when its apiserver restarted; log {}",
        pod.log().display()
    );
    let pod = &*pod;
    eventually(
        &format!("{agent} counts the dropped watches"),
        Duration::from_secs(60),
        || async {
            let total = watch_errors(pod).await?;
            if total > 0.0 {
                Ok(())
            } else {
                Err("fedstate_watch_errors_total is 0".to_owned())
            }
        },
    )
    .await;
    all_ready(&pods).await;
}

/// Another writer than the manager edits the objects the manager created for the sample, with
/// merge patches under its own field manager (as `kubectl edit` does): the manager notices
/// (it watches what it creates) and its server-side apply puts its fields back.
async fn a_second_writer_edits_our_policies_and_the_manager_puts_them_back(env: &Env<Story>) {
    health(env).await;
    let s = &env.ctx;
    let karmada = &s.karmada.client;
    let policies: Api<kube::api::DynamicObject> = Api::namespaced_with(
        karmada.clone(),
        SAMPLE_NS,
        &harness::propagation_policy_resource(),
    );
    let overrides: Api<kube::api::DynamicObject> = Api::namespaced_with(
        karmada.clone(),
        SAMPLE_NS,
        &ApiResource::erase::<fedstate_api::karmada::override_policy::OverridePolicy>(&()),
    );
    let ours = policies
        .get(SAMPLE)
        .await
        .expect("the sample's PropagationPolicy");
    let tolerations = ours.data["spec"]["placement"]["clusterTolerations"].clone();
    assert!(
        tolerations.as_array().is_some_and(|t| !t.is_empty()),
        "the manager's policy tolerates Karmada's taints: {tolerations}"
    );
    let rules = overrides
        .get(SAMPLE)
        .await
        .expect("the sample's OverridePolicy")
        .data["spec"]["overrideRules"]
        .clone();
    let intruder = kube::api::PatchParams {
        field_manager: Some("second-writer".to_owned()),
        ..Default::default()
    };
    let mut with_extra = rules.as_array().cloned().unwrap_or_default();
    with_extra.push(json!({
        "targetCluster": {"clusterNames": ["not-a-cluster"]},
        "overriders": {"annotationsOverrider": [{"operator": "add", "value": {"second-writer": "was-here"}}]}
    }));
    let edited = std::time::Instant::now();
    policies
        .patch(
            SAMPLE,
            &intruder,
            &kube::api::Patch::Merge(json!({"spec": {"placement": {"clusterTolerations": []}}})),
        )
        .await
        .expect("the second writer edits the PropagationPolicy");
    overrides
        .patch(
            SAMPLE,
            &intruder,
            &kube::api::Patch::Merge(json!({"spec": {"overrideRules": with_extra}})),
        )
        .await
        .expect("the second writer edits the OverridePolicy");
    eventually(
        "the manager puts its policies back",
        // Well under the manager's resync (--idle-requeue-seconds, 300 s by default): only a
        // watch of its policies brings it back this soon. 1.1 s here (2026-12-02); with
        // kube-runtime's default watch backoff, after the restarts above, over 30 s.
        Duration::from_secs(15),
        || async {
            let p = policies.get(SAMPLE).await.map_err(|e| e.to_string())?;
            let o = overrides.get(SAMPLE).await.map_err(|e| e.to_string())?;
            let now_tolerations = &p.data["spec"]["placement"]["clusterTolerations"];
            let now_rules = &o.data["spec"]["overrideRules"];
            if *now_tolerations == tolerations && *now_rules == rules {
                Ok(())
            } else {
                Err(format!(
                    "tolerations {now_tolerations}, {} override rules (ours: {})",
                    now_rules.as_array().map_or(0, Vec::len),
                    rules.as_array().map_or(0, Vec::len)
                ))
            }
        },
    )
    .await;
    eprintln!(
        "  both policies restored {:.1}s after the second writer's edits",
        edited.elapsed().as_secs_f32()
    );
    let mut pods = s.pods.lock().await;
    for (what, pod) in pods
        .iter_mut()
        .filter(|(what, _)| what == "fedstate-manager")
    {
        assert!(
            pod.process.running(),
            "{what} {} exited while it fought the second writer; log {}",
            pod.name,
            pod.log().display()
        );
    }
    drop(pods);
    sample_health(karmada, "the sample stays Health", Duration::from_secs(60)).await;
}

/// The sum of a pod's `fedstate_watch_errors_total` series.
async fn watch_errors(pod: &Pod) -> Result<f64, String> {
    let (_, body) = http_get(&pod.url(ADMIN_PORT, "/metrics")).await?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("fedstate_watch_errors_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum())
}

/// The scheduler name the control-plane chart gives by default.
fn scheduler_name() -> String {
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/charts/fedstate/values.yaml"))
            .expect("values.yaml"),
    )
    .expect("values yaml");
    values["scheduler"]["schedulerName"]
        .as_str()
        .expect("scheduler.schedulerName in values.yaml")
        .to_owned()
}

async fn deleting_the_sample_then_sigterm_stops_everything_cleanly(env: &Env<Story>) {
    stopped(env).await;
}

async fn no_secret_value_in_any_log(env: &Env<Story>) {
    let values = health(env).await.to_vec();
    stopped(env).await;
    if let Err(e) = secrets_not_in_logs(&env.ctx.work, &values) {
        panic!("{e}");
    }
}

async fn helm_uninstall_leaves_nothing_behind(env: &Env<Story>) {
    member_chart(env).await;
    // Nothing of ours may run, and the sample must be gone, before the CRDs go.
    stopped(env).await;
    let s = &env.ctx;
    uninstall_leaves_nothing(&s.helm, &s.karmada, &s.host, &s.members).await;
}

// ---- standalone trials

fn charts_are_lint_clean_and_the_schema_names_a_bad_field() {
    let helm = tool("helm");
    let member_values = format!("{}/ci/lint-values.yaml", chart("fedstate-member"));
    for args in [
        vec!["lint", "--strict", &chart("fedstate") as &str],
        vec![
            "lint",
            "--strict",
            &chart("fedstate"),
            "--set",
            "target=karmada",
        ],
        vec![
            "lint",
            "--strict",
            &chart("fedstate-member"),
            "-f",
            &member_values,
        ],
        vec![
            "lint",
            "--strict",
            &chart("fedstate-member"),
            "--set",
            "propagate.enabled=true,crds.install=false,propagate.clusters[0].name=m1,propagate.clusters[0].vip=10.0.0.1",
        ],
    ] {
        let out = run(&helm, &args);
        assert!(out.contains("0 chart(s) failed"), "{out}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }
    // A value the schema refuses names the field.
    let out = Command::new(&helm)
        .args([
            "template",
            "x",
            &chart("fedstate"),
            "--set",
            "scheduler.estimator.timeout=soon",
        ])
        .output()
        .expect("helm template");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && (err.contains("scheduler.estimator.timeout")
                || err.contains("/scheduler/estimator/timeout")),
        "{err}"
    );
}

fn alerts_pass_promtool_check_and_test_rules() {
    let promtool = tool("promtool");
    let work = std::env::temp_dir().join(format!("fedstate-promtool-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    // The alerts as a plain Prometheus rules file (the PrometheusRule's spec).
    let rule: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/monitoring/alerts.yaml")).expect("alerts"),
    )
    .expect("alerts yaml");
    let rules_file = work.join("fedstate-rules.yaml");
    std::fs::write(
        &rules_file,
        serde_yaml::to_string(&rule["spec"]).expect("yaml"),
    )
    .expect("write");
    let out = run(
        &promtool,
        &["check", "rules", &rules_file.display().to_string()],
    );
    assert!(out.contains("SUCCESS"), "{out}");
    // alerts-test.yaml names `fedstate-rules.yaml` next to itself.
    let test_copy = work.join("alerts-test.yaml");
    std::fs::copy(
        repo().join("deploy/monitoring/alerts-test.yaml"),
        &test_copy,
    )
    .expect("copy alert tests");
    let out = run(
        &promtool,
        &["test", "rules", &test_copy.display().to_string()],
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let _ = std::fs::remove_dir_all(&work);
}

/// The objects `helm template` renders, by `Kind/name`.
fn render(args: &[&str]) -> BTreeMap<String, Value> {
    let mut all = vec!["template", "fedstate"];
    all.extend_from_slice(args);
    let out = Command::new(tool("helm"))
        .args(&all)
        .output()
        .expect("helm template");
    assert!(
        out.status.success(),
        "helm {}: {}",
        all.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut objects = BTreeMap::new();
    for doc in text.split("\n---") {
        let v: Value = serde_yaml::from_str(doc).expect("rendered YAML");
        if v.is_null() {
            continue;
        }
        let key = format!(
            "{}/{}",
            v["kind"].as_str().unwrap_or_default(),
            v["metadata"]["name"].as_str().unwrap_or_default()
        );
        objects.insert(key, v);
    }
    objects
}

/// The README's default: the host pods mount Karmada 1.18's own Secrets (`karmada-scheduler-config`
/// key `karmada.config`, `karmada-cert`), talk to no API of the host cluster, and make every request
/// as their ServiceAccount in the Karmada apiserver, which the `target=karmada` release creates.
fn default_host_wiring_is_what_the_readme_says() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    for said in [
        "`karmada-scheduler-config` (key `karmada.config`",
        "`karmada-cert`",
        "`ca.crt`, `karmada.crt`, `karmada.key`",
        "--as=system:serviceaccount:fedstate-system:fedstate-scheduler",
        "karmada.impersonate: true",
    ] {
        assert!(readme.contains(said), "the README no longer says {said}");
    }
    let host = render(&[&chart("fedstate"), "-n", HOST_NS]);
    for component in COMPONENTS {
        let d = &host[&format!("Deployment/{component}")];
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(
            pod["automountServiceAccountToken"],
            json!(false),
            "{component}"
        );
        let c = &pod["containers"][0];
        let args: Vec<&str> = c["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for want in [
            "--kubeconfig=/etc/karmada/config/karmada.config".to_owned(),
            format!("--as=system:serviceaccount:{KARMADA_NS}:{component}"),
            format!("--leader-elect-resource-namespace={KARMADA_NS}"),
            format!("--leader-elect-resource-name={component}"),
        ] {
            assert!(
                args.contains(&want.as_str()),
                "{component}: {want} in {args:?}"
            );
        }
        let mounts = &c["volumeMounts"];
        assert!(
            mounts
                .as_array()
                .expect("mounts")
                .iter()
                .any(|m| m["name"] == "karmada-config"
                    && m["mountPath"] == "/etc/karmada/config"
                    && m["readOnly"] == true),
            "{component}: {mounts}"
        );
        let volumes = pod["volumes"].as_array().expect("volumes");
        let config = volumes
            .iter()
            .find(|v| v["name"] == "karmada-config")
            .expect("karmada-config volume");
        assert_eq!(
            config["secret"],
            json!({"secretName": "karmada-scheduler-config", "items": [{"key": "karmada.config", "path": "karmada.config"}]}),
            "{component}"
        );
        if component == "fedstate-scheduler" {
            for (flag, key) in [
                ("ca", "ca.crt"),
                ("cert", "karmada.crt"),
                ("key", "karmada.key"),
            ] {
                let want = format!("--scheduler-estimator-{flag}-file=/etc/karmada/pki/{key}");
                assert!(args.contains(&want.as_str()), "{want} in {args:?}");
            }
            let tls = volumes
                .iter()
                .find(|v| v["name"] == "estimator-tls")
                .expect("estimator-tls volume");
            assert_eq!(tls["secret"]["secretName"], "karmada-cert");
            let keys: Vec<&str> = tls["secret"]["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter_map(|i| i["key"].as_str())
                .collect();
            assert_eq!(keys, ["ca.crt", "karmada.crt", "karmada.key"]);
            assert!(
                mounts
                    .as_array()
                    .expect("mounts")
                    .iter()
                    .any(|m| m["name"] == "estimator-tls" && m["mountPath"] == "/etc/karmada/pki"),
                "{mounts}"
            );
        }
    }
    // The accounts `--as` names, with their RBAC, in the Karmada release.
    let karmada = render(&[
        &chart("fedstate"),
        "-n",
        KARMADA_NS,
        "--set",
        "target=karmada",
    ]);
    for component in COMPONENTS {
        for key in [
            format!("ServiceAccount/{component}"),
            format!("ClusterRoleBinding/{component}"),
            format!("RoleBinding/{component}-leader-election"),
        ] {
            assert!(karmada.contains_key(&key), "target=karmada renders {key}");
        }
        assert_eq!(
            karmada[&format!("ServiceAccount/{component}")]["metadata"]["namespace"],
            KARMADA_NS
        );
    }
    // Without impersonation, no `--as`.
    let plain = render(&[
        &chart("fedstate"),
        "-n",
        HOST_NS,
        "--set",
        "karmada.impersonate=false",
    ]);
    for component in COMPONENTS {
        let args = &plain[&format!("Deployment/{component}")]["spec"]["template"]["spec"]["containers"]
            [0]["args"];
        assert!(
            !args.to_string().contains("--as="),
            "{component} with impersonate=false: {args}"
        );
    }
}

// ---- step bodies

async fn install_control_plane(fed: &Federation, helm: &Path, karmada: &Node, host: &Node) {
    let kk = karmada.kubeconfig.display().to_string();
    run(
        helm,
        &[
            "install",
            "fedstate-karmada",
            &chart("fedstate"),
            "--kubeconfig",
            &kk,
            "-n",
            KARMADA_NS,
            "--create-namespace",
            "--set",
            "target=karmada",
            "--wait",
            "--timeout",
            "2m",
        ],
    );
    // What the chart put into the Karmada apiserver.
    let crds: Api<CustomResourceDefinition> = Api::all(karmada.client.clone());
    for crd in [
        "multicloudmongodbs.middleware.fedstate.io",
        "mongodbs.middleware.fedstate.io",
    ] {
        crds.get(crd)
            .await
            .unwrap_or_else(|e| panic!("CRD {crd} in Karmada: {e}"));
    }
    Api::<kube::api::DynamicObject>::all_with(
        karmada.client.clone(),
        &stack::interpreter_resource(),
    )
    .get("fedstate-mongodb")
    .await
    .expect("interpreter installed by the chart");

    // The host cluster's Secrets as Karmada 1.18's installer (`karmadactl init`) creates them in
    // karmada-system: karmada-scheduler's kubeconfig (an admin certificate) and its certificates.
    stack::ensure_namespace(&host.client, HOST_NS).await;
    let secrets: Api<Secret> = Api::namespaced(host.client.clone(), HOST_NS);
    let read = |p: &Path| std::fs::read_to_string(p).expect("file of the federation");
    let tls = fed.estimator_tls();
    for secret in [
        json!({
            "metadata": {"name": "karmada-scheduler-config", "namespace": HOST_NS},
            "stringData": {"karmada.config": read(&karmada.kubeconfig)},
        }),
        json!({
            "metadata": {"name": "karmada-cert", "namespace": HOST_NS},
            "stringData": {"ca.crt": read(&tls.ca_cert), "karmada.crt": read(&tls.client_cert), "karmada.key": read(&tls.client_key)},
        }),
    ] {
        let secret: Secret = serde_json::from_value(secret).expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_or_else(|e| panic!("Secret {}: {e}", secret.name_any()));
    }

    // The chart's defaults, but logs as text and the dashboard ConfigMap.
    let hk = host.kubeconfig.display().to_string();
    run(
        helm,
        &[
            "install",
            "fedstate",
            &chart("fedstate"),
            "--kubeconfig",
            &hk,
            "-n",
            HOST_NS,
            "--set",
            "logging.format=text",
            "--set",
            "monitoring.dashboard.enabled=true",
        ],
    );
    for component in COMPONENTS {
        let args = container_args(host, component).await;
        let want = format!("--as=system:serviceaccount:{KARMADA_NS}:{component}");
        assert!(args.contains(&want), "{component}: {want} in {args:?}");
    }
}

async fn container_args(node: &Node, deployment: &str) -> Vec<String> {
    Api::<Deployment>::namespaced(node.client.clone(), HOST_NS)
        .get(deployment)
        .await
        .unwrap_or_else(|e| panic!("Deployment {deployment}: {e}"))
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default()
}

async fn install_members(fed: &Federation, helm: &Path, karmada: &Node, members: &[Node]) {
    let mut sets = vec![
        "propagate.enabled=true".to_owned(),
        "crds.install=false".to_owned(),
        "replicas=1".to_owned(),
        "logging.format=text".to_owned(),
    ];
    for i in 1..=fed.members() {
        let k = i - 1;
        sets.push(format!("propagate.clusters[{k}].name={}", member_name(i)));
        sets.push(format!("propagate.clusters[{k}].vip={}", member_vip(i)));
    }
    let sets = sets.join(",");
    let kk = karmada.kubeconfig.display().to_string();
    run(
        helm,
        &[
            "install",
            "fedstate-member",
            &chart("fedstate-member"),
            "--kubeconfig",
            &kk,
            "-n",
            MEMBER_NS,
            "--set",
            &sets,
        ],
    );
    for (i, member) in (1..).zip(members) {
        let vip = member_vip(i).to_string();
        let name = member_name(i);
        eventually(
            &format!("the agent Deployment in {name} with its VIP, the CRD and RBAC"),
            Duration::from_secs(120),
            || async {
                let d = Api::<Deployment>::namespaced(member.client.clone(), MEMBER_NS)
                    .get_opt("fedstate-mongo-agent")
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("no Deployment yet")?;
                let env: BTreeMap<String, String> = d
                    .spec
                    .and_then(|s| s.template.spec)
                    .and_then(|s| s.containers.into_iter().next())
                    .and_then(|c| c.env)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|e| e.value.map(|v| (e.name, v)))
                    .collect();
                if env.get("FEDSTATE_MEMBER_HOST") != Some(&vip)
                    || env.get("FEDSTATE_CLUSTER_NAME") != Some(&name)
                {
                    return Err(format!("env {env:?}"));
                }
                Api::<CustomResourceDefinition>::all(member.client.clone())
                    .get("mongodbs.middleware.fedstate.io")
                    .await
                    .map_err(|e| format!("CRD: {e}"))?;
                Api::<ClusterRole>::all(member.client.clone())
                    .get("fedstate-mongo-agent")
                    .await
                    .map_err(|e| format!("ClusterRole: {e}"))?;
                Api::<ServiceAccount>::namespaced(member.client.clone(), MEMBER_NS)
                    .get("fedstate-mongo-agent")
                    .await
                    .map_err(|e| format!("ServiceAccount: {e}"))?;
                Ok(())
            },
        )
        .await;
    }
}

/// One scheduler pod as the default chart runs it (Karmada's admin kubeconfig, `--as` its
/// ServiceAccount). With the ServiceAccount's leader-election RoleBinding taken away, the
/// apiserver refuses the pod's Lease requests as that account, and the pod is not ready although
/// its kubeconfig could do anything; with the binding back, it becomes ready and takes the Lease.
async fn impersonation_step(kubelet: &Kubelet, karmada: &Node, host: &Node) {
    let component = "fedstate-scheduler";
    let account = format!("system:serviceaccount:{KARMADA_NS}:{component}");
    let bindings: Api<RoleBinding> = Api::namespaced(karmada.client.clone(), KARMADA_NS);
    let binding_name = format!("{component}-leader-election");
    let mut binding = bindings
        .get(&binding_name)
        .await
        .unwrap_or_else(|e| panic!("RoleBinding {binding_name}: {e}"));
    bindings
        .delete(&binding_name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete RoleBinding {binding_name}: {e}"));
    let mut pod = kubelet
        .run_one(host, HOST_NS, component, "fedstate-scheduler-rbac-check")
        .await;
    eventually(
        &format!("the pod refused as {account} and not ready"),
        Duration::from_secs(60),
        || async {
            let log = std::fs::read_to_string(pod.log()).unwrap_or_default();
            let refused = log
                .lines()
                .any(|l| l.to_lowercase().contains("forbidden") && l.contains(&account));
            if !refused {
                return Err(format!(
                    "no refusal as {account} in {}",
                    pod.log().display()
                ));
            }
            match http_get(&pod.url(ADMIN_PORT, "/readyz")).await {
                Ok((503, _)) => Ok(()),
                other => Err(format!("/readyz {other:?}")),
            }
        },
    )
    .await;
    binding.metadata.resource_version = None;
    binding.metadata.uid = None;
    binding.metadata.creation_timestamp = None;
    binding.metadata.managed_fields = None;
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("restore RoleBinding {binding_name}: {e}"));
    eventually(
        "the pod ready and holding the Lease once its RBAC allows it",
        Duration::from_secs(60),
        || async {
            match http_get(&pod.url(ADMIN_PORT, "/readyz")).await {
                Ok((200, _)) => {}
                other => return Err(format!("/readyz {other:?}")),
            }
            let holder = Api::<Lease>::namespaced(karmada.client.clone(), KARMADA_NS)
                .get(component)
                .await
                .map_err(|e| e.to_string())?
                .spec
                .and_then(|s| s.holder_identity);
            if holder.as_deref() == Some(pod.name.as_str()) {
                Ok(())
            } else {
                Err(format!("Lease holder {holder:?}"))
            }
        },
    )
    .await;
    let status = pod.process.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "the check pod did not stop cleanly: {status:?}; log {}",
        pod.log().display()
    );
}

async fn running_step(s: &Story) {
    let mut started: Vec<(String, Pod)> = Vec::new();
    for name in COMPONENTS {
        for p in s.kubelet.run_deployment(&s.host, HOST_NS, name).await {
            started.push((name.to_owned(), p));
        }
    }
    for member in &s.members {
        for p in s
            .kubelet
            .run_deployment(member, MEMBER_NS, "fedstate-mongo-agent")
            .await
        {
            started.push((format!("fedstate-mongo-agent@{}", member.cluster), p));
        }
    }
    // Kept (and stopped by the teardown) even if a check below fails.
    let mut pods = s.pods.lock().await;
    pods.extend(started);
    all_ready(&pods).await;
    one_holder_per_lease(&s.karmada, &s.members, &pods).await;
}

async fn health_step(fed: &Federation, s: &Story) -> Vec<String> {
    let sim_pods = start_simulator(fed, &s.simulator).await;
    if let Ok(mut d) = s.sim_pods.lock() {
        *d = Some(sim_pods);
    }
    seed_sample_to_health(fed, &s.karmada.client).await;
    sample_secret_values(&s.karmada.client).await
}

/// The README's alternative to impersonation: each component's kubeconfig Secret with the token of
/// its ServiceAccount (the `fedstate-<component>-token` Secret of the Karmada release), then
/// `helm upgrade --reuse-values` as the README says, plus one scheduler replica and debug logs. The
/// old pods go (SIGTERM, clean exit), the new ones come up ready and take the Leases.
async fn upgrade_step(s: &Story) {
    let secrets: Api<Secret> = Api::namespaced(s.host.client.clone(), HOST_NS);
    for component in COMPONENTS {
        let token = eventually(
            &format!("the token of {component}-token filled in"),
            Duration::from_secs(60),
            || async {
                let secret = Api::<Secret>::namespaced(s.karmada.client.clone(), KARMADA_NS)
                    .get(&format!("{component}-token"))
                    .await
                    .map_err(|e| e.to_string())?;
                secret
                    .data
                    .and_then(|d| d.get("token").cloned())
                    .map(|t| String::from_utf8_lossy(&t.0).into_owned())
                    .ok_or_else(|| "no token yet".to_owned())
            },
        )
        .await;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{component}-karmada"), "namespace": HOST_NS},
            "stringData": {"kubeconfig": pods::token_kubeconfig(&s.karmada, &token)},
        }))
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap_or_else(|e| panic!("kubeconfig Secret of {component}: {e}"));
    }
    let hk = s.host.kubeconfig.display().to_string();
    run(
        &s.helm,
        &[
            "upgrade",
            "fedstate",
            &chart("fedstate"),
            "--kubeconfig",
            &hk,
            "-n",
            HOST_NS,
            "--reuse-values",
            "--set",
            "karmada.impersonate=false",
            "--set",
            "scheduler.kubeconfigSecret.name=fedstate-scheduler-karmada,scheduler.kubeconfigSecret.key=kubeconfig",
            "--set",
            "manager.kubeconfigSecret.name=fedstate-manager-karmada,manager.kubeconfigSecret.key=kubeconfig",
            "--set",
            "logging.level=debug",
            "--set",
            "scheduler.replicas=1",
        ],
    );
    for component in COMPONENTS {
        let d = Api::<Deployment>::namespaced(s.host.client.clone(), HOST_NS)
            .get(component)
            .await
            .unwrap_or_else(|e| panic!("Deployment {component}: {e}"));
        let spec = d.spec.expect("spec");
        if component == "fedstate-scheduler" {
            assert_eq!(spec.replicas, Some(1), "the upgrade's replicas");
        }
        let pod = spec.template.spec.expect("pod");
        let c = &pod.containers[0];
        let env = c.env.clone().unwrap_or_default();
        assert!(
            env.iter()
                .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug")),
            "{component}: the upgrade's log level: {env:?}"
        );
        let args = c.args.clone().unwrap_or_default();
        assert!(
            !args.iter().any(|a| a.starts_with("--as")),
            "{component}: no impersonation after the upgrade: {args:?}"
        );
        assert!(
            args.iter()
                .any(|a| a == "--kubeconfig=/etc/karmada/config/kubeconfig"),
            "{component}: {args:?}"
        );
        let secret = pod
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == "karmada-config")
            .and_then(|v| v.secret)
            .and_then(|s| s.secret_name);
        assert_eq!(
            secret.as_deref(),
            Some(format!("{component}-karmada").as_str())
        );
    }

    // The rollout, one component after the other, as the Deployment controller replaces pods.
    let mut pods = s.pods.lock().await;
    for component in COMPONENTS {
        let (old, keep): (Vec<_>, Vec<_>) = pods.drain(..).partition(|(what, _)| what == component);
        *pods = keep;
        let mut old = old;
        assert_clean_exits(&stop_pods(&mut old));
        let new: Vec<(String, Pod)> = s
            .kubelet
            .run_deployment(&s.host, HOST_NS, component)
            .await
            .into_iter()
            .map(|p| (component.to_owned(), p))
            .collect();
        let names: Vec<String> = new.iter().map(|(_, p)| p.name.clone()).collect();
        all_ready(&new).await;
        pods.extend(new);
        eventually(
            &format!("the {component} Lease held by a new pod"),
            Duration::from_secs(60),
            || async {
                let holder = Api::<Lease>::namespaced(s.karmada.client.clone(), KARMADA_NS)
                    .get(component)
                    .await
                    .map_err(|e| e.to_string())?
                    .spec
                    .and_then(|s| s.holder_identity)
                    .unwrap_or_default();
                if names.contains(&holder) {
                    Ok(())
                } else {
                    Err(format!("held by {holder:?}, new pods {names:?}"))
                }
            },
        )
        .await;
    }
}

/// Deleting the sample is finished by the manager (its teardown); then every pod gets SIGTERM and
/// must exit cleanly within its grace period; the simulator stops.
async fn stop_step(s: &Story) {
    let api = Api::<MultiCloudMongoDB>::namespaced(s.karmada.client.clone(), SAMPLE_NS);
    api.delete(SAMPLE, &DeleteParams::default())
        .await
        .expect("delete sample");
    eventually(
        "the sample gone (the manager's teardown)",
        Duration::from_secs(180),
        || async {
            match api.get_opt(SAMPLE).await {
                Ok(None) => Ok(()),
                other => Err(format!(
                    "{:?}",
                    other.map(|o| o.map(|o| o.finalizers().to_vec()))
                )),
            }
        },
    )
    .await;
    // Karmada's Work is gone once it has asked a member to delete its MongoDB; the object itself
    // goes when that member's agent has torn its members down and released its finalizer. Only
    // then may the agents stop (a MongoDB left Terminating would also hold its CRD on uninstall).
    for member in &s.members {
        let api = Api::<MongoDB>::namespaced(member.client.clone(), SAMPLE_NS);
        eventually(
            &format!(
                "no MongoDB left in {} (its agent's teardown)",
                member.cluster
            ),
            Duration::from_secs(120),
            || async {
                let left = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                if left.items.is_empty() {
                    Ok(())
                } else {
                    // What the agent says blocks its finalizer, and whether it saw the mark.
                    let conditions = |o: &MongoDB| {
                        o.status
                            .iter()
                            .flat_map(|s| &s.conditions)
                            .filter(|c| matches!(c.type_.as_str(), "Deleting" | "TeardownMarked"))
                            .map(fedstate_e2e::ready::describe_condition)
                            .collect::<Vec<_>>()
                    };
                    Err(format!(
                        "{:?}",
                        left.items
                            .iter()
                            .map(|o| (o.name_any(), o.finalizers().to_vec(), conditions(o)))
                            .collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await;
    }
    let stopped = {
        let mut pods = s.pods.lock().await;
        stop_pods(&mut pods)
    };
    s.simulator.cancel();
    let dir = s.sim_pods.lock().ok().and_then(|mut d| d.take());
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    assert_clean_exits(&stopped);
}

async fn all_ready(running: &[(String, Pod)]) {
    for (what, pod) in running {
        let url = pod.url(ADMIN_PORT, "/readyz");
        eventually(
            &format!("{what} {} ready (/readyz 200)", pod.name),
            Duration::from_secs(60),
            || async {
                match http_get(&url).await {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}; log {}", pod.log().display())),
                }
            },
        )
        .await;
    }
}

async fn one_holder_per_lease(karmada: &Node, members: &[Node], running: &[(String, Pod)]) {
    for name in COMPONENTS {
        let pods: Vec<&str> = running
            .iter()
            .filter(|(what, _)| what == name)
            .map(|(_, p)| p.name.as_str())
            .collect();
        eventually(
            &format!("Lease {name} in Karmada held by one of its pods"),
            Duration::from_secs(60),
            || async {
                let holder = Api::<Lease>::namespaced(karmada.client.clone(), KARMADA_NS)
                    .get(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .spec
                    .and_then(|s| s.holder_identity)
                    .unwrap_or_default();
                if pods.contains(&holder.as_str()) {
                    Ok(())
                } else {
                    Err(format!("held by {holder:?}; pods {pods:?}"))
                }
            },
        )
        .await;
    }
    for member in members {
        eventually(
            &format!("the agent Lease in {} held", member.cluster),
            Duration::from_secs(60),
            || async {
                Api::<Lease>::namespaced(member.client.clone(), MEMBER_NS)
                    .get("fedstate-mongo-agent")
                    .await
                    .map_err(|e| e.to_string())?
                    .spec
                    .and_then(|s| s.holder_identity)
                    .ok_or_else(|| "no holder".to_owned())
            },
        )
        .await;
    }
}

/// Starts the replica-set simulator for the members; returns the simulated pods' directory.
async fn start_simulator(fed: &Federation, stop: &CancellationToken) -> PathBuf {
    let simulator = std::sync::Arc::new(fedstate_rs_sim::Simulator::start(
        fedstate_rs_sim::world::Settings::default(),
        Duration::from_millis(250),
    ));
    let mut clusters = Vec::new();
    for i in 1..=fed.members() {
        clusters.push(fedstate_rs_sim::bridge::MemberCluster {
            name: member_name(i),
            vip: member_vip(i).to_string(),
            client: fed.member_client(i).await.expect("member client"),
        });
    }
    // The members' `pods/exec` (the agent initiates the set from inside a member's pod) is served
    // by kwok with the simulator's shell, as in the other suites.
    let shell = stack::pod_shell();
    let pods_dir = shell.dir.clone();
    tokio::spawn(fedstate_rs_sim::bridge::run_with_shell(
        simulator,
        clusters,
        Some(shell),
        stop.child_token(),
    ));
    pods_dir
}

async fn uninstall_leaves_nothing(helm: &Path, karmada: &Node, host: &Node, members: &[Node]) {
    let kk = karmada.kubeconfig.display().to_string();
    let hk = host.kubeconfig.display().to_string();
    run(
        helm,
        &[
            "uninstall",
            "fedstate",
            "--kubeconfig",
            &hk,
            "-n",
            HOST_NS,
            "--wait",
        ],
    );
    // The control plane's release first: deleting the MongoDB CRD in Karmada removes it from the
    // members only while the member release's ClusterPropagationPolicy still selects it (Karmada
    // leaves propagated objects in place when only the policy goes).
    run(
        helm,
        &[
            "uninstall",
            "fedstate-karmada",
            "--kubeconfig",
            &kk,
            "-n",
            KARMADA_NS,
            "--wait",
        ],
    );
    run(
        helm,
        &[
            "uninstall",
            "fedstate-member",
            "--kubeconfig",
            &kk,
            "-n",
            MEMBER_NS,
            "--wait",
        ],
    );
    let part_of = ListParams::default().labels("app.kubernetes.io/part-of=fedstate");
    let mut clusters = vec![karmada.clone()];
    clusters.extend(members.iter().cloned());
    for c in clusters {
        eventually(
            &format!("nothing of FedState's charts left in {}", c.cluster),
            Duration::from_secs(120),
            || async {
                let mut left = Vec::new();
                let crds = Api::<CustomResourceDefinition>::all(c.client.clone())
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                left.extend(
                    crds.items
                        .iter()
                        .map(|o| o.name_any())
                        .filter(|n| n.ends_with(".middleware.fedstate.io")),
                );
                let roles = Api::<ClusterRole>::all(c.client.clone())
                    .list(&part_of)
                    .await
                    .map_err(|e| e.to_string())?;
                left.extend(
                    roles
                        .items
                        .iter()
                        .map(|o| format!("ClusterRole/{}", o.name_any())),
                );
                for ns in [KARMADA_NS, HOST_NS] {
                    let d = Api::<Deployment>::namespaced(c.client.clone(), ns)
                        .list(&part_of)
                        .await
                        .map_err(|e| e.to_string())?;
                    left.extend(
                        d.items
                            .iter()
                            .map(|o| format!("Deployment/{}", o.name_any())),
                    );
                    let sa = Api::<ServiceAccount>::namespaced(c.client.clone(), ns)
                        .list(&part_of)
                        .await
                        .map_err(|e| e.to_string())?;
                    left.extend(
                        sa.items
                            .iter()
                            .map(|o| format!("ServiceAccount/{}", o.name_any())),
                    );
                    let secrets = Api::<Secret>::namespaced(c.client.clone(), ns)
                        .list(&part_of)
                        .await
                        .map_err(|e| e.to_string())?;
                    left.extend(
                        secrets
                            .items
                            .iter()
                            .map(|o| format!("Secret/{}", o.name_any())),
                    );
                }
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            },
        )
        .await;
    }
}

async fn seed_sample_to_health(fed: &Federation, karmada: &kube::Client) {
    stack::ensure_namespace(karmada, SAMPLE_NS).await;
    stack::prepare_seed_sample(fed, SAMPLE_NS).await;
    let mut sample: serde_json::Value = serde_yaml::from_str(SEED).expect("sample");
    sample["metadata"]["namespace"] = json!(SAMPLE_NS);
    // The image the sample's condition asks for (the seed's mongo:3.6 is below the supported 4.4).
    sample["spec"]["imageSetting"]["image"] = json!("mongo:7.0");
    harness::apply_json(
        karmada,
        &ApiResource::erase::<MultiCloudMongoDB>(&()),
        sample,
    )
    .await;
    sample_health(karmada, "the seed sample Health", Duration::from_secs(420)).await;
}

/// Waits until the sample's `status.state` is `Health`.
async fn sample_health(karmada: &kube::Client, what: &str, timeout: Duration) {
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), SAMPLE_NS);
    eventually(what, timeout, || async {
        let o = api.get(SAMPLE).await.map_err(|e| e.to_string())?;
        match o.status.as_ref().and_then(|s| s.state) {
            Some(fedstate_api::v1alpha1::ServiceState::Health) => Ok(()),
            other => Err(format!("state {other:?}")),
        }
    })
    .await;
}

/// Metric names (without `_bucket`/`_sum`/`_count`) with their HELP lines and sample labels.
#[derive(Default, Debug)]
struct Scrape {
    help: BTreeSet<String>,
    types: BTreeMap<String, String>,
    /// series name (as exposed) → label sets
    samples: BTreeMap<String, Vec<String>>,
}

fn parse_scrape(text: &str, into: &mut Scrape) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(name) = rest.split_whitespace().next() {
                into.help.insert(name.to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(t)) = (it.next(), it.next()) {
                into.types.insert(n.to_owned(), t.to_owned());
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            let labels = line[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.split_once('}'))
                .map(|(l, _)| l.to_owned())
                .unwrap_or_default();
            into.samples
                .entry(name.to_owned())
                .or_default()
                .push(labels);
        }
    }
}

fn family(series: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix)
            && types
                .get(base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        {
            return base.to_owned();
        }
    }
    series.to_owned()
}

async fn check_metrics(running: &[(String, Pod)], work: &Path) {
    let mut all = Scrape::default();
    for (what, pod) in running {
        let (code, body) = http_get(&pod.url(ADMIN_PORT, "/metrics"))
            .await
            .unwrap_or_else(|e| panic!("scrape {what}: {e}"));
        assert_eq!(code, 200, "{what} /metrics");
        std::fs::write(work.join(format!("{}.metrics", pod.name)), &body).expect("save scrape");
        let mut one = Scrape::default();
        parse_scrape(&body, &mut one);
        for series in [
            "fedstate_build_info",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_start_time_seconds",
        ] {
            assert!(one.samples.contains_key(series), "{what} exports {series}");
        }
        for series in one.samples.keys() {
            let f = family(series, &one.types);
            assert!(one.help.contains(&f), "{what}: no HELP for {f}");
        }
        for (name, t) in &one.types {
            assert_ne!(
                t, "summary",
                "{what}: {name} is a summary; histograms are expected"
            );
        }
        parse_scrape(&body, &mut all);
    }
    // karmada-scheduler's buckets and label values.
    let buckets = &all.samples["fedstate_scheduler_e2e_scheduling_duration_seconds_bucket"];
    for le in ["0.001", "0.002", "16.384", "+Inf"] {
        assert!(
            buckets.iter().any(|l| l.contains(&format!("le=\"{le}\""))),
            "bucket le={le} in {buckets:?}"
        );
    }
    for labels in &all.samples["fedstate_scheduler_schedule_attempts_total"] {
        assert!(
            labels.contains("result=\"scheduled\"") || labels.contains("result=\"error\""),
            "Karmada's result values only: {labels}"
        );
    }
    // Every series the dashboard and the alerts query is exported (kube-state-metrics' series
    // come from kube-state-metrics with deploy/monitoring/kube-state-metrics-fedstate.yaml).
    let queried = queried_series();
    let exported: BTreeSet<String> = all.samples.keys().cloned().collect();
    let missing: Vec<&String> = queried
        .iter()
        .filter(|s| {
            !s.starts_with("fedstate_multicloudmongodb_") && !s.starts_with("fedstate_mongodb_")
        })
        .filter(|s| !exported.contains(*s))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but never exported: {missing:?}"
    );
}

/// Series names in the dashboard's and the alerts' expressions.
fn queried_series() -> BTreeSet<String> {
    let dashboard =
        std::fs::read_to_string(repo().join("deploy/monitoring/grafana-dashboard.json"))
            .expect("dashboard");
    let alerts =
        std::fs::read_to_string(repo().join("deploy/monitoring/alerts.yaml")).expect("alerts");
    let mut out = BTreeSet::new();
    for text in [dashboard, alerts] {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &text[i..];
            if (rest.starts_with("fedstate_") || rest.starts_with("process_"))
                && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
            {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                // `fedstate_scheduler_*` in a comment names a family, not a series.
                if !rest[..end].ends_with('_') {
                    out.insert(rest[..end].to_owned());
                }
                i += end;
            } else {
                i += 1;
            }
        }
    }
    out
}

async fn http_get(url: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").ok_or("not http")?;
    let (addr, path) = rest.split_once('/').ok_or("no path")?;
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!("GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .map_err(|_| "read timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

/// The values of the Secrets FedState generated for the sample (keyfile, credentials).
async fn sample_secret_values(karmada: &kube::Client) -> Vec<String> {
    let lp = ListParams::default().labels(&format!(
        "{}={}",
        fedstate_api::names::LABEL_MANAGED_BY,
        fedstate_api::names::MANAGED_BY
    ));
    let secrets = Api::<Secret>::namespaced(karmada.clone(), SAMPLE_NS)
        .list(&lp)
        .await
        .expect("list the sample's Secrets");
    let values: Vec<String> = secrets
        .items
        .into_iter()
        .flat_map(|s| s.data.unwrap_or_default().into_values())
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .filter(|v| v.len() >= 8)
        .collect();
    assert!(!values.is_empty(), "the sample has generated Secrets");
    values
}

/// No Secret value of the sample in any pod's log.
fn secrets_not_in_logs(work: &Path, secrets: &[String]) -> Result<(), String> {
    let mut stack = vec![work.join("pods")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "volumes") {
                    continue;
                }
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "container.log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for s in secrets {
                    if text.contains(s.as_str()) {
                        return Err(format!(
                            "a Secret value of the sample is in {}",
                            p.display()
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
