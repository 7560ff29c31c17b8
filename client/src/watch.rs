//! A watch: the set of services matching a regex, kept correct across lost
//! connections and restarts of the node (docs/CLIENTS.md, "Following the
//! catalogue").
//!
//! Two layers. [`WatchState`] is a plain state machine (no I/O): it is fed
//! the marked events of one subscription after another and returns the
//! differences they make to the set it holds, deletes included and never
//! a duplicate add. A snapshot (the first, a reset, or a fresh one after an
//! overflow or a large change) is collected until its `SnapshotEnd` and
//! then compared with the set; a replay (a resume the node honoured) is
//! applied change by change. [`Watch`] drives it: it connects, subscribes
//! with the last position the state reached, reads, and when the
//! connection or the subscription ends it connects again with backoff and
//! resumes (docs/PROTOCOL.md §5, "Revisions and resuming a watch").

use std::{
    collections::{BTreeMap, VecDeque},
    time::Duration,
};

use catalogue_proto::catalogue::ErrorCode;
use tokio::time::Instant;

use super::{
    Client, ClientError, ConnectOptions, Marked, Position, Service, Subscription, SubscriptionEvent,
};

/// First delay before connecting again.
pub const RETRY_INITIAL: Duration = Duration::from_millis(50);
/// Longest delay between attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(2);

/// How the set came to be complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// From a snapshot: the first one, or a fresh one after an overflow or
    /// a large change.
    Snapshot,
    /// By replaying the changes since the last position: no snapshot.
    Resumed,
    /// The last position could not be resumed (the node restarted, or it
    /// no longer holds those changes): from a fresh snapshot.
    Reset,
}

/// What a watch tells the program.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// A service joined the set.
    Added {
        /// The service.
        service: Service,
        /// The node's revision of the change (the snapshot's for a change
        /// found by comparing a snapshot).
        revision: u64,
    },
    /// A service of the set changed (attributes, origin or time).
    Updated {
        /// As it was.
        old: Service,
        /// As it is.
        new: Service,
        /// The node's revision of the change.
        revision: u64,
    },
    /// A service left the set.
    Deleted {
        /// As it was last known.
        service: Service,
        /// The node's revision of the change.
        revision: u64,
    },
    /// The node could not resume from the last position (it restarted, or
    /// no longer holds the changes since): the differences that follow,
    /// up to the next `Synced`, are those to a fresh snapshot.
    Reset {
        /// Where the fresh snapshot was taken.
        position: Option<Position>,
    },
    /// The set is complete: every difference up to `position` has been
    /// handed out.
    Synced {
        /// How.
        kind: SyncKind,
        /// Where the watch stands; `None` from a node without revisions.
        position: Option<Position>,
        /// Services in the set.
        count: usize,
    },
    /// The node dropped events this watch read too slowly; a fresh
    /// snapshot follows (or the watch subscribes again), and the
    /// differences it makes follow as usual.
    Overflow {
        /// Events the node dropped.
        dropped: u64,
    },
    /// The connection was lost; the watch connects again in `retry_in`
    /// and resumes.
    Disconnected {
        /// Why.
        error: ClientError,
        /// When the next attempt starts.
        retry_in: Duration,
    },
}

/// The set a watch holds and where it stands, fed one subscription's
/// events after another.
#[derive(Debug, Default)]
pub struct WatchState {
    current: BTreeMap<String, Service>,
    position: Option<Position>,
    /// The entries of a snapshot being received, until its end.
    incoming: Option<BTreeMap<String, Service>>,
}

impl WatchState {
    /// An empty set that has seen nothing.
    pub fn new() -> Self {
        WatchState::default()
    }

    /// The set, by URI.
    pub fn current(&self) -> &BTreeMap<String, Service> {
        &self.current
    }

    /// Where to resume from: the last complete position reached.
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// A new subscription starts (after a lost connection): a snapshot
    /// that was only partly received is forgotten.
    pub fn restart(&mut self) {
        self.incoming = None;
    }

    /// Applies one event of the current subscription; returns the
    /// differences it makes, in order.
    pub fn apply(&mut self, marked: Marked) -> Vec<WatchEvent> {
        let revision = marked.revision;
        match marked.event {
            SubscriptionEvent::Added {
                service,
                snapshot: true,
            } => {
                self.incoming
                    .get_or_insert_default()
                    .insert(service.uri.clone(), service);
                Vec::new()
            }
            SubscriptionEvent::Added {
                service,
                snapshot: false,
            } => {
                self.advance(revision);
                self.put(service, revision).into_iter().collect()
            }
            SubscriptionEvent::Deleted { service } => {
                self.advance(revision);
                match self.current.remove(&service.uri) {
                    Some(old) => vec![WatchEvent::Deleted {
                        service: old,
                        revision,
                    }],
                    None => Vec::new(),
                }
            }
            SubscriptionEvent::SnapshotEnd { .. } => {
                let mark = marked.end.unwrap_or_default();
                let mut out = Vec::new();
                let kind = if mark.resumed {
                    self.incoming = None;
                    SyncKind::Resumed
                } else {
                    let fresh = self.incoming.take().unwrap_or_default();
                    let revision = mark.position.map_or(0, |p| p.revision);
                    if mark.reset {
                        out.push(WatchEvent::Reset {
                            position: mark.position,
                        });
                    }
                    out.extend(self.replace(fresh, revision));
                    if mark.reset {
                        SyncKind::Reset
                    } else {
                        SyncKind::Snapshot
                    }
                };
                self.position = mark.position;
                out.push(WatchEvent::Synced {
                    kind,
                    position: self.position,
                    count: self.current.len(),
                });
                out
            }
            SubscriptionEvent::Overflow { dropped, .. } => {
                // The entries of a snapshot cut short are stale; the
                // position stays: every change up to it was applied.
                self.incoming = None;
                vec![WatchEvent::Overflow { dropped }]
            }
        }
    }

