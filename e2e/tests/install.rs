//! FedState installed as a platform engineer installs it: real Helm into the real apiservers of
//! the local federation, our binaries run as the rendered Deployments say (`fedstate_e2e::pods`),
//! with the chart's ServiceAccounts' credentials, then the seed sample to `Health`. In order:
//!
//! 1. `helm lint` of both charts is clean; `promtool check rules` and `promtool test rules` pass on
//!    the shipped alerts.
//! 2. `helm install` the control-plane chart twice: `target=karmada` into the Karmada apiserver
//!    (CRDs, interpreter, ServiceAccounts, RBAC) and `target=host` into the host cluster (member1
//!    plays the Karmada host cluster here). The host release reads the Karmada apiserver through
//!    kubeconfig Secrets holding TokenRequest tokens of the chart's ServiceAccounts, and the
//!    estimators' mTLS files from the `karmada-cert` Secret, as Karmada's installer names it.
//! 3. `helm install` the member chart once into the Karmada apiserver with `propagate.enabled`:
//!    Karmada rolls it out to every member, each with its own VIP and name.
//! 4. Every replica of every Deployment runs as a local process (2 schedulers, 2 managers, one agent
//!    per member): all of them become ready, standbys included, and each Lease has one holder.
//! 5. The seed sample (with the image its condition asks for) reaches `Health`. An RBAC gap of any
//!    chart shows here as a component that cannot do its job.
//! 6. Every process's `/metrics`: HELP for every series, histograms with karmada-scheduler's
//!    buckets, Karmada's `result` values, `process_*` and `fedstate_build_info`; every series the
//!    dashboard and the alerts query exists in the scrape (except kube-state-metrics' series).
//! 7. `helm upgrade` with a changed value changes the Deployment; deleting the sample and
//!    `helm uninstall` of every release leave nothing of ours in any cluster.
//!
//! Runs only with `FEDSTATE_E2E=1` (otherwise every trial is reported ignored) and
//! `FEDSTATE_INSTALL_BIN_DIR` naming the directory with our binaries (`deploy/local/e2e.sh`
//! builds them and sets it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fedstate_api::MultiCloudMongoDB;
use fedstate_e2e::harness::{self, eventually};
use fedstate_e2e::pods::{self, Kubelet, Node, Pod};
use fedstate_e2e::scenarios;
use fedstate_e2e::stack;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_local::{Federation, member_name, member_vip};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, ListParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const SAMPLE_NS: &str = "fedstate-install";
const SAMPLE: &str = "multicloudmongodb-sample";
const SEED: &str = include_str!("../../deploy/samples/seed/multicloudmongodb-full.yaml");
const KARMADA_NS: &str = "fedstate-system";
const HOST_NS: &str = "karmada-system";
const MEMBER_NS: &str = "fedstate-system";
const ADMIN_PORT: u16 = 8080;

/// The checkout under test: cargo runs test binaries with CARGO_MANIFEST_DIR set to this crate
/// (read at run time: a target directory shared by several checkouts may hold a library built
/// in another one).
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

/// Runs a tool, panics with its output unless it succeeds; returns stdout.
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

fn main() -> std::process::ExitCode {
    Suite::new("install", |_, _| Box::pin(async {}))
        .scenarios(scenarios![
            helm_install_runs_the_seed_sample_to_health_and_uninstalls_cleanly
        ])
        .run()
}

fn install_bin_dir() -> PathBuf {
    std::env::var_os("FEDSTATE_INSTALL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "FEDSTATE_INSTALL_BIN_DIR is not set: run this suite through deploy/local/e2e.sh, which builds fedstate-scheduler, fedstate-manager and fedstate-mongo-agent and sets it"
            )
        })
}

