//! [`MemberShape`]: what one MongoDB member asks of a member cluster (resource requests and node
//! claim), plus its wire form for Karmada's scheduler-estimator.
//!
//! The wire form writes every k8s-typed field **and** its `*Bytes` twin with the same bytes
//! (`docs/karmada.md#estimator-wire-format`), so estimators of Karmada 1.15–1.17 (typed fields
//! only), 1.18 (both) and 1.19 (bytes only) all read the same requirements. Like Kubernetes' Go
//! marshaller we write empty strings of the k8s messages explicitly, so our bytes equal Go's for
//! the same object.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use prost::Message;

use crate::proto::{k8s, pb};

/// The requirements of one member, as the caller knows them (from the MongoDB spec or a
/// ResourceBinding's `replicaRequirements`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberRequirements {
    /// Resource requests, e.g. `cpu: 500m`, `memory: 1Gi`.
    pub resource_request: BTreeMap<String, Quantity>,
    /// Node labels the member's pod requires.
    pub node_selector: BTreeMap<String, String>,
    /// `requiredDuringSchedulingIgnoredDuringExecution` node affinity, if any.
    pub node_affinity: Option<NodeSelector>,
    pub tolerations: Vec<Toleration>,
    /// Namespace of the member's pods (the estimator checks quotas there).
    pub namespace: String,
    pub priority_class_name: String,
}

/// A stable fingerprint of a [`MemberShape`], the cache key together with the cluster name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShapeId(pub u64);

/// An immutable, cheaply cloned member shape with its precomputed wire form and fingerprint.
#[derive(Clone, Debug)]
pub struct MemberShape(Arc<ShapeInner>);

#[derive(Debug)]
struct ShapeInner {
    requirements: MemberRequirements,
    wire: pb::ReplicaRequirements,
    id: ShapeId,
}

impl PartialEq for MemberShape {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id && self.0.requirements == other.0.requirements
    }
}

impl MemberShape {
    pub fn new(requirements: MemberRequirements) -> Self {
        let wire = replica_requirements(&requirements);
        // The encoding is deterministic (sorted maps), so equal shapes hash equally across calls.
        let mut hasher = std::hash::DefaultHasher::new();
        wire.encode_to_vec().hash(&mut hasher);
        let id = ShapeId(hasher.finish());
        Self(Arc::new(ShapeInner {
            requirements,
            wire,
            id,
        }))
    }

    /// Shorthand for a shape with only resource requests, e.g. `[("cpu", "1"), ("memory", "2Gi")]`.
    pub fn from_requests<'a>(requests: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::new(MemberRequirements {
            resource_request: requests
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
                .collect(),
            ..MemberRequirements::default()
        })
    }

    pub fn id(&self) -> ShapeId {
        self.0.id
    }

    pub fn requirements(&self) -> &MemberRequirements {
        &self.0.requirements
    }

    /// `ReplicaRequirements` as sent in `MaxAvailableReplicas`, both field layouts filled.
    pub fn replica_requirements(&self) -> &pb::ReplicaRequirements {
        &self.0.wire
    }
}

/// Builds `ReplicaRequirements` with the typed fields and their `*Bytes` twins.
pub fn replica_requirements(req: &MemberRequirements) -> pb::ReplicaRequirements {
    let (resource_request, resource_request_bytes) = resource_maps(&req.resource_request);
    pb::ReplicaRequirements {
        node_claim: node_claim(req),
        resource_request,
        namespace: req.namespace.clone(),
        priority_class_name: req.priority_class_name.clone(),
        resource_request_bytes,
    }
}

/// Builds a `Component` (for `MaxAvailableComponentSets` and `AssumedWorkload`) of `replicas`
/// members of this shape. Note the field numbers of `ComponentReplicaRequirements` differ from
/// `ReplicaRequirements`; prost takes care of that.
pub fn component(name: &str, req: &MemberRequirements, replicas: i32) -> pb::Component {
    let (resource_request, resource_request_bytes) = resource_maps(&req.resource_request);
    pb::Component {
        name: name.to_owned(),
        replica_requirements: Some(pb::ComponentReplicaRequirements {
            node_claim: node_claim(req),
            resource_request,
            priority_class_name: req.priority_class_name.clone(),
            resource_request_bytes,
        }),
        replicas,
    }
}

