//! The kube-runtime controller: gathers inputs from the Karmada apiserver, calls the pure core
//! ([`crate::members`], [`crate::desired`], [`crate::status`], [`crate::teardown`]) and applies
//! what it returns with server-side apply under one field manager.
//!
//! Watch-driven: `MultiCloudMongoDB`s, our Services, the `MongoDB` ResourceBindings (status from
//! the members) and Karmada Clusters (VIPs, readiness) all trigger reconciles; the only timers are
//! short requeues while something is in flight and a slow resync.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedstate_api::condition::{Condition, ConditionStatus, set_condition, types};
use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_api::karmada::binding_status::{
    ResourceBindingStatus, TargetCluster, resource_binding_name,
};
use fedstate_api::karmada::override_policy::OverridePolicy;
use fedstate_api::karmada::propagation::PropagationPolicy;
use fedstate_api::karmada::work::{work_cluster, work_is_for_binding, work_resource};
use fedstate_api::v1alpha1::check_image;
use fedstate_api::{MongoDB, MultiCloudMongoDB, SchedulerResult, names};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::desired::{self, DesiredError};
use crate::members::{self, MemberRecord, MembersError, Phase};
use crate::secrets;
use crate::status::{self, StatusInputs};
use crate::teardown::{self, TeardownStep, TeardownView};

/// Our finalizer on `MultiCloudMongoDB`.
pub const FINALIZER: &str = "middleware.fedstate.io/manager";
/// Conditions the manager owns (the scheduler owns `Scheduled`, `ServerScheduledResult`,
/// `QuorumAtRisk`).
pub const OWNED_CONDITIONS: [&str; 5] = [
    types::SERVER_READY,
    types::SCALING_IN_PROGRESS,
    types::FAILOVER_IN_PROGRESS,
    types::DEGRADED,
    types::SPEC_VALID,
];

