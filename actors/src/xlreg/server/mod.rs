//! The registry server: key and log loading, the listener, the Hello
//! exchange, and the hand-over of each connection to a
//! [`RegistrySession`] actor.
//!
//! Life of a connection:
//! 1. Accepted. Its source address must be within its bounds
//!    ([`sources`]: `sessions_per_source` new connections per second,
//!    `max_connections_per_source` open at once), and fewer than
//!    [`MAX_WAITING`] connections may be waiting for their Hello or a
//!    handshake slot; otherwise it is closed at once.
//! 2. Reads exactly one modulus of bytes, the Hello, within
//!    `handshake_timeout` of the accept, holding nothing but its socket: a
//!    connection that sends nothing costs no handshake slot, and is closed
//!    at that deadline.
//! 3. Waits (FIFO, at most `handshake_timeout`) for one of
//!    `max_handshakes` permits; from the permit on, the handshake has
//!    `handshake_timeout` to reach `ClientOK`. Decrypts the Hello on the
//!    blocking pool (so the node's own actors never wait for RSA);
//!    anything but a well-formed Hello closes the connection silently.
//!    Writes the 80-byte HelloReply.
//! 4. A [`RegistrySession`] takes over; it gives the permit back once the
//!    client is identified (`ClientOK`), or closes the connection at the
//!    deadline; an identified session silent for `idle_timeout` is closed.
//!
//! Stop order (when `stop` turns true): stop accepting; connections still
//! in their Hello are dropped; sessions close; then the registry's arbiter
//! stops. Every change was synced before it was acknowledged, so nothing
//! needs flushing.

pub mod admin;
pub mod registry_actor;
pub mod session_actor;
pub use catalogue_xlreg::sources;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix::prelude::*;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    time::Instant,
};
use tracing::{debug, info, warn};

pub use registry_actor::{Execute, Executed, RegistryActor};
pub use session_actor::RegistrySession;
pub use sources::SourceLimits;

use super::{
    XlregConfig, XlregError, XlregStats,
    admission::Admission,
    commit::Committer,
    hello::{Hello, HelloReply},
    keys::{self, PrivateKey, PublicKey},
    registry::Limits,
    store::Store,
};
use crate::log_limit::LogLimit;
use sources::{SourceGuard, Sources};

/// At most one `connection refused` line per reason in this time.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Connections accepted and waiting for a handshake permit, at most.
pub const MAX_WAITING: usize = 1024;
/// Subdirectory of `node.data_dir` holding the registry's files.
pub const REGISTRY_DIR: &str = "xlreg";
/// The registry's private key (PKCS#8 PEM, mode 0600).
pub const KEY_FILE: &str = "registry.key";
/// The registry's public key (SPKI PEM), for operators to hand out.
pub const PUBLIC_KEY_FILE: &str = "registry.pub";

/// Where the registry of a node keeps its files.
pub fn registry_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(REGISTRY_DIR)
}

/// Loads the registry key of `data_dir`, creating it (and the public key
/// file) if missing. Returns the key and whether it was created.
pub fn load_or_create_key(data_dir: &Path) -> Result<(PrivateKey, bool), XlregError> {
    let dir = registry_dir(data_dir);
    let (key, created) = keys::load_or_create(&dir.join(KEY_FILE))?;
    let public_path = dir.join(PUBLIC_KEY_FILE);
    if !public_path.exists() {
        keys::write_new_file(&public_path, &key.public_key()?.to_pem()?, 0o644)?;
    }
    Ok((key, created))
}

/// How a hosted registry runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (`ip:port`; port 0 picks one).
    pub listen: String,
    /// The node's data directory (the registry uses its `xlreg/`).
    pub data_dir: PathBuf,
    /// Time from the handshake permit to `ClientOK`.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once.
    pub max_handshakes: usize,
    /// An identified session silent this long is closed.
    pub idle_timeout: Duration,
    /// Per-source bounds on connections.
    pub sources: SourceLimits,
    /// Bounds on clients and clusters.
    pub limits: Limits,
    /// Who may identify.
    pub admission: Admission,
    /// Uids besides the node's own and root's allowed on the admin socket.
    pub admin_uids: Vec<u32>,
    /// The node's metrics, for the registry and session actors (none in
    /// unit tests).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl ServerConfig {
    /// The server configuration of `config`, loading its admission lists
    /// and files.
    pub fn new(
        config: &XlregConfig,
        metrics: Option<Arc<crate::metrics::Metrics>>,
    ) -> Result<ServerConfig, XlregError> {
        Ok(ServerConfig {
            listen: config.listen.clone(),
            data_dir: config.data_dir.clone(),
            handshake_timeout: config.handshake_timeout,
            max_handshakes: config.max_handshakes,
            idle_timeout: config.idle_timeout,
            sources: config.sources,
            limits: config.limits,
            admission: Admission::from_config(&config.admit)?,
            admin_uids: config.admin_uids.clone(),
            metrics,
        })
    }
}

