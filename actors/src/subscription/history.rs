//! The node's numbered history of visible changes, as a plain state
//! machine (no I/O): what lets a watch resume after its connection was
//! lost without a fresh snapshot (docs/PROTOCOL.md §5, "Revisions and
//! resuming a watch").
//!
//! Every visible move of the services table (a service appears, changes
//! or goes) gets the next *revision*, counted from 0 at the node's start.
//! Each start opens a new *epoch* (a random non-zero number), so a
//! revision from a previous run is never mistaken for one of this run. The
//! last `window` changes are kept; a subscription asking to resume from
//! (epoch, revision) gets the changes after it if they are all still held
//! ([`History::since`]), or a [`Gap`] saying why not (the caller then
//! sends a fresh snapshot and a reset).
//!
//! The supervisor records every move here in the same step as it routes
//! it, so the revision a subscriber sees at the end of its snapshot and
//! the revisions of the events that follow agree.

use std::{collections::VecDeque, sync::Arc};

use catalogue_proto::catalogue::EventKind;

use super::queue::Event;
use crate::services::Service;

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
    #[error("changes after revision {asked} are no longer held (oldest held: {oldest})")]
    Forgotten {
        /// The revision asked for.
        asked: u64,
        /// The oldest revision still held.
        oldest: u64,
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

/// The last `window` visible changes and the current revision.
#[derive(Debug)]
pub struct History {
    epoch: u64,
    revision: u64,
    window: usize,
    /// Changes with consecutive revisions, oldest first, ending at
    /// `revision`.
    changes: VecDeque<Event>,
}

impl History {
    /// An empty history of epoch `epoch` (0 is replaced by 1: 0 means "no
    /// revisions" on the wire) keeping `window` changes.
    pub fn new(epoch: u64, window: usize) -> Self {
        History {
            epoch: epoch.max(1),
            revision: 0,
            window,
            changes: VecDeque::new(),
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

    /// A visible change: numbers it with the next revision, keeps it
    /// (forgetting the oldest beyond the window) and returns it as an
    /// event to route.
    pub fn record(&mut self, kind: EventKind, service: Arc<Service>) -> Event {
        self.revision += 1;
        let event = Event {
            kind,
            service,
            revision: self.revision,
        };
        if self.window > 0 {
            if self.changes.len() == self.window {
                self.changes.pop_front();
            }
            self.changes.push_back(event.clone());
        }
        event
    }

    /// The changes after `from`, oldest first, if every one of them is
    /// still held; an empty iterator when `from` is the current position.
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
        let missing = self.revision - from.revision;
        if missing > self.changes.len() as u64 {
            return Err(Gap::Forgotten {
                asked: from.revision,
                oldest: self.revision + 1 - self.changes.len() as u64,
            });
        }
        // `missing` is at most the length, which is a usize.
        let skip = self.changes.len() - missing as usize;
        Ok(self.changes.iter().skip(skip))
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
            .map(|e| (e.revision, e.service.uri.clone()))
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
                oldest: 3
            })
        );
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
