//! Errors of the client library.

use catalogue_proto::{CodecError, catalogue::ErrorCode};

/// What can go wrong talking to a node.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect {
        /// Where.
        endpoint: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The process listening on the UNIX socket runs as a user the client
    /// does not trust: nothing was sent.
    #[error(
        "refusing to use {path}: the process listening there (pid {pid:?}) runs as uid {uid}, \
         not root, this user or the owner of the socket's private directory; another user may \
         have bound the path first. Put the node's socket in a directory only its user can \
         write (e.g. /run/catalogue), or trust that user with --trust-uid {uid}"
    )]
    UntrustedSocket {
        /// The socket.
        path: String,
        /// The listener's uid.
        uid: u32,
        /// The listener's pid, when the kernel says.
        pid: Option<i32>,
    },
    /// TLS could not be set up, or its handshake failed.
    #[error("TLS with {endpoint}: {reason}")]
    Tls {
        /// Where.
        endpoint: String,
        /// What went wrong, with a hint.
        reason: String,
    },
    /// What answered at the endpoint is not a node's client port.
    #[error("{endpoint} is not a catalogue client port: it is {what}")]
    WrongEndpoint {
        /// Where.
        endpoint: String,
        /// What it seems to be.
        what: String,
    },
    /// The node belongs to another environment than expected.
    #[error("environment mismatch: expected {expected}, server {server}")]
    EnvironmentMismatch {
        /// What the client expected.
        expected: String,
        /// What the node's Welcome said.
        server: String,
    },
    /// The node speaks another major protocol version.
    #[error("protocol version mismatch: client {client}, server {server}")]
    VersionMismatch {
        /// Our major version.
        client: u32,
        /// The node's.
        server: u32,
    },
    /// The node answered a request with an error.
    #[error("server error {}: {message}", code.hex())]
    Server {
        /// The code.
        code: ErrorCode,
        /// The node's description.
        message: String,
    },
    /// The node said goodbye.
    #[error("server closed the connection: {0}")]
    Bye(String),
    /// The connection ended.
    #[error("connection lost")]
    Disconnected,
    /// Framing or decoding failed.
    #[error("{0}")]
    Codec(String),
    /// The node sent something out of order.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl From<CodecError> for ClientError {
    fn from(e: CodecError) -> Self {
        ClientError::Codec(e.to_string())
    }
}

impl ClientError {
    /// True when retrying cannot help (wrong environment or version, a
    /// request the node refused, a socket served by an untrusted user, or
    /// TLS that failed: certificates do not fix themselves).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ClientError::EnvironmentMismatch { .. }
                | ClientError::VersionMismatch { .. }
                | ClientError::Server { .. }
                | ClientError::UntrustedSocket { .. }
                | ClientError::WrongEndpoint { .. }
                | ClientError::Tls { .. }
        )
    }
}
