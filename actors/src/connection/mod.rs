//! The `ClientConnection` actor: one per accepted client socket (TCP or
//! UNIX). It reads frames (the codec is the only parser; the node's input
//! limits, `crate::input`, bound what a partial frame holds and for how
//! long, and a breach closes the connection), turns each request
//! into a reply, owns the subscriptions and the registrations of its
//! connection, and hands every outgoing frame body to the connection's
//! writer task ([`crate::frame_writer`]) through a bounded channel.
//!
//! Back-pressure and order. The connection reads at most
//! `limits.requests_in_flight` requests ahead of its answers: a request
//! takes a permit before its frame is read ([`gated`]) and gives it back
//! once its answer has been written to the outbound channel, so a client
//! that sends faster than the node answers (or than it reads) finds the
//! node not reading. All the connections of a transport share a second
//! bound, held from the read until the answer is known: the node's work
//! for them is bounded whatever their number. A request that needs the
//! supervisor is sent to it at once with `send` and answered when the
//! supervisor has done it (never answered first and done later), so what
//! a client can make the supervisor do is bounded by its requests in
//! flight. When the outbound channel is full, the front answer waits for
//! room in the background and the others wait behind it. Answers leave in
//! request order ([`pipeline`]) and their effects on the connection's own
//! state (what it registered) are applied in that order; a `List` is
//! evaluated when it reaches the front, after the requests before it took
//! effect, from the supervisor's read view. When the connection ends, the
//! futures awaiting the supervisor are dropped, and the supervisor skips
//! requests whose asker is gone: nothing is done for a closed connection.
//!
//! A connection that holds nothing (no registration, no subscription, no
//! request in flight) and sends nothing for `limits.idle_timeout` is told
//! `Bye` and closed.

pub mod auth;
pub mod listing;
pub mod pipeline;
mod requests;
pub mod tls;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use actix::prelude::*;
use catalogue_proto::{
    Body, CodecError, Frame,
    catalogue::{Bye, Error},
};
use futures_util::{Stream, StreamExt, future::join_all, stream};
use tokio::sync::{
    OwnedSemaphorePermit, Semaphore,
    mpsc::{self, error::TrySendError},
    watch,
};
use tracing::{debug, info};

use crate::{
    admission::ConnectionSlot,
    frame_writer::Outbound,
    input,
    log_limit::LogLimit,
    metrics::{ActorMetrics, Counter, Gauge, Metrics},
    services::SharedStr,
    settings::LimitsSettings,
    subscription::{
        Cancel, Release, SubKey, Subscription, SubscriptionEnded, direct::DirectPath,
        ledger::SharedLedger,
    },
    supervisor::{CatalogueSupervisor, ConnId, ConnectionClosed, RemoveSubscription, ServicesView},
};
use auth::{RegisterPolicy, Transport};
use pipeline::{Pipeline, Seq};

/// What every connection of a node shares.
#[derive(Debug)]
pub struct ClientShared {
    /// Limits on requests.
    pub limits: LimitsSettings,
    /// Who may register (replaced on reload).
    pub policy: std::sync::RwLock<RegisterPolicy>,
    /// The node's supervisor.
    pub supervisor: Addr<CatalogueSupervisor>,
    /// The visible services, kept by the supervisor; `List` reads it.
    pub view: ServicesView,
    /// Counters.
    pub stats: Arc<Metrics>,
    /// Source of node-wide subscription keys.
    pub next_key: AtomicU64,
    /// Subscriptions per node, uid and address, and their regex memory.
    pub subscriptions: SharedLedger,
    /// Compiled subscription patterns, one per distinct text.
    pub patterns: crate::subscription::patterns::PatternCache,
    /// Where listings are built, off the node's thread.
    pub reader: crate::reader::Reader,
    /// Rate of the lines every connection may cause (refused
    /// registrations, framing errors): at most one per reason per interval.
    pub log: std::sync::Mutex<LogLimit>,
}

