//! The supervisor's side of peer links: which link is current for each
//! peer (one per peer; when both nodes dial each other at once, both keep
//! the connection dialed by the node whose name sorts first), the links
//! table (LinkAdd when a link comes up, LinkDelete when it goes down,
//! merged and flooded by last writer wins), the clock check on every
//! timestamp a peer sends, and the listings for `catalogue links|peers`.

use actix::prelude::*;
use catalogue_proto::catalogue::{Error, ErrorCode};
use tracing::{debug, info, warn};

use super::{
    CatalogueSupervisor, DuplicateLink, LinkDown, LinkUp, LinksView, ListLinks, ListPeers,
    PeerLinkChanges, Shutdown,
};
use crate::{
    links::{LinkChange, LinkKey, LinkOp},
    peer::{
        directory::PeerInfo,
        link::{Close, LinkId, PeerLink, SendChanges, SendError},
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

impl CatalogueSupervisor {
    /// Issues a change of our own link to `peer` and floods it.
    fn issue_link_change(&mut self, op: LinkOp, peer: &str) {
        let change = LinkChange {
            op,
            key: LinkKey::new(self.node.clone(), peer),
            origin: self.node.clone(),
            ts: self.hlc.now(),
        };
        self.links.apply(&change);
        log_change(&change);
        self.broadcast_links(vec![change], None);
    }

    /// Sends `changes` to every current link except the one to `except`.
    fn broadcast_links(&self, changes: Vec<LinkChange>, except: Option<&str>) {
        if changes.is_empty() {
            return;
        }
        for (peer, link) in &self.peer_links {
            if Some(peer.as_str()) != except {
                link.addr.do_send(SendChanges(changes.clone()));
            }
        }
    }
}

impl Handler<LinkUp> for CatalogueSupervisor {
    type Result = Result<(), DuplicateLink>;

    fn handle(&mut self, msg: LinkUp, _ctx: &mut Context<Self>) -> Self::Result {
        if let Some(current) = self.peer_links.get(&msg.peer) {
            if keep_current_link(&self.node, &msg.peer, &current.dialer, &msg.dialer) {
                let preferred = std::cmp::min(self.node.as_str(), msg.peer.as_str());
                debug!(peer = %msg.peer, link = msg.link, "duplicate link closed; keeping the one dialed by {preferred}");
                msg.addr.do_send(Close("duplicate link".into()));
                return Err(DuplicateLink { peer: msg.peer });
            }
            debug!(peer = %msg.peer, old = current.id, new = msg.link, "link replaced");
            current
                .addr
                .do_send(Close("replaced by a newer link".into()));
        }
        let first = !self.peer_links.contains_key(&msg.peer);
        self.peer_links.insert(
            msg.peer.clone(),
            CurrentLink {
                id: msg.link,
                dialer: msg.dialer,
                addr: msg.addr.clone(),
            },
        );
        self.stats.peer_links.set(self.peer_links.len() as i64);
        self.directory.set_linked(&msg.peer, Some(msg.direction));
        // The new link learns everything we hold, then our own LinkAdd.
        msg.addr
            .do_send(SendChanges(self.links.changes().collect()));
        if first {
            info!(peer = %msg.peer, direction = msg.direction.as_str(), "linked");
            self.issue_link_change(LinkOp::Add, &msg.peer);
            self.reachability_changed();
        }
        Ok(())
    }
}

impl Handler<LinkDown> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: LinkDown, _ctx: &mut Context<Self>) {
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
        self.issue_link_change(LinkOp::Delete, &msg.peer);
        self.reachability_changed();
    }
}

impl Handler<PeerLinkChanges> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, msg: PeerLinkChanges, _ctx: &mut Context<Self>) {
        let mut forward = Vec::new();
        let mut changed = false;
        for change in msg.changes {
            if let Err(e) = self.hlc.observe(change.ts) {
                self.stats.clock_refused.inc();
                warn!(peer = %msg.from, error = %e, link = ?change.key, "link change refused: timestamp too far ahead");
                if let Some(link) = self.peer_links.get(&msg.from).filter(|l| l.id == msg.link) {
                    link.addr
                        .do_send(SendError(Error::new(ErrorCode::ClockDrift, e.to_string())));
                }
                continue;
            }
            let applied = self.links.apply(&change);
            if applied == crate::links::LinkApplied::Changed {
                log_change(&change);
            }
            if applied.forward() {
                changed |= applied == crate::links::LinkApplied::Changed;
                forward.push(change);
            }
        }
        self.broadcast_links(forward, Some(&msg.from));
        if changed {
            self.reachability_changed();
        }
    }
}

impl Handler<ListLinks> for CatalogueSupervisor {
    type Result = MessageResult<ListLinks>;

    fn handle(&mut self, _msg: ListLinks, _ctx: &mut Context<Self>) -> Self::Result {
        let links = self
            .links
            .live()
            .map(|(key, origin, ts)| LinkChange {
                op: LinkOp::Add,
                key: key.clone(),
                origin: origin.to_string(),
                ts,
            })
            .collect();
        MessageResult(LinksView {
            node: self.node.clone(),
            links,
            reachable: self.links.reachable_from(&self.node).into_iter().collect(),
        })
    }
}

impl Handler<ListPeers> for CatalogueSupervisor {
    type Result = MessageResult<ListPeers>;

    fn handle(&mut self, _msg: ListPeers, _ctx: &mut Context<Self>) -> Self::Result {
        let peers: Vec<PeerInfo> = self.directory.list();
        MessageResult(peers)
    }
}

impl Handler<Shutdown> for CatalogueSupervisor {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, _ctx: &mut Context<Self>) {
        let peers: Vec<String> = self.peer_links.keys().cloned().collect();
        for peer in &peers {
            self.issue_link_change(LinkOp::Delete, peer);
        }
        for (peer, link) in self.peer_links.drain() {
            self.directory.set_linked(&peer, None);
            link.addr.do_send(Close("shutting down".into()));
        }
    }
}

fn log_change(change: &LinkChange) {
    let op = match change.op {
        LinkOp::Add => "add",
        LinkOp::Delete => "delete",
    };
    debug!(a = change.key.a(), b = change.key.b(), op, origin = %change.origin, "link table changed");
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
