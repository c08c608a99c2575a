//! Placement + spec → every object the manager applies on the Karmada apiserver. Pure: the
//! controller gathers the inputs (the object, the member assignment, cluster VIPs, the NodePorts
//! the Karmada apiserver allocated) and applies the outputs.
//!
//! What goes where:
//! * one `MongoDB` template named like the `MultiCloudMongoDB`, carrying every spec field;
//! * its PropagationPolicy `<name>`, which names [`MANAGER_SCHEDULER_NAME`] so neither
//!   karmada-scheduler nor fedstate-scheduler's Karmada-native mode touches its binding: the
//!   manager writes the binding's `spec.clusters` itself, exactly as the placement says
//!   (see `manager/README.md` for why not static weights);
//! * one OverridePolicy `<name>` with one rule per cluster: `members`, `memberRoles` (identity,
//!   votes, priority), `rsInit` (exactly one cluster), `arbiter`, and the VIP label;
//! * one NodePort Service per member, `<name>-mongodb-<i>` (arbiters `<name>-mongodb-arbiter[-<i>]`),
//!   propagated to its member's cluster only (PropagationPolicy `<name>-services-<cluster>`);
//! * the host list ConfigMap `<name>-hostconf`, and the Secrets and user ConfigMap every cluster
//!   needs (PropagationPolicy `<name>-shared`).

use std::collections::BTreeMap;

use fedstate_api::API_VERSION as MONGODB_API_VERSION;
use fedstate_api::MongoDB;
use fedstate_api::MultiCloudMongoDB;
use fedstate_api::hostconf::{HOSTCONF_KEY, HostConf, HostConfError, HostEntry};
use fedstate_api::karmada::ClusterAffinity;
use fedstate_api::karmada::binding_status::TargetCluster;
use fedstate_api::karmada::override_policy::{
    LabelAnnotationOverrider, OP_ADD, OP_REPLACE, OverridePolicy, OverridePolicySpec, Overriders,
    PlaintextOverrider, RuleWithCluster,
};
use fedstate_api::karmada::propagation::{
    Placement, PropagationPolicy, PropagationPolicySpec, REPLICA_SCHEDULING_DIVIDED,
    REPLICA_SCHEDULING_DUPLICATED, ReplicaSchedulingStrategy, ResourceSelector, select_named,
};
use fedstate_api::karmada::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use fedstate_api::names::{
    self, LABEL_CLUSTER, LABEL_MEMBER_INDEX, LABEL_MEMBER_ROLE, LABEL_MEMBER_VIP, ROLE_ARBITER,
    ROLE_DATA,
};
use fedstate_api::v1alpha1::{
    ConfigVar, ImagePullSecret, MemberRole, MetricsExporterSpec, MongoDBSpec, PersistenceSpec,
    PodSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Secret, Service, ServicePort, ServiceSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde_json::json;

use crate::members::{Assignment, MemberRecord, PlannedMember};
use crate::secrets;

/// The scheduler name on the `MongoDB` template's PropagationPolicy: nobody but the manager
/// schedules that binding.
pub const MANAGER_SCHEDULER_NAME: &str = "fedstate-manager";
/// The finalizer FedState (Go) put on objects it created; such sets keep `replset-0`.
pub const FEDSTATE_GO_FINALIZER: &str = "multiCloudMongoDB.finalizers.middleware.fedstate.io";
/// mongod's port in every member pod.
pub const MONGODB_PORT: i32 = 27017;

/// Why the desired objects cannot be built yet. Messages become condition messages.
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error(
        "Karmada Cluster {cluster:?} has no VIP label; label it with the address members are reached at: kubectl label cluster {cluster} vip=<address>"
    )]
    MissingVip { cluster: String },
    #[error("Service {service} has no NodePort allocated yet")]
    PortPending { service: String },
    #[error("the member list is not valid: {0}")]
    HostConf(#[from] HostConfError),
}

/// Everything to apply for one `MultiCloudMongoDB`.
#[derive(Clone, Debug)]
pub struct Desired {
    pub mongodb: MongoDB,
    pub hostconf: ConfigMap,
    pub hostconf_list: HostConf,
    pub override_policy: OverridePolicy,
    pub propagation_policies: Vec<PropagationPolicy>,
    /// What the manager writes into the `MongoDB` binding's `spec.clusters`.
    pub binding_clusters: Vec<TargetCluster>,
}

/// Name, namespace, our labels and the owner reference, for an object of this instance.
pub fn meta(mcm: &MultiCloudMongoDB, name: String) -> ObjectMeta {
    let instance = mcm.metadata.name.clone().unwrap_or_default();
    ObjectMeta {
        name: Some(name),
        namespace: mcm.metadata.namespace.clone(),
        labels: Some(names::managed_labels(&instance)),
        owner_references: owner(mcm).map(|o| vec![o]),
        ..Default::default()
    }
}

