//! Certificates for test clusters: a throwaway CA in a temporary directory
//! and node certificates signed by it (naming an xlReg cluster or not),
//! made with the same library as `catalogue tls`.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use catalogue_actors::tls::{CertSpec, CertificateAuthority, NodeCertificate, Overwrite};
use tempfile::TempDir;

/// The PEM files a node's `[tls]` section names.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate.
    pub ca: PathBuf,
    /// Node certificate.
    pub cert: PathBuf,
    /// Node private key.
    pub key: PathBuf,
}

/// A test CA.
pub struct TestCa {
    ca: CertificateAuthority,
    dir: TempDir,
}

impl TestCa {
    /// A fresh CA named `name`, with its certificate in a temporary directory.
    pub fn new(name: &str) -> Result<TestCa> {
        let ca = CertificateAuthority::generate(name).context("generate CA")?;
        let dir = tempfile::tempdir()?;
        ca.write_to_dir(dir.path(), Overwrite::Refuse)
            .context("write CA")?;
        Ok(TestCa { ca, dir })
    }

    /// The CA itself, for issuing odd certificates.
    pub fn authority(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// Path of the CA certificate.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate and key for node `name`, written next to the CA.
    pub fn node(&self, name: &str) -> Result<TlsFiles> {
        let cert = self
            .ca
            .issue(name, Duration::from_secs(24 * 3600))
            .context("issue node certificate")?;
        self.write(&cert)
    }

    /// A certificate and key for node `name` that also names xlReg cluster
    /// `cluster` (what `catalogue tls cert --cluster` issues), written next
    /// to the CA.
    pub fn node_in(&self, name: &str, cluster: &str) -> Result<TlsFiles> {
        let cert = self
            .ca
            .issue_for_clusters(name, Duration::from_secs(24 * 3600), &[cluster.to_string()])
            .context("issue node certificate")?;
        self.write(&cert)
    }

    /// Writes a certificate made from `spec`.
    pub fn node_from(&self, spec: &CertSpec) -> Result<TlsFiles> {
        let cert = self.ca.issue_spec(spec).context("issue certificate")?;
        self.write(&cert)
    }

    fn write(&self, cert: &NodeCertificate) -> Result<TlsFiles> {
        let paths = cert
            .write_to_dir(self.dir.path(), Overwrite::Replace)
            .context("write node certificate")?;
        Ok(TlsFiles {
            ca: self.ca_pem(),
            cert: paths.cert,
            key: paths.key,
        })
    }
}
