//! The capacity cache: the plugins' answers per (cluster, member shape), with a freshness bound.
//!
//! Readers never wait: a fresh entry is returned as is; a stale one (older than
//! [`CacheConfig::fresh_for`], or marked stale by a Cluster change or a failed plugin) is still
//! returned while one background refresh runs; an entry older than [`CacheConfig::max_stale`] is
//! not served. The policy is [`classify`], a pure function.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::plugin::PluginAnswer;
use crate::shape::ShapeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Answers younger than this are served without asking again (Karmada refreshes
    /// `resourceSummary` every 10 s).
    pub fresh_for: Duration,
    /// Answers older than this are not served at all.
    pub max_stale: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            fresh_for: Duration::from_secs(10),
            max_stale: Duration::from_secs(120),
        }
    }
}

/// What a lookup may do with an entry of this age.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it and refresh in the background.
    Stale,
    /// Do not serve it: ask the plugins now.
    Expired,
}

/// The cache policy.
pub fn classify(age: Duration, marked_stale: bool, config: &CacheConfig) -> Freshness {
    if age > config.max_stale {
        Freshness::Expired
    } else if marked_stale || age > config.fresh_for {
        Freshness::Stale
    } else {
        Freshness::Fresh
    }
}

/// One cached answer set.
#[derive(Debug)]
pub struct Slot {
    pub answers: Arc<[PluginAnswer]>,
    pub fetched_at: Instant,
    stale: AtomicBool,
    refreshing: AtomicBool,
}

impl Slot {
    pub fn new(answers: Arc<[PluginAnswer]>, fetched_at: Instant, stale: bool) -> Self {
        Self {
            answers,
            fetched_at,
            stale: AtomicBool::new(stale),
            refreshing: AtomicBool::new(false),
        }
    }

    pub fn is_marked_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Claims the single background refresh of this slot; `false` when one is running.
    pub fn claim_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }
}

type ClusterSlots = DashMap<ShapeId, Arc<Slot>>;

/// `cluster → shape → slot`: two levels so that a Cluster change touches one map.
#[derive(Debug, Default)]
pub struct CapacityCache {
    clusters: DashMap<Arc<str>, Arc<ClusterSlots>>,
}

impl CapacityCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot for (cluster, shape), if any. No allocation, two hash lookups.
    pub fn get(&self, cluster: &str, shape: ShapeId) -> Option<Arc<Slot>> {
        let slots = self.clusters.get(cluster)?;
        slots.get(&shape).map(|s| s.value().clone())
    }

    pub fn insert(&self, cluster: &Arc<str>, shape: ShapeId, slot: Slot) {
        let slots = self
            .clusters
            .entry(cluster.clone())
            .or_default()
            .value()
            .clone();
        slots.insert(shape, Arc::new(slot));
    }

    /// The cluster changed: its entries are served stale and refreshed in the background.
    pub fn mark_cluster_stale(&self, cluster: &str) {
        if let Some(slots) = self.clusters.get(cluster) {
            for s in slots.iter() {
                s.stale.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Forget the cluster (deleted, or answers known to be wrong).
    pub fn remove_cluster(&self, cluster: &str) {
        self.clusters.remove(cluster);
    }

    pub fn len(&self) -> usize {
        self.clusters.iter().map(|c| c.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn policy_serves_fresh_refreshes_stale_and_drops_expired() {
        let c = CacheConfig {
            fresh_for: Duration::from_secs(10),
            max_stale: Duration::from_secs(60),
        };
        assert_eq!(
            classify(Duration::from_secs(3), false, &c),
            Freshness::Fresh
        );
        assert_eq!(classify(Duration::from_secs(3), true, &c), Freshness::Stale);
        assert_eq!(
            classify(Duration::from_secs(11), false, &c),
            Freshness::Stale
        );
        assert_eq!(
            classify(Duration::from_secs(61), false, &c),
            Freshness::Expired
        );
        assert_eq!(
            classify(Duration::from_secs(61), true, &c),
            Freshness::Expired
        );
    }

    #[test]
    fn cluster_changes_mark_only_that_cluster_and_one_refresh_is_claimed() {
        let cache = CapacityCache::new();
        let now = Instant::now();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        cache.insert(&a, ShapeId(1), Slot::new(Arc::from([]), now, false));
        cache.insert(&b, ShapeId(1), Slot::new(Arc::from([]), now, false));
        cache.mark_cluster_stale("a");
        assert!(cache.get("a", ShapeId(1)).unwrap().is_marked_stale());
        assert!(!cache.get("b", ShapeId(1)).unwrap().is_marked_stale());
        assert!(cache.get("a", ShapeId(2)).is_none());
        let slot = cache.get("a", ShapeId(1)).unwrap();
        assert!(slot.claim_refresh());
        assert!(!slot.claim_refresh());
        cache.remove_cluster("a");
        assert!(cache.get("a", ShapeId(1)).is_none());
        assert_eq!(cache.len(), 1);
    }
}
