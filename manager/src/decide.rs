//! The manager's decisions (pure): from what [`crate::gather`] read, what to write. Nothing here
//! talks to the apiserver; [`crate::apply`] carries the decisions out.
//!
//! A live object is decided in three steps, because one input only the apiserver has comes in
//! between: [`admit`] (is there a spec we may act on and a placement for it?), [`members`] (who
//! the members are, their Secrets and Services — the Karmada apiserver then allocates the
//! NodePorts), and [`objects`] (everything else, the binding, garbage, status and events).

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::condition::{Condition, ConditionStatus, set_condition, types};
use fedstate_api::hostconf::{HOSTCONF_KEY, HostConf, HostEntry};
use fedstate_api::karmada::binding::ResourceBinding;
use fedstate_api::karmada::binding_status::{ResourceBindingStatus, TargetCluster};
use fedstate_api::karmada::override_policy::OverridePolicy;
use fedstate_api::karmada::propagation::PropagationPolicy;
use fedstate_api::placement::QuorumPolicy;
use fedstate_api::quorum::{self, Voter};
use fedstate_api::{SchedulerResult, names};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::runtime::events::EventType;
use rand::Rng;
use serde_json::{Value, json};

use crate::desired::{self, DesiredError};
use crate::members::{self, Assignment, MemberRecord, Phase};
use crate::middleware::{FederatedStatus, Middleware};
use crate::rollout;
use crate::status::{self, StatusInputs};
use crate::teardown::{OwnedKind, OwnedRef, TeardownStep};

/// Conditions the manager owns (the scheduler owns `Scheduled`, `ServerScheduledResult`,
/// `QuorumAtRisk`).
pub const OWNED_CONDITIONS: [&str; 8] = [
    types::SERVER_READY,
    types::ROLLING_UPDATE,
    types::READY,
    types::SCALING_IN_PROGRESS,
    types::FAILOVER_IN_PROGRESS,
    types::DEGRADED,
    types::SPEC_VALID,
    types::DELETING,
];

/// A Karmada Cluster as the decisions need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFacts {
    pub name: String,
    pub vip: Option<String>,
    pub ready: bool,
}

/// Cluster VIPs and readiness by name.
#[derive(Clone, Debug, Default)]
pub struct Clusters {
    pub vips: BTreeMap<String, String>,
    pub ready: BTreeMap<String, bool>,
}

impl Clusters {
    pub fn new(facts: impl IntoIterator<Item = ClusterFacts>) -> Self {
        let mut out = Self::default();
        for c in facts {
            if let Some(v) = c.vip {
                out.vips.insert(c.name.clone(), v);
            }
            out.ready.insert(c.name, c.ready);
        }
        out
    }
    fn known(&self, name: &str) -> bool {
        self.ready.contains_key(name)
    }
}

/// An event to publish about the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: String,
    pub action: &'static str,
    pub note: String,
}

impl Note {
    fn new(type_: EventType, reason: &str, action: &'static str, note: String) -> Self {
        Self {
            type_,
            reason: reason.to_owned(),
            action,
            note,
        }
    }
}

/// `ServerReady=False` reasons of a placement that Cluster facts (a cluster known, its VIP, its
/// readiness) can unblock: objects blocked for them are looked at again when a Cluster changes
/// ([`crate::triggers`]).
pub const CLUSTER_DEPENDENT_REASONS: [&str; 3] = [
    REASON_INVALID_SCHEDULER_RESULT,
    REASON_MISSING_CLUSTER_VIP,
    REASON_INVALID_PLACEMENT,
];
/// The annotation does not parse, or names a cluster Karmada does not know.
pub const REASON_INVALID_SCHEDULER_RESULT: &str = "InvalidSchedulerResult";
/// A cluster of the placement has no VIP label.
pub const REASON_MISSING_CLUSTER_VIP: &str = "MissingClusterVip";
/// No member identities or host list can be made for the placement.
pub const REASON_INVALID_PLACEMENT: &str = "InvalidPlacement";
/// Under `quorumPolicy: Required`, the placement is not quorum-safe, or replaces more running
/// voters at once than is safe ([`quorum_guard`]); what was applied before stays.
pub const REASON_QUORUM_UNSAFE_PLACEMENT: &str = "QuorumUnsafePlacement";
/// An object we would write exists and is not ours: we neither take it over nor delete it. Such
/// objects are not watched, so a blocked object is looked at again after a while.
pub const REASON_ADOPTION_REFUSED: &str = "AdoptionRefused";

/// Why nothing is applied, and what the user reads about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub reason: &'static str,
    pub message: String,
    /// The spec itself is wrong (`SpecValid=False`), not just not placed yet.
    pub spec_invalid: bool,
}

impl Blocked {
    fn waiting(message: String) -> Self {
        Self {
            reason: "WaitingForPlacement",
            message,
            spec_invalid: false,
        }
    }
    fn invalid_placement(message: String) -> Self {
        Self {
            reason: REASON_INVALID_PLACEMENT,
            message,
            spec_invalid: false,
        }
    }
}

