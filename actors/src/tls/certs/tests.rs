//! The CA and node certificates: their fields and extensions (read back
//! through OpenSSL's text dump), the names and validities `issue` refuses,
//! and the files: names, modes, refusing and replacing existing ones,
//! loading back, and errors that name the file.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, time::Duration};

use openssl::{asn1::Asn1Time, x509::X509VerifyResult};

use super::*;
use crate::tls::{
    PemError,
    identity::common_names,
    test_support::{cluster_ca, node_a, rogue_ca},
};

fn text(cert: &X509Ref) -> String {
    String::from_utf8(cert.to_text().expect("to_text")).expect("utf-8")
}

fn issuer_common_names(cert: &X509Ref) -> Vec<String> {
    cert.issuer_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .map(|e| e.data().to_string().expect("utf-8"))
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Whole days from now until `cert` expires.
fn days_left(cert: &X509Ref) -> i32 {
    let now = Asn1Time::days_from_now(0).expect("now");
    now.diff(cert.not_after()).expect("diff").days
}

#[test]
fn ca_is_a_self_signed_ten_year_ca() {
    let ca = cluster_ca();
    let cert = ca.certificate();
    assert_eq!(cert.issued(cert), X509VerifyResult::OK, "self-issued");
    let public = cert.public_key().expect("public key");
    assert!(cert.verify(&public).expect("verify"), "self-signed");
    let t = text(cert);
    assert_eq!(common_names(cert), ["test-cluster-ca"]);
    assert!(
        t.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
        "{t}"
    );
    assert!(
        t.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"),
        "{t}"
    );
    assert!(t.contains("X509v3 Subject Key Identifier"), "{t}");
    assert!(t.contains("Public-Key: (2048 bit)"), "{t}");
    assert!(
        t.contains("Signature Algorithm: sha256WithRSAEncryption"),
        "{t}"
    );
    let days = days_left(cert);
    assert!((3649..=3650).contains(&days), "{days} days");
}

#[test]
fn node_certificate_has_the_node_extensions() {
    let cert = node_a().certificate().expect("parse");
    let ca = cluster_ca().certificate();
    assert_eq!(ca.issued(&cert), X509VerifyResult::OK);
    assert!(
        cert.verify(&ca.public_key().expect("ca key"))
            .expect("verify")
    );
    let t = text(&cert);
    assert_eq!(common_names(&cert), ["node-a"]);
    assert_eq!(issuer_common_names(&cert), ["test-cluster-ca"]);
    for needle in [
        "X509v3 Subject Alternative Name: \n                DNS:node-a",
        "X509v3 Basic Constraints: critical\n                CA:FALSE",
        "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment",
        "X509v3 Extended Key Usage: \n                TLS Web Server Authentication, TLS Web Client Authentication",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "Public-Key: (2048 bit)",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
    let days = days_left(&cert);
    assert!((364..=365).contains(&days), "{days} days");
    // The key in the PEM is the certificate's.
    let key = openssl::pkey::PKey::private_key_from_pem(&node_a().key_pem).expect("key");
    assert!(cert.public_key().expect("public").public_eq(&key));
}

#[test]
fn serials_are_random_positive_and_at_most_128_bits() {
    let ca = cluster_ca();
    let a = ca.issue("serial-a", Duration::from_secs(3600)).expect("a");
    let b = ca.issue("serial-b", Duration::from_secs(3600)).expect("b");
    let serial = |c: &NodeCertificate| {
        c.certificate()
            .expect("parse")
            .serial_number()
            .to_bn()
            .expect("bn")
    };
    let (sa, sb) = (serial(&a), serial(&b));
    assert_ne!(sa, sb);
    for s in [&sa, &sb] {
        assert!(!s.is_negative());
        assert!(
            s.num_bits() <= 128 && s.num_bits() > 64,
            "{} bits",
            s.num_bits()
        );
    }
}

#[test]
fn validity_is_what_was_asked() {
    let cert = cluster_ca()
        .issue("short-lived", Duration::from_secs(10 * 86_400))
        .expect("issue")
        .certificate()
        .expect("parse");
    let days = days_left(&cert);
    assert!((9..=10).contains(&days), "{days} days");
}

#[test]
fn bad_names_and_validities_are_refused() {
    let ca = cluster_ca();
    for name in [
        "",
        "-node",
        ".node",
        "node a",
        "../etc",
        "node/a",
        "n\u{e9}ud",
        "*",
    ] {
        assert!(
            matches!(
                ca.issue(name, DEFAULT_NODE_VALIDITY),
                Err(CertError::InvalidName { .. })
            ),
            "{name:?}"
        );
    }
    assert!(matches!(
        ca.issue("node-a", Duration::ZERO),
        Err(CertError::InvalidValidity(_))
    ));
    assert!(matches!(
        ca.issue("node-a", MAX_VALIDITY + Duration::from_secs(86_400)),
        Err(CertError::InvalidValidity(_))
    ));
    assert!(matches!(
        CertificateAuthority::generate(""),
        Err(CertError::InvalidCaName { .. })
    ));
    assert!(matches!(
        CertificateAuthority::generate("bad\nname"),
        Err(CertError::InvalidCaName { .. })
    ));
}

#[test]
fn expired_spec_makes_an_expired_certificate() {
    let cert = cluster_ca()
        .issue_spec(&CertSpec::expired("old"))
        .expect("issue")
        .certificate()
        .expect("parse");
    assert!(days_left(&cert) < 0);
}

#[test]
fn files_have_the_documented_names_and_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_dir = dir.path().join("new/ca");
    let written = cluster_ca()
        .write_to_dir(&ca_dir, Overwrite::Refuse)
        .expect("write CA");
    assert_eq!(written, PemPaths::ca(&ca_dir));
    assert_eq!(written.cert, ca_dir.join("ca.pem"));
    assert_eq!(written.key, ca_dir.join("ca.key"));
    assert_eq!(mode(&written.key), 0o600);
    assert_eq!(
        mode(&ca_dir),
        0o700,
        "a directory created for keys is private"
    );
    assert_eq!(mode(&written.cert) & 0o600, 0o600);

    let written = node_a()
        .write_to_dir(dir.path(), Overwrite::Refuse)
        .expect("write node");
    assert_eq!(written.cert, dir.path().join("node-a.pem"));
    assert_eq!(written.key, dir.path().join("node-a.key"));
    assert_eq!(mode(&written.key), 0o600);
    assert_eq!(fs::read(&written.cert).expect("read"), node_a().cert_pem);
    assert_eq!(fs::read(&written.key).expect("read"), node_a().key_pem);
}

#[test]
fn existing_files_are_not_overwritten_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = cluster_ca();
    let second = rogue_ca();
    let paths = first
        .write_to_dir(dir.path(), Overwrite::Refuse)
        .expect("first");
    let before = fs::read(&paths.cert).expect("read");

    let err = second
        .write_to_dir(dir.path(), Overwrite::Refuse)
        .expect_err("refused");
    assert!(matches!(err, CertError::AlreadyExists { ref path } if *path == paths.cert));
    assert!(err.to_string().contains("ca.pem"), "{err}");
    assert_eq!(fs::read(&paths.cert).expect("read"), before, "untouched");

    // Only the key left over: still refused, and no certificate written.
    fs::remove_file(&paths.cert).expect("rm");
    let err = second
        .write_to_dir(dir.path(), Overwrite::Refuse)
        .expect_err("refused");
    assert!(matches!(err, CertError::AlreadyExists { ref path } if *path == paths.key));
    assert!(!paths.cert.exists(), "nothing written when refusing");

    // Replacing works, keeps the key private, leaves no temporary files.
    second
        .write_to_dir(dir.path(), Overwrite::Replace)
        .expect("replace");
    let loaded = CertificateAuthority::load_dir(dir.path()).expect("load");
    assert_eq!(
        loaded.cert_pem().expect("pem"),
        second.cert_pem().expect("pem")
    );
    assert_eq!(mode(&paths.key), 0o600);
    let names: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn replacing_a_loose_key_file_makes_it_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = PemPaths::ca(dir.path());
    fs::write(&paths.cert, b"old").expect("write");
    fs::write(&paths.key, b"old").expect("write");
    fs::set_permissions(&paths.key, fs::Permissions::from_mode(0o644)).expect("chmod");
    cluster_ca()
        .write_to_dir(dir.path(), Overwrite::Replace)
        .expect("replace");
    assert_eq!(mode(&paths.key), 0o600);
}

