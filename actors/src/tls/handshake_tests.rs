//! Real TLS handshakes between the contexts of [`super::context`], over
//! in-memory pipes: who is accepted, who is refused and how the refusal is
//! classified, and the `Peer`-then-TLS sequence through
//! [`super::Prefixed`].
//!
//! With TLS 1.3 (what two OpenSSL 3 nodes negotiate) the client finishes
//! its handshake before the server has judged the client's certificate, so
//! a refused client sees the refusal on its first read; the tests check
//! both ends.

use openssl::ssl::{Ssl, SslConnector, SslMethod, SslVerifyMode, SslVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio_openssl::SslStream;

use super::{
    HandshakeFailure, IdentityError, Prefixed, TlsContexts, TlsError, accept, check_peer,
    check_peer_name, connect, test_support::*, verified_peer_certificate,
};

/// What a handshake result failed with; panics if it succeeded.
fn failure<S>(result: Result<S, TlsError>) -> HandshakeFailure {
    match result {
        Ok(_) => panic!("handshake succeeded; it should have failed"),
        Err(TlsError::Handshake { reason }) => reason,
        Err(other) => panic!("not a handshake failure: {other}"),
    }
}

/// Reads from a client whose handshake "succeeded" under TLS 1.3 and
/// returns how the server's refusal shows up.
async fn refusal_seen_by_client(mut client: SslStream<DuplexStream>) -> HandshakeFailure {
    let mut byte = [0u8; 1];
    match client.read(&mut byte).await {
        Ok(0) => HandshakeFailure::ConnectionClosed,
        Ok(_) => panic!("refused client read data"),
        Err(e) => HandshakeFailure::from_io_error(&e),
    }
}

/// What the client sees when the server refused its certificate: a failed
/// `connect` (TLS 1.2) or a failed first read (TLS 1.3).
async fn client_side_refusal(
    result: Result<SslStream<DuplexStream>, TlsError>,
) -> HandshakeFailure {
    match result {
        Ok(client) => refusal_seen_by_client(client).await,
        Err(e) => failure::<()>(Err(e)),
    }
}

#[tokio::test]
async fn mutual_handshake_with_certificates_of_the_same_ca() {
    let (server, client) = handshake(&contexts(node_a()), &contexts(node_b())).await;
    let mut server = server.expect("server handshake");
    let mut client = client.expect("client handshake");

    for ssl in [server.ssl(), client.ssl()] {
        let version = ssl.version2().expect("negotiated version");
        assert!(
            [SslVersion::TLS1_2, SslVersion::TLS1_3].contains(&version),
            "{}",
            ssl.version_str()
        );
    }
    // Each side sees the other's name, and only that one.
    let seen_by_server = verified_peer_certificate(server.ssl()).expect("client cert");
    check_peer_name(&seen_by_server, "node-b").expect("client is node-b");
    check_peer_name(&seen_by_server, "NODE-B").expect("case-insensitive");
    assert!(check_peer_name(&seen_by_server, "node-a").is_err());
    check_peer(client.ssl(), "node-a").expect("server is node-a");

    // And the link carries data both ways.
    client.write_all(b"hello from b").await.expect("write");
    let mut buf = [0u8; 12];
    server.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"hello from b");
    server.write_all(b"hi b").await.expect("write");
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"hi b");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused_as_unknown_ca() {
    let (server, client) = handshake(&contexts(node_a()), &rogue_contexts(rogue_node_b())).await;
    assert_eq!(failure(server), HandshakeFailure::UnknownCa);
    let seen = client_side_refusal(client).await;
    assert!(
        matches!(seen, HandshakeFailure::RejectedByPeer { alert: 48, .. }),
        "{seen:?}"
    );
    assert_eq!(seen.label(), "rejected_by_peer");
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    // A client that trusts the cluster CA but has no certificate at all.
    let mut builder = SslConnector::builder(SslMethod::tls_client()).expect("builder");
    let mut store = openssl::x509::store::X509StoreBuilder::new().expect("store");
    store
        .add_cert(cluster_ca().certificate().to_owned())
        .expect("add CA");
    builder.set_cert_store(store.build());
    builder.set_verify(SslVerifyMode::PEER);
    let bare = builder.build();

    let server_ctx = contexts(node_a());
    let (server_end, client_end) = duplex(64 * 1024);
    let (server, client) = tokio::join!(
        accept(&server_ctx.acceptor, server_end),
        connect(&bare, client_end)
    );
    assert_eq!(failure(server), HandshakeFailure::NoPeerCertificate);
    let seen = client_side_refusal(client).await;
    // TLS 1.3 says "certificate required" (116); TLS 1.2 "handshake failure".
    assert!(
        matches!(
            seen,
            HandshakeFailure::RejectedByPeer {
                alert: 116 | 40,
                ..
            }
        ),
        "{seen:?}"
    );
}

