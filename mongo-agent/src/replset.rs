//! The narrow adapter between the planner and MongoDB: every command the agent sends goes through
//! [`ReplSetAdmin`], over the official `mongodb` driver, one `directConnection` client per member
//! (the agent finds the primary itself with `hello`, so it never waits on the driver's topology
//! monitoring to notice an election). No shell, no `kubectl exec`, no password on a command line.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use fedstate_api::v1alpha1::ReplSetMemberStatus;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{AuthMechanism, ClientOptions, Credential, ServerAddress};
use mongodb::{Client, error::ErrorKind};
use tokio::sync::Mutex;

use crate::planner::{HostProbe, MemberState, Observed, RsConfig, RsMember, ServerFacts};
use crate::rollout::OpTime;

/// MongoDB's `CommandNotFound`.
const COMMAND_NOT_FOUND: i32 = 59;
/// MongoDB's `MaxTimeMSExpired`: the command ran out of its `maxTimeMS`.
pub const MAX_TIME_MS_EXPIRED: i32 = 50;
/// MongoDB's `CurrentConfigNotCommittedYet`: a reconfig could not start within its `maxTimeMS`.
pub const CURRENT_CONFIG_NOT_COMMITTED_YET: i32 = 308;

/// A password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Self {
        Self(p.into())
    }
    /// The value, for the driver and for leak tests only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(redacted)")
    }
}

/// A MongoDB user the agent logs in as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: Password,
}

/// Why a replica-set command failed. Messages carry the server's error code and name, never the
/// command document (which may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum ReplSetError {
    #[error("{host}: {command} failed: {code_name} ({code}): {message}")]
    Command {
        host: String,
        command: &'static str,
        code: i32,
        code_name: String,
        message: String,
    },
    #[error("{host}: {command}: authentication failed for user {user:?}")]
    Auth {
        host: String,
        command: &'static str,
        user: String,
    },
    #[error("{host}: {command}: {reason}")]
    Unreachable {
        host: String,
        command: &'static str,
        reason: String,
    },
    #[error("{host}: unexpected reply to {command}: {what}")]
    Reply {
        host: String,
        command: &'static str,
        what: String,
    },
}

impl ReplSetError {
    /// The server's error code, when the server answered.
    pub fn code(&self) -> Option<i32> {
        match self {
            Self::Command { code, .. } => Some(*code),
            _ => None,
        }
    }
    pub fn is_unauthorized(&self) -> bool {
        self.code() == Some(13) || matches!(self, Self::Auth { .. })
    }
    /// The server gave up waiting (for the set to be ready for a reconfig, or for a majority):
    /// nothing to fix, look again later.
    pub fn is_server_timeout(&self) -> bool {
        matches!(
            self.code(),
            Some(MAX_TIME_MS_EXPIRED | CURRENT_CONFIG_NOT_COMMITTED_YET)
        )
    }
}

/// What `hello` says about one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    pub set_name: Option<String>,
    pub primary: Option<String>,
    pub is_primary: bool,
    pub me: Option<String>,
    /// `arbiterOnly`: an arbiter has no users, so nothing but `hello` can be read from it.
    pub arbiter: bool,
}

/// What the agent saw, with what the status needs.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    pub observed: Observed,
    /// The raw config, so a reconfig keeps fields the planner does not manage.
    pub raw_config: Option<Document>,
    pub primary: Option<String>,
    /// A reachable member of the set (where a forced reconfig or status read can run).
    pub members: Vec<ReplSetMemberStatus>,
    /// Each data-bearing member's last applied operation, as the member the status was read
    /// from knows it (`replSetGetStatus.members[].optime`; arbiters have none).
    pub optimes: BTreeMap<String, OpTime>,
}

/// One driver client per (member, user), made with that user's password at the time.
type Clients = HashMap<(String, Option<String>), (Option<Password>, Client)>;

