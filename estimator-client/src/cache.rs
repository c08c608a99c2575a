//! The capacity cache: the plugins' answers per (cluster, member shape), with a freshness bound.
//!
//! Readers never wait: a fresh entry is returned as is; a stale one (older than
//! [`CacheConfig::fresh_for`], or marked stale by a Cluster change or a failed plugin) is still
//! returned while one background refresh runs; an entry older than [`CacheConfig::max_stale`] is
//! not served. The policy is [`classify`], a pure function.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
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
    /// The clock that ages entries.
    pub clock: CacheClock,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            fresh_for: Duration::from_secs(10),
            max_stale: Duration::from_secs(120),
            clock: CacheClock::default(),
        }
    }
}

/// The clock that ages cache entries. Reading the precise monotonic clock was a quarter of a
/// cache hit; freshness bounds are seconds, so a clock good to a few milliseconds will do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheClock {
    /// The kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`: read in a few ns from
    /// the vDSO, resolution one scheduler tick, a few ms); the precise clock where there is
    /// none.
    #[default]
    Coarse,
    /// tokio's clock: follows paused and advanced time in tests.
    Tokio,
}

/// A reading of a [`CacheClock`]: time since that clock's origin. Compare only readings of
/// the same clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(Duration);

impl CacheClock {
    pub fn now(self) -> Stamp {
        match self {
            Self::Coarse => coarse_now(),
            Self::Tokio => Stamp(
                Instant::now()
                    .into_std()
                    .saturating_duration_since(origin()),
            ),
        }
    }
}

impl Stamp {
    /// How long after `earlier` this reading is (zero if it is not after it).
    pub fn since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// The origin of [`CacheClock::Tokio`] readings (and of the coarse fallback).
fn origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn coarse_now() -> Stamp {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Stamp(Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    ))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn coarse_now() -> Stamp {
    Stamp(std::time::Instant::now().saturating_duration_since(origin()))
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
    /// When the answers came, on the cache's [`CacheClock`].
    pub fetched_at: Stamp,
    stale: AtomicBool,
    refreshing: AtomicBool,
}

impl Slot {
    pub fn new(answers: Arc<[PluginAnswer]>, fetched_at: Stamp, stale: bool) -> Self {
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

/// What [`CapacityCache::lookup`] found for a (cluster, shape).
#[derive(Clone, Debug)]
pub enum Lookup {
    /// No entry.
    Missing,
    /// An entry too old to serve ([`Freshness::Expired`]).
    Expired,
    /// A servable entry: [`Freshness::Fresh`] or [`Freshness::Stale`]. `refresh` is true for the
    /// one lookup that claimed the background refresh of a stale entry.
    Servable {
        answers: Arc<[PluginAnswer]>,
        age: Duration,
        freshness: Freshness,
        refresh: bool,
    },
}

/// The map key. Lookups borrow it as `dyn SlotKeyView` so that a `&str` cluster name needs no
/// allocation or reference count.
#[derive(Debug)]
struct SlotKey {
    cluster: Arc<str>,
    shape: ShapeId,
}

trait SlotKeyView {
    fn cluster(&self) -> &str;
    fn shape(&self) -> ShapeId;
}

impl SlotKeyView for SlotKey {
    fn cluster(&self) -> &str {
        &self.cluster
    }
    fn shape(&self) -> ShapeId {
        self.shape
    }
}

impl SlotKeyView for (&str, ShapeId) {
    fn cluster(&self) -> &str {
        self.0
    }
    fn shape(&self) -> ShapeId {
        self.1
    }
}

impl<'a> Borrow<dyn SlotKeyView + 'a> for SlotKey {
    fn borrow(&self) -> &(dyn SlotKeyView + 'a) {
        self
    }
}

// `SlotKey` and `dyn SlotKeyView` must hash and compare alike (the `Borrow` contract).
impl Hash for dyn SlotKeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.cluster().hash(state);
        self.shape().hash(state);
    }
}

impl PartialEq for dyn SlotKeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.shape() == other.shape() && self.cluster() == other.cluster()
    }
}

impl Eq for dyn SlotKeyView + '_ {}

impl Hash for SlotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn SlotKeyView).hash(state);
    }
}

impl PartialEq for SlotKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn SlotKeyView) == (other as &dyn SlotKeyView)
    }
}

impl Eq for SlotKey {}

/// `(cluster, shape) → slot`, one level: the hot lookup is one hash of the pair and one shard
/// read lock. Cluster-wide changes (stale, removed) walk the map; they are rare (a Cluster's
/// status changes about every 10 s) and off the scheduling path.
#[derive(Debug, Default)]
pub struct CapacityCache {
    // Cluster names come from the Karmada apiserver, not from untrusted clients: a fast
    // (still randomly seeded) hasher instead of SipHash.
    slots: DashMap<SlotKey, Slot, foldhash::fast::RandomState>,
}

