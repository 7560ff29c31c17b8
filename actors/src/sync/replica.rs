//! A node's replicated state, as plain code: the services and links tables
//! with the rules for exchanging them.
//!
//! * [`Replica::plan`]: from a peer's digest, what to send it. Per table and
//!   origin: nothing when the summaries are equal; the entries newer than
//!   the peer's newest when the peer holds exactly our older ones (same
//!   count and hash up to its newest); all of that origin's entries
//!   otherwise. One case *replaces* the peer's view of an origin instead of
//!   merging into it: the peer's knowledge of that (third) origin is older
//!   than our tombstone purge horizon (it was away longer than the TTL and
//!   could hold entries whose deletes we no longer remember).
//! * [`Replica::apply_batch`]: applies a received batch by last writer wins.
//!   (Resurrections by a stale peer are prevented at the source: a node
//!   whose newest entry from an origin is older than the peer's purge
//!   horizon sends nothing of that origin and lets the peer replace it. A
//!   batch planned before the receiver purged can still carry such an add:
//!   an add of a third origin, older than what we forgot of that origin,
//!   for a URI where we hold nothing of it, is refused, and the driver
//!   sends the sender our view of that origin as a replacement as of our
//!   purge horizon, which retires the stale add there and beyond.)
//!   For each replaced origin, the
//!   live entries we hold from it that the batch does not contain are
//!   retired as tombstones of the same version (so a stale copy cannot come
//!   back); such a replacement travels on to the other peers. A replacement
//!   of the receiver's own origin, or of the sender's, is not taken: each
//!   origin is the authority on its own entries (see the supervisor, which
//!   answers stale copies of its own entries with fresh deletes).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{
    digest::{Digest, OriginSummary},
    entry::{SyncEntry, Table},
};
use crate::{
    hlc::Timestamp,
    links::{LinkApplied, LinkKey, LinksTable},
    services::{Applied, Change, ServicesTable},
};

/// Entries sent together and applied together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// The entries.
    pub entries: Vec<SyncEntry>,
    /// Origins whose entries in this batch replace all the receiver holds
    /// from them.
    pub replace_origins: Vec<String>,
    /// For each replaced origin, in order: what the sender knew of it (its
    /// newest timestamp from it, purged tombstones included). Only entries
    /// no newer than this are retired.
    pub replace_as_of: Vec<Timestamp>,
}

/// What applying a batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// How the visible services moved, in order (for subscriber events),
    /// retirements by a replacement included.
    pub services: Vec<Applied>,
    /// True when the set of live links changed.
    pub links_changed: bool,
    /// Entries newer than what was held: to forward to other peers.
    pub forward: Vec<SyncEntry>,
    /// Entries refused as possible resurrections.
    pub refused: usize,
    /// Per origin of a refused entry, our purge horizon for it: the sender
    /// holds entries of that origin whose deletes we forgot, and should get
    /// our view of it as a replacement as of that horizon.
    pub refused_origins: BTreeMap<String, Timestamp>,
    /// True when a replacement retired something: the replacement should
    /// travel on to the other peers.
    pub replaced: bool,
    /// URIs of adds of our own origin that we do not hold (left over from a
    /// previous run of this node): not applied; the driver answers each with
    /// a fresh delete unless a local program holds it.
    pub stale_own: Vec<String>,
}

/// The replicated tables of one node.
#[derive(Debug)]
pub struct Replica {
    node: String,
    /// Services by URI and origin.
    pub services: ServicesTable,
    /// Links by node pair.
    pub links: LinksTable,
}

