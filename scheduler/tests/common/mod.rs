//! Builders shared by the placement tests.
#![allow(dead_code)]

use fedstate_scheduler::placement::*;

pub fn cluster(name: &str, capacity: u32) -> ClusterCandidate {
    ClusterCandidate {
        name: name.into(),
        ready: true,
        has_vip: true,
        capacity,
        region: Some(format!("region-{name}")),
        zone: Some(format!("zone-{name}")),
        provider: Some("kind".into()),
        ..Default::default()
    }
}

pub fn clusters(caps: &[u32]) -> Vec<ClusterCandidate> {
    caps.iter()
        .enumerate()
        .map(|(i, c)| cluster(&format!("member{}", i + 1), *c))
        .collect()
}

pub fn request(replicas: u32, mode: Distribution) -> PlacementRequest {
    PlacementRequest {
        uid: "0b4f6a34-7a39-4a37-9a3e-000000000001".into(),
        replicas,
        distribution: mode,
        replica_set: Some(ReplicaSetRules {
            arbiter: false,
            quorum_policy: QuorumPolicy::Preferred,
        }),
        require_vip: true,
        ..Default::default()
    }
}

pub fn with_arbiter(mut r: PlacementRequest) -> PlacementRequest {
    if let Some(rs) = r.replica_set.as_mut() {
        rs.arbiter = true;
    }
    r
}

pub fn required(mut r: PlacementRequest) -> PlacementRequest {
    if let Some(rs) = r.replica_set.as_mut() {
        rs.quorum_policy = QuorumPolicy::Required;
    }
    r
}

/// `name:data[/votes][+arbiter]` per placed cluster, sorted by name: easy to read in asserts.
pub fn layout(p: &PlacementPlan) -> String {
    let mut v: Vec<_> = p.clusters.iter().collect();
    v.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    v.iter()
        .map(|c| {
            format!(
                "{}:{}/{}{}",
                c.cluster,
                c.data,
                c.votes,
                if c.arbiter { "+arb" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Data members per cluster name.
pub fn data_map(p: &PlacementPlan) -> std::collections::BTreeMap<String, u32> {
    p.clusters
        .iter()
        .filter(|c| c.data > 0)
        .map(|c| (c.cluster.clone(), c.data))
        .collect()
}

/// Members that moved between two placements: Σ |new − old| over clusters.
pub fn moved(a: &PlacementPlan, b: &PlacementPlan) -> u32 {
    let (ma, mb) = (data_map(a), data_map(b));
    let mut names: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    names.sort();
    names.dedup();
    names
        .iter()
        .map(|n| {
            let x = ma.get(*n).copied().unwrap_or(0);
            let y = mb.get(*n).copied().unwrap_or(0);
            x.abs_diff(y)
        })
        .sum()
}
