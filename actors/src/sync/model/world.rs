//! The simulated cluster: nodes, each with the real replication
//! [`Driver`] over an [`Hlc<ManualClock>`] and the services its local
//! programs registered; links between pairs of nodes, each made of two real
//! [`SyncSession`]s and the frames in flight each way. The world plays the
//! actors in plain code and in one thread: it calls the driver where the
//! supervisor does (local changes, batches, links connected, synced and
//! down, grace periods over, purges) and carries out the driver's effects
//! as the supervisor does (messages to links, grace timers), and it answers
//! session events as `PeerLink` does. No replication rule is written here:
//! what the model checks is the daemon's code. Every decision comes from
//! the seeded [`Rng`] and every collection iterated is ordered, so a seed
//! replays the same run.
//!
//! Frames of one direction of a link arrive in order (TCP), every frame
//! goes through protobuf encoding and decoding, and a copy of a frame may be
//! delivered again later (a retransmission, which the session must ignore).
//! Dropping a link delivers a random prefix of what is in flight each way
//! and loses the rest; each surviving end's driver then learns the link is
//! down. Grace timers fire when the world's time passes their due time.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::Duration,
};

use catalogue_proto::Frame;
use prost::Message;

use super::rng::Rng;
use crate::{
    hlc::{Hlc, ManualClock, Timestamp},
    services::{Applied, Service},
    sync::{
        driver::{Driver, DriverConfig, Effects, GraceTimer, Outgoing},
        entry::SyncEntry,
        replica::{Batch, Replica},
        session::{Role, SessionConfig, SessionEvent, SyncSession},
    },
};

/// The drift every node's clock allows (the production default).
const MAX_DRIFT: Duration = Duration::from_secs(5);

/// Most steps [`World::settle`] takes before it declares a livelock.
const SETTLE_LIMIT: usize = 200_000;

/// Session tuning shared by every link of a run.
#[derive(Debug, Clone)]
pub(super) struct Tuning {
    /// Most unacknowledged frames in flight.
    pub window: usize,
    /// Most entries per steady-state batch.
    pub batch_max_entries: usize,
    /// Batch delay, in simulated milliseconds.
    pub batch_delay_ms: u64,
    /// Retransmit timeout, in simulated milliseconds.
    pub ack_timeout_ms: u64,
    /// Tombstone TTL, in simulated milliseconds.
    pub ttl_ms: u64,
    /// Grace period of an unreachable origin, in simulated milliseconds.
    pub grace_ms: u64,
}

/// One node.
#[derive(Debug)]
pub(super) struct Node {
    /// `n0`, `n1`, ...; kept across restarts.
    pub name: String,
    /// This node's wall clock: the world's time plus `skew_ms`.
    clock: ManualClock,
    skew_ms: u64,
    /// The code under test.
    pub driver: Driver<ManualClock>,
    /// What the node's local connections hold registered right now (the
    /// `Service` as issued), by URI.
    pub local: BTreeMap<String, Service>,
    /// Bumped by every restart.
    pub incarnation: u32,
    /// Ids this node assigned to connecting peers (`PeerContext::ids`).
    ids: BTreeMap<String, u32>,
}

impl Node {
    /// The node's tables.
    pub fn replica(&self) -> &Replica {
        self.driver.replica()
    }
}

/// A grace timer started by a node's driver.
#[derive(Debug)]
struct Timer {
    /// When it fires (world time).
    due_ms: u64,
    node: usize,
    /// The node's incarnation that started it (a restart cancels it).
    incarnation: u32,
    timer: GraceTimer,
}

/// What a node's subscribers were told: one move of a visible service.
#[derive(Debug, Clone)]
pub(super) struct Event {
    /// World time.
    pub at_ms: u64,
    pub node: usize,
    pub applied: Applied,
}

/// A link, by its two node indices, smaller first.
pub(super) type Pair = (usize, usize);