#[tokio::test]
async fn server_certificate_from_another_ca_is_refused_by_the_connector() {
    let (server, client) = handshake(&rogue_contexts(rogue_node_b()), &contexts(node_a())).await;
    assert_eq!(failure(client), HandshakeFailure::UnknownCa);
    let seen = failure(server);
    assert!(
        matches!(seen, HandshakeFailure::RejectedByPeer { alert: 48, .. }),
        "{seen:?}"
    );
}

#[tokio::test]
async fn certificate_of_another_node_fails_the_name_check() {
    // Something that says "I am node-a" in Peer but holds node-b's
    // (perfectly valid) certificate.
    let (server, client) = handshake(&contexts(node_a()), &contexts(node_b())).await;
    let server = server.expect("chain is fine");
    let _client = client.expect("chain is fine");
    let cert = verified_peer_certificate(server.ssl()).expect("peer cert");
    let err = check_peer_name(&cert, "node-a").expect_err("node-b is not node-a");
    assert_eq!(
        err,
        IdentityError::NameMismatch {
            claimed: "node-a".into(),
            names: vec!["node-b".into()],
        }
    );
    assert!(err.to_string().contains("\"node-a\""), "{err}");
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let (server, client) = handshake(&contexts(node_a()), &rogue_contexts(expired_node_b())).await;
    assert_eq!(failure(server), HandshakeFailure::Expired);
    let seen = client_side_refusal(client).await;
    assert!(
        matches!(seen, HandshakeFailure::RejectedByPeer { alert: 45, .. }),
        "{seen:?}"
    );
}

#[tokio::test]
async fn expired_server_certificate_is_refused() {
    let (server, client) = handshake(&rogue_contexts(expired_node_b()), &contexts(node_a())).await;
    assert_eq!(failure(client), HandshakeFailure::Expired);
    assert!(matches!(
        failure(server),
        HandshakeFailure::RejectedByPeer { alert: 45, .. }
    ));
}

#[tokio::test]
async fn peer_that_hangs_up_mid_handshake_is_connection_closed() {
    let server_ctx = contexts(node_a());
    let (server_end, mut client_end) = duplex(64 * 1024);
    let server = tokio::spawn(async move { accept(&server_ctx.acceptor, server_end).await });
    // Half a TLS record header, then gone.
    client_end.write_all(&[0x16, 0x03]).await.expect("write");
    drop(client_end);
    let result = server.await.expect("task");
    assert_eq!(failure(result), HandshakeFailure::ConnectionClosed);
}

