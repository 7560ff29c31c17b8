//! A node's replicated state, as plain code: the services and links tables
//! with the rules for exchanging them (written out in docs/PROTOCOL.md).
//!
//! * [`Replica::plan`]: from a peer's digest, what to send it. Per table and
//!   origin: nothing when the summaries are equal; the entries newer than
//!   the peer's newest when the peer holds exactly our older ones (same
//!   count and hash up to its newest); for services, the entries newer than
//!   the peer's completeness mark for the origin; all of that origin's
//!   entries otherwise. Some cases *replace* the peer's view of an origin
//!   instead of merging into it: the peer's knowledge of that origin is
//!   older than our tombstone purge horizon for it (it could hold entries
//!   whose deletes we no longer remember). The batch carries our
//!   [`Mark`]s: how far the peer then holds every services change of each
//!   origin, and when each origin's current life began.
//! * [`Replica::apply_batch`]: applies a received batch, newest wins per
//!   entry. A birth newer than we knew retires the origin's older entries
//!   (a restarted node re-registers nothing) and the links with it at one
//!   end older than the birth, and drops late copies of them.
//!   Resurrections by a stale peer are prevented at the source (a node
//!   whose newest entry from an origin is older than the peer's purge
//!   horizon sends nothing of it and lets the peer replace it); a batch
//!   planned before we purged can still carry such an add: an add of a
//!   third origin, older than what we forgot of it, for a URI where we hold
//!   nothing of it, is refused, and the driver answers with our view of
//!   that origin as a replacement. For each replaced origin, the live
//!   entries we hold from it, no newer than the as-of, that the batch does
//!   not hold live are retired as tombstones of the same version (so a
//!   stale copy cannot come back), we take the sender's purge horizon for
//!   it, and the replacement travels on. A replacement of our own origin
//!   is not taken: each origin is the authority on its own entries.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{
    digest::{Digest, Mark, OriginSummary},
    entry::{SyncEntry, Table},
};
use crate::{
    hlc::Timestamp,
    links::{LinkApplied, LinkKey, LinkOp, LinksTable},
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
    /// What the sender knows of origins (completeness, birth), valid once
    /// the batch is applied.
    pub marks: Vec<Mark>,
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
    /// Adds of an origin's previous life (older than its birth), and links
    /// of a node's previous life, dropped.
    pub dead: usize,
    /// Births we learnt from this batch: to pass on to the other peers
    /// (marks with only `born` set).
    pub born: Vec<Mark>,
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
    /// When this node's current life began.
    born: Timestamp,
    /// Newest of our own services changes.
    own_max: Timestamp,
    /// What we know of other origins (learnt from marks).
    known: BTreeMap<String, Mark>,
}

impl Replica {
    /// Empty tables for node `node`.
    pub fn new(node: impl Into<String>) -> Self {
        Self::born_at(node, Timestamp::default())
    }