/// What a blocked reconcile writes: conditions (state and topology kept) and maybe an event.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockedWrite {
    pub event: Option<Note>,
    pub status: Option<Value>,
}

/// The spec can be acted on and the annotation places this generation.
pub fn admit<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    clusters: &Clusters,
) -> Result<SchedulerResult, Blocked> {
    middleware.validate(obj).map_err(|e| Blocked {
        reason: e.reason,
        message: e.message,
        spec_invalid: true,
    })?;
    let meta = obj.meta();
    let Some(value) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(names::SCHEDULER_RESULT_ANNOTATION))
    else {
        return Err(Blocked::waiting(format!(
            "waiting for scheduler {:?} to write the {} annotation",
            middleware.scheduler_name(obj),
            names::SCHEDULER_RESULT_ANNOTATION
        )));
    };
    let plan = SchedulerResult::parse_for(value, middleware.replicas(obj), |c| clusters.known(c))
        .map_err(|e| Blocked {
        reason: REASON_INVALID_SCHEDULER_RESULT,
        message: e.to_string(),
        spec_invalid: false,
    })?;
    if let (Some(planned), Some(current)) = (plan.generation, meta.generation)
        && planned != current
    {
        return Err(Blocked::waiting(format!(
            "the schedulerResult annotation was computed for generation {planned}; waiting for the scheduler to place generation {current}"
        )));
    }
    Ok(plan)
}

/// What exists in the Karmada apiserver for one live object. `Debug` names the Secrets, never
/// their data.
#[derive(Clone, Default)]
pub struct World {
    /// Our member Services (the identity record).
    pub services: Vec<Service>,
    /// The member template's binding, once Karmada created it.
    pub binding: Option<ResourceBinding>,
    /// The Secrets the middleware keeps, by name (those that exist).
    pub secrets: BTreeMap<String, Secret>,
    /// Names of our PropagationPolicies.
    pub policies: Vec<String>,
    /// The host list ConfigMap, if one of that name exists (ours or not).
    pub host_list: Option<ConfigMap>,
    /// The member template's spec as last applied (JSON), and our OverridePolicy as last
    /// applied: what each cluster runs, for the rollout ([`crate::rollout::applied`]).
    pub applied_template: Option<Value>,
    pub applied_overrides: Option<OverridePolicy>,
    /// The user's ConfigMaps the spec references ([`Middleware::referenced_config_maps`]) that
    /// exist, by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub clusters: Clusters,
    pub now: jiff::Timestamp,
}

/// The names of some objects, for `Debug` output that must not show their content.
fn names_of<'a, K: Resource + 'a>(objects: impl IntoIterator<Item = &'a K>) -> Vec<&'a str> {
    objects
        .into_iter()
        .map(|o| o.meta().name.as_deref().unwrap_or_default())
        .collect()
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("services", &names_of(&self.services))
            .field("binding", &self.binding.as_ref().map(|b| &b.metadata.name))
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("policies", &self.policies)
            .field(
                "host_list",
                &self.host_list.as_ref().map(|c| &c.metadata.name),
            )
            .field("applied_template", &self.applied_template.is_some())
            .field(
                "applied_overrides",
                &self.applied_overrides.as_ref().map(|p| &p.metadata.name),
            )
            .field("config_maps", &self.config_maps.keys().collect::<Vec<_>>())
            .field("clusters", &self.clusters)
            .field("now", &self.now)
            .finish()
    }
}

impl World {
    fn records(&self) -> Vec<MemberRecord> {
        self.services
            .iter()
            .filter_map(desired::record_from_service)
            .collect()
    }
    fn binding_status(&self) -> ResourceBindingStatus {
        self.binding
            .as_ref()
            .and_then(|r| r.status.clone())
            .unwrap_or_default()
    }
}

/// Who the members are, and the identity objects to apply before anything else. `Debug` names
/// the Secrets, never their data.
#[derive(Clone)]
pub struct Members {
    pub assignment: Assignment,
    /// Secrets whose data is missing or differs.
    pub secrets: Vec<Secret>,
    /// Every member's Service (applied each time: the apiserver keeps the NodePort).
    pub services: Vec<Service>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members")
            .field("assignment", &self.assignment)
            .field("secrets", &names_of(&self.secrets))
            .field("services", &names_of(&self.services))
            .finish()
    }
}

fn node_ports(records: &[MemberRecord]) -> BTreeMap<(i32, bool), i32> {
    records
        .iter()
        .filter_map(|r| Some(((r.index, r.arbiter), r.node_port?)))
        .collect()
}

