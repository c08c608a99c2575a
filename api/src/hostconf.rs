//! The host-list ConfigMap (`<name>-hostconf`): the desired members of one replica set across all
//! clusters, which the manager maintains and every agent reads (`spec.memberConfigRef`).
//!
//! The ConfigMap holds one key, [`HOSTCONF_KEY`], whose value is a JSON array of [`HostEntry`]:
//! ```json
//! [{"host":"127.0.1.1:30017","memberIndex":0,"votes":1,"priority":2,"arbiterOnly":false,"cluster":"member1"}]
//! ```
//! [`HostConf::render`] always writes entries sorted by `memberIndex` (arbiters last) so the
//! manager's apply is a no-op when nothing changed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_MEMBER_INDEX, MAX_MEMBERS, MAX_PRIORITY, MAX_VOTERS};

/// The ConfigMap key holding the JSON host list.
pub const HOSTCONF_KEY: &str = "hostconf.json";

/// The ConfigMap key the manager sets (to [`TEARDOWN_VALUE`]) when the whole federated object is
/// deleted, before it deletes the member objects: every member of the set goes, so an agent whose
/// object is deleted need not take its members out of a set that does not live on. Without it, a
/// deleted member object means one cluster leaves a set that lives on elsewhere.
pub const TEARDOWN_KEY: &str = "teardown";
/// The value of [`TEARDOWN_KEY`].
pub const TEARDOWN_VALUE: &str = "whole-set";

/// One desired member of the replica set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostEntry {
    /// `<vip>:<nodePort>`, the address every member and client uses.
    pub host: String,
    /// Set-wide stable index (`<name>-mongodb-<memberIndex>`); arbiters use their own index too.
    pub member_index: i32,
    /// 0 or 1.
    pub votes: i32,
    /// 0 for non-voters and arbiters.
    pub priority: i32,
    #[serde(default)]
    pub arbiter_only: bool,
    /// The member cluster running this member.
    pub cluster: String,
}

/// The whole desired member list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostConf {
    pub hosts: Vec<HostEntry>,
}

/// Why a host list is unusable.
#[derive(Debug, thiserror::Error)]
pub enum HostConfError {
    #[error("ConfigMap key {HOSTCONF_KEY:?}: not a JSON host list: {0}")]
    Json(#[source] serde_json::Error),
    #[error("ConfigMap key {HOSTCONF_KEY:?}: host {0:?} is listed twice")]
    DuplicateHost(String),
    #[error("ConfigMap key {HOSTCONF_KEY:?}: memberIndex {0} is listed twice")]
    DuplicateIndex(i32),
    #[error(
        "ConfigMap key {HOSTCONF_KEY:?}: host {host:?} has memberIndex {index}; member indexes are 0..={MAX_MEMBER_INDEX}"
    )]
    BadIndex { host: String, index: i32 },
    #[error("ConfigMap key {HOSTCONF_KEY:?}: host {0:?} is not <address>:<port>")]
    BadHost(String),
    #[error(
        "ConfigMap key {HOSTCONF_KEY:?}: host {host:?} has votes {votes} priority {priority}; votes must be 0 or 1, priority 0..=1000, non-voters and arbiters need priority 0"
    )]
    BadRole {
        host: String,
        votes: i32,
        priority: i32,
    },
    #[error(
        "ConfigMap key {HOSTCONF_KEY:?}: {0} voting members; MongoDB allows at most {MAX_VOTERS}"
    )]
    TooManyVoters(usize),
    #[error("ConfigMap key {HOSTCONF_KEY:?}: {0} members; MongoDB allows at most {MAX_MEMBERS}")]
    TooManyMembers(usize),
}

impl HostConf {
    /// Parse and validate the value of [`HOSTCONF_KEY`].
    pub fn parse(json: &str) -> Result<Self, HostConfError> {
        let conf: HostConf = serde_json::from_str(json).map_err(HostConfError::Json)?;
        conf.validate()?;
        Ok(conf)
    }

    /// The value to store under [`HOSTCONF_KEY`]: canonical order, compact JSON.
    pub fn render(&self) -> String {
        let mut sorted = self.hosts.clone();
        sorted.sort_by_key(|h| (h.arbiter_only, h.member_index));
        serde_json::to_string(&sorted).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Check MongoDB's limits and our invariants (unique hosts and indexes within
    /// `0..=49`, sane roles). The size is checked first, so an oversized list costs nothing more.
    pub fn validate(&self) -> Result<(), HostConfError> {
        if self.hosts.len() > usize::from(MAX_MEMBERS) {
            return Err(HostConfError::TooManyMembers(self.hosts.len()));
        }
        let mut hosts = BTreeSet::new();
        let mut indexes = BTreeSet::new();
        for h in &self.hosts {
            let port_ok = h
                .host
                .rsplit_once(':')
                .is_some_and(|(a, p)| !a.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                return Err(HostConfError::BadHost(h.host.clone()));
            }
            if !hosts.insert(h.host.as_str()) {
                return Err(HostConfError::DuplicateHost(h.host.clone()));
            }
            if !(0..=i32::from(MAX_MEMBER_INDEX)).contains(&h.member_index) {
                return Err(HostConfError::BadIndex {
                    host: h.host.clone(),
                    index: h.member_index,
                });
            }
            if !indexes.insert((h.arbiter_only, h.member_index)) {
                return Err(HostConfError::DuplicateIndex(h.member_index));
            }
            let role_ok = matches!(h.votes, 0 | 1)
                && (0..=i32::from(MAX_PRIORITY)).contains(&h.priority)
                && (h.votes == 1 || h.priority == 0)
                && (!h.arbiter_only || (h.priority == 0 && h.votes == 1));
            if !role_ok {
                return Err(HostConfError::BadRole {
                    host: h.host.clone(),
                    votes: h.votes,
                    priority: h.priority,
                });
            }
        }
        let voters = self.voters();
        if voters > usize::from(MAX_VOTERS) {
            return Err(HostConfError::TooManyVoters(voters));
        }
        Ok(())
    }

    /// Number of voting members (arbiters included).
    pub fn voters(&self) -> usize {
        self.hosts.iter().filter(|h| h.votes > 0).count()
    }

    /// The entries one cluster runs.
    pub fn in_cluster<'a>(&'a self, cluster: &'a str) -> impl Iterator<Item = &'a HostEntry> + 'a {
        self.hosts.iter().filter(move |h| h.cluster == cluster)
    }