/// One link: the two ends' sessions and what is in flight toward each.
#[derive(Debug)]
struct Link {
    /// `ends[0]` dialed (connector), `ends[1]` accepted.
    ends: [usize; 2],
    sessions: [SyncSession; 2],
    /// `wire[i]`: frames on their way to `ends[i]`, in order.
    wire: [VecDeque<Frame>; 2],
    /// Being torn down: whatever its ends send now is lost.
    dying: bool,
    /// Which ends have planned their initial batch.
    planned: [bool; 2],
}

/// Every change ever issued by any node, for the checks.
#[derive(Debug, Default)]
pub(super) struct History {
    /// `(uri, origin, ts)` of every service add.
    pub adds: BTreeSet<(String, String, Timestamp)>,
}

/// Counters of what a run exercised.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counters {
    pub frames: u64,
    pub duplicates: u64,
    pub links_up: u64,
    pub links_down: u64,
    pub restarts: u64,
    pub purged: u64,
    pub registers: u64,
    pub unregisters: u64,
    pub batches: u64,
    pub initial_entries: u64,
    pub replacements: u64,
    pub refused: u64,
}

/// The whole simulated cluster.
#[derive(Debug)]
pub(super) struct World {
    pub rng: Rng,
    /// The world's time, in milliseconds.
    pub now_ms: u64,
    pub nodes: Vec<Node>,
    links: BTreeMap<Pair, Link>,
    tuning: Tuning,
    /// Percent chance that a delivered frame is delivered again later.
    pub duplicate_percent: u64,
    /// Largest clock skew of a node (restarts wait longer than twice this).
    max_skew_ms: u64,
    pub history: History,
    pub counters: Counters,
    /// Grace timers running.
    timers: Vec<Timer>,
    /// What subscribers were told, when recorded.
    events: Option<Vec<Event>>,
    /// Things that must never happen whatever the schedule: protocol
    /// errors, refused clocks, a missing quiescence.
    pub errors: Vec<String>,
    trace: Option<Vec<String>>,
}

impl World {
    /// `nodes` nodes, no link, time 1000 ms; each node's clock runs up to
    /// `max_skew_ms` ahead of the world's.
    pub(super) fn new(mut rng: Rng, nodes: usize, tuning: Tuning, max_skew_ms: u64) -> World {
        let now_ms = 1000;
        let nodes = (0..nodes)
            .map(|i| {
                let skew_ms = rng.between(0, max_skew_ms);
                let clock = ManualClock::new(now_ms + skew_ms);
                Node {
                    name: format!("n{i}"),
                    driver: new_driver(&format!("n{i}"), &clock, &tuning),
                    clock,
                    skew_ms,
                    local: BTreeMap::new(),
                    incarnation: 0,
                    ids: BTreeMap::new(),
                }
            })
            .collect();
        World {
            rng,
            now_ms,
            nodes,
            links: BTreeMap::new(),
            tuning,
            duplicate_percent: 0,
            max_skew_ms,
            history: History::default(),
            counters: Counters::default(),
            timers: Vec::new(),
            events: None,
            errors: Vec::new(),
            trace: None,
        }
    }

    /// Records what subscribers are told, for [`World::events`].
    pub(super) fn record_events(&mut self) {
        self.events = Some(Vec::new());
    }

    /// What subscribers were told since [`World::record_events`].
    pub(super) fn events(&self) -> &[Event] {
        self.events.as_deref().unwrap_or(&[])
    }

    /// Records what happens, for a failure report.
    pub(super) fn enable_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// The trace recorded so far.
    pub(super) fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    fn note(&mut self, line: impl FnOnce(&World) -> String) {
        if self.trace.is_none() {
            return;
        }
        let line = format!("{:>6} {}", self.now_ms, line(self));
        if let Some(trace) = &mut self.trace {
            trace.push(line);
        }
    }

    fn name(&self, n: usize) -> &str {
        &self.nodes[n].name
    }

    /// The links up now.
    pub(super) fn linked(&self) -> Vec<Pair> {
        self.links.keys().copied().collect()
    }

    /// Is there a link between `a` and `b`?
    pub(super) fn is_linked(&self, a: usize, b: usize) -> bool {
        self.links.contains_key(&pair(a, b))
    }

