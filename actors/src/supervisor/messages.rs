//! Messages the supervisor accepts.

use std::collections::BTreeMap;

use actix::prelude::*;

use crate::{
    services::Service,
    subscription::{SubKey, Subscription},
};

/// Node-wide id of a client connection.
pub type ConnId = u64;

/// Why a registration or unregistration was refused by the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Another live connection on this node registered the URI.
    #[error("{uri} is already registered by another connection on this node")]
    Conflict {
        /// The URI.
        uri: String,
    },
    /// This connection did not register the URI.
    #[error("{uri} is not registered by this connection")]
    NotRegistered {
        /// The URI.
        uri: String,
    },
}

/// Registers (or re-registers with new attributes) a service for `conn`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegisterError>")]
pub struct RegisterService {
    /// The registering connection.
    pub conn: ConnId,
    /// Validated URI.
    pub uri: String,
    /// Validated attributes.
    pub attrs: BTreeMap<String, String>,
}

/// Unregisters a service `conn` registered.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), RegisterError>")]
pub struct UnregisterService {
    /// The connection.
    pub conn: ConnId,
    /// The URI.
    pub uri: String,
}

/// A connection closed: its services are deleted.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ConnectionClosed {
    /// The connection.
    pub conn: ConnId,
}

/// Starts routing to a subscription; its snapshot is sent first.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct AddSubscription {
    /// Node-wide key.
    pub key: SubKey,
    /// Compiled regex.
    pub regex: regex::Regex,
    /// The subscription actor.
    pub addr: Addr<Subscription>,
}

/// Stops routing to a subscription.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoveSubscription {
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

/// Lists the services whose URI matches (all when `None`), sorted by URI.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Service>")]
pub struct ListServices {
    /// Filter.
    pub regex: Option<regex::Regex>,
}
