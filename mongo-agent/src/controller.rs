//! The kube-runtime controller for `MongoDB` objects in one member cluster: gathers inputs (the
//! object, its Secrets, the host list, its Services and Pods), applies the pure outputs
//! ([`crate::resources`], [`crate::converge`], [`crate::rollout`], [`crate::status`]).
//!
//! Watch-driven: MongoDB objects, their StatefulSets, Services and the host-list ConfigMap. The
//! replica set itself changes outside Kubernetes (elections, members syncing), so a converged
//! object is looked at again every 30 s, one in progress every 2 s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fedstate_api::hostconf::{HOSTCONF_KEY, HostConf, HostEntry};
use fedstate_api::names::{FIELD_MANAGER_AGENT, LABEL_INSTANCE, managed_labels};
use fedstate_api::v1alpha1::{DEFAULT_IMAGE, MongoDB, check_image};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use fedstate_runtime::backoff::{Backoff, ReconcileError};

use crate::converge::{self, Outcome, SetGoal, Users};
use crate::inpod::PodExec;
use crate::planner::{Desired, ForceOptIn, MemberState};
use crate::replset::{Login, Password, ReplSetAdmin, ReplSetError};
use crate::resources::{self, MemberAddressing, is_arbiter, member_index_of};
use crate::rollout::{self, PodRollout, RolloutStep};
use crate::status::{self, FORCE_RECONFIG_ANNOTATION};

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
}

fn kube_err(
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

/// (object, login) → its adapter, so connections are reused across reconciles.
type AdminKey = (String, Option<(String, String)>);

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub settings: Settings,
    admins: Mutex<HashMap<AdminKey, Arc<ReplSetAdmin>>>,
    /// 5 s after a failure, doubling per consecutive failure of the same object up to 5 minutes;
    /// 1 s after a write conflict (`fedstate_runtime::backoff`).
    backoff: Backoff,
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
        }
    }

    async fn admin(&self, key: &str, login: Option<&Login>) -> Arc<ReplSetAdmin> {
        let k = (
            key.to_owned(),
            login.map(|l| (l.user.clone(), l.password.expose().to_owned())),
        );
        let mut admins = self.admins.lock().await;
        admins
            .entry(k)
            .or_insert_with(|| {
                Arc::new(ReplSetAdmin::new(
                    login.cloned(),
                    self.settings.mongo_timeout,
                ))
            })
            .clone()
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
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "reconcile failed");
            }
        })
        .await;
}

impl ReconcileError for Error {
    fn kube_error(&self) -> Option<&kube::Error> {
        match self {
            Error::Kube { source, .. } => Some(source),
            Error::Resources(..) | Error::Finalizer(..) => None,
        }
    }
}

fn object_key(obj: &MongoDB) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

fn error_policy(obj: Arc<MongoDB>, err: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failed(&object_key(&obj), err);
    tracing::warn!(mongodb = %obj.name_any(), error = %err, retry_in = ?delay, "reconcile failed; retrying");
    metrics::counter!("fedstate_agent_reconcile_errors_total").increment(1);
    Action::requeue(delay)
}

async fn reconcile(obj: Arc<MongoDB>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<MongoDB> = Api::namespaced(ctx.client.clone(), &ns);
    metrics::counter!("fedstate_agent_reconciles_total").increment(1);
    let span = tracing::info_span!("reconcile", mongodb = %format!("{ns}/{name}"));
    let key = object_key(&obj);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(&obj, &ctx).await,
            Finalizer::Cleanup(obj) => cleanup(&obj, &ctx).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| Error::Finalizer(name, e.to_string()));
    if result.is_ok() {
        ctx.backoff.succeeded(&key);
    }
    result
}

