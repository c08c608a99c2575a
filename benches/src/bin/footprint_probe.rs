//! Where the scheduler's footprint goes, without a federation: the growth of this process's
//! RSS while it holds, in kube reflector stores as `fedstate-scheduler run` does, the objects of
//! the side-by-side footprint (1,000 Clusters with a member's status, 10,000 placed
//! ResourceBindings), each parsed from the JSON an apiserver sends (with its managedFields) and
//! kept as the scheduler's watches keep it: bindings in their compact cached form
//! (`CachedBinding`), Clusters trimmed of managedFields; the API type's cases say what the
//! compact form saves. Each structure is measured in a fresh process
//! (the probe runs itself once per case), so one's freed memory does not hide another's.
//!
//! ```sh
//! cargo run --release -p fedstate-benches --bin footprint_probe
//! ```

use std::process::Command;

use anyhow::Context as _;
use clap::Parser;
use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_benches::{procstat, workload};
use fedstate_scheduler::service::binding::Binding as _;
use fedstate_scheduler::service::cached::CachedBinding;
use kube::ResourceExt;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "RSS per cached Cluster and binding, as the scheduler caches them")]
struct Args {
    /// Clusters (with a member's status).
    #[arg(long, default_value_t = 1000)]
    clusters: usize,
    /// Placed ResourceBindings.
    #[arg(long, default_value_t = 10_000)]
    bindings: usize,
    /// Objects per list page (the watcher's `page_size`; kube's default is 500).
    #[arg(long, default_value_t = 500)]
    page: usize,
    /// Measure one case in this process (used by the probe itself).
    #[arg(long, hide = true)]
    case: Option<String>,
}

