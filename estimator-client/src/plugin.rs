//! The estimator plugin chain (`docs/placement.md#the-capacity-plugin-chain`): each
//! [`CapacityPlugin`] answers how many more members of a shape a cluster can take, or has no
//! opinion, or fails; the answers are merged by [`merge`] (minimum, ignoring "no opinion" and
//! failures, so a failing plugin for one cluster affects only that cluster's answer).
//!
//! Plugins here: [`KarmadaAccurate`] (the cluster's scheduler-estimator over gRPC),
//! [`GeneralEstimate`] (from `Cluster.status.resourceSummary`) and [`NodeSpread`] (one member per
//! ready node). The fourth element of the chain, the assumed-workload ledger, is a subtraction
//! rather than an opinion; see [`crate::ledger`] and [`merge`].

use std::sync::Arc;

use fedstate_api::karmada::{Cluster, ResourceSummary};
use fedstate_api::quantity::parse_quantity;
use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::discovery::EstimatorRegistry;
use crate::shape::MemberShape;

/// One plugin's answer for one cluster and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Estimate {
    /// At most this many more members fit.
    Replicas(u32),
    /// The plugin cannot tell (Karmada's −1); ignored by the merge.
    NoOpinion,
    /// The plugin failed or missed its deadline for this cluster; ignored by the merge and
    /// reported in the explanation.
    Failed(String),
}

/// The cluster a plugin is asked about: its name and the latest Cluster object.
#[derive(Clone, Debug)]
pub struct ClusterRef {
    pub name: Arc<str>,
    pub cluster: Arc<Cluster>,
}

impl ClusterRef {
    pub fn new(cluster: Cluster) -> Self {
        Self::from_arc(Arc::new(cluster))
    }

    /// A reference to a shared Cluster (a reflector's): no copy of the object.
    pub fn from_arc(cluster: Arc<Cluster>) -> Self {
        let name = cluster.metadata.name.as_deref().unwrap_or_default().into();
        Self { name, cluster }
    }
}

/// A capacity plugin. `estimate` must return by `deadline`; the chain also enforces it, turning a
/// late answer into [`Estimate::Failed`].
pub trait CapacityPlugin: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    fn estimate<'a>(
        &'a self,
        cluster: &'a ClusterRef,
        shape: &'a MemberShape,
        deadline: Instant,
    ) -> BoxFuture<'a, Estimate>;

    /// `true` when the answer bounds the members of one replica set in the cluster, including
    /// those it already hosts (node-spread): the merge subtracts the set's hosted members.
    fn counts_hosted_members(&self) -> bool {
        false
    }
}

/// One plugin's answer, as cached and as shown in explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginAnswer {
    pub plugin: &'static str,
    pub estimate: Estimate,
    pub counts_hosted_members: bool,
}

/// A cluster's capacity for one shape after merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// How many more members fit; `None` when no plugin had an opinion (unbounded as far as the
    /// estimators know).
    pub replicas: Option<u32>,
    /// The plugin whose answer was the minimum.
    pub decided_by: Option<&'static str>,
    /// Members subtracted for placements the estimators cannot see yet.
    pub assumed: u32,
}

