//! The `PeerLink` actor: one per established link to a neighbour, inbound
//! or outbound. It drives the link's [`SyncSession`] (serials, acks, the
//! window, batching): frames from the peer go through the session, whose
//! events become requests to the supervisor (our digest, a plan for the
//! peer, a batch to apply); entries the supervisor wants sent are queued in
//! the session. An idle link sends an `Ack` every [`HEARTBEAT`] as a
//! keepalive, and a link that has received nothing for [`LINK_TIMEOUT`] is
//! closed.
//!
//! A link is *up* only once the first frame from the other side has been
//! read ([`handshake::check_first_frame`]): with TLS 1.3 the dialer's TLS
//! handshake returns before the acceptor has checked its certificate, so a
//! refused dialer learns it on its first read. Until then the link is
//! pending: it says nothing to the supervisor and logs nothing at info or
//! above. When the first frame comes, the actor logs `peer link up` and
//! sends [`LinkUp`] itself (so the supervisor has it before anything else
//! from this link); whoever started it learns the outcome through
//! [`LinkProgress::up`]: `Ok`, or why the link ended before that, as a
//! [`HandshakeError`] (a failed attempt, counted and backed off like a
//! failed handshake).

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use catalogue_proto::{
    Body, CodecError, Frame,
    catalogue::{Bye, Error, ErrorCode},
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::{
    directory::Direction,
    handshake::{self, Established, HandshakeError},
};
use crate::{
    frame_writer,
    input::{self, InputLimits},
    metrics::{ActorMetrics, Metrics},
    supervisor::{
        CatalogueSupervisor, Close, GetDigest, LinkDown, LinkUp, PeerBatch, PlanFor, Recheck,
        SendBatch, SendEntries, SendError, SyncDone,
    },
    sync::session::{SessionConfig, SessionCounters, SessionEvent, SyncSession},
};

/// Idle time after which a keepalive goes out.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Silence after which the link is considered dead.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the session's timers run (retransmits, acks, keepalive).
const TICK: Duration = Duration::from_millis(100);

/// A gap between two ticks longer than this means this node itself did
/// not run (SIGSTOP, a paused VM, a starved CPU): the peer's silence over
/// that time is ours, and the peer gets a fresh [`LINK_TIMEOUT`] from now.
const STALLED: Duration = Duration::from_secs(1);

/// Frames that may wait in the writer's channel; the session's window is
/// what bounds the frames in flight.
const OUTBOUND_FRAMES: usize = 4096;

/// Node-wide id of a link (a reconnect gets a new id).
pub type LinkId = u64;

/// How whoever started a link follows it.
#[derive(Debug)]
pub struct LinkProgress {
    /// `Ok` once the first frame from the other side has been read (the
    /// link is up and offered to the supervisor); `Err` with why the link
    /// ended before that. Dropping it abandons a pending link: it closes
    /// instead of coming up.
    pub up: oneshot::Receiver<Result<(), HandshakeError>>,
    /// Resolves when the link has ended.
    pub ended: oneshot::Receiver<()>,
}

/// Whether the first frame from the other side has been read.
enum Phase {
    /// Not yet: the starter waits on the sender.
    Pending(oneshot::Sender<Result<(), HandshakeError>>),
    /// Up: the supervisor knows the link.
    Up,
}

/// Sends the changes batched so far (sent to itself once the changes
/// already in the mailbox are queued, when `sync.batch_delay` is zero).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct FlushChanges;

/// One link.
pub struct PeerLink {
    id: LinkId,
    peer: String,
    direction: Direction,
    /// The node that dialed (ours or the peer's name), for [`LinkUp`].
    dialer: String,
    phase: Phase,
    /// Why a pending link ended, for [`LinkProgress::up`].
    not_up: Option<HandshakeError>,
    supervisor: Addr<CatalogueSupervisor>,
    session: SyncSession,
    outbound: mpsc::Sender<Frame>,
    last_received: Instant,
    /// When the last tick ran (to notice that this node was stalled).
    last_tick: Instant,
    /// The link is closing: later ticks (queued while the node was
    /// stalled) do nothing.
    closing: bool,
    last_sent: Instant,
    started: Instant,
    flush_scheduled: bool,
    metrics: ActorMetrics,
    peer_cert: Option<openssl::x509::X509>,
    reported: SessionCounters,
    ended: Option<oneshot::Sender<()>>,
}

impl PeerLink {
    /// Starts the actor and the writer for an established link, pending
    /// until its first frame from the other side.
    pub fn start(
        id: LinkId,
        established: Established,
        cfg: SessionConfig,
        supervisor: Addr<CatalogueSupervisor>,
        limits: &InputLimits,
        stats: Arc<Metrics>,
    ) -> LinkProgress {
        let Established {
            peer,
            direction,
            io,
            next_serial,
            peer_cert,
            ..
        } = established;
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel(OUTBOUND_FRAMES);
        actix_rt::spawn(frame_writer::run_frames(write, rx, limits.max_frame));
        let (ended_tx, ended_rx) = oneshot::channel();
        let (up_tx, up_rx) = oneshot::channel();
        let dialer = match direction {
            Direction::Outbound => cfg.node.clone(),
            Direction::Inbound => peer.clone(),
        };
        // Until its first frame the link is not up: that frame is limited
        // as in the handshake.
        let reader = limits.deadline(FramedRead::new(read, limits.link_codec()));
        PeerLink::create(move |ctx| {
            ctx.add_stream(reader);
            let now = Instant::now();
            PeerLink {
                id,
                peer,
                direction,
                dialer,
                phase: Phase::Pending(up_tx),
                not_up: None,
                supervisor,
                session: SyncSession::new(cfg, next_serial),
                outbound: tx,
                last_received: now,
                last_tick: now,
                closing: false,
                last_sent: now,
                started: now,
                flush_scheduled: false,
                metrics: ActorMetrics::new(stats, "peer_link"),
                peer_cert,
                reported: SessionCounters::default(),
                ended: Some(ended_tx),
            }
        });
        LinkProgress {
            up: up_rx,
            ended: ended_rx,
        }
    }

    fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Up)
    }

    /// Ends a link that is not up yet; `why` goes to its starter.
    fn fail_pending(&mut self, why: HandshakeError, ctx: &mut Context<Self>) {
        debug!(peer = %self.peer, link = self.id, error = %why, "peer link ended before its first frame");
        self.not_up = Some(why);
        ctx.stop();
    }

    /// The first frame from the other side has been read: the link is up,
    /// unless its starter has given up on it. False when the link closes.
    fn come_up(&mut self, ctx: &mut Context<Self>) -> bool {
        let Phase::Pending(up) = std::mem::replace(&mut self.phase, Phase::Up) else {
            return true;
        };
        if up.is_closed() {
            self.phase = Phase::Pending(up);
            debug!(peer = %self.peer, link = self.id, "closing a link nobody waits for");
            ctx.stop();
            return false;
        }
        info!(peer = %self.peer, direction = self.direction.as_str(), link = self.id, "peer link up");
        // Before any other message from this link: the supervisor learns
        // of the link before its digest request or batches.
        self.supervisor.do_send(LinkUp {
            peer: self.peer.clone(),
            link: self.id,
            direction: self.direction,
            dialer: self.dialer.clone(),
            addr: ctx.address(),
        });
        let _ = up.send(Ok(()));
        true
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn write(&mut self, frames: Vec<Frame>, ctx: &mut Context<Self>) {
        for frame in frames {
            match self.outbound.try_send(frame) {
                Ok(()) => self.last_sent = Instant::now(),
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The window keeps frames in flight far below the
                    // channel's size; a full channel means the writer is stuck.
                    warn!(peer = %self.peer, "peer link writer is stuck: closing the link");
                    ctx.stop();
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    ctx.stop();
                    return;
                }
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let now = Instant::now();
        let gap = now.duration_since(self.last_tick);
        self.last_tick = now;
        if gap > STALLED {
            info!(peer = %self.peer, stalled = ?gap, "this node did not run for a while: the peer's silence is not counted");
            self.last_received = now;
        }
        if now.duration_since(self.last_received) > LINK_TIMEOUT {
            self.closing = true;
            if self.is_up() {
                warn!(peer = %self.peer, "peer link silent for {LINK_TIMEOUT:?}: closing it");
                ctx.stop();
            } else {
                self.fail_pending(HandshakeError::Timeout, ctx);
            }
            return;
        }
        let frames = self.session.tick(self.now_ms());
        self.write(frames, ctx);
        if now.duration_since(self.last_sent) >= HEARTBEAT {
            let keepalive = self.session.keepalive();
            self.write(vec![keepalive], ctx);
        }
        self.report();
    }

    /// Adds what the session counted since the last report to the node's
    /// counters.
    fn report(&mut self) {
        let c = self.session.counters();
        let r = self.reported;
        let peer = Metrics::peer(&self.peer);
        let st = self.metrics.stats();
        st.sync_entries_sent
            .get_or_create(&peer)
            .inc_by(c.entries_sent - r.entries_sent);
        st.sync_entries_received
            .get_or_create(&peer)
            .inc_by(c.entries_received - r.entries_received);
        st.sync_batches_sent
            .get_or_create(&peer)
            .inc_by(c.batches_sent - r.batches_sent);
        st.sync_batches_received
            .get_or_create(&peer)
            .inc_by(c.batches_received - r.batches_received);
        st.sync_retransmits
            .get_or_create(&peer)
            .inc_by(c.retransmits - r.retransmits);
        st.sync_unacked.get_or_create(&peer).set(
            i64::try_from(self.session.unacked() + self.session.waiting()).unwrap_or(i64::MAX),
        );
        self.reported = c;
    }

    fn on_events(&mut self, events: Vec<SessionEvent>, ctx: &mut Context<Self>) {
        for event in events {
            match event {
                SessionEvent::Registered => {
                    let request = self.supervisor.send(GetDigest {
                        peer: self.peer.clone(),
                        link: self.id,
                    });
                    ctx.wait(
                        request
                            .into_actor(self)
                            .map(|digest, act, ctx| match digest {
                                Ok(digest) => {
                                    let now = act.now_ms();
                                    let frames = act.session.send_digest(&digest, now);
                                    act.write(frames, ctx);
                                }
                                Err(_) => ctx.stop(),
                            }),
                    );
                }
                SessionEvent::PeerDigest(digest) => {
                    let request = self.supervisor.send(PlanFor {
                        peer: self.peer.clone(),
                        link: self.id,
                        digest,
                    });
                    ctx.wait(request.into_actor(self).map(|batch, act, ctx| match batch {
                        Ok(batch) => {
                            let now = act.now_ms();
                            let frames = act.session.send_initial(batch, now);
                            act.write(frames, ctx);
                        }
                        Err(_) => ctx.stop(),
                    }));
                }
                SessionEvent::Batch { batch, initial } => self.supervisor.do_send(PeerBatch {
                    from: self.peer.clone(),
                    link: self.id,
                    batch,
                    initial,
                }),
                SessionEvent::InitialSyncDone { sent, received } => {
                    info!(peer = %self.peer, sent, received, "initial sync done");
                    self.supervisor.do_send(SyncDone {
                        peer: self.peer.clone(),
                        link: self.id,
                    });
                }
                SessionEvent::ProtocolError(problem) => {
                    warn!(peer = %self.peer, %problem, "peer broke the sync protocol: closing the link");
                    let error =
                        Frame::new(0, Body::Error(Error::new(ErrorCode::BadRequest, problem)));
                    let _ = self.outbound.try_send(error);
                    ctx.stop();
                    return;
                }
            }
        }
    }

    fn on_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        self.last_received = Instant::now();
        if !self.is_up() {
            if ctx.state().stopping() {
                // Frames read after the link failed or was abandoned.
                return;
            }
            if let Err(why) = handshake::check_first_frame(frame.body.as_ref()) {
                self.fail_pending(why, ctx);
                return;
            }
            if !self.come_up(ctx) {
                return;
            }
        }
        match &frame.body {
            Some(Body::Bye(Bye { reason })) => {
                info!(peer = %self.peer, %reason, "peer said goodbye");
                ctx.stop();
                return;
            }
            Some(Body::Error(e)) => {
                warn!(peer = %self.peer, code = %e.code().hex(), message = %e.message, "peer reported an error");
                return;
            }
            None => return,
            Some(_) => {}
        }
        let now = self.now_ms();
        let (frames, events) = self.session.on_frame(frame, now);
        self.write(frames, ctx);
        self.on_events(events, ctx);
    }
}

