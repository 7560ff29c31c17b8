//! xlReg: the cluster registry, its server and its client.
//!
//! Nodes find each other through a registry: each registers as a client,
//! creates or joins a named cluster, and polls the cluster's member tokens
//! (names, keys, endpoints) until it knows every member. The bytes on the
//! wire, the rules and the persistence format are in `docs/XLREG.md`.
//!
//! Layers, each plain code tested without sockets except the last two:
//! - [`version`], [`crypto`], [`keys`]: versions, primitives, RSA keys.
//! - [`hello`]: the Hello and HelloReply layouts.
//! - [`frame`]: v1 and v2 session framing, as tokio codecs.
//! - [`token`], [`protocol`], [`session`]: signatures, request and reply
//!   shapes, what a session may do when.
//! - [`ext`]: catalogue's extension fields, outside the seed's schema
//!   (docs/XLREG.md §14), and [`admission`]: who a registry lets identify.
//! - [`registry`], [`store`], [`commit`]: the rules (with the bounds against
//!   abuse and the client TTL), the durable log, group commit.
//! - [`server`]: the `Registry` and `RegistrySession` actors, the listener
//!   and its per-source bounds.
//! - [`client`], [`identity`]: the async client other parts of the node
//!   (cluster formation) and the CLI use.
//!
//! [`host`] is what `catalogue serve` calls: it hosts the registry when
//! `xlreg.serve` is true.

pub mod admission;
pub mod client;
pub mod commit;
pub mod crypto;
pub mod ext;
pub mod frame;
pub mod hello;
pub mod identity;
pub mod keys;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod session;
pub mod store;
pub mod token;
pub mod version;

#[cfg(test)]
mod test_support;

use std::sync::Arc;

use tokio::sync::watch;

pub use client::{ClientError, ClientOptions, Member, Members, Registered, RegistryClient, Secret};
pub use identity::{Identity, IdentityError};
pub use keys::{KeyError, PrivateKey, PublicKey};
pub use protocol::{ClusterInfo, ClusterRef, Creator};
pub use server::{ServerConfig, XlregStats};
pub use version::Version;

use crate::settings::Settings;

/// Why the registry could not be hosted.
#[derive(Debug, thiserror::Error)]
pub enum XlregError {
    /// A key could not be made or read.
    #[error("xlReg key: {0}")]
    Key(#[from] KeyError),
    /// The registry log could not be opened.
    #[error("xlReg registry log: {0}")]
    Store(#[from] store::StoreError),
    /// `[xlreg.admit]` could not be loaded.
    #[error("xlReg admission: {0}")]
    Admission(#[from] admission::AdmitConfigError),
    /// The listener could not be bound.
    #[error("xlReg: cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Anything else.
    #[error("xlReg: {0}")]
    Other(String),
}

/// A registry hosted by this node; dropping it does not stop it, `stop` does.
#[derive(Debug)]
pub struct XlregHost {
    /// Address the registry listens on.
    pub local_addr: std::net::SocketAddr,
    /// The registry's public key (what clients need, with the address).
    pub public_key: PublicKey,
    /// The registry's counters.
    pub stats: Arc<XlregStats>,
}

/// Hosts the registry when `xlreg.serve` is true; returns once it listens.
/// It stops when `stop` turns true. The key is created in
/// `node.data_dir/xlreg/` on first start.
pub async fn host(
    settings: &Settings,
    stop: watch::Receiver<bool>,
    metrics: Option<std::sync::Arc<crate::stats::Stats>>,
) -> Result<Option<XlregHost>, XlregError> {
    let x = &settings.xlreg;
    if !x.serve {
        return Ok(None);
    }
    let config = ServerConfig {
        listen: x.listen.clone(),
        data_dir: settings.node.data_dir.clone(),
        handshake_timeout: x.handshake_timeout,
        max_handshakes: x.max_handshakes,
        idle_timeout: x.idle_timeout,
        sources: server::SourceLimits {
            per_second: x.sessions_per_source,
            burst: x.sessions_burst,
            max_open: x.max_connections_per_source,
        },
        limits: registry::Limits {
            max_clients: x.max_clients,
            max_clusters: x.max_clusters,
            max_clusters_per_client: x.max_clusters_per_client,
            client_ttl: x.client_ttl,
        },
        admission: admission::Admission::from_settings(&x.admit)?,
        metrics,
    };
    let running = server::serve(config, stop).await?;
    Ok(Some(XlregHost {
        local_addr: running.local_addr,
        public_key: running.public_key,
        stats: running.stats,
    }))
}

/// The PEM public key of the registry whose data directory is `data_dir`,
/// creating the key pair if there is none yet (as `catalogue serve` would).
pub fn public_key_pem(data_dir: &std::path::Path) -> Result<String, XlregError> {
    let (key, _) = server::load_or_create_key(data_dir)?;
    let pem = key.public_key()?.to_pem()?;
    String::from_utf8(pem).map_err(|e| XlregError::Other(e.to_string()))
}
