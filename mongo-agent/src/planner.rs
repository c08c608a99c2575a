//! The replica-set planner: from what the set looks like now and what the host list wants, the one
//! next step to take (`docs/mongodb.md#reconfiguration-rules`, `docs/placement.md#failover`). Pure:
//! no driver, no kube.
//!
//! The agent calls [`next_step`] again after every step (re-reading the set each time), so the plan
//! is a sequence of single steps, each safe on its own:
//! * non-voting changes (adding own ready members as `votes: 0, priority: 0`, priority changes,
//!   removing non-voters) are batched, since MongoDB does not limit them;
//! * at most one voting member is added, promoted, demoted or removed per reconfig, and only once
//!   the previous config is committed;
//! * adds and promotions come before removals, across clusters: a voter leaves only while the
//!   set keeps the host list's voter count without it (its replacement already votes, whichever
//!   agent promoted it), except when the set already has 7 voters;
//! * the primary is stepped down before it is removed or demoted;
//! * nothing changes without a primary; when the voting majority is unreachable the answer is
//!   [`Step::QuorumLost`], and only the user's explicit opt-in turns it into [`Step::ForceReconfig`];
//!   but while an unreachable voter of another cluster is still in the host list (its cluster
//!   not reported lost: maybe a partition) the answer is to wait, with or without the opt-in.

use std::collections::{BTreeMap, BTreeSet};

use fedstate_api::hostconf::HostEntry;
use fedstate_api::limits::MAX_VOTERS;

/// One member of a replica-set config (the fields we manage; the adapter keeps the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsMember {
    pub id: i32,
    pub host: String,
    pub votes: i32,
    pub priority: i32,
    pub arbiter_only: bool,
}

impl RsMember {
    pub fn is_voter(&self) -> bool {
        self.votes > 0
    }
}

/// A replica-set config as far as the planner cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsConfig {
    pub name: String,
    pub version: i64,
    pub members: Vec<RsMember>,
}

impl RsConfig {
    pub fn voters(&self) -> usize {
        self.members.iter().filter(|m| m.is_voter()).count()
    }
    /// Voting members that hold data.
    fn writable_voters(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.is_voter() && !m.arbiter_only)
            .count()
    }
    /// MongoDB's implicit default write concern is `{w: "majority"}` unless arbiters vote and
    /// the data-bearing voters are no more than a voting majority (then `{w: 1}`).
    pub fn implicit_default_is_majority(&self) -> bool {
        let (voters, writable) = (self.voters(), self.writable_voters());
        voters == writable || writable > voters / 2 + 1
    }
    /// A primary–secondary–arbiter set: three members, two holding data.
    fn is_psa(&self) -> bool {
        self.members.len() == 3 && self.members.iter().filter(|m| !m.arbiter_only).count() == 2
    }
    pub fn member(&self, host: &str) -> Option<&RsMember> {
        self.members.iter().find(|m| m.host == host)
    }
    /// One above the highest `_id`; the lowest free one when that would overflow (a config
    /// holding `_id` i32::MAX, found by the planner fuzz target).
    fn next_id(&self) -> i32 {
        let ids: BTreeSet<i32> = self.members.iter().map(|m| m.id).collect();
        match ids.last() {
            None => 0,
            Some(max) => max
                .checked_add(1)
                .or_else(|| (0..=i32::MAX).find(|i| !ids.contains(i)))
                .unwrap_or(0),
        }
    }
}

/// MongoDB member states the planner distinguishes (`replSetGetStatus.members[].state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    Primary,
    Secondary,
    Arbiter,
    /// Starting, syncing, recovering, rolling back: up but not yet useful.
    Syncing,
    /// Unreachable (`health: 0`) or removed.
    Down,
}

impl MemberState {
    /// From MongoDB's numeric state and health.
    pub fn from_status(state: i32, health: i32) -> Self {
        if health == 0 {
            return Self::Down;
        }
        match state {
            1 => Self::Primary,
            2 => Self::Secondary,
            7 => Self::Arbiter,
            8 | 10 => Self::Down,
            _ => Self::Syncing,
        }
    }
    pub fn is_up(self) -> bool {
        self != Self::Down
    }
}

/// What the agent saw of the replica set.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The config (from any reachable member); `None` when no desired host is in a set.
    pub config: Option<RsConfig>,
    /// Whether that config is committed (majority-replicated): `replSetGetConfig` with
    /// `commitmentStatus: true`.
    pub committed: bool,
    /// State of each config member by host; hosts missing here count as down.
    pub states: BTreeMap<String, MemberState>,
    /// What the primary said about itself.
    pub server: ServerFacts,
}

/// The primary's version and write-concern defaults (`buildInfo`, `getDefaultRWConcern`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFacts {
    /// `(major, minor)`; `None` when unknown (then the 5.0+ rules are assumed to apply).
    pub version: Option<(u32, u32)>,
    /// A cluster-wide default write concern is set (`defaultWriteConcernSource: "global"`).
    pub global_write_concern: bool,
}

impl ServerFacts {
    /// MongoDB 5.0+ refuses a reconfig that changes the implicit default write concern while
    /// no cluster-wide one is set.
    fn write_concern_rule_applies(&self) -> bool {
        !self.global_write_concern && self.version.is_none_or(|v| v >= (5, 0))
    }
}

impl Observed {
    pub fn state(&self, host: &str) -> MemberState {
        self.states.get(host).copied().unwrap_or(MemberState::Down)
    }
    pub fn primary(&self) -> Option<&str> {
        self.states
            .iter()
            .find(|(_, s)| **s == MemberState::Primary)
            .map(|(h, _)| h.as_str())
    }
}

/// What the host list and this agent's own cluster want.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    /// The whole set's desired members (the hostconf list).
    pub hosts: Vec<HostEntry>,
    /// Every address this agent's members answer on, desired or not (so it can remove its own
    /// members the list dropped).
    pub own: BTreeSet<String>,
    /// Own members whose pod is ready.
    pub ready: BTreeSet<String>,
}

impl Desired {
    fn entry(&self, host: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.host == host)
    }
}

/// The one next thing to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to change (this agent's part is done; other agents may still have work).
    Done,
    /// Wait and look again; the reason is for the log and status.
    Wait(String),
    /// Apply this config with a normal `replSetReconfig`.
    Reconfig { config: RsConfig, reason: String },
    /// Step this primary down first (it is about to be removed or demoted).
    StepDown { host: String },
    /// Set a cluster-wide default write concern (`{w: "majority"}`) first: the next reconfig
    /// changes the implicit default, which MongoDB 5.0+ refuses otherwise.
    SetDefaultWriteConcern { reason: String },
    /// The voting majority is unreachable: no automatic change is possible.
    QuorumLost {
        reachable_voters: usize,
        voters: usize,
        /// The version of the config that lost its majority: what an opt-in must name.
        config_version: i64,
        /// The voters that do not answer, in config order (what the message names).
        unreachable: Vec<String>,
    },
    /// The user opted in: `replSetReconfig` with `force: true` on a reachable member, keeping
    /// only reachable members.
    ForceReconfig { config: RsConfig, on: String },
}

