//! Stopping a node in order: no longer accept; stop the HTTP API; the
//! supervisor announces the end of every peer link (LinkDelete) and closes
//! them; tell every connection to stop (each ends its subscriptions and
//! says `Bye`); wait, at most [`DRAIN_TIMEOUT`], for the connections'
//! writers to flush; stop the metrics endpoint; remove the UNIX socket
//! file.

use tracing::{info, warn};

use super::{DRAIN_TIMEOUT, listeners::Listeners, start::Node};
use crate::supervisor::Shutdown;

impl Node {
    /// Stops the node (see the module's head for the order).
    pub(super) async fn stop(self) {
        let Node {
            listeners,
            mut acceptor,
            api_servers,
            supervisor,
            mut connectors,
            stop_tx,
            mut peer_tasks,
            metrics,
            stats,
            reloader,
            ..
        } = self;
        drop(reloader);

        if let Err(e) = crate::sd_notify::notify(crate::sd_notify::STOPPING) {
            warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
        }
        let open = acceptor.writers.len();
        info!(open, "shutting down: no longer accepting connections");
        for server in api_servers {
            server.stop().await;
        }
        let Listeners { socket_path, .. } = listeners;
        // Peers first: the final LinkDelete goes out, then the links close.
        let _ = supervisor.send(Shutdown).await;
        connectors.stop_all();
        let _ = stop_tx.send(true);
        // Drop our handles so writers end once their connections have stopped.
        drop(acceptor.shared);
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while acceptor.writers.join_next().await.is_some() {}
            while peer_tasks.join_next().await.is_some() {}
            while connectors.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                left = acceptor.writers.len() + peer_tasks.len(),
                "connections still open after the drain timeout; closing them"
            );
            acceptor.writers.abort_all();
            peer_tasks.abort_all();
        }
        if let Some(metrics) = metrics {
            metrics.stop().await;
        }
        if let Some(path) = socket_path {
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot remove the UNIX socket file");
            }
        }
        info!(
            overflows = stats.overflows.get(),
            events_delivered = stats.events_delivered.get(),
            "stopped"
        );
    }
}