/// The objects of that name we would write that exist but are not ours
/// ([`desired::is_ours`]): we refuse to take them over (and so never delete them), and say
/// which and what to do.
pub fn refuse_foreign<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    world: &World,
) -> Result<(), Blocked> {
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let instance = obj.meta().name.clone().unwrap_or_default();
    let label = format!(
        "{}={} {}={instance}",
        names::LABEL_MANAGED_BY,
        names::MANAGED_BY,
        names::LABEL_INSTANCE
    );
    let mut why = Vec::new();
    if let Some(cm) = world
        .host_list
        .as_ref()
        .filter(|c| !desired::is_ours(obj, &c.metadata))
    {
        let name = cm.metadata.name.clone().unwrap_or_default();
        why.push(match middleware.host_list_field(obj) {
            Some(field) => format!(
                "{field} names ConfigMap {ns}/{name}, which exists and was not created by FedState for this object; the manager writes the member list into that ConfigMap (and deletes it with the object), so it will not take over yours: set {field} to a name no ConfigMap has, or remove it (the manager then uses {instance}-hostconf)"
            ),
            None => format!(
                "ConfigMap {ns}/{name} (the host list) exists and was not created by FedState for this object; FedState will neither overwrite nor delete it: delete or rename it, or hand it over with kubectl -n {ns} label configmap {name} {label}"
            ),
        });
    }
    for (name, s) in &world.secrets {
        if !desired::is_ours(obj, &s.metadata) {
            why.push(format!(
                "Secret {ns}/{name} exists and was not created by FedState for this object (it lacks the labels {label}, or another object owns it); FedState will neither overwrite nor delete it: delete or rename it and FedState creates its own, or, to hand it to FedState (its values are kept, and it is deleted with this object), kubectl -n {ns} label secret {name} {label}"
            ));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(Blocked {
            reason: REASON_ADOPTION_REFUSED,
            message: why.join("; "),
            spec_invalid: false,
        })
    }
}

/// The voters of the host list last applied (what the agents run the set to): empty before
/// the first apply, or when it cannot be read.
fn applied_voters(world: &World) -> Vec<HostEntry> {
    world
        .host_list
        .as_ref()
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get(HOSTCONF_KEY))
        .and_then(|v| HostConf::parse(v).ok())
        .map(|c| c.hosts.into_iter().filter(|h| h.votes > 0).collect())
        .unwrap_or_default()
}

/// `a:2,b:2,c:1+arbiter` for the voters of a host list.
fn voters_summary(hosts: &[HostEntry]) -> String {
    let mut per_cluster: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
    for h in hosts {
        let e = per_cluster.entry(h.cluster.as_str()).or_default();
        if h.arbiter_only {
            e.1 = true;
        } else {
            e.0 += 1;
        }
    }
    per_cluster
        .into_iter()
        .map(|(c, (d, a))| format!("{c}:{d}{}", if a { "+arbiter" } else { "" }))
        .collect::<Vec<_>>()
        .join(",")
}

/// Under `quorumPolicy: Required`, a placement is applied only when it is quorum-safe on its own
/// (no cluster holds half the votes or more) and as a change from the voters the last applied
/// host list names (at most one cluster's share of them replaced at once), by the rules in
/// [`fedstate_api::quorum`] the scheduler places by. The annotation may have been edited by
/// hand; whoever wrote it, such a placement is refused and what was applied stays.
pub fn quorum_guard<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    plan: &SchedulerResult,
    assignment: &Assignment,
    world: &World,
) -> Result<(), Blocked> {
    if middleware.quorum_policy(obj) != QuorumPolicy::Required {
        return Ok(());
    }
    let voter = |cluster: &str, index: i32, arbiter: bool| Voter {
        cluster: cluster.to_owned(),
        index,
        arbiter,
    };
    let wanted: BTreeSet<Voter> = assignment
        .members
        .iter()
        .filter(|m| m.is_active() && m.votes > 0)
        .map(|m| voter(&m.cluster, m.index, m.arbiter))
        .collect();
    let applied = applied_voters(world);
    let running: BTreeSet<Voter> = applied
        .iter()
        .map(|h| voter(&h.cluster, h.member_index, h.arbiter_only))
        .collect();
    let verdict = quorum::check_layout(wanted.iter().map(|v| (v.cluster.as_str(), 1)))
        .and_then(|()| quorum::check_change(&running, &wanted));
    let Err(why) = verdict else {
        return Ok(());
    };
    let kept = if applied.is_empty() {
        "no member is created until then".to_owned()
    } else {
        format!(
            "the members keep the placement last applied ({})",
            voters_summary(&applied)
        )
    };
    Err(Blocked {
        reason: REASON_QUORUM_UNSAFE_PLACEMENT,
        message: format!(
            "the {} annotation places {}, which is not quorum-safe: {why}. spec.scheduler.quorumPolicy is Required, so it is not applied and {kept}. To go on: edit the annotation back, or delete it (the scheduler writes it again from status.placement); move members in steps of at most one cluster's share (for example exclude one cluster at a time in spec.scheduler.affinity); or set spec.scheduler.quorumPolicy: Preferred to apply it anyway",
            names::SCHEDULER_RESULT_ANNOTATION,
            plan.summary()
        ),
        spec_invalid: false,
    })
}

