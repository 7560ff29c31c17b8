//! Re-checking established links after the CA bundle changed (SIGHUP
//! reload): [`TrustAnchors`] holds the CA certificates of the new bundle and
//! says whether a peer certificate seen at handshake time is still trusted.

use std::path::Path;

use openssl::x509::{X509, X509PurposeId, X509VerifyResult};

use super::{TlsError, context::verify_chain, pem};

/// The CA certificates a node trusts.
#[derive(Debug, Clone)]
pub struct TrustAnchors(Vec<X509>);

impl TrustAnchors {
    /// Loads the CA certificates of `path`.
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        Ok(TrustAnchors(pem::load_certificates(path)?))
    }

    /// Does `leaf` verify against these CAs now?
    pub fn trusts(&self, leaf: &X509) -> bool {
        matches!(
            verify_chain(&self.0, leaf, &[], X509PurposeId::ANY),
            Ok(result) if result == X509VerifyResult::OK
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::tls::{CertificateAuthority, Overwrite};

    #[test]
    fn a_certificate_is_trusted_by_its_ca_only() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = CertificateAuthority::generate("one").expect("ca");
        let other = CertificateAuthority::generate("two").expect("ca");
        let paths = ca
            .write_to_dir(dir.path(), Overwrite::Refuse)
            .expect("write");
        let anchors = TrustAnchors::load(&paths.cert).expect("load");
        let ours = ca
            .issue("node-a", Duration::from_secs(3600))
            .expect("issue");
        let theirs = other
            .issue("node-a", Duration::from_secs(3600))
            .expect("issue");
        assert!(anchors.trusts(&ours.certificate().expect("cert")));
        assert!(!anchors.trusts(&theirs.certificate().expect("cert")));
    }
}
