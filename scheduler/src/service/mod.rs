//! The `fedstate-scheduler run` service: watch-driven controllers on the Karmada apiserver.
//!
//! * One shared reflector of Karmada `Cluster`s feeds the candidate list and triggers re-placement
//!   of the objects a cluster change can affect ([`triggers`]).
//! * [`middleware`]: objects of a federated middleware kind ([`Schedulable`]; so far
//!   `MultiCloudMongoDB`) that name us get a `schedulerResult` annotation.
//! * [`binding`]: `ResourceBinding`s whose policy names us get `spec.clusters`.
//! * Capacity comes from the estimator chain ([`capacity`]); only the Lease holder writes.

pub mod binding;
pub mod cached;
pub mod capacity;
pub mod events;
#[cfg(test)]
mod fixtures;
pub mod metrics;
pub mod middleware;
pub mod triggers;
pub mod written;

use std::sync::Arc;
use std::time::Duration;

use fedstate_api::MultiCloudMongoDB;
use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::{ClusterResourceBinding, ResourceBinding};
use fedstate_estimator_client::{
    CapacityEstimator, ChannelConfig, ChannelFactory, DiscoveryConfig, EstimatorConfig,
    EstimatorRegistry, GeneralEstimate, KarmadaAccurate, NodeSpread, TlsOptions,
};
use fedstate_runtime::backoff::{Backoff, ReconcileError};
use fedstate_runtime::{CommonArgs, admin};
use futures::{StreamExt, TryStreamExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio_util::sync::CancellationToken;

use crate::adapter::Schedulable;

/// Objects per page of the Cluster and binding watches' (re-)lists (kube's default: 500). A page
/// is parsed whole, with every object's `managedFields`, before the cache keeps its compact part:
/// 500 bindings are ≈ 6 MiB, 500 Clusters with a member's status ≈ 10 MiB, freed at once and
/// mostly kept by the allocator. 100 costs 100 list requests for 10,000 bindings at start.
pub const LIST_PAGE_SIZE: u32 = 100;

/// How soon to look again at an object we could not place: capacity can appear without any
/// Cluster event (pods ending in a member cluster).
pub const RETRY_UNSCHEDULABLE: Duration = Duration::from_secs(30);

/// `fedstate-scheduler run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    /// Objects (`spec.scheduler.schedulerName`) and policies (`spec.schedulerName`) naming this
    /// scheduler are placed by this process.
    #[arg(long, default_value = fedstate_api::names::DEFAULT_SCHEDULER_NAME)]
    pub scheduler_name: String,

    /// Also place Karmada ResourceBindings whose PropagationPolicy names this scheduler.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub schedule_bindings: bool,

    /// Reconciles in flight per controller.
    #[arg(long, default_value_t = 32)]
    pub concurrency: u16,

    #[command(flatten)]
    pub estimator: EstimatorArgs,
}

/// Estimator flags, named like karmada-scheduler's.
#[derive(clap::Args, Debug, Clone)]
pub struct EstimatorArgs {
    /// Ask each member's karmada-scheduler-estimator over gRPC (otherwise only the Cluster's
    /// resourceSummary and node spread bound capacity).
    #[arg(long = "enable-scheduler-estimator", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enable: bool,
    /// Namespace of the estimator Services in the Karmada apiserver.
    #[arg(
        long = "scheduler-estimator-service-namespace",
        alias = "scheduler-estimator-namespace",
        default_value = "karmada-system"
    )]
    pub namespace: String,
    /// Estimator Service name prefix: `<prefix>-<cluster>` (FedState's deployment used `grpc-estimator`).
    #[arg(
        long = "scheduler-estimator-service-prefix",
        default_value = "karmada-scheduler-estimator"
    )]
    pub service_prefix: String,
    #[arg(long = "scheduler-estimator-port", default_value_t = 10352)]
    pub port: i32,
    /// Deadline for one cluster's answer; a slower cluster falls back to the general estimate.
    #[arg(long = "scheduler-estimator-timeout", default_value = "1s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Time budget for asking all clusters of one decision.
    #[arg(long = "scheduler-estimator-budget", default_value = "3s", value_parser = humantime::parse_duration)]
    pub budget: Duration,
    /// Estimator answers younger than this are served from memory without asking again.
    #[arg(long = "capacity-cache-ttl", default_value = "10s", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,
    /// CA bundle (PEM) to verify estimators' serving certificates; enables TLS.
    #[arg(long = "scheduler-estimator-ca-file")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for estimators that require mTLS.
    #[arg(long = "scheduler-estimator-cert-file")]
    pub cert_file: Option<std::path::PathBuf>,
    /// Client key (PEM) for estimators that require mTLS.
    #[arg(long = "scheduler-estimator-key-file")]
    pub key_file: Option<std::path::PathBuf>,
    /// Use TLS without verifying the estimators' certificates (testing only).
    #[arg(
        long = "insecure-skip-estimator-verify",
        alias = "scheduler-estimator-insecure-skip-tls-verify",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub insecure_skip_verify: bool,
}

