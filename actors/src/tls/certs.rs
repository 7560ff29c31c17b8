//! The cluster's certificates: a CA that signs every node, and one
//! certificate per node that the node presents on both ends of its peer
//! links.
//!
//! Keys are RSA 2048 with SHA-256 signatures. RSA because the node
//! certificates carry `keyUsage = digitalSignature, keyEncipherment`, the
//! conventional pair for an RSA TLS key (RFC 5480 does not allow
//! keyEncipherment on an EC key), and because every TLS stack accepts it;
//! generation runs in OpenSSL's C code, so it costs tens of milliseconds
//! even in debug builds, and handshake cost is irrelevant for a handful of
//! long-lived peer links.
//!
//! The CA: self-signed, subject `CN=<name>`, `basicConstraints` CA:true
//! (critical), `keyUsage` keyCertSign + cRLSign (critical), a subject key
//! identifier, valid 10 years. A node certificate: subject `CN=<node>`,
//! `subjectAltName` DNS:<node>, `basicConstraints` CA:false (critical),
//! `keyUsage` digitalSignature + keyEncipherment (critical),
//! `extendedKeyUsage` serverAuth + clientAuth (a node is the TLS server on
//! links it accepts and the client on links it dials), subject and
//! authority key identifiers, a random 128-bit serial, valid one year by
//! default. A node that forms its cluster through xlReg also carries one
//! URI SAN `catalogue://cluster/<name>` per xlReg cluster it may join
//! ([`cluster_uri`], `catalogue tls cert --cluster NAME`): a member that is
//! not a configured peer is linked to only when its certificate names the
//! cluster (docs/XLREG.md §14). Both start one hour in the past ([`BACKDATE`]) so that a node
//! whose clock is a little behind the issuing host's accepts them at once.
//!
//! On disk: `ca.pem`/`ca.key` and `NODE.pem`/`NODE.key` (PKCS#8, not
//! encrypted), keys created with mode 0600; see the `files` module for how.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

pub use super::files::{CertError, Overwrite};
use super::{
    files::{self, NewFile},
    pem,
};
use crate::names;
use openssl::{
    asn1::Asn1Time,
    bn::{BigNum, MsbOption},
    error::ErrorStack,
    hash::MessageDigest,
    pkey::{PKey, PKeyRef, Private},
    rsa::Rsa,
    x509::{
        X509, X509Builder, X509NameBuilder, X509Ref,
        extension::{
            AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
            SubjectAlternativeName, SubjectKeyIdentifier,
        },
    },
};

/// Validity of a node certificate unless the caller says otherwise: one year.
pub const DEFAULT_NODE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Validity of a cluster CA: ten years.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// The longest validity [`CertificateAuthority::issue`] accepts: 100 years.
pub const MAX_VALIDITY: Duration = Duration::from_secs(36_500 * 24 * 60 * 60);
/// How far in the past certificates start, for clock differences between
/// the issuing host and the nodes.
pub const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// RSA modulus size.
const RSA_BITS: u32 = 2048;
/// Serial numbers are this many random bits (RFC 5280: positive, at most 20
/// octets; CA/B Forum: at least 64 bits of entropy).
const SERIAL_BITS: i32 = 128;
/// Longest common name X.509 allows (`ub-common-name`).
const MAX_CN_LEN: usize = 64;
/// What a cluster's URI SAN starts with; the cluster name follows.
pub const CLUSTER_URI_PREFIX: &str = "catalogue://cluster/";

/// The URI SAN naming xlReg cluster `cluster`.
pub fn cluster_uri(cluster: &str) -> String {
    format!("{CLUSTER_URI_PREFIX}{cluster}")
}

/// File names of the CA in its directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// See [`CA_CERT_FILE`].
pub const CA_KEY_FILE: &str = "ca.key";

/// Wraps an OpenSSL error with what was being done.
fn ossl(action: &'static str) -> impl FnOnce(ErrorStack) -> CertError {
    move |source| CertError::OpenSsl { action, source }
}

