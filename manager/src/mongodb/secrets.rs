//! The Secrets of one replica set: the keyfile (members authenticate to each other), the
//! credentials (root, clusterAdmin, clusterMonitor) and, for FedState's inline registry
//! credentials, an image pull Secret.
//!
//! Values are random, generated once and kept: the functions here take what exists and return the
//! complete desired Secret, so applying it again changes nothing. The keyfile is its own random
//! value, never the root password. No value ever leaves a Secret's `data`: member objects
//! reference Secrets by name, and nothing here implements `Display` for a value.

use std::collections::BTreeMap;

use base64::Engine;
use fedstate_api::MultiCloudMongoDB;
use fedstate_api::v1alpha1::{ImagePullSecret, SecretKeyRef};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::Rng;

pub use fedstate_api::secrets::{
    CLUSTER_ADMIN_PASSWORD_KEY, CLUSTER_MONITOR_PASSWORD_KEY, KEYFILE_KEY, ROOT_PASSWORD_KEY,
    credentials_secret_name, keyfile_secret_name,
};
use fedstate_api::secrets::{generate_keyfile, generate_password};

pub fn pull_secret_name(name: &str) -> String {
    format!("{name}-image-pull")
}

/// Where the members find their root password: the user's Secret, or our credentials Secret.
pub fn root_password_ref(mcm: &MultiCloudMongoDB) -> SecretKeyRef {
    match user_root_secret(mcm) {
        Some(r) => r.clone(),
        None => SecretKeyRef {
            name: credentials_secret_name(&mcm.name_any_or_default()),
            key: Some(ROOT_PASSWORD_KEY.to_owned()),
        },
    }
}

/// The user's own root password Secret, if the spec names one.
pub fn user_root_secret(mcm: &MultiCloudMongoDB) -> Option<&SecretKeyRef> {
    mcm.spec
        .auth
        .as_ref()
        .and_then(|a| a.root_password_secret_ref.as_ref())
}

/// The pull Secret members reference: the user's by name, ours for inline credentials, or none.
pub fn pull_secret_ref(mcm: &MultiCloudMongoDB) -> Option<String> {
    match image_pull_secret(mcm)? {
        ImagePullSecret::Name(n) => Some(n.clone()),
        ImagePullSecret::Credentials(c) => c
            .login()
            .map(|_| pull_secret_name(&mcm.name_any_or_default())),
    }
}

fn image_pull_secret(mcm: &MultiCloudMongoDB) -> Option<&ImagePullSecret> {
    mcm.spec
        .image_setting
        .as_ref()
        .and_then(|i| i.image_pull_secret.as_ref())
        .filter(|s| !s.is_empty())
}

/// Small extension so pure code can name objects without `kube::ResourceExt` noise.
pub trait NameOrDefault {
    fn name_any_or_default(&self) -> String;
}

impl NameOrDefault for MultiCloudMongoDB {
    fn name_any_or_default(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }
}

fn existing_value(existing: Option<&Secret>, key: &str) -> Option<ByteString> {
    existing
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(key))
        .filter(|v| !v.0.is_empty())
        .cloned()
}

fn secret(name: String, type_: &str, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        type_: Some(type_.to_owned()),
        data: Some(data),
        ..Default::default()
    }
}

/// The keyfile Secret: the existing keyfile, or a new random one.
pub fn keyfile_secret(name: &str, existing: Option<&Secret>, rng: &mut impl Rng) -> Secret {
    let value = existing_value(existing, KEYFILE_KEY)
        .unwrap_or_else(|| ByteString(generate_keyfile(rng).into_bytes()));
    secret(
        keyfile_secret_name(name),
        "Opaque",
        BTreeMap::from([(KEYFILE_KEY.to_owned(), value)]),
    )
}

/// The credentials Secret: clusterAdmin and clusterMonitor passwords (kept once generated) and,
/// unless the user references a Secret of their own, the root password: `spec.auth.rootPasswd`
/// when given (so changing it rotates the password), else a kept random one.
pub fn credentials_secret(
    mcm: &MultiCloudMongoDB,
    existing: Option<&Secret>,
    rng: &mut impl Rng,
) -> Secret {
    let mut data = BTreeMap::new();
    for key in [CLUSTER_ADMIN_PASSWORD_KEY, CLUSTER_MONITOR_PASSWORD_KEY] {
        let v = existing_value(existing, key)
            .unwrap_or_else(|| ByteString(generate_password(rng).into_bytes()));
        data.insert(key.to_owned(), v);
    }
    if user_root_secret(mcm).is_none() {
        let given = mcm
            .spec
            .auth
            .as_ref()
            .and_then(|a| a.root_passwd.as_deref())
            .filter(|p| !p.is_empty());
        let v = match given {
            Some(p) => ByteString(p.as_bytes().to_vec()),
            None => existing_value(existing, ROOT_PASSWORD_KEY)
                .unwrap_or_else(|| ByteString(generate_password(rng).into_bytes())),
        };
        data.insert(ROOT_PASSWORD_KEY.to_owned(), v);
    }
    secret(
        credentials_secret_name(&mcm.name_any_or_default()),
        "Opaque",
        data,
    )
}