/// Minimum over the plugins' answers, ignoring "no opinion" and failures. A resource answer is
/// reduced by `assumed` (the ledger: room other placements took that the estimators cannot see
/// yet); a hosted-members bound (node spread, per replica set) is reduced by `hosted` (members of
/// this set already in the cluster) and not by `assumed`: members of other objects do not take
/// this set's nodes.
pub fn merge(answers: &[PluginAnswer], hosted: u32, assumed: u32) -> Capacity {
    let mut best: Option<(u32, &'static str)> = None;
    for a in answers {
        let Estimate::Replicas(n) = a.estimate else {
            continue;
        };
        let n = if a.counts_hosted_members {
            n.saturating_sub(hosted)
        } else {
            n.saturating_sub(assumed)
        };
        if best.is_none_or(|(b, _)| n < b) {
            best = Some((n, a.plugin));
        }
    }
    Capacity {
        replicas: best.map(|(n, _)| n),
        decided_by: best.map(|(_, p)| p),
        assumed,
    }
}

/// What an estimator's `maxReplicas` says: a negative number is Karmada's "no opinion"
/// (`UnauthenticReplica`, −1), anything else the replicas that fit.
pub fn estimate_from_max_replicas(max_replicas: i32) -> Estimate {
    match u32::try_from(max_replicas) {
        Ok(n) => Estimate::Replicas(n),
        Err(_) => Estimate::NoOpinion,
    }
}

/// Karmada's scheduler-estimator of the cluster, found through [`EstimatorRegistry`].
#[derive(Clone, Debug)]
pub struct KarmadaAccurate {
    registry: EstimatorRegistry,
}

impl KarmadaAccurate {
    pub const NAME: &'static str = "karmada-accurate";

    pub fn new(registry: EstimatorRegistry) -> Self {
        Self { registry }
    }
}

impl CapacityPlugin for KarmadaAccurate {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn estimate<'a>(
        &'a self,
        cluster: &'a ClusterRef,
        shape: &'a MemberShape,
        deadline: Instant,
    ) -> BoxFuture<'a, Estimate> {
        Box::pin(async move {
            let client = match self.registry.client(&cluster.name) {
                Ok(c) => c,
                Err(e) => return Estimate::Failed(e.to_string()),
            };
            match client.max_available_replicas(shape, None, deadline).await {
                Ok(n) => estimate_from_max_replicas(n),
                Err(e) => Estimate::Failed(e.to_string()),
            }
        })
    }
}

/// Karmada's general estimator: `min over requested resources of (allocatable − allocated −
/// allocating) / request`, bounded by free `pods`; 0 when the summary is missing.
#[derive(Clone, Copy, Debug, Default)]
pub struct GeneralEstimate;

impl GeneralEstimate {
    pub const NAME: &'static str = "general";
}

/// The general estimate for one summary (pure; shared with whoever needs the same formula).
pub fn general_estimate(
    summary: Option<&ResourceSummary>,
    shape: &MemberShape,
) -> Result<u32, String> {
    let Some(summary) = summary else {
        return Ok(0);
    };
    let free = |resource: &str| -> Result<i128, String> {
        let get = |m: &std::collections::BTreeMap<String, _>| {
            m.get(resource)
                .map(parse_quantity)
                .transpose()
                .map(Option::unwrap_or_default)
        };
        let msg = |e: fedstate_api::quantity::QuantityError| format!("resource {resource}: {e}");
        Ok(get(&summary.allocatable).map_err(msg)?
            - get(&summary.allocated).map_err(msg)?
            - get(&summary.allocating).map_err(msg)?)
    };
    // Pods: one per member, in milli-units like every quantity.
    let mut max = free("pods")?.max(0) / 1000;
    for (resource, request) in &shape.requirements().resource_request {
        let request = parse_quantity(request).map_err(|e| format!("request {resource}: {e}"))?;
        if request <= 0 || resource == "pods" {
            continue;
        }
        max = max.min(free(resource)?.max(0) / request);
    }
    Ok(u32::try_from(max).unwrap_or(u32::MAX))
}

impl CapacityPlugin for GeneralEstimate {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn estimate<'a>(
        &'a self,
        cluster: &'a ClusterRef,
        shape: &'a MemberShape,
        _deadline: Instant,
    ) -> BoxFuture<'a, Estimate> {
        let summary = cluster
            .cluster
            .status
            .as_ref()
            .and_then(|s| s.resource_summary.as_ref());
        let answer = match general_estimate(summary, shape) {
            Ok(n) => Estimate::Replicas(n),
            Err(e) => Estimate::Failed(format!("cluster {}: {e}", cluster.name)),
        };
        Box::pin(std::future::ready(answer))
    }
}

