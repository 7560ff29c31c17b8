//! Running a node: binds the configured listeners, serves connections until
//! the shutdown future resolves, then stops in order.
//!
//! Stop order (see docs/OPERATIONS.md as it grows): stop accepting, tell
//! every open connection `Bye`, give connections a bounded time to finish,
//! remove the UNIX socket file, return.
//!
//! Until the client and peer protocols land, every accepted connection is a
//! [`crate::stub_session`]: it gets `Welcome` and an `Error` for each request.

use std::{future::Future, path::PathBuf, time::Duration};

use catalogue_proto::catalogue::Welcome;
use tokio::{
    net::{TcpListener, UnixListener},
    sync::watch,
    task::JoinSet,
};
use tracing::{info, warn};

use crate::{
    listen::{self, ListenError},
    settings::Settings,
    stub_session,
};

/// Time open connections get to finish after `Bye` before the node exits.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
}

/// Runs a node with `settings` until `shutdown` resolves.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let node = &settings.node;
    if node.debug {
        warn!(
            "debug mode: peer links stay plaintext and registration is accepted over TCP without uid checks"
        );
    }
    let client = match settings.listen.client.as_str() {
        "" => None,
        addr => Some(listen::bind_tcp("clients", addr).await?),
    };
    let socket_path =
        (!settings.listen.socket.is_empty()).then(|| PathBuf::from(&settings.listen.socket));
    let unix = socket_path.as_deref().map(listen::bind_unix).transpose()?;
    let peer = match settings.listen.peer.as_str() {
        "" => None,
        addr => Some(listen::bind_tcp("peers", addr).await?),
    };
    let local = |l: &Option<TcpListener>| {
        l.as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "-".to_string(), |a| a.to_string())
    };
    info!(
        node = %node.name,
        cluster = %node.cluster,
        environment = %node.environment,
        client = %local(&client),
        socket = %socket_path.as_ref().map_or_else(|| "-".to_string(), |p| p.display().to_string()),
        peer = %local(&peer),
        "listening"
    );

    let welcome = Welcome {
        server_name: node.name.clone(),
        cluster: node.cluster.clone(),
        environment: node.environment.clone(),
        protocol_major: catalogue_proto::PROTOCOL_MAJOR,
        protocol_minor: catalogue_proto::PROTOCOL_MINOR,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    let max_frame = settings.limits.max_frame_bytes;

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(accepted) = accept_tcp(&client) => match accepted {
                Ok(stream) => {
                    sessions.spawn_local(stub_session::serve(stream, welcome.clone(), max_frame, stop_rx.clone()));
                }
                Err(e) => warn!(error = %e, "accepting a client connection failed"),
            },
            Some(accepted) = accept_unix(&unix) => match accepted {
                Ok(stream) => {
                    sessions.spawn_local(stub_session::serve(stream, welcome.clone(), max_frame, stop_rx.clone()));
                }
                Err(e) => warn!(error = %e, "accepting a UNIX connection failed"),
            },
            Some(accepted) = accept_tcp(&peer) => match accepted {
                Ok(stream) => {
                    sessions.spawn_local(stub_session::serve(stream, welcome.clone(), max_frame, stop_rx.clone()));
                }
                Err(e) => warn!(error = %e, "accepting a peer connection failed"),
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }

    info!(
        open = sessions.len(),
        "shutting down: no longer accepting connections"
    );
    drop((client, unix, peer));
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = sessions.len(),
            "connections still open after the drain timeout; closing them"
        );
        sessions.abort_all();
    }
    if let Some(path) = socket_path {
        if let Err(e) = std::fs::remove_file(&path) {
            warn!(path = %path.display(), error = %e, "cannot remove the UNIX socket file");
        }
    }
    info!("stopped");
    Ok(())
}

async fn accept_tcp(
    listener: &Option<TcpListener>,
) -> Option<std::io::Result<tokio::net::TcpStream>> {
    match listener {
        Some(l) => Some(l.accept().await.map(|(s, _)| s)),
        None => None,
    }
}

async fn accept_unix(
    listener: &Option<UnixListener>,
) -> Option<std::io::Result<tokio::net::UnixStream>> {
    match listener {
        Some(l) => Some(l.accept().await.map(|(s, _)| s)),
        None => None,
    }
}
