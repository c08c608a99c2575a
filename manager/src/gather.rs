//! What the decisions need, read from the Karmada apiserver (and the Cluster cache). Reads only.

use std::collections::BTreeMap;

use fedstate_api::hostconf::{TEARDOWN_KEY, TEARDOWN_VALUE};
use fedstate_api::karmada::Cluster;
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_api::karmada::binding_status::resource_binding_name;
use fedstate_api::karmada::override_policy::OverridePolicy;
use fedstate_api::karmada::propagation::PropagationPolicy;
use fedstate_api::karmada::work::{
    BINDING_PERMANENT_ID, work_cluster, work_is_for_binding, work_resource,
};
use fedstate_api::names;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};

use crate::controller::{Context, Error, Result};
use crate::decide::{ClusterFacts, Clusters, World};
use crate::middleware::{Kind, Middleware};
use crate::teardown::{self, OwnedKind, OwnedRef, TeardownView};

/// What the manager reads of a Karmada Cluster: its name, VIP label and readiness.
pub fn facts(c: &Cluster) -> ClusterFacts {
    ClusterFacts {
        name: c.name_any(),
        vip: names::cluster_vip(c.labels()).map(str::to_owned),
        ready: c.is_ready(),
    }
}

/// Every Karmada Cluster in the cache: VIP label and readiness.
pub fn clusters(store: &Store<Cluster>) -> Clusters {
    Clusters::new(store.state().iter().map(|c| facts(c)))
}

/// Our objects of one instance carry these labels.
fn instance_selector(name: &str) -> ListParams {
    ListParams::default().labels(&format!(
        "{}={},{}={}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY,
        names::LABEL_INSTANCE,
        name
    ))
}

fn api<K: Kind>(ctx: &Context<impl Middleware>, ns: &str) -> Api<K> {
    Api::namespaced(ctx.client.clone(), ns)
}

/// The names of one instance's objects of kind `K`.
async fn names_of<K: Kind>(
    ctx: &Context<impl Middleware>,
    ns: &str,
    name: &str,
) -> Result<Vec<String>> {
    Ok(api::<K>(ctx, ns)
        .list(&instance_selector(name))
        .await
        .map_err(Error::kube("list", K::kind(&()), ns, name))?
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect())
}

/// A live object's world: our member Services, the binding, the Secrets the middleware keeps,
/// our PropagationPolicies.
pub async fn live<M: Middleware>(
    ctx: &Context<M>,
    obj: &M::Federated,
    clusters: Clusters,
) -> Result<World> {
    let (ns, name) = (obj.namespace().ok_or(Error::NotNamespaced)?, obj.name_any());
    let services = api::<Service>(ctx, &ns)
        .list(&instance_selector(&name))
        .await
        .map_err(Error::kube("list", "Service", &ns, &name))?
        .items;
    let rb_name = resource_binding_name(&name, &M::Member::kind(&()));
    let binding = api::<ResourceBinding>(ctx, &ns)
        .get_opt(&rb_name)
        .await
        .map_err(Error::kube("get", "ResourceBinding", &ns, &rb_name))?;
    let mut secrets = BTreeMap::new();
    for s in ctx.middleware.secret_names(obj) {
        let found = api::<Secret>(ctx, &ns)
            .get_opt(&s)
            .await
            .map_err(Error::kube("get", "Secret", &ns, &s))?;
        if let Some(found) = found {
            secrets.insert(s, found);
        }
    }
    let host_list_name = ctx.middleware.host_list_name(obj);
    let host_list = api::<ConfigMap>(ctx, &ns)
        .get_opt(&host_list_name)
        .await
        .map_err(Error::kube("get", "ConfigMap", &ns, &host_list_name))?;
    // What was last applied: each cluster's pod fields for the rollout across clusters.
    let applied_template = api::<M::Member>(ctx, &ns)
        .get_opt(&name)
        .await
        .map_err(Error::kube("get", M::Member::kind(&()), &ns, &name))?
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|mut v| v.get_mut("spec").map(serde_json::Value::take));
    let applied_overrides = api::<OverridePolicy>(ctx, &ns)
        .get_opt(&name)
        .await
        .map_err(Error::kube("get", "OverridePolicy", &ns, &name))?;
    let mut config_maps = BTreeMap::new();
    for c in ctx.middleware.referenced_config_maps(obj) {
        let found = api::<ConfigMap>(ctx, &ns)
            .get_opt(&c)
            .await
            .map_err(Error::kube("get", "ConfigMap", &ns, &c))?;
        if let Some(found) = found {
            config_maps.insert(c, found);
        }
    }
    Ok(World {
        services,
        binding,
        secrets,
        policies: names_of::<PropagationPolicy>(ctx, &ns, &name).await?,
        host_list,
        applied_template,
        applied_overrides,
        config_maps,
        clusters,
        now: jiff::Timestamp::now(),
    })
}