impl ClientShared {
    /// A fresh node-wide subscription key.
    pub fn new_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs `log` (given how many lines of `reason` were left out) unless
    /// a line of `reason` was written too recently; counts what it leaves
    /// out.
    fn log_limited(&self, reason: &'static str, log: impl FnOnce(u64)) {
        let logged = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .check(reason, Instant::now());
        match logged {
            Some(unlogged) => log(unlogged),
            None => self.stats.log_lines_suppressed.inc(),
        }
    }
}

/// One request read and not yet answered: its connection's permit, given
/// back (and the in-flight gauge lowered) when it is dropped, after the
/// answer was handed to the connection's writer; and its transport's
/// permit, given back as soon as the answer is known
/// ([`InFlight::answered`]), so a client that does not read its answers
/// holds only its own connection's permits, never its transport's share.
#[derive(Debug)]
pub struct InFlight {
    _connection: OwnedSemaphorePermit,
    transport: Option<OwnedSemaphorePermit>,
    gauge: Gauge,
}

impl InFlight {
    fn new(
        connection: OwnedSemaphorePermit,
        transport: OwnedSemaphorePermit,
        gauge: Gauge,
    ) -> Self {
        gauge.inc();
        InFlight {
            _connection: connection,
            transport: Some(transport),
            gauge,
        }
    }

    /// The answer is known (or, for a `List`, needs nothing of the
    /// supervisor): the transport's share is free again.
    pub(super) fn answered(&mut self) {
        self.transport = None;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A permit of `semaphore`, counting in `paused` when it had to wait.
async fn permit(semaphore: &Arc<Semaphore>, paused: &Counter) -> Option<OwnedSemaphorePermit> {
    match semaphore.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) => {
            paused.inc();
            semaphore.clone().acquire_owned().await.ok()
        }
    }
}

/// The frames of `read`, each with its [`InFlight`] permits. A frame is
/// read only once one of the connection's `limit` permits is free, so the
/// connection stops reading while `limit` requests wait for their
/// answers; once read, it waits for a permit of `transport`, the
/// node-wide share of its transport (`limits.requests_in_flight_tcp` or
/// `_unix`, a fair queue), so all the connections of one transport
/// together have a bounded number of requests in the node, and TCP
/// clients never take the UNIX socket's share.
pub fn gated<S>(
    read: S,
    limit: usize,
    transport: Arc<Semaphore>,
    stats: Arc<Metrics>,
) -> impl Stream<Item = (Result<Frame, CodecError>, InFlight)>
where
    S: Stream<Item = Result<Frame, CodecError>> + Unpin + 'static,
{
    let own = Arc::new(Semaphore::new(limit));
    stream::unfold(
        (read, own, transport, stats),
        |(mut read, own, transport, stats)| async move {
            let connection = permit(&own, &stats.reads_paused).await?;
            let item = read.next().await?;
            let shared = permit(&transport, &stats.reads_paused).await?;
            let in_flight = InFlight::new(connection, shared, stats.requests_in_flight.clone());
            Some(((item, in_flight), (read, own, transport, stats)))
        },
    )
}

/// What a request's answer does to the connection when it leaves the
/// pipeline (in request order).
#[derive(Debug)]
enum Effect {
    None,
    /// A registration was answered; `counted` if it was counted in
    /// `registering` when sent.
    Register {
        uri: SharedStr,
        ok: bool,
        counted: bool,
    },
    /// An unregistration was answered.
    Unregister {
        uri: String,
    },
    /// A subscription may send once its `Success` is written.
    Release(Addr<Subscription>),
}

/// A request's answer.
#[derive(Debug)]
struct Answer {
    body: Body,
    effect: Effect,
}

impl Answer {
    fn plain(body: Body) -> Self {
        Answer {
            body,
            effect: Effect::None,
        }
    }
}

/// A place in the pipeline.
enum Step {
    /// An answer to write.
    Answer(Answer, InFlight),
    /// A `List`, evaluated when it reaches the front (so it sees the
    /// effect of every request before it), on the reader thread
    /// ([`listing::answer`]); with `stream`, in as many frames as it
    /// takes.
    List(listing::ListRequest, InFlight),
    /// Close after everything before it, with this last frame.
    Close(Option<Body>),
}

