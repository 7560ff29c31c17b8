//! Harness for tests that start real `catalogue` processes.
//!
//! [`Daemon`] starts `catalogue serve` in a temporary directory with its
//! listeners on port 0, reads its JSON log from standard error on a thread,
//! and lets a test wait for a log event with a deadline (never a sleep).
//! [`Conn`] is a blocking client connection speaking the frame protocol.
//! [`Cluster`] runs several nodes, in a full mesh or any other topology,
//! whose peer links pass through fault-injecting [`Proxy`]s, to kill nodes
//! and cut links; [`Listing`] is a node's table as tests compare it.
//! [`Registrar`] registers services from blocking test code, and
//! [`Watcher`] records what a subscriber is told while a test runs;
//! [`WatchLog`] does the same for a client-library watch that reconnects
//! and resumes by itself.
//! [`hostile`] holds the tools of the hostile-load tests: stalled frames,
//! subscription floods, RSS sampling.
//! Every process started here is killed when its handle is dropped.

use std::time::Duration;

pub mod bad_input;
mod browser;
mod cli;
mod cluster;
mod conn;
mod daemon;
pub mod hostile;
mod listing;
mod probe;
mod proxy;
mod registrar;
mod sse;
mod tls;
mod watch_log;
mod watcher;

pub use browser::Browser;
pub use cli::{Cli, CliOutput, RunningCli};
pub use cluster::{Cluster, ClusterBuilder, log_time};
pub use conn::{Conn, read_frame, write_frame};
pub use daemon::{Daemon, DaemonBuilder, LogLine, catalogue_bin};
pub use listing::{Listed, Listing, difference, listing_of, only, summary, uris};
pub use probe::{HttpResponse, http_get, http_request, link_changed, scrape, unlinked};
pub use proxy::{Mode, Proxy};
pub use registrar::Registrar;
pub use sse::{SseEvent, SseStream};
pub use tls::{TestCa, TlsFiles};
pub use watch_log::{Recorded, WatchLog};
pub use watcher::{Watcher, added, deleted, describe};

/// A current-thread tokio runtime for a test's client calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Default deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(10);
