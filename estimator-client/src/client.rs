//! [`EstimatorClient`]: the three RPCs of one cluster's scheduler-estimator, with a deadline per
//! call, the `object` metadata Karmada sends, failover between discovered addresses and a
//! latency/outcome metric per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::metrics::{RPC_DURATION, RPC_TOTAL};
use crate::proto::pb;
use crate::proto::service::estimator_client::EstimatorClient as GrpcClient;
use crate::shape::{MemberShape, component};

/// The object an estimate is for; sent as gRPC metadata `object: kind=<Kind>, name=<ns>/<name>`
/// (Karmada's estimator only logs it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    fn metadata_value(&self) -> String {
        format!("kind={}, name={}/{}", self.kind, self.namespace, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("estimator of cluster {cluster}: {method} failed: {code:?}: {message}")]
    Rpc {
        cluster: String,
        method: &'static str,
        code: Code,
        message: String,
    },
    #[error("estimator of cluster {cluster}: {method} missed its deadline")]
    Deadline {
        cluster: String,
        method: &'static str,
    },
    #[error("estimator of cluster {cluster} has no address")]
    NoAddress { cluster: String },
}

/// One estimator address and its (lazily connecting) channel.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: String,
    pub channel: Channel,
}

/// A client for one cluster's estimator. Cheap to clone; clones share the channels.
#[derive(Clone, Debug)]
pub struct EstimatorClient {
    cluster: Arc<str>,
    targets: Arc<[Target]>,
    /// Index of the address that answered last; we start there and move on when it is
    /// unreachable (Karmada tries `….svc.cluster.local` then `….svc`).
    active: Arc<AtomicUsize>,
}

const MAX_AVAILABLE_REPLICAS: &str = "MaxAvailableReplicas";
const GET_UNSCHEDULABLE_REPLICAS: &str = "GetUnschedulableReplicas";
const MAX_AVAILABLE_COMPONENT_SETS: &str = "MaxAvailableComponentSets";

impl EstimatorClient {
    pub fn new(cluster: impl Into<Arc<str>>, targets: Vec<Target>) -> Self {
        Self {
            cluster: cluster.into(),
            targets: targets.into(),
            active: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.address.as_str())
    }

    /// How many more members of `shape` the cluster can take; `-1` is Karmada's "no opinion".
    pub async fn max_available_replicas(
        &self,
        shape: &MemberShape,
        object: Option<&ObjectRef>,
        deadline: Instant,
    ) -> Result<i32, ClientError> {
        let req = pb::MaxAvailableReplicasRequest {
            cluster: self.cluster.to_string(),
            replica_requirements: Some(shape.replica_requirements().clone()),
            assumed_workloads: vec![],
        };
        self.call(
            MAX_AVAILABLE_REPLICAS,
            object,
            deadline,
            |mut c, r| async move {
                c.max_available_replicas(r)
                    .await
                    .map(|r| r.into_inner().max_replicas)
            },
            req,
        )
        .await
    }

    /// Replicas of `object` that have been unschedulable for longer than `threshold`.
    pub async fn get_unschedulable_replicas(
        &self,
        object: &ObjectRef,
        threshold: Duration,
        deadline: Instant,
    ) -> Result<i32, ClientError> {
        let req = pb::UnschedulableReplicasRequest {
            cluster: self.cluster.to_string(),
            resource: Some(pb::ObjectReference {
                api_version: object.api_version.clone(),
                kind: object.kind.clone(),
                namespace: object.namespace.clone(),
                name: object.name.clone(),
            }),
            // The wire unit is nanoseconds (Go's time.Duration).
            unschedulable_threshold: i64::try_from(threshold.as_nanos()).unwrap_or(i64::MAX),
        };
        self.call(
            GET_UNSCHEDULABLE_REPLICAS,
            Some(object),
            deadline,
            |mut c, r| async move {
                c.get_unschedulable_replicas(r)
                    .await
                    .map(|r| r.into_inner().unschedulable_replicas)
            },
            req,
        )
        .await
    }