/// An answer leaving the pipeline: its frames, then what follows once the
/// last is in the outbound channel.
struct Outgoing {
    frames: Frames,
    release: Option<Addr<Subscription>>,
    permit: Option<InFlight>,
    close: bool,
}

/// The frame of an answer, until it is sent.
struct Frames(Option<Body>);

impl Frames {
    fn next(&mut self) -> Option<Body> {
        self.0.take()
    }
}

/// One client connection.
pub struct ClientConnection {
    id: ConnId,
    transport: Transport,
    outbound: mpsc::Sender<Outbound>,
    shared: Arc<ClientShared>,
    /// By the client's id: the node-wide key and the actor.
    /// Each subscription's key, actor and direct path; the path is ended
    /// as the `Cancel` is sent, so that no event is written directly
    /// after it (subscription::direct).
    subscriptions: HashMap<u64, (SubKey, Addr<Subscription>, Arc<DirectPath>)>,
    /// URIs this connection registered (for the per-connection limit),
    /// shared with the services table's entries.
    registered: HashSet<SharedStr>,
    /// Registrations of new URIs sent and not yet answered (they count
    /// against the limit too).
    registering: usize,
    /// Requests read and not yet answered, in order.
    /// Boxed: a pipeline keeps the room it once grew to, and a place
    /// then costs a pointer, not a whole step.
    pipeline: Pipeline<Box<Step>>,
    /// The answer at the front, waiting for room in the outbound channel
    /// (a wait is under way when this is set).
    stalled: Option<Outgoing>,
    /// A close is in the pipeline: frames read after it are dropped.
    closing: bool,
    /// The reader thread is sending a listing's frames: the answers
    /// behind it wait.
    listing: bool,
    /// When the last frame was read.
    last_read: Instant,
    stop: watch::Receiver<bool>,
    metrics: ActorMetrics,
    /// The connection's place under its transport's limit.
    _slot: ConnectionSlot,
}

impl ClientConnection {
    /// A connection that writes through `outbound`, holds `slot` while it
    /// lives and stops when `stop` turns true.
    pub fn new(
        id: ConnId,
        transport: Transport,
        outbound: mpsc::Sender<Outbound>,
        shared: Arc<ClientShared>,
        stop: watch::Receiver<bool>,
        slot: ConnectionSlot,
    ) -> Self {
        ClientConnection {
            id,
            transport,
            outbound,
            subscriptions: HashMap::new(),
            registered: HashSet::new(),
            registering: 0,
            pipeline: Pipeline::default(),
            stalled: None,
            closing: false,
            listing: false,
            last_read: Instant::now(),
            stop,
            metrics: ActorMetrics::new(shared.stats.clone(), "client_connection"),
            shared,
            _slot: slot,
        }
    }

