//! The agent's decisions (pure): from what [`crate::gather`] read and what the replica set did,
//! what to write. Nothing here talks to an apiserver or to MongoDB; [`crate::apply`] carries the
//! decisions out, [`crate::converge`] (with [`crate::planner`]) takes the replica-set step.
//!
//! A live object is decided in two steps around the replica-set step, which needs the members'
//! Services, Pods and Secrets the first step writes: [`objects`] (Secrets, the mongod
//! ConfigMap, Services, StatefulSets, the users), then [`after_step`] (rolling restarts, the
//! objects of members that left the set, the status and the events).

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::condition::ConditionStatus;
use fedstate_api::hostconf::{HostConf, HostEntry};
use fedstate_api::names::managed_labels;
use fedstate_api::secrets::{check_keyfile, generate_keyfile, generate_password};
use fedstate_api::v1alpha1::{DEFAULT_IMAGE, MongoDB, MongoDBStatus, check_image};
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use rand::Rng;

use crate::controller::Settings;
use crate::converge::{Outcome, SetGoal, UserChanges, Users};
use crate::gather::Seen;
use crate::pacing::Requeue;
use crate::planner::{Desired, ForceOptIn, RsConfig};
use crate::replset::{Login, Observation, Password};
use crate::resources::{self, MemberAddressing, ResourceError, is_arbiter, member_index_of};
use crate::rollout::{self, PodRollout, RolloutStep, Voter};
use crate::status::{self, FORCE_RECONFIG_ANNOTATION};
use crate::version::{self, Progress, VersionPlan};

/// This cluster's members of one object, from its Services and Pods.
#[derive(Clone, Debug, Default)]
pub struct Members {
    /// memberIndex → address, for own Services that have a NodePort.
    pub addresses: BTreeMap<i32, String>,
    /// The arbiter's address, when this cluster runs it.
    pub arbiter: Option<String>,
    /// Own members whose pod is ready (or Running).
    pub ready: BTreeSet<String>,
    pub running: i32,
    /// Member address → its pod's name (where `pods/exec` runs in-pod steps).
    pub pods_by_host: BTreeMap<String, String>,
}

impl Members {
    /// Every address this cluster's members answer on.
    pub fn own(&self) -> BTreeSet<String> {
        let mut own: BTreeSet<String> = self.addresses.values().cloned().collect();
        own.extend(self.arbiter.clone());
        own
    }
}

/// Addresses from the Services' NodePorts; readiness from the Pods.
pub fn members(services: &[Service], pods: &[Pod], addressing: &MemberAddressing) -> Members {
    let mut m = Members::default();
    for s in services {
        let port = s
            .spec
            .as_ref()
            .and_then(|sp| sp.ports.as_ref())
            .and_then(|p| p.first())
            .and_then(|p| p.node_port);
        let Some(port) = port else { continue };
        if is_arbiter(s.labels()) {
            m.arbiter = Some(addressing.address(port));
        } else if let Some(i) = member_index_of(s.labels()) {
            m.addresses.insert(i, addressing.address(port));
        }
    }
    for p in pods {
        let st = p.status.as_ref();
        let is_running = st.and_then(|s| s.phase.as_deref()) == Some("Running");
        let is_ready = st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if is_running {
            m.running += 1;
        }
        let addr = if is_arbiter(p.labels()) {
            m.arbiter.clone()
        } else {
            member_index_of(p.labels()).and_then(|i| m.addresses.get(&i).cloned())
        };
        if (is_ready || is_running)
            && p.metadata.deletion_timestamp.is_none()
            && let Some(addr) = addr
        {
            m.ready.insert(addr.clone());
            m.pods_by_host.insert(addr, p.name_any());
        }
    }
    m
}

