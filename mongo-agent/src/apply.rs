//! Carrying out [`crate::decide`]'s decisions: server-side apply with the agent's field manager,
//! the replica-set step through [`crate::converge`], deletions, the status and Events. No
//! decision here beyond "which call".

use std::collections::BTreeSet;

use fedstate_api::names::FIELD_MANAGER_AGENT;
use fedstate_api::v1alpha1::{MongoDB, MongoDBStatus};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Event;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::controller::{Context, Error, kube_err};
use crate::converge::{self, SetGoal, Users};
use crate::decide::{AfterStep, Note, Objects, SecretWrite, SetResult};
use crate::inpod::PodExec;
use crate::replset::ReplSetAdmin;

fn ssa() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER_AGENT).force()
}

/// Only the status changes (paused, or a spec to fix).
pub async fn declined(
    ctx: &Context,
    mdb: &MongoDB,
    status: MongoDBStatus,
) -> Result<Action, Error> {
    write_status(ctx, mdb, status).await?;
    Ok(Action::await_change())
}

/// Secrets, the mongod ConfigMap, own Services and the StatefulSets.
pub async fn objects(ctx: &Context, mdb: &MongoDB, o: &Objects) -> Result<(), Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    for w in &o.secrets {
        match w {
            SecretWrite::Create(s) => match secrets.create(&PostParams::default(), s).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(kube_err("create", "Secret", &s.name_any())(e)),
            },
            SecretWrite::Apply(s) => {
                secrets
                    .patch(&s.name_any(), &ssa(), &Patch::Apply(s))
                    .await
                    .map_err(kube_err("apply", "Secret", &s.name_any()))?;
            }
        }
    }
    let cm = &o.config_map;
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(&cm.name_any(), &ssa(), &Patch::Apply(cm))
        .await
        .map_err(kube_err("apply", "ConfigMap", &cm.name_any()))?;
    let services = Api::<Service>::namespaced(ctx.client.clone(), &ns);
    for s in &o.services {
        services
            .patch(&s.name_any(), &ssa(), &Patch::Apply(s))
            .await
            .map_err(kube_err("apply", "Service", &s.name_any()))?;
    }
    let statefulsets = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    for s in &o.statefulsets {
        statefulsets
            .patch(&s.name_any(), &ssa(), &Patch::Apply(s))
            .await
            .map_err(kube_err("apply", "StatefulSet", &s.name_any()))?;
    }
    Ok(())
}

/// The in-pod steps (initiate, the first user) through `pods/exec` into this cluster's members.
pub fn in_pod(ctx: &Context, mdb: &MongoDB, o: &Objects) -> PodExec {
    PodExec::new(
        Api::namespaced(ctx.client.clone(), &mdb.namespace().unwrap_or_default()),
        o.members.pods_by_host.clone(),
        ctx.settings.mongo_timeout,
    )
}

