//! The one error type of the `fedstate-local` library.

use std::path::PathBuf;

/// Everything that can go wrong while building, starting, inspecting or stopping the local
/// federation. Each variant says what failed and on which component or file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `up` failed; everything it started has been stopped.
    #[error("bringing the federation up failed: {source}\n  process logs: {logs}")]
    UpFailed {
        logs: PathBuf,
        #[source]
        source: Box<Error>,
    },

    /// A process could not be started.
    #[error("cannot start {component} ({program}): {source}")]
    Spawn {
        component: String,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A process exited while the federation needed it (see its log).
    #[error("{component} exited unexpectedly; see its log {log}")]
    ProcessExited { component: String, log: PathBuf },

    /// A component did not become ready in time.
    #[error("timed out after {seconds}s waiting for {what}")]
    Timeout { what: String, seconds: u64 },

    /// A port of the port plan is already taken.
    #[error(
        "port {port} ({purpose}) on {host} is already in use; stop whatever holds it, run \
         `fedstate-local down`, or choose another base with --port-base / FEDSTATE_LOCAL_PORT_BASE"
    )]
    PortInUse {
        host: String,
        port: u16,
        purpose: String,
    },

    /// A federation is already running from this run directory.
    #[error("a federation is already running from {run_dir}; run `fedstate-local down` first")]
    AlreadyRunning { run_dir: PathBuf },

    /// No federation state was found where one was expected.
    #[error("no federation state in {run_dir}; run `fedstate-local up` first")]
    NotRunning { run_dir: PathBuf },

    /// The Go binaries are not built (or not where we look).
    #[error("the federation binaries are missing ({detail}); run `deploy/local/build.sh`")]
    BinariesMissing { detail: String },

    /// A Go module the federation reads files from could not be found or downloaded.
    #[error("cannot locate Go module {module}: {detail}")]
    GoModule { module: String, detail: String },

    /// A helper command (go, karmadactl, build.sh) failed.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },

    /// A request to an apiserver failed.
    #[error("{action} on {cluster}: {source}")]
    Kube {
        action: String,
        cluster: String,
        #[source]
        source: kube::Error,
    },

    /// A kubeconfig could not be turned into a client.
    #[error("cannot build a client from {path}: {detail}")]
    Kubeconfig { path: PathBuf, detail: String },

    /// Certificate generation failed.
    #[error("cannot generate certificate {name}: {source}")]
    Certificate {
        name: String,
        #[source]
        source: rcgen::Error,
    },

    /// A manifest could not be parsed or serialized.
    #[error("invalid manifest {what}: {detail}")]
    Manifest { what: String, detail: String },

    /// The caller asked for something the federation does not have.
    #[error("{0}")]
    InvalidArgument(String),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn kube(
        action: impl Into<String>,
        cluster: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        let cluster = cluster.into();
        move |source| Error::Kube {
            action,
            cluster,
            source,
        }
    }
}
