//! The sockets a node listens on (client TCP port, UNIX socket, peer
//! port), bound at start, and accepting on them with the pause a listener
//! takes after running out of descriptors
//! ([`crate::admission::AcceptBackoff`]).

use std::{path::PathBuf, time::Instant};

use tokio::net::{TcpListener, UnixListener};

use super::NodeError;
use crate::{listen, settings::Settings};

/// The listeners of a node.
pub(super) struct Listeners {
    pub client: Option<TcpListener>,
    pub unix: Option<UnixListener>,
    pub socket_path: Option<PathBuf>,
    pub peer: Option<TcpListener>,
}

/// Removes the UNIX socket file when dropped, if it is still there.
pub(super) struct SocketFile(pub Option<PathBuf>);

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listeners {
    pub async fn bind(settings: &Settings) -> Result<Self, NodeError> {
        let client = match settings.listen.client.as_str() {
            "" => None,
            addr => Some(listen::bind_tcp("clients", addr).await?),
        };
        let peer = match settings.listen.peer.as_str() {
            "" => None,
            addr => Some(listen::bind_tcp("peers", addr).await?),
        };
        // Last: a TCP port in use then leaves no socket file behind.
        let socket_path =
            (!settings.listen.socket.is_empty()).then(|| PathBuf::from(&settings.listen.socket));
        let unix = socket_path.as_deref().map(listen::bind_unix).transpose()?;
        Ok(Listeners {
            client,
            unix,
            socket_path,
            peer,
        })
    }

    pub fn describe(l: &Option<TcpListener>) -> String {
        l.as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or_else(|| "-".to_string(), |a| a.to_string())
    }
}

/// Waits until `resume` (a listener paused after running out of
/// descriptors), then accepts.
async fn paused_until(resume: Option<Instant>) {
    if let Some(at) = resume {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

pub(super) async fn accept_tcp(
    listener: &Option<TcpListener>,
    resume: Option<Instant>,
) -> Option<std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>> {
    let l = listener.as_ref()?;
    paused_until(resume).await;
    Some(l.accept().await)
}

pub(super) async fn accept_unix(
    listener: &Option<UnixListener>,
    resume: Option<Instant>,
) -> Option<std::io::Result<tokio::net::UnixStream>> {
    let l = listener.as_ref()?;
    paused_until(resume).await;
    Some(l.accept().await.map(|(s, _)| s))
}
