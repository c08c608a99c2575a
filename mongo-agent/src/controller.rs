//! The kube-runtime controller for `MongoDB` objects in one member cluster: gathers inputs (the
//! object, its Secrets, the host list, its Services and Pods), applies the pure outputs
//! ([`crate::resources`], [`crate::converge`], [`crate::rollout`], [`crate::status`]).
//!
//! Watch-driven: MongoDB objects, their StatefulSets, Services and the host-list ConfigMap. The
//! replica set itself changes outside Kubernetes (elections, members syncing), so a converged
//! object is looked at again every 30 s, one in progress every 2 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fedstate_api::v1alpha1::MongoDB;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use fedstate_runtime::backoff::{Backoff, ReconcileError};

use crate::decide::{self, Decline, SetResult};
use crate::inpod::PodExec;
use crate::leave::{self, Verdict};
use crate::pacing::{Pacing, Requeue};
use crate::replset::{Login, ReplSetAdmin};
use crate::resources::{self, MemberAddressing};
use crate::{apply, gather};

/// How long one reconcile of a deleted `MongoDB` tries to take its members out of the replica
/// set; the next one continues (the finalizer stays meanwhile).
const LEAVE_BUDGET: Duration = Duration::from_secs(40);

/// The most one reconcile may take. Every request in it is bounded already (MongoDB commands by
/// `maxTimeMS` and a client timeout, execs by [`crate::inpod::exec_limit`], the deletion's leave
/// by [`LEAVE_BUDGET`], apiserver requests by the client's read timeout); their sum is not, on a
/// set whose members accept connections and answer nothing. Past this the reconcile is dropped
/// (between two requests: each write is whole, and the next reconcile starts from what it
/// observes) and retried with backoff; no reconcile that makes progress takes a tenth of it.
pub const RECONCILE_LIMIT: Duration = Duration::from_secs(300);

/// FedState's finalizer name (objects FedState created carry it already).
pub const FINALIZER: &str = "mongodb.finalizers.middleware.fedstate.io";

/// How this agent runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How members are addressed (the cluster's VIP for NodePort addressing).
    pub addressing: MemberAddressing,
    /// This cluster's name in the host list (`cluster` of its entries).
    pub cluster_name: Option<String>,
    /// Watch one namespace only.
    pub namespace: Option<String>,
    /// Timeout of every MongoDB command and connection.
    pub mongo_timeout: Duration,
}

/// Why a reconcile failed. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("MongoDB {0}: {1}")]
    Resources(String, #[source] resources::ResourceError),
    #[error("MongoDB {0}: finalizer: {1}")]
    Finalizer(String, String),
    /// The deletion waits: this cluster's members still vote in a set that lives on.
    #[error("MongoDB {0}: deletion blocked: {1}")]
    LeaveBlocked(String, String),
    #[error(
        "MongoDB {0}: the reconcile did not finish within {1:?} (a member, the apiserver or a kubelet accepts requests but does not answer); retrying"
    )]
    TimedOut(String, Duration),
}

