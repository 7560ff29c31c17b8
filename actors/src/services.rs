//! The services table: every registered service in the cluster, keyed by
//! URI and origin, merged with last-writer-wins and tombstones.
//!
//! Each node is the only writer of its own registrations: a [`Change`] is
//! made by its origin node and applies to that origin's *slot* for the URI
//! (a live entry or the tombstone of a delete). Each change carries the
//! hybrid logical clock [`Timestamp`] at which its origin made it; it takes
//! effect only if it is strictly newer than the slot it targets, otherwise
//! it is [`Applied::Ignored`], which makes applying a change idempotent and
//! lets floods die out (a node forwards only what it did not ignore).
//! Deletes leave a [`Tombstone`] in the slot, so that an older add arriving
//! late cannot resurrect the registration. Since an origin's clock never
//! hands out the same timestamp twice, every slot ends up holding its
//! origin's latest change whatever the order of arrival, and nodes that
//! have seen the same changes hold the same table. Keeping one writer per
//! slot is what makes per-origin digests and replacements exact: one
//! node's delete can never retire (or be retired by) another node's
//! registration of the same URI.
//!
//! What clients see is one entry per URI: the *visible* entry, the newest
//! live registration among origins that are not hidden (an origin is hidden
//! while it is unreachable, see the supervisor). [`Applied`] describes how a
//! change moved the visible entry of its URI, so the caller can route
//! events without looking at slots.
//!
//! Tombstones are purged after a while ([`ServicesTable::purge_tombstones`]);
//! the table remembers, per origin, just past the newest tombstone purged,
//! which tells the sync protocol that a peer whose knowledge of that origin
//! is older needs its view replaced rather than merged. The table itself
//! applies late changes normally whatever their age.
//!
//! Each origin's live entries are also indexed by origin
//! ([`ServicesTable::origins_holding`]), so that hiding, showing or retiring
//! one origin touches only that origin's entries, not a table of perhaps a
//! million (docs/PERFORMANCE.md, "Scale: 32 nodes").
//!
//! Memory: the table holds each live entry once, as an `Arc<Service>` the
//! read view, the watch history and routed events share; the URI's
//! allocation is shared by its key, its entries and its tombstones, and an
//! origin's name by every entry of that origin ([`SharedStr`]).

mod by_origin;
mod interner;
mod slots;

use std::{
    collections::{BTreeMap, HashSet},
    sync::Arc,
};

use self::{
    by_origin::ByOrigin,
    interner::Interner,
    slots::{Slot, Slots},
};
use crate::hlc::Timestamp;

/// An immutable string several holders share (a URI, an origin's name).
pub type SharedStr = Arc<str>;

/// A registered service, as held in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub uri: SharedStr,
    /// Attributes given at registration.
    pub attrs: BTreeMap<String, String>,
    /// Name of the node the service was registered on.
    pub origin: SharedStr,
    /// When the origin registered it.
    pub ts: Timestamp,
}

impl Service {
    /// The version of this entry: which of several origins' registrations
    /// of one URI is visible.
    pub fn version(&self) -> (Timestamp, &str) {
        (self.ts, &self.origin)
    }
}

/// A change to the table, made by its origin node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Register (or re-register) a service.
    Add(Service),
    /// Remove the origin's registration of this URI.
    Delete {
        uri: SharedStr,
        /// Name of the node that issued the delete (and whose registration
        /// it removes).
        origin: SharedStr,
        /// When the origin issued it.
        ts: Timestamp,
    },
}

impl Change {
    /// The URI this change is about.
    pub fn uri(&self) -> &str {
        match self {
            Self::Add(s) => &s.uri,
            Self::Delete { uri, .. } => uri,
        }
    }

    /// The timestamp and origin of this change.
    pub fn version(&self) -> (Timestamp, &str) {
        match self {
            Self::Add(s) => s.version(),
            Self::Delete { origin, ts, .. } => (*ts, origin),
        }
    }

    fn shared_uri(&self) -> &SharedStr {
        match self {
            Self::Add(s) => &s.uri,
            Self::Delete { uri, .. } => uri,
        }
    }

    fn shared_origin(&self) -> &SharedStr {
        match self {
            Self::Add(s) => &s.origin,
            Self::Delete { origin, .. } => origin,
        }
    }
}

/// How a change (or a retirement, hiding or showing) moved the visible
/// entry of its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The URI became visible with this entry.
    Added(Arc<Service>),
    /// The URI's visible entry changed.
    Updated {
        /// The entry visible before.
        old: Arc<Service>,
        /// The entry visible now.
        new: Arc<Service>,
    },
    /// The URI is no longer visible (the entry visible before).
    Deleted(Arc<Service>),
    /// Newer than its slot and kept, but the visible entry of the URI did
    /// not change: a delete where nothing was visible, or an entry shadowed
    /// by a newer registration of another origin, or of a hidden origin.
    Invisible,
    /// Not newer than its slot: nothing changed.
    Ignored,
}

