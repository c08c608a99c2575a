//! The network side: one TCP listener per served member endpoint, all sharing one [`World`].
//! A member is reachable exactly while it is served; [`Simulator::stop`] closes its listener and
//! every open connection, like a pod going away.
//!
//! Each served member also listens on a Unix socket, [`Simulator::in_pod_socket`]: that is the
//! member's own localhost interface (mongod's `/tmp/mongodb-27017.sock` and `127.0.0.1` inside
//! its pod). Only connections through it get the localhost exception; a connection to
//! `<vip>:<nodePort>` never does, even from a loopback address, because it comes from outside
//! the pod.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bson::Document;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::wire;
use crate::world::{Answer, Session, Settings, Wait, World};

/// Why a member could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("member address {0:?} is not <ip>:<port>")]
    Address(String),
    #[error("cannot create the socket directory {0}: {1}")]
    SocketDir(PathBuf, #[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

struct Shared {
    world: Mutex<World>,
    /// Where the in-pod sockets live (removed on drop).
    socket_dir: PathBuf,
    served: Mutex<BTreeMap<String, CancellationToken>>,
    connection_ids: AtomicI32,
    /// Network connections open now, per member endpoint (the in-pod socket's not counted).
    open: Mutex<BTreeMap<String, usize>>,
    /// `saslStart` commands seen: each is one login attempt.
    logins: AtomicU64,
}

/// A running simulator. Dropping it stops every listener, connection and the clock.
pub struct Simulator {
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("served", &self.served())
            .finish()
    }
}

impl Simulator {
    /// Start the clock (one [`World::tick`] per `tick`). Must run inside a tokio runtime.
    pub fn start(settings: Settings, tick: Duration) -> Self {
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let socket_dir = std::env::temp_dir().join(format!(
            "fedstate-rs-sim-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(settings)),
            socket_dir,
            served: Mutex::new(BTreeMap::new()),
            connection_ids: AtomicI32::new(1),
            open: Mutex::new(BTreeMap::new()),
            logins: AtomicU64::new(0),
        });
        let shutdown = CancellationToken::new();
        let (s, stop) = (shared.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = interval.tick() => lock(&s.world).tick(),
                }
            }
        });
        Self { shared, shutdown }
    }

    /// Look at or change the world directly (tests, the federation bridge).
    pub fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.shared.world)
    }

    /// The endpoints served now.
    pub fn served(&self) -> Vec<String> {
        lock(&self.shared.served).keys().cloned().collect()
    }

    /// The Unix socket that is `host`'s own localhost interface (served while `host` is).
    pub fn in_pod_socket(&self, host: &str) -> PathBuf {
        self.shared
            .socket_dir
            .join(format!("{}.sock", host.replace([':', '/'], "_")))
    }

    /// How many network connections to `host` are open now (what a client that still dials a
    /// member shows; connections over the in-pod socket are not counted).
    pub fn open_connections(&self, host: &str) -> usize {
        lock(&self.shared.open).get(host).copied().unwrap_or(0)
    }

    /// How many logins (`saslStart`, one per SCRAM conversation) all members have seen.
    pub fn logins(&self) -> u64 {
        self.shared.logins.load(Ordering::Relaxed)
    }

    /// Serve member `host` (`<ip>:<port>`); a no-op when it is served already.
    pub async fn serve(&self, host: &str) -> Result<(), ServeError> {
        if lock(&self.shared.served).contains_key(host) {
            return Ok(());
        }
        let addr: SocketAddr = host
            .parse()
            .map_err(|_| ServeError::Address(host.to_owned()))?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: host.to_owned(),
                source,
            })?;
        self.run(host.to_owned(), listener)?;
        Ok(())
    }

    /// Serve a new member on a free port of `ip`; returns its `<ip>:<port>`.
    pub async fn serve_new(&self, ip: &str) -> Result<String, ServeError> {
        let listener = TcpListener::bind((ip, 0))
            .await
            .map_err(|source| ServeError::Bind {
                addr: ip.to_owned(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: ip.to_owned(),
            source,
        })?;
        let host = addr.to_string();
        self.run(host.clone(), listener)?;
        Ok(host)
    }

    fn run(&self, host: String, listener: TcpListener) -> Result<(), ServeError> {
        let dir = &self.shared.socket_dir;
        std::fs::create_dir_all(dir).map_err(|e| ServeError::SocketDir(dir.clone(), e))?;
        let path = self.in_pod_socket(&host);
        let _ = std::fs::remove_file(&path);
        let in_pod = UnixListener::bind(&path).map_err(|source| ServeError::Bind {
            addr: path.display().to_string(),
            source,
        })?;
        let token = self.shutdown.child_token();
        lock(&self.shared.served).insert(host.clone(), token.clone());
        self.world().set_up(&host, true);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                let (stream, from_pod): (Box<dyn Stream>, bool) = tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            (Box::new(stream), false)
                        }
                        Err(e) => {
                            tracing::debug!(%host, error = %e, "accept failed");
                            continue;
                        }
                    },
                    accepted = in_pod.accept() => match accepted {
                        Ok((stream, _)) => (Box::new(stream), true),
                        Err(e) => {
                            tracing::debug!(%host, error = %e, "accept failed");
                            continue;
                        }
                    },
                };
                let id = shared.connection_ids.fetch_add(1, Ordering::Relaxed);
                let session = Session::new(from_pod, id);
                tokio::spawn(connection(
                    shared.clone(),
                    host.clone(),
                    stream,
                    session,
                    token.clone(),
                ));
            }
            let _ = std::fs::remove_file(&path);
        });
        Ok(())
    }

    /// Stop serving `host`: the listener and its open connections close, and the member counts
    /// as unreachable (it keeps its data, as a pod's PVC does).
    pub fn stop(&self, host: &str) {
        if let Some(token) = lock(&self.shared.served).remove(host) {
            token.cancel();
        }
        self.world().set_up(host, false);
    }

    /// Stop serving `host` because its cluster went away: as [`Simulator::stop`], but the other
    /// members get no answer at all from it (a partition), so they mark it down only after
    /// their heartbeat timeout ([`World::partition`]).
    pub fn partition(&self, host: &str) {
        if let Some(token) = lock(&self.shared.served).remove(host) {
            token.cancel();
        }
        self.world().partition(host);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
        remove_dir(&self.shared.socket_dir);
    }
}

fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// A client connection, over TCP or the in-pod socket.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Counts a network connection as open while it lives.
struct Open {
    shared: Arc<Shared>,
    host: String,
}

impl Open {
    fn new(shared: Arc<Shared>, host: String) -> Self {
        *lock(&shared.open).entry(host.clone()).or_default() += 1;
        Self { shared, host }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.shared.open).get_mut(&self.host) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    host: String,
    stream: Box<dyn Stream>,
    mut session: Session,
    token: CancellationToken,
) {
    let _open = (!session.in_pod).then(|| Open::new(shared.clone(), host.clone()));
    let (mut r, mut w) = tokio::io::split(stream);
    let mut reply_id = 1;
    loop {
        let req = tokio::select! {
            _ = token.cancelled() => return,
            req = wire::read_request(&mut r) => req,
        };
        let req = match req {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(%host, error = %e, "closing connection");
                return;
            }
        };
        if req.command.keys().next().map(String::as_str) == Some("saslStart") {
            shared.logins.fetch_add(1, Ordering::Relaxed);
        }
        let answer = lock(&shared.world).begin(&host, &mut session, &req.command);
        let reply = match answer {
            Answer::Now(d) => d,
            Answer::Later(wait) => match wait_for(&shared, wait, &token).await {
                Some(d) => d,
                None => return,
            },
            Answer::Silent => return,
        };
        if req.more_to_come {
            continue;
        }
        reply_id += 1;
        if wire::write_reply(&mut w, reply_id, req.request_id, &reply)
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Keep a command waiting as mongod does: look again whenever the world changes, until it has
/// an answer or its `maxTimeMS` runs out (without one: until the member goes away).
async fn wait_for(shared: &Shared, mut wait: Wait, token: &CancellationToken) -> Option<Document> {
    let deadline = wait.max_time().map(|t| tokio::time::Instant::now() + t);
    let mut changes = lock(&shared.world).changes();
    loop {
        if let Some(d) = lock(&shared.world).resume(&mut wait) {
            return Some(d);
        }
        let expired = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = token.cancelled() => return None,
            _ = expired => return Some(lock(&shared.world).expire(wait)),
            changed = changes.changed() => if changed.is_err() { return None },
        }
    }
}
