//! Replication in the supervisor: our digest and plans for peers, batches
//! received from peers (clock check, atomic apply, forwarding, events), and
//! the visibility of services whose origin became unreachable.

use std::collections::BTreeSet;

use actix::prelude::*;
use catalogue_proto::catalogue::{Error, ErrorCode};
use tracing::{debug, info, warn};

use super::{CatalogueSupervisor, GetDigest, PeerBatch, PlanFor, SyncDone};
use crate::{
    peer::link::{SendBatch, SendEntries, SendError},
    sync::{entry::SyncEntry, replica::Batch},
};

impl CatalogueSupervisor {
    /// Sends `entries` to every current link except the one to `except`.
    pub(super) fn broadcast(&self, entries: Vec<SyncEntry>, except: Option<&str>) {
        if entries.is_empty() {
            return;
        }
        let marks = self.replica.marks_for(&entries);
        self.to_links(except, SendEntries(entries, marks));
    }

    /// Sends `msg` to every current link except the one to `except`.
    fn to_links<M>(&self, except: Option<&str>, msg: M)
    where
        M: Message<Result = ()> + Clone + Send + 'static,
        crate::peer::link::PeerLink: Handler<M>,
    {
        for (peer, link) in &self.peer_links {
            if Some(peer.as_str()) != except {
                link.addr.do_send(msg.clone());
            }
        }
    }

    /// The links graph changed: starts the grace period of origins that
    /// became unreachable, after which their services are withdrawn.
    pub(super) fn reachability_changed(&mut self, ctx: &mut Context<Self>) {
        let reachable: BTreeSet<String> = self.replica.links.reachable_from(&self.node);
        let origins: BTreeSet<String> = self
            .replica
            .services
            .live_entries()
            .map(|s| s.origin.clone())
            .collect();
        // Back in reach: stop pending hides. Hidden origins are shown again
        // once we hear from them (an entry newer than the hiding) or finish
        // an initial sync with a neighbour, so a restarted origin's stale
        // services do not flicker back before its replacement arrives.
        self.hiding.retain(|origin, _| !reachable.contains(origin));
        for origin in origins {
            if reachable.contains(&origin)
                || self.replica.services.is_hidden(&origin)
                || self.hiding.contains_key(&origin)
            {
                continue;
            }
            self.next_generation += 1;
            let generation = self.next_generation;
            self.hiding.insert(origin.clone(), generation);
            debug!(%origin, grace = ?self.config.unreachable_grace, "origin unreachable; withdrawing its services after the grace period");
            ctx.run_later(self.config.unreachable_grace, move |act, _| {
                act.hide_if_still_unreachable(origin, generation);
            });
        }
    }

    /// Each end is the authority on its own links: when the table now says a
    /// link of ours is up while it is down, or down while it is up (a
    /// concurrent change from the other end won on timestamps, or a previous
    /// run's link came back), a fresh change puts it right everywhere.
    fn assert_own_links(&mut self, batch: &Batch, ctx: &mut Context<Self>) {
        let mut peers: Vec<String> = batch
            .entries
            .iter()
            .filter_map(|e| match e {
                SyncEntry::Link(l) if l.key.touches(&self.node) => {
                    Some(if l.key.a() == self.node {
                        l.key.b().to_string()
                    } else {
                        l.key.a().to_string()
                    })
                }
                _ => None,
            })
            .collect();
        peers.sort();
        peers.dedup();
        for peer in peers {
            let key = crate::links::LinkKey::new(self.node.clone(), peer.clone());
            let up = self.peer_links.contains_key(&peer);
            if self.replica.links.is_live(&key) != up {
                let op = if up {
                    crate::links::LinkOp::Add
                } else {
                    crate::links::LinkOp::Delete
                };
                debug!(%peer, up, "the links table disagrees with this end of the link: correcting it");
                self.issue_link_change(op, &peer, ctx);
            }
        }
    }

    /// The grace period of `origin` (generation `generation`) is over.
    fn hide_if_still_unreachable(&mut self, origin: String, generation: u64) {
        if self.hiding.get(&origin) != Some(&generation) {
            return;
        }
        self.hiding.remove(&origin);
        if self
            .replica
            .links
            .reachable_from(&self.node)
            .contains(&origin)
        {
            return;
        }
        let now = self.hlc.now();
        let moved = self.replica.services.hide(&origin, now);
        info!(%origin, services = moved.len(), "origin unreachable: its services are withdrawn");
        self.route_each(moved);
        self.update_table_gauges();
    }

    /// Shows the services of `origin` again.
    fn unhide(&mut self, origin: &str) {
        if !self.replica.services.is_hidden(origin) {
            return;
        }
        let moved = self.replica.services.show(origin);
        info!(%origin, services = moved.len(), "origin reachable again: its services are visible");
        self.route_each(moved);
        self.update_table_gauges();
    }
}

impl Handler<GetDigest> for CatalogueSupervisor {
    type Result = MessageResult<GetDigest>;

    fn handle(&mut self, _msg: GetDigest, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("GetDigest");
        MessageResult(self.replica.digest())
    }
}

impl Handler<PlanFor> for CatalogueSupervisor {
    type Result = MessageResult<PlanFor>;

