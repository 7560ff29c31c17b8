//! The supervisor's side of peer links: which link is current for each
//! peer (one per peer; when both nodes dial each other at once, both keep
//! the connection dialed by the node whose name sorts first), telling the
//! driver when a link is connected or gone (it issues our own LinkAdd once
//! the link has synced, and LinkDelete when it goes down), and the
//! listings for `catalogue links|peers`.

use actix::prelude::*;
use tracing::{debug, info};

use super::{
    CatalogueSupervisor, Close, DropPeer, DuplicateLink, LinkDown, LinkUp, LinksView, ListLinks,
    ListPeers, Recheck, RecheckLinks, Shutdown,
};
use crate::{
    links::{LinkChange, LinkOp},
    peer::{
        directory::PeerInfo,
        link::{LinkId, PeerLink},
    },
};

/// The current link to one peer.
#[derive(Debug, Clone)]
pub(super) struct CurrentLink {
    pub id: LinkId,
    pub dialer: String,
    pub addr: Addr<PeerLink>,
}

/// With a link to `peer` already current (dialed by `current_dialer`), should
/// a new one dialed by `new_dialer` be refused? Both nodes decide alike: the
/// connection dialed by the node whose name sorts first wins, so two nodes
/// that dial each other at once keep the same single connection. A new link
/// from the same dialer replaces the current one, which must be dead.
pub(super) fn keep_current_link(
    node: &str,
    peer: &str,
    current_dialer: &str,
    new_dialer: &str,
) -> bool {
    let preferred = std::cmp::min(node, peer);
    current_dialer != new_dialer && current_dialer == preferred
}

impl Handler<LinkUp> for CatalogueSupervisor {
    type Result = Result<(), DuplicateLink>;

    fn handle(&mut self, msg: LinkUp, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("LinkUp");
        if let Some(current) = self.peer_links.get(&msg.peer) {
            if keep_current_link(&self.node, &msg.peer, &current.dialer, &msg.dialer) {
                debug!(peer = %msg.peer, link = msg.link, "duplicate link closed");
                msg.addr.do_send(Close {
                    reason: "duplicate link".into(),
                });
                return Err(DuplicateLink { peer: msg.peer });
            }
            debug!(peer = %msg.peer, old = current.id, new = msg.link, "link replaced");
            current.addr.do_send(Close {
                reason: "replaced by a newer link".into(),
            });
        }
        let first = !self.peer_links.contains_key(&msg.peer);
        self.peer_links.insert(
            msg.peer.clone(),
            CurrentLink {
                id: msg.link,
                dialer: msg.dialer,
                addr: msg.addr,
            },
        );
        self.stats.peer_links.set(self.peer_links.len() as i64);
        self.directory.set_linked(&msg.peer, Some(msg.direction));
        if first {
            info!(peer = %msg.peer, direction = msg.direction.as_str(), "linked");
        }
        self.driver.link_connected(&msg.peer);
        Ok(())
    }
}

impl Handler<LinkDown> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: LinkDown, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("LinkDown");
        // (Whether or not it is still the current link.)
        self.exchange_over(&msg.peer, msg.link);
        if self
            .peer_links
            .get(&msg.peer)
            .is_none_or(|c| c.id != msg.link)
        {
            return;
        }
        self.peer_links.remove(&msg.peer);
        self.stats.peer_links.set(self.peer_links.len() as i64);
        self.directory.set_linked(&msg.peer, None);
        info!(peer = %msg.peer, "unlinked");
        let fx = self.driver.link_down(&msg.peer);
        self.execute(fx, None, ctx);
    }
}

impl Handler<ListLinks> for CatalogueSupervisor {
    type Result = MessageResult<ListLinks>;

    fn handle(&mut self, _msg: ListLinks, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("ListLinks");
        MessageResult(self.links_view())
    }
}

impl CatalogueSupervisor {
    /// The live links and the reachable nodes now.
    pub(super) fn links_view(&self) -> LinksView {
        let links = self
            .driver
            .replica()
            .links
            .live()
            .map(|(key, origin, ts)| LinkChange {
                op: LinkOp::Add,
                key: key.clone(),
                origin: origin.to_string(),
                ts,
            })
            .collect();
        LinksView {
            node: self.node.clone(),
            links,
            reachable: self.driver.reachable().iter().cloned().collect(),
        }
    }
}

impl Handler<ListPeers> for CatalogueSupervisor {
    type Result = MessageResult<ListPeers>;

    fn handle(&mut self, _msg: ListPeers, _ctx: &mut Context<Self>) -> Self::Result {
        let _timer = self.metrics.handling("ListPeers");
        let peers: Vec<PeerInfo> = self.directory.list();
        MessageResult(peers)
    }
}

impl Handler<RecheckLinks> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RecheckLinks, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("RecheckLinks");
        for link in self.peer_links.values() {
            link.addr.do_send(Recheck {
                anchors: msg.anchors.clone(),
            });
        }
    }
}

impl Handler<DropPeer> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: DropPeer, _ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("DropPeer");
        if let Some(link) = self.peer_links.get(&msg.peer) {
            info!(peer = %msg.peer, "peer removed from the configuration: closing its link");
            link.addr.do_send(Close {
                reason: "no longer a configured peer".into(),
            });
        }
    }
}

impl Handler<Shutdown> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        let _timer = self.metrics.handling("Shutdown");
        let fx = self.driver.shutdown();
        self.execute(fx, None, ctx);
        for (peer, link) in self.peer_links.drain() {
            self.directory.set_linked(&peer, None);
            link.addr.do_send(Close {
                reason: "shutting down".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keep_current_link;

    #[test]
    fn both_ends_keep_the_connection_dialed_by_the_smaller_name() {
        // At a: current link dialed by a, new one dialed by b: keep current.
        assert!(keep_current_link("a", "b", "a", "b"));
        // At b: current link dialed by b, new one by a: replace with a's.
        assert!(!keep_current_link("b", "a", "b", "a"));
        // At b: current dialed by a, new by b: keep a's.
        assert!(keep_current_link("b", "a", "a", "b"));
        // At a: current dialed by b, new by a: replace with a's.
        assert!(!keep_current_link("a", "b", "b", "a"));
        // A reconnect by the same dialer replaces the old link.
        assert!(!keep_current_link("a", "b", "a", "a"));
        assert!(!keep_current_link("a", "b", "b", "b"));
    }
}
