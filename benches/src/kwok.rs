//! One more fake (kwok) node in a member cluster, for benchmarks whose population outgrows the
//! local federation's two nodes per member.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Create (or update) kwok node `name` with `cpu`, `memory` and `pods` as capacity and
/// allocatable, labelled `fedstate.io/node-index: <index>`; written by `field_manager`.
pub async fn add_node(
    client: &kube::Client,
    field_manager: &str,
    name: &str,
    index: &str,
    (cpu, memory, pods): (&str, &str, &str),
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let resources = json!({"cpu": cpu, "memory": memory, "pods": pods});
    nodes
        .patch(
            name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name,
                             "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                             "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "fedstate.io/node-index": index}},
            })),
        )
        .await
        .with_context(|| format!("create node {name}"))?;
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"capacity": resources, "allocatable": resources}})),
        )
        .await
        .with_context(|| format!("set capacity of node {name}"))?;
    Ok(())
}