pub(crate) fn kube_err(
    action: &'static str,
    kind: &'static str,
    name: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let name = name.to_owned();
    move |source| Error::Kube {
        action,
        kind,
        name,
        source,
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub settings: Settings,
    /// Each object's driver clients (one per member and user, the latest password only), reused
    /// across reconciles and dropped when the object is deleted ([`Context::forget`]).
    admins: Mutex<HashMap<String, ReplSetAdmin>>,
    /// 5 s after a failure, doubling per consecutive failure of the same object up to 5 minutes;
    /// 1 s after a write conflict (`fedstate_runtime::backoff`).
    backoff: Backoff,
    /// When a reconcile that worked looks again ([`crate::pacing`]).
    pub(crate) pacing: Pacing,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: Client, settings: Settings) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "fedstate-mongo-agent".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            client,
            recorder,
            settings,
            admins: Mutex::new(HashMap::new()),
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(300)),
            pacing: Pacing::default(),
        }
    }

    /// Object `key`'s adapter logged in as `login`, on the object's shared clients. Its driver
    /// `appName` names this agent's cluster ([`Context::app_name`]), so mongod's logs and
    /// `currentOp` tell one cluster's agent from another's.
    pub(crate) async fn admin(&self, key: &str, login: Option<&Login>) -> ReplSetAdmin {
        let app_name = self.app_name();
        let mut admins = self.admins.lock().await;
        admins
            .entry(key.to_owned())
            .or_insert_with(|| {
                ReplSetAdmin::new(None, self.settings.mongo_timeout).with_app_name(app_name)
            })
            .with_login(login.cloned())
    }

    /// `fedstate-mongo-agent@<cluster>` (`fedstate-mongo-agent` without a cluster name).
    pub fn app_name(&self) -> String {
        match &self.settings.cluster_name {
            Some(c) => format!("fedstate-mongo-agent@{c}"),
            None => "fedstate-mongo-agent".to_owned(),
        }
    }

    /// Forget a deleted object: its driver clients are dropped (so they stop dialling its
    /// members), and its backoff and pacing entries.
    pub(crate) async fn forget(&self, key: &str) {
        self.admins.lock().await.remove(key);
        self.backoff.forget(key);
        self.pacing.forget(key);
    }

    /// How many objects have driver clients, and how many (member, user) clients in all.
    pub async fn admin_clients(&self) -> (usize, usize) {
        let admins = self.admins.lock().await;
        let mut clients = 0;
        for a in admins.values() {
            clients += a.clients().await.len();
        }
        (admins.len(), clients)
    }
}

/// Run the controller until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let client = ctx.client.clone();
    let (mdbs, sts, svcs, cms): (Api<MongoDB>, Api<StatefulSet>, Api<Service>, Api<ConfigMap>) =
        match &ctx.settings.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client.clone()),
                Api::all(client),
            ),
        };
    let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=fedstate");
    fedstate_runtime::watch::register("mongo-agent");
    Controller::new(mdbs, watcher::Config::default())
        .owns(sts, managed.clone())
        .owns(svcs, managed)
        // The host list the manager maintains: `<name>-hostconf` → MongoDB `<name>`.
        .watches(cms, watcher::Config::default(), |cm: ConfigMap| {
            let name = cm.name_any();
            let ns = cm.namespace();
            name.strip_suffix("-hostconf").map(|n| {
                let r = ObjectRef::<MongoDB>::new(n);
                match ns {
                    Some(ns) => r.within(&ns),
                    None => r,
                }
            })
        })
        .trigger_backoff(fedstate_runtime::watch::WatchBackoff::shared())
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| {
            fedstate_runtime::watch::controller_result("mongo-agent", &r);
            async {}
        })
        .await;
}

impl ReconcileError for Error {
    fn kube_error(&self) -> Option<&kube::Error> {
        match self {
            Error::Kube { source, .. } => Some(source),
            Error::Resources(..)
            | Error::Finalizer(..)
            | Error::LeaveBlocked(..)
            | Error::TimedOut(..) => None,
        }
    }
}

pub(crate) fn object_key(obj: &MongoDB) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

fn error_policy(obj: Arc<MongoDB>, err: &Error, ctx: Arc<Context>) -> Action {
    if let Error::LeaveBlocked(_, why) = err {
        // Not a failure: a state that repeats (2 s doubling to 60 s while it does not change).
        let delay = ctx
            .pacing
            .next(&object_key(&obj), &Requeue::Stalled(why.clone()));
        tracing::warn!(mongodb = %obj.name_any(), %why, retry_in = ?delay, "deletion blocked");
        return Action::requeue(delay);
    }
    let delay = ctx.backoff.failed(&object_key(&obj), err);
    tracing::warn!(mongodb = %obj.name_any(), error = %err, retry_in = ?delay, "reconcile failed; retrying");
    metrics::counter!("fedstate_agent_reconcile_errors_total").increment(1);
    Action::requeue(delay)
}

