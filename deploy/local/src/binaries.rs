//! The pinned Go binaries (built by `deploy/local/build.sh`) and the Go modules we read manifests
//! from (Karmada's CRDs and webhook configuration, kwok's stages).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// `deploy/local/versions.env`, the one place versions are pinned.
const VERSIONS_ENV: &str = include_str!("../versions.env");

/// Names of the binaries in the cache directory.
pub const ALL: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "karmada-aggregated-apiserver",
    "karmada-controller-manager",
    "karmada-scheduler",
    "karmada-scheduler-estimator",
    "karmada-webhook",
    "karmadactl",
    "kwok",
];

/// A pinned version from `versions.env`.
pub fn pinned(key: &str) -> Option<&'static str> {
    VERSIONS_ENV.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        (k == key).then_some(v.trim())
    })
}

/// The build script.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("build.sh")
}

/// Runs `build.sh` (building or reusing the binaries, progress on stderr); returns the bin dir.
pub fn build() -> Result<PathBuf> {
    let script = build_script();
    let out = Command::new(&script)
        .arg("build")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Command {
            command: script.display().to_string(),
            detail: e.to_string(),
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{} build", script.display()),
            detail: format!("exit status {}", out.status),
        });
    }
    stdout
        .lines()
        .last()
        .map(PathBuf::from)
        .ok_or_else(|| Error::Command {
            command: format!("{} build", script.display()),
            detail: "printed no bin directory".into(),
        })
}

/// Located binaries and module directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub dir: PathBuf,
    pub karmada_module: PathBuf,
    pub kwok_module: PathBuf,
}

impl Binaries {
    /// Finds the binaries (see [`bin_dir`]) and the Go modules we read manifests from
    /// (downloading them into the module cache if needed).
    pub fn locate() -> Result<Self> {
        let dir = bin_dir()?;
        Ok(Self {
            dir,
            karmada_module: module_dir(
                "github.com/karmada-io/karmada",
                version("KARMADA_VERSION")?,
            )?,
            kwok_module: module_dir("sigs.k8s.io/kwok", version("KWOK_VERSION")?)?,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The directory holding every binary: `$FEDSTATE_LOCAL_BIN_DIR` if set, else the cache
/// directory `build.sh bin-dir` names. Fails with [`Error::BinariesMissing`] if any is absent.
pub fn bin_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("FEDSTATE_LOCAL_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let script = build_script();
            let out = Command::new(&script)
                .arg("bin-dir")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .map_err(|e| Error::BinariesMissing {
                    detail: format!("cannot run {}: {e}", script.display()),
                })?;
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !out.status.success() || dir.is_empty() {
                return Err(Error::BinariesMissing {
                    detail: format!("not all built in {dir}"),
                });
            }
            PathBuf::from(dir)
        }
    };
    if let Some(missing) = ALL.iter().find(|b| !dir.join(b).is_file()) {
        return Err(Error::BinariesMissing {
            detail: format!("{} not in {}", missing, dir.display()),
        });
    }
    Ok(dir)
}

fn version(key: &str) -> Result<&'static str> {
    pinned(key).ok_or_else(|| Error::InvalidArgument(format!("{key} missing from versions.env")))
}

/// Directory of the pinned `module` in the Go module cache, if it is there (no download).
pub fn cached_module_dir(module: &str, version_key: &str) -> Option<PathBuf> {
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .ok()?;
    let cache = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = cache.join(format!("{module}@{}", pinned(version_key)?));
    dir.is_dir().then_some(dir)
}

/// Directory of `module@version` in the Go module cache, downloading it if needed.
fn module_dir(module: &str, version: &str) -> Result<PathBuf> {
    let err = |detail: String| Error::GoModule {
        module: format!("{module}@{version}"),
        detail,
    };
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .map_err(|e| err(format!("cannot run go: {e}")))?;
    let cache = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let dir = cache.join(format!("{module}@{version}"));
    if dir.is_dir() {
        return Ok(dir);
    }
    let status = Command::new("go")
        .args(["mod", "download", &format!("{module}@{version}")])
        .current_dir(std::env::temp_dir())
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .status()
        .map_err(|e| err(format!("cannot run go mod download: {e}")))?;
    if status.success() && dir.is_dir() {
        Ok(dir)
    } else {
        Err(err(format!("go mod download failed ({status})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_pinned() {
        assert_eq!(pinned("KARMADA_VERSION"), Some("v1.18.2"));
        assert!(pinned("KUBERNETES_VERSION").is_some_and(|v| v.starts_with("v1.")));
        assert!(pinned("KWOK_VERSION").is_some());
        assert!(pinned("ETCD_VERSION").is_some());
    }
}
