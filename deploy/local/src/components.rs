//! Command lines of every component of the federation.
//!
//! Flags follow Karmada's own deployment manifests (`artifacts/deploy/*.yaml` in the Karmada
//! module) adapted to processes on loopback: one etcd with a key prefix per apiserver, a shared
//! serving certificate, and admin client certificates instead of per-component identities.

use std::path::{Path, PathBuf};

use crate::binaries::Binaries;
use crate::layout::{NODE_PORTS, PortPlan, RunLayout, member_name};
use crate::pki::Pki;
use crate::process::ProcessSpec;

/// Everything needed to build command lines.
#[derive(Debug, Clone)]
pub struct Components<'a> {
    pub bins: &'a Binaries,
    pub layout: &'a RunLayout,
    pub ports: PortPlan,
    pub pki: &'a Pki,
}

/// Feature gates of karmada-controller-manager and karmada-scheduler: Karmada's deployment
/// (`AllAlpha`, `AllBeta`) minus cluster resource modeling. With modeling on, the Cluster summary
/// carries node counts per coarse resource grade and karmada-scheduler's general estimate comes
/// from grade minimums (a 6-CPU node counts as 4) instead of the allocatable totals that
/// `docs/karmada.md#the-general-estimate` describes; tests could then not predict placements from
/// the node capacities we configure.
pub const KARMADA_FEATURE_GATES: &str =
    "AllAlpha=true,AllBeta=true,CustomizedClusterResourceModeling=false";

/// Service CIDR of every apiserver (no Service gets a reachable IP; kwok fakes pods).
const SERVICE_CIDR: &str = "10.96.0.0/16";

fn p(path: impl AsRef<Path>) -> String {
    path.as_ref().display().to_string()
}

