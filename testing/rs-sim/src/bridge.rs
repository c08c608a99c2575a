//! The simulator on the local federation (`docs/local-federation.md#the-replica-set-simulator`):
//! every member pod that kwok reports Running is served at `<cluster VIP>:<nodePort>` of the
//! Service selecting it; a member stops being served when its pod goes away or its cluster stops
//! answering (as a real mongod would become unreachable). Polls the member apiservers: this is a
//! test fixture, not a controller.
//!
//! With [`PodShell`], `pods/exec` into a served member's `mongod` container works as in a real
//! pod: the bridge writes a kwok `Exec` object for the pod (kwok runs exec requests as local
//! commands), whose `PATH` finds `mongosh`/`mongo` as [`crate::shell`] and whose environment
//! names the member's in-pod socket and the pod's files. The files are the Secrets and
//! ConfigMaps the `mongod` container mounts, written under the pod's directory as the kubelet
//! would (refreshed every few seconds, as the kubelet refreshes Secret volumes).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::Simulator;

/// One member cluster the bridge watches.
#[derive(Clone)]
pub struct MemberCluster {
    pub name: String,
    /// The cluster's VIP (its Karmada Cluster's `vip` label), a loopback address here.
    pub vip: String,
    pub client: Client,
}

impl std::fmt::Debug for MemberCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCluster")
            .field("name", &self.name)
            .field("vip", &self.vip)
            .finish()
    }
}

/// Only pods and Services FedState manages.
const SELECTOR: &str = "app.kubernetes.io/managed-by=fedstate";

/// How exec into member pods reaches the simulator.
#[derive(Clone, Debug)]
pub struct PodShell {
    /// The `fedstate-sim-shell` executable.
    pub shell: PathBuf,
    /// The bridge's directory: `bin/` (the shell as `mongosh` and `mongo`) and `pods/`.
    pub dir: PathBuf,
}

/// The hosts one cluster should serve now; `None` when the cluster does not answer.
pub async fn running_members(cluster: &MemberCluster) -> Option<BTreeSet<String>> {
    running_pods(cluster)
        .await
        .map(|pods| pods.into_keys().collect())
}

/// Served host → its Running pod, for one cluster; `None` when the cluster does not answer.
pub async fn running_pods(cluster: &MemberCluster) -> Option<BTreeMap<String, Pod>> {
    let lp = ListParams::default().labels(SELECTOR);
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let svcs: Api<Service> = Api::all(cluster.client.clone());
    let list = async { Ok::<_, kube::Error>((pods.list(&lp).await?, svcs.list(&lp).await?)) };
    let (pods, svcs) = tokio::time::timeout(Duration::from_secs(4), list)
        .await
        .ok()?
        .ok()?;
    let mut hosts = BTreeMap::new();
    for pod in pods.items {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if !running || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let labels = pod.labels();
        for svc in svcs
            .items
            .iter()
            .filter(|s| s.namespace() == pod.namespace())
        {
            let Some(spec) = &svc.spec else { continue };
            let selects = spec.selector.as_ref().is_some_and(|sel| {
                !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
            });
            let port = spec
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.node_port);
            if let (true, Some(port)) = (selects, port) {
                hosts.insert(format!("{}:{port}", cluster.vip), pod.clone());
            }
        }
    }
    Some(hosts)
}

/// Which volume a member pod's data is on: its cluster, namespace and claims (a StatefulSet
/// pod's claim outlives the pod, so a rolled pod finds its data), or its name when it has none
/// (the simulator keeps such a pod's data across restarts, as if it had one). A claim deleted and
/// created again under the same name is not told apart (`testing/rs-sim/README.md`).
pub fn volume_identity(cluster: &str, pod: &Pod) -> String {
    let mut claims: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    claims.sort_unstable();
    let ns = pod.namespace().unwrap_or_default();
    if claims.is_empty() {
        format!("{cluster}/{ns}/pod {}", pod.name_any())
    } else {
        format!("{cluster}/{ns}/{}", claims.join(","))
    }
}

/// The MongoDB version a pod's `mongod` image tag names (`mongo:6.0.14-jammy` → `6.0.14`), as
/// the binary it would run; `None` when the tag names none (`latest`, a digest).
pub fn image_version(pod: &Pod) -> Option<String> {
    let image = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "mongod")?
        .image
        .clone()?;
    let last = image.split('@').next()?.rsplit('/').next()?.to_owned();
    let tag = last.split_once(':')?.1;
    let version: String = tag
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let version = version.trim_end_matches('.');
    (version.contains('.')).then(|| version.to_owned())
}