type ResourceMaps = (BTreeMap<String, k8s::Quantity>, BTreeMap<String, Vec<u8>>);

fn resource_maps(requests: &BTreeMap<String, Quantity>) -> ResourceMaps {
    let typed: BTreeMap<String, k8s::Quantity> = requests
        .iter()
        .map(|(k, q)| (k.clone(), quantity(q)))
        .collect();
    let bytes = typed
        .iter()
        .map(|(k, q)| (k.clone(), q.encode_to_vec()))
        .collect();
    (typed, bytes)
}

/// `None` when the member claims nothing of nodes, like Karmada (no empty `nodeClaim`).
fn node_claim(req: &MemberRequirements) -> Option<pb::NodeClaim> {
    if req.node_selector.is_empty() && req.node_affinity.is_none() && req.tolerations.is_empty() {
        return None;
    }
    let node_affinity = req.node_affinity.as_ref().map(node_selector);
    let tolerations: Vec<k8s::Toleration> = req.tolerations.iter().map(toleration).collect();
    Some(pb::NodeClaim {
        node_affinity_bytes: node_affinity
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default(),
        tolerations_bytes: tolerations.iter().map(Message::encode_to_vec).collect(),
        node_affinity,
        node_selector: req.node_selector.clone(),
        tolerations,
    })
}

/// k8s `Quantity`: its string form in field 1.
pub fn quantity(q: &Quantity) -> k8s::Quantity {
    k8s::Quantity {
        string: Some(q.0.clone()),
    }
}

pub fn node_selector(s: &NodeSelector) -> k8s::NodeSelector {
    k8s::NodeSelector {
        node_selector_terms: s
            .node_selector_terms
            .iter()
            .map(node_selector_term)
            .collect(),
    }
}

fn node_selector_term(t: &NodeSelectorTerm) -> k8s::NodeSelectorTerm {
    let reqs = |v: &Option<Vec<NodeSelectorRequirement>>| {
        v.iter().flatten().map(node_selector_requirement).collect()
    };
    k8s::NodeSelectorTerm {
        match_expressions: reqs(&t.match_expressions),
        match_fields: reqs(&t.match_fields),
    }
}

fn node_selector_requirement(r: &NodeSelectorRequirement) -> k8s::NodeSelectorRequirement {
    k8s::NodeSelectorRequirement {
        key: Some(r.key.clone()),
        operator: Some(r.operator.clone()),
        values: r.values.clone().unwrap_or_default(),
    }
}