/// Everything gathered about one object's members in this cluster.
struct Members {
    /// memberIndex → address, for own Services that have a NodePort.
    addresses: BTreeMap<i32, String>,
    /// The arbiter's address, when this cluster runs it.
    arbiter: Option<String>,
    /// Own members whose pod is ready.
    ready: BTreeSet<String>,
    running: i32,
    pods: Vec<Pod>,
    /// Member address → its pod's name (where `pods/exec` runs in-pod steps).
    pods_by_host: BTreeMap<String, String>,
}

async fn gather_members(mdb: &MongoDB, ctx: &Context) -> Result<Members, Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let name = mdb.name_any();
    let selector = format!("{LABEL_INSTANCE}={name},app.kubernetes.io/managed-by=fedstate");
    let lp = ListParams::default().labels(&selector);
    let services = Api::<Service>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(kube_err("list", "Services of", &name))?
        .items;
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(kube_err("list", "Pods of", &name))?
        .items;
    let mut addresses = BTreeMap::new();
    let mut arbiter = None;
    for s in &services {
        let port = s
            .spec
            .as_ref()
            .and_then(|sp| sp.ports.as_ref())
            .and_then(|p| p.first())
            .and_then(|p| p.node_port);
        let Some(port) = port else { continue };
        if is_arbiter(s.labels()) {
            arbiter = Some(ctx.settings.addressing.address(port));
        } else if let Some(i) = member_index_of(s.labels()) {
            addresses.insert(i, ctx.settings.addressing.address(port));
        }
    }
    let mut ready = BTreeSet::new();
    let mut pods_by_host = BTreeMap::new();
    let mut running = 0;
    for p in &pods {
        let st = p.status.as_ref();
        let is_running = st.and_then(|s| s.phase.as_deref()) == Some("Running");
        let is_ready = st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if is_running {
            running += 1;
        }
        let addr = if is_arbiter(p.labels()) {
            arbiter.as_ref()
        } else {
            member_index_of(p.labels()).and_then(|i| addresses.get(&i))
        };
        if (is_ready || is_running)
            && p.metadata.deletion_timestamp.is_none()
            && let Some(addr) = addr
        {
            ready.insert(addr.clone());
            pods_by_host.insert(addr.clone(), p.name_any());
        }
    }
    Ok(Members {
        addresses,
        arbiter,
        ready,
        running,
        pods,
        pods_by_host,
    })
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// Single-cluster use: the keyfile and credentials Secrets, created once and kept (the manager
/// propagates them for federated sets). `spec.rootPassword` (compatibility) rotates root.
async fn ensure_secrets(mdb: &MongoDB, ctx: &Context) -> Result<(), Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let name = mdb.name_any();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let owner = mdb
        .controller_owner_ref(&())
        .into_iter()
        .collect::<Vec<_>>();
    let mk = |sname: String, data: BTreeMap<String, ByteString>| Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(sname),
            namespace: Some(ns.clone()),
            labels: Some(managed_labels(&name)),
            owner_references: Some(owner.clone()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    };
    if mdb.spec.keyfile_secret_ref.is_none() {
        let kname = resources::keyfile_secret_name(&name);
        if api
            .get_opt(&kname)
            .await
            .map_err(kube_err("get", "Secret", &kname))?
            .is_none()
        {
            let value = fedstate_api::secrets::generate_keyfile(&mut rand::rng());
            let s = mk(
                kname.clone(),
                BTreeMap::from([(
                    resources::KEYFILE_KEY.to_owned(),
                    ByteString(value.into_bytes()),
                )]),
            );
            match api.create(&PostParams::default(), &s).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(kube_err("create", "Secret", &kname)(e)),
            }
        }
    }
    let cname = resources::credentials_secret_name(&name);
    let existing = api
        .get_opt(&cname)
        .await
        .map_err(kube_err("get", "Secret", &cname))?;
    let mut data: BTreeMap<String, ByteString> = existing
        .as_ref()
        .and_then(|s| s.data.clone())
        .unwrap_or_default();
    let before = data.clone();
    for key in [
        resources::CLUSTER_ADMIN_PASSWORD_KEY,
        resources::CLUSTER_MONITOR_PASSWORD_KEY,
    ] {
        data.entry(key.to_owned()).or_insert_with(|| {
            ByteString(fedstate_api::secrets::generate_password(&mut rand::rng()).into_bytes())
        });
    }
    if mdb.spec.root_password_secret_ref.is_none() {
        match mdb.spec.root_password.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => {
                data.insert(
                    resources::ROOT_PASSWORD_KEY.to_owned(),
                    ByteString(p.as_bytes().to_vec()),
                );
            }
            None => {
                data.entry(resources::ROOT_PASSWORD_KEY.to_owned())
                    .or_insert_with(|| {
                        ByteString(
                            fedstate_api::secrets::generate_password(&mut rand::rng()).into_bytes(),
                        )
                    });
            }
        }
    }
    if existing.is_none() || data != before {
        let s = mk(cname.clone(), data);
        api.patch(
            &cname,
            &PatchParams::apply(FIELD_MANAGER_AGENT).force(),
            &Patch::Apply(&s),
        )
        .await
        .map_err(kube_err("apply", "Secret", &cname))?;
    }
    Ok(())
}

