//! The `CatalogueSupervisor` actor: one per node. It owns the replicated
//! tables (services and links, in a [`Replica`]), the clock, the
//! subscription matcher and the record of which local connection
//! registered which service. Every change goes through it, in one order:
//! it applies the change, routes the resulting event to the matching
//! subscriptions, and sends the change to every peer link (except the one
//! it came from). It never waits on another actor.
//!
//! Services whose origin is no longer reachable in the links graph are
//! withdrawn from subscribers (delete events) after `sync.unreachable_grace`
//! and return (add events) when their origin is reachable again; the table
//! keeps them meanwhile.

mod links;
mod messages;
mod owners;
mod replication;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use actix::prelude::*;
use catalogue_proto::catalogue::EventKind;
use tracing::{debug, info};

use crate::{
    hlc::{Hlc, Timestamp},
    matcher::Matcher,
    peer::directory::PeerDirectory,
    services::{Applied, Change, Service},
    stats::{ActorMetrics, Stats},
    subscription::{Deliver, Rebase, Snapshot, SubKey, Subscription, queue::Event},
    sync::{
        entry::SyncEntry,
        replica::{BatchOutcome, Replica},
    },
};
pub use messages::*;
use owners::Owners;

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
}

/// The node's supervisor.
pub struct CatalogueSupervisor {
    node: String,
    replica: Replica,
    hlc: Hlc,
    matcher: Matcher,
    subscriptions: HashMap<SubKey, (Addr<Subscription>, regex::Regex)>,
    owners: Owners,
    /// The current link to each directly linked peer.
    peer_links: HashMap<String, links::CurrentLink>,
    /// Known peers and their states.
    directory: PeerDirectory,
    config: SupervisorConfig,
    /// Unreachable origins waiting out the grace period, by generation.
    hiding: HashMap<String, u64>,
    next_generation: u64,
    stats: Arc<Stats>,
    metrics: ActorMetrics,
    /// Reused buffer for matcher results.
    matched: Vec<SubKey>,
}

impl CatalogueSupervisor {
    /// A supervisor for node `node` with empty tables.
    pub fn new(
        node: String,
        mut hlc: Hlc,
        directory: PeerDirectory,
        config: SupervisorConfig,
        stats: Arc<Stats>,
    ) -> Self {
        // This life begins now: entries of our origin older than this are
        // from a previous run, and dead.
        let born = hlc.now();
        CatalogueSupervisor {
            replica: Replica::born_at(node.clone(), born),
            node,
            hlc,
            matcher: Matcher::new(),
            subscriptions: HashMap::new(),
            owners: Owners::default(),
            peer_links: HashMap::new(),
            directory,
            config,
            hiding: HashMap::new(),
            next_generation: 0,
            metrics: ActorMetrics::new(stats.clone(), "supervisor"),
            stats,
            matched: Vec::new(),
        }
    }

    /// Applies a change made on this node, routes its event and sends it to
    /// every peer.
    fn apply_local(&mut self, entry: SyncEntry, ctx: &mut Context<Self>) {
        let mut outcome = BatchOutcome::default();
        if self.replica.apply_entry(&entry, &mut outcome) {
            self.broadcast(vec![entry], None);
        }
        self.route_outcome(outcome, ctx);
    }

    /// Routes the services events of an applied batch; reacts to link
    /// changes.
    fn route_outcome(&mut self, outcome: BatchOutcome, ctx: &mut Context<Self>) {
        if outcome.services.len() > self.config.bulk_threshold {
            self.rebase(&outcome.services);
        } else {
            self.route_each(outcome.services);
        }
        self.update_table_gauges();
        if outcome.links_changed {
            self.reachability_changed(ctx);
        }
    }

