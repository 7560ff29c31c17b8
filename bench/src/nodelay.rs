//! Turns Nagle's algorithm off on this process's TCP sockets connected to
//! a given port. The `zookeeper-client` crate leaves it on (it gives no
//! access to its socket), where ZooKeeper's own Java client sets
//! `TCP_NODELAY`: with Nagle on, a create sent while the previous one is
//! unacknowledged waits for the server's delayed ACK (40 ms on Linux),
//! which measured the kernel's timer rather than ZooKeeper. So the bench
//! finds the crate's sockets by their peer address (`getpeername` on each
//! descriptor in `/proc/self/fd`) and sets the option on them, as the Java
//! client would have.

use std::io;

/// Sets `TCP_NODELAY` on every TCP socket of this process whose peer port
/// is `port`; returns how many it set.
pub fn set_on_peers_at(port: u16) -> io::Result<usize> {
    let mut set = 0;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Ok(fd) = entry?.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        if peer_port(fd) == Some(port) {
            let on: libc::c_int = 1;
            // SAFETY: `fd` is an open descriptor of this process (a socket,
            // as getpeername succeeded); the option value is a c_int that
            // lives across the call, and its size is passed.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                set += 1;
            }
        }
    }
    Ok(set)
}

/// The peer's port if `fd` is a connected IPv4 or IPv6 socket.
fn peer_port(fd: libc::c_int) -> Option<u16> {
    // SAFETY: sockaddr_storage is plain data, valid when zeroed.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are valid for writes and `len` holds the
    // size of `addr`; on a descriptor that is not a socket the call fails
    // without writing.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let v4 =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(u16::from_be(v4.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let v6 =
                unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(u16::from_be(v6.sin6_port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_option_on_the_sockets_to_the_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(!client.nodelay().unwrap());
        assert_eq!(set_on_peers_at(port).unwrap(), 1);
        assert!(client.nodelay().unwrap());
    }
}
