//! The FedState API: what every other crate of ours agrees on.
//!
//! * [`v1alpha1`]: the `MultiCloudMongoDB` (Karmada control plane) and `MongoDB` (member cluster)
//!   custom resources of group `middleware.fedstate.io`, compatible with FedState's Go API.
//! * [`placement`]: the placement vocabulary every federated kind shares (scheduler, mode,
//!   quorum policy, affinity, spread, primary preference, the placement status).
//! * [`scheduler_result`]: the `schedulerResult` annotation, the scheduler → manager contract.
//! * [`condition`]: Kubernetes-style conditions and the helper that sets them.
//! * [`karmada`]: the few Karmada types we read and write (`Cluster`, affinity, spread constraints).
//! * [`hostconf`]: the `<name>-hostconf` ConfigMap, the desired member list (manager → agents).
//! * [`names`]: object names and labels shared by the scheduler, manager and agent.
//! * [`secrets`]: the keyfile and credential Secrets: names, keys, generators, keyfile check.
//! * [`quantity`]: Kubernetes resource quantities as exact milli-unit integers.
//! * [`limits`]: MongoDB's replica-set limits (voters, members, member index).
//! * [`quorum`]: quorum safety of a vote layout and of a change of voters (scheduler, manager).
//!
//! This crate depends on nothing of ours and does no I/O.

// Indexing or slicing that may panic is refused in this crate too (it handles user input and
// answers from other processes); tests may (clippy.toml). Not yet workspace-wide (README).
#![warn(clippy::indexing_slicing)]

pub mod condition;
pub mod hostconf;
pub mod karmada;
pub mod kind;
pub mod limits;
pub mod names;
pub mod placement;
pub mod quantity;
pub mod quorum;
pub mod revision;
pub mod scheduler_result;
pub mod secrets;
pub mod v1alpha1;

pub use condition::{Condition, ConditionStatus};
pub use scheduler_result::{ClusterWithReplicaset, SchedulerResult, SchedulerResultError};
pub use v1alpha1::{MongoDB, MultiCloudMongoDB};

/// The API group of both our kinds.
pub const GROUP: &str = "middleware.fedstate.io";
/// The only API version so far.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of both our kinds.
pub const API_VERSION: &str = "middleware.fedstate.io/v1alpha1";

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{CustomResourceExt, Resource};

    /// Every key and string of a JSON value, recursively.
    fn words(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    words(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| words(v, out)),
            serde_json::Value::String(s) => out.push(s.clone()),
            _ => {}
        }
    }

    /// Helm (and any YAML 1.1 reader) reads an unquoted `on`, `off`, `yes`, `no`, `y` or `n` as a
    /// boolean, and crdgen's YAML 1.2 writer leaves them unquoted (it quotes only `true`/`false`):
    /// a field named `on` in our CRDs broke `helm install` (`required: [true]`).
    #[test]
    fn no_crd_field_is_a_yaml_1_1_boolean_word() {
        const BOOLEAN_WORDS: [&str; 6] = ["y", "n", "yes", "no", "on", "off"];
        for crd in [MongoDB::crd(), MultiCloudMongoDB::crd()] {
            let mut all = Vec::new();
            words(
                &serde_json::to_value(&crd.spec.versions).unwrap_or_default(),
                &mut all,
            );
            let bad: Vec<&String> = all
                .iter()
                .filter(|w| BOOLEAN_WORDS.contains(&w.to_ascii_lowercase().as_str()))
                .collect();
            assert!(bad.is_empty(), "{}: {bad:?}", crd.spec.names.kind);
        }
    }

    #[test]
    fn the_group_and_version_constants_are_the_kinds_own() {
        for (group, version, api_version) in [
            (
                MongoDB::group(&()),
                MongoDB::version(&()),
                MongoDB::api_version(&()),
            ),
            (
                MultiCloudMongoDB::group(&()),
                MultiCloudMongoDB::version(&()),
                MultiCloudMongoDB::api_version(&()),
            ),
        ] {
            assert_eq!(
                (&*group, &*version, &*api_version),
                (GROUP, VERSION, API_VERSION)
            );
        }
    }
}