/// The config version the user allowed one forced reconfig from (`None`: no opt-in). Bound to
/// that version, the opt-in is one-shot: a forced reconfig raises the version, so a later loss
/// of the majority (even at the same generation) is offered again, never forced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForceOptIn(pub Option<i64>);

/// The next step for an initiated set. `observed.config` must be `Some`.
pub fn next_step(desired: &Desired, observed: &Observed, force: ForceOptIn) -> Step {
    let step = plan(desired, observed, force);
    match (&step, &observed.config) {
        (
            Step::Reconfig {
                config: next,
                reason,
            },
            Some(config),
        ) if observed.server.write_concern_rule_applies()
            && config.implicit_default_is_majority() != next.implicit_default_is_majority() =>
        {
            Step::SetDefaultWriteConcern {
                reason: format!("before: {reason}"),
            }
        }
        _ => step,
    }
}

fn plan(desired: &Desired, observed: &Observed, force: ForceOptIn) -> Step {
    let Some(config) = &observed.config else {
        return Step::Wait("the replica set is not initiated yet".into());
    };
    // Every reconfig below raises the version by one (found by the planner fuzz target).
    if config.version.checked_add(1).is_none() {
        return Step::Wait(format!(
            "config version {} cannot be raised; no reconfig is possible",
            config.version
        ));
    }
    let voters: Vec<&RsMember> = config.members.iter().filter(|m| m.is_voter()).collect();
    let reachable = voters
        .iter()
        .filter(|m| observed.state(&m.host).is_up())
        .count();
    let majority = voters.len() / 2 + 1;
    let Some(primary) = observed.primary() else {
        if reachable >= majority {
            return Step::Wait("no primary yet; an election is under way".into());
        }
        // What this side sees is no proof the rest is gone: a voter the host list still holds
        // (the manager drops a lost cluster's members, from Karmada's Cluster status) may be
        // alive behind a partition with a primary of its own, and forcing here would make a
        // second one. Own members are this cluster's: their loss is seen from here.
        let listed: Vec<&str> = voters
            .iter()
            .filter(|m| !observed.state(&m.host).is_up())
            .filter(|m| !desired.own.contains(&m.host) && desired.entry(&m.host).is_some())
            .map(|m| m.host.as_str())
            .collect();
        if !listed.is_empty() {
            return Step::Wait(format!(
                "only {reachable} of {} voting members answer from here, but {} still in the host list (their clusters are not reported lost): this may be a partition, and a forced reconfig on this side could make a second primary; waiting until they answer or the manager drops them from the host list",
                voters.len(),
                listed.join(", ")
            ));
        }
        if force.0 == Some(config.version) {
            return force_step(config, observed);
        }
        return Step::QuorumLost {
            reachable_voters: reachable,
            voters: voters.len(),
            config_version: config.version,
            unreachable: voters
                .iter()
                .filter(|m| !observed.state(&m.host).is_up())
                .map(|m| m.host.clone())
                .collect(),
        };
    };
    if !observed.committed {
        return Step::Wait(format!(
            "config version {} is not committed to a majority yet",
            config.version
        ));
    }
    non_voting_changes(desired, config, observed, primary)
        .unwrap_or_else(|| voting_change(desired, config, observed, primary))
}

/// A member the list no longer holds that this agent may remove: its own, or one that is down
/// (its cluster is gone).
fn removable(desired: &Desired, observed: &Observed, m: &RsMember) -> bool {
    desired.entry(&m.host).is_none()
        && (desired.own.contains(&m.host) || !observed.state(&m.host).is_up())
}

/// Step 1, changes without a voting change, batched: own ready members added as non-voting,
/// priorities of voters, non-voters the list dropped.
fn non_voting_changes(
    desired: &Desired,
    config: &RsConfig,
    observed: &Observed,
    primary: &str,
) -> Option<Step> {
    let mut next = config.clone();
    let mut reasons = Vec::new();
    for h in &desired.hosts {
        if h.arbiter_only || !desired.own.contains(&h.host) || config.member(&h.host).is_some() {
            continue;
        }
        if desired.ready.contains(&h.host) {
            let id = next.next_id();
            next.members.push(RsMember {
                id,
                host: h.host.clone(),
                votes: 0,
                priority: 0,
                arbiter_only: false,
            });
            reasons.push(format!("add {} as non-voting", h.host));
        }
    }
    for m in next.members.iter_mut() {
        // The primary would not be electable under a priority of 0: it steps down first.
        if let Some(h) = desired.entry(&m.host)
            && m.votes == 1
            && h.votes == 1
            && m.priority != h.priority
            && !m.arbiter_only
            && !(m.host == primary && h.priority == 0)
        {
            reasons.push(format!(
                "priority of {} {} -> {}",
                m.host, m.priority, h.priority
            ));
            m.priority = h.priority;
        }
    }
    let before = next.members.len();
    next.members
        .retain(|m| m.is_voter() || !removable(desired, observed, m));
    if next.members.len() != before {
        reasons.push(format!("remove {} non-voting", before - next.members.len()));
    }
    if reasons.is_empty() {
        return None;
    }
    next.version += 1;
    Some(Step::Reconfig {
        config: next,
        reason: reasons.join(", "),
    })
}

