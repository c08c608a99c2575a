//! [`CapacityEstimator`]: what the scheduler calls. It asks the plugin chain for every cluster
//! whose cached answers are missing or expired — all clusters at once, each plugin of each cluster
//! bounded by a per-cluster deadline inside one overall budget — and merges the answers with the
//! ledger. A failing or hung plugin affects only its cluster (Karmada drops every accurate answer
//! when one cluster fails, issue #6815).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cache::{CacheConfig, CapacityCache, Freshness, Lookup, Slot};
use crate::ledger::AssumedLedger;
use crate::metrics::{CACHE_ENTRY_AGE, CACHE_HITS, CACHE_MISSES, PLUGIN_FAILURES};
use crate::plugin::{Capacity, CapacityPlugin, ClusterRef, Estimate, PluginAnswer, merge};
use crate::shape::{MemberShape, ShapeId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EstimatorConfig {
    /// How long one cluster's plugins may take.
    pub per_cluster_deadline: Duration,
    /// How long one fan-out may take in all (Karmada: 3 s for everything).
    pub budget: Duration,
    pub cache: CacheConfig,
    /// How long a placement stays in the ledger unless released.
    pub ledger_ttl: Duration,
}

impl Default for EstimatorConfig {
    fn default() -> Self {
        Self {
            per_cluster_deadline: Duration::from_secs(1),
            budget: Duration::from_secs(3),
            cache: CacheConfig::default(),
            ledger_ttl: Duration::from_secs(60),
        }
    }
}

/// Where a capacity came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A fresh cache entry: no RPC.
    Cache,
    /// A stale cache entry, refreshing in the background.
    StaleCache,
    /// Asked the plugins during this call.
    Fetched,
}

/// One cluster's capacity for one shape, with the answers behind it (for explanations).
#[derive(Clone, Debug)]
pub struct ClusterCapacity {
    pub cluster: Arc<str>,
    pub capacity: Capacity,
    pub answers: Arc<[PluginAnswer]>,
    pub source: Source,
    pub age: Duration,
}

/// Per-request inputs: members of this object already in each cluster, and the object's ledger
/// key (so its own assumed members are not subtracted twice).
#[derive(Clone, Debug, Default)]
pub struct CapacityQuery<'a> {
    pub object: Option<&'a str>,
    pub hosted: HashMap<&'a str, u32>,
}

/// The plugin chain, its cache and the ledger. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CapacityEstimator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    plugins: Arc<[Arc<dyn CapacityPlugin>]>,
    cache: CapacityCache,
    ledger: AssumedLedger,
    config: EstimatorConfig,
    metrics: CacheMetrics,
    /// The asks running now, one per (cluster, shape): concurrent misses of the same pair wait
    /// for the same answers instead of each asking (after a release dropped a cluster's
    /// answers, 32 decisions in flight asked 32 times).
    in_flight: DashMap<(Arc<str>, ShapeId), InFlight, foldhash::fast::RandomState>,
    next_ask: AtomicU64,
}

/// One ask of a cluster's plugins, shared by every miss that came while it runs. `None`: the
/// task ended without answers (it panicked).
struct InFlight {
    id: u64,
    answers: Shared<BoxFuture<'static, Option<Arc<[PluginAnswer]>>>>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight").field("id", &self.id).finish()
    }
}

/// The cache metric handles, registered once: the lookup is too hot to resolve a metric key
/// per call. They bind to the recorder installed when the estimator is created.
#[derive(Debug)]
struct CacheMetrics {
    hits: metrics::Counter,
    missing: metrics::Counter,
    stale: metrics::Counter,
    expired: metrics::Counter,
    entry_age: metrics::Histogram,
}

impl CacheMetrics {
    fn register() -> Self {
        Self {
            hits: metrics::counter!(CACHE_HITS),
            missing: metrics::counter!(CACHE_MISSES, "reason" => "missing"),
            stale: metrics::counter!(CACHE_MISSES, "reason" => "stale"),
            expired: metrics::counter!(CACHE_MISSES, "reason" => "expired"),
            entry_age: metrics::histogram!(CACHE_ENTRY_AGE),
        }
    }
}

