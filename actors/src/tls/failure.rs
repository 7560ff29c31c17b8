//! Why a TLS handshake failed, as a small enum that logs print and metrics
//! count by [`HandshakeFailure::label`].
//!
//! The classification reads, in this order: the result of *this* side's
//! verification of the peer's certificate (`SSL_get_verify_result`: unknown
//! CA, expired, ...); then OpenSSL's error stack: "peer did not return a
//! certificate" (we demanded one and got none), a fatal alert *received*
//! from the peer (the peer refused us; OpenSSL reports alert N as reason
//! 1000 + N), an unexpected end of the connection; then I/O errors.
//! Numbers come from OpenSSL's public headers (`x509_vfy.h`, `sslerr.h`,
//! `err.h`), which are part of its stable ABI.
//!
//! With TLS 1.3 the server checks the client's certificate after the client
//! has finished its half of the handshake, so a client whose certificate is
//! refused only learns it on its first read: [`HandshakeFailure::from_io_error`]
//! classifies such a read error the same way.

use std::{fmt, io};

use openssl::{
    ssl::{self, ErrorCode},
    x509::X509VerifyResult,
};

use super::pem::describe;

// x509_vfy.h: X509_V_ERR_*.
const V_ERR_UNABLE_TO_GET_ISSUER_CERT: i32 = 2;
const V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE: i32 = 4;
const V_ERR_CERT_SIGNATURE_FAILURE: i32 = 7;
const V_ERR_CERT_NOT_YET_VALID: i32 = 9;
const V_ERR_CERT_HAS_EXPIRED: i32 = 10;
const V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: i32 = 18;
const V_ERR_SELF_SIGNED_CERT_IN_CHAIN: i32 = 19;
const V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY: i32 = 20;
const V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: i32 = 21;
const V_ERR_CERT_UNTRUSTED: i32 = 27;
// err.h: ERR_LIB_SSL.
const LIB_SSL: i32 = 20;
// sslerr.h: SSL_R_*.
const R_PEER_DID_NOT_RETURN_A_CERTIFICATE: i32 = 199;
const R_UNEXPECTED_EOF_WHILE_READING: i32 = 294;
// ssl.h: SSL_AD_REASON_OFFSET; received alert N is reason 1000 + N.
const R_ALERT_OFFSET: i32 = 1000;

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The peer's certificate is not signed by the cluster CA (another CA,
    /// self-signed, or a broken signature).
    UnknownCa,
    /// We demanded a certificate and the peer sent none.
    NoPeerCertificate,
    /// The peer's certificate has expired.
    Expired,
    /// The peer's certificate is not valid yet (or our clock is behind).
    NotYetValid,
    /// The peer's certificate failed verification for another reason
    /// (wrong key usage, ...): OpenSSL's verify message.
    BadCertificate(String),
    /// The peer refused the handshake with a fatal alert: it did not accept
    /// our certificate, or nothing in common was found.
    RejectedByPeer {
        /// The TLS alert number (48 unknown CA, 45 certificate expired, 116
        /// certificate required, 40 handshake failure, ...).
        alert: u8,
        /// The alert as OpenSSL names it, e.g. "unknown ca".
        description: String,
    },
    /// The connection ended in the middle of the handshake.
    ConnectionClosed,
    /// An I/O error on the connection.
    Io(String),
    /// Anything else: OpenSSL's reasons.
    Other(String),
}

impl HandshakeFailure {
    /// A short, fixed name for metrics labels and structured logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownCa => "unknown_ca",
            Self::NoPeerCertificate => "no_peer_certificate",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadCertificate(_) => "bad_certificate",
            Self::RejectedByPeer { .. } => "rejected_by_peer",
            Self::ConnectionClosed => "connection_closed",
            Self::Io(_) => "io",
            Self::Other(_) => "other",
        }
    }

    /// What a failed verification of the peer's certificate means; `None`
    /// when the verification succeeded (or did not run).
    pub fn from_verify_result(result: X509VerifyResult) -> Option<Self> {
        let code = result.as_raw();
        Some(match code {
            0 => return None,
            V_ERR_UNABLE_TO_GET_ISSUER_CERT
            | V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE
            | V_ERR_CERT_SIGNATURE_FAILURE
            | V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
            | V_ERR_SELF_SIGNED_CERT_IN_CHAIN
            | V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
            | V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
            | V_ERR_CERT_UNTRUSTED => Self::UnknownCa,
            V_ERR_CERT_HAS_EXPIRED => Self::Expired,
            V_ERR_CERT_NOT_YET_VALID => Self::NotYetValid,
            _ => Self::BadCertificate(result.error_string().to_string()),
        })
    }

    /// Classifies a failed `accept`/`connect`; `verify` is the stream's
    /// `ssl().verify_result()` afterwards.
    pub fn from_ssl_error(err: &ssl::Error, verify: X509VerifyResult) -> Self {
        if let Some(failure) = Self::from_verify_result(verify) {
            return failure;
        }
        if err.code() == ErrorCode::ZERO_RETURN {
            return Self::ConnectionClosed;
        }
        if let Some(stack) = err.ssl_error() {
            for e in stack.errors() {
                if e.library_code() != LIB_SSL {
                    continue;
                }
                let reason = e.reason_code();
                if reason == R_PEER_DID_NOT_RETURN_A_CERTIFICATE {
                    return Self::NoPeerCertificate;
                }
                if reason == R_UNEXPECTED_EOF_WHILE_READING {
                    return Self::ConnectionClosed;
                }
                // Below the offset the difference is negative: no alert.
                if let Ok(alert) = u8::try_from(reason - R_ALERT_OFFSET) {
                    return Self::RejectedByPeer {
                        alert,
                        description: alert_description(e.reason(), alert),
                    };
                }
            }
            return Self::Other(describe(stack));
        }
        if let Some(io) = err.io_error() {
            return Self::from_plain_io_error(io);
        }
        if err.code() == ErrorCode::SYSCALL {
            // SYSCALL without an I/O error: end of file.
            return Self::ConnectionClosed;
        }
        Self::Other(err.to_string())
    }

    /// Classifies an error from reading or writing a TLS stream after the
    /// handshake (see the module documentation on TLS 1.3).
    pub fn from_io_error(err: &io::Error) -> Self {
        match err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ssl::Error>())
        {
            Some(ssl_err) => Self::from_ssl_error(ssl_err, X509VerifyResult::OK),
            None => Self::from_plain_io_error(err),
        }
    }

    fn from_plain_io_error(err: &io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::ConnectionClosed,
            _ => Self::Io(err.to_string()),
        }
    }
}

/// "tlsv1 alert unknown ca" -> "unknown ca".
fn alert_description(reason: Option<&str>, alert: u8) -> String {
    match reason {
        Some(r) => match r.split_once("alert ") {
            Some((_, rest)) => rest.to_string(),
            None => r.to_string(),
        },
        None => format!("alert {alert}"),
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCa => f.write_str("peer certificate is not signed by the cluster CA"),
            Self::NoPeerCertificate => f.write_str("peer sent no certificate"),
            Self::Expired => f.write_str("peer certificate has expired"),
            Self::NotYetValid => f.write_str("peer certificate is not valid yet"),
            Self::BadCertificate(why) => write!(f, "peer certificate refused: {why}"),
            Self::RejectedByPeer { alert, description } => {
                write!(
                    f,
                    "peer refused the handshake: {description} (alert {alert})"
                )
            }
            Self::ConnectionClosed => f.write_str("connection closed during the handshake"),
            Self::Io(why) => write!(f, "I/O error: {why}"),
            Self::Other(why) => write!(f, "{why}"),
        }
    }
}
