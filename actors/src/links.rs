//! The links table: which node is linked to which, cluster-wide.
//!
//! A link is the unordered pair of its nodes' names ([`LinkKey`] stores
//! them sorted, so {A,B} and {B,A} are one key). When a link comes up, its
//! nodes issue `LinkAdd{A,B,ts}`; when it goes down, `LinkDelete{A,B,ts}`.
//! Changes merge by last writer wins on the version `(ts, origin)`, as in the
//! services table: a change that is not strictly newer than what is held
//! (live entry or tombstone) is ignored, so applying is idempotent and a
//! node forwards only changes it did not ignore, which makes floods end.
//! Deletes leave tombstones, purged once older than the tombstone TTL.
//!
//! From the live links a node computes which nodes it can reach
//! ([`LinksTable::reachable_from`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::hlc::Timestamp;

/// The unordered pair of node names a link joins; `a <= b` always.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkKey {
    a: String,
    b: String,
}

impl LinkKey {
    /// The key of the link between `x` and `y`, in either order.
    pub fn new(x: impl Into<String>, y: impl Into<String>) -> Self {
        let (x, y) = (x.into(), y.into());
        if x <= y {
            LinkKey { a: x, b: y }
        } else {
            LinkKey { a: y, b: x }
        }
    }

    /// The smaller name.
    pub fn a(&self) -> &str {
        &self.a
    }

    /// The larger name.
    pub fn b(&self) -> &str {
        &self.b
    }

    /// True when `node` is one of the two ends.
    pub fn touches(&self, node: &str) -> bool {
        self.a == node || self.b == node
    }
}

/// Add or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOp {
    /// The link is up.
    Add,
    /// The link is down.
    Delete,
}

/// One change to the links table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    /// Add or delete.
    pub op: LinkOp,
    /// The link.
    pub key: LinkKey,
    /// The node that issued the change.
    pub origin: String,
    /// When it issued it.
    pub ts: Timestamp,
}

/// What the table holds for one key: the newest change applied.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    op: LinkOp,
    origin: String,
    ts: Timestamp,
}

/// What [`LinksTable::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkApplied {
    /// Newer than what was held, and the link's state changed.
    Changed,
    /// Newer than what was held, but the state stayed (add over add, delete
    /// over delete or over nothing). Still forwarded: peers may lack it.
    Refreshed,
    /// Not newer: ignored, not forwarded.
    Ignored,
}

impl LinkApplied {
    /// Should the change be forwarded to the other peers?
    pub fn forward(self) -> bool {
        self != LinkApplied::Ignored
    }
}

/// Live links and tombstones.
#[derive(Debug, Default)]
pub struct LinksTable {
    entries: BTreeMap<LinkKey, Held>,
    /// Entries that are live links (kept up to date, so counts are O(1)).
    live: usize,
    purge_horizon: Timestamp,
    /// Per origin: just past the newest tombstone of that origin purged.
    purge_horizons: BTreeMap<String, Timestamp>,
}