/// One reconcile of a `MongoDB` object (what [`run`] runs; public for mock-apiserver scenarios).
pub async fn reconcile(obj: Arc<MongoDB>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<MongoDB> = Api::namespaced(ctx.client.clone(), &ns);
    metrics::counter!("fedstate_agent_reconciles_total").increment(1);
    let span = tracing::info_span!("reconcile", mongodb = %format!("{ns}/{name}"));
    let key = object_key(&obj);
    let work = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => reconcile_live(&obj, &ctx).await,
            Finalizer::Cleanup(obj) => cleanup(&obj, &ctx).await,
        }
    })
    .instrument(span);
    let result = match tokio::time::timeout(RECONCILE_LIMIT, work).await {
        Err(_elapsed) => Err(Error::TimedOut(name, RECONCILE_LIMIT)),
        // Our own errors come back as they were, so error_policy tells a blocked deletion
        // and a write conflict (retried after a second) from a failure.
        Ok(done) => done.map_err(|e| match e {
            kube::runtime::finalizer::Error::CleanupFailed(e)
            | kube::runtime::finalizer::Error::ApplyFailed(e) => e,
            e => Error::Finalizer(name, e.to_string()),
        }),
    };
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

/// A live object: gather → decide → apply, around the one replica-set step (which needs the
/// Services, Pods and Secrets the first writes).
async fn reconcile_live(mdb: &MongoDB, ctx: &Context) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let seen = gather::live(ctx, mdb).await?;
    // ThreadRng is not Send: keep it out of any await.
    let decided = decide::objects(mdb, &seen, &ctx.settings, &mut rand::rng());
    let objects = match decided {
        Ok(o) => o,
        Err(Decline::Broken(e)) => return Err(Error::Resources(mdb.name_any(), e)),
        Err(why) => {
            let status = decide::declined_status(mdb, &why, seen.teardown, jiff::Timestamp::now());
            return apply::declined(ctx, mdb, status).await;
        }
    };
    apply::objects(ctx, mdb, &objects).await?;
    let set = match decide::set_goal(mdb, &objects, &ctx.settings) {
        Ok((goal, users)) => apply::replica_set(ctx, mdb, &objects, goal, &users).await,
        Err(why) => SetResult::waiting(why),
    };
    // What a stalled object did each time (its state is in the status; this says how long
    // the step took and from which version of the object).
    tracing::debug!(
        outcome = ?set.outcome,
        resource_version = mdb.resource_version().unwrap_or_default(),
        took = ?started.elapsed(),
        "replica-set step"
    );
    let next = decide::after_step(
        mdb,
        &seen,
        &objects,
        ctx.settings.cluster_name.as_deref(),
        &set,
        jiff::Timestamp::now(),
    );
    apply::after_step(ctx, mdb, next, objects.users.as_ref()).await
}