/// The adapter, logged in as one user (or nobody). Adapters made from one another with
/// [`ReplSetAdmin::with_login`] share their driver clients: at most one per (member, user), with
/// the password last asked for, so a reconcile logs in to a member once per user and the next
/// reconcile not at all (the driver keeps the authenticated connection). A client for an older
/// password (a rotation) or a member [`ReplSetAdmin::retain_hosts`] no longer names is dropped,
/// which shuts the driver's client down (its monitor stops dialling that member).
#[derive(Clone, Debug)]
pub struct ReplSetAdmin {
    login: Option<Login>,
    timeout: Duration,
    clients: Arc<Mutex<Clients>>,
    /// The driver's `appName` (mongod logs it with every connection).
    app_name: String,
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

impl ReplSetAdmin {
    /// `login: None` uses the localhost exception (only valid before the first user exists).
    pub fn new(login: Option<Login>, timeout: Duration) -> Self {
        Self {
            login,
            timeout,
            clients: Arc::default(),
            app_name: "fedstate-mongo-agent".to_owned(),
        }
    }

    /// The same adapter with another driver `appName` for the clients it makes (a test tells
    /// one cluster's agent from another's by it).
    pub fn with_app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = app_name.into();
        self
    }

    /// The same adapter logged in as someone else, sharing its clients.
    pub fn with_login(&self, login: Option<Login>) -> Self {
        Self {
            login,
            timeout: self.timeout,
            clients: self.clients.clone(),
            app_name: self.app_name.clone(),
        }
    }

    pub fn login(&self) -> Option<&Login> {
        self.login.as_ref()
    }

    async fn client(&self, host: &str, command: &'static str) -> Result<Client, ReplSetError> {
        let key = (host.to_owned(), self.login.as_ref().map(|l| l.user.clone()));
        let password = self.login.as_ref().map(|l| l.password.clone());
        let mut clients = self.clients.lock().await;
        match clients.get(&key) {
            Some((p, c)) if *p == password => return Ok(c.clone()),
            // Made with an older password: dropped below, when the new one replaces it.
            Some(_) | None => {}
        }
        let address = ServerAddress::parse(host).map_err(|e| ReplSetError::Unreachable {
            host: host.to_owned(),
            command,
            reason: format!("bad address: {e}"),
        })?;
        let mut options = ClientOptions::default();
        options.hosts = vec![address];
        options.direct_connection = Some(true);
        options.server_selection_timeout = Some(self.timeout);
        options.connect_timeout = Some(self.timeout);
        options.app_name = Some(self.app_name.clone());
        options.credential = self.login.as_ref().map(|l| {
            Credential::builder()
                .username(l.user.clone())
                .password(l.password.expose().to_owned())
                .source("admin".to_owned())
                .mechanism(AuthMechanism::ScramSha256)
                .build()
        });
        let client = Client::with_options(options).map_err(|e| ReplSetError::Unreachable {
            host: host.to_owned(),
            command,
            reason: e.to_string(),
        })?;
        clients.insert(key, (password, client.clone()));
        Ok(client)
    }

    /// Forget a member's clients (after a step-down or a restart closes their connections).
    pub async fn forget(&self, host: &str) {
        self.clients.lock().await.retain(|(h, _), _| h != host);
    }

    /// Drop the clients of every member not in `hosts` (members that left, deleted hosts).
    pub async fn retain_hosts(&self, hosts: &BTreeSet<String>) {
        self.clients
            .lock()
            .await
            .retain(|(h, _), _| hosts.contains(h));
    }

    /// The (member, user) pairs this adapter family holds a client for.
    pub async fn clients(&self) -> BTreeSet<(String, Option<String>)> {
        self.clients.lock().await.keys().cloned().collect()
    }