/// kwok's `Exec` kind (kwok.x-k8s.io/v1alpha1).
fn exec_resource() -> ApiResource {
    ApiResource {
        group: "kwok.x-k8s.io".into(),
        version: "v1alpha1".into(),
        api_version: "kwok.x-k8s.io/v1alpha1".into(),
        kind: "Exec".into(),
        plural: "execs".into(),
    }
}

impl PodShell {
    fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    fn pod_root(&self, cluster: &str, pod: &Pod) -> PathBuf {
        self.dir
            .join("pods")
            .join(cluster)
            .join(pod.namespace().unwrap_or_default())
            .join(pod.name_any())
    }

    /// `bin/mongosh` and `bin/mongo`, both the shell.
    fn install(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.bin_dir())?;
        for name in ["mongosh", "mongo"] {
            let link = self.bin_dir().join(name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&self.shell, &link)?;
        }
        Ok(())
    }

    /// The pod's mounted files and its kwok `Exec` object.
    async fn sync_pod(
        &self,
        sim: &Simulator,
        cluster: &MemberCluster,
        host: &str,
        pod: &Pod,
    ) -> Result<(), String> {
        let ns = pod.namespace().unwrap_or_default();
        let root = self.pod_root(&cluster.name, pod);
        write_mounted_files(&cluster.client, &ns, pod, "mongod", &root).await?;
        let path = format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir().display());
        let exec = serde_json::json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Exec",
            "metadata": {"name": pod.name_any(), "namespace": ns},
            "spec": {"execs": [{
                "containers": ["mongod"],
                "local": {
                    "workDir": root.display().to_string(),
                    "envs": [
                        {"name": "PATH", "value": path},
                        {"name": "FEDSTATE_SIM_SOCKET", "value": sim.in_pod_socket(host).display().to_string()},
                        {"name": "FEDSTATE_SIM_POD_ROOT", "value": root.display().to_string()},
                    ],
                },
            }]},
        });
        let obj: DynamicObject = serde_json::from_value(exec).map_err(|e| e.to_string())?;
        Api::<DynamicObject>::namespaced_with(cluster.client.clone(), &ns, &exec_resource())
            .patch(
                &pod.name_any(),
                &PatchParams::apply("fedstate-rs-sim").force(),
                &Patch::Apply(&obj),
            )
            .await
            .map_err(|e| format!("apply kwok Exec {ns}/{}: {e}", pod.name_any()))?;
        Ok(())
    }
}

/// A volume's files: key → bytes, the volume's `items` and default mode.
type VolumeFiles = (
    BTreeMap<String, Vec<u8>>,
    Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>,
    Option<i32>,
);

async fn volume_files(
    client: &Client,
    ns: &str,
    v: &k8s_openapi::api::core::v1::Volume,
) -> Result<Option<VolumeFiles>, String> {
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let secret = Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(&name)
            .await
            .map_err(|e| format!("get Secret {ns}/{name}: {e}"))?;
        let data = secret
            .and_then(|s| s.data)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        return Ok(Some((data, s.items.clone(), s.default_mode)));
    }
    if let Some(cm) = &v.config_map {
        let name = cm.name.clone();
        let map = Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(&name)
            .await
            .map_err(|e| format!("get ConfigMap {ns}/{name}: {e}"))?;
        let data = map
            .and_then(|m| m.data)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        return Ok(Some((data, cm.items.clone(), cm.default_mode)));
    }
    Ok(None)
}

/// Write the Secret and ConfigMap volumes `container` mounts under `root`, as the kubelet would
/// (all keys, or the volume's `items`, with their modes).
async fn write_mounted_files(
    client: &Client,
    ns: &str,
    pod: &Pod,
    container: &str,
    root: &Path,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Some(spec) = &pod.spec else {
        return Ok(());
    };
    let Some(c) = spec.containers.iter().find(|c| c.name == container) else {
        return Ok(());
    };
    for m in c.volume_mounts.iter().flatten() {
        let Some(v) = spec.volumes.iter().flatten().find(|v| v.name == m.name) else {
            continue;
        };
        let Some((data, items, mode)) = volume_files(client, ns, v).await? else {
            continue;
        };
        let files: Vec<(String, String, Option<i32>)> = match items {
            Some(items) => items.into_iter().map(|i| (i.key, i.path, i.mode)).collect(),
            None => data.keys().map(|k| (k.clone(), k.clone(), None)).collect(),
        };
        let dir = root.join(m.mount_path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (key, path, item_mode) in files {
            let Some(bytes) = data.get(&key) else {
                continue;
            };
            let file = dir.join(&path);
            let _ = std::fs::remove_file(&file);
            std::fs::write(&file, bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            let mode = item_mode.or(mode).unwrap_or(0o644) as u32;
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode));
        }
    }
    Ok(())
}

