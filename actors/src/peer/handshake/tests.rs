//! Tests of the handshake checks, and of a plaintext (debug) handshake over
//! real loopback sockets.

use super::*;

fn local(name: &str) -> LocalIdentity {
    LocalIdentity {
        name: name.into(),
        cluster: "blue".into(),
        environment: "prod".into(),
        debug: true,
        xlreg_cluster: None,
    }
}

fn limits() -> InputLimits {
    InputLimits {
        max_frame: 1 << 20,
        handshake_frame: 64 << 10,
        frame_timeout: Duration::from_secs(10),
        budget: catalogue_proto::InputBudget::unlimited(),
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
fn only_peers_known_from_xlreg_alone_need_the_cluster_in_their_certificate() {
    let dir = directory(&["a"]);
    dir.add_member("m", "10.0.0.3:7481");
    dir.add_member("a", "");
    let mut b = local("b");
    assert_eq!(cluster_to_check(&b, &dir, "a"), None, "configured");
    assert_eq!(
        cluster_to_check(&b, &dir, "m").as_deref(),
        Some(""),
        "no cluster here: nothing matches"
    );
    b.xlreg_cluster = Some("prod".into());
    assert_eq!(cluster_to_check(&b, &dir, "m").as_deref(), Some("prod"));
    assert_eq!(
        HandshakeError::NotClusterMember("x".into()).reason(),
        "cluster_not_in_certificate"
    );
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
        accept(stream, remote, &local("b"), &dir, None, &limits()).await
    };
    let a = local("a");
    let limits = limits();
    let (client, server) = tokio::join!(connect("b", &addr, &a, None, &limits, None), server);
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
        accept(stream, remote, &local("b"), &dir, None, &limits()).await
    };
    let a = local("a");
    let limits = limits();
    let (client, server) = tokio::join!(connect("b", &addr, &a, None, &limits, None), server);
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
            accept(stream, remote, &local("b"), &dir, None, &limits()).await
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

#[tokio::test]
async fn a_dial_where_nothing_listens_made_no_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let err = connect("b", &addr, &local("a"), None, &limits(), None)
        .await
        .err()
        .expect("nothing listens");
    assert!(matches!(err, HandshakeError::Connect(_)), "{err}");
    assert_eq!(err.reason(), "connection_refused");
    assert_eq!(err.failure(), Failure::NoConnection);
}

#[test]
fn failures_after_the_connect_back_off_fully() {
    let io = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    let after_connect = [
        HandshakeError::Io(io()),
        HandshakeError::Timeout,
        HandshakeError::Closed,
        HandshakeError::RefusedByPeer {
            code: ErrorCode::ServerAuthFailed,
            message: "unknown name".into(),
        },
        first_read_error(CodecError::Io(io()), true),
    ];
    for e in after_connect {
        assert_eq!(e.failure(), Failure::AfterConnect, "{e}");
    }
    let unreachable = HandshakeError::Connect(std::io::ErrorKind::HostUnreachable.into());
    assert_eq!(unreachable.reason(), "unreachable");
    assert_eq!(unreachable.failure(), Failure::NoConnection);
    let timed_out = HandshakeError::Connect(std::io::ErrorKind::TimedOut.into());
    assert_eq!(timed_out.reason(), "connect_timeout");
}

