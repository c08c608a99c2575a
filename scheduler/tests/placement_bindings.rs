//! Karmada binding strategies (`docs/karmada.md#scheduling-resourcebindings`) through the same
//! engine: no votes, no VIP needed.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fedstate_scheduler::placement::*;
use pretty_assertions::assert_eq;

fn workload(replicas: u32, mode: Distribution) -> PlacementRequest {
    let mut r = request(replicas, mode);
    r.replica_set = None;
    r.require_vip = false;
    r
}

#[test]
fn duplicated_gives_every_fitting_cluster_all_replicas() {
    let mut cs = clusters(&[10, 2, 10]);
    cs[2].has_vip = false;
    let p = place(&workload(3, Distribution::Duplicated), &cs, None).unwrap();
    assert_eq!(layout(&p), "member1:3/0,member3:3/0");
    assert_eq!(p.quorum, QuorumStatus::NotApplicable);
    assert_eq!(p.explanation.clusters[1].verdict, Verdict::NoCapacity);
    assert_eq!(p.to_scheduler_result(None).quorum_safe, None);
}

#[test]
fn divided_with_static_weights_uses_webster_on_the_weights() {
    let mut cs = clusters(&[100, 100, 100]);
    for (c, w) in cs.iter_mut().zip([1, 2, 3]) {
        c.static_weight = w;
    }
    // 6 × (1/6, 2/6, 3/6) = 1, 2, 3.
    let p = place(&workload(6, Distribution::StaticWeighted), &cs, None).unwrap();
    assert_eq!(layout(&p), "member1:1/0,member2:2/0,member3:3/0");
    // A zero weight gets nothing, capacity still bounds the others.
    cs[2].static_weight = 0;
    cs[1].capacity = 2;
    let p = place(&workload(6, Distribution::StaticWeighted), &cs, None).unwrap();
    assert_eq!(layout(&p), "member1:4/0,member2:2/0");
}

#[test]
fn dynamic_weights_follow_available_replicas_and_match_webster() {
    let caps = [13u32, 7, 29, 1];
    let p = place(
        &workload(10, Distribution::Weighting),
        &clusters(&caps),
        None,
    )
    .unwrap();
    let got: Vec<u32> = (1..=4).map(|i| p.data_in(&format!("member{i}"))).collect();
    let weights: Vec<u64> = caps.iter().map(|c| u64::from(*c)).collect();
    assert!(webster::is_webster(&weights, &caps, &got), "{got:?}");
    assert_eq!(got.iter().sum::<u32>(), 10);
}

#[test]
fn aggregated_packs_into_the_fewest_clusters() {
    let p = place(
        &workload(12, Distribution::Aggregated),
        &clusters(&[5, 8, 20]),
        None,
    )
    .unwrap();
    assert_eq!(layout(&p), "member3:12/0");
    let p = place(
        &workload(25, Distribution::Aggregated),
        &clusters(&[5, 8, 20]),
        None,
    )
    .unwrap();
    assert_eq!(layout(&p), "member2:5/0,member3:20/0");
}