/// Deletion ([`crate::leave`]): the finalizer goes only once none of this cluster's members
/// votes in a replica set that lives on in other clusters (they leave it first, the primary
/// stepped down first), or at once when the whole set is deleted (the manager's mark on the
/// host list). Then the owner references delete the rest (the volumes are kept unless
/// `deleteOnTeardown`), and the agent forgets the object (its driver clients are shut down).
/// A blocked deletion says why in the `Deleting` condition and is looked at again with backoff.
async fn cleanup(mdb: &MongoDB, ctx: &Context) -> Result<Action, Error> {
    let seen = gather::live(ctx, mdb).await?;
    let users = decide::users(
        mdb,
        seen.credentials.as_ref(),
        seen.root_password_from_ref.as_deref(),
    );
    let plan = leave::plan(mdb, &seen, &ctx.settings, users.is_some());
    let admin = ctx
        .admin(&object_key(mdb), users.as_ref().map(|u| &u.cluster_admin))
        .await;
    let members = decide::members(&seen.services, &seen.pods, &ctx.settings.addressing);
    let in_pod = PodExec::new(
        Api::namespaced(ctx.client.clone(), &mdb.namespace().unwrap_or_default()),
        members.pods_by_host,
        ctx.settings.mongo_timeout,
    );
    match leave::run(&admin, &in_pod, plan, LEAVE_BUDGET).await {
        Verdict::Released(why) => {
            tracing::info!(%why, "releasing the finalizer");
            ctx.forget(&object_key(mdb)).await;
            Ok(Action::await_change())
        }
        Verdict::Blocked(b) => {
            let status = leave::blocked_status(mdb, &b, jiff::Timestamp::now());
            let message = leave::blocked_message(mdb, &b);
            let before = mdb.status.as_ref().and_then(|s| {
                s.conditions
                    .iter()
                    .find(|c| c.type_ == fedstate_api::condition::types::DELETING)
                    .and_then(|c| c.message.clone())
            });
            if before.as_deref() != Some(message.as_str()) {
                let note = decide::Note {
                    type_: kube::runtime::events::EventType::Warning,
                    reason: "DeletionBlocked",
                    note: message.clone(),
                };
                apply::publish(ctx, mdb, &note).await;
            }
            apply::write_status(ctx, mdb, status).await?;
            // An error keeps the finalizer (kube-runtime removes it after a cleanup that
            // worked); error_policy paces it like a stalled state.
            Err(Error::LeaveBlocked(mdb.name_any(), message))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::replset::Password;

    /// An agent without a cluster name on 127.0.0.1, with 2 s MongoDB timeouts.
    fn settings() -> Settings {
        Settings {
            addressing: MemberAddressing::NodePort {
                vip: "127.0.0.1".into(),
            },
            cluster_name: None,
            namespace: None,
            mongo_timeout: Duration::from_secs(2),
        }
    }

    /// An apiserver that takes every request and never answers (and a client without a read
    /// timeout, so nothing below gives up first): the reconcile is dropped after
    /// [`RECONCILE_LIMIT`] with an error that says so, and kube-runtime retries it with backoff,
    /// instead of the object never being looked at again.
    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_never_ends_is_given_up() {
        let (client, held) = crate::silent::silent_apiserver().await;
        let ctx = Arc::new(Context::new(client, settings()));
        let mdb: MongoDB = serde_json::from_value(serde_json::json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
            "metadata": {"name": "db", "namespace": "ns"},
            "spec": {"members": 1, "memberConfigRef": "db-hostconf"},
        }))
        .unwrap();
        let start = tokio::time::Instant::now();
        let e = reconcile(Arc::new(mdb), ctx).await.unwrap_err();
        assert!(matches!(e, Error::TimedOut(..)), "{e}");
        assert!(e.to_string().contains("did not finish within 300s"), "{e}");
        assert_eq!(start.elapsed(), RECONCILE_LIMIT);
        held.abort();
    }

    /// What issue 16 found: the map was keyed by object and password, so every rotation added
    /// clients that were never dropped, and a deleted object's clients kept dialling its members.
    #[tokio::test]
    async fn an_objects_clients_keep_the_latest_password_and_go_with_the_object() {
        let sim = fedstate_rs_sim::Simulator::start(
            fedstate_rs_sim::Settings {
                sync_ticks: 1,
                stepdown_ticks: 3,
            },
            Duration::from_secs(3600),
        );
        let host = sim.serve_new("127.0.0.1").await.unwrap();
        let ctx = Context::new(
            fedstate_fake_apiserver::FakeApiserver::default().client(),
            settings(),
        );
        for i in 0..5 {
            let login = Login {
                user: "fedstate-cluster-admin".into(),
                password: Password::new(format!("rotated-{i}")),
            };
            // No such user on an empty member: the login fails, but a client was made.
            let _ = ctx.admin("db/a", Some(&login)).await.hello(&host).await;
            assert_eq!(ctx.admin_clients().await, (1, 1), "after rotation {i}");
        }
        ctx.admin("db/a", None).await.hello(&host).await.unwrap();
        ctx.admin("db/b", None).await.hello(&host).await.unwrap();
        assert_eq!(ctx.admin_clients().await, (2, 3));
        assert!(sim.open_connections(&host) > 0);
        ctx.forget("db/a").await;
        ctx.forget("db/b").await;
        assert_eq!(ctx.admin_clients().await, (0, 0));
        // The driver's clients are shut down with them: nothing dials the member any more.
        for _ in 0..100 {
            if sim.open_connections(&host) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(sim.open_connections(&host), 0);
    }
}
