//! The OpenSSL contexts of peer links, and the handshakes over them.
//!
//! [`TlsContexts`] holds an `SslAcceptor` (for links this node accepted: it
//! is the TLS server) and an `SslConnector` (for links it dialled: the TLS
//! client), both built from the same three PEM inputs: the cluster CA, this
//! node's certificate (optionally followed by intermediates) and its key.
//! Both sides:
//! - speak TLS 1.2 or later;
//! - present this node's certificate;
//! - trust the cluster CA and nothing else: the connector's default store
//!   (the system roots) is replaced, the acceptor never loads one;
//! - verify the peer's chain. The acceptor *requires* a client certificate
//!   (`SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT`);
//! - never resume a session: every link verifies a certificate in full.
//!
//! Host names are not checked by OpenSSL: the connector dials addresses,
//! not names. The name in the peer's certificate is checked afterwards
//! against the `Peer` message with [`super::identity::check_peer_name`].
//!
//! Building the contexts checks the inputs first and names the file at
//! fault: missing, not PEM, a key that does not belong to the certificate,
//! a certificate the CA did not sign, or one that has expired or lacks the
//! server/client key usages, so a misconfigured node fails at start rather
//! than at its first handshake.
//!
//! [`accept`] and [`connect`] run the handshake over any
//! `AsyncRead + AsyncWrite + Unpin` stream, e.g. a
//! [`super::prefixed::Prefixed`] that replays bytes already read after the
//! plaintext `Peer` frame. They set no timeout; callers wrap them in
//! `tokio::time::timeout`.

use std::{path::Path, pin::Pin};

use openssl::{
    error::ErrorStack,
    pkey::{PKey, PKeyRef, Private},
    ssl::{
        Ssl, SslAcceptor, SslConnector, SslContextBuilder, SslMethod, SslOptions,
        SslSessionCacheMode, SslVerifyMode, SslVersion,
    },
    stack::Stack,
    x509::{
        X509, X509PurposeId, X509StoreContext, X509VerifyResult,
        store::{X509Store, X509StoreBuilder},
    },
};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use super::{
    failure::HandshakeFailure,
    pem::{self, PemError, describe},
};

/// Names the TLS sessions of peer links. Sessions are never resumed (see
/// `Inputs::configure`), but OpenSSL wants one whenever the server verifies
/// clients.
const SESSION_ID_CONTEXT: &[u8] = b"catalogue-peer-link";

/// The same for the client port, so a session of one is never taken for
/// the other.
const CLIENT_SESSION_ID_CONTEXT: &[u8] = b"catalogue-client-port";

/// What went wrong setting up TLS or running a handshake.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM input is missing, unreadable, not PEM, or the key does not
    /// match the certificate.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// This node's certificate was not issued by the configured CA.
    #[error("{cert}: not signed by the CA in {ca} ({reason})")]
    NotSignedByCa {
        /// Where the certificate came from.
        cert: String,
        /// Where the CA came from.
        ca: String,
        /// OpenSSL's verify message.
        reason: String,
    },
    /// This node's certificate is signed by the CA but unusable: expired,
    /// not valid yet, or not for server and client authentication.
    #[error("{cert}: cannot be used for peer links: {reason}")]
    InvalidCertificate {
        /// Where the certificate came from.
        cert: String,
        /// What is wrong.
        reason: String,
    },
    /// OpenSSL refused to set up a context or connection.
    #[error("cannot set up TLS: {}", describe(source))]
    Setup {
        /// OpenSSL's errors.
        #[source]
        source: ErrorStack,
    },
    /// The handshake failed.
    #[error("TLS handshake failed: {reason}")]
    Handshake {
        /// Why, classified.
        reason: HandshakeFailure,
    },
}