/// Step 2, at most one voting change: a promotion or the arbiter first (adds before removes),
/// then a voter dropped (the primary stepped down first); otherwise wait or done.
fn voting_change(desired: &Desired, config: &RsConfig, observed: &Observed, primary: &str) -> Step {
    let wants_vote = |m: &RsMember, state: MemberState| {
        !m.is_voter()
            && desired.own.contains(&m.host)
            && desired.entry(&m.host).is_some_and(|h| h.votes == 1)
            && observed.state(&m.host) == state
    };
    let promotion = config
        .members
        .iter()
        .find(|m| wants_vote(m, MemberState::Secondary));
    let arbiter_add = desired.hosts.iter().find(|h| {
        h.arbiter_only
            && desired.own.contains(&h.host)
            && desired.ready.contains(&h.host)
            && config.member(&h.host).is_none()
    });
    // A voter to drop: not desired (removed) or desired as non-voter (demoted).
    let drop = config.members.iter().find(|m| {
        m.is_voter()
            && match desired.entry(&m.host) {
                None => removable(desired, observed, m),
                Some(h) => h.votes == 0 && desired.own.contains(&m.host),
            }
    });
    let room = config.voters() < usize::from(MAX_VOTERS);
    if room && let Some(m) = promotion {
        let priority = desired.entry(&m.host).map(|h| h.priority).unwrap_or(1);
        return promote(config, m, priority);
    }
    if room && let Some(h) = arbiter_add {
        return add_arbiter(config, &h.host);
    }
    // Adds before removes: while an own member is still catching up to be promoted, wait.
    let catching_up = config
        .members
        .iter()
        .find(|m| wants_vote(m, MemberState::Syncing));
    if let (Some(_), Some(c), true) = (drop, catching_up, room) {
        return Step::Wait(format!(
            "{} is catching up; it is promoted before a voter is removed",
            c.host
        ));
    }
    if desired
        .entry(primary)
        .is_some_and(|h| h.votes == 1 && h.priority == 0)
        && config.member(primary).is_some_and(|m| m.priority > 0)
    {
        return step_down_first(config, observed, primary, "to get priority 0");
    }
    if let Some(m) = drop {
        if room && let Some(wait) = awaiting_replacement(desired, config, m) {
            return wait;
        }
        if m.host == primary {
            return step_down_first(config, observed, primary, "to be removed");
        }
        return drop_voter(config, observed, m, desired.entry(&m.host).is_none());
    }
    if !room && promotion.is_some() {
        return Step::Wait("7 voters already; waiting for a voter to be removed".into());
    }
    let pending = desired
        .hosts
        .iter()
        .filter(|h| desired.own.contains(&h.host))
        .find(|h| {
            config
                .member(&h.host)
                .is_none_or(|m| m.votes != h.votes || m.priority != h.priority)
        });
    match pending {
        Some(h) => Step::Wait(format!("waiting for {} to be ready and SECONDARY", h.host)),
        None => Step::Done,
    }
}

/// Adds before removes, across clusters: voter `m` leaves (removed or demoted) only while the
/// set keeps the target's voter count without it, i.e. the desired voters that replace it
/// already vote, wherever they live (another cluster's agent adds and promotes them). Each
/// agent sees only its own members' readiness, so counting the config's voters against the
/// host list's is what keeps a move (a:1,b:1,c:1 → a:1,b:1,d:1) from dropping to two voters
/// while d does not exist yet. The same holds for a down voter of a gone cluster: the set kept
/// its majority without it (there is a primary), and promoting the replacement first never puts
/// that majority out of reach. Exceptions: with 7 voters there is no room to promote first (the
/// caller does not ask then); an arbiter does not wait for another arbiter (one arbiter per set);
/// a set that lost its majority changes only through the user's forced reconfig.
fn awaiting_replacement(desired: &Desired, config: &RsConfig, m: &RsMember) -> Option<Step> {
    let target = desired.hosts.iter().filter(|h| h.votes == 1).count();
    if config.voters() > target {
        return None;
    }
    let missing: Vec<String> = desired
        .hosts
        .iter()
        .filter(|h| h.votes == 1 && !config.member(&h.host).is_some_and(RsMember::is_voter))
        .filter(|h| !(m.arbiter_only && h.arbiter_only))
        .map(|h| {
            if h.cluster.is_empty() {
                h.host.clone()
            } else {
                format!("{} (cluster {})", h.host, h.cluster)
            }
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    Some(Step::Wait(format!(
        "adds before removes: {} keeps its vote until {} {} a voting member (the set keeps its {target} voters)",
        m.host,
        missing.join(", "),
        if missing.len() == 1 { "is" } else { "are" }
    )))
}

/// Give `m` its vote and `priority`. "Modify a PSA Replica Set Safely": from one data-bearing
/// voter to a PSA set, the vote comes first with priority 0; the priority follows in the next
/// reconfig (the priority batch of [`non_voting_changes`]).
fn promote(config: &RsConfig, m: &RsMember, priority: i32) -> Step {
    let mut next = config.clone();
    if let Some(n) = next.members.iter_mut().find(|n| n.id == m.id) {
        n.votes = 1;
        n.priority = priority;
    }
    let psa_first_step = next.is_psa() && config.writable_voters() == 1 && priority > 0;
    if psa_first_step && let Some(n) = next.members.iter_mut().find(|n| n.id == m.id) {
        n.priority = 0;
    }
    next.version += 1;
    Step::Reconfig {
        config: next,
        reason: if psa_first_step {
            format!(
                "promote {} to voting with priority 0 first (primary-secondary-arbiter set)",
                m.host
            )
        } else {
            format!("promote {} to voting", m.host)
        },
    }
}

/// The arbiter joins with its vote and priority 0 (an arbiter must vote).
fn add_arbiter(config: &RsConfig, host: &str) -> Step {
    let mut next = config.clone();
    let id = next.next_id();
    next.members.push(RsMember {
        id,
        host: host.to_owned(),
        votes: 1,
        priority: 0,
        arbiter_only: true,
    });
    next.version += 1;
    Step::Reconfig {
        config: next,
        reason: format!("add arbiter {host}"),
    }
}

/// Remove (`removing`) or demote voter `m`, unless the new voting majority would be out of
/// reach (MongoDB refuses such a config).
fn drop_voter(config: &RsConfig, observed: &Observed, m: &RsMember, removing: bool) -> Step {
    let mut next = config.clone();
    if removing {
        next.members.retain(|n| n.id != m.id);
    } else if let Some(n) = next.members.iter_mut().find(|n| n.id == m.id) {
        n.votes = 0;
        n.priority = 0;
    }
    let new_voters: Vec<&RsMember> = next.members.iter().filter(|n| n.is_voter()).collect();
    let up = new_voters
        .iter()
        .filter(|n| observed.state(&n.host).is_up())
        .count();
    if up < new_voters.len() / 2 + 1 {
        return Step::Wait(format!(
            "removing {} would leave {up} of {} voters reachable",
            m.host,
            new_voters.len()
        ));
    }
    next.version += 1;
    Step::Reconfig {
        config: next,
        reason: format!(
            "{} voting member {}",
            if removing { "remove" } else { "demote" },
            m.host
        ),
    }
}

/// A reconfig under which the primary is not electable is refused: it steps down first, once
/// another member can take over (replSetStepDown fails without one).
fn step_down_first(config: &RsConfig, observed: &Observed, primary: &str, why: &str) -> Step {
    let electable = config.members.iter().any(|n| {
        n.host != primary
            && n.is_voter()
            && n.priority > 0
            && observed.state(&n.host) == MemberState::Secondary
    });
    if !electable {
        return Step::Wait(format!(
            "primary {primary} is {why} but no other member can take over yet"
        ));
    }
    Step::StepDown {
        host: primary.to_owned(),
    }
}

fn force_step(config: &RsConfig, observed: &Observed) -> Step {
    let mut next = config.clone();
    next.members.retain(|m| observed.state(&m.host).is_up());
    let Some(on) = next
        .members
        .iter()
        .find(|m| !m.arbiter_only)
        .map(|m| m.host.clone())
    else {
        return Step::QuorumLost {
            reachable_voters: 0,
            voters: config.voters(),
            config_version: config.version,
            unreachable: config
                .members
                .iter()
                .filter(|m| m.is_voter())
                .map(|m| m.host.clone())
                .collect(),
        };
    };
    next.version += 1;
    Step::ForceReconfig { config: next, on }
}

/// What `hello` said about one desired host before initiating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostProbe {
    Unreachable,
    /// Up, started with `--replSet`, not in any config yet.
    Uninitiated,
    /// Already a member of the named set.
    InSet {
        set_name: String,
    },
}

/// Whether to initiate, join or wait (`docs/mongodb.md#reconfiguration-rules`: initiate exactly
/// once, only after checking that no desired host already belongs to a set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitDecision {
    /// Initiate on `on` with this config.
    Initiate {
        on: String,
        config: RsConfig,
    },
    /// A desired host already belongs to the set: join it through the normal planner.
    Join {
        via: String,
    },
    /// A desired host belongs to a different set: refuse, the user must look.
    ForeignSet {
        host: String,
        set_name: String,
    },
    Wait(String),
}

