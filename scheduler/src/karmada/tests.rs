//! One test per karmada-scheduler rule, named after it. Expected answers are the ones Karmada
//! v1.18.2 gives; the e2e suite `karmada_parity` checks the same rules against karmada-scheduler
//! itself.

#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::collections::HashMap;

use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBindingSpec;
use fedstate_api::karmada::binding_status::{ResourceBindingStatus, TargetCluster};
use serde_json::{Value, json};

use super::triggers::{Trigger, cluster_change_matters, placement_changed, trigger};
use super::webster::{TieOrder, fnv32a};
use super::*;

/// A Ready member serving Deployments, with optional extra fields merged into it.
fn cluster(name: &str, extra: Value) -> Cluster {
    let mut c = json!({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "ok", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "apiEnablements": [
                {"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]},
                {"groupVersion": "v1", "resources": [{"name": "configmaps", "kind": "ConfigMap"}]}
            ]
        }
    });
    merge(&mut c, extra);
    serde_json::from_value(c).unwrap()
}

/// Overlays `extra` onto `base` (objects merged key by key, anything else replaced).
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

fn clusters(names: &[&str]) -> Vec<Cluster> {
    names.iter().map(|n| cluster(n, json!({}))).collect()
}

/// A Deployment binding with `replicas` and the given placement.
fn spec(replicas: i32, placement: Value) -> ResourceBindingSpec {
    serde_json::from_value(json!({
        "resource": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "ns", "name": "web", "uid": "uid-0"},
        "replicas": replicas,
        "placement": placement,
    }))
    .unwrap()
}

fn divided_dynamic() -> Value {
    json!({"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                                  "weightPreference": {"dynamicWeight": "AvailableReplicas"}}})
}

fn aggregated() -> Value {
    json!({"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}})
}

fn duplicated() -> Value {
    json!({"replicaScheduling": {"replicaSchedulingType": "Duplicated"}})
}

fn with_current(mut s: ResourceBindingSpec, current: &[(&str, i32)]) -> ResourceBindingSpec {
    s.clusters = current
        .iter()
        .map(|(n, r)| TargetCluster {
            name: (*n).into(),
            replicas: *r,
        })
        .collect();
    s
}

/// Runs the pipeline with fixed capacities (a missing cluster has no estimate).
fn run(s: &ResourceBindingSpec, cs: &[Cluster], caps: &[(&str, i32)]) -> Outcome {
    run_with(s, &ResourceBindingStatus::default(), cs, caps)
}

fn run_with(
    s: &ResourceBindingSpec,
    st: &ResourceBindingStatus,
    cs: &[Cluster],
    caps: &[(&str, i32)],
) -> Outcome {
    let caps: HashMap<&str, i32> = caps.iter().copied().collect();
    let refs: Vec<&Cluster> = cs.iter().collect();
    schedule(s, st, &refs, &|n| caps.get(n).copied())
}

/// The placement as a sorted `name:replicas` list.
fn placed(o: &Outcome) -> Vec<(String, i32)> {
    let mut v: Vec<(String, i32)> = o
        .clusters
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.name, t.replicas))
        .collect();
    v.sort();
    v
}

fn pairs(p: &[(&str, i32)]) -> Vec<(String, i32)> {
    p.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
}

#[test]
fn non_workloads_go_to_every_feasible_cluster_with_zero_replicas_and_ask_no_estimator() {
    let mut s = spec(0, divided_dynamic());
    s.resource.kind = "ConfigMap".into();
    s.resource.api_version = "v1".into();
    let asked = Cell::new(0);
    let cs = clusters(&["m1", "m2", "m3"]);
    let refs: Vec<&Cluster> = cs.iter().collect();
    let o = schedule(&s, &Default::default(), &refs, &|_| {
        asked.set(asked.get() + 1);
        Some(0)
    });
    assert_eq!(placed(&o), pairs(&[("m1", 0), ("m2", 0), ("m3", 0)]));
    assert_eq!(
        asked.get(),
        0,
        "no estimator is asked for a kind without replicas"
    );
    assert!(clusters_to_estimate(&s, &Default::default(), &refs).is_empty());
}

#[test]
fn duplicated_gives_every_cluster_all_replicas_regardless_of_capacity() {
    let s = spec(4, duplicated());
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 1), ("m2", 0)]);
    assert_eq!(placed(&o), pairs(&[("m1", 4), ("m2", 4)]));
}