/// The keyfile mongod in `pod` is started with.
enum KeyFile {
    None,
    Path(String),
    /// mongod would not start: its config file cannot be read.
    Unusable(String),
}

/// The keyfile mongod in `pod` is started with: `--keyFile`, else `security.keyFile` of the
/// `--config` file (read from the ConfigMap volume that holds it). `Err` when there is no verdict
/// yet: the apiserver did not answer, or the ConfigMap does not hold the file yet (ask again).
async fn mongod_key_file(client: &Client, ns: &str, pod: &Pod) -> Result<KeyFile, String> {
    let Some(spec) = &pod.spec else {
        return Ok(KeyFile::None);
    };
    let Some(c) = spec.containers.iter().find(|c| c.name == "mongod") else {
        return Ok(KeyFile::None);
    };
    let words = crate::keyfile::command_line(c);
    let after = |flag: &str| {
        words
            .windows(2)
            .find(|w| w.first() == Some(&flag))
            .and_then(|w| w.get(1).map(|v| (*v).to_owned()))
    };
    if let Some(k) = after("--keyFile") {
        return Ok(KeyFile::Path(k));
    }
    let Some(config) = after("--config").or_else(|| after("-f")) else {
        return Ok(KeyFile::None);
    };
    let Some((volume, rel)) = crate::keyfile::mount_for(c, &config) else {
        return Ok(KeyFile::Unusable(format!(
            "{config}: not on a mounted volume"
        )));
    };
    let Some(v) = spec.volumes.iter().flatten().find(|v| v.name == volume) else {
        return Ok(KeyFile::Unusable(format!(
            "{config}: volume {volume} is not in the pod"
        )));
    };
    let Some((files, items, _)) = volume_files(client, ns, v).await? else {
        return Ok(KeyFile::Unusable(format!(
            "{config}: volume {volume} is not a ConfigMap"
        )));
    };
    let key = match items {
        Some(items) => items.into_iter().find(|i| i.path == rel).map(|i| i.key),
        None => Some(rel.to_owned()),
    };
    let Some(text) = key.and_then(|k| files.get(&k).cloned()) else {
        // The kubelet starts the container once the ConfigMap holds it: not yet, not never.
        return Err(format!("{config}: no such file in volume {volume} yet"));
    };
    let conf: serde_yaml::Value = match serde_yaml::from_slice(&text) {
        Ok(v) => v,
        Err(e) => return Ok(KeyFile::Unusable(format!("{config}: {e}"))),
    };
    let key_file = conf
        .get("security")
        .and_then(|s| s.get("keyFile"))
        .and_then(serde_yaml::Value::as_str);
    Ok(match key_file {
        Some(k) => KeyFile::Path(k.to_owned()),
        None => KeyFile::None,
    })
}

/// Why mongod in `pod` would not start for its keyfile (see [`crate::keyfile`]), if it would not.
/// `Err`: no verdict yet (see [`mongod_key_file`]).
async fn keyfile_refusal(client: &Client, pod: &Pod) -> Result<Option<String>, String> {
    let ns = pod.namespace().unwrap_or_default();
    Ok(match mongod_key_file(client, &ns, pod).await? {
        KeyFile::Path(path) => crate::keyfile::check(pod, "mongod", &path).err(),
        KeyFile::None => None,
        KeyFile::Unusable(why) => Some(why),
    })
}

