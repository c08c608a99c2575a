//! Our own binaries as processes, run as users run them: the binary cargo built next to the test
//! (`deploy/local/e2e.sh` builds them first), given flags, its output in a log file of the
//! federation's run directory, stopped (SIGTERM, then SIGKILL) when the handle is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where cargo put our binaries: the profile directory above this test's `deps/`.
pub fn our_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = profile.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run the e2e tier with deploy/local/e2e.sh (it builds our binaries), or `cargo build -p {name}` first",
        path.display()
    );
    path
}

/// A running process of ours; stopped on drop.
#[derive(Debug)]
pub struct OurProcess {
    name: String,
    child: Child,
    pub log: PathBuf,
}

impl OurProcess {
    /// Starts `binary` with `args`, stdout and stderr into `<log_dir>/<name>.log`.
    pub fn start(name: &str, binary: &Path, args: &[String], log_dir: &Path) -> Self {
        std::fs::create_dir_all(log_dir)
            .unwrap_or_else(|e| panic!("log dir {}: {e}", log_dir.display()));
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        eprintln!("started {name} (pid {}), log {}", child.id(), log.display());
        Self {
            name: name.to_owned(),
            child,
            log,
        }
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

    /// SIGTERM, up to 10 s to exit, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !self.running() {
                eprintln!("stopped {}", self.name);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("killed {} (no exit 10 s after SIGTERM)", self.name);
    }
}

impl Drop for OurProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