    /// The entry for `host`, if desired.
    pub fn get(&self, host: &str) -> Option<&HostEntry> {
        self.hosts.iter().find(|h| h.host == host)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(host: &str, idx: i32, votes: i32, priority: i32, cluster: &str) -> HostEntry {
        HostEntry {
            host: host.into(),
            member_index: idx,
            votes,
            priority,
            arbiter_only: false,
            cluster: cluster.into(),
        }
    }

    #[test]
    fn renders_canonical_json_and_parses_it_back() {
        let conf = HostConf {
            hosts: vec![
                entry("127.0.1.2:30001", 1, 1, 1, "member2"),
                HostEntry {
                    arbiter_only: true,
                    priority: 0,
                    ..entry("127.0.1.3:30002", 0, 1, 0, "member3")
                },
                entry("127.0.1.1:30000", 0, 1, 2, "member1"),
            ],
        };
        let json = conf.render();
        assert!(json.starts_with(
            r#"[{"host":"127.0.1.1:30000","memberIndex":0,"votes":1,"priority":2,"arbiterOnly":false,"cluster":"member1"}"#
        ));
        assert!(json.ends_with(r#""arbiterOnly":true,"cluster":"member3"}]"#));
        let back = HostConf::parse(&json).unwrap();
        assert_eq!(back.hosts.len(), 3);
        assert_eq!(back.render(), json);
        assert_eq!(back.in_cluster("member2").count(), 1);
        assert_eq!(back.voters(), 3);
    }

    #[test]
    fn arbiter_only_defaults_to_false() {
        let c = HostConf::parse(
            r#"[{"host":"a:1","memberIndex":0,"votes":1,"priority":1,"cluster":"c"}]"#,
        )
        .unwrap();
        assert!(!c.hosts[0].arbiter_only);
    }

    #[test]
    fn rejects_what_mongodb_would_reject() {
        let dup = HostConf {
            hosts: vec![entry("a:1", 0, 1, 1, "c"), entry("a:1", 1, 1, 1, "c")],
        };
        assert!(matches!(
            dup.validate(),
            Err(HostConfError::DuplicateHost(_))
        ));
        let eight = HostConf {
            hosts: (0..8)
                .map(|i| entry(&format!("h:{}", 100 + i), i, 1, 1, "c"))
                .collect(),
        };
        assert_eq!(
            eight.validate().unwrap_err().to_string(),
            "ConfigMap key \"hostconf.json\": 8 voting members; MongoDB allows at most 7"
        );
        let nonvoter_with_priority = HostConf {
            hosts: vec![entry("a:1", 0, 0, 1, "c")],
        };
        assert!(matches!(
            nonvoter_with_priority.validate(),
            Err(HostConfError::BadRole { .. })
        ));
        let no_port = HostConf {
            hosts: vec![entry("a", 0, 1, 1, "c")],
        };
        assert!(matches!(no_port.validate(), Err(HostConfError::BadHost(_))));
        assert!(matches!(HostConf::parse("{"), Err(HostConfError::Json(_))));
    }

    #[test]
    fn indexes_and_sizes_are_bounded() {
        // Member indexes name Services and `memberRoles` entries (0..=49 in the CRD); an index
        // outside that range passed before and reached the agent.
        let huge = HostConf {
            hosts: vec![entry("a:1", i32::MAX, 1, 1, "c")],
        };
        assert_eq!(
            huge.validate().unwrap_err().to_string(),
            "ConfigMap key \"hostconf.json\": host \"a:1\" has memberIndex 2147483647; member indexes are 0..=49"
        );
        let negative = HostConf {
            hosts: vec![entry("a:1", -1, 0, 0, "c")],
        };
        assert!(matches!(
            negative.validate(),
            Err(HostConfError::BadIndex { index: -1, .. })
        ));
        let fifty_one = HostConf {
            hosts: (0..51)
                .map(|i| entry(&format!("h:{}", 100 + i), i % 50, 0, 0, "c"))
                .collect(),
        };
        assert!(matches!(
            fifty_one.validate(),
            Err(HostConfError::TooManyMembers(51))
        ));
        let priority = HostConf {
            hosts: vec![entry("a:1", 0, 1, 1001, "c")],
        };
        assert!(matches!(
            priority.validate(),
            Err(HostConfError::BadRole { .. })
        ));
    }
}