impl LinksTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies `change` if it is strictly newer than what is held.
    pub fn apply(&mut self, change: &LinkChange) -> LinkApplied {
        let was_live = match self.entries.get(&change.key) {
            Some(held)
                if (change.ts, change.origin.as_str()) <= (held.ts, held.origin.as_str()) =>
            {
                return LinkApplied::Ignored;
            }
            Some(held) => held.op == LinkOp::Add,
            None => false,
        };
        self.entries.insert(
            change.key.clone(),
            Held {
                op: change.op,
                origin: change.origin.clone(),
                ts: change.ts,
            },
        );
        let now_live = change.op == LinkOp::Add;
        match (was_live, now_live) {
            (false, true) => self.live += 1,
            (true, false) => self.live -= 1,
            _ => {}
        }
        if was_live == now_live {
            LinkApplied::Refreshed
        } else {
            LinkApplied::Changed
        }
    }

    /// Retires every live link from `origin` whose key is not in `keep`: it
    /// becomes a delete with the same version. Returns how many.
    pub fn remove_origin_except(
        &mut self,
        origin: &str,
        keep: &std::collections::HashSet<LinkKey>,
        as_of: Timestamp,
    ) -> usize {
        let mut retired = 0;
        for (key, held) in &mut self.entries {
            if held.origin == origin
                && held.op == LinkOp::Add
                && held.ts <= as_of
                && !keep.contains(key)
            {
                held.op = LinkOp::Delete;
                retired += 1;
            }
        }
        self.live -= retired;
        retired
    }

    /// Retires every live link with `node` at one end that is older than
    /// `born` (the start of `node`'s current life: the links of a previous
    /// life ended when it stopped): each becomes a delete with the same
    /// version. Returns how many.
    pub fn retire_touching_before(&mut self, node: &str, born: Timestamp) -> usize {
        let mut retired = 0;
        for (key, held) in &mut self.entries {
            if key.touches(node) && held.op == LinkOp::Add && held.ts < born {
                held.op = LinkOp::Delete;
                retired += 1;
            }
        }
        self.live -= retired;
        retired
    }

    /// Live links, sorted.
    pub fn live(&self) -> impl Iterator<Item = (&LinkKey, &str, Timestamp)> {
        self.entries
            .iter()
            .filter(|(_, h)| h.op == LinkOp::Add)
            .map(|(k, h)| (k, h.origin.as_str(), h.ts))
    }

    /// Every entry (live and tombstones) as the change that produced it.
    pub fn changes(&self) -> impl Iterator<Item = LinkChange> + '_ {
        self.entries.iter().map(|(k, h)| LinkChange {
            op: h.op,
            key: k.clone(),
            origin: h.origin.clone(),
            ts: h.ts,
        })
    }

    /// Is the link up?
    pub fn is_live(&self, key: &LinkKey) -> bool {
        self.entries.get(key).is_some_and(|h| h.op == LinkOp::Add)
    }

    /// Number of live links.
    pub fn live_count(&self) -> usize {
        self.live
    }

    /// Number of tombstones.
    pub fn tombstone_count(&self) -> usize {
        self.entries.len() - self.live_count()
    }

    /// Removes tombstones older than `older_than` (a tombstone whose
    /// timestamp equals it is kept); returns how many.
    pub fn purge_tombstones(&mut self, older_than: Timestamp) -> usize {
        // The horizon rises only as far as what is actually forgotten.
        let newest = self
            .entries
            .values()
            .filter(|h| h.op == LinkOp::Delete && h.ts < older_than)
            .map(|h| h.ts)
            .max();
        let before = self.entries.len();
        for h in self
            .entries
            .values()
            .filter(|h| h.op == LinkOp::Delete && h.ts < older_than)
        {
            let p = self.purge_horizons.entry(h.origin.clone()).or_default();
            *p = (*p).max(h.ts.successor());
        }
        self.entries
            .retain(|_, h| h.op == LinkOp::Add || h.ts >= older_than);
        if let Some(newest) = newest {
            self.purge_horizon = self.purge_horizon.max(newest.successor());
        }
        before - self.entries.len()
    }

    /// Highest bound ever purged below.
    pub fn purge_horizon(&self) -> Timestamp {
        self.purge_horizon
    }

    /// Per origin, just past the newest tombstone of that origin purged.
    pub fn purge_horizons(&self) -> &BTreeMap<String, Timestamp> {
        &self.purge_horizons
    }

    /// The nodes reachable from `node` over live links, `node` included.
    pub fn reachable_from(&self, node: &str) -> BTreeSet<String> {
        let mut neighbours: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (key, _, _) in self.live() {
            neighbours.entry(key.a()).or_default().push(key.b());
            neighbours.entry(key.b()).or_default().push(key.a());
        }
        let mut seen = BTreeSet::from([node.to_string()]);
        let mut queue = VecDeque::from([node]);
        while let Some(n) = queue.pop_front() {
            for next in neighbours.get(n).into_iter().flatten() {
                if seen.insert((*next).to_string()) {
                    queue.push_back(next);
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests;
