//! Fuzz target: arbitrary sequences of frames, ticks and local changes
//! through the sync session of one peer link (`sync::session`).
//!
//! The input, read with `arbitrary`, picks the session's role and window
//! and a list of steps. Most frames are built from a small vocabulary (the
//! two node names, a few URIs, batch numbers and counts near the right
//! ones, serials that usually follow on) so that the fuzzer gets through
//! Hello, Register, digests and Lock/entries/UnlockAll; some are arbitrary
//! `Frame`s. Behind the session stands the node's real replication
//! `Driver` (the code the supervisor runs), holding the input's initial
//! registrations: the harness answers `Registered` with its digest and
//! `PeerDigest` with its plan, hands it every batch and the end of the
//! initial sync, and carries out what it says to send to this peer, as the
//! `PeerLink` actor and the supervisor do. It stops at the first
//! `ProtocolError`, where the actor closes the link.
//!
//! Nothing may panic, and these invariants must hold after every step:
//! - an `Ack` the session sends never acknowledges a serial the peer did
//!   not send (keepalives before anything arrived ack 0);
//! - a serial the session sends again carries the same frame (a
//!   retransmit), and every other serial is above all serials sent before;
//! - at most `window` frames are unacknowledged;
//! - `Registered`, `PeerDigest`, an initial batch and `InitialSyncDone`
//!   each happen at most once, and `InitialSyncDone` only after our
//!   initial batch was sent and the peer's received;
//! - a delivered batch holds as many entries as its `UnlockAll` says, at
//!   most `max_batch_entries`, and counters never exceed what was seen.

#![no_main]

use std::collections::{BTreeMap, HashMap};

use arbitrary::Arbitrary;
use catalogue_actors::{
    hlc::{Hlc, ManualClock},
    sync::{
        driver::{Driver, DriverConfig, Effects, Outgoing},
        entry::SyncEntry,
        replica::Batch,
        session::{Role, SessionConfig, SessionEvent, SyncSession},
    },
};
use catalogue_proto::{
    Body, Frame,
    catalogue::{
        Ack, Hello, LinkAdd, LinkDelete, LinkKey, Lock, Register, ServiceAdd, ServiceDelete,
        SyncWelcome, Timestamp, UnlockAll, UpdTree,
    },
};
use libfuzzer_sys::fuzz_target;

const ME: &str = "node-a";
const PEER: &str = "node-b";
const MAX_BATCH: usize = 8;

/// A name: ours, the peer's, or something else.
#[derive(Debug, Arbitrary, Clone, Copy)]
enum Name {
    Me,
    Peer,
    Other,
    Bad,
}

impl Name {
    fn get(self) -> String {
        match self {
            Name::Me => ME.into(),
            Name::Peer => PEER.into(),
            Name::Other => "node-c".into(),
            Name::Bad => "not a name!".into(),
        }
    }
}

/// A URI out of a few, one of them invalid.
fn uri(i: u8) -> String {
    match i % 6 {
        5 => "no uri".into(),
        n => format!("tcp://svc-{n}:1"),
    }
}

fn ts(ms: u8) -> Option<Timestamp> {
    Some(Timestamp {
        physical_ms: u64::from(ms),
        logical: 0,
    })
}

/// A body from the session's vocabulary.
#[derive(Debug, Arbitrary)]
enum Msg {
    Hello(Name),
    SyncWelcome(Name, Name, u8),
    Register(Name),
    UpdTree,
    Lock {
        batch: u8,
        uris: Vec<u8>,
        links: Vec<(Name, Name)>,
    },
    ServiceAdd(u8, Name, u8),
    ServiceDelete(u8, Name, u8),
    LinkAdd(Name, Name, Name, u8),
    LinkDelete(Name, Name, Name, u8),
    UnlockAll {
        batch: u8,
        entries: u8,
    },
    Ack(u8),
}

