//! Placement + spec → every object the manager applies on the Karmada apiserver. Pure and
//! kind-independent: the controller gathers the inputs (the object, the member assignment,
//! cluster VIPs, the NodePorts the Karmada apiserver allocated), the [`Middleware`] supplies the
//! member template and what differs per cluster, and the controller applies the outputs.
//!
//! What goes where (`docs/karmada.md#how-the-manager-propagates`):
//! * one member template named like the federated object, carrying every spec field;
//! * its PropagationPolicy `<name>`, which names [`MANAGER_SCHEDULER_NAME`] so neither
//!   karmada-scheduler nor fedstate-scheduler's Karmada-native mode touches its binding: the
//!   manager writes the binding's `spec.clusters` itself, exactly as the placement says
//!   (see `manager/README.md` for why not static weights);
//! * one OverridePolicy `<name>` with one rule per binding cluster, from the middleware;
//! * one NodePort Service per member, propagated to its member's cluster only
//!   (PropagationPolicy `<name>-services-<cluster>`);
//! * the host list ConfigMap, and the Secrets and user objects every cluster needs
//!   (PropagationPolicy `<name>-shared`).

use std::collections::BTreeMap;

use fedstate_api::hostconf::{HOSTCONF_KEY, HostConf, HostConfError, HostEntry};
use fedstate_api::karmada::ClusterAffinity;
use fedstate_api::karmada::binding_status::TargetCluster;
use fedstate_api::karmada::override_policy::{OverridePolicy, OverridePolicySpec, RuleWithCluster};
use fedstate_api::karmada::propagation::{
    Placement, PropagationPolicy, PropagationPolicySpec, REPLICA_SCHEDULING_DIVIDED,
    REPLICA_SCHEDULING_DUPLICATED, ReplicaSchedulingStrategy, ResourceSelector, select_named,
};
use fedstate_api::karmada::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use fedstate_api::limits::MAX_MEMBER_INDEX;
use fedstate_api::names::{
    self, LABEL_CLUSTER, LABEL_MEMBER_INDEX, LABEL_MEMBER_ROLE, ROLE_ARBITER, ROLE_DATA,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, Secret, Service, ServicePort, ServiceSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::members::{Assignment, MemberRecord};
use crate::middleware::{Kind, Middleware};

/// The scheduler name on the member template's PropagationPolicy: nobody but the manager
/// schedules that binding.
pub const MANAGER_SCHEDULER_NAME: &str = "fedstate-manager";

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

/// Everything to apply for one federated object once its NodePorts are known.
#[derive(Clone, Debug)]
pub struct Desired<T> {
    /// The member template.
    pub template: T,
    pub hostconf: ConfigMap,
    pub hostconf_list: HostConf,
    pub override_policy: OverridePolicy,
    pub propagation_policies: Vec<PropagationPolicy>,
    /// What the manager writes into the member template binding's `spec.clusters`.
    pub binding_clusters: Vec<TargetCluster>,
}

fn instance<K: Kind>(obj: &K) -> String {
    obj.meta().name.clone().unwrap_or_default()
}

/// Name, namespace, our labels and the owner reference, for an object of this instance.
pub fn meta<K: Kind>(owner: &K, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: owner.meta().namespace.clone(),
        labels: Some(names::managed_labels(&instance(owner))),
        owner_references: owner.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// Whether an existing object is one we created for `owner`: it carries our labels for this
/// instance, and no other object is its controller. Anything else (a user's Secret or
/// ConfigMap that happens to have the name) is neither overwritten nor deleted.
pub fn is_ours<K: Kind>(owner: &K, existing: &ObjectMeta) -> bool {
    let labels = existing.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let owned_elsewhere = existing.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true) && owner.meta().uid.as_deref().is_some_and(|u| u != r.uid)
    });
    label(names::LABEL_MANAGED_BY) == Some(names::MANAGED_BY)
        && label(names::LABEL_INSTANCE) == Some(instance(owner).as_str())
        && !owned_elsewhere
}