#[test]
fn a_kind_the_member_does_not_serve_is_not_placed_there() {
    let mut s = spec(0, duplicated());
    s.resource.api_version = "example.io/v1".into();
    s.resource.kind = "Widget".into();
    let mut cs = clusters(&["m1", "m2"]);
    cs[1] = cluster(
        "m2",
        json!({"status": {"apiEnablements": [{"groupVersion": "example.io/v1", "resources": [{"name": "widgets", "kind": "Widget"}]}]}}),
    );
    let o = run(&s, &cs, &[]);
    assert_eq!(placed(&o), pairs(&[("m2", 0)]));
}

#[test]
fn cluster_affinities_fall_back_in_order_and_name_the_group() {
    let s = spec(
        3,
        json!({
            "clusterAffinities": [
                {"affinityName": "primary", "clusterNames": ["m1"]},
                {"affinityName": "backup", "clusterNames": ["m2", "m3"]}
            ],
            "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}
        }),
    );
    // m1 has room for 1 only: the primary group cannot take 3, the backup can.
    let o = run(
        &s,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 1), ("m2", 5), ("m3", 1)],
    );
    assert_eq!(o.affinity_name.as_deref(), Some("backup"));
    assert_eq!(placed(&o), pairs(&[("m2", 3)]));
    // With room in m1 the primary group is used.
    let o = run(&s, &clusters(&["m1", "m2", "m3"]), &[("m1", 5)]);
    assert_eq!(o.affinity_name.as_deref(), Some("primary"));
    assert_eq!(placed(&o), pairs(&[("m1", 3)]));
    // Once on the backup group, scheduling starts from it (Karmada does not go back by itself).
    let st = ResourceBindingStatus {
        scheduler_observed_affinity_name: Some("backup".into()),
        ..Default::default()
    };
    let o = run_with(
        &s,
        &st,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 5), ("m2", 5)],
    );
    assert_eq!(o.affinity_name.as_deref(), Some("backup"));
}

#[test]
fn cluster_affinities_that_all_fail_report_the_first_failure() {
    let s = spec(
        3,
        json!({
            "clusterAffinities": [
                {"affinityName": "a", "clusterNames": ["m9"]},
                {"affinityName": "b", "clusterNames": ["m1"]}
            ],
            "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}
        }),
    );
    let o = run(&s, &clusters(&["m1"]), &[("m1", 1)]);
    // The first group fits no cluster: NoClusterFit, and the placement is cleared.
    assert_eq!(o.result.as_ref().unwrap_err().reason(), "NoClusterFit");
    assert_eq!(o.clusters, Some(vec![]));
    assert_eq!(o.affinity_name, None);
}

#[test]
fn static_weights_take_the_maximum_weight_of_the_matching_rules() {
    let s = spec(
        9,
        json!({"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
        "weightPreference": {"staticWeightList": [
            {"targetCluster": {"clusterNames": ["m1", "m2"]}, "weight": 1},
            {"targetCluster": {"clusterNames": ["m2"]}, "weight": 2}
        ]}}}),
    );
    let o = run(&s, &clusters(&["m1", "m2"]), &[]);
    assert_eq!(placed(&o), pairs(&[("m1", 3), ("m2", 6)]));
}

#[test]
fn static_weights_ignore_capacity_and_drop_unmatched_clusters() {
    let s = spec(
        6,
        json!({"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
        "weightPreference": {"staticWeightList": [
            {"targetCluster": {"clusterNames": ["m1"]}, "weight": 1},
            {"targetCluster": {"clusterNames": ["m2"]}, "weight": 2}
        ]}}}),
    );
    let o = run(
        &s,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 0), ("m2", 1), ("m3", 100)],
    );
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m2", 4)]));
}

#[test]
fn static_weights_are_redivided_when_the_weights_change() {
    let list = |w1: i64, w2: i64| {
        json!({"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
        "weightPreference": {"staticWeightList": [
            {"targetCluster": {"clusterNames": ["m1"]}, "weight": w1},
            {"targetCluster": {"clusterNames": ["m2"]}, "weight": w2}
        ]}}})
    };
    let before = with_current(spec(6, list(1, 2)), &[("m1", 2), ("m2", 4)]);
    let mut after = before.clone();
    after.placement = serde_json::from_value(list(1, 1)).unwrap();
    let applied = serde_json::to_string(&before.placement).unwrap();
    let cs = clusters(&["m1", "m2"]);
    let refs: Vec<&Cluster> = cs.iter().collect();
    assert_eq!(
        trigger(&after, &Default::default(), Some(&applied), &refs),
        Some(Trigger::PlacementChanged)
    );
    assert_eq!(
        placed(&run(&after, &cs, &[])),
        pairs(&[("m1", 3), ("m2", 3)])
    );
}