/// Everything that can go wrong talking to the apiserver. User-facing problems with the object
/// itself are not errors: they become conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("object has no namespace")]
    NotNamespaced,
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    fn kube(
        action: &'static str,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Self {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        move |source| Self::Kube {
            action,
            kind,
            namespace,
            name,
            source,
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
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub clusters: Store<Cluster>,
    pub options: Options,
    failures: Arc<Mutex<HashMap<ObjectRef<MultiCloudMongoDB>, u32>>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub fn new(client: Client, clusters: Store<Cluster>, options: Options) -> Self {
        let reporter = Reporter {
            controller: "fedstate-manager".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            clusters,
            options,
            failures: Arc::default(),
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(names::FIELD_MANAGER).force()
}

/// Server-side apply of one typed object.
async fn apply<K>(api: &Api<K>, obj: &K, kind: &'static str) -> Result<K>
where
    K: Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    api.patch(&name, &apply_params(), &Patch::Apply(obj))
        .await
        .map_err(Error::kube("apply", kind, &ns, &name))
}

/// Reconcile entry point: the finalizer wraps apply and cleanup.
pub async fn reconcile(mcm: Arc<MultiCloudMongoDB>, ctx: Arc<Context>) -> Result<Action> {
    let ns = mcm.namespace().ok_or(Error::NotNamespaced)?;
    let name = mcm.name_any();
    let started = Instant::now();
    let span = info_span!("reconcile", object = %format!("{ns}/{name}"), generation = ?mcm.metadata.generation);
    let api: Api<MultiCloudMongoDB> = Api::namespaced(ctx.client.clone(), &ns);
    // kube's finalizer() releases the finalizer as soon as cleanup returns Ok, so the ordered
    // teardown runs here, step by step, and finalizer() is only reached once it is done.
    let deleting = mcm.metadata.deletion_timestamp.is_some()
        && mcm.finalizers().iter().any(|f| f == FINALIZER);
    let result = async {
        if deleting && let Some(wait) = cleanup(&mcm, &ctx).await? {
            return Ok(wait);
        }
        finalizer(&api, FINALIZER, mcm, |event| async {
            match event {
                Finalizer::Apply(m) => apply_object(&m, &ctx).await,
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
    if result.is_ok()
        && let Ok(mut f) = ctx.failures.lock()
    {
        f.remove(&ObjectRef::new(&name).within(&ns));
    }
    result
}

/// Exponential backoff per object: 2 s, 4 s, … up to 5 minutes.
pub fn error_policy(mcm: Arc<MultiCloudMongoDB>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(&*mcm);
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key).or_default();
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let delay = Duration::from_secs(2u64.saturating_pow(n.min(9)).min(300));
    warn!(object = %format!("{}/{}", mcm.namespace().unwrap_or_default(), mcm.name_any()), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// What stops us from acting on the object, as a condition (nothing is applied).
struct Blocked {
    reason: &'static str,
    message: String,
    spec_invalid: bool,
}

async fn apply_object(mcm: &MultiCloudMongoDB, ctx: &Context) -> Result<Action> {
    let ns = mcm.namespace().ok_or(Error::NotNamespaced)?;
    let name = mcm.name_any();
    let generation = mcm.metadata.generation;

    // 1. Bad input: a condition naming the field and what to do, nothing half-applied.
    if let Err(e) = check_image("spec.imageSetting.image", mcm.spec.image()) {
        return block(
            mcm,
            ctx,
            Blocked {
                reason: "UnsupportedImage",
                message: e.to_string(),
                spec_invalid: true,
            },
        )
        .await;
    }
    let Some(value) = mcm
        .annotations()
        .get(names::SCHEDULER_RESULT_ANNOTATION)
        .cloned()
    else {
        return block(
            mcm,
            ctx,
            Blocked {
                reason: "WaitingForPlacement",
                message: format!(
                    "waiting for scheduler {:?} to write the {} annotation",
                    mcm.spec.scheduler_name(),
                    names::SCHEDULER_RESULT_ANNOTATION
                ),
                spec_invalid: false,
            },
        )
        .await;
    };
    let clusters = ctx.clusters.state();
    let known = |c: &str| clusters.iter().any(|k| k.name_any() == c);
    let plan = match SchedulerResult::parse_for(&value, mcm.spec.replicaset, known) {
        Ok(p) => p,
        Err(e) => {
            return block(
                mcm,
                ctx,
                Blocked {
                    reason: "InvalidSchedulerResult",
                    message: e.to_string(),
                    spec_invalid: false,
                },
            )
            .await;
        }
    };
    if let (Some(planned), Some(current)) = (plan.generation, generation)
        && planned != current
    {
        return block(
            mcm,
            ctx,
            Blocked {
                reason: "WaitingForPlacement",
                message: format!(
                    "the schedulerResult annotation was computed for generation {planned}; waiting for the scheduler to place generation {current}"
                ),
                spec_invalid: false,
            },
        )
        .await;
    }
    let vips: BTreeMap<String, String> = clusters
        .iter()
        .filter_map(|c| Some((c.name_any(), names::cluster_vip(c.labels())?.to_owned())))
        .collect();
    let cluster_ready: BTreeMap<String, bool> = clusters
        .iter()
        .map(|c| (c.name_any(), c.is_ready()))
        .collect();

    // 2. What exists: our member Services (the identity record) and the binding's status.
    let client = &ctx.client;
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let selector = format!(
        "{}={},{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY,
        names::LABEL_INSTANCE,
        name
    );
    let existing_svcs = svc_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("list", "Service", &ns, &name))?;
    let records: Vec<MemberRecord> = existing_svcs
        .items
        .iter()
        .filter_map(desired::record_from_service)
        .collect();
    let rb_name = resource_binding_name(&name, "MongoDB");
    let rb_api: Api<ResourceBinding> = Api::namespaced(client.clone(), &ns);
    let rb = rb_api.get_opt(&rb_name).await.map_err(Error::kube(
        "get",
        "ResourceBinding",
        &ns,
        &rb_name,
    ))?;
    let rb_status: ResourceBindingStatus = rb
        .as_ref()
        .and_then(|r| r.status.clone())
        .unwrap_or_default();

    // 3. Members: forget retiring members the status shows gone, then assign.
    let ports = |recs: &[MemberRecord]| -> BTreeMap<(i32, bool), i32> {
        recs.iter()
            .filter_map(|r| Some(((r.index, r.arbiter), r.node_port?)))
            .collect()
    };
    let first = match members::assign(&records, &plan) {
        Ok(a) => a,
        Err(e) => return block_members(mcm, ctx, e).await,
    };
    let known_addresses = desired::addresses(&first, &vips, &ports(&records));
    let retiring: BTreeMap<(i32, bool), Option<String>> = first
        .members
        .iter()
        .filter(|m| m.phase == Phase::Retiring)
        .map(|m| {
            (
                (m.index, m.arbiter),
                known_addresses.get(&(m.index, m.arbiter)).cloned(),
            )
        })
        .collect();
    let observations = status::observations(&rb_status.aggregated_status, &cluster_ready);
    let kept = members::confirm_gone(&records, &retiring, &observations);
    let assignment = match members::assign(&kept, &plan) {
        Ok(a) => a,
        Err(e) => return block_members(mcm, ctx, e).await,
    };
    for c in desired::binding_clusters(&assignment) {
        if !vips.contains_key(&c.name) {
            let e = DesiredError::MissingVip { cluster: c.name };
            return block(
                mcm,
                ctx,
                Blocked {
                    reason: "MissingClusterVip",
                    message: e.to_string(),
                    spec_invalid: false,
                },
            )
            .await;
        }
    }

    // 4. Secrets (kept once generated).
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let keyfile_name = secrets::keyfile_secret_name(&name);
    let old_keyfile = secret_api
        .get_opt(&keyfile_name)
        .await
        .map_err(Error::kube("get", "Secret", &ns, &keyfile_name))?;
    let creds_name = secrets::credentials_secret_name(&name);
    let old_creds = secret_api.get_opt(&creds_name).await.map_err(Error::kube(
        "get",
        "Secret",
        &ns,
        &creds_name,
    ))?;
    // ThreadRng is not Send: use it in a scope without awaits.
    let wanted_secrets = {
        let mut rng = rand::rng();
        let wanted = vec![
            (
                old_keyfile.clone(),
                desired::with_meta(
                    mcm,
                    secrets::keyfile_secret(&name, old_keyfile.as_ref(), &mut rng),
                ),
            ),
            (
                old_creds.clone(),
                desired::with_meta(
                    mcm,
                    secrets::credentials_secret(mcm, old_creds.as_ref(), &mut rng),
                ),
            ),
        ];
        wanted
    };
    let mut wanted_secrets = wanted_secrets;
    if let Some(pull) = secrets::pull_secret(mcm) {
        let pull_name = pull.metadata.name.clone().unwrap_or_default();
        let old = secret_api
            .get_opt(&pull_name)
            .await
            .map_err(Error::kube("get", "Secret", &ns, &pull_name))?;
        wanted_secrets.push((old, desired::with_meta(mcm, pull)));
    }
    for (old, new) in wanted_secrets {
        let unchanged = old.as_ref().is_some_and(|o| o.data == new.data);
        if !unchanged {
            apply(&secret_api, &new, "Secret").await?;
        }
    }

    // 5. Services first: the Karmada apiserver allocates their NodePorts.
    let mut node_ports = BTreeMap::new();
    for svc in desired::services(mcm, &assignment) {
        let applied = apply(&svc_api, &svc, "Service").await?;
        if let Some(r) = desired::record_from_service(&applied)
            && let Some(p) = r.node_port
        {
            node_ports.insert((r.index, r.arbiter), p);
        }
    }

    // 6. Everything else.
    let want = match desired::desired(mcm, &assignment, &vips, &node_ports) {
        Ok(d) => d,
        Err(e @ DesiredError::PortPending { .. }) => {
            info!(error = %e, "waiting for a NodePort");
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        Err(e) => {
            return block(
                mcm,
                ctx,
                Blocked {
                    reason: "InvalidPlacement",
                    message: e.to_string(),
                    spec_invalid: false,
                },
            )
            .await;
        }
    };
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    apply(&cm_api, &want.hostconf, "ConfigMap").await?;
    let op_api: Api<OverridePolicy> = Api::namespaced(client.clone(), &ns);
    apply(&op_api, &want.override_policy, "OverridePolicy").await?;
    let mdb_api: Api<MongoDB> = Api::namespaced(client.clone(), &ns);
    apply(&mdb_api, &want.mongodb, "MongoDB").await?;
    let pp_api: Api<PropagationPolicy> = Api::namespaced(client.clone(), &ns);
    for p in &want.propagation_policies {
        apply(&pp_api, p, "PropagationPolicy").await?;
    }

    // 7. The binding: exactly the planned members per cluster.
    let mut placement_changed = false;
    if let Some(rb) = &rb {
        placement_changed = write_binding(&rb_api, rb, &want.binding_clusters, &ns).await?;
    }
    if placement_changed {
        publish(
            ctx,
            mcm,
            EventType::Normal,
            "PlacementApplied",
            "ApplyPlacement",
            format!("members per cluster: {}", plan.summary()),
        )
        .await;
    }

    // 8. Garbage: Services of forgotten members, policies of clusters no longer used.
    for svc in &existing_svcs.items {
        let svc_name = svc.name_any();
        if desired::record_from_service(svc).is_some_and(|r| {
            !assignment
                .members
                .iter()
                .any(|m| m.index == r.index && m.arbiter == r.arbiter && m.cluster == r.cluster)
        }) {
            delete(&svc_api, &svc_name, "Service", &ns).await?;
        }
    }
    let policies = pp_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("list", "PropagationPolicy", &ns, &name))?;
    for p in policies.items {
        let pname = p.name_any();
        if !want
            .propagation_policies
            .iter()
            .any(|w| w.metadata.name.as_deref() == Some(pname.as_str()))
        {
            delete(&pp_api, &pname, "PropagationPolicy", &ns).await?;
        }
    }

    // 9. Status.
    let addresses = desired::addresses(&assignment, &vips, &node_ports);
    let observed = status::observe(StatusInputs {
        generation,
        plan: &plan,
        assignment: &assignment,
        addresses: &addresses,
        aggregated: &rb_status.aggregated_status,
        cluster_ready: &cluster_ready,
    });
    let mut conds = observed.conditions.clone();
    conds.push(Condition::new(
        types::SPEC_VALID,
        ConditionStatus::True,
        "SpecValid",
        "the spec can be acted on",
        generation,
    ));
    let busy = observed.conditions.iter().any(|c| {
        (c.type_ == types::SCALING_IN_PROGRESS || c.type_ == types::FAILOVER_IN_PROGRESS)
            && c.is_true()
    }) || rb.is_none();
    let was_ready = mcm
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::SERVER_READY))
        .map(Condition::is_true);
    let ready_now = observed
        .conditions
        .iter()
        .find(|c| c.type_ == types::SERVER_READY)
        .is_some_and(Condition::is_true);
    if was_ready != Some(ready_now) && (ready_now || was_ready == Some(true)) {
        let (kind, reason) = if ready_now {
            (EventType::Normal, "Ready")
        } else {
            (EventType::Warning, "NotReady")
        };
        let note = observed
            .conditions
            .iter()
            .find(|c| c.type_ == types::SERVER_READY)
            .and_then(|c| c.message.clone())
            .unwrap_or_default();
        publish(ctx, mcm, kind, reason, "Observe", note).await;
    }
    write_status(mcm, ctx, Some(observed.status), conds).await?;
    Ok(if busy {
        Action::requeue(ctx.options.busy_requeue)
    } else {
        Action::requeue(ctx.options.idle_requeue)
    })
}

async fn block_members(mcm: &MultiCloudMongoDB, ctx: &Context, e: MembersError) -> Result<Action> {
    block(
        mcm,
        ctx,
        Blocked {
            reason: "InvalidPlacement",
            message: e.to_string(),
            spec_invalid: false,
        },
    )
    .await
}

/// Report why nothing was applied; keep what was applied before.
async fn block(mcm: &MultiCloudMongoDB, ctx: &Context, b: Blocked) -> Result<Action> {
    let g = mcm.metadata.generation;
    let mut conds = vec![Condition::new(
        types::SERVER_READY,
        ConditionStatus::False,
        b.reason,
        b.message.clone(),
        g,
    )];
    conds.push(if b.spec_invalid {
        Condition::new(
            types::SPEC_VALID,
            ConditionStatus::False,
            b.reason,
            b.message.clone(),
            g,
        )
    } else {
        Condition::new(
            types::SPEC_VALID,
            ConditionStatus::True,
            "SpecValid",
            "the spec can be acted on",
            g,
        )
    });
    let old_reason = mcm
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == types::SERVER_READY))
        .and_then(|c| c.reason.clone());
    if old_reason.as_deref() != Some(b.reason) {
        let kind = if b.reason == "WaitingForPlacement" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        publish(ctx, mcm, kind, b.reason, "Validate", b.message).await;
    }
    write_status(mcm, ctx, None, conds).await?;
    Ok(Action::await_change())
}

/// Server-side apply of the status fields we own. `fresh` replaces state/result/externalAddr;
/// `None` re-applies the current ones (so a blocked reconcile does not wipe the topology).
async fn write_status(
    mcm: &MultiCloudMongoDB,
    ctx: &Context,
    fresh: Option<fedstate_api::v1alpha1::MultiCloudMongoDBStatus>,
    new_conditions: Vec<Condition>,
) -> Result<()> {
    let ns = mcm.namespace().ok_or(Error::NotNamespaced)?;
    let name = mcm.name_any();
    let old = mcm.status.clone().unwrap_or_default();
    let mut conditions: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let now = jiff::Timestamp::now();
    let mut changed = false;
    for c in new_conditions {
        changed |= set_condition(&mut conditions, c, now);
    }
    let base = fresh.clone().unwrap_or_else(|| old.clone());
    let mut body = json!({
        "apiVersion": fedstate_api::API_VERSION,
        "kind": "MultiCloudMongoDB",
        "status": {"conditions": conditions},
    });
    if let Some(s) = base.state {
        body["status"]["state"] = json!(s);
    }
    if let Some(a) = &base.external_addr {
        body["status"]["externalAddr"] = json!(a);
    }
    if !base.result.is_empty() {
        body["status"]["result"] = json!(base.result);
    }
    let observed_generation = if fresh.is_some() {
        mcm.metadata.generation
    } else {
        old.observed_generation
    };
    if let Some(g) = observed_generation {
        body["status"]["observedGeneration"] = json!(g);
    }
    let same_fields = old.state == base.state
        && old.external_addr == base.external_addr
        && old.result == base.result
        && old.observed_generation == observed_generation;
    if !changed && same_fields {
        return Ok(());
    }
    let api: Api<MultiCloudMongoDB> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch_status(&name, &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(Error::kube("apply status", "MultiCloudMongoDB", &ns, &name))?;
    Ok(())
}

/// Write `spec.clusters` (and the `Scheduled` condition Karmada's tools read) when they differ.
/// Returns whether the placement changed.
async fn write_binding(
    api: &Api<ResourceBinding>,
    rb: &ResourceBinding,
    clusters: &[TargetCluster],
    ns: &str,
) -> Result<bool> {
    let name = rb.name_any();
    let changed = rb.spec.clusters != clusters;
    if changed {
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"clusters": clusters}})),
        )
        .await
        .map_err(Error::kube("patch", "ResourceBinding", ns, &name))?;
    }
    let status = rb.status.clone().unwrap_or_default();
    let scheduled = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Scheduled" && c.status == "True");
    if changed || !scheduled || status.scheduler_observed_generation != rb.metadata.generation {
        let now = Time(jiff::Timestamp::now());
        let mut conditions: Vec<serde_json::Value> = status
            .conditions
            .iter()
            .filter(|c| c.type_ != "Scheduled")
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        conditions.push(json!({
            "type": "Scheduled", "status": "True", "reason": "Success",
            "message": "placed by fedstate-manager from the schedulerResult annotation",
            "lastTransitionTime": now,
        }));
        let mut st = json!({"conditions": conditions, "lastScheduledTime": now});
        if let Some(g) = rb.metadata.generation {
            st["schedulerObservedGeneration"] = json!(g);
        }
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": st })),
        )
        .await
        .map_err(Error::kube("patch status", "ResourceBinding", ns, &name))?;
    }
    Ok(changed)
}

