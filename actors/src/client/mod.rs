//! The `ClientConnection` actor: one per accepted client socket (TCP or
//! UNIX). It reads frames (the codec is the only parser; the node's input
//! limits, `crate::input`, bound what a partial frame holds and for how
//! long, and a breach closes the connection), turns each request
//! into a reply, owns the subscriptions and the registrations of its
//! connection, and hands every outgoing frame body to the connection's
//! writer task ([`writer`]) through a bounded channel.
//!
//! Requests are handled one at a time, in order: while a request waits (for
//! the supervisor, or for room in the outbound channel) the actor reads
//! nothing more, so a client that sends without reading is slowed down
//! rather than buffered without bound.

pub mod auth;
mod requests;
pub mod writer;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use actix::prelude::*;
use catalogue_proto::{
    Body, CodecError, Frame,
    catalogue::{Bye, Error},
};
use futures_util::future::join_all;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use crate::{
    input,
    settings::LimitsSettings,
    stats::{ActorMetrics, Stats},
    subscription::{Cancel, Subscription, SubscriptionEnded, ledger::SharedLedger},
    supervisor::{CatalogueSupervisor, ConnId, ConnectionClosed},
};
use auth::{RegisterPolicy, Transport};

/// What every connection of a node shares.
#[derive(Debug)]
pub struct ClientShared {
    /// Limits on requests.
    pub limits: LimitsSettings,
    /// Who may register (replaced on reload).
    pub policy: std::sync::RwLock<RegisterPolicy>,
    /// The node's supervisor.
    pub supervisor: Addr<CatalogueSupervisor>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Source of node-wide subscription keys.
    pub next_key: AtomicU64,
    /// Subscriptions per node, uid and address, and their regex memory.
    pub subscriptions: SharedLedger,
}

impl ClientShared {
    fn new_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }
}

/// One client connection.
pub struct ClientConnection {
    id: ConnId,
    transport: Transport,
    outbound: mpsc::Sender<Body>,
    shared: Arc<ClientShared>,
    subscriptions: HashMap<u64, Addr<Subscription>>,
    /// URIs this connection registered (for the per-connection limit).
    registered: std::collections::HashSet<String>,
    stop: watch::Receiver<bool>,
    metrics: ActorMetrics,
}

impl ClientConnection {
    /// A connection that writes through `outbound` and stops when `stop`
    /// turns true.
    pub fn new(
        id: ConnId,
        transport: Transport,
        outbound: mpsc::Sender<Body>,
        shared: Arc<ClientShared>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        ClientConnection {
            id,
            transport,
            outbound,
            subscriptions: HashMap::new(),
            registered: Default::default(),
            stop,
            metrics: ActorMetrics::new(shared.stats.clone(), "client_connection"),
            shared,
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
            .map(|(_, addr)| addr.send(Cancel))
            .collect();
        let tx = self.outbound.clone();
        ctx.wait(
            async move {
                join_all(cancels).await;
                let _ = tx
                    .send(Body::Bye(Bye {
                        reason: "shutting down".into(),
                    }))
                    .await;
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        );
    }
}

impl Actor for ClientConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.started();
        self.shared.stats.connections.inc();
        debug!(conn = self.id, transport = %self.transport, "client connected");
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
        for (_, addr) in self.subscriptions.drain() {
            addr.do_send(Cancel);
        }
        self.shared
            .supervisor
            .do_send(ConnectionClosed { conn: self.id });
        debug!(conn = self.id, "client disconnected");
    }
}

impl StreamHandler<Result<Frame, CodecError>> for ClientConnection {
    fn handle(&mut self, item: Result<Frame, CodecError>, ctx: &mut Context<Self>) {
        let _timer = self
            .metrics
            .handling(item.as_ref().map_or("FramingError", Frame::kind));
        match item {
            Ok(frame) => {
                let reply = self.request(frame, ctx);
                ctx.wait(reply);
            }
            Err(e) => {
                info!(conn = self.id, transport = %self.transport, error = %e, "closing client connection");
                self.shared.stats.input_closed(self.listener(), &e);
                if let Some(code) = e.error_code() {
                    let _ = self
                        .outbound
                        .try_send(Body::Error(Error::new(code, input::closing_message(&e))));
                }
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<SubscriptionEnded> for ClientConnection {
    type Result = ();

    fn handle(&mut self, msg: SubscriptionEnded, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("SubscriptionEnded");
        self.subscriptions.remove(&msg.id);
    }
}