/// One NodePort Service per member, active or retiring. The NodePort is left to the Karmada
/// apiserver's allocator (unique across the federation, kept on every later apply) and carried
/// unchanged to the member cluster.
pub fn services<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    assignment: &Assignment,
) -> Vec<Service> {
    let name = instance(obj);
    let port = middleware.member_port();
    assignment
        .members
        .iter()
        .map(|m| {
            let mut meta = meta(
                obj,
                middleware.member_service_name(&name, m.index, m.arbiter),
            );
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
                        name: Some(middleware.member_port_name().into()),
                        port,
                        target_port: Some(IntOrString::Int(port)),
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

/// The member a Service of ours records (its labels and allocated NodePort). A member index
/// outside `0..=49` is not one we give out (anyone with write access to Services can label one):
/// such a Service records no member.
pub fn record_from_service(svc: &Service) -> Option<MemberRecord> {
    let labels = svc.metadata.labels.as_ref()?;
    let node_port = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.node_port);
    let index: i32 = labels.get(LABEL_MEMBER_INDEX)?.parse().ok()?;
    if !(0..=i32::from(MAX_MEMBER_INDEX)).contains(&index) {
        return None;
    }
    Some(MemberRecord {
        index,
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
/// them from the set).
pub fn host_conf<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    assignment: &Assignment,
    vips: &BTreeMap<String, String>,
    node_ports: &BTreeMap<(i32, bool), i32>,
) -> Result<HostConf, DesiredError> {
    let name = instance(obj);
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
                    service: middleware.member_service_name(&name, m.index, m.arbiter),
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

/// Clusters that get the member template: every cluster with a member (active or retiring),
/// placement order first. A cluster stays until its last member is confirmed gone.
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
            replicas: assignment.data_members(c).count().try_into().unwrap_or(0),
        })
        .collect()
}

/// The selector of an object's member template.
fn template_selector<M: Middleware>(name: &str) -> ResourceSelector {
    select_named(&M::Member::api_version(&()), &M::Member::kind(&()), name)
}

/// One rule per binding cluster: what differs per cluster, as the middleware says.
pub fn override_policy<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    assignment: &Assignment,
    vips: &BTreeMap<String, String>,
) -> OverridePolicy {
    let name = instance(obj);
    let rules = binding_clusters(assignment)
        .into_iter()
        .map(|c| RuleWithCluster {
            overriders: middleware.cluster_overrides(
                obj,
                assignment,
                &c,
                vips.get(&c.name).map(String::as_str),
            ),
            target_cluster: Some(cluster_names(vec![c.name])),
        })
        .collect();
    let mut p = OverridePolicy::new(
        &name,
        OverridePolicySpec {
            resource_selectors: vec![template_selector::<M>(&name)],
            override_rules: rules,
        },
    );
    p.metadata = meta(obj, name);
    p
}

fn cluster_names(names: Vec<String>) -> ClusterAffinity {
    ClusterAffinity {
        cluster_names: names,
        ..Default::default()
    }
}

/// Tolerate Karmada's not-ready/unreachable taints: moving members is the scheduler's decision,
/// made with the set's quorum in mind, never Karmada's taint manager's.
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

fn policy<K: Kind>(
    owner: &K,
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
    p.metadata = meta(owner, name);
    p
}

/// Name of the PropagationPolicy carrying one cluster's member Services.
pub fn services_policy_name(instance: &str, cluster: &str) -> String {
    format!("{instance}-services-{cluster}")
}

/// Name of the PropagationPolicy carrying the host list, Secrets and the user's objects.
pub fn shared_policy_name(instance: &str) -> String {
    format!("{instance}-shared")
}

/// The three kinds of PropagationPolicy: the member template's (scheduled by us), the shared
/// objects' (every binding cluster) and one per cluster for its member Services.
pub fn propagation_policies<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    assignment: &Assignment,
) -> Vec<PropagationPolicy> {
    let name = instance(obj);
    let clusters: Vec<String> = binding_clusters(assignment)
        .into_iter()
        .map(|c| c.name)
        .collect();
    let mut shared = vec![select_named(
        "v1",
        "ConfigMap",
        &middleware.host_list_name(obj),
    )];
    shared.extend(middleware.shared_objects(obj));
    let mut out = vec![
        policy(
            obj,
            name.clone(),
            vec![template_selector::<M>(&name)],
            clusters.clone(),
            true,
        ),
        policy(
            obj,
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
            .map(|m| {
                select_named(
                    "v1",
                    "Service",
                    &middleware.member_service_name(&name, m.index, m.arbiter),
                )
            })
            .collect();
        out.push(policy(
            obj,
            services_policy_name(&name, c),
            selectors,
            vec![c.clone()],
            false,
        ));
    }
    out
}

/// The host list ConfigMap.
pub fn hostconf_config_map<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    list: &HostConf,
) -> ConfigMap {
    ConfigMap {
        metadata: meta(obj, middleware.host_list_name(obj)),
        data: Some(BTreeMap::from([(HOSTCONF_KEY.to_owned(), list.render())])),
        ..Default::default()
    }
}

/// Secrets get our metadata (labels, owner) on top of what the middleware built.
pub fn with_meta<K: Kind>(owner: &K, mut secret: Secret) -> Secret {
    let name = secret.metadata.name.clone().unwrap_or_default();
    secret.metadata = meta(owner, name);
    secret
}

