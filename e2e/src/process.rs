//! Our own binaries as processes, run as users run them: the binary cargo built next to the test
//! (`deploy/local/e2e.sh` builds them first), given flags (and, for a pod, its environment and
//! working directory), its output in a log file, stopped (SIGTERM, then SIGKILL after its grace
//! period) when the handle is dropped. The one launcher of the e2e tier: the suites that start a
//! binary and [`crate::pods`], which runs a Deployment's pods, both use it.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: its functions are called by the e2e trials, and a panic is how they fail the trial"
)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a process gets between SIGTERM and SIGKILL unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Where cargo put our binaries: the profile directory, which holds a binary of ours (the soak
/// benchmark) or the `deps/` directory of a test binary.
pub fn our_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates = [dir.join(name), dir.parent().unwrap_or(&dir).join(name)];
    let found = candidates.iter().find(|p| p.is_file()).cloned();
    found.unwrap_or_else(|| {
        panic!(
            "{} is not built; run the e2e tier with deploy/local/e2e.sh (it builds our binaries), or `cargo build -p {name}` first",
            candidates[1].display()
        )
    })
}

/// A running process of ours; stopped on drop.
#[derive(Debug)]
pub struct OurProcess {
    name: String,
    child: Child,
    grace: Duration,
    pub log: PathBuf,
}

impl OurProcess {
    /// Starts `binary` with `args`, stdout and stderr into `<log_dir>/<name>.log`.
    pub fn start(name: &str, binary: &Path, args: &[String], log_dir: &Path) -> Self {
        std::fs::create_dir_all(log_dir)
            .unwrap_or_else(|e| panic!("log dir {}: {e}", log_dir.display()));
        let mut command = Command::new(binary);
        command.args(args);
        Self::spawn(name, command, &log_dir.join(format!("{name}.log")))
    }

    /// Starts `command` as the caller prepared it (args, environment, working directory), stdin
    /// closed, stdout and stderr into `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Self {
        let out = File::create(log).unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({:?}): {e}", command.get_program()));
        eprintln!("started {name} (pid {}), log {}", child.id(), log.display());
        Self {
            name: name.to_owned(),
            child,
            grace: DEFAULT_GRACE,
            log: log.to_path_buf(),
        }
    }

    /// The time between SIGTERM and SIGKILL (a pod's `terminationGracePeriodSeconds`).
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Its process id (for reading `/proc/<pid>`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM only (as the kubelet starts stopping a container); see [`OurProcess::wait_stopped`].
    pub fn terminate(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }

    /// Waits up to the grace period for the process to exit, then SIGKILL. The exit status, or
    /// `None` if it had to be killed.
    pub fn wait_stopped(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + self.grace;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!(
            "killed {} (no exit {}s after SIGTERM)",
            self.name,
            self.grace.as_secs()
        );
        None
    }

    /// SIGKILL, as a crash, an OOM kill or a lost node ends a process: no clean-up of its own.
    /// Waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("killed {} (SIGKILL)", self.name);
    }

    /// SIGTERM, then [`OurProcess::wait_stopped`]; the exit status of a process that had already
    /// exited.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        self.terminate();
        let status = self.wait_stopped();
        if let Some(s) = status {
            eprintln!("stopped {} ({s})", self.name);
        }
        status
    }
}

impl Drop for OurProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
