//! `fedstate-scheduler plan`: read a Cluster list and a MultiCloudMongoDB from files, place it
//! offline with the same engine the scheduler uses, and render the result.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fedstate_api::karmada::Cluster;
use fedstate_api::{MultiCloudMongoDB, SchedulerResult};
use serde::{Deserialize, Serialize};

use crate::adapter::{Schedulable, cluster, request};
use crate::placement::{
    self, ClusterCandidate, Explanation, PlacementError, PlacementPlan, PreviousPlacement,
    QuorumStatus, Verdict,
};

/// Input that cannot be used. Each message names the file, the field and the problem.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {field}: {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

fn invalid(path: &Path, field: impl Into<String>, problem: impl ToString) -> PlanError {
    PlanError::Invalid {
        path: path.to_owned(),
        field: field.into(),
        problem: problem.to_string(),
    }
}

/// The parsed inputs of one plan.
#[derive(Debug)]
pub struct PlanInput {
    pub object: MultiCloudMongoDB,
    pub clusters: Vec<ClusterCandidate>,
    pub previous: Option<PreviousPlacement>,
    pub generation: i64,
}

#[derive(Deserialize)]
struct ListDoc {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    items: Option<Vec<serde_json::Value>>,
}

fn read(path: &Path) -> Result<String, PlanError> {
    std::fs::read_to_string(path).map_err(|source| PlanError::Read {
        path: path.to_owned(),
        source,
    })
}

/// YAML is a superset of JSON, but serde_json's messages are better for JSON files.
fn parse_doc<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, PlanError> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| invalid(path, "(document)", e))
    } else {
        serde_yaml::from_str(text).map_err(|e| {
            // serde_yaml prefixes the path of the offending field, e.g. `spec.replicaset: …`.
            let msg = e.to_string();
            match msg.split_once(": ") {
                Some((field, problem)) if !field.contains(' ') => invalid(path, field, problem),
                _ => invalid(path, "(document)", msg),
            }
        })
    }
}

/// Read `kubectl get clusters.cluster.karmada.io -o yaml` output (a `List`), or a single Cluster.
/// `previous`: the placement the object has (its members count against the node bound).
pub fn read_clusters(
    path: &Path,
    shape: &crate::adapter::capacity::MemberShape,
    previous: Option<&PreviousPlacement>,
) -> Result<Vec<ClusterCandidate>, PlanError> {
    let text = read(path)?;
    let doc: serde_json::Value = parse_doc(path, &text)?;
    let list: ListDoc =
        serde_json::from_value(doc.clone()).map_err(|e| invalid(path, "items", e))?;
    let items = match (list.kind.as_deref(), list.items) {
        (_, Some(items)) => items,
        (Some("Cluster"), None) => vec![doc],
        (kind, None) => {
            return Err(invalid(
                path,
                "kind",
                format!(
                    "expected a List of cluster.karmada.io Clusters (kubectl get clusters.cluster.karmada.io -o yaml), found {}",
                    kind.map_or("no kind".to_owned(), |k| format!("kind {k}"))
                ),
            ));
        }
    };
    if items.is_empty() {
        return Err(invalid(path, "items", "the list holds no Cluster"));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("items[{i}]");
        if let Some(kind) = item.get("kind").and_then(|k| k.as_str())
            && kind != "Cluster"
        {
            return Err(invalid(
                path,
                format!("{field}.kind"),
                format!("expected Cluster, found {kind}"),
            ));
        }
        let c: Cluster = serde_json::from_value(item).map_err(|e| invalid(path, &field, e))?;
        let name = c.metadata.name.clone().unwrap_or_default();
        if name.is_empty() {
            return Err(invalid(path, format!("{field}.metadata.name"), "missing"));
        }
        if !seen.insert(name.clone()) {
            return Err(invalid(
                path,
                format!("{field}.metadata.name"),
                format!("cluster {name:?} is listed twice"),
            ));
        }
        let hosted = previous
            .and_then(|p| p.members.iter().find(|(c, _)| *c == name))
            .map_or(0, |(_, n)| *n);
        let candidate = cluster::candidate(&c, shape, hosted)
            .map_err(|e| invalid(path, format!("{field} ({name}).{}", e.field), e.source))?;
        out.push(candidate);
    }
    Ok(out)
}

/// Read a MultiCloudMongoDB manifest.
pub fn read_object(path: &Path) -> Result<MultiCloudMongoDB, PlanError> {
    let text = read(path)?;
    let v: serde_json::Value = parse_doc(path, &text)?;
    match v.get("kind").and_then(|k| k.as_str()) {
        Some("MultiCloudMongoDB") => {}
        other => {
            return Err(invalid(
                path,
                "kind",
                format!(
                    "expected MultiCloudMongoDB, found {}",
                    other.unwrap_or("nothing")
                ),
            ));
        }
    }
    serde_json::from_value(v).map_err(|e| invalid(path, "spec", e))
}

/// Everything `plan` needs, from the three files.
pub fn load(
    clusters: &Path,
    object: &Path,
    previous: Option<&Path>,
) -> Result<(PlanInput, placement::PlacementRequest), PlanError> {
    let obj = read_object(object)?;
    let shape =
        request::member_shape(&obj).map_err(|e| invalid(object, "spec.resource.requests", e))?;
    let req = obj
        .placement_request()
        .map_err(|e| invalid(object, "spec", e))?;
    let previous = match previous {
        Some(p) => {
            let text = read(p)?;
            let r = SchedulerResult::parse(text.trim())
                .map_err(|e| invalid(p, "schedulerResult", e))?;
            Some(PreviousPlacement::from(&r))
        }
        // An object that was already placed carries its placement in the annotation.
        None => obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(fedstate_api::names::SCHEDULER_RESULT_ANNOTATION))
            .map(|v| {
                SchedulerResult::parse(v)
                    .map(|r| PreviousPlacement::from(&r))
                    .map_err(|e| invalid(object, "metadata.annotations.schedulerResult", e))
            })
            .transpose()?,
    };
    let candidates = read_clusters(clusters, &shape, previous.as_ref())?;
    let generation = obj.metadata.generation.unwrap_or(1);
    Ok((
        PlanInput {
            object: obj,
            clusters: candidates,
            previous,
            generation,
        },
        req,
    ))
}

