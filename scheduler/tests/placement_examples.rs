//! The tricky cases of `docs/placement.md`, one example each.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fedstate_scheduler::placement::*;
use pretty_assertions::assert_eq;

#[test]
fn three_members_on_three_clusters_is_one_each_and_safe() {
    let p = place(
        &request(3, Distribution::Uniform),
        &clusters(&[10, 10, 10]),
        None,
    )
    .unwrap();
    assert_eq!(layout(&p), "member1:1/1,member2:1/1,member3:1/1");
    assert!(p.quorum_safe());
    assert_eq!(p.voters, 3);
}

#[test]
fn five_members_on_two_clusters_is_unsafe() {
    let cs = clusters(&[10, 10]);
    let p = place(&request(5, Distribution::Uniform), &cs, None).unwrap();
    let d: Vec<u32> = p.clusters.iter().map(|c| c.data).collect();
    assert_eq!(d.iter().sum::<u32>(), 5);
    assert_eq!(d.iter().max(), Some(&3));
    assert!(!p.quorum_safe());
    match &p.quorum {
        QuorumStatus::AtRisk { missing } => {
            assert_eq!(missing, "3 eligible clusters needed, 2 found")
        }
        other => panic!("expected AtRisk, got {other:?}"),
    }
    // Policy Required refuses it, saying what is missing.
    let e = place(&required(request(5, Distribution::Uniform)), &cs, None).unwrap_err();
    assert_eq!(e.reason(), "QuorumUnsatisfiable");
    assert!(
        e.to_string()
            .contains("3 eligible clusters needed, 2 found"),
        "{e}"
    );
}

#[test]
fn an_arbiter_in_a_third_cluster_makes_two_data_clusters_safe() {
    // member3 has no room for a data member, but the arbiter fits there.
    let cs = clusters(&[10, 10, 0]);
    let p = place(&with_arbiter(request(4, Distribution::Uniform)), &cs, None).unwrap();
    assert_eq!(layout(&p), "member1:2/2,member2:2/2,member3:0/1+arb");
    assert!(p.quorum_safe());
    // Five data members and an arbiter: one data member does not vote, votes stay 2/2/1.
    let p = place(&with_arbiter(request(5, Distribution::Uniform)), &cs, None).unwrap();
    assert_eq!(p.voters, 5);
    let votes: Vec<u32> = p.clusters.iter().map(|c| c.votes).collect();
    assert_eq!(votes, vec![2, 2, 1]);
    assert!(p.quorum_safe());
    let ann = p.to_scheduler_result(Some(3));
    assert_eq!(ann.quorum_safe, Some(true));
    assert_eq!(ann.total_data_members(), 5);
    assert_eq!(ann.arbiter_cluster(), Some("member3"));
}

#[test]
fn five_members_on_three_clusters_is_two_two_one() {
    let p = place(
        &request(5, Distribution::Uniform),
        &clusters(&[10, 10, 10]),
        None,
    )
    .unwrap();
    let mut d: Vec<u32> = p.clusters.iter().map(|c| c.data).collect();
    d.sort_unstable();
    assert_eq!(d, vec![1, 2, 2]);
    assert!(p.quorum_safe());
    // Exactly one cluster holds the primary-preferred voters.
    assert_eq!(p.clusters.iter().filter(|c| c.priority == 2).count(), 1);
}

#[test]
fn a_cluster_without_capacity_gets_nothing_and_says_why() {
    let cs = clusters(&[10, 0, 10, 10]);
    let p = place(&request(3, Distribution::Uniform), &cs, None).unwrap();
    assert_eq!(p.data_in("member2"), 0);
    assert!(p.quorum_safe());
    let rec = &p.explanation.clusters[1];
    assert_eq!(rec.verdict, Verdict::NoCapacity);
    assert_eq!(rec.why(), "eligible, but no room for a member");
}

#[test]
fn tainted_and_not_ready_clusters_are_filtered_unless_tolerated() {
    let mut cs = clusters(&[10, 10, 10, 10]);
    cs[0].ready = false;
    cs[1].taints.push(Taint {
        key: "cluster.karmada.io/unreachable".into(),
        value: String::new(),
        effect: TaintEffect::NoExecute,
    });
    cs[2].taints.push(Taint {
        key: "dedicated".into(),
        value: "batch".into(),
        effect: TaintEffect::NoSchedule,
    });
    let mut req = request(2, Distribution::Uniform);
    let p = place(&req, &cs, None).unwrap();
    assert_eq!(layout(&p), "member4:2/1");
    let why: Vec<String> = p
        .explanation
        .clusters
        .iter()
        .map(ClusterRecord::why)
        .collect();
    assert_eq!(why[0], "filtered: not Ready");
    assert_eq!(
        why[1],
        "filtered: taint cluster.karmada.io/unreachable:NoExecute not tolerated"
    );
    req.tolerations.push(Toleration {
        key: "dedicated".into(),
        exists: false,
        value: "batch".into(),
        effect: Some(TaintEffect::NoSchedule),
    });
    let p = place(&req, &cs, None).unwrap();
    assert_eq!(p.data_in("member3") + p.data_in("member4"), 2);
    assert_eq!(p.data_in("member3"), 1);
}

