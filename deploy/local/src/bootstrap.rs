//! Objects `up` installs: in the Karmada apiserver (namespace, Karmada's CRDs, the APIService of
//! the aggregated apiserver, the webhook configurations, the estimator Services) and in each
//! member (fake nodes, storage class, PersistentVolumes).
//!
//! Karmada's CRDs and webhook configuration are read from the pinned Karmada Go module, with the
//! in-cluster Service URLs replaced by loopback URLs; kwok's stages from the pinned kwok module.

use std::fmt::Debug;
use std::path::Path;

use json_patch::merge;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::capacity::{
    KWOK_NODE_ANNOTATION, NODE_INDEX_LABEL, PERSISTENT_VOLUME_GIB, PERSISTENT_VOLUMES_PER_MEMBER,
    STORAGE_CLASS, member_nodes,
};
use crate::error::{Error, Result};
use crate::layout::{PortPlan, member_name};

/// Field manager of everything `fedstate-local` applies.
pub const FIELD_MANAGER: &str = "fedstate-local";

/// Namespace of Karmada's system objects in the Karmada apiserver.
pub const KARMADA_SYSTEM: &str = "karmada-system";

/// Prefix of the estimator Services karmada-scheduler looks up (its default).
pub const ESTIMATOR_SERVICE_PREFIX: &str = "karmada-scheduler-estimator";

/// Server-side applies `obj` through `api`.
pub(crate) async fn apply<K>(api: &Api<K>, cluster: &str, obj: &K) -> Result<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(Error::kube(
        format!("apply {} {name}", K::kind(&())),
        cluster,
    ))
}

fn typed<K: DeserializeOwned>(what: &str, value: Value) -> Result<K> {
    serde_json::from_value(value).map_err(|e| Error::Manifest {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// Parses a multi-document YAML file into JSON values (empty documents skipped).
pub(crate) fn yaml_documents(what: &str, text: &str) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| Error::Manifest {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// Replaces Karmada's in-cluster webhook URLs and CA placeholders with ours.
fn localize_karmada_manifest(text: &str, webhook_port: u16, ca_bundle_b64: &str) -> String {
    let url = format!("https://127.0.0.1:{webhook_port}");
    text.replace("https://karmada-webhook.karmada-system.svc:443", &url)
        .replace("https://{{name}}.{{namespace}}.svc:443", &url)
        .replace("{{caBundle}}", ca_bundle_b64)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(Error::io("read", path))
}

/// Karmada's CRDs (`charts/karmada/_crds`, the kustomization's resources with its patches).
pub fn karmada_crds(
    karmada_module: &Path,
    webhook_port: u16,
    ca_bundle_b64: &str,
) -> Result<Vec<CustomResourceDefinition>> {
    let base = karmada_module.join("charts/karmada/_crds");
    let kustomization = yaml_documents(
        "kustomization.yaml",
        &read(&base.join("kustomization.yaml"))?,
    )?;
    let kustomization = kustomization.into_iter().next().unwrap_or(Value::Null);
    let mut crds: Vec<Value> = Vec::new();
    let list = |key: &str| kustomization.get(key).and_then(Value::as_array);
    for resource in list("resources").into_iter().flatten() {
        let rel = resource.as_str().unwrap_or_default();
        crds.extend(yaml_documents(rel, &read(&base.join(rel))?)?);
    }
    for patch in list("patches").into_iter().flatten() {
        let rel = patch
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let text = localize_karmada_manifest(&read(&base.join(rel))?, webhook_port, ca_bundle_b64);
        for p in yaml_documents(rel, &text)? {
            let name = p.pointer("/metadata/name");
            if let Some(target) = crds
                .iter_mut()
                .find(|c| c.pointer("/metadata/name") == name)
            {
                merge(target, &p);
            }
        }
    }
    if crds.is_empty() {
        return Err(Error::Manifest {
            what: base.display().to_string(),
            detail: "no CRDs found".into(),
        });
    }
    crds.into_iter()
        .map(|c| {
            let what = c
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("crd")
                .to_string();
            typed(&what, c)
        })
        .collect()
}

/// Karmada's webhook configurations (`artifacts/deploy/webhook-configuration.yaml`).
pub fn karmada_webhook_configurations(
    karmada_module: &Path,
    webhook_port: u16,
    ca_bundle_b64: &str,
) -> Result<(
    Vec<MutatingWebhookConfiguration>,
    Vec<ValidatingWebhookConfiguration>,
)> {
    let path = karmada_module.join("artifacts/deploy/webhook-configuration.yaml");
    let text = localize_karmada_manifest(&read(&path)?, webhook_port, ca_bundle_b64);
    let mut mutating = Vec::new();
    let mut validating = Vec::new();
    for doc in yaml_documents("webhook-configuration.yaml", &text)? {
        match doc.get("kind").and_then(Value::as_str) {
            Some("MutatingWebhookConfiguration") => mutating.push(typed("mutating webhook", doc)?),
            Some("ValidatingWebhookConfiguration") => {
                validating.push(typed("validating webhook", doc)?)
            }
            _ => {}
        }
    }
    Ok((mutating, validating))
}

/// Namespace, CRDs, the aggregated apiserver's Service and APIService, and the estimator
/// Services, in the Karmada apiserver. Webhook configurations come later (once the webhook
/// serves), see [`install_webhook_configurations`].
pub async fn install_control_plane_objects(
    client: &kube::Client,
    karmada_module: &Path,
    ports: PortPlan,
    ca_bundle_b64: &str,
    members: u32,
) -> Result<()> {
    const CLUSTER: &str = "karmada-apiserver";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [KARMADA_SYSTEM, "karmada-cluster"] {
        apply(
            &namespaces,
            CLUSTER,
            &typed(
                "namespace",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )?,
        )
        .await?;
    }

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in karmada_crds(karmada_module, ports.webhook(), ca_bundle_b64)? {
        apply(&crds, CLUSTER, &crd).await?;
    }

    let services: Api<Service> = Api::namespaced(client.clone(), KARMADA_SYSTEM);
    let agg_port = ports.aggregated_apiserver();
    apply(
        &services,
        CLUSTER,
        &external_name_service("karmada-aggregated-apiserver", agg_port, agg_port)?,
    )
    .await?;
    for i in 1..=members {
        apply(
            &services,
            CLUSTER,
            &external_name_service(
                &format!("{ESTIMATOR_SERVICE_PREFIX}-{}", member_name(i)),
                crate::ESTIMATOR_SERVICE_PORT,
                ports.member(i).estimator_grpc,
            )?,
        )
        .await?;
    }

    let apiservices: Api<APIService> = Api::all(client.clone());
    let apiservice = typed(
        "APIService v1alpha1.cluster.karmada.io",
        json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1alpha1.cluster.karmada.io", "labels": {"app": "karmada-aggregated-apiserver", "apiserver": "true"}},
            "spec": {
                "caBundle": ca_bundle_b64,
                "group": "cluster.karmada.io",
                "groupPriorityMinimum": 2000,
                "service": {"name": "karmada-aggregated-apiserver", "namespace": KARMADA_SYSTEM, "port": agg_port},
                "version": "v1alpha1",
                "versionPriority": 10,
            },
        }),
    )?;
    apply(&apiservices, CLUSTER, &apiservice).await?;
    Ok(())
}

/// An ExternalName Service pointing at `127.0.0.1:<target_port>`: the aggregator dials
/// `externalName:<port>`, karmada-scheduler dials `externalName:<targetPort>`.
fn external_name_service(name: &str, port: u16, target_port: u16) -> Result<Service> {
    typed(
        name,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": KARMADA_SYSTEM},
            "spec": {
                "type": "ExternalName",
                "externalName": "127.0.0.1",
                "ports": [{"name": "grpc-or-https", "port": port, "protocol": "TCP", "targetPort": target_port}],
            },
        }),
    )
}

