//! What each client sent to the Karmada apiserver, from the apiserver's own audit log.
//!
//! The local federation logs, at `Metadata` level, every request of a client whose certificate
//! carries the group `fedstate:audited` (`fedstate_local::AUDITED_GROUP`): one JSON event per
//! line, with the user, verb, resource, subresource and response code. `apiserver_request_total`
//! has no user or user-agent label, so it cannot tell two schedulers apart; the audit log can.
//!
//! A request is counted once: at its `ResponseComplete` event, or for a watch (long-running) at
//! its `ResponseStarted` event.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    stage: String,
    verb: String,
    user: User,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    #[serde(default)]
    response_status: Option<ResponseStatus>,
}

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Debug, Deserialize)]
struct ObjectRef {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
}

#[derive(Debug, Deserialize)]
struct ResponseStatus {
    #[serde(default)]
    code: u16,
}

/// Requests of one client, by what they were for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    /// Patches/updates of a binding (`spec.clusters`, the applied-placement annotation).
    pub binding_spec: u64,
    /// Patches/updates of a binding's status.
    pub binding_status: u64,
    /// Patches/updates of a MultiCloudMongoDB (the schedulerResult annotation).
    pub mcm_spec: u64,
    /// Patches/updates/applies of a MultiCloudMongoDB's status.
    pub mcm_status: u64,
    /// Events created or patched (core and events.k8s.io).
    pub events: u64,
    /// get and list.
    pub reads: u64,
    /// Watches started.
    pub watches: u64,
    /// Any other write (lease renewals, creates, deletes).
    pub other_writes: u64,
    /// Responses with a code of 400 or more (conflicts included).
    pub failed: u64,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.binding_spec
            + self.binding_status
            + self.mcm_spec
            + self.mcm_status
            + self.events
            + self.reads
            + self.watches
            + self.other_writes
    }

    /// Writes to the objects scheduled (bindings or MultiCloudMongoDBs), spec and status.
    pub fn object_writes(&self) -> u64 {
        self.binding_spec + self.binding_status + self.mcm_spec + self.mcm_status
    }

    fn add(&mut self, e: &Event) {
        let (resource, subresource) = e
            .object_ref
            .as_ref()
            .map_or(("", ""), |o| (o.resource.as_str(), o.subresource.as_str()));
        let write = matches!(e.verb.as_str(), "patch" | "update" | "apply");
        match (resource, write) {
            ("resourcebindings" | "clusterresourcebindings", true) => {
                if subresource == "status" {
                    self.binding_status += 1;
                } else {
                    self.binding_spec += 1;
                }
            }
            ("multicloudmongodbs", true) => {
                if subresource == "status" {
                    self.mcm_status += 1;
                } else {
                    self.mcm_spec += 1;
                }
            }
            ("events", _) if matches!(e.verb.as_str(), "create" | "patch" | "update") => {
                self.events += 1;
            }
            _ => match e.verb.as_str() {
                "get" | "list" => self.reads += 1,
                "watch" => self.watches += 1,
                _ => self.other_writes += 1,
            },
        }
        if e.response_status.as_ref().is_some_and(|s| s.code >= 400) {
            self.failed += 1;
        }
    }

    /// `self − before`, per field (counters only grow).
    pub fn since(&self, before: &Requests) -> Requests {
        Requests {
            binding_spec: self.binding_spec - before.binding_spec,
            binding_status: self.binding_status - before.binding_status,
            mcm_spec: self.mcm_spec - before.mcm_spec,
            mcm_status: self.mcm_status - before.mcm_status,
            events: self.events - before.events,
            reads: self.reads - before.reads,
            watches: self.watches - before.watches,
            other_writes: self.other_writes - before.other_writes,
            failed: self.failed - before.failed,
        }
    }
}

/// Whether an event is the one that counts its request.
fn counts(e: &Event) -> bool {
    match e.stage.as_str() {
        "ResponseStarted" => e.verb == "watch",
        "ResponseComplete" | "Panic" => e.verb != "watch",
        _ => false,
    }
}

