//! Binding the node's listeners: client TCP, the UNIX socket and the peer
//! TCP port. A stale UNIX socket file (left by a node that died) is
//! replaced; one that a live process still answers on is an error, so two
//! nodes never fight over the same socket.

use std::{
    io,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
};

use tokio::net::{TcpListener, UnixListener};

/// Why a listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The TCP address could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}")]
    Tcp {
        /// Which listener.
        what: &'static str,
        /// The configured address.
        addr: String,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The UNIX socket could not be created.
    #[error("cannot listen on UNIX socket {path}: {reason}")]
    Unix {
        /// The configured path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Binds a TCP listener for `what` ("clients", "peers") on `addr`.
pub async fn bind_tcp(what: &'static str, addr: &str) -> Result<TcpListener, ListenError> {
    let error = |source| ListenError::Tcp {
        what,
        addr: addr.to_string(),
        source,
    };
    let parsed: SocketAddr = addr
        .parse()
        .map_err(|e| error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    TcpListener::bind(parsed).await.map_err(error)
}

/// Binds the UNIX socket at `path`, replacing a stale socket file, and makes
/// it connectable by every local user (registration is guarded by the
/// caller's uid, not by the file mode).
pub fn bind_unix(path: &Path) -> Result<UnixListener, ListenError> {
    let error = |reason: String| ListenError::Unix {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(error("another process is listening on it".into()));
            }
            std::fs::remove_file(path)
                .map_err(|e| error(format!("cannot remove stale socket: {e}")))?;
        }
        Ok(_) => return Err(error("the path exists and is not a socket".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e.to_string())),
    }
    let listener = UnixListener::bind(path).map_err(|e| error(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| error(format!("cannot set permissions: {e}")))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("node.sock");
        let first = bind_unix(&path).expect("first bind");
        let refused = bind_unix(&path).expect_err("a live socket must not be replaced");
        assert!(refused.to_string().contains("another process"), "{refused}");
        drop(first);
        // The file is still there, but nobody answers: it is replaced.
        assert!(path.exists());
        let _second = bind_unix(&path).expect("stale socket replaced");
    }

    #[test]
    fn a_regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("not-a-socket");
        std::fs::write(&path, b"data").expect("write");
        let err = bind_unix(&path).expect_err("must refuse");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), b"data");
    }

    #[tokio::test]
    async fn a_bad_tcp_address_names_the_listener() {
        let err = bind_tcp("clients", "not-an-address")
            .await
            .expect_err("must fail");
        assert!(
            err.to_string()
                .starts_with("cannot listen for clients on not-an-address")
        );
    }
}