const CASES: [&str; 9] = [
    "nothing",
    "bindings compact (as cached)",
    "bindings compact, listed in pages",
    "bindings as the API type, trimmed",
    "bindings as the API type, trimmed, listed in pages",
    "bindings untrimmed",
    "bindings' JSON",
    "clusters as cached",
    "clusters as cached, listed in pages",
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(case) = &args.case {
        let rss = measure(case, &args)?;
        println!("{rss}");
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut base = 0u64;
    println!("| case | objects | RSS growth MiB | per object KiB |\n|---|---:|---:|---:|");
    for case in CASES {
        let out = Command::new(&exe)
            .args(["--case", case])
            .args(["--clusters", &args.clusters.to_string()])
            .args(["--bindings", &args.bindings.to_string()])
            .args(["--page", &args.page.to_string()])
            .output()?;
        anyhow::ensure!(out.status.success(), "{case}: {out:?}");
        let rss: u64 = String::from_utf8(out.stdout)?
            .trim()
            .parse()
            .with_context(|| format!("{case}: output"))?;
        if case == "nothing" {
            base = rss;
            println!(
                "| process with nothing cached | – | {:.1} (RSS) | – |",
                rss as f64 / f64::from(1 << 20)
            );
            continue;
        }
        let n = if case.starts_with("clusters") {
            args.clusters
        } else {
            args.bindings
        };
        let grown = rss.saturating_sub(base);
        let case = case.replace("in pages", &format!("in pages of {}", args.page));
        println!(
            "| {case} | {n} | {:.1} | {:.2} |",
            grown as f64 / f64::from(1 << 20),
            grown as f64 / 1024.0 / n as f64
        );
    }
    println!(
        "\nInline sizes: ResourceBinding {} B (its ObjectMeta {} B), Cluster {} B; a \
         BTreeMap<String, String> allocates a node for 11 entries however few it holds.",
        std::mem::size_of::<ResourceBinding>(),
        std::mem::size_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(),
        std::mem::size_of::<Cluster>()
    );
    Ok(())
}

/// RSS once the case's objects are held (the parse buffers freed).
fn measure(case: &str, args: &Args) -> anyhow::Result<u64> {
    let members = vec!["member1".to_owned(), "member2".into(), "member3".into()];
    let binding_json = |i: usize| -> anyhow::Result<Vec<u8>> {
        let mut v = serde_json::to_value(workload::placed_binding("footprint", i, &members)?)?;
        as_served(&mut v, i);
        Ok(serde_json::to_vec(&v)?)
    };
    // One page of a list as the watcher gets it: one JSON array, its whole text alive until parsed.
    let binding_page = |page: &[usize]| -> anyhow::Result<Vec<ResourceBinding>> {
        let mut body = b"[".to_vec();
        for (n, i) in page.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend(binding_json(*i)?);
        }
        body.push(b']');
        Ok(serde_json::from_slice(&body)?)
    };
    let held: Box<dyn std::any::Any> = match case {
        "nothing" => Box::new(()),
        // The API type, as the scheduler cached bindings before the compact form.
        "bindings as the API type, trimmed" | "bindings untrimmed" => {
            let trim = case != "bindings untrimmed";
            let (reader, mut writer) = reflector::store::<ResourceBinding>();
            writer.apply_watcher_event(&Event::Init);
            for i in 0..args.bindings {
                let mut b: ResourceBinding = serde_json::from_slice(&binding_json(i)?)?;
                if trim {
                    b.managed_fields_mut().clear();
                    b.strip_unread();
                }
                writer.apply_watcher_event(&Event::InitApply(b));
            }
            writer.apply_watcher_event(&Event::InitDone);
            anyhow::ensure!(reader.state().len() == args.bindings);
            Box::new((reader, writer))
        }
        // As `fedstate-scheduler run` caches them: each made compact as it arrives.
        "bindings compact (as cached)" => {
            let (reader, mut writer) = reflector::store::<CachedBinding<ResourceBinding>>();
            writer.apply_watcher_event(&Event::Init);
            for i in 0..args.bindings {
                let b: ResourceBinding = serde_json::from_slice(&binding_json(i)?)?;
                writer.apply_watcher_event(&Event::InitApply(b.into()));
            }
            writer.apply_watcher_event(&Event::InitDone);
            anyhow::ensure!(reader.state().len() == args.bindings);
            Box::new((reader, writer))
        }
        // What the watcher does on start: a page parsed whole, then each made compact.
        "bindings compact, listed in pages" => {
            let (reader, mut writer) = reflector::store::<CachedBinding<ResourceBinding>>();
            writer.apply_watcher_event(&Event::Init);
            for page in (0..args.bindings)
                .collect::<Vec<_>>()
                .chunks(args.page.max(1))
            {
                let items = binding_page(page)?;
                for b in items {
                    writer.apply_watcher_event(&Event::InitApply(b.into()));
                }
            }
            writer.apply_watcher_event(&Event::InitDone);
            anyhow::ensure!(reader.state().len() == args.bindings);
            Box::new((reader, writer))
        }
        "bindings as the API type, trimmed, listed in pages" => {
            let (reader, mut writer) = reflector::store::<ResourceBinding>();
            writer.apply_watcher_event(&Event::Init);
            for page in (0..args.bindings)
                .collect::<Vec<_>>()
                .chunks(args.page.max(1))
            {
                let items = binding_page(page)?;
                for mut b in items {
                    b.managed_fields_mut().clear();
                    b.strip_unread();
                    writer.apply_watcher_event(&Event::InitApply(b));
                }
            }
            writer.apply_watcher_event(&Event::InitDone);
            anyhow::ensure!(reader.state().len() == args.bindings);
            Box::new((reader, writer))
        }
        "bindings' JSON" => {
            let all: anyhow::Result<Vec<Vec<u8>>> = (0..args.bindings).map(binding_json).collect();
            Box::new(all?)
        }
        "clusters as cached" => {
            let (reader, mut writer) = reflector::store::<Cluster>();
            writer.apply_watcher_event(&Event::Init);
            for i in 0..args.clusters {
                let mut c: Cluster = serde_json::from_value(member_cluster(i))?;
                c.managed_fields_mut().clear();
                writer.apply_watcher_event(&Event::InitApply(c));
            }
            writer.apply_watcher_event(&Event::InitDone);
            Box::new((reader, writer))
        }
        "clusters as cached, listed in pages" => {
            let (reader, mut writer) = reflector::store::<Cluster>();
            writer.apply_watcher_event(&Event::Init);
            for page in (0..args.clusters)
                .collect::<Vec<_>>()
                .chunks(args.page.max(1))
            {
                let items: Vec<Value> = page.iter().map(|i| member_cluster(*i)).collect();
                let body = serde_json::to_vec(&items)?;
                drop(items);
                let items: Vec<Cluster> = serde_json::from_slice(&body)?;
                drop(body);
                for mut c in items {
                    c.managed_fields_mut().clear();
                    writer.apply_watcher_event(&Event::InitApply(c));
                }
            }
            writer.apply_watcher_event(&Event::InitDone);
            Box::new((reader, writer))
        }
        other => anyhow::bail!("no case {other}"),
    };
    let rss = procstat::memory(std::process::id())?.rss;
    drop(held);
    Ok(rss)
}