/// The record of a delete, kept so that older adds of its origin lose
/// against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The deleted service URI.
    pub uri: SharedStr,
    /// Name of the node that issued the delete.
    pub origin: SharedStr,
    /// When the origin issued it.
    pub ts: Timestamp,
}

/// Hidden origins, and since when.
type Hidden = BTreeMap<String, Timestamp>;

/// The newest live entry among `slots` whose origin is not hidden.
fn visible<'a>(slots: &'a Slots, hidden: &Hidden) -> Option<&'a Arc<Service>> {
    slots
        .as_slice()
        .iter()
        .filter_map(Slot::live)
        .filter(|s| !hidden.contains_key(&*s.origin))
        .max_by(|a, b| a.version().cmp(&b.version()))
}

/// The URI a slot is of.
fn slot_uri(slot: &Slot) -> &str {
    match slot {
        Slot::Live(s) => &s.uri,
        Slot::Dead(t) => &t.uri,
    }
}

/// What a move of the visible entry from `before` to `after` looks like.
fn transition(before: Option<Arc<Service>>, after: Option<&Arc<Service>>) -> Applied {
    match (before, after) {
        (None, None) => Applied::Invisible,
        (None, Some(a)) => Applied::Added(a.clone()),
        (Some(b), None) => Applied::Deleted(b),
        (Some(b), Some(a)) if b == *a => Applied::Invisible,
        (Some(b), Some(a)) => Applied::Updated {
            old: b,
            new: a.clone(),
        },
    }
}

/// Live entries and tombstones, keyed by URI and origin, and the origins
/// currently hidden.
#[derive(Debug, Default)]
pub struct ServicesTable {
    by_uri: BTreeMap<SharedStr, Slots>,
    /// Per origin, the URIs of its live entries: what hiding, showing or
    /// retiring an origin visits instead of the whole table.
    by_origin: ByOrigin,
    /// The origin names the entries share.
    origins: Interner,
    hidden: Hidden,
    /// URIs with a visible entry.
    visible: usize,
    /// Live slots.
    live: usize,
    /// Dead slots.
    dead: usize,
    /// Highest bound of what `purge_tombstones` actually forgot.
    purge_horizon: Timestamp,
    /// Per origin: just past the newest tombstone of that origin purged.
    purge_horizons: BTreeMap<String, Timestamp>,
}

