//! Where things live: the loopback port plan and the run directory.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

/// Loopback address every component listens on.
pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Largest number of member clusters the port plan has room for.
pub const MAX_MEMBER_CLUSTERS: u32 = 9;

/// The member apiservers' NodePort range (`--service-node-port-range`). The simulator's bridge
/// serves each MongoDB member at `<member VIP>:<nodePort>`, and karmada-scheduler-estimator binds
/// its gRPC port on every interface, so the range must be disjoint from every port plan:
/// Kubernetes' default, 30000–32767, holds all of ours (a member allocated 127.0.1.1:30604 could
/// never be served while member1's estimator listened on :30604 — a soak run failed so). Below
/// Linux's ephemeral range (32768–60999), so no outgoing connection holds one of these either.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 20000..=22767;

/// Deterministic port plan, all on 127.0.0.1.
///
/// Control plane ports are `base + 0..20`; member `i` (1-based) uses `base + 100*i + 0..7`.
/// With the default base 31000: etcd 31000, Karmada apiserver 31010, member 1 apiserver 31100,
/// member 1 estimator 31104, member 2 apiserver 31200, and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortPlan {
    pub base: u16,
}

impl Default for PortPlan {
    fn default() -> Self {
        Self {
            base: Self::DEFAULT_BASE,
        }
    }
}

/// Ports of one member cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPorts {
    pub apiserver: u16,
    pub controller_manager: u16,
    pub scheduler: u16,
    pub kwok: u16,
    pub estimator_grpc: u16,
    pub estimator_metrics: u16,
    pub estimator_health: u16,
}

impl PortPlan {
    pub const DEFAULT_BASE: u16 = 31000;

    pub fn etcd_client(&self) -> u16 {
        self.base
    }
    pub fn etcd_peer(&self) -> u16 {
        self.base + 1
    }
    pub fn karmada_apiserver(&self) -> u16 {
        self.base + 10
    }
    pub fn aggregated_apiserver(&self) -> u16 {
        self.base + 11
    }
    pub fn webhook(&self) -> u16 {
        self.base + 12
    }
    pub fn webhook_health(&self) -> u16 {
        self.base + 13
    }
    pub fn webhook_metrics(&self) -> u16 {
        self.base + 14
    }
    pub fn controller_manager_metrics(&self) -> u16 {
        self.base + 15
    }
    pub fn controller_manager_health(&self) -> u16 {
        self.base + 16
    }
    pub fn scheduler_metrics(&self) -> u16 {
        self.base + 17
    }
    pub fn scheduler_health(&self) -> u16 {
        self.base + 18
    }
    /// kube-controller-manager running against the Karmada apiserver (namespaces, garbage
    /// collection, service-account tokens).
    pub fn karmada_kube_controller_manager(&self) -> u16 {
        self.base + 19
    }

    pub fn member(&self, index: u32) -> MemberPorts {
        let b = self.base + 100 * index as u16;
        MemberPorts {
            apiserver: b,
            controller_manager: b + 1,
            scheduler: b + 2,
            kwok: b + 3,
            estimator_grpc: b + 4,
            estimator_metrics: b + 5,
            estimator_health: b + 6,
        }
    }

    /// Every port of a federation with `members` members, with what it is for.
    pub fn all(&self, members: u32) -> Vec<(u16, String)> {
        let mut ports = vec![
            (self.etcd_client(), "etcd client".to_string()),
            (self.etcd_peer(), "etcd peer".to_string()),
            (self.karmada_apiserver(), "karmada-apiserver".to_string()),
            (
                self.aggregated_apiserver(),
                "karmada-aggregated-apiserver".to_string(),
            ),
            (self.webhook(), "karmada-webhook".to_string()),
            (self.webhook_health(), "karmada-webhook health".to_string()),
            (
                self.webhook_metrics(),
                "karmada-webhook metrics".to_string(),
            ),
            (
                self.controller_manager_metrics(),
                "karmada-controller-manager metrics".to_string(),
            ),
            (
                self.controller_manager_health(),
                "karmada-controller-manager health".to_string(),
            ),
            (
                self.scheduler_metrics(),
                "karmada-scheduler metrics".to_string(),
            ),
            (
                self.scheduler_health(),
                "karmada-scheduler health".to_string(),
            ),
            (
                self.karmada_kube_controller_manager(),
                "karmada kube-controller-manager".to_string(),
            ),
        ];
        for i in 1..=members {
            let m = self.member(i);
            let name = member_name(i);
            ports.extend([
                (m.apiserver, format!("{name} kube-apiserver")),
                (
                    m.controller_manager,
                    format!("{name} kube-controller-manager"),
                ),
                (m.scheduler, format!("{name} kube-scheduler")),
                (m.kwok, format!("{name} kwok")),
                (
                    m.estimator_grpc,
                    format!("{name} karmada-scheduler-estimator gRPC"),
                ),
                (
                    m.estimator_metrics,
                    format!("{name} karmada-scheduler-estimator metrics"),
                ),
                (
                    m.estimator_health,
                    format!("{name} karmada-scheduler-estimator health"),
                ),
            ]);
        }
        ports
    }
}

/// Loopback socket address of a port of the plan.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(LOOPBACK, port))
}

/// Name of member `index` (1-based): `member1`, `member2`, ...
pub fn member_name(index: u32) -> String {
    format!("member{index}")
}

