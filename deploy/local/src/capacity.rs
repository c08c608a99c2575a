//! The fake (kwok) nodes each member cluster gets, and their capacity.
//!
//! Tests compute exact expected replica counts from these numbers, so they are constants of the
//! test bed, not tunables. Member `i` (1-based) has two Ready nodes:
//!
//! | node                | cpu       | memory        | pods | label `fedstate.io/node-index` |
//! |---------------------|-----------|---------------|------|--------------------------------|
//! | `member<i>-node-0`  | `2*i`     | `4*i` GiB     | 110  | `"0"`                          |
//! | `member<i>-node-1`  | 8         | 16 GiB        | 110  | `"1"`                          |
//!
//! So node-0 capacity differs between members (2, 4, 6 CPUs for members 1..3) while node-1 is the
//! same everywhere. A workload pinned to node-0 (`nodeSelector: fedstate.io/node-index: "0"`) fits
//! `2*i` one-CPU replicas on member `i`: only a per-node estimator (karmada-scheduler-estimator)
//! sees that; the cluster-wide resource summary sees `2*i + 8` CPUs.

/// Label carrying a node's index within its member (`"0"` or `"1"`).
pub const NODE_INDEX_LABEL: &str = "fedstate.io/node-index";

/// Annotation kwok selects the nodes it manages by (`--manage-nodes-with-annotation-selector`).
pub const KWOK_NODE_ANNOTATION: &str = "kwok.x-k8s.io/node";

/// Pods each fake node admits.
pub const PODS_PER_NODE: u32 = 110;

/// Name of the storage class every member has (also the default class).
pub const STORAGE_CLASS: &str = "fedstate-local";

/// Pre-created PersistentVolumes per member; each PVC of the class binds one of them.
pub const PERSISTENT_VOLUMES_PER_MEMBER: u32 = 32;

/// Size of each pre-created PersistentVolume, in GiB (PVCs may ask for up to this much).
pub const PERSISTENT_VOLUME_GIB: u32 = 100;

/// One fake node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeShape {
    pub name: String,
    /// Index within the member, the value of [`NODE_INDEX_LABEL`].
    pub index: u32,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub pods: u32,
}

const GIB: u64 = 1024 * 1024 * 1024;

/// The nodes of member `member` (1-based).
pub fn member_nodes(member: u32) -> Vec<NodeShape> {
    let m = u64::from(member);
    vec![
        NodeShape {
            name: format!("member{member}-node-0"),
            index: 0,
            cpu_millis: 2_000 * m,
            memory_bytes: 4 * GIB * m,
            pods: PODS_PER_NODE,
        },
        NodeShape {
            name: format!("member{member}-node-1"),
            index: 1,
            cpu_millis: 8_000,
            memory_bytes: 16 * GIB,
            pods: PODS_PER_NODE,
        },
    ]
}

/// Total CPU (millicores) of member `member`.
pub fn member_cpu_millis(member: u32) -> u64 {
    member_nodes(member).iter().map(|n| n.cpu_millis).sum()
}

/// How many replicas requesting `cpu_millis` each fit on the nodes of `member` whose index is
/// `node_index` (what the member's estimator answers for a workload pinned to that node index).
pub fn replicas_fitting(member: u32, node_index: u32, cpu_millis: u64) -> u64 {
    member_nodes(member)
        .iter()
        .filter(|n| n.index == node_index)
        .map(|n| (n.cpu_millis / cpu_millis).min(u64::from(n.pods)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_zero_capacity_grows_with_the_member_index() {
        assert_eq!(replicas_fitting(1, 0, 1000), 2);
        assert_eq!(replicas_fitting(2, 0, 1000), 4);
        assert_eq!(replicas_fitting(3, 0, 1000), 6);
        assert_eq!(member_cpu_millis(3), 14_000);
    }
}