    /// Empty tables for node `node`, whose current life began at `born`
    /// (its clock when it started: anything of its origin older than this
    /// is from a previous life).
    pub fn born_at(node: impl Into<String>, born: Timestamp) -> Self {
        Replica {
            node: node.into(),
            services: ServicesTable::new(),
            links: LinksTable::new(),
            born,
            own_max: born,
            known: BTreeMap::new(),
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
            .with_marks(self.known.values().chain([&self.own_mark()]))
    }

    /// What we know of ourselves: every change of this life, since when.
    fn own_mark(&self) -> Mark {
        Mark {
            complete: self.own_max,
            born: self.born,
            ..self.mark_of_other(&self.node)
        }
    }

    /// When `node`'s current life began, as far as we know.
    fn born_of(&self, node: &str) -> Timestamp {
        if node == self.node {
            self.born
        } else {
            self.known.get(node).map(|k| k.born).unwrap_or_default()
        }
    }

    /// What we know of `origin`.
    pub fn mark_of(&self, origin: &str) -> Mark {
        if origin == self.node {
            self.own_mark()
        } else {
            self.mark_of_other(origin)
        }
    }

    fn mark_of_other(&self, origin: &str) -> Mark {
        let mut m = self
            .known
            .get(origin)
            .cloned()
            .unwrap_or_else(|| Mark::unknown(origin));
        m.purged = self
            .services
            .purge_horizons()
            .get(origin)
            .copied()
            .unwrap_or_default();
        m
    }

    /// The marks to send with steady-state `entries` we applied: what we
    /// know of each of their origins (valid once the receiver has them and
    /// everything we sent before).
    pub fn marks_for(&self, entries: &[SyncEntry]) -> Vec<Mark> {
        let origins: BTreeSet<&str> = entries.iter().map(SyncEntry::origin).collect();
        origins
            .into_iter()
            .map(|o| self.mark_of(o))
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// What to send peer `peer`, whose digest is `theirs`.
    pub fn plan(&self, peer: &str, theirs: &Digest) -> Batch {
        let entries = self.entries();
        let ours = self.digest_of(&entries);
        let mut replace: BTreeMap<String, Timestamp> = BTreeMap::new();
        let mut all: HashSet<(Table, &str)> = HashSet::new();
        let mut newer: std::collections::HashMap<(Table, &str), Timestamp> = Default::default();
        let mut marks: Vec<Mark> = Vec::new();
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
                // We are the stale side for this origin (the peer forgot
                // deletes newer than anything we know of it): send nothing
                // of it; the peer replaces our view instead.
                if origin != &self.node
                    && t.is_some_and(|t| o.max.max(o.purged).max(o.complete) < t.purged)
                {
                    // (When the origin's current life began is a fact worth
                    // passing on all the same.)
                    if table == Table::Services && origin != peer && o.born != Timestamp::default()
                    {
                        marks.push(Mark {
                            born: o.born,
                            ..Mark::unknown(origin.clone())
                        });
                    }
                    continue;
                }
                let same = t.is_some_and(|t| {
                    OriginSummary {
                        complete: o.complete,
                        born: o.born,
                        ..*t
                    } == *o
                });
                let holds_our_prefix =
                    !same && t.is_some_and(|t| prefix(table, origin, t.max) == (t.count, t.hash));
                // How far the peer holds every services change of the
                // origin (of its own: all of this life; what we hold of its
                // previous life dies by its birth mark, or, if newer than
                // its newest, goes to it, which answers with fresh deletes).
                // A peer that has not heard of the origin's current life
                // knows nothing of it.
                let their_complete = t
                    .filter(|t| table == Table::Services && t.born >= o.born)
                    .map(|t| t.complete)
                    .unwrap_or_default();
                // Whether the peer may hold copies of entries whose deletes
                // we forgot: then only a replacement puts it right.
                let may_be_stale =
                    origin != peer && o.purged != Timestamp::default() && their_complete < o.purged;
                let replaced = if same || holds_our_prefix {
                    false
                } else if t.is_some_and(|t| t.max.max(their_complete) < o.purged) {
                    // The peer was away longer than the TTL for this
                    // origin: replace its view rather than merge.
                    replace.insert(origin.clone(), knowledge_of(&ours, origin));
                    true
                } else if table == Table::Services && may_be_stale {
                    // It may hold copies of entries deleted before our
                    // horizon: retire what it holds from before it that we
                    // do not hold.
                    replace.insert(origin.clone(), o.purged);
                    true
                } else {
                    false
                };
                // Once this batch is applied the peer holds at least what
                // we hold of the origin, hence every change of it up to
                // where we hold them all, unless it may keep copies of
                // entries whose deletes we forgot. When the origin began
                // its current life is always worth passing on.
                if table == Table::Services && origin != peer {
                    let complete = if same || holds_our_prefix || replaced || !may_be_stale {
                        o.complete
                    } else {
                        Timestamp::default()
                    };
                    let mark = Mark {
                        origin: origin.clone(),
                        complete,
                        born: o.born,
                        purged: o.purged,
                    };
                    if !mark.is_empty() {
                        marks.push(mark);
                    }
                }
                if same || replaced {
                    continue;
                }
                if holds_our_prefix {
                    newer.insert((table, origin), t.map(|t| t.max).unwrap_or_default());
                } else if their_complete != Timestamp::default() {
                    // The peer holds every change of the origin up to there:
                    // it lacks at most what is newer.
                    newer.insert((table, origin), their_complete);
                } else {
                    all.insert((table, origin));
                }
            }
        }
        let entries = entries
            .iter()
            .filter(|e| {
                let key = (e.table(), e.origin());
                replace.contains_key(e.origin())
                    || all.contains(&key)
                    || newer.get(&key).is_some_and(|max| e.ts() > *max)
            })
            .cloned()
            .collect();
        let (replace_origins, replace_as_of): (Vec<String>, Vec<Timestamp>) =
            replace.into_iter().unzip();
        Batch {
            entries,
            replace_origins,
            replace_as_of,
            marks,
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
            marks: origins
                .iter()
                .map(|o| self.mark_of(o))
                .filter(|m| !m.is_empty())
                .collect(),
        }
    }

