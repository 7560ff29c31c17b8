//! The peer directory: which peers this node knows (configured `[[peers]]`,
//! and xlReg members), their addresses, and the state of each, as shown by
//! `catalogue peers`. A peer known only as an xlReg member must also show a
//! certificate naming the cluster before it links
//! ([`PeerDirectory::is_configured`] tells the handshake which check to
//! run). Shared (behind a mutex) by the connectors,
//! the accepting side's handshake and the supervisor, which records links
//! going up and down. Each peer also has a `linked` watch that a connector
//! waits on, so it does not dial a peer that is already linked (the peer
//! dialed us first).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::sync::watch;

/// State of a peer, as reported to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Not dialed (accept-only peer) and not linked.
    Idle,
    /// A connection attempt is under way.
    Connecting,
    /// Waiting before the next attempt.
    Backoff,
    /// Linked.
    Up,
    /// Refused for good (environment mismatch): not retried until the
    /// configuration changes.
    Refused,
}

impl PeerState {
    /// Lowercase name for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Idle => "idle",
            PeerState::Connecting => "connecting",
            PeerState::Backoff => "backoff",
            PeerState::Up => "up",
            PeerState::Refused => "refused",
        }
    }
}

/// Which side opened the TCP connection of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We dialed.
    Outbound,
    /// They dialed.
    Inbound,
}

