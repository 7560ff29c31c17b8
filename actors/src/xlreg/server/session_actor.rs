//! `RegistrySession`: one actor per connection once the Hello exchange is
//! done. It reads session frames, lets [`SessionState`] decide, asks the
//! `Registry` actor, and writes the replies, one request at a time in the
//! order they came.
//!
//! While the client is not identified, the session holds one of the
//! `max_handshakes` permits and must identify before the handshake
//! deadline, else it is closed. A frame that does not open (bad tag, bad
//! padding, bad length) or does not decode closes the connection without a
//! word. A refused request gets `Error`, then the connection closes; `Bye`
//! gets `Ack`, then it closes. An identified session that stays silent for
//! `xlreg.idle_timeout` is closed too. The session holds its source's
//! connection slot ([`super::sources::SourceGuard`]) until it ends.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use actix::{io::FramedWrite, prelude::*};
use tokio::{
    net::{TcpStream, tcp::OwnedWriteHalf},
    sync::{OwnedSemaphorePermit, watch},
};
use tokio_util::codec::FramedRead;
use tracing::{debug, info};

use super::{
    Shared,
    registry_actor::{Execute, Executed},
    sources::SourceGuard,
};
use crate::xlreg::{
    crypto::{Salt, SessionKeys},
    ext::Envelope,
    frame::{FrameError, MsgDecoder, MsgEncoder, Role},
    protocol::Reply,
    registry::RegistryError,
    session::{Next, SessionState},
};

/// How often idleness is checked: a quarter of the idle timeout, between
/// 1 s and 30 s.
fn idle_check(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// One client connection after the Hello.
pub struct RegistrySession {
    peer: SocketAddr,
    state: SessionState,
    writer: FramedWrite<Envelope, OwnedWriteHalf, MsgEncoder>,
    shared: Arc<Shared>,
    /// Held until the client is identified.
    permit: Option<OwnedSemaphorePermit>,
    /// This connection's place among its source's open connections.
    _source: SourceGuard,
    handshake_deadline: Instant,
    last_seen: Instant,
    stop: watch::Receiver<bool>,
}

impl RegistrySession {
    /// Starts the session on `stream`, whose HelloReply carried `keys` and
    /// `salt2`.
    #[allow(clippy::too_many_arguments)] // each is a part of the session
    pub fn start(
        stream: TcpStream,
        peer: SocketAddr,
        keys: &SessionKeys,
        salt2: Salt,
        permit: OwnedSemaphorePermit,
        source: SourceGuard,
        handshake_deadline: Instant,
        shared: Arc<Shared>,
    ) -> Addr<RegistrySession> {
        let (read, write) = stream.into_split();
        let stop = shared.stop.clone();
        RegistrySession::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read, MsgDecoder(keys.opener(Role::Server))));
            RegistrySession {
                peer,
                state: SessionState::new(salt2),
                writer: FramedWrite::new(write, MsgEncoder(keys.sealer(Role::Server)), ctx),
                shared,
                permit: Some(permit),
                _source: source,
                handshake_deadline,
                last_seen: Instant::now(),
                stop,
            }
        })
    }

    /// Sends `reply` and closes once it is written.
    fn finish(&mut self, reply: Reply) {
        self.writer
            .write(reply.to_envelope(self.state.extensions()));
        self.writer.close();
    }

    fn executed(&mut self, result: Result<Result<Executed, RegistryError>, MailboxError>) {
        let done = match result {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                if matches!(
                    e,
                    RegistryError::NotAdmitted(_) | RegistryError::TooManyClusters { .. }
                ) {
                    info!(peer = %self.peer, error = %e, reason = e.reason(), "xlReg request refused");
                } else {
                    debug!(peer = %self.peer, error = %e, "xlReg request refused");
                }
                if let Next::ReplyAndClose(reply) = self.state.fail(e.to_string()) {
                    self.finish(reply);
                }
                return;
            }
            Err(e) => {
                debug!(peer = %self.peer, error = %e, "xlReg registry unavailable");
                if let Next::ReplyAndClose(reply) = self.state.fail("registry unavailable".into()) {
                    self.finish(reply);
                }
                return;
            }
        };
        let was_identified = self.state.identified();
        self.state.executed(done.client, done.cluster);
        if !was_identified && self.state.identified() {
            self.permit = None;
            self.shared
                .stats
                .handshakes_completed
                .fetch_add(1, Ordering::Relaxed);
            debug!(peer = %self.peer, "xlReg client identified");
        }
        self.writer
            .write(done.reply.to_envelope(self.state.extensions()));
    }
}

impl Actor for RegistrySession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(m) = &self.shared.session_metrics {
            m.started();
        }
        self.shared
            .stats
            .sessions_open
            .fetch_add(1, Ordering::Relaxed);
        let left = self
            .handshake_deadline
            .saturating_duration_since(Instant::now());
        ctx.run_later(left, |act, ctx| {
            if !act.state.identified() && !act.state.closing() {
                act.shared
                    .stats
                    .handshake_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                debug!(peer = %act.peer, "xlReg handshake timed out; closing");
                ctx.stop();
            }
        });
        let idle_timeout = self.shared.idle_timeout;
        ctx.run_interval(idle_check(idle_timeout), move |act, ctx| {
            if act.last_seen.elapsed() > idle_timeout {
                act.shared.stats.idle_closed.fetch_add(1, Ordering::Relaxed);
                debug!(peer = %act.peer, "xlReg session idle; closing");
                ctx.stop();
            }
        });
        let mut stop = self.stop.clone();
        ctx.spawn(
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(m) = &self.shared.session_metrics {
            m.stopped();
        }
        self.shared
            .stats
            .sessions_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl StreamHandler<Result<Envelope, FrameError>> for RegistrySession {
    fn handle(&mut self, item: Result<Envelope, FrameError>, ctx: &mut Context<Self>) {
        let metrics = self.shared.session_metrics.clone();
        let _timer = metrics.as_ref().map(|m| m.handling("XLRegMsg"));
        self.last_seen = Instant::now();
        let msg = match item {
            Ok(msg) => msg,
            Err(e) => {
                self.shared
                    .stats
                    .frames_refused
                    .fetch_add(1, Ordering::Relaxed);
                debug!(peer = %self.peer, error = %e, "xlReg frame refused; closing silently");
                ctx.stop();
                return;
            }
        };
        match self.state.receive(msg) {
            None => {}
            Some(Next::ReplyAndClose(reply)) => self.finish(reply),
            Some(Next::Execute(request)) => {
                let execute = Execute {
                    context: self.state.context().clone(),
                    request,
                };
                ctx.wait(
                    self.shared
                        .registry
                        .send(execute)
                        .into_actor(self)
                        .map(|result, act, _| act.executed(result)),
                );
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        // The client closed its side. A final reply still being written
        // finishes first (the writer stops the actor); otherwise stop now.
        if !self.state.closing() {
            ctx.stop();
        }
    }
}

impl actix::io::WriteHandler<FrameError> for RegistrySession {
    fn error(&mut self, err: FrameError, _: &mut Context<Self>) -> Running {
        debug!(peer = %self.peer, error = %err, "xlReg write failed");
        Running::Stop
    }
}