/// What the apiserver adds to a created binding: uid, resourceVersion, generation, creation
/// time and the creator's managedFields entry.
fn as_served(v: &mut Value, i: usize) {
    let meta = &mut v["metadata"];
    meta["uid"] = json!(format!("8c7e1a52-0000-4000-8000-{i:012}"));
    meta["resourceVersion"] = json!(format!("{}", 100_000 + i));
    meta["generation"] = json!(1);
    meta["creationTimestamp"] = json!("2026-12-01T13:20:00Z");
    meta["managedFields"] = json!([{
        "manager": "side_by_side", "operation": "Update", "apiVersion": "work.karmada.io/v1alpha2",
        "time": "2026-12-01T13:20:00Z", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:propagationpolicy.karmada.io/name": {},
            "f:propagationpolicy.karmada.io/namespace": {}}, "f:labels": {".": {},
            "f:propagationpolicy.karmada.io/permanent-id": {}}},
            "f:spec": {".": {}, "f:clusters": {}, "f:conflictResolution": {}, "f:placement": {".": {},
            "f:replicaScheduling": {".": {}, "f:replicaDivisionPreference": {}, "f:replicaSchedulingType": {},
            "f:weightPreference": {".": {}, "f:dynamicWeight": {}}}}, "f:replicaRequirements": {".": {},
            "f:namespace": {}, "f:resourceRequest": {".": {}, "f:cpu": {}, "f:memory": {}}},
            "f:replicas": {}, "f:resource": {".": {}, "f:apiVersion": {}, "f:kind": {}, "f:name": {},
            "f:namespace": {}, "f:resourceVersion": {}, "f:uid": {}}, "f:schedulerName": {}}}
    }]);
}

