//! Outbound links: one task per configured peer with an address. It dials,
//! runs the handshake, starts the [`PeerLink`](super::link::PeerLink),
//! waits for the link's first frame from the peer (only then is the link
//! up, see [`super::link`]), waits for the link to end, and dials again
//! after a jittered exponential backoff. It does not dial a peer that is
//! already linked (the peer dialed us), and it stops for good after an
//! environment mismatch until the configuration changes.
//!
//! The backoff (`sync.retry_initial` up to `sync.retry_max`,
//! [`crate::backoff`]) holds for every failed attempt, and is reset only
//! when a link comes up. How long a failure waits depends on what it cost
//! the peer ([`HandshakeError::failure`]): a dial that made no TCP
//! connection (connection refused, host or network unreachable, connect
//! timed out) is retried within `retry_initial` without growing the
//! backoff, so a peer that returns after an outage is linked at once; a
//! failure after the connection was made (TLS or authentication refused,
//! protocol error, the link closed before its first frame) doubles it, so
//! a peer that refuses us is not hammered. docs/PROTOCOL.md ("End") states
//! the rule for operators. Failures are counted in
//! `catalogue_peer_handshake_failures_total` and logged at most once per
//! reason every [`FAILURE_LOG_INTERVAL`].

use std::{collections::HashMap, rc::Rc, time::Instant};

use tokio::{
    sync::{oneshot, watch},
    task::JoinSet,
};
use tracing::{debug, info, warn};

use super::{
    FAILURE_LOG_INTERVAL, PeerContext,
    directory::PeerState,
    handshake::{self, HandshakeError},
};
use crate::{backoff::Backoff, log_limit::LogLimit};

/// Dials `name` at `address` until `stop` turns true.
pub async fn run(
    name: String,
    address: String,
    ctx: Rc<PeerContext>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(ctx.retry_initial, ctx.retry_max);
    let mut failure_log = LogLimit::new(FAILURE_LOG_INTERVAL);
    let Some(mut linked) = ctx.directory.linked(&name) else {
        return;
    };
    loop {
        // Wait while a link to this peer exists (it may have dialed us).
        while *linked.borrow_and_update() {
            tokio::select! {
                _ = linked.changed() => {}
                _ = stop.changed() => return,
            }
        }
        if *stop.borrow() {
            return;
        }
        ctx.directory.set_state(&name, PeerState::Connecting, None);
        let result = tokio::select! {
            result = dial(&name, &address, &ctx) => result,
            _ = stop.changed() => return,
        };
        let delay = match result {
            Ok(ended) => {
                backoff.reset();
                tokio::select! {
                    _ = ended => {}
                    _ = stop.changed() => return,
                }
                backoff.next_delay(&mut rand::rng())
            }
            Err(e) if e.is_permanent() => {
                warn!(peer = %name, %address, error = %e, reason = e.reason(), "peer refused for good; not retrying until the configuration changes");
                ctx.stats.handshake_failure(e.reason());
                ctx.directory
                    .set_state(&name, PeerState::Refused, Some(e.to_string()));
                let _ = stop.changed().await;
                return;
            }
            Err(e) => {
                let reason = e.reason();
                ctx.stats.handshake_failure(reason);
                // The directory first: what the log line says is then seen
                // by /health and /ready.
                ctx.directory
                    .set_state(&name, PeerState::Backoff, Some(e.to_string()));
                if let Some(unlogged) = failure_log.check(reason, Instant::now()) {
                    info!(peer = %name, %address, error = %e, reason, unlogged, "cannot link to peer");
                }
                backoff.after_failure(e.failure(), &mut rand::rng())
            }
        };
        debug!(peer = %name, ?delay, "next attempt");
        // The whole delay, even if a link to the peer comes up meanwhile:
        // the loop's head then waits for it to end.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One attempt: the handshake, then the link's first frame from the peer.
/// `Ok` once the link is up, with the signal of its end.
async fn dial(
    name: &str,
    address: &str,
    ctx: &PeerContext,
) -> Result<oneshot::Receiver<()>, HandshakeError> {
    let tls = ctx.tls.borrow().clone();
    let cluster = handshake::cluster_to_check(&ctx.local, &ctx.directory, name);
    let established = handshake::connect(
        name,
        address,
        &ctx.local,
        tls.as_deref(),
        &ctx.input,
        cluster.as_deref(),
    )
    .await?;
    let link = ctx.start_link(ctx.new_link_id(), established);
    match link.up.await {
        Ok(Ok(())) => Ok(link.ended),
        Ok(Err(e)) => Err(e),
        // The link went away without a word (the system is stopping).
        Err(_) => Err(HandshakeError::Closed),
    }
}

/// The connector tasks of a node, one per peer with an address, each with
/// its own stop signal so peers can be added, removed or changed at run time.
pub struct Connectors {
    ctx: Rc<PeerContext>,
    running: HashMap<String, (String, watch::Sender<bool>)>,
    tasks: JoinSet<()>,
}

impl Connectors {
    /// No connectors yet.
    pub fn new(ctx: Rc<PeerContext>) -> Self {
        Connectors {
            ctx,
            running: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Starts dialing `name` at `address` (restarting a connector that
    /// dials it already).
    pub fn start(&mut self, name: &str, address: &str) {
        self.stop(name);
        let (tx, rx) = watch::channel(false);
        self.running
            .insert(name.to_string(), (address.to_string(), tx));
        self.tasks.spawn_local(run(
            name.to_string(),
            address.to_string(),
            self.ctx.clone(),
            rx,
        ));
    }

    /// Stops dialing `name`.
    pub fn stop(&mut self, name: &str) {
        if let Some((_, tx)) = self.running.remove(name) {
            let _ = tx.send(true);
        }
    }

    /// Stops every connector.
    pub fn stop_all(&mut self) {
        for (_, (_, tx)) in self.running.drain() {
            let _ = tx.send(true);
        }
    }

    /// The address `name` is dialed at, if it is.
    pub fn address(&self, name: &str) -> Option<&str> {
        self.running.get(name).map(|(a, _)| a.as_str())
    }

    /// Waits for a connector task to end (None when there are none).
    pub async fn join_next(&mut self) -> Option<()> {
        self.tasks.join_next().await.map(|_| ())
    }

    /// Connector tasks still running.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when no connector task runs.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}