/// Asks every plugin about one cluster, concurrently, each bounded by `deadline`.
pub async fn ask_plugins(
    plugins: &[Arc<dyn CapacityPlugin>],
    cluster: &ClusterRef,
    shape: &MemberShape,
    deadline: Instant,
) -> Vec<PluginAnswer> {
    let asks = plugins.iter().map(|p| async move {
        let estimate = match tokio::time::timeout_at(deadline, p.estimate(cluster, shape, deadline))
            .await
        {
            Ok(e) => e,
            Err(_) => Estimate::Failed(format!(
                "plugin {} for cluster {} missed its deadline",
                p.name(),
                cluster.name
            )),
        };
        if let Estimate::Failed(reason) = &estimate {
            tracing::debug!(cluster = %cluster.name, plugin = p.name(), %reason, "capacity plugin failed");
            metrics::counter!(PLUGIN_FAILURES, "cluster" => cluster.name.to_string(), "plugin" => p.name())
                .increment(1);
        }
        PluginAnswer {
            plugin: p.name(),
            estimate,
            counts_hosted_members: p.counts_hosted_members(),
        }
    });
    futures::future::join_all(asks).await
}

impl CapacityEstimator {
    /// Install the metrics recorder first: the cache metric handles are registered here.
    pub fn new(plugins: Vec<Arc<dyn CapacityPlugin>>, config: EstimatorConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                plugins: plugins.into(),
                cache: CapacityCache::new(),
                ledger: AssumedLedger::new(config.ledger_ttl),
                config,
                metrics: CacheMetrics::register(),
                in_flight: DashMap::default(),
                next_ask: AtomicU64::new(0),
            }),
        }
    }

    pub fn ledger(&self) -> &AssumedLedger {
        &self.inner.ledger
    }

    pub fn cache(&self) -> &CapacityCache {
        &self.inner.cache
    }

    /// The hot path: the capacity from a servable cache entry, or `None` (then call
    /// [`Self::capacities`]). A stale entry is returned and refreshed in the background.
    pub fn cached(
        &self,
        cluster: &ClusterRef,
        shape: &MemberShape,
        query: &CapacityQuery<'_>,
    ) -> Option<ClusterCapacity> {
        let inner = &*self.inner;
        let (answers, age, source) =
            match inner
                .cache
                .lookup(&cluster.name, shape.id(), &inner.config.cache)
            {
                Lookup::Missing => {
                    inner.metrics.missing.increment(1);
                    return None;
                }
                Lookup::Expired => {
                    inner.metrics.expired.increment(1);
                    return None;
                }
                Lookup::Servable {
                    answers,
                    age,
                    freshness: Freshness::Fresh,
                    ..
                } => {
                    inner.metrics.hits.increment(1);
                    (answers, age, Source::Cache)
                }
                Lookup::Servable {
                    answers,
                    age,
                    refresh,
                    ..
                } => {
                    inner.metrics.stale.increment(1);
                    if refresh {
                        self.spawn_refresh(cluster.clone(), shape.clone());
                    }
                    (answers, age, Source::StaleCache)
                }
            };
        inner.metrics.entry_age.record(age.as_secs_f64());
        Some(self.finish(cluster, shape, query, answers, source, age))
    }

    /// Capacities of `clusters` for `shape`, in the same order. Clusters with servable cache
    /// entries cost no RPC; the others are asked concurrently, each within the per-cluster
    /// deadline and all within the budget.
    pub async fn capacities(
        &self,
        clusters: &[ClusterRef],
        shape: &MemberShape,
        query: &CapacityQuery<'_>,
    ) -> Vec<ClusterCapacity> {
        let mut out: Vec<Option<ClusterCapacity>> = clusters
            .iter()
            .map(|c| self.cached(c, shape, query))
            .collect();
        let budget_end = Instant::now() + self.inner.config.budget;
        let mut tasks = JoinSet::new();
        for (i, (c, cached)) in clusters.iter().zip(&out).enumerate() {
            if cached.is_some() {
                continue;
            }
            let (this, c, shape) = (self.clone(), c.clone(), shape.clone());
            tasks.spawn(async move {
                let answers = this.fetch_once(&c, &shape, budget_end).await;
                (i, c, answers)
            });
        }
        // Every task ends by its deadline (≤ budget_end); the outer bound is a safety net.
        let grace = budget_end + Duration::from_millis(50);
        while let Ok(Some(joined)) = tokio::time::timeout_at(grace, tasks.join_next()).await {
            if let Ok((i, c, answers)) = joined
                && let Some(slot) = out.get_mut(i)
            {
                *slot =
                    Some(self.finish(&c, shape, query, answers, Source::Fetched, Duration::ZERO));
            }
        }
        tasks.abort_all();
        out.into_iter()
            .zip(clusters)
            .map(|(c, cluster)| {
                c.unwrap_or_else(|| {
                    let answers: Arc<[PluginAnswer]> = Arc::from([PluginAnswer {
                        plugin: "chain",
                        estimate: Estimate::Failed("estimation budget exhausted".into()),
                        counts_hosted_members: false,
                    }]);
                    self.finish(
                        cluster,
                        shape,
                        query,
                        answers,
                        Source::Fetched,
                        Duration::ZERO,
                    )
                })
            })
            .collect()
    }

    /// Asks the plugins for one cluster and caches the answers. Answers with a failure are
    /// cached marked stale: served at once next time, and retried in the background.
    async fn fetch(
        &self,
        cluster: &ClusterRef,
        shape: &MemberShape,
        budget_end: Instant,
    ) -> Arc<[PluginAnswer]> {
        let deadline = (Instant::now() + self.inner.config.per_cluster_deadline).min(budget_end);
        let answers: Arc<[PluginAnswer]> =
            ask_plugins(&self.inner.plugins, cluster, shape, deadline)
                .await
                .into();
        let failed = answers
            .iter()
            .any(|a| matches!(a.estimate, Estimate::Failed(_)));
        self.inner.cache.insert(
            &cluster.name,
            shape.id(),
            Slot::new(answers.clone(), self.inner.config.cache.clock.now(), failed),
        );
        answers
    }

    /// [`Self::fetch`], unless an ask of the same cluster and shape is running: then its
    /// answers. The ask runs as its own task, so it fills the cache even if the decision that
    /// started it stops waiting.
    async fn fetch_once(
        &self,
        cluster: &ClusterRef,
        shape: &MemberShape,
        budget_end: Instant,
    ) -> Arc<[PluginAnswer]> {
        let key = (cluster.name.clone(), shape.id());
        let answers = match self.inner.in_flight.entry(key.clone()) {
            Entry::Occupied(running) => running.get().answers.clone(),
            Entry::Vacant(vacant) => {
                // An ask that ended since our cache lookup has filled the cache.
                if let Lookup::Servable {
                    answers, refresh, ..
                } = self
                    .inner
                    .cache
                    .lookup(&cluster.name, shape.id(), &self.inner.config.cache)
                {
                    if refresh {
                        self.spawn_refresh(cluster.clone(), shape.clone());
                    }
                    return answers;
                }
                let id = self.inner.next_ask.fetch_add(1, Ordering::Relaxed);
                let (this, c, s) = (self.clone(), cluster.clone(), shape.clone());
                let task = tokio::spawn(async move {
                    let answers = this.fetch(&c, &s, budget_end).await;
                    // Only our own entry: a release may have replaced it meanwhile.
                    this.inner.in_flight.remove_if(&key, |_, f| f.id == id);
                    answers
                });
                let answers = task.map(Result::ok).boxed().shared();
                vacant.insert(InFlight {
                    id,
                    answers: answers.clone(),
                });
                answers
            }
        };
        answers.await.unwrap_or_else(|| {
            Arc::from([PluginAnswer {
                plugin: "chain",
                estimate: Estimate::Failed("the estimation task failed".into()),
                counts_hosted_members: false,
            }])
        })
    }

    fn spawn_refresh(&self, cluster: ClusterRef, shape: MemberShape) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        handle.spawn(async move {
            let budget_end = Instant::now() + this.inner.config.budget;
            this.fetch(&cluster, &shape, budget_end).await;
        });
    }

    fn finish(
        &self,
        cluster: &ClusterRef,
        shape: &MemberShape,
        query: &CapacityQuery<'_>,
        answers: Arc<[PluginAnswer]>,
        source: Source,
        age: Duration,
    ) -> ClusterCapacity {
        let hosted = if query.hosted.is_empty() {
            0
        } else {
            query.hosted.get(&*cluster.name).copied().unwrap_or(0)
        };
        let assumed = self
            .inner
            .ledger
            .assumed_on(&cluster.name, shape, query.object);
        ClusterCapacity {
            cluster: cluster.name.clone(),
            capacity: merge(&answers, hosted, assumed),
            answers,
            source,
            age,
        }
    }

    /// The Cluster object changed (status, taints, re-join): refresh its answers in the
    /// background; they are still served meanwhile.
    pub fn cluster_changed(&self, cluster: &str) {
        self.inner.cache.mark_cluster_stale(cluster);
    }

    /// The Cluster is gone.
    pub fn cluster_deleted(&self, cluster: &str) {
        self.forget(cluster);
    }

    /// Drops the cluster's answers and its running asks (started before what made their
    /// answers wrong: the next miss asks anew).
    fn forget(&self, cluster: &str) {
        self.inner.cache.remove_cluster(cluster);
        self.inner.in_flight.retain(|(c, _), _| &**c != cluster);
    }

    /// We placed `members` members of `object` on `cluster`: subtract them until released. The
    /// cached answers stay fresh: the ledger accounts for the placement, and the estimators'
    /// view has not changed yet (it changes when the members are created, which the Cluster's
    /// status and the cache's freshness bound bring in), so a decision costs no estimator call.
    pub fn assume(&self, object: &str, cluster: &str, shape: &MemberShape, members: u32) {
        self.inner.ledger.assume(object, cluster, shape, members);
    }

    /// `object`'s members on `cluster` are visible to the estimators now, or it left the
    /// cluster: stop subtracting them there.
    pub fn release_cluster(&self, object: &str, cluster: &str) {
        self.inner.ledger.release_cluster(object, cluster);
    }

    /// `object`'s members are visible to the estimators now (or it was deleted): stop
    /// subtracting them, and drop the answers of its clusters that predate them (the next
    /// decision there asks again). Not marked stale: a stale answer is served once more, and
    /// an estimator that went away meanwhile would then keep its last answer in use.
    pub fn release(&self, object: &str) {
        for cluster in self.inner.ledger.release(object) {
            self.forget(&cluster);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fedstate_api::karmada::Cluster;
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Answers from a script: per cluster a value, `None` = hang forever.
    #[derive(Debug, Default)]
    struct Scripted {
        answers: HashMap<String, Option<u32>>,
        calls: AtomicU32,
    }

    impl CapacityPlugin for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn estimate<'a>(
            &'a self,
            cluster: &'a ClusterRef,
            _shape: &'a MemberShape,
            _deadline: Instant,
        ) -> BoxFuture<'a, Estimate> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let a = self.answers.get(&*cluster.name).copied();
            Box::pin(async move {
                match a {
                    Some(Some(n)) => Estimate::Replicas(n),
                    Some(None) => futures::future::pending().await,
                    None => Estimate::NoOpinion,
                }
            })
        }
    }

    #[derive(Debug)]
    struct Fallback(u32);
    impl CapacityPlugin for Fallback {
        fn name(&self) -> &'static str {
            "fallback"
        }
        fn estimate<'a>(
            &'a self,
            _c: &'a ClusterRef,
            _s: &'a MemberShape,
            _d: Instant,
        ) -> BoxFuture<'a, Estimate> {
            Box::pin(std::future::ready(Estimate::Replicas(self.0)))
        }
    }

    fn clusters(names: &[&str]) -> Vec<ClusterRef> {
        names
            .iter()
            .map(|n| ClusterRef::new(Cluster::new(n, Default::default())))
            .collect()
    }

    fn estimator(scripted: Arc<Scripted>, config: EstimatorConfig) -> CapacityEstimator {
        CapacityEstimator::new(vec![scripted, Arc::new(Fallback(100))], config)
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_cluster_gets_the_fallback_and_the_others_their_answers() {
        let scripted = Arc::new(Scripted {
            answers: [
                ("a".into(), Some(3)),
                ("hung".into(), None),
                ("c".into(), Some(5)),
            ]
            .into(),
            ..Scripted::default()
        });
        let est = estimator(
            scripted,
            EstimatorConfig {
                per_cluster_deadline: Duration::from_millis(300),
                ..EstimatorConfig::default()
            },
        );
        let cs = clusters(&["a", "hung", "c"]);
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let started = Instant::now();
        let caps = est.capacities(&cs, &shape, &CapacityQuery::default()).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        let got: Vec<_> = caps.iter().map(|c| c.capacity.replicas).collect();
        assert_eq!(got, [Some(3), Some(100), Some(5)]);
        assert_eq!(caps[1].capacity.decided_by, Some("fallback"));
        assert!(matches!(caps[1].answers[0].estimate, Estimate::Failed(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_answers_cost_no_plugin_call_and_stale_ones_refresh_in_background() {
        let scripted = Arc::new(Scripted {
            answers: [("a".into(), Some(3))].into(),
            ..Scripted::default()
        });
        // tokio's clock, so that advancing paused time ages the entries.
        let config = EstimatorConfig {
            cache: CacheConfig {
                clock: crate::cache::CacheClock::Tokio,
                ..CacheConfig::default()
            },
            ..EstimatorConfig::default()
        };
        let est = estimator(scripted.clone(), config);
        let cs = clusters(&["a"]);
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let q = CapacityQuery::default();
        est.capacities(&cs, &shape, &q).await;
        assert_eq!(scripted.calls.load(Ordering::Relaxed), 1);
        let hit = est.cached(&cs[0], &shape, &q).unwrap();
        assert_eq!(
            (hit.source, hit.capacity.replicas),
            (Source::Cache, Some(3))
        );
        est.capacities(&cs, &shape, &q).await;
        assert_eq!(scripted.calls.load(Ordering::Relaxed), 1);
        // A Cluster change: served stale once, refreshed in the background.
        est.cluster_changed("a");
        let stale = est.cached(&cs[0], &shape, &q).unwrap();
        assert_eq!(stale.source, Source::StaleCache);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(scripted.calls.load(Ordering::Relaxed), 2);
        assert_eq!(
            est.cached(&cs[0], &shape, &q).unwrap().source,
            Source::Cache
        );
        // Past max_stale, nothing is served.
        tokio::time::advance(Duration::from_secs(1000)).await;
        assert!(est.cached(&cs[0], &shape, &q).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_placements_are_subtracted_until_released() {
        let scripted = Arc::new(Scripted {
            answers: [("a".into(), Some(3))].into(),
            ..Scripted::default()
        });
        let est = estimator(scripted, EstimatorConfig::default());
        let cs = clusters(&["a"]);
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let q = CapacityQuery::default();
        est.capacities(&cs, &shape, &q).await;
        est.assume("db/first", "a", &shape, 2);
        let after = est.capacities(&cs, &shape, &q).await;
        assert_eq!(after[0].capacity.replicas, Some(1));
        assert_eq!(after[0].capacity.assumed, 2);
        // The object itself, re-planned, does not see its own members subtracted.
        let own = CapacityQuery {
            object: Some("db/first"),
            ..CapacityQuery::default()
        };
        assert_eq!(
            est.capacities(&cs, &shape, &own).await[0].capacity.replicas,
            Some(3)
        );
        est.release("db/first");
        assert!(est.ledger().is_empty());
        assert_eq!(
            est.capacities(&cs, &shape, &q).await[0].capacity.replicas,
            Some(3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn placing_costs_no_estimator_call_while_capacity_is_unchanged() {
        let scripted = Arc::new(Scripted {
            answers: [("a".into(), Some(50)), ("b".into(), Some(50))].into(),
            ..Scripted::default()
        });
        let est = estimator(scripted.clone(), EstimatorConfig::default());
        let cs = clusters(&["a", "b"]);
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let q = CapacityQuery::default();
        est.capacities(&cs, &shape, &q).await;
        assert_eq!(scripted.calls.load(Ordering::Relaxed), 2);
        // A hundred decisions, each placing on both clusters: the ledger subtracts, nobody asks.
        for i in 0..100 {
            let caps = est.capacities(&cs, &shape, &q).await;
            assert!(caps.iter().all(|c| c.source == Source::Cache));
            est.assume(&format!("ns/b{i}"), "a", &shape, 1);
            est.assume(&format!("ns/b{i}"), "b", &shape, 1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            scripted.calls.load(Ordering::Relaxed),
            2,
            "no estimator call per decision"
        );
        let caps = est.capacities(&cs, &shape, &q).await;
        assert_eq!(caps[0].capacity.replicas, Some(0), "50 − 100 assumed");
        // A deletion drops the answers of the clusters it held: the next decision asks, once.
        est.release("ns/b0");
        let caps = est.capacities(&cs, &shape, &q).await;
        assert!(caps.iter().all(|c| c.source == Source::Fetched));
        est.capacities(&cs, &shape, &q).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(scripted.calls.load(Ordering::Relaxed), 4);
    }

    /// Answers every cluster after 50 ms, counting the asks.
    #[derive(Debug, Default)]
    struct Slow {
        calls: AtomicU32,
    }

    impl CapacityPlugin for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn estimate<'a>(
            &'a self,
            _c: &'a ClusterRef,
            _s: &'a MemberShape,
            _d: Instant,
        ) -> BoxFuture<'a, Estimate> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Estimate::Replicas(7)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_of_a_cluster_and_shape_ask_once() {
        let slow = Arc::new(Slow::default());
        let est = CapacityEstimator::new(vec![slow.clone()], EstimatorConfig::default());
        let cs = clusters(&["a", "b", "c"]);
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let q = CapacityQuery::default();
        let decide = || async {
            let caps = est.capacities(&cs, &shape, &q).await;
            assert!(caps.iter().all(|c| c.capacity.replicas == Some(7)));
        };
        // 32 decisions in flight, all missing the same three clusters: three asks.
        futures::future::join_all((0..32).map(|_| decide())).await;
        assert_eq!(slow.calls.load(Ordering::Relaxed), 3);
        assert_eq!(est.inner.in_flight.len(), 0, "finished asks are forgotten");
        // A release drops the answers of the object's clusters: the next 32 ask once again.
        est.assume("ns/x", "a", &shape, 1);
        est.release("ns/x");
        futures::future::join_all((0..32).map(|_| decide())).await;
        assert_eq!(slow.calls.load(Ordering::Relaxed), 4);
        // Another shape is another ask.
        let other = MemberShape::from_requests([("cpu", "2")]);
        let (x, y) = futures::join!(
            est.capacities(&cs[..1], &other, &q),
            est.capacities(&cs[..1], &other, &q)
        );
        assert_eq!(
            (x[0].capacity.replicas, y[0].capacity.replicas),
            (Some(7), Some(7))
        );
        assert_eq!(slow.calls.load(Ordering::Relaxed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_release_while_an_ask_runs_makes_the_next_miss_ask_anew() {
        let slow = Arc::new(Slow::default());
        let est = CapacityEstimator::new(vec![slow.clone()], EstimatorConfig::default());
        let cs = clusters(&["a"]);
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let q = CapacityQuery::default();
        let first = est.capacities(&cs, &shape, &q);
        let after_release = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            est.assume("ns/x", "a", &shape, 1);
            est.release("ns/x");
            est.capacities(&cs, &shape, &q).await
        };
        futures::join!(first, after_release);
        assert_eq!(slow.calls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_the_whole_fan_out() {
        let scripted = Arc::new(Scripted {
            answers: (0..50).map(|i| (format!("c{i}"), None)).collect(),
            ..Scripted::default()
        });
        let est = estimator(
            scripted,
            EstimatorConfig {
                per_cluster_deadline: Duration::from_secs(30),
                budget: Duration::from_millis(300),
                ..EstimatorConfig::default()
            },
        );
        let names: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
        let cs = clusters(&names.iter().map(String::as_str).collect::<Vec<_>>());
        let shape = MemberShape::from_requests([("cpu", "1")]);
        let started = Instant::now();
        let caps = est.capacities(&cs, &shape, &CapacityQuery::default()).await;
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(caps.iter().all(|c| c.capacity.replicas == Some(100)));
    }
}