#[test]
fn static_weights_without_a_weight_preference_weigh_every_cluster_one() {
    let s = spec(
        4,
        json!({"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted"}}),
    );
    let o = run(&s, &clusters(&["m1", "m2"]), &[]);
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m2", 2)]));
}

#[test]
fn spread_constraints_are_ignored_under_static_weights() {
    let s = spec(
        4,
        json!({
            "spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 1, "minGroups": 1}],
            "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                "weightPreference": {"staticWeightList": [{"targetCluster": {}, "weight": 1}]}}
        }),
    );
    let o = run(&s, &clusters(&["m1", "m2"]), &[]);
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m2", 2)]));
}

#[test]
fn dynamic_weights_divide_by_available_replicas() {
    let s = spec(6, divided_dynamic());
    let o = run(
        &s,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 30), ("m2", 20), ("m3", 10)],
    );
    assert_eq!(placed(&o), pairs(&[("m1", 3), ("m2", 2), ("m3", 1)]));
}

#[test]
fn dynamic_weight_scale_up_divides_only_the_difference() {
    // 2/2 in force; 4 more over available 1 and 3: m1 +1, m2 +3.
    let s = with_current(spec(8, divided_dynamic()), &[("m1", 2), ("m2", 2)]);
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 1), ("m2", 3)]);
    assert_eq!(placed(&o), pairs(&[("m1", 3), ("m2", 5)]));
}

#[test]
fn dynamic_weight_scale_down_is_proportional_to_the_current_split() {
    let s = with_current(spec(4, divided_dynamic()), &[("m1", 6), ("m2", 2)]);
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 100), ("m2", 100)]);
    assert_eq!(placed(&o), pairs(&[("m1", 3), ("m2", 1)]));
}

#[test]
fn dynamic_weight_unchanged_replicas_keep_the_split() {
    let s = with_current(spec(4, divided_dynamic()), &[("m1", 1), ("m2", 3)]);
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 100), ("m2", 0)]);
    assert_eq!(placed(&o), pairs(&[("m1", 1), ("m2", 3)]));
}

#[test]
fn aggregated_divides_over_the_shortest_prefix_by_available_replicas() {
    // Sorted by available: m2 (4), m3 (3), m1 (1); 6 replicas need m2 and m3 (4 + 3 ≥ 6),
    // divided 4:3 by Webster.
    let s = spec(6, aggregated());
    let o = run(
        &s,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 1), ("m2", 4), ("m3", 3)],
    );
    assert_eq!(placed(&o), pairs(&[("m2", 3), ("m3", 3)]));
    // One cluster that can take them all takes them all.
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 10), ("m2", 20)]);
    assert_eq!(placed(&o), pairs(&[("m2", 6)]));
}

#[test]
fn aggregated_scale_up_keeps_the_clusters_in_use_first() {
    let s = with_current(spec(5, aggregated()), &[("m1", 2)]);
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 3), ("m2", 100)]);
    assert_eq!(placed(&o), pairs(&[("m1", 5)]));
}

#[test]
fn not_enough_room_is_unschedulable_and_keeps_the_placement() {
    let s = with_current(spec(10, divided_dynamic()), &[("m1", 2)]);
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 1), ("m2", 2)]);
    let e = o.result.unwrap_err();
    assert_eq!(e.reason(), "Unschedulable");
    assert_eq!(
        e.to_string(),
        "failed to assign replicas: failed to scale up: Clusters available replicas 3 are not enough to schedule."
    );
    assert_eq!(o.clusters, None, "the placement in force stays");
}

#[test]
fn not_ready_clusters_are_not_filtered_only_the_taint_keeps_new_work_away() {
    let not_ready = cluster(
        "m2",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "x", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
    );
    let s = spec(2, duplicated());
    let o = run(&s, &[cluster("m1", json!({})), not_ready.clone()], &[]);
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m2", 2)]));
    let tainted = cluster(
        "m2",
        json!({"spec": {"taints": [{"key": "cluster.karmada.io/not-ready", "effect": "NoSchedule"}]}}),
    );
    let o = run(&s, &[cluster("m1", json!({})), tainted], &[]);
    assert_eq!(placed(&o), pairs(&[("m1", 2)]));
}

