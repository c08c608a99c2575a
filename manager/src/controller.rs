//! The kube-runtime controller of one middleware's federated kind: each reconcile gathers inputs
//! ([`crate::gather`]), decides ([`crate::decide`], pure) and applies ([`crate::apply`]) under
//! one field manager.
//!
//! Watch-driven: the federated objects, what we create for them (Services, the host-list
//! ConfigMap, the member template and the policies: [`crate::owned`]) and the member templates'
//! ResourceBindings (status from the members) trigger reconciles, and a Karmada Cluster event only those of the
//! objects it concerns ([`crate::triggers`]); the only timers are short requeues while something
//! is in flight and a slow resync. Nothing is reconciled before the Cluster cache is synced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_api::karmada::override_policy::OverridePolicy;
use fedstate_api::karmada::propagation::PropagationPolicy;
use fedstate_api::names;
use fedstate_runtime::backoff::{Backoff, ReconcileError};
use fedstate_runtime::watch::WatchBackoff;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ObjectMeta, PartialObjectMeta};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::decide::{self, Outcome};
use crate::middleware::Middleware;
use crate::mongodb::MongoDb;
use crate::triggers::ClusterTrigger;
use crate::{apply, gather, owned, teardown};

pub use crate::decide::OWNED_CONDITIONS;

/// Our finalizer on the federated object.
pub const FINALIZER: &str = "middleware.fedstate.io/manager";

/// Everything that can go wrong talking to the apiserver. User-facing problems with the object
/// itself are not errors: they become conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {object}: {source}")]
    Kube {
        action: &'static str,
        kind: String,
        /// `namespace/name`.
        object: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("object has no namespace")]
    NotNamespaced,
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// `map_err` adapter naming what failed on which object.
    pub fn kube(
        action: &'static str,
        kind: impl Into<String>,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Self {
        let (kind, object) = (kind.into(), format!("{namespace}/{name}"));
        move |source| Self::Kube {
            action,
            kind,
            object,
            source: Box::new(source),
        }
    }
}

impl ReconcileError for Error {
    fn kube_error(&self) -> Option<&kube::Error> {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube { source, .. } => Some(source),
            Error::NotNamespaced => None,
            Error::Finalizer(f) => match &**f {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.kube_error(),
                F::AddFinalizer(e) | F::RemoveFinalizer(e) => Some(e),
                _ => None,
            },
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tunables (flags in `main`).
#[derive(Clone, Debug)]
pub struct Options {
    /// Requeue while members are being added, removed or failed over.
    pub busy_requeue: Duration,
    /// Resync when nothing is in flight (watches do the real work).
    pub idle_requeue: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            busy_requeue: Duration::from_secs(15),
            idle_requeue: Duration::from_secs(300),
        }
    }
}

/// What every reconcile gets.
pub struct Context<M: Middleware = MongoDb> {
    pub client: Client,
    pub recorder: Recorder,
    pub clusters: Store<Cluster>,
    pub options: Options,
    pub middleware: M,
    /// 2 s, 4 s, … up to 5 minutes per object.
    pub backoff: Backoff,
}

impl<M: Middleware> std::fmt::Debug for Context<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Context<MongoDb> {
    /// The MongoDB manager's context.
    pub fn new(client: Client, clusters: Store<Cluster>, options: Options) -> Self {
        Self::for_middleware(MongoDb, client, clusters, options)
    }
}

impl<M: Middleware> Context<M> {
    pub fn for_middleware(
        middleware: M,
        client: Client,
        clusters: Store<Cluster>,
        options: Options,
    ) -> Self {
        let reporter = Reporter {
            controller: M::CONTROLLER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            clusters,
            options,
            middleware,
            backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(300)),
        }
    }
}