async fn read_users(mdb: &MongoDB, ctx: &Context) -> Result<Option<Users>, Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let name = mdb.name_any();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let cname = resources::credentials_secret_name(&name);
    let Some(creds) = api
        .get_opt(&cname)
        .await
        .map_err(kube_err("get", "Secret", &cname))?
    else {
        return Ok(None);
    };
    let root = match &mdb.spec.root_password_secret_ref {
        Some(r) => api
            .get_opt(&r.name)
            .await
            .map_err(kube_err("get", "Secret", &r.name))?
            .and_then(|s| secret_value(&s, r.key_or_default())),
        None => secret_value(&creds, resources::ROOT_PASSWORD_KEY),
    };
    let admin = secret_value(&creds, resources::CLUSTER_ADMIN_PASSWORD_KEY);
    let monitor = secret_value(&creds, resources::CLUSTER_MONITOR_PASSWORD_KEY);
    let (Some(root), Some(admin), Some(monitor)) = (root, admin, monitor) else {
        return Ok(None);
    };
    let login = |u: &str, p: String| Login {
        user: u.to_owned(),
        password: Password::new(p),
    };
    Ok(Some(Users {
        root: login(resources::ROOT_USER, root),
        cluster_admin: login(resources::CLUSTER_ADMIN_USER, admin),
        cluster_monitor: login(resources::CLUSTER_MONITOR_USER, monitor),
    }))
}

/// The desired member list: the manager's host list, or (single cluster) our own members.
async fn desired_hosts(
    mdb: &MongoDB,
    ctx: &Context,
    members: &Members,
) -> Result<Vec<HostEntry>, String> {
    let ns = mdb.namespace().unwrap_or_default();
    if let Some(cm_name) = &mdb.spec.member_config_ref {
        let cm = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get_opt(cm_name)
            .await
            .map_err(|e| format!("ConfigMap {cm_name}: {e}"))?
            .ok_or_else(|| format!("waiting for the host list ConfigMap {cm_name}"))?;
        let json = cm
            .data
            .as_ref()
            .and_then(|d| d.get(HOSTCONF_KEY))
            .ok_or_else(|| format!("ConfigMap {cm_name} has no key {HOSTCONF_KEY}"))?;
        return HostConf::parse(json)
            .map(|c| c.hosts)
            .map_err(|e| e.to_string());
    }
    let cluster = ctx.settings.cluster_name.clone().unwrap_or_default();
    Ok(resources::local_members(&mdb.spec)
        .into_iter()
        .filter_map(|m| {
            Some(HostEntry {
                host: members.addresses.get(&m.index)?.clone(),
                member_index: m.index,
                votes: m.votes,
                priority: m.priority,
                arbiter_only: false,
                cluster: cluster.clone(),
            })
        })
        .collect())
}

