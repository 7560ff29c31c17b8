//! xlReg in a node: the actors that host the registry, and how the node's
//! settings configure it.
//!
//! The protocol, crypto, registry rules, durable log and client are plain
//! code in the `catalogue-xlreg` crate (re-exported here under the same
//! module names, so `xlreg::registry` is `catalogue_xlreg::registry`).
//! What needs actix is here: [`server`], the listener with the `Registry`
//! and `RegistrySession` actors that drive that code.
//!
//! [`host`] is what `catalogue serve` calls: it hosts the registry when
//! `xlreg.serve` is true, configured by an [`XlregConfig`] that
//! [`config_from`] builds from the node's `[xlreg]` settings.

pub mod server;

#[cfg(test)]
use catalogue_xlreg::test_support;
pub use catalogue_xlreg::{
    AdmitConfig, ClientError, ClientOptions, ClusterInfo, ClusterRef, Creator, Identity,
    IdentityError, KeyError, Member, Members, PrivateKey, PublicKey, Registered, RegistryClient,
    Secret, Version, XlregConfig, admission, client, commit, config, crypto, ext, frame, hello,
    identity, keys, protocol, registry, session, sources, store, token, version,
};
pub use catalogue_xlreg::{XlregCollector, XlregStats, metrics};
pub use server::ServerConfig;

use std::sync::Arc;

use tokio::sync::watch;

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

/// The registry configuration of the node's `[xlreg]` settings (its data
/// directory is `node.data_dir`).
pub fn config_from(settings: &Settings) -> XlregConfig {
    let x = &settings.xlreg;
    XlregConfig {
        listen: x.listen.clone(),
        data_dir: settings.node.data_dir.clone(),
        handshake_timeout: x.handshake_timeout,
        max_handshakes: x.max_handshakes,
        idle_timeout: x.idle_timeout,
        sources: sources::SourceLimits {
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
        admit: AdmitConfig {
            keys: x.admit.keys.clone(),
            secret_file: x.admit.secret_file.clone(),
        },
        admin_uids: x.admin_uids.clone(),
    }
}

/// Hosts the registry when `xlreg.serve` is true; returns once it listens.
/// It stops when `stop` turns true. The key is created in
/// `node.data_dir/xlreg/` on first start.
pub async fn host(
    settings: &Settings,
    stop: watch::Receiver<bool>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
) -> Result<Option<XlregHost>, XlregError> {
    if !settings.xlreg.serve {
        return Ok(None);
    }
    host_with(&config_from(settings), stop, metrics)
        .await
        .map(Some)
}

/// Hosts a registry configured by `config`; returns once it listens. It
/// stops when `stop` turns true.
pub async fn host_with(
    config: &XlregConfig,
    stop: watch::Receiver<bool>,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
) -> Result<XlregHost, XlregError> {
    let config = ServerConfig::new(config, metrics)?;
    let running = server::serve(config, stop).await?;
    Ok(XlregHost {
        local_addr: running.local_addr,
        public_key: running.public_key,
        stats: running.stats,
    })
}

/// The PEM public key of the registry whose data directory is `data_dir`,
/// creating the key pair if there is none yet (as `catalogue serve` would).
pub fn public_key_pem(data_dir: &std::path::Path) -> Result<String, XlregError> {
    let (key, _) = server::load_or_create_key(data_dir)?;
    let pem = key.public_key()?.to_pem()?;
    String::from_utf8(pem).map_err(|e| XlregError::Other(e.to_string()))
}
