//! Types used by both kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default image when the spec names none (`docs/architecture.md#api`).
pub const DEFAULT_IMAGE: &str = "mongo:7.0";
/// Oldest and newest MongoDB major.minor we manage (`docs/mongodb.md#supported-versions`).
pub const SUPPORTED_VERSIONS: (MongoVersion, MongoVersion) = (
    MongoVersion { major: 4, minor: 4 },
    MongoVersion { major: 8, minor: 0 },
);

/// A reference to one key of a Secret in the object's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key inside the Secret; defaults to `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKeyRef {
    pub fn key_or_default(&self) -> &str {
        self.key.as_deref().unwrap_or("password")
    }
}

/// How images are pulled from a private registry. FedState's documents show both forms: the name of
/// an existing `kubernetes.io/dockerconfigjson` Secret (preferred), or inline registry credentials
/// (accepted for compatibility; the manager turns them into a Secret and never copies them into a
/// member object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImagePullSecret {
    /// Name of an existing image pull Secret.
    Name(String),
    /// Inline credentials, FedState style (`user`/`passwd` on MultiCloudMongoDB,
    /// `username`/`password` on MongoDB). Both spellings are read.
    Credentials(RegistryCredentials),
}

/// Inline registry credentials. All fields optional: FedState wrote `imagePullSecret: {}`.
// `Debug` (below) shows whether a password is set, never the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// What `Debug` prints in place of a password that is set.
pub const REDACTED: &str = "<redacted>";

/// A password field as `Debug` shows it: `Some("<redacted>")` when set, `None` when not.
pub fn redact(password: &Option<String>) -> Option<&'static str> {
    password.as_ref().map(|_| REDACTED)
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("user", &self.user)
            .field("passwd", &redact(&self.passwd))
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .finish()
    }
}

impl RegistryCredentials {
    /// `(user, password)` when both are given, in either spelling.
    pub fn login(&self) -> Option<(&str, &str)> {
        let user = self.username.as_deref().or(self.user.as_deref())?;
        let pass = self.password.as_deref().or(self.passwd.as_deref())?;
        (!user.is_empty() && !pass.is_empty()).then_some((user, pass))
    }
}

impl ImagePullSecret {
    /// Whether anything was actually asked for (`{}` and `""` mean nothing).
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Name(n) => n.is_empty(),
            Self::Credentials(c) => *c == RegistryCredentials::default(),
        }
    }
}

// A string or an object cannot be expressed in a structural schema, so the field keeps unknown
// fields and the controllers validate it (with a condition naming `imageSetting.imagePullSecret`).
impl JsonSchema for ImagePullSecret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ImagePullSecret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The macro takes an object literal only, and an object always converts to a schema.
        schemars::json_schema!({
            "description": "Name of an image pull Secret (preferred), or inline registry credentials {user, passwd} / {username, password} (FedState compatibility).",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

/// A MongoDB server version parsed from an image tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MongoVersion {
    pub major: u32,
    pub minor: u32,
}

impl std::fmt::Display for MongoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why an image cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error(
        "{field}: image {image:?} is MongoDB {version}; supported versions are {min} to {max} (e.g. mongo:7.0)",
        min = SUPPORTED_VERSIONS.0,
        max = SUPPORTED_VERSIONS.1
    )]
    UnsupportedVersion {
        field: &'static str,
        image: String,
        version: MongoVersion,
    },
}

/// The MongoDB version an image tag names, when the tag starts with `X.Y` (e.g. `mongo:7.0`,
/// `registry/mongo:6.0.14-jammy`). Digests and tags like `latest` say nothing: `None`.
pub fn image_version(image: &str) -> Option<MongoVersion> {
    let without_digest = image.split('@').next()?;
    // The tag is after the last ':' that follows the last '/' (a registry port is not a tag).
    let last_segment = without_digest.rsplit('/').next()?;
    let tag = last_segment.split_once(':')?.1;
    let mut parts = tag.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some(MongoVersion { major, minor })
}

/// Check an image against the supported range; unknown versions pass (the user knows best).
pub fn check_image(field: &'static str, image: &str) -> Result<(), ImageError> {
    match image_version(image) {
        Some(v) if v < SUPPORTED_VERSIONS.0 || v > SUPPORTED_VERSIONS.1 => {
            Err(ImageError::UnsupportedVersion {
                field,
                image: image.to_owned(),
                version: v,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn versions_from_tags() {
        assert_eq!(
            image_version("mongo:7.0"),
            Some(MongoVersion { major: 7, minor: 0 })
        );
        assert_eq!(
            image_version("mongo:3.6"),
            Some(MongoVersion { major: 3, minor: 6 })
        );
        assert_eq!(
            image_version("reg:5000/lib/mongo:6.0.14-jammy"),
            Some(MongoVersion { major: 6, minor: 0 })
        );
        assert_eq!(image_version("reg:5000/lib/mongo"), None);
        assert_eq!(image_version("mongo:latest"), None);
        assert_eq!(image_version("mongo@sha256:abcd"), None);
    }

    #[test]
    fn old_images_get_a_message_naming_field_and_range() {
        let err = check_image("spec.imageSetting.image", "mongo:3.6")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "spec.imageSetting.image: image \"mongo:3.6\" is MongoDB 3.6; supported versions are 4.4 to 8.0 (e.g. mongo:7.0)"
        );
        assert!(check_image("spec.image", "mongo:4.4").is_ok());
        assert!(check_image("spec.image", "mongo:8.0").is_ok());
        assert!(check_image("spec.image", "mongo:8.2").is_err());
        assert!(check_image("spec.image", "mongo:latest").is_ok());
    }

    #[test]
    fn pull_secret_accepts_both_documented_forms() {
        let by_name: ImagePullSecret = serde_json::from_str(r#""my-image-secret""#).unwrap();
        assert_eq!(by_name, ImagePullSecret::Name("my-image-secret".into()));
        let creds: ImagePullSecret =
            serde_json::from_str(r#"{"username":"admin","password":"x"}"#).unwrap();
        let ImagePullSecret::Credentials(c) = &creds else {
            panic!("credentials expected")
        };
        assert_eq!(c.login(), Some(("admin", "x")));
        let empty: ImagePullSecret = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
    }
}
