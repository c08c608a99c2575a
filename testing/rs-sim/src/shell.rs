//! `fedstate-sim-shell`: the stand-in for a member image's `mongosh`/`mongo` when kwok runs an
//! exec into a simulated member pod (`pods/exec` → kwok's `Exec` object → a local command). It
//! runs in the pod's place: `127.0.0.1:27017` is the member's in-pod socket
//! ([`crate::Simulator::in_pod_socket`], env `FEDSTATE_SIM_SOCKET`) and absolute paths are under
//! the pod's files (env `FEDSTATE_SIM_POD_ROOT`, written by the bridge as the kubelet would).
//!
//! It is as strict as a shell that only knows one script: the agent's in-pod script (see
//! `fedstate_mongo_agent::inpod`): a command as JSON, optionally its `pwd` read from a file, the
//! command run on the `admin` database, and `ok`/`code`/`codeName`/`errmsg` printed as JSON.
//! Anything else is refused, so a changed script fails here instead of passing untested.

use std::path::{Path, PathBuf};

use bson::{Bson, Document};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

use crate::wire;

/// Why the shell failed (printed on stderr; the exit code is 1).
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("fedstate-sim-shell understands only the agent's in-pod script: {0}")]
    Script(String),
    #[error("Error: ENOENT: no such file or directory, open '{0}'")]
    File(String),
    #[error("MongoNetworkError: connect ECONNREFUSED {0}")]
    Connect(String),
    #[error("wire: {0}")]
    Wire(#[from] wire::WireError),
}

/// Where the pod is.
#[derive(Clone, Debug)]
pub struct PodEnv {
    /// The member's own localhost interface.
    pub socket: PathBuf,
    /// The pod's files (mounted Secrets and ConfigMaps).
    pub root: PathBuf,
}

/// The parsed script: the command and the field read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub command: Document,
    /// `(field, absolute path in the pod)`.
    pub from_file: Option<(String, String)>,
}

/// Parse the agent's script (one statement per line).
pub fn parse_script(js: &str) -> Result<Script, ShellError> {
    let bad = |why: &str| ShellError::Script(why.to_owned());
    let mut command = None;
    let mut from_file = None;
    let mut ran = false;
    let mut printed = false;
    for line in js.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(json) = line
            .strip_prefix("var cmd = ")
            .and_then(|l| l.strip_suffix(';'))
        {
            let value: serde_json::Value =
                serde_json::from_str(json).map_err(|e| bad(&format!("command JSON: {e}")))?;
            match to_bson(value) {
                Bson::Document(doc) => command = Some(doc),
                _ => return Err(bad("the command is not a JSON object")),
            }
        } else if line.starts_with("var readFile = ") {
            // cat() in the legacy shell, fs.readFileSync in mongosh: both read the whole file.
        } else if let Some(rest) = line.strip_prefix("cmd.") {
            let (field, value) = rest.split_once(" = ").ok_or_else(|| bad(line))?;
            let path = value
                .strip_prefix("readFile('")
                .and_then(|v| v.strip_suffix("');"))
                .ok_or_else(|| bad(line))?;
            from_file = Some((field.to_owned(), path.to_owned()));
        } else if line == "var r = db.getSiblingDB('admin').runCommand(cmd);" {
            ran = true;
        } else if line
            == "print(JSON.stringify({ok: r.ok, code: r.code, codeName: r.codeName, errmsg: r.errmsg}));"
        {
            printed = true;
        } else {
            return Err(bad(line));
        }
    }
    match (command, ran, printed) {
        (Some(command), true, true) => Ok(Script { command, from_file }),
        _ => Err(bad(
            "expected: var cmd = {...}; runCommand(cmd); print(...)",
        )),
    }
}