/// Where a certificate and its key are (or were written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemPaths {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PEM, mode 0600).
    pub key: PathBuf,
}

impl PemPaths {
    /// `DIR/ca.pem` and `DIR/ca.key`.
    pub fn ca(dir: &Path) -> Self {
        Self {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        }
    }

    /// `DIR/NODE.pem` and `DIR/NODE.key`.
    pub fn node(dir: &Path, node: &str) -> Self {
        Self {
            cert: dir.join(format!("{node}.pem")),
            key: dir.join(format!("{node}.key")),
        }
    }
}

/// Checks that `name` can be a node name: what `node.name` accepts in the
/// settings ([`crate::names`]), so it is a valid DNS name for the SAN and a
/// safe file name.
fn check_node_name(name: &str) -> Result<(), CertError> {
    names::check(name).map_err(|problem| CertError::InvalidName {
        name: name.to_string(),
        problem: problem.to_string(),
    })
}

/// What a certificate issued by [`CertificateAuthority::issue_spec`] says.
/// [`CertSpec::node`] is what `issue` uses; tests change fields to build
/// certificates that peers must refuse (expired, or naming another node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Subject common name.
    pub common_name: String,
    /// `subjectAltName` DNS entries.
    pub dns_names: Vec<String>,
    /// `subjectAltName` URI entries (e.g. [`cluster_uri`]). No DNS and no
    /// URI entry means no SAN extension.
    pub uris: Vec<String>,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

impl CertSpec {
    /// A normal node certificate: CN and the only DNS SAN are `name`, valid
    /// from [`BACKDATE`] ago for `validity` from now.
    pub fn node(name: &str, validity: Duration) -> Self {
        let now = SystemTime::now();
        Self {
            common_name: name.to_string(),
            dns_names: vec![name.to_string()],
            uris: Vec::new(),
            not_before: now.checked_sub(BACKDATE).unwrap_or(UNIX_EPOCH),
            not_after: now.checked_add(validity).unwrap_or(now),
        }
    }

    /// A certificate whose validity ended a day ago (for tests).
    pub fn expired(name: &str) -> Self {
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 60 * 60);
        Self {
            not_before: now.checked_sub(2 * day).unwrap_or(UNIX_EPOCH),
            not_after: now.checked_sub(day).unwrap_or(UNIX_EPOCH),
            ..Self::node(name, day)
        }
    }
}

/// A node's certificate and private key, in PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeCertificate {
    /// The node name (the certificate's CN); names the files.
    pub name: String,
    /// The certificate.
    pub cert_pem: Vec<u8>,
    /// The private key (PKCS#8, unencrypted).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for NodeCertificate {
    /// Leaves the key out, so it never ends up in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCertificate")
            .field("name", &self.name)
            .field("cert_pem", &String::from_utf8_lossy(&self.cert_pem))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl NodeCertificate {
    /// The parsed certificate.
    pub fn certificate(&self) -> Result<X509, CertError> {
        let mut certs = pem::parse_certificates(&self.cert_pem, "node certificate (in memory)")?;
        Ok(certs.swap_remove(0))
    }

    /// Writes `DIR/NAME.pem` and `DIR/NAME.key` (mode 0600), creating `DIR`
    /// (mode 0700) if needed.
    pub fn write_to_dir(&self, dir: &Path, overwrite: Overwrite) -> Result<PemPaths, CertError> {
        check_node_name(&self.name)?;
        let paths = PemPaths::node(dir, &self.name);
        write_pair(dir, &paths, &self.cert_pem, &self.key_pem, overwrite)?;
        Ok(paths)
    }
}

/// A cluster certificate authority: its certificate and private key.
pub struct CertificateAuthority {
    /// The CA certificate (the first one of its file).
    cert: X509,
    /// Its private key.
    key: PKey<Private>,
}