/// The Secrets the middleware keeps for `obj` that still exist and are ours
/// ([`crate::desired::is_ours`]: a user's Secret of that name is never deleted), got by name.
async fn our_secrets<M: Middleware>(
    ctx: &Context<M>,
    obj: &M::Federated,
    ns: &str,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in ctx.middleware.secret_names(obj) {
        let found = api::<Secret>(ctx, ns)
            .get_opt(&s)
            .await
            .map_err(Error::kube("get", "Secret", ns, &s))?;
        let ours = found.is_some_and(|f| crate::desired::is_ours(obj, &f.metadata));
        if ours {
            out.push(s);
        }
    }
    Ok(out)
}

/// What is left of a deleted object: the template, its Works per cluster, our other objects.
pub async fn teardown<M: Middleware>(ctx: &Context<M>, obj: &M::Federated) -> Result<TeardownView> {
    let (ns, name) = (obj.namespace().ok_or(Error::NotNamespaced)?, obj.name_any());
    let template = api::<M::Member>(ctx, &ns)
        .get_opt(&name)
        .await
        .map_err(Error::kube("get", M::Member::kind(&()), &ns, &name))?
        .map(|_| OwnedRef::new(OwnedKind::Template, name.clone()));
    let rb_name = resource_binding_name(&name, &M::Member::kind(&()));
    // Only our binding's Works, by the permanent id Karmada labels them with; every Work only
    // once the binding itself is gone (its Works may still be on their way out).
    let binding = api::<ResourceBinding>(ctx, &ns)
        .get_opt(&rb_name)
        .await
        .map_err(Error::kube("get", "ResourceBinding", &ns, &rb_name))?;
    let permanent_id = binding
        .as_ref()
        .and_then(|rb| rb.labels().get(BINDING_PERMANENT_ID).cloned());
    let works_lp = match &permanent_id {
        Some(id) => ListParams::default().labels(&format!("{BINDING_PERMANENT_ID}={id}")),
        None => ListParams::default(),
    };
    let works = Api::<kube::api::DynamicObject>::all_with(ctx.client.clone(), &work_resource())
        .list(&works_lp)
        .await
        .map_err(Error::kube("list", "Work", "", ""))?;
    let ready = clusters(&ctx.clusters).ready;
    let with_works = works
        .items
        .iter()
        .filter(|w: &&DynamicObject| {
            work_is_for_binding(w.annotations(), w.labels(), &ns, &rb_name)
        })
        .map(|w| {
            let work_ns = w.namespace().unwrap_or_default();
            work_cluster(&work_ns).unwrap_or(&work_ns).to_owned()
        });
    let (reachable, unreachable) = teardown::split_works(with_works, &ready);
    let mut view = TeardownView {
        template,
        works_in_reachable_clusters: reachable,
        works_in_unreachable_clusters: unreachable,
        ..Default::default()
    };
    for kind in OwnedKind::OWNED {
        let names = match kind {
            OwnedKind::Service => names_of::<Service>(ctx, &ns, &name).await?,
            OwnedKind::ConfigMap => names_of::<ConfigMap>(ctx, &ns, &name).await?,
            // By name, never listed: the Karmada apiserver holds the member clusters' credentials.
            OwnedKind::Secret => our_secrets(ctx, obj, &ns).await?,
            OwnedKind::PropagationPolicy => names_of::<PropagationPolicy>(ctx, &ns, &name).await?,
            OwnedKind::OverridePolicy => names_of::<OverridePolicy>(ctx, &ns, &name).await?,
            OwnedKind::Template => Vec::new(),
        };
        view.owned_left
            .extend(names.into_iter().map(|n| OwnedRef::new(kind, n)));
    }
    // Ours only (listed above by our labels): a foreign ConfigMap is never written.
    let host_list = ctx.middleware.host_list_name(obj);
    let host_list = OwnedRef::new(OwnedKind::ConfigMap, host_list);
    if view.template.is_some() && view.owned_left.contains(&host_list) {
        let marked = api::<ConfigMap>(ctx, &ns)
            .get_opt(&host_list.name)
            .await
            .map_err(Error::kube("get", "ConfigMap", &ns, &host_list.name))?
            .and_then(|c| c.data)
            .is_some_and(|d| d.get(TEARDOWN_KEY).map(String::as_str) == Some(TEARDOWN_VALUE));
        if marked {
            view.unacknowledged = teardown::unacknowledged(binding.as_ref(), &ready);
        } else {
            view.unmarked_host_list = Some(host_list);
        }
    }
    Ok(view)
}