    /// One command on `host`'s admin database, bounded twice: the server gives up after
    /// `maxTimeMS` (MongoDB then answers `MaxTimeMSExpired`, or for a reconfig that cannot
    /// start `CurrentConfigNotCommittedYet`), and the agent stops waiting for an answer a
    /// little later (a member that accepts connections but never answers, a dropped reply).
    async fn run(
        &self,
        host: &str,
        command: &'static str,
        mut cmd: Document,
    ) -> Result<Document, ReplSetError> {
        let client = self.client(host, command).await?;
        let server_limit = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        cmd.insert("maxTimeMS", server_limit);
        let answer =
            tokio::time::timeout(self.timeout * 2, client.database("admin").run_command(cmd))
                .await
                .map_err(|_| ReplSetError::Unreachable {
                    host: host.to_owned(),
                    command,
                    reason: format!("no answer within {:?}", self.timeout * 2),
                })?;
        answer.map_err(|e| match e.kind.as_ref() {
            ErrorKind::Command(c) => ReplSetError::Command {
                host: host.to_owned(),
                command,
                code: c.code,
                code_name: c.code_name.clone(),
                message: c.message.clone(),
            },
            ErrorKind::Authentication { .. } => ReplSetError::Auth {
                host: host.to_owned(),
                command,
                user: self
                    .login
                    .as_ref()
                    .map(|l| l.user.clone())
                    .unwrap_or_default(),
            },
            _ => ReplSetError::Unreachable {
                host: host.to_owned(),
                command,
                reason: e.to_string(),
            },
        })
    }

    /// Any admin command on one member (the real-mongod tier's in-pod stand-in).
    pub async fn run_raw(&self, host: &str, cmd: Document) -> Result<Document, ReplSetError> {
        self.run(host, "command", cmd).await
    }

    /// `hello` on one member; `isMaster` on servers before 4.4.2, which do not know `hello`
    /// (MongoDB manual, `hello`: "New in version 4.4.2 (also 4.2.10, 4.0.21)").
    pub async fn hello(&self, host: &str) -> Result<Hello, ReplSetError> {
        let (d, writable) = match self.run(host, "hello", doc! {"hello": 1}).await {
            Err(e) if e.code() == Some(COMMAND_NOT_FOUND) => (
                self.run(host, "isMaster", doc! {"isMaster": 1}).await?,
                "ismaster",
            ),
            r => (r?, "isWritablePrimary"),
        };
        Ok(Hello {
            set_name: d.get_str("setName").ok().map(str::to_owned),
            primary: d.get_str("primary").ok().map(str::to_owned),
            is_primary: d.get_bool(writable).unwrap_or(false),
            me: d.get_str("me").ok().map(str::to_owned),
            arbiter: d.get_bool("arbiterOnly").unwrap_or(false),
        })
    }

    /// What `hello` says about a host before initiating.
    pub async fn probe(&self, host: &str) -> HostProbe {
        match self.hello(host).await {
            Ok(Hello {
                set_name: Some(s), ..
            }) => HostProbe::InSet { set_name: s },
            Ok(_) => HostProbe::Uninitiated,
            Err(_) => HostProbe::Unreachable,
        }
    }