/// What every connection of one registry shares.
pub struct Shared {
    key: PrivateKey,
    registry: Addr<RegistryActor>,
    handshakes: Arc<Semaphore>,
    /// Connections accepted that have no handshake permit yet.
    waiting: AtomicUsize,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    sources: Arc<Mutex<Sources>>,
    refusal_log: Mutex<LogLimit>,
    stop: watch::Receiver<bool>,
    stats: Arc<XlregStats>,
    /// Metrics of the session actors.
    session_metrics: Option<crate::metrics::ActorMetrics>,
}

/// A running registry.
#[derive(Debug)]
pub struct RunningServer {
    /// Bound address.
    pub local_addr: SocketAddr,
    /// The registry's public key.
    pub public_key: PublicKey,
    /// Its counters.
    pub stats: Arc<XlregStats>,
}

/// Loads (or creates) the key and the log, binds, and serves until `stop`
/// turns true. Returns once listening. Must run inside an actix system.
pub async fn serve(
    config: ServerConfig,
    stop: watch::Receiver<bool>,
) -> Result<RunningServer, XlregError> {
    let data_dir = config.data_dir.clone();
    let limits = config.limits;
    let (key, created, store, mut registry, report) = tokio::task::spawn_blocking(move || {
        let (key, created) = load_or_create_key(&data_dir)?;
        let (store, registry, report) = Store::open(&registry_dir(&data_dir), limits)?;
        Ok::<_, XlregError>((key, created, store, registry, report))
    })
    .await
    .map_err(|e| XlregError::Other(format!("loading the registry: {e}")))??;
    let key_path = registry_dir(&config.data_dir).join(KEY_FILE);
    if created {
        info!(path = %key_path.display(), "xlReg: generated the registry key");
    }
    if report.dropped_bytes > 0 {
        warn!(
            path = %store.path().display(),
            bytes = report.dropped_bytes,
            "xlReg: dropped a torn last record of the registry log (never acknowledged)"
        );
    }
    info!(
        records = report.records,
        clients = registry.client_count(),
        clusters = registry.cluster_count(),
        expired = report.expired,
        admission = !config.admission.is_open(),
        "xlReg registry loaded"
    );
    registry.set_admission(config.admission.clone());
    let listen: SocketAddr = config.listen.parse().map_err(|e| XlregError::Listen {
        addr: config.listen.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| XlregError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| XlregError::Listen {
        addr: config.listen.clone(),
        source,
    })?;
    let public_key = key.public_key()?;
    let committer = Committer::start(store.sync_handle()?, store.written())
        .map_err(|e| XlregError::Other(format!("starting the registry log syncer: {e}")))?;
    let arbiter = Arbiter::new();
    let registry_metrics = config
        .metrics
        .clone()
        .map(|m| crate::metrics::ActorMetrics::new(m, "registry"));
    let session_metrics = config
        .metrics
        .clone()
        .map(|m| crate::metrics::ActorMetrics::new(m, "registry_session"));
    let stats = Arc::new(XlregStats::default());
    let actor = RegistryActor::new(registry, store, committer, registry_metrics, stats.clone());
    let registry = RegistryActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
    let admin_socket = admin::listen(
        &registry_dir(&config.data_dir),
        config.admin_uids.clone(),
        registry.clone(),
        stop.clone(),
    )
    .map_err(|e| XlregError::Other(format!("the registry's admin socket: {e}")))?;
    info!(path = %admin_socket.display(), "xlReg admin socket listening");
    let shared = Arc::new(Shared {
        key,
        registry,
        handshakes: Arc::new(Semaphore::new(config.max_handshakes.max(1))),
        waiting: AtomicUsize::new(0),
        handshake_timeout: config.handshake_timeout,
        idle_timeout: config.idle_timeout,
        sources: Arc::new(Mutex::new(Sources::new(config.sources))),
        refusal_log: Mutex::new(LogLimit::new(REFUSAL_LOG_INTERVAL)),
        stop: stop.clone(),
        stats: stats.clone(),
        session_metrics,
    });
    actix_rt::spawn(accept_loop(listener, shared, stop, arbiter));
    Ok(RunningServer {
        local_addr,
        public_key,
        stats,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    arbiter: Arbiter,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let accepted = Instant::now();
                    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let source = match SourceGuard::admit(&shared.sources, peer.ip()) {
                        Ok(source) => source,
                        Err(refusal) => {
                            shared.refuse_connection(peer, refusal.reason());
                            continue;
                        }
                    };
                    if shared.waiting.load(Ordering::Relaxed) >= MAX_WAITING {
                        shared.stats.connections_refused.fetch_add(1, Ordering::Relaxed);
                        shared.refuse_connection(peer, "waiting_full");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    actix_rt::spawn(connection(stream, peer, source, accepted, shared.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "xlReg: accepting a connection failed");
                    // Typically out of file descriptors: give others a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    debug!("xlReg: no longer accepting connections");
    drop(listener);
    // Sessions see the same stop signal; let them close before the
    // registry goes.
    tokio::task::yield_now().await;
    arbiter.stop();
}

impl Shared {
    /// Counts and (rate-limited) logs a connection closed at its accept.
    fn refuse_connection(&self, peer: SocketAddr, reason: &'static str) {
        self.stats.refused(reason);
        let logged = self
            .refusal_log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(reason, std::time::Instant::now());
        if let Some(unlogged) = logged {
            warn!(%peer, reason, unlogged, "xlReg: connection refused; closing it");
        }
    }
}

/// Counts a connection waiting for its Hello or a permit while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection ended before its session started.
#[derive(Debug, thiserror::Error)]
enum HelloFailure {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Handshake(#[from] super::hello::HandshakeError),
    #[error("decryption task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    source: SourceGuard,
    accepted: Instant,
    shared: Arc<Shared>,
) {
    let mut stop = shared.stop.clone();
    let timed_out = |what: &str| {
        shared
            .stats
            .handshake_timeouts
            .fetch_add(1, Ordering::Relaxed);
        debug!(%peer, "xlReg handshake timed out {what}; closing");
    };
    let (cipher, permit) = {
        let _waiting = Waiting::new(&shared.waiting);
        // The Hello first, holding no permit: a connection that sends
        // nothing keeps nobody else waiting.
        let mut cipher = vec![0u8; shared.key.size()];
        let hello_by = accepted + shared.handshake_timeout;
        let read = tokio::select! {
            read = tokio::time::timeout_at(hello_by, stream.read_exact(&mut cipher)) => read,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                shared.stats.hellos_refused.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, error = %e, "xlReg Hello not read; closing silently");
                return;
            }
            Err(_) => return timed_out("before the Hello"),
        }
        let permit_by = Instant::now() + shared.handshake_timeout;
        let permit = tokio::select! {
            permit = tokio::time::timeout_at(permit_by, shared.handshakes.clone().acquire_owned()) => permit,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match permit {
            Ok(Ok(permit)) => (cipher, permit),
            Ok(Err(_)) => return,
            Err(_) => return timed_out("waiting for a handshake slot"),
        }
    };
    let deadline = Instant::now() + shared.handshake_timeout;
    let exchanged = tokio::select! {
        result = tokio::time::timeout_at(deadline, hello_exchange(&mut stream, cipher, &shared.key)) => result,
        _ = stop.wait_for(|stopped| *stopped) => return,
    };
    let reply = match exchanged {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => {
            shared.stats.hellos_refused.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, error = %e, "xlReg Hello refused; closing silently");
            return;
        }
        Err(_) => return timed_out("answering the Hello"),
    };
    let keys = match reply.session_keys() {
        Ok(keys) => keys,
        Err(e) => {
            debug!(%peer, error = %e, "xlReg session keys failed; closing");
            return;
        }
    };
    RegistrySession::start(
        stream,
        peer,
        &keys,
        reply.salt2,
        permit,
        source,
        deadline.into_std(),
        shared.clone(),
    );
}

/// Decrypts the Hello read (`cipher`), answers it; returns the reply sent.
async fn hello_exchange(
    stream: &mut TcpStream,
    cipher: Vec<u8>,
    key: &PrivateKey,
) -> Result<HelloReply, HelloFailure> {
    let key = key.clone();
    let hello = tokio::task::spawn_blocking(move || Hello::open(&cipher, &key)).await??;
    let reply = HelloReply::answer(&hello)?;
    // The version chosen is always one this server speaks.
    reply.scheme()?;
    stream.write_all(&reply.seal(&hello)).await?;
    Ok(reply)
}

#[cfg(test)]
mod tests;
