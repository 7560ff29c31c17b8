//! The `Subscription` actor: one per client subscription. It owns the
//! subscription's bounded queue ([`queue::SubscriptionQueue`]) and drains
//! it into its connection's outbound channel as fast as the client reads.
//! When the channel is full it waits for room without blocking anyone else;
//! the supervisor keeps sending events, and the queue's overflow rule keeps
//! memory bounded.
//!
//! Each subscription holds its place in the node's
//! [`ledger`] (its count) and its share of a compiled pattern
//! ([`patterns`], which carries the regex memory) until its actor is
//! dropped.
//!
//! A subscription starts *held*: it queues its snapshot and events but
//! sends nothing until its connection has written the `Success` answering
//! `Subscribe` and says [`Release`], so the answer always comes first. It
//! never tells the supervisor it is gone: its connection does (the
//! `Unsubscribe` it awaits, [`SubscriptionEnded`], or the connection's own
//! end), so a closed connection leaves no message behind.

pub mod direct;
pub mod history;
pub mod ledger;
pub mod patterns;
pub mod queue;

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::{debug, info};

use crate::{
    frame_writer::Outbound,
    metrics::{ActorMetrics, Metrics},
    settings::OverflowPolicy,
    supervisor::{Deliver, Rebase, Replay, Resnapshot, Snapshot},
};
use queue::{Outcome, SubscriptionQueue};

/// Node-wide key of a subscription (the client's id is per connection).
pub type SubKey = crate::matcher::SubKey;

/// The `Success` answering `Subscribe` has been written: frames may follow.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Release;

/// Ends the subscription; no frame of it is sent after this is handled.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Cancel;

/// Told to the connection when a subscription ends by itself (drop policy).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubscriptionEnded {
    /// The client's id of the subscription.
    pub id: u64,
    /// Its node-wide key.
    pub key: SubKey,
}

/// One subscription.
pub struct Subscription {
    key: SubKey,
    queue: SubscriptionQueue,
    outbound: mpsc::Sender<Outbound>,
    supervisor: Recipient<Resnapshot>,
    ended: Recipient<SubscriptionEnded>,
    metrics: ActorMetrics,
    /// Nothing is sent before [`Release`].
    held: bool,
    /// Queue length last reported to the queue-depth gauge.
    reported_depth: usize,
    /// A wait for room in the outbound channel is under way.
    waiting: bool,
    /// This subscription's place in the node's ledger, given back when the
    /// actor is dropped.
    _permit: ledger::Permit,
    /// Its compiled pattern, shared with the subscriptions of the same
    /// text and dropped (its regex bytes given back) with the last one.
    _pattern: Arc<patterns::SharedPattern>,
    /// Opened when the queue is empty, so the supervisor writes live
    /// events directly.
    direct: Arc<direct::DirectPath>,
}

/// What a subscription needs to start.
pub struct SubscriptionParts {
    /// Node-wide key.
    pub key: SubKey,
    /// Client's id.
    pub id: u64,
    /// Most pending events.
    pub limit: usize,
    /// Overflow policy.
    pub policy: OverflowPolicy,
    /// The connection's outbound frames.
    pub outbound: mpsc::Sender<Outbound>,
    /// Where to ask for fresh snapshots.
    pub supervisor: Recipient<Resnapshot>,
    /// The connection, told when the subscription ends by itself.
    pub ended: Recipient<SubscriptionEnded>,
    /// Counters.
    pub stats: Arc<Metrics>,
    /// Its place in the node's ledger.
    pub permit: ledger::Permit,
    /// Its compiled pattern ([`patterns::PatternCache`]).
    pub pattern: Arc<patterns::SharedPattern>,
    /// Its direct path, shared with the supervisor ([`direct`]).
    pub direct: Arc<direct::DirectPath>,
}

impl Subscription {
    /// A subscription waiting for its first snapshot.
    pub fn new(p: SubscriptionParts) -> Self {
        Subscription {
            key: p.key,
            queue: SubscriptionQueue::new(p.id, p.limit, p.policy),
            outbound: p.outbound,
            supervisor: p.supervisor,
            ended: p.ended,
            metrics: ActorMetrics::new(p.stats, "subscription"),
            held: true,
            reported_depth: 0,
            waiting: false,
            _permit: p.permit,
            _pattern: p.pattern,
            direct: p.direct,
        }
    }

