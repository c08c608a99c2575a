//! Phase 1, gather (rule 1): check the request, filter every input cluster, and build the
//! working state of the eligible ones; refuse what cannot fit at all.

use fedstate_api::limits::MAX_MEMBERS;

use super::super::explain::{ClusterRecord, Filtered, Verdict};
use super::super::input::{
    ClusterCandidate, PlacementRequest, PreviousPlacement, SpreadKey, TaintEffect,
};
use super::super::tiebreak;
use super::{NOT_PREFERRED, PlacementError, Slot, SpreadState, Work};

/// A request the engine cannot work on at all.
pub(super) fn validate(
    req: &PlacementRequest,
    clusters: &[ClusterCandidate],
) -> Result<(), PlacementError> {
    let r = req.replicas;
    if r == 0 {
        return Err(PlacementError::InvalidRequest(
            "replicas must be at least 1".into(),
        ));
    }
    if req.replica_set.is_some() && r > u32::from(MAX_MEMBERS) {
        return Err(PlacementError::InvalidRequest(format!(
            "spec.replicaset is {r}; MongoDB allows at most {MAX_MEMBERS} members"
        )));
    }
    if clusters.len() > u32::MAX as usize {
        return Err(PlacementError::InvalidRequest("too many clusters".into()));
    }
    Ok(())
}

/// The previous members, keyed by the same (UID, name) hash the tie-breaks use, so matching
/// thousands of clusters against them costs a `u64` binary search each, not string compares.
struct PreviousMembers<'a> {
    /// (hash, name, members), sorted; one entry per name.
    members: Vec<(u64, &'a str, u32)>,
}

impl<'a> PreviousMembers<'a> {
    fn new(seed: u64, previous: Option<&'a PreviousPlacement>) -> Self {
        let mut members: Vec<(u64, &str, u32)> = previous
            .map(|p| {
                p.members
                    .iter()
                    // No replica set holds more than MAX_MEMBERS: a larger count cannot be a
                    // placement of ours (the annotation parser refuses it), and read as it is
                    // it would overflow the engine's sums and scale down one member at a time
                    // from billions.
                    .map(|(n, d)| {
                        let d = (*d).min(u32::from(MAX_MEMBERS));
                        (tiebreak::cluster_hash(seed, n), n.as_str(), d)
                    })
                    .collect()
            })
            .unwrap_or_default();
        members.sort_unstable();
        members.dedup_by(|a, b| a.1 == b.1);
        Self { members }
    }

    /// Members the cluster `name` (tie-break hash `hash`) held.
    fn of(&self, hash: u64, name: &str) -> u32 {
        if self.members.is_empty() {
            return 0;
        }
        let from = self.members.partition_point(|(h, _, _)| *h < hash);
        self.members
            .iter()
            .skip(from)
            .take_while(|(h, _, _)| *h == hash)
            .find(|(_, n, _)| *n == name)
            .map_or(0, |(_, _, d)| *d)
    }
}

