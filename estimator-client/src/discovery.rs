//! Finding each cluster's estimator the way Karmada does (`docs/karmada.md#finding-an-estimator`),
//! and keeping one channel per cluster that is rebuilt when the Service or the Cluster changes
//! (Karmada never refreshes a cached channel, issue #5152).
//!
//! * [`resolve_addresses`] is pure: (cluster, the Service of that name in the Karmada apiserver if
//!   any, config) → addresses to try in order.
//! * [`EstimatorRegistry`] holds the channels; [`watch`] feeds it from Service and Cluster watches.

use std::sync::Arc;

use dashmap::DashMap;
use fedstate_api::karmada::Cluster;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use crate::client::{EstimatorClient, Target};
use crate::tls::{ChannelFactory, TlsError};

/// Where estimators live. Defaults are Karmada's; FedState's own deployment used the prefix
/// `grpc-estimator`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryConfig {
    pub namespace: String,
    pub service_prefix: String,
    pub port: i32,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            namespace: "karmada-system".into(),
            service_prefix: "karmada-scheduler-estimator".into(),
            port: 10352,
        }
    }
}

impl DiscoveryConfig {
    /// `<prefix>-<cluster>`.
    pub fn service_name(&self, cluster: &str) -> String {
        format!("{}-{cluster}", self.service_prefix)
    }

    /// The cluster a Service name belongs to, if it is one of ours.
    pub fn cluster_of_service<'a>(&self, service: &'a str) -> Option<&'a str> {
        service
            .strip_prefix(self.service_prefix.as_str())?
            .strip_prefix('-')
            .filter(|c| !c.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "estimator Service {namespace}/{service} of cluster {cluster} has no port {port}; \
         add a port {port} whose targetPort is the estimator's port"
    )]
    NoPort {
        cluster: String,
        namespace: String,
        service: String,
        port: i32,
    },
    #[error(
        "estimator Service {namespace}/{service} of cluster {cluster}: targetPort {target:?} of \
         port {port} must be a number for an ExternalName Service"
    )]
    NamedTargetPort {
        cluster: String,
        namespace: String,
        service: String,
        port: i32,
        target: String,
    },
    #[error(
        "estimator Service {namespace}/{service} of cluster {cluster} has an empty externalName"
    )]
    NoExternalName {
        cluster: String,
        namespace: String,
        service: String,
    },
    #[error("channel to the estimator of cluster {cluster}: {source}")]
    Channel {
        cluster: String,
        #[source]
        source: TlsError,
    },
    #[error("watching {what} for estimator discovery: {source}")]
    Watch {
        what: &'static str,
        #[source]
        source: watcher::Error,
    },
}

fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The addresses to dial for `cluster`'s estimator, in order.
///
/// An `ExternalName` Service named `<prefix>-<cluster>` in the Karmada apiserver wins:
/// `externalName:<targetPort of the port equal to config.port>`. Without it (or with a Service of
/// another type, which has no endpoints reachable from the Karmada apiserver's network) we try the
/// cluster-DNS names `<svc>.<ns>.svc.cluster.local` then `<svc>.<ns>.svc`. (Karmada errors on a
/// non-ExternalName Service; falling back keeps host-cluster deployments working.)
pub fn resolve_addresses(
    cluster: &str,
    service: Option<&Service>,
    config: &DiscoveryConfig,
) -> Result<Vec<String>, DiscoveryError> {
    let name = config.service_name(cluster);
    let external = service.and_then(|s| {
        let spec = s.spec.as_ref()?;
        (spec.type_.as_deref() == Some("ExternalName")).then_some(spec)
    });
    let Some(spec) = external else {
        let ns = &config.namespace;
        return Ok(vec![
            join_host_port(&format!("{name}.{ns}.svc.cluster.local"), config.port),
            join_host_port(&format!("{name}.{ns}.svc"), config.port),
        ]);
    };
    let host = spec
        .external_name
        .as_deref()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| DiscoveryError::NoExternalName {
            cluster: cluster.to_owned(),
            namespace: config.namespace.clone(),
            service: name.clone(),
        })?;
    let port = spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == config.port)
        .ok_or_else(|| DiscoveryError::NoPort {
            cluster: cluster.to_owned(),
            namespace: config.namespace.clone(),
            service: name.clone(),
            port: config.port,
        })?;
    let target = match &port.target_port {
        // The apiserver defaults an unset targetPort to the port.
        None => port.port,
        Some(IntOrString::Int(p)) => *p,
        Some(IntOrString::String(s)) => {
            return Err(DiscoveryError::NamedTargetPort {
                cluster: cluster.to_owned(),
                namespace: config.namespace.clone(),
                service: name,
                port: config.port,
                target: s.clone(),
            });
        }
    };
    Ok(vec![join_host_port(host, target)])
}