/// What every reconcile needs.
pub struct Context {
    pub client: Client,
    pub scheduler_name: String,
    pub clusters: Store<Cluster>,
    pub estimator: CapacityEstimator,
    /// Events (bindings' and MultiCloudMongoDBs'), published off the critical path.
    pub events: events::EventSink,
    /// Retry delays of failed reconciles ([`backoff`]).
    pub backoff: Backoff,
    /// The objects we wrote that the cache does not show yet (bindings and middleware objects).
    pub written: written::Written,
}

/// 10 s after a failure, doubling per consecutive failure of the same object up to 5 minutes;
/// 1 s after a write conflict (the newer object is on its way through the watch).
pub fn backoff() -> Backoff {
    Backoff::new(Duration::from_secs(10), Duration::from_secs(300))
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("scheduler_name", &self.scheduler_name)
            .finish_non_exhaustive()
    }
}

/// Why a reconcile failed; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the {what} of {object}: {source}")]
    Write {
        what: &'static str,
        object: String,
        source: kube::Error,
    },
}

/// Why the service could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Process(#[from] fedstate_runtime::ProcessError),
    #[error("estimator channels: {0}")]
    Tls(#[from] fedstate_estimator_client::TlsError),
}

fn estimator(
    args: &EstimatorArgs,
    client: &Client,
    stop: &CancellationToken,
) -> Result<CapacityEstimator, ServiceError> {
    let config = EstimatorConfig {
        per_cluster_deadline: args.timeout,
        budget: args.budget,
        cache: fedstate_estimator_client::cache::CacheConfig {
            fresh_for: args.cache_ttl,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut plugins: Vec<Arc<dyn fedstate_estimator_client::CapacityPlugin>> =
        vec![Arc::new(GeneralEstimate), Arc::new(NodeSpread)];
    let registry = if args.enable {
        let tls = TlsOptions {
            ca_file: args.ca_file.clone(),
            cert_file: args.cert_file.clone(),
            key_file: args.key_file.clone(),
            insecure_skip_verify: args.insecure_skip_verify,
        };
        let factory = ChannelFactory::new(&ChannelConfig {
            tls,
            ..Default::default()
        })?;
        let discovery = DiscoveryConfig {
            namespace: args.namespace.clone(),
            service_prefix: args.service_prefix.clone(),
            port: args.port,
        };
        let registry = EstimatorRegistry::new(discovery, factory);
        plugins.insert(0, Arc::new(KarmadaAccurate::new(registry.clone())));
        Some(registry)
    } else {
        None
    };
    let estimator = CapacityEstimator::new(plugins, config);
    if let Some(registry) = registry {
        let (client, on_change, stop) = (client.clone(), estimator.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                r = fedstate_estimator_client::discovery::watch(client, registry, move |c| on_change.cluster_changed(c)) => {
                    if let Err(e) = r { tracing::error!(error = %e, "estimator discovery stopped"); }
                }
            }
        });
    }
    Ok(estimator)
}

/// What `fedstate-scheduler run` is to the process skeleton.
pub const COMPONENT: fedstate_runtime::Component = fedstate_runtime::Component {
    name: "fedstate-scheduler",
    describe_metrics,
};

