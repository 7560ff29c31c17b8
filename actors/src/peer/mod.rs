//! Peer links: the handshake ([`handshake`]), the per-link actor
//! ([`link::PeerLink`]), outbound dialing with backoff ([`connector`]), the
//! inbound side ([`accept_link`]) and the directory of known peers
//! ([`directory`]).
//!
//! An attempt, either side, succeeds only when the link's first frame from
//! the other side has been read ([`link`]); anything short of that is a
//! failed attempt: counted in `catalogue_peer_handshake_failures_total` by
//! reason, and logged at most once per reason every
//! [`FAILURE_LOG_INTERVAL`] (the line says how many were left out).
//! Connections beyond `limits.handshakes_in_progress` (node-wide, or per
//! source address) are refused before their handshake starts
//! ([`PeerContext::refuse_early`]): `Error` 0x13 if the socket takes it at
//! once, then close, counted and logged the same way.

pub mod connector;
pub mod directory;
pub mod handshake;
pub mod link;

use std::{
    cell::RefCell,
    collections::HashMap,
    net::SocketAddr,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use actix::Addr;
use catalogue_proto::{
    Body, Frame, FrameCodec,
    catalogue::{Error, ErrorCode},
};
use tokio::net::TcpStream;
use tokio_util::codec::Encoder;
use tracing::warn;

use crate::{
    admission::HandshakeRefusal,
    input::InputLimits,
    log_limit::LogLimit,
    metrics::Metrics,
    settings::Settings,
    supervisor::CatalogueSupervisor,
    sync::session::{Role, SessionConfig},
    tls::TlsContexts,
};
use directory::PeerDirectory;
use handshake::{HandshakeError, LocalIdentity};
use link::{LinkId, LinkProgress, PeerLink};

/// Most entries accepted in one batch from a peer (a full transfer of a
/// large catalogue is one batch).
pub const MAX_BATCH_ENTRIES: usize = 10_000_000;

/// At most one log line per failure reason in this time, for refused
/// inbound links (per node) and failed dials (per peer dialed).
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What every link of a node shares.
pub struct PeerContext {
    /// This node.
    pub local: LocalIdentity,
    /// TLS contexts; `None` in debug mode. Replaced on reload: new
    /// handshakes use the new certificates, established links go on.
    pub tls: RefCell<Option<Arc<TlsContexts>>>,
    /// Known peers and their states.
    pub directory: PeerDirectory,
    /// The supervisor.
    pub supervisor: Addr<CatalogueSupervisor>,
    /// Frame limit.
    pub max_frame: usize,
    /// Frame limits, deadline and budget of the links' readers (shared
    /// with the client connections).
    pub input: InputLimits,
    /// First reconnect delay.
    pub retry_initial: Duration,
    /// Longest reconnect delay.
    pub retry_max: Duration,
    /// Counters.
    pub stats: Arc<Metrics>,
    /// Session tuning (node, peer and role are filled in per link).
    pub session: SessionConfig,
    next_link: AtomicU64,
    /// Ids given to connecting nodes, by name, so a returning node gets its
    /// old id back.
    ids: RefCell<HashMap<String, u32>>,
    /// Rate of the `peer link refused` lines.
    refusal_log: RefCell<LogLimit>,
}

impl PeerContext {
    /// A context for a node with `settings`; link ids start at 1.
    pub fn new(
        settings: &Settings,
        local: LocalIdentity,
        tls: Option<Arc<TlsContexts>>,
        directory: PeerDirectory,
        supervisor: Addr<CatalogueSupervisor>,
        stats: Arc<Metrics>,
        input: InputLimits,
    ) -> Self {
        let sync = &settings.sync;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let session = SessionConfig {
            node: local.name.clone(),
            peer: String::new(),
            role: Role::Connector,
            window: sync.window,
            batch_max_entries: sync.batch_max_entries,
            batch_delay_ms: millis(sync.batch_delay),
            ack_timeout_ms: millis(sync.ack_timeout),
            max_batch_entries: MAX_BATCH_ENTRIES,
            max_uri: settings.limits.max_uri_bytes,
        };
        PeerContext {
            local,
            tls: RefCell::new(tls),
            directory,
            supervisor,
            max_frame: settings.limits.max_frame_bytes,
            input,
            retry_initial: sync.retry_initial,
            retry_max: sync.retry_max,
            stats,
            session,
            next_link: AtomicU64::new(1),
            ids: RefCell::new(HashMap::new()),
            refusal_log: RefCell::new(LogLimit::new(FAILURE_LOG_INTERVAL)),
        }
    }

    /// The session configuration of a link to `peer` in `direction`.
    pub fn session_for(&self, peer: &str, direction: directory::Direction) -> SessionConfig {
        let role = match direction {
            directory::Direction::Outbound => Role::Connector,
            directory::Direction::Inbound => {
                let mut ids = self.ids.borrow_mut();
                let next = u32::try_from(ids.len() + 1).unwrap_or(u32::MAX);
                Role::Acceptor {
                    assigned_id: *ids.entry(peer.to_string()).or_insert(next),
                }
            }
        };
        SessionConfig {
            peer: peer.to_string(),
            role,
            ..self.session.clone()
        }
    }

    /// Starts the link actor of an established link; it comes up (and
    /// tells the supervisor) when its first frame from the other side is
    /// read.
    pub fn start_link(&self, id: LinkId, established: handshake::Established) -> LinkProgress {
        let cfg = self.session_for(&established.peer, established.direction);
        PeerLink::start(
            id,
            established,
            cfg,
            self.supervisor.clone(),
            &self.input,
            self.stats.clone(),
        )
    }

    /// A fresh link id.
    pub fn new_link_id(&self) -> LinkId {
        self.next_link.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts and (rate-limited) logs an inbound link from `remote` that
    /// failed before it was up.
    fn refused(&self, remote: SocketAddr, e: &HandshakeError) {
        if let HandshakeError::Codec(e) = e {
            self.stats.input_closed("peer", e);
        }
        self.log_refusal(remote, e.reason(), e);
    }

    fn log_refusal(&self, remote: SocketAddr, reason: &'static str, e: &dyn std::fmt::Display) {
        self.stats.handshake_failure(reason);
        match self.refusal_log.borrow_mut().check(reason, Instant::now()) {
            Some(unlogged) => warn!(%remote, error = %e, reason, unlogged, "peer link refused"),
            None => self.stats.log_lines_suppressed.inc(),
        }
    }

    /// Refuses a peer-port connection before its handshake (too many in
    /// progress): tries to tell it with `Error` 0x13 without waiting (one
    /// small write into an empty socket buffer), counts it, logs it
    /// (rate-limited) and closes it.
    pub fn refuse_early(&self, stream: TcpStream, remote: SocketAddr, why: HandshakeRefusal) {
        let error = Error::new(ErrorCode::LimitExceeded, why.to_string());
        let mut bytes = bytes::BytesMut::new();
        if FrameCodec::new(self.max_frame)
            .encode(Frame::new(0, Body::Error(error)), &mut bytes)
            .is_ok()
        {
            let _ = stream.try_write(&bytes);
        }
        drop(stream);
        self.log_refusal(remote, why.reason(), &why);
    }
}

/// Runs the accepting side of a link on `stream` and, if the handshake
/// succeeds, starts its [`PeerLink`], which offers itself to the supervisor
/// once the dialer's first frame is read. Returns when the link is up or
/// has failed.
pub async fn accept_link(stream: TcpStream, remote: SocketAddr, ctx: Rc<PeerContext>) {
    let _ = stream.set_nodelay(true);
    let tls = ctx.tls.borrow().clone();
    let result = handshake::accept(
        stream,
        remote,
        &ctx.local,
        &ctx.directory,
        tls.as_deref(),
        &ctx.input,
    )
    .await;
    let established = match result {
        Ok(established) => established,
        Err(e) => return ctx.refused(remote, &e),
    };
    let link = ctx.start_link(ctx.new_link_id(), established);
    if let Ok(Err(e)) = link.up.await {
        ctx.refused(remote, &e);
    }
}
