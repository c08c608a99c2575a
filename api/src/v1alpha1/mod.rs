//! `middleware.fedstate.io/v1alpha1`: field names follow FedState's Go API so its objects (and the
//! samples in its documents) apply unchanged; everything new is optional.
//!
//! Presence is kept: optional fields are `Option`, so an object read and written back loses and
//! gains nothing. Defaults live in the CRD schema (the apiserver applies them) and in the
//! `effective_*` accessors, never in serde.

mod common;
mod mongodb;
mod multicloud_mongodb;

pub use common::*;
pub use mongodb::*;
pub use multicloud_mongodb::*;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const SECRET: &str = "s3cr3t-Pa55";

    fn assert_redacted(what: &str, debug: &str) {
        assert!(
            !debug.contains(SECRET),
            "{what} Debug shows the password: {debug}"
        );
        assert!(
            debug.contains(REDACTED),
            "{what} Debug says nothing is set: {debug}"
        );
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let auth = AuthSetting {
            root_passwd: Some(SECRET.into()),
            root_password_secret_ref: None,
        };
        assert_redacted("AuthSetting", &format!("{auth:?}"));
        let creds = RegistryCredentials {
            user: Some("u".into()),
            passwd: Some(SECRET.into()),
            username: Some("u".into()),
            password: Some(SECRET.into()),
        };
        assert_redacted("RegistryCredentials", &format!("{creds:?}"));
        assert_redacted(
            "ImagePullSecret",
            &format!("{:?}", ImagePullSecret::Credentials(creds)),
        );
        let user = DbUserSpec {
            name: Some("admin".into()),
            user: Some("admin".into()),
            password: Some(SECRET.into()),
            enable: Some(true),
        };
        assert_redacted("DbUserSpec", &format!("{user:?}"));
        let spec: MongoDBSpec = serde_json::from_value(json!({
            "members": 1, "rootPassword": SECRET, "dbUserSpec": {"password": SECRET},
            "imagePullSecret": {"username": "u", "password": SECRET}
        }))
        .unwrap();
        assert_redacted("MongoDBSpec", &format!("{spec:?}"));
        let mdb = MongoDB::new("m", spec);
        assert_redacted("MongoDB", &format!("{mdb:?}"));
        let mcm: MultiCloudMongoDB = serde_json::from_value(json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MultiCloudMongoDB",
            "metadata": {"name": "m"},
            "spec": {"replicaset": 3, "auth": {"rootPasswd": SECRET},
                     "imageSetting": {"imagePullSecret": {"user": "u", "passwd": SECRET}}}
        }))
        .unwrap();
        assert_redacted("MultiCloudMongoDB", &format!("{mcm:?}"));
        // Unset passwords are shown as unset, so Debug still tells what was given.
        assert_eq!(
            format!("{:?}", AuthSetting::default()),
            "AuthSetting { root_passwd: None, root_password_secret_ref: None }"
        );
    }

    #[test]
    fn mongodb_spec_debug_lists_every_field() {
        // The hand-written Debug must not fall behind the struct: every property of the CRD's
        // spec schema (generated from the struct) appears in it, camelCase → snake_case.
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(MongoDB::crd()).unwrap();
        let properties = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["properties"]
            .as_object()
            .unwrap()
            .clone();
        let debug = format!("{:?}", MongoDBSpec::default());
        assert!(properties.len() >= 21, "{properties:?}");
        for key in properties.keys() {
            let snake: String = key
                .chars()
                .flat_map(|c| {
                    let underscore = c.is_ascii_uppercase().then_some('_');
                    underscore.into_iter().chain([c.to_ascii_lowercase()])
                })
                .collect();
            let name = if snake == "type" {
                "type_".into()
            } else {
                snake
            };
            assert!(
                debug.contains(&format!("{name}: ")),
                "{name} missing: {debug}"
            );
        }
    }
}
