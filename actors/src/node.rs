//! Running a node: starts the supervisor, binds the configured listeners,
//! serves connections until the shutdown future resolves, then stops in
//! order.
//!
//! Stop order: stop accepting; tell every connection to stop (each ends its
//! subscriptions and says `Bye`); wait, at most [`DRAIN_TIMEOUT`], for the
//! connections' writers to flush and close; remove the UNIX socket file;
//! return.
//!
//! Peer links: one connector task per configured peer with an address
//! dials it; connections on the peer port run the accepting handshake.
//! On stop, the supervisor announces the end of every link (LinkDelete) and
//! closes them before the client connections are told goodbye.
//!
//! Admission ([`crate::admission`]): the node raises its open-file limit
//! to the hard limit at start and logs it; client connections are counted
//! per transport (`limits.connections_tcp`, `limits.connections_unix`,
//! the TCP limit lowered if the descriptors would not leave room for the
//! UNIX socket); peer-port connections beyond
//! `limits.handshakes_in_progress` (or its per-address share) are refused
//! at once; a listener that fails to accept for want of descriptors pauses
//! with a growing backoff instead of spinning. Warnings on these paths are
//! rate-limited per reason ([`crate::log_limit`]); the metrics count every
//! event.

use std::{
    future::Future,
    path::PathBuf,
    rc::Rc,
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use actix::prelude::*;
use catalogue_proto::{
    Body,
    catalogue::{Error, ErrorCode, Welcome},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, UnixListener},
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};
use tokio_util::codec::FramedRead;
use tracing::{info, warn};

use crate::{
    admission::{self, AcceptBackoff, ConnectionSlots, HandshakeSlots},
    connection::{
        ClientConnection, ClientShared,
        auth::{RegisterPolicy, Transport},
        gated,
        tls::{Handshaken, TlsPort},
    },
    frame_writer,
    hlc::{Hlc, SystemClock},
    input::InputLimits,
    listen::{self, ListenError},
    log_limit::LogLimit,
    membership::{ClusterMembership, Discovered, MembershipConfig},
    metrics::Metrics,
    peer::{
        self, PeerContext, connector::Connectors, directory::PeerDirectory,
        handshake::LocalIdentity,
    },
    reload::Reloader,
    settings::{ClientTls, Settings},
    subscription::ledger::{LedgerLimits, SharedLedger},
    supervisor::{
        CatalogueSupervisor, DropPeer, LinksCell, ServicesView, Shutdown, SupervisorConfig,
    },
    tls::TlsContexts,
};