#[derive(Debug)]
struct Entry {
    addresses: Vec<String>,
    cluster_uid: Option<String>,
    client: EstimatorClient,
}

/// One [`EstimatorClient`] per cluster, rebuilt when its addresses change or its Cluster is
/// recreated. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EstimatorRegistry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug)]
struct RegistryInner {
    config: DiscoveryConfig,
    factory: ChannelFactory,
    /// The estimator Services seen in the Karmada apiserver, by cluster.
    services: DashMap<String, Service>,
    entries: DashMap<String, Entry>,
}

impl EstimatorRegistry {
    pub fn new(config: DiscoveryConfig, factory: ChannelFactory) -> Self {
        Self {
            inner: Arc::new(RegistryInner {
                config,
                factory,
                services: DashMap::new(),
                entries: DashMap::new(),
            }),
        }
    }

    pub fn config(&self) -> &DiscoveryConfig {
        &self.inner.config
    }

    /// The client for `cluster`, built on first use from what discovery knows now.
    pub fn client(&self, cluster: &str) -> Result<EstimatorClient, DiscoveryError> {
        if let Some(e) = self.inner.entries.get(cluster) {
            return Ok(e.client.clone());
        }
        self.refresh(cluster, None)
    }

    /// Re-resolves `cluster`; rebuilds its channel when the addresses changed or the Cluster's
    /// uid differs from the one the channel was built for (the cluster was re-joined).
    pub fn refresh(
        &self,
        cluster: &str,
        cluster_uid: Option<&str>,
    ) -> Result<EstimatorClient, DiscoveryError> {
        let service = self.inner.services.get(cluster).map(|s| s.clone());
        let addresses = resolve_addresses(cluster, service.as_ref(), &self.inner.config)?;
        if let Some(e) = self.inner.entries.get(cluster) {
            let same_uid = cluster_uid.is_none() || e.cluster_uid.as_deref() == cluster_uid;
            if e.addresses == addresses && same_uid {
                return Ok(e.client.clone());
            }
        }
        let targets = addresses
            .iter()
            .map(|address| {
                Ok(Target {
                    address: address.clone(),
                    channel: self.inner.factory.channel(address).map_err(|source| {
                        DiscoveryError::Channel {
                            cluster: cluster.to_owned(),
                            source,
                        }
                    })?,
                })
            })
            .collect::<Result<Vec<_>, DiscoveryError>>()?;
        let client = EstimatorClient::new(cluster, targets);
        tracing::info!(cluster, ?addresses, "estimator channel (re)built");
        let uid = cluster_uid.map(str::to_owned).or_else(|| {
            self.inner
                .entries
                .get(cluster)
                .and_then(|e| e.cluster_uid.clone())
        });
        self.inner.entries.insert(
            cluster.to_owned(),
            Entry {
                addresses,
                cluster_uid: uid,
                client: client.clone(),
            },
        );
        Ok(client)
    }

