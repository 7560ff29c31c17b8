//! The `CatalogueSupervisor` actor: one per node. It holds the node's
//! replication [`Driver`] (the services and links tables, the clock, the
//! state of its own links and of unreachable origins), the subscription
//! matcher and the record of which local connection registered which
//! service. Every change goes through it, in one order: the driver decides
//! (applies the change, says what to send to which link and how the
//! visible services moved), and the supervisor carries that out: it sends
//! to the peer links, routes events to the matching subscriptions and runs
//! the grace timers of unreachable origins. It never waits on another
//! actor.
//!
//! It also keeps the [`ServicesView`] up to date as it routes, so client
//! connections answer `List` without a message to it, and numbers every
//! visible move in the node's [`History`], so a subscription can resume
//! from a revision (docs/PROTOCOL.md §5, "Revisions and resuming a
//! watch"). What client traffic
//! can put in its mailbox is bounded (docs/OPERATIONS.md, "Limits on
//! connections and work"): client requests are awaited, at most
//! `limits.requests_in_flight_tcp` plus `limits.requests_in_flight_unix`
//! of them at once in the whole node; beyond those, one `Resnapshot` and
//! one `RemoveSubscription` per subscription place, and one
//! `ConnectionClosed` per connection.

mod digest_gate;
mod effects;
mod grouping;
mod messages;
mod owners;
mod peers;
mod replication;
mod view;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use catalogue_proto::catalogue::EventKind;
use tracing::{debug, info};

use crate::{
    frame_writer::Grouped,
    hlc::Hlc,
    matcher::Matcher,
    metrics::{ActorMetrics, Metrics},
    peer::directory::PeerDirectory,
    routed::SharedEvent,
    services::{Applied, Service},
    subscription::{
        SubKey, Subscription,
        direct::{Delivered, DirectPath},
        history::{History, Position},
        queue::Event,
    },
    sync::driver::{Driver, DriverConfig},
};
pub use messages::*;
// Named, so it is this one and not the glob-imported `actix::SendError`.
use grouping::{Grouping, group_size};
pub use messages::SendError;
use owners::Owners;
pub use view::{LinksCell, ServicesView};

/// How often expired tombstones are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);

/// Replication and visibility tuning the supervisor needs.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// How long tombstones are kept.
    pub tombstone_ttl: Duration,
    /// How long an unreachable origin's services stay visible.
    pub unreachable_grace: Duration,
    /// A batch changing more services than this reaches subscribers as a
    /// fresh snapshot rather than event by event.
    pub bulk_threshold: usize,
    /// Visible changes kept for subscriptions that resume
    /// (`limits.subscription_history`).
    pub history_window: usize,
    /// Largest frame a connection writes (`limits.max_frame_bytes`): a
    /// grouped frame names no more subscriptions than fit in it.
    pub max_frame: usize,
}

impl From<&crate::settings::Settings> for SupervisorConfig {
    /// `sync.tombstone_ttl`, `sync.unreachable_grace`,
    /// `limits.subscription_history`, and the bulk threshold: half a
    /// subscription's queue (`limits.subscription_queue`), so a batch that
    /// could fill a queue on its own goes out as a snapshot instead.
    fn from(s: &crate::settings::Settings) -> Self {
        SupervisorConfig {
            tombstone_ttl: s.sync.tombstone_ttl,
            unreachable_grace: s.sync.unreachable_grace,
            bulk_threshold: s.limits.subscription_queue / 2,
            history_window: s.limits.subscription_history,
            max_frame: s.limits.max_frame_bytes,
        }
    }
}

/// A subscription as the supervisor routes to it.
struct Routed {
    /// Its connection.
    conn: ConnId,
    addr: Addr<Subscription>,
    regex: crate::matcher::Pattern,
    /// Its live events' way straight to its connection while it is idle.
    direct: Arc<DirectPath>,
}

