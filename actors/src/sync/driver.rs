//! The replication driver: everything a node decides about replication,
//! as plain code. It owns the node's [`Replica`] (services and links
//! tables), its clock, the state of its own links and the visibility of
//! origins it cannot reach, and it does no I/O: each call returns the
//! [`Effects`] the caller must carry out (messages for peer links, moves of
//! visible services for subscribers, grace timers to start).
//!
//! The `CatalogueSupervisor` actor executes these effects with actix; the
//! replication model (`sync/model`) and the `sync_session` fuzz target
//! execute them in plain code. Both drive this very code, so what the model
//! checks is what the daemon runs.
//!
//! **Own links.** A link is *connected* when its actor is current and
//! *synced* once its initial exchange is done (both initial batches
//! applied). A node issues the `LinkAdd` of its link only when it is
//! synced: by then it holds what the peer's side knew, and, links being
//! FIFO, every node that learns of the link through it has received that
//! knowledge first. A node that learns it can reach an origin again
//! therefore already holds the origin's current entries, and showing them
//! cannot bring back a service deleted meanwhile. Each end is the
//! authority on its own link: a table entry saying a link of ours is up
//! while it is not connected, or down while it is synced, is corrected by a
//! fresh change.
//!
//! **Reachability** is a function of the links table: it is recomputed
//! whenever the table's live links change, by whatever path (our own link,
//! a replicated entry, a replacement, the birth of a restarted node, which
//! retires the links of its previous life). An origin with live services
//! that becomes unreachable is hidden after a grace period (a timer the
//! caller runs, then [`Driver::grace_over`]); an origin that becomes
//! reachable again has its pending hiding cancelled, or its services shown
//! again at once. Docs: docs/PROTOCOL.md, "Reachability and hiding".

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use catalogue_proto::catalogue::{Error, ErrorCode};
use tracing::{debug, info, warn};

use super::{
    digest::{Digest, Mark},
    entry::{SyncEntry, Table},
    replica::{Batch, BatchOutcome, Replica},
};
use crate::{
    hlc::{Hlc, PhysicalClock, SystemClock, Timestamp},
    links::{LinkChange, LinkKey, LinkOp},
    services::{Applied, Change, Service, SharedStr},
};

/// Which links a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// Every current link but the one to this peer (every link when
    /// `None`).
    AllBut(Option<String>),
    /// The current link to this peer only.
    Peer(String),
}

impl To {
    /// Does a message to `self` go to the link to `peer`?
    pub fn includes(&self, peer: &str) -> bool {
        match self {
            To::AllBut(except) => except.as_deref() != Some(peer),
            To::Peer(p) => p == peer,
        }
    }
}

/// A message for peer links.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// Steady-state changes (each link's session batches them), with what
    /// we know of their origins.
    Changes {
        /// The changes.
        entries: Vec<SyncEntry>,
        /// Marks of their origins, valid once they are applied.
        marks: Vec<Mark>,
    },
    /// A whole batch, sent as it is (a replacement).
    Batch(Batch),
    /// Tells the peer something was refused.
    Error(Error),
}

/// A grace period to start: after it, call [`Driver::grace_over`] with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraceTimer {
    /// The origin that became unreachable.
    pub origin: String,
    /// Which hiding this is (a later one supersedes it).
    pub generation: u64,
}

/// What the caller must do after a call.
#[derive(Debug, Default)]
pub struct Effects {
    /// Messages for links, in order.
    pub sends: Vec<(To, Outgoing)>,
    /// How visible services moved, in order: events for subscribers.
    pub services: Vec<Applied>,
    /// Grace periods to start.
    pub timers: Vec<GraceTimer>,
    /// Entries of a batch refused because their timestamp was too far
    /// ahead of our clock.
    pub clock_refused: usize,
    /// Entries of a batch refused as possible resurrections (answered with
    /// a replacement).
    pub refused: usize,
    /// For each services entry received, how old it was when it arrived
    /// (our clock minus its timestamp), in milliseconds.
    pub propagation_ms: Vec<u64>,
}

impl Effects {
    fn send(&mut self, to: To, what: Outgoing) {
        self.sends.push((to, what));
    }