    /// A Service in the estimator namespace was created or changed.
    pub fn apply_service(&self, service: &Service) {
        let name = service.name_any();
        let Some(cluster) = self.inner.config.cluster_of_service(&name) else {
            return;
        };
        let cluster = cluster.to_owned();
        self.inner.services.insert(cluster.clone(), service.clone());
        if self.inner.entries.contains_key(&cluster)
            && let Err(e) = self.refresh(&cluster, None)
        {
            tracing::warn!(%cluster, error = %e, "estimator Service unusable");
        }
    }

    /// A Service in the estimator namespace was deleted.
    pub fn delete_service(&self, name: &str) {
        let Some(cluster) = self.inner.config.cluster_of_service(name) else {
            return;
        };
        if self.inner.services.remove(cluster).is_some() && self.inner.entries.contains_key(cluster)
        {
            let _ = self.refresh(cluster, None);
        }
    }

    /// A Cluster was deleted: drop its channel.
    pub fn remove_cluster(&self, cluster: &str) {
        self.inner.entries.remove(cluster);
    }

    /// The addresses the current channel of `cluster` dials, if it has one.
    pub fn addresses(&self, cluster: &str) -> Option<Vec<String>> {
        self.inner.entries.get(cluster).map(|e| e.addresses.clone())
    }
}

