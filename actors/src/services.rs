//! The services table: every registered service in the cluster, keyed by
//! URI, merged with last-writer-wins and tombstones.
//!
//! Each change ([`Change::Add`] or [`Change::Delete`]) carries its version:
//! the hybrid logical clock [`Timestamp`] at which its origin node made it
//! and the origin's name. Versions compare as `(ts, origin)`,
//! lexicographically. A change takes effect only if its version is strictly
//! greater than the version held for its URI, whether that is a live entry
//! or a tombstone; an equal or older change is [`Applied::Ignored`], which
//! makes applying a change idempotent and lets floods die out (a node
//! forwards only what it did not ignore). Deletes leave a [`Tombstone`]
//! carrying their version, so that an older add arriving late cannot
//! resurrect the service. Because each URI ends up holding the change with
//! the greatest version among all it has seen, nodes that have applied the
//! same set of changes hold the same table whatever the order of arrival.
//! That relies on versions being unique per URI, which they are: an origin's
//! clock never hands out the same timestamp twice.
//!
//! Tombstones are purged after a while ([`ServicesTable::purge_tombstones`]);
//! the table remembers the highest purge bound as its
//! [`purge_horizon`](ServicesTable::purge_horizon), which tells the sync
//! protocol that a peer whose knowledge is older needs a full resync rather
//! than a merge. The table itself applies late changes normally whatever
//! their age.

use std::collections::BTreeMap;

use crate::hlc::Timestamp;

/// A registered service, as held in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The service URI: the table key.
    pub uri: String,
    /// Attributes given at registration.
    pub attrs: BTreeMap<String, String>,
    /// Name of the node the service was registered on.
    pub origin: String,
    /// When the origin registered it.
    pub ts: Timestamp,
}

impl Service {
    /// The version of this entry, compared for last-writer-wins.
    pub fn version(&self) -> (Timestamp, &str) {
        (self.ts, &self.origin)
    }
}

/// A change to the table, made locally or received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Register (or re-register) a service.
    Add(Service),
    /// Remove the service with this URI.
    Delete {
        /// The service URI.
        uri: String,
        /// Name of the node that issued the delete.
        origin: String,
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

    /// The version of this change, compared for last-writer-wins.
    pub fn version(&self) -> (Timestamp, &str) {
        match self {
            Self::Add(s) => s.version(),
            Self::Delete { origin, ts, .. } => (*ts, origin),
        }
    }
}

/// What [`ServicesTable::apply`] did with a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A new live entry (no live entry before).
    Added(Service),
    /// A live entry replaced by a newer add.
    Updated {
        /// The entry replaced.
        old: Service,
        /// The entry now held.
        new: Service,
    },
    /// A live entry removed by a newer delete (the removed entry).
    Deleted(Service),
    /// A newer delete for a URI with no live entry: recorded as tombstone
    /// only.
    Tombstoned,
    /// Not newer than what is held (live or tombstone): nothing changed.
    Ignored,
}

/// The record of a delete, kept so that older adds lose against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    /// The deleted service URI.
    pub uri: String,
    /// Name of the node that issued the delete.
    pub origin: String,
    /// When the origin issued it.
    pub ts: Timestamp,
}

impl Tombstone {
    /// The version of this tombstone, compared for last-writer-wins.
    pub fn version(&self) -> (Timestamp, &str) {
        (self.ts, &self.origin)
    }
}

/// Live services and tombstones, keyed by URI. A URI has at most one of the
/// two at any time.
#[derive(Debug, Default)]
pub struct ServicesTable {
    /// Live entries by URI.
    live: BTreeMap<String, Service>,
    /// Tombstones by URI.
    tombstones: BTreeMap<String, Tombstone>,
    /// Highest `older_than` ever given to `purge_tombstones`.
    purge_horizon: Timestamp,
    /// Per origin: just past the newest tombstone of that origin purged.
    purge_horizons: BTreeMap<String, Timestamp>,
}