/// The JSON output of `plan --output json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonOutput<'a> {
    /// The annotation value, exactly as the scheduler writes it.
    pub scheduler_result: Option<SchedulerResult>,
    pub quorum_safe: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_at_risk: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<JsonError>,
    pub explanation: JsonExplanation<'a>,
}

#[derive(Debug, Serialize)]
pub struct JsonError {
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct JsonExplanation<'a> {
    pub clusters: Vec<placement::explain::NamedRecord<'a>>,
    pub decisions: &'a [String],
}

fn json_explanation<'a>(
    e: &'a Explanation,
    clusters: &'a [ClusterCandidate],
) -> JsonExplanation<'a> {
    JsonExplanation {
        clusters: e.render(clusters),
        decisions: &e.decisions,
    }
}

/// `plan --output json` for a result of [`placement::place`].
#[allow(
    clippy::expect_used,
    reason = "derived Serialize of strings, integers, booleans and unit enums, no map: serde_json cannot fail on them"
)]
pub fn render_json(input: &PlanInput, result: &Result<PlacementPlan, PlacementError>) -> String {
    let empty = Explanation::default();
    let out = match result {
        Ok(p) => JsonOutput {
            scheduler_result: Some(p.to_scheduler_result(Some(input.generation))),
            quorum_safe: p.quorum_safe(),
            quorum_at_risk: match &p.quorum {
                QuorumStatus::AtRisk { missing } => Some(missing),
                _ => None,
            },
            error: None,
            explanation: json_explanation(&p.explanation, &input.clusters),
        },
        Err(e) => JsonOutput {
            scheduler_result: None,
            quorum_safe: false,
            quorum_at_risk: None,
            error: Some(JsonError {
                reason: e.reason(),
                message: e.to_string(),
            }),
            explanation: json_explanation(e.explanation().unwrap_or(&empty), &input.clusters),
        },
    };
    serde_json::to_string_pretty(&out).expect("plan output always serializes")
}

/// `plan --output text`: a table with the reasons.
pub fn render_text(input: &PlanInput, result: &Result<PlacementPlan, PlacementError>) -> String {
    let meta = &input.object.metadata;
    let mut s = String::new();
    let name = format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or("?")
    );
    let (explanation, header) = match result {
        Ok(p) => (
            &p.explanation,
            format!(
                "{name}: {} data members{}, mode {}, {} voters, {}",
                p.replicas,
                if p.arbiter_cluster().is_some() {
                    " + arbiter"
                } else {
                    ""
                },
                p.mode.as_str(),
                p.voters,
                match &p.quorum {
                    QuorumStatus::Safe => "quorum-safe".to_owned(),
                    QuorumStatus::AtRisk { missing } => format!("QUORUM AT RISK ({missing})"),
                    QuorumStatus::NotApplicable => String::new(),
                }
            ),
        ),
        Err(e) => (
            e.explanation().unwrap_or(&EMPTY),
            format!("{name}: NOT PLACED ({}): {e}", e.reason()),
        ),
    };
    let _ = writeln!(s, "{header}\n");
    let rows = explanation.render(&input.clusters);
    let w = rows
        .iter()
        .map(|r| r.cluster.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        s,
        "{:<w$}  {:>8}  {:>8}  {:>4}  {:>5}  {:>8}  {:<7}  WHY",
        "CLUSTER", "CAPACITY", "PREVIOUS", "DATA", "VOTES", "PRIORITY", "ARBITER"
    );
    let priorities: std::collections::BTreeMap<&str, u32> = match result {
        Ok(p) => p
            .clusters
            .iter()
            .map(|c| (c.cluster.as_str(), c.priority))
            .collect(),
        Err(_) => Default::default(),
    };
    for r in &rows {
        let _ = writeln!(
            s,
            "{:<w$}  {:>8}  {:>8}  {:>4}  {:>5}  {:>8}  {:<7}  {}",
            r.cluster,
            if matches!(r.record.verdict, Verdict::Filtered(_)) {
                "-".to_owned()
            } else {
                r.record.capacity.to_string()
            },
            r.record.previous,
            r.record.data,
            r.record.votes,
            priorities
                .get(r.cluster)
                .map_or("-".to_owned(), u32::to_string),
            if r.record.arbiter { "yes" } else { "" },
            r.why
        );
    }
    if !explanation.decisions.is_empty() {
        let _ = writeln!(s);
        for d in &explanation.decisions {
            let _ = writeln!(s, "* {d}");
        }
    }
    if let Ok(p) = result {
        let _ = writeln!(
            s,
            "\nschedulerResult: {}",
            p.to_scheduler_result(Some(input.generation))
                .to_annotation()
        );
    }
    s
}

static EMPTY: Explanation = Explanation {
    clusters: Vec::new(),
    decisions: Vec::new(),
};

/// Place the loaded input.
pub fn run(
    input: &PlanInput,
    req: &placement::PlacementRequest,
) -> Result<PlacementPlan, PlacementError> {
    placement::place(req, &input.clusters, input.previous.as_ref())
}
