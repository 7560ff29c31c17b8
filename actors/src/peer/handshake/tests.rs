//! Tests of the handshake checks, and of a plaintext (debug) handshake over
//! real loopback sockets.

use super::*;

fn local(name: &str) -> LocalIdentity {
    LocalIdentity {
        name: name.into(),
        cluster: "blue".into(),
        environment: "prod".into(),
        debug: true,
    }
}

fn directory(names: &[&str]) -> PeerDirectory {
    let d = PeerDirectory::default();
    for n in names {
        d.add(n, "");
    }
    d
}

#[test]
fn a_known_peer_of_our_cluster_and_environment_passes() {
    let peer = local("a").peer();
    assert_eq!(check_peer(&local("b"), &peer, &directory(&["a"])), Ok(()));
}

#[test]
fn each_mismatch_gets_its_code() {
    let dir = directory(&["a"]);
    let b = local("b");
    let mut peer = local("a").peer();
    peer.environment = "staging".into();
    assert_eq!(
        check_peer(&b, &peer, &dir).unwrap_err().0,
        ErrorCode::EnvironmentMismatch
    );
    let mut peer = local("a").peer();
    peer.protocol_major += 1;
    assert_eq!(
        check_peer(&b, &peer, &dir).unwrap_err().0,
        ErrorCode::VersionMismatch
    );
    let mut peer = local("a").peer();
    peer.cluster = "red".into();
    assert_eq!(
        check_peer(&b, &peer, &dir).unwrap_err().0,
        ErrorCode::ServerAuthFailed
    );
    let peer = local("stranger").peer();
    let (code, message) = check_peer(&b, &peer, &dir).unwrap_err();
    assert_eq!(code, ErrorCode::ServerAuthFailed);
    assert!(message.contains("unknown name"), "{message}");
    let peer = local("b").peer();
    assert!(
        check_peer(&b, &peer, &directory(&["b"])).is_err(),
        "not ourselves"
    );
}

#[test]
fn the_connector_checks_the_welcome() {
    let a = local("a");
    assert!(check_welcome(&a, "b", &local("b").welcome()).is_ok());
    let mut w = local("b").welcome();
    w.environment = "staging".into();
    let e = check_welcome(&a, "b", &w).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert_eq!(e.reason(), "environment_mismatch");
    let e = check_welcome(&a, "c", &local("b").welcome()).unwrap_err();
    assert!(!e.is_permanent());
    assert!(e.to_string().contains("dialed \"c\""), "{e}");
}

#[tokio::test]
async fn a_debug_handshake_over_loopback_links_two_nodes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let dir = directory(&["a"]);
    let server = async {
        let (stream, remote) = listener.accept().await.expect("accept");
        accept(stream, remote, &local("b"), &dir, None, 1 << 20).await
    };
    let a = local("a");
    let (client, server) = tokio::join!(connect("b", &addr, &a, None, 1 << 20), server);
    let client = client.expect("connect");
    let server = server.expect("accept handshake");
    assert_eq!(client.peer, "b");
    assert_eq!(client.direction, Direction::Outbound);
    assert_eq!(server.peer, "a");
    assert_eq!(server.direction, Direction::Inbound);
    assert_eq!((client.next_serial, server.next_serial), (1, 2));
}

#[tokio::test]
async fn an_unknown_name_is_refused_in_plaintext_and_the_connector_reads_why() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let dir = directory(&["someone-else"]);
    let server = async {
        let (stream, remote) = listener.accept().await.expect("accept");
        accept(stream, remote, &local("b"), &dir, None, 1 << 20).await
    };
    let a = local("a");
    let (client, server) = tokio::join!(connect("b", &addr, &a, None, 1 << 20), server);
    let err = client.err().expect("refused");
    match err {
        HandshakeError::RefusedByPeer { code, message } => {
            assert_eq!(code, ErrorCode::ServerAuthFailed);
            assert!(message.contains("unknown name"), "{message}");
        }
        other => panic!("expected a refusal, got {other}"),
    }
    assert!(matches!(
        server,
        Err(HandshakeError::Refused {
            code: ErrorCode::ServerAuthFailed,
            ..
        })
    ));
}

#[tokio::test]
async fn a_framing_error_before_peer_is_answered_then_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::Decoder;

    for (input, code) in [
        (vec![0xFF; 4], ErrorCode::FrameTooLarge),
        (vec![0, 0, 0, 3, 0xFF, 0xFF, 0xFF], ErrorCode::Undecodable),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let dir = directory(&["a"]);
        let server = async {
            let (stream, remote) = listener.accept().await.expect("accept");
            accept(stream, remote, &local("b"), &dir, None, 1 << 20).await
        };
        let client = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.write_all(&input).await.expect("write");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.expect("read");
            answer
        };
        let (answer, server) = tokio::join!(client, server);
        assert!(matches!(server, Err(HandshakeError::Codec(_))));
        // Welcome, then the Error.
        let mut codec = FrameCodec::new(1 << 20);
        let mut buf = bytes::BytesMut::from(&answer[..]);
        let welcome = codec.decode(&mut buf).expect("frame").expect("welcome");
        assert!(matches!(welcome.body, Some(Body::Welcome(_))));
        let error = codec.decode(&mut buf).expect("frame").expect("error");
        match error.body {
            Some(Body::Error(e)) => assert_eq!(e.code(), code),
            other => panic!("expected Error {}, got {other:?}", code.hex()),
        }
    }
}