/// Decide initiation. `rs_init` is this cluster's duty to initiate (set by the manager on exactly
/// one cluster; always true for single-cluster use). `known` are the hosts the set had when this
/// agent last saw it (`status.replset`); `probes` what `hello` said on each host.
///
/// Initiate once: `replSetInitiate` asks only the members it names, so next to a set it cannot
/// see it makes a second, empty set of the same name (a member whose PVC was replaced is empty
/// and answers "in no set"). So every host the set ever had ([`ever_had`]: the host list's,
/// every own member's, Ready or not — a member whose pod is down keeps its data —, and every
/// host `status.replset` remembers) must have been asked and have answered that it is in no
/// set; while one cannot be asked, nothing is initiated and the wait names it and why.
pub fn decide_init(
    set_name: &str,
    rs_init: bool,
    desired: &Desired,
    known: &BTreeSet<String>,
    probes: &BTreeMap<String, HostProbe>,
) -> InitDecision {
    for (host, p) in probes {
        if let HostProbe::InSet { set_name: s } = p {
            if s == set_name {
                return InitDecision::Join { via: host.clone() };
            }
            return InitDecision::ForeignSet {
                host: host.clone(),
                set_name: s.clone(),
            };
        }
    }
    if !rs_init {
        return InitDecision::Wait("another cluster initiates the replica set".into());
    }
    let blocking: Vec<String> = ever_had(desired, known)
        .into_iter()
        .filter_map(|(host, whose)| match probes.get(host) {
            Some(HostProbe::Uninitiated) => None,
            Some(_) => Some(format!("{host} ({whose}) does not answer")),
            None => Some(format!("{host} ({whose}) was not asked yet")),
        })
        .collect();
    if !blocking.is_empty() {
        return InitDecision::Wait(format!(
            "not initiating the replica set until every host it ever had answers that it is in no set (next to a set it cannot see, an initiate would make a second, empty one): {}",
            blocking.join("; ")
        ));
    }
    // The first member: our lowest-index ready data-bearing voter.
    let mut own: Vec<&HostEntry> = desired
        .hosts
        .iter()
        .filter(|h| {
            !h.arbiter_only
                && h.votes == 1
                && desired.own.contains(&h.host)
                && desired.ready.contains(&h.host)
        })
        .collect();
    own.sort_by_key(|h| h.member_index);
    match own.first() {
        None => InitDecision::Wait("no own voting member is ready to initiate on".into()),
        Some(first) => InitDecision::Initiate {
            on: first.host.clone(),
            config: RsConfig {
                name: set_name.to_owned(),
                version: 1,
                members: vec![RsMember {
                    id: 0,
                    host: first.host.clone(),
                    votes: 1,
                    priority: first.priority.max(1),
                    arbiter_only: false,
                }],
            },
        },
    }
}

