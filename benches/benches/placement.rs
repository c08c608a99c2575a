//! Placement engine benchmarks (`docs/performance.md#what-is-measured-and-the-goals`): one decision
//! at 3 / 10 / 100 / 1,000 / 5,000 clusters × 3 / 5 / 7 / 50 members in each mode, plus baselines
//! measured in the same run:
//!
//! * `baseline/naive_webster`: the textbook sequential Sainte-Laguë (every seat scans every
//!   cluster, O(R·n)), i.e. what the engine's Weighting mode would cost without ranking once;
//! * `baseline/sort_keys`: sorting n 128-bit keys, the O(n log n) floor any ranking pays.
//!
//! Short criterion settings so the whole file runs in a few minutes on 2 shared cores:
//! `cargo bench -p fedstate-benches --bench placement`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fedstate_scheduler::placement::{
    ClusterCandidate, Distribution, PlacementRequest, QuorumPolicy, ReplicaSetRules, place, webster,
};

const CLUSTERS: [usize; 5] = [3, 10, 100, 1_000, 5_000];
const MEMBERS: [u32; 4] = [3, 5, 7, 50];
const MODES: [Distribution; 3] = [
    Distribution::Uniform,
    Distribution::Weighting,
    Distribution::Aggregated,
];

/// `n` healthy clusters with deterministic, uneven capacities (at least 20 each, so 50 members
/// fit on 3 clusters), 5 regions, 3 providers.
fn clusters(n: usize) -> Vec<ClusterCandidate> {
    (0..n)
        .map(|i| ClusterCandidate {
            name: format!("member-{i:05}"),
            labels: [("vip".to_owned(), format!("10.{}.{}.1", i / 256, i % 256))].into(),
            provider: Some(["aws", "gcp", "onprem"][i % 3].to_owned()),
            region: Some(format!("region-{}", i % 5)),
            zone: Some(format!("zone-{}", i % 15)),
            ready: true,
            has_vip: true,
            capacity: 20 + ((i as u32).wrapping_mul(7_919) % 61),
            ..Default::default()
        })
        .collect()
}

fn request(r: u32, mode: Distribution) -> PlacementRequest {
    PlacementRequest {
        uid: "5f0c2b8e-8d5e-4c1e-9a57-3b2f1e0d9c8a".into(),
        replicas: r,
        distribution: mode,
        replica_set: Some(ReplicaSetRules {
            arbiter: false,
            quorum_policy: QuorumPolicy::Preferred,
        }),
        require_vip: true,
        ..Default::default()
    }
}

#[allow(
    clippy::expect_used,
    reason = "benchmark set-up (criterion calls it, not a #[test]): its inputs are built to fit, and a panic stops the benchmark"
)]
fn engine(c: &mut Criterion) {
    for mode in MODES {
        let mut group = c.benchmark_group(format!("placement/{}", mode.as_str()));
        for n in CLUSTERS {
            let cs = clusters(n);
            for r in MEMBERS {
                let req = request(r, mode);
                // The inputs and outputs of each case, once, so results can be checked.
                let plan = place(&req, &cs, None).expect("benchmark inputs always fit");
                println!(
                    "input: {} clusters, {r} members, {}; output: {} clusters used, {} voters, quorum-safe {}",
                    n,
                    mode.as_str(),
                    plan.clusters.len(),
                    plan.voters,
                    plan.quorum_safe()
                );
                group.bench_with_input(
                    BenchmarkId::new(format!("{n}_clusters"), format!("{r}_members")),
                    &(&req, &cs),
                    |b, (req, cs)| b.iter(|| place(black_box(req), black_box(cs), None)),
                );
            }
        }
        group.finish();
    }
}

#[allow(
    clippy::expect_used,
    reason = "benchmark set-up (criterion calls it, not a #[test]): its inputs are built to fit, and a panic stops the benchmark"
)]
fn stable_replan(c: &mut Criterion) {
    // The common case in the service: the object is already placed and nothing changed.
    let mut group = c.benchmark_group("placement/replan_unchanged");
    for n in [3usize, 1_000, 5_000] {
        let cs = clusters(n);
        let req = request(7, Distribution::Uniform);
        let prev = place(&req, &cs, None).expect("fits").as_previous();
        group.bench_with_input(
            BenchmarkId::new(format!("{n}_clusters"), "7_members"),
            &n,
            |b, _| b.iter(|| place(black_box(&req), black_box(&cs), Some(black_box(&prev)))),
        );
    }
    group.finish();
}

fn baselines(c: &mut Criterion) {
    let mut group = c.benchmark_group("baseline");
    for n in [3usize, 1_000, 5_000] {
        let cs = clusters(n);
        let weights: Vec<u64> = cs.iter().map(|c| u64::from(c.capacity)).collect();
        let caps: Vec<u32> = cs.iter().map(|c| c.capacity).collect();
        for r in [7u32, 50] {
            group.bench_with_input(
                BenchmarkId::new("naive_webster", format!("{n}_clusters/{r}_members")),
                &r,
                |b, r| b.iter(|| webster::apportion(black_box(&weights), black_box(&caps), *r)),
            );
        }
        let keys: Vec<u128> = cs
            .iter()
            .enumerate()
            .map(|(i, c)| (u128::from(c.capacity) << 64) | i as u128)
            .collect();
        group.bench_with_input(
            BenchmarkId::new("sort_keys", format!("{n}_clusters")),
            &keys,
            |b, keys| {
                b.iter(|| {
                    let mut k = keys.clone();
                    k.sort_unstable();
                    black_box(k)
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // A change is reported (against `--baseline`) only beyond 20 %: the regression bound.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .noise_threshold(0.20);
    targets = engine, stable_replan, baselines
}
criterion_main!(benches);