/// Time open connections get to finish after `Bye` before the node exits.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Initial read buffer of a client connection: most requests are far
/// smaller than the codec's 8 KiB default, and idle connections are many;
/// the buffer grows for a bigger frame.
const READ_BUFFER: usize = 512;

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The xlReg registry could not be hosted.
    #[error(transparent)]
    Xlreg(#[from] crate::xlreg::XlregError),
    /// The TLS files could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The HTTP API could not listen.
    #[error("cannot serve the HTTP API on {addr}: {source}")]
    Http {
        /// The configured address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics endpoint could not listen.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The listeners of a node.
struct Listeners {
    client: Option<TcpListener>,
    unix: Option<UnixListener>,
    socket_path: Option<PathBuf>,
    peer: Option<TcpListener>,
}

/// Removes the UNIX socket file when dropped, if it is still there.
struct SocketFile(Option<PathBuf>);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listeners {
    async fn bind(settings: &Settings) -> Result<Self, NodeError> {
        let client = match settings.listen.client.as_str() {
            "" => None,
            addr => Some(listen::bind_tcp("clients", addr).await?),
        };
        let peer = match settings.listen.peer.as_str() {
            "" => None,
            addr => Some(listen::bind_tcp("peers", addr).await?),
        };
        // Last: a TCP port in use then leaves no socket file behind.
        let socket_path =
            (!settings.listen.socket.is_empty()).then(|| PathBuf::from(&settings.listen.socket));
        let unix = socket_path.as_deref().map(listen::bind_unix).transpose()?;
        Ok(Listeners {
            client,
            unix,
            socket_path,
            peer,
        })
    }

    fn describe(l: &Option<TcpListener>) -> String {
        l.as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "-".to_string(), |a| a.to_string())
    }
}

/// At most one line per reason in this time on the accept paths (refused
/// client connections, failed accepts); the next line says how many were
/// left out.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts client connections and starts their actors.
struct Acceptor {
    welcome: Welcome,
    shared: Arc<ClientShared>,
    stop: watch::Receiver<bool>,
    next_conn: u64,
    max_frame: usize,
    /// Frame limits, deadline and budget of the connections' readers.
    input: InputLimits,
    /// Places for TCP clients (`limits.connections_tcp`, maybe lowered to
    /// fit the open-file limit).
    tcp: ConnectionSlots,
    /// Places for UNIX socket clients (`limits.connections_unix`).
    unix: ConnectionSlots,
    /// Requests of all TCP clients in the node (`limits.requests_in_flight_tcp`).
    tcp_requests: Arc<Semaphore>,
    /// Requests of all UNIX clients in the node (`limits.requests_in_flight_unix`).
    unix_requests: Arc<Semaphore>,
    /// Rate of the warnings on the accept paths.
    log: LogLimit,
    writers: JoinSet<()>,
}

impl Acceptor {
    fn accept<S>(&mut self, stream: S, transport: Transport)
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let (slots, requests, name, key) = match transport {
            Transport::Tcp { .. } => (
                &self.tcp,
                &self.tcp_requests,
                "tcp",
                "limits.connections_tcp",
            ),
            Transport::Unix { .. } => (
                &self.unix,
                &self.unix_requests,
                "unix",
                "limits.connections_unix",
            ),
        };
        let requests = requests.clone();
        let slot = slots.try_acquire();
        let limit = slots.limit();
        let (read, write) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(frame_writer::OUTBOUND_FRAMES);
        self.writers
            .spawn_local(frame_writer::run(write, rx, self.max_frame));
        let Some(slot) = slot else {
            self.shared.stats.connection_refused(name);
            let message = format!("too many connections over {name} ({key} = {limit})");
            self.warn(key, |unlogged| {
                warn!(%transport, limit, reason = key, unlogged, "connection refused");
            });
            let _ = tx.try_send(Box::new(Body::Error(Error::new(
                ErrorCode::LimitExceeded,
                message,
            ))));
            return;
        };
        let _ = tx.try_send(Box::new(Body::Welcome(self.welcome.clone())));
        let id = self.next_conn;
        self.next_conn += 1;
        let shared = self.shared.clone();
        let stop = self.stop.clone();
        let reader = self.input.deadline(FramedRead::with_capacity(
            read,
            self.input.codec(),
            READ_BUFFER,
        ));
        ClientConnection::create(move |ctx| {
            ctx.add_stream(gated(
                reader,
                shared.limits.requests_in_flight,
                requests,
                shared.stats.clone(),
            ));
            ClientConnection::new(id, transport, tx, shared, stop, slot)
        });
    }

    /// Starts the connection a client-port TLS handshake produced, or
    /// counts and (rate-limited) logs why there is none.
    fn handshaken(&mut self, done: Handshaken) {
        match done {
            Handshaken::Ready { stream, peer } => self.accept(stream, Transport::Tcp { peer }),
            Handshaken::Failed {
                peer,
                reason,
                detail,
            } => {
                self.shared.stats.client_tls_failure(reason);
                self.warn("client_tls", |unlogged| {
                    warn!(%peer, reason, unlogged, "client TLS handshake failed: {detail}");
                });
            }
            Handshaken::Refused { peer, why } => {
                self.shared.stats.client_tls_failure(why.reason());
                self.warn(why.reason(), |unlogged| {
                    warn!(%peer, unlogged, "client connection refused before TLS: {why}");
                });
            }
        }
    }

    /// Runs `log` (given how many lines of `reason` were left out) unless a
    /// line of `reason` was written less than [`ACCEPT_LOG_INTERVAL`] ago.
    fn warn(&mut self, reason: &'static str, log: impl FnOnce(u64)) {
        match self.log.check(reason, Instant::now()) {
            Some(unlogged) => log(unlogged),
            None => self.shared.stats.log_lines_suppressed.inc(),
        }
    }

    /// Counts and (rate-limited) logs a failed accept on `listener`, and
    /// pauses that listener if the process is out of descriptors.
    fn accept_failed(
        &mut self,
        listener: &'static str,
        backoff: &mut AcceptBackoff,
        e: &std::io::Error,
    ) {
        self.shared.stats.accept_error(listener);
        let pause = backoff.failed(e, Instant::now());
        self.warn(listener, |unlogged| {
            warn!(listener, error = %e, pause = ?pause, unlogged, "accepting a connection failed");
        });
    }
}

