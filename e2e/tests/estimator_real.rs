//! Our estimator client (`fedstate-estimator-client`) against the real
//! `karmada-scheduler-estimator` of every member of the local federation (mTLS, found through the
//! estimator Services in the Karmada apiserver). One shared federation; each scenario can run alone:
//!
//! 1. each estimator answers the replica counts implied by the kwok node capacity
//!    (`fedstate_local::capacity`) for several member shapes: CPU-bound, memory-bound, pinned
//!    to node-0, and with a node selector no node matches (0);
//! 2. with one member stopped (apiserver and estimator), the `CapacityEstimator` chain
//!    (`KarmadaAccurate` + `GeneralEstimate`) gives that member the general estimate from its
//!    Cluster's last resource summary and the others their accurate answers, within the budget;
//!    the member is restored afterwards.
//!
//! The fresh federation runs none of our pods, so the estimators subtract nothing. Runs only with
//! `FEDSTATE_E2E=1` (see `fedstate_e2e::harness`).

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "an e2e test binary (libtest-mimic, harness = false): clippy does not see its trials as tests; a panic is how a trial fails"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fedstate_api::karmada::Cluster;
use fedstate_e2e::harness::eventually;
use fedstate_e2e::scenarios;
use fedstate_e2e::suite::{Env, Suite};
use fedstate_estimator_client::{
    CapacityEstimator, CapacityQuery, ChannelConfig, ChannelFactory, ClusterRef, DiscoveryConfig,
    EstimatorClient, EstimatorConfig, EstimatorRegistry, GeneralEstimate, KarmadaAccurate,
    MemberRequirements, MemberShape, TlsOptions, general_estimate,
};
use fedstate_local::capacity::{NODE_INDEX_LABEL, member_nodes};
use fedstate_local::{Federation, member_name};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::Api;
use tokio::time::Instant;

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
/// Generous: the point is "answered", not how fast.
const RPC_DEADLINE: Duration = Duration::from_secs(10);

fn main() -> std::process::ExitCode {
    Suite::new("estimator_real", |fed, _| {
        Box::pin(registry_from_karmada(fed))
    })
    .scenarios(scenarios![
        estimators_answer_the_node_capacity,
        stopped_estimator_falls_back_for_that_member_only,
    ])
    .run()
}

/// What a member shape asks for, and which nodes it may use.
#[derive(Clone, Copy, Debug)]
struct Ask {
    what: &'static str,
    cpu_millis: u64,
    memory_bytes: u64,
    /// `nodeSelector: {NODE_INDEX_LABEL: "<n>"}`.
    node_index: Option<u32>,
}

impl Ask {
    fn shape(&self) -> MemberShape {
        let mut node_selector = BTreeMap::new();
        if let Some(i) = self.node_index {
            node_selector.insert(NODE_INDEX_LABEL.to_owned(), i.to_string());
        }
        MemberShape::new(MemberRequirements {
            resource_request: BTreeMap::from([
                ("cpu".into(), Quantity(format!("{}m", self.cpu_millis))),
                ("memory".into(), Quantity(self.memory_bytes.to_string())),
            ]),
            node_selector,
            namespace: "default".into(),
            ..MemberRequirements::default()
        })
    }

    /// Replicas fitting on `member`'s matching nodes, counting only CPU, only memory, or both:
    /// per node the fewest over the requested resources and the pod limit, summed over nodes
    /// (what the per-node estimator computes on empty nodes).
    fn fitting(&self, member: u32, cpu: bool, memory: bool) -> u32 {
        let total: u64 = member_nodes(member)
            .iter()
            .filter(|n| self.node_index.is_none_or(|i| n.index == i))
            .map(|n| {
                let mut fit = u64::from(n.pods);
                if cpu {
                    fit = fit.min(n.cpu_millis / self.cpu_millis);
                }
                if memory {
                    fit = fit.min(n.memory_bytes / self.memory_bytes);
                }
                fit
            })
            .sum();
        u32::try_from(total).expect("fits u32")
    }

    fn expected(&self, member: u32) -> u32 {
        self.fitting(member, true, true)
    }

    /// What the cluster-wide resource summary implies (no per-node view, no node selector).
    fn general(&self, member: u32) -> u32 {
        let nodes = member_nodes(member);
        let cpu: u64 = nodes.iter().map(|n| n.cpu_millis).sum();
        let memory: u64 = nodes.iter().map(|n| n.memory_bytes).sum();
        let pods: u64 = nodes.iter().map(|n| u64::from(n.pods)).sum();
        let total = (cpu / self.cpu_millis)
            .min(memory / self.memory_bytes)
            .min(pods);
        u32::try_from(total).expect("fits u32")
    }
}

