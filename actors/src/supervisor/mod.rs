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

mod effects;
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
    hlc::Hlc,
    matcher::Matcher,
    peer::directory::PeerDirectory,
    services::{Applied, Service},
    stats::{ActorMetrics, Stats},
    subscription::{Deliver, Rebase, Snapshot, SubKey, Subscription, queue::Event},
    sync::driver::{Driver, DriverConfig},
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
    driver: Driver,
    matcher: Matcher,
    subscriptions: HashMap<SubKey, (Addr<Subscription>, regex::Regex)>,
    owners: Owners,
    /// The current link to each directly linked peer.
    peer_links: HashMap<String, links::CurrentLink>,
    /// Known peers and their states.
    directory: PeerDirectory,
    config: SupervisorConfig,
    stats: Arc<Stats>,
    metrics: ActorMetrics,
    /// Reused buffer for matcher results.
    matched: Vec<SubKey>,
}

impl CatalogueSupervisor {
    /// A supervisor for node `node` with empty tables, born now.
    pub fn new(
        node: String,
        hlc: Hlc,
        directory: PeerDirectory,
        config: SupervisorConfig,
        stats: Arc<Stats>,
    ) -> Self {
        let driver = Driver::new(
            node.clone(),
            hlc,
            DriverConfig {
                tombstone_ttl: config.tombstone_ttl,
            },
        );
        CatalogueSupervisor {
            driver,
            node,
            matcher: Matcher::new(),
            subscriptions: HashMap::new(),
            owners: Owners::default(),
            peer_links: HashMap::new(),
            directory,
            config,
            metrics: ActorMetrics::new(stats.clone(), "supervisor"),
            stats,
            matched: Vec::new(),
        }
    }

    /// Routes the moves of visible services: event by event, or, for a
    /// large change, a fresh snapshot to every subscription it touches.
    fn route_services(&mut self, services: Vec<Applied>) {
        if services.is_empty() {
            return;
        }
        if services.len() > self.config.bulk_threshold {
            self.rebase(&services);
        } else {
            self.route_each(services);
        }
    }

    fn update_table_gauges(&self) {
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
        self.driver
            .replica()
            .services
            .iter()
            .filter(|s| regex.is_match(&s.uri))
            .map(|s| Arc::new(s.clone()))
            .collect()
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
            .driver
            .replica()
            .services
            .iter()
            .filter(|s| msg.regex.as_ref().is_none_or(|r| r.is_match(&s.uri)))
            .cloned()
            .collect();
        services.sort_by(|a, b| a.uri.cmp(&b.uri));
        MessageResult(services)
    }
}