/// Keep serving what the clusters run until `stop`; with `shell`, exec into served pods works.
pub async fn run_with_shell(
    sim: Arc<Simulator>,
    clusters: Vec<MemberCluster>,
    shell: Option<PodShell>,
    stop: CancellationToken,
) {
    if let Some(sh) = &shell
        && let Err(e) = sh.install()
    {
        tracing::warn!(dir = %sh.dir.display(), error = %e, "cannot install the pod shell");
    }
    let mut served: BTreeSet<String> = BTreeSet::new();
    let mut versions: BTreeMap<String, String> = BTreeMap::new();
    // Per pod (uid): why its mongod would refuse its keyfile, if it would.
    let mut keyfiles: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut round: u64 = 0;
    // The hosts each cluster ran when it last answered.
    let mut cluster_hosts: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    // The volume each host's member last ran on ([`volume_identity`]).
    let mut volumes: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let mut want = BTreeSet::new();
        let mut pod_uids = BTreeSet::new();
        let mut partitioned = BTreeSet::new();
        for (ci, c) in clusters.iter().enumerate() {
            let Some(pods) = running_pods(c).await else {
                partitioned.extend(cluster_hosts.remove(&ci).unwrap_or_default());
                continue;
            };
            cluster_hosts.insert(ci, pods.keys().cloned().collect());
            for (host, pod) in &pods {
                // Data lives on the member's claim: another claim behind the same address (a
                // NodePort handed out again after a deleted set freed it) is an empty dbPath.
                let volume = volume_identity(&c.name, pod);
                if volumes.get(host).is_some_and(|v| *v != volume) {
                    tracing::info!(%host, %volume, "member on another volume: starts empty");
                    if served.remove(host) {
                        sim.stop(host);
                    }
                    sim.world().new_volume(host);
                }
                volumes.insert(host.clone(), volume);
            }
            for (host, pod) in &pods {
                let fresh = !served.contains(host);
                if let Some(sh) = &shell
                    && (fresh || round.is_multiple_of(10))
                    && let Err(e) = sh.sync_pod(&sim, c, host, pod).await
                {
                    tracing::warn!(%host, error = %e, "cannot prepare the pod's exec");
                }
            }
            for (host, pod) in &pods {
                // The binary is the image's: a changed tag (a rolled pod) is another mongod.
                if let Some(v) = image_version(pod)
                    && versions.get(host) != Some(&v)
                {
                    sim.world().set_version(host, &v);
                    versions.insert(host.clone(), v);
                }
                // A mongod that refuses to start on its data (an FCV it cannot run with) or its
                // keyfile does not listen.
                let uid = pod.uid().unwrap_or_default();
                pod_uids.insert(uid.clone());
                if !keyfiles.contains_key(&uid) {
                    match keyfile_refusal(&c.client, pod).await {
                        Ok(refusal) => {
                            if let Some(why) = &refusal {
                                tracing::warn!(%host, %why, "mongod would refuse its keyfile");
                            }
                            keyfiles.insert(uid.clone(), refusal);
                        }
                        // No verdict yet: served as before the check, asked again next round.
                        Err(e) => tracing::debug!(%host, error = %e, "keyfile check deferred"),
                    }
                }
                let failure = keyfiles
                    .get(&uid)
                    .cloned()
                    .flatten()
                    .or_else(|| sim.world().start_failure(host).map(str::to_owned));
                match failure {
                    Some(why) if round.is_multiple_of(20) => {
                        tracing::warn!(%host, %why, "member does not start")
                    }
                    Some(_) => {}
                    None => {
                        want.insert(host.clone());
                    }
                }
            }
        }
        keyfiles.retain(|uid, _| pod_uids.contains(uid));
        for h in served.difference(&want) {
            if partitioned.contains(h) {
                // Its cluster does not answer: a partition, not a stopped process.
                tracing::info!(host = %h, "member's cluster gone: no longer served");
                sim.partition(h);
            } else {
                tracing::info!(host = %h, "member gone: no longer served");
                sim.stop(h);
            }
        }
        for h in want.difference(&served) {
            match sim.serve(h).await {
                Ok(()) => tracing::info!(host = %h, "serving member"),
                Err(e) => tracing::warn!(host = %h, error = %e, "cannot serve member"),
            }
        }
        served = sim.served().into_iter().collect::<BTreeSet<_>>();
        served.retain(|h| want.contains(h));
        round += 1;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    for h in served {
        sim.stop(&h);
    }
}

/// Keep serving what the clusters run until `stop` (no exec into pods).
pub async fn run(sim: Arc<Simulator>, clusters: Vec<MemberCluster>, stop: CancellationToken) {
    run_with_shell(sim, clusters, None, stop).await;
}