/// The peer-link sequence: the dialler writes its plaintext `Peer` frame
/// and starts TLS at once; the acceptor's read of the frame also takes the
/// first bytes of the ClientHello. Handing those bytes back through
/// `Prefixed` makes the handshake work; dropping them breaks it.
#[tokio::test]
async fn handshake_after_a_plaintext_frame_through_prefixed() {
    const PEER_FRAME: &[u8] = b"PEER node-b cluster-x production\n";
    /// Bytes of the ClientHello the acceptor reads along with the frame:
    /// its record header. (Dropping exactly these makes the server fail at
    /// once instead of waiting for a record that never comes.)
    const OVERREAD: usize = 5;

    async fn run(keep_overread: bool) -> (Result<(), TlsError>, Result<(), TlsError>) {
        let server_ctx = contexts(node_a());
        let client_ctx = contexts(node_b());
        let (mut server_end, mut client_end) = duplex(64 * 1024);
        let client = async move {
            client_end.write_all(PEER_FRAME).await.expect("write Peer");
            let mut tls = connect(&client_ctx.connector, client_end).await?;
            tls.write_all(b"after tls").await.expect("write");
            let mut reply = [0u8; 2];
            tls.read_exact(&mut reply).await.expect("read reply");
            assert_eq!(&reply, b"ok");
            Ok(())
        };
        let server = async move {
            let mut first = vec![0u8; PEER_FRAME.len() + OVERREAD];
            server_end.read_exact(&mut first).await.expect("read");
            assert_eq!(&first[..PEER_FRAME.len()], PEER_FRAME);
            let overread = first.split_off(PEER_FRAME.len());
            assert_eq!(
                overread[..2],
                [0x16, 0x03],
                "a TLS record header follows the frame"
            );
            let replay = if keep_overread { overread } else { Vec::new() };
            let mut tls = accept(&server_ctx.acceptor, Prefixed::new(replay, server_end)).await?;
            check_peer(tls.ssl(), "node-b").expect("identity");
            let mut first_message = [0u8; 9];
            tls.read_exact(&mut first_message).await.expect("read");
            assert_eq!(&first_message, b"after tls");
            tls.write_all(b"ok").await.expect("write");
            Ok(())
        };
        tokio::join!(server, client)
    }

    let (server, client) = run(true).await;
    server.expect("server with the replayed bytes");
    client.expect("client");

    let lossy = tokio::time::timeout(std::time::Duration::from_secs(30), run(false));
    let (server, _client) = lossy.await.expect("the lossy handshake ends");
    assert!(server.is_err(), "losing the overread bytes must break TLS");
}

/// A client that offers at most `max` (and, for versions OpenSSL 3 no
/// longer allows by default, lowers its own security level to offer them).
fn capped_client(contexts: &TlsContexts, max: SslVersion) -> Ssl {
    let mut ssl = Ssl::new(contexts.connector.context()).expect("ssl");
    if max != SslVersion::TLS1_2 {
        ssl.set_min_proto_version(Some(max)).expect("min");
        ssl.set_cipher_list("DEFAULT:@SECLEVEL=0").expect("ciphers");
    }
    ssl.set_max_proto_version(Some(max)).expect("max");
    ssl
}

#[tokio::test]
async fn tls_1_2_works_and_refusals_show_in_connect() {
    let server_ctx = contexts(node_a());
    for (client_ctx, refused) in [
        (contexts(node_b()), false),
        (rogue_contexts(rogue_node_b()), true),
    ] {
        let (server_end, client_end) = duplex(64 * 1024);
        let mut client = SslStream::new(capped_client(&client_ctx, SslVersion::TLS1_2), client_end)
            .expect("stream");
        let (server, client_result) =
            tokio::join!(accept(&server_ctx.acceptor, server_end), async {
                std::pin::Pin::new(&mut client).connect().await
            });
        if refused {
            assert_eq!(failure(server), HandshakeFailure::UnknownCa);
            let err = client_result.expect_err("TLS 1.2 client learns it in connect");
            let seen = HandshakeFailure::from_ssl_error(&err, openssl::x509::X509VerifyResult::OK);
            assert!(
                matches!(seen, HandshakeFailure::RejectedByPeer { alert: 48, .. }),
                "{seen:?}"
            );
        } else {
            let server = server.expect("server");
            client_result.expect("client");
            assert_eq!(server.ssl().version2(), Some(SslVersion::TLS1_2));
            check_peer(server.ssl(), "node-b").expect("identity");
        }
    }
}

#[tokio::test]
async fn tls_1_1_is_refused() {
    let server_ctx = contexts(node_a());
    let client_ctx = contexts(node_b());
    let (server_end, client_end) = duplex(64 * 1024);
    let mut client =
        SslStream::new(capped_client(&client_ctx, SslVersion::TLS1_1), client_end).expect("stream");
    let (server, client_result) = tokio::join!(accept(&server_ctx.acceptor, server_end), async {
        std::pin::Pin::new(&mut client).connect().await
    });
    let seen = failure(server);
    assert!(matches!(seen, HandshakeFailure::Other(_)), "{seen:?}");
    assert!(client_result.is_err());
}