fn describe_metrics() {
    metrics::describe();
    fedstate_estimator_client::metrics::describe();
}

/// Run until SIGTERM under the shared process skeleton: admin server always, controllers while
/// we lead.
pub async fn run(args: RunArgs) -> Result<(), ServiceError> {
    let common = args.common.clone();
    fedstate_runtime::run(COMPONENT, &common, |w: fedstate_runtime::Worker| {
        let args = args.clone();
        async move { controllers(w.client, &args, w.health, w.stop).await }
    })
    .await?;
    Ok(())
}

/// Both controllers over one shared Cluster reflector, until `stop`.
pub async fn controllers(
    client: Client,
    args: &RunArgs,
    health: admin::Health,
    stop: CancellationToken,
) -> Result<(), ServiceError> {
    let (clusters, writer) = reflector::store_shared::<Cluster>(1024);
    #[allow(
        clippy::expect_used,
        reason = "a shared store (store_shared) always has a dispatcher to subscribe to"
    )]
    let (cluster_events_mcm, cluster_events_rb, cluster_events_crb) = (
        writer.subscribe().expect("shared store"),
        writer.subscribe().expect("shared store"),
        writer.subscribe().expect("shared store"),
    );
    fedstate_runtime::watch::register("clusters");
    let cluster_watch = watcher(
        Api::<Cluster>::all(client.clone()),
        watcher::Config::default().page_size(LIST_PAGE_SIZE),
    )
    .backoff(fedstate_runtime::watch::WatchBackoff::default())
    // Cached Clusters keep no managedFields (nothing reads them; Karmada's caches drop them too).
    .modify(|c| kube::ResourceExt::managed_fields_mut(c).clear())
    .reflect_shared(writer)
    .for_each(|e| async move {
        if let Err(e) = e {
            fedstate_runtime::watch::record("clusters", &e);
        }
    });

    let ctx = Arc::new(Context {
        client: client.clone(),
        scheduler_name: args.scheduler_name.clone(),
        clusters: clusters.clone(),
        estimator: estimator(&args.estimator, &client, &stop)?,
        events: events::EventSink::spawn(
            client.clone(),
            Reporter {
                controller: args.scheduler_name.clone(),
                instance: std::env::var("POD_NAME").ok(),
            },
            stop.clone(),
        ),
        backoff: backoff(),
        written: written::Written::default(),
    });

    let config = kube::runtime::controller::Config::default().concurrency(args.concurrency);
    let mcm = middleware_controller::<MultiCloudMongoDB>(
        &client,
        config.clone(),
        cluster_events_mcm,
        &ctx,
        &stop,
    );

    let rb = async {
        if args.schedule_bindings {
            binding_controller::<ResourceBinding>(
                &client,
                config.clone(),
                cluster_events_rb,
                &ctx,
                &stop,
            )
            .await;
        }
    };
    let crb = async {
        if args.schedule_bindings {
            binding_controller::<ClusterResourceBinding>(
                &client,
                config.clone(),
                cluster_events_crb,
                &ctx,
                &stop,
            )
            .await;
        }
    };

    let ready = async {
        if clusters.wait_until_ready().await.is_ok() {
            health.set_ready(true);
            tracing::info!(
                clusters = clusters.state().len(),
                "cluster cache synced; scheduling"
            );
        }
    };
    // Caches before work: the controllers start once the Cluster store has listed every
    // Cluster; before that every placed cluster would look lost (NoClusterFit, failover).
    tokio::select! {
        _ = cluster_watch => {}
        _ = async { ready.await; tokio::join!(mcm, rb, crb) } => {}
        _ = stop.cancelled() => {}
    }
    Ok(())
}

