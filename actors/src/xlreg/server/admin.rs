//! The registry's admin socket: how its operator removes a member or
//! changes a cluster's size, on the hosting node only, never over the
//! network.
//!
//! A UNIX socket at `<node.data_dir>/xlreg/admin.sock` (mode 0660). The
//! caller's uid (SO_PEERCRED) must be the node's own, root's, or one of
//! `xlreg.admin_uids`; anyone else is told so and closed. Each connection
//! carries one request and one reply, each a line of JSON
//! (docs/XLREG.md §14, "Leaving and repair"):
//!
//! ```text
//! -> {"op":"remove-member","cluster":"demo","member":"node-c"}
//! -> {"op":"set-size","cluster":"demo","size":5}
//! <- {"ok":true,"message":"removed node-c from cluster demo (slot 2 is free)"}
//! <- {"ok":false,"error":"no such cluster"}
//! ```
//!
//! A request longer than [`MAX_REQUEST_LEN`] bytes, or not complete within
//! [`REQUEST_TIMEOUT`], is refused. The change is made by the registry
//! actor ([`Admin`]) and synced to the log before the reply is written, as
//! for joins.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use actix::Addr;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::watch,
};
use tracing::{debug, info, warn};

use super::registry_actor::{Admin, RegistryActor};
use crate::xlreg::registry::AdminRequest;

/// Name of the admin socket in the registry's directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// Longest request line accepted.
pub const MAX_REQUEST_LEN: usize = 4096;
/// Time a connection has to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An operator's request, as sent on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AdminMessage {
    /// Free a member's slot.
    RemoveMember {
        /// The cluster's name.
        cluster: String,
        /// The member's client name, or its client ID in hex.
        member: String,
    },
    /// Change a cluster's size.
    SetSize {
        /// The cluster's name.
        cluster: String,
        /// The new size.
        size: u32,
    },
}

impl From<AdminMessage> for AdminRequest {
    fn from(m: AdminMessage) -> AdminRequest {
        match m {
            AdminMessage::RemoveMember { cluster, member } => {
                AdminRequest::RemoveMember { cluster, member }
            }
            AdminMessage::SetSize { cluster, size } => AdminRequest::SetSize { cluster, size },
        }
    }
}

/// The reply line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminReply {
    /// Whether the change was made (and synced).
    pub ok: bool,
    /// What was done, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why not, otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AdminReply {
    fn refused(error: impl Into<String>) -> AdminReply {
        AdminReply {
            ok: false,
            message: None,
            error: Some(error.into()),
        }
    }
}

/// Where the admin socket of the registry whose directory is `dir` is.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(ADMIN_SOCKET)
}

/// Listens on the admin socket in `dir` until `stop` turns true; a stale
/// socket file from an earlier run is replaced.
pub fn listen(
    dir: &Path,
    allowed_uids: Vec<u32>,
    registry: Addr<RegistryActor>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<PathBuf> {
    let path = socket_path(dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own = unsafe { libc::geteuid() };
    let mut allowed = allowed_uids;
    allowed.extend([own, 0]);
    actix_rt::spawn(accept_loop(listener, allowed, registry, stop, path.clone()));
    Ok(path)
}

async fn accept_loop(
    listener: UnixListener,
    allowed: Vec<u32>,
    registry: Addr<RegistryActor>,
    mut stop: watch::Receiver<bool>,
    path: PathBuf,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    actix_rt::spawn(connection(stream, allowed.clone(), registry.clone()));
                }
                Err(e) => {
                    warn!(error = %e, "xlReg admin socket: accepting a connection failed");
                    // Typically out of file descriptors: give others a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    // The socket file stays (a next start replaces it): removing it here
    // could remove a successor's.
    drop(listener);
    debug!(path = %path.display(), "xlReg admin socket closed");
}

async fn connection(stream: UnixStream, allowed: Vec<u32>, registry: Addr<RegistryActor>) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => {
            warn!(error = %e, "xlReg admin socket: no peer credentials; closing");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let reply = if allowed.contains(&uid) {
        match tokio::time::timeout(REQUEST_TIMEOUT, read_request(read)).await {
            Ok(Ok(request)) => run(request, uid, &registry).await,
            Ok(Err(problem)) => AdminReply::refused(problem),
            Err(_) => AdminReply::refused("no request in time"),
        }
    } else {
        warn!(
            uid,
            "xlReg admin socket: uid not allowed (xlreg.admin_uids); refused"
        );
        AdminReply::refused(format!(
            "uid {uid} may not administer this registry (xlreg.admin_uids)"
        ))
    };
    let mut line = serde_json::to_vec(&reply).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    if let Err(e) = write.write_all(&line).await {
        debug!(error = %e, "xlReg admin socket: the reply could not be written");
    }
}

/// Reads one request line of at most [`MAX_REQUEST_LEN`] bytes.
async fn read_request(read: tokio::net::unix::OwnedReadHalf) -> Result<AdminMessage, String> {
    let mut reader = BufReader::new(read.take(MAX_REQUEST_LEN as u64 + 1));
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("reading the request: {e}"))?;
    if line.len() > MAX_REQUEST_LEN {
        return Err(format!("request over {MAX_REQUEST_LEN} bytes"));
    }
    serde_json::from_slice(&line).map_err(|e| format!("bad request: {e}"))
}

async fn run(request: AdminMessage, uid: u32, registry: &Addr<RegistryActor>) -> AdminReply {
    info!(uid, request = ?request, "xlReg admin request");
    match registry.send(Admin(request.into())).await {
        Ok(Ok(message)) => AdminReply {
            ok: true,
            message: Some(message),
            error: None,
        },
        Ok(Err(e)) => AdminReply::refused(e.to_string()),
        Err(_) => AdminReply::refused("the registry is stopping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_of_requests_and_replies() {
        let m: AdminMessage =
            serde_json::from_str(r#"{"op":"remove-member","cluster":"demo","member":"node-c"}"#)
                .expect("parses");
        assert_eq!(
            AdminRequest::from(m),
            AdminRequest::RemoveMember {
                cluster: "demo".into(),
                member: "node-c".into()
            }
        );
        let m: AdminMessage =
            serde_json::from_str(r#"{"op":"set-size","cluster":"demo","size":5}"#).expect("parses");
        assert_eq!(
            m,
            AdminMessage::SetSize {
                cluster: "demo".into(),
                size: 5
            }
        );
        for bad in [
            r#"{"op":"drop-all"}"#,
            r#"{"op":"set-size","cluster":"demo"}"#,
            r#"{"op":"set-size","cluster":"demo","size":5,"x":1}"#,
        ] {
            assert!(serde_json::from_str::<AdminMessage>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&AdminReply::refused("no such cluster")).expect("json"),
            r#"{"ok":false,"error":"no such cluster"}"#
        );
    }
}
