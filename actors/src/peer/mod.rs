//! Peer links: the handshake ([`handshake`]), the per-link actor
//! ([`link::PeerLink`]), outbound dialing with backoff ([`connector`]), the
//! inbound side ([`accept_link`]) and the directory of known peers
//! ([`directory`]).

pub mod connector;
pub mod directory;
pub mod handshake;
pub mod link;
pub mod wire;

use std::{
    net::SocketAddr,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use actix::Addr;
use tokio::net::TcpStream;
use tracing::warn;

use crate::{
    stats::Stats,
    supervisor::{CatalogueSupervisor, LinkUp},
    tls::TlsContexts,
};
use directory::PeerDirectory;
use handshake::LocalIdentity;
use link::{LinkId, PeerLink};

/// What every link of a node shares.
pub struct PeerContext {
    /// This node.
    pub local: LocalIdentity,
    /// TLS contexts; `None` in debug mode.
    pub tls: Option<Arc<TlsContexts>>,
    /// Known peers and their states.
    pub directory: PeerDirectory,
    /// The supervisor.
    pub supervisor: Addr<CatalogueSupervisor>,
    /// Frame limit.
    pub max_frame: usize,
    /// First reconnect delay.
    pub retry_initial: Duration,
    /// Longest reconnect delay.
    pub retry_max: Duration,
    /// Counters.
    pub stats: Arc<Stats>,
    next_link: AtomicU64,
}

impl PeerContext {
    /// A context; link ids start at 1.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        local: LocalIdentity,
        tls: Option<Arc<TlsContexts>>,
        directory: PeerDirectory,
        supervisor: Addr<CatalogueSupervisor>,
        max_frame: usize,
        retry_initial: Duration,
        retry_max: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        PeerContext {
            local,
            tls,
            directory,
            supervisor,
            max_frame,
            retry_initial,
            retry_max,
            stats,
            next_link: AtomicU64::new(1),
        }
    }

    /// A fresh link id.
    pub fn new_link_id(&self) -> LinkId {
        self.next_link.fetch_add(1, Ordering::Relaxed)
    }
}

/// Runs the accepting side of a link on `stream` and, if the handshake
/// succeeds, starts its [`PeerLink`] and offers it to the supervisor.
pub async fn accept_link(stream: TcpStream, remote: SocketAddr, ctx: Rc<PeerContext>) {
    let _ = stream.set_nodelay(true);
    let result = handshake::accept(
        stream,
        remote,
        &ctx.local,
        &ctx.directory,
        ctx.tls.as_deref(),
        ctx.max_frame,
    )
    .await;
    let established = match result {
        Ok(established) => established,
        Err(e) => {
            ctx.stats.peer_handshake_failures.inc();
            warn!(%remote, error = %e, reason = e.reason(), "peer link refused");
            return;
        }
    };
    let id = ctx.new_link_id();
    let peer = established.peer.clone();
    let direction = established.direction;
    let (addr, _ended) = PeerLink::start(id, established, ctx.supervisor.clone(), ctx.max_frame);
    let _ = ctx
        .supervisor
        .send(LinkUp {
            peer: peer.clone(),
            link: id,
            direction,
            dialer: peer,
            addr,
        })
        .await;
}