/// Stable identities for `plan`: forget retiring members the status shows gone, then assign.
pub fn members<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    plan: &SchedulerResult,
    world: &World,
    rng: &mut impl Rng,
) -> Result<Members, Blocked> {
    refuse_foreign(middleware, obj, world)?;
    let records = world.records();
    let invalid = |e: members::MembersError| Blocked::invalid_placement(e.to_string());
    let first = members::assign(&records, plan).map_err(invalid)?;
    let known = desired::addresses(&first, &world.clusters.vips, &node_ports(&records));
    let retiring: BTreeMap<(i32, bool), Option<String>> = first
        .members
        .iter()
        .filter(|m| m.phase == Phase::Retiring)
        .map(|m| {
            (
                (m.index, m.arbiter),
                known.get(&(m.index, m.arbiter)).cloned(),
            )
        })
        .collect();
    let observations = status::observations(
        middleware,
        &world.binding_status().aggregated_status,
        &world.clusters.ready,
    );
    let kept = members::confirm_gone(&records, &retiring, &observations);
    let assignment = members::assign(&kept, plan).map_err(invalid)?;
    quorum_guard(middleware, obj, plan, &assignment, world)?;
    if let Some(c) = desired::binding_clusters(&assignment)
        .into_iter()
        .find(|c| !world.clusters.vips.contains_key(&c.name))
    {
        let e = DesiredError::MissingVip { cluster: c.name };
        return Err(Blocked {
            reason: REASON_MISSING_CLUSTER_VIP,
            message: e.to_string(),
            spec_invalid: false,
        });
    }
    let secrets = middleware
        .secrets(obj, &world.secrets, rng)
        .into_iter()
        .map(|s| desired::with_meta(obj, s))
        .filter(|s| {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            world.secrets.get(name).is_none_or(|old| old.data != s.data)
        })
        .collect();
    let services = desired::services(middleware, obj, &assignment);
    Ok(Members {
        assignment,
        secrets,
        services,
    })
}

/// The binding's `spec.clusters` and the `Scheduled` status Karmada's tools read.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingWrite {
    pub name: String,
    /// Merge patch of the spec, when the placement changed.
    pub spec: Option<Value>,
    /// Merge patch of the status, when it must say we scheduled this generation.
    pub status: Option<Value>,
}

/// Everything to write for a placed live object, in the order it is applied.
#[derive(Clone, Debug)]
pub struct Decision<T> {
    pub hostconf: ConfigMap,
    pub override_policy: OverridePolicy,
    pub template: T,
    pub propagation_policies: Vec<PropagationPolicy>,
    pub binding: Option<BindingWrite>,
    /// `PlacementApplied`, after the binding changed.
    pub placement_event: Option<Note>,
    /// Services of forgotten members and policies of clusters no longer used.
    pub delete: Vec<OwnedRef>,
    /// `Ready` / `NotReady`, when readiness changed.
    pub readiness_event: Option<Note>,
    /// Server-side apply body of our status fields, when they changed.
    pub status: Option<Value>,
    /// Members are being added, removed or failed over (or Karmada has no binding yet).
    pub busy: bool,
}

/// The outcome of [`objects`].
#[derive(Clone, Debug)]
pub enum Outcome<T> {
    Apply(Box<Decision<T>>),
    /// A Service has no NodePort yet; look again shortly.
    WaitForPorts(String),
    Blocked(Blocked),
}

#[allow(
    clippy::indexing_slicing,
    reason = "only inserts into the object literal built here: IndexMut on a JSON object cannot panic"
)]
fn binding_write(
    rb: &ResourceBinding,
    clusters: &[TargetCluster],
    now: jiff::Timestamp,
) -> BindingWrite {
    let changed = rb.spec.clusters != clusters;
    let status = rb.status.clone().unwrap_or_default();
    let scheduled = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Scheduled" && c.status == "True");
    let status_patch =
        (changed || !scheduled || status.scheduler_observed_generation != rb.metadata.generation)
            .then(|| {
                let now = Time(now);
                let mut conditions: Vec<Value> = status
                    .conditions
                    .iter()
                    .filter(|c| c.type_ != "Scheduled")
                    .filter_map(|c| serde_json::to_value(c).ok())
                    .collect();
                conditions.push(json!({
                    "type": "Scheduled", "status": "True", "reason": "Success",
                    "message": "placed by fedstate-manager from the schedulerResult annotation",
                    "lastTransitionTime": now,
                }));
                let mut st = json!({"conditions": conditions, "lastScheduledTime": now});
                if let Some(g) = rb.metadata.generation {
                    st["schedulerObservedGeneration"] = json!(g);
                }
                json!({ "status": st })
            });
    BindingWrite {
        name: rb.metadata.name.clone().unwrap_or_default(),
        spec: changed.then(|| json!({"spec": {"clusters": clusters}})),
        status: status_patch,
    }
}

