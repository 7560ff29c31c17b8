//! Tests of the session state machine, two sessions wired back to back.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::{
    hlc::Timestamp,
    services::{Change, Service},
};

fn cfg(node: &str, peer: &str, role: Role, window: usize) -> SessionConfig {
    SessionConfig {
        node: node.into(),
        peer: peer.into(),
        role,
        window,
        batch_max_entries: 4,
        batch_delay_ms: 5,
        ack_timeout_ms: 1000,
        max_batch_entries: 100_000,
        max_uri: 2048,
    }
}

fn entry(i: u64) -> SyncEntry {
    SyncEntry::Service(Change::Add(Service {
        uri: format!("tcp://s:{i}").into(),
        attrs: BTreeMap::new(),
        origin: "a".into(),
        ts: Timestamp {
            physical_ms: i + 1,
            logical: 0,
        },
    }))
}

/// Two sessions and the frames in transit each way.
struct Wire {
    a: SyncSession,
    b: SyncSession,
    to_b: VecDeque<Frame>,
    to_a: VecDeque<Frame>,
    events_a: Vec<SessionEvent>,
    events_b: Vec<SessionEvent>,
    max_in_flight: usize,
}

impl Wire {
    fn new(window: usize) -> Wire {
        Wire {
            a: SyncSession::new(cfg("a", "b", Role::Connector, window), 1),
            b: SyncSession::new(cfg("b", "a", Role::Acceptor { assigned_id: 7 }, window), 2),
            to_b: VecDeque::new(),
            to_a: VecDeque::new(),
            events_a: vec![],
            events_b: vec![],
            max_in_flight: 0,
        }
    }

    /// Delivers frames until none are in transit; answers Registered and
    /// PeerDigest like a driver would (empty digests, `initial` batches).
    fn run(&mut self, initial_a: &Batch, initial_b: &Batch) {
        while !(self.to_a.is_empty() && self.to_b.is_empty()) {
            self.max_in_flight = self
                .max_in_flight
                .max(self.a.unacked())
                .max(self.b.unacked());
            if let Some(f) = self.to_b.pop_front() {
                let (out, events) = self.b.on_frame(f, 0);
                self.to_a.extend(out);
                for e in events {
                    let out = match &e {
                        SessionEvent::Registered => self.b.send_digest(&Digest::default(), 0),
                        SessionEvent::PeerDigest(_) => self.b.send_initial(initial_b.clone(), 0),
                        _ => vec![],
                    };
                    self.to_a.extend(out);
                    self.events_b.push(e);
                }
            }
            if let Some(f) = self.to_a.pop_front() {
                let (out, events) = self.a.on_frame(f, 0);
                self.to_b.extend(out);
                for e in events {
                    let out = match &e {
                        SessionEvent::Registered => self.a.send_digest(&Digest::default(), 0),
                        SessionEvent::PeerDigest(_) => self.a.send_initial(initial_a.clone(), 0),
                        _ => vec![],
                    };
                    self.to_b.extend(out);
                    self.events_a.push(e);
                }
            }
            if self.to_a.is_empty() && self.to_b.is_empty() {
                // Flush pending acks, as the driver's timer would.
                self.to_b.extend(self.a.tick(0));
                self.to_a.extend(self.b.tick(0));
            }
        }
    }
}

fn batch(n: u64) -> Batch {
    Batch {
        entries: (0..n).map(entry).collect(),
        ..Batch::default()
    }
}

fn received(events: &[SessionEvent]) -> Vec<(usize, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Batch { batch, initial } => Some((batch.entries.len(), *initial)),
            _ => None,
        })
        .collect()
}

#[test]
fn handshake_digests_and_initial_batches_complete_both_ways() {
    let mut w = Wire::new(64);
    let hello = w.a.start(0);
    assert!(matches!(hello[0].body, Some(Body::Hello(_))));
    assert_eq!(hello[0].src, None, "NOID before the welcome");
    w.to_b.extend(hello);
    w.run(&batch(3), &batch(0));
    assert_eq!(received(&w.events_b), [(3, true)]);
    assert_eq!(received(&w.events_a), [(0, true)]);
    assert!(w.events_a.contains(&SessionEvent::InitialSyncDone {
        sent: 3,
        received: 0
    }));
    assert!(w.events_b.contains(&SessionEvent::InitialSyncDone {
        sent: 0,
        received: 3
    }));
    assert_eq!(w.a.unacked(), 0);
    assert_eq!(w.b.unacked(), 0);
    assert_eq!(w.a.my_id, Some(7), "the connector learned its id");
}

#[test]
fn the_window_bounds_frames_in_flight() {
    let mut w = Wire::new(3);
    let hello = w.a.start(0);
    w.to_b.extend(hello);
    w.run(&batch(50), &batch(0));
    assert_eq!(received(&w.events_b), [(50, true)]);
    assert!(w.max_in_flight <= 3, "max in flight {}", w.max_in_flight);
}

