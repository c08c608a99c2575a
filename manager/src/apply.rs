//! Carrying out the decisions: server-side apply with our field manager, merge patches of the
//! binding, deletes, events. No decisions are made here.

use std::collections::BTreeMap;
use std::time::Duration;

use fedstate_api::hostconf::{TEARDOWN_KEY, TEARDOWN_VALUE};
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_api::karmada::override_policy::OverridePolicy;
use fedstate_api::karmada::propagation::PropagationPolicy;
use fedstate_api::names;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use tracing::{info, warn};

use crate::controller::{Context, Error, Result};
use crate::decide::{self, Blocked, Decision, Members, Note};
use crate::desired;
use crate::middleware::{Kind, Middleware};
use crate::teardown::{OwnedKind, OwnedRef, TeardownStep};

/// How soon to look again while a deletion step or a NodePort allocation is under way.
const STEP_REQUEUE: Duration = Duration::from_secs(2);
/// How soon to look again while the member objects are being torn down.
const MEMBERS_GONE_REQUEUE: Duration = Duration::from_secs(3);

fn api<K: Kind>(ctx: &Context<impl Middleware>, ns: &str) -> Api<K> {
    Api::namespaced(ctx.client.clone(), ns)
}

fn namespace<K: Kind>(obj: &K) -> Result<String> {
    obj.namespace().ok_or(Error::NotNamespaced)
}