/// Services of members no longer assigned, and our policies the desired set no longer has.
fn garbage(world: &World, assignment: &Assignment, wanted: &[PropagationPolicy]) -> Vec<OwnedRef> {
    let services = world.services.iter().filter_map(|svc| {
        let r = desired::record_from_service(svc)?;
        let kept = assignment
            .members
            .iter()
            .any(|m| m.index == r.index && m.arbiter == r.arbiter && m.cluster == r.cluster);
        let name = svc.metadata.name.clone().unwrap_or_default();
        (!kept).then(|| OwnedRef::new(OwnedKind::Service, name))
    });
    let policies = world
        .policies
        .iter()
        .filter(|p| {
            !wanted
                .iter()
                .any(|w| w.metadata.name.as_deref() == Some(p.as_str()))
        })
        .map(|p| OwnedRef::new(OwnedKind::PropagationPolicy, p.clone()));
    services.chain(policies).collect()
}

fn condition_of<'a>(conditions: &'a [Condition], t: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == t)
}

fn spec_valid(generation: Option<i64>) -> Condition {
    Condition::new(
        types::SPEC_VALID,
        ConditionStatus::True,
        "SpecValid",
        "the spec can be acted on",
        generation,
    )
}

/// `Ready` when the set became ready, `NotReady` when it stopped being ready.
fn readiness_event(old: &FederatedStatus, conditions: &[Condition]) -> Option<Note> {
    let was_ready = condition_of(&old.conditions, types::SERVER_READY).map(Condition::is_true);
    let now = condition_of(conditions, types::SERVER_READY);
    let ready_now = now.is_some_and(Condition::is_true);
    if was_ready == Some(ready_now) || !(ready_now || was_ready == Some(true)) {
        return None;
    }
    let (kind, reason) = if ready_now {
        (EventType::Normal, "Ready")
    } else {
        (EventType::Warning, "NotReady")
    };
    let note = now.and_then(|c| c.message.clone()).unwrap_or_default();
    Some(Note::new(kind, reason, "Observe", note))
}

/// Everything else, once the NodePorts are known.
pub fn objects<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    plan: &SchedulerResult,
    world: &World,
    members: &Members,
    node_ports: &BTreeMap<(i32, bool), i32>,
) -> Outcome<M::Member> {
    let assignment = &members.assignment;
    let vips = &world.clusters.vips;
    let mut want = match desired::desired(middleware, obj, assignment, vips, node_ports) {
        Ok(d) => d,
        Err(e @ DesiredError::PortPending { .. }) => return Outcome::WaitForPorts(e.to_string()),
        Err(e) => return Outcome::Blocked(Blocked::invalid_placement(e.to_string())),
    };
    // The Secrets as this reconcile leaves them (those it writes were applied just before).
    let mut secrets = world.secrets.clone();
    for s in &members.secrets {
        if let Some(n) = &s.metadata.name {
            secrets.insert(n.clone(), s.clone());
        }
    }
    middleware.stamp_pod_inputs(obj, &mut want.template, &secrets, &world.config_maps);
    let binding = world
        .binding
        .as_ref()
        .map(|rb| binding_write(rb, &want.binding_clusters, world.now));
    let placement_event = binding.as_ref().and_then(|b| b.spec.as_ref()).map(|_| {
        Note::new(
            EventType::Normal,
            "PlacementApplied",
            "ApplyPlacement",
            format!("members per cluster: {}", plan.summary()),
        )
    });
    let generation = obj.meta().generation;
    let addresses = desired::addresses(assignment, vips, node_ports);
    let observed = status::observe(
        middleware,
        StatusInputs {
            generation,
            plan,
            assignment,
            addresses: &addresses,
            aggregated: &world.binding_status().aggregated_status,
            cluster_ready: &world.clusters.ready,
        },
    );
    let roll = roll(middleware, obj, world, assignment, &addresses, &mut want);
    let busy = observed.conditions.iter().any(|c| {
        (c.type_ == types::SCALING_IN_PROGRESS || c.type_ == types::FAILOVER_IN_PROGRESS)
            && c.is_true()
    }) || world.binding.is_none()
        || roll.in_progress;
    let mut conditions = observed.conditions;
    conditions.push(roll.condition(generation));
    conditions.push(spec_valid(generation));
    let old = middleware.current_status(obj);
    Outcome::Apply(Box::new(Decision {
        delete: garbage(world, assignment, &want.propagation_policies),
        readiness_event: readiness_event(&old, &conditions),
        status: status_body::<M>(
            &old,
            generation,
            Some(observed.status),
            conditions,
            world.now,
        ),
        hostconf: want.hostconf,
        override_policy: want.override_policy,
        template: want.template,
        propagation_policies: want.propagation_policies,
        binding,
        placement_event,
        busy,
    }))
}

