//! The bounded queue of one subscription, as a plain state machine.
//!
//! A subscription receives the node's events (already matched against its
//! regex) and snapshots, and hands frames, one at a time, to whoever drains
//! it toward the client. It holds at most `limit` pending events; when one
//! more arrives it *overflows*: the pending events are dropped and an
//! `Overflow` notice takes their place. Then, with the `resnapshot` policy, it
//! asks for a fresh snapshot only once that notice has been drained, that is
//! once the client reads again, so a client that never reads costs a few
//! bytes and no work; with the `drop` policy it is cancelled.
//!
//! States: `AwaitingSnapshot` (events are dropped: the snapshot that is on
//! its way already contains them) -> `Live` (events queue) -> on overflow
//! `NeedSnapshot` (notice pending; events dropped) -> once drained
//! `AwaitingSnapshot` again; or `Cancelled` for the drop policy.
//!
//! A subscription that asked to resume from a position of the node's
//! [`super::history`] leaves `AwaitingSnapshot` with a *replay* (the
//! changes since that position, then a `SnapshotEnd` marked `resumed`)
//! instead of a snapshot; one whose position could not be honoured gets a
//! snapshot whose `SnapshotEnd` is marked `reset`. Every event carries its
//! revision, and every `SnapshotEnd` the position it brings the client to.

use std::{collections::VecDeque, sync::Arc};

use catalogue_proto::{
    Body,
    catalogue::{EventKind, Overflow, SnapshotEnd},
};

use super::history::Position;
use crate::frame_writer::Outbound;
pub use crate::routed::Event;
use crate::{
    routed::{SharedEvent, service_event},
    services::Service,
    settings::OverflowPolicy,
};

/// Room an empty queue keeps (items); beyond it, room is given back
/// once the queue has drained.
pub const KEPT_CAPACITY: usize = 8;

/// How a snapshot or replay ends: the `SnapshotEnd` that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct End {
    /// Services in the snapshot, or changes replayed.
    count: u64,
    /// Where the client stands once it has read this far.
    at: Position,
    /// A replay, not a snapshot.
    resumed: bool,
    /// A snapshot replacing a position that could not be resumed.
    reset: bool,
}

/// Where the subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A snapshot has been asked for and not yet received.
    AwaitingSnapshot,
    /// Snapshot received; events queue.
    Live,
    /// Overflowed; a snapshot will be asked for once the queue drains.
    NeedSnapshot,
    /// Overflowed under the drop policy; ends once the queue drains.
    Cancelled,
}

/// What [`SubscriptionQueue::on_event`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Queued for the client.
    Queued,
    /// Dropped because a snapshot is pending or due (it will be covered).
    Dropped,
    /// This event overflowed the queue; `dropped` events were discarded.
    Overflowed {
        /// Events discarded, this one included.
        dropped: u64,
    },
}

/// What is queued: snapshot entries are kept as services and turned into
/// frames only when sent.
#[derive(Debug)]
enum Item {
    /// A live change, shared with the other subscriptions it matches.
    Event(Arc<SharedEvent>),
    /// A snapshot entry and the snapshot's revision.
    Snapshot(Arc<Service>, u64),
    /// A replayed change (not counted against the limit, like snapshot
    /// entries: the history window bounds them).
    Replayed(Event),
    SnapshotEnd(End),
    Overflow {
        dropped: u64,
        resnapshot: bool,
    },
}

/// The queue and overflow state of one subscription.
#[derive(Debug)]
pub struct SubscriptionQueue {
    id: u64,
    limit: usize,
    policy: OverflowPolicy,
    state: State,
    items: VecDeque<Item>,
    /// Events (not snapshot entries) in `items`: what the limit counts.
    events: usize,
}

impl SubscriptionQueue {
    /// A new subscription with client id `id`, waiting for its first
    /// snapshot.
    pub fn new(id: u64, limit: usize, policy: OverflowPolicy) -> Self {
        SubscriptionQueue {
            id,
            limit: limit.max(1),
            policy,
            state: State::AwaitingSnapshot,
            items: VecDeque::new(),
            events: 0,
        }
    }

    /// The client's id of this subscription.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Frames waiting to be sent (snapshot entries included).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Events (not snapshot entries) waiting to be sent.
    pub fn pending_events(&self) -> usize {
        self.events
    }

    /// A matching change happened.
    pub fn on_event(&mut self, event: impl Into<Arc<SharedEvent>>) -> Outcome {
        match self.state {
            State::AwaitingSnapshot | State::NeedSnapshot | State::Cancelled => Outcome::Dropped,
            State::Live if self.events < self.limit => {
                self.items.push_back(Item::Event(event.into()));
                self.events += 1;
                Outcome::Queued
            }
            State::Live => {
                let dropped = self.events as u64 + 1;
                // Queued events and snapshot entries are stale alike; only
                // an earlier, unsent notice stays.
                self.items.retain(|i| matches!(i, Item::Overflow { .. }));
                self.events = 0;
                let resnapshot = self.policy == OverflowPolicy::Resnapshot;
                self.items.push_back(Item::Overflow {
                    dropped,
                    resnapshot,
                });
                self.state = if resnapshot {
                    State::NeedSnapshot
                } else {
                    State::Cancelled
                };
                Outcome::Overflowed { dropped }
            }
        }
    }

