//! Starting and stopping the federation's processes.
//!
//! Each process runs in its own process group (so stopping it stops anything it spawned), with
//! stdin closed and stdout/stderr appended to one log file in the run directory. Processes are
//! identified by pid plus the executable they run, so a recycled pid is never signalled.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// How to run one component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessSpec {
    /// Component name, unique in the federation (`etcd`, `member2-kube-apiserver`, ...).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub log: PathBuf,
}

/// A started process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessRecord {
    pub spec: ProcessSpec,
    pub pid: u32,
}

impl ProcessSpec {
    /// Starts the process in a new process group, logging to `self.log`.
    pub fn spawn(&self) -> Result<(ProcessRecord, Child)> {
        self.spawn_with_env(&[])
    }

    /// As [`ProcessSpec::spawn`], with `env` added to the inherited environment (what a
    /// component's image sets).
    pub fn spawn_with_env(&self, env: &[(&str, &str)]) -> Result<(ProcessRecord, Child)> {
        if let Some(dir) = self.log.parent() {
            fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(Error::io("open", &self.log))?;
        let log_err = log.try_clone().map_err(Error::io("open", &self.log))?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                component: self.name.clone(),
                program: self.program.clone(),
                source,
            })?;
        tracing::debug!(component = %self.name, pid = child.id(), "started");
        Ok((
            ProcessRecord {
                spec: self.clone(),
                pid: child.id(),
            },
            child,
        ))
    }
}

impl ProcessRecord {
    /// True while the process runs (not exited, not a zombie) and still runs our program.
    pub fn is_alive(&self) -> bool {
        is_alive(self.pid, &self.spec.program)
    }

    /// Stops the process group: SIGTERM, then SIGKILL after `grace`. Waits until it is gone.
    pub fn stop(&self, grace: Duration) {
        if !self.is_alive() {
            return;
        }
        signal(self.pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        tracing::warn!(component = %self.spec.name, pid = self.pid, "did not stop on SIGTERM; killing");
        signal(self.pid, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.is_alive() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Signals the process group led by `pid` (every process we start leads its own group), or the
/// process alone if it leads none.
fn signal(pid: u32, sig: Signal) {
    let pid = Pid::from_raw(pid as i32);
    if killpg(pid, sig).is_err() {
        let _ = kill(pid, sig);
    }
}

/// Stops several processes at once: SIGTERM to every group, then SIGKILL to whatever is still
/// running after `grace`.
pub fn stop_all(records: &[&ProcessRecord], grace: Duration) {
    let alive: Vec<&&ProcessRecord> = records.iter().filter(|r| r.is_alive()).collect();
    for r in &alive {
        signal(r.pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && alive.iter().any(|r| r.is_alive()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for r in alive.iter().filter(|r| r.is_alive()) {
        r.stop(Duration::ZERO);
    }
}

/// Processes running one of the binaries in `bin_dir` whose command line mentions `marker`
/// (the run directory): strays a crashed `up` may have left behind.
pub fn strays(bin_dir: &Path, marker: &str) -> Vec<ProcessRecord> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(exe) = fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        if exe.parent() != Some(bin_dir) {
            continue;
        }
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a.contains(marker)) {
            found.push(ProcessRecord {
                spec: ProcessSpec {
                    name: exe
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    program: exe.clone(),
                    args: args.into_iter().skip(1).collect(),
                    log: PathBuf::new(),
                },
                pid,
            });
        }
    }
    found
}

/// True if `pid` runs `program` and is not a zombie.
pub fn is_alive(pid: u32, program: &Path) -> bool {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z') | Some('X') | None) {
        return false;
    }
    match fs::read_link(proc_dir.join("exe")) {
        Ok(exe) => {
            let exe = exe.to_string_lossy();
            let exe = exe.trim_end_matches(" (deleted)");
            Path::new(exe) == program
                || fs::canonicalize(program)
                    .map(|p| p == Path::new(exe))
                    .unwrap_or(false)
        }
        Err(_) => false,
    }
}

/// Last `lines` lines of a log file (for error reports).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(text) = fs::read_to_string(path) else {
        return String::new();
    };
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all.get(start..).unwrap_or_default().join("\n")
}
