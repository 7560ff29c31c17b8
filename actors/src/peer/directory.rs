//! The peer directory: which peers this node knows (configured `[[peers]]`,
//! later also xlReg members), their addresses, and the state of each, as
//! shown by `catalogue peers`. Shared (behind a mutex) by the connectors,
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

    /// Adds (or updates the address of) a known peer.
    pub fn add(&self, name: &str, address: &str) {
        let mut peers = self.lock();
        let entry = peers.entry(name.to_string()).or_insert_with(|| Entry {
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
        });
        entry.info.address = address.to_string();
    }

    /// Forgets a peer (removed from the configuration).
    pub fn remove(&self, name: &str) {
        self.lock().remove(name);
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
}