    /// How many complete sets of `components` (name, shape, replicas per set) fit. `Ok(None)`
    /// when the estimator predates the RPC (Karmada < 1.16 answers `UNIMPLEMENTED`).
    pub async fn max_available_component_sets(
        &self,
        namespace: &str,
        components: &[(String, MemberShape, i32)],
        object: Option<&ObjectRef>,
        deadline: Instant,
    ) -> Result<Option<i32>, ClientError> {
        let req = pb::MaxAvailableComponentSetsRequest {
            cluster: self.cluster.to_string(),
            components: components
                .iter()
                .map(|(name, shape, n)| component(name, shape.requirements(), *n))
                .collect(),
            namespace: namespace.to_owned(),
            assumed_workloads: vec![],
        };
        let res = self
            .call(
                MAX_AVAILABLE_COMPONENT_SETS,
                object,
                deadline,
                |mut c, r| async move {
                    c.max_available_component_sets(r)
                        .await
                        .map(|r| r.into_inner().max_sets)
                },
                req,
            )
            .await;
        match res {
            Ok(n) => Ok(Some(n)),
            Err(ClientError::Rpc {
                code: Code::Unimplemented,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn call<Req, F, Fut>(
        &self,
        method: &'static str,
        object: Option<&ObjectRef>,
        deadline: Instant,
        rpc: F,
        message: Req,
    ) -> Result<i32, ClientError>
    where
        Req: Clone,
        F: Fn(GrpcClient<Channel>, Request<Req>) -> Fut,
        Fut: std::future::Future<Output = Result<i32, Status>>,
    {
        if self.targets.is_empty() {
            return Err(ClientError::NoAddress {
                cluster: self.cluster.to_string(),
            });
        }
        let started = Instant::now();
        let start_index = self.active.load(Ordering::Relaxed);
        let mut last_status = None;
        let mut outcome = "deadline";
        for attempt in 0..self.targets.len() {
            let index = (start_index + attempt) % self.targets.len();
            #[allow(
                clippy::indexing_slicing,
                reason = "index < len: taken modulo len, and len > 0 (checked above)"
            )]
            let target = &self.targets[index];
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let mut request = Request::new(message.clone());
            // Tell the server too, so it can give up when we do.
            request.set_timeout(deadline - now);
            if let Some(o) = object
                && let Ok(v) = o.metadata_value().parse()
            {
                request.metadata_mut().insert("object", v);
            }
            let client = GrpcClient::new(target.channel.clone());
            match tokio::time::timeout_at(deadline, rpc(client, request)).await {
                Err(_elapsed) => {
                    outcome = "deadline";
                    last_status = None;
                    break;
                }
                Ok(Ok(n)) => {
                    self.active.store(index, Ordering::Relaxed);
                    self.record(method, started, if n < 0 { "no_opinion" } else { "ok" });
                    return Ok(n);
                }
                Ok(Err(status)) => {
                    let code = status.code();
                    outcome = match code {
                        Code::Unimplemented => "unimplemented",
                        Code::Unavailable => "unavailable",
                        Code::DeadlineExceeded | Code::Cancelled => "deadline",
                        _ => "error",
                    };
                    let unreachable = code == Code::Unavailable;
                    last_status = Some(status);
                    // Only an unreachable address is worth trying the next one for.
                    if !unreachable {
                        break;
                    }
                }
            }
        }
        self.record(method, started, outcome);
        // Like the outcome label: `Cancelled` is how a tonic server reports the deadline we
        // sent it (`grpc-timeout`), often just before our own timer fires.
        Err(match last_status {
            Some(status) if !matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled) => {
                ClientError::Rpc {
                    cluster: self.cluster.to_string(),
                    method,
                    code: status.code(),
                    message: status.message().to_owned(),
                }
            }
            _ => ClientError::Deadline {
                cluster: self.cluster.to_string(),
                method,
            },
        })
    }

    fn record(&self, method: &'static str, started: Instant, outcome: &'static str) {
        let cluster = self.cluster.to_string();
        metrics::histogram!(RPC_DURATION, "cluster" => cluster.clone(), "method" => method)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(RPC_TOTAL, "cluster" => cluster, "method" => method, "outcome" => outcome)
            .increment(1);
    }
}