/// The rollout across clusters ([`rollout`]): which clusters get the template's pod fields now;
/// the others are held at what they run by pins added to their OverridePolicy rule.
fn roll<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    world: &World,
    assignment: &Assignment,
    addresses: &BTreeMap<(i32, bool), String>,
    want: &mut desired::Desired<M::Member>,
) -> rollout::Roll {
    let fields = middleware.pod_fields();
    let instance = obj.meta().name.clone().unwrap_or_default();
    let template = serde_json::to_value(&want.template).unwrap_or_default();
    let desired_fields = rollout::pod_fields(template.get("spec"), fields);
    let revision = middleware.pod_revision(&instance, &desired_fields);
    let live_clusters: Vec<String> = world
        .binding
        .iter()
        .flat_map(|b| b.spec.clusters.iter().map(|c| c.name.clone()))
        .collect();
    let mut applied = rollout::applied(
        world.applied_template.as_ref(),
        world.applied_overrides.as_ref(),
        &live_clusters,
        fields,
    );
    let reports = status::reports(middleware, &world.binding_status().aggregated_status);
    let clusters: Vec<rollout::RollCluster> = want
        .binding_clusters
        .iter()
        .map(|c| rollout::RollCluster {
            name: c.name.clone(),
            current: applied.remove(&c.name),
            reported: reports.get(&c.name).and_then(|r| r.revision.clone()),
        })
        .collect();
    let active: Vec<(String, Option<String>)> = assignment
        .members
        .iter()
        .filter(|m| m.is_active())
        .map(|m| {
            (
                m.cluster.clone(),
                addresses.get(&(m.index, m.arbiter)).cloned(),
            )
        })
        .collect();
    let health = rollout::member_health(&active, &reports, &world.clusters.ready);
    let roll = rollout::decide(&desired_fields, &revision, &clusters, &health);
    for rule in &mut want.override_policy.spec.override_rules {
        let Some(c) = rule
            .target_cluster
            .as_ref()
            .and_then(|t| t.cluster_names.first())
        else {
            continue;
        };
        if let Some(current) = roll.pins.get(c) {
            rule.overriders
                .plaintext
                .extend(rollout::pin(current, &desired_fields, fields));
        }
    }
    roll
}

/// Conditions (and an event when the reason is new) for an object nothing is applied for; what
/// was applied before stays, and so do the state and topology in the status.
pub fn blocked<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    b: &Blocked,
    now: jiff::Timestamp,
) -> BlockedWrite {
    let g = obj.meta().generation;
    let conditions = vec![
        Condition::new(
            types::SERVER_READY,
            ConditionStatus::False,
            b.reason,
            b.message.clone(),
            g,
        ),
        if b.spec_invalid {
            Condition::new(
                types::SPEC_VALID,
                ConditionStatus::False,
                b.reason,
                b.message.clone(),
                g,
            )
        } else {
            spec_valid(g)
        },
    ];
    let old = middleware.current_status(obj);
    let old_reason =
        condition_of(&old.conditions, types::SERVER_READY).and_then(|c| c.reason.as_deref());
    let event = (old_reason != Some(b.reason)).then(|| {
        let kind = if b.reason == "WaitingForPlacement" {
            EventType::Normal
        } else {
            EventType::Warning
        };
        Note::new(kind, b.reason, "Validate", b.message.clone())
    });
    BlockedWrite {
        event,
        status: status_body::<M>(&old, g, None, conditions, now),
    }
}

/// The server-side apply body of the status fields we own, or `None` when nothing changed.
/// `fresh` replaces state/result/externalAddr; `None` re-applies the current ones (so a blocked
/// reconcile does not wipe the topology).
#[allow(
    clippy::indexing_slicing,
    reason = "only inserts into the object literal built here: IndexMut on a JSON object cannot panic"
)]
fn status_body<M: Middleware>(
    old: &FederatedStatus,
    generation: Option<i64>,
    fresh: Option<FederatedStatus>,
    new_conditions: Vec<Condition>,
    now: jiff::Timestamp,
) -> Option<Value> {
    let mut conditions: Vec<Condition> = old
        .conditions
        .iter()
        .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    let mut changed = false;
    for c in new_conditions {
        changed |= set_condition(&mut conditions, c, now);
    }
    let observed_generation = if fresh.is_some() {
        generation
    } else {
        old.observed_generation
    };
    let base = fresh.unwrap_or_else(|| old.clone());
    let same_fields = old.state == base.state
        && old.external_addr == base.external_addr
        && old.result == base.result
        && old.observed_generation == observed_generation;
    if !changed && same_fields {
        return None;
    }
    // Object literals all the way down: indexing them to insert cannot panic.
    let mut body = json!({
        "apiVersion": M::Federated::api_version(&()),
        "kind": M::Federated::kind(&()),
        "status": {"conditions": conditions},
    });
    if let Some(s) = base.state {
        body["status"]["state"] = json!(s);
    }
    if let Some(a) = &base.external_addr {
        body["status"]["externalAddr"] = json!(a);
    }
    if !base.result.is_empty() {
        body["status"]["result"] = json!(base.result);
    }
    if let Some(g) = observed_generation {
        body["status"]["observedGeneration"] = json!(g);
    }
    Some(body)
}

