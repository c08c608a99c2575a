//! What reaches the members' pods from outside the `MongoDB` spec, as keyed digests in the
//! member template (`spec.configDigest`, `spec.exporterLoginDigest`; pod fields, so the
//! rollout across clusters sequences their change: [`crate::rollout`]).
//!
//! * The mongod configuration: mongod reads its file only when it starts. The user's
//!   `customConfigRef` ConfigMap is propagated as it is to every cluster at once; its content
//!   (as the manager reads it in the Karmada apiserver), the ConfigMap's name and `config` go
//!   into `configDigest`, which the agent puts on the pod template.
//! * The exporter's login: the exporter reads the clusterMonitor password from its
//!   environment, once; the credentials Secret reaches every cluster at once, so the restart
//!   that picks up a rotated password is sequenced through `exporterLoginDigest`.
//!
//! Digests are HMAC-SHA-256 keyed by the replica set's keyfile (756 random characters kept in
//! `<name>-keyfile`, never leaving a Secret): without the key nothing, not even a weak password
//! a user set by hand, can be tested against a digest. 20 hex digits (80 bits) tell versions
//! apart; the digest is no name for the content.

use std::collections::BTreeMap;

use fedstate_api::v1alpha1::MongoDBSpec;
use fedstate_api::{MongoDB, MultiCloudMongoDB};
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha2::Sha256;

use super::secrets::{
    CLUSTER_MONITOR_PASSWORD_KEY, KEYFILE_KEY, NameOrDefault, credentials_secret_name,
    keyfile_secret_name,
};
use super::template::user_config_ref;

/// HMAC-SHA-256 over a label and length-prefixed parts (so no two inputs run together), the
/// first 10 bytes in hex. `None` without a key.
fn keyed_digest(key: &[u8], label: &str, parts: &[&[u8]]) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(label.as_bytes());
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    let out = mac.finalize().into_bytes();
    Some(out.iter().take(10).map(|b| format!("{b:02x}")).collect())
}

/// The digest of the mongod configuration a member starts with: `config` (as the template
/// carries it), the name `customConfigRef` gives and that ConfigMap's content (all of `data`
/// and `binaryData`; "absent" when it does not exist, which the agent renders as no user file).
pub fn config_digest(
    key: &[u8],
    spec: &MongoDBSpec,
    config_map: Option<&ConfigMap>,
) -> Option<String> {
    let config = serde_json::to_vec(&spec.config).ok()?;
    let name = spec.custom_config_ref.clone().unwrap_or_default();
    let content = match config_map {
        Some(cm) => serde_json::to_vec(&(&cm.data, &cm.binary_data)).ok()?,
        None => b"absent".to_vec(),
    };
    keyed_digest(
        key,
        "fedstate mongod config",
        &[&config, name.as_bytes(), &content],
    )
}

/// The digest of the exporter's login (the clusterMonitor password).
pub fn exporter_login_digest(key: &[u8], password: &[u8]) -> Option<String> {
    keyed_digest(key, "fedstate exporter login", &[password])
}

fn value<'a>(secret: Option<&'a Secret>, key: &str) -> Option<&'a [u8]> {
    secret
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
        .filter(|v| !v.is_empty())
}

/// Write both digests into the template (each left out when its input is not known yet; the
/// exporter's also without an exporter, which nothing would restart).
pub fn stamp(
    mcm: &MultiCloudMongoDB,
    template: &mut MongoDB,
    secrets: &BTreeMap<String, Secret>,
    config_maps: &BTreeMap<String, ConfigMap>,
) {
    let name = mcm.name_any_or_default();
    let Some(key) = value(secrets.get(&keyfile_secret_name(&name)), KEYFILE_KEY) else {
        return;
    };
    let user_config = user_config_ref(mcm).and_then(|c| config_maps.get(c));
    template.spec.config_digest = config_digest(key, &template.spec, user_config);
    let exporter = template
        .spec
        .metrics_exporter_spec
        .as_ref()
        .is_none_or(|m| m.enable.unwrap_or(true));
    template.spec.exporter_login_digest = exporter
        .then(|| {
            value(
                secrets.get(&credentials_secret_name(&name)),
                CLUSTER_MONITOR_PASSWORD_KEY,
            )
        })
        .flatten()
        .and_then(|p| exporter_login_digest(key, p));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The digests change with their input and with the key (without the keyfile a digest
    /// cannot be tested against a guessed password), are stable, and are not the input.
    #[test]
    fn digests_are_keyed_stable_and_follow_their_input() {
        let d = exporter_login_digest(b"key-1", b"hunter2").unwrap();
        assert_eq!(d.len(), 20);
        assert_eq!(exporter_login_digest(b"key-1", b"hunter2").unwrap(), d);
        assert_ne!(exporter_login_digest(b"key-1", b"hunter3").unwrap(), d);
        assert_ne!(exporter_login_digest(b"key-2", b"hunter2").unwrap(), d);
        assert!(exporter_login_digest(b"", b"hunter2").is_none());
        let spec = MongoDBSpec::default();
        let cm = |v: &str| ConfigMap {
            data: Some(BTreeMap::from([("mongod.yaml".to_owned(), v.to_owned())])),
            ..Default::default()
        };
        let a = config_digest(b"k", &spec, Some(&cm("a: 1"))).unwrap();
        assert_eq!(config_digest(b"k", &spec, Some(&cm("a: 1"))).unwrap(), a);
        assert_ne!(config_digest(b"k", &spec, Some(&cm("a: 2"))).unwrap(), a);
        assert_ne!(config_digest(b"k", &spec, None).unwrap(), a);
        let mut other = spec.clone();
        other.custom_config_ref = Some("another".into());
        assert_ne!(config_digest(b"k", &other, Some(&cm("a: 1"))).unwrap(), a);
    }
}
