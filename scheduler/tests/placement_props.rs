//! The invariants of `docs/placement.md#invariants-the-tests-check`, for random clusters and
//! requests.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fedstate_scheduler::placement::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct World {
    clusters: Vec<ClusterCandidate>,
    req: PlacementRequest,
}

fn mode() -> impl Strategy<Value = Distribution> {
    prop_oneof![
        Just(Distribution::Uniform),
        Just(Distribution::Weighting),
        Just(Distribution::Aggregated)
    ]
}

/// Clusters that are mostly healthy, some filtered, some without room.
fn world(max_r: u32) -> impl Strategy<Value = World> {
    (
        proptest::collection::vec((0u32..12, 0u8..10, 0u8..3), 1..9),
        1..=max_r,
        any::<bool>(),
        mode(),
        any::<bool>(),
        "[a-z0-9-]{1,12}",
    )
        .prop_map(|(cs, r, arbiter, mode, required, uid)| {
            let clusters = cs
                .iter()
                .enumerate()
                .map(|(i, (cap, health, region))| {
                    let mut c = cluster(&format!("c{i}"), *cap);
                    c.region = Some(format!("r{region}"));
                    match health {
                        0 => c.ready = false,
                        1 => c.taints.push(Taint {
                            key: "cluster.karmada.io/unreachable".into(),
                            value: String::new(),
                            effect: TaintEffect::NoExecute,
                        }),
                        2 => c.has_vip = false,
                        _ => {}
                    }
                    c
                })
                .collect();
            let mut req = request(r, mode);
            req.uid = uid;
            req.replica_set = Some(ReplicaSetRules {
                arbiter,
                quorum_policy: if required {
                    QuorumPolicy::Required
                } else {
                    QuorumPolicy::Preferred
                },
            });
            World { clusters, req }
        })
}

/// The clusters once the plan's members run there: the estimators see them as used, and the
/// engine adds them back as this object's own (rule 1), so the engine's input is unchanged.
fn occupied(clusters: &[ClusterCandidate], p: &PlacementPlan) -> Vec<ClusterCandidate> {
    let mut out = clusters.to_vec();
    for c in &mut out {
        c.capacity -= p.data_in(&c.name);
    }
    out
}

fn eligible(c: &ClusterCandidate) -> bool {
    c.ready && c.taints.is_empty() && c.has_vip
}

