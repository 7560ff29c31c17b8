//! The client library of catalogue: connect to a node, register services,
//! list them, and subscribe to their changes. It depends on the wire
//! formats (`catalogue-proto`) and tokio only; the `catalogue` crate
//! re-exports it as `catalogue::client`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), catalogue_client::ClientError> {
//! use catalogue_client::{Client, ConnectOptions, Endpoint};
//! let client = Client::connect(&ConnectOptions::new(Endpoint::Unix("/run/catalogue/catalogue.sock".into()))).await?;
//! client.register("tcp://10.0.0.1:5432", Default::default()).await?;
//! let mut sub = client.subscribe("^tcp://").await?;
//! while let Some(event) = sub.next().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! One task per connection owns the socket: it stamps serials, matches
//! replies to requests by `in_reply_to`, and forwards subscription frames to
//! each subscription's bounded channel. A subscriber that does not read
//! eventually stops the task from reading the socket, which lets the node's
//! overflow rule take over instead of this process's memory growing.
//!
//! A [`Subscription`] lives as long as its connection. A [`Watch`] is what a
//! program that must keep a correct set wants: it connects by itself,
//! reconnects with backoff, resumes from the node's revision
//! (docs/PROTOCOL.md §5, "Revisions and resuming a watch") and hands out
//! exactly the differences, deletes included (docs/CLIENTS.md).
//!
//! A connection that holds nothing (no registration, no subscription) and
//! sends nothing for the node's `limits.idle_timeout` (60 s by default) is
//! closed by the node with `Bye` ([`ClientError::Bye`]); a program that
//! only lists now and then connects again when it needs to.

mod connection;
mod error;
mod keeper;
mod owner;
mod probe;
mod shared;
mod tls;
mod watch;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
};

use catalogue_proto::{
    Body, DEFAULT_MAX_FRAME_LEN,
    catalogue::{
        self, EventKind, LinksReply, List, ListLinks, ListPeers, PeerStatus, RegisterService,
        Subscribe, UnregisterService, Unsubscribe, Welcome,
    },
};
use tokio::sync::{mpsc, oneshot};

pub use error::ClientError;
pub use keeper::{KeeperEvent, Registration, keep_registered};
pub use shared::{EventSink, SharedEvents, shared_events};
pub use tls::TlsOptions;
pub use watch::{SyncKind, Watch, WatchEvent, WatchState};

use connection::Command;
use shared::Sink;

/// The next subscription id: unique within the process, so subscriptions
/// of several clients may share one [`EventSink`].
static NEXT_SUBSCRIPTION: AtomicU64 = AtomicU64::new(1);

/// Events a subscription may hold before the connection stops reading.
const SUBSCRIPTION_BUFFER: usize = 1024;

/// Where a node listens for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The node's UNIX socket (needed to register).
    Unix(PathBuf),
    /// The node's client TCP address, `host:port`.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Where.
    pub endpoint: Endpoint,
    /// Refuse a node whose `Welcome` names another environment.
    pub expect_environment: Option<String>,
    /// Largest frame accepted from the node.
    pub max_frame: usize,
    /// Users, besides root, this one and the owner of the socket's private
    /// directory, whose process may listen on a UNIX socket endpoint (the
    /// node's user when its socket is in a shared directory).
    pub trusted_uids: Vec<u32>,
    /// TLS to a TCP endpoint (a node with `listen.client_tls` on); `None`:
    /// plaintext. Needs the `tls` feature.
    pub tls: Option<TlsOptions>,
}

impl ConnectOptions {
    /// Defaults for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        ConnectOptions {
            endpoint,
            expect_environment: None,
            max_frame: DEFAULT_MAX_FRAME_LEN,
            trusted_uids: Vec::new(),
            tls: None,
        }
    }
}

/// A service as the node reports it.
pub type Service = catalogue::Service;

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionEvent {
    /// A service appeared or changed. `snapshot` marks the initial (or a
    /// fresh) snapshot.
    Added {
        /// The service.
        service: Service,
        /// Part of a snapshot.
        snapshot: bool,
    },
    /// A service is gone.
    Deleted {
        /// The service (URI, origin, timestamp of the delete).
        service: Service,
    },
    /// The snapshot is complete.
    SnapshotEnd {
        /// Services in it.
        count: u64,
    },
    /// Events were lost because this subscriber read too slowly. With
    /// `resnapshot` a fresh snapshot follows (forget what you knew);
    /// otherwise the subscription has ended.
    Overflow {
        /// Events dropped.
        dropped: u64,
        /// A fresh snapshot follows.
        resnapshot: bool,
    },
}