impl Replica {
    /// Empty tables for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Replica {
            node: node.into(),
            services: ServicesTable::new(),
            links: LinksTable::new(),
        }
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The purge horizon of both tables.
    pub fn purge_horizon(&self) -> Timestamp {
        self.services
            .purge_horizon()
            .max(self.links.purge_horizon())
    }

    /// Every entry held, live and tombstones, of both tables.
    pub fn entries(&self) -> Vec<SyncEntry> {
        let mut out: Vec<SyncEntry> = self
            .services
            .live_entries()
            .map(|s| SyncEntry::Service(Change::Add(s.clone())))
            .collect();
        out.extend(self.services.tombstones().map(|t| {
            SyncEntry::Service(Change::Delete {
                uri: t.uri.clone(),
                origin: t.origin.clone(),
                ts: t.ts,
            })
        }));
        out.extend(self.links.changes().map(SyncEntry::Link));
        out
    }

    /// What this node holds, summarised.
    pub fn digest(&self) -> Digest {
        self.digest_of(&self.entries())
    }

    fn digest_of(&self, entries: &[SyncEntry]) -> Digest {
        Digest::of(entries, self.purge_horizon())
            .with_purged(Table::Services, self.services.purge_horizons())
            .with_purged(Table::Links, self.links.purge_horizons())
    }

    /// What to send a peer whose digest is `theirs`.
    pub fn plan(&self, theirs: &Digest) -> Batch {
        let entries = self.entries();
        let ours = self.digest_of(&entries);
        let mut replace: BTreeSet<String> = BTreeSet::new();
        let mut all: HashSet<(Table, &str)> = HashSet::new();
        let mut newer: std::collections::HashMap<(Table, &str), Timestamp> = Default::default();
        let prefix = |table: Table, origin: &str, max: Timestamp| {
            let mut s = OriginSummary::default();
            for e in entries
                .iter()
                .filter(|e| e.table() == table && e.origin() == origin && e.ts() <= max)
            {
                s.add(e);
            }
            (s.count, s.hash)
        };
        for table in [Table::Services, Table::Links] {
            let theirs_t = theirs.table(table);
            for (origin, o) in ours.table(table) {
                let t = theirs_t.get(origin);
                if t == Some(o) {
                    continue;
                }
                // We are the stale side for this origin (the peer forgot
                // deletes newer than anything we hold from it): send nothing
                // of it; the peer replaces our view instead.
                if origin != &self.node && t.is_some_and(|t| o.max < t.purged) {
                    continue;
                }
                let holds_our_prefix =
                    t.is_some_and(|t| prefix(table, origin, t.max) == (t.count, t.hash));
                if t.is_some_and(|t| t.max < o.purged) {
                    // The peer was away longer than the TTL for this
                    // origin: replace its view rather than merge.
                    replace.insert(origin.clone());
                } else if origin == &self.node {
                    // Our own entries travel as plain entries; a peer's
                    // stale copies of them die by fresh deletes.
                    if holds_our_prefix {
                        newer.insert((table, origin), t.map(|t| t.max).unwrap_or_default());
                    } else {
                        all.insert((table, origin));
                    }
                } else if holds_our_prefix {
                    newer.insert((table, origin), t.map(|t| t.max).unwrap_or_default());
                } else {
                    all.insert((table, origin));
                }
            }
        }
        let entries = entries
            .iter()
            .filter(|e| {
                let key = (e.table(), e.origin());
                replace.contains(e.origin())
                    || all.contains(&key)
                    || newer.get(&key).is_some_and(|max| e.ts() > *max)
            })
            .cloned()
            .collect();
        let replace_origins: Vec<String> = replace.into_iter().collect();
        let replace_as_of = replace_origins
            .iter()
            .map(|o| knowledge_of(&ours, o))
            .collect();
        Batch {
            entries,
            replace_origins,
            replace_as_of,
        }
    }

    /// Everything held from `origins`, as a replacement batch as of
    /// `as_of` (one per origin: what the original replacement knew).
    pub fn replacement(&self, origins: &[String], as_of: &[Timestamp]) -> Batch {
        Batch {
            entries: self
                .entries()
                .into_iter()
                .filter(|e| origins.iter().any(|o| o == e.origin()))
                .collect(),
            replace_origins: origins.to_vec(),
            replace_as_of: as_of.to_vec(),
        }
    }

    /// Applies one entry made locally or received outside a batch rule
    /// (no resurrection check). Returns whether it was newer.
    pub fn apply_entry(&mut self, entry: &SyncEntry, outcome: &mut BatchOutcome) -> bool {
        match entry {
            SyncEntry::Service(change) => {
                let applied = self.services.apply(change.clone());
                let newer = applied != Applied::Ignored;
                if !matches!(applied, Applied::Ignored | Applied::Invisible) {
                    outcome.services.push(applied);
                }
                newer
            }
            SyncEntry::Link(change) => {
                let applied = self.links.apply(change);
                outcome.links_changed |= applied == LinkApplied::Changed;
                applied.forward()
            }
        }
    }

    /// Applies a batch received from peer `from`.
    pub fn apply_batch(&mut self, batch: &Batch, from: &str) -> BatchOutcome {
        // Nobody replaces our view of ourselves: we are the authority on
        // our own entries. (A missing as-of reads as "knew nothing".)
        let replaced: Vec<(&String, Timestamp)> = batch
            .replace_origins
            .iter()
            .zip(
                batch
                    .replace_as_of
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(Timestamp::default())),
            )
            .filter(|(o, _)| *o != &self.node)
            .collect();
        let mut outcome = BatchOutcome::default();
        for entry in &batch.entries {
            if let SyncEntry::Service(Change::Add(svc)) = entry {
                if svc.origin == self.node
                    && self.services.get_from(&svc.uri, &self.node) != Some(svc)
                {
                    outcome.stale_own.push(svc.uri.clone());
                    continue;
                }
                // (The origin itself speaks for its entries.)
                if svc.origin != from {
                    if let Some(horizon) = self.services.may_be_forgotten(svc) {
                        outcome.refused += 1;
                        outcome.refused_origins.insert(svc.origin.clone(), horizon);
                        continue;
                    }
                }
            }

            if self.apply_entry(entry, &mut outcome) {
                outcome.forward.push(entry.clone());
            }
        }
        for (origin, as_of) in replaced {
            let mine = |e: &&SyncEntry| e.origin() == origin;
            // Keep what the replacement holds live; a key it holds as a
            // delete (possibly of the very version we hold live) is retired.
            let live = |e: &&SyncEntry| !e.is_delete();
            let keep_services: HashSet<String> = batch
                .entries
                .iter()
                .filter(mine)
                .filter(live)
                .filter(|e| e.table() == Table::Services)
                .map(SyncEntry::key)
                .collect();
            let keep_links: HashSet<LinkKey> = batch
                .entries
                .iter()
                .filter(mine)
                .filter(live)
                .filter_map(|e| match e {
                    SyncEntry::Link(l) => Some(l.key.clone()),
                    SyncEntry::Service(_) => None,
                })
                .collect();
            let retired = self
                .services
                .remove_origin_except(origin, &keep_services, as_of);
            outcome.replaced |= !retired.is_empty();
            outcome.services.extend(
                retired
                    .into_iter()
                    .filter(|a| !matches!(a, Applied::Invisible | Applied::Ignored)),
            );
            if self.links.remove_origin_except(origin, &keep_links, as_of) > 0 {
                outcome.links_changed = true;
                outcome.replaced = true;
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests;

/// What a digest knows of `origin`: its newest timestamp from it in either
/// table, purged tombstones included.
fn knowledge_of(d: &Digest, origin: &str) -> Timestamp {
    [Table::Services, Table::Links]
        .iter()
        .filter_map(|t| d.table(*t).get(origin))
        .map(|s| s.max.max(s.purged))
        .max()
        .unwrap_or_default()
}
