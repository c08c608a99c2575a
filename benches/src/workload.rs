//! What the benchmark asks schedulers to place: ResourceBindings as karmada-controller-manager's
//! detector writes them for a Deployment and a `Divided`/`Weighted`/`AvailableReplicas`
//! PropagationPolicy (so both schedulers ask the estimators), and MultiCloudMongoDBs.
//!
//! The bindings are created by the benchmark itself, not by the detector: the detector makes
//! about 5 bindings a second here, which would make every run measure it. They carry what the
//! detector writes (the policy's permanent-id label and name annotations, the template
//! reference, replicas, replica requirements, the placement, the scheduler name) but no owner
//! reference and no template: nothing dispatches them, so a run measures scheduling only.

use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_api::names::SCHEDULER_RESULT_ANNOTATION;
use fedstate_api::{MultiCloudMongoDB, SchedulerResult};
use serde_json::{Value, json};

/// Requests of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shapes {
    /// Every binding the same (2m CPU, 2Mi): after the first, our capacity cache answers.
    Uniform,
    /// Each binding of a phase its own (CPU 1–97m × memory 1–11Mi, 1,067 distinct): every
    /// decision is a cache miss, for us as for Karmada (which has no cache).
    Varied,
}

impl Shapes {
    /// `(cpu, memory)` of binding `i`.
    pub fn requests(self, i: usize) -> (String, String) {
        match self {
            Shapes::Uniform => ("2m".into(), "2Mi".into()),
            Shapes::Varied => (
                format!("{}m", 1 + i % 97),
                format!("{}Mi", 1 + (i / 97) % 11),
            ),
        }
    }
}

/// Binding `i` of a phase in `namespace` for `scheduler` (`None`: Karmada's default).
pub fn binding(
    namespace: &str,
    i: usize,
    replicas: u32,
    shapes: Shapes,
    scheduler: Option<&str>,
) -> anyhow::Result<ResourceBinding> {
    let name = format!("w{i:05}");
    let (cpu, memory) = shapes.requests(i);
    // Deterministic, distinct per namespace and binding (the tie rule of Karmada's division
    // reads the template's UID).
    let uid = format!(
        "00000000-0000-4000-8000-{:012x}",
        fnv(&format!("{namespace}/{name}"))
    );
    let mut spec = json!({
        "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace,
                     "name": name, "uid": uid, "resourceVersion": "1"},
        "replicas": replicas,
        "replicaRequirements": {"resourceRequest": {"cpu": cpu, "memory": memory}, "namespace": namespace},
        "placement": {"replicaScheduling": {
            "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
            "weightPreference": {"dynamicWeight": "AvailableReplicas"}}},
        "conflictResolution": "Abort",
    });
    if let Some(s) = scheduler {
        spec["schedulerName"] = json!(s);
    }
    let rb = json!({
        "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
        "metadata": {
            "name": format!("{name}-deployment"), "namespace": namespace,
            "labels": {"propagationpolicy.karmada.io/permanent-id": uid},
            "annotations": {"propagationpolicy.karmada.io/name": name,
                            "propagationpolicy.karmada.io/namespace": namespace},
        },
        "spec": spec,
    });
    Ok(serde_json::from_value(rb)?)
}

/// A binding already placed (`spec.clusters` set) that no scheduler serves: the footprint
/// benchmark's cached objects.
pub fn placed_binding(
    namespace: &str,
    i: usize,
    clusters: &[String],
) -> anyhow::Result<ResourceBinding> {
    let mut rb = binding(namespace, i, 3, Shapes::Varied, Some("bench-nobody"))?;
    rb.spec.clusters = divide(3, clusters);
    Ok(rb)
}

/// `replicas` spread over `clusters` in order, the first ones taking the remainder.
pub fn divide(
    replicas: i32,
    clusters: &[String],
) -> Vec<fedstate_api::karmada::binding_status::TargetCluster> {
    let n = clusters.len().max(1) as i32;
    clusters
        .iter()
        .enumerate()
        .map(
            |(i, c)| fedstate_api::karmada::binding_status::TargetCluster {
                name: c.clone(),
                replicas: replicas / n + i32::from((i as i32) < replicas % n),
            },
        )
        .filter(|t| t.replicas > 0)
        .collect()
}

/// True once a scheduler wrote a placement and its `Scheduled` condition.
pub fn is_scheduled(rb: &ResourceBinding) -> bool {
    !rb.spec.clusters.is_empty()
        && rb.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Scheduled" && c.status == "True")
        })
}

/// MultiCloudMongoDB `i` of a phase (3 members, no exporter, no password) for `scheduler`.
pub fn mcm(namespace: &str, i: usize, scheduler: &str) -> anyhow::Result<MultiCloudMongoDB> {
    let v: Value = json!({
        "apiVersion": fedstate_api::API_VERSION, "kind": "MultiCloudMongoDB",
        "metadata": {"name": format!("db{i:05}"), "namespace": namespace},
        "spec": {
            "replicaset": 3,
            "export": {"enable": false},
            "resource": {"requests": {"cpu": "2m", "memory": "2Mi"}, "limits": {"cpu": "2m", "memory": "2Mi"}},
            "storage": {"storageClass": "standard", "storageSize": "1Gi"},
            "imageSetting": {"image": "mongo:7.0", "imagePullPolicy": "IfNotPresent"},
            "scheduler": {"schedulerName": scheduler, "schedulerMode": "Uniform"},
        }
    });
    Ok(serde_json::from_value(v)?)
}

/// True once a scheduler wrote a parseable `schedulerResult` annotation.
pub fn is_placed(obj: &MultiCloudMongoDB) -> bool {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SCHEDULER_RESULT_ANNOTATION))
        .is_some_and(|v| SchedulerResult::parse(v).is_ok())
}

/// 64-bit FNV-1a, for deterministic UIDs.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) & 0xffff_ffff_ffff
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bindings_name_their_scheduler_and_are_for_it_by_karmadas_rule() {
        let rb = binding("ns", 7, 3, Shapes::Uniform, Some("ours")).unwrap();
        assert!(rb.is_for_scheduler("ours"));
        assert!(!rb.is_for_scheduler("default-scheduler"));
        let karmadas = binding("ns", 7, 3, Shapes::Uniform, None).unwrap();
        assert!(karmadas.is_for_scheduler("default-scheduler"));
        assert!(rb.spec.is_workload());
        assert!(!is_scheduled(&rb));
    }

    #[test]
    fn varied_shapes_are_distinct_within_a_phase() {
        let shapes: std::collections::HashSet<_> =
            (0..1000).map(|i| Shapes::Varied.requests(i)).collect();
        assert_eq!(shapes.len(), 1000);
        assert_eq!(Shapes::Uniform.requests(1), Shapes::Uniform.requests(2));
    }

    #[test]
    fn division_hands_out_every_replica() {
        let cs: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let d = divide(7, &cs);
        assert_eq!(d.iter().map(|t| t.replicas).collect::<Vec<_>>(), [3, 2, 2]);
        assert_eq!(divide(2, &cs).len(), 2);
    }

    #[test]
    fn mcms_parse_and_name_the_scheduler() {
        let m = mcm("ns", 3, "ours").unwrap();
        assert_eq!(m.spec.scheduler_name(), "ours");
        assert!(!is_placed(&m));
    }
}