    /// Reports the queue length to the queue-depth gauge.
    fn report_depth(&mut self) {
        let len = self.queue.len();
        if len != self.reported_depth {
            self.metrics
                .queue_depth(len as i64 - self.reported_depth as i64);
            self.reported_depth = len;
        }
    }

    /// Moves frames from the queue to the outbound channel while there is
    /// room; otherwise waits for room in the background.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.pump_inner(ctx);
        self.report_depth();
    }

    fn pump_inner(&mut self, ctx: &mut Context<Self>) {
        if self.waiting || self.held {
            return;
        }
        while !self.queue.is_empty() {
            match self.outbound.try_reserve() {
                Ok(permit) => {
                    if let Some(frame) = self.queue.next_outbound() {
                        permit.send(frame);
                        self.metrics.stats().events_delivered.inc();
                    }
                }
                Err(TrySendError::Full(())) => {
                    self.waiting = true;
                    let tx = self.outbound.clone();
                    ctx.spawn(
                        async move { tx.reserve_owned().await }
                            .into_actor(self)
                            .map(|permit, act, ctx| {
                                act.waiting = false;
                                match permit {
                                    Ok(permit) => {
                                        if let Some(frame) = act.queue.next_outbound() {
                                            permit.send(frame);
                                            act.metrics.stats().events_delivered.inc();
                                        }
                                        act.pump(ctx);
                                    }
                                    Err(_) => ctx.stop(),
                                }
                            }),
                    );
                    return;
                }
                Err(TrySendError::Closed(())) => {
                    ctx.stop();
                    return;
                }
            }
        }
        if self.queue.wants_snapshot() {
            self.supervisor.do_send(Resnapshot { key: self.key });
            self.queue.snapshot_requested();
        }
        if self.queue.finished() {
            self.direct.end();
            self.ended.do_send(SubscriptionEnded {
                id: self.queue.id(),
                key: self.key,
            });
            ctx.stop();
            return;
        }
        if self.queue.state() == queue::State::Live {
            // Nothing queued: the supervisor may write live events directly
            // (unless one of its messages is still on its way here).
            self.direct.try_open();
        }
    }
}

impl Actor for Subscription {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.started();
        self.metrics.stats().subscriptions.inc();
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.direct.end();
        self.metrics.stopped();
        self.metrics.queue_depth(-(self.reported_depth as i64));
        self.metrics.stats().subscriptions.dec();
    }
}

impl Handler<Deliver> for Subscription {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Deliver");
        self.direct.handled();
        match self.queue.on_event(msg.event) {
            Outcome::Queued => self.pump(ctx),
            Outcome::Dropped => self.metrics.stats().events_dropped.inc(),
            Outcome::Overflowed { dropped } => {
                self.metrics.stats().overflows.inc();
                self.metrics.stats().events_dropped.add(dropped);
                info!(
                    subscription = self.queue.id(),
                    key = self.key,
                    dropped,
                    "subscription queue overflowed; the client is not reading fast enough"
                );
                self.pump(ctx);
            }
        }
    }
}

impl Handler<Snapshot> for Subscription {
    type Result = ();

    fn handle(&mut self, msg: Snapshot, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Snapshot");
        self.direct.handled();
        debug!(
            key = self.key,
            services = msg.services.len(),
            reset = msg.reset,
            "snapshot"
        );
        self.queue.on_snapshot(msg.services, msg.at, msg.reset);
        self.pump(ctx);
    }
}

impl Handler<Replay> for Subscription {
    type Result = ();

    fn handle(&mut self, msg: Replay, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Replay");
        self.direct.handled();
        debug!(key = self.key, changes = msg.events.len(), "resumed");
        self.queue.on_replay(msg.events, msg.at);
        self.pump(ctx);
    }
}

impl Handler<Rebase> for Subscription {
    type Result = ();

    fn handle(&mut self, msg: Rebase, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Rebase");
        self.direct.handled();
        debug!(
            key = self.key,
            services = msg.services.len(),
            "rebased on a fresh snapshot"
        );
        self.queue.on_rebase(msg.services, msg.at);
        self.pump(ctx);
    }
}

impl Handler<Release> for Subscription {
    type Result = ();

    fn handle(&mut self, _msg: Release, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Release");
        self.held = false;
        self.pump(ctx);
    }
}

impl Handler<Cancel> for Subscription {
    type Result = ();

    fn handle(&mut self, _msg: Cancel, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Cancel");
        self.direct.end();
        ctx.stop();
    }
}