impl ServicesTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `change` if its version `(ts, origin)` is strictly greater
    /// than the version held for its URI (live entry or tombstone), and
    /// says what happened.
    pub fn apply(&mut self, change: Change) -> Applied {
        let held = match (
            self.live.get(change.uri()),
            self.tombstones.get(change.uri()),
        ) {
            (Some(s), _) => Some(s.version()),
            (None, Some(t)) => Some(t.version()),
            (None, None) => None,
        };
        if held.is_some_and(|held| change.version() <= held) {
            return Applied::Ignored;
        }
        match change {
            Change::Add(new) => {
                self.tombstones.remove(&new.uri);
                match self.live.insert(new.uri.clone(), new.clone()) {
                    Some(old) => Applied::Updated { old, new },
                    None => Applied::Added(new),
                }
            }
            Change::Delete { uri, origin, ts } => {
                let removed = self.live.remove(&uri);
                self.tombstones
                    .insert(uri.clone(), Tombstone { uri, origin, ts });
                match removed {
                    Some(old) => Applied::Deleted(old),
                    None => Applied::Tombstoned,
                }
            }
        }
    }

    /// Retires every live entry whose version is from `origin`, no newer
    /// than `as_of`, and whose URI is not in `keep`: each becomes a tombstone with the same version, so a
    /// stale copy arriving later is ignored. Returns the entries retired.
    /// Used when a batch replaces everything held from an origin.
    pub fn remove_origin_except(
        &mut self,
        origin: &str,
        keep: &std::collections::HashSet<String>,
        as_of: Timestamp,
    ) -> Vec<Service> {
        let gone: Vec<String> = self
            .live
            .values()
            .filter(|s| s.origin == origin && s.ts <= as_of && !keep.contains(&s.uri))
            .map(|s| s.uri.clone())
            .collect();
        let mut removed = Vec::with_capacity(gone.len());
        for uri in gone {
            if let Some(s) = self.live.remove(&uri) {
                self.tombstones.insert(
                    uri.clone(),
                    Tombstone {
                        uri,
                        origin: s.origin.clone(),
                        ts: s.ts,
                    },
                );
                removed.push(s);
            }
        }
        removed
    }

    /// The live entry for `uri`.
    pub fn get(&self, uri: &str) -> Option<&Service> {
        self.live.get(uri)
    }

    /// The tombstone for `uri`.
    pub fn tombstone(&self, uri: &str) -> Option<&Tombstone> {
        self.tombstones.get(uri)
    }

    /// Live entries, in URI order.
    pub fn iter(&self) -> impl Iterator<Item = &Service> {
        self.live.values()
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// True when there is no live entry (there may be tombstones).
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Tombstones, in URI order.
    pub fn tombstones(&self) -> impl Iterator<Item = &Tombstone> {
        self.tombstones.values()
    }

    /// Number of tombstones.
    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    /// Removes the tombstones with `ts < older_than` (a tombstone at exactly
    /// `older_than` is kept), returns how many were removed, and raises the
    /// purge horizon to `older_than` if it was lower.
    pub fn purge_tombstones(&mut self, older_than: Timestamp) -> usize {
        // The horizon rises only as far as what is actually forgotten: a
        // node that purged nothing refuses nothing.
        let newest = self
            .tombstones
            .values()
            .filter(|t| t.ts < older_than)
            .map(|t| t.ts)
            .max();
        let before = self.tombstones.len();
        for t in self.tombstones.values().filter(|t| t.ts < older_than) {
            let h = self.purge_horizons.entry(t.origin.clone()).or_default();
            *h = (*h).max(t.ts.successor());
        }
        self.tombstones.retain(|_, t| t.ts >= older_than);
        if let Some(newest) = newest {
            self.purge_horizon = self.purge_horizon.max(newest.successor());
        }
        before - self.tombstones.len()
    }

    /// The highest `older_than` ever passed to
    /// [`purge_tombstones`](Self::purge_tombstones) (zero if never): deletes
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