async fn delete<K>(api: &Api<K>, name: &str, kind: &'static str, ns: &str) -> Result<()>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete", kind, ns, name)(e)),
    }
}

async fn publish(
    ctx: &Context,
    mcm: &MultiCloudMongoDB,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &mcm.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

/// Ordered teardown (see [`crate::teardown`]): one step per call; `None` once nothing is left.
async fn cleanup(mcm: &MultiCloudMongoDB, ctx: &Context) -> Result<Option<Action>> {
    let ns = mcm.namespace().ok_or(Error::NotNamespaced)?;
    let name = mcm.name_any();
    let client = &ctx.client;
    let mdb_api: Api<MongoDB> = Api::namespaced(client.clone(), &ns);
    let template_exists = mdb_api
        .get_opt(&name)
        .await
        .map_err(Error::kube("get", "MongoDB", &ns, &name))?
        .is_some();
    let rb_name = resource_binding_name(&name, "MongoDB");
    let works: Api<DynamicObject> = Api::all_with(client.clone(), &work_resource());
    let work_list = works
        .list(&ListParams::default())
        .await
        .map_err(Error::kube("list", "Work", "", ""))?;
    let ready_by_name: BTreeMap<String, bool> = ctx
        .clusters
        .state()
        .iter()
        .map(|c| (c.name_any(), c.is_ready()))
        .collect();
    let mut view = TeardownView {
        template_exists,
        ..Default::default()
    };
    for w in &work_list.items {
        if !work_is_for_binding(w.annotations(), w.labels(), &ns, &rb_name) {
            continue;
        }
        let work_ns = w.namespace().unwrap_or_default();
        let cluster = work_cluster(&work_ns).unwrap_or(&work_ns).to_owned();
        if ready_by_name.get(&cluster).copied().unwrap_or(false) {
            view.works_in_reachable_clusters.push(cluster);
        } else {
            view.works_in_unreachable_clusters.push(cluster);
        }
    }
    let selector = format!(
        "{}={},{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY,
        names::LABEL_INSTANCE,
        name
    );
    let lp = ListParams::default().labels(&selector);
    let svc_api: Api<Service> = Api::namespaced(client.clone(), &ns);
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pp_api: Api<PropagationPolicy> = Api::namespaced(client.clone(), &ns);
    let op_api: Api<OverridePolicy> = Api::namespaced(client.clone(), &ns);
    let mut owned: Vec<(String, String)> = Vec::new();
    macro_rules! collect {
        ($api:expr, $kind:literal) => {
            for o in $api
                .list(&lp)
                .await
                .map_err(Error::kube("list", $kind, &ns, &name))?
                .items
            {
                owned.push(($kind.to_owned(), o.name_any()));
            }
        };
    }
    collect!(svc_api, "Service");
    collect!(cm_api, "ConfigMap");
    collect!(secret_api, "Secret");
    collect!(pp_api, "PropagationPolicy");
    collect!(op_api, "OverridePolicy");
    view.owned_left = owned.iter().map(|(k, n)| format!("{k}/{n}")).collect();

    match teardown::next_step(&view) {
        TeardownStep::DeleteTemplate => {
            publish(
                ctx,
                mcm,
                EventType::Normal,
                "DeletingMembers",
                "Delete",
                "deleting the member MongoDB objects in every cluster".into(),
            )
            .await;
            delete(&mdb_api, &name, "MongoDB", &ns).await?;
            Ok(Some(Action::requeue(Duration::from_secs(2))))
        }
        TeardownStep::WaitForMembers { clusters } => {
            info!(?clusters, "waiting for the members to be gone");
            Ok(Some(Action::requeue(Duration::from_secs(3))))
        }
        TeardownStep::DeleteOwned { .. } => {
            if !view.works_in_unreachable_clusters.is_empty() {
                publish(ctx, mcm, EventType::Warning, "UnreachableClusters", "Delete",
                    format!("clusters {} are unreachable; Karmada removes the members there when they return",
                        view.works_in_unreachable_clusters.join(", "))).await;
            }
            for (kind, n) in &owned {
                match kind.as_str() {
                    "Service" => delete(&svc_api, n, "Service", &ns).await?,
                    "ConfigMap" => delete(&cm_api, n, "ConfigMap", &ns).await?,
                    "Secret" => delete(&secret_api, n, "Secret", &ns).await?,
                    "PropagationPolicy" => delete(&pp_api, n, "PropagationPolicy", &ns).await?,
                    _ => delete(&op_api, n, "OverridePolicy", &ns).await?,
                }
            }
            Ok(Some(Action::requeue(Duration::from_secs(2))))
        }
        TeardownStep::Done => Ok(None),
    }
}

/// The MultiCloudMongoDB a `MongoDB` binding belongs to.
fn binding_owner(rb: &ResourceBinding) -> Option<ObjectRef<MultiCloudMongoDB>> {
    let r = &rb.spec.resource;
    (r.kind == "MongoDB" && r.api_version == fedstate_api::API_VERSION).then(|| {
        ObjectRef::new(&r.name).within(
            r.namespace
                .as_deref()
                .or(rb.metadata.namespace.as_deref())
                .unwrap_or_default(),
        )
    })
}

/// Run the controller until `shutdown`. Marks `health` ready once the Cluster cache is synced.
pub async fn run(
    client: Client,
    options: Options,
    health: fedstate_runtime::admin::Health,
    shutdown: CancellationToken,
) {
    let clusters: Api<Cluster> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let cluster_events = reflector(
        writer,
        watcher(clusters.clone(), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| futures::future::ready(()));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = cluster_events => {}
            () = stop.cancelled() => {}
        }
    });
    let ctx = Arc::new(Context::new(client.clone(), reader.clone(), options));
    let managed = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY
    ));
    let mcms: Api<MultiCloudMongoDB> = Api::all(client.clone());
    let controller = Controller::new(mcms, watcher::Config::default());
    let store = controller.store();
    let all = move |_| {
        store
            .state()
            .iter()
            .map(|o| ObjectRef::from_obj(&**o))
            .collect::<Vec<_>>()
    };
    let ready_waiter = {
        let reader = reader.clone();
        let health = health.clone();
        async move {
            if reader.wait_until_ready().await.is_ok() {
                health.set_ready(true);
                info!("Cluster cache synced; ready");
            }
        }
    };
    tokio::spawn(ready_waiter);
    controller
        .owns(Api::<Service>::all(client.clone()), managed.clone())
        .watches(
            Api::<ResourceBinding>::all(client.clone()),
            watcher::Config::default(),
            |rb| binding_owner(&rb),
        )
        .watches(clusters, watcher::Config::default(), all)
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
    health.set_ready(false);
}