fn owner(mcm: &MultiCloudMongoDB) -> Option<OwnerReference> {
    mcm.controller_owner_ref(&())
}

fn instance(mcm: &MultiCloudMongoDB) -> String {
    mcm.metadata.name.clone().unwrap_or_default()
}

/// The Service of a member.
pub fn service_name(instance: &str, index: i32, arbiter: bool) -> String {
    match (arbiter, u32::try_from(index)) {
        (false, Ok(i)) => names::member_service_name(instance, i),
        (true, Ok(0)) => names::arbiter_service_name(instance),
        _ => format!("{}-{index}", names::arbiter_service_name(instance)),
    }
}

/// The ConfigMap holding the host list (`spec.member.memberConfigRef` or `<name>-hostconf`).
pub fn hostconf_name(mcm: &MultiCloudMongoDB) -> String {
    mcm.spec
        .member
        .as_ref()
        .and_then(|m| m.member_config_ref.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| names::hostconf_name(&instance(mcm)))
}

/// One NodePort Service per member, active or retiring. The NodePort is left to the Karmada
/// apiserver's allocator (unique across the federation, kept on every later apply) and carried
/// unchanged to the member cluster.
pub fn services(mcm: &MultiCloudMongoDB, assignment: &Assignment) -> Vec<Service> {
    let name = instance(mcm);
    assignment
        .members
        .iter()
        .map(|m| {
            let mut meta = meta(mcm, service_name(&name, m.index, m.arbiter));
            let role = if m.arbiter { ROLE_ARBITER } else { ROLE_DATA };
            let labels = meta.labels.get_or_insert_with(BTreeMap::new);
            labels.insert(LABEL_CLUSTER.into(), m.cluster.clone());
            labels.insert(LABEL_MEMBER_INDEX.into(), m.index.to_string());
            labels.insert(LABEL_MEMBER_ROLE.into(), role.into());
            let mut selector = BTreeMap::from([
                (names::LABEL_INSTANCE.to_owned(), name.clone()),
                (LABEL_MEMBER_ROLE.to_owned(), role.to_owned()),
            ]);
            if !m.arbiter {
                selector.insert(LABEL_MEMBER_INDEX.into(), m.index.to_string());
            }
            Service {
                metadata: meta,
                spec: Some(ServiceSpec {
                    type_: Some("NodePort".into()),
                    // Members must reach each other before they are ready (replica set init).
                    publish_not_ready_addresses: Some(true),
                    selector: Some(selector),
                    ports: Some(vec![ServicePort {
                        name: Some("mongodb".into()),
                        port: MONGODB_PORT,
                        target_port: Some(IntOrString::Int(MONGODB_PORT)),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect()
}

/// The member a Service of ours records (its labels and allocated NodePort).
pub fn record_from_service(svc: &Service) -> Option<MemberRecord> {
    let labels = svc.metadata.labels.as_ref()?;
    let node_port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.node_port);
    Some(MemberRecord {
        index: labels.get(LABEL_MEMBER_INDEX)?.parse().ok()?,
        cluster: labels.get(LABEL_CLUSTER)?.clone(),
        arbiter: labels.get(LABEL_MEMBER_ROLE)? == ROLE_ARBITER,
        node_port,
    })
}

/// Address `<vip>:<nodePort>` of every member that has both, keyed by (index, arbiter).
pub fn addresses(
    assignment: &Assignment,
    vips: &BTreeMap<String, String>,
    node_ports: &BTreeMap<(i32, bool), i32>,
) -> BTreeMap<(i32, bool), String> {
    assignment
        .members
        .iter()
        .filter_map(|m| {
            let vip = vips.get(&m.cluster)?;
            let port = node_ports.get(&(m.index, m.arbiter))?;
            Some(((m.index, m.arbiter), names::member_address(vip, *port)))
        })
        .collect()
}

/// The desired member list: active members only (retiring ones are left out so the agents remove
/// them from the replica set).
pub fn host_conf(
    mcm: &MultiCloudMongoDB,
    assignment: &Assignment,
    vips: &BTreeMap<String, String>,
    node_ports: &BTreeMap<(i32, bool), i32>,
) -> Result<HostConf, DesiredError> {
    let name = instance(mcm);
    let mut hosts = Vec::new();
    for m in assignment.members.iter().filter(|m| m.is_active()) {
        let vip = vips
            .get(&m.cluster)
            .ok_or_else(|| DesiredError::MissingVip {
                cluster: m.cluster.clone(),
            })?;
        let port =
            node_ports
                .get(&(m.index, m.arbiter))
                .ok_or_else(|| DesiredError::PortPending {
                    service: service_name(&name, m.index, m.arbiter),
                })?;
        hosts.push(HostEntry {
            host: names::member_address(vip, *port),
            member_index: m.index,
            votes: m.votes,
            priority: m.priority,
            arbiter_only: m.arbiter,
            cluster: m.cluster.clone(),
        });
    }
    let conf = HostConf { hosts };
    conf.validate()?;
    Ok(conf)
}

/// Clusters that get the `MongoDB`: every cluster with a member (active or retiring), placement
/// order first. A cluster stays until its last member is confirmed gone.
pub fn binding_clusters(assignment: &Assignment) -> Vec<TargetCluster> {
    let mut order: Vec<&str> = assignment
        .planned_clusters
        .iter()
        .map(String::as_str)
        .collect();
    let mut others: Vec<&str> = assignment
        .members
        .iter()
        .map(|m| m.cluster.as_str())
        .filter(|c| !order.contains(c))
        .collect();
    others.sort_unstable();
    others.dedup();
    order.extend(others);
    order
        .into_iter()
        .filter(|c| assignment.members.iter().any(|m| m.cluster == *c))
        .map(|c| TargetCluster {
            name: c.to_owned(),
            replicas: data_members(assignment, c).count().try_into().unwrap_or(0),
        })
        .collect()
}

fn data_members<'a>(
    assignment: &'a Assignment,
    cluster: &'a str,
) -> impl Iterator<Item = &'a PlannedMember> + 'a {
    assignment
        .members
        .iter()
        .filter(move |m| !m.arbiter && m.cluster == cluster)
}

/// The cluster that initiates the replica set: the planned cluster with the highest priority
/// among those with an active data member (first in placement order on ties).
pub fn rs_init_cluster(assignment: &Assignment) -> Option<&str> {
    let mut best: Option<(&str, i32)> = None;
    for c in &assignment.planned_clusters {
        let prio = data_members(assignment, c)
            .filter(|m| m.is_active())
            .map(|m| m.priority)
            .max();
        if let Some(p) = prio
            && best.is_none_or(|(_, b)| p > b)
        {
            best = Some((c.as_str(), p));
        }
    }
    best.map(|(c, _)| c)
}

/// The `MongoDB` template: every field of the spec, cluster-independent parts only.
pub fn mongodb_template(mcm: &MultiCloudMongoDB, assignment: &Assignment) -> MongoDB {
    let spec = &mcm.spec;
    let name = instance(mcm);
    let legacy = mcm
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FEDSTATE_GO_FINALIZER));
    let total: i32 = binding_clusters(assignment)
        .iter()
        .map(|c| c.replicas)
        .sum();
    let export = spec.export.as_ref();
    let storage = spec.storage.as_ref();
    let spread = spec.spread_constraints.as_ref();
    let pod_spec = PodSpec {
        node_selector: spread.and_then(|s| s.node_select.clone()),
        topology_spread_constraints: spread.and_then(|s| s.topology_spread_constraints.clone()),
        ..Default::default()
    };
    let mut m = MongoDB::new(
        &name,
        MongoDBSpec {
            members: total,
            image: Some(spec.image().to_owned()),
            image_pull_policy: spec
                .image_setting
                .as_ref()
                .and_then(|i| i.image_pull_policy),
            image_pull_secret: secrets::pull_secret_ref(mcm).map(ImagePullSecret::Name),
            config: spec
                .config
                .as_ref()
                .and_then(|c| c.config_set.as_ref())
                .map(|set| {
                    set.iter()
                        .map(|(k, v)| ConfigVar {
                            name: Some(k.clone()),
                            value: Some(v.clone()),
                        })
                        .collect()
                }),
            custom_config_ref: spec
                .config
                .as_ref()
                .and_then(|c| c.config_ref.clone())
                .filter(|r| !r.is_empty()),
            root_password: None,
            root_password_secret_ref: Some(secrets::root_password_ref(mcm)),
            keyfile_secret_ref: Some(secrets::keyfile_secret_name(&name)),
            resources: spec.resource.clone(),
            persistence: Some(PersistenceSpec {
                storage: storage
                    .and_then(|s| s.storage_size.as_ref())
                    .map(|q| q.0.clone()),
                storage_class_name: storage
                    .and_then(|s| s.storage_class.clone())
                    .filter(|c| !c.is_empty()),
            }),
            metrics_exporter_spec: Some(MetricsExporterSpec {
                enable: Some(export.and_then(|e| e.enable).unwrap_or(false)),
                resources: export.and_then(|e| e.resource.clone()),
            }),
            pod_spec: (pod_spec != PodSpec::default()).then_some(pod_spec),
            member_config_ref: Some(hostconf_name(mcm)),
            arbiter: Some(false),
            rs_init: Some(false),
            pause: None,
            type_: Some("ReplicaSet".into()),
            db_user_spec: None,
            repl_set_name: Some(names::replica_set_name(&name, legacy)),
            member_roles: None,
        },
    );
    m.metadata = meta(mcm, name);
    m
}

/// One rule per binding cluster: what differs per cluster.
pub fn override_policy(
    mcm: &MultiCloudMongoDB,
    assignment: &Assignment,
    vips: &BTreeMap<String, String>,
) -> OverridePolicy {
    let name = instance(mcm);
    let init = rs_init_cluster(assignment);
    let rules = binding_clusters(assignment)
        .into_iter()
        .map(|c| {
            let roles: Vec<MemberRole> = data_members(assignment, &c.name)
                .map(|m| MemberRole {
                    member_index: m.index,
                    votes: m.votes,
                    priority: m.priority,
                })
                .collect();
            let arbiter = assignment
                .members
                .iter()
                .any(|m| m.arbiter && m.cluster == c.name);
            let plaintext = vec![
                replace("/spec/members", json!(c.replicas)),
                PlaintextOverrider {
                    path: "/spec/memberRoles".into(),
                    operator: OP_ADD.into(),
                    value: Some(json!(roles)),
                },
                replace("/spec/rsInit", json!(init == Some(c.name.as_str()))),
                replace("/spec/arbiter", json!(arbiter)),
            ];
            let labels_overrider = vips
                .get(&c.name)
                .map(|vip| LabelAnnotationOverrider {
                    operator: OP_ADD.into(),
                    value: BTreeMap::from([(LABEL_MEMBER_VIP.to_owned(), vip.clone())]),
                })
                .into_iter()
                .collect();
            RuleWithCluster {
                target_cluster: Some(cluster_names(vec![c.name.clone()])),
                overriders: Overriders {
                    plaintext,
                    labels_overrider,
                    annotations_overrider: Vec::new(),
                },
            }
        })
        .collect();
    let mut p = OverridePolicy::new(
        &name,
        OverridePolicySpec {
            resource_selectors: vec![select_named(MONGODB_API_VERSION, "MongoDB", &name)],
            override_rules: rules,
        },
    );
    p.metadata = meta(mcm, name);
    p
}

fn replace(path: &str, value: serde_json::Value) -> PlaintextOverrider {
    PlaintextOverrider {
        path: path.into(),
        operator: OP_REPLACE.into(),
        value: Some(value),
    }
}

fn cluster_names(names: Vec<String>) -> ClusterAffinity {
    ClusterAffinity {
        cluster_names: names,
        ..Default::default()
    }
}

/// Tolerate Karmada's not-ready/unreachable taints: moving members is the scheduler's decision,
/// made with the replica set's quorum in mind, never Karmada's taint manager's.
fn tolerations() -> Vec<Toleration> {
    [TAINT_NOT_READY, TAINT_UNREACHABLE]
        .into_iter()
        .flat_map(|key| {
            ["NoSchedule", "NoExecute"].map(|effect| Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Default::default()
            })
        })
        .collect()
}

fn policy(
    mcm: &MultiCloudMongoDB,
    name: String,
    selectors: Vec<ResourceSelector>,
    clusters: Vec<String>,
    divided_by_manager: bool,
) -> PropagationPolicy {
    let replica_scheduling = if divided_by_manager {
        ReplicaSchedulingStrategy {
            replica_scheduling_type: Some(REPLICA_SCHEDULING_DIVIDED.into()),
            replica_division_preference: Some("Aggregated".into()),
            weight_preference: None,
        }
    } else {
        ReplicaSchedulingStrategy {
            replica_scheduling_type: Some(REPLICA_SCHEDULING_DUPLICATED.into()),
            ..Default::default()
        }
    };
    let mut p = PropagationPolicy::new(
        &name,
        PropagationPolicySpec {
            resource_selectors: selectors,
            placement: Placement {
                cluster_affinity: Some(cluster_names(clusters)),
                cluster_tolerations: tolerations(),
                replica_scheduling: Some(replica_scheduling),
            },
            scheduler_name: divided_by_manager.then(|| MANAGER_SCHEDULER_NAME.to_owned()),
            priority: None,
        },
    );
    p.metadata = meta(mcm, name);
    p
}

/// Name of the PropagationPolicy carrying one cluster's member Services.
pub fn services_policy_name(instance: &str, cluster: &str) -> String {
    format!("{instance}-services-{cluster}")
}

/// Name of the PropagationPolicy carrying the host list, Secrets and the user's ConfigMap.
pub fn shared_policy_name(instance: &str) -> String {
    format!("{instance}-shared")
}

/// The three kinds of PropagationPolicy: the `MongoDB` template's (scheduled by us), the shared
/// objects' (every binding cluster) and one per cluster for its member Services.
pub fn propagation_policies(
    mcm: &MultiCloudMongoDB,
    assignment: &Assignment,
) -> Vec<PropagationPolicy> {
    let name = instance(mcm);
    let clusters: Vec<String> = binding_clusters(assignment)
        .into_iter()
        .map(|c| c.name)
        .collect();
    let mut shared = vec![
        select_named("v1", "ConfigMap", &hostconf_name(mcm)),
        select_named("v1", "Secret", &secrets::keyfile_secret_name(&name)),
        select_named("v1", "Secret", &secrets::credentials_secret_name(&name)),
    ];
    if let Some(r) = secrets::user_root_secret(mcm) {
        shared.push(select_named("v1", "Secret", &r.name));
    }
    if let Some(p) = secrets::pull_secret_ref(mcm) {
        shared.push(select_named("v1", "Secret", &p));
    }
    if let Some(c) = mcm
        .spec
        .config
        .as_ref()
        .and_then(|c| c.config_ref.as_ref())
        .filter(|c| !c.is_empty())
    {
        shared.push(select_named("v1", "ConfigMap", c));
    }
    let mut out = vec![
        policy(
            mcm,
            name.clone(),
            vec![select_named(MONGODB_API_VERSION, "MongoDB", &name)],
            clusters.clone(),
            true,
        ),
        policy(
            mcm,
            shared_policy_name(&name),
            shared,
            clusters.clone(),
            false,
        ),
    ];
    for c in &clusters {
        let selectors = assignment
            .members
            .iter()
            .filter(|m| &m.cluster == c)
            .map(|m| select_named("v1", "Service", &service_name(&name, m.index, m.arbiter)))
            .collect();
        out.push(policy(
            mcm,
            services_policy_name(&name, c),
            selectors,
            vec![c.clone()],
            false,
        ));
    }
    out
}

/// The host list ConfigMap.
pub fn hostconf_config_map(mcm: &MultiCloudMongoDB, list: &HostConf) -> ConfigMap {
    ConfigMap {
        metadata: meta(mcm, hostconf_name(mcm)),
        data: Some(BTreeMap::from([(HOSTCONF_KEY.to_owned(), list.render())])),
        ..Default::default()
    }
}

/// Secrets get our metadata (labels, owner) on top of what [`secrets`] built.
pub fn with_meta(mcm: &MultiCloudMongoDB, mut secret: Secret) -> Secret {
    let name = secret.metadata.name.clone().unwrap_or_default();
    secret.metadata = meta(mcm, name);
    secret
}

/// Everything but the Services and Secrets, once the NodePorts are known.
pub fn desired(
    mcm: &MultiCloudMongoDB,
    assignment: &Assignment,
    vips: &BTreeMap<String, String>,
    node_ports: &BTreeMap<(i32, bool), i32>,
) -> Result<Desired, DesiredError> {
    for c in binding_clusters(assignment) {
        if !vips.contains_key(&c.name) {
            return Err(DesiredError::MissingVip { cluster: c.name });
        }
    }
    let list = host_conf(mcm, assignment, vips, node_ports)?;
    Ok(Desired {
        mongodb: mongodb_template(mcm, assignment),
        hostconf: hostconf_config_map(mcm, &list),
        hostconf_list: list,
        override_policy: override_policy(mcm, assignment, vips),
        propagation_policies: propagation_policies(mcm, assignment),
        binding_clusters: binding_clusters(assignment),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::members::{MemberRecord, assign};
    use base64::Engine;
    use fedstate_api::SchedulerResult;
    use pretty_assertions::assert_eq;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::Value;

    const SEED: &str = include_str!("../../deploy/samples/seed/multicloudmongodb-full.yaml");
    const PLAN: &str = r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":2,"votes":2,"priority":2},{"cluster":"member2","replicaset":2,"votes":2,"priority":1},{"cluster":"member3","replicaset":1,"votes":1,"priority":1}],"generation":1}"#;

    fn seed() -> MultiCloudMongoDB {
        let mut m: MultiCloudMongoDB = serde_yaml::from_str(SEED).unwrap();
        m.metadata.namespace = Some("demo-ns".into());
        m.metadata.uid = Some("uid-1".into());
        m.metadata.generation = Some(1);
        m
    }

    fn vips() -> BTreeMap<String, String> {
        (1..=3)
            .map(|i| (format!("member{i}"), format!("127.0.1.{i}")))
            .collect()
    }

    fn ports(a: &Assignment) -> BTreeMap<(i32, bool), i32> {
        a.members
            .iter()
            .map(|m| {
                (
                    (m.index, m.arbiter),
                    30100 + m.index + if m.arbiter { 50 } else { 0 },
                )
            })
            .collect()
    }

    fn setup(plan: &str) -> (MultiCloudMongoDB, Assignment, Desired) {
        let m = seed();
        let a = assign(&[], &SchedulerResult::parse(plan).unwrap()).unwrap();
        let d = desired(&m, &a, &vips(), &ports(&a)).unwrap();
        (m, a, d)
    }

    /// What Karmada's binding controller does per cluster: revise replicas, then the
    /// OverridePolicy's rule for that cluster (plaintext JSON-patch operations and labels).
    fn member_object(d: &Desired, cluster: &str) -> Value {
        let mut obj = serde_json::to_value(&d.mongodb).unwrap();
        let replicas = d
            .binding_clusters
            .iter()
            .find(|c| c.name == cluster)
            .unwrap()
            .replicas;
        obj["spec"]["members"] = serde_json::json!(replicas);
        for rule in &d.override_policy.spec.override_rules {
            if !rule
                .target_cluster
                .as_ref()
                .unwrap()
                .cluster_names
                .iter()
                .any(|c| c == cluster)
            {
                continue;
            }
            for p in &rule.overriders.plaintext {
                let (parent, key) = p.path.rsplit_once('/').unwrap();
                let target = obj.pointer_mut(parent).unwrap().as_object_mut().unwrap();
                match p.operator.as_str() {
                    OP_ADD => {
                        target.insert(key.into(), p.value.clone().unwrap());
                    }
                    OP_REPLACE => {
                        assert!(target.contains_key(key), "replace of missing {}", p.path);
                        target.insert(key.into(), p.value.clone().unwrap());
                    }
                    op => panic!("unexpected operator {op}"),
                }
            }
            for l in &rule.overriders.labels_overrider {
                let labels = obj["metadata"]["labels"].as_object_mut().unwrap();
                for (k, v) in &l.value {
                    labels.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        obj
    }

    #[test]
    fn every_field_of_the_seed_sample_reaches_the_member_objects() {
        let (_, _, d) = setup(PLAN);
        let mut total = 0;
        for (cluster, members, vip) in [
            ("member1", 2, "127.0.1.1"),
            ("member2", 2, "127.0.1.2"),
            ("member3", 1, "127.0.1.3"),
        ] {
            let o = member_object(&d, cluster);
            // The member object is a valid MongoDB.
            let typed: MongoDB = serde_json::from_value(o.clone()).unwrap();
            let s = &typed.spec;
            total += s.members;
            assert_eq!(s.members, members, "{cluster}: spec.replicaset split");
            assert_eq!(s.member_roles.as_ref().unwrap().len(), members as usize);
            // imageSetting
            assert_eq!(s.image.as_deref(), Some("mongo:3.6"));
            assert_eq!(o["spec"]["imagePullPolicy"], "Always");
            assert_eq!(o["spec"]["imagePullSecret"], "my-image-secret");
            // resource
            assert_eq!(o["spec"]["resources"]["limits"]["cpu"], "2");
            assert_eq!(o["spec"]["resources"]["limits"]["memory"], "512Mi");
            assert_eq!(o["spec"]["resources"]["requests"]["cpu"], "1");
            assert_eq!(o["spec"]["resources"]["requests"]["memory"], "512Mi");
            // storage
            assert_eq!(
                o["spec"]["persistence"]["storageClassName"],
                "managed-nfs-storage"
            );
            assert_eq!(o["spec"]["persistence"]["storage"], "1Gi");
            // export
            assert_eq!(o["spec"]["metricsExporterSpec"]["enable"], true);
            assert_eq!(
                o["spec"]["metricsExporterSpec"]["resources"]["limits"]["cpu"],
                "500m"
            );
            assert_eq!(
                o["spec"]["metricsExporterSpec"]["resources"]["requests"]["memory"],
                "256Mi"
            );
            // auth: by reference only
            assert_eq!(
                o["spec"]["rootPasswordSecretRef"]["name"],
                "multicloudmongodb-sample-credentials"
            );
            assert_eq!(o["spec"]["rootPasswordSecretRef"]["key"], "password");
            assert!(o["spec"].get("rootPassword").is_none());
            assert_eq!(
                o["spec"]["keyfileSecretRef"],
                "multicloudmongodb-sample-keyfile"
            );
            // config
            assert_eq!(o["spec"]["arbiter"], false);
            assert_eq!(o["spec"]["customConfigRef"], "my-custome-configmap");
            // spreadConstraints.nodeSelect
            assert_eq!(o["spec"]["podSpec"]["nodeSelector"]["deploy"], "mongo");
            // cluster-specific
            assert_eq!(o["metadata"]["labels"][LABEL_MEMBER_VIP], vip);
            assert_eq!(
                o["spec"]["rsInit"],
                cluster == "member1",
                "{cluster}: rsInit"
            );
            assert_eq!(
                o["spec"]["memberConfigRef"],
                "multicloudmongodb-sample-hostconf"
            );
            assert_eq!(o["spec"]["replSetName"], "multicloudmongodb-sample");
            assert_eq!(o["metadata"]["labels"][names::LABEL_MANAGED_BY], "fedstate");
        }
        assert_eq!(total, 5, "spec.replicaset: 5");
        // The user's ConfigMap and pull Secret go to every cluster.
        let shared = &d.propagation_policies[1];
        let names: Vec<_> = shared
            .spec
            .resource_selectors
            .iter()
            .map(|s| format!("{}/{}", s.kind, s.name.as_deref().unwrap()))
            .collect();
        assert!(names.contains(&"ConfigMap/my-custome-configmap".to_owned()));
        assert!(names.contains(&"Secret/my-image-secret".to_owned()));
        assert!(names.contains(&"ConfigMap/multicloudmongodb-sample-hostconf".to_owned()));
        assert_eq!(
            shared
                .spec
                .placement
                .cluster_affinity
                .as_ref()
                .unwrap()
                .cluster_names,
            ["member1", "member2", "member3"]
        );
    }

    #[test]
    fn member_identities_votes_and_priorities_per_cluster() {
        let (_, _, d) = setup(PLAN);
        let roles = |c: &str| {
            let o = member_object(&d, c);
            serde_json::from_value::<Vec<MemberRole>>(o["spec"]["memberRoles"].clone()).unwrap()
        };
        let r = |i, v, p| MemberRole {
            member_index: i,
            votes: v,
            priority: p,
        };
        assert_eq!(roles("member1"), [r(0, 1, 2), r(1, 1, 2)]);
        assert_eq!(roles("member2"), [r(2, 1, 1), r(3, 1, 1)]);
        assert_eq!(roles("member3"), [r(4, 1, 1)]);
        let init: Vec<_> = ["member1", "member2", "member3"]
            .iter()
            .filter(|c| member_object(&d, c)["spec"]["rsInit"] == true)
            .collect();
        assert_eq!(init.len(), 1, "exactly one cluster initiates");
    }

    #[test]
    fn the_host_list_names_every_member_address_with_votes_and_priority() {
        let (_, _, d) = setup(PLAN);
        let hosts: Vec<_> = d
            .hostconf_list
            .hosts
            .iter()
            .map(|h| {
                (
                    h.host.as_str(),
                    h.member_index,
                    h.votes,
                    h.priority,
                    h.cluster.as_str(),
                )
            })
            .collect();
        assert_eq!(
            hosts,
            [
                ("127.0.1.1:30100", 0, 1, 2, "member1"),
                ("127.0.1.1:30101", 1, 1, 2, "member1"),
                ("127.0.1.2:30102", 2, 1, 1, "member2"),
                ("127.0.1.2:30103", 3, 1, 1, "member2"),
                ("127.0.1.3:30104", 4, 1, 1, "member3"),
            ]
        );
        let json = &d.hostconf.data.as_ref().unwrap()[HOSTCONF_KEY];
        assert_eq!(HostConf::parse(json).unwrap(), d.hostconf_list);
    }

    #[test]
    fn services_are_nodeports_propagated_only_to_their_cluster() {
        let m = seed();
        let p = SchedulerResult::parse(PLAN).unwrap();
        let a = assign(&[], &p).unwrap();
        let svcs = services(&m, &a);
        assert_eq!(svcs.len(), 5);
        let s0 = &svcs[0];
        assert_eq!(
            s0.metadata.name.as_deref(),
            Some("multicloudmongodb-sample-mongodb-0")
        );
        let spec = s0.spec.as_ref().unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.selector.as_ref().unwrap()[LABEL_MEMBER_INDEX], "0");
        assert_eq!(
            record_from_service(s0).unwrap(),
            MemberRecord {
                index: 0,
                cluster: "member1".into(),
                arbiter: false,
                node_port: None
            }
        );
        assert_eq!(
            s0.metadata.owner_references.as_ref().unwrap()[0].kind,
            "MultiCloudMongoDB"
        );
        let d = desired(&m, &a, &vips(), &ports(&a)).unwrap();
        let svc_policy = d
            .propagation_policies
            .iter()
            .find(|p| {
                p.metadata.name.as_deref() == Some("multicloudmongodb-sample-services-member2")
            })
            .unwrap();
        let selected: Vec<_> = svc_policy
            .spec
            .resource_selectors
            .iter()
            .map(|s| s.name.clone().unwrap())
            .collect();
        assert_eq!(
            selected,
            [
                "multicloudmongodb-sample-mongodb-2",
                "multicloudmongodb-sample-mongodb-3"
            ]
        );
        assert_eq!(
            svc_policy
                .spec
                .placement
                .cluster_affinity
                .as_ref()
                .unwrap()
                .cluster_names,
            ["member2"]
        );
        // The template's policy is scheduled by us, exactly as planned.
        let main = &d.propagation_policies[0];
        assert_eq!(
            main.spec.scheduler_name.as_deref(),
            Some(MANAGER_SCHEDULER_NAME)
        );
        let counts: Vec<_> = d
            .binding_clusters
            .iter()
            .map(|c| (c.name.as_str(), c.replicas))
            .collect();
        assert_eq!(counts, [("member1", 2), ("member2", 2), ("member3", 1)]);
    }

    #[test]
    fn an_arbiter_only_cluster_gets_a_member_object_with_zero_data_members() {
        let plan = r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":2,"votes":2,"priority":2},{"cluster":"member2","replicaset":2,"votes":2},{"cluster":"member3","replicaset":0,"arbiter":true,"votes":1}]}"#;
        let m = seed();
        let a = assign(&[], &SchedulerResult::parse(plan).unwrap()).unwrap();
        let d = desired(&m, &a, &vips(), &ports(&a)).unwrap();
        let o = member_object(&d, "member3");
        assert_eq!(o["spec"]["members"], 0);
        assert_eq!(o["spec"]["arbiter"], true);
        assert_eq!(member_object(&d, "member1")["spec"]["arbiter"], false);
        let arb = d
            .hostconf_list
            .hosts
            .iter()
            .find(|h| h.arbiter_only)
            .unwrap();
        assert_eq!(
            (arb.votes, arb.priority, arb.cluster.as_str()),
            (1, 0, "member3")
        );
        let svcs = services(&m, &a);
        assert!(svcs.iter().any(
            |s| s.metadata.name.as_deref() == Some("multicloudmongodb-sample-mongodb-arbiter")
        ));
    }

    #[test]
    fn retiring_members_leave_the_host_list_but_keep_their_place_until_gone() {
        let m = seed();
        let first = assign(&[], &SchedulerResult::parse(PLAN).unwrap()).unwrap();
        let recs: Vec<MemberRecord> = first
            .members
            .iter()
            .map(|x| MemberRecord {
                index: x.index,
                cluster: x.cluster.clone(),
                arbiter: x.arbiter,
                node_port: None,
            })
            .collect();
        let down = r#"{"ClusterWithReplicaset":[{"cluster":"member1","replicaset":1},{"cluster":"member2","replicaset":1},{"cluster":"member3","replicaset":1}]}"#;
        let a = assign(&recs, &SchedulerResult::parse(down).unwrap()).unwrap();
        let d = desired(&m, &a, &vips(), &ports(&a)).unwrap();
        assert_eq!(d.hostconf_list.hosts.len(), 3);
        let o = member_object(&d, "member1");
        assert_eq!(o["spec"]["members"], 2, "scale down waits for the agents");
        assert_eq!(
            o["spec"]["memberRoles"][1],
            serde_json::json!({"memberIndex": 1, "votes": 0, "priority": 0})
        );
    }

    #[test]
    fn missing_vip_names_the_cluster_and_the_fix() {
        let m = seed();
        let a = assign(&[], &SchedulerResult::parse(PLAN).unwrap()).unwrap();
        let mut v = vips();
        v.remove("member2");
        let err = desired(&m, &a, &v, &ports(&a)).unwrap_err().to_string();
        assert!(err.contains("\"member2\" has no VIP label"), "{err}");
        assert!(err.contains("kubectl label cluster member2 vip="), "{err}");
    }

    #[test]
    fn spec_changes_reach_the_template() {
        let (mut m, a, _) = setup(PLAN);
        m.spec.image_setting.as_mut().unwrap().image = Some("mongo:7.0".into());
        m.spec
            .resource
            .as_mut()
            .unwrap()
            .limits
            .as_mut()
            .unwrap()
            .insert(
                "memory".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1Gi".into()),
            );
        let t = serde_json::to_value(mongodb_template(&m, &a)).unwrap();
        assert_eq!(t["spec"]["image"], "mongo:7.0");
        assert_eq!(t["spec"]["resources"]["limits"]["memory"], "1Gi");
    }

    /// The root password (`mypasswd` in the seed) appears in no object we create except the
    /// credentials Secret's data.
    #[test]
    fn no_password_outside_the_credentials_secret() {
        let (m, a, d) = setup(PLAN);
        let mut rng = StdRng::seed_from_u64(7);
        let creds = crate::secrets::credentials_secret(&m, None, &mut rng);
        let keyfile = crate::secrets::keyfile_secret("multicloudmongodb-sample", None, &mut rng);
        let mut rendered: Vec<(String, String)> = vec![
            ("MongoDB".into(), serde_json::to_string(&d.mongodb).unwrap()),
            (
                "hostconf".into(),
                serde_json::to_string(&d.hostconf).unwrap(),
            ),
            (
                "OverridePolicy".into(),
                serde_json::to_string(&d.override_policy).unwrap(),
            ),
            ("keyfile".into(), serde_json::to_string(&keyfile).unwrap()),
            (
                "binding".into(),
                serde_json::to_string(&d.binding_clusters).unwrap(),
            ),
        ];
        for p in &d.propagation_policies {
            rendered.push((
                "PropagationPolicy".into(),
                serde_json::to_string(p).unwrap(),
            ));
        }
        for s in services(&m, &a) {
            rendered.push(("Service".into(), serde_json::to_string(&s).unwrap()));
        }
        for c in ["member1", "member2", "member3"] {
            rendered.push((
                format!("member object {c}"),
                member_object(&d, c).to_string(),
            ));
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode("mypasswd");
        for (what, json) in &rendered {
            assert!(
                !json.contains("mypasswd") && !json.contains(&b64),
                "password in {what}"
            );
        }
        let creds_json = serde_json::to_string(&creds).unwrap();
        assert!(creds_json.contains(&b64), "the credentials Secret holds it");
    }
}
