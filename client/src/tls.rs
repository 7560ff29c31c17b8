//! TLS to a node's client TCP port, for nodes with `listen.client_tls`
//! set to `on` or `mutual` (docs/CLIENTS.md, "TLS").
//!
//! Built on rustls (with the `tls` feature) so that the library stays free
//! of OpenSSL. The node's certificate must chain to the CA the caller names
//! (nothing else is trusted, not the system's roots) and carry the expected
//! name: [`TlsOptions::server_name`], else the host of the endpoint. Node
//! certificates name their node (`catalogue tls cert NODE`), so a client
//! that dials an IP address names the node it expects. For `mutual`, the
//! client presents a certificate the same CA signed.

use std::path::PathBuf;

use tokio::net::TcpStream;

use super::ClientError;

/// How to speak TLS to a node's client port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CA that signed the node's certificate (the cluster
    /// CA, `tls.ca` on the node): the only one trusted.
    pub ca: PathBuf,
    /// The name the node's certificate must carry (its node name); `None`:
    /// the host part of the endpoint.
    pub server_name: Option<String>,
    /// Certificate (PEM, leaf first) and key presented to a node whose
    /// client port is `mutual`.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// The host part of `host:port` (`[v6]:port` included), or the whole.
pub(crate) fn host_of(endpoint: &str) -> &str {
    let host = endpoint
        .rsplit_once(':')
        .map_or(endpoint, |(host, _port)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The error of a failed set-up or handshake with `endpoint`, with a hint.
fn failure(endpoint: &str, reason: String) -> ClientError {
    ClientError::Tls {
        endpoint: endpoint.to_string(),
        reason,
    }
}

/// Runs the client side of the handshake over `stream`.
#[cfg(feature = "tls")]
pub(crate) async fn connect(
    stream: TcpStream,
    endpoint: &str,
    options: &TlsOptions,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    use std::sync::Arc;

    use rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    };

    let fail = |reason: String| failure(endpoint, reason);
    let certificates = |path: &PathBuf| -> Result<Vec<CertificateDer<'static>>, ClientError> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                fail(format!(
                    "cannot read certificates from {}: {e}",
                    path.display()
                ))
            })?;
        if certs.is_empty() {
            return Err(fail(format!("{}: no certificate in it", path.display())));
        }
        Ok(certs)
    };

    let mut roots = RootCertStore::empty();
    for cert in certificates(&options.ca)? {
        roots
            .add(cert)
            .map_err(|e| fail(format!("{}: not a usable CA: {e}", options.ca.display())))?;
    }
    // ring, not aws-lc-rs: it builds with a C compiler alone. rustls marks
    // it deprecated because it has no post-quantum key exchange; classic
    // ECDHE is what the node's OpenSSL offers a client anyway.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &options.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| fail(format!("cannot read a key from {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| fail(format!("{}: {e}", cert.display())))?
        }
    };
    let name = options
        .server_name
        .as_deref()
        .unwrap_or_else(|| host_of(endpoint));
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| fail(format!("{name:?} is not a host name or address: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await
        .map_err(|e| fail(explain(&e.to_string(), name)))
}

/// Refused when the library was built without TLS.
#[cfg(not(feature = "tls"))]
pub(crate) async fn connect(
    _stream: TcpStream,
    endpoint: &str,
    _options: &TlsOptions,
) -> Result<TcpStream, ClientError> {
    Err(failure(
        endpoint,
        "this program was built without the client library's `tls` feature".into(),
    ))
}

/// A handshake error (or the first read's, which is where TLS 1.3 reports
/// a client certificate the node refused) with what usually causes it.
pub(crate) fn explain(text: &str, name: &str) -> String {
    let hint = if text.contains("not valid for name") || text.contains("NotValidForName") {
        format!(
            " (the node's certificate does not name {name:?}: give the node's name, \
             e.g. --tls-name NODE)"
        )
    } else if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        " (the node's certificate is not signed by the CA given: is it the cluster's tls.ca?)"
            .to_string()
    } else if text.contains("corrupt message") || text.contains("InvalidContentType") {
        " (the port answered in plaintext: is listen.client_tls off on that node?)".to_string()
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        " (the node wants a client certificate: listen.client_tls = \"mutual\"; give one \
         signed by the cluster CA)"
            .to_string()
    } else {
        String::new()
    };
    format!("TLS handshake failed: {text}{hint}")
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("node-a:7480"), "node-a");
        assert_eq!(host_of("127.0.0.1:7480"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7480"), "::1");
        assert_eq!(host_of("node-a"), "node-a");
    }
}
