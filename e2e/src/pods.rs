//! Running a Deployment's pods as local processes, as the kubelet would run them, for the install
//! test (kwok does not run containers). For each replica of a Deployment read back from the
//! apiserver it was installed into:
//!
//! * the container's image names the binary (`…/fedstate-scheduler:tag` → our `fedstate-scheduler`,
//!   as cargo built it next to the test); the image's entrypoint is the binary, so the process gets
//!   exactly the container's `args`; it runs as [`crate::process::OurProcess`], SIGTERM then SIGKILL
//!   after the pod's `terminationGracePeriodSeconds`;
//! * every volume (Secret or ConfigMap, with or without `items`) is written to files under the
//!   pod's own directory, and a path under a `mountPath` in the args is that directory's path;
//! * `env` as given (`value`, and `fieldRef` `metadata.name` / `status.podIP`), nothing inherited
//!   but `PATH`;
//! * the pod's IP is a loopback address of its own, so `0.0.0.0:<port>` binds that address;
//! * a pod with a ServiceAccount token mounted (the default) gets the in-cluster credentials the
//!   kubelet projects — a token of that ServiceAccount from the TokenRequest API — as `KUBECONFIG`
//!   (our binaries read the in-cluster files from fixed paths under /var/run, which several pods on
//!   one machine cannot share); server and CA are the cluster's.
//!
//! Anything else in a pod spec (another volume type, `command`, an env source) is refused with a
//! message naming it, so a chart change that this emulation does not understand fails the test.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: its functions are called by the e2e trials, and a panic is how they fail the trial"
)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret, ServiceAccount};
use kube::api::{Api, PostParams};

use crate::process::{OurProcess, our_binary};

/// A cluster the pods of a Deployment run against.
#[derive(Clone)]
pub struct Node {
    /// Name used in pod directories and logs.
    pub cluster: String,
    pub client: kube::Client,
    /// The admin kubeconfig of the cluster (for its server URL and CA only).
    pub kubeconfig: PathBuf,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("cluster", &self.cluster)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

/// One running pod: its process, stopped on drop like any of ours
/// ([`crate::process::OurProcess`]), with the pod's termination grace period.
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    pub ip: Ipv4Addr,
    pub args: Vec<String>,
    pub process: OurProcess,
}

impl Pod {
    /// `http://<pod ip>:<port>`
    pub fn url(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.ip)
    }

    /// The container's log.
    pub fn log(&self) -> &Path {
        &self.process.log
    }
}