/// The event and the `Deleting` condition of one teardown step: the condition says what the
/// deletion waits for; an event goes out when that changes.
pub fn teardown<M: Middleware>(
    middleware: &M,
    obj: &M::Federated,
    step: &TeardownStep,
    now: jiff::Timestamp,
) -> BlockedWrite {
    let kind = M::Member::kind(&());
    let (type_, reason, message) = match step {
        TeardownStep::MarkHostList { host_list } => (
            EventType::Normal,
            "MarkingTeardown",
            format!(
                "marking the host list {} so every cluster's agent tears its members down without leaving the set first",
                host_list.name
            ),
        ),
        TeardownStep::WaitForAcknowledgment {
            clusters,
            unreachable,
        } if unreachable.is_empty() => (
            EventType::Normal,
            "WaitingForTeardownMark",
            format!(
                "waiting for the agents in {} to record the host list's teardown mark (condition TeardownMarked on their {kind}) before the member objects are deleted",
                clusters.join(", ")
            ),
        ),
        TeardownStep::WaitForAcknowledgment {
            clusters,
            unreachable,
        } => (
            EventType::Warning,
            "WaitingForUnreachableClusters",
            format!(
                "clusters {} are unreachable: their agents have not recorded the host list's \
                 teardown mark (condition TeardownMarked on their {kind}), so no member object is \
                 deleted yet (nothing is deleted, no member's data is touched); the deletion goes \
                 on when they return, or once they are removed from the Karmada federation{}",
                unreachable.join(", "),
                if clusters.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; waiting for the agents in {} as well",
                        clusters.join(", ")
                    )
                }
            ),
        ),
        TeardownStep::DeleteTemplate { .. } => (
            EventType::Normal,
            "DeletingMembers",
            format!("deleting the member {kind} objects in every cluster"),
        ),
        TeardownStep::WaitForMembers {
            clusters,
            unreachable,
        } if unreachable.is_empty() => (
            EventType::Normal,
            "WaitingForMembers",
            format!(
                "waiting for the member {kind} objects in {} to be torn down",
                clusters.join(", ")
            ),
        ),
        TeardownStep::WaitForMembers {
            clusters,
            unreachable,
        } => (
            EventType::Warning,
            "WaitingForUnreachableClusters",
            format!(
                "clusters {} are unreachable: their members may still be running and voting, so \
                 the deletion waits (the finalizer stays; no member's data is deleted); it \
                 completes when they return, or once they are removed from the Karmada \
                 federation{}",
                unreachable.join(", "),
                if clusters.is_empty() {
                    String::new()
                } else {
                    format!("; members still being torn down in {}", clusters.join(", "))
                }
            ),
        ),
        TeardownStep::DeleteOwned { objects } => (
            EventType::Normal,
            "DeletingObjects",
            format!(
                "the members are gone; deleting {}",
                objects
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        TeardownStep::Done => {
            return BlockedWrite {
                event: None,
                status: None,
            };
        }
    };
    let g = obj.meta().generation;
    let old = middleware.current_status(obj);
    let before = condition_of(&old.conditions, types::DELETING);
    let event = (before.and_then(|c| c.message.as_deref()) != Some(message.as_str()))
        .then(|| Note::new(type_, reason, "Delete", message.clone()));
    let condition = Condition::new(types::DELETING, ConditionStatus::True, reason, message, g);
    BlockedWrite {
        event,
        status: status_body::<M>(&old, g, None, vec![condition], now),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mongodb::MongoDb;
    use fedstate_api::MultiCloudMongoDB;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn debug_of_what_a_reconcile_holds_names_secrets_never_their_data() {
        const ROOT: &str = "r00t-Pa55word";
        let mcm: MultiCloudMongoDB = serde_json::from_value(json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MultiCloudMongoDB",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u"},
            "spec": {"replicaset": 1, "auth": {"rootPasswd": ROOT},
                     "imageSetting": {"imagePullSecret": {"user": "u", "passwd": ROOT}}}
        }))
        .unwrap();
        let secrets = MongoDb.secrets(&mcm, &BTreeMap::new(), &mut StdRng::seed_from_u64(7));
        // Every value a Secret holds, as text and as the bytes Debug would print.
        let values: Vec<String> = secrets
            .iter()
            .flat_map(|s| s.data.iter().flatten().map(|(_, v)| v.0.clone()))
            .flat_map(|v| [String::from_utf8_lossy(&v).into_owned(), format!("{v:?}")])
            .collect();
        assert!(
            values.iter().any(|v| v.contains(ROOT)),
            "the test holds the password"
        );
        let world = World {
            secrets: secrets
                .iter()
                .map(|s| (s.metadata.name.clone().unwrap(), s.clone()))
                .collect(),
            ..Default::default()
        };
        let members = Members {
            assignment: Assignment::default(),
            secrets,
            services: Vec::new(),
        };
        for debug in [format!("{world:?}"), format!("{members:?}")] {
            assert!(debug.contains("db-credentials"), "{debug}");
            for v in &values {
                assert!(!debug.contains(v.as_str()), "{debug}");
            }
        }
    }

    fn mcm(policy: &str) -> MultiCloudMongoDB {
        serde_json::from_value(json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MultiCloudMongoDB",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {"replicaset": 3, "scheduler": {"quorumPolicy": policy}}
        }))
        .unwrap()
    }

    /// A world whose applied host list has one voting member per (cluster, index).
    fn running(members: &[(&str, i32)]) -> (Vec<MemberRecord>, World) {
        let records: Vec<MemberRecord> = members
            .iter()
            .map(|(c, i)| MemberRecord {
                index: *i,
                cluster: (*c).to_owned(),
                arbiter: false,
                node_port: Some(30000 + i),
            })
            .collect();
        let hosts: Vec<Value> = members
            .iter()
            .map(|(c, i)| {
                json!({"host": format!("{c}.vip:{}", 30000 + i), "memberIndex": i,
                "votes": 1, "priority": 1, "cluster": c})
            })
            .collect();
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "db-hostconf", "namespace": "ns"},
            "data": {HOSTCONF_KEY: serde_json::to_string(&hosts).unwrap()}
        }))
        .unwrap();
        let world = World {
            host_list: Some(cm),
            ..Default::default()
        };
        (records, world)
    }

    fn guard(policy: &str, run: &[(&str, i32)], annotation: &str) -> Result<(), Blocked> {
        let (records, world) = running(run);
        let plan = SchedulerResult::parse(annotation).unwrap();
        let assignment = members::assign(&records, &plan).unwrap();
        quorum_guard(&MongoDb, &mcm(policy), &plan, &assignment, &world)
    }

    const ABC: [(&str, i32); 3] = [("a", 0), ("b", 1), ("c", 2)];

    #[test]
    fn a_quorum_unsafe_placement_is_refused_under_required_only() {
        let one_cluster = r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":3}]}"#;
        let b = guard("Required", &ABC, one_cluster).unwrap_err();
        assert_eq!(b.reason, REASON_QUORUM_UNSAFE_PLACEMENT);
        assert!(!b.spec_invalid);
        for part in [
            "the schedulerResult annotation places a:3, which is not quorum-safe",
            "cluster \"a\" holds 3 of the 3 votes, more than 1",
            "quorumPolicy is Required, so it is not applied",
            "the members keep the placement last applied (a:1,b:1,c:1)",
            "edit the annotation back",
            "spec.scheduler.quorumPolicy: Preferred",
        ] {
            assert!(b.message.contains(part), "{part}: {}", b.message);
        }
        // Two clusters: 2 of 3 votes in one of them.
        let two = r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":2},{"cluster":"b","replicaset":1}]}"#;
        assert!(guard("Required", &ABC, two).is_err());
        // Preferred applies what it is given (the scheduler reports QuorumAtRisk).
        assert!(guard("Preferred", &ABC, one_cluster).is_ok());
        // Nothing applied yet: the layout alone decides.
        assert!(
            guard("Required", &[], one_cluster)
                .unwrap_err()
                .message
                .contains("no member is created until then")
        );
        assert!(guard("Required", &[], r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1},{"cluster":"b","replicaset":1},{"cluster":"c","replicaset":1}]}"#).is_ok());
    }

    #[test]
    fn moving_more_voters_at_once_than_one_cluster_holds_is_refused_under_required() {
        let elsewhere = r#"{"ClusterWithReplicaset":[{"cluster":"d","replicaset":1},{"cluster":"e","replicaset":1},{"cluster":"f","replicaset":1}]}"#;
        let b = guard("Required", &ABC, elsewhere).unwrap_err();
        assert_eq!(b.reason, REASON_QUORUM_UNSAFE_PLACEMENT);
        assert!(
            b.message.contains("replaces 3 of the 3 running voters at once (member 0 in a, member 1 in b, member 2 in c); at most 1"),
            "{}",
            b.message
        );
        assert!(guard("Preferred", &ABC, elsewhere).is_ok());
        // One cluster's member moves (what a failover does): applied.
        let failover = r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1},{"cluster":"b","replicaset":1},{"cluster":"d","replicaset":1}]}"#;
        assert!(guard("Required", &ABC, failover).is_ok());
        // The same placement again (nothing replaced) is applied.
        let same = r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1},{"cluster":"b","replicaset":1},{"cluster":"c","replicaset":1}]}"#;
        assert!(guard("Required", &ABC, same).is_ok());
        // Taking the votes away in place counts as replacing them: a:1,b:1,c:1 with votes 0 in a and b.
        let demoted = r#"{"ClusterWithReplicaset":[{"cluster":"a","replicaset":1,"votes":0},{"cluster":"b","replicaset":1,"votes":0},{"cluster":"c","replicaset":1,"votes":1}]}"#;
        assert!(guard("Required", &ABC, demoted).is_err());
    }
}
