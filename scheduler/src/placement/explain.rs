//! Why each cluster got what it got: one record per input cluster, plus the global decisions.
//!
//! Records refer to clusters by their index in the input slice so that explaining 5,000
//! clusters costs no string allocation; [`Explanation::render`] joins them with the names.

use serde::Serialize;

use super::input::{ClusterCandidate, TaintEffect};

/// Why a cluster cannot host members of this object at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Filtered {
    /// The cluster's `Ready` condition is not `True`.
    NotReady,
    /// A `NoSchedule`/`NoExecute` taint the object does not tolerate.
    Tainted { key: String, effect: &'static str },
    /// Not in `affinity.clusterNames`.
    NotInClusterNames,
    /// Listed in `affinity.exclude`.
    Excluded,
    /// `affinity.labelSelector` does not match.
    LabelSelectorMismatch,
    /// `affinity.fieldSelector` does not match.
    FieldSelectorMismatch,
    /// No `vip` label: a MongoDB member address needs it.
    NoVip,
    /// A spread constraint groups by a field the cluster does not have.
    MissingTopology { field: String },
}

impl Filtered {
    pub(crate) fn tainted(key: &str, effect: TaintEffect) -> Self {
        Self::Tainted {
            key: key.to_owned(),
            effect: effect.as_str(),
        }
    }
}

impl std::fmt::Display for Filtered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotReady => f.write_str("filtered: not Ready"),
            Self::Tainted { key, effect } => {
                write!(f, "filtered: taint {key}:{effect} not tolerated")
            }
            Self::NotInClusterNames => f.write_str("filtered: not in affinity.clusterNames"),
            Self::Excluded => f.write_str("filtered: listed in affinity.exclude"),
            Self::LabelSelectorMismatch => {
                f.write_str("filtered: affinity.labelSelector does not match")
            }
            Self::FieldSelectorMismatch => {
                f.write_str("filtered: affinity.fieldSelector does not match")
            }
            Self::NoVip => f.write_str("filtered: no vip label (member addresses need it)"),
            Self::MissingTopology { field } => {
                write!(
                    f,
                    "filtered: no {field}, which a spread constraint groups by"
                )
            }
        }
    }
}

/// What decided the count of an eligible cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountReason {
    /// The mode's rule for additions, e.g. `even share`.
    pub rule: &'static str,
    /// Members kept from the previous placement (rule 4).
    pub kept: u32,
    /// Previous members removed because the cluster no longer has room for them.
    pub removed_for_capacity: u32,
    /// Previous members removed because the object scaled down.
    pub removed_for_scale: u32,
    /// Previous members moved away so the quorum survives losing one cluster (rule 3).
    pub moved_for_quorum: u32,
    /// Members added by the mode's rule (even share, Webster share, packing).
    pub added: u32,
    /// Of `added`, those that went here to reach quorum safety.
    pub added_for_quorum: u32,
    /// Of `added`, those that went here to reach a spread constraint's `minGroups`.
    pub added_for_spread: u32,
    /// The cluster is full: its count equals its capacity.
    pub at_capacity: bool,
}

/// The verdict on one input cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "camelCase")]
pub enum Verdict {
    Filtered(Filtered),
    /// Eligible but no room for a data member (it may still host the arbiter).
    NoCapacity,
    /// Eligible, not needed: clusters ranked higher took all members, or a spread
    /// constraint's `maxGroups` was reached.
    NotChosen,
    /// Hosts members; `count` says why this many.
    Placed {
        count: CountReason,
    },
}

/// One record per input cluster, in input order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    /// Index into the input cluster slice.
    #[serde(skip)]
    pub index: u32,
    /// Members of this shape the cluster can hold for this object (its previous members
    /// included); 0 for filtered clusters.
    pub capacity: u32,
    pub previous: u32,
    pub data: u32,
    pub votes: u32,
    pub arbiter: bool,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The whole explanation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub clusters: Vec<ClusterRecord>,
    /// Global decisions: the number of voters, the arbiter, quorum safety, in plain words.
    pub decisions: Vec<String>,
}

/// A record joined with its cluster's name, for JSON output.
#[derive(Debug, Serialize)]
pub struct NamedRecord<'a> {
    pub cluster: &'a str,
    #[serde(flatten)]
    pub record: &'a ClusterRecord,
    /// The record in words, as in the text table.
    pub why: String,
}

impl Explanation {
    /// Records joined with cluster names (`clusters` must be the slice given to `place`).
    pub fn render<'a>(&'a self, clusters: &'a [ClusterCandidate]) -> Vec<NamedRecord<'a>> {
        self.clusters
            .iter()
            .map(|r| NamedRecord {
                cluster: clusters
                    .get(r.index as usize)
                    .map_or("?", |c| c.name.as_str()),
                record: r,
                why: r.why(),
            })
            .collect()
    }
}

impl ClusterRecord {
    /// The verdict in words, e.g. `kept 2; +1 even share (for quorum safety)`.
    pub fn why(&self) -> String {
        match &self.verdict {
            Verdict::Filtered(f) => f.to_string(),
            Verdict::NoCapacity if self.arbiter => {
                "no room for data members; hosts the arbiter".into()
            }
            Verdict::NoCapacity => "eligible, but no room for a member".into(),
            Verdict::NotChosen => {
                "eligible, not needed (higher-ranked clusters took the members)".into()
            }
            Verdict::Placed { count } => {
                let mut parts: Vec<String> = Vec::new();
                if count.kept > 0 {
                    parts.push(format!("kept {}", count.kept));
                }
                if count.removed_for_scale > 0 {
                    parts.push(format!("-{} scale down", count.removed_for_scale));
                }
                if count.removed_for_capacity > 0 {
                    parts.push(format!("-{} no longer fit", count.removed_for_capacity));
                }
                if count.moved_for_quorum > 0 {
                    parts.push(format!(
                        "-{} moved elsewhere for quorum safety",
                        count.moved_for_quorum
                    ));
                }
                let plain = count.added - count.added_for_quorum - count.added_for_spread;
                if plain > 0 {
                    parts.push(format!("+{plain} {}", count.rule));
                }
                if count.added_for_quorum > 0 {
                    parts.push(format!("+{} for quorum safety", count.added_for_quorum));
                }
                if count.added_for_spread > 0 {
                    parts.push(format!("+{} for spread minGroups", count.added_for_spread));
                }
                if count.at_capacity && self.data > 0 {
                    parts.push("full".into());
                }
                if self.arbiter {
                    parts.push("arbiter".into());
                }
                if parts.is_empty() {
                    parts.push("arbiter only".into());
                }
                parts.join("; ")
            }
        }
    }
}
