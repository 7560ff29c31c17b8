//! Who the peer is: the names its verified certificate carries, and the
//! check that one of them is the name the peer claimed in its plaintext
//! `Peer` message.
//!
//! OpenSSL has already verified the chain when this runs (see
//! [`super::context`]); it did not look at names. A certificate names a
//! node by its subject common name (CN) or a DNS `subjectAltName`; the
//! claimed name must equal one of them exactly, ignoring ASCII case as DNS
//! does. No wildcards: a certificate name containing `*` matches nothing,
//! and nothing is trimmed or normalised (a trailing dot is a different
//! name). Whether the claimed name is a *known* peer is the caller's check.
//!
//! A certificate names the xlReg clusters its holder may join with URI SANs
//! `catalogue://cluster/<name>` ([`cluster_names`], [`check_peer_cluster`]):
//! membership in an xlReg cluster alone never authorises a link.

use openssl::{
    nid::Nid,
    ssl::SslRef,
    x509::{X509, X509Ref, X509VerifyResult},
};
use thiserror::Error;
use tokio_openssl::SslStream;

use super::certs::CLUSTER_URI_PREFIX;

/// Why a peer's certificate does not establish the identity it claimed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    /// The TLS session has no peer certificate.
    #[error("peer presented no certificate")]
    NoCertificate,
    /// The peer certificate did not pass verification.
    #[error("peer certificate failed verification: {reason}")]
    NotVerified {
        /// OpenSSL's verify message.
        reason: String,
    },
    /// The certificate does not name the claimed node.
    #[error(
        "peer claims to be {claimed:?} but its certificate names {}",
        quoted(names)
    )]
    NameMismatch {
        /// The name from the `Peer` message.
        claimed: String,
        /// The names in the certificate (CN, then DNS SANs).
        names: Vec<String>,
    },
    /// The certificate does not name the xlReg cluster the peer comes from.
    #[error(
        "peer certificate does not name cluster {cluster:?} (URI SAN {CLUSTER_URI_PREFIX}{cluster}); \
         it names {}",
        quoted_clusters(clusters)
    )]
    NotInCluster {
        /// The cluster required.
        cluster: String,
        /// The clusters the certificate names.
        clusters: Vec<String>,
    },
}

fn quoted_clusters(clusters: &[String]) -> String {
    if clusters.is_empty() {
        "no cluster".to_string()
    } else {
        quoted(clusters)
    }
}

fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        return "nothing".to_string();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The subject common names of `cert` (normally one); entries that are not
/// valid UTF-8 are skipped.
pub fn common_names(cert: &X509Ref) -> Vec<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .filter_map(|entry| entry.data().to_string().ok())
        .collect()
}

/// The DNS names of `cert`'s `subjectAltName` extension.
pub fn dns_names(cert: &X509Ref) -> Vec<String> {
    cert.subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.dnsname().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The URI names of `cert`'s `subjectAltName` extension.
pub fn uri_names(cert: &X509Ref) -> Vec<String> {
    cert.subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.uri().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The xlReg clusters `cert` names: its URI SANs
/// `catalogue://cluster/<name>`.
pub fn cluster_names(cert: &X509Ref) -> Vec<String> {
    uri_names(cert)
        .into_iter()
        .filter_map(|uri| uri.strip_prefix(CLUSTER_URI_PREFIX).map(str::to_string))
        .collect()
}

/// Passes if `cert` names xlReg cluster `cluster` (exactly; an empty
/// cluster matches nothing). `cert` must already be verified.
pub fn check_peer_cluster(cert: &X509Ref, cluster: &str) -> Result<(), IdentityError> {
    let clusters = cluster_names(cert);
    if !cluster.is_empty() && clusters.iter().any(|c| c == cluster) {
        Ok(())
    } else {
        Err(IdentityError::NotInCluster {
            cluster: cluster.to_string(),
            clusters,
        })
    }
}

/// Every name `cert` gives its holder: common names, then DNS SANs,
/// without duplicates.
pub fn certificate_names(cert: &X509Ref) -> Vec<String> {
    let mut names = common_names(cert);
    for dns in dns_names(cert) {
        if !names.contains(&dns) {
            names.push(dns);
        }
    }
    names
}

/// Passes if `claimed` is the CN or a DNS SAN of `cert` (exact, ASCII case
/// insensitive). `cert` must already be verified.
pub fn check_peer_name(cert: &X509Ref, claimed: &str) -> Result<(), IdentityError> {
    let names = certificate_names(cert);
    let matches = |name: &String| {
        !claimed.is_empty() && !name.contains('*') && name.eq_ignore_ascii_case(claimed)
    };
    if names.iter().any(matches) {
        Ok(())
    } else {
        Err(IdentityError::NameMismatch {
            claimed: claimed.to_string(),
            names,
        })
    }
}

/// The peer's certificate of a finished handshake, provided OpenSSL
/// verified it. (With the contexts of [`super::context`] a handshake does
/// not finish otherwise; this is the belt to those braces.)
pub fn verified_peer_certificate(ssl: &SslRef) -> Result<X509, IdentityError> {
    let cert = ssl.peer_certificate().ok_or(IdentityError::NoCertificate)?;
    let result = ssl.verify_result();
    if result != X509VerifyResult::OK {
        return Err(IdentityError::NotVerified {
            reason: result.error_string().to_string(),
        });
    }
    Ok(cert)
}

/// [`verified_peer_certificate`] then [`check_peer_name`]: what a peer
/// link runs right after the handshake.
pub fn check_peer(ssl: &SslRef, claimed: &str) -> Result<(), IdentityError> {
    let cert = verified_peer_certificate(ssl)?;
    check_peer_name(&cert, claimed)
}

/// [`check_peer`] on a TLS stream returned by [`super::accept`] or
/// [`super::connect`].
pub fn check_stream_peer<S>(stream: &SslStream<S>, claimed: &str) -> Result<(), IdentityError> {
    check_peer(stream.ssl(), claimed)
}

#[cfg(test)]
mod tests;
