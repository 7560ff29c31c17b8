//! The node's numbered history of visible changes, as a plain state
//! machine (no I/O): what lets a watch resume after its connection was
//! lost without a fresh snapshot (docs/PROTOCOL.md §5, "Revisions and
//! resuming a watch").
//!
//! Every visible move of the services table (a service appears, changes
//! or goes) gets the next *revision*, counted from 0 at the node's start.
//! Each start opens a new *epoch* (a random non-zero number), so a
//! revision from a previous run is never mistaken for one of this run. A
//! subscription asking to resume from (epoch, revision) gets the changes
//! after it if the history still covers them ([`History::since`]), or a
//! [`Gap`] saying why not (the caller then sends a fresh snapshot and a
//! reset).
//!
//! What is kept, and its memory. Only the latest change of each URI is
//! kept: a client resuming needs the net effect of what it missed, and
//! the latest change of a URI is that effect (an add or update carries the
//! service as it is, a delete that it is gone), so an older change of the
//! same URI is dropped when a newer one is recorded, without moving the
//! horizon. At most `window` changes are kept; beyond that the oldest is
//! forgotten and resuming from before it is no longer possible. An add
//! shares its service with the table while it is current; a delete keeps
//! the service without its attributes (a delete carries none on the wire).
//! So a URI that churns costs one entry, and the memory is bounded by
//! `window` entries of a URI and an origin each, beyond the table's own.
//!
//! The supervisor records every move here in the same step as it routes
//! it, so the revision a subscriber sees at the end of its snapshot and
//! the revisions of the events that follow agree.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use catalogue_proto::catalogue::EventKind;

use super::queue::Event;
use crate::services::{Service, SharedStr};

/// A point in the history: resume from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The node's run this revision belongs to.
    pub epoch: u64,
    /// Changes counted since the epoch began.
    pub revision: u64,
}

impl From<Position> for catalogue_proto::catalogue::Position {
    fn from(p: Position) -> Self {
        catalogue_proto::catalogue::Position {
            epoch: p.epoch,
            revision: p.revision,
        }
    }
}

impl From<catalogue_proto::catalogue::Position> for Position {
    fn from(p: catalogue_proto::catalogue::Position) -> Self {
        Position {
            epoch: p.epoch,
            revision: p.revision,
        }
    }
}

/// Why the changes after a position cannot be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Gap {
    /// The position is from another run of the node (or another node).
    #[error("epoch {asked} is not this node's current epoch")]
    OtherEpoch {
        /// The epoch asked for.
        asked: u64,
    },
    /// Changes after the position have been forgotten (the window moved
    /// past them).
    #[error(
        "changes after revision {asked} are no longer held (resumable from revision {horizon})"
    )]
    Forgotten {
        /// The revision asked for.
        asked: u64,
        /// The oldest revision a subscription can resume from.
        horizon: u64,
    },
    /// The position is ahead of the node: it never gave it out.
    #[error("revision {asked} is ahead of this node's revision {current}")]
    Ahead {
        /// The revision asked for.
        asked: u64,
        /// The node's current revision.
        current: u64,
    },
}

/// The latest change of each recently changed URI (at most `window`) and
/// the current revision.
#[derive(Debug)]
pub struct History {
    epoch: u64,
    revision: u64,
    window: usize,
    /// The changes kept, by revision.
    changes: BTreeMap<u64, Event>,
    /// The revision of the change kept for each URI.
    latest: HashMap<SharedStr, u64>,
    /// Every change after this revision is represented in `changes` (by
    /// itself or by a later change of its URI).
    horizon: u64,
}

impl History {
    /// An empty history of epoch `epoch` (0 is replaced by 1: 0 means "no
    /// revisions" on the wire) keeping `window` changes.
    pub fn new(epoch: u64, window: usize) -> Self {
        History {
            epoch: epoch.max(1),
            revision: 0,
            window,
            changes: BTreeMap::new(),
            latest: HashMap::new(),
            horizon: 0,
        }
    }