    /// Look at the set through any of `hosts` that belongs to `set_name`.
    pub async fn observe(
        &self,
        set_name: &str,
        hosts: &BTreeSet<String>,
    ) -> Result<Observation, ReplSetError> {
        let mut in_set = Vec::new();
        let mut arbiters = Vec::new();
        let mut primary = None;
        // Every host at once: a member that does not answer costs one timeout, not one each.
        let hellos = futures::future::join_all(hosts.iter().map(|h| self.hello(h))).await;
        for (h, hello) in hosts.iter().zip(hellos) {
            if let Ok(hello) = hello
                && hello.set_name.as_deref() == Some(set_name)
            {
                if hello.is_primary {
                    primary = Some(h.clone());
                } else if primary.is_none() {
                    primary = hello.primary.clone();
                }
                if hello.arbiter {
                    arbiters.push(h.clone());
                } else {
                    in_set.push(h.clone());
                }
            }
        }
        // An arbiter cannot be logged in to (it has no users): it is read only when no
        // data-bearing member answers, and then the read fails as it must.
        in_set.extend(arbiters);
        let Some(first) = in_set.first().cloned() else {
            return Ok(Observation::default());
        };
        // Read from the primary when it answers; otherwise from a data-bearing member: while
        // the set has no primary (an election takes an election timeout, 10 s by default), or
        // the members still report a dead one as PRIMARY until heartbeats mark it down.
        let mut source = first;
        let mut committed = false;
        let mut raw = None;
        if let Some(p) = &primary
            && let Ok(d) = self
                .run(
                    p,
                    "replSetGetConfig",
                    doc! {"replSetGetConfig": 1, "commitmentStatus": true},
                )
                .await
        {
            committed = d.get_bool("commitmentStatus").unwrap_or(false);
            raw = d.get_document("config").ok().cloned();
            source = p.clone();
        }
        let raw = match raw {
            Some(r) => r,
            None => {
                let d = self
                    .run(&source, "replSetGetConfig", doc! {"replSetGetConfig": 1})
                    .await?;
                d.get_document("config")
                    .cloned()
                    .map_err(|_| ReplSetError::Reply {
                        host: source.clone(),
                        command: "replSetGetConfig",
                        what: "no config document".into(),
                    })?
            }
        };
        let config = parse_config(&raw).ok_or_else(|| ReplSetError::Reply {
            host: source.clone(),
            command: "replSetGetConfig",
            what: "config without _id, version or members".into(),
        })?;
        let status = self
            .run(&source, "replSetGetStatus", doc! {"replSetGetStatus": 1})
            .await?;
        let members = parse_status(&status);
        let optimes = parse_optimes(&status);
        let states: BTreeMap<String, MemberState> = members
            .iter()
            .map(|m| (m.name.clone(), MemberState::from_status(m.state, m.health)))
            .collect();
        let primary = states
            .iter()
            .find(|(_, s)| **s == MemberState::Primary)
            .map(|(h, _)| h.clone());
        let server = match &primary {
            Some(p) => self.server_facts(p).await,
            None => ServerFacts::default(),
        };
        Ok(Observation {
            observed: Observed {
                config: Some(config),
                committed,
                states,
                server,
            },
            raw_config: Some(raw),
            primary,
            members,
            optimes,
        })
    }