impl Direction {
    /// Lowercase name for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// What is known of one peer.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Node name.
    pub name: String,
    /// Address we dial; empty when we only accept from it.
    pub address: String,
    /// Current state.
    pub state: PeerState,
    /// Direction of the link when up.
    pub direction: Option<Direction>,
    /// When the state last changed (ms since the epoch).
    pub since_ms: u64,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When the last initial sync with this peer completed (ms since the
    /// epoch; 0 when never).
    pub last_sync_ms: u64,
}

struct Entry {
    info: PeerInfo,
    linked: watch::Sender<bool>,
    /// Listed in `[[peers]]`.
    configured: bool,
    /// Learned as a member of the xlReg cluster.
    member: bool,
}

/// Why the node is not ready yet, given its peers: one line per peer still
/// awaited, empty when it may be called ready (docs/OPERATIONS.md, "Watch
/// it"). A peer is awaited while its first dial is under way (`Connecting`
/// with no failure yet) or while it is linked and its initial sync since the
/// link came up is not done. A peer that is away (an attempt failed, refused
/// for good, or accept-only and not linked) is not awaited, so a node alone
/// or with every peer away is ready.
pub fn awaited_peers(peers: &[PeerInfo]) -> Vec<String> {
    peers
        .iter()
        .filter_map(|p| match p.state {
            PeerState::Connecting if p.last_error.is_empty() => Some(format!(
                "peer {}: first connection attempt in progress",
                p.name
            )),
            PeerState::Up if p.last_sync_ms < p.since_ms => {
                Some(format!("peer {}: linked, initial sync in progress", p.name))
            }
            _ => None,
        })
        .collect()
}

/// Why the node is degraded: one line per peer whose link is not up.
pub fn down_peers(peers: &[PeerInfo]) -> Vec<String> {
    peers
        .iter()
        .filter(|p| p.state != PeerState::Up)
        .map(|p| {
            if p.last_error.is_empty() {
                format!("peer {} is {}", p.name, p.state.as_str())
            } else {
                format!("peer {} is {}: {}", p.name, p.state.as_str(), p.last_error)
            }
        })
        .collect()
}

/// The shared directory.
#[derive(Clone, Default)]
pub struct PeerDirectory {
    inner: Arc<Mutex<BTreeMap<String, Entry>>>,
}

impl std::fmt::Debug for PeerDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerDirectory")
            .field("peers", &self.list().len())
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl PeerDirectory {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock leaves plain data; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds (or updates the address of) a configured peer.
    pub fn add(&self, name: &str, address: &str) {
        let mut peers = self.lock();
        let entry = Self::entry(&mut peers, name);
        entry.configured = true;
        entry.info.address = address.to_string();
    }

    /// Adds (or updates) a member of the xlReg cluster. A configured peer
    /// of that name stays configured; its address changes only when
    /// `address` is not empty.
    pub fn add_member(&self, name: &str, address: &str) {
        let mut peers = self.lock();
        let entry = Self::entry(&mut peers, name);
        entry.member = true;
        if !address.is_empty() || !entry.configured {
            entry.info.address = address.to_string();
        }
    }

    fn entry<'a>(peers: &'a mut BTreeMap<String, Entry>, name: &str) -> &'a mut Entry {
        peers.entry(name.to_string()).or_insert_with(|| Entry {
            info: PeerInfo {
                name: name.to_string(),
                address: String::new(),
                state: PeerState::Idle,
                direction: None,
                since_ms: now_ms(),
                last_error: String::new(),
                last_sync_ms: 0,
            },
            linked: watch::channel(false).0,
            configured: false,
            member: false,
        })
    }

    /// Forgets an xlReg member (it left or was removed); one that is also a
    /// configured peer stays known as that.
    pub fn remove_member(&self, name: &str) {
        let mut peers = self.lock();
        match peers.get_mut(name) {
            Some(entry) if entry.configured => entry.member = false,
            Some(_) => {
                peers.remove(name);
            }
            None => {}
        }
    }

    /// Forgets a configured peer (removed from the configuration); one that
    /// is also an xlReg member stays known as a member only.
    pub fn remove(&self, name: &str) {
        let mut peers = self.lock();
        match peers.get_mut(name) {
            Some(entry) if entry.member => entry.configured = false,
            Some(_) => {
                peers.remove(name);
            }
            None => {}
        }
    }

    /// Is `name` listed in `[[peers]]` (as opposed to known only as an
    /// xlReg member, or not at all)?
    pub fn is_configured(&self, name: &str) -> bool {
        self.lock().get(name).is_some_and(|e| e.configured)
    }

    /// The address recorded for `name`, if known.
    pub fn address(&self, name: &str) -> Option<String> {
        self.lock().get(name).map(|e| e.info.address.clone())
    }

    /// Is `name` a peer this node accepts links from?
    pub fn is_known(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// Records a new state for `name` (no-op for unknown names).
    pub fn set_state(&self, name: &str, state: PeerState, error: Option<String>) {
        if let Some(entry) = self.lock().get_mut(name) {
            if entry.info.state != state {
                entry.info.since_ms = now_ms();
            }
            entry.info.state = state;
            if let Some(error) = error {
                entry.info.last_error = error;
            }
        }
    }

    /// Records that the link to `name` is up (`Some(direction)`) or down.
    pub fn set_linked(&self, name: &str, direction: Option<Direction>) {
        if let Some(entry) = self.lock().get_mut(name) {
            let up = direction.is_some();
            entry.info.direction = direction;
            let state = if up {
                PeerState::Up
            } else if entry.info.address.is_empty() {
                PeerState::Idle
            } else {
                PeerState::Backoff
            };
            if entry.info.state != state {
                entry.info.since_ms = now_ms();
            }
            entry.info.state = state;
            if up {
                entry.info.last_error.clear();
            }
            entry.linked.send_replace(up);
        }
    }

    /// Records that the initial sync with `name` completed now.
    pub fn set_synced(&self, name: &str) {
        if let Some(entry) = self.lock().get_mut(name) {
            entry.info.last_sync_ms = now_ms();
        }
    }

    /// A receiver telling whether `name` is linked.
    pub fn linked(&self, name: &str) -> Option<watch::Receiver<bool>> {
        self.lock().get(name).map(|e| e.linked.subscribe())
    }

    /// Every known peer, sorted by name.
    pub fn list(&self) -> Vec<PeerInfo> {
        self.lock().values().map(|e| e.info.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_waits_for_first_dials_and_linked_peers_only() {
        let d = PeerDirectory::default();
        assert!(awaited_peers(&d.list()).is_empty(), "alone: ready");
        d.add("b", "10.0.0.2:7481");
        d.add("c", "");
        d.set_state("b", PeerState::Connecting, None);
        let waiting = awaited_peers(&d.list());
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        assert!(waiting[0].contains("peer b"), "{waiting:?}");
        // b's first attempt failed: away, like accept-only c.
        d.set_state("b", PeerState::Backoff, Some("connection refused".into()));
        assert!(awaited_peers(&d.list()).is_empty());
        d.set_state("b", PeerState::Connecting, None);
        assert!(
            awaited_peers(&d.list()).is_empty(),
            "a retry is not awaited"
        );
        let down = down_peers(&d.list());
        assert_eq!(down.len(), 2, "{down:?}");
        assert!(down[0].contains("connection refused"), "{down:?}");
        // c links: awaited until synced.
        d.set_linked("c", Some(Direction::Inbound));
        assert_eq!(awaited_peers(&d.list()).len(), 1);
        d.set_synced("c");
        assert!(awaited_peers(&d.list()).is_empty());
        assert_eq!(down_peers(&d.list()).len(), 1);
    }

    #[test]
    fn known_peers_and_their_states() {
        let d = PeerDirectory::default();
        d.add("b", "10.0.0.2:7481");
        d.add("c", "");
        assert!(d.is_known("b") && d.is_known("c") && !d.is_known("x"));
        let linked = d.linked("b").expect("known");
        d.set_state("b", PeerState::Connecting, None);
        d.set_linked("b", Some(Direction::Outbound));
        assert!(*linked.borrow());
        let b = &d.list()[0];
        assert_eq!(
            (b.state, b.direction),
            (PeerState::Up, Some(Direction::Outbound))
        );
        d.set_linked("b", None);
        assert!(!*linked.borrow());
        assert_eq!(
            d.list()[0].state,
            PeerState::Backoff,
            "a dialed peer is retried"
        );
        d.set_linked("c", Some(Direction::Inbound));
        d.set_linked("c", None);
        assert_eq!(
            d.list()[1].state,
            PeerState::Idle,
            "an accept-only peer waits"
        );
    }

    #[test]
    fn members_are_known_but_not_configured() {
        let d = PeerDirectory::default();
        d.add_member("m", "10.0.0.3:7481");
        assert!(d.is_known("m") && !d.is_configured("m"));
        // a configured peer that is also a member stays configured
        d.add("b", "10.0.0.2:7481");
        d.add_member("b", "");
        assert!(d.is_configured("b"));
        assert_eq!(d.address("b").as_deref(), Some("10.0.0.2:7481"));
        // removed from the configuration, it is still a member
        d.remove("b");
        assert!(d.is_known("b") && !d.is_configured("b"));
        d.remove("m");
        assert!(d.is_known("m"), "removing a configured peer leaves members");
        d.add("x", "");
        d.remove("x");
        assert!(!d.is_known("x"));
    }
}