/// A point in a node's numbered history of changes: a watch resumes from
/// here (docs/PROTOCOL.md §5, "Revisions and resuming a watch").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// The node's run (a new one at each start).
    pub epoch: u64,
    /// Changes counted since the run began.
    pub revision: u64,
}

/// How a snapshot (or a replay) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotMark {
    /// Where the subscription stands now; `None` from a node without
    /// revisions.
    pub position: Option<Position>,
    /// What preceded was a replay of the changes since the position asked
    /// for, not a snapshot.
    pub resumed: bool,
    /// The position asked for could not be resumed: what preceded is a
    /// fresh snapshot that replaces what was known.
    pub reset: bool,
}

/// An event with what the node says of its place in its history.
#[derive(Debug, Clone, PartialEq)]
pub struct Marked {
    /// The event.
    pub event: SubscriptionEvent,
    /// The node's revision of the change (for snapshot entries, the
    /// snapshot's); 0 for notices and from nodes without revisions.
    pub revision: u64,
    /// For [`SubscriptionEvent::SnapshotEnd`]: the marks of the end.
    pub end: Option<SnapshotMark>,
}

impl SubscriptionEvent {
    pub(crate) fn from_body(body: Body) -> Option<(u64, Marked)> {
        let mut revision = 0;
        let mut end = None;
        let (id, event) = match body {
            Body::ServiceEvent(e) => {
                let id = e.subscription_id;
                revision = e.revision;
                let kind = e.kind();
                let service = Service {
                    uri: e.uri,
                    attrs: e.attrs,
                    origin: e.origin,
                    ts: e.ts,
                };
                let event = if kind == EventKind::Deleted {
                    SubscriptionEvent::Deleted { service }
                } else {
                    SubscriptionEvent::Added {
                        service,
                        snapshot: e.snapshot,
                    }
                };
                (id, event)
            }
            Body::SnapshotEnd(e) => {
                end = Some(SnapshotMark {
                    position: e.position.map(|p| Position {
                        epoch: p.epoch,
                        revision: p.revision,
                    }),
                    resumed: e.resumed,
                    reset: e.reset,
                });
                (
                    e.subscription_id,
                    SubscriptionEvent::SnapshotEnd { count: e.count },
                )
            }
            Body::Overflow(o) => (
                o.subscription_id,
                SubscriptionEvent::Overflow {
                    dropped: o.dropped,
                    resnapshot: o.resnapshot,
                },
            ),
            _ => return None,
        };
        Some((
            id,
            Marked {
                event,
                revision,
                end,
            },
        ))
    }
}

/// A live subscription: its events, in the order the node applied them.
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    events: mpsc::Receiver<Marked>,
}

impl Subscription {
    /// The subscription's id on its connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event; `None` once the connection has ended (or the
    /// subscription was cancelled).
    pub async fn next(&mut self) -> Option<SubscriptionEvent> {
        self.events.recv().await.map(|m| m.event)
    }

    /// The next event with its revision and, for a `SnapshotEnd`, its
    /// marks; `None` as for [`Subscription::next`].
    pub async fn next_marked(&mut self) -> Option<Marked> {
        self.events.recv().await
    }
}

/// A connection to a node.
#[derive(Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    welcome: Welcome,
    ended: tokio::sync::watch::Receiver<Option<ClientError>>,
}

impl Client {
    /// Connects, reads the node's `Welcome` and checks its environment and
    /// protocol version.
    pub async fn connect(options: &ConnectOptions) -> Result<Client, ClientError> {
        let (commands, welcome, ended) = connection::open(options).await?;
        Ok(Client {
            commands,
            welcome,
            ended,
        })
    }