impl std::fmt::Debug for CertificateAuthority {
    /// The subject only; never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.cert.subject_name())
            .field("not_after", &self.cert.not_after().to_string())
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new CA named `name` (its CN), valid for [`CA_VALIDITY`].
    pub fn generate(name: &str) -> Result<Self, CertError> {
        if let Some(problem) = ca_name_problem(name) {
            return Err(CertError::InvalidCaName {
                name: name.to_string(),
                problem,
            });
        }
        let key = new_key()?;
        let now = SystemTime::now();
        let not_before = now.checked_sub(BACKDATE).unwrap_or(UNIX_EPOCH);
        let not_after = now.checked_add(CA_VALIDITY).unwrap_or(now);
        let mut builder = base_builder(name, &key, not_before, not_after)?;
        let subject = builder_subject(name)?;
        builder
            .set_issuer_name(&subject)
            .map_err(ossl("set the CA issuer"))?;
        builder
            .append_extension(
                BasicConstraints::new()
                    .critical()
                    .ca()
                    .build()
                    .map_err(ossl("build basicConstraints"))?,
            )
            .map_err(ossl("add basicConstraints"))?;
        builder
            .append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .map_err(ossl("build keyUsage"))?,
            )
            .map_err(ossl("add keyUsage"))?;
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(None, None))
            .map_err(ossl("build subjectKeyIdentifier"))?;
        builder
            .append_extension(ski)
            .map_err(ossl("add subjectKeyIdentifier"))?;
        builder
            .sign(&key, MessageDigest::sha256())
            .map_err(ossl("sign the CA certificate"))?;
        Ok(Self {
            cert: builder.build(),
            key,
        })
    }

    /// A CA from PEM bytes: the first certificate of `cert_pem` and the key
    /// of `key_pem`, which must belong together.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertError> {
        Self::from_parts(
            cert_pem,
            key_pem,
            "CA certificate (in memory)",
            "CA key (in memory)",
        )
    }

    /// Loads a CA from its certificate and key files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        let cert_pem = pem::read_file(cert_path)?;
        let key = pem::load_private_key(key_path)?;
        let mut certs = pem::parse_certificates(&cert_pem, &pem::origin(cert_path))?;
        let cert = certs.swap_remove(0);
        pem::check_key_matches(&cert, &key, &pem::origin(cert_path), &pem::origin(key_path))?;
        Ok(Self { cert, key })
    }

    /// Loads `DIR/ca.pem` and `DIR/ca.key`.
    pub fn load_dir(dir: &Path) -> Result<Self, CertError> {
        let paths = PemPaths::ca(dir);
        Self::load(&paths.cert, &paths.key)
    }

    fn from_parts(
        cert_pem: &[u8],
        key_pem: &[u8],
        cert_origin: &str,
        key_origin: &str,
    ) -> Result<Self, CertError> {
        let mut certs = pem::parse_certificates(cert_pem, cert_origin)?;
        let cert = certs.swap_remove(0);
        let key = pem::parse_private_key(key_pem, key_origin)?;
        pem::check_key_matches(&cert, &key, cert_origin, key_origin)?;
        Ok(Self { cert, key })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }

    /// The CA's private key.
    pub fn private_key(&self) -> &PKeyRef<Private> {
        &self.key
    }

    /// The CA certificate in PEM, what nodes configure as `tls.ca`.
    pub fn cert_pem(&self) -> Result<Vec<u8>, CertError> {
        self.cert
            .to_pem()
            .map_err(ossl("encode the CA certificate"))
    }

    /// The CA's private key in PEM (PKCS#8, unencrypted).
    pub fn key_pem(&self) -> Result<Vec<u8>, CertError> {
        self.key
            .private_key_to_pem_pkcs8()
            .map_err(ossl("encode the CA key"))
    }

    /// True if a certificate issued now for `validity` would still be valid
    /// after this CA has expired (and so would stop working with it).
    pub fn expires_within(&self, validity: Duration) -> Result<bool, CertError> {
        let end = asn1_time(
            SystemTime::now()
                .checked_add(validity)
                .unwrap_or(UNIX_EPOCH),
        )?;
        let ordering = self
            .cert
            .not_after()
            .compare(&end)
            .map_err(ossl("compare validity dates"))?;
        Ok(ordering == std::cmp::Ordering::Less)
    }

    /// Writes `DIR/ca.pem` and `DIR/ca.key` (mode 0600), creating `DIR`
    /// (mode 0700) if needed.
    pub fn write_to_dir(&self, dir: &Path, overwrite: Overwrite) -> Result<PemPaths, CertError> {
        let paths = PemPaths::ca(dir);
        write_pair(dir, &paths, &self.cert_pem()?, &self.key_pem()?, overwrite)?;
        Ok(paths)
    }

    /// Issues the certificate of node `node_name`, valid for `validity`
    /// (see [`DEFAULT_NODE_VALIDITY`]), with a fresh key.
    pub fn issue(&self, node_name: &str, validity: Duration) -> Result<NodeCertificate, CertError> {
        self.issue_for_clusters(node_name, validity, &[])
    }

    /// [`Self::issue`], the certificate also naming each xlReg cluster of
    /// `clusters` (a URI SAN [`cluster_uri`] each; the names follow the
    /// node-name rules).
    pub fn issue_for_clusters(
        &self,
        node_name: &str,
        validity: Duration,
        clusters: &[String],
    ) -> Result<NodeCertificate, CertError> {
        check_node_name(node_name)?;
        for cluster in clusters {
            if let Err(problem) = names::check(cluster) {
                return Err(CertError::InvalidName {
                    name: cluster.clone(),
                    problem: format!("as a cluster name: {problem}"),
                });
            }
        }
        if validity.is_zero() {
            return Err(CertError::InvalidValidity(
                "must be longer than zero".into(),
            ));
        }
        if validity > MAX_VALIDITY {
            return Err(CertError::InvalidValidity(format!(
                "at most {} days",
                MAX_VALIDITY.as_secs() / 86_400
            )));
        }
        self.issue_spec(&CertSpec {
            uris: clusters.iter().map(|c| cluster_uri(c)).collect(),
            ..CertSpec::node(node_name, validity)
        })
    }

    /// Issues a certificate exactly as `spec` says, with a fresh key and the
    /// node extensions. No check on the names or dates: this is how tests
    /// make certificates a peer must refuse. Operators use [`Self::issue`].
    pub fn issue_spec(&self, spec: &CertSpec) -> Result<NodeCertificate, CertError> {
        let key = new_key()?;
        let mut builder = base_builder(&spec.common_name, &key, spec.not_before, spec.not_after)?;
        builder
            .set_issuer_name(self.cert.subject_name())
            .map_err(ossl("set the issuer"))?;
        builder
            .append_extension(
                BasicConstraints::new()
                    .critical()
                    .build()
                    .map_err(ossl("build basicConstraints"))?,
            )
            .map_err(ossl("add basicConstraints"))?;
        builder
            .append_extension(
                KeyUsage::new()
                    .critical()
                    .digital_signature()
                    .key_encipherment()
                    .build()
                    .map_err(ossl("build keyUsage"))?,
            )
            .map_err(ossl("add keyUsage"))?;
        builder
            .append_extension(
                ExtendedKeyUsage::new()
                    .server_auth()
                    .client_auth()
                    .build()
                    .map_err(ossl("build extendedKeyUsage"))?,
            )
            .map_err(ossl("add extendedKeyUsage"))?;
        if !spec.dns_names.is_empty() || !spec.uris.is_empty() {
            let mut san = SubjectAlternativeName::new();
            for name in &spec.dns_names {
                san.dns(name);
            }
            for uri in &spec.uris {
                san.uri(uri);
            }
            let san = san
                .build(&builder.x509v3_context(Some(&self.cert), None))
                .map_err(ossl("build subjectAltName"))?;
            builder
                .append_extension(san)
                .map_err(ossl("add subjectAltName"))?;
        }
        let ski = SubjectKeyIdentifier::new()
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .map_err(ossl("build subjectKeyIdentifier"))?;
        builder
            .append_extension(ski)
            .map_err(ossl("add subjectKeyIdentifier"))?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(&self.cert), None))
            .map_err(ossl("build authorityKeyIdentifier"))?;
        builder
            .append_extension(aki)
            .map_err(ossl("add authorityKeyIdentifier"))?;
        builder
            .sign(&self.key, MessageDigest::sha256())
            .map_err(ossl("sign the node certificate"))?;
        let cert = builder.build();
        Ok(NodeCertificate {
            name: spec.common_name.clone(),
            cert_pem: cert.to_pem().map_err(ossl("encode the certificate"))?,
            key_pem: key
                .private_key_to_pem_pkcs8()
                .map_err(ossl("encode the key"))?,
        })
    }
}