/// Go writes the four strings always and `tolerationSeconds` only when set.
pub fn toleration(t: &Toleration) -> k8s::Toleration {
    k8s::Toleration {
        key: Some(t.key.clone().unwrap_or_default()),
        operator: Some(t.operator.clone().unwrap_or_default()),
        value: Some(t.value.clone().unwrap_or_default()),
        effect: Some(t.effect.clone().unwrap_or_default()),
        toleration_seconds: t.toleration_seconds,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    // The ≤ 1.17 layout: k8s-typed fields only.
    mod old {
        use super::k8s;
        use std::collections::BTreeMap;
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Request {
            #[prost(string, tag = "1")]
            pub cluster: String,
            #[prost(message, optional, tag = "2")]
            pub replica_requirements: Option<Requirements>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Requirements {
            #[prost(message, optional, tag = "1")]
            pub node_claim: Option<NodeClaim>,
            #[prost(btree_map = "string, message", tag = "2")]
            pub resource_request: BTreeMap<String, k8s::Quantity>,
            #[prost(string, tag = "3")]
            pub namespace: String,
            #[prost(string, tag = "4")]
            pub priority_class_name: String,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct NodeClaim {
            #[prost(message, optional, tag = "1")]
            pub node_affinity: Option<k8s::NodeSelector>,
            #[prost(btree_map = "string, string", tag = "2")]
            pub node_selector: BTreeMap<String, String>,
            #[prost(message, repeated, tag = "3")]
            pub tolerations: Vec<k8s::Toleration>,
        }
    }

    // The 1.19 layout: `*Bytes` fields only.
    mod new {
        use std::collections::BTreeMap;
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Request {
            #[prost(string, tag = "1")]
            pub cluster: String,
            #[prost(message, optional, tag = "2")]
            pub replica_requirements: Option<Requirements>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Requirements {
            #[prost(message, optional, tag = "1")]
            pub node_claim: Option<NodeClaim>,
            #[prost(string, tag = "3")]
            pub namespace: String,
            #[prost(string, tag = "4")]
            pub priority_class_name: String,
            #[prost(btree_map = "string, bytes", tag = "5")]
            pub resource_request_bytes: BTreeMap<String, Vec<u8>>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct NodeClaim {
            #[prost(btree_map = "string, string", tag = "2")]
            pub node_selector: BTreeMap<String, String>,
            #[prost(bytes = "vec", tag = "4")]
            pub node_affinity_bytes: Vec<u8>,
            #[prost(bytes = "vec", repeated, tag = "5")]
            pub tolerations_bytes: Vec<Vec<u8>>,
        }
    }

    fn full_requirements() -> MemberRequirements {
        MemberRequirements {
            resource_request: [
                ("cpu".to_owned(), Quantity("500m".into())),
                ("memory".to_owned(), Quantity("1Gi".into())),
            ]
            .into(),
            node_selector: [("disk".to_owned(), "ssd".to_owned())].into(),
            node_affinity: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: "zone".into(),
                        operator: "In".into(),
                        values: Some(vec!["a".into(), "b".into()]),
                    }]),
                    match_fields: None,
                }],
            }),
            tolerations: vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Equal".into()),
                value: Some("mongo".into()),
                effect: Some("NoSchedule".into()),
                toleration_seconds: None,
            }],
            namespace: "db".into(),
            priority_class_name: String::new(),
        }
    }

    fn full_request() -> pb::MaxAvailableReplicasRequest {
        pb::MaxAvailableReplicasRequest {
            cluster: "member1".into(),
            replica_requirements: Some(replica_requirements(&full_requirements())),
            assumed_workloads: vec![],
        }
    }

    #[test]
    fn quantity_500m_is_karmadas_golden_bytes() {
        let bytes = quantity(&Quantity("500m".into())).encode_to_vec();
        assert_eq!(hex(&bytes), "0a 04 35 30 30 6d");
    }

    #[test]
    fn toleration_and_requirement_encode_like_gos_marshaller() {
        // key=a operator=Exists, empty value and effect written as empty strings, no seconds.
        let t = toleration(&Toleration {
            key: Some("a".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        });
        assert_eq!(
            hex(&t.encode_to_vec()),
            "0a 01 61 12 06 45 78 69 73 74 73 1a 00 22 00"
        );
        let with_seconds = toleration(&Toleration {
            toleration_seconds: Some(300),
            ..Toleration::default()
        });
        assert_eq!(
            hex(&with_seconds.encode_to_vec()),
            "0a 00 12 00 1a 00 22 00 28 ac 02"
        );
        let r = node_selector_requirement(&NodeSelectorRequirement {
            key: "k".into(),
            operator: "In".into(),
            values: Some(vec!["v".into()]),
        });
        assert_eq!(hex(&r.encode_to_vec()), "0a 01 6b 12 02 49 6e 1a 01 76");
    }

    #[test]
    fn full_request_is_pinned_byte_for_byte() {
        let bytes = full_request().encode_to_vec();
        // cluster, then replicaRequirements { nodeClaim {1 affinity, 2 selector, 3 toleration,
        // 4 affinityBytes, 5 tolerationBytes}, 2 cpu, 2 memory, 3 namespace, 5 cpu, 5 memory }.
        let affinity = "0a 12 0a 10 0a 04 7a 6f 6e 65 12 02 49 6e 1a 01 61 1a 01 62";
        let toleration = "0a 09 64 65 64 69 63 61 74 65 64 12 05 45 71 75 61 6c \
                          1a 05 6d 6f 6e 67 6f 22 0a 4e 6f 53 63 68 65 64 75 6c 65";
        let cpu = "0a 03 63 70 75 12 06 0a 04 35 30 30 6d";
        let memory = "0a 06 6d 65 6d 6f 72 79 12 05 0a 03 31 47 69";
        let expected = format!(
            "0a 07 6d 65 6d 62 65 72 31 \
             12 ce 01 \
             0a 87 01 \
             0a 14 {affinity} \
             12 0b 0a 04 64 69 73 6b 12 03 73 73 64 \
             1a 25 {toleration} \
             22 14 {affinity} \
             2a 25 {toleration} \
             12 0d {cpu} \
             12 0f {memory} \
             1a 02 64 62 \
             2a 0d {cpu} \
             2a 0f {memory}"
        );
        let expected: String = expected.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(hex(&bytes), expected);
    }

    #[test]
    fn old_estimators_read_resources_affinity_and_tolerations() {
        let bytes = full_request().encode_to_vec();
        let old = old::Request::decode(bytes.as_slice()).unwrap();
        assert_eq!(old.cluster, "member1");
        let req = old.replica_requirements.unwrap();
        assert_eq!(req.namespace, "db");
        assert_eq!(req.resource_request["cpu"].string.as_deref(), Some("500m"));
        assert_eq!(
            req.resource_request["memory"].string.as_deref(),
            Some("1Gi")
        );
        let claim = req.node_claim.unwrap();
        assert_eq!(claim.node_selector["disk"], "ssd");
        let term = &claim.node_affinity.unwrap().node_selector_terms[0];
        assert_eq!(term.match_expressions[0].key.as_deref(), Some("zone"));
        assert_eq!(term.match_expressions[0].values, ["a", "b"]);
        assert_eq!(claim.tolerations[0].value.as_deref(), Some("mongo"));
        assert_eq!(claim.tolerations[0].effect.as_deref(), Some("NoSchedule"));
    }

    #[test]
    fn new_estimators_read_the_same_from_the_bytes_fields() {
        let bytes = full_request().encode_to_vec();
        let new = new::Request::decode(bytes.as_slice()).unwrap();
        let req = new.replica_requirements.unwrap();
        let cpu = k8s::Quantity::decode(req.resource_request_bytes["cpu"].as_slice()).unwrap();
        assert_eq!(cpu.string.as_deref(), Some("500m"));
        let claim = req.node_claim.unwrap();
        assert_eq!(claim.node_selector["disk"], "ssd");
        let affinity = k8s::NodeSelector::decode(claim.node_affinity_bytes.as_slice()).unwrap();
        assert_eq!(
            affinity.node_selector_terms[0].match_expressions[0]
                .operator
                .as_deref(),
            Some("In")
        );
        let t = k8s::Toleration::decode(claim.tolerations_bytes[0].as_slice()).unwrap();
        assert_eq!(t.key.as_deref(), Some("dedicated"));
        // Old and new layouts carry the same bytes.
        let old = old::Request::decode(bytes.as_slice()).unwrap();
        let old_claim = old.replica_requirements.unwrap().node_claim.unwrap();
        assert_eq!(
            old_claim.node_affinity.unwrap().encode_to_vec(),
            claim.node_affinity_bytes
        );
        assert_eq!(
            old_claim.tolerations[0].encode_to_vec(),
            claim.tolerations_bytes[0]
        );
    }

    #[test]
    fn a_shape_without_node_claim_sends_none_and_component_numbers_differ() {
        let shape = MemberShape::from_requests([("cpu", "1")]);
        assert!(shape.replica_requirements().node_claim.is_none());
        let c = component("mongo", shape.requirements(), 3);
        let bytes = c.replica_requirements.unwrap().encode_to_vec();
        // ComponentReplicaRequirements: resourceRequest is 2, resourceRequestBytes is 4 (not 5).
        assert_eq!(
            hex(&bytes),
            "12 0a 0a 03 63 70 75 12 03 0a 01 31 22 0a 0a 03 63 70 75 12 03 0a 01 31"
        );
    }

    #[test]
    fn equal_shapes_share_an_id_and_different_ones_do_not() {
        let a = MemberShape::from_requests([("cpu", "1"), ("memory", "2Gi")]);
        let b = MemberShape::from_requests([("memory", "2Gi"), ("cpu", "1")]);
        let c = MemberShape::from_requests([("cpu", "2"), ("memory", "2Gi")]);
        assert_eq!(a.id(), b.id());
        assert_eq!(a, b);
        assert_ne!(a.id(), c.id());
    }
}
