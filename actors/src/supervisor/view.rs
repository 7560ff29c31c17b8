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

use std::{
    collections::BTreeMap,
    sync::{Arc, PoisonError, RwLock},
};

use crate::services::Service;

/// The visible services by URI; clones share the same view.
#[derive(Debug, Clone, Default)]
pub struct ServicesView(Arc<RwLock<BTreeMap<String, Arc<Service>>>>);

impl ServicesView {
    /// `service` is the visible entry of its URI now.
    pub fn set(&self, service: Arc<Service>) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(service.uri.clone(), service);
    }

    /// Nothing is visible for `uri` now.
    pub fn remove(&self, uri: &str) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(uri);
    }

    /// The visible services whose URI `regex` matches (all for `None`), in
    /// URI order. The lock is held only to copy the entries' handles; the
    /// regex runs after it is released.
    pub fn matching(&self, regex: Option<&regex::Regex>) -> Vec<Arc<Service>> {
        let all: Vec<Arc<Service>> = {
            let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
            map.values().cloned().collect()
        };
        match regex {
            None => all,
            Some(r) => all.into_iter().filter(|s| r.is_match(&s.uri)).collect(),
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
        let listed: Vec<(&str, &str)> = all
            .iter()
            .map(|s| (s.uri.as_str(), s.origin.as_str()))
            .collect();
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
}
