//! Who is listening on a node's UNIX socket. Before a client sends anything
//! over a UNIX socket, it asks the kernel which user owns the process at
//! the other end (`SO_PEERCRED`) and goes on only if that user is one it
//! trusts: root, the client's own user, the owner of the socket's directory
//! when nobody else may create files there (`/run/catalogue`, owned by the
//! node's user, mode 0755), or a uid the caller names
//! ([`super::ConnectOptions::trusted_uids`]). Otherwise another local user
//! may have bound the path first (in `/tmp`, anyone can) to receive the
//! registrations meant for the node.

use std::{os::unix::fs::MetadataExt, path::Path};

use tokio::net::UnixStream;

use super::ClientError;

/// Checks the user of the process listening at `path` (connected as
/// `stream`) against the trusted ones.
pub(super) fn check(stream: &UnixStream, path: &Path, extra: &[u32]) -> Result<(), ClientError> {
    let cred = stream.peer_cred().map_err(|e| ClientError::Connect {
        endpoint: path.display().to_string(),
        reason: format!("cannot learn who listens on the socket: {e}"),
    })?;
    let uid = cred.uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let own = unsafe { libc::geteuid() };
    if trusted(uid, own, directory_owner(path), extra) {
        return Ok(());
    }
    Err(ClientError::UntrustedSocket {
        path: path.display().to_string(),
        uid,
        pid: cred.pid(),
    })
}

/// The owner of `path`'s directory, if only that owner may create entries
/// in it (no write bit for group or others).
fn directory_owner(path: &Path) -> Option<u32> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir).ok()?;
    (meta.mode() & 0o022 == 0).then_some(meta.uid())
}

/// Is a listener running as `uid` trusted by a client running as `own`?
fn trusted(uid: u32, own: u32, dir_owner: Option<u32>, extra: &[u32]) -> bool {
    uid == 0 || uid == own || dir_owner == Some(uid) || extra.contains(&uid)
}

#[cfg(test)]
mod tests {
    use super::trusted;

    #[test]
    fn root_self_the_private_directory_owner_and_named_uids_are_trusted() {
        assert!(trusted(0, 1000, None, &[]));
        assert!(trusted(1000, 1000, None, &[]));
        assert!(trusted(998, 1000, Some(998), &[]));
        assert!(trusted(998, 1000, None, &[998]));
    }

    #[test]
    fn another_user_in_a_shared_directory_is_not() {
        assert!(!trusted(65534, 0, None, &[]));
        assert!(!trusted(65534, 1000, Some(0), &[998]));
    }
}
