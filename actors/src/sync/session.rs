//! The serial-acknowledged session of one peer link (the cluster-sync
//! seed, point to point), as a plain state machine: it takes frames and
//! ticks, and returns frames to write and events for its driver.
//!
//! ```text
//! connector                         acceptor
//!   Hello{name} (src NOID) ------->
//!              <------- SyncWelcome{my_name, to_name, assigned_id} (dst = id)
//!   Register{name} (src id) ------>
//!              <------- Register{name} (src 0)
//!   UpdTree{digest} -------------->   <- both, once registered
//!              <------- UpdTree{digest}
//!   Lock{batch, keys...} [Lock...] entries... UnlockAll{batch, n}   <- both:
//!                      the initial batch (possibly empty), then steady-state batches
//! ```
//!
//! Every frame but `Ack` is acknowledged; acks are cumulative (`Ack{n}`
//! settles every serial up to `n`) and go out after an `UnlockAll`, after
//! half a window of frames, or on the next tick. At most `window` frames are
//! unacknowledged; the rest wait. A frame unacknowledged for `ack_timeout`
//! is sent again with its serial (retransmit); a frame whose serial is not
//! above the highest seen is a duplicate and is ignored. A batch is handed
//! to the driver whole, at its `UnlockAll`, after checking that its entries
//! match the keys its `Lock` frames announced and its count.

use std::collections::{HashSet, VecDeque};

use catalogue_proto::{
    Body, Frame,
    catalogue::{Ack, Hello, LinkKey as WireLinkKey, Lock, Register, SyncWelcome, UnlockAll},
};

use super::{
    digest::{Digest, Mark},
    entry::SyncEntry,
    replica::Batch,
};

/// Keys announced per `Lock` frame (a big batch takes several).
pub const KEYS_PER_LOCK: usize = 4096;

/// Room the queue of frames waiting for the window keeps once empty.
const WAITING_KEPT: usize = 1024;

/// Which side of the link this session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// We dialed: we say Hello and learn our id.
    Connector,
    /// We accepted: we assign the connector `assigned_id`; ours is 0.
    Acceptor {
        /// The id given to the connector (stable per name).
        assigned_id: u32,
    },
}

/// Tuning of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// This node's name.
    pub node: String,
    /// The peer's name (checked against its Hello / Register).
    pub peer: String,
    /// Connector or acceptor.
    pub role: Role,
    /// Most unacknowledged frames in flight.
    pub window: usize,
    /// Most entries per steady-state batch.
    pub batch_max_entries: usize,
    /// Longest wait before a steady-state change is sent.
    pub batch_delay_ms: u64,
    /// Time after which an unacknowledged frame is sent again.
    pub ack_timeout_ms: u64,
    /// Most entries accepted in one received batch.
    pub max_batch_entries: usize,
    /// Longest URI accepted in an entry.
    pub max_uri: usize,
}

/// What the driver must act on.
#[derive(Debug, PartialEq)]
pub enum SessionEvent {
    /// Both sides registered: send our digest ([`SyncSession::send_digest`]).
    Registered,
    /// The peer's digest: plan and send the initial batch
    /// ([`SyncSession::send_initial`]).
    PeerDigest(Digest),
    /// A complete batch from the peer, to apply atomically.
    Batch {
        /// The batch.
        batch: Batch,
        /// The peer's initial batch.
        initial: bool,
    },
    /// Our initial batch is acknowledged and the peer's received.
    InitialSyncDone {
        /// Entries we sent in our initial batch.
        sent: usize,
        /// Entries the peer sent in its initial batch.
        received: usize,
    },
    /// The peer broke the protocol: close the link.
    ProtocolError(String),
}

#[derive(Debug)]
struct InFlight {
    frame: Frame,
    sent_ms: u64,
}

#[derive(Debug)]
struct Incoming {
    id: u64,
    keys: HashSet<String>,
    entries: Vec<SyncEntry>,
    replace: Vec<String>,
    replace_as_of: Vec<crate::hlc::Timestamp>,
    marks: Vec<Mark>,
}