#[test]
fn clusters_without_a_vip_label_are_filtered_for_mongodb() {
    let mut cs = clusters(&[10, 10]);
    cs[0].has_vip = false;
    let p = place(&request(1, Distribution::Uniform), &cs, None).unwrap();
    assert_eq!(layout(&p), "member2:1/1");
    assert_eq!(
        p.explanation.clusters[0].verdict,
        Verdict::Filtered(Filtered::NoVip)
    );
}

#[test]
fn more_clusters_than_members_picks_by_capacity_and_preference() {
    let cs = clusters(&[5, 50, 20, 40, 10]);
    let p = place(&request(3, Distribution::Uniform), &cs, None).unwrap();
    assert_eq!(layout(&p), "member2:1/1,member3:1/1,member4:1/1");
    let mut req = request(3, Distribution::Uniform);
    req.primary.names = vec!["member1".into()];
    let p = place(&req, &cs, None).unwrap();
    assert_eq!(layout(&p), "member1:1/1,member2:1/1,member4:1/1");
    let primary = p.clusters.iter().find(|c| c.priority == 2).unwrap();
    assert_eq!(primary.cluster, "member1");
    assert_eq!(
        p.explanation.clusters[2].verdict,
        Verdict::NotChosen,
        "member3 is eligible but not needed"
    );
}

#[test]
fn seven_or_more_members_have_non_voters() {
    let p = place(
        &request(9, Distribution::Uniform),
        &clusters(&[10, 10, 10]),
        None,
    )
    .unwrap();
    assert_eq!(p.voters, 7);
    assert!(p.quorum_safe());
    assert!(p.clusters.iter().all(|c| c.data == 3 && c.votes <= 3));
    let p = place(
        &request(50, Distribution::Uniform),
        &clusters(&[20, 20, 20]),
        None,
    )
    .unwrap();
    assert_eq!(p.voters, 7);
    assert_eq!(p.clusters.iter().map(|c| c.data).sum::<u32>(), 50);
    assert!(p.quorum_safe());
}

#[test]
fn scale_three_five_three_moves_only_the_scaled_members() {
    let cs = clusters(&[10, 10, 10]);
    let p3 = place(&request(3, Distribution::Uniform), &cs, None).unwrap();
    let p5 = place(
        &request(5, Distribution::Uniform),
        &cs,
        Some(&p3.as_previous()),
    )
    .unwrap();
    assert_eq!(moved(&p3, &p5), 2);
    assert!(p5.quorum_safe());
    let back = place(
        &request(3, Distribution::Uniform),
        &cs,
        Some(&p5.as_previous()),
    )
    .unwrap();
    assert_eq!(moved(&p5, &back), 2);
    assert_eq!(layout(&back), layout(&p3));
}

#[test]
fn losing_a_cluster_moves_only_its_members() {
    let cs = clusters(&[10, 10, 10, 10]);
    let p = place(&request(5, Distribution::Uniform), &cs, None).unwrap();
    let lost = p
        .clusters
        .iter()
        .max_by_key(|c| c.data)
        .unwrap()
        .cluster
        .clone();
    let lost_members = p.data_in(&lost);
    let mut after = cs.clone();
    after.iter_mut().find(|c| c.name == lost).unwrap().ready = false;
    let q = place(
        &request(5, Distribution::Uniform),
        &after,
        Some(&p.as_previous()),
    )
    .unwrap();
    assert_eq!(q.data_in(&lost), 0);
    assert_eq!(moved(&p, &q), 2 * lost_members);
    for c in &p.clusters {
        if c.cluster != lost {
            assert!(
                q.data_in(&c.cluster) >= c.data,
                "{} lost members",
                c.cluster
            );
        }
    }
    assert!(q.quorum_safe());
}

#[test]
fn replanning_the_same_input_changes_nothing() {
    let cs = clusters(&[7, 3, 9, 4]);
    for mode in [
        Distribution::Uniform,
        Distribution::Weighting,
        Distribution::Aggregated,
    ] {
        let p = place(&request(6, mode), &cs, None).unwrap();
        let q = place(&request(6, mode), &cs, Some(&p.as_previous())).unwrap();
        assert_eq!(p.clusters, q.clusters, "{mode:?}");
        let again = place(&request(6, mode), &cs, None).unwrap();
        assert_eq!(p, again);
    }
}