/// One replica-set step and the users, for an object whose hosts and Secrets are known.
pub async fn replica_set(
    ctx: &Context,
    mdb: &MongoDB,
    o: &Objects,
    goal: SetGoal,
    users: &Users,
) -> SetResult {
    let key = crate::controller::object_key(mdb);
    let in_pod = in_pod(ctx, mdb, o);
    let known: BTreeSet<String> = mdb
        .status
        .as_ref()
        .map(|s| s.replset.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    let mut candidates: BTreeSet<String> =
        goal.desired.hosts.iter().map(|h| h.host.clone()).collect();
    candidates.extend(goal.desired.own.iter().cloned());
    candidates.extend(known.iter().cloned());
    // Members no longer desired, own or known: their clients go (they would dial forever).
    ctx.admin(&key, None).await.retain_hosts(&candidates).await;
    let mut result = SetResult::default();
    let mut admin = pick_admin(ctx, &key, users, &candidates).await;
    if admin.login().is_none()
        && let Some(primary) = primary_by_hello(&admin, &candidates).await
    {
        // No login works anywhere but a primary exists: the set was initiated and has no
        // user yet. The first one is created in the primary's pod.
        record_users(
            &mut result,
            converge::ensure_users(&admin, &in_pod, &primary, users).await,
        );
        admin = pick_admin(ctx, &key, users, &candidates).await;
    }
    match converge::step(&admin, &in_pod, &goal, &known).await {
        Ok((outcome, obs)) => {
            if let Some(primary) = &obs.primary {
                let base = ctx.admin(&key, None).await;
                record_users(
                    &mut result,
                    converge::ensure_users(&base, &in_pod, primary, users).await,
                );
            }
            result.outcome = Some(Ok(outcome));
            result.observation = Some(obs);
        }
        Err(e) => result.outcome = Some(Err(e.to_string())),
    }
    result
}

fn record_users(
    result: &mut SetResult,
    r: Result<converge::UserChanges, crate::replset::ReplSetError>,
) {
    match r {
        Ok(ch) => {
            if ch != Default::default() {
                tracing::info!(created = ?ch.created, rotated = ?ch.rotated, "users updated");
            }
            result.users.created.extend(ch.created);
            result.users.rotated.extend(ch.rotated);
        }
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
) -> ReplSetAdmin {
    if hosts.is_empty() {
        // (select_ok below needs at least one try.)
        return ctx.admin(key, None).await;
    }
    for login in [&users.cluster_admin, &users.root] {
        let admin = ctx.admin(key, Some(login)).await;
        // The first host that takes the login: members that do not answer are waited for
        // together (one timeout), not one after another.
        let tries = hosts.iter().map(|h| Box::pin(admin.hello(h)));
        if futures::future::select_ok(tries).await.is_ok() {
            return admin;
        }
    }
    ctx.admin(key, None).await
}

/// Restart, step-down, removals, Events, then the status.
pub async fn after_step(
    ctx: &Context,
    mdb: &MongoDB,
    next: AfterStep,
    users: Option<&Users>,
) -> Result<Action, Error> {
    let ns = mdb.namespace().unwrap_or_default();
    if let Some(pod) = &next.restart {
        tracing::info!(%pod, "rolling restart");
        Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .delete(pod, &DeleteParams::default())
            .await
            .map_err(kube_err("delete", "Pod", pod))?;
    }
    if let (Some(host), Some(users)) = (&next.step_down, users) {
        let admin = ctx
            .admin(
                &crate::controller::object_key(mdb),
                Some(&users.cluster_admin),
            )
            .await;
        if let Err(e) = admin.step_down(host).await {
            tracing::warn!(error = %e, "step-down before restart failed");
        }
    }
    let statefulsets = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    let services = Api::<Service>::namespaced(ctx.client.clone(), &ns);
    for name in &next.delete {
        tracing::info!(statefulset = %name, "member left the replica set; deleting its objects");
        let _ = statefulsets.delete(name, &DeleteParams::default()).await;
        if next.delete_services {
            let _ = services.delete(name, &DeleteParams::default()).await;
        }
    }
    let claims = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns);
    for name in &next.delete_claims {
        tracing::info!(pvc = %name, "member left the replica set; deleting its data");
        let _ = claims.delete(name, &DeleteParams::default()).await;
    }
    for note in &next.events {
        publish(ctx, mdb, note).await;
    }
    write_status(ctx, mdb, next.status).await?;
    let key = crate::controller::object_key(mdb);
    Ok(Action::requeue(ctx.pacing.next(&key, &next.requeue)))
}

pub async fn publish(ctx: &Context, mdb: &MongoDB, note: &Note) {
    if note.reason != "UsersUpdated" {
        metrics::counter!("fedstate_agent_replset_steps_total", "step" => note.reason).increment(1);
    }
    let ev = Event {
        type_: note.type_,
        reason: note.reason.into(),
        note: Some(note.note.clone()),
        action: "ReplicaSet".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &mdb.object_ref(&())).await {
        tracing::debug!(error = %e, "cannot publish event");
    }
}

/// Write the status computed from `mdb`, only over the version of the object it was computed
/// from: the patch carries `mdb`'s `resourceVersion`, so the apiserver refuses it (409 Conflict,
/// retried after a second with the newer object) when the object changed since. The status
/// keeps records a later reconcile relies on (`TeardownMarked`, `forcedReconfig`), and a status
/// computed from a stale view (the watch cache lags, e.g. while a watch relists after an
/// apiserver restart) would otherwise replace them with the older conditions: a deleted object
/// whose record was erased that way kept its finalizer for ever.
pub async fn write_status(ctx: &Context, mdb: &MongoDB, new: MongoDBStatus) -> Result<(), Error> {
    if mdb.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let name = mdb.name_any();
    Api::<MongoDB>::namespaced(ctx.client.clone(), &mdb.namespace().unwrap_or_default())
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(status_patch(mdb, &new)),
        )
        .await
        .map_err(kube_err("patch status of", "MongoDB", &name))?;
    Ok(())
}

/// The merge patch of [`write_status`]: the status, guarded by `mdb`'s `resourceVersion`
/// (an object without one, which the apiserver never serves, is written unguarded).
fn status_patch(mdb: &MongoDB, new: &MongoDBStatus) -> serde_json::Value {
    match mdb.resource_version() {
        Some(rv) => json!({"metadata": {"resourceVersion": rv}, "status": new}),
        None => json!({"status": new}),
    }
}
