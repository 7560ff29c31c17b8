//! Reading certificates and private keys in PEM form, from files or from
//! memory, with errors that say which file (the *origin*) and what is wrong
//! with it: missing, unreadable, not PEM, or a key that does not belong to
//! the certificate.
//!
//! Private keys must be unencrypted: a daemon has nobody to type a
//! passphrase, so an encrypted key is refused instead of OpenSSL prompting
//! on the terminal. A key file that the group or others may read is loaded
//! but logged as a warning.

use std::{io, os::unix::fs::PermissionsExt, path::Path};

use openssl::{
    error::ErrorStack,
    pkey::{PKey, PKeyRef, Private},
    x509::{X509, X509Ref},
};
use thiserror::Error;

/// A PEM input that could not be used.
#[derive(Debug, Error)]
pub enum PemError {
    /// The file is not there.
    #[error("{origin}: no such file")]
    Missing {
        /// The file.
        origin: String,
    },
    /// The file is there but could not be read.
    #[error("{origin}: cannot read it: {source}")]
    Read {
        /// The file.
        origin: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The bytes are not what was expected.
    #[error("{origin}: not a PEM {expected}: {detail}")]
    NotPem {
        /// The file, or a description of the in-memory input.
        origin: String,
        /// What should have been there ("certificate", "private key").
        expected: &'static str,
        /// What OpenSSL made of it.
        detail: String,
    },
    /// The private key is not the one the certificate was issued for.
    #[error("{key}: this private key does not belong to the certificate in {cert}")]
    KeyMismatch {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
    },
}

/// How a path is named in error messages.
pub fn origin(path: &Path) -> String {
    path.display().to_string()
}

/// Reads a whole file, telling a missing file from other I/O errors.
pub fn read_file(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            PemError::Missing {
                origin: origin(path),
            }
        } else {
            PemError::Read {
                origin: origin(path),
                source,
            }
        }
    })
}

/// Parses every certificate in `pem`, in order; at least one is required.
pub fn parse_certificates(pem: &[u8], origin: &str) -> Result<Vec<X509>, PemError> {
    let not_pem = |detail: String| PemError::NotPem {
        origin: origin.to_string(),
        expected: "certificate",
        detail,
    };
    let certs = X509::stack_from_pem(pem).map_err(|e| not_pem(describe(&e)))?;
    if certs.is_empty() {
        return Err(not_pem(
            "no \"-----BEGIN CERTIFICATE-----\" block found".into(),
        ));
    }
    Ok(certs)
}

/// Parses an unencrypted private key (PKCS#8 or the traditional RSA/EC
/// forms). An encrypted key is refused, never prompted for.
pub fn parse_private_key(pem: &[u8], origin: &str) -> Result<PKey<Private>, PemError> {
    // The callback answers "no passphrase" so OpenSSL fails instead of
    // reading one from the terminal.
    PKey::private_key_from_pem_callback(pem, |_| Ok(0)).map_err(|e| PemError::NotPem {
        origin: origin.to_string(),
        expected: "private key (unencrypted)",
        detail: describe(&e),
    })
}

/// Checks that `key` is the private half of `cert`'s public key.
pub fn check_key_matches(
    cert: &X509Ref,
    key: &PKeyRef<Private>,
    cert_origin: &str,
    key_origin: &str,
) -> Result<(), PemError> {
    let matches = cert
        .public_key()
        .map(|public| public.public_eq(key))
        .unwrap_or(false);
    if matches {
        Ok(())
    } else {
        Err(PemError::KeyMismatch {
            cert: cert_origin.to_string(),
            key: key_origin.to_string(),
        })
    }
}

/// Reads and parses the certificates of a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<X509>, PemError> {
    parse_certificates(&read_file(path)?, &origin(path))
}

/// Reads and parses the private key of a PEM file; warns (does not refuse)
/// when the group or others may read the file.
pub fn load_private_key(path: &Path) -> Result<PKey<Private>, PemError> {
    let bytes = read_file(path)?;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format_args!("{mode:04o}"),
                "private key file is readable by other users; chmod 600 it"
            );
        }
    }
    parse_private_key(&bytes, &origin(path))
}

/// A one-line summary of an OpenSSL error stack: the reasons, without the
/// numeric codes and source locations.
pub(crate) fn describe(stack: &ErrorStack) -> String {
    let reasons: Vec<&str> = stack.errors().iter().filter_map(|e| e.reason()).collect();
    if reasons.is_empty() {
        "unreadable".to_string()
    } else {
        reasons.join("; ")
    }
}