    fn handle(&mut self, msg: PlanFor, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("PlanFor");
        let batch: Batch = self.replica.plan(&msg.peer, &msg.digest);
        let services = batch
            .entries
            .iter()
            .filter(|e| e.table() == crate::sync::entry::Table::Services)
            .count();
        debug!(peer = %msg.peer, entries = batch.entries.len(), services, replace = ?batch.replace_origins, "initial batch planned");
        MessageResult(batch)
    }
}

impl Handler<PeerBatch> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerBatch, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("PeerBatch");
        let PeerBatch {
            from,
            link,
            mut batch,
            initial,
        } = msg;
        let before = batch.entries.len();
        let mut refused_clock = None;
        let mut incomplete = BTreeSet::new();
        batch.entries.retain(|e| match self.hlc.observe(e.ts()) {
            Ok(_) => true,
            Err(err) => {
                refused_clock = Some(err);
                incomplete.insert(e.origin().to_string());
                false
            }
        });
        // What we dropped, we do not hold: no completeness for its origin.
        for mark in batch
            .marks
            .iter_mut()
            .filter(|m| incomplete.contains(&m.origin))
        {
            mark.complete = crate::hlc::Timestamp::default();
        }
        let refused = before - batch.entries.len();
        if let Some(err) = refused_clock {
            self.stats.clock_refused.add(refused as u64);
            warn!(peer = %from, refused, error = %err, "entries refused: timestamp too far ahead");
            if let Some(l) = self.peer_links.get(&from).filter(|l| l.id == link) {
                l.addr.do_send(SendError(Error::new(
                    ErrorCode::ClockDrift,
                    err.to_string(),
                )));
            }
        }
        let now_ms = self.hlc.now().physical_ms;
        for e in batch
            .entries
            .iter()
            .filter(|e| matches!(e, SyncEntry::Service(_)))
        {
            self.stats
                .propagation_ms(now_ms.saturating_sub(e.ts().physical_ms));
        }
        let outcome = self.replica.apply_batch(&batch, &from);
        if outcome.refused > 0 {
            warn!(peer = %from, refused = outcome.refused, origins = ?outcome.refused_origins.keys().collect::<Vec<_>>(), "entries whose deletes may have been purged refused; sending our view of their origins");
            let (origins, as_of): (Vec<String>, Vec<_>) =
                outcome.refused_origins.clone().into_iter().unzip();
            if let Some(l) = self.peer_links.get(&from).filter(|l| l.id == link) {
                l.addr
                    .do_send(SendBatch(self.replica.replacement(&origins, &as_of)));
            }
        }
        if initial {
            debug!(peer = %from, entries = batch.entries.len(), applied = outcome.forward.len(), "initial batch applied");
        }
        for e in &outcome.forward {
            if let SyncEntry::Link(change) = e {
                super::links::log_change(change);
            }
        }
        let stale_own: Vec<String> = outcome
            .stale_own
            .iter()
            .filter(|uri| !self.owners.holds(uri))
            .cloned()
            .collect();
        if !stale_own.is_empty() {
            info!(peer = %from, count = stale_own.len(), "services of this node's previous run: deleting them cluster-wide");
        }
        self.broadcast(outcome.forward.clone(), Some(&from));
        if !outcome.born.is_empty() {
            // A restarted origin: every node must learn it, with or
            // without entries of it to carry the news.
            debug!(peer = %from, origins = ?outcome.born.iter().map(|m| &m.origin).collect::<Vec<_>>(), "restarted origins learnt: their older entries are dead");
            self.to_links(Some(&from), SendEntries(Vec::new(), outcome.born.clone()));
        }
        if outcome.replaced {
            // The replacement retired entries here: pass it on, so nodes
            // beyond us drop them too (a node seeing nothing new stops it).
            let replacement = self
                .replica
                .replacement(&batch.replace_origins, &batch.replace_as_of);
            self.to_links(Some(&from), SendBatch(replacement));
        }
        self.route_outcome(outcome, ctx);
        for uri in stale_own {
            self.delete_local(uri, ctx);
        }
        self.assert_own_links(&batch, ctx);
        // An entry from a hidden origin, newer than its hiding, proves we
        // hear from it again (after any replacement it sent).
        if !self.replica.services.hidden().is_empty() {
            let reachable = self.replica.links.reachable_from(&self.node);
            let back: Vec<String> = self
                .replica
                .services
                .hidden()
                .iter()
                .filter(|(origin, since)| {
                    reachable.contains(*origin)
                        && batch
                            .entries
                            .iter()
                            .any(|e| e.origin() == origin.as_str() && e.ts() > **since)
                })
                .map(|(origin, _)| origin.clone())
                .collect();
            for origin in back {
                self.unhide(&origin);
            }
        }
    }
}

impl Handler<SyncDone> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SyncDone, _ctx: &mut Context<Self>) {
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
            .get_or_create(&crate::stats::Stats::peer(&msg.peer))
            .set(now);
        if !self.stats.is_ready() {
            self.stats.set_ready();
            info!(peer = %msg.peer, "ready: initial sync with a peer done");
        }
        // Our view now matches a neighbour's: hidden origins we reach again
        // are current.
        let reachable = self.replica.links.reachable_from(&self.node);
        let back: Vec<String> = self
            .replica
            .services
            .hidden()
            .keys()
            .filter(|o| reachable.contains(*o))
            .cloned()
            .collect();
        for origin in back {
            self.unhide(&origin);
        }
    }
}