impl TlsError {
    /// A short, fixed name for metrics labels and structured logs: the
    /// [`HandshakeFailure::label`] of a failed handshake, else what kind of
    /// set-up problem this is.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Handshake { reason } => reason.label(),
            Self::Pem(PemError::Missing { .. } | PemError::Read { .. }) => "file",
            Self::Pem(PemError::NotPem { .. }) => "not_pem",
            Self::Pem(PemError::KeyMismatch { .. }) => "key_mismatch",
            Self::NotSignedByCa { .. } => "not_signed_by_ca",
            Self::InvalidCertificate { .. } => "invalid_certificate",
            Self::Setup { .. } => "setup",
        }
    }

    /// The handshake failure, if this is one.
    pub fn handshake_failure(&self) -> Option<&HandshakeFailure> {
        match self {
            Self::Handshake { reason } => Some(reason),
            _ => None,
        }
    }
}

fn setup(source: ErrorStack) -> TlsError {
    TlsError::Setup { source }
}

/// The server and client contexts of this node's peer links. Cheap to
/// clone (reference-counted OpenSSL contexts).
#[derive(Clone)]
pub struct TlsContexts {
    /// For links this node accepted (TLS server).
    pub acceptor: SslAcceptor,
    /// For links this node dialled (TLS client).
    pub connector: SslConnector,
}

impl std::fmt::Debug for TlsContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContexts").finish_non_exhaustive()
    }
}

impl TlsContexts {
    /// Builds the contexts from the `tls.ca`, `tls.cert` and `tls.key`
    /// files, after checking them.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let ca_certs = pem::load_certificates(ca)?;
        let chain = pem::load_certificates(cert)?;
        let key_pair = pem::load_private_key(key)?;
        Inputs {
            ca: &ca_certs,
            chain: &chain,
            key: &key_pair,
            ca_origin: &pem::origin(ca),
            cert_origin: &pem::origin(cert),
            key_origin: &pem::origin(key),
        }
        .build(true)
    }

    /// Builds the TLS server context of the client TCP port
    /// (`listen.client_tls`) from the same three files as the peer links:
    /// this node presents its certificate, and with `require_client_cert`
    /// a client must present one the cluster CA signed (any name: the
    /// certificate admits a reader, it grants no registration).
    pub fn client_port_from_files(
        ca: &Path,
        cert: &Path,
        key: &Path,
        require_client_cert: bool,
    ) -> Result<SslAcceptor, TlsError> {
        let ca_certs = pem::load_certificates(ca)?;
        let chain = pem::load_certificates(cert)?;
        let key_pair = pem::load_private_key(key)?;
        Inputs {
            ca: &ca_certs,
            chain: &chain,
            key: &key_pair,
            ca_origin: &pem::origin(ca),
            cert_origin: &pem::origin(cert),
            key_origin: &pem::origin(key),
        }
        .build_client_port(require_client_cert)
    }

    /// Builds the contexts from PEM bytes, after checking them.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        Self::from_pem_inner(ca_pem, cert_pem, key_pem, true)
    }

    /// Like [`Self::from_pem`] but without checking this node's own
    /// certificate against the CA (the key must still match it). Only for
    /// tests that play a rogue peer presenting an expired or foreign
    /// certificate.
    pub fn from_pem_unchecked(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, TlsError> {
        Self::from_pem_inner(ca_pem, cert_pem, key_pem, false)
    }

    fn from_pem_inner(
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        check_own_certificate: bool,
    ) -> Result<Self, TlsError> {
        let (ca_origin, cert_origin, key_origin) = (
            "CA certificate (in memory)",
            "certificate (in memory)",
            "key (in memory)",
        );
        let ca = pem::parse_certificates(ca_pem, ca_origin)?;
        let chain = pem::parse_certificates(cert_pem, cert_origin)?;
        let key: PKey<Private> = pem::parse_private_key(key_pem, key_origin)?;
        Inputs {
            ca: &ca,
            chain: &chain,
            key: &key,
            ca_origin,
            cert_origin,
            key_origin,
        }
        .build(check_own_certificate)
    }
}