impl CapacityCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry for (cluster, shape) and what may be done with it under `config`. No
    /// allocation; one hash lookup, one read of `config.clock`; claims the background refresh
    /// of a stale entry.
    pub fn lookup(&self, cluster: &str, shape: ShapeId, config: &CacheConfig) -> Lookup {
        let Some(slot) = self.slots.get(&(cluster, shape) as &dyn SlotKeyView) else {
            return Lookup::Missing;
        };
        let age = config.clock.now().since(slot.fetched_at);
        let freshness = classify(age, slot.is_marked_stale(), config);
        let refresh = match freshness {
            Freshness::Fresh => false,
            Freshness::Stale => slot.claim_refresh(),
            Freshness::Expired => return Lookup::Expired,
        };
        Lookup::Servable {
            answers: slot.answers.clone(),
            age,
            freshness,
            refresh,
        }
    }

    pub fn insert(&self, cluster: &Arc<str>, shape: ShapeId, slot: Slot) {
        self.slots.insert(
            SlotKey {
                cluster: cluster.clone(),
                shape,
            },
            slot,
        );
    }

    /// The cluster changed: its entries are served stale and refreshed in the background.
    pub fn mark_cluster_stale(&self, cluster: &str) {
        for s in self.slots.iter() {
            if &*s.key().cluster == cluster {
                s.stale.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Forget the cluster (deleted, or answers known to be wrong).
    pub fn remove_cluster(&self, cluster: &str) {
        self.slots.retain(|k, _| &*k.cluster != cluster);
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
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
            clock: CacheClock::Coarse,
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

    fn freshness(l: &Lookup) -> Option<(Freshness, bool)> {
        match l {
            Lookup::Servable {
                freshness, refresh, ..
            } => Some((*freshness, *refresh)),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cluster_changes_mark_only_that_cluster_and_one_refresh_is_claimed() {
        let cache = CapacityCache::new();
        let c = CacheConfig {
            clock: CacheClock::Tokio,
            ..CacheConfig::default()
        };
        let now = c.clock.now();
        let (a, b, ab): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "ab".into());
        cache.insert(&a, ShapeId(1), Slot::new(Arc::from([]), now, false));
        cache.insert(&a, ShapeId(2), Slot::new(Arc::from([]), now, false));
        cache.insert(&b, ShapeId(1), Slot::new(Arc::from([]), now, false));
        cache.insert(&ab, ShapeId(1), Slot::new(Arc::from([]), now, false));
        cache.mark_cluster_stale("a");
        // The first lookup of the stale entry claims the refresh, later ones do not.
        assert_eq!(
            freshness(&cache.lookup("a", ShapeId(1), &c)),
            Some((Freshness::Stale, true))
        );
        assert_eq!(
            freshness(&cache.lookup("a", ShapeId(1), &c)),
            Some((Freshness::Stale, false))
        );
        assert_eq!(
            freshness(&cache.lookup("a", ShapeId(2), &c)),
            Some((Freshness::Stale, true))
        );
        assert_eq!(
            freshness(&cache.lookup("b", ShapeId(1), &c)),
            Some((Freshness::Fresh, false))
        );
        assert_eq!(
            freshness(&cache.lookup("ab", ShapeId(1), &c)),
            Some((Freshness::Fresh, false))
        );
        assert!(matches!(cache.lookup("a", ShapeId(3), &c), Lookup::Missing));
        cache.remove_cluster("a");
        assert!(matches!(cache.lookup("a", ShapeId(1), &c), Lookup::Missing));
        assert_eq!(cache.len(), 2);
        // Too old to serve.
        tokio::time::advance(c.max_stale + Duration::from_secs(1)).await;
        assert!(matches!(cache.lookup("b", ShapeId(1), &c), Lookup::Expired));
    }

    #[test]
    fn a_newer_answer_replaces_the_entry() {
        let cache = CapacityCache::new();
        let a: Arc<str> = "a".into();
        let now = CacheClock::default().now();
        cache.insert(&a, ShapeId(1), Slot::new(Arc::from([]), now, true));
        let answers: Arc<[PluginAnswer]> = Arc::from([PluginAnswer {
            plugin: "p",
            estimate: crate::plugin::Estimate::Replicas(4),
            counts_hosted_members: false,
        }]);
        cache.insert(&a, ShapeId(1), Slot::new(answers, now, false));
        assert_eq!(cache.len(), 1);
        match cache.lookup("a", ShapeId(1), &CacheConfig::default()) {
            Lookup::Servable {
                answers, freshness, ..
            } => {
                assert_eq!(freshness, Freshness::Fresh);
                assert_eq!(answers.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_coarse_clock_ages_entries_in_real_time() {
        let c = CacheConfig {
            fresh_for: Duration::from_millis(20),
            ..CacheConfig::default()
        };
        assert_eq!(c.clock, CacheClock::Coarse);
        let cache = CapacityCache::new();
        let a: Arc<str> = "a".into();
        cache.insert(
            &a,
            ShapeId(1),
            Slot::new(Arc::from([]), c.clock.now(), false),
        );
        // Sleeping 10x the freshness bound (and many coarse ticks): the entry must have aged.
        std::thread::sleep(Duration::from_millis(200));
        match cache.lookup("a", ShapeId(1), &c) {
            Lookup::Servable { freshness, age, .. } => {
                assert_eq!(freshness, Freshness::Stale);
                assert!(age >= Duration::from_millis(100), "{age:?}");
            }
            other => panic!("{other:?}"),
        }
        // And never reads earlier than a reading taken before it.
        let before = c.clock.now();
        assert!(c.clock.now() >= before);
    }
}
