//! Admission control of a hosted registry (an extension: docs/XLREG.md,
//! "14. Extensions"): who may identify at all.
//!
//! Off by default: the seed's registry admits anyone who can reach it.
//! When `[xlreg.admit]` is set, a `Client` message (new or returning) is
//! admitted only if
//! - `keys` is empty, or the client's signing key (its token's `SigKey`, or
//!   the key registered for a returning client's ID) has one of the listed
//!   fingerprints (SHA-256 of the DER `SubjectPublicKeyInfo`); and
//! - `secret_file` is empty, or the message carries `AdmitProof` =
//!   HMAC-SHA256(secret, "xlReg admission v1" ‖ this session's salt2)
//!   ([`super::ext::admission_proof`]).
//!
//! Both set: both are required. The check is plain code
//! ([`Admission::check`]); [`Admission::from_config`] reads the listed
//! key files and the secret file at start and names the setting at fault.

use std::{collections::HashSet, path::Path};

use super::{
    crypto,
    ext::admission_proof,
    keys::{self, Fingerprint, PublicKey},
};
use crate::config::AdmitConfig;

/// Shortest shared secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Why a client was not admitted (sent to it in `Error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// Its signing key is not on the list.
    #[error("not admitted: this client's signing key ({0}) is not on the registry's list")]
    KeyNotListed(String),
    /// The registry wants a proof of the shared secret and got none.
    #[error("not admitted: the registry requires proof of its shared secret (AdmitProof)")]
    ProofMissing,
    /// The proof does not match.
    #[error("not admitted: wrong proof of the registry's shared secret")]
    ProofWrong,
}

/// Why `[xlreg.admit]` could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct AdmitConfigError {
    /// The setting at fault, e.g. `xlreg.admit.keys[2]`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// Who a registry admits.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// Fingerprints of the signing keys admitted; `None`: any key.
    keys: Option<HashSet<Fingerprint>>,
    /// The shared secret clients must prove; `None`: no secret.
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Admission {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("keys", &self.keys.as_ref().map(HashSet::len))
            .field("secret", &self.secret.is_some())
            .finish()
    }
}

impl Admission {
    /// The seed's behaviour: everyone is admitted.
    pub fn open() -> Admission {
        Admission::default()
    }

    /// Admits the keys in `keys` (when given) that prove `secret` (when
    /// given).
    pub fn new(keys: Option<HashSet<Fingerprint>>, secret: Option<Vec<u8>>) -> Admission {
        Admission { keys, secret }
    }

    /// Whether everyone is admitted.
    pub fn is_open(&self) -> bool {
        self.keys.is_none() && self.secret.is_none()
    }

    /// Whether a proof of a shared secret is required.
    pub fn requires_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// Checks a client whose signing key is `sig_key_der`, which sent
    /// `proof` in a session with `salt2`.
    pub fn check(
        &self,
        sig_key_der: &[u8],
        proof: Option<&[u8]>,
        salt2: &[u8],
    ) -> Result<(), AdmissionError> {
        if let Some(keys) = &self.keys {
            let fp = keys::fingerprint(sig_key_der);
            if !keys.contains(&fp) {
                return Err(AdmissionError::KeyNotListed(keys::format_fingerprint(&fp)));
            }
        }
        if let Some(secret) = &self.secret {
            let proof = proof.ok_or(AdmissionError::ProofMissing)?;
            let expected =
                admission_proof(secret, salt2).map_err(|_| AdmissionError::ProofWrong)?;
            if !crypto::constant_time_eq(proof, &expected) {
                return Err(AdmissionError::ProofWrong);
            }
        }
        Ok(())
    }

    /// Reads `[xlreg.admit]`: each entry of `keys` is a fingerprint
    /// (`sha256:<hex>`), a PEM public key, or the path of a PEM public key
    /// file; `secret_file` names a file whose contents (less a trailing
    /// newline) are the secret.
    pub fn from_config(admit: &AdmitConfig) -> Result<Admission, AdmitConfigError> {
        let keys = if admit.keys.is_empty() {
            None
        } else {
            let mut set = HashSet::new();
            for (i, entry) in admit.keys.iter().enumerate() {
                let fp = key_entry(entry).map_err(|problem| AdmitConfigError {
                    key: format!("xlreg.admit.keys[{i}]"),
                    problem,
                })?;
                set.insert(fp);
            }
            Some(set)
        };
        let secret = if admit.secret_file.is_empty() {
            None
        } else {
            Some(
                read_secret(Path::new(&admit.secret_file)).map_err(|problem| AdmitConfigError {
                    key: "xlreg.admit.secret_file".into(),
                    problem,
                })?,
            )
        };
        Ok(Admission { keys, secret })
    }
}

/// The fingerprint an entry of `xlreg.admit.keys` names.
pub fn key_entry(entry: &str) -> Result<Fingerprint, String> {
    let entry = entry.trim();
    if entry.starts_with("sha256:") {
        return keys::parse_fingerprint(entry)
            .ok_or_else(|| format!("{entry:?} is not sha256: and 64 hex digits"));
    }
    let pem = if entry.starts_with("-----BEGIN") {
        entry.as_bytes().to_vec()
    } else {
        std::fs::read(entry).map_err(|e| format!("cannot read {entry}: {e}"))?
    };
    let key = PublicKey::from_pem(&pem).map_err(|e| format!("not a PEM public key: {e}"))?;
    let der = key.to_der().map_err(|e| e.to_string())?;
    Ok(keys::fingerprint(&der))
}

