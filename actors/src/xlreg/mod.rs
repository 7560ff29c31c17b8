//! xlReg: the cluster registry (server and client). Being written; see
//! issue 6 and docs/XLREG.md.

use tokio::sync::watch;

use crate::settings::Settings;

/// Why the registry could not be hosted.
#[derive(Debug, thiserror::Error)]
pub enum XlregError {
    /// Placeholder until the registry lands.
    #[error("xlReg: {0}")]
    Other(String),
}

/// A registry hosted by this node; dropping it does not stop it, `stop` does.
#[derive(Debug)]
pub struct XlregHost {
    /// Address the registry listens on.
    pub local_addr: std::net::SocketAddr,
}

/// Hosts the registry when `xlreg.serve` is true; returns once it listens.
/// It stops when `stop` turns true.
pub async fn host(
    settings: &Settings,
    stop: watch::Receiver<bool>,
) -> Result<Option<XlregHost>, XlregError> {
    let _ = (settings, stop);
    Ok(None)
}
