//! The two steps MongoDB allows only from inside a member's pod, while the member has no user:
//! initiating the set and creating the first user (MongoDB manual, "Localhost Exception": only
//! connections over the member's own localhost interface, only before the first user or role
//! exists, only to create it or to initiate the set). The agent runs in another pod, so it
//! cannot use the exception over the network; it execs into the member's `mongod` container
//! through the `pods/exec` subresource, as Percona's operator does, and runs the image's own shell
//! (`mongosh` from 6.0, `mongo` before; the script picks whichever the image has).
//!
//! Why exec and not the official image's `MONGO_INITDB_ROOT_*` entrypoint (docker-library/mongo
//! `docker-entrypoint.sh`): it creates the user only when the dbPath holds no data yet (no
//! `WiredTiger`, `journal`, `local.0` or `storage.bson`), in a temporary mongod it forks on
//! 127.0.0.1:27017 without `--auth` before the real one. It drops a `--replSet` given on the
//! command line, but a replica-set name from the config file (our pods pass `--config` only) stays,
//! so that temporary mongod is an uninitiated set member, not a writable primary, and its
//! `createUser` cannot succeed; it never initiates the set, never runs again for a member whose
//! data survived (a restored or recycled PVC), and its result is invisible to the agent. An exec
//! is explicit, repeatable, and its answer is the server's.
//!
//! The password never travels in the exec: the script reads it from the credentials file the
//! pod mounts ([`ROOT_PASSWORD_FILE`]); the command line holds only the user name and roles.
//!
//! Bounded twice, as every command of the agent is: the command carries `maxTimeMS` (the
//! server gives up), and the whole exec (connecting to the apiserver, the kubelet, starting the
//! shell, its answer) is given up after [`exec_limit`], so a kubelet or a shell that never
//! answers cannot hang a reconcile.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::AttachParams;
use mongodb::bson::Document;
use tokio::io::AsyncReadExt;

use crate::replset::ReplSetError;

/// Where the member pod mounts the root password (see `resources`).
pub const ROOT_PASSWORD_FILE: &str = "/etc/mongod-credentials/root-password";
/// The container the script runs in.
pub const MONGOD_CONTAINER: &str = "mongod";

/// Runs a command inside a member's pod, over its localhost interface.
pub trait InPod: Send + Sync {
    /// Run `command` (an admin command document) on `host`'s own mongod. With
    /// `password_from_file`, its `pwd` field is read from [`ROOT_PASSWORD_FILE`] in the pod.
    fn run(
        &self,
        host: &str,
        command: &Document,
        password_from_file: bool,
    ) -> impl Future<Output = Result<(), ReplSetError>> + Send;
}

/// The script the member's shell runs: the command as JSON, the password read from the file,
/// and only `ok`/`code`/`codeName`/`errmsg` of the reply printed (on one line, as JSON).
pub fn shell_script(command: &Document, password_from_file: bool) -> String {
    let json = serde_json::Value::from(mongodb::bson::Bson::Document(command.clone()));
    let mut js = format!("var cmd = {json};\n");
    if password_from_file {
        js.push_str(
            "var readFile = (typeof cat === 'function') ? cat : function (p) { return require('fs').readFileSync(p, 'utf8'); };\n",
        );
        js.push_str(&format!("cmd.pwd = readFile('{ROOT_PASSWORD_FILE}');\n"));
    }
    js.push_str("var r = db.getSiblingDB('admin').runCommand(cmd);\n");
    js.push_str(
        "print(JSON.stringify({ok: r.ok, code: r.code, codeName: r.codeName, errmsg: r.errmsg}));\n",
    );
    js
}

/// `command` with the server-side limit `maxTimeMS` set to `timeout`.
pub fn bounded(command: &Document, timeout: Duration) -> Document {
    let mut cmd = command.clone();
    cmd.insert(
        "maxTimeMS",
        i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
    );
    cmd
}

/// How long the agent waits for a whole exec whose command has `maxTimeMS` = `timeout`: the
/// server's limit twice over (as for the driver's commands), plus the time a shell needs to start
/// (`mongosh` is a Node.js program: seconds on a loaded node).
pub fn exec_limit(timeout: Duration) -> Duration {
    timeout * 2 + Duration::from_secs(10)
}

/// The exec command: `sh` picks the image's shell and hands it the script as one argument.
pub fn exec_command(script: &str) -> Vec<String> {
    const PICK: &str = "if command -v mongosh >/dev/null 2>&1; then s=mongosh; else s=mongo; fi; \
                        exec \"$s\" --quiet --norc --host 127.0.0.1 --port 27017 --eval \"$1\"";
    vec![
        "sh".into(),
        "-c".into(),
        PICK.into(),
        "sh".into(),
        script.into(),
    ]
}