/// The node's supervisor.
pub struct CatalogueSupervisor {
    node: String,
    driver: Driver,
    matcher: Matcher,
    subscriptions: HashMap<SubKey, Routed>,
    /// The subscriptions of each connection, removed when it closes.
    subscriptions_by_conn: HashMap<ConnId, HashSet<SubKey>>,
    /// The visible services, for readers outside this actor.
    view: ServicesView,
    /// The links view published for other threads.
    links_cell: LinksCell,
    /// The numbered recent moves of the visible services.
    history: History,
    owners: Owners,
    /// The current link to each directly linked peer.
    peer_links: HashMap<String, peers::CurrentLink>,
    /// Known peers and their states.
    directory: PeerDirectory,
    /// Which links' initial exchanges are under way, and the links waiting
    /// for the digest until they are over.
    digest_gate: digest_gate::DigestGate,
    digest_waiters: Vec<(String, tokio::sync::oneshot::Sender<()>)>,
    config: SupervisorConfig,
    stats: Arc<Metrics>,
    metrics: ActorMetrics,
    /// Reused buffer for matcher results.
    matched: Vec<SubKey>,
    /// Scratch of [`Self::route`]: open grouped subscriptions matched, by
    /// connection.
    grouping: Grouping,
}

impl CatalogueSupervisor {
    /// A supervisor for node `node` with empty tables, born now, keeping
    /// `view` up to date.
    pub fn new(
        node: String,
        hlc: Hlc,
        directory: PeerDirectory,
        config: SupervisorConfig,
        stats: Arc<Metrics>,
        view: ServicesView,
    ) -> Self {
        let driver = Driver::new(
            node.clone(),
            hlc,
            DriverConfig {
                tombstone_ttl: config.tombstone_ttl,
            },
        );
        let links_cell = LinksCell::new(&node);
        CatalogueSupervisor {
            driver,
            node,
            matcher: Matcher::new(),
            subscriptions: HashMap::new(),
            subscriptions_by_conn: HashMap::new(),
            view,
            links_cell,
            history: History::new_epoch(config.history_window),
            owners: Owners::default(),
            peer_links: HashMap::new(),
            directory,
            digest_gate: Default::default(),
            digest_waiters: Vec::new(),
            config,
            metrics: ActorMetrics::new(stats.clone(), "supervisor"),
            stats,
            matched: Vec::new(),
            grouping: Grouping::default(),
        }
    }

    /// Applies the moves of visible services to the read view, then
    /// routes them: event by event, or, for a large change, a fresh
    /// snapshot to every subscription it touches.
    fn route_services(&mut self, services: Vec<Applied>) {
        if services.is_empty() {
            return;
        }
        let moves: Vec<Event> = services
            .into_iter()
            .filter_map(|applied| match applied {
                Applied::Added(s) | Applied::Updated { new: s, .. } => Some((EventKind::Added, s)),
                Applied::Deleted(s) => Some((EventKind::Deleted, s)),
                Applied::Invisible | Applied::Ignored => None,
            })
            .map(|(kind, service)| self.history.record(kind, service))
            .collect();
        for event in &moves {
            match event.kind {
                EventKind::Deleted => self.view.remove(&event.service.uri),
                _ => self.view.set(event.service.clone()),
            }
        }
        debug_assert_eq!(
            self.view.len(),
            self.driver.replica().services.len(),
            "the read view holds exactly the visible services"
        );
        if moves.len() > self.config.bulk_threshold {
            self.rebase(&moves);
        } else {
            for event in moves {
                self.route(event);
            }
        }
    }

    /// The cell this supervisor publishes its links view in.
    pub fn links_cell(&self) -> LinksCell {
        self.links_cell.clone()
    }

    fn update_table_gauges(&self) {
        self.links_cell.publish(self.links_view());
        let r = self.driver.replica();
        self.stats.services.set(r.services.len() as i64);
        self.stats
            .service_tombstones
            .set(r.services.tombstone_count() as i64);
        self.stats.links.set(r.links.live_count() as i64);
        self.stats
            .link_tombstones
            .set(r.links.tombstone_count() as i64);
    }

