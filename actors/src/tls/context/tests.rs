//! Building [`TlsContexts`] from files: the good case, and every bad input
//! producing an error that names the file and the problem.

use std::{fs, path::PathBuf};

use super::{TlsContexts, TlsError};
use crate::tls::{
    PemError,
    test_support::{cluster_ca, cluster_ca_pem, expired_node_b, node_a, rogue_node_b},
};

/// A directory with `ca.pem`, `node.pem`, `node.key` written from PEM bytes.
struct Files {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn files(ca: &[u8], cert: &[u8], key: &[u8]) -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca_path, cert_path, key_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("node.pem"),
        dir.path().join("node.key"),
    );
    fs::write(&ca_path, ca).expect("write");
    fs::write(&cert_path, cert).expect("write");
    fs::write(&key_path, key).expect("write");
    Files {
        _dir: dir,
        ca: ca_path,
        cert: cert_path,
        key: key_path,
    }
}

fn build(f: &Files) -> Result<TlsContexts, TlsError> {
    TlsContexts::from_files(&f.ca, &f.cert, &f.key)
}

#[test]
fn good_files_build_contexts() {
    let f = files(&cluster_ca_pem(), &node_a().cert_pem, &node_a().key_pem);
    build(&f).expect("contexts");
}

#[test]
fn several_cas_in_the_ca_file_are_accepted() {
    // The CA file may hold more CAs than the one that signed us.
    let mut cas = crate::tls::test_support::rogue_ca()
        .cert_pem()
        .expect("pem");
    cas.extend(cluster_ca_pem());
    let f = files(&cas, &node_a().cert_pem, &node_a().key_pem);
    build(&f).expect("contexts");
}

#[test]
fn a_missing_file_is_named() {
    let f = files(&cluster_ca_pem(), &node_a().cert_pem, &node_a().key_pem);
    fs::remove_file(&f.key).expect("rm");
    let err = build(&f).expect_err("missing");
    assert!(
        matches!(err, TlsError::Pem(PemError::Missing { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("{}: no such file", f.key.display())
    );
}

#[test]
fn a_file_that_is_not_pem_is_named() {
    let f = files(b"hello", &node_a().cert_pem, &node_a().key_pem);
    let err = build(&f).expect_err("not PEM");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not a PEM certificate", f.ca.display())),
        "{err}"
    );
    // A key where the certificate should be.
    let f = files(&cluster_ca_pem(), &node_a().key_pem, &node_a().key_pem);
    let err = build(&f).expect_err("key as cert");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not a PEM certificate", f.cert.display())),
        "{err}"
    );
    let f = files(&cluster_ca_pem(), &node_a().cert_pem, &node_a().cert_pem);
    let err = build(&f).expect_err("cert as key");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not a PEM private key", f.key.display())),
        "{err}"
    );
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let f = files(
        &cluster_ca_pem(),
        &node_a().cert_pem,
        &rogue_node_b().key_pem,
    );
    let err = build(&f).expect_err("mismatch");
    assert!(
        matches!(err, TlsError::Pem(PemError::KeyMismatch { .. })),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&f.key.display().to_string()), "{text}");
    assert!(text.contains(&f.cert.display().to_string()), "{text}");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let f = files(
        &cluster_ca_pem(),
        &rogue_node_b().cert_pem,
        &rogue_node_b().key_pem,
    );
    let err = build(&f).expect_err("foreign");
    assert!(matches!(err, TlsError::NotSignedByCa { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: not signed by the CA in {}",
            f.cert.display(),
            f.ca.display()
        )),
        "{text}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let f = files(
        &cluster_ca_pem(),
        &expired_node_b().cert_pem,
        &expired_node_b().key_pem,
    );
    let err = build(&f).expect_err("expired");
    assert!(
        matches!(err, TlsError::InvalidCertificate { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
    // The unchecked constructor, for rogue test peers, takes it.
    TlsContexts::from_pem_unchecked(
        &cluster_ca_pem(),
        &expired_node_b().cert_pem,
        &expired_node_b().key_pem,
    )
    .expect("unchecked");
}

#[test]
fn a_ca_certificate_cannot_serve_as_a_node_certificate() {
    // The CA's own certificate lacks the TLS key usages.
    let ca = cluster_ca();
    let f = files(
        &cluster_ca_pem(),
        &ca.cert_pem().expect("pem"),
        &ca.key_pem().expect("pem"),
    );
    let err = build(&f).expect_err("CA as node");
    assert!(
        matches!(err, TlsError::InvalidCertificate { .. }),
        "{err:?}"
    );
}

#[test]
fn both_contexts_trust_the_cluster_ca_and_nothing_else() {
    let f = files(&cluster_ca_pem(), &node_a().cert_pem, &node_a().key_pem);
    let contexts = build(&f).expect("contexts");
    for store in [
        contexts.acceptor.context().cert_store(),
        contexts.connector.context().cert_store(),
    ] {
        // Exactly one object: no system roots (the connector builder loads
        // them by default; building replaces its store).
        let certs = store.all_certificates();
        assert_eq!(certs.len(), 1);
        assert_eq!(
            certs[0].to_der().expect("der"),
            cluster_ca().certificate().to_der().expect("der")
        );
    }
}