/// Counters a session keeps for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounters {
    /// Entries sent.
    pub entries_sent: u64,
    /// Entries received.
    pub entries_received: u64,
    /// Batches sent.
    pub batches_sent: u64,
    /// Batches received.
    pub batches_received: u64,
    /// Frames sent again after an ack timeout.
    pub retransmits: u64,
    /// Duplicate frames ignored.
    pub duplicates: u64,
}

/// The state of one link's session.
#[derive(Debug)]
pub struct SyncSession {
    cfg: SessionConfig,
    next_serial: u64,
    my_id: Option<u32>,
    peer_id: Option<u32>,
    registered: bool,
    /// Sent and not yet acknowledged, in serial order.
    in_flight: VecDeque<InFlight>,
    /// Waiting for room in the window.
    waiting: VecDeque<Body>,
    highest_received: Option<u64>,
    unacked_received: usize,
    incoming: Option<Incoming>,
    next_batch: u64,
    /// Changes waiting to be batched, and since when.
    pending: Vec<SyncEntry>,
    /// Marks for the last batch of the pending changes.
    pending_marks: std::collections::BTreeMap<String, Mark>,
    /// Whole batches (replacements) waiting for our initial batch.
    deferred: Vec<Batch>,
    pending_since_ms: Option<u64>,
    digest_received: bool,
    /// Frames ever queued for sending (acks aside) and frames acknowledged:
    /// frames go out and are acknowledged in queue order.
    queued_total: u64,
    acked_total: u64,
    /// Entries of our initial batch, and the queue position of its UnlockAll.
    initial_sent: Option<(usize, u64)>,
    initial_received: Option<usize>,
    initial_done: bool,
    counters: SessionCounters,
}

impl SyncSession {
    /// A session whose first frame gets `first_serial`.
    pub fn new(cfg: SessionConfig, first_serial: u64) -> Self {
        let my_id = match cfg.role {
            Role::Acceptor { .. } => Some(0),
            Role::Connector => None,
        };
        let peer_id = match cfg.role {
            Role::Acceptor { assigned_id } => Some(assigned_id),
            Role::Connector => Some(0),
        };
        SyncSession {
            cfg,
            next_serial: first_serial,
            my_id,
            peer_id,
            registered: false,
            in_flight: VecDeque::new(),
            waiting: VecDeque::new(),
            highest_received: None,
            unacked_received: 0,
            incoming: None,
            next_batch: 1,
            pending: Vec::new(),
            pending_marks: std::collections::BTreeMap::new(),
            deferred: Vec::new(),
            pending_since_ms: None,
            digest_received: false,
            queued_total: 0,
            acked_total: 0,
            initial_sent: None,
            initial_received: None,
            initial_done: false,
            counters: SessionCounters::default(),
        }
    }