/// Why nothing but the status is written.
#[derive(Debug, thiserror::Error)]
pub enum Decline {
    #[error("spec.pause is true: the agent changes nothing")]
    Paused,
    /// Something the user must fix; the message names the field and what to do.
    #[error("{0}")]
    InvalidSpec(String),
    #[error(transparent)]
    Broken(#[from] ResourceError),
}

/// One Secret write.
#[derive(Clone, Debug)]
pub enum SecretWrite {
    /// Create once and never touch again (the keyfile: a new one would split the set).
    Create(Secret),
    /// Server-side apply (the credentials: new keys, or `spec.rootPassword` rotating root).
    Apply(Secret),
}

/// The Kubernetes objects of a live object, and what the replica-set step needs.
#[derive(Debug)]
pub struct Objects {
    pub secrets: Vec<SecretWrite>,
    pub config_map: ConfigMap,
    /// Services the agent owns (single-cluster objects only: the manager propagates a
    /// federated set's, with NodePorts allocated once federation-wide).
    pub services: Vec<Service>,
    pub statefulsets: Vec<StatefulSet>,
    /// `spec.config` names that are not mongod YAML paths.
    pub ignored_config: Vec<String>,
    /// The users with the passwords their Secrets hold (after the writes above).
    pub users: Option<Users>,
    pub members: Members,
    /// The desired member list, or why it is not known yet.
    pub hosts: Result<Vec<HostEntry>, String>,
    /// The image the members get and the FCV step ([`crate::version`]).
    pub version: VersionPlan,
}

/// The first step of a live object.
pub fn objects(
    mdb: &MongoDB,
    seen: &Seen,
    settings: &Settings,
    rng: &mut impl Rng,
) -> Result<Objects, Decline> {
    if mdb.spec.pause == Some(true) {
        return Err(Decline::Paused);
    }
    let image = mdb.spec.image.as_deref().unwrap_or(DEFAULT_IMAGE);
    check_image("spec.image", image).map_err(|e| Decline::InvalidSpec(e.to_string()))?;
    if let Some(content) = &seen.keyfile
        && let Err(e) = check_keyfile(content)
    {
        let what = match &mdb.spec.keyfile_secret_ref {
            Some(s) => format!("spec.keyfileSecretRef: Secret {s:?}"),
            None => format!(
                "Secret {:?}",
                resources::keyfile_secret_name(&mdb.name_any())
            ),
        };
        return Err(Decline::InvalidSpec(format!(
            "{what}, key {:?}: {e}; put 6 to 1024 base64 characters there (e.g. openssl rand -base64 756)",
            resources::KEYFILE_KEY
        )));
    }
    let version = match &seen.versions {
        Some(running) => version::plan(image, running),
        None => VersionPlan {
            image: image.to_owned(),
            fcv: None,
            progress: Progress::Current,
        },
    };
    // The members get the image the version plan allows (a refused or not yet allowed change
    // keeps the one they run).
    let mut gated = mdb.clone();
    gated.spec.image = Some(version.image.clone());
    let desired = match resources::desired_objects(&gated, seen.user_yaml.as_deref()) {
        Ok(d) => d,
        Err(e @ ResourceError::UserConfig { .. }) => {
            return Err(Decline::InvalidSpec(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    if mdb.spec.member_config_ref.is_none() && seen.credentials_foreign {
        // Writing our keys into it would also give it our owner reference, and Kubernetes would
        // delete it with this object.
        let (ns, secret) = (
            mdb.namespace().unwrap_or_default(),
            resources::credentials_secret_name(&mdb.name_any()),
        );
        return Err(Decline::InvalidSpec(format!(
            "Secret {ns}/{secret} exists and was not created by FedState for this object (it lacks the labels app.kubernetes.io/managed-by=fedstate, app.kubernetes.io/instance={}); the agent will neither write into it nor delete it: delete or rename it and the agent creates its own, or hand it over (its values are kept) with kubectl -n {ns} label secret {secret} app.kubernetes.io/managed-by=fedstate app.kubernetes.io/instance={}",
            mdb.name_any(),
            mdb.name_any()
        )));
    }
    let (secrets, credentials) = if mdb.spec.member_config_ref.is_none() {
        single_cluster_secrets(mdb, seen, rng)
    } else {
        (Vec::new(), seen.credentials.clone())
    };
    let members = members(&seen.services, &seen.pods, &settings.addressing);
    let hosts = hosts(mdb, seen, &members, settings.cluster_name.as_deref());
    // A new monitor password rolls the members so their exporters log in with it.
    let statefulsets = resources::stamp_exporter_login(
        mdb,
        desired.statefulsets,
        credentials
            .as_ref()
            .and_then(|d| d.get(resources::CLUSTER_MONITOR_PASSWORD_KEY))
            .map(|v| String::from_utf8_lossy(&v.0))
            .as_deref(),
        &seen.statefulsets,
    );
    let statefulsets = record_member_hosts(statefulsets, &members, &seen.statefulsets);
    Ok(Objects {
        secrets,
        config_map: desired.config_map,
        services: if mdb.spec.member_config_ref.is_none() {
            desired.services
        } else {
            Vec::new()
        },
        statefulsets,
        ignored_config: desired.ignored_config,
        users: users(
            mdb,
            credentials.as_ref(),
            seen.root_password_from_ref.as_deref(),
        ),
        members,
        hosts,
        version,
    })
}

/// The image this cluster's member StatefulSets have now (the first data member's).
pub fn running_image(seen: &Seen) -> Option<String> {
    seen.statefulsets
        .iter()
        .filter(|s| !is_arbiter(s.labels()))
        .find_map(|s| {
            let pod = s.spec.as_ref()?.template.spec.as_ref()?;
            pod.containers
                .iter()
                .find(|c| c.name == "mongod")?
                .image
                .clone()
        })
}

/// Whether the members' versions must be read: `spec.image` names another series than the
/// members' image, or the last reconcile reported a version change under way (the FCV still
/// to raise once every member runs the new binary).
pub fn needs_version_check(mdb: &MongoDB, seen: &Seen) -> bool {
    let desired = mdb.spec.image.as_deref().unwrap_or(DEFAULT_IMAGE);
    let series = |image: &str| {
        fedstate_api::v1alpha1::image_version(image)
            .and_then(|v| version::series((v.major, v.minor)))
    };
    let changing = mdb.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == status::VERSION_UPGRADE && c.status == ConditionStatus::True)
    });
    changing || running_image(seen).is_some_and(|running| series(&running) != series(desired))
}

/// Single-cluster use: the keyfile Secret once (unless `spec.keyfileSecretRef`), the
/// credentials Secret with any missing password generated; `spec.rootPassword` (compatibility)
/// is copied into it, never into an object. Returns the writes and the credentials' data after
/// them.
pub fn single_cluster_secrets(
    mdb: &MongoDB,
    seen: &Seen,
    rng: &mut impl Rng,
) -> (Vec<SecretWrite>, Option<BTreeMap<String, ByteString>>) {
    let name = mdb.name_any();
    let mut writes = Vec::new();
    if mdb.spec.keyfile_secret_ref.is_none() && !seen.keyfile_secret_exists {
        writes.push(SecretWrite::Create(secret(
            mdb,
            resources::keyfile_secret_name(&name),
            BTreeMap::from([(
                resources::KEYFILE_KEY.to_owned(),
                ByteString(generate_keyfile(rng).into_bytes()),
            )]),
        )));
    }
    let mut data = seen.credentials.clone().unwrap_or_default();
    let before = data.clone();
    for key in [
        resources::CLUSTER_ADMIN_PASSWORD_KEY,
        resources::CLUSTER_MONITOR_PASSWORD_KEY,
    ] {
        data.entry(key.to_owned())
            .or_insert_with(|| ByteString(generate_password(rng).into_bytes()));
    }
    if mdb.spec.root_password_secret_ref.is_none() {
        match mdb.spec.root_password.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => {
                data.insert(
                    resources::ROOT_PASSWORD_KEY.to_owned(),
                    ByteString(p.as_bytes().to_vec()),
                );
            }
            None => {
                data.entry(resources::ROOT_PASSWORD_KEY.to_owned())
                    .or_insert_with(|| ByteString(generate_password(rng).into_bytes()));
            }
        }
    }
    if seen.credentials.is_none() || data != before {
        writes.push(SecretWrite::Apply(secret(
            mdb,
            resources::credentials_secret_name(&name),
            data.clone(),
        )));
    }
    (writes, Some(data))
}

fn secret(mdb: &MongoDB, name: String, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: mdb.namespace(),
            labels: Some(managed_labels(&mdb.name_any())),
            owner_references: Some(mdb.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// The three users with the passwords their Secrets hold; `None` until all three are known.
pub fn users(
    mdb: &MongoDB,
    credentials: Option<&BTreeMap<String, ByteString>>,
    root_from_ref: Option<&str>,
) -> Option<Users> {
    let value = |key: &str| {
        credentials
            .and_then(|d| d.get(key))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    let root = match &mdb.spec.root_password_secret_ref {
        Some(_) => root_from_ref.map(str::to_owned),
        None => value(resources::ROOT_PASSWORD_KEY),
    }?;
    let login = |u: &str, p: String| Login {
        user: u.to_owned(),
        password: Password::new(p),
    };
    Some(Users {
        root: login(resources::ROOT_USER, root),
        cluster_admin: login(
            resources::CLUSTER_ADMIN_USER,
            value(resources::CLUSTER_ADMIN_PASSWORD_KEY)?,
        ),
        cluster_monitor: login(
            resources::CLUSTER_MONITOR_USER,
            value(resources::CLUSTER_MONITOR_PASSWORD_KEY)?,
        ),
    })
}

/// The desired member list: the manager's host list, or (single cluster) the own members, all
/// voting up to 7.
pub fn hosts(
    mdb: &MongoDB,
    seen: &Seen,
    members: &Members,
    cluster: Option<&str>,
) -> Result<Vec<HostEntry>, String> {
    if let Some(read) = &seen.hostconf {
        let json = read.as_ref().map_err(Clone::clone)?;
        return HostConf::parse(json)
            .map(|c| c.hosts)
            .map_err(|e| e.to_string());
    }
    Ok(resources::local_members(&mdb.spec)
        .into_iter()
        .filter_map(|m| {
            Some(HostEntry {
                host: members.addresses.get(&m.index)?.clone(),
                member_index: m.index,
                votes: m.votes,
                priority: m.priority,
                arbiter_only: false,
                cluster: cluster.unwrap_or_default().to_owned(),
            })
        })
        .collect())
}

/// What this agent wants of the set and the users it logs in as, or why it cannot say yet.
pub fn set_goal(
    mdb: &MongoDB,
    objects: &Objects,
    settings: &Settings,
) -> Result<(SetGoal, Users), String> {
    let hosts = objects.hosts.clone()?;
    let users = objects.users.clone().ok_or_else(|| {
        format!(
            "waiting for Secret {}",
            resources::credentials_secret_name(&mdb.name_any())
        )
    })?;
    let mut own = objects.members.own();
    if let Some(cluster) = &settings.cluster_name {
        own.extend(
            hosts
                .iter()
                .filter(|h| &h.cluster == cluster)
                .map(|h| h.host.clone()),
        );
    }
    let used = mdb
        .status
        .as_ref()
        .and_then(|s| s.forced_reconfig.as_ref())
        .map(|f| f.opt_in.as_str());
    let force = force_opt_in(
        mdb.annotations()
            .get(FORCE_RECONFIG_ANNOTATION)
            .map(String::as_str),
        mdb.metadata.generation,
        used,
    );
    let goal = SetGoal {
        set_name: resources::set_name(mdb),
        rs_init: mdb
            .spec
            .rs_init
            .unwrap_or(mdb.spec.member_config_ref.is_none()),
        desired: Desired {
            hosts,
            own,
            ready: objects.members.ready.clone(),
        },
        force,
        fcv: objects.version.fcv,
    };
    Ok((goal, users))
}

/// What the replica-set step did.
#[derive(Clone, Debug, Default)]
pub struct SetResult {
    /// The step's outcome, or why it could not run (the set unreachable).
    pub outcome: Option<Result<Outcome, String>>,
    pub observation: Option<Observation>,
    /// Users created or rotated.
    pub users: UserChanges,
}

impl SetResult {
    /// No step was possible (no host list or no Secrets yet).
    pub fn waiting(why: String) -> Self {
        Self {
            outcome: Some(Ok(Outcome::Waiting(why))),
            ..Default::default()
        }
    }
}

/// An Event to record on the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub note: String,
}

/// The second step of a live object.
#[derive(Debug)]
pub struct AfterStep {
    /// Delete this pod (its StatefulSet recreates it at the new revision).
    pub restart: Option<String>,
    /// Step this primary down before its pod is restarted.
    pub step_down: Option<String>,
    /// StatefulSets of members that left the set (and their Services when the agent owns them).
    pub delete: Vec<String>,
    /// PVCs of data members seen to have left the config (their address is known and not in
    /// it): a member that left cannot rejoin later with stale data. Every other PVC stays.
    pub delete_claims: Vec<String>,
    pub delete_services: bool,
    pub status: MongoDBStatus,
    pub events: Vec<Note>,
    /// Why to look again ([`crate::pacing`] says when).
    pub requeue: Requeue,
}

/// Restarts, removals, status and events after the replica-set step.
pub fn after_step(
    mdb: &MongoDB,
    seen: &Seen,
    objects: &Objects,
    cluster_name: Option<&str>,
    set: &SetResult,
    now: Timestamp,
) -> AfterStep {
    let name = mdb.name_any();
    let (restart, step_down, leaving, rolling) = match &set.observation {
        Some(obs) => {
            let step = restart_step(mdb, seen, &objects.members, obs);
            let rolling = Some(step.clone());
            let (restart, step_down) = match step {
                RolloutStep::Restart { pod } => (Some(pod), None),
                RolloutStep::StepDown { host } => (None, Some(host)),
                RolloutStep::Wait(_) | RolloutStep::Done => (None, None),
            };
            let wanted: BTreeSet<String> =
                objects.statefulsets.iter().map(|s| s.name_any()).collect();
            let others: BTreeSet<&str> = objects
                .hosts
                .iter()
                .flatten()
                .filter(|h| cluster_name.is_some_and(|c| c != h.cluster))
                .map(|h| h.host.as_str())
                .collect();
            let leaving = obs
                .observed
                .config
                .as_ref()
                .map(|c| unwanted(&seen.statefulsets, &wanted, &objects.members, c, &others));
            (restart, step_down, leaving, rolling)
        }
        None => (None, None, None, None),
    };
    let (departed, retained) = leaving
        .map(|u| (u.departed, Some(u.retained)))
        .unwrap_or_default();
    let delete_claims = departed
        .iter()
        .filter(|d| !d.arbiter)
        .map(|d| resources::data_claim_name(&d.statefulset))
        .collect();
    let delete = departed.into_iter().map(|d| d.statefulset).collect();
    let members = set
        .observation
        .as_ref()
        .map(|o| o.members.clone())
        .unwrap_or_default();
    let o = status::Observation {
        name: &name,
        namespace: &mdb.namespace().unwrap_or_default(),
        generation: mdb.metadata.generation,
        paused: false,
        spec_error: None,
        outcome: set.outcome.clone(),
        members: &members,
        running: objects.members.running,
        resources: mdb.spec.resources.clone(),
        ignored_config: &objects.ignored_config,
        version: Some(&objects.version.progress),
        revision: rolled_revision(mdb, seen, &objects.members),
        retained: retained.as_deref(),
        teardown: seen.teardown,
        rolling: rolling.as_ref().map(rolling_condition),
    };
    let mut events: Vec<Note> = set
        .outcome
        .iter()
        .flatten()
        .filter_map(announcement)
        .collect();
    if set.users != UserChanges::default() {
        events.push(Note {
            type_: EventType::Normal,
            reason: "UsersUpdated",
            note: format!(
                "created {:?}, rotated {:?}",
                set.users.created, set.users.rotated
            ),
        });
    }
    AfterStep {
        restart,
        step_down,
        delete,
        delete_claims,
        delete_services: mdb.spec.member_config_ref.is_none(),
        status: status::compute(mdb.status.as_ref(), &o, now),
        events,
        requeue: next_requeue(set, rolling.as_ref()),
    }
}

/// The set's requeue ([`requeue`]), except that a set as wanted with a rolling restart under way
/// is not converged: what the next restart waits for (a member syncing, an election) happens
/// outside Kubernetes, so no watch event would tell, and the converged 30 s would space the
/// restarts (they took 40–60 s each on the federation).
fn next_requeue(set: &SetResult, rolling: Option<&RolloutStep>) -> Requeue {
    match (requeue(set), rolling.and_then(rolling_requeue)) {
        (Requeue::Converged, Some(r)) => r,
        (r, _) => r,
    }
}

/// Converged, a step taken, or the state nothing could change this time.
fn requeue(set: &SetResult) -> Requeue {
    match &set.outcome {
        Some(Ok(Outcome::Done)) => Requeue::Converged,
        Some(Ok(o)) if o.changed() => Requeue::Progress,
        // Waiting, ForeignSet, QuorumLost: their fields tell one state from another.
        Some(Ok(o)) => Requeue::Stalled(format!("{o:?}")),
        Some(Err(e)) => Requeue::Stalled(e.clone()),
        None => Requeue::Progress,
    }
}

/// The status when nothing else is written (paused, or a spec the user must fix); `teardown`:
/// the host list carries the whole-set teardown mark ([`crate::gather::Seen::teardown`]).
pub fn declined_status(
    mdb: &MongoDB,
    why: &Decline,
    teardown: bool,
    now: Timestamp,
) -> MongoDBStatus {
    let spec_error = match why {
        Decline::Paused => None,
        other => Some(other.to_string()),
    };
    let o = status::Observation {
        name: &mdb.name_any(),
        namespace: &mdb.namespace().unwrap_or_default(),
        generation: mdb.metadata.generation,
        paused: matches!(why, Decline::Paused),
        spec_error,
        teardown,
        ..Default::default()
    };
    status::compute(mdb.status.as_ref(), &o, now)
}

/// The pod revision every own data member runs, for `status.currentRevision` (the manager
/// releases the next cluster's rollout only once this cluster reports the revision it gave it):
/// each member's StatefulSet carries it, its controller has seen the StatefulSet's latest spec,
/// and the member's pod runs the StatefulSet's update revision and is ready. `None` while that is
/// not so. A cluster without data members runs its spec's revision (its arbiter's restart is held
/// by the agent's own rule: every voter healthy and caught up).
fn rolled_revision(mdb: &MongoDB, seen: &Seen, members: &Members) -> Option<String> {
    use fedstate_api::revision::{SPEC_REVISION_ANNOTATION, spec_revision};
    let name = mdb.name_any();
    let local = resources::local_members(&mdb.spec);
    if local.is_empty() {
        return Some(spec_revision(&name, &serde_json::to_value(&mdb.spec).ok()?));
    }
    let mut revision: Option<&String> = None;
    for m in local {
        let sts_name = fedstate_api::names::member_service_name(&name, m.index.max(0) as u32);
        let sts = seen
            .statefulsets
            .iter()
            .find(|s| s.name_any() == sts_name)?;
        let rev = sts.annotations().get(SPEC_REVISION_ANNOTATION)?;
        let status = sts.status.as_ref()?;
        let update = status.update_revision.as_ref()?;
        let pod = seen
            .pods
            .iter()
            .find(|p| !is_arbiter(p.labels()) && member_index_of(p.labels()) == Some(m.index))?;
        let host = members.addresses.get(&m.index)?;
        let runs_it = status.observed_generation == sts.metadata.generation
            && pod.labels().get("controller-revision-hash") == Some(update)
            && members.ready.contains(host)
            && revision.is_none_or(|r| r == rev);
        if !runs_it {
            return None;
        }
        revision = Some(rev);
    }
    revision.cloned()
}

/// The next rolling restart of an own member (data or arbiter) whose pod runs an older
/// revision.
/// The member object's `RollingUpdate` condition for this reconcile's rollout step: whether own
/// members still run an older revision, and what the next restart waits for.
fn rolling_condition(step: &RolloutStep) -> (bool, &'static str, String) {
    match step {
        RolloutStep::Done => (
            false,
            "Current",
            "every own member runs its StatefulSet's revision".into(),
        ),
        RolloutStep::Wait(why) => (true, "Waiting", format!("the next restart waits: {why}")),
        RolloutStep::Restart { pod } => (true, "Restarting", format!("restarting pod {pod}")),
        RolloutStep::StepDown { host } => (
            true,
            "SteppingDown",
            format!("stepping primary {host} down before its pod is restarted"),
        ),
    }
}

/// How soon to look again for the rollout's sake: soon after a restart or step-down, with
/// backoff while the next one waits for the same thing; `None` once every member is current.
fn rolling_requeue(step: &RolloutStep) -> Option<Requeue> {
    match step {
        RolloutStep::Done => None,
        RolloutStep::Wait(why) => Some(Requeue::Stalled(format!("rolling restart: {why}"))),
        RolloutStep::Restart { .. } | RolloutStep::StepDown { .. } => Some(Requeue::Progress),
    }
}

fn restart_step(mdb: &MongoDB, seen: &Seen, members: &Members, obs: &Observation) -> RolloutStep {
    let name = mdb.name_any();
    let revisions: BTreeMap<String, String> = seen
        .statefulsets
        .iter()
        .filter_map(|s| {
            let rev = s.status.as_ref()?.update_revision.clone()?;
            Some((s.name_any(), rev))
        })
        .collect();
    let pods: Vec<PodRollout> = seen
        .pods
        .iter()
        .filter_map(|p| {
            let (index, host, sts) = if is_arbiter(p.labels()) {
                let host = members.arbiter.as_ref()?;
                (None, host, fedstate_api::names::arbiter_service_name(&name))
            } else {
                let index = member_index_of(p.labels())?;
                let host = members.addresses.get(&index)?;
                let sts = fedstate_api::names::member_service_name(&name, index.max(0) as u32);
                (Some(index), host, sts)
            };
            let update = revisions.get(&sts);
            let current = p.labels().get("controller-revision-hash");
            Some(PodRollout {
                pod: p.name_any(),
                index,
                host: host.clone(),
                outdated: update.is_some() && current.is_some() && update != current,
                ready: members.ready.contains(host),
            })
        })
        .collect();
    rollout::next_restart(&pods, &voters(obs), obs.primary.as_deref())
}

/// The set's voting members as the rolling restart judges them: state, arbiter, optime.
pub fn voters(obs: &Observation) -> BTreeMap<String, Voter> {
    obs.observed
        .config
        .iter()
        .flat_map(|c| c.members.iter().filter(|m| m.votes > 0))
        .map(|m| {
            let voter = Voter {
                state: obs.observed.state(&m.host),
                arbiter: m.arbiter_only,
                optime: obs.optimes.get(&m.host).copied(),
            };
            (m.host.clone(), voter)
        })
        .collect()
}

/// A StatefulSet the object no longer wants whose member is not in the set's config (a member
/// is removed from the set first, then its workload).
#[derive(Debug)]
struct Departed {
    statefulset: String,
    arbiter: bool,
}

/// What becomes of the StatefulSets the object no longer wants.
#[derive(Debug, Default)]
struct Unwanted {
    /// Their member's address is known and not in the config: deleted.
    departed: Vec<Departed>,
    /// Their member's address cannot be resolved (no Service with a NodePort, none recorded on
    /// the StatefulSet): whether the member left the set cannot be told, so they are kept and
    /// the status says so. Never deleted for that reason.
    retained: Vec<String>,
}

/// A member StatefulSet's address: from its Service, else the one it recorded
/// ([`resources::MEMBER_HOST_ANNOTATION`]).
fn member_host<'a>(s: &'a StatefulSet, members: &'a Members) -> Option<&'a str> {
    let live = if is_arbiter(s.labels()) {
        members.arbiter.as_ref()
    } else {
        member_index_of(s.labels()).and_then(|i| members.addresses.get(&i))
    };
    live.map(String::as_str).or_else(|| recorded_host(s))
}

fn recorded_host(s: &StatefulSet) -> Option<&str> {
    s.annotations()
        .get(resources::MEMBER_HOST_ANNOTATION)
        .map(String::as_str)
}

/// Each StatefulSet records its member's address while the Service gives it, and keeps the
/// recorded one while it does not (server-side apply would drop an annotation no longer set), so
/// a StatefulSet whose Service went first can still be told to have left the set.
fn record_member_hosts(
    mut statefulsets: Vec<StatefulSet>,
    members: &Members,
    seen: &[StatefulSet],
) -> Vec<StatefulSet> {
    for s in &mut statefulsets {
        let previous = seen.iter().find(|o| o.name_any() == s.name_any());
        let host = member_host(s, members)
            .or_else(|| previous.and_then(recorded_host))
            .map(str::to_owned);
        if let Some(h) = host {
            s.annotations_mut()
                .insert(resources::MEMBER_HOST_ANNOTATION.to_owned(), h);
        }
    }
    statefulsets
}

/// `others`: the hosts the host list gives other clusters. A StatefulSet whose member's address
/// cannot be resolved is kept while the config has a member that may be it: one that is neither
/// the known address of one of this cluster's StatefulSets nor another cluster's listed member.
/// When every config member is accounted for so, its member is not in the set (it never joined:
/// a placement that moved before its Service came, or it left) and it goes like any departed one.
fn unwanted(
    seen: &[StatefulSet],
    wanted: &BTreeSet<String>,
    members: &Members,
    config: &RsConfig,
    others: &BTreeSet<&str>,
) -> Unwanted {
    let in_config: BTreeSet<&str> = config.members.iter().map(|m| m.host.as_str()).collect();
    let known: BTreeSet<&str> = seen
        .iter()
        .filter_map(|s| member_host(s, members))
        .chain(members.addresses.values().map(String::as_str))
        .chain(members.arbiter.as_deref())
        .collect();
    let all_accounted = in_config
        .iter()
        .all(|h| known.contains(h) || others.contains(h));
    let mut out = Unwanted::default();
    for s in seen.iter().filter(|s| !wanted.contains(&s.name_any())) {
        match member_host(s, members) {
            Some(h) if in_config.contains(h) => {}
            None if !all_accounted => out.retained.push(s.name_any()),
            Some(_) | None => out.departed.push(Departed {
                statefulset: s.name_any(),
                arbiter: is_arbiter(s.labels()),
            }),
        }
    }
    out
}

/// The user's opt-in (`<generation>/<configVersion>`, [`FORCE_RECONFIG_ANNOTATION`]) as the
/// planner takes it: only for the current generation, and never once `used` (the opt-in the
/// last forced reconfig recorded in the status).
pub fn force_opt_in(
    annotation: Option<&str>,
    generation: Option<i64>,
    used: Option<&str>,
) -> ForceOptIn {
    let Some(value) = annotation.map(str::trim) else {
        return ForceOptIn(None);
    };
    let parsed = value
        .split_once('/')
        .and_then(|(g, v)| Some((g.parse::<i64>().ok()?, v.parse::<i64>().ok()?)));
    ForceOptIn(match parsed {
        Some((g, version)) if Some(g) == generation && used != Some(value) => Some(version),
        _ => None,
    })
}

/// The Event a replica-set step deserves.
fn announcement(o: &Outcome) -> Option<Note> {
    let (type_, reason) = match o {
        Outcome::Initiated { .. } => (EventType::Normal, "Initiated"),
        Outcome::Reconfigured { .. } => (EventType::Normal, "Reconfigured"),
        Outcome::SteppedDown { .. } => (EventType::Normal, "SteppedDown"),
        Outcome::DefaultWriteConcernSet { .. } => (EventType::Normal, "DefaultWriteConcernSet"),
        Outcome::FeatureCompatibilitySet { .. } => (EventType::Normal, "FeatureCompatibilitySet"),
        Outcome::ForcedReconfig { .. } => (EventType::Warning, "ForcedReconfig"),
        Outcome::QuorumLost { .. } => (EventType::Warning, "QuorumLost"),
        Outcome::ForeignSet { .. } => (EventType::Warning, "ForeignReplicaSet"),
        Outcome::Waiting(_) | Outcome::Done => return None,
    };
    Some(Note {
        type_,
        reason,
        note: format!("{o:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(index: Option<i32>, recorded: Option<&str>) -> StatefulSet {
        let mut s = StatefulSet::default();
        let labels = s.labels_mut();
        match index {
            Some(i) => {
                labels.insert(fedstate_api::names::LABEL_MEMBER_ROLE.into(), "data".into());
                labels.insert(
                    fedstate_api::names::LABEL_MEMBER_INDEX.into(),
                    i.to_string(),
                );
                s.metadata.name = Some(format!("db-mongodb-{i}"));
            }
            None => {
                labels.insert(
                    fedstate_api::names::LABEL_MEMBER_ROLE.into(),
                    "arbiter".into(),
                );
                s.metadata.name = Some("db-mongodb-arbiter".into());
            }
        }
        if let Some(h) = recorded {
            s.annotations_mut()
                .insert(resources::MEMBER_HOST_ANNOTATION.into(), h.into());
        }
        s
    }

    /// Issue 15: a StatefulSet whose member's address cannot be resolved (its Service is gone
    /// and no address was recorded) is kept and reported while the config has a member that may
    /// be it (here `vip:30005`: no StatefulSet here has that address, and no other cluster lists
    /// it). One whose Service went first but that recorded its address is judged by that
    /// address; one still in the config waits.
    #[test]
    fn an_unresolvable_member_workload_is_kept_and_reported_never_deleted() {
        let voter = |id: i32, host: &str| crate::planner::RsMember {
            id,
            host: host.into(),
            votes: 1,
            priority: 1,
            arbiter_only: false,
        };
        let config = RsConfig {
            name: "rs".into(),
            version: 5,
            members: vec![voter(0, "vip:30000"), voter(5, "vip:30005")],
        };
        let members = Members {
            addresses: BTreeMap::from([(0, "vip:30000".to_owned())]),
            ..Default::default()
        };
        let seen = vec![
            sts(Some(0), None),
            sts(Some(1), None),
            sts(Some(2), Some("vip:30002")),
            sts(Some(3), Some("vip:30000")),
            sts(None, None),
        ];
        let wanted = BTreeSet::new();
        let u = unwanted(&seen, &wanted, &members, &config, &BTreeSet::new());
        let departed: Vec<&str> = u.departed.iter().map(|d| d.statefulset.as_str()).collect();
        assert_eq!(departed, ["db-mongodb-2"], "{u:?}");
        assert_eq!(u.retained, ["db-mongodb-1", "db-mongodb-arbiter"]);
        // Another cluster lists vip:30005: every config member is accounted for, so the
        // unresolvable ones are not in the set (the soak's leftover: a member placed, then moved
        // before its Service came, whose pod ran for ever) and go.
        let others = BTreeSet::from(["vip:30005"]);
        let u = unwanted(&seen, &wanted, &members, &config, &others);
        let departed: Vec<&str> = u.departed.iter().map(|d| d.statefulset.as_str()).collect();
        assert_eq!(
            departed,
            ["db-mongodb-1", "db-mongodb-2", "db-mongodb-arbiter"],
            "{u:?}"
        );
        assert!(u.retained.is_empty(), "{u:?}");
        // Applied StatefulSets record the address while the Service gives it, and keep it after.
        let recorded = record_member_hosts(vec![sts(Some(0), None)], &members, &[]);
        assert_eq!(recorded_host(&recorded[0]), Some("vip:30000"));
        let kept = record_member_hosts(vec![sts(Some(0), None)], &Members::default(), &recorded);
        assert_eq!(recorded_host(&kept[0]), Some("vip:30000"));
    }

    /// Issue 13: an outdated arbiter pod was never restarted (`restart_step` only looked at pods
    /// with a member index). Now it is found, and rolled first once every voter is healthy and
    /// caught up.
    #[test]
    fn an_outdated_arbiter_pod_is_restarted() {
        use crate::planner::{MemberState, RsConfig, RsMember};
        use crate::rollout::OpTime;
        let mdb: MongoDB = serde_json::from_value(serde_json::json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
            "metadata": {"name": "db", "namespace": "demo"},
            "spec": {"members": 2, "arbiter": true},
        }))
        .unwrap_or_else(|e| unreachable!("{e}"));
        fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
            serde_json::from_value(v).unwrap_or_else(|e| unreachable!("{e}"))
        }
        let arbiter_label = serde_json::json!({
            fedstate_api::names::LABEL_MEMBER_ROLE: "arbiter",
            "controller-revision-hash": "db-mongodb-arbiter-old",
        });
        let seen = Seen {
            pods: vec![obj(serde_json::json!({
                "metadata": {"name": "db-mongodb-arbiter-0", "labels": arbiter_label},
            }))],
            statefulsets: vec![obj(serde_json::json!({
                "metadata": {"name": "db-mongodb-arbiter"},
                "status": {"replicas": 1, "updateRevision": "db-mongodb-arbiter-new"},
            }))],
            ..Default::default()
        };
        let members = Members {
            arbiter: Some("vip:30009".into()),
            ready: BTreeSet::from(["vip:30009".to_owned()]),
            ..Default::default()
        };
        let voter = |id: i32, host: &str, arbiter_only: bool| RsMember {
            id,
            host: host.into(),
            votes: 1,
            priority: i32::from(!arbiter_only),
            arbiter_only,
        };
        let at = OpTime {
            seconds: 100,
            increment: 1,
            term: 1,
        };
        let obs = Observation {
            observed: crate::planner::Observed {
                config: Some(RsConfig {
                    name: "rs".into(),
                    version: 3,
                    members: vec![
                        voter(0, "vip:30000", false),
                        voter(1, "vip:30001", false),
                        voter(2, "vip:30009", true),
                    ],
                }),
                committed: true,
                states: BTreeMap::from([
                    ("vip:30000".to_owned(), MemberState::Primary),
                    ("vip:30001".to_owned(), MemberState::Secondary),
                    ("vip:30009".to_owned(), MemberState::Arbiter),
                ]),
                ..Default::default()
            },
            primary: Some("vip:30000".into()),
            optimes: BTreeMap::from([("vip:30000".to_owned(), at), ("vip:30001".to_owned(), at)]),
            ..Default::default()
        };
        assert_eq!(
            restart_step(&mdb, &seen, &members, &obs),
            RolloutStep::Restart {
                pod: "db-mongodb-arbiter-0".into()
            }
        );
    }

    #[test]
    fn a_rolling_restart_under_way_is_not_converged() {
        let done = SetResult {
            outcome: Some(Ok(Outcome::Done)),
            ..Default::default()
        };
        let restart = RolloutStep::Restart { pod: "p".into() };
        assert_eq!(next_requeue(&done, Some(&restart)), Requeue::Progress);
        let wait = RolloutStep::Wait("member h:1 is not ready yet".into());
        assert!(matches!(
            next_requeue(&done, Some(&wait)),
            Requeue::Stalled(s) if s.contains("h:1")
        ));
        assert_eq!(
            next_requeue(&done, Some(&RolloutStep::Done)),
            Requeue::Converged
        );
        assert_eq!(next_requeue(&done, None), Requeue::Converged);
        // The set's own state comes first.
        let waiting = SetResult {
            outcome: Some(Ok(Outcome::Waiting("no primary".into()))),
            ..Default::default()
        };
        assert_eq!(next_requeue(&waiting, Some(&restart)), requeue(&waiting));
    }

    #[test]
    fn a_step_is_progress_and_each_state_nothing_changed_is_its_own_stall() {
        let of = |o: Result<Outcome, String>| {
            requeue(&SetResult {
                outcome: Some(o),
                ..Default::default()
            })
        };
        assert_eq!(of(Ok(Outcome::Done)), Requeue::Converged);
        let reconfigured = Outcome::Reconfigured {
            version: 3,
            reason: "promote".into(),
        };
        assert_eq!(of(Ok(reconfigured)), Requeue::Progress);
        let lost = |reachable_voters| {
            of(Ok(Outcome::QuorumLost {
                reachable_voters,
                voters: 3,
                config_version: 4,
                unreachable: vec!["b:1".into()],
            }))
        };
        assert!(matches!(lost(1), Requeue::Stalled(_)));
        assert_eq!(lost(1), lost(1));
        assert_ne!(lost(1), lost(0), "another observation is another state");
        assert_ne!(
            of(Ok(Outcome::Waiting("no primary".into()))),
            of(Err("no primary".into()))
        );
    }

    #[test]
    fn the_cluster_reports_a_revision_only_once_every_member_runs_it() {
        #![allow(clippy::unwrap_used)]
        use k8s_openapi::api::apps::v1::StatefulSetStatus;
        let mdb: MongoDB = serde_json::from_value(serde_json::json!({
            "apiVersion": "middleware.fedstate.io/v1alpha1", "kind": "MongoDB",
            "metadata": {"name": "db", "namespace": "ns", "uid": "u"},
            "spec": {"members": 1, "image": "mongo:8.0",
                     "memberRoles": [{"memberIndex": 0, "votes": 1, "priority": 1}]}
        }))
        .unwrap();
        let want =
            fedstate_api::revision::spec_revision("db", &serde_json::to_value(&mdb.spec).unwrap());
        let mut sts = resources::member_statefulset(&mdb, Some(0)).unwrap();
        sts.metadata.generation = Some(2);
        sts.status = Some(StatefulSetStatus {
            observed_generation: Some(2),
            update_revision: Some("db-mongodb-0-new".into()),
            replicas: 1,
            ..Default::default()
        });
        let pod = |hash: &str| -> Pod {
            let mut labels = sts
                .spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .clone()
                .unwrap()
                .labels
                .unwrap();
            labels.insert("controller-revision-hash".into(), hash.into());
            let mut p = Pod::default();
            p.metadata.name = Some("db-mongodb-0-0".into());
            p.metadata.labels = Some(labels);
            p
        };
        let members = Members {
            addresses: BTreeMap::from([(0, "h:30000".to_owned())]),
            ready: BTreeSet::from(["h:30000".to_owned()]),
            ..Default::default()
        };
        let seen = |sts: &StatefulSet, p: Pod| Seen {
            statefulsets: vec![sts.clone()],
            pods: vec![p],
            ..Default::default()
        };
        assert_eq!(
            rolled_revision(&mdb, &seen(&sts, pod("db-mongodb-0-new")), &members),
            Some(want.clone())
        );
        assert!(want.starts_with("db-"));
        // The pod still runs the old template: not yet.
        assert_eq!(
            rolled_revision(&mdb, &seen(&sts, pod("db-mongodb-0-old")), &members),
            None
        );
        // Its StatefulSet controller has not seen the latest spec: its update revision is stale.
        let mut lagging = sts.clone();
        lagging.metadata.generation = Some(3);
        assert_eq!(
            rolled_revision(&mdb, &seen(&lagging, pod("db-mongodb-0-new")), &members),
            None
        );
        // Restarting (not ready): not yet.
        let down = Members {
            ready: BTreeSet::new(),
            ..members.clone()
        };
        assert_eq!(
            rolled_revision(&mdb, &seen(&sts, pod("db-mongodb-0-new")), &down),
            None
        );
        // A StatefulSet built from another spec (no annotation: an older agent) says nothing.
        let mut unstamped = sts.clone();
        unstamped.metadata.annotations = None;
        assert_eq!(
            rolled_revision(&mdb, &seen(&unstamped, pod("db-mongodb-0-new")), &members),
            None
        );
    }

    #[test]
    fn the_force_opt_in_is_bound_to_a_generation_and_a_config_version_and_used_once() {
        let g = Some(7);
        assert_eq!(force_opt_in(None, g, None), ForceOptIn(None));
        assert_eq!(force_opt_in(Some("7/12"), g, None), ForceOptIn(Some(12)));
        assert_eq!(force_opt_in(Some(" 7/12 "), g, None), ForceOptIn(Some(12)));
        // Another generation, the old generation-only form, garbage: no consent.
        assert_eq!(force_opt_in(Some("6/12"), g, None), ForceOptIn(None));
        assert_eq!(force_opt_in(Some("7"), g, None), ForceOptIn(None));
        assert_eq!(force_opt_in(Some("7/x"), g, None), ForceOptIn(None));
        // Used once (recorded in the status): never again, even at the same generation.
        assert_eq!(
            force_opt_in(Some("7/12"), g, Some("7/12")),
            ForceOptIn(None)
        );
        // A new opt-in for the config the forced one wrote is a new consent.
        assert_eq!(
            force_opt_in(Some("7/13"), g, Some("7/12")),
            ForceOptIn(Some(13))
        );
    }
}