#[test]
fn weighting_is_proportional_to_capacity() {
    // 7 × (0.6, 0.3, 0.1) = 4.2, 2.1, 0.7 → Webster 4/2/1 (a Karmada workload: no votes).
    let mut req = request(7, Distribution::Weighting);
    req.replica_set = None;
    let p = place(&req, &clusters(&[60, 30, 10]), None).unwrap();
    assert_eq!(layout(&p), "member1:4/0,member2:2/0,member3:1/0");
    // For a replica set 4/2/1 cannot seat 7 voters at ≤ 3 per cluster; the largest safe V
    // wins over the exact proportion (rule 3 precedes rule 5): 3/3/1, 7 voters.
    let p = place(
        &request(7, Distribution::Weighting),
        &clusters(&[60, 30, 10]),
        None,
    )
    .unwrap();
    assert_eq!(layout(&p), "member1:3/3,member2:3/3,member3:1/1");
    assert!(p.quorum_safe());
}

#[test]
fn weighting_bends_for_quorum_safety() {
    // Webster alone would give 3/2/0 for 100/100/1; safety needs the third cluster.
    let p = place(
        &request(5, Distribution::Weighting),
        &clusters(&[100, 100, 1]),
        None,
    )
    .unwrap();
    assert_eq!(p.data_in("member3"), 1);
    assert!(p.quorum_safe());
}

#[test]
fn aggregated_uses_the_fewest_clusters_that_stay_safe() {
    let p = place(
        &request(9, Distribution::Aggregated),
        &clusters(&[20, 20, 20, 20]),
        None,
    )
    .unwrap();
    assert_eq!(p.clusters.len(), 3);
    let mut d: Vec<u32> = p.clusters.iter().map(|c| c.data).collect();
    d.sort_unstable();
    assert_eq!(d, vec![1, 3, 5]);
    assert!(p.quorum_safe());
    // Without a replica set (a Karmada workload) it packs into one cluster.
    let mut req = request(9, Distribution::Aggregated);
    req.replica_set = None;
    let p = place(&req, &clusters(&[20, 20, 20, 20]), None).unwrap();
    assert_eq!(p.clusters.len(), 1);
}

#[test]
fn uneven_capacity_shrinks_the_voters_to_stay_safe() {
    let p = place(
        &request(7, Distribution::Uniform),
        &clusters(&[5, 1, 1]),
        None,
    )
    .unwrap();
    assert_eq!(layout(&p), "member1:5/1,member2:1/1,member3:1/1");
    assert_eq!(p.voters, 3);
    assert!(p.quorum_safe());
    assert!(p.explanation.decisions[0].starts_with("3 voters"));
}

#[test]
fn not_enough_capacity_is_an_error() {
    let e = place(
        &request(5, Distribution::Uniform),
        &clusters(&[1, 1, 1]),
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "not enough capacity: 5 members needed, the eligible clusters can take 3"
    );
}

#[test]
fn spread_constraints_bound_the_groups() {
    let mut cs = clusters(&[10, 10, 10, 10]);
    for (c, region) in cs.iter_mut().zip(["eu", "eu", "us", "us"]) {
        c.region = Some(region.into());
    }
    let mut req = request(4, Distribution::Uniform);
    req.spread.push(SpreadRule {
        key: SpreadKey::Region,
        min_groups: 0,
        max_groups: 1,
    });
    let p = place(&req, &cs, None).unwrap();
    let regions: std::collections::BTreeSet<_> = p
        .clusters
        .iter()
        .map(|c| {
            cs.iter()
                .find(|x| x.name == c.cluster)
                .unwrap()
                .region
                .clone()
        })
        .collect();
    assert_eq!(regions.len(), 1);
    req.spread[0] = SpreadRule {
        key: SpreadKey::Cluster,
        min_groups: 5,
        max_groups: 0,
    };
    let e = place(&req, &cs, None).unwrap_err();
    assert_eq!(e.reason(), "SpreadUnsatisfiable");
}

#[test]
fn no_eligible_cluster_lists_every_reason() {
    let mut cs = clusters(&[10, 10]);
    cs[0].ready = false;
    cs[1].has_vip = false;
    let e = place(&request(1, Distribution::Uniform), &cs, None).unwrap_err();
    assert_eq!(e.reason(), "NoClusterFit");
    let why: Vec<String> = e
        .explanation()
        .unwrap()
        .clusters
        .iter()
        .map(ClusterRecord::why)
        .collect();
    assert_eq!(
        why,
        vec![
            "filtered: not Ready",
            "filtered: no vip label (member addresses need it)"
        ]
    );
}

#[test]
fn ties_break_by_object_uid_not_by_name() {
    let cs = clusters(&[10, 10, 10, 10, 10, 10]);
    let mut firsts = std::collections::BTreeSet::new();
    for i in 0..20 {
        let mut req = request(1, Distribution::Uniform);
        req.uid = format!("uid-{i}");
        let p = place(&req, &cs, None).unwrap();
        firsts.insert(p.clusters[0].cluster.clone());
    }
    assert!(firsts.len() > 2, "equal objects all went to {firsts:?}");
}
