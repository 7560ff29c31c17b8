//! Digests: what a node holds, summarised per table and per origin node
//! (newest timestamp, entry count, order-independent hash), plus the
//! node's tombstone purge horizon. Two nodes exchange digests (`UpdTree`)
//! and each computes from the other's exactly what to send
//! ([`super::replica::Replica::plan`]).

use std::collections::BTreeMap;

use catalogue_proto::catalogue::{self, UpdTree};

use super::entry::{SyncEntry, Table};
use crate::hlc::Timestamp;

/// What a node holds from one origin in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OriginSummary {
    /// Newest timestamp held.
    pub max: Timestamp,
    /// Entries held (live and tombstones).
    pub count: u64,
    /// Order-independent hash of (key, timestamp, kind) over those entries.
    pub hash: u64,
    /// Just past the newest tombstone from this origin the node purged:
    /// deletes from it older than this may be forgotten.
    pub purged: Timestamp,
    /// Services table: the node holds the effect of every change the
    /// origin made up to this time (zero: unknown).
    pub complete: Timestamp,
    /// Services table: when the origin's current life began, as far as the
    /// node knows (zero: unknown).
    pub born: Timestamp,
}

/// What a node knows of one origin, sent with a batch and valid once the
/// batch is applied: how far the receiver then holds every services change
/// of the origin, and when the origin's current life began (its entries
/// older than that are dead: a restarted node re-registers nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The origin.
    pub origin: String,
    /// Every services change of the origin up to this is held (zero:
    /// unknown).
    pub complete: Timestamp,
    /// The origin's current life began at this (zero: unknown).
    pub born: Timestamp,
    /// The sender's purge horizon for the origin (zero: none).
    pub purged: Timestamp,
}

impl Mark {
    /// Nothing known of `origin`.
    pub fn unknown(origin: impl Into<String>) -> Mark {
        Mark {
            origin: origin.into(),
            complete: Timestamp::default(),
            born: Timestamp::default(),
            purged: Timestamp::default(),
        }
    }

    /// True when the mark says nothing.
    pub fn is_empty(&self) -> bool {
        let unknown = Timestamp::default();
        (self.complete, self.born, self.purged) == (unknown, unknown, unknown)
    }

    /// Raises this mark to what `other` (of the same origin) knows.
    pub fn merge(&mut self, other: &Mark) {
        self.complete = self.complete.max(other.complete);
        self.born = self.born.max(other.born);
        self.purged = self.purged.max(other.purged);
    }

    /// The wire form.
    pub fn to_wire(&self) -> catalogue::OriginMark {
        let known = |t: Timestamp| (t != Timestamp::default()).then(|| t.into());
        catalogue::OriginMark {
            origin: self.origin.clone(),
            complete: known(self.complete),
            born: known(self.born),
            purged: known(self.purged),
        }
    }

    /// From the wire form.
    pub fn from_wire(m: catalogue::OriginMark) -> Mark {
        Mark {
            origin: m.origin,
            complete: m.complete.map(Into::into).unwrap_or_default(),
            born: m.born.map(Into::into).unwrap_or_default(),
            purged: m.purged.map(Into::into).unwrap_or_default(),
        }
    }
}

impl OriginSummary {
    /// The summary of what is held, without what is known about it
    /// (purge horizon, completeness): equal for nodes holding the same
    /// entries.
    pub fn content(&self) -> (Timestamp, u64, u64) {
        (self.max, self.count, self.hash)
    }

    /// Adds one entry.
    pub fn add(&mut self, entry: &SyncEntry) {
        self.max = self.max.max(entry.ts());
        self.count += 1;
        self.hash = self.hash.wrapping_add(entry_hash(entry));
    }
}

/// FNV-1a over the parts of an entry that identify its version; summed
/// (wrapping) over entries so the order does not matter.
pub fn entry_hash(entry: &SyncEntry) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(&[entry.table() as u8, u8::from(entry.is_delete())]);
    eat(entry.key().as_bytes());
    eat(&[0]);
    eat(entry.origin().as_bytes());
    let ts = entry.ts();
    eat(&ts.physical_ms.to_le_bytes());
    eat(&ts.logical.to_le_bytes());
    h
}

/// A node's digest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Digest {
    /// Per origin, for the services table.
    pub services: BTreeMap<String, OriginSummary>,
    /// Per origin, for the links table.
    pub links: BTreeMap<String, OriginSummary>,
    /// Tombstones older than this have been purged by the node.
    pub purge_horizon: Timestamp,
}