async fn helm_install_runs_the_seed_sample_to_health_and_uninstalls_cleanly(env: &Env<()>) {
    let fed = &env.fed;
    let bin_dir = install_bin_dir();
    let tools = fed.bin_dir().to_path_buf();
    let helm = tools.join("helm");
    let promtool = tools.join("promtool");
    let work = fed.run_dir().join("install");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");

    eprintln!("step 1: helm lint and promtool");
    lint_and_rules(&helm, &promtool, &work);

    let karmada = node(fed, 0).await;
    let host = node(fed, 1).await;
    eprintln!("step 2: the control-plane chart into the Karmada apiserver and the host cluster");
    install_control_plane(fed, &helm, &karmada, &host).await;
    eprintln!("step 3: the member chart through Karmada to every member");
    install_members(fed, &helm, &karmada).await;

    eprintln!("step 4: every replica as a local process, as the Deployments say");
    let kubelet = Kubelet::new(bin_dir, work.join("pods"));
    let mut running: Vec<(String, Pod)> = Vec::new();
    for name in ["fedstate-scheduler", "fedstate-manager"] {
        for p in kubelet.run_deployment(&host, HOST_NS, name).await {
            running.push((name.to_owned(), p));
        }
    }
    for i in 1..=fed.members() {
        let member = node(fed, i).await;
        for p in kubelet
            .run_deployment(&member, MEMBER_NS, "fedstate-mongo-agent")
            .await
        {
            running.push((format!("fedstate-mongo-agent@{}", member_name(i)), p));
        }
    }
    all_ready(&running).await;
    one_holder_per_lease(fed, &karmada).await;

    eprintln!("step 5: the seed sample to Health");
    let stop = CancellationToken::new();
    let _stop_simulator = stop.clone().drop_guard();
    let sim_pods = start_simulator(fed, &stop).await;
    seed_sample_to_health(fed, &karmada.client).await;
    let secret_values = sample_secret_values(&karmada.client).await;

    eprintln!("step 6: /metrics of every process");
    check_metrics(&running, &work).await;

    eprintln!("step 7: helm upgrade, then uninstall leaves nothing behind");
    upgrade_changes_the_deployment(&helm, &host).await;
    Api::<MultiCloudMongoDB>::namespaced(karmada.client.clone(), SAMPLE_NS)
        .delete(SAMPLE, &DeleteParams::default())
        .await
        .expect("delete sample");
    eventually(
        "the sample gone (the manager's teardown)",
        Duration::from_secs(180),
        || async {
            match Api::<MultiCloudMongoDB>::namespaced(karmada.client.clone(), SAMPLE_NS)
                .get_opt(SAMPLE)
                .await
            {
                Ok(None) => Ok(()),
                other => Err(format!(
                    "{:?}",
                    other.map(|o| o.map(|o| o.finalizers().to_vec()))
                )),
            }
        },
    )
    .await;
    // As the kubelet stops pods: SIGTERM to all, each gets its termination grace period.
    let stopping = std::time::Instant::now();
    for (_, p) in &running {
        p.terminate();
    }
    for (what, mut p) in running.drain(..) {
        let status = p.wait_stopped();
        eprintln!(
            "  {what} {} exited {status:?} ({:.1}s after SIGTERM)",
            p.name,
            stopping.elapsed().as_secs_f32()
        );
        assert!(
            status.is_some_and(|s| s.success()),
            "{what} ({}) did not stop cleanly on SIGTERM: {status:?}; log {}",
            p.name,
            p.log.display()
        );
    }
    stop.cancel();
    let _ = std::fs::remove_dir_all(&sim_pods);
    uninstall_leaves_nothing(fed, &helm, &karmada, &host).await;
    if let Err(e) = secrets_not_in_logs(&work, &secret_values) {
        panic!("{e}");
    }
}

/// Index 0 is the Karmada apiserver, N is member N.
async fn node(fed: &Federation, index: u32) -> Node {
    if index == 0 {
        Node {
            cluster: "karmada".into(),
            client: fed.karmada_client().await.expect("karmada client"),
            kubeconfig: fed.karmada_kubeconfig(),
        }
    } else {
        Node {
            cluster: member_name(index),
            client: fed.member_client(index).await.expect("member client"),
            kubeconfig: fed.member_kubeconfig(index),
        }
    }
}