/// A CA name is only a CN: printable, 1 to 64 characters.
fn ca_name_problem(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if name.chars().count() > MAX_CN_LEN {
        return Some(format!("longer than {MAX_CN_LEN} characters"));
    }
    if name.chars().any(char::is_control) {
        return Some("contains control characters".into());
    }
    None
}

fn new_key() -> Result<PKey<Private>, CertError> {
    let rsa = Rsa::generate(RSA_BITS).map_err(ossl("generate an RSA key"))?;
    PKey::from_rsa(rsa).map_err(ossl("wrap the RSA key"))
}

fn builder_subject(cn: &str) -> Result<openssl::x509::X509Name, CertError> {
    let mut name = X509NameBuilder::new().map_err(ossl("build a name"))?;
    name.append_entry_by_nid(openssl::nid::Nid::COMMONNAME, cn)
        .map_err(ossl("set the common name"))?;
    Ok(name.build())
}

/// Version 3, random serial, subject `CN=cn`, public key and validity.
fn base_builder(
    cn: &str,
    key: &PKeyRef<Private>,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<X509Builder, CertError> {
    let mut builder = X509Builder::new().map_err(ossl("start a certificate"))?;
    builder.set_version(2).map_err(ossl("set the version"))?;
    let serial = random_serial()?
        .to_asn1_integer()
        .map_err(ossl("encode the serial"))?;
    builder
        .set_serial_number(&serial)
        .map_err(ossl("set the serial"))?;
    let subject = builder_subject(cn)?;
    builder
        .set_subject_name(&subject)
        .map_err(ossl("set the subject"))?;
    builder
        .set_pubkey(key)
        .map_err(ossl("set the public key"))?;
    let (not_before, not_after) = (asn1_time(not_before)?, asn1_time(not_after)?);
    builder
        .set_not_before(&not_before)
        .map_err(ossl("set notBefore"))?;
    builder
        .set_not_after(&not_after)
        .map_err(ossl("set notAfter"))?;
    Ok(builder)
}

/// A positive random serial of [`SERIAL_BITS`] bits.
fn random_serial() -> Result<BigNum, CertError> {
    loop {
        let mut serial = BigNum::new().map_err(ossl("allocate a serial"))?;
        serial
            .rand(SERIAL_BITS, MsbOption::MAYBE_ZERO, false)
            .map_err(ossl("draw a random serial"))?;
        if serial.num_bits() > 0 {
            return Ok(serial);
        }
    }
}

fn asn1_time(t: SystemTime) -> Result<Asn1Time, CertError> {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()),
        Err(before) => i64::try_from(before.duration().as_secs()).map(|s| -s),
    }
    .map_err(|_| CertError::InvalidValidity("date out of range".into()))?;
    Asn1Time::from_unix(secs).map_err(|_| CertError::InvalidValidity("date out of range".into()))
}

/// Creates `dir` if needed and writes a certificate and its key there.
fn write_pair(
    dir: &Path,
    paths: &PemPaths,
    cert_pem: &[u8],
    key_pem: &[u8],
    overwrite: Overwrite,
) -> Result<(), CertError> {
    files::ensure_dir(dir)?;
    files::write_files(
        &[
            NewFile {
                path: paths.cert.clone(),
                contents: cert_pem,
                secret: false,
            },
            NewFile {
                path: paths.key.clone(),
                contents: key_pem,
                secret: true,
            },
        ],
        overwrite,
    )
}

#[cfg(test)]
mod tests;
