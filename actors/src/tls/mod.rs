//! TLS for peer links: the cluster's certificates, the OpenSSL contexts both
//! ends of a link use, and the check that a peer's certificate names the
//! node it claims to be.
//!
//! Plain code, no actors: the peer-link actor drives it, tests use it
//! directly.
//!
//! - [`certs`]: make a cluster CA and node certificates, in memory or as
//!   files (`ca.pem`/`ca.key`, `NODE.pem`/`NODE.key`, keys mode 0600).
//! - [`context`]: [`TlsContexts`] (an `SslAcceptor` and an `SslConnector`
//!   that trust the cluster CA only and demand certificates from both
//!   sides) and the async handshakes [`accept`] and [`connect`].
//! - [`failure`]: why a handshake failed, in a form logs and metrics can
//!   count ([`HandshakeFailure`]).
//! - [`prefixed`]: [`Prefixed`], a stream that first replays bytes the
//!   caller already read (the plaintext `Peer` frame may arrive in the same
//!   read as the start of the TLS handshake).
//! - [`identity`]: the names a verified certificate carries,
//!   [`check_peer_name`], and the xlReg clusters it names
//!   ([`check_peer_cluster`]).
//! - [`pem`]: reading PEM certificates and keys, with errors that name the
//!   file.
//!
//! Who is who on a link (docs/PROTOCOL.md §4.2): the node that dialled is
//! the TLS client ([`connect`]), the node that accepted is the TLS server
//! ([`accept`]). OpenSSL verifies the chain on both sides; the name is
//! checked afterwards, against the `Peer` message, by [`check_peer_name`].

pub mod certs;
pub mod context;
pub mod failure;
mod files;
pub mod identity;
pub mod pem;
pub mod prefixed;
pub mod trust;

pub use certs::{
    CLUSTER_URI_PREFIX, CertError, CertSpec, CertificateAuthority, DEFAULT_NODE_VALIDITY,
    NodeCertificate, Overwrite, PemPaths, cluster_uri,
};
pub use context::{TlsContexts, TlsError, accept, connect};
pub use failure::HandshakeFailure;
pub use identity::{
    IdentityError, certificate_names, check_peer, check_peer_cluster, check_peer_name,
    check_stream_peer, cluster_names, verified_peer_certificate,
};
pub use pem::PemError;
pub use prefixed::Prefixed;
pub use trust::TrustAnchors;

#[cfg(test)]
mod handshake_tests;
#[cfg(test)]
mod test_support;