fn check_plan(w: &World, p: &PlacementPlan) -> Result<(), TestCaseError> {
    let r = w.req.replicas;
    let arb = w.req.replica_set.unwrap().arbiter;
    // Σd = R.
    prop_assert_eq!(p.clusters.iter().map(|c| c.data).sum::<u32>(), r);
    for c in &p.clusters {
        let input = w.clusters.iter().find(|x| x.name == c.cluster).unwrap();
        // Ineligible clusters get nothing; d ≤ capacity.
        prop_assert!(eligible(input), "{} is not eligible", c.cluster);
        prop_assert!(c.data <= input.capacity, "{} over capacity", c.cluster);
        prop_assert!(c.votes <= c.data + u32::from(c.arbiter));
        if c.votes == u32::from(c.arbiter) {
            prop_assert_eq!(c.priority, 0, "non-voting data members have priority 0");
        }
    }
    // V odd, ≤ 7, and what the clusters hold.
    let v: u32 = p.clusters.iter().map(|c| c.votes).sum();
    prop_assert_eq!(v, p.voters);
    prop_assert!(v % 2 == 1 && v <= 7, "V = {}", v);
    prop_assert!(v <= r + u32::from(arb));
    prop_assert_eq!(p.arbiter_cluster().is_some(), arb);
    // Every cluster ≤ ⌊(V−1)/2⌋ votes whenever ≥ 3 eligible clusters have room.
    let with_room = w
        .clusters
        .iter()
        .filter(|c| eligible(c) && c.capacity > 0)
        .count();
    if with_room >= 3 && r + u32::from(arb) >= 3 {
        prop_assert!(
            p.quorum_safe(),
            "unsafe with {} clusters with room: {}",
            with_room,
            layout(p)
        );
    }
    if p.quorum_safe() {
        prop_assert!(p.clusters.iter().all(|c| c.votes <= (v - 1) / 2));
    }
    // The annotation the scheduler writes parses back and sums to spec.replicaset.
    let ann = p.to_scheduler_result(Some(1)).to_annotation();
    let parsed = fedstate_api::SchedulerResult::parse_for(&ann, r as i32, |_| true);
    prop_assert!(parsed.is_ok(), "{:?}", parsed);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn placements_keep_the_hard_invariants(w in world(12)) {
        match place(&w.req, &w.clusters, None) {
            Ok(p) => {
                check_plan(&w, &p)?;
                if w.req.replica_set.unwrap().quorum_policy == QuorumPolicy::Required {
                    prop_assert!(p.quorum_safe());
                }
            }
            Err(e) => {
                let room: u32 = w.clusters.iter().filter(|c| eligible(c)).map(|c| c.capacity).sum();
                let explained = matches!(e, PlacementError::QuorumUnsatisfiable { .. })
                    || room < w.req.replicas
                    || !w.clusters.iter().any(eligible);
                prop_assert!(explained, "unexpected error {e} for {:?}", w.clusters);
            }
        }
    }

    #[test]
    fn replanning_an_unchanged_input_returns_the_same_placement(w in world(12)) {
        if let Ok(p) = place(&w.req, &w.clusters, None) {
            let again = place(&w.req, &w.clusters, None).unwrap();
            prop_assert_eq!(&p, &again);
            let q = place(&w.req, &occupied(&w.clusters, &p), Some(&p.as_previous())).unwrap();
            prop_assert_eq!(&p.clusters, &q.clusters);
        }
    }

    #[test]
    fn scaling_by_k_moves_exactly_k(w in world(20), k in 1u32..6, up in any::<bool>()) {
        let mut w = w;
        // "When capacity allows": every eligible cluster has room for the larger size.
        for c in &mut w.clusters { c.capacity = 30; }
        w.req.replica_set = Some(ReplicaSetRules { quorum_policy: QuorumPolicy::Preferred, ..w.req.replica_set.unwrap() });
        let before = w.req.replicas;
        let after = if up { before + k } else { before.saturating_sub(k).max(1) };
        if let Ok(p) = place(&w.req, &w.clusters, None) {
            let mut req = w.req.clone();
            req.replicas = after;
            let q = place(&req, &occupied(&w.clusters, &p), Some(&p.as_previous())).unwrap();
            // Exactly k, unless the old placement was unsafe and moving makes it safe (rule 3).
            if p.quorum_safe() || !q.quorum_safe() {
                prop_assert_eq!(moved(&p, &q), before.abs_diff(after), "{} → {}", layout(&p), layout(&q));
            } else {
                prop_assert!(moved(&p, &q) >= before.abs_diff(after));
            }
            check_plan(&World { clusters: w.clusters.clone(), req }, &q)?;
        }
    }

    #[test]
    fn losing_a_cluster_moves_only_its_members(w in world(12), which in any::<prop::sample::Index>()) {
        let mut w = w;
        for c in &mut w.clusters { c.capacity = c.capacity.max(1) * 10; }
        w.req.replica_set = Some(ReplicaSetRules { quorum_policy: QuorumPolicy::Preferred, ..w.req.replica_set.unwrap() });
        let Ok(p) = place(&w.req, &w.clusters, None) else { return Ok(()) };
        let lost = p.clusters[which.index(p.clusters.len())].cluster.clone();
        let mut after = occupied(&w.clusters, &p);
        after.iter_mut().find(|c| c.name == lost).unwrap().ready = false;
        let room: u32 = after.iter().filter(|c| eligible(c)).map(|c| c.capacity).sum();
        if room < w.req.replicas { return Ok(()) }
        let q = place(&w.req, &after, Some(&p.as_previous())).unwrap();
        prop_assert_eq!(q.data_in(&lost), 0);
        let was = p.data_in(&lost);
        // Only the lost members move, unless quorum safety (rule 3) requires more.
        if q.quorum_safe() == p.quorum_safe() || !q.quorum_safe() {
            for c in &p.clusters {
                if c.cluster != lost {
                    prop_assert!(q.data_in(&c.cluster) >= c.data, "{} → {}", layout(&p), layout(&q));
                }
            }
            prop_assert_eq!(moved(&p, &q), 2 * was);
        }
    }

    #[test]
    fn weighting_matches_the_brute_force_webster(caps in proptest::collection::vec(0u32..15, 1..5), r in 1u32..12) {
        let mut req = request(r, Distribution::Weighting);
        req.replica_set = None;
        let cs = clusters(&caps);
        if let Ok(p) = place(&req, &cs, None) {
            let got: Vec<u32> = cs.iter().map(|c| p.data_in(&c.name)).collect();
            let weights: Vec<u64> = caps.iter().map(|c| u64::from(*c)).collect();
            let all = webster::brute_force(&weights, &caps, r);
            prop_assert!(all.contains(&got), "{:?} not among {:?}", got, all);
        } else {
            prop_assert!(caps.iter().sum::<u32>() < r);
        }
    }

    #[test]
    fn uniform_is_even_when_capacity_allows(n in 1usize..8, r in 1u32..30) {
        let mut req = request(r, Distribution::Uniform);
        req.replica_set = None;
        let p = place(&req, &clusters(&vec![100; n]), None).unwrap();
        let d: Vec<u32> = p.clusters.iter().map(|c| c.data).collect();
        prop_assert_eq!(d.len(), n.min(r as usize));
        prop_assert!(d.iter().max().unwrap() - d.iter().min().unwrap() <= 1);
    }

    #[test]
    fn the_engine_never_panics(
        w in world(60),
        prev in proptest::collection::vec(("c[0-9]{1,2}", 0u32..60), 0..6),
        prev_arb in proptest::option::of("c[0-9]"),
        spread in proptest::collection::vec((0u8..5, 0u32..5, 0u32..5), 0..3),
        any_mode in mode(),
        names in proptest::collection::vec("c[0-9]", 0..3),
        primary in proptest::collection::vec("c[0-9]", 0..3),
    ) {
        let mut req = w.req.clone();
        req.distribution = any_mode;
        req.filter.names = names;
        req.primary.names = primary;
        req.spread = spread.into_iter().map(|(k, min, max)| SpreadRule {
            key: match k { 0 => SpreadKey::Cluster, 1 => SpreadKey::Region, 2 => SpreadKey::Zone, 3 => SpreadKey::Provider, _ => SpreadKey::Label("x".into()) },
            min_groups: min, max_groups: max,
        }).collect();
        let previous = PreviousPlacement { members: prev, arbiter: prev_arb };
        let _ = place(&req, &w.clusters, Some(&previous));
        let _ = place(&req, &w.clusters, None);
    }
}
