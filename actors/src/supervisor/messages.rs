//! The supervisor's messages: those it accepts (its inbox, first), then
//! those it sends to the peer links and the subscriptions (handled in
//! `peer/link.rs` and `subscription/mod.rs`). Who sends what to whom is
//! drawn in `docs/ACTORS.md`.

use std::{collections::BTreeMap, sync::Arc};

use actix::prelude::*;

use catalogue_proto::catalogue::Error;

use crate::{
    links::LinkChange,
    peer::{
        directory::{Direction, PeerInfo},
        link::{LinkId, PeerLink},
    },
    routed::SharedEvent,
    services::Service,
    subscription::{SubKey, Subscription, history::Position, queue::Event},
    sync::{
        digest::{Digest, Mark},
        entry::SyncEntry,
        replica::Batch,
    },
    tls::TrustAnchors,
};

/// Node-wide id of a client connection.
pub type ConnId = u64;

/// Why a registration or unregistration was refused by the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Another live connection on this node registered the URI.
    #[error("{uri} is already registered by another connection on this node")]
    Conflict { uri: String },
    /// This connection did not register the URI.
    #[error("{uri} is not registered by this connection")]
    NotRegistered { uri: String },
}

/// Registers (or re-registers with new attributes) a service for `conn`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegisterError>")]
pub struct RegisterService {
    /// The registering connection.
    pub conn: ConnId,
    /// Validated URI (shared with the services table's entry).
    pub uri: crate::services::SharedStr,
    /// Validated attributes.
    pub attrs: BTreeMap<String, String>,
}

/// Unregisters a service `conn` registered.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegisterError>")]
pub struct UnregisterService {
    pub conn: ConnId,
    pub uri: String,
}

/// A connection closed: its services are deleted and its subscriptions
/// removed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ConnectionClosed {
    pub conn: ConnId,
}

/// Starts routing to a subscription; its snapshot is sent first. The
/// connection sends it with `send` and answers `Subscribe` once it is done.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddSubscription {
    /// The connection that holds it (its subscriptions go when it closes).
    pub conn: ConnId,
    /// Node-wide key.
    pub key: SubKey,
    /// Compiled pattern.
    pub regex: crate::matcher::Pattern,
    pub addr: Addr<Subscription>,
    /// The subscription's direct path (the actor holds the same).
    pub direct: std::sync::Arc<crate::subscription::direct::DirectPath>,
    /// Resume from this position rather than start with a snapshot, if the
    /// node's history still holds the changes since.
    pub resume: Option<Position>,
}

/// Stops routing to a subscription (an `Unsubscribe`, awaited by its
/// connection, or a subscription that ended by itself).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoveSubscription {
    /// The connection that held it.
    pub conn: ConnId,
    /// Node-wide key.
    pub key: SubKey,
}

/// A subscription that overflowed asks for a fresh snapshot.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Resnapshot {
    /// Node-wide key.
    pub key: SubKey,
}

/// A peer link finished its handshake. Refused (`Err`) when another link to
/// the same peer is kept instead; the caller's link is then closed.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DuplicateLink>")]
pub struct LinkUp {
    /// The peer's name.
    pub peer: String,
    /// The link's id.
    pub link: LinkId,
    /// Who dialed, from our side.
    pub direction: Direction,
    /// The name of the node that dialed.
    pub dialer: String,
    pub addr: Addr<PeerLink>,
}

/// Another link to the same peer is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a link to {peer} already exists")]
pub struct DuplicateLink {
    pub peer: String,
}

/// A peer link ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LinkDown {
    /// The peer's name.
    pub peer: String,
    /// The link's id (ignored unless it is the current link to that peer).
    pub link: LinkId,
}

/// A complete batch received from a peer, to apply atomically.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PeerBatch {
    /// The peer it came from (not sent back there).
    pub from: String,
    /// The link it came over.
    pub link: LinkId,
    /// The batch, checked for form but not yet for time.
    pub batch: Batch,
    /// The peer's initial batch.
    pub initial: bool,
}

/// Asks for this node's digest, to start the initial exchange with `peer`
/// over `link` (answered at once, or once another link's exchange is over
/// while the node is joining: `digest_gate`).
#[derive(Debug, Message)]
#[rtype(result = "Digest")]
pub struct GetDigest {
    pub peer: String,
    pub link: LinkId,
}

/// Asks what to send a peer whose digest is `digest`.
#[derive(Debug, Message)]
#[rtype(result = "Batch")]
pub struct PlanFor {
    pub peer: String,
    /// The link it came over.
    pub link: LinkId,
    /// Its digest.
    pub digest: Digest,
}

/// A link finished its initial exchange.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SyncDone {
    pub peer: String,
    pub link: LinkId,
}

/// The node's view of the links table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinksView {
    /// This node.
    pub node: String,
    /// Live links: (a, b, origin, timestamp).
    pub links: Vec<LinkChange>,
    /// Reachable nodes, this one included.
    pub reachable: Vec<String>,
}

/// Asks for [`LinksView`].
#[derive(Debug, Message)]
#[rtype(result = "LinksView")]
pub struct ListLinks;

/// Asks for the direct peers.
#[derive(Debug, Message)]
#[rtype(result = "Vec<PeerInfo>")]
pub struct ListPeers;

/// The node is stopping: announce the end of every link, then close them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// The trusted CAs changed: every link re-checks its peer's certificate.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecheckLinks {
    /// The CAs trusted now.
    pub anchors: Arc<TrustAnchors>,
}

/// A peer was removed from the configuration: close its link.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DropPeer {
    /// The peer's name.
    pub peer: String,
}

// Sent by the supervisor to a peer link (`PeerLink`).

/// Entries to send to the peer (batched by the session).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SendEntries {
    pub entries: Vec<SyncEntry>,
    /// What we know of their origins, valid once they are applied.
    pub marks: Vec<Mark>,
}

/// A whole batch to send as it is (a replacement).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SendBatch {
    pub batch: Batch,
}

/// Tells the peer something was refused.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SendError {
    /// The `Error` frame body.
    pub error: Error,
}

/// The trusted CAs changed: close the link if the peer's certificate no
/// longer verifies.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Recheck {
    /// The CAs trusted now.
    pub anchors: Arc<TrustAnchors>,
}

/// Says `Bye` and closes the link (also sent by a link to itself).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close {
    /// The `Bye` frame's reason.
    pub reason: String,
}

// Sent by the supervisor to a subscription (`Subscription`).

/// An event matching this subscription.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Deliver {
    /// The change, shared with the other subscriptions it matches.
    pub event: Arc<SharedEvent>,
}

/// A snapshot asked for by this subscription (or its first one).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Snapshot {
    /// The matching services.
    pub services: Vec<Arc<Service>>,
    /// The node's position when it took them.
    pub at: Position,
    /// It answers a resume the node could not honour.
    pub reset: bool,
}

/// The answer to a subscription that asked to resume: the matching
/// changes since its position, oldest first.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Replay {
    /// The changes.
    pub events: Vec<Event>,
    /// The node's position now.
    pub at: Position,
}

/// A fresh snapshot replacing queued events after a large change.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Rebase {
    /// The matching services.
    pub services: Vec<Arc<Service>>,
    /// The node's position when it took them.
    pub at: Position,
}