async fn apply(mdb: &MongoDB, ctx: &Context) -> Result<Action, Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let name = mdb.name_any();
    let generation = mdb.metadata.generation;
    let image = mdb
        .spec
        .image
        .clone()
        .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
    let spec_error = check_image("spec.image", &image)
        .err()
        .map(|e| e.to_string());
    let paused = mdb.spec.pause == Some(true);
    if paused || spec_error.is_some() {
        let o = status::Observation {
            name: &name,
            namespace: &ns,
            generation,
            paused,
            spec_error,
            ..Default::default()
        };
        write_status(mdb, ctx, &o).await?;
        return Ok(Action::await_change());
    }

    // 1. Kubernetes objects.
    if mdb.spec.member_config_ref.is_none() {
        ensure_secrets(mdb, ctx).await?;
    }
    let user_yaml = match &mdb.spec.custom_config_ref {
        Some(cm) => Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
            .get_opt(cm)
            .await
            .map_err(kube_err("get", "ConfigMap", cm))?
            .and_then(|c| c.data)
            .and_then(|d| d.get(resources::USER_CONFIG_KEY).cloned()),
        None => None,
    };
    let desired = resources::desired_objects(mdb, user_yaml.as_deref())
        .map_err(|e| Error::Resources(name.clone(), e))?;
    let ssa = PatchParams::apply(FIELD_MANAGER_AGENT).force();
    let cm = &desired.config_map;
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(&cm.name_any(), &ssa, &Patch::Apply(cm))
        .await
        .map_err(kube_err("apply", "ConfigMap", &cm.name_any()))?;
    let svc_api = Api::<Service>::namespaced(ctx.client.clone(), &ns);
    // Federated sets: the manager propagates the member Services (NodePorts allocated once,
    // federation-wide); the agent only reads them.
    let own_services = mdb.spec.member_config_ref.is_none();
    for s in desired.services.iter().filter(|_| own_services) {
        svc_api
            .patch(&s.name_any(), &ssa, &Patch::Apply(s))
            .await
            .map_err(kube_err("apply", "Service", &s.name_any()))?;
    }
    let sts_api = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    for s in &desired.statefulsets {
        sts_api
            .patch(&s.name_any(), &ssa, &Patch::Apply(s))
            .await
            .map_err(kube_err("apply", "StatefulSet", &s.name_any()))?;
    }

    // 2. The replica set.
    let members = gather_members(mdb, ctx).await?;
    let users = read_users(mdb, ctx).await?;
    let key = format!("{ns}/{name}");
    let hosts = desired_hosts(mdb, ctx, &members).await;
    let mut own: BTreeSet<String> = members.addresses.values().cloned().collect();
    own.extend(members.arbiter.clone());
    if let (Ok(hosts), Some(cluster)) = (&hosts, &ctx.settings.cluster_name) {
        own.extend(
            hosts
                .iter()
                .filter(|h| &h.cluster == cluster)
                .map(|h| h.host.clone()),
        );
    }
    let force = mdb
        .annotations()
        .get(FORCE_RECONFIG_ANNOTATION)
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|g| Some(g) == generation);
    let (outcome, observation) = match (hosts, &users) {
        (Err(why), _) => (Some(Ok(Outcome::Waiting(why))), None),
        (Ok(_), None) => (
            Some(Ok(Outcome::Waiting(format!(
                "waiting for Secret {}",
                resources::credentials_secret_name(&name)
            )))),
            None,
        ),
        (Ok(hosts), Some(users)) => {
            let goal = SetGoal {
                set_name: resources::set_name(mdb),
                rs_init: mdb
                    .spec
                    .rs_init
                    .unwrap_or(mdb.spec.member_config_ref.is_none()),
                desired: Desired {
                    hosts,
                    own: own.clone(),
                    ready: members.ready.clone(),
                },
                force: ForceOptIn(force),
            };
            manage_set(ctx, mdb, &key, &members, goal, users).await
        }
    };
    if let Some(Ok(o)) = &outcome {
        announce(ctx, mdb, o).await;
    }

    // 3. Rolling restarts and removal of members the list dropped.
    if let Some(obs) = &observation {
        roll(mdb, ctx, &members, obs, &key, users.as_ref()).await?;
        let in_config: BTreeSet<&str> = obs
            .observed
            .config
            .iter()
            .flat_map(|c| c.members.iter().map(|m| m.host.as_str()))
            .collect();
        let wanted: BTreeSet<String> = desired.statefulsets.iter().map(|s| s.name_any()).collect();
        let selector = format!("{LABEL_INSTANCE}={name},app.kubernetes.io/managed-by=fedstate");
        let existing = sts_api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_err("list", "StatefulSets of", &name))?;
        for s in &existing.items {
            let sname = s.name_any();
            if wanted.contains(&sname) || obs.observed.config.is_none() {
                continue;
            }
            let addr = if is_arbiter(s.labels()) {
                members.arbiter.as_ref()
            } else {
                member_index_of(s.labels()).and_then(|i| members.addresses.get(&i))
            };
            if addr.is_some_and(|a| in_config.contains(a.as_str())) {
                continue; // still a member: the planner removes it first
            }
            tracing::info!(statefulset = %sname, "member left the replica set; deleting its objects");
            let dp = DeleteParams::default();
            let _ = sts_api.delete(&sname, &dp).await;
            if own_services {
                let _ = svc_api.delete(&sname, &dp).await;
            }
        }
    }

    let obs_members = observation
        .as_ref()
        .map(|o| o.members.clone())
        .unwrap_or_default();
    let o = status::Observation {
        name: &name,
        namespace: &ns,
        generation,
        paused: false,
        spec_error: None,
        outcome: outcome.clone(),
        members: &obs_members,
        running: members.running,
        resources: mdb.spec.resources.clone(),
        ignored_config: &desired.ignored_config,
    };
    write_status(mdb, ctx, &o).await?;
    Ok(match outcome {
        Some(Ok(Outcome::Done)) => Action::requeue(Duration::from_secs(30)),
        _ => Action::requeue(Duration::from_secs(2)),
    })
}