impl Components<'_> {
    fn spec(&self, name: &str, binary: &str, args: Vec<String>) -> ProcessSpec {
        ProcessSpec {
            name: name.to_string(),
            program: self.bins.path(binary),
            args,
            log: self.layout.log(name),
        }
    }

    pub fn etcd(&self) -> ProcessSpec {
        let client = format!("http://127.0.0.1:{}", self.ports.etcd_client());
        let peer = format!("http://127.0.0.1:{}", self.ports.etcd_peer());
        self.spec(
            "etcd",
            "etcd",
            vec![
                "--name=fedstate-local".into(),
                format!("--data-dir={}", p(self.layout.etcd_dir())),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster=fedstate-local={peer}"),
                // A throw-away test store: durability is not worth the disk latency.
                "--unsafe-no-fsync=true".into(),
                "--quota-backend-bytes=4294967296".into(),
                "--log-level=warn".into(),
            ],
        )
    }

    fn apiserver_args(&self, port: u16, etcd_prefix: &str) -> Vec<String> {
        let pki = self.pki;
        vec![
            format!(
                "--etcd-servers=http://127.0.0.1:{}",
                self.ports.etcd_client()
            ),
            format!("--etcd-prefix={etcd_prefix}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", p(pki.server_cert())),
            format!("--tls-private-key-file={}", p(pki.server_key())),
            format!("--client-ca-file={}", p(pki.ca_cert())),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!(
                "--service-account-key-file={}",
                p(pki.service_account_pub())
            ),
            format!(
                "--service-account-signing-key-file={}",
                p(pki.service_account_key())
            ),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            // Disjoint from every process port of the federation (`NODE_PORTS`).
            format!(
                "--service-node-port-range={}-{}",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            ),
            // The `kubernetes` Endpoints would point at 127.0.0.1, which Endpoints may not hold.
            "--endpoint-reconciler-type=none".into(),
            "--profiling=false".into(),
        ]
    }

    /// kube-apiserver serving as the Karmada apiserver, with the aggregation layer.
    pub fn karmada_apiserver(&self) -> ProcessSpec {
        let pki = self.pki;
        let mut args = self.apiserver_args(self.ports.karmada_apiserver(), "/karmada");
        args.extend([
            "--disable-admission-plugins=StorageObjectInUseProtection,ServiceAccount".into(),
            format!(
                "--proxy-client-cert-file={}",
                p(pki.front_proxy_client_cert())
            ),
            format!(
                "--proxy-client-key-file={}",
                p(pki.front_proxy_client_key())
            ),
            format!(
                "--requestheader-client-ca-file={}",
                p(pki.front_proxy_ca_cert())
            ),
            "--requestheader-allowed-names=front-proxy-client".into(),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
            "--requestheader-group-headers=X-Remote-Group".into(),
            "--requestheader-username-headers=X-Remote-User".into(),
            // Only clients in AUDITED_GROUP are logged (the policy); no rotation during a run.
            format!("--audit-policy-file={}", p(self.layout.audit_policy())),
            format!("--audit-log-path={}", p(self.layout.audit_log())),
            "--audit-log-maxsize=4096".into(),
            "--audit-log-maxbackup=1".into(),
        ]);
        self.spec("karmada-apiserver", "kube-apiserver", args)
    }

    fn kube_component_args(&self, kubeconfig: &Path, port: u16) -> Vec<String> {
        vec![
            format!("--kubeconfig={}", p(kubeconfig)),
            format!("--authentication-kubeconfig={}", p(kubeconfig)),
            format!("--authorization-kubeconfig={}", p(kubeconfig)),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", p(self.pki.server_cert())),
            format!("--tls-private-key-file={}", p(self.pki.server_key())),
            "--leader-elect=false".into(),
            "--profiling=false".into(),
        ]
    }

    fn controller_manager_args(&self, kubeconfig: &Path, port: u16) -> Vec<String> {
        let mut args = self.kube_component_args(kubeconfig, port);
        args.extend([
            format!("--root-ca-file={}", p(self.pki.ca_cert())),
            format!(
                "--service-account-private-key-file={}",
                p(self.pki.service_account_key())
            ),
            "--use-service-account-credentials=false".into(),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
        ]);
        args
    }

    /// kube-controller-manager against the Karmada apiserver: the controllers Karmada's
    /// deployment runs there (namespace deletion, garbage collection, tokens, role aggregation).
    pub fn karmada_kube_controller_manager(&self) -> ProcessSpec {
        let mut args = self.controller_manager_args(
            &self.layout.karmada_kubeconfig(),
            self.ports.karmada_kube_controller_manager(),
        );
        args.push(
            "--controllers=namespace,garbagecollector,serviceaccount-token,ttl-after-finished,clusterrole-aggregation"
                .into(),
        );
        self.spec(
            "karmada-kube-controller-manager",
            "kube-controller-manager",
            args,
        )
    }

    pub fn aggregated_apiserver(&self) -> ProcessSpec {
        let kubeconfig = p(self.layout.karmada_kubeconfig());
        self.spec(
            "karmada-aggregated-apiserver",
            "karmada-aggregated-apiserver",
            vec![
                format!("--kubeconfig={kubeconfig}"),
                format!("--authentication-kubeconfig={kubeconfig}"),
                format!("--authorization-kubeconfig={kubeconfig}"),
                format!(
                    "--etcd-servers=http://127.0.0.1:{}",
                    self.ports.etcd_client()
                ),
                "--etcd-prefix=/karmada".into(),
                format!("--tls-cert-file={}", p(self.pki.server_cert())),
                format!("--tls-private-key-file={}", p(self.pki.server_key())),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", self.ports.aggregated_apiserver()),
                "--audit-log-path=-".into(),
                "--audit-log-maxage=0".into(),
                "--audit-log-maxbackup=0".into(),
            ],
        )
    }

    pub fn webhook(&self) -> ProcessSpec {
        self.spec(
            "karmada-webhook",
            "karmada-webhook",
            vec![
                format!("--kubeconfig={}", p(self.layout.karmada_kubeconfig())),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", self.ports.webhook()),
                format!("--cert-dir={}", p(self.layout.webhook_cert_dir())),
                format!(
                    "--metrics-bind-address=127.0.0.1:{}",
                    self.ports.webhook_metrics()
                ),
                format!(
                    "--health-probe-bind-address=127.0.0.1:{}",
                    self.ports.webhook_health()
                ),
                "--feature-gates=AllAlpha=true,AllBeta=true".into(),
                "--allow-no-execute-taint-policy=true".into(),
            ],
        )
    }

    pub fn controller_manager(&self) -> ProcessSpec {
        self.spec(
            "karmada-controller-manager",
            "karmada-controller-manager",
            vec![
                format!("--kubeconfig={}", p(self.layout.karmada_kubeconfig())),
                "--cluster-status-update-frequency=10s".into(),
                "--controllers=*,hpaScaleTargetMarker,deploymentReplicasSyncer".into(),
                format!("--feature-gates={KARMADA_FEATURE_GATES}"),
                format!(
                    "--metrics-bind-address=127.0.0.1:{}",
                    self.ports.controller_manager_metrics()
                ),
                format!(
                    "--health-probe-bind-address=127.0.0.1:{}",
                    self.ports.controller_manager_health()
                ),
                "--enable-no-execute-taint-eviction=true".into(),
                "--leader-elect=false".into(),
            ],
        )
    }

    /// karmada-scheduler with its estimator client enabled (mTLS to the estimators).
    pub fn scheduler(&self) -> ProcessSpec {
        self.spec(
            "karmada-scheduler",
            "karmada-scheduler",
            vec![
                format!("--kubeconfig={}", p(self.layout.karmada_kubeconfig())),
                format!(
                    "--metrics-bind-address=127.0.0.1:{}",
                    self.ports.scheduler_metrics()
                ),
                format!(
                    "--health-probe-bind-address=127.0.0.1:{}",
                    self.ports.scheduler_health()
                ),
                "--enable-scheduler-estimator=true".into(),
                format!(
                    "--scheduler-estimator-port={}",
                    crate::ESTIMATOR_SERVICE_PORT
                ),
                format!("--scheduler-estimator-ca-file={}", p(self.pki.ca_cert())),
                format!(
                    "--scheduler-estimator-cert-file={}",
                    p(self.pki.admin_cert())
                ),
                format!("--scheduler-estimator-key-file={}", p(self.pki.admin_key())),
                format!("--feature-gates={KARMADA_FEATURE_GATES}"),
                "--leader-elect=false".into(),
            ],
        )
    }

    pub fn member_apiserver(&self, index: u32) -> ProcessSpec {
        let name = member_name(index);
        let mut args = self.apiserver_args(self.ports.member(index).apiserver, &format!("/{name}"));
        // pods/exec goes to kwok's server at the node's InternalIP (kwok also reports a Hostname
        // address, which does not resolve here). Without --kubelet-certificate-authority the
        // apiserver does not verify that server's (self-signed) certificate: kubelet_client.go
        // `transportConfig` sets Insecure when no CA is given.
        args.push("--kubelet-preferred-address-types=InternalIP".into());
        self.spec(&format!("{name}-kube-apiserver"), "kube-apiserver", args)
    }

    pub fn member_controller_manager(&self, index: u32) -> ProcessSpec {
        let name = member_name(index);
        let mut args = self.controller_manager_args(
            &self.layout.member_kubeconfig(index),
            self.ports.member(index).controller_manager,
        );
        args.push("--controllers=*".into());
        self.spec(
            &format!("{name}-kube-controller-manager"),
            "kube-controller-manager",
            args,
        )
    }

    pub fn member_scheduler(&self, index: u32) -> ProcessSpec {
        let name = member_name(index);
        let args = self.kube_component_args(
            &self.layout.member_kubeconfig(index),
            self.ports.member(index).scheduler,
        );
        self.spec(&format!("{name}-kube-scheduler"), "kube-scheduler", args)
    }

    pub fn member_kwok(&self, index: u32, kwok_config: &Path) -> ProcessSpec {
        let name = member_name(index);
        self.spec(
            &format!("{name}-kwok"),
            "kwok",
            vec![
                format!("--kubeconfig={}", p(self.layout.member_kubeconfig(index))),
                format!("--config={}", p(kwok_config)),
                "--manage-all-nodes=false".into(),
                format!(
                    "--manage-nodes-with-annotation-selector={}=fake",
                    crate::capacity::KWOK_NODE_ANNOTATION
                ),
                "--node-lease-duration-seconds=40".into(),
                format!(
                    "--server-address=127.0.0.1:{}",
                    self.ports.member(index).kwok
                ),
                // Nodes point the apiserver's exec/logs proxy at this kwok server, which runs
                // exec requests as local commands from `Exec` objects.
                "--node-ip=127.0.0.1".into(),
                format!("--node-port={}", self.ports.member(index).kwok),
                "--enable-crds=Exec".into(),
                format!("--cidr=10.{}.0.1/16", 100 + index),
            ],
        )
    }

    /// karmada-scheduler-estimator for member `index`. Its gRPC port binds every interface
    /// (Karmada hard-codes `:<port>`), so it requires TLS 1.3 with a client certificate from our CA.
    pub fn member_estimator(&self, index: u32) -> ProcessSpec {
        let name = member_name(index);
        let ports = self.ports.member(index);
        self.spec(
            &format!("{name}-karmada-scheduler-estimator"),
            "karmada-scheduler-estimator",
            vec![
                format!("--kubeconfig={}", p(self.layout.member_kubeconfig(index))),
                format!("--cluster-name={name}"),
                format!("--server-port={}", ports.estimator_grpc),
                format!("--grpc-auth-cert-file={}", p(self.pki.server_cert())),
                format!("--grpc-auth-key-file={}", p(self.pki.server_key())),
                format!("--grpc-client-ca-file={}", p(self.pki.ca_cert())),
                format!(
                    "--metrics-bind-address=127.0.0.1:{}",
                    ports.estimator_metrics
                ),
                format!(
                    "--health-probe-bind-address=127.0.0.1:{}",
                    ports.estimator_health
                ),
                "--feature-gates=AllAlpha=true,AllBeta=true".into(),
            ],
        )
    }
}

/// Path of kwok's stage configuration in the run directory.
pub fn kwok_config_path(layout: &RunLayout) -> PathBuf {
    layout.kwok_dir().join("kwok.yaml")
}
