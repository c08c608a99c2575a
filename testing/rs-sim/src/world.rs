//! The simulated replica-set world: every member endpoint ("node"), which are up, the replica sets
//! they form, their configs, elections and users, and the answer to each command. Synchronous and
//! deterministic; time moves only through [`World::tick`].
//!
//! Each rule cites the MongoDB behaviour it reproduces (manual, "Replica Set Configuration",
//! `replSetInitiate`, `replSetReconfig`, `replSetStepDown`, `hello`, "Localhost Exception").

use std::collections::{BTreeMap, BTreeSet};

use bson::{Bson, Document, doc, oid::ObjectId, spec::BinarySubtype};

use crate::scram::{self, Conversation, Credential};

/// How fast simulated time moves.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Ticks a newly added member spends in STARTUP2 (initial sync) before it is SECONDARY.
    pub sync_ticks: u64,
    /// Ticks a stepped-down primary may not stand for election (`replSetStepDown` seconds).
    pub stepdown_ticks: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sync_ticks: 2,
            stepdown_ticks: 20,
        }
    }
}

// MongoDB error codes (src/mongo/base/error_codes.yml).
pub const BAD_VALUE: i32 = 2;
pub const UNAUTHORIZED: i32 = 13;
pub const USER_NOT_FOUND: i32 = 11;
pub const AUTHENTICATION_FAILED: i32 = 18;
pub const ALREADY_INITIALIZED: i32 = 23;
pub const COMMAND_NOT_FOUND: i32 = 59;
pub const NODE_NOT_FOUND: i32 = 74;
pub const INVALID_REPLICA_SET_CONFIG: i32 = 93;
pub const NOT_YET_INITIALIZED: i32 = 94;
pub const NEW_CONFIG_INCOMPATIBLE: i32 = 103;
pub const CONFIGURATION_IN_PROGRESS: i32 = 109;
pub const NOT_WRITABLE_PRIMARY: i32 = 10107;
pub const EXCEEDED_TIME_LIMIT: i32 = 262;
pub const MAX_TIME_MS_EXPIRED: i32 = 50;
pub const ILLEGAL_OPERATION: i32 = 20;
pub const IDL_UNKNOWN_FIELD: i32 = 40415;
pub const CURRENT_CONFIG_NOT_COMMITTED_YET: i32 = 308;
pub const MECHANISM_UNAVAILABLE: i32 = 334;
pub const USER_ALREADY_EXISTS: i32 = 51003;

fn code_name(code: i32) -> &'static str {
    match code {
        BAD_VALUE => "BadValue",
        UNAUTHORIZED => "Unauthorized",
        USER_NOT_FOUND => "UserNotFound",
        AUTHENTICATION_FAILED => "AuthenticationFailed",
        ALREADY_INITIALIZED => "AlreadyInitialized",
        COMMAND_NOT_FOUND => "CommandNotFound",
        NODE_NOT_FOUND => "NodeNotFound",
        INVALID_REPLICA_SET_CONFIG => "InvalidReplicaSetConfig",
        NOT_YET_INITIALIZED => "NotYetInitialized",
        NEW_CONFIG_INCOMPATIBLE => "NewReplicaSetConfigurationIncompatible",
        CONFIGURATION_IN_PROGRESS => "ConfigurationInProgress",
        NOT_WRITABLE_PRIMARY => "NotWritablePrimary",
        EXCEEDED_TIME_LIMIT => "ExceededTimeLimit",
        MAX_TIME_MS_EXPIRED => "MaxTimeMSExpired",
        ILLEGAL_OPERATION => "IllegalOperation",
        IDL_UNKNOWN_FIELD => "Location40415",
        CURRENT_CONFIG_NOT_COMMITTED_YET => "CurrentConfigNotCommittedYet",
        MECHANISM_UNAVAILABLE => "MechanismUnavailable",
        USER_ALREADY_EXISTS => "Location51003",
        _ => "UnknownError",
    }
}

/// A command error as MongoDB sends it: `{ok: 0, errmsg, code, codeName}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    pub code: i32,
    pub message: String,
}

fn err(code: i32, message: impl Into<String>) -> CommandError {
    CommandError {
        code,
        message: message.into(),
    }
}

impl CommandError {
    pub fn to_document(&self) -> Document {
        doc! {"ok": 0.0, "errmsg": &self.message, "code": self.code, "codeName": code_name(self.code)}
    }
}

type Reply = Result<Document, CommandError>;

fn reply(r: Reply) -> Document {
    match r {
        Ok(mut d) => {
            d.insert("ok", 1.0);
            d
        }
        Err(e) => e.to_document(),
    }
}

/// How [`World::begin`] answers.
#[derive(Debug)]
pub enum Answer {
    Now(Document),
    /// mongod keeps the connection waiting; see [`World::resume`] and [`World::expire`].
    Later(Wait),
    /// No answer ever: the client is on the other side of a [`World::split`] (the network side
    /// closes the connection; the client gives up at its own timeout either way).
    Silent,
}

/// A command mongod is still working on (it blocks its connection until it answers).
#[derive(Clone, Debug)]
pub struct Wait {
    node: String,
    cmd: Document,
    phase: Phase,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before a reconfig: the current config must be committed.
    CurrentConfig,
    /// After installing `version` in set `set`: a majority of its voters must hold it.
    NewConfig { set: u64, version: i64 },
    /// The node no longer answers commands ([`World::stall`]), whatever their `maxTimeMS`.
    Stalled,
}

impl Wait {
    /// The command's `maxTimeMS`; without one mongod waits indefinitely.
    pub fn max_time(&self) -> Option<std::time::Duration> {
        if self.phase == Phase::Stalled {
            return None;
        }
        number(&self.cmd, "maxTimeMS")
            .filter(|ms| *ms > 0.0)
            .map(|ms| std::time::Duration::from_millis(ms as u64))
    }
}

pub const STARTUP: i32 = 0;
pub const PRIMARY: i32 = 1;
pub const SECONDARY: i32 = 2;
pub const RECOVERING: i32 = 3;
pub const STARTUP2: i32 = 5;
pub const ARBITER: i32 = 7;
pub const DOWN: i32 = 8;

fn state_str(state: i32) -> &'static str {
    match state {
        STARTUP => "STARTUP",
        PRIMARY => "PRIMARY",
        SECONDARY => "SECONDARY",
        RECOVERING => "RECOVERING",
        STARTUP2 => "STARTUP2",
        ARBITER => "ARBITER",
        DOWN => "(not reachable/healthy)",
        _ => "UNKNOWN",
    }
}

/// One member of a config.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub id: i32,
    pub host: String,
    pub votes: i32,
    pub priority: f64,
    pub arbiter_only: bool,
    pub hidden: bool,
    pub build_indexes: bool,
    /// Set by the server (4.4+) on a member added with a vote, until it finished its initial
    /// sync; such a member does not count as a voter yet.
    pub newly_added: bool,
    pub tags: Document,
}

impl Member {
    fn electable(&self) -> bool {
        self.is_voter() && self.priority > 0.0 && !self.arbiter_only && !self.hidden
    }
    /// Whether its vote counts (mongod's `MemberConfig::isVoter`: not while `newlyAdded`).
    pub fn is_voter(&self) -> bool {
        self.votes > 0 && !self.newly_added
    }
    fn to_document(&self) -> Document {
        let mut d = doc! {
            "_id": self.id, "host": &self.host, "arbiterOnly": self.arbiter_only,
            "buildIndexes": self.build_indexes, "hidden": self.hidden, "priority": self.priority,
            "tags": self.tags.clone(), "secondaryDelaySecs": 0i64, "votes": self.votes,
        };
        if self.newly_added {
            d.insert("newlyAdded", true);
        }
        d
    }
}

/// A parsed, validated config.
#[derive(Clone, Debug)]
pub struct Config {
    pub name: String,
    pub version: i64,
    pub members: Vec<Member>,
    pub settings: Document,
}

impl Config {
    /// The members whose vote counts now (`newlyAdded` ones do not yet).
    fn voters(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.is_voter())
    }
    /// Voting members that hold data (mongod's `writableVotingMembersCount`).
    fn writable_voters(&self) -> usize {
        self.voters().filter(|m| !m.arbiter_only).count()
    }
    /// `repl_set_config.cpp` `isImplicitDefaultWriteConcernMajority`: `{w: "majority"}` unless
    /// arbiters vote and the data-bearing voters are no more than a voting majority.
    pub fn implicit_default_is_majority(&self) -> bool {
        let voters = self.voters().count();
        let writable = self.writable_voters();
        voters == writable || writable > voters / 2 + 1
    }
    /// `repl_set_config.h` `isPSASet`: three members, two of them holding data.
    fn is_psa(&self) -> bool {
        self.members.len() == 3 && self.members.iter().filter(|m| !m.arbiter_only).count() == 2
    }
    fn member_by_id(&self, id: i32) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
    pub fn member(&self, host: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.host == host)
    }
    /// The set's timing from its `settings`, with mongod's defaults.
    pub fn timing(&self) -> Timing {
        let ticks = |key: &str, default_ms: f64, unit_ms: f64| {
            let ms = number(&self.settings, key).map_or(default_ms, |v| v * unit_ms);
            ((ms / 1000.0).ceil() as u64).max(1)
        };
        Timing {
            heartbeat: ticks("heartbeatIntervalMillis", 2000.0, 1.0),
            election: ticks("electionTimeoutMillis", 10_000.0, 1.0),
            heartbeat_timeout: ticks("heartbeatTimeoutSecs", 10_000.0, 1000.0),
        }
    }
}

/// How long failure detection and elections take, in ticks (one tick is one simulated second,
/// rounded up, at least one), from the config's `settings` (manual, "Replica Set
/// Configuration": `settings.heartbeatIntervalMillis` 2000, `settings.electionTimeoutMillis`
/// 10000, `settings.heartbeatTimeoutSecs` 10 by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Members heartbeat each other every this many ticks (all in the same rounds here).
    pub heartbeat: u64,
    /// A member that heard nothing from a primary for this long calls an election.
    pub election: u64,
    /// A heartbeat without any answer for this long marks its target down.
    pub heartbeat_timeout: u64,
}

impl Timing {
    /// When the others mark a member down that stopped answering at `lost.at` (server
    /// `topology_coordinator.cpp` `processHeartbeatResponse`: `setDownValues` once a heartbeat
    /// used up its retries, which a closed port does at once, or once the heartbeat timeout
    /// elapsed, which is what a member that does not answer at all costs).
    fn detected_at(&self, lost: Lost) -> u64 {
        if lost.silent {
            lost.at + self.heartbeat_timeout
        } else {
            (lost.at / self.heartbeat + 1) * self.heartbeat
        }
    }
}

/// A member that stopped answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lost {
    at: u64,
    /// No answer at all (a partitioned cluster) rather than a refused connection (a stopped
    /// process, a deleted pod).
    silent: bool,
}

fn number(d: &Document, key: &str) -> Option<f64> {
    match d.get(key)? {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(f) => Some(*f),
        Bson::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn truthy(d: &Document, key: &str) -> bool {
    number(d, key).is_some_and(|n| n != 0.0)
}

/// One member of a config document, validated on its own.
fn parse_member(m: &Document) -> Result<Member, CommandError> {
    let invalid = |m: String| err(INVALID_REPLICA_SET_CONFIG, m);
    let id = number(m, "_id").ok_or_else(|| invalid("member is missing \"_id\"".into()))? as i32;
    let host = m
        .get_str("host")
        .map_err(|_| invalid(format!("member {id} is missing \"host\"")))?
        .to_owned();
    if host
        .rsplit_once(':')
        .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return Err(invalid(format!(
            "member {id}: host {host:?} is not host:port"
        )));
    }
    let arbiter_only = truthy(m, "arbiterOnly");
    let votes = number(m, "votes").unwrap_or(1.0) as i32;
    let priority = number(m, "priority").unwrap_or(if arbiter_only { 0.0 } else { 1.0 });
    let hidden = truthy(m, "hidden");
    if votes != 0 && votes != 1 {
        return Err(invalid(format!(
            "votes field value is {votes} but must be 0 or 1"
        )));
    }
    if !(0.0..=1000.0).contains(&priority) {
        return Err(invalid(format!(
            "priority field value of {priority} is out of range"
        )));
    }
    if votes == 0 && priority != 0.0 {
        return Err(invalid(
            "priority must be 0 when non-voting (votes:0)".into(),
        ));
    }
    if arbiter_only && priority != 0.0 {
        return Err(invalid("priority must be 0 when arbiterOnly=true".into()));
    }
    // member_config.cpp: an arbiter exists only to vote.
    if arbiter_only && votes == 0 {
        return Err(err(BAD_VALUE, "Arbiter must vote (cannot have 0 votes)"));
    }
    // 4.4+: `newlyAdded` is for the server to set (repl_set_config_checks.cpp).
    if m.contains_key("newlyAdded") {
        return Err(invalid(format!(
            "Cannot provide newlyAdded field to member config for member {id}"
        )));
    }
    if hidden && priority != 0.0 {
        return Err(invalid("priority must be 0 when hidden=true".into()));
    }
    let build_indexes = m.get_bool("buildIndexes").unwrap_or(true);
    if !build_indexes && priority != 0.0 {
        return Err(invalid("priority must be 0 when buildIndexes=false".into()));
    }
    let tags = m.get_document("tags").cloned().unwrap_or_default();
    Ok(Member {
        id,
        host,
        votes,
        priority,
        arbiter_only,
        hidden,
        build_indexes,
        newly_added: false,
        tags,
    })
}

/// Parse and validate a config document ("Replica Set Configuration" and the validation in
/// `ReplSetConfig::validate`).
pub fn parse_config(d: &Document) -> Result<Config, CommandError> {
    let invalid = |m: String| err(INVALID_REPLICA_SET_CONFIG, m);
    let name = d
        .get_str("_id")
        .map_err(|_| invalid("Missing expected field \"_id\"".into()))?
        .to_owned();
    let version = number(d, "version").unwrap_or(1.0) as i64;
    let raw = d
        .get_array("members")
        .map_err(|_| invalid("Missing expected field \"members\"".into()))?;
    let mut members = Vec::new();
    for m in raw {
        let Bson::Document(m) = m else {
            return Err(invalid("members entries must be documents".into()));
        };
        members.push(parse_member(m)?);
    }
    for (i, a) in members.iter().enumerate() {
        for b in members.iter().skip(i + 1) {
            if a.id == b.id {
                return Err(invalid(format!(
                    "Found two member configurations with same _id field, members.{}._id == {}",
                    i, a.id
                )));
            }
            if a.host == b.host {
                return Err(invalid(format!(
                    "Found two member configurations with same host field, host == {}",
                    a.host
                )));
            }
        }
    }
    if members.is_empty() || members.len() > 50 {
        return Err(invalid(format!(
            "Replica set configuration contains {} members, but must be at least 1 and no more than 50",
            members.len()
        )));
    }
    // 5.3+: "Multiple arbiters are not allowed unless all nodes were started with
    // --setParameter 'allowMultipleArbiters=true'" (repl_set_config.cpp). The simulator's nodes
    // are started without it.
    if members.iter().filter(|m| m.arbiter_only).count() > 1 {
        return Err(err(
            NEW_CONFIG_INCOMPATIBLE,
            "Multiple arbiters are not allowed unless all nodes were started with --setParameter 'allowMultipleArbiters=true'",
        ));
    }
    let voters = members.iter().filter(|m| m.votes > 0).count();
    if !(1..=7).contains(&voters) {
        return Err(invalid(format!(
            "Replica set configuration contains {voters} voting members, but must be at least 1 and no more than 7"
        )));
    }
    if !members.iter().any(Member::electable) {
        return Err(invalid(
            "No electable nodes in replica set configuration".into(),
        ));
    }
    let settings = d.get_document("settings").cloned().unwrap_or_else(|_| {
        doc! {"chainingAllowed": true, "heartbeatIntervalMillis": 2000, "electionTimeoutMillis": 10000}
    });
    // repl_set_config.cpp: the timing settings must be positive.
    for key in [
        "heartbeatIntervalMillis",
        "electionTimeoutMillis",
        "heartbeatTimeoutSecs",
    ] {
        if settings.contains_key(key) && !number(&settings, key).is_some_and(|v| v > 0.0) {
            return Err(err(
                BAD_VALUE,
                format!("settings.{key} must be greater than 0"),
            ));
        }
    }
    Ok(Config {
        name,
        version,
        members,
        settings,
    })
}

#[derive(Clone, Debug)]
struct Runtime {
    state: i32,
    synced_at: u64,
    barred_until: u64,
    /// The last write it applied: `(tick, term)`; `(0, -1)` for none yet (initial sync).
    applied: (u64, i64),
    /// A restarted member replays what it missed until this tick (it is SECONDARY meanwhile).
    catch_up_at: u64,
    /// Since when it does not answer; the others go on reporting what they last heard of it
    /// until their heartbeats mark it down ([`Timing::detected_at`]).
    lost: Option<Lost>,
    /// When it came back after a restart: STARTUP, STARTUP2 and RECOVERING before SECONDARY.
    restarted_at: Option<u64>,
}

impl Runtime {
    fn new(state: i32, synced_at: u64, applied: (u64, i64)) -> Self {
        Self {
            state,
            synced_at,
            barred_until: 0,
            applied,
            catch_up_at: 0,
            lost: None,
            restarted_at: None,
        }
    }
}

/// Whether optime `a` (`(tick, term)`) is newer than `b`: optimes order by term, then time.
fn newer(a: (u64, i64), b: (u64, i64)) -> bool {
    (a.1, a.0) > (b.1, b.0)
}

/// Optime seconds of tick 0: one tick is one second of optime (2026-01-01T00:00:00Z, fixed so
/// that tests are deterministic).
const OPTIME_EPOCH_SECONDS: u32 = 1_767_225_600;

/// `members[].optime` and `optimeDate` as mongod reports them: `{ts: Timestamp, t: term}`;
/// `Timestamp(0, 0)`, term -1 and the epoch for a member with none (down, in initial sync).
fn optime_fields(applied: Option<(u64, i64)>) -> (Document, bson::DateTime) {
    match applied.filter(|(_, t)| *t >= 0) {
        Some((tick, term)) => {
            let seconds =
                OPTIME_EPOCH_SECONDS.saturating_add(u32::try_from(tick).unwrap_or(u32::MAX));
            (
                doc! {"ts": bson::Timestamp { time: seconds, increment: 1 }, "t": term},
                bson::DateTime::from_millis(i64::from(seconds) * 1000),
            )
        }
        None => (
            doc! {"ts": bson::Timestamp { time: 0, increment: 0 }, "t": -1i64},
            bson::DateTime::from_millis(0),
        ),
    }
}

#[derive(Clone, Debug)]
struct User {
    db: String,
    name: String,
    roles: Vec<(String, String)>,
    credential: Credential,
}

/// One replica set.
#[derive(Clone, Debug)]
pub struct ReplSet {
    /// The simulator's id of the set (mongod's `replicaSetId`).
    pub id: u64,
    pub config: Config,
    pub term: i64,
    pub primary: Option<String>,
    /// Whether the current config is committed (majority of its voters up).
    pub committed: bool,
    /// The last term in which a write majority of data-bearing voters held the primary's
    /// writes ("oplog commitment"; without an oplog: up and PRIMARY or SECONDARY).
    pub oplog_committed_term: i64,
    /// The current config came from a forced reconfig (no oplog commitment is waited for).
    pub config_forced: bool,
    /// How many forced reconfigs were applied (what the e2e tier checks stays 0).
    pub forced_reconfigs: u32,
    /// The majority commit point: the newest write (`(tick, term)`, as a member's applied
    /// optime) that a write majority of the data-bearing voters holds. A write acknowledged
    /// with `w: "majority"` is one at or before it; MongoDB never rolls such a write back.
    pub majority_commit: (u64, i64),
    /// Elections won by a member that lacks the majority commit point: each one rolls back
    /// writes acknowledged with `w: "majority"` (what the e2e tier checks stays 0; only a
    /// forced reconfig can cause it, the election restriction prevents it otherwise).
    pub committed_writes_lost: u32,
    /// The cluster-wide default write concern (`setDefaultRWConcern`), when one was set.
    pub default_write_concern: Option<Document>,
    /// The feature compatibility version, `(major, minor)` of a series (4.4, 5.0, …).
    pub fcv: (u32, u32),
    /// With no primary: when an electable member's election timeout runs out.
    pub election_at: Option<u64>,
    /// A priority takeover a higher-priority member waits for: `(host, tick)`.
    takeover: Option<(String, u64)>,
    runtime: BTreeMap<String, Runtime>,
    users: BTreeMap<String, User>,
}

impl ReplSet {
    /// A member's MongoDB state number (1 PRIMARY, 2 SECONDARY, 5 STARTUP2, 7 ARBITER) as its set
    /// records it; whether it is up is [`World::is_up`].
    pub fn state(&self, host: &str) -> Option<i32> {
        self.runtime.get(host).map(|r| r.state)
    }

    /// What the other members report about `host` at `now`: its state as they last heard it
    /// until their heartbeats mark it down, then DOWN (`(not reachable/healthy)`, health 0).
    fn reported(&self, host: &str, now: u64) -> i32 {
        match self.runtime.get(host) {
            None => DOWN,
            Some(rt) => match rt.lost {
                Some(l) if now >= self.config.timing().detected_at(l) => DOWN,
                _ => rt.state,
            },
        }
    }

    /// The primary the members know of: the one there is, or one that is gone but not marked
    /// down yet.
    fn known_primary(&self, now: u64) -> Option<&str> {
        self.primary.as_deref().or_else(|| {
            self.config
                .members
                .iter()
                .find(|m| {
                    self.runtime
                        .get(&m.host)
                        .is_some_and(|r| r.lost.is_some() && r.state == PRIMARY)
                        && self.reported(&m.host, now) == PRIMARY
                })
                .map(|m| m.host.as_str())
        })
    }

    /// Whether a reconfig may start: the current config is committed (on a majority of its
    /// voters) and, unless it was forced, a write majority holds the current term's writes
    /// (`awaitConfigCommitment`, replication_coordinator_impl.cpp).
    pub fn ready_for_reconfig(&self) -> bool {
        self.committed && (self.config_forced || self.oplog_committed_term == self.term)
    }
}

#[derive(Clone, Debug, Default)]
struct Node {
    up: bool,
    /// The set whose config this node holds (by [`ReplSet::id`]).
    set: Option<u64>,
    /// Answers only `hello`/`isMaster` (a mongod whose disk hangs: [`World::stall`]).
    stalled: bool,
    /// Why the binary refuses to start on this node's data (an FCV it cannot run with).
    start_failure: Option<String>,
    /// The users in this node's own data when it is in no set (MongoDB keeps
    /// `admin.system.users` on disk: a removed member keeps the users it had).
    local_users: BTreeMap<String, User>,
    /// The mongod binary's version (the image tag), `None` = 7.0.0.
    version: Option<(u32, u32, u32)>,
    /// While down: unreachable without any answer (a partition), not refused.
    silent: bool,
}

impl Node {
    fn running(&self) -> bool {
        self.up && self.start_failure.is_none()
    }

    /// Up and holding set `id`'s config: what that set's heartbeats find. A node started on
    /// a new volume ([`World::new_volume`]) answers them with no config of this set.
    fn serves(&self, id: u64) -> bool {
        self.running() && self.set == Some(id)
    }
}

/// The release series of a version: 4.4, or `X.0` from 5 on (rapid releases belong to their
/// major).
fn series((major, minor, _): (u32, u32, u32)) -> (u32, u32) {
    if major >= 5 {
        (major, 0)
    } else {
        (major, minor)
    }
}

fn series_name((a, b): (u32, u32)) -> String {
    format!("{a}.{b}")
}

/// The series before `s` (5.0 → 4.4, 6.0 → 5.0, …).
fn previous_series(s: (u32, u32)) -> (u32, u32) {
    match s {
        (5, 0) => (4, 4),
        (4, 4) => (4, 2),
        (a, _) if a > 5 => (a - 1, 0),
        other => other,
    }
}

/// A binary of version `v` runs with FCV `fcv` (its own series or the one before).
fn runs_with(v: (u32, u32, u32), fcv: (u32, u32)) -> bool {
    let own = series(v);
    fcv == own || fcv == previous_series(own)
}

/// Per-connection state: authentication and an open SCRAM conversation.
#[derive(Debug, Default)]
pub struct Session {
    /// Connection over the member's own localhost interface, i.e. from inside its pod (the
    /// simulator's per-member Unix socket). Connections to `<vip>:<nodePort>` never are.
    pub in_pod: bool,
    /// `(db, user)` once authenticated.
    pub user: Option<(String, String)>,
    conversation: Option<(String, Conversation)>,
    pub connection_id: i32,
    /// The client's `appName` (`client.application.name` of the connection's first `hello`):
    /// which side of a [`World::split`] it stands on.
    pub client: Option<String>,
}

impl Session {
    pub fn new(in_pod: bool, connection_id: i32) -> Self {
        Self {
            in_pod,
            connection_id,
            ..Default::default()
        }
    }
}

/// Every node and set the simulator knows.
#[derive(Debug, Default)]
pub struct World {
    settings: Settings,
    nodes: BTreeMap<String, Node>,
    /// Sets by id: two sets may have the same name (mongod checks only the proposed members).
    sets: BTreeMap<u64, ReplSet>,
    next_set_id: u64,
    now: u64,
    changes: Changes,
    split: Option<Split>,
}

/// One cluster's members cut off from every other member, and its clients from every other
/// member ([`World::split`]).
#[derive(Clone, Debug)]
struct Split {
    at: u64,
    /// The members cut off (a minority of every set's voters).
    isolated: BTreeSet<String>,
    /// The clients (driver `appName`s) on the cut-off side.
    clients: BTreeSet<String>,
    /// What the cut-off members last heard of each member: its state at the split.
    heard: BTreeMap<String, i32>,
}

/// Counts changes of the world, so waiting commands know when to look again.
#[derive(Debug)]
struct Changes(tokio::sync::watch::Sender<u64>);

impl Default for Changes {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(0).0)
    }
}

