//! The requests of one connection that are read but not yet answered, in
//! the order they were read, as plain code.
//!
//! A connection reads up to `limits.requests_in_flight` requests ahead:
//! each takes a place at the back ([`Pipeline::push_waiting`], or
//! [`Pipeline::push_done`] when its answer is known at once); an answer
//! that comes later (from the supervisor) fills its place by sequence
//! number ([`Pipeline::fill`]), in whatever order the answers arrive.
//! Answers leave from the front only ([`Pipeline::pop_ready`]), so the
//! client gets its replies in request order (docs/PROTOCOL.md §3) and the
//! connection applies their effects in that order too.
//!
//! The bound itself is a semaphore in the connection (a permit per place);
//! this type only keeps the order.

use std::collections::VecDeque;

/// A place in the pipeline: a request's sequence number.
pub type Seq = u64;

/// The unanswered requests of a connection, oldest first.
#[derive(Debug)]
pub struct Pipeline<A> {
    /// Sequence number of the front place.
    front: Seq,
    /// One entry per place: its answer once known.
    places: VecDeque<Option<A>>,
}

impl<A> Default for Pipeline<A> {
    fn default() -> Self {
        Pipeline {
            front: 0,
            places: VecDeque::new(),
        }
    }
}

impl<A> Pipeline<A> {
    /// A place whose answer comes later; fill it with [`Pipeline::fill`].
    pub fn push_waiting(&mut self) -> Seq {
        self.places.push_back(None);
        self.front + self.places.len() as Seq - 1
    }

    /// A place answered at once.
    pub fn push_done(&mut self, answer: A) -> Seq {
        self.places.push_back(Some(answer));
        self.front + self.places.len() as Seq - 1
    }

    /// The answer of place `seq`. Returns it back when `seq` is not a
    /// waiting place (already answered, or never given out).
    pub fn fill(&mut self, seq: Seq, answer: A) -> Result<(), A> {
        let Some(index) = seq
            .checked_sub(self.front)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return Err(answer);
        };
        match self.places.get_mut(index) {
            Some(place @ None) => {
                *place = Some(answer);
                Ok(())
            }
            _ => Err(answer),
        }
    }

    /// The front answer, if it is known.
    pub fn pop_ready(&mut self) -> Option<A> {
        if !matches!(self.places.front(), Some(Some(_))) {
            return None;
        }
        self.front += 1;
        self.places.pop_front().flatten()
    }

    /// Places taken (answered or not, but not yet popped).
    pub fn len(&self) -> usize {
        self.places.len()
    }

    /// True when every request read has left.
    pub fn is_empty(&self) -> bool {
        self.places.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_leave_in_request_order_whatever_order_they_come_in() {
        let mut p = Pipeline::default();
        let a = p.push_waiting();
        let b = p.push_waiting();
        p.push_done("c");
        assert_eq!(p.pop_ready(), None, "a is not answered");
        p.fill(b, "b").expect("b waits");
        assert_eq!(p.pop_ready(), None, "still waiting for a");
        p.fill(a, "a").expect("a waits");
        assert_eq!(p.pop_ready(), Some("a"));
        assert_eq!(p.pop_ready(), Some("b"));
        assert_eq!(p.pop_ready(), Some("c"));
        assert_eq!(p.pop_ready(), None);
        assert!(p.is_empty());
    }

    #[test]
    fn sequence_numbers_go_on_after_places_leave() {
        let mut p = Pipeline::default();
        for i in 0..5 {
            let seq = p.push_waiting();
            assert_eq!(seq, i);
            p.fill(seq, i).expect("waiting");
            assert_eq!(p.pop_ready(), Some(i));
        }
        let late = p.push_waiting();
        assert_eq!(late, 5);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn a_place_is_filled_once() {
        let mut p = Pipeline::default();
        let a = p.push_waiting();
        p.fill(a, 1).expect("first");
        assert_eq!(p.fill(a, 2), Err(2), "already answered");
        assert_eq!(p.fill(a + 7, 3), Err(3), "never given out");
        assert_eq!(p.pop_ready(), Some(1));
        assert_eq!(p.fill(a, 4), Err(4), "gone");
    }
}