    /// The listener this connection came in on, for metrics.
    fn listener(&self) -> &'static str {
        match self.transport {
            Transport::Unix { .. } => "unix",
            Transport::Tcp { .. } => "tcp",
        }
    }

    /// Says `Bye` after ending every subscription, then stops.
    fn goodbye(&mut self, ctx: &mut Context<Self>) {
        let cancels: Vec<_> = self
            .subscriptions
            .drain()
            .map(|(_, (_, addr, direct))| {
                direct.end();
                addr.send(Cancel)
            })
            .collect();
        let tx = self.outbound.clone();
        ctx.wait(
            async move {
                join_all(cancels).await;
                let _ = tx
                    .send(Outbound::from(Body::Bye(Bye {
                        reason: "shutting down".into(),
                    })))
                    .await;
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        );
    }

    /// Answers at once (in order after what is before it).
    fn answer_now(&mut self, answer: Answer, mut permit: InFlight, ctx: &mut Context<Self>) {
        permit.answered();
        self.pipeline
            .push_done(Box::new(Step::Answer(answer, permit)));
        self.drain(ctx);
    }

    /// Answers with what `fut` yields, in order.
    fn answer_later<F>(&mut self, permit: InFlight, fut: F, ctx: &mut Context<Self>)
    where
        F: ActorFuture<Self, Output = Answer> + 'static,
    {
        let seq: Seq = self.pipeline.push_waiting();
        ctx.spawn(fut.map(move |answer, act: &mut Self, ctx| {
            let mut permit = permit;
            permit.answered();
            // A place is filled once; nothing else fills it.
            let _ = act
                .pipeline
                .fill(seq, Box::new(Step::Answer(answer, permit)));
            act.drain(ctx);
        }));
    }

    /// Closes once every request before has been answered, `last` (a
    /// `Bye` or `Error`) being the last frame.
    fn close(&mut self, last: Option<Body>, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.pipeline.push_done(Box::new(Step::Close(last)));
        self.drain(ctx);
    }

    /// Hands the answers at the front of the pipeline to the outbound
    /// channel and applies their effects, in order. When the channel is
    /// full, the front answer waits for room (in the background: the
    /// actor goes on reading up to its bound) and the rest wait behind it.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        loop {
            if self.stalled.is_some() || self.listing {
                return;
            }
            let Some(step) = self.pipeline.pop_ready() else {
                return;
            };
            let Some(out) = self.outgoing(*step, ctx) else {
                // A listing: the reader thread sends it, and drains on.
                return;
            };
            if !self.send_out(out, ctx) {
                return;
            }
        }
    }

    /// Hands `out`'s frames to the outbound channel; when it is full,
    /// waits for room in the background (the answer is then `stalled`,
    /// and the ones behind it wait) and goes on from there. True when
    /// every frame went out and the actor goes on.
    fn send_out(&mut self, mut out: Outgoing, ctx: &mut Context<Self>) -> bool {
        while let Some(body) = out.frames.next() {
            match self.outbound.try_reserve() {
                Ok(room) => room.send(Outbound::from(body)),
                Err(TrySendError::Full(())) => {
                    self.stalled = Some(out);
                    let tx = self.outbound.clone();
                    ctx.spawn(
                        async move { tx.reserve_owned().await }
                            .into_actor(self)
                            .map(move |room, act: &mut Self, ctx| {
                                let (Ok(room), Some(out)) = (room, act.stalled.take()) else {
                                    ctx.stop();
                                    return;
                                };
                                room.send(Outbound::from(body));
                                if act.send_out(out, ctx) {
                                    act.drain(ctx);
                                }
                            }),
                    );
                    return false;
                }
                Err(TrySendError::Closed(())) => {
                    ctx.stop();
                    return false;
                }
            }
        }
        self.delivered(out, ctx)
    }

    /// The answer for a step at the front of the pipeline; none for a
    /// listing, which is handed to the reader thread instead.
    fn outgoing(&mut self, step: Step, ctx: &mut Context<Self>) -> Option<Outgoing> {
        match step {
            Step::Answer(answer, permit) => {
                let release = self.apply(answer.effect);
                Some(Outgoing {
                    frames: Frames(Some(answer.body)),
                    release,
                    permit: Some(permit),
                    close: false,
                })
            }
            Step::List(request, permit) => {
                self.start_listing(request, permit, ctx);
                None
            }
            Step::Close(body) => Some(Outgoing {
                frames: Frames(body),
                release: None,
                permit: None,
                close: true,
            }),
        }
    }

    /// Hands the listing at the front to the reader thread, which sends
    /// its frames; the answers behind it go on when it is done.
    fn start_listing(
        &mut self,
        request: listing::ListRequest,
        permit: InFlight,
        ctx: &mut Context<Self>,
    ) {
        self.listing = true;
        let job = listing::answer(
            request,
            self.shared.view.clone(),
            self.shared.limits.max_frame_bytes,
            self.outbound.clone(),
        );
        let done = self.shared.reader.run(job);
        ctx.spawn(
            done.into_actor(self)
                .map(move |listed, act: &mut Self, ctx| {
                    drop(permit);
                    act.listing = false;
                    match listed {
                        Ok(listing::Listed::Sent(_)) => act.drain(ctx),
                        Ok(listing::Listed::TooLarge(count)) => {
                            info!(conn = act.id, count, "list reply too large for one frame");
                            act.drain(ctx);
                        }
                        Ok(listing::Listed::Gone) | Err(_) => ctx.stop(),
                    }
                }),
        );
    }

    /// What follows an answer's frame: the subscription it started may
    /// send, its permit comes back, a close stops the actor. False when
    /// the actor stops.
    fn delivered(&mut self, out: Outgoing, ctx: &mut Context<Self>) -> bool {
        if let Some(subscription) = out.release {
            subscription.do_send(Release);
        }
        drop(out.permit);
        if out.close {
            ctx.stop();
            return false;
        }
        true
    }

    fn apply(&mut self, effect: Effect) -> Option<Addr<Subscription>> {
        match effect {
            Effect::None => None,
            Effect::Register { uri, ok, counted } => {
                if counted {
                    self.registering = self.registering.saturating_sub(1);
                }
                if ok {
                    self.registered.insert(uri);
                }
                None
            }
            Effect::Unregister { uri } => {
                self.registered.remove(uri.as_str());
                None
            }
            Effect::Release(addr) => Some(addr),
        }
    }

    /// Holds nothing the node keeps for it, and waits for no answer.
    fn holds_nothing(&self) -> bool {
        self.registered.is_empty()
            && self.registering == 0
            && self.subscriptions.is_empty()
            && self.pipeline.is_empty()
            && self.stalled.is_none()
            && !self.listing
    }

    fn idle_check(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let timeout = self.shared.limits.idle_timeout;
        let quiet = self.last_read.elapsed();
        if !self.holds_nothing() {
            ctx.run_later(timeout, Self::idle_check);
            return;
        }
        if quiet < timeout {
            ctx.run_later(timeout - quiet, Self::idle_check);
            return;
        }
        self.shared.stats.idle_closed.inc();
        debug!(conn = self.id, transport = %self.transport, quiet = ?quiet, "closing idle client connection");
        let reason = format!(
            "idle for {} holding nothing (limits.idle_timeout)",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
            ))
        );
        self.close(Some(Body::Bye(Bye { reason })), ctx);
    }
}