/// Everything but the Services and Secrets, once the NodePorts are known.
pub fn desired<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    assignment: &Assignment,
    vips: &BTreeMap<String, String>,
    node_ports: &BTreeMap<(i32, bool), i32>,
) -> Result<Desired<M::Member>, DesiredError> {
    let clusters = binding_clusters(assignment);
    if let Some(c) = clusters.iter().find(|c| !vips.contains_key(&c.name)) {
        return Err(DesiredError::MissingVip {
            cluster: c.name.clone(),
        });
    }
    let list = host_conf(middleware, obj, assignment, vips, node_ports)?;
    // At most one per member Service; saturating all the same.
    let total = clusters
        .iter()
        .fold(0i32, |total, c| total.saturating_add(c.replicas));
    Ok(Desired {
        template: middleware.member_template(obj, total),
        hostconf: hostconf_config_map(middleware, obj, &list),
        hostconf_list: list,
        override_policy: override_policy(middleware, obj, assignment, vips),
        propagation_policies: propagation_policies(middleware, obj, assignment),
        binding_clusters: clusters,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::members::{MemberRecord, assign};
    use crate::mongodb::MongoDb;
    use base64::Engine;
    use fedstate_api::SchedulerResult;
    use fedstate_api::karmada::override_policy::{OP_ADD, OP_REPLACE};
    use fedstate_api::names::LABEL_MEMBER_VIP;
    use fedstate_api::v1alpha1::MemberRole;
    use fedstate_api::{MongoDB, MultiCloudMongoDB};
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

    fn setup(plan: &str) -> (MultiCloudMongoDB, Assignment, Desired<MongoDB>) {
        let m = seed();
        let a = assign(&[], &SchedulerResult::parse(plan).unwrap()).unwrap();
        let d = desired(&MongoDb, &m, &a, &vips(), &ports(&a)).unwrap();
        (m, a, d)
    }

    /// What Karmada's binding controller does per cluster: revise replicas, then the
    /// OverridePolicy's rule for that cluster (plaintext JSON-patch operations and labels).
    fn member_object(d: &Desired<MongoDB>, cluster: &str) -> Value {
        let mut obj = serde_json::to_value(&d.template).unwrap();
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
    fn deleting_the_members_data_on_teardown_is_an_opt_in_that_reaches_every_member() {
        let mut m = seed();
        let a = assign(&[], &SchedulerResult::parse(PLAN).unwrap()).unwrap();
        let d = desired(&MongoDb, &m, &a, &vips(), &ports(&a)).unwrap();
        assert_eq!(
            member_object(&d, "member1")["spec"]["persistence"].get("deleteOnTeardown"),
            None,
            "kept by default"
        );
        m.spec.storage.as_mut().unwrap().delete_on_teardown = Some(true);
        let d = desired(&MongoDb, &m, &a, &vips(), &ports(&a)).unwrap();
        for c in ["member1", "member2", "member3"] {
            assert_eq!(
                member_object(&d, c)["spec"]["persistence"]["deleteOnTeardown"],
                true
            );
        }
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
        let svcs = services(&MongoDb, &m, &a);
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
        // A Service labelled with an index we never give out records no member (before, an
        // index of i32::MAX became a member and a memberRoles entry the CRD refuses).
        for bad in ["2147483647", "50", "-1"] {
            let mut forged = s0.clone();
            forged
                .metadata
                .labels
                .as_mut()
                .unwrap()
                .insert(LABEL_MEMBER_INDEX.into(), bad.into());
            assert_eq!(record_from_service(&forged), None, "{bad}");
        }
        assert_eq!(
            s0.metadata.owner_references.as_ref().unwrap()[0].kind,
            "MultiCloudMongoDB"
        );
        let d = desired(&MongoDb, &m, &a, &vips(), &ports(&a)).unwrap();
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
        let d = desired(&MongoDb, &m, &a, &vips(), &ports(&a)).unwrap();
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
        let svcs = services(&MongoDb, &m, &a);
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
        let d = desired(&MongoDb, &m, &a, &vips(), &ports(&a)).unwrap();
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
        let err = desired(&MongoDb, &m, &a, &v, &ports(&a))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"member2\" has no VIP label"), "{err}");
        assert!(err.contains("kubectl label cluster member2 vip="), "{err}");
    }

    #[test]
    fn spec_changes_reach_the_template() {
        let (mut m, _, _) = setup(PLAN);
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
        let t = serde_json::to_value(MongoDb.member_template(&m, 5)).unwrap();
        assert_eq!(t["spec"]["image"], "mongo:7.0");
        assert_eq!(t["spec"]["resources"]["limits"]["memory"], "1Gi");
    }

    /// The root password (`mypasswd` in the seed) appears in no object we create except the
    /// credentials Secret's data.
    #[test]
    fn no_password_outside_the_credentials_secret() {
        let (m, a, d) = setup(PLAN);
        let mut rng = StdRng::seed_from_u64(7);
        let creds = crate::mongodb::secrets::credentials_secret(&m, None, &mut rng);
        let keyfile =
            crate::mongodb::secrets::keyfile_secret("multicloudmongodb-sample", None, &mut rng);
        let mut rendered: Vec<(String, String)> = vec![
            (
                "MongoDB".into(),
                serde_json::to_string(&d.template).unwrap(),
            ),
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
        for s in services(&MongoDb, &m, &a) {
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