    /// A live or replayed change brings the position forward.
    fn advance(&mut self, revision: u64) {
        if let Some(p) = &mut self.position {
            if revision > p.revision {
                p.revision = revision;
            }
        }
    }

    /// `service` is in the set now: added, updated, or nothing if it was
    /// already there as it is.
    fn put(&mut self, service: Service, revision: u64) -> Option<WatchEvent> {
        match self.current.insert(service.uri.clone(), service.clone()) {
            None => Some(WatchEvent::Added { service, revision }),
            Some(old) if old == service => None,
            Some(old) => Some(WatchEvent::Updated {
                old,
                new: service,
                revision,
            }),
        }
    }

    /// The set becomes `fresh`: deletes first, then adds and updates.
    fn replace(&mut self, fresh: BTreeMap<String, Service>, revision: u64) -> Vec<WatchEvent> {
        let gone: Vec<String> = self
            .current
            .keys()
            .filter(|uri| !fresh.contains_key(*uri))
            .cloned()
            .collect();
        let mut out: Vec<WatchEvent> = gone
            .into_iter()
            .filter_map(|uri| self.current.remove(&uri))
            .map(|service| WatchEvent::Deleted { service, revision })
            .collect();
        for service in fresh.into_values() {
            out.extend(self.put(service, revision));
        }
        out
    }
}

/// A watch of the services matching a regex at one node: connects by
/// itself, resumes after a lost connection, and hands out the differences.
///
/// ```no_run
/// # async fn demo() -> Result<(), catalogue_client::ClientError> {
/// use catalogue_client::{ConnectOptions, Endpoint, Watch, WatchEvent};
/// let options = ConnectOptions::new(Endpoint::Tcp("127.0.0.1:7401".into()));
/// let mut watch = Watch::new(options, "^tcp://");
/// loop {
///     match watch.next().await? {
///         WatchEvent::Added { service, .. } => println!("+ {}", service.uri),
///         WatchEvent::Deleted { service, .. } => println!("- {}", service.uri),
///         other => println!("{other:?}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Watch {
    options: ConnectOptions,
    regex: String,
    state: WatchState,
    /// The connection and subscription being read.
    live: Option<(Client, Subscription)>,
    /// Differences not yet handed out.
    ready: VecDeque<WatchEvent>,
    /// No attempt to connect before this.
    not_before: Option<Instant>,
    delay: Duration,
}

impl Watch {
    /// A watch of the services matching `regex` at the node of `options`;
    /// it connects on the first [`Watch::next`].
    pub fn new(options: ConnectOptions, regex: &str) -> Self {
        Watch {
            options,
            regex: regex.to_string(),
            state: WatchState::new(),
            live: None,
            ready: VecDeque::new(),
            not_before: None,
            delay: RETRY_INITIAL,
        }
    }

    /// The set as of the last event handed out.
    pub fn current(&self) -> &BTreeMap<String, Service> {
        self.state.current()
    }

    /// Where the watch stands.
    pub fn position(&self) -> Option<Position> {
        self.state.position()
    }

    /// The name of the node it is connected to, if it is.
    pub fn node(&self) -> Option<&str> {
        self.live
            .as_ref()
            .map(|(client, _)| client.welcome().server_name.as_str())
    }

    /// The next difference or notice. Returns an error only for what
    /// connecting again cannot mend (another environment or protocol, an
    /// untrusted socket, a refused regex). Cancel-safe: a call dropped
    /// while waiting loses nothing.
    pub async fn next(&mut self) -> Result<WatchEvent, ClientError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            let Some((client, subscription)) = &mut self.live else {
                if let Some(at) = self.not_before {
                    tokio::time::sleep_until(at).await;
                    self.not_before = None;
                }
                match self.open().await {
                    Ok(live) => self.live = Some(live),
                    Err(error) => self.lost(error)?,
                }
                continue;
            };
            match subscription.next_marked().await {
                Some(marked) => {
                    let synced = matches!(marked.event, SubscriptionEvent::SnapshotEnd { .. });
                    self.ready.extend(self.state.apply(marked));
                    if synced {
                        self.delay = RETRY_INITIAL;
                    }
                }
                None => {
                    // The connection ended, or the node cancelled the
                    // subscription (an overflow under the drop policy).
                    let error = client.ended().unwrap_or(ClientError::Disconnected);
                    self.live = None;
                    self.lost(error)?;
                }
            }
        }
    }

    async fn open(&mut self) -> Result<(Client, Subscription), ClientError> {
        let client = Client::connect(&self.options).await?;
        self.state.restart();
        let subscription = client
            .subscribe_from(&self.regex, self.state.position())
            .await?;
        Ok((client, subscription))
    }

    /// A failed attempt or a lost connection: give up on what retrying
    /// cannot mend, else tell the program and wait before the next.
    fn lost(&mut self, error: ClientError) -> Result<(), ClientError> {
        let transient_server = matches!(
            &error,
            ClientError::Server {
                code: ErrorCode::LimitExceeded | ErrorCode::ShuttingDown | ErrorCode::Internal,
                ..
            }
        );
        if error.is_permanent() && !transient_server {
            return Err(error);
        }
        let retry_in = self.delay;
        self.not_before = Some(Instant::now() + retry_in);
        self.delay = (self.delay * 2).min(RETRY_MAX);
        self.ready
            .push_back(WatchEvent::Disconnected { error, retry_in });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