/// Where pods keep their files; the binaries an image names are ours, as cargo built them
/// ([`our_binary`]).
#[derive(Debug, Clone)]
pub struct Kubelet {
    pub root: PathBuf,
    next_ip: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl Kubelet {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            next_ip: std::sync::Arc::new(std::sync::atomic::AtomicU8::new(1)),
        }
    }

    /// Start every replica of Deployment `ns/name` as it is stored in `node`'s apiserver, pods
    /// named `<name>-<generation>-<replica>` (a rollout's new pods get new names).
    pub async fn run_deployment(&self, node: &Node, ns: &str, name: &str) -> Vec<Pod> {
        let (replicas, generation, pod_spec) = deployment_pods(node, ns, name).await;
        let mut pods = Vec::new();
        for r in 0..replicas {
            let pod_name = format!("{name}-{generation}-{r}");
            pods.push(self.run_pod(node, ns, &pod_name, &pod_spec).await);
        }
        pods
    }

    /// Start one pod of Deployment `ns/name`, named `pod_name`, whatever its replica count.
    pub async fn run_one(&self, node: &Node, ns: &str, name: &str, pod_name: &str) -> Pod {
        let (_, _, pod_spec) = deployment_pods(node, ns, name).await;
        self.run_pod(node, ns, pod_name, &pod_spec).await
    }

    async fn run_pod(&self, node: &Node, ns: &str, pod_name: &str, spec: &PodSpec) -> Pod {
        let what = format!("{}/{ns}/{pod_name}", node.cluster);
        assert_eq!(spec.containers.len(), 1, "{what}: one container expected");
        let c = &spec.containers[0];
        assert!(
            c.command.is_none(),
            "{what}: `command` overrides the image's entrypoint; this emulation runs the image's binary with `args` only"
        );
        let ip = Ipv4Addr::new(
            127,
            0,
            3,
            self.next_ip
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        );
        let dir = self.root.join(&node.cluster).join(pod_name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pod dir");

        // Volumes → files.
        let mut volume_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
        for v in spec.volumes.iter().flatten() {
            let vdir = dir.join("volumes").join(&v.name);
            std::fs::create_dir_all(&vdir).expect("volume dir");
            let (data, items): (BTreeMap<String, Vec<u8>>, _) = if let Some(s) = &v.secret {
                let secret_name = s.secret_name.clone().expect("secretName");
                let secret = Api::<Secret>::namespaced(node.client.clone(), ns)
                    .get(&secret_name)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{what}: volume {}: Secret {secret_name}: {e}", v.name)
                    });
                let data = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, b)| (k, b.0))
                    .collect();
                (data, s.items.clone())
            } else if let Some(cm) = &v.config_map {
                let cm_name = cm.name.clone();
                let obj = Api::<ConfigMap>::namespaced(node.client.clone(), ns)
                    .get(&cm_name)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{what}: volume {}: ConfigMap {cm_name}: {e}", v.name)
                    });
                let data = obj
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, s)| (k, s.into_bytes()))
                    .collect();
                (data, cm.items.clone())
            } else {
                panic!(
                    "{what}: volume {} is neither a Secret nor a ConfigMap",
                    v.name
                );
            };
            let files: Vec<(String, String)> = match items {
                Some(items) => items.into_iter().map(|i| (i.key, i.path)).collect(),
                None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
            };
            for (key, path) in files {
                let bytes = data
                    .get(&key)
                    .unwrap_or_else(|| panic!("{what}: volume {} has no key {key}", v.name));
                std::fs::write(vdir.join(&path), bytes).expect("write volume file");
            }
            volume_dirs.insert(v.name.clone(), vdir);
        }
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let vdir = volume_dirs
                .get(&m.name)
                .unwrap_or_else(|| panic!("{what}: mount of unknown volume {}", m.name));
            let local = match &m.sub_path {
                Some(sub) => vdir.join(sub),
                None => vdir.clone(),
            };
            mounts.push((m.mount_path.trim_end_matches('/').to_owned(), local));
        }
        // Longest mount path first, so /etc/a/b wins over /etc/a.
        mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let map_arg = |arg: &str| -> String {
            let mut out = arg.replace("0.0.0.0:", &format!("{ip}:"));
            for (mount, local) in &mounts {
                if let Some(pos) = out.find(&format!("{mount}/")) {
                    let rest = out[pos + mount.len()..].to_owned();
                    out = format!("{}{}{}", &out[..pos], local.display(), rest);
                    break;
                }
            }
            out
        };
        let args: Vec<String> = c.args.iter().flatten().map(|a| map_arg(a)).collect();

        // Environment.
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), dir.display().to_string()),
        ];
        for e in c.env.iter().flatten() {
            let value = if let Some(v) = &e.value {
                v.clone()
            } else if let Some(field) = e.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) {
                match field.field_path.as_str() {
                    "metadata.name" => pod_name.to_owned(),
                    "status.podIP" => ip.to_string(),
                    other => panic!("{what}: env {}: unsupported fieldRef {other}", e.name),
                }
            } else {
                panic!("{what}: env {}: unsupported value source", e.name);
            };
            env.push((e.name.clone(), value));
        }
        if spec.automount_service_account_token != Some(false) {
            let sa = spec
                .service_account_name
                .clone()
                .unwrap_or_else(|| "default".into());
            let kubeconfig = dir.join("in-cluster.kubeconfig");
            write_token_kubeconfig(node, ns, &sa, &kubeconfig).await;
            env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
        }

        let image = c.image.clone().unwrap_or_default();
        let repo = image.rsplit('/').next().unwrap_or_default();
        let binary = repo.split(':').next().unwrap_or_default();
        let exe = our_binary(binary);
        let mut command = Command::new(&exe);
        command.args(&args).env_clear().envs(env).current_dir(&dir);
        let grace = spec
            .termination_grace_period_seconds
            .and_then(|g| u64::try_from(g).ok())
            .unwrap_or(30);
        let process = OurProcess::spawn(&what, command, &dir.join("container.log"))
            .with_grace(Duration::from_secs(grace));
        eprintln!("  {what} ({binary}, pod IP {ip}): {}", args.join(" "));
        Pod {
            name: pod_name.to_owned(),
            ip,
            args,
            process,
        }
    }
}

/// Replicas, generation and pod template of Deployment `ns/name` in `node`.
async fn deployment_pods(node: &Node, ns: &str, name: &str) -> (i32, i64, PodSpec) {
    let deploy = Api::<Deployment>::namespaced(node.client.clone(), ns)
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{}: get Deployment {ns}/{name}: {e}", node.cluster));
    let generation = deploy.metadata.generation.unwrap_or(0);
    let spec = deploy.spec.expect("Deployment spec");
    let replicas = spec.replicas.unwrap_or(1);
    (
        replicas,
        generation,
        spec.template.spec.expect("pod template spec"),
    )
}

/// The server URL and CA (base64 PEM) of an admin kubeconfig.
pub fn server_and_ca(kubeconfig: &Path) -> (String, String) {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cluster = kc
        .clusters
        .into_iter()
        .next()
        .and_then(|c| c.cluster)
        .expect("a cluster in the kubeconfig");
    (
        cluster.server.expect("server"),
        cluster
            .certificate_authority_data
            .expect("certificate-authority-data"),
    )
}

/// A kubeconfig for `node`'s apiserver that authenticates with `token`.
pub fn token_kubeconfig(node: &Node, token: &str) -> String {
    let (server, ca) = server_and_ca(&node.kubeconfig);
    let kc = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    });
    serde_yaml::to_string(&kc).expect("kubeconfig yaml")
}

/// A token of ServiceAccount `ns/sa` in `node`, from the TokenRequest API (one hour).
pub async fn service_account_token(node: &Node, ns: &str, sa: &str) -> String {
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(node.client.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &req)
        .await
        .unwrap_or_else(|e| panic!("{}: TokenRequest for {ns}/{sa}: {e}", node.cluster))
        .status
        .expect("token status")
        .token
}

async fn write_token_kubeconfig(node: &Node, ns: &str, sa: &str, path: &Path) {
    let token = service_account_token(node, ns, sa).await;
    std::fs::write(path, token_kubeconfig(node, &token)).expect("write kubeconfig");
}
