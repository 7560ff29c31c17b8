//! The slots of one URI in the services table: one per origin that
//! registered or deleted it, in origin order. Nearly every URI has a single
//! origin, so one slot is held inline and only a URI registered by several
//! origins allocates a vector: with 100,000 services this is most of what
//! the table spends per URI beyond the entry itself (docs/PERFORMANCE.md,
//! "Memory per service").
//!
//! A slot shares its live entry (`Arc<Service>`) with the read view, the
//! watch history and the events routed to subscribers; a tombstone, rare
//! and short-lived, is boxed so that a slot stays two words.

use std::sync::Arc;

use super::{Service, SharedStr, Tombstone};
use crate::hlc::Timestamp;

/// One origin's latest change of one URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Slot {
    Live(Arc<Service>),
    Dead(Box<Tombstone>),
}

impl Slot {
    pub(super) fn origin(&self) -> &SharedStr {
        match self {
            Slot::Live(s) => &s.origin,
            Slot::Dead(t) => &t.origin,
        }
    }

    pub(super) fn ts(&self) -> Timestamp {
        match self {
            Slot::Live(s) => s.ts,
            Slot::Dead(t) => t.ts,
        }
    }

    pub(super) fn live(&self) -> Option<&Arc<Service>> {
        match self {
            Slot::Live(s) => Some(s),
            Slot::Dead(_) => None,
        }
    }

    pub(super) fn dead(&self) -> Option<&Tombstone> {
        match self {
            Slot::Live(_) => None,
            Slot::Dead(t) => Some(t),
        }
    }
}

/// The slots of one URI, in origin order: none (only while the table
/// fills or purges them), one inline, or several in a vector.
#[derive(Debug, Default)]
pub(super) enum Slots {
    #[default]
    None,
    One(Slot),
    /// Boxed so that `Slots` stays the size of a slot (a vector is three
    /// words, its box one).
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Slot>>),
}

impl Slots {
    pub(super) fn as_slice(&self) -> &[Slot] {
        match self {
            Slots::None => &[],
            Slots::One(slot) => std::slice::from_ref(slot),
            Slots::Many(slots) => slots,
        }
    }

    pub(super) fn as_mut_slice(&mut self) -> &mut [Slot] {
        match self {
            Slots::None => &mut [],
            Slots::One(slot) => std::slice::from_mut(slot),
            Slots::Many(slots) => slots,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Inserts `slot` at `at`, shifting the slots after it.
    pub(super) fn insert(&mut self, at: usize, slot: Slot) {
        *self = match std::mem::take(self) {
            Slots::None => Slots::One(slot),
            Slots::One(held) => {
                let mut slots = Vec::with_capacity(2);
                slots.push(held);
                slots.insert(at, slot);
                Slots::Many(Box::new(slots))
            }
            Slots::Many(mut slots) => {
                slots.insert(at, slot);
                Slots::Many(slots)
            }
        };
    }

    /// Keeps the slots `keep` accepts, in order.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Slot) -> bool) {
        *self = match std::mem::take(self) {
            Slots::One(slot) if keep(&slot) => Slots::One(slot),
            Slots::None | Slots::One(_) => Slots::None,
            Slots::Many(mut slots) => {
                slots.retain(keep);
                if slots.len() > 1 {
                    Slots::Many(slots)
                } else {
                    slots.pop().map_or(Slots::None, Slots::One)
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(origin: &str) -> Slot {
        Slot::Live(Arc::new(Service {
            uri: "tcp://x".into(),
            attrs: Default::default(),
            origin: origin.into(),
            ts: Timestamp::default(),
        }))
    }

    fn origins(slots: &Slots) -> Vec<&str> {
        slots.as_slice().iter().map(|s| &**s.origin()).collect()
    }

    #[test]
    fn a_slot_is_two_words_and_so_are_the_slots_of_a_uri() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        assert_eq!(std::mem::size_of::<Slots>(), 16);
    }

    #[test]
    fn slots_grow_and_shrink_in_order() {
        let mut slots = Slots::default();
        assert!(slots.is_empty());
        slots.insert(0, live("n2"));
        assert!(matches!(slots, Slots::One(_)));
        slots.insert(0, live("n1"));
        slots.insert(2, live("n3"));
        assert_eq!(origins(&slots), ["n1", "n2", "n3"]);
        slots.retain(|s| &**s.origin() != "n2");
        assert_eq!(origins(&slots), ["n1", "n3"]);
        slots.retain(|s| &**s.origin() == "n3");
        assert!(matches!(slots, Slots::One(_)));
        assert_eq!(origins(&slots), ["n3"]);
        slots.retain(|_| false);
        assert!(slots.is_empty());
        assert!(matches!(slots, Slots::None));
    }
}