#[test]
fn a_loaded_ca_issues_certificates_the_original_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster_ca()
        .write_to_dir(dir.path(), Overwrite::Refuse)
        .expect("write");
    let paths = PemPaths::ca(dir.path());
    let loaded = CertificateAuthority::load(&paths.cert, &paths.key).expect("load");
    let cert = loaded
        .issue("node-c", DEFAULT_NODE_VALIDITY)
        .expect("issue")
        .certificate()
        .expect("parse");
    let original = cluster_ca().certificate();
    assert!(
        cert.verify(&original.public_key().expect("key"))
            .expect("verify")
    );

    let from_pem = CertificateAuthority::from_pem(
        &cluster_ca().cert_pem().expect("pem"),
        &cluster_ca().key_pem().expect("pem"),
    )
    .expect("from_pem");
    assert_eq!(
        from_pem.certificate().to_der().expect("der"),
        original.to_der().expect("der")
    );
}

#[test]
fn loading_names_the_file_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = PemPaths::ca(dir.path());

    let err = CertificateAuthority::load_dir(dir.path()).expect_err("missing");
    assert!(
        matches!(err, CertError::Pem(PemError::Missing { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("ca.pem: no such file"), "{err}");

    fs::write(&paths.cert, b"not a certificate").expect("write");
    fs::write(&paths.key, cluster_ca().key_pem().expect("pem")).expect("write");
    let err = CertificateAuthority::load_dir(dir.path()).expect_err("garbage");
    assert!(
        err.to_string().contains("ca.pem: not a PEM certificate"),
        "{err}"
    );

    fs::write(&paths.cert, rogue_ca().cert_pem().expect("pem")).expect("write");
    let err = CertificateAuthority::load_dir(dir.path()).expect_err("mismatch");
    assert!(
        matches!(err, CertError::Pem(PemError::KeyMismatch { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("ca.key"), "{err}");

    fs::write(&paths.cert, cluster_ca().cert_pem().expect("pem")).expect("write");
    fs::write(
        &paths.key,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let err = CertificateAuthority::load_dir(dir.path()).expect_err("bad key");
    assert!(
        err.to_string().contains("ca.key: not a PEM private key"),
        "{err}"
    );
}

#[test]
fn an_encrypted_key_is_refused_not_prompted_for() {
    let key = cluster_ca()
        .private_key()
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"secret")
        .expect("encrypt");
    let err = CertificateAuthority::from_pem(&cluster_ca().cert_pem().expect("pem"), &key)
        .expect_err("encrypted");
    assert!(
        matches!(err, CertError::Pem(PemError::NotPem { .. })),
        "{err:?}"
    );
}

#[test]
fn ca_outliving_is_detected() {
    let ca = cluster_ca();
    assert!(!ca.expires_within(DEFAULT_NODE_VALIDITY).expect("compare"));
    assert!(ca.expires_within(CA_VALIDITY * 2).expect("compare"));
}

#[test]
fn debug_output_never_shows_the_key() {
    let shown = format!("{:?}", node_a());
    assert!(shown.contains("<redacted>"));
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let shown = format!("{:?}", cluster_ca());
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