    /// Frames sent and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.in_flight.len()
    }

    /// Frames waiting for room in the window.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The counters.
    pub fn counters(&self) -> SessionCounters {
        self.counters
    }

    /// True once the initial exchange is complete in both directions.
    pub fn initial_done(&self) -> bool {
        self.initial_done
    }

    /// The batch delay in force.
    pub fn batch_delay_ms(&self) -> u64 {
        self.cfg.batch_delay_ms
    }

    /// A frame outside the acknowledged flow (`Error`, `Bye`): it takes the
    /// next serial and is never acknowledged or resent.
    pub fn unacknowledged(&mut self, body: Body) -> Frame {
        self.frame(body)
    }

    /// A keepalive for an idle link: an `Ack` of the highest serial received.
    pub fn keepalive(&mut self) -> Frame {
        let serial = self.highest_received.unwrap_or(0);
        self.unacked_received = 0;
        self.frame(Body::Ack(Ack { ack_serial: serial }))
    }

    /// The first frames: the connector's Hello.
    pub fn start(&mut self, now_ms: u64) -> Vec<Frame> {
        match self.cfg.role {
            Role::Connector => {
                let hello = Body::Hello(Hello {
                    name: self.cfg.node.clone(),
                });
                self.enqueue(hello, now_ms)
            }
            Role::Acceptor { .. } => Vec::new(),
        }
    }

    fn frame(&mut self, body: Body) -> Frame {
        let serial = self.next_serial;
        self.next_serial += 1;
        let dst = match body {
            // The seed sends hello and register with dst NOID.
            Body::Hello(_) | Body::Register(_) => None,
            _ => self.peer_id,
        };
        Frame {
            serial,
            src: self.my_id,
            dst,
            body: Some(body),
        }
    }

    /// Queues a frame that will need an ack; sends what the window allows.
    fn enqueue(&mut self, body: Body, now_ms: u64) -> Vec<Frame> {
        self.push(body);
        self.release(now_ms)
    }

    fn push(&mut self, body: Body) {
        self.waiting.push_back(body);
        self.queued_total += 1;
    }

    fn release(&mut self, now_ms: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        while self.in_flight.len() < self.cfg.window.max(1) {
            let Some(body) = self.waiting.pop_front() else {
                break;
            };
            let frame = self.frame(body);
            out.push(frame.clone());
            self.in_flight.push_back(InFlight {
                frame,
                sent_ms: now_ms,
            });
        }
        // A burst (a bulk of registrations) can queue tens of thousands of
        // frames here; once they are out, the room goes back.
        if self.waiting.is_empty() && self.waiting.capacity() > WAITING_KEPT {
            self.waiting.shrink_to(WAITING_KEPT);
        }
        out
    }

    fn ack_now(&mut self) -> Option<Frame> {
        let serial = self.highest_received?;
        if self.unacked_received == 0 {
            return None;
        }
        self.unacked_received = 0;
        // Acks are not themselves acknowledged and take a serial like any frame.
        Some(self.frame(Body::Ack(Ack { ack_serial: serial })))
    }

    /// Sends our digest (after [`SessionEvent::Registered`]).
    pub fn send_digest(&mut self, digest: &Digest, now_ms: u64) -> Vec<Frame> {
        self.enqueue(Body::UpdTree(digest.to_wire()), now_ms)
    }

    /// Sends our initial batch (after [`SessionEvent::PeerDigest`]), even
    /// when empty, then whatever changes were waiting for it.
    pub fn send_initial(&mut self, batch: Batch, now_ms: u64) -> Vec<Frame> {
        let entries = batch.entries.len();
        let (mut out, last) = self.send_batch_frames(batch, now_ms);
        self.initial_sent = Some((entries, last));
        for batch in std::mem::take(&mut self.deferred) {
            out.extend(self.send_batch_frames(batch, now_ms).0);
        }
        out.extend(self.flush_pending(now_ms));
        out
    }

    /// Sends a whole batch as it is (a replacement forwarded from another
    /// peer), after our initial batch.
    pub fn send_batch(&mut self, batch: Batch, now_ms: u64) -> Vec<Frame> {
        if self.initial_sent.is_none() {
            self.deferred.push(batch);
            return Vec::new();
        }
        // Changes queued before it go first.
        let mut out = self.flush_pending(now_ms);
        out.extend(self.send_batch_frames(batch, now_ms).0);
        out
    }

    /// Queues steady-state changes; they go out in batches of at most
    /// `batch_max_entries`, or after `batch_delay_ms` (see [`Self::tick`]).
    /// `marks` (what we know of their origins, valid once they are
    /// applied) travel with the last batch that carries them.
    pub fn queue_changes(
        &mut self,
        entries: Vec<SyncEntry>,
        marks: Vec<Mark>,
        now_ms: u64,
    ) -> Vec<Frame> {
        if entries.is_empty() && marks.is_empty() {
            return Vec::new();
        }
        self.pending.extend(entries);
        for mark in marks {
            match self.pending_marks.get_mut(&mark.origin) {
                Some(m) => m.merge(&mark),
                None => {
                    self.pending_marks.insert(mark.origin.clone(), mark);
                }
            }
        }
        self.pending_since_ms.get_or_insert(now_ms);
        // A full batch goes at once, and so does anything on an idle link;
        // while a batch is unacknowledged, changes gather (until its ack,
        // or the batch delay).
        if self.initial_sent.is_some()
            && (self.pending.len() >= self.cfg.batch_max_entries || self.idle())
        {
            return self.flush_pending(now_ms);
        }
        Vec::new()
    }

    /// Nothing sent is waiting for an ack, nothing waits for the window.
    fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.waiting.is_empty()
    }

    fn flush_pending(&mut self, now_ms: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.pending.is_empty() && !self.pending_marks.is_empty() {
            // Marks alone (a birth learnt): an empty batch carries them.
            let marks = std::mem::take(&mut self.pending_marks)
                .into_values()
                .collect();
            out.extend(
                self.send_batch_frames(
                    Batch {
                        marks,
                        ..Batch::default()
                    },
                    now_ms,
                )
                .0,
            );
        }
        while !self.pending.is_empty() {
            let take = self.pending.len().min(self.cfg.batch_max_entries.max(1));
            let entries: Vec<SyncEntry> = self.pending.drain(..take).collect();
            let marks = if self.pending.is_empty() {
                std::mem::take(&mut self.pending_marks)
                    .into_values()
                    .collect()
            } else {
                Vec::new()
            };
            let (frames, _) = self.send_batch_frames(
                Batch {
                    entries,
                    marks,
                    ..Batch::default()
                },
                now_ms,
            );
            out.extend(frames);
        }
        self.pending_since_ms = None;
        out
    }

    /// Lock frame(s), entries, UnlockAll; returns the frames released now
    /// and the queue position of the UnlockAll.
    fn send_batch_frames(&mut self, batch: Batch, now_ms: u64) -> (Vec<Frame>, u64) {
        let id = self.next_batch;
        self.next_batch += 1;
        let mut services = Vec::new();
        let mut links = Vec::new();
        for e in &batch.entries {
            match e {
                SyncEntry::Service(c) => services.push(c.uri().to_string()),
                SyncEntry::Link(l) => links.push(WireLinkKey {
                    a: l.key.a().to_string(),
                    b: l.key.b().to_string(),
                }),
            }
        }
        let mut locks = Vec::new();
        let mut first = true;
        let mut s_iter = services.chunks(KEYS_PER_LOCK);
        let mut l_iter = links.chunks(KEYS_PER_LOCK);
        loop {
            let s = s_iter.next();
            let l = l_iter.next();
            if s.is_none() && l.is_none() && !first {
                break;
            }
            locks.push(Lock {
                batch: id,
                services: s.map(<[String]>::to_vec).unwrap_or_default(),
                links: l.map(<[WireLinkKey]>::to_vec).unwrap_or_default(),
                replace_as_of: if first {
                    batch.replace_as_of.iter().map(|t| (*t).into()).collect()
                } else {
                    vec![]
                },
                replace_origins: if first {
                    batch.replace_origins.clone()
                } else {
                    vec![]
                },
                marks: if first {
                    batch.marks.iter().map(Mark::to_wire).collect()
                } else {
                    vec![]
                },
            });
            first = false;
        }
        for lock in locks {
            self.push(Body::Lock(lock));
        }
        let count = batch.entries.len();
        for e in batch.entries {
            self.push(e.to_body());
        }
        self.push(Body::UnlockAll(UnlockAll {
            batch: id,
            entries: u32::try_from(count).unwrap_or(u32::MAX),
        }));
        self.counters.batches_sent += 1;
        self.counters.entries_sent += count as u64;
        let mark = self.queued_total;
        (self.release(now_ms), mark)
    }

    /// Sends every batched change now (before closing the link).
    pub fn flush(&mut self, now_ms: u64) -> Vec<Frame> {
        if self.initial_sent.is_some() {
            self.flush_pending(now_ms)
        } else {
            Vec::new()
        }
    }

    /// Timers: flush batched changes, retransmit what waits too long for its
    /// ack, acknowledge what was received.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.initial_sent.is_some()
            && self
                .pending_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) >= self.cfg.batch_delay_ms)
        {
            out.extend(self.flush_pending(now_ms));
        }
        if self
            .in_flight
            .front()
            .is_some_and(|f| now_ms.saturating_sub(f.sent_ms) >= self.cfg.ack_timeout_ms)
        {
            for f in &mut self.in_flight {
                f.sent_ms = now_ms;
                out.push(f.frame.clone());
                self.counters.retransmits += 1;
            }
        }
        out.extend(self.ack_now());
        out
    }

    /// Handles one frame from the peer.
    pub fn on_frame(&mut self, frame: Frame, now_ms: u64) -> (Vec<Frame>, Vec<SessionEvent>) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let Some(body) = frame.body else {
            return (out, events);
        };
        if let Body::Ack(ack) = body {
            self.on_ack(ack.ack_serial, now_ms, &mut out);
            self.check_initial_done(&mut events);
            return (out, events);
        }
        if self.highest_received.is_some_and(|h| frame.serial <= h) {
            self.counters.duplicates += 1;
            self.unacked_received += 1;
            out.extend(self.ack_now());
            return (out, events);
        }
        self.highest_received = Some(frame.serial);
        self.unacked_received += 1;
        let mut ack_now = false;
        match body {
            Body::Hello(h) => match self.cfg.role {
                Role::Acceptor { assigned_id } if h.name == self.cfg.peer => {
                    let welcome = Body::SyncWelcome(SyncWelcome {
                        my_name: self.cfg.node.clone(),
                        to_name: h.name,
                        assigned_id,
                    });
                    out.extend(self.enqueue(welcome, now_ms));
                }
                _ => events.push(SessionEvent::ProtocolError(format!(
                    "unexpected Hello from {:?}",
                    h.name
                ))),
            },
            Body::SyncWelcome(w) => {
                if self.cfg.role != Role::Connector || w.to_name != self.cfg.node {
                    events.push(SessionEvent::ProtocolError("unexpected SyncWelcome".into()));
                } else {
                    self.my_id = Some(w.assigned_id);
                    let register = Body::Register(Register {
                        name: self.cfg.node.clone(),
                    });
                    out.extend(self.enqueue(register, now_ms));
                }
            }
            Body::Register(r) => {
                if r.name != self.cfg.peer || self.registered {
                    events.push(SessionEvent::ProtocolError(format!(
                        "unexpected Register from {:?}",
                        r.name
                    )));
                } else {
                    if let Role::Acceptor { .. } = self.cfg.role {
                        let register = Body::Register(Register {
                            name: self.cfg.node.clone(),
                        });
                        out.extend(self.enqueue(register, now_ms));
                    }
                    self.registered = true;
                    events.push(SessionEvent::Registered);
                }
            }
            Body::UpdTree(u) if self.registered && !self.digest_received => {
                self.digest_received = true;
                events.push(SessionEvent::PeerDigest(Digest::from_wire(u)));
            }
            Body::Lock(lock) => self.on_lock(lock, &mut events),
            body @ (Body::ServiceAdd(_)
            | Body::ServiceDelete(_)
            | Body::LinkAdd(_)
            | Body::LinkDelete(_)) => {
                self.on_entry(body, &mut events);
            }
            Body::UnlockAll(u) => {
                self.on_unlock(u, &mut events);
                ack_now = true;
            }
            other => events.push(SessionEvent::ProtocolError(format!(
                "{} is not expected on a peer link now",
                other.kind()
            ))),
        }
        if ack_now || self.unacked_received >= (self.cfg.window / 2).max(1) {
            out.extend(self.ack_now());
        }
        self.check_initial_done(&mut events);
        (out, events)
    }

    fn on_ack(&mut self, serial: u64, now_ms: u64, out: &mut Vec<Frame>) {
        while self
            .in_flight
            .front()
            .is_some_and(|f| f.frame.serial <= serial)
        {
            self.in_flight.pop_front();
            self.acked_total += 1;
        }
        out.extend(self.release(now_ms));
        // Changes that gathered while the link was busy go now.
        if self.initial_sent.is_some() && self.idle() {
            out.extend(self.flush_pending(now_ms));
        }
    }

    fn on_lock(&mut self, lock: Lock, events: &mut Vec<SessionEvent>) {
        let keys = lock
            .services
            .into_iter()
            .chain(lock.links.into_iter().map(|l| {
                let k = crate::links::LinkKey::new(l.a, l.b);
                format!("{} {}", k.a(), k.b())
            }));
        match &mut self.incoming {
            Some(open) if open.id == lock.batch && open.entries.is_empty() => {
                open.keys.extend(keys)
            }
            Some(open) => events.push(SessionEvent::ProtocolError(format!(
                "Lock {} while batch {} is open",
                lock.batch, open.id
            ))),
            None => {
                self.incoming = Some(Incoming {
                    id: lock.batch,
                    keys: keys.collect(),
                    entries: Vec::new(),
                    replace: lock.replace_origins,
                    replace_as_of: lock.replace_as_of.into_iter().map(Into::into).collect(),
                    marks: lock.marks.into_iter().map(Mark::from_wire).collect(),
                });
            }
        }
        if self
            .incoming
            .as_ref()
            .is_some_and(|i| i.keys.len() > self.cfg.max_batch_entries)
        {
            events.push(SessionEvent::ProtocolError(
                "batch larger than allowed".into(),
            ));
        }
    }

    fn on_entry(&mut self, body: Body, events: &mut Vec<SessionEvent>) {
        let Some(open) = self.incoming.as_mut() else {
            events.push(SessionEvent::ProtocolError(
                "entry outside a Lock/UnlockAll batch".into(),
            ));
            return;
        };
        match SyncEntry::from_body(body, self.cfg.max_uri) {
            Ok(entry) if open.keys.contains(&entry.key()) => open.entries.push(entry),
            Ok(entry) => events.push(SessionEvent::ProtocolError(format!(
                "entry for {} was not announced by its Lock",
                entry.key()
            ))),
            Err(problem) => events.push(SessionEvent::ProtocolError(problem)),
        }
        if open.entries.len() > self.cfg.max_batch_entries {
            events.push(SessionEvent::ProtocolError(
                "batch larger than allowed".into(),
            ));
        }
    }

    fn on_unlock(&mut self, u: UnlockAll, events: &mut Vec<SessionEvent>) {
        match self.incoming.take() {
            Some(open) if open.id == u.batch && open.entries.len() == u.entries as usize => {
                let received = open.entries.len();
                self.counters.batches_received += 1;
                self.counters.entries_received += received as u64;
                let initial = self.digest_received && self.initial_received.is_none();
                if initial {
                    self.initial_received = Some(received);
                }
                events.push(SessionEvent::Batch {
                    batch: Batch {
                        entries: open.entries,
                        replace_origins: open.replace,
                        replace_as_of: open.replace_as_of,
                        marks: open.marks,
                    },
                    initial,
                });
            }
            Some(open) => events.push(SessionEvent::ProtocolError(format!(
                "UnlockAll {} with {} entries closes batch {} of {}",
                u.batch,
                u.entries,
                open.id,
                open.entries.len()
            ))),
            None => events.push(SessionEvent::ProtocolError("UnlockAll without Lock".into())),
        }
    }

    fn check_initial_done(&mut self, events: &mut Vec<SessionEvent>) {
        if self.initial_done {
            return;
        }
        let (Some((sent, mark)), Some(received)) = (self.initial_sent, self.initial_received)
        else {
            return;
        };
        if self.acked_total >= mark {
            self.initial_done = true;
            events.push(SessionEvent::InitialSyncDone { sent, received });
        }
    }
}

#[cfg(test)]
mod tests;