#[test]
fn no_schedule_taints_apply_to_new_targets_only() {
    let tainted = cluster(
        "m2",
        json!({"spec": {"taints": [{"key": "maintenance", "value": "yes", "effect": "NoSchedule"}]}}),
    );
    let cs = [cluster("m1", json!({})), tainted];
    let fresh = spec(2, duplicated());
    assert_eq!(placed(&run(&fresh, &cs, &[])), pairs(&[("m1", 2)]));
    let kept = with_current(spec(2, duplicated()), &[("m1", 2), ("m2", 2)]);
    assert_eq!(
        placed(&run(&kept, &cs, &[])),
        pairs(&[("m1", 2), ("m2", 2)])
    );
    // A tolerated taint is no obstacle.
    let mut tolerant = fresh.clone();
    tolerant.placement.as_mut().unwrap().cluster_tolerations =
        vec![serde_json::from_value(json!({"key": "maintenance", "operator": "Exists"})).unwrap()];
    assert_eq!(
        placed(&run(&tolerant, &cs, &[])),
        pairs(&[("m1", 2), ("m2", 2)])
    );
}

#[test]
fn clusters_being_deleted_are_skipped() {
    let deleting = cluster(
        "m2",
        json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"]}}),
    );
    let s = with_current(spec(2, duplicated()), &[("m1", 2), ("m2", 2)]);
    let cs = [cluster("m1", json!({})), deleting];
    assert_eq!(placed(&run(&s, &cs, &[])), pairs(&[("m1", 2)]));
    let refs: Vec<&Cluster> = cs.iter().collect();
    let mut divided = with_current(spec(4, divided_dynamic()), &[("m1", 2), ("m2", 2)]);
    divided.placement.as_mut().unwrap().cluster_affinity = None;
    let applied = serde_json::to_string(&divided.placement).unwrap();
    assert_eq!(
        trigger(&divided, &Default::default(), Some(&applied), &refs),
        Some(Trigger::TargetTerminating)
    );
}

#[test]
fn evicted_clusters_are_not_chosen_again() {
    let mut s = spec(4, divided_dynamic());
    s.graceful_eviction_tasks = vec![
        serde_json::from_value(json!({"fromCluster": "m1", "reason": "TaintUntolerated"})).unwrap(),
    ];
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 100), ("m2", 100)]);
    assert_eq!(placed(&o), pairs(&[("m2", 4)]));
}

#[test]
fn a_requested_reschedule_recomputes_from_scratch() {
    let mut s = with_current(spec(4, divided_dynamic()), &[("m1", 4)]);
    s.reschedule_triggered_at =
        Some(serde_json::from_value(json!("2026-01-02T00:00:00Z")).unwrap());
    let st: ResourceBindingStatus =
        serde_json::from_value(json!({"lastScheduledTime": "2026-01-01T00:00:00Z"})).unwrap();
    let cs = clusters(&["m1", "m2"]);
    let refs: Vec<&Cluster> = cs.iter().collect();
    let applied = serde_json::to_string(&s.placement).unwrap();
    assert_eq!(
        trigger(&s, &st, Some(&applied), &refs),
        Some(Trigger::RescheduleRequested)
    );
    // Afresh, m1 counts its 4 as available (0 + 4), m2 its 4: an even split, not "keep m1".
    let o = run_with(&s, &st, &cs, &[("m1", 0), ("m2", 4)]);
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m2", 2)]));
}

#[test]
fn no_cluster_fit_clears_the_clusters_with_karmadas_message() {
    let s = with_current(
        spec(2, json!({"clusterAffinity": {"clusterNames": ["m9"]}})),
        &[("m1", 2)],
    );
    let o = run(&s, &clusters(&["m1", "m2"]), &[]);
    assert_eq!(o.clusters, Some(vec![]));
    let e = o.result.unwrap_err();
    assert_eq!(e.reason(), "NoClusterFit");
    assert_eq!(
        e.to_string(),
        "0/2 clusters are available: 2 cluster(s) did not match the placement cluster affinity constraint."
    );
}

#[test]
fn spread_by_cluster_picks_exactly_min_of_n_and_max_groups() {
    let s = spec(
        3,
        json!({"spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 2, "minGroups": 1}],
               "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}),
    );
    let o = run(
        &s,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 1), ("m2", 9), ("m3", 5)],
    );
    assert_eq!(placed(&o), pairs(&[("m2", 3), ("m3", 3)]));
}

