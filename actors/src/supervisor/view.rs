//! The read view of the visible services: one entry per URI, as the
//! supervisor last applied them. The supervisor updates it in the same
//! step as it routes events (every visible move of the driver's effects
//! passes through [`ServicesView::set`] or [`ServicesView::remove`]), so
//! whoever reads it after a request was answered sees that request's
//! effect. Client connections answer `List` from it without a message to
//! the supervisor: a read never waits behind subscription churn or
//! replication in the supervisor's mailbox (docs/OPERATIONS.md, "Limits on
//! connections and work"). Subscription snapshots are taken from it too,
//! sharing each entry instead of copying it.
//!
//! Each entry is the services table's own `Arc<Service>`, ordered by its
//! URI ([`ByUri`]): the view adds one pointer per service to what the table
//! holds, and no copy of the URI.

use std::{
    borrow::Borrow,
    cmp::Ordering,
    collections::BTreeSet,
    sync::{Arc, PoisonError, RwLock},
};

use crate::services::Service;

/// Entries copied per hold of the lock by [`ServicesView::page`].
pub const PAGE_CHUNK: usize = 4096;

/// A visible service, ordered and looked up by its URI.
#[derive(Debug, Clone)]
struct ByUri(Arc<Service>);

impl Borrow<str> for ByUri {
    fn borrow(&self) -> &str {
        &self.0.uri
    }
}

impl PartialEq for ByUri {
    fn eq(&self, other: &Self) -> bool {
        self.0.uri == other.0.uri
    }
}

impl Eq for ByUri {}

impl PartialOrd for ByUri {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByUri {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.uri.cmp(&other.0.uri)
    }
}

/// The visible services by URI; clones share the same view.
#[derive(Debug, Clone, Default)]
pub struct ServicesView(Arc<RwLock<BTreeSet<ByUri>>>);

impl ServicesView {
    /// `service` is the visible entry of its URI now.
    pub fn set(&self, service: Arc<Service>) {
        let mut set = self.0.write().unwrap_or_else(PoisonError::into_inner);
        set.replace(ByUri(service));
    }

    /// Nothing is visible for `uri` now.
    pub fn remove(&self, uri: &str) {
        let mut set = self.0.write().unwrap_or_else(PoisonError::into_inner);
        set.remove(uri);
    }

    /// The visible services whose URI `regex` matches (all for `None`), in
    /// URI order. The lock is held only to copy the entries' handles; the
    /// regex runs after it is released.
    pub fn matching(&self, regex: Option<&regex::Regex>) -> Vec<Arc<Service>> {
        match regex {
            None => self.matching_by(|_| true),
            Some(r) => self.matching_by(|uri| r.is_match(uri)),
        }
    }

    /// The visible services whose URI satisfies `matches`, in URI order;
    /// `matches` runs after the lock is released.
    pub fn matching_by(&self, matches: impl Fn(&str) -> bool) -> Vec<Arc<Service>> {
        let all: Vec<Arc<Service>> = {
            let set = self.0.read().unwrap_or_else(PoisonError::into_inner);
            set.iter().map(|s| s.0.clone()).collect()
        };
        all.into_iter().filter(|s| matches(&s.uri)).collect()
    }

    /// Up to `limit` visible services whose URI `regex` matches (all for
    /// `None`), in URI order, starting after `after` (exclusive), and
    /// whether more may follow. The lock is held for [`PAGE_CHUNK`] entries
    /// at a time and the regex runs outside it, so a page over a large
    /// table never keeps the supervisor from applying changes for long.
    pub fn page(
        &self,
        regex: Option<&regex::Regex>,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Arc<Service>>, bool) {
        use std::ops::Bound;
        let mut found = Vec::new();
        let mut from: Bound<Arc<str>> = match after {
            Some(uri) => Bound::Excluded(uri.into()),
            None => Bound::Unbounded,
        };
        loop {
            let chunk: Vec<Arc<Service>> = {
                let set = self.0.read().unwrap_or_else(PoisonError::into_inner);
                set.range::<str, _>((from.as_ref().map(|uri| &**uri), Bound::Unbounded))
                    .take(PAGE_CHUNK)
                    .map(|s| s.0.clone())
                    .collect()
            };
            let Some(last) = chunk.last() else {
                return (found, false);
            };
            from = Bound::Excluded(last.uri.clone());
            let exhausted = chunk.len() < PAGE_CHUNK;
            for service in chunk {
                if regex.is_none_or(|r| r.is_match(&service.uri)) {
                    if found.len() == limit {
                        return (found, true);
                    }
                    found.push(service);
                }
            }
            if exhausted {
                return (found, false);
            }
        }
    }