/// Filter every cluster and build one slot per eligible one; `NoEligibleCluster` when none is.
pub(super) fn gather(
    req: &PlacementRequest,
    clusters: &[ClusterCandidate],
    previous: Option<&PreviousPlacement>,
) -> Result<Work, PlacementError> {
    let seed = tiebreak::seed(&req.uid);
    let prev = PreviousMembers::new(seed, previous);
    let mut work = Work {
        mode: req.distribution,
        replicas: req.replicas,
        slots: Vec::with_capacity(clusters.len()),
        spreads: req
            .spread
            .iter()
            .map(|s| SpreadState {
                min: s.min_groups,
                max: s.max_groups,
                group: Vec::with_capacity(clusters.len()),
                used: Vec::new(),
            })
            .collect(),
        order: Vec::new(),
        records: Vec::with_capacity(clusters.len()),
        total: 0,
        useful: 0,
        max_votes: u32::MAX,
        data_target: 0,
    };
    for (i, c) in clusters.iter().enumerate() {
        let hash = tiebreak::cluster_hash(seed, &c.name);
        let previous = prev.of(hash, &c.name);
        let mut record = ClusterRecord {
            index: i as u32,
            capacity: 0,
            previous,
            data: 0,
            votes: 0,
            arbiter: false,
            verdict: Verdict::NotChosen,
        };
        if let Some(why) = filter(req, c) {
            record.verdict = Verdict::Filtered(why);
            work.records.push(record);
            continue;
        }
        let cap = c.capacity.saturating_add(previous);
        record.capacity = cap;
        if cap == 0 {
            record.verdict = Verdict::NoCapacity;
        }
        for (rule, state) in req.spread.iter().zip(work.spreads.iter_mut()) {
            state.group.push(group_of(&rule.key, c));
        }
        work.slots.push(Slot {
            idx: i as u32,
            cap,
            prev: previous,
            hash,
            pref: preference(req, c),
            ..Slot::default()
        });
        work.records.push(record);
    }
    if work.slots.is_empty() {
        return Err(PlacementError::NoEligibleCluster {
            filtered: clusters.len(),
            explanation: work.explain_failure(Vec::new()),
        });
    }
    Ok(work)
}

/// The first reason a cluster cannot host members, if any (rule 1).
fn filter(req: &PlacementRequest, c: &ClusterCandidate) -> Option<Filtered> {
    if !c.ready {
        return Some(Filtered::NotReady);
    }
    for t in &c.taints {
        if t.effect != TaintEffect::PreferNoSchedule
            && !req.tolerations.iter().any(|tol| tol.tolerates(t))
        {
            return Some(Filtered::tainted(&t.key, t.effect));
        }
    }
    let f = &req.filter;
    if !f.names.is_empty() && !f.names.contains(&c.name) {
        return Some(Filtered::NotInClusterNames);
    }
    if f.exclude.contains(&c.name) {
        return Some(Filtered::Excluded);
    }
    if f.labels.as_ref().is_some_and(|m| !m.matches(&c.labels)) {
        return Some(Filtered::LabelSelectorMismatch);
    }
    if f.fields.as_ref().is_some_and(|m| {
        !m.matches(
            c.provider.as_deref(),
            c.region.as_deref(),
            c.zone.as_deref(),
        )
    }) {
        return Some(Filtered::FieldSelectorMismatch);
    }
    if req.require_vip && !c.has_vip {
        return Some(Filtered::NoVip);
    }
    for rule in &req.spread {
        let missing = match &rule.key {
            SpreadKey::Cluster => false,
            SpreadKey::Region => c.region.is_none(),
            SpreadKey::Zone => c.zone.is_none(),
            SpreadKey::Provider => c.provider.is_none(),
            SpreadKey::Label(l) => !c.labels.contains_key(l),
        };
        if missing {
            return Some(Filtered::MissingTopology {
                field: rule.key.to_string(),
            });
        }
    }
    None
}

/// The group id of a cluster under a spread rule's key.
fn group_of(key: &SpreadKey, c: &ClusterCandidate) -> u64 {
    match key {
        SpreadKey::Cluster => tiebreak::string_hash(&c.name),
        SpreadKey::Region => tiebreak::string_hash(c.region.as_deref().unwrap_or("")),
        SpreadKey::Zone => tiebreak::string_hash(c.zone.as_deref().unwrap_or("")),
        SpreadKey::Provider => tiebreak::string_hash(c.provider.as_deref().unwrap_or("")),
        SpreadKey::Label(l) => tiebreak::string_hash(c.labels.get(l).map_or("", String::as_str)),
    }
}

/// Position of the cluster in the primary preference (0 = first), or `NOT_PREFERRED`.
fn preference(req: &PlacementRequest, c: &ClusterCandidate) -> u32 {
    if let Some(p) = req.primary.names.iter().position(|n| *n == c.name) {
        return p as u32;
    }
    if req
        .primary
        .labels
        .as_ref()
        .is_some_and(|m| m.matches(&c.labels))
    {
        return req.primary.names.len() as u32;
    }
    NOT_PREFERRED
}