/// Server-side apply of one typed object.
async fn apply<K: Kind>(ctx: &Context<impl Middleware>, obj: &K) -> Result<K> {
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    api::<K>(ctx, &ns)
        .patch(
            &name,
            &PatchParams::apply(names::FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .map_err(Error::kube("apply", K::kind(&()), &ns, &name))
}

async fn delete<K: Kind>(ctx: &Context<impl Middleware>, ns: &str, name: &str) -> Result<()> {
    match api::<K>(ctx, ns)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete", K::kind(&()), ns, name)(e)),
    }
}

/// Delete one of our objects (gone already is fine).
async fn delete_owned<M: Middleware>(ctx: &Context<M>, ns: &str, r: &OwnedRef) -> Result<()> {
    let n = r.name.as_str();
    match r.kind {
        OwnedKind::Template => delete::<M::Member>(ctx, ns, n).await,
        OwnedKind::Service => delete::<Service>(ctx, ns, n).await,
        OwnedKind::ConfigMap => delete::<ConfigMap>(ctx, ns, n).await,
        OwnedKind::Secret => delete::<Secret>(ctx, ns, n).await,
        OwnedKind::PropagationPolicy => delete::<PropagationPolicy>(ctx, ns, n).await,
        OwnedKind::OverridePolicy => delete::<OverridePolicy>(ctx, ns, n).await,
    }
}

/// Publish an event about the object; a failure is logged, never fatal.
async fn publish<M: Middleware>(ctx: &Context<M>, obj: &M::Federated, n: Note) {
    let ev = Event {
        type_: n.type_,
        reason: n.reason,
        note: Some(n.note),
        action: n.action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    }
}

/// Server-side apply of our status fields.
async fn write_status<M: Middleware>(
    ctx: &Context<M>,
    obj: &M::Federated,
    body: &Value,
) -> Result<()> {
    let (ns, name) = (namespace(obj)?, obj.name_any());
    api::<M::Federated>(ctx, &ns)
        .patch_status(
            &name,
            &PatchParams::apply(names::FIELD_MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
        .map_err(Error::kube(
            "apply status",
            M::Federated::kind(&()),
            &ns,
            &name,
        ))?;
    Ok(())
}

/// Report why nothing was applied; keep what was applied before.
pub async fn blocked<M: Middleware>(
    ctx: &Context<M>,
    obj: &M::Federated,
    b: &Blocked,
) -> Result<Action> {
    let w = decide::blocked(&ctx.middleware, obj, b, jiff::Timestamp::now());
    if let Some(n) = w.event {
        publish(ctx, obj, n).await;
    }
    if let Some(body) = &w.status {
        write_status(ctx, obj, body).await?;
    }
    // An object we did not create is not watched (nor are Secrets): look again for a refused
    // one after a while.
    Ok(if b.reason == decide::REASON_ADOPTION_REFUSED {
        Action::requeue(ctx.options.busy_requeue)
    } else {
        Action::await_change()
    })
}

/// Secrets, then every member's Service; returns the NodePorts the apiserver allocated.
pub async fn identities<M: Middleware>(
    ctx: &Context<M>,
    m: &Members,
) -> Result<BTreeMap<(i32, bool), i32>> {
    for s in &m.secrets {
        apply(ctx, s).await?;
    }
    let mut node_ports = BTreeMap::new();
    for svc in &m.services {
        let applied = apply(ctx, svc).await?;
        if let Some(r) = desired::record_from_service(&applied)
            && let Some(p) = r.node_port
        {
            node_ports.insert((r.index, r.arbiter), p);
        }
    }
    Ok(node_ports)
}

/// Merge patches of the binding's spec and status.
async fn write_binding<M: Middleware>(
    ctx: &Context<M>,
    ns: &str,
    b: &decide::BindingWrite,
) -> Result<()> {
    let rb = api::<ResourceBinding>(ctx, ns);
    let pp = PatchParams::default();
    if let Some(spec) = &b.spec {
        rb.patch(&b.name, &pp, &Patch::Merge(spec))
            .await
            .map_err(Error::kube("patch", "ResourceBinding", ns, &b.name))?;
    }
    if let Some(status) = &b.status {
        rb.patch_status(&b.name, &pp, &Patch::Merge(status))
            .await
            .map_err(Error::kube("patch status", "ResourceBinding", ns, &b.name))?;
    }
    Ok(())
}

/// Everything of a placed object, in order: host list, overrides, template, policies, the
/// binding, garbage, status.
pub async fn decision<M: Middleware>(
    ctx: &Context<M>,
    obj: &M::Federated,
    d: Decision<M::Member>,
) -> Result<Action> {
    let ns = namespace(obj)?;
    apply(ctx, &d.hostconf).await?;
    apply(ctx, &d.override_policy).await?;
    apply(ctx, &d.template).await?;
    for p in &d.propagation_policies {
        apply(ctx, p).await?;
    }
    if let Some(b) = &d.binding {
        write_binding(ctx, &ns, b).await?;
    }
    if let Some(n) = d.placement_event {
        publish(ctx, obj, n).await;
    }
    for r in &d.delete {
        delete_owned(ctx, &ns, r).await?;
    }
    if let Some(n) = d.readiness_event {
        publish(ctx, obj, n).await;
    }
    if let Some(body) = &d.status {
        write_status(ctx, obj, body).await?;
    }
    Ok(Action::requeue(if d.busy {
        ctx.options.busy_requeue
    } else {
        ctx.options.idle_requeue
    }))
}

/// Look again shortly: the apiserver has not allocated every NodePort yet.
pub fn wait_for_ports(why: &str) -> Action {
    info!(error = %why, "waiting for a NodePort");
    Action::requeue(STEP_REQUEUE)
}

/// One teardown step; `None` once nothing is left (the finalizer may go).
pub async fn teardown<M: Middleware>(
    ctx: &Context<M>,
    obj: &M::Federated,
    step: TeardownStep,
) -> Result<Option<Action>> {
    let ns = namespace(obj)?;
    let w = decide::teardown(&ctx.middleware, obj, &step, jiff::Timestamp::now());
    if let Some(n) = w.event {
        publish(ctx, obj, n).await;
    }
    if let Some(body) = &w.status {
        write_status(ctx, obj, body).await?;
    }
    match step {
        TeardownStep::MarkHostList { host_list } => {
            // A merge patch of the one key: an apply with our field manager would drop the
            // host list itself (only the template's deletion follows, so no apply restores it).
            let patch = serde_json::json!({"data": {TEARDOWN_KEY: TEARDOWN_VALUE}});
            Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
                .patch(
                    &host_list.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(Error::kube(
                    "mark for teardown",
                    "ConfigMap",
                    &ns,
                    &host_list.name,
                ))?;
            Ok(Some(Action::requeue(STEP_REQUEUE)))
        }
        TeardownStep::WaitForAcknowledgment {
            clusters,
            unreachable,
        } => {
            info!(
                ?clusters,
                ?unreachable,
                "waiting for the agents to record the teardown mark"
            );
            Ok(Some(Action::requeue(STEP_REQUEUE)))
        }
        TeardownStep::DeleteTemplate { template } => {
            delete_owned(ctx, &ns, &template).await?;
            Ok(Some(Action::requeue(STEP_REQUEUE)))
        }
        TeardownStep::WaitForMembers {
            clusters,
            unreachable,
        } => {
            info!(
                ?clusters,
                ?unreachable,
                "waiting for the members to be gone"
            );
            Ok(Some(Action::requeue(MEMBERS_GONE_REQUEUE)))
        }
        TeardownStep::DeleteOwned { objects } => {
            for r in &objects {
                delete_owned(ctx, &ns, r).await?;
            }
            Ok(Some(Action::requeue(STEP_REQUEUE)))
        }
        TeardownStep::Done => Ok(None),
    }
}
