//! The `PeerLink` actor: one per established link to a neighbour, inbound
//! or outbound. It drives the link's [`SyncSession`] (serials, acks, the
//! window, batching): frames from the peer go through the session, whose
//! events become requests to the supervisor (our digest, a plan for the
//! peer, a batch to apply); entries the supervisor wants sent are queued in
//! the session. An idle link sends an `Ack` every [`HEARTBEAT`] as a
//! keepalive, and a link that has received nothing for [`LINK_TIMEOUT`] is
//! closed.

use std::{sync::Arc, time::Duration};

use actix::prelude::*;
use catalogue_proto::{
    Body, CodecError, Frame, FrameCodec,
    catalogue::{Bye, Error, ErrorCode},
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::{directory::Direction, handshake::Established};
use crate::{
    client::writer,
    stats::{ActorMetrics, Stats},
    supervisor::{CatalogueSupervisor, GetDigest, LinkDown, PeerBatch, PlanFor, SyncDone},
    sync::{
        entry::SyncEntry,
        session::{SessionConfig, SessionCounters, SessionEvent, SyncSession},
    },
};

/// Idle time after which a keepalive goes out.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Silence after which the link is considered dead.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the session's timers run (retransmits, acks, keepalive).
const TICK: Duration = Duration::from_millis(100);

/// Frames that may wait in the writer's channel; the session's window is
/// what bounds the frames in flight.
const OUTBOUND_FRAMES: usize = 4096;

/// Node-wide id of a link (a reconnect gets a new id).
pub type LinkId = u64;

/// Entries to send to the peer (batched by the session).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SendEntries(
    pub Vec<SyncEntry>,
    /// What we know of their origins, valid once they are applied.
    pub Vec<crate::sync::digest::Mark>,
);

/// A whole batch to send as it is (a replacement).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SendBatch(pub crate::sync::replica::Batch);

/// Sends the changes batched so far (sent to itself once the changes
/// already in the mailbox are queued, when `sync.batch_delay` is zero).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct FlushChanges;

/// Tells the peer something was refused.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendError(pub Error);

/// The trusted CAs changed: close the link if the peer's certificate no
/// longer verifies.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Recheck(pub Arc<crate::tls::TrustAnchors>);

/// Says `Bye` and closes the link.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close(pub String);

/// One link.
pub struct PeerLink {
    id: LinkId,
    peer: String,
    direction: Direction,
    supervisor: Addr<CatalogueSupervisor>,
    session: SyncSession,
    outbound: mpsc::Sender<Frame>,
    last_received: Instant,
    last_sent: Instant,
    started: Instant,
    flush_scheduled: bool,
    metrics: ActorMetrics,
    peer_cert: Option<openssl::x509::X509>,
    reported: SessionCounters,
    ended: Option<oneshot::Sender<()>>,
}

impl PeerLink {
    /// Starts the actor and the writer for an established link. The
    /// returned receiver resolves when the link has ended.
    pub fn start(
        id: LinkId,
        established: Established,
        cfg: SessionConfig,
        supervisor: Addr<CatalogueSupervisor>,
        max_frame: usize,
        stats: Arc<Stats>,
    ) -> (Addr<PeerLink>, oneshot::Receiver<()>) {
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
        actix_rt::spawn(writer::run_frames(write, rx, max_frame));
        let (ended_tx, ended_rx) = oneshot::channel();
        let addr = PeerLink::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, FrameCodec::new(max_frame)));
            let now = Instant::now();
            PeerLink {
                id,
                peer,
                direction,
                supervisor,
                session: SyncSession::new(cfg, next_serial),
                outbound: tx,
                last_received: now,
                last_sent: now,
                started: now,
                flush_scheduled: false,
                metrics: ActorMetrics::new(stats, "peer_link"),
                peer_cert,
                reported: SessionCounters::default(),
                ended: Some(ended_tx),
            }
        });
        (addr, ended_rx)
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
        let now = Instant::now();
        if now.duration_since(self.last_received) > LINK_TIMEOUT {
            warn!(peer = %self.peer, "peer link silent for {LINK_TIMEOUT:?}: closing it");
            ctx.stop();
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
        let peer = Stats::peer(&self.peer);
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
                    let request = self.supervisor.send(GetDigest);
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
        info!(peer = %self.peer, direction = self.direction.as_str(), link = self.id, "peer link up");
        let now = self.now_ms();
        let frames = self.session.start(now);
        self.write(frames, ctx);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.stopped();
        self.report();
        info!(peer = %self.peer, link = self.id, "peer link down");
        self.supervisor.do_send(LinkDown {
            peer: self.peer.clone(),
            link: self.id,
        });
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
                warn!(peer = %self.peer, error = %e, "closing peer link after a framing error");
                if let Some(code) = e.error_code() {
                    let _ = self
                        .outbound
                        .try_send(Frame::new(0, Body::Error(Error::new(code, e.to_string()))));
                }
                ctx.stop();
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
        let frames = self.session.queue_changes(msg.0, msg.1, now);
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
        let frames = self.session.send_batch(msg.0, now);
        self.write(frames, ctx);
    }
}

impl Handler<SendError> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: SendError, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("SendError");
        let frame = self.session.unacknowledged(Body::Error(msg.0));
        self.write(vec![frame], ctx);
    }
}

impl Handler<Recheck> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: Recheck, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Recheck");
        if let Some(cert) = &self.peer_cert {
            if !msg.0.trusts(cert) {
                warn!(peer = %self.peer, "peer certificate no longer trusted after reload: closing the link");
                ctx.address()
                    .do_send(Close("certificate no longer trusted".into()));
            }
        }
    }
}

impl Handler<Close> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Close");
        debug!(peer = %self.peer, link = self.id, reason = %msg.0, "closing peer link");
        let now = self.now_ms();
        // Whatever is batched goes out first.
        let frames = self.session.flush(now);
        self.write(frames, ctx);
        let bye = self
            .session
            .unacknowledged(Body::Bye(Bye { reason: msg.0 }));
        self.write(vec![bye], ctx);
        // The writer flushes what is queued once every sender is gone.
        ctx.stop();
    }
}