    /// Applies one entry made locally or received outside a batch rule
    /// (no resurrection check). Returns whether it was newer.
    pub fn apply_entry(&mut self, entry: &SyncEntry, outcome: &mut BatchOutcome) -> bool {
        match entry {
            SyncEntry::Service(change) => {
                let applied = self.services.apply(change.clone());
                let newer = applied != Applied::Ignored;
                let (ts, origin) = change.version();
                if newer && origin == self.node {
                    self.own_max = self.own_max.max(ts);
                }
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
        // An origin born since we last heard: its older entries are dead.
        for mark in batch.marks.iter().filter(|m| m.origin != self.node) {
            let known = self
                .known
                .entry(mark.origin.clone())
                .or_insert_with(|| Mark::unknown(mark.origin.clone()));
            if mark.born > known.born {
                // A new life: what we knew of the previous one is moot;
                // of this one, nothing happened before its birth.
                known.born = mark.born;
                known.complete = mark.born;
                outcome.born.push(Mark {
                    born: mark.born,
                    ..Mark::unknown(mark.origin.clone())
                });
                let retired = self.services.retire_before(&mark.origin, mark.born);
                outcome.services.extend(
                    retired
                        .into_iter()
                        .filter(|a| !matches!(a, Applied::Invisible | Applied::Ignored)),
                );
                // Its links of the previous life ended with it.
                if self.links.retire_touching_before(&mark.origin, mark.born) > 0 {
                    outcome.links_changed = true;
                }
            }
        }
        for entry in &batch.entries {
            if let SyncEntry::Link(l) = entry {
                // A link of a node's previous life ended with it.
                if l.op == LinkOp::Add
                    && [l.key.a(), l.key.b()]
                        .into_iter()
                        .any(|end| l.ts < self.born_of(end))
                {
                    outcome.dead += 1;
                    continue;
                }
            }
            if let SyncEntry::Service(Change::Add(svc)) = entry {
                if *svc.origin != *self.node
                    && self
                        .known
                        .get(&*svc.origin)
                        .is_some_and(|k| svc.ts < k.born)
                {
                    outcome.dead += 1;
                    continue;
                }
                if *svc.origin == *self.node
                    && self.services.get_from(&svc.uri, &self.node) != Some(svc)
                {
                    outcome.stale_own.push(svc.uri.to_string());
                    continue;
                }
                if let Some(horizon) = self.services.may_be_forgotten(svc) {
                    if &*svc.origin != from {
                        outcome.refused += 1;
                        outcome
                            .refused_origins
                            .insert(svc.origin.to_string(), horizon);
                        continue;
                    }
                    // The origin itself speaks for its entries, but a
                    // change it queued before planning its initial batch
                    // can arrive after that batch, older than it: an add we
                    // held every change of (our mark of it is complete past
                    // it) and no longer hold was deleted, its tombstone
                    // since purged.
                    if self
                        .known
                        .get(&*svc.origin)
                        .is_some_and(|k| svc.ts <= k.complete)
                    {
                        outcome.dead += 1;
                        continue;
                    }
                }
            }

            if self.apply_entry(entry, &mut outcome) {
                outcome.forward.push(entry.clone());
            }
        }
        for (origin, as_of) in replaced {
            // The sender may have forgotten deletes of the origin: taking
            // its view, so have we.
            if let Some(m) = batch.marks.iter().find(|m| &m.origin == origin) {
                self.services.raise_purge_horizon(origin, m.purged);
            }
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
        // The sender's completeness holds here now, but for an origin we
        // refused entries of.
        for mark in &batch.marks {
            if mark.origin != self.node && !outcome.refused_origins.contains_key(&mark.origin) {
                if let Some(known) = self.known.get_mut(&mark.origin) {
                    known.complete = known.complete.max(mark.complete);
                }
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests;

/// What a digest knows of `origin`: its newest timestamp from it in either
/// table, purged tombstones and completeness included.
fn knowledge_of(d: &Digest, origin: &str) -> Timestamp {
    [Table::Services, Table::Links]
        .iter()
        .filter_map(|t| d.table(*t).get(origin))
        .map(|s| s.max.max(s.purged).max(s.complete))
        .max()
        .unwrap_or_default()
}