    /// A large change: every subscription it touches gets a fresh snapshot.
    fn rebase(&mut self, moves: &[Event]) {
        let mut touched = HashSet::new();
        for event in moves {
            self.matcher.matches(&event.service.uri, &mut self.matched);
            touched.extend(self.matched.iter().copied());
        }
        debug!(
            subscriptions = touched.len(),
            "large batch: fresh snapshots"
        );
        for key in touched {
            if let Some(sub) = self.subscriptions.get(&key) {
                sub.direct.via_actor();
                sub.addr.do_send(Rebase {
                    services: self.snapshot(&sub.regex),
                    at: self.history.position(),
                });
            }
        }
    }

    fn route(&mut self, event: Event) {
        self.matcher.matches(&event.service.uri, &mut self.matched);
        if self.matched.is_empty() {
            return;
        }
        // One shared copy for every subscription it matches: its fields are
        // encoded once, by the first writer that sends it.
        let event = SharedEvent::new(event);
        // Straight to the connection while the subscription has nothing
        // queued; through its actor otherwise (subscription::direct). The
        // open subscriptions of a connection whose client reads grouped
        // frames get one frame between them.
        let Grouping {
            mut index,
            mut groups,
        } = std::mem::take(&mut self.grouping);
        for key in &self.matched {
            let Some(sub) = self.subscriptions.get(key) else {
                continue;
            };
            self.stats.events_routed.inc();
            if sub.direct.grouped() && sub.direct.is_open() {
                let at = *index.entry(sub.conn).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[at].push(*key);
                continue;
            }
            self.deliver_one(sub, &event);
        }
        if !groups.is_empty() {
            let size = group_size(event.fields().as_bytes().len(), self.config.max_frame);
            for group in groups.drain(..) {
                if size < 2 {
                    for key in &group {
                        if let Some(sub) = self.subscriptions.get(key) {
                            self.deliver_one(sub, &event);
                        }
                    }
                } else {
                    for keys in group.chunks(size) {
                        self.deliver_group(keys, &event);
                    }
                }
            }
        }
        index.clear();
        // The buffers are kept for the next change.
        self.grouping = Grouping { index, groups };
    }

    /// One subscription's delivery: direct or through its actor.
    fn deliver_one(&self, sub: &Routed, event: &Arc<SharedEvent>) {
        match sub.direct.deliver(event) {
            Delivered::Directly => self.stats.events_delivered.inc(),
            Delivered::ViaActor => sub.addr.do_send(Deliver {
                event: Arc::clone(event),
            }),
        }
    }

    /// One frame for the open, grouped subscriptions `keys` of one
    /// connection; if its channel is full, each goes through its actor.
    fn deliver_group(&self, keys: &[SubKey], event: &Arc<SharedEvent>) {
        let subs: Vec<&Routed> = keys
            .iter()
            .filter_map(|key| self.subscriptions.get(key))
            .collect();
        let [first, rest @ ..] = subs.as_slice() else {
            return;
        };
        if rest.is_empty() {
            return self.deliver_one(first, event);
        }
        let group = Grouped {
            first: first.direct.id(),
            also: rest.iter().map(|sub| sub.direct.id()).collect(),
            event: Arc::clone(event),
        };
        if first.direct.deliver_group(group) {
            self.stats.events_delivered.add(subs.len() as u64);
            return;
        }
        for sub in subs {
            sub.direct.via_actor();
            sub.addr.do_send(Deliver {
                event: Arc::clone(event),
            });
        }
    }

    /// Visible services matching `regex` (shared with the read view).
    fn snapshot(&self, regex: &crate::matcher::Pattern) -> Vec<Arc<Service>> {
        self.view.matching_by(|uri| regex.is_match(uri))
    }

