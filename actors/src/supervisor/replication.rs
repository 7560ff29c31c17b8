//! The supervisor's replication handlers: our digest and plans for peers,
//! batches received from peers and the end of a link's initial exchange.
//! Each hands the work to the driver and carries out its effects.

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::{debug, info};

use super::{CatalogueSupervisor, GetDigest, PeerBatch, PlanFor, SyncDone, digest_gate::MAX_HOLD};
use crate::{
    peer::link::LinkId,
    sync::{digest::Digest, replica::Batch},
};

impl Handler<GetDigest> for CatalogueSupervisor {
    type Result = ResponseActFuture<Self, Digest>;

    fn handle(&mut self, msg: GetDigest, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("GetDigest");
        if !self
            .digest_gate
            .should_wait(&msg.peer, self.stats.is_ready())
        {
            self.digest_gate.given(&msg.peer, msg.link);
            return Box::pin(fut::ready(self.driver.digest()));
        }
        debug!(peer = %msg.peer, "digest held until the initial exchange under way is over");
        let (tx, rx) = oneshot::channel();
        self.digest_waiters.push((msg.peer.clone(), tx));
        // Released when no exchange holds it back (or the sender is
        // dropped), at the latest after MAX_HOLD: the digest is taken then.
        let wait = async move {
            let _ = tokio::time::timeout(MAX_HOLD, rx).await;
        };
        Box::pin(wait.into_actor(self).map(move |(), act, _| {
            // A link gone meanwhile starts no exchange (its entry would
            // hold later links back for nothing).
            if act
                .peer_links
                .get(&msg.peer)
                .is_some_and(|l| l.id == msg.link)
            {
                act.digest_gate.given(&msg.peer, msg.link);
            }
            act.driver.digest()
        }))
    }
}

impl CatalogueSupervisor {
    /// The initial exchange with `peer` over `link` is over.
    pub(super) fn exchange_over(&mut self, peer: &str, link: LinkId) {
        self.digest_gate.finished(peer, link);
        self.release_digests();
    }

    /// The links waiting for the digest that nothing holds back any more
    /// go on.
    fn release_digests(&mut self) {
        let ready = self.stats.is_ready();
        let gate = &self.digest_gate;
        let (go, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.digest_waiters)
            .into_iter()
            .partition(|(peer, _)| !gate.should_wait(peer, ready));
        self.digest_waiters = wait;
        for (_, waiter) in go {
            let _ = waiter.send(());
        }
    }
}

impl Handler<PlanFor> for CatalogueSupervisor {
    type Result = MessageResult<PlanFor>;

    fn handle(&mut self, msg: PlanFor, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("PlanFor");
        self.digest_gate.received(&msg.peer, msg.link, &msg.digest);
        self.release_digests();
        let batch: Batch = self.driver.plan(&msg.peer, &msg.digest);
        MessageResult(batch)
    }
}

impl Handler<PeerBatch> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerBatch, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("PeerBatch");
        let fx = self.driver.peer_batch(&msg.from, msg.batch, msg.initial);
        self.execute(fx, Some(msg.link), ctx);
    }
}

impl Handler<SyncDone> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SyncDone, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("SyncDone");
        self.exchange_over(&msg.peer, msg.link);
        if self
            .peer_links
            .get(&msg.peer)
            .is_none_or(|l| l.id != msg.link)
        {
            return;
        }
        self.directory.set_synced(&msg.peer);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.stats
            .sync_last_success
            .get_or_create(&crate::metrics::Metrics::peer(&msg.peer))
            .set(now);
        if !self.stats.is_ready()
            && crate::peer::directory::awaited_peers(&self.directory.list()).is_empty()
        {
            self.stats.set_ready();
            info!(peer = %msg.peer, "ready: initial sync with a peer done");
            self.release_digests();
        }
        // The link enters the links table now that each side holds what
        // the other knew.
        let fx = self.driver.link_synced(&msg.peer);
        self.execute(fx, None, ctx);
    }
}