    fn update_table_gauges(&self) {
        let r = &self.replica;
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
    fn rebase(&mut self, services: &[Applied]) {
        let mut touched = HashSet::new();
        let uris = services
            .iter()
            .filter_map(|a| match a {
                Applied::Added(s) | Applied::Updated { new: s, .. } | Applied::Deleted(s) => {
                    Some(s.uri.clone())
                }
                Applied::Invisible | Applied::Ignored => None,
            })
            .collect::<Vec<_>>();
        for uri in uris {
            self.matcher.matches(&uri, &mut self.matched);
            touched.extend(self.matched.iter().copied());
        }
        debug!(
            subscriptions = touched.len(),
            "large batch: fresh snapshots"
        );
        for key in touched {
            if let Some((addr, regex)) = self.subscriptions.get(&key) {
                addr.do_send(Rebase(self.snapshot(regex)));
            }
        }
    }

    /// Routes an event for each move of a visible entry.
    fn route_each(&mut self, services: Vec<Applied>) {
        for applied in services {
            match applied {
                Applied::Added(s) | Applied::Updated { new: s, .. } => {
                    self.route(EventKind::Added, s)
                }
                Applied::Deleted(s) => self.route(EventKind::Deleted, s),
                Applied::Invisible | Applied::Ignored => {}
            }
        }
    }

    fn route(&mut self, kind: EventKind, service: Service) {
        self.matcher.matches(&service.uri, &mut self.matched);
        if self.matched.is_empty() {
            return;
        }
        let service = Arc::new(service);
        for key in &self.matched {
            if let Some((addr, _)) = self.subscriptions.get(key) {
                addr.do_send(Deliver(Event {
                    kind,
                    service: service.clone(),
                }));
                self.stats.events_routed.inc();
            }
        }
    }

    /// Visible services matching `regex`.
    fn snapshot(&self, regex: &regex::Regex) -> Vec<Arc<Service>> {
        self.replica
            .services
            .iter()
            .filter(|s| regex.is_match(&s.uri))
            .map(|s| Arc::new(s.clone()))
            .collect()
    }

    pub(super) fn delete_local(&mut self, uri: String, ctx: &mut Context<Self>) {
        let ts = self.hlc.now();
        self.apply_local(
            SyncEntry::Service(Change::Delete {
                uri,
                origin: self.node.clone(),
                ts,
            }),
            ctx,
        );
    }

    fn purge_tombstones(&mut self) {
        let now = self.hlc.now();
        let ttl_ms = u64::try_from(self.config.tombstone_ttl.as_millis()).unwrap_or(u64::MAX);
        let horizon = Timestamp {
            physical_ms: now.physical_ms.saturating_sub(ttl_ms),
            logical: 0,
        };
        let purged = self.replica.services.purge_tombstones(horizon)
            + self.replica.links.purge_tombstones(horizon);
        if purged > 0 {
            debug!(purged, "expired tombstones purged");
            self.update_table_gauges();
        }
    }
}

impl Actor for CatalogueSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.metrics.started();
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
        let ts = self.hlc.now();
        let entry = SyncEntry::Service(Change::Add(Service {
            uri: msg.uri,
            attrs: msg.attrs,
            origin: self.node.clone(),
            ts,
        }));
        self.apply_local(entry, ctx);
        Ok(())
    }
}

impl Handler<UnregisterService> for CatalogueSupervisor {
    type Result = Result<(), RegisterError>;

    fn handle(&mut self, msg: UnregisterService, ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("UnregisterService");
        self.owners.release(msg.conn, &msg.uri)?;
        self.delete_local(msg.uri, ctx);
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
            self.delete_local(uri, ctx);
        }
    }
}

impl Handler<AddSubscription> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AddSubscription, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("AddSubscription");
        let snapshot = self.snapshot(&msg.regex);
        msg.addr.do_send(Snapshot(snapshot));
        self.matcher.insert(msg.key, msg.regex.clone());
        self.subscriptions.insert(msg.key, (msg.addr, msg.regex));
    }
}

impl Handler<RemoveSubscription> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RemoveSubscription, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("RemoveSubscription");
        self.matcher.remove(msg.key);
        self.subscriptions.remove(&msg.key);
    }
}

impl Handler<Resnapshot> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Resnapshot, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Resnapshot");
        if let Some((addr, regex)) = self.subscriptions.get(&msg.key) {
            addr.do_send(Snapshot(self.snapshot(regex)));
        }
    }
}

impl Handler<ListServices> for CatalogueSupervisor {
    type Result = MessageResult<ListServices>;

    fn handle(&mut self, msg: ListServices, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("ListServices");
        let mut services: Vec<Service> = self
            .replica
            .services
            .iter()
            .filter(|s| msg.regex.as_ref().is_none_or(|r| r.is_match(&s.uri)))
            .cloned()
            .collect();
        services.sort_by(|a, b| a.uri.cmp(&b.uri));
        MessageResult(services)
    }
}