/// Rule 1's totals: the eligible clusters must hold R members, and every spread rule's
/// `minGroups` must find that many groups with room (and R must be able to fill them).
pub(super) fn check_feasible(
    work: &mut Work,
    req: &PlacementRequest,
) -> Result<(), PlacementError> {
    let r = work.replicas;
    let available: u64 = work.slots.iter().map(|s| u64::from(s.cap)).sum();
    if available < u64::from(r) {
        return Err(PlacementError::InsufficientCapacity {
            needed: r,
            available,
            explanation: work.explain_failure(Vec::new()),
        });
    }
    let short = req
        .spread
        .iter()
        .zip(&work.spreads)
        .find_map(|(rule, state)| {
            if state.min == 0 {
                return None;
            }
            let mut groups: Vec<u64> = work
                .slots
                .iter()
                .zip(&state.group)
                .filter(|(s, _)| s.cap > 0)
                .map(|(_, g)| *g)
                .collect();
            groups.sort_unstable();
            groups.dedup();
            let found = groups.len() as u32;
            (found < state.min || r < state.min)
                .then(|| (rule.key.to_string(), state.min, found.min(r)))
        });
    if let Some((key, min_groups, found)) = short {
        return Err(PlacementError::SpreadUnsatisfiable {
            key,
            min_groups,
            found,
            explanation: work.explain_failure(Vec::new()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::super::testing::*;
    use super::*;
    use crate::placement::input::{Distribution, SpreadRule, Taint, Toleration};

    fn verdicts(w: &Work) -> Vec<Verdict> {
        w.records.iter().map(|r| r.verdict.clone()).collect()
    }

    #[test]
    fn rule1_an_empty_or_oversized_replica_set_is_an_invalid_request() {
        let cs = clusters(&[5]);
        let e = validate(&request(0, Distribution::Uniform), &cs).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid placement request: replicas must be at least 1"
        );
        let e = validate(&request(51, Distribution::Uniform), &cs).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid placement request: spec.replicaset is 51; MongoDB allows at most 50 members"
        );
        let mut workload = request(51, Distribution::Uniform);
        workload.replica_set = None;
        assert!(
            validate(&workload, &cs).is_ok(),
            "the member limit is MongoDB's"
        );
    }

    #[test]
    fn rule1_each_filtered_cluster_gets_its_first_reason_and_no_slot() {
        let mut cs = clusters(&[5, 5, 5, 5, 5]);
        cs[0].ready = false;
        cs[0].has_vip = false;
        cs[1].taints.push(Taint {
            key: "cluster.karmada.io/unreachable".into(),
            value: String::new(),
            effect: TaintEffect::NoExecute,
        });
        cs[2].has_vip = false;
        cs[3].taints.push(Taint {
            key: "soft".into(),
            value: String::new(),
            effect: TaintEffect::PreferNoSchedule,
        });
        let mut req = request(3, Distribution::Uniform);
        req.filter.exclude = vec!["m5".into()];
        let w = gather(&req, &cs, None).unwrap();
        assert_eq!(
            verdicts(&w),
            vec![
                Verdict::Filtered(Filtered::NotReady),
                Verdict::Filtered(Filtered::tainted(
                    "cluster.karmada.io/unreachable",
                    TaintEffect::NoExecute
                )),
                Verdict::Filtered(Filtered::NoVip),
                Verdict::NotChosen,
                Verdict::Filtered(Filtered::Excluded),
            ]
        );
        assert_eq!(w.slots.iter().map(|s| s.idx).collect::<Vec<_>>(), vec![3]);
        // A tolerated taint does not filter.
        req.tolerations.push(Toleration {
            key: "cluster.karmada.io/unreachable".into(),
            exists: true,
            ..Default::default()
        });
        let w = gather(&req, &cs, None).unwrap();
        assert_eq!(
            w.slots.iter().map(|s| s.idx).collect::<Vec<_>>(),
            vec![1, 3]
        );
    }

    #[test]
    fn rule1_a_spread_rule_filters_clusters_without_its_topology_field() {
        let mut cs = clusters(&[5, 5]);
        cs[1].region = None;
        let mut req = request(1, Distribution::Uniform);
        req.spread.push(SpreadRule {
            key: SpreadKey::Region,
            min_groups: 0,
            max_groups: 0,
        });
        let w = gather(&req, &cs, None).unwrap();
        assert_eq!(
            w.records[1].verdict,
            Verdict::Filtered(Filtered::MissingTopology {
                field: "region".into()
            })
        );
        assert_eq!(w.spreads[0].group.len(), 1, "one group id per slot");
    }

    #[test]
    fn rule1_previous_members_count_as_room_of_their_cluster() {
        let cs = clusters(&[2, 0, 4]);
        let prev = previous(&[("m2", 3), ("m3", 1), ("gone", 2)]);
        let w = gather(&request(3, Distribution::Uniform), &cs, Some(&prev)).unwrap();
        let caps: Vec<(u32, u32)> = w.slots.iter().map(|s| (s.cap, s.prev)).collect();
        assert_eq!(caps, vec![(2, 0), (3, 3), (5, 1)]);
        assert_eq!(w.records[1].capacity, 3);
        assert_eq!(w.records[1].verdict, Verdict::NotChosen);
    }

    #[test]
    fn rule1_a_cluster_without_room_is_eligible_but_says_so() {
        let w = gather(&request(1, Distribution::Uniform), &clusters(&[0, 1]), None).unwrap();
        assert_eq!(w.records[0].verdict, Verdict::NoCapacity);
        assert_eq!(w.slots.len(), 2, "it may still host the arbiter");
    }

    #[test]
    fn rule1_no_eligible_cluster_is_an_error_with_every_reason() {
        let mut cs = clusters(&[5, 5]);
        cs[0].ready = false;
        cs[1].has_vip = false;
        let e = gather(&request(1, Distribution::Uniform), &cs, None).unwrap_err();
        let PlacementError::NoEligibleCluster {
            filtered,
            explanation,
        } = e
        else {
            panic!("expected NoEligibleCluster");
        };
        assert_eq!(filtered, 2);
        assert_eq!(explanation.clusters.len(), 2);
    }

    #[test]
    fn rule1_too_little_room_or_too_few_groups_is_refused_before_placing() {
        let req = request(5, Distribution::Uniform);
        let mut w = work(&req, &clusters(&[2, 2]), None);
        let e = check_feasible(&mut w, &req).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not enough capacity: 5 members needed, the eligible clusters can take 4"
        );
        let mut req = request(3, Distribution::Uniform);
        req.spread.push(SpreadRule {
            key: SpreadKey::Cluster,
            min_groups: 3,
            max_groups: 0,
        });
        // Three clusters, but one has no room: two groups with room.
        let mut w = work(&req, &clusters(&[5, 5, 0]), None);
        let e = check_feasible(&mut w, &req).unwrap_err();
        assert_eq!(e.reason(), "SpreadUnsatisfiable");
        assert_eq!(
            e.to_string(),
            "spread constraint by cluster needs at least 3 groups with room, 2 available"
        );
        let mut w = work(&req, &clusters(&[5, 5, 1]), None);
        assert!(check_feasible(&mut w, &req).is_ok());
    }

    #[test]
    fn rule6_the_primary_preference_is_a_position_names_first_then_labels() {
        let mut cs = clusters(&[1, 1, 1]);
        cs[2].labels.insert("tier".into(), "gold".into());
        let mut req = request(3, Distribution::Uniform);
        req.primary.names = vec!["m2".into()];
        req.primary.labels = Some(
            crate::placement::selector::LabelMatcher::compile(
                "primary",
                &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some([("tier".to_owned(), "gold".to_owned())].into()),
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let w = gather(&req, &cs, None).unwrap();
        let prefs: Vec<u32> = w.slots.iter().map(|s| s.pref).collect();
        assert_eq!(prefs, vec![NOT_PREFERRED, 0, 1]);
    }
}
