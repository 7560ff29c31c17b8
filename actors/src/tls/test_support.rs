//! Fixtures shared by the TLS tests: a cluster CA, a foreign ("rogue") CA
//! and node certificates, each made once per test binary (key generation
//! is the slow part), and helpers that run both ends of a handshake over an
//! in-memory pipe.

use std::sync::OnceLock;

use tokio::io::{DuplexStream, duplex};
use tokio_openssl::SslStream;

use super::{
    CertSpec, CertificateAuthority, DEFAULT_NODE_VALIDITY, NodeCertificate, TlsContexts, TlsError,
    accept, connect,
};

/// Capacity of each direction of the in-memory pipe: larger than a whole
/// handshake flight, so neither side ever waits on buffer space.
const PIPE: usize = 64 * 1024;

/// The CA every well-behaved test node trusts.
pub(crate) fn cluster_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| CertificateAuthority::generate("test-cluster-ca").expect("cluster CA"))
}

/// A CA nobody in the cluster trusts.
pub(crate) fn rogue_ca() -> &'static CertificateAuthority {
    static CA: OnceLock<CertificateAuthority> = OnceLock::new();
    CA.get_or_init(|| CertificateAuthority::generate("rogue-ca").expect("rogue CA"))
}

/// `node-a`, issued by the cluster CA.
pub(crate) fn node_a() -> &'static NodeCertificate {
    static CERT: OnceLock<NodeCertificate> = OnceLock::new();
    CERT.get_or_init(|| {
        cluster_ca()
            .issue("node-a", DEFAULT_NODE_VALIDITY)
            .expect("node-a")
    })
}

/// `node-b`, issued by the cluster CA.
pub(crate) fn node_b() -> &'static NodeCertificate {
    static CERT: OnceLock<NodeCertificate> = OnceLock::new();
    CERT.get_or_init(|| {
        cluster_ca()
            .issue("node-b", DEFAULT_NODE_VALIDITY)
            .expect("node-b")
    })
}

/// `node-b` again, but issued by the rogue CA.
pub(crate) fn rogue_node_b() -> &'static NodeCertificate {
    static CERT: OnceLock<NodeCertificate> = OnceLock::new();
    CERT.get_or_init(|| {
        rogue_ca()
            .issue("node-b", DEFAULT_NODE_VALIDITY)
            .expect("rogue node-b")
    })
}

/// `node-b`, issued by the cluster CA, expired yesterday.
pub(crate) fn expired_node_b() -> &'static NodeCertificate {
    static CERT: OnceLock<NodeCertificate> = OnceLock::new();
    CERT.get_or_init(|| {
        cluster_ca()
            .issue_spec(&CertSpec::expired("node-b"))
            .expect("expired node-b")
    })
}

/// The PEM of the cluster CA certificate.
pub(crate) fn cluster_ca_pem() -> Vec<u8> {
    cluster_ca().cert_pem().expect("CA PEM")
}

/// Contexts of a node that trusts the cluster CA and presents `node`
/// (checked: `node` must be a good certificate of the cluster).
pub(crate) fn contexts(node: &NodeCertificate) -> TlsContexts {
    TlsContexts::from_pem(&cluster_ca_pem(), &node.cert_pem, &node.key_pem).expect("contexts")
}

/// Contexts of a rogue node that trusts the cluster CA but presents `node`
/// whatever is wrong with it.
pub(crate) fn rogue_contexts(node: &NodeCertificate) -> TlsContexts {
    TlsContexts::from_pem_unchecked(&cluster_ca_pem(), &node.cert_pem, &node.key_pem)
        .expect("rogue contexts")
}

/// Both ends of one handshake over an in-memory pipe: `server` accepts,
/// `client` connects. Returns (server result, client result).
pub(crate) async fn handshake(
    server: &TlsContexts,
    client: &TlsContexts,
) -> (
    Result<SslStream<DuplexStream>, TlsError>,
    Result<SslStream<DuplexStream>, TlsError>,
) {
    let (server_end, client_end) = duplex(PIPE);
    tokio::join!(
        accept(&server.acceptor, server_end),
        connect(&client.connector, client_end)
    )
}