const CPU_BOUND: Ask = Ask {
    what: "CPU-bound (1500m CPU, 512Mi)",
    cpu_millis: 1500,
    memory_bytes: 512 * MIB,
    node_index: None,
};
const MEMORY_BOUND: Ask = Ask {
    what: "memory-bound (100m CPU, 5Gi)",
    cpu_millis: 100,
    memory_bytes: 5 * GIB,
    node_index: None,
};
const PINNED_TO_NODE_0: Ask = Ask {
    what: "pinned to node-0 (1 CPU, 1Gi)",
    cpu_millis: 1000,
    memory_bytes: GIB,
    node_index: Some(0),
};
const NO_MATCHING_NODE: Ask = Ask {
    what: "node selector matching no node (1 CPU, 1Gi)",
    cpu_millis: 1000,
    memory_bytes: GIB,
    node_index: Some(7),
};

fn tls_options(fed: &Federation) -> TlsOptions {
    let tls = fed.estimator_tls();
    TlsOptions {
        ca_file: Some(tls.ca_cert),
        cert_file: Some(tls.client_cert),
        key_file: Some(tls.client_key),
        insecure_skip_verify: false,
    }
}

/// A registry fed with the estimator Services the federation put in the Karmada apiserver
/// (ExternalName to 127.0.0.1), with the federation's client certificate.
async fn registry_from_karmada(fed: &Federation) -> EstimatorRegistry {
    let config = DiscoveryConfig::default();
    let factory = ChannelFactory::new(&ChannelConfig {
        tls: tls_options(fed),
        ..ChannelConfig::default()
    })
    .expect("estimator TLS config");
    let registry = EstimatorRegistry::new(config.clone(), factory);
    let karmada = fed.karmada_client().await.expect("karmada client");
    let services: Api<Service> = Api::namespaced(karmada, &config.namespace);
    for i in 1..=fed.members() {
        let name = config.service_name(&member_name(i));
        let svc = services
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("estimator Service {name}: {e}"));
        registry.apply_service(&svc);
        let client = registry
            .client(&member_name(i))
            .unwrap_or_else(|e| panic!("estimator client of {}: {e}", member_name(i)));
        let want = fed.estimator_address(i).to_string();
        assert!(
            client.addresses().any(|a| a == want),
            "discovery of {} resolved {:?}, the estimator listens on {want}",
            member_name(i),
            client.addresses().collect::<Vec<_>>()
        );
    }
    registry
}

async fn ask(client: &EstimatorClient, shape: &MemberShape) -> Result<i32, String> {
    client
        .max_available_replicas(shape, None, Instant::now() + RPC_DEADLINE)
        .await
        .map_err(|e| e.to_string())
}

async fn estimators_answer_the_node_capacity(env: &Env<EstimatorRegistry>) {
    let (fed, registry) = (&env.fed, &env.ctx);
    // The shapes are what their names say, on every member.
    for i in 1..=fed.members() {
        assert!(
            CPU_BOUND.fitting(i, true, false) < CPU_BOUND.fitting(i, false, true),
            "test design: {} must be CPU-bound on member{i}",
            CPU_BOUND.what
        );
        assert!(
            MEMORY_BOUND.fitting(i, false, true) < MEMORY_BOUND.fitting(i, true, false),
            "test design: {} must be memory-bound on member{i}",
            MEMORY_BOUND.what
        );
        assert!(
            PINNED_TO_NODE_0.expected(i) < PINNED_TO_NODE_0.general(i),
            "test design: pinning must make a difference only a per-node view sees"
        );
    }
    assert!(
        member_nodes(1)
            .iter()
            .all(|n| Some(n.index) != NO_MATCHING_NODE.node_index),
        "test design: no node may match {}",
        NO_MATCHING_NODE.what
    );

    for i in 1..=fed.members() {
        let name = member_name(i);
        let client = registry.client(&name).expect("estimator client");
        for ask_for in [CPU_BOUND, MEMORY_BOUND, PINNED_TO_NODE_0, NO_MATCHING_NODE] {
            let shape = ask_for.shape();
            let want = i32::try_from(ask_for.expected(i)).expect("fits i32");
            // The estimator's node informer may lag the federation's readiness by a moment.
            eventually(
                &format!("{name}'s estimator answers {want} for {}", ask_for.what),
                Duration::from_secs(60),
                || async {
                    match ask(&client, &shape).await? {
                        n if n == want => Ok(()),
                        n => Err(format!("answered {n}")),
                    }
                },
            )
            .await;
        }
    }
}