/// One replica-set step and the users, for an object whose hosts and Secrets are known.
async fn manage_set(
    ctx: &Context,
    mdb: &MongoDB,
    key: &str,
    members: &Members,
    goal: SetGoal,
    users: &Users,
) -> (
    Option<Result<Outcome, String>>,
    Option<crate::replset::Observation>,
) {
    let ns = mdb.namespace().unwrap_or_default();
    let in_pod = PodExec::new(
        Api::namespaced(ctx.client.clone(), &ns),
        members.pods_by_host.clone(),
    );
    let known: BTreeSet<String> = mdb
        .status
        .as_ref()
        .map(|s| s.replset.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    let mut candidates: BTreeSet<String> =
        goal.desired.hosts.iter().map(|h| h.host.clone()).collect();
    candidates.extend(goal.desired.own.iter().cloned());
    candidates.extend(known.iter().cloned());
    let mut admin = pick_admin(ctx, key, users, &candidates).await;
    if admin.login().is_none()
        && let Some(primary) = primary_by_hello(&admin, &candidates).await
    {
        // No login works anywhere but a primary exists: the set was initiated and has no
        // user yet. The first one is created in the primary's pod.
        let r = converge::ensure_users(&admin, &in_pod, &primary, users).await;
        report_users(ctx, mdb, r).await;
        admin = pick_admin(ctx, key, users, &candidates).await;
    }
    match converge::step(&admin, &in_pod, &goal, &known).await {
        Ok((outcome, obs)) => {
            if let Some(primary) = &obs.primary {
                let base = ctx.admin(key, None).await;
                let r = converge::ensure_users(&base, &in_pod, primary, users).await;
                report_users(ctx, mdb, r).await;
            }
            (Some(Ok(outcome)), Some(obs))
        }
        Err(e) => (Some(Err(e.to_string())), None),
    }
}

async fn report_users(
    ctx: &Context,
    mdb: &MongoDB,
    r: Result<converge::UserChanges, ReplSetError>,
) {
    match r {
        Ok(ch) if ch != Default::default() => {
            tracing::info!(created = ?ch.created, rotated = ?ch.rotated, "users updated");
            publish(
                ctx,
                mdb,
                EventType::Normal,
                "UsersUpdated",
                format!("created {:?}, rotated {:?}", ch.created, ch.rotated),
            )
            .await;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "users not reconciled yet"),
    }
}

/// The member `hello` names as the writable primary, if any answers so.
async fn primary_by_hello(admin: &ReplSetAdmin, hosts: &BTreeSet<String>) -> Option<String> {
    for h in hosts {
        if let Ok(hello) = admin.hello(h).await
            && hello.is_primary
        {
            return Some(h.clone());
        }
    }
    None
}

/// The adapter logged in as the cluster admin, else root, else nobody (only `hello` works).
/// A login counts when it works on any of `hosts`: members not yet in the set have no users.
async fn pick_admin(
    ctx: &Context,
    key: &str,
    users: &Users,
    hosts: &BTreeSet<String>,
) -> Arc<ReplSetAdmin> {
    for login in [&users.cluster_admin, &users.root] {
        let admin = ctx.admin(key, Some(login)).await;
        for h in hosts {
            if admin.hello(h).await.is_ok() {
                return admin;
            }
        }
    }
    ctx.admin(key, None).await
}

async fn roll(
    mdb: &MongoDB,
    ctx: &Context,
    members: &Members,
    obs: &crate::replset::Observation,
    key: &str,
    users: Option<&Users>,
) -> Result<(), Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let sts_api = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    let mut pods = Vec::new();
    for p in &members.pods {
        let Some(index) = member_index_of(p.labels()) else {
            continue;
        };
        let Some(host) = members.addresses.get(&index) else {
            continue;
        };
        let sts_name =
            fedstate_api::names::member_service_name(&mdb.name_any(), index.max(0) as u32);
        let update = sts_api
            .get_opt(&sts_name)
            .await
            .map_err(kube_err("get", "StatefulSet", &sts_name))?
            .and_then(|s| s.status)
            .and_then(|s| s.update_revision);
        let current = p.labels().get("controller-revision-hash").cloned();
        pods.push(PodRollout {
            index,
            host: host.clone(),
            outdated: update.is_some() && current.is_some() && update != current,
            ready: members.ready.contains(host),
        });
    }
    let voters: BTreeMap<String, MemberState> = obs
        .observed
        .config
        .iter()
        .flat_map(|c| c.members.iter().filter(|m| m.votes > 0))
        .map(|m| (m.host.clone(), obs.observed.state(&m.host)))
        .collect();
    match rollout::next_restart(&pods, &voters, obs.primary.as_deref()) {
        RolloutStep::Restart { index } => {
            let pod = format!(
                "{}-0",
                fedstate_api::names::member_service_name(&mdb.name_any(), index.max(0) as u32)
            );
            tracing::info!(%pod, "rolling restart");
            Api::<Pod>::namespaced(ctx.client.clone(), &ns)
                .delete(&pod, &DeleteParams::default())
                .await
                .map_err(kube_err("delete", "Pod", &pod))?;
        }
        RolloutStep::StepDown { host } => {
            if let Some(users) = users {
                let admin = ctx.admin(key, Some(&users.cluster_admin)).await;
                if let Err(e) = admin.step_down(&host).await {
                    tracing::warn!(error = %e, "step-down before restart failed");
                }
            }
        }
        RolloutStep::Wait(_) | RolloutStep::Done => {}
    }
    Ok(())
}