/// A member Cluster as Karmada's cluster status controller reports a Kubernetes 1.35 member:
/// the API enablements of its built-in groups, node and resource summaries, conditions.
fn member_cluster(i: usize) -> Value {
    const GROUPS: &[(&str, &[(&str, &str)])] = &[
        (
            "v1",
            &[
                ("bindings", "Binding"),
                ("componentstatuses", "ComponentStatus"),
                ("configmaps", "ConfigMap"),
                ("endpoints", "Endpoints"),
                ("events", "Event"),
                ("limitranges", "LimitRange"),
                ("namespaces", "Namespace"),
                ("nodes", "Node"),
                ("persistentvolumeclaims", "PersistentVolumeClaim"),
                ("persistentvolumes", "PersistentVolume"),
                ("pods", "Pod"),
                ("podtemplates", "PodTemplate"),
                ("replicationcontrollers", "ReplicationController"),
                ("resourcequotas", "ResourceQuota"),
                ("secrets", "Secret"),
                ("serviceaccounts", "ServiceAccount"),
                ("services", "Service"),
            ],
        ),
        (
            "apps/v1",
            &[
                ("controllerrevisions", "ControllerRevision"),
                ("daemonsets", "DaemonSet"),
                ("deployments", "Deployment"),
                ("replicasets", "ReplicaSet"),
                ("statefulsets", "StatefulSet"),
            ],
        ),
        ("batch/v1", &[("cronjobs", "CronJob"), ("jobs", "Job")]),
        (
            "autoscaling/v2",
            &[("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
        ),
        (
            "autoscaling/v1",
            &[("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
        ),
        (
            "networking.k8s.io/v1",
            &[
                ("ingressclasses", "IngressClass"),
                ("ingresses", "Ingress"),
                ("networkpolicies", "NetworkPolicy"),
                ("ipaddresses", "IPAddress"),
                ("servicecidrs", "ServiceCIDR"),
            ],
        ),
        (
            "policy/v1",
            &[("poddisruptionbudgets", "PodDisruptionBudget")],
        ),
        (
            "rbac.authorization.k8s.io/v1",
            &[
                ("clusterrolebindings", "ClusterRoleBinding"),
                ("clusterroles", "ClusterRole"),
                ("rolebindings", "RoleBinding"),
                ("roles", "Role"),
            ],
        ),
        (
            "storage.k8s.io/v1",
            &[
                ("csidrivers", "CSIDriver"),
                ("csinodes", "CSINode"),
                ("csistoragecapacities", "CSIStorageCapacity"),
                ("storageclasses", "StorageClass"),
                ("volumeattachments", "VolumeAttachment"),
                ("volumeattributesclasses", "VolumeAttributesClass"),
            ],
        ),
        (
            "admissionregistration.k8s.io/v1",
            &[
                (
                    "mutatingwebhookconfigurations",
                    "MutatingWebhookConfiguration",
                ),
                ("validatingadmissionpolicies", "ValidatingAdmissionPolicy"),
                (
                    "validatingadmissionpolicybindings",
                    "ValidatingAdmissionPolicyBinding",
                ),
                (
                    "validatingwebhookconfigurations",
                    "ValidatingWebhookConfiguration",
                ),
            ],
        ),
        (
            "apiextensions.k8s.io/v1",
            &[("customresourcedefinitions", "CustomResourceDefinition")],
        ),
        (
            "scheduling.k8s.io/v1",
            &[("priorityclasses", "PriorityClass")],
        ),
        ("coordination.k8s.io/v1", &[("leases", "Lease")]),
        ("node.k8s.io/v1", &[("runtimeclasses", "RuntimeClass")]),
        (
            "discovery.k8s.io/v1",
            &[("endpointslices", "EndpointSlice")],
        ),
        (
            "flowcontrol.apiserver.k8s.io/v1",
            &[
                ("flowschemas", "FlowSchema"),
                ("prioritylevelconfigurations", "PriorityLevelConfiguration"),
            ],
        ),
        (
            "certificates.k8s.io/v1",
            &[("certificatesigningrequests", "CertificateSigningRequest")],
        ),
        (
            "resource.k8s.io/v1",
            &[
                ("deviceclasses", "DeviceClass"),
                ("resourceclaims", "ResourceClaim"),
                ("resourceclaimtemplates", "ResourceClaimTemplate"),
                ("resourceslices", "ResourceSlice"),
            ],
        ),
        ("events.k8s.io/v1", &[("events", "Event")]),
        (
            "apiregistration.k8s.io/v1",
            &[("apiservices", "APIService")],
        ),
    ];
    let enablements: Vec<Value> = GROUPS
        .iter()
        .map(|(gv, rs)| {
            json!({"groupVersion": gv, "resources": rs.iter()
                .map(|(name, kind)| json!({"name": name, "kind": kind})).collect::<Vec<_>>()})
        })
        .collect();
    json!({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": format!("sim{i:04}"), "uid": format!("c0000000-0000-4000-8000-{i:012}"),
            "resourceVersion": format!("{}", 5000 + i), "generation": 1,
            "creationTimestamp": "2026-12-01T13:00:00Z",
            "labels": {"region": format!("r{}", i % 5), "vip": format!("127.0.2.{}", i % 250)},
            "finalizers": ["karmada.io/cluster-controller"]},
        "spec": {"syncMode": "Pull", "provider": format!("p{}", i % 3), "region": format!("r{}", i % 5),
            "id": format!("c0000000-0000-4000-8000-{i:012}"),
            "resourceModels": [], "impersonatorSecretRef": {"namespace": "karmada-cluster", "name": "x"}},
        "status": {
            "kubernetesVersion": "v1.35.3",
            "apiEnablements": enablements,
            "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterReady",
                "message": "cluster is healthy and ready to accept workloads",
                "lastTransitionTime": "2026-12-01T13:00:00Z"}],
            "nodeSummary": {"totalNum": 3, "readyNum": 3},
            "resourceSummary": {
                "allocatable": {"cpu": "96", "memory": "384Gi", "pods": "330", "ephemeral-storage": "1Ti"},
                "allocating": {"cpu": "0", "memory": "0", "pods": "0"},
                "allocated": {"cpu": "1200m", "memory": "2Gi", "pods": "12"}
            }
        }
    })
}