impl Msg {
    fn body(self) -> Body {
        let link = |a: Name, b: Name| LinkKey {
            a: a.get(),
            b: b.get(),
        };
        match self {
            Msg::Hello(n) => Body::Hello(Hello { name: n.get() }),
            Msg::SyncWelcome(m, t, id) => Body::SyncWelcome(SyncWelcome {
                my_name: m.get(),
                to_name: t.get(),
                assigned_id: u32::from(id),
            }),
            Msg::Register(n) => Body::Register(Register { name: n.get() }),
            Msg::UpdTree => Body::UpdTree(UpdTree::default()),
            Msg::Lock { batch, uris, links } => Body::Lock(Lock {
                batch: u64::from(batch % 4),
                services: uris.into_iter().map(uri).collect(),
                links: links.into_iter().map(|(a, b)| link(a, b)).collect(),
                replace_origins: vec![],
                replace_as_of: vec![],
                marks: vec![],
            }),
            Msg::ServiceAdd(u, o, t) => Body::ServiceAdd(ServiceAdd {
                uri: uri(u),
                attrs: BTreeMap::new(),
                origin: o.get(),
                ts: ts(t),
            }),
            Msg::ServiceDelete(u, o, t) => Body::ServiceDelete(ServiceDelete {
                uri: uri(u),
                origin: o.get(),
                ts: ts(t),
            }),
            Msg::LinkAdd(a, b, o, t) => Body::LinkAdd(LinkAdd {
                a: a.get(),
                b: b.get(),
                ts: ts(t),
                origin: o.get(),
            }),
            Msg::LinkDelete(a, b, o, t) => Body::LinkDelete(LinkDelete {
                a: a.get(),
                b: b.get(),
                ts: ts(t),
                origin: o.get(),
            }),
            Msg::UnlockAll { batch, entries } => Body::UnlockAll(UnlockAll {
                batch: u64::from(batch % 4),
                entries: u32::from(entries % 16),
            }),
            Msg::Ack(back) => Body::Ack(Ack {
                ack_serial: u64::from(back),
            }),
        }
    }
}

/// What the serial of a frame from the peer is.
#[derive(Debug, Arbitrary)]
enum Serial {
    Next,
    Repeat,
    Raw(u64),
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// A frame from the vocabulary.
    Frame(Serial, Msg),
    /// An `Ack` of one of the serials we sent (the index counts back
    /// from the newest).
    AckOurs(u8),
    /// Any frame at all.
    Raw(Frame),
    /// Time passes.
    Tick(u16),
    /// Local changes to send.
    Changes(Vec<(u8, u8)>),
    /// A batch forwarded from another peer.
    Forward(Vec<(u8, u8)>),
    /// Flush before closing.
    Flush,
    /// An idle link's keepalive.
    Keepalive,
}

#[derive(Debug, Arbitrary)]
struct Input {
    acceptor: bool,
    window: u8,
    first_serial: u16,
    initial: Vec<(u8, u8)>,
    steps: Vec<Step>,
}

fn entries(specs: &[(u8, u8)]) -> Vec<SyncEntry> {
    specs
        .iter()
        .filter_map(|&(u, t)| {
            let body = Body::ServiceAdd(ServiceAdd {
                uri: uri(u),
                attrs: BTreeMap::new(),
                origin: ME.into(),
                ts: ts(t),
            });
            SyncEntry::from_body(body, 2048).ok()
        })
        .collect()
}

/// What the harness saw, to check the session against.
#[derive(Default)]
struct Seen {
    /// Highest serial of a non-Ack frame with a body the peer sent.
    peer_highest: Option<u64>,
    /// Every frame the session sent, by serial.
    sent: HashMap<u64, Frame>,
    /// Highest serial the session sent.
    sent_highest: Option<u64>,
    /// Our frames, newest last (for `AckOurs`).
    sent_order: Vec<u64>,
    registered: bool,
    peer_digest: bool,
    initial_sent: bool,
    initial_received: bool,
    initial_done: bool,
    unlocks_delivered: u64,
    entry_frames_delivered: u64,
}

struct Harness {
    session: SyncSession,
    window: usize,
    driver: Driver<ManualClock>,
    clock: ManualClock,
    /// Entries of the initial batch the driver planned.
    initial_len: Option<usize>,
    now: u64,
    seen: Seen,
    closed: bool,
}