async fn publish(ctx: &Context, mdb: &MongoDB, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "ReplicaSet".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &mdb.object_ref(&())).await {
        tracing::debug!(error = %e, "cannot publish event");
    }
}

async fn announce(ctx: &Context, mdb: &MongoDB, o: &Outcome) {
    let (t, reason) = match o {
        Outcome::Initiated { .. } => (EventType::Normal, "Initiated"),
        Outcome::Reconfigured { .. } => (EventType::Normal, "Reconfigured"),
        Outcome::SteppedDown { .. } => (EventType::Normal, "SteppedDown"),
        Outcome::DefaultWriteConcernSet { .. } => (EventType::Normal, "DefaultWriteConcernSet"),
        Outcome::ForcedReconfig { .. } => (EventType::Warning, "ForcedReconfig"),
        Outcome::QuorumLost { .. } => (EventType::Warning, "QuorumLost"),
        Outcome::ForeignSet { .. } => (EventType::Warning, "ForeignReplicaSet"),
        Outcome::Waiting(_) | Outcome::Done => return,
    };
    metrics::counter!("fedstate_agent_replset_steps_total", "step" => reason).increment(1);
    publish(ctx, mdb, t, reason, format!("{o:?}")).await;
}

async fn write_status(
    mdb: &MongoDB,
    ctx: &Context,
    o: &status::Observation<'_>,
) -> Result<(), Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let name = mdb.name_any();
    let new = status::compute(mdb.status.as_ref(), o, jiff::Timestamp::now());
    if mdb.status.as_ref() == Some(&new) {
        return Ok(());
    }
    Api::<MongoDB>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": new})),
        )
        .await
        .map_err(kube_err("patch status of", "MongoDB", &name))?;
    Ok(())
}

