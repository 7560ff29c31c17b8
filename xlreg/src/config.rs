//! How a hosted registry is configured, without the node's settings.
//!
//! [`XlregConfig`] is everything a registry needs from its operator: where
//! it listens, where it keeps its files, its timeouts and its bounds. The
//! node builds one from its `[xlreg]` settings (`catalogue-actors`,
//! `xlreg::config_from`); tests and benches build one directly. Relations
//! between the values are checked where the node validates its settings.

use std::{path::PathBuf, time::Duration};

use crate::{registry::Limits, sources::SourceLimits};

/// A hosted registry's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct XlregConfig {
    /// Address to listen on (`ip:port`; port 0 picks one).
    pub listen: String,
    /// The node's data directory (the registry uses its `xlreg/`).
    pub data_dir: PathBuf,
    /// Time a connection has, from its accept, to send its Hello, and from
    /// its handshake slot to `ClientOK`.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once.
    pub max_handshakes: usize,
    /// An identified session silent this long is closed.
    pub idle_timeout: Duration,
    /// Per-source bounds on connections.
    pub sources: SourceLimits,
    /// Bounds on clients and clusters, and the client TTL.
    pub limits: Limits,
    /// Admission control (off when both lists are empty).
    pub admit: AdmitConfig,
    /// Uids besides the node's own and root's that may use the registry's
    /// admin socket (remove a member, change a cluster's size).
    pub admin_uids: Vec<u32>,
}

/// Who a registry lets identify (docs/XLREG.md §14), as the operator
/// wrote it; [`crate::admission::Admission::from_config`] loads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmitConfig {
    /// Client signing keys admitted, each a fingerprint (`sha256:<hex>`), a
    /// PEM public key, or the path of a PEM public key file. Empty: any key.
    pub keys: Vec<String>,
    /// File holding a shared secret every client must prove (`AdmitProof`).
    /// Empty: no secret.
    pub secret_file: String,
}