    /// The snapshot asked for arrived: every service matching at the moment
    /// the node took it, at position `at`; `reset` when it answers a resume
    /// the node could not honour. Ignored unless one was awaited.
    pub fn on_snapshot(&mut self, services: Vec<Arc<Service>>, at: Position, reset: bool) {
        if self.state != State::AwaitingSnapshot {
            return;
        }
        self.push_snapshot(services, at, reset);
        self.state = State::Live;
    }

    /// The changes since the position this subscription asked to resume
    /// from, matching its regex, oldest first; the node is now at `at`.
    /// Ignored unless a snapshot was awaited.
    pub fn on_replay(&mut self, events: Vec<Event>, at: Position) {
        if self.state != State::AwaitingSnapshot {
            return;
        }
        let count = events.len() as u64;
        self.items.extend(events.into_iter().map(Item::Replayed));
        self.items.push_back(Item::SnapshotEnd(End {
            count,
            at,
            resumed: true,
            reset: false,
        }));
        self.state = State::Live;
    }

    fn push_snapshot(&mut self, services: Vec<Arc<Service>>, at: Position, reset: bool) {
        let count = services.len() as u64;
        self.items
            .extend(services.into_iter().map(|s| Item::Snapshot(s, at.revision)));
        self.items.push_back(Item::SnapshotEnd(End {
            count,
            at,
            resumed: false,
            reset,
        }));
    }

    /// A change too large to send event by event (a big batch from a peer):
    /// a fresh snapshot replaces whatever events were still queued. Ignored
    /// while a snapshot is awaited or due (that one will be fresh) or after
    /// cancellation.
    pub fn on_rebase(&mut self, services: Vec<Arc<Service>>, at: Position) {
        if self.state != State::Live {
            return;
        }
        self.items.retain(|i| matches!(i, Item::Overflow { .. }));
        self.events = 0;
        self.push_snapshot(services, at, false);
    }

    /// True when the queue has drained after an overflow and a fresh
    /// snapshot should be asked for now. The caller asks, then calls
    /// [`SubscriptionQueue::snapshot_requested`].
    pub fn wants_snapshot(&self) -> bool {
        self.state == State::NeedSnapshot && self.items.is_empty()
    }

    /// The caller has asked for a snapshot.
    pub fn snapshot_requested(&mut self) {
        if self.state == State::NeedSnapshot {
            self.state = State::AwaitingSnapshot;
        }
    }

    /// True when the subscription has ended (drop policy) and everything,
    /// the overflow notice included, has been sent.
    pub fn finished(&self) -> bool {
        self.state == State::Cancelled && self.items.is_empty()
    }

    /// The next frame body to send toward the client (see
    /// [`SubscriptionQueue::next_outbound`]).
    pub fn next_body(&mut self) -> Option<Body> {
        self.next_outbound().map(Outbound::into_body)
    }

    /// The next frame to send toward the client: a live change as a
    /// reference to the shared event (encoded once for all subscriptions),
    /// anything else as its body. Once the queue is empty it gives back the
    /// room a burst (a snapshot, a slow client) made it grow to, keeping a
    /// little for the next events.
    pub fn next_outbound(&mut self) -> Option<Outbound> {
        let item = self.items.pop_front()?;
        if self.items.is_empty() && self.items.capacity() > KEPT_CAPACITY {
            self.items.shrink_to(KEPT_CAPACITY);
        }
        Some(Outbound::from(match item {
            Item::Event(event) => {
                self.events -= 1;
                return Some(Outbound::Event {
                    subscription_id: self.id,
                    event,
                });
            }
            Item::Replayed(e) => Body::ServiceEvent(service_event(
                self.id, e.kind, &e.service, false, e.revision,
            )),
            Item::Snapshot(service, revision) => Body::ServiceEvent(service_event(
                self.id,
                EventKind::Added,
                &service,
                true,
                revision,
            )),
            Item::SnapshotEnd(end) => Body::SnapshotEnd(SnapshotEnd {
                subscription_id: self.id,
                count: end.count,
                position: Some(end.at.into()),
                resumed: end.resumed,
                reset: end.reset,
            }),
            Item::Overflow {
                dropped,
                resnapshot,
            } => Body::Overflow(Overflow {
                subscription_id: self.id,
                dropped,
                resnapshot,
            }),
        }))
    }
}

#[cfg(test)]
mod tests;