/// Deletion: leave the replica set cleanly (remove this cluster's members, stepping the primary
/// down first) when other clusters' members remain; then the owner references delete the rest.
async fn cleanup(mdb: &MongoDB, ctx: &Context) -> Result<Action, Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let name = mdb.name_any();
    let members = gather_members(mdb, ctx).await?;
    let mut own: BTreeSet<String> = members.addresses.values().cloned().collect();
    own.extend(members.arbiter.clone());
    let Ok(hosts) = desired_hosts(mdb, ctx, &members).await else {
        return Ok(Action::await_change());
    };
    let others: Vec<HostEntry> = hosts
        .into_iter()
        .filter(|h| !own.contains(&h.host))
        .collect();
    let Some(users) = read_users(mdb, ctx).await? else {
        return Ok(Action::await_change());
    };
    if others.is_empty() || mdb.spec.pause == Some(true) {
        return Ok(Action::await_change());
    }
    let key = format!("{ns}/{name}");
    let admin = ctx.admin(&key, Some(&users.cluster_admin)).await;
    let in_pod = PodExec::new(
        Api::namespaced(ctx.client.clone(), &ns),
        members.pods_by_host.clone(),
    );
    let goal = SetGoal {
        set_name: resources::set_name(mdb),
        rs_init: false,
        desired: Desired {
            hosts: others,
            own,
            ready: BTreeSet::new(),
        },
        force: ForceOptIn(false),
    };
    // Bounded: a set that cannot change (no primary) must not block deletion forever.
    for _ in 0..20 {
        match converge::step(&admin, &in_pod, &goal, &BTreeSet::new()).await {
            Ok((Outcome::Done, _)) | Ok((Outcome::QuorumLost { .. }, _)) => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(ReplSetError::Unreachable { .. }) => break,
            Err(e) => {
                tracing::warn!(error = %e, "leaving the replica set failed; deleting anyway");
                break;
            }
        }
    }
    Ok(Action::await_change())
}