    /// A history of a new epoch drawn at random.
    pub fn new_epoch(window: usize) -> Self {
        History::new(rand::random::<u64>(), window)
    }

    /// Where the node stands now.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch,
            revision: self.revision,
        }
    }

    /// Changes held.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// True when no change is held.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// A visible change: numbers it with the next revision, keeps it in
    /// place of the URI's previous change (forgetting the oldest change
    /// beyond the window) and returns it as an event to route.
    pub fn record(&mut self, kind: EventKind, service: Arc<Service>) -> Event {
        self.revision += 1;
        let revision = self.revision;
        let event = Event {
            kind,
            service,
            revision,
        };
        let kept = if kind == EventKind::Deleted && !event.service.attrs.is_empty() {
            let mut bare = (*event.service).clone();
            bare.attrs = Default::default();
            Event {
                service: Arc::new(bare),
                ..event.clone()
            }
        } else {
            event.clone()
        };
        if let Some(previous) = self.latest.insert(kept.service.uri.clone(), revision) {
            self.changes.remove(&previous);
        }
        self.changes.insert(revision, kept);
        while self.changes.len() > self.window {
            let Some((oldest, forgotten)) = self.changes.pop_first() else {
                break;
            };
            self.horizon = oldest;
            if self.latest.get(&forgotten.service.uri) == Some(&oldest) {
                self.latest.remove(&forgotten.service.uri);
            }
        }
        event
    }

    /// The latest change of each URI changed after `from`, oldest first,
    /// if the history still covers every change after `from`; an empty
    /// iterator when `from` is the current position.
    pub fn since(&self, from: Position) -> Result<impl Iterator<Item = &Event>, Gap> {
        if from.epoch != self.epoch {
            return Err(Gap::OtherEpoch { asked: from.epoch });
        }
        if from.revision > self.revision {
            return Err(Gap::Ahead {
                asked: from.revision,
                current: self.revision,
            });
        }
        if from.revision < self.horizon {
            return Err(Gap::Forgotten {
                asked: from.revision,
                horizon: self.horizon,
            });
        }
        Ok(self.changes.range(from.revision + 1..).map(|(_, e)| e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Timestamp;

    fn service(uri: &str) -> Arc<Service> {
        Arc::new(Service {
            uri: uri.into(),
            attrs: Default::default(),
            origin: "n1".into(),
            ts: Timestamp::default(),
        })
    }

    fn uris<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<(u64, String)> {
        events
            .map(|e| (e.revision, e.service.uri.to_string()))
            .collect()
    }

    #[test]
    fn revisions_count_from_one_and_the_position_follows() {
        let mut h = History::new(7, 4);
        assert_eq!(
            h.position(),
            Position {
                epoch: 7,
                revision: 0
            }
        );
        let e = h.record(EventKind::Added, service("tcp://a"));
        assert_eq!(e.revision, 1);
        let e = h.record(EventKind::Deleted, service("tcp://a"));
        assert_eq!((e.revision, e.kind), (2, EventKind::Deleted));
        assert_eq!(h.position().revision, 2);
    }

    #[test]
    fn epoch_zero_is_never_used() {
        assert_eq!(History::new(0, 1).position().epoch, 1);
    }

    #[test]
    fn replays_exactly_the_changes_after_the_position() {
        let mut h = History::new(7, 10);
        for uri in ["tcp://a", "tcp://b", "tcp://c"] {
            h.record(EventKind::Added, service(uri));
        }
        let from = |revision| Position { epoch: 7, revision };
        assert_eq!(
            uris(h.since(from(0)).expect("all held")),
            [
                (1, "tcp://a".into()),
                (2, "tcp://b".into()),
                (3, "tcp://c".into())
            ]
        );
        assert_eq!(
            uris(h.since(from(2)).expect("held")),
            [(3, "tcp://c".to_string())]
        );
        assert_eq!(h.since(from(3)).expect("current").count(), 0);
    }

    #[test]
    fn another_epoch_is_a_gap() {
        let mut h = History::new(7, 10);
        h.record(EventKind::Added, service("tcp://a"));
        assert_eq!(
            h.since(Position {
                epoch: 8,
                revision: 0
            })
            .err(),
            Some(Gap::OtherEpoch { asked: 8 })
        );
    }

    #[test]
    fn a_revision_never_given_out_is_a_gap() {
        let h = History::new(7, 10);
        assert_eq!(
            h.since(Position {
                epoch: 7,
                revision: 1
            })
            .err(),
            Some(Gap::Ahead {
                asked: 1,
                current: 0
            })
        );
    }

    #[test]
    fn the_window_forgets_the_oldest_changes() {
        let mut h = History::new(7, 2);
        for uri in ["tcp://a", "tcp://b", "tcp://c", "tcp://d"] {
            h.record(EventKind::Added, service(uri));
        }
        assert_eq!(h.len(), 2);
        let from = |revision| Position { epoch: 7, revision };
        // Revisions 3 and 4 are held: resuming from 2 needs only those.
        assert_eq!(
            uris(h.since(from(2)).expect("held")),
            [(3, "tcp://c".into()), (4, "tcp://d".into())]
        );
        // From 1, revision 2 would be needed and is gone.
        assert_eq!(
            h.since(from(1)).err(),
            Some(Gap::Forgotten {
                asked: 1,
                horizon: 2
            })
        );
    }

    #[test]
    fn only_the_latest_change_of_a_uri_is_kept_and_replayed() {
        let mut h = History::new(7, 2);
        let with_attrs = || {
            let mut s = (*service("tcp://a")).clone();
            s.attrs.insert("pad".into(), "x".repeat(100));
            Arc::new(s)
        };
        for _ in 0..10 {
            h.record(EventKind::Added, with_attrs());
            h.record(EventKind::Deleted, with_attrs());
        }
        h.record(EventKind::Added, service("tcp://b"));
        // Twenty changes of a and one of b fit a window of two.
        assert_eq!(h.len(), 2);
        let from = |revision| Position { epoch: 7, revision };
        assert_eq!(
            uris(h.since(from(0)).expect("all covered")),
            [(20, "tcp://a".into()), (21, "tcp://b".into())]
        );
        assert_eq!(
            uris(h.since(from(19)).expect("covered")),
            [(20, "tcp://a".into()), (21, "tcp://b".into())]
        );
        let kept = h.since(from(19)).expect("covered").next().expect("a");
        assert_eq!(kept.kind, EventKind::Deleted);
        assert!(
            kept.service.attrs.is_empty(),
            "a delete keeps no attributes"
        );
        // A third URI pushes the oldest (a's delete) out.
        h.record(EventKind::Added, service("tcp://c"));
        assert_eq!(
            h.since(from(19)).err(),
            Some(Gap::Forgotten {
                asked: 19,
                horizon: 20
            })
        );
        assert_eq!(
            uris(h.since(from(20)).expect("covered")),
            [(21, "tcp://b".into()), (22, "tcp://c".into())]
        );
    }

    #[test]
    fn the_event_routed_keeps_the_attributes_of_a_delete() {
        let mut h = History::new(7, 4);
        let mut s = (*service("tcp://a")).clone();
        s.attrs.insert("k".into(), "v".into());
        let routed = h.record(EventKind::Deleted, Arc::new(s));
        assert_eq!(routed.service.attrs.len(), 1);
    }

    #[test]
    fn a_window_of_zero_keeps_nothing_but_still_numbers() {
        let mut h = History::new(7, 0);
        let e = h.record(EventKind::Added, service("tcp://a"));
        assert_eq!(e.revision, 1);
        assert!(h.is_empty());
        let from = |revision| Position { epoch: 7, revision };
        assert_eq!(h.since(from(1)).expect("current").count(), 0);
        assert!(matches!(h.since(from(0)), Err(Gap::Forgotten { .. })));
    }
}