/// Members of one replica set go to different nodes: at most one per ready node
/// (`Cluster.status.nodeSummary.readyNum`), counting the set's members already there. No opinion
/// without a node summary. (Which nodes fit the shape is the accurate estimator's job.)
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeSpread;

impl NodeSpread {
    pub const NAME: &'static str = "node-spread";
}

impl CapacityPlugin for NodeSpread {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn estimate<'a>(
        &'a self,
        cluster: &'a ClusterRef,
        _shape: &'a MemberShape,
        _deadline: Instant,
    ) -> BoxFuture<'a, Estimate> {
        let answer = match cluster
            .cluster
            .status
            .as_ref()
            .and_then(|s| s.node_summary.as_ref())
        {
            Some(n) => Estimate::Replicas(n.ready_num.max(0).unsigned_abs()),
            None => Estimate::NoOpinion,
        };
        Box::pin(std::future::ready(answer))
    }

    fn counts_hosted_members(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fedstate_api::karmada::{ClusterStatus, NodeSummary};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use proptest::prelude::*;

    fn answer(plugin: &'static str, estimate: Estimate) -> PluginAnswer {
        PluginAnswer {
            plugin,
            estimate,
            counts_hosted_members: false,
        }
    }

    fn summary(alloc: &[(&str, &str)], used: &[(&str, &str)]) -> ResourceSummary {
        let map = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                .collect()
        };
        ResourceSummary {
            allocatable: map(alloc),
            allocated: map(used),
            allocating: Default::default(),
        }
    }

    #[test]
    fn merge_takes_the_minimum_and_ignores_no_opinion_and_failures() {
        let c = merge(
            &[
                answer("a", Estimate::Replicas(7)),
                answer("b", Estimate::NoOpinion),
                answer("c", Estimate::Failed("down".into())),
                answer("d", Estimate::Replicas(4)),
            ],
            0,
            0,
        );
        assert_eq!(c.replicas, Some(4));
        assert_eq!(c.decided_by, Some("d"));
        let none = merge(&[answer("a", Estimate::NoOpinion)], 0, 0);
        assert_eq!(none.replicas, None);
    }

    #[test]
    fn a_failed_accurate_answer_leaves_the_general_one() {
        let c = merge(
            &[
                answer(KarmadaAccurate::NAME, Estimate::Failed("deadline".into())),
                answer(GeneralEstimate::NAME, Estimate::Replicas(9)),
            ],
            0,
            0,
        );
        assert_eq!(c.replicas, Some(9));
        assert_eq!(c.decided_by, Some(GeneralEstimate::NAME));
    }

    #[test]
    fn node_spread_counts_hosted_members_and_the_ledger_subtracts() {
        let spread = PluginAnswer {
            plugin: NodeSpread::NAME,
            estimate: Estimate::Replicas(3),
            counts_hosted_members: true,
        };
        let c = merge(
            &[spread.clone(), answer("general", Estimate::Replicas(10))],
            2,
            0,
        );
        assert_eq!(
            (c.replicas, c.decided_by),
            (Some(1), Some(NodeSpread::NAME))
        );
        let c = merge(&[answer("general", Estimate::Replicas(10))], 0, 4);
        assert_eq!(c.replicas, Some(6));
        let c = merge(&[spread], 5, 1);
        assert_eq!(c.replicas, Some(0));
    }

    /// Another object's assumed members take CPU, not this set's nodes: a cluster with 2 nodes
    /// and room for 10 members, 2 of which another object just took, still takes 2 of this set.
    #[test]
    fn the_ledger_does_not_shrink_the_node_spread_bound() {
        let spread = PluginAnswer {
            plugin: NodeSpread::NAME,
            estimate: Estimate::Replicas(2),
            counts_hosted_members: true,
        };
        let c = merge(
            &[
                spread.clone(),
                answer("karmada-accurate", Estimate::Replicas(10)),
            ],
            0,
            2,
        );
        assert_eq!(
            (c.replicas, c.decided_by),
            (Some(2), Some(NodeSpread::NAME))
        );
        // When the room itself is short, the ledger decides.
        let c = merge(
            &[spread, answer("karmada-accurate", Estimate::Replicas(3))],
            0,
            2,
        );
        assert_eq!(
            (c.replicas, c.decided_by),
            (Some(1), Some("karmada-accurate"))
        );
    }

    #[test]
    fn general_estimate_is_the_tightest_resource_bounded_by_pods() {
        let shape = MemberShape::from_requests([("cpu", "1"), ("memory", "2Gi")]);
        // 8 CPU free → 8; 10Gi free → 5; 110 pods → 110: memory-bound.
        let s = summary(
            &[("cpu", "10"), ("memory", "12Gi"), ("pods", "110")],
            &[("cpu", "2"), ("memory", "2Gi"), ("pods", "3")],
        );
        assert_eq!(general_estimate(Some(&s), &shape), Ok(5));
        // CPU-bound with millicores.
        let s = summary(
            &[("cpu", "2500m"), ("memory", "64Gi"), ("pods", "110")],
            &[],
        );
        assert_eq!(general_estimate(Some(&s), &shape), Ok(2));
        // Pods bound.
        let s = summary(
            &[("cpu", "100"), ("memory", "1Ti"), ("pods", "4")],
            &[("pods", "3")],
        );
        assert_eq!(general_estimate(Some(&s), &shape), Ok(1));
        // A resource the cluster does not have, or no summary at all: 0.
        let gpu = MemberShape::from_requests([("nvidia.com/gpu", "1")]);
        let s = summary(&[("cpu", "100"), ("pods", "110")], &[]);
        assert_eq!(general_estimate(Some(&s), &gpu), Ok(0));
        assert_eq!(general_estimate(None, &shape), Ok(0));
        // Over-committed: 0, not a wrap-around.
        let s = summary(
            &[("cpu", "1"), ("memory", "1Gi"), ("pods", "1")],
            &[("cpu", "2")],
        );
        assert_eq!(general_estimate(Some(&s), &shape), Ok(0));
    }

    #[test]
    fn a_bad_quantity_fails_the_general_estimate_for_that_cluster_only() {
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let s = summary(&[("cpu", "lots"), ("pods", "10")], &[]);
        let e = general_estimate(Some(&s), &shape).unwrap_err();
        assert!(e.contains("cpu"), "{e}");
    }

    #[tokio::test]
    async fn plugins_read_the_cluster_object() {
        let mut cluster = Cluster::new("m1", Default::default());
        cluster.status = Some(ClusterStatus {
            node_summary: Some(NodeSummary {
                total_num: 4,
                ready_num: 3,
            }),
            resource_summary: Some(summary(&[("cpu", "4"), ("pods", "110")], &[])),
            ..ClusterStatus::default()
        });
        let c = ClusterRef::new(cluster);
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let deadline = Instant::now();
        assert_eq!(
            GeneralEstimate.estimate(&c, &shape, deadline).await,
            Estimate::Replicas(4)
        );
        assert_eq!(
            NodeSpread.estimate(&c, &shape, deadline).await,
            Estimate::Replicas(3)
        );
        let bare = ClusterRef::new(Cluster::new("m2", Default::default()));
        assert_eq!(
            NodeSpread.estimate(&bare, &shape, deadline).await,
            Estimate::NoOpinion
        );
        assert_eq!(
            GeneralEstimate.estimate(&bare, &shape, deadline).await,
            Estimate::Replicas(0)
        );
    }

    proptest! {
        #[test]
        fn merge_is_never_above_any_opinion(
            values in proptest::collection::vec(proptest::option::of(0u32..1000), 0..6),
            assumed in 0u32..50,
        ) {
            let answers: Vec<_> = values
                .iter()
                .map(|v| answer("p", v.map_or(Estimate::NoOpinion, Estimate::Replicas)))
                .collect();
            let c = merge(&answers, 0, assumed);
            let min = values.iter().flatten().min().copied();
            prop_assert_eq!(c.replicas, min.map(|m| m.saturating_sub(assumed)));
        }
    }
}