fn object_key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Reconcile entry point: the ordered teardown of a deleted object, else the finalizer around
/// the live reconcile.
pub async fn reconcile<M: Middleware>(
    obj: Arc<M::Federated>,
    ctx: Arc<Context<M>>,
) -> Result<Action> {
    let ns = obj.namespace().ok_or(Error::NotNamespaced)?;
    let started = Instant::now();
    let span =
        info_span!("reconcile", object = %object_key(&*obj), generation = ?obj.meta().generation);
    let api: Api<M::Federated> = Api::namespaced(ctx.client.clone(), &ns);
    // kube's finalizer() releases the finalizer as soon as cleanup returns Ok, so the ordered
    // teardown runs here, step by step, and finalizer() is only reached once it is done.
    let deleting =
        obj.meta().deletion_timestamp.is_some() && obj.finalizers().iter().any(|f| f == FINALIZER);
    let key = object_key(&*obj);
    let result = async {
        if deleting && let Some(wait) = cleanup(&*obj, &ctx).await? {
            return Ok(wait);
        }
        finalizer(&api, FINALIZER, obj, |event| async {
            match event {
                Finalizer::Apply(o) => reconcile_live(&*o, &ctx).await,
                Finalizer::Cleanup(_) => Ok(Action::await_change()),
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    }
    .instrument(span)
    .await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!("fedstate_manager_reconcile_total", "result" => outcome).increment(1);
    metrics::histogram!("fedstate_manager_reconcile_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

/// Exponential backoff per object (`fedstate_runtime::backoff`): 2 s, 4 s, … up to 5 minutes;
/// a write conflict is retried after a second.
pub fn error_policy<M: Middleware>(
    obj: Arc<M::Federated>,
    error: &Error,
    ctx: Arc<Context<M>>,
) -> Action {
    let key = object_key(&*obj);
    let delay = ctx.backoff.failed(&key, error);
    warn!(object = %key, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// A live object: gather → decide → apply, twice around the NodePorts only the apiserver
/// allocates (members and their Services first, then everything that names their addresses).
async fn reconcile_live<M: Middleware>(obj: &M::Federated, ctx: &Context<M>) -> Result<Action> {
    let m = &ctx.middleware;
    let clusters = gather::clusters(&ctx.clusters);
    let plan = match decide::admit(m, obj, &clusters) {
        Ok(plan) => plan,
        Err(b) => return apply::blocked(ctx, obj, &b).await,
    };
    let world = gather::live(ctx, obj, clusters).await?;
    // ThreadRng is not Send: keep it out of any await.
    let members = decide::members(m, obj, &plan, &world, &mut rand::rng());
    let members = match members {
        Ok(members) => members,
        Err(b) => return apply::blocked(ctx, obj, &b).await,
    };
    let node_ports = apply::identities(ctx, &members).await?;
    match decide::objects(m, obj, &plan, &world, &members, &node_ports) {
        Outcome::Apply(d) => apply::decision(ctx, obj, *d).await,
        Outcome::WaitForPorts(why) => Ok(apply::wait_for_ports(&why)),
        Outcome::Blocked(b) => apply::blocked(ctx, obj, &b).await,
    }
}

/// One step of the ordered teardown (see [`crate::teardown`]); `None` once nothing is left.
async fn cleanup<M: Middleware>(obj: &M::Federated, ctx: &Context<M>) -> Result<Option<Action>> {
    let view = gather::teardown(ctx, obj).await?;
    let step = teardown::next_step(&view);
    apply::teardown(ctx, obj, step).await
}

/// The federated object a member template's binding belongs to.
fn binding_owner<M: Middleware>(rb: &ResourceBinding) -> Option<ObjectRef<M::Federated>> {
    let r = &rb.spec.resource;
    (r.kind == M::Member::kind(&()) && r.api_version == M::Member::api_version(&())).then(|| {
        ObjectRef::new(&r.name).within(
            r.namespace
                .as_deref()
                .or(rb.metadata.namespace.as_deref())
                .unwrap_or_default(),
        )
    })
}

/// The objects whose spec references `cm` ([`Middleware::referenced_config_maps`]: the user's
/// mongod configuration): a change of its content must reach the template's digest, and from
/// there the members, one cluster at a time ([`crate::rollout`]).
fn referencing<M: Middleware>(
    middleware: &M,
    store: &Store<M::Federated>,
    cm: &ObjectMeta,
) -> Vec<ObjectRef<M::Federated>> {
    let (Some(ns), Some(name)) = (cm.namespace.as_deref(), cm.name.as_deref()) else {
        return Vec::new();
    };
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(ns))
        .filter(|o| {
            middleware
                .referenced_config_maps(o)
                .iter()
                .any(|c| c == name)
        })
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Run the MongoDB controller until `shutdown`. Marks `health` ready once the Cluster cache is
/// synced, and reconciles only from then on.
pub async fn run(
    client: Client,
    options: Options,
    health: fedstate_runtime::admin::Health,
    shutdown: CancellationToken,
) {
    run_for(MongoDb, client, options, health, shutdown).await;
}

/// Buffer of the shared Cluster reflector's events to the controller.
const CLUSTER_EVENTS: usize = 1024;

/// Run one middleware's controller until `shutdown`.
///
/// Caches before work: nothing is reconciled until the Cluster store has listed every Cluster
/// (kube-runtime itself holds reconciles until the federated objects' own store is synced).
/// Before that, every placed cluster would look unknown (`InvalidSchedulerResult`), every
/// retiring member's cluster gone, and every cluster unreachable during teardown.
pub async fn run_for<M: Middleware>(
    middleware: M,
    client: Client,
    options: Options,
    health: fedstate_runtime::admin::Health,
    shutdown: CancellationToken,
) {
    let clusters: Api<Cluster> = Api::all(client.clone());
    let (reader, writer) = reflector::store_shared(CLUSTER_EVENTS);
    #[allow(
        clippy::expect_used,
        reason = "a shared store (store_shared) always has a dispatcher to subscribe to"
    )]
    let cluster_events = writer.subscribe().expect("shared store");
    fedstate_runtime::watch::register("clusters");
    fedstate_runtime::watch::register(M::CONTROLLER);
    let cluster_watch = watcher(clusters, watcher::Config::default())
        .backoff(WatchBackoff::default())
        .reflect_shared(writer)
        .for_each(|e| async move {
            if let Err(e) = e {
                fedstate_runtime::watch::record("clusters", &e);
            }
        });
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = cluster_watch => {}
            () = stop.cancelled() => {}
        }
    });
    tokio::select! {
        synced = reader.wait_until_ready() => if synced.is_err() { return },
        () = shutdown.cancelled() => return,
    }
    health.set_ready(true);
    info!(clusters = reader.len(), "Cluster cache synced; reconciling");

    let ctx = Arc::new(Context::for_middleware(
        middleware,
        client.clone(),
        reader.clone(),
        options,
    ));
    let managed = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY
    ));
    let controller = Controller::new(
        Api::<M::Federated>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let (referenced, for_config) = (store.clone(), ctx.clone());
    let trigger = ClusterTrigger::default();
    let for_trigger = ctx.clone();
    let affected =
        move |_| trigger.affected(&for_trigger.middleware, &for_trigger.clusters, &store);
    let after = ctx.clone();
    // What we create, watched by our label: a second writer's edit or deletion of any of it is
    // undone at once, not at the next resync (crate::owned). Secrets are not watched (no
    // list/watch of Secrets in the Karmada apiserver, deploy/manager/rbac.yaml): every
    // reconcile applies them again.
    controller
        .owns(Api::<Service>::all(client.clone()), managed.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), managed.clone())
        .owns_stream(owned::spec_or_gone(
            Api::<M::Member>::all(client.clone()),
            managed.clone(),
        ))
        .owns_stream(owned::spec_or_gone(
            Api::<PropagationPolicy>::all(client.clone()),
            managed.clone(),
        ))
        .owns_stream(owned::spec_or_gone(
            Api::<OverridePolicy>::all(client.clone()),
            managed.clone(),
        ))
        .watches(
            Api::<ResourceBinding>::all(client.clone()),
            watcher::Config::default(),
            |rb| binding_owner::<M>(&rb),
        )
        // The user's ConfigMaps are not ours (no label): every ConfigMap, mapped to the
        // objects that reference it. Their metadata only (a content change is a new
        // resourceVersion all the same): the reconcile reads the one it needs, and a Karmada
        // apiserver holding many large ConfigMaps costs us no copy of their data.
        .watches_stream(
            watcher(
                Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
                watcher::Config::default(),
            )
            .backoff(WatchBackoff::default())
            .touched_objects(),
            move |cm: PartialObjectMeta<ConfigMap>| {
                referencing(&for_config.middleware, &referenced, &cm.metadata)
            },
        )
        .watches_shared_stream(cluster_events, affected)
        .trigger_backoff(WatchBackoff::shared())
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| {
            forget_deleted(&after.backoff, &res);
            fedstate_runtime::watch::controller_result(M::CONTROLLER, &res);
            async {}
        })
        .await;
    health.set_ready(false);
}