/// Parsed inputs and where they came from (for error messages).
struct Inputs<'a> {
    ca: &'a [X509],
    /// Leaf first, then intermediates; never empty (the parser ensures it).
    chain: &'a [X509],
    key: &'a PKeyRef<Private>,
    ca_origin: &'a str,
    cert_origin: &'a str,
    key_origin: &'a str,
}

impl Inputs<'_> {
    fn build(&self, check_own_certificate: bool) -> Result<TlsContexts, TlsError> {
        let (leaf, intermediates) = self.leaf()?;
        pem::check_key_matches(leaf, self.key, self.cert_origin, self.key_origin)?;
        if check_own_certificate {
            // The acceptor presents it as a server, the connector as a
            // client: both purposes must verify.
            self.check_own_certificate(leaf, intermediates, X509PurposeId::SSL_SERVER)?;
            self.check_own_certificate(leaf, intermediates, X509PurposeId::SSL_CLIENT)?;
        }

        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
        self.configure(&mut acceptor, leaf, intermediates)
            .map_err(setup)?;
        acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        acceptor
            .set_session_id_context(SESSION_ID_CONTEXT)
            .map_err(setup)?;
        for ca in self.ca {
            // Tells clients which CA's certificate to present.
            acceptor.add_client_ca(ca).map_err(setup)?;
        }

        let mut connector = SslConnector::builder(SslMethod::tls_client()).map_err(setup)?;
        self.configure(&mut connector, leaf, intermediates)
            .map_err(setup)?;
        connector.set_verify(SslVerifyMode::PEER);

        Ok(TlsContexts {
            acceptor: acceptor.build(),
            connector: connector.build(),
        })
    }

    /// The client port's server context: like the peer acceptor, but a
    /// client certificate is asked for only when `require_client_cert`.
    fn build_client_port(&self, require_client_cert: bool) -> Result<SslAcceptor, TlsError> {
        let (leaf, intermediates) = self.leaf()?;
        pem::check_key_matches(leaf, self.key, self.cert_origin, self.key_origin)?;
        self.check_own_certificate(leaf, intermediates, X509PurposeId::SSL_SERVER)?;
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).map_err(setup)?;
        self.configure(&mut acceptor, leaf, intermediates)
            .map_err(setup)?;
        if require_client_cert {
            acceptor.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
            acceptor
                .set_session_id_context(CLIENT_SESSION_ID_CONTEXT)
                .map_err(setup)?;
            for ca in self.ca {
                acceptor.add_client_ca(ca).map_err(setup)?;
            }
        } else {
            acceptor.set_verify(SslVerifyMode::NONE);
        }
        Ok(acceptor.build())
    }

    /// The leaf certificate and the intermediates after it.
    fn leaf(&self) -> Result<(&X509, &[X509]), TlsError> {
        self.chain.split_first().ok_or_else(|| {
            PemError::NotPem {
                origin: self.cert_origin.to_string(),
                expected: "certificate",
                detail: "empty".into(),
            }
            .into()
        })
    }

    /// What both contexts share: protocol floor, trust, own certificate.
    fn configure(
        &self,
        ctx: &mut SslContextBuilder,
        leaf: &X509,
        intermediates: &[X509],
    ) -> Result<(), ErrorStack> {
        ctx.set_min_proto_version(Some(SslVersion::TLS1_2))?;
        // No session resumption: links are few and long-lived, and every
        // one should verify a certificate in full (an expired one must not
        // come back through a cached session). It also keeps the server
        // from writing session tickets at the end of `accept`.
        ctx.set_session_cache_mode(SslSessionCacheMode::OFF);
        ctx.set_options(SslOptions::NO_TICKET);
        ctx.set_num_tickets(0)?;
        // Replaces whatever store the builder started with (the connector's
        // holds the system roots).
        ctx.set_cert_store(trust_store(self.ca)?);
        ctx.set_certificate(leaf)?;
        for cert in intermediates {
            ctx.add_extra_chain_cert(cert.clone())?;
        }
        ctx.set_private_key(self.key)?;
        ctx.check_private_key()
    }

    /// Verifies this node's certificate against the CA for `purpose`.
    fn check_own_certificate(
        &self,
        leaf: &X509,
        intermediates: &[X509],
        purpose: X509PurposeId,
    ) -> Result<(), TlsError> {
        let result = verify_chain(self.ca, leaf, intermediates, purpose).map_err(setup)?;
        if result == X509VerifyResult::OK {
            return Ok(());
        }
        match HandshakeFailure::from_verify_result(result) {
            Some(HandshakeFailure::UnknownCa) => Err(TlsError::NotSignedByCa {
                cert: self.cert_origin.to_string(),
                ca: self.ca_origin.to_string(),
                reason: result.error_string().to_string(),
            }),
            _ => Err(TlsError::InvalidCertificate {
                cert: self.cert_origin.to_string(),
                reason: result.error_string().to_string(),
            }),
        }
    }
}

