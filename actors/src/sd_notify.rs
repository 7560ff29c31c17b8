//! systemd's readiness protocol (sd_notify(3)), written out because it is
//! one datagram: when the service manager started us with `Type=notify` it
//! sets `NOTIFY_SOCKET` to a UNIX datagram socket (a path, or `@name` in the
//! abstract namespace), and we send `READY=1` once the node serves and
//! `STOPPING=1` when it begins to stop (deploy/catalogue.service). Without
//! `NOTIFY_SOCKET` nothing is sent.

use std::{
    io,
    os::unix::{ffi::OsStrExt, net::UnixDatagram},
};

/// Sent once the listeners are bound and the node's state is up.
pub const READY: &str = "READY=1";

/// Sent when the node begins its shutdown.
pub const STOPPING: &str = "STOPPING=1";

/// Sends `state` to the service manager; `Ok(false)` when there is none.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    match bytes.split_first() {
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        Some((b'/', _)) => {
            socket.send_to(state.as_bytes(), &path)?;
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("NOTIFY_SOCKET {path:?} is neither a path nor @name"),
            ));
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_notify_socket_nothing_is_sent() {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!notify(READY).expect("no socket, no error"));
        }
    }
}