/// A reconcile asked for an object that is gone (typically the retry after a failure): forget
/// its failures, so the failure map holds only objects that exist.
pub fn forget_deleted<K, E, Q>(
    backoff: &Backoff,
    result: &std::result::Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, Q>>,
) where
    K: Resource,
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    if let Err(kube::runtime::controller::Error::ObjectNotFound(gone)) = result {
        backoff.forget(&format!(
            "{}/{}",
            gone.namespace.as_deref().unwrap_or_default(),
            gone.name
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedstate_api::MultiCloudMongoDB;
    use kube::runtime::controller::Error as ControllerError;

    type RunResult = std::result::Result<
        (ObjectRef<MultiCloudMongoDB>, Action),
        ControllerError<Error, std::io::Error>,
    >;

    #[test]
    fn the_failure_map_forgets_objects_that_are_gone() {
        let backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(300));
        for object in ["ns/a", "ns/b", "ns/a"] {
            backoff.failed(object, &Error::NotNamespaced);
        }
        assert_eq!(backoff.tracked(), 2);
        // A reconcile that ran (ok or not) keeps the entry; only a gone object drops it.
        let ran: RunResult = Ok((ObjectRef::new("a").within("ns"), Action::await_change()));
        forget_deleted(&backoff, &ran);
        assert_eq!(backoff.tracked(), 2);
        let gone: RunResult = Err(ControllerError::ObjectNotFound(Box::new(
            ObjectRef::<MultiCloudMongoDB>::new("a")
                .within("ns")
                .erase(),
        )));
        forget_deleted(&backoff, &gone);
        assert_eq!(backoff.tracked(), 1);
        // Forgotten for good: a new failure starts again at the first delay.
        assert_eq!(
            backoff.failed("ns/a", &Error::NotNamespaced),
            Duration::from_secs(2)
        );
    }
}