    /// The connected components of the current links, each sorted, in
    /// order of their smallest node.
    pub(super) fn components(&self) -> Vec<BTreeSet<usize>> {
        let mut parent: Vec<usize> = (0..self.nodes.len()).collect();
        fn root(parent: &mut [usize], mut n: usize) -> usize {
            while parent[n] != n {
                parent[n] = parent[parent[n]];
                n = parent[n];
            }
            n
        }
        for &(a, b) in self.links.keys() {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[ra.max(rb)] = ra.min(rb);
        }
        let mut groups: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for n in 0..self.nodes.len() {
            let r = root(&mut parent, n);
            groups.entry(r).or_default().insert(n);
        }
        groups.into_values().collect()
    }

    /// Moves time forward; grace timers now due fire.
    pub(super) fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        for node in &self.nodes {
            node.clock.set(self.now_ms + node.skew_ms);
        }
        self.fire_timers();
    }

    /// Fires the grace timers due by now, in order.
    fn fire_timers(&mut self) {
        while let Some(i) = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.due_ms <= self.now_ms)
            .min_by_key(|(i, t)| (t.due_ms, *i))
            .map(|(i, _)| i)
        {
            let t = self.timers.remove(i);
            if t.incarnation != self.nodes[t.node].incarnation {
                continue;
            }
            self.note(|w| format!("{} grace over for {}", w.name(t.node), t.timer.origin));
            let fx = self.nodes[t.node].driver.grace_over(&t.timer);
            self.execute(t.node, fx);
        }
    }

    /// When the next grace timer fires, if any runs.
    fn next_timer(&self) -> Option<u64> {
        self.timers.iter().map(|t| t.due_ms).min()
    }

    /// Sets how far `n`'s clock runs ahead of the world's.
    pub(super) fn set_skew(&mut self, n: usize, skew_ms: u64) {
        self.max_skew_ms = self.max_skew_ms.max(skew_ms);
        let node = &mut self.nodes[n];
        node.skew_ms = skew_ms;
        node.clock.set(self.now_ms + skew_ms);
    }

    // ----- what the supervisor does -----

    /// Carries out `fx`, effects of `n`'s driver, as the supervisor does:
    /// messages go to `n`'s links, timers start, events are recorded.
    fn execute(&mut self, n: usize, fx: Effects) {
        let Effects {
            sends,
            services,
            timers,
            ..
        } = fx;
        for (to, what) in sends {
            let names: Vec<String> = self.nodes.iter().map(|x| x.name.clone()).collect();
            self.on_links(
                n,
                |peer| to.includes(&names[peer]),
                |session, now| match &what {
                    Outgoing::Changes { entries, marks } => {
                        session.queue_changes(entries.clone(), marks.clone(), now)
                    }
                    Outgoing::Batch(batch) => session.send_batch(batch.clone(), now),
                    // Refused clocks are reported as errors (below).
                    Outgoing::Error(_) => Vec::new(),
                },
            );
            if let Outgoing::Error(e) = &what {
                let msg = format!(
                    "{} refused a timestamp too far ahead: {}",
                    self.name(n),
                    e.message
                );
                self.errors.push(msg);
            }
        }
        if let Some(events) = &mut self.events {
            events.extend(services.into_iter().map(|applied| Event {
                at_ms: self.now_ms,
                node: n,
                applied,
            }));
        }
        let incarnation = self.nodes[n].incarnation;
        let due_ms = self.now_ms + self.tuning.grace_ms;
        self.timers.extend(timers.into_iter().map(|timer| Timer {
            due_ms,
            node: n,
            incarnation,
            timer,
        }));
    }

    /// Runs `act` on `n`'s session of each of its links to a peer `to`
    /// accepts, and sends what it returns.
    fn on_links(
        &mut self,
        n: usize,
        to: impl Fn(usize) -> bool,
        mut act: impl FnMut(&mut SyncSession, u64) -> Vec<Frame>,
    ) {
        let ends: Vec<(Pair, usize)> = self
            .links
            .iter()
            .filter_map(|(p, l)| {
                let end = l.ends.iter().position(|&e| e == n)?;
                to(l.ends[1 - end]).then_some((*p, end))
            })
            .collect();
        for (p, end) in ends {
            let now = self.now_ms;
            let link = self.links.get_mut(&p).expect("link");
            let out = act(&mut link.sessions[end], now);
            self.send(p, end, out);
        }
    }

    /// `Handler<PeerBatch>`: the driver applies the batch; its effects are
    /// carried out.
    fn peer_batch(&mut self, n: usize, from: usize, batch: Batch, initial: bool) {
        let from_name = self.nodes[from].name.clone();
        self.counters.batches += 1;
        if !batch.replace_origins.is_empty() {
            self.counters.replacements += 1;
        }
        let summary = (self.trace.is_some()).then(|| {
            format!(
                "{} entries, replace {:?}{}",
                batch.entries.len(),
                batch.replace_origins,
                describe(&batch.entries)
                    + &batch
                        .marks
                        .iter()
                        .map(|m| format!(" mark {} c={} b={}", m.origin, m.complete, m.born))
                        .collect::<String>(),
            )
        });
        let fx = self.nodes[n].driver.peer_batch(&from_name, batch, initial);
        self.counters.refused += fx.refused as u64;
        self.note(|w| {
            format!(
                "{} applies {}batch from {}: {}; {} sends, {} visible changes, {} refused",
                w.name(n),
                if initial { "initial " } else { "" },
                from_name,
                summary.unwrap_or_default(),
                fx.sends.len(),
                fx.services.len(),
                fx.refused,
            )
        });
        self.execute(n, fx);
    }

    // ----- what local programs and operators do -----

    /// A local program on `n` registers `uri` (again, if it holds it).
    pub(super) fn register(&mut self, n: usize, uri: &str, value: u64) {
        let node = &mut self.nodes[n];
        let attrs = BTreeMap::from([("v".to_string(), value.to_string())]);
        let fx = node.driver.register(uri.to_string(), attrs);
        let Some(service) = node.replica().services.get_from(uri, &node.name).cloned() else {
            self.errors
                .push(format!("{} does not hold {uri} it registered", node.name));
            return;
        };
        node.local.insert(uri.to_string(), service.clone());
        self.history.adds.insert((
            service.uri.to_string(),
            service.origin.to_string(),
            service.ts,
        ));
        self.counters.registers += 1;
        self.note(|w| {
            format!(
                "{} registers {uri} at {} (v={value})",
                w.name(n),
                service.ts
            )
        });
        self.execute(n, fx);
    }

    /// The program holding `uri` on `n` unregisters it (or its connection
    /// closes). False if `n` does not hold it.
    pub(super) fn unregister(&mut self, n: usize, uri: &str) -> bool {
        let node = &mut self.nodes[n];
        if node.local.remove(uri).is_none() {
            return false;
        }
        let fx = node.driver.unregister(uri.to_string());
        self.counters.unregisters += 1;
        self.note(|w| format!("{} unregisters {uri}", w.name(n)));
        self.execute(n, fx);
        true
    }

    /// `dialer` connects to `acceptor`: two fresh sessions (serials from 1
    /// and 2, as after the real handshake), the connector's Hello in
    /// flight, and each driver told the link is connected (each issues its
    /// `LinkAdd` once the link has synced). False if they are already
    /// linked.
    pub(super) fn link_up(&mut self, dialer: usize, acceptor: usize) -> bool {
        if dialer == acceptor || self.is_linked(dialer, acceptor) {
            return false;
        }
        let (d_name, a_name) = (
            self.nodes[dialer].name.clone(),
            self.nodes[acceptor].name.clone(),
        );
        let ids = &mut self.nodes[acceptor].ids;
        let next = u32::try_from(ids.len() + 1).unwrap_or(u32::MAX);
        let assigned_id = *ids.entry(d_name.clone()).or_insert(next);
        let cfg = |node: &str, peer: &str, role: Role| SessionConfig {
            node: node.to_string(),
            peer: peer.to_string(),
            role,
            window: self.tuning.window,
            batch_max_entries: self.tuning.batch_max_entries,
            batch_delay_ms: self.tuning.batch_delay_ms,
            ack_timeout_ms: self.tuning.ack_timeout_ms,
            max_batch_entries: 100_000,
            max_uri: 2048,
        };
        let connector = SyncSession::new(cfg(&d_name, &a_name, Role::Connector), 1);
        let acceptor_session =
            SyncSession::new(cfg(&a_name, &d_name, Role::Acceptor { assigned_id }), 2);
        let p = pair(dialer, acceptor);
        self.links.insert(
            p,
            Link {
                ends: [dialer, acceptor],
                sessions: [connector, acceptor_session],
                wire: [VecDeque::new(), VecDeque::new()],
                dying: false,
                planned: [false; 2],
            },
        );
        self.counters.links_up += 1;
        self.note(|_| format!("link up: {d_name} dials {a_name}"));
        self.nodes[dialer].driver.link_connected(&a_name);
        self.nodes[acceptor].driver.link_connected(&d_name);
        let now = self.now_ms;
        let hello = self.links.get_mut(&p).expect("link").sessions[0].start(now);
        self.send(p, 0, hello);
        true
    }

    /// The link between `a` and `b` breaks: a random prefix of what is in
    /// flight each way still arrives (except at `crashed`), the rest is
    /// lost, and each end that is not `crashed` learns the link is down.
    pub(super) fn link_down(&mut self, a: usize, b: usize, crashed: Option<usize>) {
        let p = pair(a, b);
        let Some(link) = self.links.get_mut(&p) else {
            return;
        };
        link.dying = true;
        let ends = link.ends;
        self.counters.links_down += 1;
        self.note(|w| format!("link down: {} - {}", w.name(a), w.name(b)));
        for (j, end) in ends.into_iter().enumerate() {
            if Some(end) == crashed {
                continue;
            }
            let len = self.links[&p].wire[j].len();
            let arrive = self.rng.below(len + 1);
            for _ in 0..arrive {
                self.deliver_one(p, j, false);
            }
        }
        self.links.remove(&p);
        for (n, peer) in [(ends[0], ends[1]), (ends[1], ends[0])] {
            if Some(n) != crashed {
                let peer_name = self.nodes[peer].name.clone();
                let fx = self.nodes[n].driver.link_down(&peer_name);
                self.execute(n, fx);
            }
        }
    }

    /// `n` crashes and starts again: its links break, it is down for longer
    /// than twice the largest clock skew (so its new clock is past
    /// everything it issued), and it comes back with empty tables, a new
    /// clock and no registration.
    pub(super) fn restart(&mut self, n: usize) {
        let peers: Vec<usize> = self
            .links
            .values()
            .filter_map(|l| l.ends.iter().position(|&e| e == n).map(|i| l.ends[1 - i]))
            .collect();
        for peer in peers {
            self.link_down(n, peer, Some(n));
        }
        let down = 2 * self.max_skew_ms + 1 + self.rng.between(0, 3);
        self.advance(down);
        let node = &mut self.nodes[n];
        node.driver = new_driver(&node.name, &node.clock, &self.tuning);
        node.local.clear();
        node.ids.clear();
        node.incarnation += 1;
        self.counters.restarts += 1;
        self.note(|w| format!("{} restarted", w.name(n)));
    }

    /// `CatalogueSupervisor::purge_tombstones` on `n` (TTL from the
    /// tuning).
    pub(super) fn purge(&mut self, n: usize) {
        let purged = self.nodes[n].driver.purge_tombstones();
        self.counters.purged += purged as u64;
        self.note(|w| format!("{} purges {purged} tombstones", w.name(n)));
    }

    // ----- what the peer links do -----

    /// Writes `frames` from end `from` of link `p` (lost if it is dying).
    fn send(&mut self, p: Pair, from: usize, frames: Vec<Frame>) {
        let link = self.links.get_mut(&p).expect("link");
        if link.dying {
            return;
        }
        for frame in frames {
            // What goes on the wire is bytes: encode and decode every frame.
            let bytes = frame.encode_to_vec();
            let frame = Frame::decode(bytes.as_slice()).expect("a frame we encoded decodes");
            link.wire[1 - from].push_back(frame);
        }
    }

    /// The links and ends with frames in flight toward them.
    pub(super) fn busy(&self) -> Vec<(Pair, usize)> {
        self.links
            .iter()
            .flat_map(|(p, l)| (0..2).filter(|&j| !l.wire[j].is_empty()).map(|j| (*p, j)))
            .collect()
    }

    /// Every session, as (link, end).
    pub(super) fn sessions(&self) -> Vec<(Pair, usize)> {
        self.links.keys().flat_map(|p| [(*p, 0), (*p, 1)]).collect()
    }

    /// Delivers the next frame toward end `to` of link `p`; with `dup`, a
    /// copy of it may come again later.
    pub(super) fn deliver_one(&mut self, p: Pair, to: usize, dup: bool) {
        let dup = dup && self.rng.percent(self.duplicate_percent);
        let position = self.rng.next_u64();
        let link = self.links.get_mut(&p).expect("link");
        let Some(frame) = link.wire[to].pop_front() else {
            return;
        };
        if dup {
            let at = (position % (link.wire[to].len() as u64 + 1)) as usize;
            link.wire[to].insert(at, frame.clone());
            self.counters.duplicates += 1;
        }
        self.counters.frames += 1;
        let now = self.now_ms;
        let (out, events) = link.sessions[to].on_frame(frame, now);
        self.send(p, to, out);
        self.on_events(p, to, events);
    }

    /// Runs the timers of end `end` of link `p`; true if it sent anything.
    pub(super) fn tick(&mut self, p: Pair, end: usize) -> bool {
        let now = self.now_ms;
        let out = self.links.get_mut(&p).expect("link").sessions[end].tick(now);
        let sent = !out.is_empty();
        self.send(p, end, out);
        sent
    }

    /// What `PeerLink` does with session events at end `end` of link `p`
    /// (the driver answering at once, as the supervisor does).
    fn on_events(&mut self, p: Pair, end: usize, events: Vec<SessionEvent>) {
        let (n, peer) = {
            let l = &self.links[&p];
            (l.ends[end], l.ends[1 - end])
        };
        for event in events {
            let now = self.now_ms;
            match event {
                SessionEvent::Registered => {
                    let digest = self.nodes[n].driver.digest();
                    let link = self.links.get_mut(&p).expect("link");
                    let out = link.sessions[end].send_digest(&digest, now);
                    self.send(p, end, out);
                }
                SessionEvent::PeerDigest(digest) => {
                    let peer_name = self.nodes[peer].name.clone();
                    let batch = self.nodes[n].driver.plan(&peer_name, &digest);
                    self.counters.initial_entries += batch.entries.len() as u64;
                    self.note(|w| {
                        format!(
                            "{} plans for {}: {} entries, replace {:?}",
                            w.name(n),
                            w.name(peer),
                            batch.entries.len(),
                            batch.replace_origins
                        )
                    });
                    let link = self.links.get_mut(&p).expect("link");
                    link.planned[end] = true;
                    let out = link.sessions[end].send_initial(batch, now);
                    self.send(p, end, out);
                }
                SessionEvent::Batch { batch, initial } => self.peer_batch(n, peer, batch, initial),
                SessionEvent::InitialSyncDone { .. } => {
                    let peer_name = self.nodes[peer].name.clone();
                    self.note(|w| format!("{} synced with {peer_name}", w.name(n)));
                    let fx = self.nodes[n].driver.link_synced(&peer_name);
                    self.execute(n, fx);
                }
                SessionEvent::ProtocolError(problem) => {
                    let msg = format!(
                        "protocol error at {} on its link to {}: {problem}",
                        self.name(n),
                        self.name(peer)
                    );
                    self.note(|_| msg.clone());
                    self.errors.push(msg);
                }
            }
        }
    }

    /// Runs the link between `a` and `b` alone until it is idle (frames
    /// other links get meanwhile stay in flight).
    pub(super) fn settle_link(&mut self, a: usize, b: usize) {
        let p = pair(a, b);
        for _ in 0..SETTLE_LIMIT {
            for to in 0..2 {
                while !self.links[&p].wire[to].is_empty() {
                    self.deliver_one(p, to, false);
                }
            }
            self.advance(self.tuning.batch_delay_ms.max(1));
            let sent = self.tick(p, 0) | self.tick(p, 1);
            let link = &self.links[&p];
            if !sent
                && link
                    .sessions
                    .iter()
                    .all(|s| s.unacked() == 0 && s.waiting() == 0)
            {
                return;
            }
        }
        self.errors.push(format!("link {a}-{b} never idle"));
    }

    /// Delivers frames on the link between `a` and `b` until both ends
    /// have planned their initial batch, and no further toward an end that
    /// has: the initial batches stay in flight.
    pub(super) fn run_link_until_planned(&mut self, a: usize, b: usize) {
        let p = pair(a, b);
        for _ in 0..SETTLE_LIMIT {
            let link = &self.links[&p];
            let Some(to) = (0..2).find(|&j| !link.planned[j] && !link.wire[j].is_empty()) else {
                if link.planned != [true, true] {
                    self.errors
                        .push(format!("link {a}-{b} stalled before planning"));
                }
                return;
            };
            self.deliver_one(p, to, false);
        }
    }

    /// Runs the cluster with no new operation until nothing is in flight,
    /// nothing is batched, every frame is acknowledged and no grace timer
    /// runs: random
    /// deliveries (copies included) across links, and, when the wires are
    /// empty, time passes and every session's timers run.
    pub(super) fn settle(&mut self) {
        for _ in 0..SETTLE_LIMIT {
            let busy = self.busy();
            if let Some((p, to)) = self.rng.pick(&busy) {
                self.deliver_one(p, to, true);
                continue;
            }
            self.advance(self.tuning.batch_delay_ms.max(1));
            let mut sent = false;
            for (p, end) in self.sessions() {
                sent |= self.tick(p, end);
            }
            if sent {
                continue;
            }
            let idle = self.links.values().all(|l| {
                l.sessions
                    .iter()
                    .all(|s| s.unacked() == 0 && s.waiting() == 0)
            });
            if idle {
                match self.next_timer() {
                    Some(due) => self.advance(due.saturating_sub(self.now_ms)),
                    None => return,
                }
                continue;
            }
            self.advance(self.tuning.ack_timeout_ms);
        }
        self.errors
            .push(format!("no quiescence after {SETTLE_LIMIT} steps"));
    }
}

/// A node's driver, born now on `clock`.
fn new_driver(name: &str, clock: &ManualClock, tuning: &Tuning) -> Driver<ManualClock> {
    Driver::new(
        name,
        Hlc::new(clock.clone(), MAX_DRIFT),
        DriverConfig {
            tombstone_ttl: Duration::from_millis(tuning.ttl_ms),
        },
    )
}

/// The link key of `a` and `b`.
pub(super) fn pair(a: usize, b: usize) -> Pair {
    (a.min(b), a.max(b))
}

/// A short description of entries for the trace.
fn describe(entries: &[SyncEntry]) -> String {
    let mut out = String::new();
    for e in entries.iter().take(12) {
        let kind = match (e, e.is_delete()) {
            (SyncEntry::Service(_), false) => "+",
            (SyncEntry::Service(_), true) => "-",
            (SyncEntry::Link(_), false) => "+L",
            (SyncEntry::Link(_), true) => "-L",
        };
        out.push_str(&format!(" {kind}{}@{}/{}", e.key(), e.ts(), e.origin()));
    }
    if entries.len() > 12 {
        out.push_str(" ...");
    }
    if out.is_empty() {
        out
    } else {
        format!(":{out}")
    }
}