fn lint_and_rules(helm: &Path, promtool: &Path, work: &Path) {
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
        let out = run(helm, &args);
        assert!(out.contains("0 chart(s) failed"), "{out}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{out}"
        );
    }
    // A value the schema refuses names the field.
    let out = Command::new(helm)
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

    // The alerts as a plain Prometheus rules file (the PrometheusRule's spec).
    let rule: serde_json::Value = serde_yaml::from_str(
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
        promtool,
        &["check", "rules", &rules_file.display().to_string()],
    );
    assert!(out.contains("SUCCESS"), "{out}");
    let tests = repo().join("deploy/monitoring/alerts-test.yaml");
    let test_copy = work.join("alerts-test.yaml");
    std::fs::copy(&tests, &test_copy).expect("copy alert tests");
    let out = run(
        promtool,
        &["test", "rules", &test_copy.display().to_string()],
    );
    assert!(out.contains("SUCCESS"), "{out}");
}

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
    let interpreter = Api::<kube::api::DynamicObject>::all_with(
        karmada.client.clone(),
        &stack::interpreter_resource(),
    );
    interpreter
        .get("fedstate-mongodb")
        .await
        .expect("interpreter installed by the chart");

    // The host cluster's Secrets, as a platform engineer creates them (README, "Install"): a
    // kubeconfig with a token of each component's ServiceAccount, and the estimator client cert.
    let host_ns = HOST_NS;
    stack::ensure_namespace(&host.client, host_ns).await;
    let secrets: Api<Secret> = Api::namespaced(host.client.clone(), host_ns);
    for component in ["fedstate-scheduler", "fedstate-manager"] {
        let token = pods::service_account_token(karmada, KARMADA_NS, component).await;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{component}-karmada"), "namespace": host_ns},
            "stringData": {"kubeconfig": pods::token_kubeconfig(karmada, &token)},
        }))
        .expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("kubeconfig Secret");
    }
    let tls = fed.estimator_tls();
    let read = |p: &Path| std::fs::read_to_string(p).expect("estimator TLS file");
    let cert: Secret = serde_json::from_value(json!({
        "metadata": {"name": "karmada-cert", "namespace": host_ns},
        "stringData": {"ca.crt": read(&tls.ca_cert), "karmada.crt": read(&tls.client_cert), "karmada.key": read(&tls.client_key)},
    }))
    .expect("secret");
    secrets
        .create(&PostParams::default(), &cert)
        .await
        .expect("karmada-cert");

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
            host_ns,
            "--set",
            "karmada.impersonate=false",
            "--set",
            "scheduler.kubeconfigSecret.name=fedstate-scheduler-karmada",
            "--set",
            "scheduler.kubeconfigSecret.key=kubeconfig",
            "--set",
            "manager.kubeconfigSecret.name=fedstate-manager-karmada",
            "--set",
            "manager.kubeconfigSecret.key=kubeconfig",
            "--set",
            "logging.format=text",
            "--set",
            "monitoring.dashboard.enabled=true",
        ],
    );
}

async fn install_members(fed: &Federation, helm: &Path, karmada: &Node) {
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
    for i in 1..=fed.members() {
        let member = node(fed, i).await;
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

async fn all_ready(running: &[(String, Pod)]) {
    for (what, pod) in running {
        let url = pod.url(ADMIN_PORT, "/readyz");
        eventually(
            &format!("{what} {} ready (/readyz 200)", pod.name),
            Duration::from_secs(60),
            || async {
                match http_get(&url).await {
                    Ok((200, _)) => Ok(()),
                    other => Err(format!("{other:?}; log {}", pod.log.display())),
                }
            },
        )
        .await;
    }
}

async fn one_holder_per_lease(fed: &Federation, karmada: &Node) {
    for name in ["fedstate-scheduler", "fedstate-manager"] {
        let lease = Api::<Lease>::namespaced(karmada.client.clone(), KARMADA_NS)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("Lease {name} in Karmada: {e}"));
        let holder = lease.spec.and_then(|s| s.holder_identity);
        assert!(
            holder.as_deref().is_some_and(|h| h.starts_with(name)),
            "Lease {name} held by a pod of its Deployment: {holder:?}"
        );
    }
    for i in 1..=fed.members() {
        let member = node(fed, i).await;
        eventually(
            &format!("the agent Lease in {} held", member_name(i)),
            Duration::from_secs(30),
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
    let api: Api<MultiCloudMongoDB> = Api::namespaced(karmada.clone(), SAMPLE_NS);
    eventually(
        "the seed sample Health",
        Duration::from_secs(420),
        || async {
            let o = api.get(SAMPLE).await.map_err(|e| e.to_string())?;
            match o.status.as_ref().and_then(|s| s.state) {
                Some(fedstate_api::v1alpha1::ServiceState::Health) => Ok(()),
                other => Err(format!("state {other:?}")),
            }
        },
    )
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

async fn upgrade_changes_the_deployment(helm: &Path, host: &Node) {
    let hk = host.kubeconfig.display().to_string();
    run(
        helm,
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
            "logging.level=debug",
            "--set",
            "scheduler.replicas=1",
        ],
    );
    let d = Api::<Deployment>::namespaced(host.client.clone(), HOST_NS)
        .get("fedstate-scheduler")
        .await
        .expect("scheduler Deployment");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1), "the upgrade's replicas");
    let env = spec.template.spec.expect("pod").containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert!(
        env.iter()
            .any(|e| e.name == "RUST_LOG" && e.value.as_deref() == Some("debug")),
        "the upgrade's log level: {env:?}"
    );
}

async fn uninstall_leaves_nothing(fed: &Federation, helm: &Path, karmada: &Node, host: &Node) {
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
    // leaves propagated objects in place when only the policy goes; seen in the last run).
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
    for i in 1..=fed.members() {
        clusters.push(node(fed, i).await);
    }
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