/// Runs a node with `settings` until `shutdown` resolves, applying each
/// configuration that arrives on `reloads` (see [`crate::reload`]).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::UnboundedReceiver<Settings>,
) -> Result<(), NodeError> {
    let node = &settings.node;
    if node.debug {
        warn!(
            "debug mode: peer links stay plaintext and registration is accepted over TCP without uid checks"
        );
    }
    let nofile = match admission::raise_nofile() {
        Ok(n) => {
            info!(
                soft = n.soft,
                hard = n.hard,
                was = n.before,
                "open file limit"
            );
            n.soft
        }
        Err(e) => {
            warn!(error = %e, "cannot read or raise the open file limit");
            u64::MAX
        }
    };
    let listeners = Listeners::bind(&settings).await?;
    // Removes the socket file if the start fails from here on (the normal
    // shutdown removes it itself, below).
    let _socket_file = SocketFile(listeners.socket_path.clone());
    info!(
        node = %node.name,
        cluster = %node.cluster,
        environment = %node.environment,
        client = %Listeners::describe(&listeners.client),
        client_tls = ?settings.listen.client_tls,
        socket = %listeners.socket_path.as_ref().map_or_else(|| "-".to_string(), |p| p.display().to_string()),
        peer = %Listeners::describe(&listeners.peer),
        "listening"
    );

    for warning in settings.warnings() {
        warn!(key = %warning.key, "{}", warning.problem);
    }
    let tls = if node.debug || settings.tls.is_empty() {
        None
    } else {
        let t = &settings.tls;
        Some(Arc::new(TlsContexts::from_files(
            t.ca.as_ref(),
            t.cert.as_ref(),
            t.key.as_ref(),
        )?))
    };
    let client_tls = match settings.listen.client_tls {
        ClientTls::Off => None,
        mode => {
            let t = &settings.tls;
            Some(TlsContexts::client_port_from_files(
                t.ca.as_ref(),
                t.cert.as_ref(),
                t.key.as_ref(),
                mode == ClientTls::Mutual,
            )?)
        }
    };
    let xlreg_cluster =
        (!settings.xlreg.server.is_empty()).then(|| settings.xlreg.cluster.name.clone());
    if let (Some(cluster), Some(_)) = (&xlreg_cluster, &tls) {
        warn_unless_certificate_names(&settings.tls.cert, cluster);
    }
    let xlreg_secret = match settings.xlreg.secret_file.as_str() {
        "" => None,
        path => Some(crate::xlreg::client::Secret(
            crate::xlreg::admission::read_secret(std::path::Path::new(path)).map_err(
                |problem| {
                    crate::xlreg::XlregError::Admission(crate::xlreg::admission::AdmitConfigError {
                        key: "xlreg.secret_file".into(),
                        problem,
                    })
                },
            )?,
        )),
    };
    let stats = Arc::new(Metrics::default());
    let input = InputLimits::new(&settings.limits);
    stats.watch_input(&input.budget);
    let directory = PeerDirectory::default();
    for p in &settings.peers {
        directory.add(&p.name, &p.address);
    }
    stats
        .open_files_limit
        .set(i64::try_from(nofile).unwrap_or(i64::MAX));
    // Bound before any actor starts, so that a port in use fails the start
    // cleanly.
    let metrics = match settings.metrics.listen.as_str() {
        "" => None,
        addr => {
            let server = crate::metrics::endpoint::start(
                addr,
                stats.clone(),
                directory.clone(),
                &node.name,
                &node.cluster,
            )
            .map_err(|source| NodeError::Metrics {
                addr: addr.to_string(),
                source,
            })?;
            info!(address = %server.local_addr, "metrics endpoint listening");
            Some(server)
        }
    };
    let hlc = Hlc::new(SystemClock, settings.sync.max_clock_drift);
    let view = ServicesView::default();
    let supervisor = CatalogueSupervisor::new(
        node.name.clone(),
        hlc,
        directory.clone(),
        SupervisorConfig {
            tombstone_ttl: settings.sync.tombstone_ttl,
            unreachable_grace: settings.sync.unreachable_grace,
            bulk_threshold: settings.limits.subscription_queue / 2,
            history_window: settings.limits.subscription_history,
        },
        stats.clone(),
        view.clone(),
    );
    let links_cell = supervisor.links_cell();
    let supervisor = supervisor.start();
    let peers = Rc::new(PeerContext::new(
        &settings,
        LocalIdentity {
            name: node.name.clone(),
            cluster: node.cluster.clone(),
            environment: node.environment.clone(),
            debug: node.debug,
            xlreg_cluster,
        },
        tls,
        directory,
        supervisor.clone(),
        stats.clone(),
        input.clone(),
    ));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own_uid = unsafe { libc::geteuid() };
    let shared = Arc::new(ClientShared {
        limits: settings.limits.clone(),
        policy: std::sync::RwLock::new(RegisterPolicy {
            debug: node.debug,
            allowed_uids: settings.register.allowed_uids.clone(),
            allowed_gids: settings.register.allowed_gids.clone(),
            own_uid,
        }),
        supervisor: supervisor.clone(),
        view: view.clone(),
        stats: stats.clone(),
        next_key: AtomicU64::new(1),
        subscriptions: SharedLedger::new(
            LedgerLimits::new(&settings.limits),
            stats.regex_memory.clone(),
        ),
        patterns: crate::subscription::patterns::PatternCache::new(),
        log: std::sync::Mutex::new(LogLimit::new(ACCEPT_LOG_INTERVAL)),
    });
    let welcome = Welcome {
        server_name: node.name.clone(),
        cluster: node.cluster.clone(),
        environment: node.environment.clone(),
        protocol_major: catalogue_proto::PROTOCOL_MAJOR,
        protocol_minor: catalogue_proto::PROTOCOL_MINOR,
        port: catalogue_proto::catalogue::WelcomePort::Client.into(),
    };
    if settings.peers.is_empty() {
        stats.set_ready();
    }
    let api_servers = start_api(
        &settings,
        (&view, &links_cell),
        &supervisor,
        &peers.directory,
        &stats,
        &shared,
    )?;
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(registry) =
        crate::xlreg::host(&settings, stop_rx.clone(), Some(stats.clone())).await?
    {
        info!(address = %registry.local_addr, "xlReg registry listening");
        stats.add_collector(Box::new(crate::xlreg::XlregCollector::new(
            registry.stats.clone(),
        )));
    }
    let limits = &settings.limits;
    let tcp_limit = admission::tcp_budget(
        limits.connections_tcp,
        limits.connections_unix,
        limits.handshakes_in_progress,
        nofile,
    );
    if tcp_limit < limits.connections_tcp {
        warn!(
            configured = limits.connections_tcp,
            in_force = tcp_limit,
            open_files = nofile,
            "limits.connections_tcp lowered to leave descriptors for the UNIX socket and peer handshakes"
        );
    }
    let mut acceptor = Acceptor {
        welcome: welcome.clone(),
        shared,
        stop: stop_rx.clone(),
        next_conn: 1,
        max_frame: settings.limits.max_frame_bytes,
        input,
        tcp: ConnectionSlots::new(tcp_limit, stats.connections_open("tcp")),
        unix: ConnectionSlots::new(limits.connections_unix, stats.connections_open("unix")),
        tcp_requests: Arc::new(Semaphore::new(limits.requests_in_flight_tcp)),
        unix_requests: Arc::new(Semaphore::new(limits.requests_in_flight_unix)),
        log: LogLimit::new(ACCEPT_LOG_INTERVAL),
        writers: JoinSet::new(),
    };
    let handshakes = HandshakeSlots::new(
        limits.handshakes_in_progress,
        limits.handshakes_in_progress_per_address,
        stats.handshakes_in_progress.clone(),
    );
    let mut client_tls = client_tls.map(|acceptor| {
        let slots = HandshakeSlots::new(
            limits.handshakes_in_progress,
            limits.handshakes_in_progress_per_address,
            stats.client_tls_handshakes.clone(),
        );
        TlsPort::new(acceptor, slots, limits.frame_read_timeout)
    });
    let mut client_backoff = AcceptBackoff::default();
    let mut unix_backoff = AcceptBackoff::default();
    let mut peer_backoff = AcceptBackoff::default();
    let mut peer_tasks = JoinSet::new();
    let mut connectors = Connectors::new(peers.clone());
    for p in settings.peers.iter().filter(|p| !p.address.is_empty()) {
        connectors.start(&p.name, &p.address);
    }
    let (found_tx, mut found_rx) = mpsc::unbounded_channel::<Discovered>();
    if !settings.xlreg.server.is_empty() {
        let advertise = |l: &Option<TcpListener>| {
            l.as_ref().and_then(|l| l.local_addr().ok()).map(|a| {
                if a.ip().is_unspecified() {
                    format!("{}:{}", node.name, a.port())
                } else {
                    a.to_string()
                }
            })
        };
        let mut my_ends: Vec<String> = advertise(&listeners.peer).into_iter().collect();
        if settings.xlreg.cluster.endpoints >= 2 {
            my_ends.extend(advertise(&listeners.client));
        }
        let x = &settings.xlreg;
        let cfg = MembershipConfig {
            node: node.name.clone(),
            server: x.server.clone(),
            server_key: PathBuf::from(&x.server_key),
            cluster: x.cluster.name.clone(),
            size: x.cluster.size,
            endpoints: x.cluster.endpoints,
            creator: x.cluster.creator.clone(),
            secret: xlreg_secret.clone(),
            identity_dir: node.data_dir.join("xlreg-client"),
            my_ends,
        };
        info!(server = %x.server, cluster = %x.cluster.name, "joining a cluster through xlReg");
        ClusterMembership::new(cfg, found_tx.clone(), stop_rx.clone(), stats.clone()).start();
    }
    let definitions =
        crate::definitions::DefinitionKeeper::new(supervisor.clone(), stats.clone()).start();
    definitions.do_send(crate::definitions::Apply {
        definitions: settings.services.clone(),
    });
    let mut reloader = Reloader {
        current: settings.clone(),
        peers: peers.clone(),
        clients: acceptor.shared.clone(),
        supervisor: supervisor.clone(),
        definitions,
    };

    // Listeners bound, tables and actors up: tell systemd (Type=notify).
    match crate::sd_notify::notify(crate::sd_notify::READY) {
        Ok(true) => info!("told the service manager the node is ready"),
        Ok(false) => {}
        Err(e) => warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)"),
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(accepted) = accept_tcp(&listeners.client, client_backoff.resume_at()) => match accepted {
                Ok((stream, peer)) => {
                    client_backoff.succeeded();
                    let _ = stream.set_nodelay(true);
                    match &client_tls {
                        Some(port) => port.start(stream, peer),
                        None => acceptor.accept(stream, Transport::Tcp { peer }),
                    }
                }
                Err(e) => acceptor.accept_failed("client", &mut client_backoff, &e),
            },
            Some(done) = next_handshake(&mut client_tls) => acceptor.handshaken(done),
            Some(accepted) = accept_unix(&listeners.unix, unix_backoff.resume_at()) => match accepted {
                Ok(stream) => {
                    unix_backoff.succeeded();
                    match stream.peer_cred() {
                        Ok(cred) => {
                            let transport = Transport::Unix { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() };
                            acceptor.accept(stream, transport);
                        }
                        Err(e) => acceptor.warn("peer_cred", |unlogged| {
                            warn!(error = %e, unlogged, "cannot read the credentials of a UNIX connection; closing it");
                        }),
                    }
                }
                Err(e) => acceptor.accept_failed("unix", &mut unix_backoff, &e),
            },
            Some(accepted) = accept_tcp(&listeners.peer, peer_backoff.resume_at()) => match accepted {
                Ok((stream, remote)) => {
                    peer_backoff.succeeded();
                    match handshakes.try_acquire(remote.ip()) {
                        Ok(slot) => {
                            let link = peer::accept_link(stream, remote, peers.clone());
                            peer_tasks.spawn_local(async move {
                                link.await;
                                drop(slot);
                            });
                        }
                        Err(why) => peers.refuse_early(stream, remote, why),
                    }
                }
                Err(e) => acceptor.accept_failed("peer", &mut peer_backoff, &e),
            },
            Some(new) = reloads.recv() => {
                reloader.apply(new, &mut connectors);
            }
            Some(change) = found_rx.recv() => match change {
                Discovered::Member { name, address, dial: true } => {
                    peers.directory.add_member(&name, &address);
                    connectors.start(&name, &address);
                }
                Discovered::Member { name, .. } => peers.directory.add_member(&name, ""),
                Discovered::Gone { name } => {
                    peers.directory.remove_member(&name);
                    if !peers.directory.is_configured(&name) {
                        connectors.stop(&name);
                        supervisor.do_send(DropPeer { peer: name });
                    }
                }
            },
            Some(_) = acceptor.writers.join_next(), if !acceptor.writers.is_empty() => {}
            Some(_) = peer_tasks.join_next(), if !peer_tasks.is_empty() => {}
            Some(()) = connectors.join_next(), if !connectors.is_empty() => {}
        }
    }
    drop(reloader);

    if let Err(e) = crate::sd_notify::notify(crate::sd_notify::STOPPING) {
        warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
    let open = acceptor.writers.len();
    info!(open, "shutting down: no longer accepting connections");
    for server in api_servers {
        server.stop().await;
    }
    let Listeners { socket_path, .. } = listeners;
    // Peers first: the final LinkDelete goes out, then the links close.
    let _ = supervisor.send(Shutdown).await;
    connectors.stop_all();
    let _ = stop_tx.send(true);
    // Drop our handles so writers end once their connections have stopped.
    drop(acceptor.shared);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while acceptor.writers.join_next().await.is_some() {}
        while peer_tasks.join_next().await.is_some() {}
        while connectors.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = acceptor.writers.len() + peer_tasks.len(),
            "connections still open after the drain timeout; closing them"
        );
        acceptor.writers.abort_all();
        peer_tasks.abort_all();
    }
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    if let Some(path) = socket_path {
        if let Err(e) = std::fs::remove_file(&path) {
            warn!(path = %path.display(), error = %e, "cannot remove the UNIX socket file");
        }
    }
    info!(
        overflows = stats.overflows.get(),
        events_delivered = stats.events_delivered.get(),
        "stopped"
    );
    Ok(())
}