    /// A subscription's start: the changes since `resume` if the history
    /// holds them all, else a snapshot (a reset when `resume` was asked).
    fn begin(&self, sub: &Routed, resume: Option<Position>) {
        let (addr, regex) = (&sub.addr, &sub.regex);
        let at = self.history.position();
        // Whatever begins it goes through the actor, ahead of live events.
        sub.direct.via_actor();
        if let Some(from) = resume {
            match self.history.since(from) {
                Ok(changes) => {
                    let events = changes
                        .filter(|e| regex.is_match(&e.service.uri))
                        .cloned()
                        .collect();
                    addr.do_send(Replay { events, at });
                    self.stats.subscription_start("resumed");
                    return;
                }
                Err(gap) => debug!(%gap, "cannot resume; a fresh snapshot instead"),
            }
        }
        self.stats.subscription_start(if resume.is_some() {
            "reset"
        } else {
            "snapshot"
        });
        addr.do_send(Snapshot {
            services: self.snapshot(regex),
            at,
            reset: resume.is_some(),
        });
    }

    fn remove_subscription(&mut self, key: SubKey) {
        self.matcher.remove(key);
        self.subscriptions.remove(&key);
    }

    fn purge_tombstones(&mut self) {
        if self.driver.purge_tombstones() > 0 {
            self.update_table_gauges();
        }
    }
}

impl Actor for CatalogueSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.started();
        // No actix capacity: a full mailbox would hold back a client's
        // `send` until polled, and requests of one connection could then
        // reach the supervisor out of order. What may wait here is bounded
        // by its senders instead (the module documentation says how).
        ctx.set_mailbox_capacity(0);
        ctx.run_interval(PURGE_INTERVAL, |act, _| act.purge_tombstones());
        info!(node = %self.node, "catalogue supervisor started");
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.metrics.stopped();
    }
}

impl Handler<RegisterService> for CatalogueSupervisor {
    type Result = Result<(), RegisterError>;

    fn handle(&mut self, msg: RegisterService, ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("RegisterService");
        self.owners.claim(msg.conn, &msg.uri)?;
        let fx = self.driver.register(msg.uri, msg.attrs);
        self.execute(fx, None, ctx);
        Ok(())
    }
}

impl Handler<UnregisterService> for CatalogueSupervisor {
    type Result = Result<(), RegisterError>;

    fn handle(&mut self, msg: UnregisterService, ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("UnregisterService");
        self.owners.release(msg.conn, &msg.uri)?;
        let fx = self.driver.unregister(msg.uri);
        self.execute(fx, None, ctx);
        Ok(())
    }
}

impl Handler<ConnectionClosed> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("ConnectionClosed");
        let uris = self.owners.release_all(msg.conn);
        if !uris.is_empty() {
            debug!(
                conn = msg.conn,
                services = uris.len(),
                "connection closed; deleting its services"
            );
        }
        for uri in uris {
            let fx = self.driver.unregister(uri);
            self.execute(fx, None, ctx);
        }
        for key in self
            .subscriptions_by_conn
            .remove(&msg.conn)
            .unwrap_or_default()
        {
            self.remove_subscription(key);
        }
    }
}

impl Handler<AddSubscription> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AddSubscription, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("AddSubscription");
        let sub = Routed {
            conn: msg.conn,
            addr: msg.addr,
            regex: msg.regex,
            direct: msg.direct,
        };
        self.begin(&sub, msg.resume);
        self.matcher.insert(msg.key, sub.regex.clone());
        self.subscriptions.insert(msg.key, sub);
        self.subscriptions_by_conn
            .entry(msg.conn)
            .or_default()
            .insert(msg.key);
    }
}

impl Handler<RemoveSubscription> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RemoveSubscription, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("RemoveSubscription");
        self.remove_subscription(msg.key);
        if let Some(keys) = self.subscriptions_by_conn.get_mut(&msg.conn) {
            keys.remove(&msg.key);
            if keys.is_empty() {
                self.subscriptions_by_conn.remove(&msg.conn);
            }
        }
    }
}

impl Handler<Resnapshot> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Resnapshot, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Resnapshot");
        if let Some(sub) = self.subscriptions.get(&msg.key) {
            sub.direct.via_actor();
            sub.addr.do_send(Snapshot {
                services: self.snapshot(&sub.regex),
                at: self.history.position(),
                reset: false,
            });
        }
    }
}