    /// `buildInfo`'s `(major, minor)` (needs no login).
    pub async fn version(&self, host: &str) -> Result<(u32, u32), ReplSetError> {
        let d = self.run(host, "buildInfo", doc! {"buildInfo": 1}).await?;
        let v = d.get_str("version").unwrap_or_default();
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(ReplSetError::Reply {
                host: host.to_owned(),
                command: "buildInfo",
                what: format!("version {v:?}"),
            }),
        }
    }

    /// The primary's version and whether a cluster-wide default write concern is set; what is
    /// not known stays unknown (the planner then assumes the 5.0+ rules).
    async fn server_facts(&self, primary: &str) -> ServerFacts {
        let version = self.version(primary).await.ok();
        let global_write_concern = match self
            .run(
                primary,
                "getDefaultRWConcern",
                doc! {"getDefaultRWConcern": 1},
            )
            .await
        {
            Ok(d) => d.get_str("defaultWriteConcernSource") == Ok("global"),
            Err(_) => false,
        };
        ServerFacts {
            version,
            global_write_concern,
        }
    }

    /// `setDefaultRWConcern` with `{w: "majority"}` on the primary: what a set without arbiters
    /// has implicitly, so adding an arbiter does not silently weaken acknowledged writes.
    pub async fn set_default_write_concern(&self, primary: &str) -> Result<(), ReplSetError> {
        self.run(
            primary,
            "setDefaultRWConcern",
            doc! {"setDefaultRWConcern": 1, "defaultWriteConcern": {"w": "majority"}, "writeConcern": {"w": "majority"}},
        )
        .await
        .map(drop)
    }

    /// `buildInfo` of each of `hosts` that answers (needs no login).
    pub async fn binaries(&self, hosts: &BTreeSet<String>) -> BTreeMap<String, (u32, u32)> {
        let mut out = BTreeMap::new();
        for h in hosts {
            if let Ok(v) = self.version(h).await {
                out.insert(h.clone(), v);
            }
        }
        out
    }

    /// The set's feature compatibility version, as the first of `hosts` that answers says
    /// (`getParameter`, a clusterMonitor privilege).
    pub async fn feature_compatibility(&self, hosts: &BTreeSet<String>) -> Option<(u32, u32)> {
        for h in hosts {
            let Ok(d) = self
                .run(
                    h,
                    "getParameter",
                    doc! {"getParameter": 1, "featureCompatibilityVersion": 1},
                )
                .await
            else {
                continue;
            };
            let v = d
                .get_document("featureCompatibilityVersion")
                .ok()
                .and_then(|f| f.get_str("version").ok())?;
            let (a, b) = v.split_once('.')?;
            return Some((a.parse().ok()?, b.parse().ok()?));
        }
        None
    }

    /// `setFeatureCompatibilityVersion` on the primary (`confirm: true` for 7.0+ servers).
    pub async fn set_feature_compatibility(
        &self,
        primary: &str,
        (major, minor): (u32, u32),
        confirm: bool,
    ) -> Result<(), ReplSetError> {
        let mut cmd = doc! {"setFeatureCompatibilityVersion": format!("{major}.{minor}")};
        if confirm {
            cmd.insert("confirm", true);
        }
        self.run(primary, "setFeatureCompatibilityVersion", cmd)
            .await
            .map(drop)
    }

    /// `replSetInitiate` with `config` on `on`.
    pub async fn initiate(&self, on: &str, config: &RsConfig) -> Result<(), ReplSetError> {
        let cfg = render_config(None, config);
        self.run(on, "replSetInitiate", doc! {"replSetInitiate": cfg})
            .await
            .map(drop)
    }

    /// `replSetReconfig` on `on` (the primary, or any member with `force`), keeping the fields
    /// of `raw` the planner does not manage.
    pub async fn reconfig(
        &self,
        on: &str,
        raw: Option<&Document>,
        config: &RsConfig,
        force: bool,
    ) -> Result<(), ReplSetError> {
        let cfg = render_config(raw, config);
        let mut cmd = doc! {"replSetReconfig": cfg};
        if force {
            cmd.insert("force", true);
        }
        self.run(on, "replSetReconfig", cmd).await.map(drop)
    }

    /// `replSetStepDown` on the primary. MongoDB may drop the connection while stepping down, so
    /// a network error counts as done; the next observation tells.
    pub async fn step_down(&self, primary: &str) -> Result<(), ReplSetError> {
        let r = self
            .run(
                primary,
                "replSetStepDown",
                doc! {"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": 10},
            )
            .await;
        self.forget(primary).await;
        match r {
            Ok(_) | Err(ReplSetError::Unreachable { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether `user` exists (`usersInfo` on the admin database).
    pub async fn user_exists(&self, host: &str, user: &str) -> Result<bool, ReplSetError> {
        let d = self
            .run(host, "usersInfo", doc! {"usersInfo": user})
            .await?;
        Ok(d.get_array("users").is_ok_and(|u| !u.is_empty()))
    }

    /// `createUser` on the admin database; the password goes only into the command body.
    pub async fn create_user(
        &self,
        primary: &str,
        login: &Login,
        roles: &[&str],
    ) -> Result<(), ReplSetError> {
        let roles: Vec<Bson> = roles
            .iter()
            .map(|r| Bson::Document(doc! {"role": *r, "db": "admin"}))
            .collect();
        self.run(
            primary,
            "createUser",
            doc! {"createUser": &login.user, "pwd": login.password.expose(), "roles": roles, "mechanisms": ["SCRAM-SHA-256"]},
        )
        .await
        .map(drop)
    }

    /// `updateUser` with a new password (rotation).
    pub async fn set_password(&self, primary: &str, login: &Login) -> Result<(), ReplSetError> {
        self.run(
            primary,
            "updateUser",
            doc! {"updateUser": &login.user, "pwd": login.password.expose(), "mechanisms": ["SCRAM-SHA-256"]},
        )
        .await
        .map(drop)
    }

    /// Whether `login` can authenticate on `host` right now.
    pub async fn can_login(&self, host: &str, login: &Login) -> Result<bool, ReplSetError> {
        let probe = self.with_login(Some(login.clone()));
        match probe
            .run(host, "replSetGetStatus", doc! {"replSetGetStatus": 1})
            .await
        {
            Ok(_) => Ok(true),
            Err(ReplSetError::Auth { .. }) => Ok(false),
            // Logged in but not allowed (e.g. a user without cluster roles): still a valid login.
            Err(e) if e.code() == Some(13) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// The planner's view of a raw config.
pub fn parse_config(raw: &Document) -> Option<RsConfig> {
    let name = raw.get_str("_id").ok()?.to_owned();
    let version = number(raw, "version")? as i64;
    let members = raw
        .get_array("members")
        .ok()?
        .iter()
        .filter_map(Bson::as_document)
        .map(|m| {
            let arbiter_only = m.get_bool("arbiterOnly").unwrap_or(false);
            Some(RsMember {
                id: number(m, "_id")? as i32,
                host: m.get_str("host").ok()?.to_owned(),
                votes: number(m, "votes").unwrap_or(1.0) as i32,
                priority: planner_priority(number(m, "priority").unwrap_or(if arbiter_only {
                    0.0
                } else {
                    1.0
                })),
                arbiter_only,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(RsConfig {
        name,
        version,
        members,
    })
}

/// The planner works with whole priorities; a fractional one (a user's 0.5) counts as the nearest
/// whole number, but never as 0 (which would make an electable member unelectable).
fn planner_priority(p: f64) -> i32 {
    if p > 0.0 {
        (p.round() as i32).max(1)
    } else {
        0
    }
}

/// A config document for `config`, starting from `raw` (fields of unchanged members, settings).
/// A priority the planner did not change keeps its exact value (MongoDB allows fractions), and
/// `newlyAdded` (set by the server on 4.4+, refused from a client) is never sent back.
pub fn render_config(raw: Option<&Document>, config: &RsConfig) -> Document {
    let old: BTreeMap<i32, Document> = raw
        .and_then(|r| r.get_array("members").ok())
        .into_iter()
        .flatten()
        .filter_map(Bson::as_document)
        .filter_map(|m| Some((number(m, "_id")? as i32, m.clone())))
        .collect();
    let members: Vec<Bson> = config
        .members
        .iter()
        .map(|m| {
            let mut d = old.get(&m.id).cloned().unwrap_or_default();
            let kept = number(&d, "priority").filter(|p| planner_priority(*p) == m.priority);
            d.remove("newlyAdded");
            d.insert("_id", m.id);
            d.insert("host", &m.host);
            d.insert("votes", m.votes);
            match kept {
                Some(p) => d.insert("priority", p),
                None => d.insert("priority", m.priority),
            };
            d.insert("arbiterOnly", m.arbiter_only);
            Bson::Document(d)
        })
        .collect();
    let mut d = raw.cloned().unwrap_or_default();
    // The server owns the term; a stale one would be refused.
    d.remove("term");
    d.insert("_id", &config.name);
    d.insert("version", config.version);
    d.insert("members", members);
    d
}

/// `replSetGetStatus.members` in our status type.
pub fn parse_status(status: &Document) -> Vec<ReplSetMemberStatus> {
    status
        .get_array("members")
        .into_iter()
        .flatten()
        .filter_map(Bson::as_document)
        .map(|m| ReplSetMemberStatus {
            id: number(m, "_id").unwrap_or(0.0) as i32,
            name: m.get_str("name").unwrap_or_default().to_owned(),
            health: number(m, "health").unwrap_or(0.0) as i32,
            state: number(m, "state").unwrap_or(0.0) as i32,
            state_str: m.get_str("stateStr").unwrap_or_default().to_owned(),
            sync_source_host: m.get_str("syncSourceHost").ok().map(str::to_owned),
            syncing_to: None,
        })
        .collect()
}

/// `replSetGetStatus.members[].optime` by member name: `{ts: Timestamp, t: term}` (protocol
/// version 1, the only one from 4.0 on). Members without one (arbiters) are left out.
pub fn parse_optimes(status: &Document) -> BTreeMap<String, OpTime> {
    status
        .get_array("members")
        .into_iter()
        .flatten()
        .filter_map(Bson::as_document)
        .filter_map(|m| {
            let optime = m.get_document("optime").ok()?;
            let ts = optime.get_timestamp("ts").ok()?;
            let t = OpTime {
                seconds: ts.time,
                increment: ts.increment,
                term: number(optime, "t").map_or(-1, |t| t as i64),
            };
            Some((m.get_str("name").ok()?.to_owned(), t))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// mongod's shapes: a member with `{ts, t}`, a down one with `Timestamp(0, 0)` and term -1
    /// (known, not caught up), an arbiter without any.
    #[test]
    fn optimes_are_read_from_replset_get_status_as_mongod_reports_them() {
        let ts = |time, increment| mongodb::bson::Timestamp { time, increment };
        let status = doc! {"members": [
            {"name": "a:1", "state": 1, "optime": {"ts": ts(1_700_000_100, 3), "t": 4i64}, "optimeDate": mongodb::bson::DateTime::from_millis(1_700_000_100_000)},
            {"name": "b:2", "state": 8, "optime": {"ts": ts(0, 0), "t": -1i64}},
            {"name": "c:3", "state": 7},
        ]};
        let got = parse_optimes(&status);
        assert_eq!(
            got.get("a:1"),
            Some(&OpTime {
                seconds: 1_700_000_100,
                increment: 3,
                term: 4
            })
        );
        assert!(!got.get("b:2").unwrap().is_known());
        assert!(!got.contains_key("c:3"));
    }

    #[test]
    fn render_keeps_unmanaged_fields_and_drops_the_term() {
        let raw = doc! {"_id": "rs", "version": 3, "term": 7i64, "settings": {"chainingAllowed": false},
        "members": [{"_id": 0, "host": "a:1", "votes": 1, "priority": 1.0, "tags": {"dc": "x"}}]};
        let mut cfg = parse_config(&raw).unwrap();
        assert_eq!(cfg.members[0].priority, 1);
        cfg.version = 4;
        cfg.members[0].priority = 3;
        cfg.members.push(RsMember {
            id: 1,
            host: "b:2".into(),
            votes: 0,
            priority: 0,
            arbiter_only: false,
        });
        let out = render_config(Some(&raw), &cfg);
        assert!(out.get("term").is_none());
        assert!(
            !out.get_document("settings")
                .unwrap()
                .get_bool("chainingAllowed")
                .unwrap()
        );
        let m0 = out.get_array("members").unwrap()[0].as_document().unwrap();
        assert_eq!(m0.get_document("tags").unwrap().get_str("dc").unwrap(), "x");
        assert_eq!(m0.get_i32("priority").unwrap(), 3);
        assert_eq!(out.get_array("members").unwrap().len(), 2);
    }

    /// "Replica Set Configuration": `members[n].priority` is a number from 0 to 1000 and may be
    /// fractional; `newlyAdded` is server-managed (4.4+) and a config carrying it is refused.
    #[test]
    fn fractional_priorities_are_kept_and_newly_added_is_not_sent_back() {
        let raw = doc! {"_id": "rs", "version": 3, "members": [
            {"_id": 0, "host": "a:1", "votes": 1, "priority": 0.5},
            {"_id": 1, "host": "b:1", "votes": 1, "priority": 2.5, "newlyAdded": true},
        ]};
        let mut cfg = parse_config(&raw).unwrap();
        assert_eq!(cfg.members[0].priority, 1, "0.5 is electable, never 0");
        cfg.version = 4;
        cfg.members[1].priority = 4;
        let out = render_config(Some(&raw), &cfg);
        let m = out.get_array("members").unwrap();
        let m0 = m[0].as_document().unwrap();
        let m1 = m[1].as_document().unwrap();
        assert_eq!(m0.get_f64("priority").unwrap(), 0.5);
        assert_eq!(m1.get_i32("priority").unwrap(), 4);
        assert!(m1.get("newlyAdded").is_none());
    }

    #[test]
    fn passwords_never_print() {
        let l = Login {
            user: "root".into(),
            password: Password::new("hunter2-very-secret"),
        };
        assert!(!format!("{l:?}").contains("hunter2"));
    }
}
