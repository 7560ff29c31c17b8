//! Running a node in three steps: [`start`] binds the configured listeners
//! and starts the supervisor, the peer connectors and the other actors;
//! [`serve`] accepts connections and applies reloads until the shutdown
//! future resolves; [`stop`] stops in order. [`listeners`] holds the bound
//! sockets and [`acceptor`] turns accepted client sockets into connection
//! actors.
//!
//! Stop order: stop accepting; tell every connection to stop (each ends its
//! subscriptions and says `Bye`); wait, at most [`DRAIN_TIMEOUT`], for the
//! connections' writers to flush and close; remove the UNIX socket file;
//! return.
//!
//! Peer links: one connector task per configured peer with an address
//! dials it; connections on the peer port run the accepting handshake.
//! On stop, the supervisor announces the end of every link (LinkDelete) and
//! closes them before the client connections are told goodbye.
//!
//! Admission ([`crate::admission`]): the node raises its open-file limit
//! to the hard limit at start and logs it; client connections are counted
//! per transport (`limits.connections_tcp`, `limits.connections_unix`,
//! the TCP limit lowered if the descriptors would not leave room for the
//! UNIX socket); peer-port connections beyond
//! `limits.handshakes_in_progress` (or its per-address share) are refused
//! at once; a listener that fails to accept for want of descriptors pauses
//! with a growing backoff instead of spinning. Warnings on these paths are
//! rate-limited per reason ([`crate::log_limit`]); the metrics count every
//! event.

mod acceptor;
mod listeners;
mod serve;
mod start;
mod stop;

use std::{future::Future, time::Duration};

use tokio::sync::mpsc;

use crate::{listen::ListenError, settings::Settings};

/// Time open connections get to finish after `Bye` before the node exits.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The xlReg registry could not be hosted.
    #[error(transparent)]
    Xlreg(#[from] crate::xlreg::XlregError),
    /// The TLS files could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The HTTP API could not listen.
    #[error("cannot serve the HTTP API on {addr}: {source}")]
    Http {
        /// The configured address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The thread that builds listings could not be started.
    #[error("cannot start the reader thread: {0}")]
    Reader(std::io::Error),
    /// The metrics endpoint could not listen.
    #[error("cannot listen for metrics on {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs a node with `settings` until `shutdown` resolves, applying each
/// configuration that arrives on `reloads` (see [`crate::reload`]).
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    reloads: mpsc::UnboundedReceiver<Settings>,
) -> Result<(), NodeError> {
    // Stops polling when the node has stopped.
    let _busy_poll = crate::busy_poll::start(settings.node.busy_poll);
    let mut node = start::start(settings).await?;
    node.serve(shutdown, reloads).await;
    node.stop().await;
    Ok(())
}