#[test]
fn steady_state_changes_are_batched_by_size_and_delay() {
    let mut w = Wire::new(64);
    let hello = w.a.start(0);
    w.to_b.extend(hello);
    w.run(&batch(0), &batch(0));
    // Four entries (batch_max_entries) go out at once.
    let out =
        w.a.queue_changes((10..14).map(entry).collect(), vec![], 100);
    assert!(!out.is_empty());
    w.to_b.extend(out);
    // One more waits for the delay.
    assert!(w.a.queue_changes(vec![entry(20)], vec![], 100).is_empty());
    assert!(
        w.a.tick(102)
            .iter()
            .all(|f| matches!(f.body, Some(Body::Ack(_))))
    );
    w.to_b.extend(w.a.tick(105));
    w.run(&batch(0), &batch(0));
    assert_eq!(received(&w.events_b), [(0, true), (4, false), (1, false)]);
}

#[test]
fn completeness_marks_travel_with_the_last_batch_of_their_changes() {
    let mut w = Wire::new(64);
    let hello = w.a.start(0);
    w.to_b.extend(hello);
    w.run(&batch(0), &batch(0));
    let mark = |ms| crate::sync::digest::Mark {
        origin: "n9".to_string(),
        complete: crate::hlc::Timestamp::new(ms, 0),
        born: crate::hlc::Timestamp::new(1, 0),
        purged: crate::hlc::Timestamp::default(),
    };
    // Three changes on an idle link go at once with their mark; three more
    // gather while that batch is unacknowledged, and go with the greatest
    // of their marks.
    let mut out =
        w.a.queue_changes((0..3).map(entry).collect(), vec![mark(5)], 0);
    out.extend(w.a.queue_changes((3..5).map(entry).collect(), vec![mark(7)], 0));
    out.extend(w.a.queue_changes(vec![entry(5)], vec![mark(9)], 0));
    out.extend(w.a.flush(0));
    w.to_b.extend(out);
    w.run(&batch(0), &batch(0));
    let marks: Vec<_> = w
        .events_b
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Batch {
                batch,
                initial: false,
            } => Some((batch.entries.len(), batch.marks.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(marks, [(3, vec![mark(5)]), (3, vec![mark(9)])]);
}

#[test]
fn duplicates_are_ignored_and_unacked_frames_are_retransmitted() {
    let mut w = Wire::new(64);
    let hello = w.a.start(0);
    w.to_b.extend(hello);
    w.run(&batch(0), &batch(0));
    let frames = w.a.queue_changes((0..4).map(entry).collect(), vec![], 0);
    // Deliver the batch twice: the second copy is all duplicates.
    for f in frames.iter().cloned().chain(frames.iter().cloned()) {
        let (_, events) = w.b.on_frame(f, 0);
        for e in events {
            w.events_b.push(e);
        }
    }
    assert_eq!(received(&w.events_b), [(0, true), (4, false)]);
    assert_eq!(w.b.counters().duplicates, frames.len() as u64);
    // Nothing acknowledged the batch on a's side: after the timeout it is resent.
    assert!(w.a.unacked() > 0);
    let resent = w.a.tick(1000);
    assert_eq!(
        resent
            .iter()
            .filter(|f| !matches!(f.body, Some(Body::Ack(_))))
            .count(),
        frames.len()
    );
    assert_eq!(resent[0].serial, frames[0].serial, "same serials");
    assert_eq!(w.a.counters().retransmits, frames.len() as u64);
}

fn opened() -> SyncSession {
    let mut w = Wire::new(64);
    let hello = w.a.start(0);
    w.to_b.extend(hello);
    w.run(&batch(0), &batch(0));
    w.b
}

fn frame(serial: u64, body: Body) -> Frame {
    Frame::new(serial, body)
}

#[test]
fn batches_that_do_not_match_their_lock_are_protocol_errors() {
    let mut b = opened();
    let lock = Body::Lock(Lock {
        batch: 9,
        services: vec!["tcp://s:0".into()],
        links: vec![],
        ..Lock::default()
    });
    let (_, events) = b.on_frame(frame(100, lock), 0);
    assert!(events.is_empty());
    let (_, events) = b.on_frame(frame(101, entry(5).to_body()), 0);
    assert!(
        matches!(&events[..], [SessionEvent::ProtocolError(m)] if m.contains("not announced")),
        "{events:?}"
    );
    let (_, events) = b.on_frame(frame(102, entry(0).to_body()), 0);
    assert!(events.is_empty());
    let unlock = Body::UnlockAll(UnlockAll {
        batch: 9,
        entries: 2,
    });
    let (_, events) = b.on_frame(frame(103, unlock), 0);
    assert!(
        matches!(&events[..], [SessionEvent::ProtocolError(_)]),
        "{events:?}"
    );
    let (_, events) = b.on_frame(frame(104, entry(0).to_body()), 0);
    assert!(
        matches!(&events[..], [SessionEvent::ProtocolError(m)] if m.contains("outside")),
        "{events:?}"
    );
}