/// Warns when this node's certificate does not name the xlReg cluster it
/// forms: its peers that know it only from the registry will refuse it.
fn warn_unless_certificate_names(cert: &str, cluster: &str) {
    let names = crate::tls::pem::load_certificates(std::path::Path::new(cert))
        .ok()
        .and_then(|certs| certs.first().map(|c| crate::tls::cluster_names(c)))
        .unwrap_or_default();
    if !names.iter().any(|n| n == cluster) {
        warn!(
            cert,
            cluster,
            "this node's certificate does not name its xlReg cluster (URI SAN catalogue://cluster/{cluster}); \
             members that know it only from the registry will refuse its links: issue it with \
             `catalogue tls cert --cluster {cluster}`"
        );
    }
}

/// Waits until `resume` (a listener paused after running out of
/// descriptors), then accepts.
async fn paused_until(resume: Option<Instant>) {
    if let Some(at) = resume {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

async fn accept_tcp(
    listener: &Option<TcpListener>,
    resume: Option<Instant>,
) -> Option<std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>> {
    let l = listener.as_ref()?;
    paused_until(resume).await;
    Some(l.accept().await)
}

async fn accept_unix(
    listener: &Option<UnixListener>,
    resume: Option<Instant>,
) -> Option<std::io::Result<tokio::net::UnixStream>> {
    let l = listener.as_ref()?;
    paused_until(resume).await;
    Some(l.accept().await.map(|(s, _)| s))
}

/// The next client-port TLS handshake to finish; never, without TLS.
async fn next_handshake(port: &mut Option<TlsPort>) -> Option<Handshaken> {
    match port {
        Some(port) => port.next().await,
        None => std::future::pending().await,
    }
}

/// Starts the HTTP API on `http.listen` (read-only) and `http.socket`
/// (with registration by lease), as configured.
fn start_api(
    settings: &Settings,
    (view, links): (&ServicesView, &LinksCell),
    supervisor: &Addr<CatalogueSupervisor>,
    directory: &PeerDirectory,
    stats: &Arc<Metrics>,
    shared: &Arc<ClientShared>,
) -> Result<Vec<crate::http::ApiServer>, NodeError> {
    let http = &settings.http;
    let node = &settings.node;
    let api = crate::http::Api::new(
        (
            view.clone(),
            links.clone(),
            directory.clone(),
            stats.clone(),
        ),
        crate::http::NodeIdentity {
            name: node.name.clone(),
            cluster: node.cluster.clone(),
            environment: node.environment.clone(),
        },
        http,
        &settings.limits,
        shared.clone(),
    );
    let mut servers = Vec::new();
    if !http.listen.is_empty() {
        let server = crate::http::start(http, api.clone()).map_err(|source| NodeError::Http {
            addr: http.listen.clone(),
            source,
        })?;
        if let Some(address) = server.local_addr {
            info!(%address, "HTTP API listening");
        }
        servers.push(server);
    }
    if !http.socket.is_empty() {
        let registrar = crate::http::Registrar {
            keeper: crate::http::LeaseKeeper::new(http.max_leases, supervisor.clone()).start(),
            shared: shared.clone(),
            max_ttl: http.max_lease_ttl,
        };
        let path = PathBuf::from(&http.socket);
        let server = crate::http::start_unix(&path, http, api, registrar).map_err(|source| {
            NodeError::Http {
                addr: http.socket.clone(),
                source,
            }
        })?;
        info!(socket = %path.display(), "HTTP API listening on a UNIX socket, with registration");
        servers.push(server);
    }
    Ok(servers)
}