/// A store holding the CA certificates and nothing else.
fn trust_store(ca: &[X509]) -> Result<X509Store, ErrorStack> {
    Ok(trust_store_builder(ca)?.build())
}

fn trust_store_builder(ca: &[X509]) -> Result<X509StoreBuilder, ErrorStack> {
    let mut store = X509StoreBuilder::new()?;
    for cert in ca {
        store.add_cert(cert.clone())?;
    }
    Ok(store)
}

/// Verifies `leaf` (with `intermediates`) against `ca` for `purpose`, at
/// the current time.
pub(crate) fn verify_chain(
    ca: &[X509],
    leaf: &X509,
    intermediates: &[X509],
    purpose: X509PurposeId,
) -> Result<X509VerifyResult, ErrorStack> {
    let mut store = trust_store_builder(ca)?;
    store.set_purpose(purpose)?;
    let store = store.build();
    let mut untrusted = Stack::new()?;
    for cert in intermediates {
        untrusted.push(cert.clone())?;
    }
    let mut ctx = X509StoreContext::new()?;
    let result = ctx.init(&store, leaf, &untrusted, |c| {
        let ok = c.verify_cert()?;
        Ok(if ok { X509VerifyResult::OK } else { c.error() })
    })?;
    // A failed verification may leave entries on the thread's OpenSSL error
    // queue; drop them so they are not blamed on a later call.
    let _ = ErrorStack::get();
    Ok(result)
}

/// Runs the server side of the handshake on `stream`; the peer must present
/// a certificate signed by the cluster CA.
pub async fn accept<S>(acceptor: &SslAcceptor, stream: S) -> Result<SslStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ssl = Ssl::new(acceptor.context()).map_err(setup)?;
    let mut tls = SslStream::new(ssl, stream).map_err(setup)?;
    match Pin::new(&mut tls).accept().await {
        Ok(()) => Ok(tls),
        Err(e) => Err(TlsError::Handshake {
            reason: HandshakeFailure::from_ssl_error(&e, tls.ssl().verify_result()),
        }),
    }
}

/// Runs the client side of the handshake on `stream`; the peer must present
/// a certificate signed by the cluster CA. No SNI, no host name check.
///
/// With TLS 1.3 this returns `Ok` before the server has checked *our*
/// certificate; if it refuses it, the first read fails, and
/// [`HandshakeFailure::from_io_error`] classifies that error.
pub async fn connect<S>(connector: &SslConnector, stream: S) -> Result<SslStream<S>, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ssl = connector
        .configure()
        .map_err(setup)?
        .verify_hostname(false)
        .use_server_name_indication(false)
        .into_ssl("")
        .map_err(setup)?;
    let mut tls = SslStream::new(ssl, stream).map_err(setup)?;
    match Pin::new(&mut tls).connect().await {
        Ok(()) => Ok(tls),
        Err(e) => Err(TlsError::Handshake {
            reason: HandshakeFailure::from_ssl_error(&e, tls.ssl().verify_result()),
        }),
    }
}

#[cfg(test)]
mod tests;
