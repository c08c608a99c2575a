//! `work.karmada.io/v1alpha1` `Work`: what Karmada's binding controller writes into a member
//! cluster's execution namespace (`karmada-es-<cluster>`) for each template it propagates there.
//! We only list them (deletion waits until a template's Works are gone), so no typed struct.

use std::collections::BTreeMap;

use kube::core::ApiResource;

/// Annotation (or label, in older Karmada) naming the binding a Work was made for.
pub const WORK_BINDING_NAME: &str = "resourcebinding.karmada.io/name";
/// Annotation (or label) naming that binding's namespace.
pub const WORK_BINDING_NAMESPACE: &str = "resourcebinding.karmada.io/namespace";
/// Label Karmada puts on a ResourceBinding and on every Work made for it (its permanent id), so a
/// binding's Works can be listed by label.
pub const BINDING_PERMANENT_ID: &str = "resourcebinding.karmada.io/permanent-id";
/// Prefix of the per-cluster namespace Karmada keeps Works in.
pub const EXECUTION_NAMESPACE_PREFIX: &str = "karmada-es-";

/// The `Work` kind, for a dynamic `Api`.
pub fn work_resource() -> ApiResource {
    ApiResource {
        group: "work.karmada.io".into(),
        version: "v1alpha1".into(),
        api_version: "work.karmada.io/v1alpha1".into(),
        kind: "Work".into(),
        plural: "works".into(),
    }
}

/// The member cluster a Work is for, from its namespace.
pub fn work_cluster(namespace: &str) -> Option<&str> {
    namespace.strip_prefix(EXECUTION_NAMESPACE_PREFIX)
}

/// Whether a Work (by its annotations and labels) was made for binding `namespace/name`.
pub fn work_is_for_binding(
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    namespace: &str,
    name: &str,
) -> bool {
    let has = |k: &str, v: &str| {
        annotations
            .get(k)
            .or_else(|| labels.get(k))
            .is_some_and(|x| x == v)
    };
    has(WORK_BINDING_NAME, name) && has(WORK_BINDING_NAMESPACE, namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_work_names_its_binding_by_annotation_or_label() {
        let by_annotation = BTreeMap::from([
            (WORK_BINDING_NAME.to_owned(), "demo-mongodb".to_owned()),
            (WORK_BINDING_NAMESPACE.to_owned(), "db".to_owned()),
        ]);
        let none = BTreeMap::new();
        assert!(work_is_for_binding(
            &by_annotation,
            &none,
            "db",
            "demo-mongodb"
        ));
        assert!(work_is_for_binding(
            &none,
            &by_annotation,
            "db",
            "demo-mongodb"
        ));
        assert!(!work_is_for_binding(
            &by_annotation,
            &none,
            "other",
            "demo-mongodb"
        ));
        assert!(!work_is_for_binding(&none, &none, "db", "demo-mongodb"));
        assert_eq!(work_cluster("karmada-es-member1"), Some("member1"));
        assert_eq!(work_cluster("default"), None);
    }
}