/// The server's answer as the script printed it (its last line).
pub fn parse_reply(host: &str, command: &'static str, stdout: &str) -> Result<(), ReplSetError> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let reply: serde_json::Value = line
        .and_then(|l| serde_json::from_str(l.trim()).ok())
        .ok_or_else(|| ReplSetError::Reply {
            host: host.to_owned(),
            command,
            what: "the member's shell printed no reply".into(),
        })?;
    let field = |key: &str| reply.get(key);
    if field("ok").and_then(serde_json::Value::as_f64) == Some(1.0) {
        return Ok(());
    }
    Err(ReplSetError::Command {
        host: host.to_owned(),
        command,
        code: field("code")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0) as i32,
        code_name: field("codeName")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        message: field("errmsg")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

fn command_name(command: &Document) -> &'static str {
    match command.keys().next().map(String::as_str) {
        Some("replSetInitiate") => "replSetInitiate",
        Some("createUser") => "createUser",
        _ => "command",
    }
}

/// [`InPod`] through the Kubernetes `pods/exec` subresource.
#[derive(Clone)]
pub struct PodExec {
    pods: Api<Pod>,
    /// Member address → its pod's name (this cluster's members only).
    by_host: BTreeMap<String, String>,
    /// The commands' `maxTimeMS` (the exec as a whole: [`exec_limit`]).
    timeout: Duration,
}

impl std::fmt::Debug for PodExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodExec")
            .field("by_host", &self.by_host)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PodExec {
    pub fn new(pods: Api<Pod>, by_host: BTreeMap<String, String>, timeout: Duration) -> Self {
        Self {
            pods,
            by_host,
            timeout,
        }
    }
}

impl InPod for PodExec {
    async fn run(
        &self,
        host: &str,
        command: &Document,
        password_from_file: bool,
    ) -> Result<(), ReplSetError> {
        let name = command_name(command);
        let pod = self
            .by_host
            .get(host)
            .ok_or_else(|| ReplSetError::Unreachable {
                host: host.to_owned(),
                command: name,
                reason: "not a member of this cluster: only its own agent can exec into it".into(),
            })?;
        let unreachable = |reason: String| ReplSetError::Unreachable {
            host: host.to_owned(),
            command: name,
            reason,
        };
        let limit = exec_limit(self.timeout);
        let command = bounded(command, self.timeout);
        let exec = self.exec(pod, &command, password_from_file);
        let (stdout, stderr, status) = tokio::time::timeout(limit, exec)
            .await
            .map_err(|_| unreachable(format!("exec into pod {pod}: no answer within {limit:?}")))?
            .map_err(|e| unreachable(format!("exec into pod {pod}: {e}")))?;
        match parse_reply(host, name, &stdout) {
            Err(ReplSetError::Reply { .. }) => {
                let why = status
                    .and_then(|s| s.message)
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| stderr.trim().chars().take(300).collect());
                Err(unreachable(format!("shell in pod {pod} failed: {why}")))
            }
            other => other,
        }
    }
}

impl PodExec {
    /// One exec: its stdout, stderr and final status.
    async fn exec(
        &self,
        pod: &str,
        command: &Document,
        password_from_file: bool,
    ) -> Result<(String, String, Option<Status>), kube::Error> {
        let params = AttachParams::default()
            .container(MONGOD_CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut proc = self
            .pods
            .exec(
                pod,
                exec_command(&shell_script(command, password_from_file)),
                &params,
            )
            .await?;
        let mut stdout = String::new();
        if let Some(mut out) = proc.stdout() {
            let _ = out.read_to_string(&mut stdout).await;
        }
        let mut stderr = String::new();
        if let Some(mut err) = proc.stderr() {
            let _ = err.read_to_string(&mut stderr).await;
        }
        let status = match proc.take_status() {
            Some(s) => s.await,
            None => None,
        };
        let _ = proc.join().await;
        Ok((stdout, stderr, status))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn the_script_reads_the_password_from_the_pod_and_never_carries_it() {
        let cmd = doc! {"createUser": "root", "roles": [{"role": "root", "db": "admin"}]};
        let js = shell_script(&cmd, true);
        assert!(js.starts_with("var cmd = {\"createUser\":\"root\""), "{js}");
        assert!(js.contains(ROOT_PASSWORD_FILE));
        assert!(!js.contains("pwd\":"));
        let argv = exec_command(&js);
        assert_eq!(&argv[..2], ["sh", "-c"]);
        assert!(argv[2].contains("mongosh") && argv[2].contains("mongo;"));
        assert_eq!(argv[4], js);
        let init = shell_script(&doc! {"replSetInitiate": {"_id": "rs"}}, false);
        assert!(!init.contains("readFile"));
    }

    #[test]
    fn the_command_carries_the_server_side_limit() {
        let cmd = bounded(
            &doc! {"replSetInitiate": {"_id": "rs"}},
            Duration::from_secs(10),
        );
        assert_eq!(
            cmd.keys().next().map(String::as_str),
            Some("replSetInitiate")
        );
        assert_eq!(cmd.get_i64("maxTimeMS").unwrap(), 10_000);
        assert!(shell_script(&cmd, false).contains("\"maxTimeMS\":10000"));
    }

    /// An apiserver (or a kubelet behind it) that takes the exec and never answers: the agent
    /// gives up after [`exec_limit`] with an error that says so, instead of hanging the
    /// reconcile (and with it every reconcile of the controller's other objects waiting on it).
    #[tokio::test(start_paused = true)]
    async fn an_exec_that_never_answers_is_given_up() {
        let (client, held) = crate::silent::silent_apiserver().await;
        let exec = PodExec::new(
            Api::namespaced(client, "db"),
            BTreeMap::from([("h:1".to_owned(), "m-0".to_owned())]),
            Duration::from_secs(1),
        );
        let start = tokio::time::Instant::now();
        let e = exec
            .run("h:1", &doc! {"replSetInitiate": {"_id": "rs"}}, false)
            .await
            .unwrap_err();
        assert!(matches!(e, ReplSetError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("no answer within 12s"), "{e}");
        assert_eq!(start.elapsed(), exec_limit(Duration::from_secs(1)));
        held.abort();
    }

    #[test]
    fn the_reply_is_the_servers() {
        assert!(parse_reply("h:1", "createUser", "noise\n{\"ok\":1}\n").is_ok());
        let e = parse_reply(
            "h:1",
            "createUser",
            "{\"ok\":0,\"code\":13,\"codeName\":\"Unauthorized\",\"errmsg\":\"no\"}",
        )
        .unwrap_err();
        assert_eq!(e.code(), Some(13));
        assert!(matches!(
            parse_reply("h:1", "createUser", ""),
            Err(ReplSetError::Reply { .. })
        ));
    }
}
