//! What one reconcile reads from its member cluster's apiserver, as it is: the object's Secrets,
//! the user's mongod YAML, its member Services, Pods and StatefulSets, and the manager's host
//! list. No decision here ([`crate::decide`] makes them); nothing is written.

use std::collections::BTreeMap;

use fedstate_api::hostconf::{HOSTCONF_KEY, TEARDOWN_KEY, TEARDOWN_VALUE};
use fedstate_api::names::{LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY};
use fedstate_api::v1alpha1::MongoDB;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::controller::{Context, Error, kube_err};
use crate::decide;
use crate::resources;
use crate::version::Running;

/// Everything one reconcile of a live object reads.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The generated keyfile Secret `<name>-keyfile` exists (only read without
    /// `spec.keyfileSecretRef`).
    pub keyfile_secret_exists: bool,
    /// The content of the keyfile the pods mount (the user's Secret or the generated one), when
    /// it exists: checked before anything rolls out.
    pub keyfile: Option<String>,
    /// The data of `<name>-credentials`, `None` when it does not exist.
    pub credentials: Option<BTreeMap<String, ByteString>>,
    /// `<name>-credentials` exists without our labels for this object (someone else's Secret:
    /// in single-cluster mode the agent neither writes nor adopts it).
    pub credentials_foreign: bool,
    /// The root password from `spec.rootPasswordSecretRef`, when set and present.
    pub root_password_from_ref: Option<String>,
    /// `mongod.yaml` of `spec.customConfigRef`.
    pub user_yaml: Option<String>,
    /// This object's Services, Pods and StatefulSets (FedState-managed ones).
    pub services: Vec<Service>,
    pub pods: Vec<Pod>,
    pub statefulsets: Vec<StatefulSet>,
    /// `hostconf.json` of `spec.memberConfigRef`, or why it cannot be read (`None` without a
    /// host list: single-cluster use).
    pub hostconf: Option<Result<String, String>>,
    /// The host list carries the manager's whole-set teardown mark
    /// ([`fedstate_api::hostconf::TEARDOWN_KEY`]).
    pub teardown: bool,
    /// The members' versions and the set's FCV, read only while a version change may be under
    /// way ([`crate::decide::needs_version_check`]).
    pub versions: Option<Running>,
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// Read everything [`Seen`] holds for `mdb`.
pub async fn live(ctx: &Context, mdb: &MongoDB) -> Result<Seen, Error> {
    let ns = mdb.namespace().unwrap_or_default();
    let name = mdb.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let get_secret = |sname: String| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(&sname)
                .await
                .map_err(kube_err("get", "Secret", &sname))
        }
    };
    let generated_keyfile = resources::keyfile_secret_name(&name);
    let keyfile_name = mdb
        .spec
        .keyfile_secret_ref
        .clone()
        .unwrap_or_else(|| generated_keyfile.clone());
    let keyfile_secret = get_secret(keyfile_name).await?;
    let credentials = get_secret(resources::credentials_secret_name(&name)).await?;
    let root_password_from_ref = match &mdb.spec.root_password_secret_ref {
        Some(r) => get_secret(r.name.clone())
            .await?
            .and_then(|s| secret_value(&s, r.key_or_default())),
        None => None,
    };
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let user_yaml = match &mdb.spec.custom_config_ref {
        Some(cm) => configmaps
            .get_opt(cm)
            .await
            .map_err(kube_err("get", "ConfigMap", cm))?
            .and_then(|c| c.data)
            .and_then(|d| d.get(resources::USER_CONFIG_KEY).cloned()),
        None => None,
    };
    let mut teardown = false;
    let hostconf = match &mdb.spec.member_config_ref {
        Some(cm) => Some(match configmaps.get_opt(cm).await {
            Err(e) => Err(format!("ConfigMap {cm}: {e}")),
            Ok(None) => Err(format!("waiting for the host list ConfigMap {cm}")),
            Ok(Some(c)) => {
                let data = c.data.unwrap_or_default();
                teardown = data.get(TEARDOWN_KEY).map(String::as_str) == Some(TEARDOWN_VALUE);
                data.get(HOSTCONF_KEY)
                    .cloned()
                    .ok_or_else(|| format!("ConfigMap {cm} has no key {HOSTCONF_KEY}"))
            }
        }),
        None => None,
    };
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
    let statefulsets = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
        .list(&lp)
        .await
        .map_err(kube_err("list", "StatefulSets of", &name))?
        .items;
    let mut seen = Seen {
        keyfile_secret_exists: mdb.spec.keyfile_secret_ref.is_none() && keyfile_secret.is_some(),
        keyfile: keyfile_secret.and_then(|s| secret_value(&s, resources::KEYFILE_KEY)),
        credentials_foreign: credentials.as_ref().is_some_and(|s| {
            let l = s.labels();
            l.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY)
                || l.get(LABEL_INSTANCE) != Some(&name)
        }),
        credentials: credentials.map(|s| s.data.unwrap_or_default()),
        root_password_from_ref,
        user_yaml,
        services,
        pods,
        statefulsets,
        hostconf,
        teardown,
        versions: None,
    };
    if decide::needs_version_check(mdb, &seen) {
        seen.versions = Some(versions(ctx, mdb, &seen).await);
    }
    Ok(seen)
}

/// The members' binaries (`buildInfo`, no login needed) and the set's FCV (as the cluster
/// admin), asked of every desired and own member.
async fn versions(ctx: &Context, mdb: &MongoDB, seen: &Seen) -> Running {
    let members = decide::members(&seen.services, &seen.pods, &ctx.settings.addressing);
    let mut hosts = members.own();
    if let Ok(desired) = decide::hosts(mdb, seen, &members, ctx.settings.cluster_name.as_deref()) {
        hosts.extend(desired.into_iter().map(|h| h.host));
    }
    let key = crate::controller::object_key(mdb);
    let binaries = ctx.admin(&key, None).await.binaries(&hosts).await;
    let users = decide::users(
        mdb,
        seen.credentials.as_ref(),
        seen.root_password_from_ref.as_deref(),
    );
    let fcv = match &users {
        Some(u) => {
            ctx.admin(&key, Some(&u.cluster_admin))
                .await
                .feature_compatibility(&hosts)
                .await
        }
        None => None,
    };
    Running {
        binaries,
        fcv,
        image: decide::running_image(seen),
    }
}