    /// The node's `Welcome`.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    async fn request(&self, body: Body) -> Result<Body, ClientError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Request {
                body,
                reply,
                events: None,
            })
            .await
            .map_err(|_| self.end_reason())?;
        answer.await.map_err(|_| self.end_reason())?
    }

    /// Why the connection ended, if it has.
    pub(crate) fn ended(&self) -> Option<ClientError> {
        self.ended.borrow().clone()
    }

    fn end_reason(&self) -> ClientError {
        self.ended
            .borrow()
            .clone()
            .unwrap_or(ClientError::Disconnected)
    }

    /// Registers `uri` with `attrs` for as long as this connection lives.
    pub async fn register(
        &self,
        uri: &str,
        attrs: BTreeMap<String, String>,
    ) -> Result<(), ClientError> {
        let body = Body::RegisterService(RegisterService {
            uri: uri.to_string(),
            attrs,
        });
        expect_success(self.request(body).await?)
    }

    /// Unregisters `uri`.
    pub async fn unregister(&self, uri: &str) -> Result<(), ClientError> {
        let body = Body::UnregisterService(UnregisterService {
            uri: uri.to_string(),
        });
        expect_success(self.request(body).await?)
    }

    /// Lists the services whose URI matches `regex` (empty: all), in URI
    /// order. The node sends a large listing in several frames
    /// (`List.stream`), so no table size makes it fail; a node before
    /// protocol 1.1 answers in one frame or refuses one too large (0x13).
    pub async fn list(&self, regex: &str) -> Result<Vec<Service>, ClientError> {
        match self
            .request(Body::List(List {
                regex: regex.to_string(),
                stream: true,
            }))
            .await?
        {
            Body::ListReply(reply) => Ok(reply.services),
            other => Err(ClientError::Protocol(format!(
                "expected ListReply, got {}",
                other.kind()
            ))),
        }
    }

    /// The node's view of the links table: live links and reachable nodes.
    pub async fn links(&self) -> Result<LinksReply, ClientError> {
        match self.request(Body::ListLinks(ListLinks {})).await? {
            Body::LinksReply(reply) => Ok(reply),
            other => Err(ClientError::Protocol(format!(
                "expected LinksReply, got {}",
                other.kind()
            ))),
        }
    }

    /// The node's direct peers and their states.
    pub async fn peers(&self) -> Result<Vec<PeerStatus>, ClientError> {
        match self.request(Body::ListPeers(ListPeers {})).await? {
            Body::PeersReply(reply) => Ok(reply.peers),
            other => Err(ClientError::Protocol(format!(
                "expected PeersReply, got {}",
                other.kind()
            ))),
        }
    }

    /// Subscribes to the services whose URI matches `regex`.
    pub async fn subscribe(&self, regex: &str) -> Result<Subscription, ClientError> {
        self.subscribe_from(regex, None).await
    }

    /// Subscribes to the services whose URI matches `regex`, resuming from
    /// `resume` if given: the node replays the changes since, if it still
    /// holds them (the `SnapshotEnd` is marked `resumed`), else sends a
    /// fresh snapshot (marked `reset`).
    pub async fn subscribe_from(
        &self,
        regex: &str,
        resume: Option<Position>,
    ) -> Result<Subscription, ClientError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let id = self.open_subscription(regex, resume, Sink::Own(tx)).await?;
        Ok(Subscription { id, events: rx })
    }

    /// Subscribes as [`Client::subscribe_from`] does, but the events go to
    /// `sink`, tagged with the id returned here, with those of the other
    /// subscriptions sent there ([`shared_events`]). Cancel it with
    /// [`Client::unsubscribe_id`].
    pub async fn subscribe_shared(
        &self,
        regex: &str,
        resume: Option<Position>,
        sink: &EventSink,
    ) -> Result<u64, ClientError> {
        self.open_subscription(regex, resume, Sink::Shared(sink.tx.clone()))
            .await
    }

    async fn open_subscription(
        &self,
        regex: &str,
        resume: Option<Position>,
        sink: Sink,
    ) -> Result<u64, ClientError> {
        let id = NEXT_SUBSCRIPTION.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let body = Body::Subscribe(Subscribe {
            subscription_id: id,
            regex: regex.to_string(),
            resume: resume.map(|p| catalogue::Position {
                epoch: p.epoch,
                revision: p.revision,
            }),
            // The connection task hands a grouped frame's event to each
            // subscription it names.
            grouped: true,
        });
        self.commands
            .send(Command::Request {
                body,
                reply,
                events: Some((id, sink)),
            })
            .await
            .map_err(|_| self.end_reason())?;
        expect_success(answer.await.map_err(|_| self.end_reason())??)?;
        Ok(id)
    }

    /// Cancels a subscription; no event of it arrives afterwards.
    pub async fn unsubscribe(&self, subscription: Subscription) -> Result<(), ClientError> {
        self.unsubscribe_id(subscription.id).await
    }

    /// Cancels the subscription `id` of this client (one opened with
    /// [`Client::subscribe_shared`]); no event of it arrives afterwards.
    pub async fn unsubscribe_id(&self, id: u64) -> Result<(), ClientError> {
        let body = Body::Unsubscribe(Unsubscribe {
            subscription_id: id,
        });
        expect_success(self.request(body).await?)
    }

    /// Waits until the connection ends and says why.
    pub async fn closed(&self) -> ClientError {
        let mut ended = self.ended.clone();
        loop {
            if let Some(reason) = ended.borrow_and_update().clone() {
                return reason;
            }
            if ended.changed().await.is_err() {
                return ClientError::Disconnected;
            }
        }
    }
}

fn expect_success(body: Body) -> Result<(), ClientError> {
    match body {
        Body::Success(_) => Ok(()),
        other => Err(ClientError::Protocol(format!(
            "expected Success, got {}",
            other.kind()
        ))),
    }
}