/// Watches the estimator Services (in `config.namespace` of the Karmada apiserver) and the
/// Clusters, keeping `registry` current and calling `on_cluster` for every Cluster change or
/// deletion (the capacity cache invalidates on it). Watch errors are logged and retried with
/// backoff; this runs until the task is dropped.
pub async fn watch(
    client: kube::Client,
    registry: EstimatorRegistry,
    on_cluster: impl Fn(&str) + Send + Sync + 'static,
) -> Result<(), DiscoveryError> {
    let services: Api<Service> = Api::namespaced(client.clone(), &registry.config().namespace);
    let clusters: Api<Cluster> = Api::all(client);
    let svc_registry = registry.clone();
    let service_watch = watcher(services, watcher::Config::default())
        .default_backoff()
        // A watch error (the apiserver closing a long watch, a restart) is retried with backoff
        // by the watcher; it must never end discovery.
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                    svc_registry.apply_service(&s)
                }
                Ok(watcher::Event::Delete(s)) => svc_registry.delete_service(&s.name_any()),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(source) => tracing::warn!(error = %DiscoveryError::Watch { what: "estimator Services", source }, "retrying"),
            }
            futures::future::ready(())
        });
    let cluster_watch = watcher(clusters, watcher::Config::default())
        .default_backoff()
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => {
                    let name = c.name_any();
                    if let Err(e) = registry.refresh(&name, c.metadata.uid.as_deref()) {
                        tracing::warn!(cluster = %name, error = %e, "estimator discovery failed");
                    }
                    on_cluster(&name);
                }
                Ok(watcher::Event::Delete(c)) => {
                    let name = c.name_any();
                    registry.remove_cluster(&name);
                    on_cluster(&name);
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(source) => tracing::warn!(error = %DiscoveryError::Watch { what: "Clusters", source }, "retrying"),
            }
            futures::future::ready(())
        });
    futures::future::join(service_watch, cluster_watch).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tls::ChannelConfig;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use kube::api::ObjectMeta;

    fn external(name: &str, host: &str, port: i32, target: Option<IntOrString>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("karmada-system".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("ExternalName".into()),
                external_name: Some(host.into()),
                ports: Some(vec![ServicePort {
                    port,
                    target_port: target,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn without_a_service_the_cluster_dns_names_are_tried_in_order() {
        let cfg = DiscoveryConfig::default();
        assert_eq!(
            resolve_addresses("member1", None, &cfg).unwrap(),
            [
                "karmada-scheduler-estimator-member1.karmada-system.svc.cluster.local:10352",
                "karmada-scheduler-estimator-member1.karmada-system.svc:10352",
            ]
        );
        let fedstate = DiscoveryConfig {
            namespace: "fedstate".into(),
            service_prefix: "grpc-estimator".into(),
            port: 8080,
        };
        assert_eq!(
            resolve_addresses("m2", None, &fedstate).unwrap()[0],
            "grpc-estimator-m2.fedstate.svc.cluster.local:8080"
        );
    }

    #[test]
    fn an_external_name_service_wins_with_its_integer_target_port() {
        let cfg = DiscoveryConfig::default();
        let svc = external(
            "karmada-scheduler-estimator-member1",
            "127.0.0.1",
            10352,
            Some(IntOrString::Int(41234)),
        );
        assert_eq!(
            resolve_addresses("member1", Some(&svc), &cfg).unwrap(),
            ["127.0.0.1:41234"]
        );
        let unset = external("x", "est.example", 10352, None);
        assert_eq!(
            resolve_addresses("member1", Some(&unset), &cfg).unwrap(),
            ["est.example:10352"]
        );
        let v6 = external("x", "::1", 10352, Some(IntOrString::Int(9)));
        assert_eq!(
            resolve_addresses("member1", Some(&v6), &cfg).unwrap(),
            ["[::1]:9"]
        );
    }

    #[test]
    fn a_misconfigured_service_says_what_to_fix() {
        let cfg = DiscoveryConfig::default();
        let wrong_port = external("s", "h", 80, Some(IntOrString::Int(1)));
        let e = resolve_addresses("member1", Some(&wrong_port), &cfg).unwrap_err();
        assert!(matches!(e, DiscoveryError::NoPort { .. }), "{e}");
        assert!(e.to_string().contains("member1"));
        let named = external("s", "h", 10352, Some(IntOrString::String("grpc".into())));
        let e = resolve_addresses("member1", Some(&named), &cfg).unwrap_err();
        assert!(matches!(e, DiscoveryError::NamedTargetPort { .. }), "{e}");
        // A ClusterIP Service in the Karmada apiserver is not dialable: fall back to DNS names.
        let mut cluster_ip = external("s", "h", 10352, None);
        cluster_ip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert_eq!(
            resolve_addresses("member1", Some(&cluster_ip), &cfg)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn service_names_map_back_to_clusters_for_either_prefix() {
        let karmada = DiscoveryConfig::default();
        assert_eq!(
            karmada.cluster_of_service("karmada-scheduler-estimator-member-1"),
            Some("member-1")
        );
        assert_eq!(karmada.cluster_of_service("grpc-estimator-member-1"), None);
        assert_eq!(
            karmada.cluster_of_service("karmada-scheduler-estimator-"),
            None
        );
        let ours = DiscoveryConfig {
            service_prefix: "grpc-estimator".into(),
            ..DiscoveryConfig::default()
        };
        assert_eq!(ours.cluster_of_service("grpc-estimator-m1"), Some("m1"));
    }

    #[tokio::test]
    async fn the_channel_is_rebuilt_when_the_service_changes_and_kept_otherwise() {
        let factory = ChannelFactory::new(&ChannelConfig::default()).unwrap();
        let registry = EstimatorRegistry::new(DiscoveryConfig::default(), factory);
        let c1 = registry.client("m1").unwrap();
        assert_eq!(c1.addresses().count(), 2);
        let name = registry.config().service_name("m1");
        registry.apply_service(&external(
            &name,
            "127.0.0.1",
            10352,
            Some(IntOrString::Int(5000)),
        ));
        assert_eq!(registry.addresses("m1").unwrap(), ["127.0.0.1:5000"]);
        // Same Service again: same addresses, no rebuild.
        registry.apply_service(&external(
            &name,
            "127.0.0.1",
            10352,
            Some(IntOrString::Int(5000)),
        ));
        assert_eq!(registry.addresses("m1").unwrap(), ["127.0.0.1:5000"]);
        registry.delete_service(&name);
        assert_eq!(registry.addresses("m1").unwrap().len(), 2);
        // A Service of an unrelated name is ignored.
        registry.apply_service(&external("other", "10.0.0.1", 10352, None));
        assert_eq!(registry.addresses("m1").unwrap().len(), 2);
    }
}