/// A shared secret from `path`: its bytes less one trailing newline
/// (`\n` or `\r\n`), at least [`MIN_SECRET_LEN`] of them.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.len() < MIN_SECRET_LEN {
        return Err(format!(
            "{}: the secret has {} bytes; at least {MIN_SECRET_LEN}",
            path.display(),
            bytes.len()
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::client_key;

    const SALT2: [u8; 8] = [3; 8];
    const SECRET: &[u8] = b"a shared secret of the cluster";

    fn der(i: usize) -> Vec<u8> {
        client_key(i)
            .public_key()
            .and_then(|k| k.to_der())
            .expect("der")
    }

    #[test]
    fn open_admission_admits_anyone() {
        let a = Admission::open();
        assert!(a.is_open());
        assert_eq!(a.check(&der(0), None, &SALT2), Ok(()));
    }

    #[test]
    fn a_key_list_admits_listed_keys_only() {
        let a = Admission::new(Some([keys::fingerprint(&der(0))].into()), None);
        assert!(!a.is_open());
        assert_eq!(a.check(&der(0), None, &SALT2), Ok(()));
        let refused = a.check(&der(1), None, &SALT2).expect_err("not listed");
        let fp = keys::format_fingerprint(&keys::fingerprint(&der(1)));
        assert_eq!(refused, AdmissionError::KeyNotListed(fp.clone()));
        assert!(refused.to_string().contains(&fp), "{refused}");
    }

    #[test]
    fn a_secret_needs_this_sessions_proof() {
        let a = Admission::new(None, Some(SECRET.to_vec()));
        let proof = admission_proof(SECRET, &SALT2).expect("hmac");
        assert_eq!(a.check(&der(1), Some(&proof), &SALT2), Ok(()));
        assert_eq!(
            a.check(&der(1), None, &SALT2),
            Err(AdmissionError::ProofMissing)
        );
        // another session's proof, another secret's, a truncated one
        let other_session = admission_proof(SECRET, &[4; 8]).expect("hmac");
        let other_secret = admission_proof(b"another secret, long enough", &SALT2).expect("hmac");
        for wrong in [&other_session[..], &other_secret[..], &proof[..31]] {
            assert_eq!(
                a.check(&der(1), Some(wrong), &SALT2),
                Err(AdmissionError::ProofWrong)
            );
        }
    }

    #[test]
    fn keys_and_secret_are_both_required_when_both_are_set() {
        let a = Admission::new(
            Some([keys::fingerprint(&der(0))].into()),
            Some(SECRET.to_vec()),
        );
        let proof = admission_proof(SECRET, &SALT2).expect("hmac");
        assert_eq!(a.check(&der(0), Some(&proof), &SALT2), Ok(()));
        assert!(a.check(&der(0), None, &SALT2).is_err());
        assert!(a.check(&der(1), Some(&proof), &SALT2).is_err());
    }

    #[test]
    fn settings_name_keys_three_ways_and_a_secret_file() {
        let dir = tempfile::tempdir().expect("dir");
        let pem = client_key(1)
            .public_key()
            .and_then(|k| k.to_pem())
            .expect("pem");
        let file = dir.path().join("b.pub");
        std::fs::write(&file, &pem).expect("write");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"0123456789abcdef\n").expect("write");
        let settings = AdmitConfig {
            keys: vec![
                keys::format_fingerprint(&keys::fingerprint(&der(0))),
                file.display().to_string(),
                String::from_utf8(
                    client_key(2)
                        .public_key()
                        .and_then(|k| k.to_pem())
                        .expect("pem"),
                )
                .expect("utf-8"),
            ],
            secret_file: secret.display().to_string(),
        };
        let a = Admission::from_config(&settings).expect("loads");
        let proof = admission_proof(b"0123456789abcdef", &SALT2).expect("hmac");
        for i in 0..3 {
            assert_eq!(a.check(&der(i), Some(&proof), &SALT2), Ok(()), "key {i}");
        }
        assert!(a.check(&der(3), Some(&proof), &SALT2).is_err());

        let bad = |keys: Vec<String>, secret_file: &str| {
            Admission::from_config(&AdmitConfig {
                keys,
                secret_file: secret_file.into(),
            })
            .expect_err("refused")
        };
        let e = bad(vec!["x".into(), "sha256:12".into()], "");
        assert_eq!(e.key, "xlreg.admit.keys[0]", "{e}");
        let e = bad(vec!["sha256:12".into()], "");
        assert_eq!(e.key, "xlreg.admit.keys[0]", "{e}");
        std::fs::write(&secret, b"short\n").expect("write");
        let e = bad(vec![], &secret.display().to_string());
        assert_eq!(e.key, "xlreg.admit.secret_file", "{e}");
        assert!(e.problem.contains("at least 16"), "{e}");
        assert!(
            Admission::from_config(&AdmitConfig::default())
                .expect("empty")
                .is_open()
        );
    }
}
