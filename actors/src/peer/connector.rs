//! Outbound links: one task per configured peer with an address. It dials,
//! runs the handshake, starts the [`PeerLink`], waits for the link to end,
//! and dials again after a jittered exponential backoff. It does not dial a
//! peer that is already linked (the peer dialed us), and it stops for good
//! after an environment mismatch until the configuration changes.

use std::{collections::HashMap, rc::Rc, time::Duration};

use tokio::{sync::watch, task::JoinSet};
use tracing::{debug, info, warn};

use super::{PeerContext, directory::PeerState, handshake};
use crate::{backoff::Backoff, supervisor::LinkUp};

/// Dials `name` at `address` until `stop` turns true.
pub async fn run(
    name: String,
    address: String,
    ctx: Rc<PeerContext>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(ctx.retry_initial, ctx.retry_max);
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
        let tls = ctx.tls.borrow().clone();
        let attempt =
            handshake::connect(&name, &address, &ctx.local, tls.as_deref(), ctx.max_frame);
        let result = tokio::select! {
            result = attempt => result,
            _ = stop.changed() => return,
        };
        match result {
            Ok(established) => {
                let id = ctx.new_link_id();
                let direction = established.direction;
                let (addr, ended) = ctx.start_link(id, established);
                let accepted = ctx
                    .supervisor
                    .send(LinkUp {
                        peer: name.clone(),
                        link: id,
                        direction,
                        dialer: ctx.local.name.clone(),
                        addr: addr.clone(),
                    })
                    .await;
                if !matches!(accepted, Ok(Ok(()))) {
                    debug!(peer = %name, "outbound link not kept (the peer's own link wins)");
                }
                backoff.reset();
                tokio::select! {
                    _ = ended => {}
                    _ = stop.changed() => return,
                }
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
                ctx.stats.handshake_failure(e.reason());
                info!(peer = %name, %address, error = %e, reason = e.reason(), "cannot link to peer");
                ctx.directory
                    .set_state(&name, PeerState::Backoff, Some(e.to_string()));
            }
        }
        let delay: Duration = backoff.next_delay(&mut rand::rng());
        debug!(peer = %name, ?delay, "next attempt");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = linked.changed() => {}
            _ = stop.changed() => return,
        }
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