/// Karmada's mutating and validating webhook configurations, pointing at the local webhook.
pub async fn install_webhook_configurations(
    client: &kube::Client,
    karmada_module: &Path,
    webhook_port: u16,
    ca_bundle_b64: &str,
) -> Result<()> {
    const CLUSTER: &str = "karmada-apiserver";
    let (mutating, validating) =
        karmada_webhook_configurations(karmada_module, webhook_port, ca_bundle_b64)?;
    let m: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for w in &mutating {
        apply(&m, CLUSTER, w).await?;
    }
    let v: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for w in &validating {
        apply(&v, CLUSTER, w).await?;
    }
    Ok(())
}

/// Storage class, PersistentVolumes and fake nodes (with their capacity) in member `index`.
pub async fn install_member_objects(
    client: &kube::Client,
    index: u32,
    kwok_module: &Path,
) -> Result<()> {
    let cluster = member_name(index);
    // kwok serves `pods/exec` with local commands from `Exec` objects (kwok.x-k8s.io): the
    // replica-set simulator writes one per member pod (`--enable-crds=Exec`).
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let exec_crd = kwok_module.join("kustomize/crd/bases/kwok.x-k8s.io_execs.yaml");
    for doc in yaml_documents("kwok Exec CRD", &read(&exec_crd)?)? {
        let crd: CustomResourceDefinition = typed("kwok Exec CRD", doc)?;
        apply(&crds, &cluster, &crd).await?;
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    apply(
        &classes,
        &cluster,
        &typed(
            STORAGE_CLASS,
            json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": STORAGE_CLASS,
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                // Static volumes, bound by the PV controller as soon as a claim appears.
                "provisioner": "kubernetes.io/no-provisioner",
                "reclaimPolicy": "Retain",
                "volumeBindingMode": "Immediate",
            }),
        )?,
    )
    .await?;

    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for n in 0..PERSISTENT_VOLUMES_PER_MEMBER {
        let name = format!("{cluster}-pv-{n:02}");
        let pv = typed(
            &name,
            json!({
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"fedstate.io/local-volume": "true"}},
                "spec": {
                    "capacity": {"storage": format!("{PERSISTENT_VOLUME_GIB}Gi")},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    // Never mounted: pods are faked by kwok.
                    "hostPath": {"path": format!("/tmp/fedstate-local/{cluster}/{name}")},
                },
            }),
        )?;
        apply(&pvs, &cluster, &pv).await?;
    }

    let nodes: Api<Node> = Api::all(client.clone());
    for shape in member_nodes(index) {
        let resources = json!({
            "cpu": format!("{}m", shape.cpu_millis),
            "memory": shape.memory_bytes.to_string(),
            "pods": shape.pods.to_string(),
        });
        let node: Node = typed(
            &shape.name,
            json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": shape.name,
                    "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": shape.name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "node-role.kubernetes.io/agent": "",
                        NODE_INDEX_LABEL: shape.index.to_string(),
                    },
                },
                "status": {"capacity": resources.clone(), "allocatable": resources.clone()},
            }),
        )?;
        apply(&nodes, &cluster, &node).await?;
        nodes
            .patch_status(
                &shape.name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"capacity": resources.clone(), "allocatable": resources}}),
                ),
            )
            .await
            .map_err(Error::kube(
                format!("set capacity of node {}", shape.name),
                &cluster,
            ))?;
    }
    Ok(())
}