    /// Appends `other`'s effects after ours.
    pub fn merge(&mut self, other: Effects) {
        self.sends.extend(other.sends);
        self.services.extend(other.services);
        self.timers.extend(other.timers);
        self.clock_refused += other.clock_refused;
        self.refused += other.refused;
        self.propagation_ms.extend(other.propagation_ms);
    }
}

/// Tuning of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// How long tombstones are kept.
    pub tombstone_ttl: Duration,
}

/// The state of one of our links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnLink {
    /// Connected; the initial exchange is under way.
    Syncing,
    /// Initial exchange done: the link is in the table.
    Synced,
}

/// One node's replication state and rules.
#[derive(Debug)]
pub struct Driver<C: PhysicalClock = SystemClock> {
    node: String,
    replica: Replica,
    hlc: Hlc<C>,
    config: DriverConfig,
    /// Our links, by peer.
    own: BTreeMap<String, OwnLink>,
    /// Nodes reachable through the live links, as last computed.
    reachable: BTreeSet<String>,
    /// Unreachable origins waiting out the grace period, by generation.
    hiding: BTreeMap<String, u64>,
    next_generation: u64,
}

impl<C: PhysicalClock> Driver<C> {
    /// A node named `node` starting now (its clock's reading is its birth:
    /// entries of its origin older than that are from a previous run).
    pub fn new(node: impl Into<String>, mut hlc: Hlc<C>, config: DriverConfig) -> Self {
        let node = node.into();
        let born = hlc.now();
        Driver {
            replica: Replica::born_at(node.clone(), born),
            reachable: BTreeSet::from([node.clone()]),
            node,
            hlc,
            config,
            own: BTreeMap::new(),
            hiding: BTreeMap::new(),
            next_generation: 0,
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The tables.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// A fresh reading of the node's clock.
    pub fn now(&mut self) -> Timestamp {
        self.hlc.now()
    }

    /// The nodes reachable through the live links, this one included.
    pub fn reachable(&self) -> &BTreeSet<String> {
        &self.reachable
    }

    /// Origins waiting out their grace period.
    pub fn hiding(&self) -> impl Iterator<Item = &str> {
        self.hiding.keys().map(String::as_str)
    }

    /// What this node holds, summarised (sent at the start of a link's
    /// initial exchange).
    pub fn digest(&self) -> Digest {
        self.replica.digest()
    }

    /// The initial batch for `peer`, whose digest is `digest`.
    pub fn plan(&self, peer: &str, digest: &Digest) -> Batch {
        let batch = self.replica.plan(peer, digest);
        let services = batch
            .entries
            .iter()
            .filter(|e| e.table() == Table::Services)
            .count();
        debug!(%peer, entries = batch.entries.len(), services, replace = ?batch.replace_origins, "initial batch planned");
        batch
    }

    // ----- local changes -----

    /// A local program registers `uri` (again, with new attributes).
    pub fn register(
        &mut self,
        uri: impl Into<SharedStr>,
        attrs: BTreeMap<String, String>,
    ) -> Effects {
        let ts = self.hlc.now();
        let entry = SyncEntry::Service(Change::Add(Service {
            uri: uri.into(),
            attrs,
            origin: self.node.as_str().into(),
            ts,
        }));
        let mut fx = Effects::default();
        self.apply_local(entry, &mut fx);
        fx
    }

    /// The local registration of `uri` ends (unregistered, or its
    /// connection closed).
    pub fn unregister(&mut self, uri: impl Into<SharedStr>) -> Effects {
        let mut fx = Effects::default();
        self.delete_local(uri, &mut fx);
        fx
    }

    fn delete_local(&mut self, uri: impl Into<SharedStr>, fx: &mut Effects) {
        let ts = self.hlc.now();
        let change = Change::Delete {
            uri: uri.into(),
            origin: self.node.as_str().into(),
            ts,
        };
        self.apply_local(SyncEntry::Service(change), fx);
    }

    /// Applies a change made here, sends it to every link if it was newer,
    /// and takes its consequences.
    fn apply_local(&mut self, entry: SyncEntry, fx: &mut Effects) {
        let mut outcome = BatchOutcome::default();
        if self.replica.apply_entry(&entry, &mut outcome) {
            self.forward(vec![entry], None, fx);
        }
        self.take(outcome.services, outcome.links_changed, fx);
    }

    /// Sends `entries` (applied here) to every link but the one to
    /// `except`.
    fn forward(&self, entries: Vec<SyncEntry>, except: Option<&str>, fx: &mut Effects) {
        if entries.is_empty() {
            return;
        }
        let marks = self.replica.marks_for(&entries);
        fx.send(
            To::AllBut(except.map(str::to_string)),
            Outgoing::Changes { entries, marks },
        );
    }

    // ----- our links -----

    /// A link to `peer` is current (its initial exchange starts).
    pub fn link_connected(&mut self, peer: &str) {
        self.own.entry(peer.to_string()).or_insert(OwnLink::Syncing);
    }

    /// The link to `peer` finished its initial exchange: it enters the
    /// table.
    pub fn link_synced(&mut self, peer: &str) -> Effects {
        let mut fx = Effects::default();
        let was = self.own.insert(peer.to_string(), OwnLink::Synced);
        if was != Some(OwnLink::Synced) {
            self.issue_link_change(LinkOp::Add, peer, &mut fx);
        }
        fx
    }

    /// The link to `peer` ended.
    pub fn link_down(&mut self, peer: &str) -> Effects {
        let mut fx = Effects::default();
        let was = self.own.remove(peer);
        let key = LinkKey::new(self.node.clone(), peer);
        if was == Some(OwnLink::Synced) || self.replica.links.is_live(&key) {
            self.issue_link_change(LinkOp::Delete, peer, &mut fx);
        }
        fx
    }

    /// The node is stopping: every link of ours leaves the table.
    pub fn shutdown(&mut self) -> Effects {
        let mut fx = Effects::default();
        let peers: Vec<String> = self.own.keys().cloned().collect();
        for peer in peers {
            fx.merge(self.link_down(&peer));
        }
        fx
    }

    fn issue_link_change(&mut self, op: LinkOp, peer: &str, fx: &mut Effects) {
        let change = LinkChange {
            op,
            key: LinkKey::new(self.node.clone(), peer),
            origin: self.node.clone(),
            ts: self.hlc.now(),
        };
        log_link_change(&change);
        self.apply_local(SyncEntry::Link(change), fx);
    }

    /// Each end is the authority on its own links: where the table (after
    /// `entries` were applied) says a link of ours is up while it is not
    /// connected, or down while it is synced, a fresh change puts it right.
    fn assert_own_links(&mut self, entries: &[SyncEntry], fx: &mut Effects) {
        let peers: BTreeSet<String> = entries
            .iter()
            .filter_map(|e| match e {
                SyncEntry::Link(l) if l.key.touches(&self.node) => Some(
                    if l.key.a() == self.node {
                        l.key.b()
                    } else {
                        l.key.a()
                    }
                    .to_string(),
                ),
                _ => None,
            })
            .collect();
        for peer in peers {
            let live = self
                .replica
                .links
                .is_live(&LinkKey::new(self.node.clone(), peer.clone()));
            let op = match self.own.get(&peer) {
                None if live => LinkOp::Delete,
                Some(OwnLink::Synced) if !live => LinkOp::Add,
                _ => continue,
            };
            debug!(%peer, ?op, "the links table disagrees with this end of the link: correcting it");
            self.issue_link_change(op, &peer, fx);
        }
    }

    // ----- batches from peers -----

    /// A complete batch from `peer` (its initial one if `initial`): check
    /// its clocks, apply it atomically, pass on what was new, answer what
    /// must be answered, and take the consequences.
    pub fn peer_batch(&mut self, peer: &str, mut batch: Batch, initial: bool) -> Effects {
        let mut fx = Effects::default();
        self.observe_clocks(peer, &mut batch, &mut fx);
        // Entries of origins we cannot reach (a peer held them hidden, or
        // they were in flight) are not shown unless the batch itself makes
        // their origin reachable: they may be deleted since.
        let origins: BTreeSet<&str> = batch
            .entries
            .iter()
            .filter(|e| matches!(e, SyncEntry::Service(Change::Add(_))))
            .map(SyncEntry::origin)
            .filter(|o| !self.reachable.contains(*o))
            .collect();
        let origins: Vec<String> = origins.into_iter().map(str::to_string).collect();
        self.withdraw(origins, false, &mut fx);
        let outcome = self.replica.apply_batch(&batch, peer);
        fx.refused = outcome.refused;
        if outcome.refused > 0 {
            warn!(%peer, refused = outcome.refused, origins = ?outcome.refused_origins.keys().collect::<Vec<_>>(), "entries whose deletes may have been purged refused; sending our view of their origins");
            let (origins, as_of): (Vec<String>, Vec<Timestamp>) =
                outcome.refused_origins.clone().into_iter().unzip();
            fx.send(
                To::Peer(peer.to_string()),
                Outgoing::Batch(self.replica.replacement(&origins, &as_of)),
            );
        }
        if initial {
            debug!(%peer, entries = batch.entries.len(), applied = outcome.forward.len(), "initial batch applied");
        }
        for e in &outcome.forward {
            if let SyncEntry::Link(change) = e {
                log_link_change(change);
            }
        }
        // Adds of our previous life that no local program holds now.
        let stale_own: Vec<String> = outcome
            .stale_own
            .iter()
            .filter(|uri| self.replica.services.get_from(uri, &self.node).is_none())
            .cloned()
            .collect();
        if !stale_own.is_empty() {
            info!(%peer, count = stale_own.len(), "services of this node's previous run: deleting them cluster-wide");
        }
        self.forward(outcome.forward.clone(), Some(peer), &mut fx);
        if !outcome.born.is_empty() {
            // A restarted origin: every node must learn it, with or
            // without entries of it to carry the news.
            debug!(%peer, origins = ?outcome.born.iter().map(|m| &m.origin).collect::<Vec<_>>(), "restarted origins learnt: their older entries are dead");
            fx.send(
                To::AllBut(Some(peer.to_string())),
                Outgoing::Changes {
                    entries: Vec::new(),
                    marks: outcome.born.clone(),
                },
            );
        }
        if outcome.replaced {
            // The replacement retired entries here: pass it on, so nodes
            // beyond us drop them too (a node seeing nothing new stops it).
            let replacement = self
                .replica
                .replacement(&batch.replace_origins, &batch.replace_as_of);
            fx.send(
                To::AllBut(Some(peer.to_string())),
                Outgoing::Batch(replacement),
            );
        }
        self.take(outcome.services, outcome.links_changed, &mut fx);
        for uri in stale_own {
            self.delete_local(uri, &mut fx);
        }
        self.assert_own_links(&batch.entries, &mut fx);
        fx
    }

    /// Observes every timestamp of `batch` and drops the entries too far
    /// ahead of our clock (their origins' marks lose their completeness:
    /// we do not hold what we dropped); reports them to `peer`.
    fn observe_clocks(&mut self, peer: &str, batch: &mut Batch, fx: &mut Effects) {
        let before = batch.entries.len();
        let mut refused = None;
        let mut incomplete = BTreeSet::new();
        batch.entries.retain(|e| match self.hlc.observe(e.ts()) {
            Ok(_) => true,
            Err(err) => {
                refused = Some(err);
                incomplete.insert(e.origin().to_string());
                false
            }
        });
        for mark in &mut batch.marks {
            if incomplete.contains(&mark.origin) {
                mark.complete = Timestamp::default();
            }
            // Births too: a link we issue after learning one is newer than
            // it, so it is not taken for a link of the previous life.
            let _ = self.hlc.observe(mark.born);
        }
        fx.clock_refused = before - batch.entries.len();
        if let Some(err) = refused {
            warn!(%peer, refused = fx.clock_refused, error = %err, "entries refused: timestamp too far ahead");
            fx.send(
                To::Peer(peer.to_string()),
                Outgoing::Error(Error::new(ErrorCode::ClockDrift, err.to_string())),
            );
        }
        let now_ms = self.hlc.now().physical_ms;
        fx.propagation_ms = batch
            .entries
            .iter()
            .filter(|e| matches!(e, SyncEntry::Service(_)))
            .map(|e| now_ms.saturating_sub(e.ts().physical_ms))
            .collect();
    }

    // ----- visibility -----

    /// Takes the consequences of applied changes: their visible moves go
    /// to subscribers; a change of the live links recomputes reachability.
    fn take(&mut self, services: Vec<Applied>, links_changed: bool, fx: &mut Effects) {
        fx.services.extend(
            services
                .into_iter()
                .filter(|a| !matches!(a, Applied::Invisible | Applied::Ignored)),
        );
        if links_changed {
            self.reachability_changed(fx);
        }
    }

    /// Recomputes reachability from the links table: origins reachable
    /// again are shown (or their pending hiding cancelled); origins with
    /// live services that became unreachable start their grace period.
    fn reachability_changed(&mut self, fx: &mut Effects) {
        let before = std::mem::replace(
            &mut self.reachable,
            self.replica.links.reachable_from(&self.node),
        );
        self.hiding
            .retain(|origin, _| !self.reachable.contains(origin));
        let back: Vec<String> = self
            .replica
            .services
            .hidden()
            .keys()
            .filter(|o| self.reachable.contains(*o))
            .cloned()
            .collect();
        for origin in back {
            let moved = self.replica.services.show(&origin);
            info!(%origin, services = moved.len(), "origin reachable again: its services are visible");
            self.take(moved, false, fx);
        }
        // From the table's index by origin: no visit of every entry.
        let away: BTreeSet<&str> = self
            .replica
            .services
            .origins_holding()
            .filter(|o| !self.reachable.contains(*o))
            .collect();
        let (lost, never): (Vec<String>, Vec<String>) = away
            .into_iter()
            .map(str::to_string)
            .partition(|o| before.contains(o));
        self.withdraw(lost, true, fx);
        self.withdraw(never, false, fx);
    }

    /// Withdraws the services of each of `origins` (unreachable) that is
    /// neither hidden nor waiting already: after the grace period for an
    /// origin that was reachable until now (`grace`), at once for one we
    /// could not reach when its entries came (a peer held them hidden, or
    /// we are new and our links have not synced yet): showing them could
    /// show services deleted since.
    fn withdraw(&mut self, origins: Vec<String>, grace: bool, fx: &mut Effects) {
        for origin in origins {
            if self.replica.services.is_hidden(&origin) || self.hiding.contains_key(&origin) {
                continue;
            }
            if grace {
                self.next_generation += 1;
                let generation = self.next_generation;
                self.hiding.insert(origin.clone(), generation);
                debug!(%origin, "origin unreachable; withdrawing its services after the grace period");
                fx.timers.push(GraceTimer { origin, generation });
            } else {
                let now = self.hlc.now();
                let moved = self.replica.services.hide(&origin, now);
                debug!(%origin, services = moved.len(), "services of an origin out of reach: not shown until it is reachable");
                self.take(moved, false, fx);
            }
        }
    }

    /// The grace period of `timer` is over: its origin's services are
    /// withdrawn unless it was reached again meanwhile.
    pub fn grace_over(&mut self, timer: &GraceTimer) -> Effects {
        let mut fx = Effects::default();
        if self.hiding.get(&timer.origin) != Some(&timer.generation) {
            return fx;
        }
        self.hiding.remove(&timer.origin);
        if self.reachable.contains(&timer.origin) {
            return fx;
        }
        let now = self.hlc.now();
        let moved = self.replica.services.hide(&timer.origin, now);
        info!(origin = %timer.origin, services = moved.len(), "origin unreachable: its services are withdrawn");
        self.take(moved, false, &mut fx);
        fx
    }

    // ----- housekeeping -----

    /// Forgets tombstones older than the TTL. Returns how many.
    pub fn purge_tombstones(&mut self) -> usize {
        let now = self.hlc.now();
        let ttl_ms = u64::try_from(self.config.tombstone_ttl.as_millis()).unwrap_or(u64::MAX);
        let horizon = Timestamp {
            physical_ms: now.physical_ms.saturating_sub(ttl_ms),
            logical: 0,
        };
        let purged = self.replica.services.purge_tombstones(horizon)
            + self.replica.links.purge_tombstones(horizon);
        if purged > 0 {
            debug!(purged, "expired tombstones purged");
        }
        purged
    }
}

/// Logs a change of the links table.
pub fn log_link_change(change: &LinkChange) {
    let op = match change.op {
        LinkOp::Add => "add",
        LinkOp::Delete => "delete",
    };
    debug!(a = change.key.a(), b = change.key.b(), op, origin = %change.origin, "link table changed");
}

#[cfg(test)]
mod tests;