/// For FedState's inline registry credentials: a `kubernetes.io/dockerconfigjson` Secret for the
/// image's registry. `None` when the spec names a Secret or gives no credentials.
pub fn pull_secret(mcm: &MultiCloudMongoDB) -> Option<Secret> {
    let ImagePullSecret::Credentials(c) = image_pull_secret(mcm)? else {
        return None;
    };
    let (user, pass) = c.login()?;
    let registry = registry_of(mcm.spec.image());
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let config = serde_json::json!({"auths": {registry: {"username": user, "password": pass, "auth": auth}}});
    Some(secret(
        pull_secret_name(&mcm.name_any_or_default()),
        "kubernetes.io/dockerconfigjson",
        BTreeMap::from([(
            ".dockerconfigjson".to_owned(),
            ByteString(config.to_string().into_bytes()),
        )]),
    ))
}

/// The registry an image is pulled from (Docker Hub when the name has no registry part).
pub fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_owned()
        }
        _ => "https://index.docker.io/v1/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn mcm(yaml: &str) -> MultiCloudMongoDB {
        serde_yaml::from_str(yaml).unwrap()
    }

    const SEED: &str = include_str!("../../../deploy/samples/seed/multicloudmongodb-full.yaml");

    fn value(s: &Secret, key: &str) -> String {
        String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn keyfile_is_random_kept_and_never_the_root_password() {
        let m = mcm(SEED);
        let mut rng = StdRng::seed_from_u64(1);
        let k1 = keyfile_secret("demo", None, &mut rng);
        let k2 = keyfile_secret("demo", None, &mut rng);
        assert_ne!(value(&k1, KEYFILE_KEY), value(&k2, KEYFILE_KEY));
        assert_eq!(value(&k1, KEYFILE_KEY).len(), 756);
        assert_eq!(keyfile_secret("demo", Some(&k1), &mut rng), k1);
        assert_ne!(value(&k1, KEYFILE_KEY), "mypasswd");
        let creds = credentials_secret(&m, None, &mut rng);
        assert_eq!(value(&creds, ROOT_PASSWORD_KEY), "mypasswd");
        assert_ne!(
            value(&creds, CLUSTER_ADMIN_PASSWORD_KEY),
            value(&creds, CLUSTER_MONITOR_PASSWORD_KEY)
        );
    }

    #[test]
    fn generated_passwords_are_kept_and_rootpasswd_rotates() {
        let mut rng = StdRng::seed_from_u64(2);
        let minimal = mcm(include_str!(
            "../../../deploy/samples/seed/multicloudmongodb-minimal.yaml"
        ));
        let first = credentials_secret(&minimal, None, &mut rng);
        assert_eq!(value(&first, ROOT_PASSWORD_KEY).len(), 32);
        assert_eq!(credentials_secret(&minimal, Some(&first), &mut rng), first);
        let mut with_pw = minimal.clone();
        with_pw.spec.auth = Some(fedstate_api::v1alpha1::AuthSetting {
            root_passwd: Some("new-one".into()),
            root_password_secret_ref: None,
        });
        let rotated = credentials_secret(&with_pw, Some(&first), &mut rng);
        assert_eq!(value(&rotated, ROOT_PASSWORD_KEY), "new-one");
        assert_eq!(
            value(&rotated, CLUSTER_ADMIN_PASSWORD_KEY),
            value(&first, CLUSTER_ADMIN_PASSWORD_KEY)
        );
    }

    #[test]
    fn a_user_secret_is_referenced_not_copied() {
        let mut m = mcm(SEED);
        m.spec.auth = Some(fedstate_api::v1alpha1::AuthSetting {
            root_passwd: None,
            root_password_secret_ref: Some(SecretKeyRef {
                name: "mine".into(),
                key: Some("pw".into()),
            }),
        });
        assert_eq!(root_password_ref(&m).name, "mine");
        let creds = credentials_secret(&m, None, &mut StdRng::seed_from_u64(3));
        assert!(!creds.data.unwrap().contains_key(ROOT_PASSWORD_KEY));
    }

    #[test]
    fn pull_secrets_by_name_or_from_inline_credentials() {
        let m = mcm(SEED);
        assert_eq!(pull_secret_ref(&m).as_deref(), Some("my-image-secret"));
        assert!(pull_secret(&m).is_none());
        let mut inline = m.clone();
        inline.spec.image_setting.as_mut().unwrap().image =
            Some("reg.example:5000/mongo:7.0".into());
        inline
            .spec
            .image_setting
            .as_mut()
            .unwrap()
            .image_pull_secret =
            Some(serde_json::from_str(r#"{"user":"admin","passwd":"s3cret"}"#).unwrap());
        let s = pull_secret(&inline).unwrap();
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        assert!(value(&s, ".dockerconfigjson").contains("reg.example:5000"));
        assert_eq!(
            pull_secret_ref(&inline).as_deref(),
            Some("multicloudmongodb-sample-image-pull")
        );
        assert_eq!(registry_of("mongo:7.0"), "https://index.docker.io/v1/");
    }
}