/// kwok's stages: node initialisation, lease heartbeats, and the general pod lifecycle (pods on
/// our nodes go Running and Ready; deleted pods go away).
pub fn kwok_stages(kwok_module: &Path) -> Result<String> {
    let base = kwok_module.join("kustomize/stage");
    let mut out = String::new();
    for dir in ["node/fast", "node/heartbeat-with-lease", "pod/general"] {
        let kustomization =
            yaml_documents(dir, &read(&base.join(dir).join("kustomization.yaml"))?)?;
        let kustomization = kustomization.into_iter().next().unwrap_or(Value::Null);
        let resources = kustomization.get("resources").and_then(Value::as_array);
        for r in resources.into_iter().flatten() {
            let text = read(&base.join(dir).join(r.as_str().unwrap_or_default()))?;
            out.push_str("---\n");
            out.push_str(&text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Karmada's manifests as `up` installs them; skipped when the pinned module is not in the Go
    /// module cache (it is after `build.sh`).
    #[test]
    fn karmada_manifests_point_at_loopback() {
        let Some(module) =
            crate::binaries::cached_module_dir("github.com/karmada-io/karmada", "KARMADA_VERSION")
        else {
            eprintln!("skipped: Karmada module not in the Go module cache");
            return;
        };
        let crds = karmada_crds(&module, 31012, "Q0E=").expect("crds");
        let names: Vec<String> = crds
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        for expected in [
            "propagationpolicies.policy.karmada.io",
            "resourcebindings.work.karmada.io",
            "works.work.karmada.io",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
        let rb = crds
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some("resourcebindings.work.karmada.io"))
            .expect("resourcebindings");
        let conversion = serde_json::to_value(&rb.spec.conversion).expect("json");
        assert_eq!(conversion["strategy"], "Webhook");
        assert_eq!(
            conversion["webhook"]["clientConfig"]["url"],
            "https://127.0.0.1:31012/convert"
        );

        let (mutating, validating) =
            karmada_webhook_configurations(&module, 31012, "Q0E=").expect("webhooks");
        assert!(!mutating.is_empty() && !validating.is_empty());
        let text = serde_json::to_string(&(mutating, validating)).expect("json");
        assert!(!text.contains(".svc"), "an in-cluster URL survived: {text}");
        assert!(text.contains("https://127.0.0.1:31012/mutate-propagationpolicy"));
    }

    #[test]
    fn kwok_stages_cover_nodes_and_pods() {
        let Some(module) = crate::binaries::cached_module_dir("sigs.k8s.io/kwok", "KWOK_VERSION")
        else {
            eprintln!("skipped: kwok module not in the Go module cache");
            return;
        };
        let stages =
            yaml_documents("kwok.yaml", &kwok_stages(&module).expect("stages")).expect("yaml");
        let names: Vec<&str> = stages
            .iter()
            .filter_map(|s| s["metadata"]["name"].as_str())
            .collect();
        for expected in [
            "node-initialize",
            "node-heartbeat-with-lease",
            "pod-ready",
            "pod-delete",
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
    }

    #[test]
    fn merge_replaces_and_adds_keys() {
        let mut a = json!({"spec": {"a": 1, "conversion": {"strategy": "None"}}});
        merge(
            &mut a,
            &json!({"spec": {"conversion": {"strategy": "Webhook", "webhook": {"x": 1}}}}),
        );
        assert_eq!(
            a,
            json!({"spec": {"a": 1, "conversion": {"strategy": "Webhook", "webhook": {"x": 1}}}})
        );
    }

    #[test]
    fn localize_points_webhooks_at_loopback() {
        let s = localize_karmada_manifest(
            "url: https://karmada-webhook.karmada-system.svc:443/mutate-work\ncaBundle: {{caBundle}}\nurl: \"https://{{name}}.{{namespace}}.svc:443/convert\"",
            31012,
            "Q0E=",
        );
        assert_eq!(
            s,
            "url: https://127.0.0.1:31012/mutate-work\ncaBundle: Q0E=\nurl: \"https://127.0.0.1:31012/convert\""
        );
    }
}
