//! Kubernetes label selectors and Karmada field selectors, compiled once per request.

use std::collections::BTreeMap;

use fedstate_api::karmada::FieldSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A selector operator that the engine does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{field}: unknown operator {operator:?} (use In, NotIn, Exists or DoesNotExist)")]
    Operator { field: String, operator: String },
    #[error("{field}: key {key:?} is not one of provider, region, zone")]
    FieldKey { field: String, key: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
}

impl Op {
    fn parse(field: &str, operator: &str, values: &[String]) -> Result<Self, SelectorError> {
        Ok(match operator {
            "In" => Self::In(values.to_vec()),
            "NotIn" => Self::NotIn(values.to_vec()),
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            _ => {
                return Err(SelectorError::Operator {
                    field: field.to_owned(),
                    operator: operator.to_owned(),
                });
            }
        })
    }

    fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Self::In(vs), Some(v)) => vs.iter().any(|x| x == v),
            (Self::In(_), None) => false,
            (Self::NotIn(vs), Some(v)) => !vs.iter().any(|x| x == v),
            (Self::NotIn(_), None) => true,
            (Self::Exists, v) => v.is_some(),
            (Self::DoesNotExist, v) => v.is_none(),
        }
    }
}

/// A compiled `LabelSelector` (`matchLabels` and `matchExpressions`, all must match).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelMatcher {
    terms: Vec<(String, Op)>,
}

impl LabelMatcher {
    /// `field` names the selector in error messages, e.g. `spec.scheduler.affinity.labelSelector`.
    pub fn compile(field: &str, s: &LabelSelector) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for (k, v) in s.match_labels.iter().flatten() {
            terms.push((k.clone(), Op::In(vec![v.clone()])));
        }
        for e in s.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            terms.push((e.key.clone(), Op::parse(field, &e.operator, &values)?));
        }
        Ok(Self { terms })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms
            .iter()
            .all(|(k, op)| op.matches(labels.get(k).map(String::as_str)))
    }
}

/// Which cluster field a field selector term reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterField {
    Provider,
    Region,
    Zone,
}

/// A compiled Karmada `FieldSelector` over `provider`, `region` and `zone`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldMatcher {
    terms: Vec<(ClusterField, Op)>,
}

impl FieldMatcher {
    pub fn compile(field: &str, s: &FieldSelector) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for e in &s.match_expressions {
            let f = match e.key.as_str() {
                "provider" => ClusterField::Provider,
                "region" => ClusterField::Region,
                "zone" => ClusterField::Zone,
                _ => {
                    return Err(SelectorError::FieldKey {
                        field: field.to_owned(),
                        key: e.key.clone(),
                    });
                }
            };
            let values = e.values.clone().unwrap_or_default();
            terms.push((f, Op::parse(field, &e.operator, &values)?));
        }
        Ok(Self { terms })
    }

    pub fn matches(
        &self,
        provider: Option<&str>,
        region: Option<&str>,
        zone: Option<&str>,
    ) -> bool {
        self.terms.iter().all(|(f, op)| {
            op.matches(match f {
                ClusterField::Provider => provider,
                ClusterField::Region => region,
                ClusterField::Zone => zone,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn label_selector_follows_kubernetes_semantics() {
        let s = LabelSelector {
            match_labels: Some(labels(&[("env", "prod")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["edge".into()]),
                },
                LabelSelectorRequirement {
                    key: "vip".into(),
                    operator: "Exists".into(),
                    values: None,
                },
            ]),
        };
        let m = LabelMatcher::compile("sel", &s).unwrap();
        assert!(m.matches(&labels(&[("env", "prod"), ("vip", "1.2.3.4")])));
        assert!(!m.matches(&labels(&[("env", "prod"), ("vip", "x"), ("tier", "edge")])));
        assert!(!m.matches(&labels(&[("env", "dev"), ("vip", "x")])));
        assert!(!m.matches(&labels(&[("env", "prod")])));
        assert!(LabelMatcher::default().matches(&labels(&[])));
        let bad = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Near".into(),
                values: None,
            }]),
            ..Default::default()
        };
        let e = LabelMatcher::compile("spec.scheduler.affinity.labelSelector", &bad).unwrap_err();
        assert!(e.to_string().contains("unknown operator \"Near\""));
    }
}