/// JSON as the shells turn it into BSON: integers that fit are int32, other numbers doubles.
fn to_bson(v: serde_json::Value) -> Bson {
    use serde_json::Value;
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(b),
        Value::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Bson::Int32(i),
            None => n
                .as_i64()
                .map(Bson::Int64)
                .unwrap_or_else(|| Bson::Double(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => Bson::String(s),
        Value::Array(a) => Bson::Array(a.into_iter().map(to_bson).collect()),
        Value::Object(o) => Bson::Document(o.into_iter().map(|(k, v)| (k, to_bson(v))).collect()),
    }
}

/// `--host`, `--port` and `--eval` from the shell's arguments (`--quiet`, `--norc` ignored).
pub fn parse_args(args: &[String]) -> Result<(String, u16, String), ShellError> {
    let mut host = "127.0.0.1".to_owned();
    let mut port = 27017;
    let mut eval = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quiet" | "--norc" => {}
            "--host" => host = it.next().cloned().unwrap_or_default(),
            "--port" => {
                port = it
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| ShellError::Usage("--port <number>".into()))?
            }
            "--eval" => eval = it.next().cloned(),
            other => return Err(ShellError::Usage(format!("unknown argument {other:?}"))),
        }
    }
    let eval = eval.ok_or_else(|| ShellError::Usage("--eval <script>".into()))?;
    Ok((host, port, eval))
}

fn pod_path(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Run the shell: the JSON line the script prints.
pub async fn run(args: &[String], pod: &PodEnv) -> Result<String, ShellError> {
    let (host, port, eval) = parse_args(args)?;
    let script = parse_script(&eval)?;
    // Only the pod's own mongod answers on its localhost interface.
    if !matches!(host.as_str(), "127.0.0.1" | "localhost") || port != 27017 {
        return Err(ShellError::Connect(format!("{host}:{port}")));
    }
    let mut command = script.command;
    if let Some((field, path)) = &script.from_file {
        let value = std::fs::read_to_string(pod_path(&pod.root, path))
            .map_err(|_| ShellError::File(path.clone()))?;
        command.insert(field.clone(), value);
    }
    command.insert("$db", "admin");
    let mut stream = UnixStream::connect(&pod.socket)
        .await
        .map_err(|_| ShellError::Connect(format!("{host}:{port}")))?;
    stream
        .write_all(&wire::encode_reply(1, 0, &command)?)
        .await
        .map_err(wire::WireError::from)?;
    let reply = wire::read_request(&mut stream)
        .await?
        .ok_or(ShellError::Connect(format!("{host}:{port}")))?;
    let d = reply.command;
    let mut out = serde_json::Map::new();
    for key in ["ok", "code", "codeName", "errmsg"] {
        match d.get(key) {
            Some(Bson::Double(v)) => out.insert(key.into(), (*v).into()),
            Some(Bson::Int32(v)) => out.insert(key.into(), (*v).into()),
            Some(Bson::Int64(v)) => out.insert(key.into(), (*v).into()),
            Some(Bson::String(v)) => out.insert(key.into(), v.clone().into()),
            _ => None,
        };
    }
    Ok(serde_json::Value::Object(out).to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SCRIPT: &str = "var cmd = {\"createUser\":\"root\",\"roles\":[{\"role\":\"root\",\"db\":\"admin\"}]};\n\
        var readFile = (typeof cat === 'function') ? cat : function (p) { return require('fs').readFileSync(p, 'utf8'); };\n\
        cmd.pwd = readFile('/etc/mongod-credentials/root-password');\n\
        var r = db.getSiblingDB('admin').runCommand(cmd);\n\
        print(JSON.stringify({ok: r.ok, code: r.code, codeName: r.codeName, errmsg: r.errmsg}));\n";

    #[test]
    fn the_agents_script_parses_and_anything_else_is_refused() {
        let s = parse_script(SCRIPT).unwrap();
        assert_eq!(s.command.get_str("createUser").unwrap(), "root");
        assert_eq!(
            s.from_file,
            Some(("pwd".into(), "/etc/mongod-credentials/root-password".into()))
        );
        assert!(parse_script("db.dropDatabase()").is_err());
        assert!(parse_script(&SCRIPT.replace("print(", "printjson(")).is_err());
        let args: Vec<String> = ["--quiet", "--norc", "--host", "127.0.0.1", "--eval", "x"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            parse_args(&args).unwrap(),
            ("127.0.0.1".into(), 27017, "x".into())
        );
    }
}
