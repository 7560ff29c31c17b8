//! When a joining node hands out its digest.
//!
//! A link's initial exchange starts with each side sending its digest;
//! the peer then sends whatever the digest shows missing. A new node that
//! dials three members of a cluster holding a million services used to
//! send all three its empty digest at once, so each sent it the whole
//! million: three times the bytes to decode and compare, on cores the
//! three senders also needed (docs/PERFORMANCE.md, "Scale: 32 nodes").
//!
//! So, until the node is ready, a link asking for the digest waits while
//! another link's exchange may bring the bulk: one whose peer's digest
//! showed services (held firmly, until that exchange is over: it needs
//! nothing more from anyone), or one whose peer's digest has not come yet
//! (held for now: released when that digest comes and shows nothing).
//! Once nothing holds it, the link gets the digest as it then is, and its
//! peer sends only what the first exchange did not bring.
//!
//! Waiting for a digest that has not come could go round in a circle (x
//! waits for z's digest, z for y's, y for x's: three new nodes dialing
//! each other). So a link to `p` waits on an exchange with `q` whose digest
//! has not come only if `q` sorts before `p`: along any chain of such
//! waits the names then fall, and a chain cannot close. The supervisor
//! also bounds each wait ([`MAX_HOLD`]).
//!
//! This is the bookkeeping only: the supervisor keeps the waiting replies
//! and asks [`DigestGate`] which may go.

use std::{collections::HashMap, time::Duration};

use crate::{
    peer::link::LinkId,
    sync::{digest::Digest, entry::Table},
};

/// The longest a link waits for another's initial exchange.
pub const MAX_HOLD: Duration = Duration::from_secs(10);

/// What the peer's digest said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Theirs {
    /// Not come yet.
    Awaited,
    /// It holds no services: nothing worth waiting for.
    Empty,
    /// It holds services: its initial batch may carry the bulk.
    Holds,
}

/// How far a link's initial exchange has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exchange {
    link: LinkId,
    /// Our digest went to the peer.
    given: bool,
    theirs: Theirs,
}

/// The initial exchanges under way, by peer.
#[derive(Debug, Default)]
pub struct DigestGate {
    exchanges: HashMap<String, Exchange>,
}

impl DigestGate {
    /// Whether the link to `peer` should (still) wait before getting the
    /// digest, the node being `ready` or not.
    pub fn should_wait(&self, peer: &str, ready: bool) -> bool {
        if ready {
            return false;
        }
        if self
            .exchanges
            .get(peer)
            .is_some_and(|e| e.theirs == Theirs::Empty)
        {
            // Its peer holds nothing: nothing to save by waiting.
            return false;
        }
        self.exchanges.iter().any(|(q, e)| {
            q != peer
                && e.given
                && match e.theirs {
                    Theirs::Holds => true,
                    Theirs::Awaited => q.as_str() < peer,
                    Theirs::Empty => false,
                }
        })
    }

    fn exchange(&mut self, peer: &str, link: LinkId) -> &mut Exchange {
        let fresh = Exchange {
            link,
            given: false,
            theirs: Theirs::Awaited,
        };
        let e = self.exchanges.entry(peer.to_string()).or_insert(fresh);
        if e.link != link {
            // A new link to the same peer starts afresh.
            *e = fresh;
        }
        e
    }

    /// Our digest went to `peer` over `link`.
    pub fn given(&mut self, peer: &str, link: LinkId) {
        self.exchange(peer, link).given = true;
    }

    /// `peer`'s digest came over `link`.
    pub fn received(&mut self, peer: &str, link: LinkId, digest: &Digest) {
        let holds = digest.table(Table::Services).values().any(|o| o.count > 0);
        self.exchange(peer, link).theirs = if holds { Theirs::Holds } else { Theirs::Empty };
    }

    /// The exchange over `link` with `peer` is over (done, or the link went
    /// down).
    pub fn finished(&mut self, peer: &str, link: LinkId) {
        if self.exchanges.get(peer).is_some_and(|e| e.link == link) {
            self.exchanges.remove(peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        hlc::Timestamp,
        services::{Change, Service},
        sync::entry::SyncEntry,
    };

    fn holding() -> Digest {
        let s = Service {
            uri: "tcp://a".into(),
            attrs: Default::default(),
            origin: "m".into(),
            ts: Timestamp::new(1, 0),
        };
        Digest::of(&[SyncEntry::Service(Change::Add(s))], Timestamp::default())
    }

    #[test]
    fn a_joining_node_takes_the_bulk_from_one_peer_at_a_time() {
        let mut gate = DigestGate::default();
        assert!(!gate.should_wait("m1", false), "nothing under way");
        gate.given("m1", 1);
        // m2 and m3 sort after m1, whose digest has not come: held.
        assert!(gate.should_wait("m2", false));
        assert!(gate.should_wait("m3", false));
        assert!(
            !gate.should_wait("m1", false),
            "a link never waits on itself"
        );
        assert!(
            !gate.should_wait("m2", true),
            "a ready node never holds back"
        );
        // m1 holds services: held until its exchange is over.
        gate.received("m1", 1, &holding());
        assert!(gate.should_wait("m2", false));
        // m2's own digest came meanwhile; it holds services too: still held.
        gate.received("m2", 2, &holding());
        assert!(gate.should_wait("m2", false));
        gate.finished("m1", 1);
        assert!(!gate.should_wait("m2", false));
        assert!(!gate.should_wait("m3", false));
    }

    #[test]
    fn an_empty_peer_holds_nobody_back_and_is_not_held() {
        let mut gate = DigestGate::default();
        gate.given("a", 1);
        assert!(gate.should_wait("b", false));
        gate.received("a", 1, &Digest::default());
        assert!(!gate.should_wait("b", false), "a brings nothing");
        gate.given("c", 3);
        gate.received("c", 3, &holding());
        assert!(gate.should_wait("d", false));
        gate.received("d", 4, &Digest::default());
        assert!(!gate.should_wait("d", false), "d holds nothing to save");
    }

    #[test]
    fn a_digest_not_come_holds_back_only_later_names() {
        // x gave its digest to z and waits for z's; y sorts before z, so
        // y is not held on z (z may itself hold its digest to x, waiting
        // on y: no circle can form).
        let mut x = DigestGate::default();
        x.given("z", 1);
        assert!(!x.should_wait("y", false));
        assert!(x.should_wait("zz", false));
    }

    #[test]
    fn only_the_current_link_of_a_peer_counts() {
        let mut gate = DigestGate::default();
        gate.given("a", 1);
        gate.received("a", 1, &holding());
        // An old link's end does not end the new link's exchange.
        gate.finished("a", 0);
        assert!(gate.should_wait("b", false));
        // A new link to a starts afresh, its digest not come.
        gate.given("a", 2);
        assert!(gate.should_wait("b", false));
        assert!(!gate.should_wait("0", false), "'0' sorts before 'a'");
        gate.finished("a", 2);
        assert!(!gate.should_wait("b", false));
    }
}