    /// Number of visible services.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True when nothing is visible.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The links table and the reachable nodes as the supervisor last
/// published them (after every change it applies), for readers on other
/// threads: the HTTP API answers `/v1/links` from it without a message to
/// the supervisor. Clones share the same cell.
#[derive(Debug, Clone)]
pub struct LinksCell(Arc<RwLock<Arc<super::LinksView>>>);

impl LinksCell {
    /// A cell holding `node` alone, with no links.
    pub fn new(node: &str) -> Self {
        LinksCell(Arc::new(RwLock::new(Arc::new(super::LinksView {
            node: node.to_string(),
            links: Vec::new(),
            reachable: vec![node.to_string()],
        }))))
    }

    /// The view last published.
    pub fn get(&self) -> Arc<super::LinksView> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Publishes `view` if it differs from the one held.
    pub fn publish(&self, view: super::LinksView) {
        if *self.get() == view {
            return;
        }
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Timestamp;

    fn service(uri: &str, origin: &str) -> Arc<Service> {
        Arc::new(Service {
            uri: uri.into(),
            attrs: Default::default(),
            origin: origin.into(),
            ts: Timestamp::default(),
        })
    }

    #[test]
    fn one_entry_per_uri_in_uri_order() {
        let view = ServicesView::default();
        view.set(service("tcp://b", "n1"));
        view.set(service("tcp://a", "n1"));
        view.set(service("tcp://b", "n2"));
        let all = view.matching(None);
        let listed: Vec<(&str, &str)> = all.iter().map(|s| (&*s.uri, &*s.origin)).collect();
        assert_eq!(listed, [("tcp://a", "n1"), ("tcp://b", "n2")]);
        view.remove("tcp://a");
        assert_eq!(view.len(), 1);
        let regex = regex::Regex::new("^tcp://a").expect("regex");
        assert!(view.matching(Some(&regex)).is_empty());
    }

    #[test]
    fn clones_share_the_view() {
        let view = ServicesView::default();
        let reader = view.clone();
        view.set(service("tcp://x", "n1"));
        assert_eq!(reader.len(), 1);
        view.remove("tcp://x");
        assert!(reader.is_empty());
    }

    #[test]
    fn pages_resume_after_their_cursor_and_say_when_more_follow() {
        let view = ServicesView::default();
        for i in 0..(PAGE_CHUNK * 2 + 10) {
            view.set(service(&format!("tcp://s{i:05}"), "n1"));
        }
        let even = regex::Regex::new(r"[02468]$").expect("regex");
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = view.page(Some(&even), after.as_deref(), 1000);
            assert!(page.len() <= 1000);
            seen.extend(page.iter().map(|s| s.uri.to_string()));
            if !more {
                break;
            }
            after = page.last().map(|s| s.uri.to_string());
        }
        let expected: Vec<String> = view
            .matching(Some(&even))
            .iter()
            .map(|s| s.uri.to_string())
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(seen.len(), PAGE_CHUNK + 5);

        // An exact fit: the page is full and nothing follows.
        let (all, more) = view.page(None, None, PAGE_CHUNK * 2 + 10);
        assert_eq!(all.len(), PAGE_CHUNK * 2 + 10);
        assert!(!more);
        let (_, more) = view.page(None, None, PAGE_CHUNK * 2 + 9);
        assert!(more);
    }
}