#[test]
fn spread_by_cluster_swaps_in_room_for_divided_replicas() {
    // The two best-ranked (m1: 100 as a current target, m2) cannot take 10; m3 can.
    let s = with_current(
        spec(
            10,
            json!({"spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 2, "minGroups": 1}],
                   "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}}),
        ),
        &[("m1", 1)],
    );
    let o = run(
        &s,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 1), ("m2", 2), ("m3", 20)],
    );
    assert!(o.result.is_ok(), "{o:?}");
    let names: Vec<String> = placed(&o).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"m3".to_owned()), "{o:?}");
}

#[test]
fn replicas_below_min_groups_are_accepted() {
    let s = spec(
        1,
        json!({"spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 3, "minGroups": 3}],
               "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                                     "weightPreference": {"dynamicWeight": "AvailableReplicas"}}}),
    );
    let o = run(
        &s,
        &clusters(&["m1", "m2", "m3"]),
        &[("m1", 5), ("m2", 5), ("m3", 5)],
    );
    assert!(o.result.is_ok(), "{o:?}");
    assert_eq!(placed(&o).iter().map(|(_, r)| r).sum::<i32>(), 1);
}

#[test]
fn too_few_clusters_for_min_groups_is_a_scheduler_error() {
    let s = spec(
        2,
        json!({"spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 3, "minGroups": 3}],
               "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}),
    );
    let o = run(&s, &clusters(&["m1", "m2"]), &[]);
    assert_eq!(o.result.unwrap_err().reason(), "SchedulerError");
    assert_eq!(o.clusters, None);
}

#[test]
fn spread_by_region_picks_regions_then_their_best_clusters() {
    let region = |n: &str, r: &str| cluster(n, json!({"spec": {"region": r}}));
    let cs = [
        region("a1", "east"),
        region("a2", "east"),
        region("b1", "west"),
        region("c1", "north"),
        cluster("x", json!({})),
    ];
    let s = spec(
        4,
        json!({"spreadConstraints": [
                  {"spreadByField": "region", "maxGroups": 2, "minGroups": 2},
                  {"spreadByField": "cluster", "maxGroups": 3, "minGroups": 1}],
               "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}),
    );
    let o = run(&s, &cs, &[("a1", 10), ("a2", 9), ("b1", 10), ("c1", 1)]);
    // A cluster without a region is filtered; two regions, each with its best cluster, then
    // the best remaining cluster up to 3.
    let names: Vec<String> = placed(&o).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 3, "{o:?}");
    assert!(!names.contains(&"x".to_owned()));
}

#[test]
fn the_template_uid_parity_breaks_webster_ties() {
    let even = (0..100)
        .map(|i| format!("uid-{i}"))
        .find(|u| fnv32a(u.as_bytes()) & 1 == 0)
        .unwrap();
    let odd = (0..100)
        .map(|i| format!("uid-{i}"))
        .find(|u| fnv32a(u.as_bytes()) & 1 == 1)
        .unwrap();
    assert_eq!(TieOrder::for_uid(&even), TieOrder::Ascending);
    let mut s = spec(1, divided_dynamic());
    s.resource.uid = Some(even);
    let cs = clusters(&["m1", "m2", "m3"]);
    let caps = [("m1", 5), ("m2", 5), ("m3", 5)];
    assert_eq!(placed(&run(&s, &cs, &caps)), pairs(&[("m1", 1)]));
    s.resource.uid = Some(odd);
    assert_eq!(placed(&run(&s, &cs, &caps)), pairs(&[("m3", 1)]));
}

#[test]
fn triggers_follow_karmada() {
    let cs = clusters(&["m1", "m2"]);
    let refs: Vec<&Cluster> = cs.iter().collect();
    let st = ResourceBindingStatus::default();
    // Never applied.
    let s = with_current(spec(4, divided_dynamic()), &[("m1", 4)]);
    assert_eq!(
        trigger(&s, &st, None, &refs),
        Some(Trigger::PlacementChanged)
    );
    let applied = serde_json::to_string(&s.placement).unwrap();
    assert_eq!(trigger(&s, &st, Some(&applied), &refs), None);
    // Scaled.
    let mut scaled = s.clone();
    scaled.replicas = 6;
    assert_eq!(
        trigger(&scaled, &st, Some(&applied), &refs),
        Some(Trigger::ReplicasChanged)
    );
    // Duplicated and non-workloads follow the clusters on every pass.
    let dup = with_current(spec(2, duplicated()), &[("m1", 2)]);
    let applied_dup = serde_json::to_string(&dup.placement).unwrap();
    assert_eq!(
        trigger(&dup, &st, Some(&applied_dup), &refs),
        Some(Trigger::FollowsClusters)
    );
    // An unreadable annotation is taken as unchanged, as Karmada takes it.
    assert!(!placement_changed(
        s.placement.as_ref().unwrap(),
        Some("{not json"),
        ""
    ));
}

#[test]
fn a_cluster_gaining_the_selected_label_wakes_the_binding() {
    let s = spec(
        2,
        json!({"clusterAffinity": {"labelSelector": {"matchLabels": {"env": "prod"}}},
               "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}),
    );
    let before = cluster("m3", json!({}));
    let after = cluster("m3", json!({"metadata": {"labels": {"env": "prod"}}}));
    assert!(cluster_change_matters(
        &s,
        &Default::default(),
        None,
        &before,
        &after
    ));
    let other = cluster("m3", json!({"metadata": {"labels": {"env": "dev"}}}));
    assert!(!cluster_change_matters(
        &s,
        &Default::default(),
        None,
        &before,
        &other
    ));
    // A status-only update (a heartbeat) never matters.
    assert!(!cluster_change_matters(
        &s,
        &Default::default(),
        None,
        &after,
        &after
    ));
    // And the next pass gives the new cluster its copy.
    let cs = [
        cluster("m1", json!({"metadata": {"labels": {"env": "prod"}}})),
        after,
    ];
    let o = run(&with_current(s, &[("m1", 2)]), &cs, &[]);
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m3", 2)]));
}

#[test]
fn a_scale_to_zero_of_a_divided_workload_leaves_no_cluster() {
    let mut s = with_current(spec(0, divided_dynamic()), &[("m1", 2)]);
    s.replica_requirements = Some(Default::default());
    let o = run(&s, &clusters(&["m1", "m2"]), &[("m1", 5)]);
    assert!(o.result.is_ok());
    assert_eq!(o.clusters, Some(vec![]));
}

#[test]
fn the_fit_message_counts_each_reason() {
    let taint = cluster(
        "m2",
        json!({"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}),
    );
    let s = spec(
        1,
        json!({"clusterAffinity": {"clusterNames": ["m2", "m3"]}}),
    );
    let o = run(
        &s,
        &[
            cluster("m1", json!({})),
            taint,
            cluster(
                "m3",
                json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
            ),
        ],
        &[],
    );
    assert_eq!(
        o.result.unwrap_err().to_string(),
        "0/3 clusters are available: 1 cluster(s) did not match the placement cluster affinity constraint, 1 cluster(s) had untolerated taint {k:NoExecute}, 1 cluster(s) had untolerated taint {k:NoSchedule}."
    );
}

#[test]
fn zone_spread_is_our_extension_where_karmada_refuses() {
    let zoned = |n: &str, z: &str| cluster(n, json!({"spec": {"zones": [z]}}));
    let cs = [zoned("m1", "z1"), zoned("m2", "z1"), zoned("m3", "z2")];
    let s = spec(
        2,
        json!({"spreadConstraints": [{"spreadByField": "zone", "maxGroups": 2, "minGroups": 2}],
               "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}),
    );
    let o = run(&s, &cs, &[("m1", 9), ("m2", 1), ("m3", 5)]);
    // Both zones, every cluster in them.
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m2", 2), ("m3", 2)]));
    // One zone at most: the zone of the best cluster.
    let mut one = s.clone();
    one.placement.as_mut().unwrap().spread_constraints[0].max_groups = Some(1);
    one.placement.as_mut().unwrap().spread_constraints[0].min_groups = Some(1);
    let o = run(&one, &cs, &[("m1", 9), ("m2", 1), ("m3", 5)]);
    assert_eq!(placed(&o), pairs(&[("m1", 2), ("m2", 2)]));
    // Divided replicas take zones until they have room.
    let div = spec(
        10,
        json!({"spreadConstraints": [{"spreadByField": "zone", "maxGroups": 2, "minGroups": 1}],
               "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}}),
    );
    let o = run(&div, &cs, &[("m1", 3), ("m2", 3), ("m3", 9)]);
    assert!(o.result.is_ok(), "{o:?}");
    assert_eq!(placed(&o).iter().map(|(_, r)| r).sum::<i32>(), 10);
}