impl Harness {
    fn sent(&mut self, frames: Vec<Frame>) {
        for f in frames {
            if let Some(Body::Ack(a)) = &f.body {
                let limit = self.seen.peer_highest.unwrap_or(0);
                assert!(
                    a.ack_serial <= limit,
                    "acked serial {} but the peer sent at most {limit}",
                    a.ack_serial
                );
            }
            if let Some(old) = self.seen.sent.get(&f.serial) {
                assert_eq!(old, &f, "serial {} reused for another frame", f.serial);
            } else {
                assert!(
                    self.seen.sent_highest.is_none_or(|h| f.serial > h),
                    "serial {} after {:?}",
                    f.serial,
                    self.seen.sent_highest
                );
                self.seen.sent_highest = Some(f.serial);
                self.seen.sent_order.push(f.serial);
                self.seen.sent.insert(f.serial, f);
            }
        }
        assert!(self.session.unacked() <= self.window);
    }

    fn events(&mut self, events: Vec<SessionEvent>, unlock_count: Option<u32>) {
        for event in events {
            match event {
                SessionEvent::Registered => {
                    assert!(!self.seen.registered, "registered twice");
                    self.seen.registered = true;
                    let digest = self.driver.digest();
                    let frames = self.session.send_digest(&digest, self.now);
                    self.sent(frames);
                }
                SessionEvent::PeerDigest(digest) => {
                    assert!(self.seen.registered, "digest before Register");
                    assert!(!self.seen.peer_digest, "two digests");
                    self.seen.peer_digest = true;
                    let batch = self.driver.plan(PEER, &digest);
                    self.initial_len = Some(batch.entries.len());
                    let frames = self.session.send_initial(batch, self.now);
                    self.seen.initial_sent = true;
                    self.sent(frames);
                }
                SessionEvent::Batch { batch, initial } => {
                    assert_eq!(
                        Some(batch.entries.len()),
                        unlock_count.map(|n| n as usize),
                        "a batch is delivered at its UnlockAll, with its count"
                    );
                    assert!(batch.entries.len() <= MAX_BATCH);
                    if initial {
                        assert!(self.seen.peer_digest, "initial batch before the digest");
                        assert!(!self.seen.initial_received, "two initial batches");
                        self.seen.initial_received = true;
                    }
                    let fx = self.driver.peer_batch(PEER, batch, initial);
                    self.carry_out(fx);
                }
                SessionEvent::InitialSyncDone { sent, received } => {
                    assert!(!self.seen.initial_done, "initial sync done twice");
                    assert!(self.seen.initial_sent && self.seen.initial_received);
                    assert_eq!(Some(sent), self.initial_len);
                    let _ = received;
                    self.seen.initial_done = true;
                    let fx = self.driver.link_synced(PEER);
                    self.carry_out(fx);
                }
                SessionEvent::ProtocolError(_) => {
                    // The PeerLink actor closes the link here.
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Does what the driver says for this link, as the supervisor and the
    /// `PeerLink` actor do (grace periods end at once).
    fn carry_out(&mut self, fx: Effects) {
        for (to, what) in fx.sends {
            if !to.includes(PEER) {
                continue;
            }
            let frames = match what {
                Outgoing::Changes { entries, marks } => {
                    self.session.queue_changes(entries, marks, self.now)
                }
                Outgoing::Batch(batch) => self.session.send_batch(batch, self.now),
                Outgoing::Error(e) => vec![self.session.unacknowledged(Body::Error(e))],
            };
            self.sent(frames);
        }
        for timer in fx.timers {
            let fx = self.driver.grace_over(&timer);
            self.carry_out(fx);
        }
    }

    fn deliver(&mut self, frame: Frame) {
        let unlock = match &frame.body {
            Some(Body::UnlockAll(u)) => Some(u.entries),
            _ => None,
        };
        match &frame.body {
            // The PeerLink actor handles these itself, as here.
            Some(Body::Bye(_)) => {
                self.closed = true;
                return;
            }
            Some(Body::Error(_)) | None => return,
            Some(Body::Ack(_)) => {}
            Some(body) => {
                self.seen.peer_highest = self.seen.peer_highest.max(Some(frame.serial));
                if unlock.is_some() {
                    self.seen.unlocks_delivered += 1;
                }
                if matches!(
                    body,
                    Body::ServiceAdd(_)
                        | Body::ServiceDelete(_)
                        | Body::LinkAdd(_)
                        | Body::LinkDelete(_)
                ) {
                    self.seen.entry_frames_delivered += 1;
                }
            }
        }
        let (frames, events) = self.session.on_frame(frame, self.now);
        self.sent(frames);
        self.events(events, unlock);
        let c = self.session.counters();
        assert!(c.batches_received <= self.seen.unlocks_delivered);
        assert!(c.entries_received <= self.seen.entry_frames_delivered);
    }
}

fuzz_target!(|input: Input| {
    let window = usize::from(input.window % 8).max(1);
    let role = if input.acceptor {
        Role::Acceptor { assigned_id: 3 }
    } else {
        Role::Connector
    };
    let cfg = SessionConfig {
        node: ME.into(),
        peer: PEER.into(),
        role,
        window,
        batch_max_entries: 4,
        batch_delay_ms: 5,
        ack_timeout_ms: 100,
        max_batch_entries: MAX_BATCH,
        max_uri: 2048,
    };
    let clock = ManualClock::new(1_000);
    let mut driver = Driver::new(
        ME,
        Hlc::new(clock.clone(), std::time::Duration::from_secs(5)),
        DriverConfig {
            tombstone_ttl: std::time::Duration::from_millis(50),
        },
    );
    for e in entries(&input.initial) {
        let _ = driver.register(e.key(), BTreeMap::new());
    }
    driver.link_connected(PEER);
    let mut h = Harness {
        session: SyncSession::new(cfg, u64::from(input.first_serial)),
        window,
        driver,
        clock,
        initial_len: None,
        now: 1_000,
        seen: Seen::default(),
        closed: false,
    };
    let frames = h.session.start(h.now);
    h.sent(frames);
    let mut peer_serial: u64 = 0;
    for step in input.steps {
        if h.closed {
            break;
        }
        match step {
            Step::Frame(serial, msg) => {
                let serial = match serial {
                    Serial::Next => {
                        peer_serial = peer_serial.saturating_add(1);
                        peer_serial
                    }
                    Serial::Repeat => peer_serial,
                    Serial::Raw(s) => {
                        peer_serial = peer_serial.max(s);
                        s
                    }
                };
                h.deliver(Frame {
                    serial,
                    src: Some(if input.acceptor { 3 } else { 0 }),
                    dst: None,
                    body: Some(msg.body()),
                });
            }
            Step::AckOurs(back) => {
                let order = &h.seen.sent_order;
                if let Some(&serial) = order
                    .len()
                    .checked_sub(1 + usize::from(back))
                    .map(|i| &order[i])
                {
                    h.deliver(Frame::new(0, Body::Ack(Ack { ack_serial: serial })));
                }
            }
            Step::Raw(frame) => {
                peer_serial = peer_serial.max(frame.serial);
                h.deliver(frame);
            }
            Step::Tick(ms) => {
                h.now += u64::from(ms);
                h.clock.set(h.now);
                h.driver.purge_tombstones();
                let frames = h.session.tick(h.now);
                h.sent(frames);
            }
            Step::Changes(specs) => {
                let frames = h.session.queue_changes(entries(&specs), Vec::new(), h.now);
                h.sent(frames);
            }
            Step::Forward(specs) => {
                let batch = Batch {
                    entries: entries(&specs),
                    ..Batch::default()
                };
                let frames = h.session.send_batch(batch, h.now);
                h.sent(frames);
            }
            Step::Flush => {
                let frames = h.session.flush(h.now);
                h.sent(frames);
            }
            Step::Keepalive => {
                let frame = h.session.keepalive();
                h.sent(vec![frame]);
            }
        }
    }
});
