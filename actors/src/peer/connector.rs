//! Outbound links: one task per configured peer with an address. It dials,
//! runs the handshake, starts the [`PeerLink`], waits for the link to end,
//! and dials again after a jittered exponential backoff. It does not dial a
//! peer that is already linked (the peer dialed us), and it stops for good
//! after an environment mismatch until the configuration changes.

use std::{rc::Rc, time::Duration};

use tokio::sync::watch;
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
        let attempt = handshake::connect(
            &name,
            &address,
            &ctx.local,
            ctx.tls.as_deref(),
            ctx.max_frame,
        );
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
