//! The `PeerLink` actor: one per established link to a neighbour, inbound
//! or outbound. It reads the peer's frames (the codec is the only parser),
//! hands link changes to the supervisor, and writes what the supervisor
//! sends through the link's writer task. It keeps the link honest with a
//! heartbeat: an `Ack` naming the last serial received goes out when
//! nothing else has for [`HEARTBEAT`], and a link that has received nothing
//! for [`LINK_TIMEOUT`] is closed.

use std::{collections::VecDeque, time::Duration};

use actix::prelude::*;
use catalogue_proto::{
    Body, CodecError, Frame, FrameCodec,
    catalogue::{self, Ack, Bye, Error, ErrorCode},
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};

use super::{
    directory::Direction,
    handshake::Established,
    wire::{link_change_from_body, link_change_to_body},
};
use crate::{
    client::writer,
    links::LinkChange,
    supervisor::{CatalogueSupervisor, LinkDown, PeerLinkChanges},
};

/// Idle time after which a heartbeat goes out.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Silence after which the link is considered dead.
pub const LINK_TIMEOUT: Duration = Duration::from_secs(5);

/// Frames that may wait in the writer's channel.
const OUTBOUND_FRAMES: usize = 1024;

/// Frames queued in the actor beyond the channel before the link is judged
/// too slow and closed (the next link resynchronises).
const MAX_BACKLOG: usize = 1 << 20;

/// Node-wide id of a link (a reconnect gets a new id).
pub type LinkId = u64;

/// Link changes to send to the peer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendChanges(pub Vec<LinkChange>);

/// Tells the peer a change was refused.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendError(pub Error);

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
    outbound: mpsc::Sender<Body>,
    backlog: VecDeque<Body>,
    waiting: bool,
    last_received: Instant,
    last_sent: Instant,
    last_serial: u64,
    ended: Option<oneshot::Sender<()>>,
}

impl PeerLink {
    /// Starts the actor and the writer for an established link. The
    /// returned receiver resolves when the link has ended.
    pub fn start(
        id: LinkId,
        established: Established,
        supervisor: Addr<CatalogueSupervisor>,
        max_frame: usize,
    ) -> (Addr<PeerLink>, oneshot::Receiver<()>) {
        let Established {
            peer,
            direction,
            io,
            next_serial,
            ..
        } = established;
        let (read, write) = tokio::io::split(io);
        let (tx, rx) = mpsc::channel(OUTBOUND_FRAMES);
        actix_rt::spawn(writer::run_from(write, rx, max_frame, next_serial));
        let (ended_tx, ended_rx) = oneshot::channel();
        let addr = PeerLink::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, FrameCodec::new(max_frame)));
            let now = Instant::now();
            PeerLink {
                id,
                peer,
                direction,
                supervisor,
                outbound: tx,
                backlog: VecDeque::new(),
                waiting: false,
                last_received: now,
                last_sent: now,
                last_serial: 0,
                ended: Some(ended_tx),
            }
        });
        (addr, ended_rx)
    }

    fn send(&mut self, body: Body, ctx: &mut Context<Self>) {
        self.backlog.push_back(body);
        if self.backlog.len() > MAX_BACKLOG {
            warn!(peer = %self.peer, "peer link too slow: closing it");
            ctx.stop();
            return;
        }
        self.pump(ctx);
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.waiting {
            return;
        }
        while let Some(body) = self.backlog.pop_front() {
            match self.outbound.try_send(body) {
                Ok(()) => self.last_sent = Instant::now(),
                Err(mpsc::error::TrySendError::Full(body)) => {
                    self.backlog.push_front(body);
                    self.waiting = true;
                    let tx = self.outbound.clone();
                    ctx.spawn(
                        async move { tx.reserve_owned().await }
                            .into_actor(self)
                            .map(|permit, act, ctx| {
                                act.waiting = false;
                                match (permit, act.backlog.pop_front()) {
                                    (Ok(permit), Some(body)) => {
                                        permit.send(body);
                                        act.last_sent = Instant::now();
                                        act.pump(ctx);
                                    }
                                    (Ok(_), None) => {}
                                    (Err(_), _) => ctx.stop(),
                                }
                            }),
                    );
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    ctx.stop();
                    return;
                }
            }
        }
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if now.duration_since(self.last_received) > LINK_TIMEOUT {
            warn!(peer = %self.peer, "peer link silent for {LINK_TIMEOUT:?}: closing it");
            ctx.stop();
            return;
        }
        if now.duration_since(self.last_sent) >= HEARTBEAT && self.backlog.is_empty() {
            let ack = Body::Ack(Ack {
                ack_serial: self.last_serial,
            });
            self.send(ack, ctx);
        }
    }

    fn on_frame(&mut self, frame: Frame, ctx: &mut Context<Self>) {
        self.last_received = Instant::now();
        self.last_serial = frame.serial;
        let Some(body) = frame.body else {
            debug!(peer = %self.peer, "frame without a body ignored");
            return;
        };
        match body {
            Body::Ack(_) => {}
            body @ (Body::LinkAdd(_) | Body::LinkDelete(_)) => match link_change_from_body(body) {
                Ok(change) => self.supervisor.do_send(PeerLinkChanges {
                    from: self.peer.clone(),
                    link: self.id,
                    changes: vec![change],
                }),
                Err(problem) => {
                    warn!(peer = %self.peer, %problem, "malformed link change ignored");
                    let error =
                        Error::new(ErrorCode::BadRequest, problem).replying_to(frame.serial);
                    self.send(Body::Error(error), ctx);
                }
            },
            Body::Bye(catalogue::Bye { reason }) => {
                info!(peer = %self.peer, %reason, "peer said goodbye");
                ctx.stop();
            }
            Body::Error(e) => {
                warn!(peer = %self.peer, code = %e.code().hex(), message = %e.message, "peer reported an error");
            }
            other => debug!(peer = %self.peer, kind = other.kind(), "ignored on a peer link"),
        }
    }
}

impl Actor for PeerLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        info!(peer = %self.peer, direction = self.direction.as_str(), link = self.id, "peer link up");
        ctx.run_interval(HEARTBEAT / 2, |act, ctx| act.heartbeat(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
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
        match item {
            Ok(frame) => self.on_frame(frame, ctx),
            Err(e) => {
                warn!(peer = %self.peer, error = %e, "closing peer link after a framing error");
                if let Some(code) = e.error_code() {
                    let _ = self
                        .outbound
                        .try_send(Body::Error(Error::new(code, e.to_string())));
                }
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<SendChanges> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: SendChanges, ctx: &mut Context<Self>) {
        for change in msg.0 {
            self.send(link_change_to_body(&change), ctx);
        }
    }
}

impl Handler<SendError> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: SendError, ctx: &mut Context<Self>) {
        self.send(Body::Error(msg.0), ctx);
    }
}

impl Handler<Close> for PeerLink {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        debug!(peer = %self.peer, link = self.id, reason = %msg.0, "closing peer link");
        self.send(Body::Bye(Bye { reason: msg.0 }), ctx);
        // The writer flushes what is queued once every sender is gone.
        ctx.stop();
    }
}