impl Actor for ClientConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.started();
        self.shared.stats.connections.inc();
        debug!(conn = self.id, transport = %self.transport, "client connected");
        ctx.run_later(self.shared.limits.idle_timeout, Self::idle_check);
        let mut stop = self.stop.clone();
        ctx.spawn(
            async move {
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| act.goodbye(ctx)),
        );
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.stopped();
        self.shared.stats.connections.dec();
        for (_, (_, addr, direct)) in self.subscriptions.drain() {
            direct.end();
            addr.do_send(Cancel);
        }
        self.shared
            .supervisor
            .do_send(ConnectionClosed { conn: self.id });
        debug!(conn = self.id, "client disconnected");
    }
}

impl StreamHandler<(Result<Frame, CodecError>, InFlight)> for ClientConnection {
    fn handle(&mut self, item: (Result<Frame, CodecError>, InFlight), ctx: &mut Context<Self>) {
        let (item, permit) = item;
        let _timer = self
            .metrics
            .handling(item.as_ref().map_or("FramingError", Frame::kind));
        self.last_read = Instant::now();
        if self.closing {
            return;
        }
        match item {
            Ok(frame) => self.request(frame, permit, ctx),
            Err(e) => {
                self.shared.stats.framing_errors.inc();
                self.shared.stats.input_closed(self.listener(), &e);
                let (conn, transport) = (self.id, &self.transport);
                self.shared.log_limited("framing", |unlogged| {
                    info!(conn, %transport, error = %e, unlogged, "closing client connection");
                });
                let last = e
                    .error_code()
                    .map(|code| Body::Error(Error::new(code, input::closing_message(&e))));
                drop(permit);
                self.close(last, ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        self.close(None, ctx);
    }
}

impl Handler<SubscriptionEnded> for ClientConnection {
    type Result = ();

    fn handle(&mut self, msg: SubscriptionEnded, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("SubscriptionEnded");
        if self
            .subscriptions
            .get(&msg.id)
            .is_some_and(|(key, ..)| *key == msg.key)
        {
            self.subscriptions.remove(&msg.id);
        }
        self.shared.supervisor.do_send(RemoveSubscription {
            conn: self.id,
            key: msg.key,
        });
    }
}
