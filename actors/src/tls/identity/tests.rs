//! Names in certificates and the claimed-name check, on certificates made
//! for the purpose (no handshake needed: the chain is not the point here).

use super::{
    IdentityError, certificate_names, check_peer_cluster, check_peer_name, cluster_names,
    common_names, dns_names,
};
use crate::tls::{
    CertSpec, DEFAULT_NODE_VALIDITY,
    certs::cluster_uri,
    test_support::{cluster_ca, node_a},
};

fn cert_with(common_name: &str, dns: &[&str]) -> openssl::x509::X509 {
    let spec = CertSpec {
        common_name: common_name.into(),
        dns_names: dns.iter().map(|s| s.to_string()).collect(),
        ..CertSpec::node("unused", DEFAULT_NODE_VALIDITY)
    };
    cluster_ca()
        .issue_spec(&spec)
        .and_then(|c| c.certificate())
        .expect("certificate")
}

#[test]
fn names_are_the_cn_then_the_dns_sans_without_duplicates() {
    let cert = node_a().certificate().expect("parse");
    assert_eq!(common_names(&cert), ["node-a"]);
    assert_eq!(dns_names(&cert), ["node-a"]);
    assert_eq!(certificate_names(&cert), ["node-a"]);

    let cert = cert_with("node-x", &["alias-1", "alias-2"]);
    assert_eq!(certificate_names(&cert), ["node-x", "alias-1", "alias-2"]);
}

#[test]
fn the_cn_or_any_dns_san_matches() {
    let cert = cert_with("node-x", &["alias-1", "alias-2"]);
    for claimed in ["node-x", "alias-1", "alias-2"] {
        check_peer_name(&cert, claimed).expect(claimed);
    }
}

#[test]
fn a_san_only_certificate_matches_its_san() {
    let cert = cert_with("operator label", &["node-y"]);
    check_peer_name(&cert, "node-y").expect("SAN");
}

#[test]
fn matching_ignores_ascii_case_only() {
    let cert = cert_with("Node-A.Example", &[]);
    check_peer_name(&cert, "node-a.example").expect("case-insensitive");
    check_peer_name(&cert, "NODE-A.EXAMPLE").expect("case-insensitive");
    // Not a prefix, suffix, or trimmed match.
    for claimed in [
        "node-a",
        "node-a.example.",
        " node-a.example",
        "node-a.exampl",
    ] {
        assert!(check_peer_name(&cert, claimed).is_err(), "{claimed:?}");
    }
}

#[test]
fn wildcards_and_empty_names_never_match() {
    let cert = cert_with("*.example", &["*.example", "*"]);
    for claimed in ["node.example", "*.example", "*", ""] {
        assert!(check_peer_name(&cert, claimed).is_err(), "{claimed:?}");
    }
}

#[test]
fn a_mismatch_lists_what_the_certificate_names() {
    let cert = cert_with("node-b", &["node-b", "b.example"]);
    let err = check_peer_name(&cert, "node-a").expect_err("mismatch");
    assert_eq!(
        err,
        IdentityError::NameMismatch {
            claimed: "node-a".into(),
            names: vec!["node-b".into(), "b.example".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "peer claims to be \"node-a\" but its certificate names \"node-b\", \"b.example\""
    );
}

#[test]
fn cluster_uris_name_the_xlreg_clusters_a_node_may_join() {
    let plain = node_a().certificate().expect("parse");
    assert!(cluster_names(&plain).is_empty());
    let e = check_peer_cluster(&plain, "prod").expect_err("no cluster");
    assert_eq!(
        e,
        IdentityError::NotInCluster {
            cluster: "prod".into(),
            clusters: vec![]
        }
    );
    assert!(e.to_string().contains("catalogue://cluster/prod"), "{e}");

    let cert = cluster_ca()
        .issue_for_clusters(
            "node-m",
            DEFAULT_NODE_VALIDITY,
            &["prod".into(), "test".into()],
        )
        .and_then(|c| c.certificate())
        .expect("certificate");
    assert_eq!(cluster_names(&cert), ["prod", "test"]);
    // the node's own names are unchanged by the URIs
    assert_eq!(certificate_names(&cert), ["node-m"]);
    check_peer_cluster(&cert, "prod").expect("prod");
    check_peer_cluster(&cert, "test").expect("test");
    for other in ["Prod", "prod2", "pro", ""] {
        assert!(check_peer_cluster(&cert, other).is_err(), "{other:?}");
    }
    // a URI SAN of another shape names no cluster
    let odd = cluster_ca()
        .issue_spec(&CertSpec {
            uris: vec![
                "https://cluster/prod".into(),
                format!("{}/x", cluster_uri("p")),
            ],
            ..CertSpec::node("node-o", DEFAULT_NODE_VALIDITY)
        })
        .and_then(|c| c.certificate())
        .expect("certificate");
    assert_eq!(cluster_names(&odd), ["p/x"]);
    assert!(check_peer_cluster(&odd, "prod").is_err());
    // a cluster name that could not be one is refused when issuing
    assert!(
        cluster_ca()
            .issue_for_clusters("node-m", DEFAULT_NODE_VALIDITY, &["a/b".into()])
            .is_err()
    );
}