impl Actor for PeerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.started();
        let now = self.now_ms();
        let frames = self.session.start(now);
        self.write(frames, ctx);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.stopped();
        self.report();
        match std::mem::replace(&mut self.phase, Phase::Up) {
            Phase::Pending(up) => {
                let why = self.not_up.take().unwrap_or(HandshakeError::Closed);
                let _ = up.send(Err(why));
            }
            Phase::Up => {
                info!(peer = %self.peer, link = self.id, "peer link down");
                self.supervisor.do_send(LinkDown {
                    peer: self.peer.clone(),
                    link: self.id,
                });
            }
        }
        if let Some(ended) = self.ended.take() {
            let _ = ended.send(());
        }
    }
}

impl StreamHandler<Result<Frame, CodecError>> for PeerLink {
    fn handle(&mut self, item: Result<Frame, CodecError>, ctx: &mut Context<Self>) {
        let _timer = self
            .metrics
            .handling(item.as_ref().map_or("FramingError", Frame::kind));
        match item {
            Ok(frame) => self.on_frame(frame, ctx),
            Err(e) => {
                self.metrics.stats().input_closed("peer", &e);
                if let Some(code) = e.error_code() {
                    let message = input::closing_message(&e);
                    let _ = self
                        .outbound
                        .try_send(Frame::new(0, Body::Error(Error::new(code, message))));
                }
                if self.is_up() {
                    warn!(peer = %self.peer, error = %e, "closing peer link after a framing error");
                    ctx.stop();
                } else {
                    // Only a TLS link has the peer's certificate.
                    let over_tls = self.peer_cert.is_some();
                    self.fail_pending(handshake::first_read_error(e, over_tls), ctx);
                }
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<SendEntries> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: SendEntries, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("SendEntries");
        let now = self.now_ms();
        let frames = self.session.queue_changes(msg.entries, msg.marks, now);
        if frames.is_empty() && !self.flush_scheduled {
            // Send within the batch delay even if no more changes come;
            // with no delay, once the changes already waiting in the
            // mailbox have joined the batch (no timer tick to wait for).
            self.flush_scheduled = true;
            match self.session.batch_delay_ms() {
                0 => ctx.notify(FlushChanges),
                ms => {
                    ctx.run_later(Duration::from_millis(ms), |act, ctx| {
                        <Self as Handler<FlushChanges>>::handle(act, FlushChanges, ctx)
                    });
                }
            }
        }
        self.write(frames, ctx);
    }
}

impl Handler<FlushChanges> for PeerLink {
    type Result = ();

    fn handle(&mut self, _msg: FlushChanges, ctx: &mut Context<Self>) {
        self.flush_scheduled = false;
        let now = self.now_ms();
        let frames = self.session.tick(now);
        self.write(frames, ctx);
    }
}

impl Handler<SendBatch> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: SendBatch, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("SendBatch");
        let now = self.now_ms();
        let frames = self.session.send_batch(msg.batch, now);
        self.write(frames, ctx);
    }
}

impl Handler<SendError> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: SendError, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("SendError");
        let frame = self.session.unacknowledged(Body::Error(msg.error));
        self.write(vec![frame], ctx);
    }
}

impl Handler<Recheck> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: Recheck, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Recheck");
        if let Some(cert) = &self.peer_cert {
            if !msg.anchors.trusts(cert) {
                warn!(peer = %self.peer, "peer certificate no longer trusted after reload: closing the link");
                ctx.address().do_send(Close {
                    reason: "certificate no longer trusted".into(),
                });
            }
        }
    }
}

impl Handler<Close> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Close");
        debug!(peer = %self.peer, link = self.id, reason = %msg.reason, "closing peer link");
        let now = self.now_ms();
        // Whatever is batched goes out first.
        let frames = self.session.flush(now);
        self.write(frames, ctx);
        let bye = self
            .session
            .unacknowledged(Body::Bye(Bye { reason: msg.reason }));
        self.write(vec![bye], ctx);
        // The writer flushes what is queued once every sender is gone.
        ctx.stop();
    }
}