/// One middleware kind's controller: woken by its objects' changes and by the Cluster changes
/// [`triggers::ClusterTrigger`] says can affect them.
async fn middleware_controller<K: Schedulable>(
    client: &Client,
    config: kube::runtime::controller::Config,
    cluster_events: impl futures::Stream<Item = Arc<Cluster>> + Send + 'static,
    ctx: &Arc<Context>,
    stop: &CancellationToken,
) {
    fedstate_runtime::watch::register(K::KIND);
    let (reader, writer) = reflector::store::<K>();
    let written_ctx = ctx.clone();
    // Every change wakes the object (an edited or deleted annotation must be written again);
    // the watch also tells what we wrote that the cache now shows (`written`).
    let objects = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .backoff(fedstate_runtime::watch::WatchBackoff::default())
        .inspect_ok(move |e| written_ctx.written.seen(e))
        .reflect(writer)
        .applied_objects();
    let store = reader.clone();
    let trigger = triggers::ClusterTrigger::default();
    let clusters = ctx.clusters.clone();
    let stop = stop.clone();
    Controller::for_stream(objects, reader)
        .with_config(config)
        .watches_shared_stream(cluster_events, move |c| {
            trigger.affected_objects(&c, &clusters, &store)
        })
        .trigger_backoff(fedstate_runtime::watch::WatchBackoff::shared())
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(
            |o, c| reconciled(middleware::reconcile::<K>, o, c),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| {
            fedstate_runtime::watch::controller_result(K::KIND, &r);
            async {}
        })
        .await;
}

/// One binding kind's controller: woken by its own generation changes (as karmada-scheduler is;
/// our status writes do not wake it) and by the Cluster changes [`triggers::BindingTrigger`] says
/// matter to it. Bindings are cached in their compact form ([`cached::CachedBinding`]: only what
/// the scheduler reads, what bindings share stored once).
async fn binding_controller<B>(
    client: &Client,
    config: kube::runtime::controller::Config,
    cluster_events: impl futures::Stream<Item = Arc<Cluster>> + Send + 'static,
    ctx: &Arc<Context>,
    stop: &CancellationToken,
) where
    B: binding::Binding,
{
    fedstate_runtime::watch::register(B::KIND);
    let (reader, writer) = reflector::store::<cached::CachedBinding<B>>();
    let ledger_ctx = ctx.clone();
    let bindings = watcher(
        Api::<B>::all(client.clone()),
        watcher::Config::default().page_size(LIST_PAGE_SIZE),
    )
    .backoff(fedstate_runtime::watch::WatchBackoff::default())
    .inspect_ok(move |e| binding::release_visible(&ledger_ctx, e))
    // Each object is made compact as it arrives: the API type is never cached.
    .map_ok(cached::cached_event)
    .reflect(writer)
    .applied_objects()
    .predicate_filter(kube::runtime::predicates::generation, Default::default());
    let trigger = triggers::BindingTrigger::default();
    let store = reader.clone();
    let stop = stop.clone();
    Controller::for_stream(bindings, reader)
        .with_config(config)
        .watches_shared_stream(cluster_events, move |c| trigger.affected(&c, &store))
        .trigger_backoff(fedstate_runtime::watch::WatchBackoff::shared())
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(
            |o, c| reconciled(binding::reconcile::<B>, o, c),
            error_policy,
            ctx.clone(),
        )
        .for_each(|r| {
            fedstate_runtime::watch::controller_result(B::KIND, &r);
            async {}
        })
        .await;
}

impl ReconcileError for Error {
    fn kube_error(&self) -> Option<&kube::Error> {
        let Error::Write { source, .. } = self;
        Some(source)
    }
}

/// The object's key in the backoff (both controllers share one context).
fn backoff_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// `reconcile`, forgetting the object's failures once it succeeds.
async fn reconciled<K, Fut>(
    reconcile: fn(Arc<K>, Arc<Context>) -> Fut,
    obj: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>,
    Fut: std::future::Future<Output = Result<Action, Error>>,
{
    let key = backoff_key(&*obj);
    let result = reconcile(obj, ctx.clone()).await;
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

/// The shared policy (`fedstate_runtime::backoff`) with the scheduler's [`backoff`].
fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.backoff.failed(&backoff_key(&*obj), error);
    if error.is_conflict() {
        // Someone else changed the object since we read it (the manager adding its finalizer,
        // a user editing): the new version is on its way, look again soon.
        tracing::debug!(%error, "conflict; retrying with the newer object");
    } else {
        tracing::warn!(%error, retry_in = ?delay, "reconcile failed; retrying");
    }
    Action::requeue(delay)
}
