//! The direct path of a subscription: while its actor has nothing queued,
//! the supervisor writes the subscription's live events straight into the
//! connection's outbound channel instead of sending the actor a message
//! per event. With a thousand subscriptions matching a change, that is a
//! thousand channel pushes rather than a thousand actor messages, wake-ups
//! and polls (the actor's mailbox was about a third of the node's samples
//! in the fan-out benchmark; docs/PERFORMANCE.md).
//!
//! Order is what makes this safe: a subscription's frames must leave in
//! the order the supervisor routed its changes, after its snapshot, and
//! never ahead of an event still in the actor's mailbox. One atomic word
//! holds an *open* bit, an *ended* bit and the number of messages the
//! supervisor has sent through the actor that the actor has not handled
//! yet:
//!
//! * the supervisor sends a message through the actor (an event it could
//!   not write directly, a snapshot, a replay, a rebase) only after
//!   [`DirectPath::via_actor`], which closes the path and counts it;
//! * the actor calls [`DirectPath::handled`] as it takes each such message
//!   and [`DirectPath::try_open`] when its queue is empty and it is live;
//!   the path opens only if no counted message is still on its way, so
//!   nothing written directly can overtake one;
//! * an event meets an open path and a full channel: the path closes and
//!   the event goes through the actor, whose queue (and overflow rule)
//!   take over until it has drained;
//! * [`DirectPath::end`] closes it for good (cancel, the actor's stop).
//!
//! The supervisor and a protocol connection's subscriptions share one
//! thread, so nothing can happen between the check and the write. An HTTP
//! watch's subscription runs on a worker thread: there a frame that was
//! being written directly as the watch ended may still be written, to a
//! stream that is closing.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{
    frame_writer::{Boxed, Grouped, Outbound},
    routed::SharedEvent,
};

/// The path is open: live events may be written directly.
const OPEN: u64 = 1 << 63;
/// The subscription has ended: the path never opens again.
const ENDED: u64 = 1 << 62;
/// Messages sent through the actor and not yet handled.
const PENDING: u64 = ENDED - 1;

/// Shared by a subscription's actor and the supervisor.
#[derive(Debug)]
pub struct DirectPath {
    state: AtomicU64,
    /// The client's id of the subscription.
    id: u64,
    /// Its connection's outbound frames.
    outbound: mpsc::Sender<Outbound>,
    /// Its client reads frames naming several subscriptions
    /// (`Subscribe.grouped`).
    grouped: bool,
}

/// What [`DirectPath::deliver`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Written to the connection's channel.
    Directly,
    /// Not written: send it through the actor (already counted).
    ViaActor,
}

impl DirectPath {
    /// A closed path for subscription `id` writing to `outbound`;
    /// `grouped` if its client reads frames naming several subscriptions.
    pub fn new(id: u64, outbound: mpsc::Sender<Outbound>, grouped: bool) -> Arc<Self> {
        Arc::new(DirectPath {
            state: AtomicU64::new(0),
            id,
            outbound,
            grouped,
        })
    }

    /// The client's id of the subscription.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its client reads grouped frames.
    pub fn grouped(&self) -> bool {
        self.grouped
    }

    /// Writes a change for several open, grouped paths of this path's
    /// connection as one frame, if the channel has room. On false the
    /// caller sends the change through each subscription's actor (after
    /// [`DirectPath::via_actor`] on each). The caller checked that every
    /// path named is open, on the supervisor's thread, where nothing can
    /// close them in between.
    pub fn deliver_group(&self, group: Grouped) -> bool {
        self.outbound
            .try_send(Outbound::Boxed(Box::new(Boxed::Group(group))))
            .is_ok()
    }

    /// Writes `event` directly if the path is open and the channel has
    /// room; otherwise closes the path, counts a message through the actor,
    /// and says so (the caller then sends it).
    pub fn deliver(&self, event: &Arc<SharedEvent>) -> Delivered {
        if self.state.load(Ordering::Acquire) & OPEN != 0 {
            let frame = Outbound::Event {
                subscription_id: self.id,
                event: Arc::clone(event),
            };
            match self.outbound.try_send(frame) {
                Ok(()) => return Delivered::Directly,
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {}
            }
        }
        self.via_actor();
        Delivered::ViaActor
    }

    /// Closes the path and counts one message the caller is about to send
    /// through the actor.
    pub fn via_actor(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !OPEN & !PENDING) | ((s & PENDING) + 1).min(PENDING))
            });
    }

    /// The actor took one message counted by [`DirectPath::via_actor`].
    pub fn handled(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !PENDING) | (s & PENDING).saturating_sub(1))
            });
    }

    /// Opens the path unless a counted message is still on its way or the
    /// subscription has ended; the actor calls this when it has nothing
    /// queued. True if the path is open afterwards.
    pub fn try_open(&self) -> bool {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                (s & (PENDING | ENDED) == 0).then_some(s | OPEN)
            })
            .is_ok()
    }

    /// Closes the path for good.
    pub fn end(&self) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s | ENDED) & !OPEN)
            });
    }

    /// The path is open.
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) & OPEN != 0
    }
}

#[cfg(test)]
mod tests;