impl Digest {
    /// The digest of `entries`.
    pub fn of<'a>(
        entries: impl IntoIterator<Item = &'a SyncEntry>,
        purge_horizon: Timestamp,
    ) -> Digest {
        let mut d = Digest {
            purge_horizon,
            ..Digest::default()
        };
        for e in entries {
            d.table_mut(e.table())
                .entry(e.origin().to_string())
                .or_default()
                .add(e);
        }
        d
    }

    /// Records what the node knows of each origin in `marks` (services
    /// table).
    pub fn with_marks<'a>(mut self, marks: impl IntoIterator<Item = &'a Mark>) -> Digest {
        let unknown = Timestamp::default();
        for m in marks
            .into_iter()
            .filter(|m| (m.complete, m.born) != (unknown, unknown))
        {
            let s = self.services.entry(m.origin.clone()).or_default();
            s.complete = s.complete.max(m.complete);
            s.born = s.born.max(m.born);
        }
        self
    }

    /// Records per-origin purge horizons of `table` (an origin may appear
    /// with no entry left at all).
    pub fn with_purged(mut self, table: Table, horizons: &BTreeMap<String, Timestamp>) -> Digest {
        let t = self.table_mut(table);
        for (origin, h) in horizons {
            let s = t.entry(origin.clone()).or_default();
            s.purged = s.purged.max(*h);
        }
        self
    }

    /// The per-origin summaries of `table`.
    pub fn table(&self, table: Table) -> &BTreeMap<String, OriginSummary> {
        match table {
            Table::Services => &self.services,
            Table::Links => &self.links,
        }
    }

    fn table_mut(&mut self, table: Table) -> &mut BTreeMap<String, OriginSummary> {
        match table {
            Table::Services => &mut self.services,
            Table::Links => &mut self.links,
        }
    }

    /// The `UpdTree` body for this digest.
    pub fn to_wire(&self) -> UpdTree {
        let conv = |m: &BTreeMap<String, OriginSummary>| {
            m.iter()
                .map(|(origin, s)| catalogue::OriginDigest {
                    origin: origin.clone(),
                    max: Some(s.max.into()),
                    count: s.count,
                    hash: s.hash,
                    purged: Some(s.purged.into()),
                    complete: (s.complete != Timestamp::default()).then(|| s.complete.into()),
                    born: (s.born != Timestamp::default()).then(|| s.born.into()),
                })
                .collect()
        };
        UpdTree {
            services: conv(&self.services),
            links: conv(&self.links),
            purge_horizon: Some(self.purge_horizon.into()),
        }
    }

    /// The digest in an `UpdTree` body.
    pub fn from_wire(u: UpdTree) -> Digest {
        let conv = |v: Vec<catalogue::OriginDigest>| {
            v.into_iter()
                .map(|d| {
                    let summary = OriginSummary {
                        max: d.max.map(Into::into).unwrap_or_default(),
                        count: d.count,
                        hash: d.hash,
                        purged: d.purged.map(Into::into).unwrap_or_default(),
                        complete: d.complete.map(Into::into).unwrap_or_default(),
                        born: d.born.map(Into::into).unwrap_or_default(),
                    };
                    (d.origin, summary)
                })
                .collect()
        };
        Digest {
            services: conv(u.services),
            links: conv(u.links),
            purge_horizon: u.purge_horizon.map(Into::into).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Change;

    fn del(uri: &str, origin: &str, ms: u64) -> SyncEntry {
        SyncEntry::Service(Change::Delete {
            uri: uri.into(),
            origin: origin.into(),
            ts: Timestamp {
                physical_ms: ms,
                logical: 0,
            },
        })
    }

    #[test]
    fn the_digest_ignores_order_and_sees_every_difference() {
        let a = [del("x:1", "n", 1), del("x:2", "n", 2), del("x:3", "m", 3)];
        let b = [a[2].clone(), a[0].clone(), a[1].clone()];
        assert_eq!(
            Digest::of(&a, Timestamp::default()),
            Digest::of(&b, Timestamp::default())
        );
        let c = [del("x:1", "n", 1), del("x:2", "n", 9), del("x:3", "m", 3)];
        assert_ne!(
            Digest::of(&a, Timestamp::default()),
            Digest::of(&c, Timestamp::default())
        );
        let d = Digest::of(&a, Timestamp::default());
        assert_eq!(d.services["n"].count, 2);
        assert_eq!(d.services["n"].max.physical_ms, 2);
    }

    #[test]
    fn the_digest_round_trips_through_updtree() {
        let d = Digest::of(
            &[del("x:1", "n", 1), del("x:3", "m", 3)],
            Timestamp {
                physical_ms: 7,
                logical: 1,
            },
        );
        assert_eq!(Digest::from_wire(d.to_wire()), d);
    }
}
