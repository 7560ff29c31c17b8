//! Who may register services: the transport a request came over and the
//! caller's credentials (read with SO_PEERCRED when a UNIX connection is
//! accepted), checked against `register.allowed_uids` / `allowed_gids`.
//! Plain code, tested without sockets.

use std::net::SocketAddr;

/// How a client is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Over the UNIX socket, with the peer's credentials.
    Unix {
        /// Peer uid.
        uid: u32,
        /// Peer primary gid.
        gid: u32,
        /// Peer pid, when the kernel reports one.
        pid: Option<i32>,
    },
    /// Over TCP from `peer`.
    Tcp {
        /// Remote address.
        peer: SocketAddr,
    },
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Unix { uid, gid, pid } => match pid {
                Some(pid) => write!(f, "unix(uid={uid},gid={gid},pid={pid})"),
                None => write!(f, "unix(uid={uid},gid={gid})"),
            },
            Transport::Tcp { peer } => write!(f, "tcp({peer})"),
        }
    }
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Registration over TCP outside debug mode.
    #[error("registration is only accepted over the node's UNIX socket")]
    NotUnixSocket,
    /// The caller's uid and gid are not allowed.
    #[error("uid {uid} (gid {gid}) is not allowed to register services")]
    NotAllowed {
        /// Caller uid.
        uid: u32,
        /// Caller gid.
        gid: u32,
    },
}

impl Refusal {
    /// Short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NotUnixSocket => "not_unix_socket",
            Refusal::NotAllowed { .. } => "uid_not_allowed",
        }
    }
}

/// The registration rule of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterPolicy {
    /// Debug mode: TCP accepted without checks.
    pub debug: bool,
    /// Allowed uids (see `allowed_gids`).
    pub allowed_uids: Vec<u32>,
    /// Allowed gids. With both lists empty: root and `own_uid`.
    pub allowed_gids: Vec<u32>,
    /// The uid the daemon runs as.
    pub own_uid: u32,
}

impl From<&crate::settings::Settings> for RegisterPolicy {
    /// `node.debug` and `register.allowed_uids` / `allowed_gids`, with the
    /// uid this process runs as. Built at start and on every reload.
    fn from(s: &crate::settings::Settings) -> Self {
        RegisterPolicy {
            debug: s.node.debug,
            allowed_uids: s.register.allowed_uids.clone(),
            allowed_gids: s.register.allowed_gids.clone(),
            // SAFETY: geteuid has no preconditions and cannot fail.
            own_uid: unsafe { libc::geteuid() },
        }
    }
}

impl RegisterPolicy {
    /// May a client on `transport` register?
    pub fn check(&self, transport: &Transport) -> Result<(), Refusal> {
        match *transport {
            Transport::Tcp { .. } if self.debug => Ok(()),
            Transport::Tcp { .. } => Err(Refusal::NotUnixSocket),
            Transport::Unix { uid, gid, .. } => {
                let allowed = if self.allowed_uids.is_empty() && self.allowed_gids.is_empty() {
                    uid == 0 || uid == self.own_uid
                } else {
                    self.allowed_uids.contains(&uid) || self.allowed_gids.contains(&gid)
                };
                if allowed {
                    Ok(())
                } else {
                    Err(Refusal::NotAllowed { uid, gid })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(uid: u32, gid: u32) -> Transport {
        Transport::Unix {
            uid,
            gid,
            pid: None,
        }
    }

    fn tcp() -> Transport {
        Transport::Tcp {
            peer: "127.0.0.1:1".parse().expect("addr"),
        }
    }

    fn policy(uids: &[u32], gids: &[u32]) -> RegisterPolicy {
        RegisterPolicy {
            debug: false,
            allowed_uids: uids.to_vec(),
            allowed_gids: gids.to_vec(),
            own_uid: 1000,
        }
    }

    #[test]
    fn default_allows_root_and_the_daemon_user_only() {
        let p = policy(&[], &[]);
        assert_eq!(p.check(&unix(0, 0)), Ok(()));
        assert_eq!(p.check(&unix(1000, 5)), Ok(()));
        assert_eq!(
            p.check(&unix(65534, 65534)),
            Err(Refusal::NotAllowed {
                uid: 65534,
                gid: 65534
            })
        );
    }

    #[test]
    fn listed_uids_or_gids_are_allowed_and_nobody_else() {
        let p = policy(&[42], &[7]);
        assert_eq!(p.check(&unix(42, 1)), Ok(()));
        assert_eq!(p.check(&unix(99, 7)), Ok(()));
        assert!(
            p.check(&unix(0, 0)).is_err(),
            "root is not implied once lists are set"
        );
    }

    #[test]
    fn tcp_only_in_debug_mode() {
        let mut p = policy(&[], &[]);
        assert_eq!(p.check(&tcp()), Err(Refusal::NotUnixSocket));
        p.debug = true;
        assert_eq!(p.check(&tcp()), Ok(()));
    }
}
