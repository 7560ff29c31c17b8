//! The `CatalogueSupervisor` actor: one per node. It owns the services
//! table, the clock, the subscription matcher and the record of which local
//! connection registered which service. Every change goes through it, in
//! one order; it routes each applied change to the matching subscriptions
//! and answers snapshots and listings. It never waits on another actor.

mod links;
mod messages;
mod owners;

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix::prelude::*;
use catalogue_proto::catalogue::EventKind;
use tracing::{debug, info};

use crate::{
    hlc::Hlc,
    links::LinksTable,
    matcher::Matcher,
    peer::directory::PeerDirectory,
    services::{Applied, Change, Service, ServicesTable},
    stats::Stats,
    subscription::{Deliver, Snapshot, SubKey, Subscription, queue::Event},
};
pub use messages::*;
use owners::Owners;

/// How often expired tombstones are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(10);

/// The node's supervisor.
pub struct CatalogueSupervisor {
    node: String,
    table: ServicesTable,
    hlc: Hlc,
    matcher: Matcher,
    subscriptions: HashMap<SubKey, (Addr<Subscription>, regex::Regex)>,
    owners: Owners,
    /// Which node is linked to which, cluster-wide.
    links: LinksTable,
    /// The current link to each directly linked peer.
    peer_links: HashMap<String, links::CurrentLink>,
    /// Known peers and their states.
    directory: PeerDirectory,
    tombstone_ttl: Duration,
    stats: Arc<Stats>,
    /// Reused buffer for matcher results.
    matched: Vec<SubKey>,
}

impl CatalogueSupervisor {
    /// A supervisor for node `node` with empty tables.
    pub fn new(
        node: String,
        hlc: Hlc,
        directory: PeerDirectory,
        tombstone_ttl: Duration,
        stats: Arc<Stats>,
    ) -> Self {
        CatalogueSupervisor {
            node,
            table: ServicesTable::new(),
            hlc,
            matcher: Matcher::new(),
            subscriptions: HashMap::new(),
            owners: Owners::default(),
            links: LinksTable::new(),
            peer_links: HashMap::new(),
            directory,
            tombstone_ttl,
            stats,
            matched: Vec::new(),
        }
    }

    /// Applies a change and routes the resulting event, if any.
    fn apply(&mut self, change: Change) {
        let deleted_by = match &change {
            Change::Delete { origin, ts, .. } => Some((origin.clone(), *ts)),
            Change::Add(_) => None,
        };
        let event = match self.table.apply(change) {
            Applied::Added(s) | Applied::Updated { new: s, .. } => Some((EventKind::Added, s)),
            Applied::Deleted(mut s) => {
                if let Some((origin, ts)) = deleted_by {
                    s.origin = origin;
                    s.ts = ts;
                }
                Some((EventKind::Deleted, s))
            }
            Applied::Tombstoned | Applied::Ignored => None,
        };
        self.stats.services.set(self.table.len() as i64);
        if let Some((kind, service)) = event {
            self.route(kind, Arc::new(service));
        }
    }

    fn route(&mut self, kind: EventKind, service: Arc<Service>) {
        self.matcher.matches(&service.uri, &mut self.matched);
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

    fn snapshot(&self, regex: &regex::Regex) -> Vec<Arc<Service>> {
        self.table
            .iter()
            .filter(|s| regex.is_match(&s.uri))
            .map(|s| Arc::new(s.clone()))
            .collect()
    }

    fn delete_local(&mut self, uri: String) {
        let ts = self.hlc.now();
        self.apply(Change::Delete {
            uri,
            origin: self.node.clone(),
            ts,
        });
    }

    /// The links graph changed: recompute what is reachable.
    fn reachability_changed(&mut self) {
        let reachable = self.links.reachable_from(&self.node);
        debug!(reachable = reachable.len(), "reachability changed");
    }

    fn purge_tombstones(&mut self) {
        let now = self.hlc.now();
        let ttl_ms = u64::try_from(self.tombstone_ttl.as_millis()).unwrap_or(u64::MAX);
        let horizon = crate::hlc::Timestamp {
            physical_ms: now.physical_ms.saturating_sub(ttl_ms),
            logical: 0,
        };
        let purged = self.table.purge_tombstones(horizon) + self.links.purge_tombstones(horizon);
        if purged > 0 {
            debug!(purged, "expired tombstones purged");
        }
    }
}

impl Actor for CatalogueSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(PURGE_INTERVAL, |act, _| act.purge_tombstones());
        info!(node = %self.node, "catalogue supervisor started");
    }
}

impl Handler<RegisterService> for CatalogueSupervisor {
    type Result = Result<(), RegisterError>;

    fn handle(&mut self, msg: RegisterService, _ctx: &mut Context<Self>) -> Self::Result {
        self.owners.claim(msg.conn, &msg.uri)?;
        let ts = self.hlc.now();
        self.apply(Change::Add(Service {
            uri: msg.uri,
            attrs: msg.attrs,
            origin: self.node.clone(),
            ts,
        }));
        Ok(())
    }
}

impl Handler<UnregisterService> for CatalogueSupervisor {
    type Result = Result<(), RegisterError>;

    fn handle(&mut self, msg: UnregisterService, _ctx: &mut Context<Self>) -> Self::Result {
        self.owners.release(msg.conn, &msg.uri)?;
        self.delete_local(msg.uri);
        Ok(())
    }
}

impl Handler<ConnectionClosed> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, _ctx: &mut Context<Self>) {
        let uris = self.owners.release_all(msg.conn);
        if !uris.is_empty() {
            debug!(
                conn = msg.conn,
                services = uris.len(),
                "connection closed; deleting its services"
            );
        }
        for uri in uris {
            self.delete_local(uri);
        }
    }
}

impl Handler<AddSubscription> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: AddSubscription, _ctx: &mut Context<Self>) {
        let snapshot = self.snapshot(&msg.regex);
        msg.addr.do_send(Snapshot(snapshot));
        self.matcher.insert(msg.key, msg.regex.clone());
        self.subscriptions.insert(msg.key, (msg.addr, msg.regex));
    }
}

impl Handler<RemoveSubscription> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RemoveSubscription, _ctx: &mut Context<Self>) {
        self.matcher.remove(msg.key);
        self.subscriptions.remove(&msg.key);
    }
}

impl Handler<Resnapshot> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: Resnapshot, _ctx: &mut Context<Self>) {
        if let Some((addr, regex)) = self.subscriptions.get(&msg.key) {
            addr.do_send(Snapshot(self.snapshot(regex)));
        }
    }
}

impl Handler<ListServices> for CatalogueSupervisor {
    type Result = MessageResult<ListServices>;

    fn handle(&mut self, msg: ListServices, _ctx: &mut Context<Self>) -> Self::Result {
        let mut services: Vec<Service> = self
            .table
            .iter()
            .filter(|s| msg.regex.as_ref().is_none_or(|r| r.is_match(&s.uri)))
            .cloned()
            .collect();
        services.sort_by(|a, b| a.uri.cmp(&b.uri));
        MessageResult(services)
    }
}