impl ServicesTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `change` if it is newer than what its origin's slot for the
    /// URI holds (live entry or tombstone), and says how the visible entry
    /// of the URI moved.
    pub fn apply(&mut self, change: Change) -> Applied {
        let (ts, origin) = change.version();
        let held_uri = self.by_uri.get_key_value(change.uri());
        let held =
            held_uri.and_then(|(_, s)| s.as_slice().iter().position(|x| &**x.origin() == origin));
        if let (Some((_, slots)), Some(i)) = (held_uri, held) {
            if ts <= slots.as_slice()[i].ts() {
                return Applied::Ignored;
            }
        }
        // The entry shares the key's URI and the interned origin name.
        let uri = held_uri.map_or_else(|| change.shared_uri().clone(), |(k, _)| k.clone());
        let origin = self.origins.intern(change.shared_origin());
        let new = match change {
            Change::Add(mut s) => {
                self.live += 1;
                self.by_origin.insert(&origin, &uri);
                s.uri = uri.clone();
                s.origin = origin;
                Slot::Live(Arc::new(s))
            }
            Change::Delete { ts, .. } => {
                self.dead += 1;
                Slot::Dead(Box::new(Tombstone {
                    uri: uri.clone(),
                    origin,
                    ts,
                }))
            }
        };
        let slots = self.by_uri.entry(uri).or_default();
        let before = visible(slots, &self.hidden).cloned();
        match held {
            Some(i) => {
                let slot = &mut slots.as_mut_slice()[i];
                match slot {
                    Slot::Live(_) => self.live -= 1,
                    Slot::Dead(_) => self.dead -= 1,
                }
                if slot.live().is_some() && new.live().is_none() {
                    // Deleted: no longer one of its origin's live entries.
                    self.by_origin.remove(slot.origin(), slot_uri(&new));
                }
                *slot = new;
            }
            None => {
                let at = slots
                    .as_slice()
                    .partition_point(|x| x.origin() < new.origin());
                slots.insert(at, new);
            }
        }
        let applied = transition(before, visible(slots, &self.hidden));
        self.count(&applied);
        applied
    }

    fn count(&mut self, applied: &Applied) {
        match applied {
            Applied::Added(_) => self.visible += 1,
            Applied::Deleted(_) => self.visible -= 1,
            _ => {}
        }
    }

    /// Retires every live entry of `origin` no newer than `as_of` whose URI
    /// is not in `keep`: each becomes a tombstone with the same version, so
    /// a stale copy arriving later is ignored. Returns one outcome per entry
    /// retired. Used when a batch replaces everything held from an origin.
    pub fn remove_origin_except(
        &mut self,
        origin: &str,
        keep: &HashSet<String>,
        as_of: Timestamp,
    ) -> Vec<Applied> {
        self.retire(origin, |s| s.ts <= as_of && !keep.contains(&*s.uri))
    }

    /// Retires every live entry of `origin` older than `born` (the start of
    /// its current life: a restarted node re-registers nothing, so these are
    /// dead). Returns one outcome per entry retired.
    pub fn retire_before(&mut self, origin: &str, born: Timestamp) -> Vec<Applied> {
        self.retire(origin, |s| s.ts < born)
    }

    /// Retires every live entry of `origin` matching `dead` as a tombstone
    /// of the same version.
    fn retire(&mut self, origin: &str, dead: impl Fn(&Service) -> bool) -> Vec<Applied> {
        let mut out = Vec::new();
        // Only the origin's own live entries are visited (the index), in
        // URI order; those retired leave the index.
        let Some((key, mut uris)) = self.by_origin.take(origin) else {
            return out;
        };
        let (by_uri, hidden) = (&mut self.by_uri, &self.hidden);
        uris.retain(|uri| {
            let Some(slots) = by_uri.get_mut(&**uri) else {
                return false;
            };
            let Some(i) = slots
                .as_slice()
                .iter()
                .position(|x| x.live().is_some_and(|s| &*s.origin == origin && dead(s)))
            else {
                return true;
            };
            let before = visible(slots, hidden).cloned();
            let slot = &mut slots.as_mut_slice()[i];
            let retired = Tombstone {
                uri: uri.clone(),
                origin: slot.origin().clone(),
                ts: slot.ts(),
            };
            *slot = Slot::Dead(Box::new(retired));
            out.push(transition(before, visible(slots, hidden)));
            false
        });
        self.by_origin.put_back(key, uris);
        self.live -= out.len();
        self.dead += out.len();
        for applied in &out {
            self.count(applied);
        }
        out
    }

    /// Hides `origin` as of `since`: its entries stop being visible.
    /// Returns how each URI it holds moved (nothing if it was hidden
    /// already).
    pub fn hide(&mut self, origin: &str, since: Timestamp) -> Vec<Applied> {
        self.set_hidden(origin, Some(since))
    }

    /// Shows `origin` again. Returns how each URI it holds moved (nothing
    /// if it was not hidden).
    pub fn show(&mut self, origin: &str) -> Vec<Applied> {
        self.set_hidden(origin, None)
    }

    /// True while `origin` is hidden.
    pub fn is_hidden(&self, origin: &str) -> bool {
        self.hidden.contains_key(origin)
    }

    /// The hidden origins, and since when.
    pub fn hidden(&self) -> &BTreeMap<String, Timestamp> {
        &self.hidden
    }

    fn set_hidden(&mut self, origin: &str, since: Option<Timestamp>) -> Vec<Applied> {
        if self.hidden.contains_key(origin) == since.is_some() {
            return Vec::new();
        }
        // Only the URIs the origin holds live entries of can move (the
        // index): an origin holding nothing here (a node that has
        // registered nothing, or was just met) moves nothing.
        let uris: Vec<(SharedStr, &Slots)> = self
            .by_origin
            .uris(origin)
            .filter_map(|uri| self.by_uri.get_key_value(&**uri))
            .map(|(uri, slots)| (uri.clone(), slots))
            .collect();
        let before: Vec<Option<Arc<Service>>> = uris
            .iter()
            .map(|(_, slots)| visible(slots, &self.hidden).cloned())
            .collect();
        let uris: Vec<SharedStr> = uris.into_iter().map(|(uri, _)| uri).collect();
        match since {
            Some(since) => self.hidden.insert(origin.to_string(), since),
            None => self.hidden.remove(origin),
        };
        let out: Vec<Applied> = uris
            .iter()
            .zip(before)
            .map(|(uri, before)| {
                let after = self
                    .by_uri
                    .get(&**uri)
                    .and_then(|slots| visible(slots, &self.hidden));
                transition(before, after)
            })
            .collect();
        for applied in &out {
            self.count(applied);
        }
        out
    }

    /// Our purge horizon for `add`'s origin when `add` is older than it
    /// and we hold nothing of that origin for its URI: it may be a service
    /// whose delete we forgot, and must not be taken.
    pub fn may_be_forgotten(&self, add: &Service) -> Option<Timestamp> {
        let horizon = *self.purge_horizons.get(&*add.origin)?;
        let held = self
            .by_uri
            .get(&*add.uri)
            .is_some_and(|slots| slots.as_slice().iter().any(|x| *x.origin() == add.origin));
        (add.ts < horizon && !held).then_some(horizon)
    }

    /// The visible entry for `uri`.
    pub fn get(&self, uri: &str) -> Option<&Service> {
        visible(self.by_uri.get(uri)?, &self.hidden).map(|s| &**s)
    }

    /// `origin`'s live entry for `uri`, hidden or not.
    pub fn get_from(&self, uri: &str, origin: &str) -> Option<&Service> {
        self.by_uri
            .get(uri)?
            .as_slice()
            .iter()
            .filter_map(Slot::live)
            .find(|s| &*s.origin == origin)
            .map(|s| &**s)
    }

    /// `origin`'s tombstone for `uri`.
    pub fn tombstone(&self, uri: &str, origin: &str) -> Option<&Tombstone> {
        self.by_uri
            .get(uri)?
            .as_slice()
            .iter()
            .filter_map(Slot::dead)
            .find(|t| &*t.origin == origin)
    }

    /// Visible entries, one per URI, in URI order.
    pub fn iter(&self) -> impl Iterator<Item = &Service> {
        self.by_uri
            .values()
            .filter_map(|slots| visible(slots, &self.hidden))
            .map(|s| &**s)
    }

    /// Number of visible entries.
    pub fn len(&self) -> usize {
        self.visible
    }

    /// True when nothing is visible (there may be tombstones, and entries
    /// of hidden origins).
    pub fn is_empty(&self) -> bool {
        self.visible == 0
    }

    /// Every live entry of every origin, hidden or shadowed included, in
    /// URI order.
    pub fn live_entries(&self) -> impl Iterator<Item = &Service> {
        self.by_uri
            .values()
            .flat_map(Slots::as_slice)
            .filter_map(Slot::live)
            .map(|s| &**s)
    }

    /// The origins holding at least one live entry here, hidden or not, in
    /// name order (from the index: no scan of the entries).
    pub fn origins_holding(&self) -> impl Iterator<Item = &str> {
        self.by_origin.origins()
    }

    /// Number of live entries of every origin.
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// Tombstones, in URI order.
    pub fn tombstones(&self) -> impl Iterator<Item = &Tombstone> {
        self.by_uri
            .values()
            .flat_map(Slots::as_slice)
            .filter_map(Slot::dead)
    }

    /// Number of tombstones.
    pub fn tombstone_count(&self) -> usize {
        self.dead
    }

    /// Removes the tombstones with `ts < older_than` (a tombstone at exactly
    /// `older_than` is kept) and returns how many were removed; raises the
    /// purge horizons as far as what was actually forgotten (a node that
    /// purged nothing refuses nothing).
    pub fn purge_tombstones(&mut self, older_than: Timestamp) -> usize {
        if self.dead == 0 {
            // Nothing to purge: no scan of a table of live entries.
            return 0;
        }
        let mut purged = 0;
        for slots in self.by_uri.values_mut() {
            slots.retain(|x| {
                let Slot::Dead(t) = x else { return true };
                if t.ts >= older_than {
                    return true;
                }
                let h = self.purge_horizons.entry(t.origin.to_string()).or_default();
                *h = (*h).max(t.ts.successor());
                self.purge_horizon = self.purge_horizon.max(t.ts.successor());
                purged += 1;
                false
            });
        }
        if purged > 0 {
            self.by_uri.retain(|_, slots| !slots.is_empty());
            self.origins.forget_unused();
            self.dead -= purged;
        }
        purged
    }

    /// Raises the purge horizon of `origin` to `horizon`: after taking a
    /// replacement from a node that forgot deletes of it, so did we.
    pub fn raise_purge_horizon(&mut self, origin: &str, horizon: Timestamp) {
        let h = self.purge_horizons.entry(origin.to_string()).or_default();
        *h = (*h).max(horizon);
        self.purge_horizon = self.purge_horizon.max(horizon);
    }

    /// Just past the newest tombstone ever purged (zero if none): deletes
    /// older than this may have been forgotten.
    pub fn purge_horizon(&self) -> Timestamp {
        self.purge_horizon
    }

    /// Per origin, just past the newest tombstone of that origin purged:
    /// deletes from that origin older than this may have been forgotten.
    pub fn purge_horizons(&self) -> &BTreeMap<String, Timestamp> {
        &self.purge_horizons
    }
}

#[cfg(test)]
mod tests;