/// The environment variable that picks the third octet of the member VIPs (1 to 254, default
/// 1): two federations that serve simulated members at `<VIP>:<node port>` at the same time (e2e
/// lanes side by side) need VIPs of their own, as each member apiserver picks node ports at random.
pub const VIP_NET_ENV: &str = "FEDSTATE_LOCAL_VIP_NET";

/// The member's VIP, used as the `vip` label of its Cluster: `127.0.<net>.<index>`, `<net>` from
/// [`VIP_NET_ENV`] (1 when unset or not a number from 1 to 254).
pub fn member_vip(index: u32) -> Ipv4Addr {
    let net = std::env::var(VIP_NET_ENV)
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|n| (1..=254).contains(n))
        .unwrap_or(1);
    Ipv4Addr::new(127, 0, net, u8::try_from(index).unwrap_or(u8::MAX))
}

/// Files of one run of the federation.
///
/// ```text
/// <run>/state.json              what is running (pids, commands); read by status/down
/// <run>/kubeconfig/karmada.kubeconfig
/// <run>/kubeconfig/member<N>.kubeconfig
/// <run>/pki/                    CA, serving and client certificates, generated at `up`
/// <run>/logs/<component>.log    one log per process
/// <run>/logs/karmada-apiserver-audit.log  requests of clients in group `fedstate:audited`
/// <run>/audit-policy.yaml       the Karmada apiserver's audit policy
/// <run>/etcd/                   etcd data
/// <run>/kwok/kwok.yaml          kwok stages
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLayout {
    pub root: PathBuf,
}

impl RunLayout {
    /// `$FEDSTATE_LOCAL_DIR`, or `<repository>/.fedstate-local/run`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("FEDSTATE_LOCAL_DIR") {
            return PathBuf::from(dir);
        }
        repository_root().join(".fedstate-local").join("run")
    }

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn kubeconfig_dir(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    pub fn karmada_kubeconfig(&self) -> PathBuf {
        self.kubeconfig_dir().join("karmada.kubeconfig")
    }
    pub fn member_kubeconfig(&self, index: u32) -> PathBuf {
        self.kubeconfig_dir()
            .join(format!("{}.kubeconfig", member_name(index)))
    }
    pub fn pki_dir(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn log(&self, component: &str) -> PathBuf {
        self.logs_dir().join(format!("{component}.log"))
    }
    pub fn etcd_dir(&self) -> PathBuf {
        self.root.join("etcd")
    }
    pub fn kwok_dir(&self) -> PathBuf {
        self.root.join("kwok")
    }
    pub fn webhook_cert_dir(&self) -> PathBuf {
        self.pki_dir().join("webhook")
    }
    /// The Karmada apiserver's audit policy (see [`AUDITED_GROUP`]).
    pub fn audit_policy(&self) -> PathBuf {
        self.root.join("audit-policy.yaml")
    }
    /// The Karmada apiserver's audit log: one JSON event per line.
    pub fn audit_log(&self) -> PathBuf {
        self.logs_dir().join("karmada-apiserver-audit.log")
    }
}

/// Clients whose certificate carries this group (organization) have every request to the Karmada
/// apiserver written to its audit log, at `Metadata` level (who, user agent, verb, resource,
/// response code; no bodies); nobody else's are. Benchmarks count what each client sent there.
pub const AUDITED_GROUP: &str = "fedstate:audited";

/// The audit policy of the Karmada apiserver: [`AUDITED_GROUP`] at `Metadata`, everything else
/// not at all (so the log stays empty unless a client asks to be counted).
pub fn audit_policy() -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n    userGroups: [\"{AUDITED_GROUP}\"]\n  - level: None\n"
    )
}

/// The checkout this crate was built from (`deploy/local/../..`).
pub fn repository_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn port_plan_has_no_collisions_for_the_largest_federation() {
        let plan = PortPlan::default();
        let ports = plan.all(MAX_MEMBER_CLUSTERS);
        let unique: HashSet<u16> = ports.iter().map(|(p, _)| *p).collect();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn no_port_plan_overlaps_the_node_ports() {
        // The bases in use: the side-by-side benchmark, the soak, the demo, e2e's two lanes;
        // and the lowest base `Federation::up` could be given that still sits above the range.
        for base in [
            30000,
            30500,
            PortPlan::DEFAULT_BASE,
            32000,
            32400,
            *NODE_PORTS.end() + 1,
        ] {
            let plan = PortPlan { base };
            for (port, what) in plan.all(MAX_MEMBER_CLUSTERS) {
                assert!(
                    !NODE_PORTS.contains(&port),
                    "base {base}: {what} on {port} is a NodePort"
                );
            }
        }
        assert!(!NODE_PORTS.contains(&29999));
        assert!(NODE_PORTS.contains(&21000));
    }

    #[test]
    fn the_audit_policy_logs_the_audited_group_only() {
        let policy: serde_yaml::Value = serde_yaml::from_str(&audit_policy()).expect("YAML");
        let rules = policy["rules"].as_sequence().expect("rules");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["level"], "Metadata");
        assert_eq!(rules[0]["userGroups"][0], AUDITED_GROUP);
        // Everyone else: nothing, and the last rule matches every request.
        assert_eq!(rules[1]["level"], "None");
        assert_eq!(rules[1].as_mapping().map(|m| m.len()), Some(1));
        assert_eq!(policy["omitStages"][0], "RequestReceived");
    }

    #[test]
    fn member_vips_are_distinct_loopback_addresses() {
        assert_eq!(member_vip(1).to_string(), "127.0.1.1");
        assert_eq!(member_vip(3).to_string(), "127.0.1.3");
        assert!(member_vip(2).is_loopback());
    }
}