/// Every host the set ever had, each with why it counts (for the wait's message): the host
/// list's, this agent's own members' (Ready or not), and those `status.replset` remembers.
pub fn ever_had<'a>(
    desired: &'a Desired,
    known: &'a BTreeSet<String>,
) -> BTreeMap<&'a str, &'static str> {
    let mut out: BTreeMap<&str, &'static str> = known
        .iter()
        .map(|h| (h.as_str(), "remembered in status.replset"))
        .collect();
    for h in &desired.hosts {
        out.insert(h.host.as_str(), "in the host list");
    }
    for h in &desired.own {
        if !desired.ready.contains(h) {
            out.insert(h.as_str(), "an own member whose pod is not Ready");
        } else {
            out.entry(h.as_str()).or_insert("an own member");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn entry(i: i32, votes: i32, priority: i32, cluster: &str) -> HostEntry {
        HostEntry {
            host: host(i),
            member_index: i,
            votes,
            priority,
            arbiter_only: false,
            cluster: cluster.into(),
        }
    }
    fn host(i: i32) -> String {
        format!("127.0.1.1:{}", 30000 + i)
    }
    fn voter(id: i32, i: i32) -> RsMember {
        RsMember {
            id,
            host: host(i),
            votes: 1,
            priority: 1,
            arbiter_only: false,
        }
    }
    fn all_own(hosts: &[HostEntry], extra: &[i32]) -> Desired {
        let mut own: BTreeSet<String> = hosts.iter().map(|h| h.host.clone()).collect();
        own.extend(extra.iter().map(|i| host(*i)));
        Desired {
            hosts: hosts.to_vec(),
            ready: own.clone(),
            own,
        }
    }
    fn observed(config: RsConfig, primary: i32) -> Observed {
        let states = config
            .members
            .iter()
            .map(|m| {
                let s = if m.host == host(primary) {
                    MemberState::Primary
                } else {
                    MemberState::Secondary
                };
                (m.host.clone(), s)
            })
            .collect();
        Observed {
            config: Some(config),
            committed: true,
            states,
            // A cluster-wide write concern is set: the 5.0+ rule has its own tests.
            server: ServerFacts {
                version: Some((7, 0)),
                global_write_concern: true,
            },
        }
    }
    fn voting_diff(a: &RsConfig, b: &RsConfig) -> usize {
        let va: BTreeSet<&str> = a
            .members
            .iter()
            .filter(|m| m.is_voter())
            .map(|m| m.host.as_str())
            .collect();
        let vb: BTreeSet<&str> = b
            .members
            .iter()
            .filter(|m| m.is_voter())
            .map(|m| m.host.as_str())
            .collect();
        va.symmetric_difference(&vb).count()
    }

    #[test]
    fn new_members_join_non_voting_then_get_promoted_one_at_a_time() {
        let three = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let desired = all_own(
            &(0..5).map(|i| entry(i, 1, 1, "a")).collect::<Vec<_>>(),
            &[],
        );
        let Step::Reconfig { config, .. } =
            next_step(&desired, &observed(three.clone(), 0), ForceOptIn(None))
        else {
            panic!("expected a reconfig")
        };
        assert_eq!(config.version, 4);
        let added: Vec<_> = config.members[3..].iter().collect();
        assert_eq!(added.len(), 2);
        assert!(added.iter().all(|m| m.votes == 0 && m.priority == 0));
        assert_eq!(voting_diff(&three, &config), 0);

        // Until they are SECONDARY nothing is promoted.
        let mut obs = observed(config.clone(), 0);
        obs.states.insert(host(3), MemberState::Syncing);
        obs.states.insert(host(4), MemberState::Syncing);
        assert!(matches!(
            next_step(&desired, &obs, ForceOptIn(None)),
            Step::Wait(_)
        ));
        obs.states.insert(host(3), MemberState::Secondary);
        obs.states.insert(host(4), MemberState::Secondary);
        let Step::Reconfig { config: c5, .. } = next_step(&desired, &obs, ForceOptIn(None)) else {
            panic!("expected a promotion")
        };
        assert_eq!(voting_diff(&config, &c5), 1);
        assert_eq!(c5.member(&host(3)).unwrap().votes, 1);
        assert_eq!(c5.member(&host(4)).unwrap().votes, 0);
    }

    #[test]
    fn nothing_changes_while_the_previous_config_is_uncommitted() {
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0)],
        };
        let mut obs = observed(c, 0);
        obs.committed = false;
        let desired = all_own(&[entry(0, 1, 1, "a"), entry(1, 1, 1, "a")], &[]);
        assert!(matches!(
            next_step(&desired, &obs, ForceOptIn(None)),
            Step::Wait(m) if m.contains("not committed")
        ));
    }

    #[test]
    fn the_primary_is_stepped_down_before_it_is_removed() {
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let desired = all_own(&[entry(1, 1, 1, "a"), entry(2, 1, 1, "a")], &[0]);
        assert_eq!(
            next_step(&desired, &observed(c.clone(), 0), ForceOptIn(None)),
            Step::StepDown { host: host(0) }
        );
        let Step::Reconfig { config, .. } =
            next_step(&desired, &observed(c.clone(), 1), ForceOptIn(None))
        else {
            panic!("expected a removal")
        };
        assert!(config.member(&host(0)).is_none());
        assert_eq!(voting_diff(&c, &config), 1);
    }

    #[test]
    fn other_clusters_reachable_members_are_left_to_their_agent() {
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        // Member 2 is no longer desired, belongs to another cluster and is up: not ours.
        let desired = Desired {
            hosts: vec![entry(0, 1, 1, "a"), entry(1, 1, 1, "a")],
            own: [host(0), host(1)].into(),
            ready: [host(0), host(1)].into(),
        };
        assert_eq!(
            next_step(&desired, &observed(c.clone(), 0), ForceOptIn(None)),
            Step::Done
        );
        // Once its cluster is gone (unreachable), any surviving agent removes it.
        let mut obs = observed(c, 0);
        obs.states.insert(host(2), MemberState::Down);
        let Step::Reconfig { config, .. } = next_step(&desired, &obs, ForceOptIn(None)) else {
            panic!("expected a removal")
        };
        assert!(config.member(&host(2)).is_none());
    }

    /// This cluster's agent: the whole host list, its own members (all ready).
    fn agent_of(hosts: &[HostEntry], own: &[i32]) -> Desired {
        let own: BTreeSet<String> = own.iter().map(|i| host(*i)).collect();
        Desired {
            hosts: hosts.to_vec(),
            ready: own.clone(),
            own,
        }
    }

    /// Issue 15: a move a:1,b:1,c:1 → a:1,b:1,d:1. c's agent sees nothing of d; it must not
    /// remove (or step down) its voter until d votes, and then it does.
    #[test]
    fn a_move_across_clusters_removes_the_old_voter_only_once_its_replacement_votes() {
        let abc = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let abd = [
            entry(0, 1, 1, "a"),
            entry(1, 1, 1, "b"),
            entry(3, 1, 1, "d"),
        ];
        let c_agent = agent_of(&abd, &[2]);
        for primary in [0, 2] {
            let step = next_step(&c_agent, &observed(abc.clone(), primary), ForceOptIn(None));
            assert!(
                matches!(&step, Step::Wait(why) if why.contains(&host(3)) && why.contains("cluster d")),
                "primary {primary}: {step:?}"
            );
        }
        // d joined as a non-voter (d's agent): still not a replacement.
        let mut with_d = abc.clone();
        with_d.version = 4;
        with_d.members.push(RsMember {
            votes: 0,
            priority: 0,
            ..voter(3, 3)
        });
        assert!(matches!(
            next_step(&c_agent, &observed(with_d.clone(), 0), ForceOptIn(None)),
            Step::Wait(why) if why.contains(&host(3))
        ));
        // d votes: c leaves (its primary steps down first).
        let d = with_d.members.iter_mut().find(|m| m.id == 3).unwrap();
        (d.votes, d.priority) = (1, 1);
        let Step::Reconfig { config, reason } =
            next_step(&c_agent, &observed(with_d.clone(), 0), ForceOptIn(None))
        else {
            panic!("expected c's removal")
        };
        assert!(config.member(&host(2)).is_none(), "{reason}");
        assert_eq!(config.voters(), 3);
        assert_eq!(
            next_step(&c_agent, &observed(with_d, 2), ForceOptIn(None)),
            Step::StepDown { host: host(2) }
        );
    }

    /// A down voter of a gone cluster waits for its replacement too (the set has its majority:
    /// there is a primary); a shrinking list (no replacement) removes it at once.
    #[test]
    fn a_gone_clusters_voter_is_removed_once_its_replacement_votes() {
        let abc = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let mut obs = observed(abc.clone(), 0);
        obs.states.insert(host(2), MemberState::Down);
        let abd = [
            entry(0, 1, 1, "a"),
            entry(1, 1, 1, "b"),
            entry(3, 1, 1, "d"),
        ];
        let a_agent = agent_of(&abd, &[0]);
        assert!(matches!(
            next_step(&a_agent, &obs, ForceOptIn(None)),
            Step::Wait(why) if why.contains(&host(3))
        ));
        let mut abcd = abc.clone();
        abcd.members.push(voter(3, 3));
        let mut obs = observed(abcd, 0);
        obs.states.insert(host(2), MemberState::Down);
        let Step::Reconfig { config, .. } = next_step(&a_agent, &obs, ForceOptIn(None)) else {
            panic!("expected the gone member's removal")
        };
        assert!(config.member(&host(2)).is_none());
    }

    /// One arbiter per set: a moving arbiter leaves before its replacement can join.
    #[test]
    fn an_arbiter_moving_clusters_does_not_wait_for_a_second_arbiter() {
        let arbiter = |i: i32| RsMember {
            id: i,
            host: host(i),
            votes: 1,
            priority: 0,
            arbiter_only: true,
        };
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), arbiter(9)],
        };
        let hosts = [entry(0, 1, 1, "a"), entry(1, 1, 1, "a"), arbiter_entry(10)];
        let Step::Reconfig { config, .. } =
            next_step(&agent_of(&hosts, &[9]), &observed(c, 0), ForceOptIn(None))
        else {
            panic!("expected the arbiter's removal")
        };
        assert!(config.member(&host(9)).is_none());
    }

    #[test]
    fn lost_majority_is_reported_and_forced_only_with_the_opt_in() {
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let desired = all_own(&[entry(0, 1, 1, "a")], &[]);
        let obs = Observed {
            config: Some(c),
            committed: true,
            states: [(host(0), MemberState::Secondary)].into(),
            ..Default::default()
        };
        assert_eq!(
            next_step(&desired, &obs, ForceOptIn(None)),
            Step::QuorumLost {
                reachable_voters: 1,
                voters: 3,
                config_version: 3,
                unreachable: vec![host(1), host(2)],
            }
        );
        // An opt-in given for another config version is not a consent for this one.
        assert!(matches!(
            next_step(&desired, &obs, ForceOptIn(Some(2))),
            Step::QuorumLost { .. }
        ));
        let Step::ForceReconfig { config, on } = next_step(&desired, &obs, ForceOptIn(Some(3)))
        else {
            panic!("expected a forced reconfig")
        };
        assert_eq!(on, host(0));
        assert_eq!(config.members.len(), 1);
        // One-shot: the forced config lost its majority again (same opt-in, same generation):
        // offered, not forced.
        let forced = RsConfig {
            members: vec![voter(0, 0), voter(3, 3), voter(4, 4)],
            ..config
        };
        let again = Observed {
            config: Some(forced),
            committed: true,
            states: [(host(0), MemberState::Secondary)].into(),
            ..Default::default()
        };
        assert_eq!(
            next_step(&desired, &again, ForceOptIn(Some(3))),
            Step::QuorumLost {
                reachable_voters: 1,
                voters: 3,
                config_version: 4,
                unreachable: vec![host(3), host(4)],
            }
        );
        // With a reachable majority and no primary, we only wait, even with the opt-in.
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let obs = Observed {
            config: Some(c),
            committed: true,
            states: [
                (host(0), MemberState::Secondary),
                (host(1), MemberState::Secondary),
            ]
            .into(),
            ..Default::default()
        };
        assert!(matches!(
            next_step(&desired, &obs, ForceOptIn(Some(3))),
            Step::Wait(_)
        ));
    }

    /// Issue 15: the minority side of a partition sees the majority unreachable; while those
    /// voters are in the host list (their clusters not reported lost) nothing is offered or
    /// forced, even with an opt-in; once the list dropped them, the loss is offered.
    #[test]
    fn the_minority_side_waits_while_the_unreachable_voters_are_listed() {
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let obs = Observed {
            config: Some(c),
            committed: true,
            states: [(host(2), MemberState::Secondary)].into(),
            ..Default::default()
        };
        let listed = Desired {
            hosts: vec![
                entry(0, 1, 1, "a"),
                entry(1, 1, 1, "b"),
                entry(2, 1, 1, "c"),
            ],
            own: [host(2)].into(),
            ready: [host(2)].into(),
        };
        for force in [ForceOptIn(None), ForceOptIn(Some(3))] {
            let Step::Wait(why) = next_step(&listed, &obs, force) else {
                panic!("expected a wait")
            };
            assert!(why.contains(&format!("{}, {}", host(0), host(1))), "{why}");
        }
        let dropped = Desired {
            hosts: vec![entry(2, 1, 1, "c")],
            ..listed
        };
        assert!(matches!(
            next_step(&dropped, &obs, ForceOptIn(None)),
            Step::QuorumLost {
                reachable_voters: 1,
                ..
            }
        ));
    }

    #[test]
    fn at_seven_voters_a_removal_comes_before_a_promotion() {
        let mut members: Vec<RsMember> = (0..7).map(|i| voter(i, i)).collect();
        members.push(RsMember {
            votes: 0,
            priority: 0,
            ..voter(7, 7)
        });
        let c = RsConfig {
            name: "rs".into(),
            version: 9,
            members,
        };
        let mut hosts: Vec<HostEntry> = (1..8).map(|i| entry(i, 1, 1, "a")).collect();
        hosts.push(entry(8, 0, 0, "a"));
        let desired = all_own(&hosts, &[0]);
        let Step::Reconfig { config, .. } =
            next_step(&desired, &observed(c.clone(), 3), ForceOptIn(None))
        else {
            panic!("expected a reconfig")
        };
        // First the non-voting add of member 8, then the voter swap.
        assert!(config.member(&host(8)).is_some());
        let obs = observed(config.clone(), 3);
        let Step::Reconfig { config: c2, .. } = next_step(&desired, &obs, ForceOptIn(None)) else {
            panic!("expected a removal")
        };
        assert!(c2.member(&host(0)).is_none());
        assert_eq!(c2.voters(), 6);
    }

    #[test]
    fn initiates_once_and_joins_an_existing_set_instead() {
        let none = BTreeSet::new();
        let desired = Desired {
            hosts: vec![entry(0, 1, 2, "a"), entry(1, 1, 1, "b")],
            own: [host(0)].into(),
            ready: [host(0)].into(),
        };
        let fresh: BTreeMap<String, HostProbe> = [
            (host(0), HostProbe::Uninitiated),
            (host(1), HostProbe::Uninitiated),
        ]
        .into();
        let InitDecision::Initiate { on, config } =
            decide_init("rs", true, &desired, &none, &fresh)
        else {
            panic!("expected initiate")
        };
        assert_eq!(on, host(0));
        assert_eq!(config.members.len(), 1);
        assert_eq!(config.members[0].priority, 2);
        assert!(matches!(
            decide_init("rs", false, &desired, &none, &fresh),
            InitDecision::Wait(_)
        ));
        let joined: BTreeMap<String, HostProbe> = [
            (host(0), HostProbe::Uninitiated),
            (
                host(1),
                HostProbe::InSet {
                    set_name: "rs".into(),
                },
            ),
        ]
        .into();
        assert_eq!(
            decide_init("rs", true, &desired, &none, &joined),
            InitDecision::Join { via: host(1) }
        );
        let foreign: BTreeMap<String, HostProbe> = [
            (host(0), HostProbe::Uninitiated),
            (
                host(1),
                HostProbe::InSet {
                    set_name: "other".into(),
                },
            ),
        ]
        .into();
        assert!(matches!(
            decide_init("rs", true, &desired, &none, &foreign),
            InitDecision::ForeignSet { .. }
        ));
        let silent: BTreeMap<String, HostProbe> = [
            (host(0), HostProbe::Uninitiated),
            (host(1), HostProbe::Unreachable),
        ]
        .into();
        assert!(matches!(
            decide_init("rs", true, &desired, &none, &silent),
            InitDecision::Wait(m) if m.contains(&host(1))
        ));
    }

    #[test]
    fn no_initiate_until_every_host_the_set_ever_had_answers_in_no_set() {
        // Three own members; 1 and 2 are down (pods not Ready, their data on their PVCs), 0 came
        // back with a replaced PVC: empty, answering "in no set".
        let desired = Desired {
            hosts: vec![
                entry(0, 1, 1, "a"),
                entry(1, 1, 1, "a"),
                entry(2, 1, 1, "a"),
            ],
            own: [host(0), host(1), host(2)].into(),
            ready: [host(0)].into(),
        };
        let down: BTreeMap<String, HostProbe> = [
            (host(0), HostProbe::Uninitiated),
            (host(1), HostProbe::Unreachable),
            (host(2), HostProbe::Unreachable),
        ]
        .into();
        let none = BTreeSet::new();
        let InitDecision::Wait(why) = decide_init("rs", true, &desired, &none, &down) else {
            panic!("initiated next to a set whose members are down")
        };
        assert!(why.contains("not initiating the replica set"), "{why}");
        assert!(
            why.contains(&format!(
                "{} (an own member whose pod is not Ready) does not answer",
                host(1)
            )),
            "{why}"
        );
        assert!(why.contains(&host(2)), "{why}");
        assert!(!why.contains(&format!("{} (", host(0))), "{why}");

        // The host list moved to new hosts; the set lived on hosts 0..2, remembered in status.
        let moved = Desired {
            hosts: vec![entry(3, 1, 1, "a")],
            own: [host(3)].into(),
            ready: [host(3)].into(),
        };
        let known: BTreeSet<String> = [host(0), host(1), host(2)].into();
        let probes: BTreeMap<String, HostProbe> = [
            (host(3), HostProbe::Uninitiated),
            (host(0), HostProbe::Unreachable),
        ]
        .into();
        let InitDecision::Wait(why) = decide_init("rs", true, &moved, &known, &probes) else {
            panic!("initiated without asking the hosts status remembers")
        };
        assert!(
            why.contains(&format!(
                "{} (remembered in status.replset) does not answer",
                host(0)
            )),
            "{why}"
        );
        assert!(
            why.contains(&format!(
                "{} (remembered in status.replset) was not asked yet",
                host(1)
            )),
            "{why}"
        );
        // Once every one of them answers "in no set", the set is initiated (once).
        let all: BTreeMap<String, HostProbe> =
            (0..4).map(|i| (host(i), HostProbe::Uninitiated)).collect();
        assert!(matches!(
            decide_init("rs", true, &moved, &known, &all),
            InitDecision::Initiate { on, .. } if on == host(3)
        ));
        // One of them answers from the set: join it, never initiate.
        let mut in_set = all.clone();
        in_set.insert(
            host(1),
            HostProbe::InSet {
                set_name: "rs".into(),
            },
        );
        assert_eq!(
            decide_init("rs", true, &moved, &known, &in_set),
            InitDecision::Join { via: host(1) }
        );
    }

    #[test]
    fn an_arbiter_joins_as_one_voting_change_with_priority_zero() {
        let c = RsConfig {
            name: "rs".into(),
            version: 2,
            members: vec![voter(0, 0), voter(1, 1)],
        };
        let mut hosts = vec![entry(0, 1, 1, "a"), entry(1, 1, 1, "a")];
        hosts.push(HostEntry {
            arbiter_only: true,
            priority: 0,
            ..entry(9, 1, 0, "b")
        });
        // Not ready yet: nothing to do for it.
        let mut desired = all_own(&hosts, &[]);
        desired.ready.remove(&host(9));
        assert!(matches!(
            next_step(&desired, &observed(c.clone(), 0), ForceOptIn(None)),
            Step::Wait(_)
        ));
        desired.ready.insert(host(9));
        let Step::Reconfig { config, .. } =
            next_step(&desired, &observed(c.clone(), 0), ForceOptIn(None))
        else {
            panic!("expected the arbiter add")
        };
        let a = config.member(&host(9)).unwrap();
        assert!(a.arbiter_only && a.votes == 1 && a.priority == 0);
        assert_eq!(voting_diff(&c, &config), 1);
    }

    fn arbiter_entry(i: i32) -> HostEntry {
        HostEntry {
            arbiter_only: true,
            priority: 0,
            ..entry(i, 1, 0, "b")
        }
    }

    /// MongoDB 5.0+ refuses a reconfig that changes the implicit default write concern (adding
    /// an arbiter to P+S turns `{w: "majority"}` into `{w: 1}`) until `setDefaultRWConcern` ran;
    /// 4.4 has no such rule, and a set with a cluster-wide one goes straight on.
    #[test]
    fn on_5_0_a_cluster_wide_write_concern_comes_before_an_arbiter() {
        let c = RsConfig {
            name: "rs".into(),
            version: 2,
            members: vec![voter(0, 0), voter(1, 1)],
        };
        let desired = all_own(
            &[entry(0, 1, 1, "a"), entry(1, 1, 1, "a"), arbiter_entry(9)],
            &[],
        );
        let mut obs = observed(c, 0);
        for version in [Some((5, 0)), Some((8, 0)), None] {
            obs.server = ServerFacts {
                version,
                global_write_concern: false,
            };
            assert!(
                matches!(
                    next_step(&desired, &obs, ForceOptIn(None)),
                    Step::SetDefaultWriteConcern { reason } if reason.contains("arbiter")
                ),
                "{version:?}"
            );
        }
        for server in [
            ServerFacts {
                version: Some((4, 4)),
                global_write_concern: false,
            },
            ServerFacts {
                version: Some((7, 0)),
                global_write_concern: true,
            },
        ] {
            obs.server = server;
            assert!(matches!(
                next_step(&desired, &obs, ForceOptIn(None)),
                Step::Reconfig { reason, .. } if reason.contains("arbiter")
            ));
        }
    }

    /// "Modify a PSA Replica Set Safely" (5.0+ refuses the one-step change): a data member
    /// joining a primary + arbiter set gets its vote with priority 0 first, its priority in the
    /// next reconfig.
    #[test]
    fn a_psa_set_gets_its_secondarys_vote_with_priority_zero_first() {
        let arbiter = RsMember {
            id: 1,
            host: host(9),
            votes: 1,
            priority: 0,
            arbiter_only: true,
        };
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![
                voter(0, 0),
                arbiter.clone(),
                RsMember {
                    votes: 0,
                    priority: 0,
                    ..voter(2, 1)
                },
            ],
        };
        let desired = all_own(
            &[entry(0, 1, 1, "a"), entry(1, 1, 1, "a"), arbiter_entry(9)],
            &[],
        );
        let Step::Reconfig { config, reason } =
            next_step(&desired, &observed(c.clone(), 0), ForceOptIn(None))
        else {
            panic!("expected the vote")
        };
        let m = config.member(&host(1)).unwrap();
        assert_eq!((m.votes, m.priority), (1, 0), "{reason}");
        let Step::Reconfig { config: second, .. } =
            next_step(&desired, &observed(config, 0), ForceOptIn(None))
        else {
            panic!("expected the priority")
        };
        let m = second.member(&host(1)).unwrap();
        assert_eq!((m.votes, m.priority), (1, 1));
        // With two data-bearing voters already, a promotion is one step.
        let pss = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![
                voter(0, 0),
                voter(1, 1),
                RsMember {
                    votes: 0,
                    priority: 0,
                    ..voter(2, 2)
                },
            ],
        };
        let desired = all_own(
            &[
                entry(0, 1, 1, "a"),
                entry(1, 1, 1, "a"),
                entry(2, 1, 1, "a"),
            ],
            &[],
        );
        let Step::Reconfig { config, .. } =
            next_step(&desired, &observed(pss, 0), ForceOptIn(None))
        else {
            panic!("expected the promotion")
        };
        assert_eq!(config.member(&host(2)).unwrap().priority, 1);
    }

    /// A reconfig under which the primary is not electable is refused: before its desired
    /// priority of 0 is applied, it steps down.
    #[test]
    fn the_primary_steps_down_before_its_priority_drops_to_zero() {
        let c = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(0, 0), voter(1, 1), voter(2, 2)],
        };
        let desired = all_own(
            &[
                entry(0, 1, 0, "a"),
                entry(1, 1, 1, "a"),
                entry(2, 1, 1, "a"),
            ],
            &[],
        );
        assert_eq!(
            next_step(&desired, &observed(c.clone(), 0), ForceOptIn(None)),
            Step::StepDown { host: host(0) }
        );
        let Step::Reconfig { config, .. } = next_step(&desired, &observed(c, 1), ForceOptIn(None))
        else {
            panic!("expected the priority change")
        };
        assert_eq!(config.member(&host(0)).unwrap().priority, 0);
    }

    /// A toy set that applies every step instantly: new members become SECONDARY after one step,
    /// step-down hands the primary to the highest-priority other voter.
    fn drive(mut config: RsConfig, desired: &Desired) -> (RsConfig, Vec<RsConfig>) {
        let mut history = vec![config.clone()];
        let mut primary = config.members[0].host.clone();
        let mut syncing: BTreeSet<String> = BTreeSet::new();
        for _ in 0..64 {
            let states = config
                .members
                .iter()
                .map(|m| {
                    let s = if m.host == primary {
                        MemberState::Primary
                    } else if syncing.contains(&m.host) {
                        MemberState::Syncing
                    } else {
                        MemberState::Secondary
                    };
                    (m.host.clone(), s)
                })
                .collect();
            syncing.clear();
            let obs = Observed {
                config: Some(config.clone()),
                committed: true,
                states,
                ..Default::default()
            };
            match next_step(desired, &obs, ForceOptIn(None)) {
                Step::Done => return (config, history),
                Step::Reconfig { config: next, .. } => {
                    for m in &next.members {
                        if config.member(&m.host).is_none() {
                            syncing.insert(m.host.clone());
                        }
                    }
                    config = next;
                    history.push(config.clone());
                }
                Step::StepDown { host } => {
                    primary = config
                        .members
                        .iter()
                        .filter(|m| m.host != host && m.is_voter() && m.priority > 0)
                        .max_by_key(|m| m.priority)
                        .map(|m| m.host.clone())
                        .unwrap();
                }
                Step::Wait(_) => {}
                other => panic!("unexpected step {other:?}"),
            }
        }
        panic!("no convergence: {config:?}")
    }

    #[test]
    fn extreme_ids_and_versions_are_not_overflowed() {
        let mut config = RsConfig {
            name: "rs".into(),
            version: 3,
            members: vec![voter(i32::MAX, 0)],
        };
        assert_eq!(config.next_id(), 0, "the lowest free id");
        config.members.push(voter(0, 1));
        assert_eq!(config.next_id(), 1);
        // A new own member would be added, but the version cannot go up.
        config.version = i64::MAX;
        let hosts = vec![
            entry(0, 1, 1, "a"),
            entry(1, 1, 1, "a"),
            entry(2, 1, 1, "a"),
        ];
        let desired = all_own(&hosts, &[]);
        let step = next_step(&desired, &observed(config, 0), ForceOptIn(None));
        assert!(
            matches!(&step, Step::Wait(why) if why.contains("cannot be raised")),
            "{step:?}"
        );
    }

    proptest! {
        /// `docs/placement.md#failover`: every intermediate config keeps ≤ 7 voters, changes ≤ 1
        /// voter from its predecessor, and the plan ends at the target.
        #[test]
        fn any_change_plan_is_one_voter_at_a_time_and_ends_at_the_target(
            start in 1usize..=7,
            target in proptest::collection::vec((0i32..12, 1i32..4), 1..10),
        ) {
            let config = RsConfig {
                name: "rs".into(),
                version: 1,
                members: (0..start as i32).map(|i| RsMember { priority: 2, ..voter(i, i) }).collect(),
            };
            let mut seen = BTreeSet::new();
            let mut hosts = Vec::new();
            let mut voters = 0;
            for (i, p) in target {
                if seen.insert(i) {
                    let votes = if voters < 7 { voters += 1; 1 } else { 0 };
                    hosts.push(entry(i, votes, if votes == 1 { p } else { 0 }, "a"));
                }
            }
            // Keep at least one old voter with priority so the primary can be handed over.
            let desired = all_own(&hosts, &(0..start as i32).collect::<Vec<_>>());
            let (end, history) = drive(config, &desired);
            for pair in history.windows(2) {
                prop_assert!(voting_diff(&pair[0], &pair[1]) <= 1);
                prop_assert!(pair[1].voters() <= 7);
                prop_assert!(pair[1].version > pair[0].version);
            }
            let got: BTreeSet<(String, i32, i32)> =
                end.members.iter().map(|m| (m.host.clone(), m.votes, m.priority)).collect();
            let want: BTreeSet<(String, i32, i32)> =
                hosts.iter().map(|h| (h.host.clone(), h.votes, h.priority)).collect();
            prop_assert_eq!(got, want);
        }
    }
}