async fn clusters(karmada: &kube::Client, fed: &Federation) -> Vec<ClusterRef> {
    let api: Api<Cluster> = Api::all(karmada.clone());
    let mut out = Vec::new();
    for name in fed.member_names() {
        let c = api
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("Cluster {name}: {e}"));
        out.push(ClusterRef::new(c));
    }
    out
}

async fn stopped_estimator_falls_back_for_that_member_only(env: &Env<EstimatorRegistry>) {
    let (fed, registry) = (&env.fed, &env.ctx);
    let stopped = 1;
    let stopped_name = member_name(stopped);
    // On the stopped member's nodes 3 CPUs fit fewer times than in its cluster-wide sum, so
    // the test sees which answer decided.
    let ask_for = Ask {
        what: "3 CPU, 1Gi",
        cpu_millis: 3000,
        memory_bytes: GIB,
        node_index: None,
    };
    assert!(
        ask_for.expected(stopped) < ask_for.general(stopped),
        "test design: accurate and general answers must differ on {stopped_name}"
    );
    let shape = ask_for.shape();
    let karmada = fed.karmada_client().await.expect("karmada client");
    let config = EstimatorConfig {
        per_cluster_deadline: Duration::from_secs(3),
        budget: Duration::from_secs(5),
        ..EstimatorConfig::default()
    };
    let chain = || {
        CapacityEstimator::new(
            vec![
                Arc::new(KarmadaAccurate::new(registry.clone())),
                Arc::new(GeneralEstimate),
            ],
            config,
        )
    };

    // All running: every member gets its accurate answer.
    let before = clusters(&karmada, fed).await;
    let caps = chain()
        .capacities(&before, &shape, &CapacityQuery::default())
        .await;
    for (i, c) in (1..=fed.members()).zip(&caps) {
        assert_eq!(
            (c.capacity.replicas, c.capacity.decided_by),
            (Some(ask_for.expected(i)), Some(KarmadaAccurate::NAME)),
            "{} with every estimator running: {:?}",
            c.cluster,
            c.answers
        );
    }

    fed.kill_member(stopped).expect("kill member");
    // Karmada keeps the stopped member's Cluster object with its last resource summary.
    let after = clusters(&karmada, fed).await;
    let summary_estimate = general_estimate(
        after[0]
            .cluster
            .status
            .as_ref()
            .and_then(|s| s.resource_summary.as_ref()),
        &shape,
    )
    .expect("general estimate of the stopped member");
    assert_eq!(
        summary_estimate,
        ask_for.general(stopped),
        "{stopped_name}'s resource summary should still describe its kwok nodes"
    );

    // A fresh chain (empty cache), so every member is asked now.
    let started = Instant::now();
    let caps = chain()
        .capacities(&after, &shape, &CapacityQuery::default())
        .await;
    let took = started.elapsed();
    for (i, c) in (1..=fed.members()).zip(&caps) {
        let want = if i == stopped {
            (Some(ask_for.general(i)), Some(GeneralEstimate::NAME))
        } else {
            (Some(ask_for.expected(i)), Some(KarmadaAccurate::NAME))
        };
        assert_eq!(
            (c.capacity.replicas, c.capacity.decided_by),
            want,
            "{} with {stopped_name}'s estimator stopped: {:?}",
            c.cluster,
            c.answers
        );
    }
    // Bounded by the budget (plus scheduling slack on a busy machine), not by a hang.
    assert!(
        took < config.budget + Duration::from_secs(2),
        "fan-out took {took:?}, budget {:?}",
        config.budget
    );
    eprintln!("  fan-out with {stopped_name} stopped took {took:?}");

    fed.restore_member(stopped).await.expect("restore member");
    let client = registry.client(&stopped_name).expect("estimator client");
    let want = i32::try_from(ask_for.expected(stopped)).expect("fits i32");
    eventually(
        &format!("{stopped_name}'s restored estimator answers {want} again"),
        Duration::from_secs(120),
        || async {
            match ask(&client, &shape).await? {
                n if n == want => Ok(()),
                n => Err(format!("answered {n}")),
            }
        },
    )
    .await;
}
