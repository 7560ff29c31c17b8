//! The services table's index of live entries by origin: per origin, the
//! URIs it holds a live entry of. Hiding, showing and retiring an origin
//! (an origin lost or reached again, a node restarted, a replacement batch)
//! visit only that origin's entries through it; without it each was a scan
//! of the whole table, which at 1,000,000 services took the 32 nodes of the
//! `scale` bench minutes and kept a new node from joining
//! (docs/PERFORMANCE.md, "Scale: 32 nodes").
//!
//! The table keeps it in step: an add makes its URI one of the origin's, a
//! delete or a retirement takes it out; tombstones are not indexed, so a
//! purge leaves it alone. An origin whose last live entry goes is dropped,
//! so the origins listed are exactly those holding something. The URIs are
//! the table's shared keys (`Arc<str>`): the index costs a pointer and the
//! B-tree's room per live entry, not a copy of the URI.

use std::collections::{BTreeMap, BTreeSet};

use super::SharedStr;

/// The URIs of one origin's live entries, in URI order.
pub(super) type Uris = BTreeSet<SharedStr>;

/// Per origin, the URIs of its live entries.
#[derive(Debug, Default)]
pub(super) struct ByOrigin(BTreeMap<SharedStr, Uris>);

impl ByOrigin {
    /// `origin` now holds a live entry of `uri` (no change if it did).
    pub(super) fn insert(&mut self, origin: &SharedStr, uri: &SharedStr) {
        match self.0.get_mut(&**origin) {
            Some(uris) => {
                uris.insert(uri.clone());
            }
            None => {
                self.0.insert(origin.clone(), BTreeSet::from([uri.clone()]));
            }
        }
    }

    /// `origin` no longer holds a live entry of `uri`.
    pub(super) fn remove(&mut self, origin: &str, uri: &str) {
        if let Some(uris) = self.0.get_mut(origin) {
            uris.remove(uri);
            if uris.is_empty() {
                self.0.remove(origin);
            }
        }
    }

    /// The URIs of `origin`'s live entries, in URI order (none if it holds
    /// nothing).
    pub(super) fn uris(&self, origin: &str) -> impl Iterator<Item = &SharedStr> {
        self.0.get(origin).into_iter().flatten()
    }

    /// Takes `origin`'s URIs out, to be changed and handed back with
    /// [`ByOrigin::put_back`].
    pub(super) fn take(&mut self, origin: &str) -> Option<(SharedStr, Uris)> {
        self.0.remove_entry(origin)
    }

    /// Hands back what [`ByOrigin::take`] took of `origin`, as it is now.
    pub(super) fn put_back(&mut self, origin: SharedStr, uris: Uris) {
        if !uris.is_empty() {
            self.0.insert(origin, uris);
        }
    }

    /// The origins holding at least one live entry, in name order.
    pub(super) fn origins(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(|o| &**o)
    }

    /// Every (origin, URI) pair indexed, in that order: for tests that
    /// check the index against the table's slots.
    #[cfg(test)]
    pub(super) fn pairs(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .flat_map(|(o, uris)| uris.iter().map(|u| (o.to_string(), u.to_string())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(s: &str) -> SharedStr {
        SharedStr::from(s)
    }

    #[test]
    fn an_origin_is_listed_while_it_holds_something() {
        let mut index = ByOrigin::default();
        index.insert(&shared("n2"), &shared("tcp://b"));
        index.insert(&shared("n1"), &shared("tcp://b"));
        index.insert(&shared("n1"), &shared("tcp://a"));
        index.insert(&shared("n1"), &shared("tcp://a"));
        assert_eq!(index.origins().collect::<Vec<_>>(), ["n1", "n2"]);
        assert_eq!(
            index.uris("n1").map(|u| &**u).collect::<Vec<_>>(),
            ["tcp://a", "tcp://b"]
        );
        index.remove("n2", "tcp://b");
        assert_eq!(index.origins().collect::<Vec<_>>(), ["n1"]);
        assert_eq!(index.uris("n2").count(), 0);
        // Removing what is not there changes nothing.
        index.remove("n3", "tcp://a");
        index.remove("n1", "tcp://z");
        assert_eq!(index.pairs().len(), 2);
    }

    #[test]
    fn taken_uris_come_back_as_they_are_left() {
        let mut index = ByOrigin::default();
        index.insert(&shared("n1"), &shared("tcp://a"));
        index.insert(&shared("n1"), &shared("tcp://b"));
        let Some((origin, mut uris)) = index.take("n1") else {
            panic!("n1 holds two URIs");
        };
        assert_eq!(index.origins().count(), 0);
        uris.remove("tcp://a");
        index.put_back(origin, uris);
        assert_eq!(index.pairs(), [("n1".into(), "tcp://b".into())]);
        let Some((origin, uris)) = index.take("n1") else {
            panic!("n1 holds one URI");
        };
        index.put_back(origin, Uris::new());
        assert_eq!(index.origins().count(), 0);
        assert_eq!(uris.len(), 1);
        assert!(index.take("n9").is_none());
    }
}