/// Reads an audit log incrementally: every call adds the events appended since the last one.
#[derive(Debug)]
pub struct AuditLog {
    path: std::path::PathBuf,
    offset: u64,
    /// A line not yet complete at the last read.
    partial: Vec<u8>,
    by_user: BTreeMap<String, Requests>,
    /// Lines that did not parse (there should be none).
    pub unparsed: u64,
}

impl AuditLog {
    /// From the current end of the file: only requests after this call are counted.
    pub fn from_end(path: &Path) -> std::io::Result<Self> {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            offset,
            partial: Vec::new(),
            by_user: BTreeMap::new(),
            unparsed: 0,
        })
    }

    /// Reads what was appended; returns the totals per user since the start.
    pub fn poll(&mut self) -> std::io::Result<&BTreeMap<String, Requests>> {
        let mut f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(&self.by_user),
            Err(e) => return Err(e),
        };
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = std::mem::take(&mut self.partial);
        let read = f.read_to_end(&mut buf)?;
        self.offset += read as u64;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.partial = buf[complete..].to_vec();
        for line in BufReader::new(&buf[..complete]).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Event>(&line) {
                Ok(e) if counts(&e) => self
                    .by_user
                    .entry(e.user.username.clone())
                    .or_default()
                    .add(&e),
                Ok(_) => {}
                Err(_) => self.unparsed += 1,
            }
        }
        Ok(&self.by_user)
    }

    /// Totals of one user since the start.
    pub fn user(&self, user: &str) -> Requests {
        self.by_user.get(user).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    fn line(stage: &str, verb: &str, user: &str, resource: &str, sub: &str, code: u16) -> String {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "stage": stage, "verb": verb, "user": {"username": user, "groups": ["fedstate:audited"]},
            "userAgent": "x", "objectRef": {"resource": resource, "subresource": sub, "namespace": "ns", "name": "n"},
            "responseStatus": {"code": code}
        })
        .to_string()
    }

    #[test]
    fn counts_each_request_once_by_user_and_kind_and_reads_incrementally() {
        let dir = std::env::temp_dir().join(format!("bench-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(
            f,
            "{}",
            line(
                "ResponseComplete",
                "patch",
                "old",
                "resourcebindings",
                "",
                200
            )
        )
        .unwrap();
        drop(f);
        let mut log = AuditLog::from_end(&path).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        for l in [
            line(
                "ResponseComplete",
                "patch",
                "ours",
                "resourcebindings",
                "",
                200,
            ),
            line(
                "ResponseComplete",
                "patch",
                "ours",
                "resourcebindings",
                "status",
                200,
            ),
            line("ResponseComplete", "create", "ours", "events", "", 201),
            line("ResponseStarted", "watch", "ours", "clusters", "", 200),
            // The end of the same watch: not another request.
            line("ResponseComplete", "watch", "ours", "clusters", "", 200),
            line(
                "ResponseComplete",
                "get",
                "karmada",
                "resourcebindings",
                "",
                200,
            ),
            line(
                "ResponseComplete",
                "patch",
                "karmada",
                "resourcebindings",
                "",
                409,
            ),
            line(
                "ResponseComplete",
                "apply",
                "ours",
                "multicloudmongodbs",
                "status",
                200,
            ),
            line("ResponseComplete", "update", "ours", "leases", "", 200),
        ] {
            writeln!(f, "{l}").unwrap();
        }
        // Half a line: counted once it is complete.
        let half = line(
            "ResponseComplete",
            "patch",
            "ours",
            "multicloudmongodbs",
            "",
            200,
        );
        write!(f, "{}", &half[..20]).unwrap();
        f.flush().unwrap();
        log.poll().unwrap();
        let ours = log.user("ours");
        assert_eq!(
            ours,
            Requests {
                binding_spec: 1,
                binding_status: 1,
                mcm_status: 1,
                events: 1,
                watches: 1,
                other_writes: 1,
                ..Requests::default()
            }
        );
        assert_eq!(ours.total(), 6);
        assert_eq!(log.user("karmada").reads, 1);
        assert_eq!(log.user("karmada").failed, 1);
        assert_eq!(log.user("old"), Requests::default(), "before from_end");
        writeln!(f, "{}", &half[20..]).unwrap();
        log.poll().unwrap();
        assert_eq!(log.user("ours").mcm_spec, 1);
        assert_eq!(log.unparsed, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
