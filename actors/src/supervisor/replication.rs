//! The supervisor's replication handlers: our digest and plans for peers,
//! batches received from peers and the end of a link's initial exchange.
//! Each hands the work to the driver and carries out its effects.

use actix::prelude::*;
use tracing::info;

use super::{CatalogueSupervisor, GetDigest, PeerBatch, PlanFor, SyncDone};
use crate::sync::replica::Batch;

impl Handler<GetDigest> for CatalogueSupervisor {
    type Result = MessageResult<GetDigest>;

    fn handle(&mut self, _msg: GetDigest, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("GetDigest");
        MessageResult(self.driver.digest())
    }
}

impl Handler<PlanFor> for CatalogueSupervisor {
    type Result = MessageResult<PlanFor>;

    fn handle(&mut self, msg: PlanFor, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("PlanFor");
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
        }
        // The link enters the links table now that each side holds what
        // the other knew.
        let fx = self.driver.link_synced(&msg.peer);
        self.execute(fx, None, ctx);
    }
}