fn user_key(db: &str, name: &str) -> String {
    format!("{db}.{name}")
}

impl World {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            ..Default::default()
        }
    }

    /// Bring a node up (its pod Running and its cluster up). A node keeps its data (set
    /// membership) while down, like a pod whose PVC survives.
    ///
    /// A node that goes down stops answering at once (its port closed: what a stopped mongod
    /// or a deleted pod looks like); the others mark it down at their next heartbeat.
    pub fn set_up(&mut self, host: &str, up: bool) {
        let was = self.is_up(host);
        let node = self.nodes.entry(host.to_owned()).or_default();
        node.up = up;
        if up {
            node.silent = false;
        }
        self.restarted(host, was);
        self.recompute();
    }

    /// Take a node down without a word (its cluster partitioned away: heartbeats to it get no
    /// answer at all, so the others mark it down only after `heartbeatTimeoutSecs`).
    pub fn partition(&mut self, host: &str) {
        let node = self.nodes.entry(host.to_owned()).or_default();
        if node.up {
            node.silent = true;
        }
        node.up = false;
        self.recompute();
    }

    /// Cut `isolated` (one cluster's members) off from every other member, each side getting
    /// no answer at all from the other (per observer), and place the clients named in
    /// `clients` (their driver `appName`) on the cut-off side: they reach only the cut-off
    /// members, every other client only the rest (a connection over a member's in-pod socket
    /// always reaches it). The rest sees the cut-off members as [`World::partition`] does; the
    /// cut-off members go on reporting the others as they last heard of them until their own
    /// heartbeats give up (`heartbeatTimeoutSecs`, server `topology_coordinator.cpp`
    /// `processHeartbeatResponse`), and then mark them down; a cut-off primary steps down at
    /// that moment, seeing no majority ("can't see a majority of the set, relinquishing
    /// primary"). The cut-off side must hold a minority of every set's voters (it can then
    /// never elect; the set's state is the rest's view): otherwise nothing changes and the
    /// error says why.
    pub fn split(&mut self, isolated: &[String], clients: &[String]) -> Result<(), String> {
        let isolated: BTreeSet<String> = isolated.iter().cloned().collect();
        let now = self.now;
        let mut heard = BTreeMap::new();
        for set in self.sets.values() {
            let voters: Vec<&Member> = set.config.voters().collect();
            let cut = voters.iter().filter(|m| isolated.contains(&m.host)).count();
            if cut > voters.len() / 2 {
                return Err(format!(
                    "set {}: {cut} of {} voters cut off; only a minority can be",
                    set.config.name,
                    voters.len()
                ));
            }
            for m in &set.config.members {
                let state = if self.member_up(set, &m.host) {
                    set.runtime.get(&m.host).map_or(STARTUP2, |r| r.state)
                } else {
                    set.reported(&m.host, now)
                };
                heard.insert(m.host.clone(), state);
            }
        }
        for h in &isolated {
            let node = self.nodes.entry(h.clone()).or_default();
            if node.up {
                node.silent = true;
            }
            node.up = false;
        }
        self.split = Some(Split {
            at: now,
            isolated,
            clients: clients.iter().cloned().collect(),
            heard,
        });
        self.recompute();
        Ok(())
    }

    /// End the [`World::split`]: the cut-off members answer the others again and rejoin as
    /// they are, without a restart: a primary that stepped down (or learns of a newer term
    /// now) is SECONDARY, and each replays the writes it missed for `sync_ticks`.
    pub fn heal(&mut self) {
        let Some(split) = self.split.take() else {
            return;
        };
        let catch_up = self.now + self.settings.sync_ticks;
        for h in &split.isolated {
            let node = self.nodes.entry(h.clone()).or_default();
            node.up = true;
            node.silent = false;
            for set in self.sets.values_mut() {
                let primary = set.primary.clone();
                if let Some(rt) = set.runtime.get_mut(h) {
                    rt.lost = None;
                    if rt.state == PRIMARY && primary.as_deref() != Some(h.as_str()) {
                        rt.state = SECONDARY;
                    }
                    rt.catch_up_at = catch_up;
                }
            }
        }
        self.recompute();
    }

    /// Whether a connection's commands reach `node` (the two sides of a split do not hear
    /// each other).
    fn answers(&self, node: &str, session: &Session) -> bool {
        // A node taken down ([`World::set_up`]) answers nothing, on a connection opened before
        // too (a stopped mongod closes them all); a cut-off one still answers its own side.
        if self.nodes.get(node).is_some_and(|n| !n.up) && !self.cut_off(node) {
            return false;
        }
        match &self.split {
            None => true,
            Some(_) if session.in_pod => true,
            Some(s) => {
                let client_cut = session
                    .client
                    .as_ref()
                    .is_some_and(|c| s.clients.contains(c));
                s.isolated.contains(node) == client_cut
            }
        }
    }

    /// A cut-off member's view of `host` (itself included): how the cut-off side reports it.
    fn cut_off_view(&self, set: &ReplSet, host: &str) -> Option<i32> {
        let split = self.split.as_ref()?;
        let given_up = self.now >= split.at + set.config.timing().heartbeat_timeout;
        Some(if split.isolated.contains(host) {
            match set.runtime.get(host).map_or(STARTUP2, |r| r.state) {
                PRIMARY if given_up => SECONDARY,
                s => s,
            }
        } else if given_up {
            DOWN
        } else {
            split.heard.get(host).copied().unwrap_or(DOWN)
        })
    }

    /// Whether `node` is on the cut-off side of a split.
    fn cut_off(&self, node: &str) -> bool {
        self.split
            .as_ref()
            .is_some_and(|s| s.isolated.contains(node))
    }

    /// Every member of set `name` that holds itself PRIMARY now, with how many of the set's
    /// voters its side reaches (the up ones; during a split only those on its side).
    pub fn primaries(&self, name: &str) -> Vec<(String, usize)> {
        let Some(set) = self.set(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let cut = |h: &str| self.cut_off(h);
        if let Some(p) = &set.primary {
            let reach = set
                .config
                .voters()
                .filter(|m| !cut(&m.host) && self.member_up(set, &m.host))
                .count();
            out.push((p.clone(), reach));
        }
        for m in set.config.members.iter().filter(|m| cut(&m.host)) {
            if self.cut_off_view(set, &m.host) == Some(PRIMARY) {
                let reach = set.config.voters().filter(|v| cut(&v.host)).count();
                out.push((m.host.clone(), reach));
            }
        }
        out
    }

    /// A member that comes back (its pod recreated, its cluster back) starts as mongod does
    /// (manual, "Replica Set Member States"; a restarted mongod logs STARTUP → STARTUP2 →
    /// RECOVERING → SECONDARY): one tick in each of STARTUP, STARTUP2 and RECOVERING, then
    /// SECONDARY, still replaying the writes it missed, so its optime stays where it stopped
    /// for `sync_ticks` more ticks ("a member that rejoins ... catches up from the oplog of its
    /// sync source"). One that never finished its initial sync starts it again.
    fn restarted(&mut self, host: &str, was_up: bool) {
        if was_up || !self.is_up(host) {
            return;
        }
        let now = self.now;
        let sync = self.settings.sync_ticks;
        let id = self.nodes.get(host).and_then(|n| n.set);
        if let Some(rt) = id
            .and_then(|id| self.sets.get_mut(&id))
            .and_then(|s| s.runtime.get_mut(host))
        {
            rt.lost = None;
            rt.state = STARTUP;
            rt.restarted_at = Some(now);
            if rt.applied.1 < 0 {
                rt.synced_at = now + 1 + sync;
            }
        }
    }

    /// The member at `host` now runs on another volume (a new claim behind a NodePort the
    /// apiserver handed out again after a deleted set freed it): its mongod starts on an empty
    /// dbPath, in no set and with no users, whatever the node at that address held before. A
    /// set whose config still names `host` sees a member that answers its heartbeats with no
    /// (or another) config: down, for that set ([`World::recompute`]).
    pub fn new_volume(&mut self, host: &str) {
        let node = self.nodes.entry(host.to_owned()).or_default();
        node.set = None;
        node.local_users.clear();
        node.start_failure = None;
        self.recompute();
    }

    /// Make `host` stop answering anything but `hello`/`isMaster` (as a mongod whose storage
    /// hangs: the connection stays open, commands get no reply, `maxTimeMS` does not help), or
    /// answer again.
    pub fn stall(&mut self, host: &str, stalled: bool) {
        self.nodes.entry(host.to_owned()).or_default().stalled = stalled;
        self.recompute();
    }

    /// Run `host` on another mongod version (`"4.4.1"`: what its image tag says). A binary
    /// runs only with its series' FCV or the one before: on data of a set whose FCV is older
    /// (two majors behind) or newer, mongod refuses to start ("UPGRADE PROBLEM: Found an
    /// invalid featureCompatibilityVersion document", exit 62: `feature_compatibility_version.cpp`,
    /// `MustDowngrade`), and the node stays down until it runs a binary that fits.
    pub fn set_version(&mut self, host: &str, version: &str) {
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let v = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        let fcv = self.set_of(host).map(|s| s.fcv);
        let was = self.is_up(host);
        let node = self.nodes.entry(host.to_owned()).or_default();
        node.version = Some(v);
        node.start_failure = fcv.filter(|f| !runs_with(v, *f)).map(|(a, b)| {
            format!(
                "UPGRADE PROBLEM: Found an invalid featureCompatibilityVersion document (version {a}.{b}); mongod {}.{}.{} runs with featureCompatibilityVersion {} or the one before",
                v.0, v.1, v.2, series_name(series(v))
            )
        });
        self.restarted(host, was);
        self.recompute();
    }

    /// Why `host`'s mongod refuses to start, when it does ([`World::set_version`]).
    pub fn start_failure(&self, host: &str) -> Option<&str> {
        self.nodes.get(host)?.start_failure.as_deref()
    }

    fn version_of(&self, host: &str) -> (u32, u32, u32) {
        self.nodes
            .get(host)
            .and_then(|n| n.version)
            .unwrap_or((7, 0, 0))
    }

    /// Changes whenever the world may have moved on (time, members up or down, configs):
    /// when a waiting command should be looked at again ([`World::resume`]).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.0.subscribe()
    }

    /// The simulator's clock: ticks since it started.
    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn is_up(&self, host: &str) -> bool {
        self.nodes
            .get(host)
            .is_some_and(|n| n.up && n.start_failure.is_none())
    }

    /// Whether `host` is up for `set`: running and holding its config ([`Node::serves`]).
    fn member_up(&self, set: &ReplSet, host: &str) -> bool {
        self.nodes.get(host).is_some_and(|n| n.serves(set.id))
    }

    /// The set a node belongs to.
    pub fn set_of(&self, host: &str) -> Option<&ReplSet> {
        let id = self.nodes.get(host)?.set?;
        self.sets.get(&id)
    }

    /// The (first) set named `name`.
    pub fn set(&self, name: &str) -> Option<&ReplSet> {
        self.sets.values().find(|s| s.config.name == name)
    }

    /// Every set named `name` (more than one means a second initiate happened).
    pub fn sets_named(&self, name: &str) -> Vec<&ReplSet> {
        self.sets
            .values()
            .filter(|s| s.config.name == name)
            .collect()
    }

    /// Advance time one tick: initial syncs finish, elections happen.
    pub fn tick(&mut self) {
        self.now += 1;
        let now = self.now;
        let sync = self.settings.sync_ticks;
        for set in self.sets.values_mut() {
            // What an initial sync copies: the newest optime a member that is up holds.
            let newest = set
                .config
                .members
                .iter()
                .filter(|m| {
                    !m.arbiter_only && self.nodes.get(&m.host).is_some_and(|n| n.serves(set.id))
                })
                .filter_map(|m| set.runtime.get(&m.host))
                .filter(|r| matches!(r.state, PRIMARY | SECONDARY))
                .map(|r| r.applied)
                .max_by_key(|(tick, term)| (*term, *tick));
            for m in &set.config.members {
                let up = self.nodes.get(&m.host).is_some_and(|n| n.serves(set.id));
                let Some(rt) = set.runtime.get_mut(&m.host).filter(|_| up) else {
                    continue;
                };
                if let Some(r) = rt.restarted_at {
                    let initial_sync = rt.applied.1 < 0;
                    rt.state = match now - r {
                        0 => STARTUP,
                        1 => STARTUP2,
                        _ if initial_sync => STARTUP2,
                        _ if m.arbiter_only => ARBITER,
                        2 => RECOVERING,
                        _ => SECONDARY,
                    };
                    if initial_sync && rt.state == STARTUP2 {
                        rt.restarted_at = None;
                    } else if matches!(rt.state, SECONDARY | ARBITER) {
                        rt.restarted_at = None;
                        rt.catch_up_at = now + sync;
                    }
                } else if rt.state == STARTUP2 && now >= rt.synced_at {
                    rt.state = if m.arbiter_only { ARBITER } else { SECONDARY };
                    if !m.arbiter_only
                        && let Some(n) = newest
                    {
                        rt.applied = rt.applied.max(n);
                    }
                }
            }
            // The primary writes every tick (mongod's primary writes a no-op at least every
            // 10 s even without clients); a data-bearing SECONDARY that is up applies every
            // write at once, unless it is still replaying what it missed while it was down.
            if let Some(p) = set.primary.clone() {
                let write = (now, set.term);
                for m in set.config.members.iter().filter(|m| !m.arbiter_only) {
                    let up = self.nodes.get(&m.host).is_some_and(|n| n.serves(set.id));
                    if let Some(rt) = set.runtime.get_mut(&m.host)
                        && up
                        && (m.host == p || (rt.state == SECONDARY && now >= rt.catch_up_at))
                    {
                        rt.applied = write;
                    }
                }
                // The majority commit point: the write-majority-th newest write the
                // data-bearing voters hold (a member that is down keeps what it applied).
                let voters = set.config.voters().count();
                let write_majority = (voters / 2 + 1).min(set.config.writable_voters());
                let mut held: Vec<(u64, i64)> = set
                    .config
                    .voters()
                    .filter(|m| !m.arbiter_only)
                    .filter_map(|m| set.runtime.get(&m.host).map(|r| r.applied))
                    .filter(|(_, term)| *term >= 0)
                    .collect();
                held.sort_by_key(|(tick, term)| std::cmp::Reverse((*term, *tick)));
                if let Some(point) = write_majority
                    .checked_sub(1)
                    .and_then(|i| held.get(i).copied())
                    && newer(point, set.majority_commit)
                {
                    set.majority_commit = point;
                }
            }
            // 4.4+: once a newly added member finished its initial sync, the primary removes
            // its `newlyAdded` with a reconfig of its own (version + 1).
            if set.primary.is_some() {
                let synced: Vec<i32> = set
                    .config
                    .members
                    .iter()
                    .filter(|m| m.newly_added)
                    .filter(|m| {
                        set.runtime
                            .get(&m.host)
                            .is_some_and(|r| r.state == SECONDARY)
                    })
                    .map(|m| m.id)
                    .collect();
                if !synced.is_empty() {
                    for m in set.config.members.iter_mut() {
                        if synced.contains(&m.id) {
                            m.newly_added = false;
                        }
                    }
                    // The version is the client's number: at i64's limit it stays.
                    set.config.version = set.config.version.saturating_add(1);
                    set.committed = false;
                }
            }
        }
        self.recompute();
    }

    /// Failure detection and elections (manual, "Replica Set Elections"; server
    /// `topology_coordinator.cpp`, `replication_coordinator_impl_elect_v1.cpp`):
    /// * a member that stops answering is still reported as it was (a PRIMARY as PRIMARY, with
    ///   health 1) until the others' heartbeats mark it down ([`Timing::detected_at`]);
    /// * a primary that dies leaves the set without one until an electable member's election
    ///   timeout (`settings.electionTimeoutMillis` after it last heard from the primary) runs
    ///   out; the set then elects the caught-up electable SECONDARY with the highest priority,
    ///   given a majority of voters up to vote (STARTUP members do not vote); a failed election
    ///   is tried again one election timeout later. The random offset mongod adds (up to 15 %)
    ///   is left out, so the window is deterministic;
    /// * a set with a single electable voter elects it at once (mongod's single-node election);
    /// * a primary that no longer sees a majority of voters (counting the ones not marked down
    ///   yet), or is no longer electable, steps down;
    /// * a higher-priority caught-up member takes over from a lower-priority primary after
    ///   `(priorityRank + 1) × electionTimeout` (`repl_set_config.cpp`
    ///   `getPriorityTakeoverDelay`: priority takeover).
    fn recompute(&mut self) {
        self.changes.0.send_modify(|n| *n += 1);
        let now = self.now;
        for set in self.sets.values_mut() {
            // A member counts for its set only while its node holds that set's config.
            let id = set.id;
            let up = |h: &str| self.nodes.get(h).is_some_and(|n| n.serves(id));
            let silent = |h: &str| self.nodes.get(h).is_some_and(|n| n.silent);
            let timing = set.config.timing();
            for m in &set.config.members {
                let Some(rt) = set.runtime.get_mut(&m.host) else {
                    continue;
                };
                if up(&m.host) {
                    rt.lost = None;
                } else if rt.lost.is_none() {
                    rt.lost = Some(Lost {
                        at: now,
                        silent: silent(&m.host),
                    });
                    if set.primary.as_deref() == Some(m.host.as_str()) {
                        // It is gone; the others still think it is PRIMARY (its state stays)
                        // and call an election once their timeout runs out.
                        set.primary = None;
                        set.election_at = Some(now + timing.election);
                    }
                }
            }
            let voters: Vec<&Member> = set.config.voters().collect();
            let majority = voters.len() / 2 + 1;
            let reachable = voters.iter().filter(|m| up(&m.host)).count();
            if reachable >= majority {
                set.committed = true;
            }
            if let Some(p) = set.primary.clone() {
                let seen = voters
                    .iter()
                    .filter(|m| {
                        up(&m.host)
                            || set
                                .runtime
                                .get(&m.host)
                                .and_then(|r| r.lost)
                                .is_some_and(|l| now < timing.detected_at(l))
                    })
                    .count();
                let still =
                    seen >= majority && set.config.member(&p).is_some_and(Member::electable);
                if !still {
                    if let Some(rt) = set.runtime.get_mut(&p) {
                        rt.state = SECONDARY;
                    }
                    set.primary = None;
                    set.election_at = Some(now + timing.election);
                }
            }
            let candidates: Vec<Member> = set
                .config
                .members
                .iter()
                .filter(|m| m.electable() && up(&m.host))
                .filter(|m| {
                    set.runtime.get(&m.host).is_some_and(|rt| {
                        matches!(rt.state, SECONDARY | PRIMARY)
                            && now >= rt.barred_until
                            && now >= rt.catch_up_at
                    })
                })
                .cloned()
                .collect();
            // The election restriction: a voter grants its vote only to a candidate whose
            // last applied optime is at least as new as its own (server
            // `topology_coordinator.cpp`, `processReplSetRequestVotes`: "candidate's data is
            // staler than mine"); STARTUP members do not vote, an arbiter (no oplog) and the
            // candidate itself always do. So a member that missed majority-committed writes
            // cannot win: a majority of voters includes one that holds them.
            let applied = |h: &str| set.runtime.get(h).map_or((0, -1), |r| r.applied);
            let votes_for = |c: &Member| {
                let theirs = applied(&c.host);
                voters
                    .iter()
                    .filter(|m| up(&m.host))
                    .filter(|m| set.runtime.get(&m.host).is_some_and(|r| r.state != STARTUP))
                    .filter(|m| {
                        m.arbiter_only || m.host == c.host || !newer(applied(&m.host), theirs)
                    })
                    .count()
            };
            let best = candidates
                .iter()
                .filter(|c| votes_for(c) >= majority)
                .max_by(|a, b| {
                    a.priority
                        .total_cmp(&b.priority)
                        .then_with(|| b.id.cmp(&a.id))
                })
                .cloned();
            if set.primary.is_none() {
                set.takeover = None;
                let single = voters.len() == 1 && voters.iter().all(|m| m.electable());
                let at = if single {
                    now
                } else {
                    *set.election_at.get_or_insert(now + timing.election)
                };
                if now < at {
                    continue;
                }
                match best {
                    Some(best) => Self::elect(set, &best.host),
                    None => set.election_at = Some(now + timing.election),
                }
                continue;
            }
            // Priority takeover.
            let current = set
                .primary
                .as_ref()
                .and_then(|p| set.config.member(p))
                .map_or(0.0, |m| m.priority);
            match best.filter(|b| b.priority > current) {
                None => set.takeover = None,
                Some(best) => {
                    let rank = set
                        .config
                        .members
                        .iter()
                        .filter(|m| m.priority > best.priority)
                        .count() as u64;
                    let at = match &set.takeover {
                        Some((h, at)) if *h == best.host => *at,
                        _ => now + (rank + 1) * timing.election,
                    };
                    set.takeover = Some((best.host.clone(), at));
                    if now >= at {
                        if let Some(old) = set.primary.take()
                            && let Some(rt) = set.runtime.get_mut(&old)
                        {
                            rt.state = SECONDARY;
                        }
                        Self::elect(set, &best.host);
                    }
                }
            }
        }
        // Oplog commitment: the primary's writes of this term reach a write majority
        // (`writeMajorityCount`: a voting majority, but no more than the data-bearing voters).
        for set in self.sets.values_mut() {
            if set.primary.is_none() {
                continue;
            }
            let voters = set.config.voters().count();
            let write_majority = (voters / 2 + 1).min(set.config.writable_voters());
            let holding = set
                .config
                .voters()
                .filter(|m| {
                    !m.arbiter_only && self.nodes.get(&m.host).is_some_and(|n| n.serves(set.id))
                })
                .filter(|m| {
                    set.runtime
                        .get(&m.host)
                        .is_some_and(|r| matches!(r.state, PRIMARY | SECONDARY))
                })
                .count();
            if holding >= write_majority {
                set.oplog_committed_term = set.term;
            }
        }
    }

    /// `host` wins an election: a new term, it is PRIMARY. One that lacks the majority commit
    /// point rolls majority-acknowledged writes back ([`ReplSet::committed_writes_lost`]).
    fn elect(set: &mut ReplSet, host: &str) {
        set.term += 1;
        if let Some(rt) = set.runtime.get_mut(host) {
            rt.state = PRIMARY;
            if newer(set.majority_commit, rt.applied) {
                set.committed_writes_lost = set.committed_writes_lost.saturating_add(1);
            }
        }
        set.primary = Some(host.to_owned());
        set.election_at = None;
        set.takeover = None;
    }

    /// Answer one command sent to `node` on a connection with `session`. A command that mongod
    /// would keep waiting ([`World::begin`] answers [`Answer::Later`]) is answered as if its
    /// `maxTimeMS` ran out at once; [`World::begin`], [`World::resume`] and [`World::expire`]
    /// let a caller wait instead (the network side does).
    pub fn handle(&mut self, node: &str, session: &mut Session, cmd: &Document) -> Document {
        match self.begin(node, session, cmd) {
            Answer::Now(d) => d,
            Answer::Later(mut wait) => match self.resume(&mut wait) {
                Some(d) => d,
                None => self.expire(wait),
            },
            // Not a server reply: what a client would end with (HostUnreachable, 6).
            Answer::Silent => {
                doc! {"ok": 0.0, "errmsg": format!("no answer from {node}"), "code": 6, "codeName": "HostUnreachable"}
            }
        }
    }

    /// Start answering one command: at once, or (a non-forced `replSetReconfig` before the
    /// current config is committed, or before its new config is) later.
    pub fn begin(&mut self, node: &str, session: &mut Session, cmd: &Document) -> Answer {
        let name = cmd.keys().next().cloned().unwrap_or_default();
        if session.client.is_none() && matches!(name.as_str(), "hello" | "isMaster" | "ismaster") {
            session.client = cmd
                .get_document("client")
                .and_then(|c| c.get_document("application"))
                .and_then(|a| a.get_str("name"))
                .ok()
                .map(str::to_owned);
        }
        if !self.answers(node, session) {
            return Answer::Silent;
        }
        let stalled = self.nodes.get(node).is_some_and(|n| n.stalled);
        if stalled && !matches!(name.as_str(), "hello" | "isMaster" | "ismaster") {
            return Answer::Later(Wait {
                node: node.to_owned(),
                cmd: cmd.clone(),
                phase: Phase::Stalled,
            });
        }
        if let Err(e) = self.authorize(node, session, &name) {
            return Answer::Now(e.to_document());
        }
        let waits = (name == "replSetReconfig" && !truthy(cmd, "force"))
            || name == "setFeatureCompatibilityVersion";
        if waits {
            let mut wait = Wait {
                node: node.to_owned(),
                cmd: cmd.clone(),
                phase: Phase::CurrentConfig,
            };
            return match self.resume(&mut wait) {
                Some(d) => Answer::Now(d),
                None => Answer::Later(wait),
            };
        }
        Answer::Now(reply(self.dispatch(node, session, &name, cmd)))
    }

    /// Look again at a waiting command (after time moved): its answer once it has one.
    pub fn resume(&mut self, wait: &mut Wait) -> Option<Document> {
        match wait.phase {
            Phase::CurrentConfig if wait.cmd.contains_key("setFeatureCompatibilityVersion") => {
                let Some(ready) = self
                    .set_of(&wait.node)
                    .filter(|s| s.primary.as_deref() == Some(wait.node.as_str()))
                    .map(ReplSet::ready_for_reconfig)
                else {
                    return Some(err(NOT_WRITABLE_PRIMARY, "not primary").to_document());
                };
                if !ready {
                    return None;
                }
                Some(reply(self.set_fcv(&wait.node.clone(), &wait.cmd.clone())))
            }
            Phase::CurrentConfig => {
                // Not the primary (any more): no waiting, an error.
                let set = match self.reconfig_target(&wait.node) {
                    Ok(set) => set,
                    Err(e) => return Some(e.to_document()),
                };
                // `set` is the node's own set; were it gone, `reconfig` would answer the error.
                if self.sets.get(&set).is_some_and(|s| !s.ready_for_reconfig()) {
                    return None;
                }
                match self.reconfig(&wait.node.clone(), &wait.cmd.clone()) {
                    Err(e) => Some(e.to_document()),
                    Ok((set, version)) => {
                        wait.phase = Phase::NewConfig { set, version };
                        self.resume(wait)
                    }
                }
            }
            // "Reconfiguration Waits Until a Majority of Members Install the Replica
            // Configuration" (4.4+).
            Phase::NewConfig { set, version } => {
                let s = self.sets.get(&set)?;
                (s.config.version != version || s.committed).then(|| reply(Ok(Document::new())))
            }
            Phase::Stalled => None,
        }
    }

    /// A waiting command's `maxTimeMS` ran out: waiting for the current config's commitment
    /// ends in `CurrentConfigNotCommittedYet` (308), waiting for the new config's in
    /// `MaxTimeMSExpired` (50) with the new config installed (replication_coordinator_impl.cpp,
    /// jstests/replsets/reconfig_waits_for_a_majority_to_replicate_config.js).
    pub fn expire(&mut self, wait: Wait) -> Document {
        match wait.phase {
            Phase::CurrentConfig => {
                let (version, term) = self
                    .set_of(&wait.node)
                    .map(|s| (s.config.version, s.term))
                    .unwrap_or_default();
                err(
                    CURRENT_CONFIG_NOT_COMMITTED_YET,
                    format!(
                        "Current config is not yet committed: {{version: {version}, term: {term}}} :: caused by :: operation exceeded time limit"
                    ),
                )
                .to_document()
            }
            Phase::NewConfig { .. } | Phase::Stalled => {
                err(MAX_TIME_MS_EXPIRED, "operation exceeded time limit").to_document()
            }
        }
    }

    /// The users `node` authenticates against: its set's (replicated to every data-bearing
    /// member), none on an arbiter (it holds no data: "Arbiter" page, Authentication), and its
    /// own data's users when it is in no set.
    fn users_of(&self, node: &str) -> Option<&BTreeMap<String, User>> {
        match self.set_of(node) {
            Some(s) if s.config.member(node).is_some_and(|m| m.arbiter_only) => None,
            Some(s) => Some(&s.users),
            None => self.nodes.get(node).map(|n| &n.local_users),
        }
    }

    /// Access control with the localhost exception (MongoDB manual, "Localhost Exception"):
    /// only a connection over the member's own localhost interface (in its pod), only while the
    /// node has no user, and only to create the first user or role or to initiate the set
    /// (narrowed in 2.7.1, SERVER-12621; `replSetGetConfig` and the rest need a login). It closes
    /// as soon as a user exists, even for connections opened before.
    fn authorize(&self, node: &str, session: &Session, name: &str) -> Result<(), CommandError> {
        const OPEN: &[&str] = &[
            "hello",
            "isMaster",
            "ismaster",
            "ping",
            "buildInfo",
            "buildinfo",
            "saslStart",
            "saslContinue",
            "endSessions",
            "logout",
        ];
        if OPEN.contains(&name) {
            return Ok(());
        }
        const LOCALHOST_EXCEPTION: &[&str] = &["createUser", "createRole", "replSetInitiate"];
        let users = self.users_of(node);
        if users.is_none_or(BTreeMap::is_empty)
            && session.in_pod
            && LOCALHOST_EXCEPTION.contains(&name)
        {
            return Ok(());
        }
        let deny = || {
            err(
                UNAUTHORIZED,
                format!("Command {name} requires authentication"),
            )
        };
        let (db, user) = session.user.as_ref().ok_or_else(deny)?;
        let user = users
            .and_then(|u| u.get(&user_key(db, user)))
            .ok_or_else(deny)?;
        let allowed = user.roles.iter().any(|(role, _)| match role.as_str() {
            "root" => true,
            // clusterAdmin includes clusterManager (setDefaultRWConcern,
            // setFeatureCompatibilityVersion: role_graph_builtin_roles.cpp).
            "clusterAdmin" => {
                name.starts_with("replSet")
                    || matches!(
                        name,
                        "serverStatus"
                            | "setDefaultRWConcern"
                            | "getDefaultRWConcern"
                            | "setFeatureCompatibilityVersion"
                            | "getParameter"
                    )
            }
            "clusterMonitor" => {
                matches!(
                    name,
                    "replSetGetStatus"
                        | "replSetGetConfig"
                        | "serverStatus"
                        | "getDefaultRWConcern"
                        | "getParameter"
                )
            }
            "userAdminAnyDatabase" | "userAdmin" => {
                matches!(name, "createUser" | "updateUser" | "usersInfo" | "dropUser")
            }
            _ => false,
        });
        if allowed {
            Ok(())
        } else {
            Err(err(
                UNAUTHORIZED,
                format!("not authorized on admin to execute command {{ {name} }}"),
            ))
        }
    }

    fn dispatch(&mut self, node: &str, session: &mut Session, name: &str, cmd: &Document) -> Reply {
        match name {
            // `hello` is new in 4.4.2 (and 4.2.10, 4.0.21); older servers only know `isMaster`.
            "hello" if self.version_of(node) < (4, 4, 2) => Err(err(
                COMMAND_NOT_FOUND,
                "no such command: 'hello'".to_owned(),
            )),
            "hello" | "isMaster" | "ismaster" => Ok(self.hello(node, session, name, cmd)),
            "ping" | "endSessions" | "logout" => Ok(Document::new()),
            "buildInfo" | "buildinfo" => {
                let (a, b, c) = self.version_of(node);
                Ok(
                    doc! {"version": format!("{a}.{b}.{c}"), "versionArray": [a as i32, b as i32, c as i32, 0]},
                )
            }
            "saslStart" => self.sasl_start(node, session, cmd),
            "saslContinue" => self.sasl_continue(session, cmd),
            "replSetInitiate" => self.initiate(node, cmd),
            "replSetGetConfig" => self.get_config(node, cmd),
            "replSetGetStatus" => self.get_status(node),
            // Forced (the others go through `begin`): no waiting.
            "replSetReconfig" => self.reconfig(node, cmd).map(|_| Document::new()),
            "setDefaultRWConcern" => self.set_default_rw_concern(node, cmd),
            "setFeatureCompatibilityVersion" => self.set_fcv(node, cmd),
            "getParameter" => self.get_parameter(node, cmd),
            "getDefaultRWConcern" => self.get_default_rw_concern(node),
            "replSetStepDown" => self.step_down(node, cmd),
            "createUser" => self.create_user(node, cmd),
            "updateUser" => self.update_user(node, cmd),
            "usersInfo" => self.users_info(node, cmd),
            "serverStatus" => Ok(doc! {"host": node, "process": "mongod"}),
            other => Err(err(
                COMMAND_NOT_FOUND,
                format!("no such command: '{other}'"),
            )),
        }
    }

    /// `hello` ("hello" reference page): replica-set fields only once the node has a config;
    /// `hosts` lists electable members, `passives` priority-0 ones, `arbiters` arbiters.
    fn hello(&self, node: &str, session: &Session, name: &str, cmd: &Document) -> Document {
        let writable_field = if name == "hello" {
            "isWritablePrimary"
        } else {
            "ismaster"
        };
        let mut d = doc! {
            "topologyVersion_omitted": Bson::Null,
            "maxBsonObjectSize": 16_777_216,
            "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000,
            "localTime": bson::DateTime::now(),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": session.connection_id,
            "minWireVersion": 0,
            "maxWireVersion": 21,
            "readOnly": false,
        };
        d.remove("topologyVersion_omitted");
        if cmd.contains_key("helloOk") {
            d.insert("helloOk", true);
        }
        if let Ok(who) = cmd.get_str("saslSupportedMechs")
            && let Some((db, user)) = who.split_once('.')
            && self
                .users_of(node)
                .is_some_and(|u| u.contains_key(&user_key(db, user)))
        {
            d.insert("saslSupportedMechs", vec!["SCRAM-SHA-256"]);
        }
        match self.set_of(node) {
            None => {
                d.insert(writable_field, false);
                d.insert("secondary", false);
                d.insert("isreplicaset", true);
                d.insert("info", "Does not have a valid replica set config");
            }
            Some(set) => {
                let state = self
                    .cut_off_view(set, node)
                    .filter(|_| self.cut_off(node))
                    .unwrap_or_else(|| set.runtime.get(node).map_or(STARTUP2, |r| r.state));
                let list = |f: &dyn Fn(&Member) -> bool| -> Vec<String> {
                    set.config
                        .members
                        .iter()
                        .filter(|m| f(m))
                        .map(|m| m.host.clone())
                        .collect()
                };
                d.insert(writable_field, state == PRIMARY);
                d.insert("secondary", state == SECONDARY);
                d.insert("setName", &set.config.name);
                d.insert("setVersion", set.config.version);
                d.insert(
                    "hosts",
                    list(&|m| !m.arbiter_only && !m.hidden && m.priority > 0.0),
                );
                let passives = list(&|m| !m.arbiter_only && !m.hidden && m.priority == 0.0);
                if !passives.is_empty() {
                    d.insert("passives", passives);
                }
                let arbiters = list(&|m| m.arbiter_only);
                if !arbiters.is_empty() {
                    d.insert("arbiters", arbiters);
                }
                if let Some(p) = self.known_primary_of(set, node) {
                    d.insert("primary", p);
                }
                if state == PRIMARY {
                    let mut bytes = [0u8; 12];
                    bytes[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
                    bytes[4..].copy_from_slice(&(set.term as u64).to_be_bytes());
                    d.insert("electionId", ObjectId::from_bytes(bytes));
                }
                if state == ARBITER {
                    d.insert("arbiterOnly", true);
                }
                d.insert("me", node);
            }
        }
        d
    }

    fn sasl_start(&mut self, node: &str, session: &mut Session, cmd: &Document) -> Reply {
        let mechanism = cmd.get_str("mechanism").unwrap_or_default();
        if mechanism != "SCRAM-SHA-256" {
            return Err(err(
                MECHANISM_UNAVAILABLE,
                format!("Received authentication for mechanism {mechanism} which is not enabled"),
            ));
        }
        let db = cmd.get_str("$db").unwrap_or("admin").to_owned();
        let payload = cmd
            .get_binary_generic("payload")
            .map_err(|_| err(BAD_VALUE, "saslStart: payload must be binary"))?;
        let failed = || err(AUTHENTICATION_FAILED, "Authentication failed.");
        let user = scram::client_first_user(payload).map_err(|_| failed())?;
        let credential = self
            .users_of(node)
            .and_then(|u| u.get(&user_key(&db, &user)))
            .map(|u| u.credential.clone())
            .ok_or_else(failed)?;
        let (conv, reply) = scram::server_first(payload, &credential).map_err(|_| failed())?;
        session.conversation = Some((db, conv));
        Ok(doc! {
            "conversationId": 1,
            "done": false,
            "payload": bson::Binary { subtype: BinarySubtype::Generic, bytes: reply },
        })
    }

    fn sasl_continue(&mut self, session: &mut Session, cmd: &Document) -> Reply {
        let failed = || err(AUTHENTICATION_FAILED, "Authentication failed.");
        let (db, conv) = session.conversation.take().ok_or_else(failed)?;
        let payload = cmd.get_binary_generic("payload").map_err(|_| failed())?;
        let reply = scram::server_final(&conv, payload).map_err(|_| failed())?;
        session.user = Some((db, conv.user.clone()));
        Ok(doc! {
            "conversationId": 1,
            "done": true,
            "payload": bson::Binary { subtype: BinarySubtype::Generic, bytes: reply },
        })
    }

    /// `replSetInitiate`: refused when this node already has a config (`AlreadyInitialized`);
    /// the config must name this node, and every proposed member must answer and be in no set
    /// yet (the quorum check of initiate needs all of them). Only the proposed members are
    /// asked: mongod cannot know about a set of the same name elsewhere, so a second initiate
    /// next to an existing set succeeds and makes a second set (the agent's `hello` guard is
    /// what prevents it).
    fn initiate(&mut self, node: &str, cmd: &Document) -> Reply {
        if self.set_of(node).is_some() {
            return Err(err(ALREADY_INITIALIZED, "already initialized"));
        }
        let d = cmd.get_document("replSetInitiate").map_err(|_| {
            err(
                INVALID_REPLICA_SET_CONFIG,
                "replSetInitiate needs a config document",
            )
        })?;
        let mut config = parse_config(d)?;
        if config.member(node).is_none() {
            return Err(err(
                INVALID_REPLICA_SET_CONFIG,
                format!(
                    "No host described in new configuration with {{version: {}, term: 0}} for replica set {} maps to this node",
                    config.version, config.name
                ),
            ));
        }
        for m in &config.members {
            let n = self.nodes.get(&m.host);
            if !n.is_some_and(|n| n.up) {
                return Err(err(
                    NODE_NOT_FOUND,
                    format!(
                        "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: {} failed with Connection refused",
                        m.host
                    ),
                ));
            }
            if n.is_some_and(|n| n.set.is_some()) {
                return Err(err(
                    NODE_NOT_FOUND,
                    format!(
                        "replSetInitiate quorum check failed because not all proposed set members responded affirmatively: {} has data already, cannot initiate set",
                        m.host
                    ),
                ));
            }
        }
        config.version = 1;
        let id = self.next_set_id;
        self.next_set_id += 1;
        let mut runtime = BTreeMap::new();
        for m in &config.members {
            let state = if m.host == node {
                if m.arbiter_only { ARBITER } else { SECONDARY }
            } else {
                STARTUP2
            };
            runtime.insert(
                m.host.clone(),
                Runtime::new(
                    state,
                    self.now + self.settings.sync_ticks,
                    if state == STARTUP2 {
                        (0, -1)
                    } else {
                        (self.now, 0)
                    },
                ),
            );
            if let Some(n) = self.nodes.get_mut(&m.host) {
                n.set = Some(id);
            }
        }
        self.sets.insert(
            id,
            ReplSet {
                id,
                config,
                term: 0,
                primary: None,
                committed: true,
                oplog_committed_term: 0,
                majority_commit: (0, -1),
                committed_writes_lost: 0,
                config_forced: false,
                forced_reconfigs: 0,
                default_write_concern: None,
                fcv: series(self.version_of(node)),
                election_at: None,
                takeover: None,
                runtime,
                users: BTreeMap::new(),
            },
        );
        self.recompute();
        Ok(Document::new())
    }

    fn config_document(set: &ReplSet) -> Document {
        doc! {
            "_id": &set.config.name,
            "version": set.config.version as i32,
            "term": set.term,
            "protocolVersion": 1i64,
            "writeConcernMajorityJournalDefault": true,
            "members": set.config.members.iter().map(|m| Bson::Document(m.to_document())).collect::<Vec<_>>(),
            "settings": set.config.settings.clone(),
        }
    }

    fn need_set(&self, node: &str) -> Result<&ReplSet, CommandError> {
        self.set_of(node)
            .ok_or_else(|| err(NOT_YET_INITIALIZED, "no replset config has been received"))
    }

    /// `replSetGetConfig`; `commitmentStatus: true` is answered on the primary only.
    fn get_config(&self, node: &str, cmd: &Document) -> Reply {
        let set = self.need_set(node)?;
        let mut d = doc! {"config": Self::config_document(set)};
        if truthy(cmd, "commitmentStatus") {
            if set.primary.as_deref() != Some(node) {
                return Err(err(
                    NOT_WRITABLE_PRIMARY,
                    "commitmentStatus is only supported on primary.",
                ));
            }
            d.insert("commitmentStatus", set.ready_for_reconfig());
        }
        Ok(d)
    }

    /// The primary `node` knows of: the set's (see [`ReplSet::known_primary`]), or on the
    /// cut-off side of a split the one it still hears of, itself until it steps down.
    fn known_primary_of(&self, set: &ReplSet, node: &str) -> Option<String> {
        if self.cut_off(node) {
            return set
                .config
                .members
                .iter()
                .find(|m| self.cut_off_view(set, &m.host) == Some(PRIMARY))
                .map(|m| m.host.clone());
        }
        set.known_primary(self.now).map(str::to_owned)
    }

    fn get_status(&self, node: &str) -> Reply {
        let set = self.need_set(node)?;
        let now = self.now;
        let cut_off = self.cut_off(node);
        let state_of = |h: &str| {
            if cut_off && let Some(s) = self.cut_off_view(set, h) {
                s
            } else if h == node || self.member_up(set, h) {
                set.runtime.get(h).map_or(STARTUP2, |r| r.state)
            } else {
                set.reported(h, now)
            }
        };
        let known_primary = self.known_primary_of(set, node);
        let voters = set.config.voters().count() as i32;
        let members: Vec<Bson> = set
            .config
            .members
            .iter()
            .map(|m| {
                let state = state_of(&m.host);
                let sync = match (&known_primary, state) {
                    (Some(p), SECONDARY | STARTUP2 | RECOVERING) if *p != m.host => p.clone(),
                    _ => String::new(),
                };
                let mut d = doc! {
                    "_id": m.id,
                    "name": &m.host,
                    "health": if state == DOWN { 0.0 } else { 1.0 },
                    "state": state,
                    "stateStr": state_str(state),
                    "syncSourceHost": sync,
                    "configVersion": set.config.version as i32,
                };
                if !m.arbiter_only {
                    let applied = set.runtime.get(&m.host).map(|r| r.applied);
                    let (optime, date) = optime_fields(applied.filter(|_| state != DOWN));
                    d.insert("optime", optime);
                    d.insert("optimeDate", date);
                }
                if m.host == node {
                    d.insert("self", true);
                }
                Bson::Document(d)
            })
            .collect();
        Ok(doc! {
            "set": &set.config.name,
            "date": bson::DateTime::now(),
            "myState": state_of(node),
            "term": set.term,
            "heartbeatIntervalMillis": number(&set.config.settings, "heartbeatIntervalMillis").map_or(2000, |v| v as i64),
            "majorityVoteCount": voters / 2 + 1,
            "writeMajorityCount": (voters / 2 + 1).min(set.config.writable_voters() as i32),
            "votingMembersCount": voters,
            "members": members,
        })
    }

    /// Checks of a non-forced `replSetReconfig` that happen before it waits: it runs on the
    /// primary of an initiated set.
    fn reconfig_target(&self, node: &str) -> Result<u64, CommandError> {
        let set = self
            .set_of(node)
            .ok_or_else(|| err(NOT_YET_INITIALIZED, "no replset config has been received"))?;
        if set.primary.as_deref() != Some(node) {
            return Err(err(
                NOT_WRITABLE_PRIMARY,
                "New config is rejected :: caused by :: replSetReconfig should only be run on a writable PRIMARY. Current state SECONDARY; use the \"force\" argument to override",
            ));
        }
        Ok(set.id)
    }

    /// `replSetReconfig` (4.4+ "safe reconfig"). Without `force`, once the current config is
    /// committed ([`ReplSet::ready_for_reconfig`]; the caller waits for that, see
    /// [`World::begin`]): the version must grow, a host keeps its `_id`, `arbiterOnly` and
    /// `buildIndexes` cannot change (repl_set_config_checks.cpp), at most one voting member may be
    /// added or removed ("Reconfiguration Can Add or Remove No More than One Voting Member at a
    /// Time"), the primary must stay electable, on 5.0+ the implicit default write concern must
    /// not change unless a cluster-wide one is set and a PSA set is reached in two steps, and a
    /// majority of the new config's voters must answer (quorum check). With `force`: on any
    /// member of the set, only the immutable fields are checked, and the version jumps by a large
    /// random amount as MongoDB does. Returns the set and the installed version.
    fn reconfig(&mut self, node: &str, cmd: &Document) -> Result<(u64, i64), CommandError> {
        let force = truthy(cmd, "force");
        let d = cmd.get_document("replSetReconfig").map_err(|_| {
            err(
                INVALID_REPLICA_SET_CONFIG,
                "replSetReconfig needs a config document",
            )
        })?;
        let set = self
            .set_of(node)
            .ok_or_else(|| err(NOT_YET_INITIALIZED, "no replset config has been received"))?;
        let set_id = set.id;
        let mut new = parse_config(d)?;
        let version = self.version_of(node);
        if new.name != set.config.name {
            return Err(err(
                INVALID_REPLICA_SET_CONFIG,
                format!(
                    "Attempting to reconfigure a replica set with name {}, but command line reports {}; rejecting",
                    new.name, set.config.name
                ),
            ));
        }
        if new.member(node).is_none() {
            return Err(err(
                NODE_NOT_FOUND,
                format!(
                    "No host described in new configuration with {{version: {}}} for replica set {} maps to this node",
                    new.version, new.name
                ),
            ));
        }
        Self::check_immutable_fields(&set.config, &new)?;
        if force {
            new.version = set
                .config
                .version
                .saturating_add(10_000 + i64::from(rand::random::<u16>()));
        } else {
            self.check_safe_reconfig(node, version, set, &new)?;
            // 4.4+: a member that is still `newlyAdded` stays so (the client cannot send the
            // field); a new member with a vote becomes `newlyAdded` until its initial sync is
            // done (arbiters have none).
            if version >= (4, 4, 0) {
                for m in &mut new.members {
                    let old = set.config.member_by_id(m.id);
                    m.newly_added =
                        m.votes > 0 && !m.arbiter_only && old.is_none_or(|o| o.newly_added);
                }
            }
        }
        let installed = new.version;
        self.apply_config(set_id, new, force);
        Ok((set_id, installed))
    }

    /// `arbiterOnly` and `buildIndexes` of a member (by `_id`) never change: "to make this
    /// change, remove then re-add the member" (repl_set_config_checks.cpp).
    fn check_immutable_fields(old: &Config, new: &Config) -> Result<(), CommandError> {
        for m in &new.members {
            let Some(o) = old.member_by_id(m.id) else {
                continue;
            };
            for (field, was, is) in [
                ("arbiterOnly", o.arbiter_only, m.arbiter_only),
                ("buildIndexes", o.build_indexes, m.build_indexes),
            ] {
                if was != is {
                    return Err(err(
                        NEW_CONFIG_INCOMPATIBLE,
                        format!(
                            "New and old configurations differ in the setting of the {field} field for member {}; to make this change, remove then re-add the member",
                            m.host
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_safe_reconfig(
        &self,
        node: &str,
        version: (u32, u32, u32),
        set: &ReplSet,
        new: &Config,
    ) -> Result<(), CommandError> {
        if new.version <= set.config.version {
            return Err(err(
                NEW_CONFIG_INCOMPATIBLE,
                format!(
                    "New replica set configuration version must be greater than old, but {} is not greater than {} for replica set {}",
                    new.version, set.config.version, new.name
                ),
            ));
        }
        for m in &new.members {
            if let Some(old) = set.config.member(&m.host)
                && old.id != m.id
            {
                return Err(err(
                    NEW_CONFIG_INCOMPATIBLE,
                    format!(
                        "New and old configurations both have members with host of {} but in the new configuration the _id field is {} and in the old configuration it is {} for replica set {}",
                        m.host, m.id, old.id, new.name
                    ),
                ));
            }
        }
        // By `_id`: a member that keeps its `_id` keeps being the same voter or non-voter.
        let was_voter = |id: i32| set.config.member_by_id(id).is_some_and(Member::is_voter);
        let is_voter = |id: i32| new.member_by_id(id).is_some_and(|m| m.votes > 0);
        let mut ids: Vec<i32> = set.config.members.iter().map(|m| m.id).collect();
        ids.extend(new.members.iter().map(|m| m.id));
        ids.sort_unstable();
        ids.dedup();
        if ids
            .iter()
            .filter(|id| was_voter(**id) != is_voter(**id))
            .count()
            > 1
        {
            return Err(err(
                NEW_CONFIG_INCOMPATIBLE,
                "Non-force replica set reconfig can only add or remove at most 1 voting member.",
            ));
        }
        if !new.member(node).is_some_and(Member::electable) {
            return Err(err(
                NEW_CONFIG_INCOMPATIBLE,
                format!(
                    "This node, {node}, is not electable under the new configuration with {{version: {}}} for replica set {}",
                    new.version, new.name
                ),
            ));
        }
        if version >= (5, 0, 0) {
            // replication_coordinator_impl.cpp (5.0+): the implicit default write concern
            // (`isImplicitDefaultWriteConcernMajority`) may change only under a cluster-wide one.
            if set.default_write_concern.is_none()
                && set.config.implicit_default_is_majority() != new.implicit_default_is_majority()
            {
                return Err(err(
                    NEW_CONFIG_INCOMPATIBLE,
                    "Reconfig attempted to install a config that would change the implicit default write concern. Use the setDefaultRWConcern command to set a cluster-wide write concern and try the reconfig again.",
                ));
            }
            // 5.0+ ("Modify a PSA Replica Set Safely", rs.reconfigForPSASet): from one writable
            // voter to a PSA set, the secondary gets its vote with priority 0 first.
            let secondary_electable = new
                .members
                .iter()
                .any(|m| m.host != node && !m.arbiter_only && m.electable());
            if new.is_psa() && set.config.writable_voters() == 1 && secondary_electable {
                return Err(err(
                    NEW_CONFIG_INCOMPATIBLE,
                    "Rejecting reconfig where the new config has a PSA topology and the secondary is electable, but the old config contains only one writable node. Refer to https://docs.mongodb.com/manual/reference/method/rs.reconfigForPSASet/ for next steps on reconfiguring a PSA set.",
                ));
            }
        }
        let voters: Vec<&Member> = new.members.iter().filter(|m| m.votes > 0).collect();
        let responded: Vec<&str> = voters
            .iter()
            .filter(|m| self.is_up(&m.host))
            .map(|m| m.host.as_str())
            .collect();
        let required = voters.len() / 2 + 1;
        if responded.len() < required {
            return Err(err(
                NODE_NOT_FOUND,
                format!(
                    "Quorum check failed because not enough voting nodes responded; required {required} but only the following {} voting nodes responded: {}",
                    responded.len(),
                    responded.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn apply_config(&mut self, set_id: u64, new: Config, forced: bool) {
        let Some(set) = self.sets.get_mut(&set_id) else {
            return;
        };
        let removed: Vec<String> = set
            .config
            .members
            .iter()
            .filter(|m| new.member(&m.host).is_none())
            .map(|m| m.host.clone())
            .collect();
        for h in &removed {
            set.runtime.remove(h);
            let arbiter = set.config.member(h).is_some_and(|m| m.arbiter_only);
            if let Some(n) = self.nodes.get_mut(h) {
                n.set = None;
                // A removed data member keeps its data, users included.
                n.local_users = if arbiter {
                    BTreeMap::new()
                } else {
                    set.users.clone()
                };
            }
            if set.primary.as_deref() == Some(h.as_str()) {
                set.primary = None;
            }
        }
        for m in &new.members {
            if !set.runtime.contains_key(&m.host) {
                set.runtime.insert(
                    m.host.clone(),
                    Runtime::new(STARTUP2, self.now + self.settings.sync_ticks, (0, -1)),
                );
            }
            self.nodes.entry(m.host.clone()).or_default().set = Some(set_id);
        }
        set.config = new;
        set.committed = false;
        set.config_forced = forced;
        if forced {
            set.forced_reconfigs += 1;
        }
        self.recompute();
    }

    /// `replSetStepDown`: only on the primary; refused when no electable secondary is caught up
    /// unless `force`; the old primary may not stand for election for the step-down period.
    fn step_down(&mut self, node: &str, cmd: &Document) -> Reply {
        let now = self.now;
        let bar = self.settings.stepdown_ticks;
        let force = truthy(cmd, "force");
        let nodes = &self.nodes;
        let set_name = self
            .set_of(node)
            .map(|s| s.id)
            .ok_or_else(|| err(NOT_WRITABLE_PRIMARY, "not primary so can't step down"))?;
        let set = self
            .sets
            .get_mut(&set_name)
            .ok_or_else(|| err(NOT_WRITABLE_PRIMARY, "not primary so can't step down"))?;
        if set.primary.as_deref() != Some(node) {
            return Err(err(NOT_WRITABLE_PRIMARY, "not primary so can't step down"));
        }
        let electable = set.config.members.iter().any(|m| {
            m.host != node
                && m.electable()
                && nodes.get(&m.host).is_some_and(Node::running)
                && set
                    .runtime
                    .get(&m.host)
                    .is_some_and(|r| r.state == SECONDARY)
        });
        if !electable && !force {
            return Err(err(
                EXCEEDED_TIME_LIMIT,
                "No electable secondaries caught up as of now. Please use the replSetStepDown command with the argument {force: true} to force node to step down.",
            ));
        }
        if let Some(rt) = set.runtime.get_mut(node) {
            rt.state = SECONDARY;
            rt.barred_until = now + bar;
        }
        set.primary = None;
        // Election handoff (`enableElectionHandoff`, default true): the old primary asks an
        // electable caught-up secondary to stand at once (`replSetStepUp`), so the next tick has
        // a primary; without one (`force`), the secondaries wait out their election timeout.
        set.election_at = Some(if electable {
            now + 1
        } else {
            now + set.config.timing().election
        });
        self.recompute();
        Ok(Document::new())
    }

    /// `setDefaultRWConcern` (4.4+): a write on the primary; `w: 0` is refused; an empty
    /// `defaultWriteConcern` unsets it.
    fn set_default_rw_concern(&mut self, node: &str, cmd: &Document) -> Reply {
        if self.version_of(node) < (4, 4, 0) {
            return Err(err(
                COMMAND_NOT_FOUND,
                "no such command: 'setDefaultRWConcern'",
            ));
        }
        let wc = cmd.get_document("defaultWriteConcern").ok().cloned();
        if wc.is_none() && !cmd.contains_key("defaultReadConcern") {
            return Err(err(
                BAD_VALUE,
                "At least one of the \"defaultReadConcern\" or \"defaultWriteConcern\" fields must be present",
            ));
        }
        if let Some(w) = &wc
            && number(w, "w") == Some(0.0)
        {
            return Err(err(BAD_VALUE, "Default write concern mode cannot be w:0"));
        }
        let set = self.writable_set(node)?;
        if let Some(w) = wc {
            set.default_write_concern = (!w.is_empty()).then_some(w);
        }
        Ok(self.default_rw_concern(node))
    }

    /// `setFeatureCompatibilityVersion` ("setFeatureCompatibilityVersion", the upgrade pages): on
    /// the primary; to the primary's series or the one before, and only when every data-bearing
    /// member's binary runs with it (the upgrade pages' prerequisite, enforced here); 7.0+ wants
    /// `confirm: true`, which older servers do not know (an unknown field). Like a reconfig, it
    /// first waits for the current config's commitment (`waitForCurrentConfigCommitment`).
    fn set_fcv(&mut self, node: &str, cmd: &Document) -> Reply {
        let v = self.version_of(node);
        let confirm = cmd.contains_key("confirm");
        if v >= (7, 0, 0) && !truthy(cmd, "confirm") {
            return Err(err(
                ILLEGAL_OPERATION,
                "Once you have upgraded to 7.0, you will not be able to downgrade FCV and binary version without support assistance. Please re-run this command with 'confirm: true' to acknowledge this and continue with the FCV upgrade.",
            ));
        }
        if v < (7, 0, 0) && confirm {
            return Err(err(
                IDL_UNKNOWN_FIELD,
                "BSON field 'setFeatureCompatibilityVersion.confirm' is an unknown field.",
            ));
        }
        let target = cmd
            .get_str("setFeatureCompatibilityVersion")
            .ok()
            .and_then(|t| {
                let (a, b) = t.split_once('.')?;
                Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
            })
            .ok_or_else(|| {
                err(
                    BAD_VALUE,
                    "setFeatureCompatibilityVersion needs a version string",
                )
            })?;
        if !runs_with(v, target) {
            return Err(err(
                BAD_VALUE,
                format!(
                    "Invalid feature compatibility version value '{}'; this binary runs {} or the one before",
                    series_name(target),
                    series_name(series(v))
                ),
            ));
        }
        let set = self
            .set_of(node)
            .ok_or_else(|| err(NOT_WRITABLE_PRIMARY, "not primary"))?;
        let behind: Vec<String> = set
            .config
            .members
            .iter()
            .filter(|m| !m.arbiter_only && !runs_with(self.version_of(&m.host), target))
            .map(|m| m.host.clone())
            .collect();
        if !behind.is_empty() {
            return Err(err(
                ILLEGAL_OPERATION,
                format!(
                    "cannot set featureCompatibilityVersion {}: members {} run binaries that do not support it",
                    series_name(target),
                    behind.join(", ")
                ),
            ));
        }
        self.writable_set(node)?.fcv = target;
        Ok(Document::new())
    }

    /// `getParameter` (`featureCompatibilityVersion` only).
    fn get_parameter(&self, node: &str, cmd: &Document) -> Reply {
        let mut d = Document::new();
        if cmd.contains_key("featureCompatibilityVersion") {
            let set = self.need_set(node)?;
            d.insert(
                "featureCompatibilityVersion",
                doc! {"version": series_name(set.fcv)},
            );
        }
        Ok(d)
    }

    fn get_default_rw_concern(&self, node: &str) -> Reply {
        self.need_set(node)?;
        Ok(self.default_rw_concern(node))
    }

    /// `getDefaultRWConcern`'s answer: the cluster-wide write concern when one is set, and on
    /// 5.0+ the implicit one otherwise, with its source.
    fn default_rw_concern(&self, node: &str) -> Document {
        let Some(set) = self.set_of(node) else {
            return Document::new();
        };
        let mut d = doc! {"defaultReadConcern": {"level": "local"}};
        let five = self.version_of(node) >= (5, 0, 0);
        match &set.default_write_concern {
            Some(w) => {
                d.insert("defaultWriteConcern", w.clone());
                if five {
                    d.insert("defaultWriteConcernSource", "global");
                }
            }
            None if five => {
                let w = if set.config.implicit_default_is_majority() {
                    Bson::from("majority")
                } else {
                    Bson::from(1)
                };
                d.insert("defaultWriteConcern", doc! {"w": w, "wtimeout": 0});
                d.insert("defaultWriteConcernSource", "implicit");
            }
            None => {}
        }
        d
    }

    fn roles(cmd: &Document, db: &str) -> Vec<(String, String)> {
        cmd.get_array("roles")
            .map(|a| {
                a.iter()
                    .filter_map(|r| match r {
                        Bson::String(s) => Some((s.clone(), db.to_owned())),
                        Bson::Document(d) => Some((
                            d.get_str("role").ok()?.to_owned(),
                            d.get_str("db").unwrap_or(db).to_owned(),
                        )),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn writable_set(&mut self, node: &str) -> Result<&mut ReplSet, CommandError> {
        let name = self
            .set_of(node)
            .filter(|s| s.primary.as_deref() == Some(node))
            .map(|s| s.id)
            .ok_or_else(|| err(NOT_WRITABLE_PRIMARY, "not primary"))?;
        self.sets
            .get_mut(&name)
            .ok_or_else(|| err(NOT_WRITABLE_PRIMARY, "not primary"))
    }

    /// `createUser` (a write: primary only). The password is never echoed back.
    fn create_user(&mut self, node: &str, cmd: &Document) -> Reply {
        let db = cmd.get_str("$db").unwrap_or("admin").to_owned();
        let name = cmd
            .get_str("createUser")
            .map_err(|_| err(BAD_VALUE, "createUser must be a string"))?
            .to_owned();
        let pwd = cmd.get_str("pwd").map_err(|_| {
            err(
                BAD_VALUE,
                "Must provide a 'pwd' field for all user documents",
            )
        })?;
        let roles = Self::roles(cmd, &db);
        let set = self.writable_set(node)?;
        let key = user_key(&db, &name);
        if set.users.contains_key(&key) {
            return Err(err(
                USER_ALREADY_EXISTS,
                format!("User \"{name}@{db}\" already exists"),
            ));
        }
        set.users.insert(
            key,
            User {
                db,
                name,
                roles,
                credential: Credential::new(pwd),
            },
        );
        Ok(Document::new())
    }

    /// `updateUser`: new password and/or roles.
    fn update_user(&mut self, node: &str, cmd: &Document) -> Reply {
        let db = cmd.get_str("$db").unwrap_or("admin").to_owned();
        let name = cmd
            .get_str("updateUser")
            .map_err(|_| err(BAD_VALUE, "updateUser must be a string"))?
            .to_owned();
        let roles = cmd.contains_key("roles").then(|| Self::roles(cmd, &db));
        let pwd = cmd.get_str("pwd").ok().map(str::to_owned);
        let set = self.writable_set(node)?;
        let user = set
            .users
            .get_mut(&user_key(&db, &name))
            .ok_or_else(|| err(USER_NOT_FOUND, format!("User {name}@{db} not found")))?;
        if let Some(pwd) = pwd {
            user.credential = Credential::new(&pwd);
        }
        if let Some(roles) = roles {
            user.roles = roles;
        }
        Ok(Document::new())
    }

    fn users_info(&self, node: &str, cmd: &Document) -> Reply {
        let db = cmd.get_str("$db").unwrap_or("admin");
        let wanted = cmd.get_str("usersInfo").ok();
        let users: Vec<Bson> = self
            .users_of(node)
            .into_iter()
            .flat_map(|u| u.values())
            .filter(|u| u.db == db && wanted.is_none_or(|w| w == u.name))
            .map(|u| {
                let roles: Vec<Bson> = u
                    .roles
                    .iter()
                    .map(|(r, d)| Bson::Document(doc! {"role": r, "db": d}))
                    .collect();
                Bson::Document(doc! {"_id": user_key(&u.db, &u.name), "user": &u.name, "db": &u.db, "roles": roles, "mechanisms": ["SCRAM-SHA-256"]})
            })
            .collect();
        Ok(doc! {"users": users})
    }
}

#[cfg(test)]
mod rule_tests {
    //! Each test names the MongoDB behaviour it reproduces (MongoDB manual, 7.0).
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn h(i: u16) -> String {
        format!("127.0.0.1:{}", 27000 + i)
    }

    fn world(n: u16) -> (World, Session) {
        let mut w = World::new(Settings {
            sync_ticks: 1,
            stepdown_ticks: 3,
        });
        for i in 0..n {
            w.set_up(&h(i), true);
        }
        (w, Session::new(true, 1))
    }

    fn member(i: u16, votes: i32, priority: f64) -> Bson {
        Bson::Document(
            doc! {"_id": i32::from(i), "host": h(i), "votes": votes, "priority": priority},
        )
    }

    fn code(d: &Document) -> Option<i32> {
        d.get_i32("code").ok()
    }

    fn ok(d: &Document) -> bool {
        d.get_f64("ok").ok() == Some(1.0)
    }

    /// Initiate members 0..n as voters with priority 1 on node 0 from inside its pod, sync,
    /// elect; no user yet.
    fn initiated_without_users(n: u16) -> World {
        let (mut w, mut s) = world(n);
        let members: Vec<Bson> = (0..n).map(|i| member(i, 1, 1.0)).collect();
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": members}},
        );
        assert!(ok(&r), "{r}");
        elect(&mut w);
        w
    }

    /// Tick until set `rs` has a primary (an election timeout after initiating); returns the
    /// ticks it took.
    fn elect(w: &mut World) -> u64 {
        for t in 1..=30 {
            w.tick();
            if w.set("rs").is_some_and(|s| s.primary.is_some()) {
                return t;
            }
        }
        panic!("no primary after 30 ticks");
    }

    /// As [`initiated`], on nodes that run `version` from the start.
    fn initiated_on(n: u16, version: &str) -> (World, Session) {
        let (mut w, mut s) = world(n);
        for i in 0..n {
            w.set_version(&h(i), version);
        }
        let members: Vec<Bson> = (0..n).map(|i| member(i, 1, 1.0)).collect();
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": members}},
        );
        assert!(ok(&r), "{r}");
        elect(&mut w);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"createUser": "root", "pwd": "root-pass", "roles": ["root"]},
        );
        assert!(ok(&r), "{r}");
        (w, logged_in("root"))
    }

    /// As [`initiated_without_users`], then root created in node 0's pod; returns a remote
    /// session logged in as root (what the agent has).
    fn initiated(n: u16) -> (World, Session) {
        let mut w = initiated_without_users(n);
        let r = w.handle(
            &h(0),
            &mut Session::new(true, 1),
            &doc! {"createUser": "root", "pwd": "root-pass", "roles": ["root"]},
        );
        assert!(ok(&r), "{r}");
        (w, logged_in("root"))
    }

    fn logged_in(user: &str) -> Session {
        let mut s = Session::new(false, 2);
        s.user = Some(("admin".into(), user.into()));
        s
    }

    fn reconfig(
        w: &mut World,
        s: &mut Session,
        on: u16,
        version: i64,
        members: Vec<Bson>,
    ) -> Document {
        w.handle(
            &h(on),
            s,
            &doc! {"replSetReconfig": {"_id": "rs", "version": version, "members": members}},
        )
    }

    fn version(w: &World) -> i64 {
        w.set("rs").unwrap().config.version
    }

    /// replSetInitiate: "Initiates a replica set" once; on an initiated node MongoDB answers
    /// AlreadyInitialized (23).
    #[test]
    fn initiate_twice_is_already_initialized() {
        let (mut w, mut s) = initiated(1);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0)]}},
        );
        assert_eq!(code(&r), Some(ALREADY_INITIALIZED));
    }

    /// replSetInitiate runs a quorum check that needs every proposed member to respond, and a
    /// member that already has a config ("has data already") refuses.
    #[test]
    fn initiate_needs_every_member_up_and_in_no_set() {
        let (mut w, mut s) = world(2);
        w.set_up(&h(1), false);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0)]}},
        );
        assert_eq!(code(&r), Some(NODE_NOT_FOUND));
        assert!(w.set("rs").is_none());
        // Node 1 joins another set; initiating a set that lists it must fail.
        w.set_up(&h(1), true);
        let r = w.handle(
            &h(1),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "other", "members": [member(1, 1, 1.0)]}},
        );
        assert!(ok(&r));
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0)]}},
        );
        assert_eq!(code(&r), Some(NODE_NOT_FOUND));
    }

    /// hello: `setName`, `hosts`, `primary`, `me`, `isWritablePrimary`, `secondary`; priority-0
    /// members are listed under `passives`, not `hosts`.
    #[test]
    fn hello_describes_the_set_from_each_member() {
        let (mut w, mut s) = initiated(2);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![member(0, 1, 1.0), member(1, 1, 1.0), member(2, 0, 0.0)],
        );
        assert_eq!(code(&r), None, "{r}");
        w.set_up(&h(2), true);
        w.tick();
        let p = w.handle(&h(0), &mut s, &doc! {"hello": 1});
        assert_eq!(p.get_str("setName").unwrap(), "rs");
        assert!(p.get_bool("isWritablePrimary").unwrap());
        assert_eq!(p.get_str("primary").unwrap(), h(0));
        assert_eq!(p.get_str("me").unwrap(), h(0));
        assert_eq!(p.get_array("hosts").unwrap().len(), 2);
        assert_eq!(p.get_array("passives").unwrap().len(), 1);
        let sec = w.handle(&h(1), &mut s, &doc! {"isMaster": 1, "helloOk": true});
        assert!(!sec.get_bool("ismaster").unwrap());
        assert!(sec.get_bool("secondary").unwrap());
        assert!(sec.get_bool("helloOk").unwrap());
        assert_eq!(sec.get_str("me").unwrap(), h(1));
    }

    /// replSetReconfig: "the new configuration version must be greater than the current one"
    /// (NewReplicaSetConfigurationIncompatible, 103).
    #[test]
    fn reconfig_needs_a_greater_version() {
        let (mut w, mut s) = initiated(2);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            1,
            vec![member(0, 1, 1.0), member(1, 1, 2.0)],
        );
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![member(0, 1, 1.0), member(1, 1, 2.0)],
        );
        assert!(ok(&r));
    }

    /// 4.4+: "replSetReconfig ... can add or remove no more than 1 voting member at a time";
    /// adding two voters in one reconfig is rejected, one at a time succeeds.
    #[test]
    fn a_reconfig_adding_two_voters_is_rejected() {
        let (mut w, mut s) = initiated(3);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![
                member(0, 1, 1.0),
                member(1, 1, 1.0),
                member(2, 1, 1.0),
                member(3, 1, 1.0),
                member(4, 1, 1.0),
            ],
        );
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
        assert!(
            r.get_str("errmsg")
                .unwrap()
                .contains("at most 1 voting member")
        );
        assert_eq!(version(&w), 1);
        // Adding both as non-voters is fine (no voting change), then one promotion.
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![
                member(0, 1, 1.0),
                member(1, 1, 1.0),
                member(2, 1, 1.0),
                member(3, 0, 0.0),
                member(4, 0, 0.0),
            ],
        );
        assert!(ok(&r), "{r}");
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            3,
            vec![
                member(0, 1, 1.0),
                member(1, 1, 1.0),
                member(2, 1, 1.0),
                member(3, 1, 1.0),
                member(4, 0, 0.0),
            ],
        );
        assert!(ok(&r), "{r}");
    }

    /// Removing two voting members at once is the same voting change limit.
    #[test]
    fn a_reconfig_removing_two_voters_is_rejected() {
        let (mut w, mut s) = initiated(3);
        let r = reconfig(&mut w, &mut s, 0, 2, vec![member(0, 1, 1.0)]);
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
    }

    /// "replSetReconfig ... must be run on the primary" unless force (NotWritablePrimary).
    #[test]
    fn reconfig_on_a_secondary_needs_force() {
        let (mut w, mut s) = initiated(3);
        let r = reconfig(
            &mut w,
            &mut s,
            1,
            2,
            vec![member(0, 1, 1.0), member(1, 1, 1.0), member(2, 1, 1.0)],
        );
        assert_eq!(code(&r), Some(NOT_WRITABLE_PRIMARY));
    }

    /// "Replica Set Configuration": at most 7 voting members; `priority` must be 0 when
    /// `votes` is 0; arbiters have priority 0; member `_id`s and hosts are unique.
    #[test]
    fn invalid_configs_are_rejected_with_invalid_replica_set_config() {
        let eight: Vec<Bson> = (0..8).map(|i| member(i, 1, 1.0)).collect();
        let c = parse_config(&doc! {"_id": "rs", "members": eight}).unwrap_err();
        assert_eq!(c.code, INVALID_REPLICA_SET_CONFIG);
        assert!(c.message.contains("8 voting members"));
        let c =
            parse_config(&doc! {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 0, 1.0)]})
                .unwrap_err();
        assert!(c.message.contains("priority must be 0 when non-voting"));
        let c = parse_config(&doc! {"_id": "rs", "members": [member(0, 1, 1.0), {"_id": 1, "host": h(1), "arbiterOnly": true, "priority": 1}]})
            .unwrap_err();
        assert!(c.message.contains("arbiterOnly"));
        let c = parse_config(
            &doc! {"_id": "rs", "members": [member(0, 1, 1.0), {"_id": 0, "host": h(1)}]},
        )
        .unwrap_err();
        assert!(c.message.contains("same _id"));
    }

    /// member_config.cpp: "Arbiter must vote (cannot have 0 votes)"; repl_set_config.cpp (5.3+):
    /// more than one arbiter needs `allowMultipleArbiters`; 4.4+: `newlyAdded` is set by the
    /// server only.
    #[test]
    fn arbiters_vote_one_per_set_and_newly_added_is_the_servers() {
        let arb = |i: u16, votes: i32| {
            Bson::Document(
                doc! {"_id": i32::from(i), "host": h(i), "arbiterOnly": true, "votes": votes, "priority": 0},
            )
        };
        let c = parse_config(&doc! {"_id": "rs", "members": [member(0, 1, 1.0), arb(1, 0)]})
            .unwrap_err();
        assert_eq!(c.code, BAD_VALUE);
        let c = parse_config(
            &doc! {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0), arb(2, 1), arb(3, 1)]},
        )
        .unwrap_err();
        assert!(c.message.contains("allowMultipleArbiters"), "{}", c.message);
        assert!(
            parse_config(
                &doc! {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0), arb(2, 1)]}
            )
            .is_ok()
        );
        let c = parse_config(
            &doc! {"_id": "rs", "members": [{"_id": 0, "host": h(0), "newlyAdded": true}]},
        )
        .unwrap_err();
        assert_eq!(c.code, INVALID_REPLICA_SET_CONFIG);
    }

    /// The quorum check of a reconfig: "a majority of the voting members" of the new config must
    /// respond, else NodeNotFound (74) "Quorum check failed".
    #[test]
    fn reconfig_without_a_reachable_majority_is_refused_unless_forced() {
        let (mut w, mut s) = initiated(3);
        // Adding a non-voter keeps 3 voters; with 1 of them down there is still a majority.
        w.set_up(&h(2), false);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![
                member(0, 1, 1.0),
                member(1, 1, 1.0),
                member(2, 1, 1.0),
                member(3, 0, 0.0),
            ],
        );
        assert!(ok(&r), "{r}");
        // Promoting the down member 3 to voter: 4 voters, 2 up (0, 1), majority 3: refused.
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            3,
            vec![
                member(0, 1, 1.0),
                member(1, 1, 1.0),
                member(2, 1, 1.0),
                member(3, 1, 1.0),
            ],
        );
        assert_eq!(code(&r), Some(NODE_NOT_FOUND));
        assert!(
            r.get_str("errmsg")
                .unwrap()
                .starts_with("Quorum check failed")
        );
        // Losing the majority: no primary, a normal reconfig is impossible, force works on a
        // secondary and bumps the version by a large amount.
        w.set_up(&h(1), false);
        // The primary steps down once its heartbeats marked the other voter down.
        w.tick();
        w.tick();
        assert!(w.set("rs").unwrap().primary.is_none());
        let r = reconfig(&mut w, &mut s, 0, 3, vec![member(0, 1, 1.0)]);
        assert_eq!(code(&r), Some(NOT_WRITABLE_PRIMARY));
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetReconfig": {"_id": "rs", "version": 3, "members": [member(0, 1, 1.0)]}, "force": true},
        );
        assert!(ok(&r), "{r}");
        assert!(version(&w) > 10_000);
        assert_eq!(w.set("rs").unwrap().forced_reconfigs, 1);
        w.tick();
        assert_eq!(w.set("rs").unwrap().primary.as_deref(), Some(h(0).as_str()));
    }

    /// The config version is the client's number, up to i64's limit: the simulator's own bumps
    /// (a synced `newlyAdded` member, a forced reconfig) stop there instead of overflowing, which
    /// panicked the member's connection task.
    #[test]
    fn the_servers_version_bumps_stop_at_the_largest_version() {
        let (mut w, mut s) = initiated(2);
        w.set_up(&h(2), true);
        let two = vec![member(0, 1, 1.0), member(1, 1, 1.0)];
        // Numbers are read as f64: i64::MAX - 1024 is the largest one below i64::MAX that stays.
        let r = reconfig(&mut w, &mut s, 0, i64::MAX - 1024, two);
        assert!(ok(&r), "{r}");
        w.tick();
        // A new voter is `newlyAdded`; once synced, the server's own reconfig clears it.
        let three = vec![member(0, 1, 1.0), member(1, 1, 1.0), member(2, 1, 1.0)];
        let r = reconfig(&mut w, &mut s, 0, i64::MAX, three);
        assert!(ok(&r), "{r}");
        for _ in 0..5 {
            w.tick();
        }
        let set = w.set("rs").unwrap();
        assert!(set.config.members.iter().all(|m| !m.newly_added));
        assert_eq!(set.config.version, i64::MAX);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetReconfig": {"_id": "rs", "version": 1, "members": [member(0, 1, 1.0)]}, "force": true},
        );
        assert!(ok(&r), "{r}");
        assert_eq!(version(&w), i64::MAX);
    }

    /// A primary–secondary–arbiter set initiated on nodes 0 (P), 1 (S) and 2 (arbiter), synced,
    /// root created, a cluster-wide write concern set; returns root's remote session.
    fn psa() -> (World, Session) {
        let (mut w, mut s) = world(3);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0), arbiter(2)]}},
        );
        assert!(ok(&r), "{r}");
        elect(&mut w);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"createUser": "root", "pwd": "root-pass", "roles": ["root"]},
        );
        assert!(ok(&r), "{r}");
        (w, logged_in("root"))
    }

    fn arbiter(i: u16) -> Bson {
        Bson::Document(
            doc! {"_id": i32::from(i), "host": h(i), "arbiterOnly": true, "votes": 1, "priority": 0},
        )
    }

    fn commitment(w: &mut World, s: &mut Session, on: u16) -> bool {
        w.handle(
            &h(on),
            s,
            &doc! {"replSetGetConfig": 1, "commitmentStatus": true},
        )
        .get_bool("commitmentStatus")
        .unwrap()
    }

    /// 4.4+ "safe reconfig": `replSetReconfig` first waits until the current config is
    /// committed, including its oplog commitment (the new primary's writes on a write majority);
    /// `maxTimeMS` bounds the wait and ends it with CurrentConfigNotCommittedYet (308)
    /// (replication_coordinator_impl.cpp `awaitConfigCommitment`;
    /// jstests/replsets/reconfig_waits_for_a_majority_to_replicate_config.js). Without
    /// `maxTimeMS` it waits until it can go on. `commitmentStatus` says whether a reconfig may
    /// start now.
    #[test]
    fn reconfig_waits_for_the_current_config_to_commit_and_honours_max_time_ms() {
        let (mut w, mut s) = psa();
        assert!(commitment(&mut w, &mut s, 0));
        // The primary dies: the secondary wins with the arbiter's vote, but its term's writes
        // reach no write majority (two data-bearing voters, one up).
        w.set_up(&h(0), false);
        elect(&mut w);
        assert_eq!(w.set("rs").unwrap().primary.as_deref(), Some(h(1).as_str()));
        assert!(!commitment(&mut w, &mut s, 1));
        let demote = doc! {"replSetReconfig": {"_id": "rs", "version": 2, "members": [member(0, 0, 0.0), member(1, 1, 1.0), arbiter(2)]}, "maxTimeMS": 5000};
        let Answer::Later(mut wait) = w.begin(&h(1), &mut s, &demote) else {
            panic!("a reconfig before the current config is committed must wait");
        };
        assert_eq!(wait.max_time(), Some(std::time::Duration::from_secs(5)));
        w.tick();
        assert!(w.resume(&mut wait).is_none(), "still waiting");
        let r = w.expire(wait.clone());
        assert_eq!(code(&r), Some(CURRENT_CONFIG_NOT_COMMITTED_YET));
        assert_eq!(version(&w), 1, "nothing installed");
        // The old primary comes back as a secondary (after STARTUP, STARTUP2, RECOVERING):
        // the write majority holds the term, the same waiting reconfig goes through.
        w.set_up(&h(0), true);
        assert!(!commitment(&mut w, &mut s, 1), "still starting up");
        for _ in 0..3 {
            w.tick();
        }
        assert!(commitment(&mut w, &mut s, 1));
        let r = w.resume(&mut wait).unwrap();
        assert!(ok(&r), "{r}");
        assert_eq!(version(&w), 2);
        // A reconfig sent while ready is answered at once.
        assert!(matches!(
            w.begin(
                &h(1),
                &mut s,
                &doc! {"replSetReconfig": {"_id": "rs", "version": 3, "members": [member(0, 0, 0.0), member(1, 1, 1.0), arbiter(2)]}}
            ),
            Answer::Now(_)
        ));
    }

    /// 5.0+ (replSetReconfig, "Global Write Concern"; replication_coordinator_impl.cpp): a
    /// reconfig that would change the implicit default write concern
    /// (`isImplicitDefaultWriteConcernMajority`, repl_set_config.cpp: `{w: 1}` when arbiters vote
    /// and the data-bearing voters are no more than a voting majority) is refused until
    /// `setDefaultRWConcern` set a cluster-wide one. 4.4 has no such rule.
    #[test]
    fn a_reconfig_changing_the_implicit_default_write_concern_needs_a_cluster_wide_one() {
        let (mut w, mut s) = initiated(2);
        w.set_up(&h(2), true);
        let psa_members = vec![member(0, 1, 1.0), member(1, 1, 1.0), arbiter(2)];
        let r = reconfig(&mut w, &mut s, 0, 2, psa_members.clone());
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
        assert!(
            r.get_str("errmsg").unwrap().contains("setDefaultRWConcern"),
            "{r}"
        );
        let d = w.handle(&h(0), &mut s, &doc! {"getDefaultRWConcern": 1});
        assert_eq!(d.get_str("defaultWriteConcernSource").unwrap(), "implicit");
        assert_eq!(
            d.get_document("defaultWriteConcern")
                .unwrap()
                .get_str("w")
                .unwrap(),
            "majority"
        );
        // w: 0 is no default; a secondary cannot set it; the cluster monitor cannot either.
        let set = |w: &mut World, s: &mut Session, on: u16, wc: Document| {
            w.handle(
                &h(on),
                s,
                &doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": wc},
            )
        };
        assert_eq!(
            code(&set(&mut w, &mut s, 0, doc! {"w": 0})),
            Some(BAD_VALUE)
        );
        assert_eq!(
            code(&set(&mut w, &mut s, 1, doc! {"w": "majority"})),
            Some(NOT_WRITABLE_PRIMARY)
        );
        let r = set(&mut w, &mut s, 0, doc! {"w": "majority"});
        assert!(ok(&r), "{r}");
        assert_eq!(r.get_str("defaultWriteConcernSource").unwrap(), "global");
        let r = reconfig(&mut w, &mut s, 0, 2, psa_members.clone());
        assert!(ok(&r), "{r}");
        // The same change on 4.4 needs nothing.
        let (mut w, mut s) = initiated_on(2, "4.4.18");
        w.set_up(&h(2), true);
        w.set_version(&h(2), "4.4.18");
        let r = reconfig(&mut w, &mut s, 0, 2, psa_members);
        assert!(ok(&r), "{r}");
    }

    /// 5.0+ (manual, "Modify a Self-Managed PSA Replica Set Safely" and `rs.reconfigForPSASet()`):
    /// from a config with one writable voter, a reconfig to a primary–secondary–arbiter set
    /// with an electable secondary is refused (NewReplicaSetConfigurationIncompatible, "Rejecting
    /// reconfig where the new config has a PSA topology and the secondary is electable"); the
    /// two-step path (the vote with priority 0, then the priority) works.
    #[test]
    fn a_psa_set_is_reached_in_two_steps() {
        let (mut w, mut s) = initiated(1);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": "majority"}},
        );
        assert!(ok(&r), "{r}");
        w.set_up(&h(1), true);
        w.set_up(&h(2), true);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![member(0, 1, 1.0), member(1, 0, 0.0), arbiter(2)],
        );
        assert!(ok(&r), "{r}");
        w.tick();
        // One step: votes and priority together.
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            3,
            vec![member(0, 1, 1.0), member(1, 1, 1.0), arbiter(2)],
        );
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
        assert!(r.get_str("errmsg").unwrap().contains("PSA topology"), "{r}");
        // Two steps.
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            3,
            vec![member(0, 1, 1.0), member(1, 1, 0.0), arbiter(2)],
        );
        assert!(ok(&r), "{r}");
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            4,
            vec![member(0, 1, 1.0), member(1, 1, 1.0), arbiter(2)],
        );
        assert!(ok(&r), "{r}");
    }

    /// repl_set_config_checks.cpp: "New and old configurations differ in the setting of the
    /// arbiterOnly field for member ...; to make this change, remove then re-add the member",
    /// and the same for `buildIndexes`.
    #[test]
    fn arbiter_only_and_build_indexes_cannot_change() {
        let (mut w, mut s) = initiated(2);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": "majority"}},
        );
        assert!(ok(&r), "{r}");
        let r = reconfig(&mut w, &mut s, 0, 2, vec![member(0, 1, 1.0), arbiter(1)]);
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
        assert!(r.get_str("errmsg").unwrap().contains("arbiterOnly"), "{r}");
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![
                member(0, 1, 1.0),
                Bson::Document(
                    doc! {"_id": 1, "host": h(1), "votes": 1, "priority": 0, "buildIndexes": false},
                ),
            ],
        );
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
        assert!(r.get_str("errmsg").unwrap().contains("buildIndexes"), "{r}");
        assert_eq!(version(&w), 1);
    }

    /// 4.4+ (server: `MemberConfig::isNewlyAdded`; jstests/replsets/newly_added_member_id_vs_index.js,
    /// auto_reconfig_remove_newly_added_and_stepdown.js): a member added with a vote is marked
    /// `newlyAdded` by the server and does not count as a voter until its initial sync is done;
    /// then the primary removes the field with its own reconfig. A client cannot send the field,
    /// and a later client reconfig keeps it.
    #[test]
    fn new_voters_are_newly_added_until_they_synced() {
        let (mut w, mut s) = initiated(1);
        w.set_up(&h(1), true);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![member(0, 1, 1.0), member(1, 1, 1.0)],
        );
        assert!(ok(&r), "{r}");
        let config = |w: &mut World, s: &mut Session| {
            w.handle(&h(0), s, &doc! {"replSetGetConfig": 1})
                .get_document("config")
                .unwrap()
                .clone()
        };
        let m1 = |c: &Document| {
            c.get_array("members").unwrap()[1]
                .as_document()
                .unwrap()
                .clone()
        };
        assert!(m1(&config(&mut w, &mut s)).get_bool("newlyAdded").unwrap());
        let st = w.handle(&h(0), &mut s, &doc! {"replSetGetStatus": 1});
        assert_eq!(st.get_i32("votingMembersCount").unwrap(), 1);
        // A client reconfig without the field (it may not send it) keeps it.
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            3,
            vec![member(0, 1, 2.0), member(1, 1, 1.0)],
        );
        assert!(ok(&r), "{r}");
        assert!(m1(&config(&mut w, &mut s)).get_bool("newlyAdded").unwrap());
        w.tick();
        let c = config(&mut w, &mut s);
        assert!(m1(&c).get("newlyAdded").is_none(), "{c}");
        assert_eq!(
            c.get_i32("version").unwrap(),
            4,
            "the server's own reconfig"
        );
        let st = w.handle(&h(0), &mut s, &doc! {"replSetGetStatus": 1});
        assert_eq!(st.get_i32("votingMembersCount").unwrap(), 2);
        // Members added without a vote never are.
        w.set_up(&h(2), true);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            5,
            vec![member(0, 1, 2.0), member(1, 1, 1.0), member(2, 0, 0.0)],
        );
        assert!(ok(&r), "{r}");
        let c = config(&mut w, &mut s);
        let m2 = c.get_array("members").unwrap()[2].as_document().unwrap();
        assert!(m2.get("newlyAdded").is_none());
    }

    /// replSetReconfig: the node running a non-forced reconfig must be electable under the new
    /// config ("This node ... is not electable under the new configuration"); step down first.
    #[test]
    fn a_reconfig_leaving_the_primary_unelectable_is_refused() {
        let (mut w, mut s) = initiated(3);
        for (votes, priority) in [(1, 0.0), (0, 0.0)] {
            let r = reconfig(
                &mut w,
                &mut s,
                0,
                2,
                vec![
                    member(0, votes, priority),
                    member(1, 1, 1.0),
                    member(2, 1, 1.0),
                ],
            );
            assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE), "{r}");
            assert!(
                r.get_str("errmsg").unwrap().contains("not electable"),
                "{r}"
            );
        }
        let r = w.handle(&h(0), &mut s, &doc! {"replSetStepDown": 60});
        assert!(ok(&r), "{r}");
        w.tick();
        let p = w.set("rs").unwrap().primary.clone().unwrap();
        let on: u16 = p.rsplit_once(':').unwrap().1.parse::<u16>().unwrap() - 27000;
        let r = reconfig(
            &mut w,
            &mut s,
            on,
            2,
            vec![member(0, 1, 0.0), member(1, 1, 1.0), member(2, 1, 1.0)],
        );
        assert!(ok(&r), "{r}");
    }

    /// A host keeps its member `_id` across reconfigs (103 otherwise).
    #[test]
    fn a_member_keeps_its_id() {
        let (mut w, mut s) = initiated(2);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![
                member(0, 1, 1.0),
                Bson::Document(doc! {"_id": 5, "host": h(1)}),
            ],
        );
        assert_eq!(code(&r), Some(NEW_CONFIG_INCOMPATIBLE));
    }

    /// The state and health members report about `host` (`replSetGetStatus` on `on`).
    fn seen(w: &mut World, on: u16, host: &str) -> (i32, f64) {
        let st = w.handle(
            &h(on),
            &mut logged_in("root"),
            &doc! {"replSetGetStatus": 1},
        );
        let m = st
            .get_array("members")
            .unwrap()
            .iter()
            .filter_map(Bson::as_document)
            .find(|m| m.get_str("name").unwrap() == host)
            .unwrap()
            .clone();
        (m.get_i32("state").unwrap(), m.get_f64("health").unwrap())
    }

    fn primary(w: &World) -> Option<String> {
        w.set("rs").unwrap().primary.clone()
    }

    /// "Replica Set Elections" (manual: a secondary calls an election after losing the primary
    /// for `settings.electionTimeoutMillis`, 10 s by default; "the replica set cannot process
    /// write operations until the election completes"): a multi-member set has no primary
    /// until an election timeout after `replSetInitiate`; a single-voter set elects its member
    /// at once (`replication_coordinator_impl.cpp`, single-node election).
    #[test]
    fn a_new_set_has_no_primary_until_an_election_timeout_passed() {
        let (mut w, mut s) = world(3);
        let members: Vec<Bson> = (0..3).map(|i| member(i, 1, 1.0)).collect();
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": members}},
        );
        assert!(ok(&r), "{r}");
        let hello = w.handle(&h(0), &mut s, &doc! {"hello": 1});
        assert!(!hello.get_bool("isWritablePrimary").unwrap());
        assert!(!hello.contains_key("primary"));
        assert_eq!(elect(&mut w), 10, "mongod's default electionTimeoutMillis");
        let (mut one, mut s) = world(1);
        let r = one.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0)]}},
        );
        assert!(ok(&r), "{r}");
        assert_eq!(primary(&one), Some(h(0)));
    }

    /// "Replica Set Elections" and server `topology_coordinator.cpp` (`processHeartbeatResponse`
    /// marks a member down once a heartbeat used up its retries, at once for a refused
    /// connection, or after `heartbeatTimeoutSecs` without an answer): right after a kill the
    /// others still report the dead primary as PRIMARY and a dead secondary as SECONDARY, both
    /// healthy; a refused member is `(not reachable/healthy)` from the next heartbeat on (2 s),
    /// a partitioned one after 10 s; the set has no primary until the election timeout (10 s)
    /// ran out, then the caught-up electable secondary wins in a new term.
    #[test]
    fn a_killed_primary_is_reported_until_heartbeats_mark_it_down_and_an_election_takes_time() {
        let (mut w, _) = initiated(3);
        assert_eq!(primary(&w), Some(h(0)));
        let term = w.set("rs").unwrap().term;
        w.set_up(&h(0), false);
        assert_eq!(primary(&w), None, "the dead primary takes no writes");
        assert_eq!(seen(&mut w, 1, &h(0)), (PRIMARY, 1.0), "a stale PRIMARY");
        let hello = w.handle(&h(1), &mut Session::new(false, 9), &doc! {"hello": 1});
        assert_eq!(hello.get_str("primary").unwrap(), h(0));
        let mut down_after = None;
        let mut elected_after = None;
        for t in 1..=12u64 {
            w.tick();
            if down_after.is_none() && seen(&mut w, 1, &h(0)) == (DOWN, 0.0) {
                down_after = Some(t);
                let hello = w.handle(&h(1), &mut Session::new(false, 9), &doc! {"hello": 1});
                assert!(!hello.contains_key("primary"), "{hello}");
            }
            if elected_after.is_none() && primary(&w).is_some() {
                elected_after = Some(t);
            }
        }
        assert!(down_after.is_some_and(|t| t <= 2), "{down_after:?}");
        assert_eq!(
            elected_after,
            Some(10),
            "no primary for one election timeout"
        );
        assert_eq!(primary(&w), Some(h(1)));
        assert!(w.set("rs").unwrap().term > term);
        // A partitioned secondary: healthy for heartbeatTimeoutSecs, then down.
        w.partition(&h(2));
        for t in 1..=10u64 {
            let expected = if t < 10 {
                (SECONDARY, 1.0)
            } else {
                (DOWN, 0.0)
            };
            w.tick();
            assert_eq!(seen(&mut w, 1, &h(2)), expected, "tick {t}");
        }
    }

    /// A node taken down answers nothing, on a connection it had answered before too: a
    /// stopped mongod's port is closed and its connections with it (the driver reports a
    /// network error). Its data is kept: brought up again, it answers and holds its set.
    #[test]
    fn a_node_taken_down_answers_nothing_on_an_open_connection() {
        let (mut w, mut s) = initiated(3);
        let before = w.handle(&h(1), &mut s, &doc! {"replSetGetStatus": 1});
        assert_eq!(before.get_f64("ok").ok(), Some(1.0), "{before}");
        w.set_up(&h(1), false);
        let after = w.handle(&h(1), &mut s, &doc! {"replSetGetStatus": 1});
        assert_eq!(code(&after), Some(6), "{after}");
        let hello = w.handle(&h(1), &mut s, &doc! {"hello": 1});
        assert_eq!(code(&hello), Some(6), "{hello}");
        w.set_up(&h(1), true);
        let back = w.handle(&h(1), &mut s, &doc! {"replSetGetStatus": 1});
        assert_eq!(back.get_str("set").ok(), Some("rs"), "{back}");
    }

    /// A mongod's replica-set config and users are in its dbPath (`local.system.replset`,
    /// `admin.system.users`), so a member started on another volume at an address a deleted
    /// set's member had (a NodePort handed out again) is a new, uninitiated node: `hello` names
    /// no set, there is no user to log in as, and it can be initiated. A set that still lists the
    /// address gets heartbeats answered without its config: down for it (health 0).
    #[test]
    fn a_member_on_a_new_volume_starts_empty() {
        let (mut w, mut s) = initiated(3);
        w.set_up(&h(2), false);
        w.new_volume(&h(2));
        w.set_up(&h(2), true);
        for _ in 0..3 {
            w.tick();
        }
        let hello = w.handle(&h(2), &mut s, &doc! {"hello": 1});
        assert!(hello.get_str("setName").is_err(), "{hello}");
        assert_eq!(hello.get_bool("isreplicaset").ok(), Some(true), "{hello}");
        assert_eq!(seen(&mut w, 0, &h(2)), (DOWN, 0.0));
        assert_eq!(primary(&w), Some(h(0)), "two of three voters still answer");
        assert!(
            w.users_of(&h(2)).is_none_or(|u| u.is_empty()),
            "no user on the new volume"
        );
        let r = w.handle(
            &h(2),
            &mut Session::new(true, 4),
            &doc! {"replSetInitiate": {"_id": "other", "members": [member(2, 1, 1.0)]}},
        );
        assert!(ok(&r), "{r}");
    }

    /// A split is per observer: one cluster's members and the rest get no answer from each
    /// other (server `topology_coordinator.cpp` `processHeartbeatResponse`: a member that does
    /// not answer at all is reported as last heard until `heartbeatTimeoutSecs`, then marked
    /// down), so each side sees the other as unreachable; the cut-off primary steps down once
    /// it sees no majority ("can't see a majority of the set, relinquishing primary"), the rest
    /// elects after its election timeout, and at no tick is there more than one primary
    /// reaching a majority. Clients reach only their own side. On heal the cut-off member
    /// rejoins as SECONDARY without a restart, in the one set.
    #[test]
    fn a_split_cuts_both_ways_and_only_the_majority_elects() {
        let (mut w, _) = initiated(3);
        assert_eq!(primary(&w), Some(h(0)));
        let near = || {
            let mut s = logged_in("root");
            s.client = Some("agent-c".into());
            s
        };
        w.split(&[h(0), h(1)], &[]).unwrap_err();
        w.split(&[h(0)], &["agent-c".into()]).unwrap();
        let far = w.handle(&h(0), &mut logged_in("root"), &doc! {"hello": 1});
        assert_eq!(
            code(&far),
            Some(6),
            "the rest's clients get no answer: {far}"
        );
        let across = w.handle(&h(1), &mut near(), &doc! {"hello": 1});
        assert_eq!(code(&across), Some(6), "{across}");
        let mut elected = None;
        for t in 1..=12u64 {
            w.tick();
            let with_majority = w
                .primaries("rs")
                .into_iter()
                .filter(|(_, reach)| *reach >= 2)
                .count();
            assert!(with_majority <= 1, "tick {t}: {:?}", w.primaries("rs"));
            let hello = w.handle(&h(0), &mut near(), &doc! {"hello": 1});
            let status = w.handle(&h(0), &mut near(), &doc! {"replSetGetStatus": 1});
            let of = |host: &str| {
                status
                    .get_array("members")
                    .unwrap()
                    .iter()
                    .filter_map(Bson::as_document)
                    .find(|m| m.get_str("name").unwrap() == host)
                    .map(|m| m.get_i32("state").unwrap())
                    .unwrap()
            };
            if t < 10 {
                assert!(hello.get_bool("isWritablePrimary").unwrap(), "tick {t}");
                assert_eq!(of(&h(1)), SECONDARY, "tick {t}: as last heard");
                assert_eq!(seen(&mut w, 1, &h(0)), (PRIMARY, 1.0), "tick {t}");
            } else {
                assert!(!hello.get_bool("isWritablePrimary").unwrap(), "tick {t}");
                assert!(!hello.contains_key("primary"), "tick {t}: {hello}");
                assert_eq!((of(&h(1)), of(&h(2))), (DOWN, DOWN), "tick {t}");
                assert_eq!(status.get_i32("myState").unwrap(), SECONDARY);
                assert_eq!(seen(&mut w, 1, &h(0)), (DOWN, 0.0), "tick {t}");
            }
            if elected.is_none() && primary(&w).is_some() {
                elected = Some(t);
            }
        }
        assert_eq!(
            elected,
            Some(10),
            "the rest elects after its election timeout"
        );
        assert_eq!(primary(&w), Some(h(1)));
        w.heal();
        w.tick();
        assert_eq!(w.set("rs").unwrap().state(&h(0)), Some(SECONDARY));
        assert_eq!(primary(&w), Some(h(1)));
        assert_eq!(w.primaries("rs").len(), 1);
        assert_eq!(w.sets_named("rs").len(), 1);
        let hello = w.handle(&h(0), &mut logged_in("root"), &doc! {"hello": 1});
        assert_eq!(hello.get_str("primary").unwrap(), h(1));
    }

    /// The timing follows the config's `settings` (manual, "Replica Set Configuration":
    /// `settings.electionTimeoutMillis`, `settings.heartbeatIntervalMillis`, which must be
    /// positive, `repl_set_config.cpp`).
    #[test]
    fn election_timing_follows_the_configs_settings() {
        let (mut w, mut s) = world(3);
        let members: Vec<Bson> = (0..3).map(|i| member(i, 1, 1.0)).collect();
        let bad = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": members.clone(), "settings": {"electionTimeoutMillis": 0}}},
        );
        assert_eq!(code(&bad), Some(BAD_VALUE), "{bad}");
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": members, "settings": {"electionTimeoutMillis": 3000, "heartbeatIntervalMillis": 1000}}},
        );
        assert!(ok(&r), "{r}");
        assert_eq!(elect(&mut w), 3);
        let root = doc! {"createUser": "root", "pwd": "root-pass", "roles": ["root"]};
        assert!(ok(&w.handle(&h(0), &mut s, &root)));
        let st = w.handle(&h(0), &mut logged_in("root"), &doc! {"replSetGetStatus": 1});
        assert_eq!(st.get_i64("heartbeatIntervalMillis").unwrap(), 1000);
        let p = primary(&w).unwrap();
        w.set_up(&p, false);
        let mut t = 0;
        while primary(&w).is_none() {
            w.tick();
            t += 1;
        }
        assert_eq!(t, 3);
    }

    /// "Replica Set Elections" (a primary that loses sight of a majority steps down; one voter
    /// of three cannot elect), priority (the highest-priority caught-up electable member is
    /// elected) and priority takeover (`repl_set_config.cpp` `getPriorityTakeoverDelay`:
    /// `(priorityRank + 1) × electionTimeout` after it saw itself as the better candidate).
    #[test]
    fn elections_follow_priority_and_majority() {
        let (mut w, mut s) = initiated(3);
        assert_eq!(primary(&w), Some(h(0)));
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![member(0, 1, 1.0), member(1, 1, 5.0), member(2, 1, 1.0)],
        );
        assert!(ok(&r));
        assert_eq!(primary(&w), Some(h(0)), "a takeover is not instant");
        let mut t = 0;
        while primary(&w) != Some(h(1)) {
            w.tick();
            t += 1;
            assert!(t <= 20);
        }
        assert_eq!(t, 10, "priority rank 0: one election timeout");
        w.set_up(&h(1), false);
        for _ in 0..10 {
            w.tick();
        }
        assert_eq!(primary(&w), Some(h(0)));
        w.set_up(&h(2), false);
        assert_eq!(primary(&w), Some(h(0)), "it has not noticed yet");
        for _ in 0..2 {
            w.tick();
        }
        assert!(primary(&w).is_none(), "1 of 3 voters cannot stay primary");
        for _ in 0..30 {
            w.tick();
        }
        assert!(primary(&w).is_none(), "1 of 3 voters cannot elect");
        assert_eq!(seen(&mut w, 0, &h(1)), (DOWN, 0.0));
        assert_eq!(seen(&mut w, 0, &h(2)), (DOWN, 0.0));
    }

    /// The election restriction (manual, "Replica Set Elections": a voter does not vote for a
    /// candidate whose oplog is behind its own; server `topology_coordinator.cpp`,
    /// `processReplSetRequestVotes`, "candidate's data is staler than mine"): a member that
    /// was down while the others took majority-committed writes does not win over one that
    /// holds them, whatever its priority; it takes over once it has caught up. No write the
    /// majority held is lost on the way.
    #[test]
    fn a_member_that_missed_majority_writes_is_not_elected_over_one_that_has_them() {
        let (mut w, mut s) = initiated(3);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![member(0, 1, 1.0), member(1, 1, 5.0), member(2, 1, 1.0)],
        );
        assert!(ok(&r), "{r}");
        // Member 1 goes down before its takeover; 0 and 2 take writes without it.
        w.set_up(&h(1), false);
        for _ in 0..5 {
            w.tick();
        }
        let set = w.set("rs").unwrap();
        let stale = set.runtime[&h(1)].applied;
        assert!(
            newer(set.majority_commit, stale),
            "0 and 2 committed writes 1 lacks"
        );
        // 1 comes back as the primary dies: no primary to catch up from.
        w.set_up(&h(1), true);
        w.set_up(&h(0), false);
        let mut t = 0;
        while primary(&w).is_none() {
            w.tick();
            t += 1;
            assert!(t <= 30, "no primary");
        }
        assert_eq!(
            primary(&w),
            Some(h(2)),
            "priority 5 but stale: 2 refuses its vote, 0 is down"
        );
        // Under 2 it catches up, then takes over as the highest priority.
        while primary(&w) != Some(h(1)) {
            w.tick();
            t += 1;
            assert!(t <= 60, "no takeover by the caught-up member 1");
        }
        assert_eq!(w.set("rs").unwrap().committed_writes_lost, 0);
    }

    /// replSetGetStatus (manual, `replSetGetStatus` output: `members[].optime` `{ts, t}` and
    /// `optimeDate`; none for an arbiter; `Timestamp(0, 0)`, `t: -1` for an unreachable
    /// member; `rs.printSecondaryReplicationInfo()` measures lag as the primary's optimeDate
    /// minus the member's): a member that comes back after a restart is SECONDARY at once but
    /// behind the primary until it replayed what it missed.
    #[test]
    fn optimes_show_a_restarted_member_behind_the_primary_until_it_caught_up() {
        let (mut w, mut s) = initiated(3);
        let optime = |w: &mut World, s: &mut Session, i: u16| {
            let st = w.handle(&h(0), s, &doc! {"replSetGetStatus": 1});
            let m = st
                .get_array("members")
                .unwrap()
                .iter()
                .filter_map(Bson::as_document)
                .find(|m| m.get_str("name").unwrap() == h(i))
                .unwrap()
                .clone();
            let o = m.get_document("optime").unwrap();
            let ts = o.get_timestamp("ts").unwrap();
            assert_eq!(
                m.get_datetime("optimeDate").unwrap().timestamp_millis(),
                i64::from(ts.time) * 1000
            );
            (
                m.get_i32("state").unwrap(),
                ts.time,
                o.get_i64("t").unwrap(),
            )
        };
        w.tick();
        let (_, p0, t) = optime(&mut w, &mut s, 0);
        assert!(t >= 1);
        assert_eq!(
            optime(&mut w, &mut s, 2).1,
            p0,
            "a healthy secondary keeps up"
        );
        w.set_up(&h(2), false);
        w.tick();
        w.tick();
        assert_eq!(optime(&mut w, &mut s, 2), (DOWN, 0, -1));
        for _ in 0..3 {
            w.tick();
        }
        w.set_up(&h(2), true);
        // STARTUP, STARTUP2, RECOVERING, then SECONDARY.
        for _ in 0..3 {
            w.tick();
        }
        let (state, behind, _) = optime(&mut w, &mut s, 2);
        let primary = optime(&mut w, &mut s, 0).1;
        assert_eq!(state, SECONDARY);
        assert_eq!(primary - behind, 8, "it missed eight seconds of writes");
        // sync_ticks (1) later it has caught up.
        w.tick();
        w.tick();
        assert_eq!(optime(&mut w, &mut s, 2).1, optime(&mut w, &mut s, 0).1);
    }

    /// "Replica Set Member States" (manual; a restarted mongod logs STARTUP → STARTUP2 →
    /// RECOVERING → SECONDARY): a restarted member is neither SECONDARY nor electable at once,
    /// the others report it in those states, and an arbiter comes back as ARBITER.
    #[test]
    fn a_restarted_member_starts_up_and_recovers_before_it_is_secondary() {
        let (mut w, _) = initiated(3);
        w.set_up(&h(2), false);
        w.tick();
        w.tick();
        w.set_up(&h(2), true);
        let mut states = vec![seen(&mut w, 0, &h(2)).0];
        for _ in 0..3 {
            w.tick();
            states.push(seen(&mut w, 0, &h(2)).0);
        }
        assert_eq!(states, vec![STARTUP, STARTUP2, RECOVERING, SECONDARY]);
        let st = w.handle(&h(0), &mut logged_in("root"), &doc! {"replSetGetStatus": 1});
        assert!(st.to_string().contains("\"stateStr\": \"SECONDARY\""));
        let (mut w, _) = psa();
        w.set_up(&h(2), false);
        w.set_up(&h(2), true);
        let mut states = vec![seen(&mut w, 0, &h(2)).0];
        for _ in 0..2 {
            w.tick();
            states.push(seen(&mut w, 0, &h(2)).0);
        }
        assert_eq!(states, vec![STARTUP, STARTUP2, ARBITER]);
    }

    /// New members go through STARTUP2 (initial sync) before they are SECONDARY.
    #[test]
    fn new_members_sync_before_they_are_secondary() {
        let (mut w, mut s) = initiated(1);
        w.set_up(&h(1), true);
        let r = reconfig(
            &mut w,
            &mut s,
            0,
            2,
            vec![member(0, 1, 1.0), member(1, 0, 0.0)],
        );
        assert!(ok(&r));
        let state = |w: &mut World, s: &mut Session| {
            w.handle(&h(1), s, &doc! {"replSetGetStatus": 1})
                .get_i32("myState")
                .unwrap()
        };
        assert_eq!(state(&mut w, &mut s), STARTUP2);
        w.tick();
        assert_eq!(state(&mut w, &mut s), SECONDARY);
    }

    /// replSetStepDown: only on the primary; fails with no electable caught-up secondary; the old
    /// primary is not re-elected during the step-down period; with `enableElectionHandoff`
    /// (default true, manual `replSetStepDown`: "it nominates an eligible secondary to call an
    /// election immediately") the next primary follows within a tick.
    #[test]
    fn step_down_hands_over_and_bars_the_old_primary() {
        let (mut w, mut s) = initiated(1);
        let r = w.handle(&h(0), &mut s, &doc! {"replSetStepDown": 60});
        assert_eq!(code(&r), Some(EXCEEDED_TIME_LIMIT));
        let (mut w, mut s) = initiated(3);
        let r = w.handle(&h(1), &mut s, &doc! {"replSetStepDown": 60});
        assert_eq!(code(&r), Some(NOT_WRITABLE_PRIMARY));
        let r = w.handle(&h(0), &mut s, &doc! {"replSetStepDown": 60});
        assert!(ok(&r), "{r}");
        assert!(
            w.set("rs").unwrap().primary.is_none(),
            "a moment without one"
        );
        // Election handoff: a secondary stands at once, no election timeout is waited for.
        w.tick();
        let p = w.set("rs").unwrap().primary.clone().unwrap();
        assert_ne!(p, h(0));
        for _ in 0..2 {
            w.tick();
        }
        assert_eq!(w.set("rs").unwrap().primary.as_deref(), Some(p.as_str()));
    }

    /// "Localhost Exception" (manual, Security > Authentication > Localhost Exception): only
    /// over the member's own localhost interface, only while no user exists, and only to
    /// create the first user or role or to initiate the set; `replSetGetConfig` is not covered.
    /// A remote connection (the agent's, through the NodePort) never gets it.
    #[test]
    fn the_localhost_exception_is_for_the_member_pod_only_and_only_for_the_first_user() {
        let (mut w, _) = world(2);
        let mut remote = Session::new(false, 2);
        let mut in_pod = Session::new(true, 3);
        let initiate = doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0)]}};
        assert_eq!(
            code(&w.handle(&h(0), &mut remote, &initiate)),
            Some(UNAUTHORIZED)
        );
        assert!(ok(&w.handle(&h(0), &mut in_pod, &initiate)));
        elect(&mut w);
        for cmd in [
            doc! {"replSetGetConfig": 1},
            doc! {"replSetGetStatus": 1},
            doc! {"usersInfo": 1},
        ] {
            assert_eq!(
                code(&w.handle(&h(0), &mut in_pod, &cmd)),
                Some(UNAUTHORIZED),
                "{cmd}"
            );
        }
        let create = doc! {"createUser": "root", "pwd": "x-pass", "roles": ["root"]};
        assert_eq!(
            code(&w.handle(&h(0), &mut remote, &create)),
            Some(UNAUTHORIZED)
        );
        // A write: the primary only, even in-pod.
        assert_eq!(
            code(&w.handle(&h(1), &mut Session::new(true, 4), &create)),
            Some(NOT_WRITABLE_PRIMARY)
        );
        let r = w.handle(&h(0), &mut in_pod, &create);
        assert!(ok(&r), "{r}");
        assert!(!r.to_string().contains("x-pass"));
        // Closed once a user exists, for the same connection too.
        let r = w.handle(
            &h(0),
            &mut in_pod,
            &doc! {"createUser": "other", "pwd": "y", "roles": ["root"]},
        );
        assert_eq!(code(&r), Some(UNAUTHORIZED));
        assert!(
            ok(&w.handle(&h(0), &mut remote, &doc! {"hello": 1})),
            "hello needs no login"
        );
        assert!(ok(&w.handle(
            &h(0),
            &mut logged_in("root"),
            &doc! {"replSetGetConfig": 1}
        )));
    }

    /// Users live in each node's data: a member outside any set has its own (none before it
    /// joins), a removed member keeps the users it had, and an arbiter holds no data and so no
    /// users: authentication against it fails ("Arbiter", Authentication; arbiters are reached
    /// only through the localhost exception).
    #[test]
    fn users_belong_to_each_nodes_data_and_arbiters_have_none() {
        let (mut w, mut root) = initiated(1);
        let r = w.handle(
            &h(0),
            &mut root,
            &doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": "majority"}},
        );
        assert!(ok(&r), "{r}");
        w.set_up(&h(1), true);
        w.set_up(&h(2), true);
        assert!(w.users_of(&h(1)).is_some_and(BTreeMap::is_empty));
        let r = reconfig(
            &mut w,
            &mut root,
            0,
            2,
            vec![
                member(0, 1, 1.0),
                member(1, 0, 0.0),
                Bson::Document(
                    doc! {"_id": 2, "host": h(2), "arbiterOnly": true, "votes": 1, "priority": 0},
                ),
            ],
        );
        assert!(ok(&r), "{r}");
        w.tick();
        assert!(
            w.users_of(&h(1))
                .is_some_and(|u| u.contains_key("admin.root"))
        );
        assert!(w.users_of(&h(2)).is_none(), "an arbiter has no users");
        let mut arbiter = Session::new(false, 9);
        let start = w.handle(
            &h(2),
            &mut arbiter,
            &doc! {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bson::Binary { subtype: BinarySubtype::Generic, bytes: b"n,,n=root,r=abc".to_vec() }},
        );
        assert_eq!(code(&start), Some(AUTHENTICATION_FAILED));
        // Removing member 1: it keeps its users.
        let r = reconfig(
            &mut w,
            &mut root,
            0,
            3,
            vec![
                member(0, 1, 1.0),
                Bson::Document(
                    doc! {"_id": 2, "host": h(2), "arbiterOnly": true, "votes": 1, "priority": 0},
                ),
            ],
        );
        assert!(ok(&r), "{r}");
        assert!(w.set_of(&h(1)).is_none());
        assert!(
            w.users_of(&h(1))
                .is_some_and(|u| u.contains_key("admin.root"))
        );
    }

    /// replSetInitiate's quorum check asks only the proposed members, so a second initiate of
    /// a set with the same name on fresh nodes succeeds: two sets exist. Only the agent's own
    /// guard (`hello` on every desired host first) prevents it.
    #[test]
    fn a_second_initiate_next_to_an_existing_set_makes_a_second_set() {
        let (mut w, _) = initiated(1);
        w.set_up(&h(5), true);
        let r = w.handle(
            &h(5),
            &mut Session::new(true, 7),
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(5, 1, 1.0)]}},
        );
        assert!(ok(&r), "{r}");
        assert_eq!(w.sets_named("rs").len(), 2);
    }

    /// Built-in roles: clusterMonitor may read the status but not reconfigure.
    #[test]
    fn cluster_monitor_reads_but_does_not_reconfigure() {
        let (mut w, mut s) = initiated(1);
        let r = w.handle(&h(0), &mut s, &doc! {"createUser": "mon", "pwd": "m", "roles": [{"role": "clusterMonitor", "db": "admin"}]});
        assert!(ok(&r));
        let mut mon = Session::new(true, 3);
        mon.user = Some(("admin".into(), "mon".into()));
        assert!(ok(&w.handle(
            &h(0),
            &mut mon,
            &doc! {"replSetGetStatus": 1}
        )));
        let r = reconfig(&mut w, &mut mon, 0, 2, vec![member(0, 1, 2.0)]);
        assert_eq!(code(&r), Some(UNAUTHORIZED));
    }
    /// A binary runs only with its series' FCV or the one before (manual, "Upgrade a Replica
    /// Set to 7.0": one major at a time; server `feature_compatibility_version.cpp`: "UPGRADE
    /// PROBLEM: Found an invalid featureCompatibilityVersion document", `MustDowngrade`): a set
    /// initiated on 6.0 has FCV 6.0; a 7.0 binary starts on its data, an 8.0 one (two majors
    /// ahead) or a 5.0 one does not.
    #[test]
    fn binaries_run_only_with_their_fcv_or_the_one_before() {
        let (mut w, mut s) = world(2);
        for i in 0..2 {
            w.set_version(&h(i), "6.0.14");
        }
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0)]}},
        );
        assert!(ok(&r), "{r}");
        w.tick();
        assert_eq!(w.set("rs").unwrap().fcv, (6, 0));
        for bad in ["8.0.4", "5.0.26"] {
            w.set_version(&h(1), bad);
            assert!(
                w.start_failure(&h(1))
                    .is_some_and(|f| f.contains("featureCompatibilityVersion")),
                "{bad}"
            );
            assert!(!w.is_up(&h(1)));
        }
        w.set_version(&h(1), "7.0.12");
        assert!(w.start_failure(&h(1)).is_none());
        assert!(w.is_up(&h(1)));
    }

    /// `setFeatureCompatibilityVersion`: to the binary's series or the one before, only when
    /// every data-bearing member runs a binary that supports it (the upgrade pages'
    /// prerequisite); 7.0+ wants `confirm: true` and older servers refuse that field
    /// (manual, `setFeatureCompatibilityVersion`). `getParameter` reads it.
    #[test]
    fn set_feature_compatibility_version_needs_every_member_and_confirm_from_7_0() {
        let (mut w, mut s) = world(2);
        for i in 0..2 {
            w.set_version(&h(i), "6.0.14");
        }
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"replSetInitiate": {"_id": "rs", "members": [member(0, 1, 1.0), member(1, 1, 1.0)]}},
        );
        assert!(ok(&r), "{r}");
        elect(&mut w);
        let r = w.handle(
            &h(0),
            &mut s,
            &doc! {"createUser": "root", "pwd": "root-pass", "roles": ["root"]},
        );
        assert!(ok(&r), "{r}");
        let mut root = logged_in("root");
        let fcv = |w: &mut World, root: &mut Session| {
            w.handle(
                &h(0),
                root,
                &doc! {"getParameter": 1, "featureCompatibilityVersion": 1},
            )
            .get_document("featureCompatibilityVersion")
            .unwrap()
            .get_str("version")
            .unwrap()
            .to_owned()
        };
        assert_eq!(fcv(&mut w, &mut root), "6.0");
        let set = |w: &mut World, root: &mut Session, v: &str, confirm: bool| {
            let mut cmd = doc! {"setFeatureCompatibilityVersion": v};
            if confirm {
                cmd.insert("confirm", true);
            }
            w.handle(&h(0), root, &cmd)
        };
        // A 6.0 server does not know `confirm`.
        assert_eq!(
            code(&set(&mut w, &mut root, "6.0", true)),
            Some(IDL_UNKNOWN_FIELD)
        );
        w.set_version(&h(0), "7.0.12");
        assert_eq!(
            code(&set(&mut w, &mut root, "7.0", false)),
            Some(ILLEGAL_OPERATION)
        );
        let r = set(&mut w, &mut root, "7.0", true);
        assert_eq!(code(&r), Some(ILLEGAL_OPERATION), "member 1 still runs 6.0");
        assert!(r.get_str("errmsg").unwrap().contains(&h(1)), "{r}");
        w.set_version(&h(1), "7.0.12");
        assert!(ok(&set(&mut w, &mut root, "7.0", true)));
        assert_eq!(fcv(&mut w, &mut root), "7.0");
        assert_eq!(
            code(&set(&mut w, &mut root, "8.0", true)),
            Some(BAD_VALUE),
            "a 7.0 binary cannot run FCV 8.0"
        );
        // Back down (the downgrade path: the FCV first).
        assert!(ok(&set(&mut w, &mut root, "6.0", true)));
        assert_eq!(w.set("rs").unwrap().fcv, (6, 0));
    }
}