#[test]
fn any_first_frame_but_a_refusal_or_bye_makes_the_link_up() {
    use catalogue_proto::catalogue::{Ack, Bye, Hello};

    let hello = Body::Hello(Hello { name: "a".into() });
    assert!(check_first_frame(Some(&hello)).is_ok());
    assert!(check_first_frame(Some(&Body::Ack(Ack { ack_serial: 0 }))).is_ok());
    assert!(check_first_frame(None).is_ok(), "an empty frame is a frame");
    let refusal = Body::Error(Error::new(ErrorCode::ServerAuthFailed, "not you"));
    match check_first_frame(Some(&refusal)) {
        Err(HandshakeError::RefusedByPeer { code, message }) => {
            assert_eq!(code, ErrorCode::ServerAuthFailed);
            assert_eq!(message, "not you");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let bye = Body::Bye(Bye {
        reason: "shutting down".into(),
    });
    assert!(matches!(
        check_first_frame(Some(&bye)),
        Err(HandshakeError::Closed)
    ));
}

#[test]
fn a_peer_that_hangs_up_is_connection_closed_with_or_without_tls() {
    // One reason in catalogue_peer_handshake_failures_total for one event.
    assert_eq!(HandshakeError::Closed.reason(), "connection_closed");
    let reset = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    let over_tls = first_read_error(CodecError::Io(reset()), true);
    assert_eq!(over_tls.reason(), HandshakeError::Closed.reason());
}

#[test]
fn a_read_error_before_the_first_frame_is_a_tls_failure_over_tls_only() {
    let reset = || std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    let over_tls = first_read_error(CodecError::Io(reset()), true);
    assert!(matches!(over_tls, HandshakeError::Tls(_)), "{over_tls}");
    assert_eq!(over_tls.reason(), "connection_closed");
    let plain = first_read_error(CodecError::Io(reset()), false);
    assert!(matches!(plain, HandshakeError::Io(_)), "{plain}");
    let truncated = first_read_error(
        CodecError::Truncated {
            received: 2,
            expected: 0,
        },
        true,
    );
    assert!(matches!(truncated, HandshakeError::Codec(_)), "{truncated}");
}

/// Runs the accepting side against a client that writes `input` and then
/// waits (without closing); returns the handshake's outcome, the frames
/// the client read until the acceptor closed, and how long that took.
async fn accept_against(
    input: Vec<u8>,
    limits: &InputLimits,
) -> (Result<Established, HandshakeError>, Vec<Frame>, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::Decoder;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dir = directory(&["a"]);
    let started = tokio::time::Instant::now();
    let server = async {
        let (stream, remote) = listener.accept().await.expect("accept");
        let result = accept(stream, remote, &local("b"), &dir, None, limits).await;
        (result, started.elapsed())
    };
    let client = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&input).await.expect("write");
        let mut answer = Vec::new();
        // Ends when the acceptor closes; bounded by the handshake timeout.
        let _ = stream.read_to_end(&mut answer).await;
        answer
    };
    let (answer, (server, took)) = tokio::join!(client, server);
    let mut codec = FrameCodec::new(1 << 20);
    let mut buf = bytes::BytesMut::from(&answer[..]);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        frames.push(frame);
    }
    (server, frames, took)
}

fn error_code_of(frames: &[Frame]) -> Option<ErrorCode> {
    frames.iter().find_map(|f| match &f.body {
        Some(Body::Error(e)) => Some(e.code()),
        _ => None,
    })
}

#[tokio::test]
async fn a_frame_above_the_handshake_limit_is_refused_at_once() {
    // Before the fix the handshake read with limits.max_frame_bytes and
    // waited for the whole announced frame.
    let limits = limits();
    let mut input = ((64 << 10) + 1u32).to_be_bytes().to_vec();
    input.extend_from_slice(&[0x08; 100]);
    let (result, frames, took) = accept_against(input, &limits).await;
    assert!(
        matches!(
            result,
            Err(HandshakeError::Codec(CodecError::FrameTooLarge { max, .. })) if max == 64 << 10
        ),
        "{:?}",
        result.err()
    );
    assert_eq!(error_code_of(&frames), Some(ErrorCode::FrameTooLarge));
    assert!(took < HANDSHAKE_TIMEOUT, "refused at once, took {took:?}");
}

#[tokio::test]
async fn a_peer_frame_left_unfinished_is_closed_after_the_frame_deadline() {
    let limits = InputLimits {
        frame_timeout: Duration::from_millis(300),
        ..limits()
    };
    let mut input = 1000u32.to_be_bytes().to_vec();
    input.extend_from_slice(&[0x08; 100]);
    let (result, frames, took) = accept_against(input, &limits).await;
    assert!(
        matches!(
            result,
            Err(HandshakeError::Codec(CodecError::FrameTimeout {
                received: 104,
                ..
            }))
        ),
        "{:?}",
        result.err()
    );
    assert_eq!(error_code_of(&frames), Some(ErrorCode::LimitExceeded));
    assert!(
        took >= limits.frame_timeout && took < HANDSHAKE_TIMEOUT,
        "closed after the frame deadline, not the handshake's: {took:?}"
    );
}
