//! The registry under hostile clients, in-process on real sockets: the
//! per-source bounds (rate and open connections, checked at the accept),
//! idle connections that never send a Hello, admission control end to end,
//! and the creator extension reaching our client but not a seed client.

use std::net::SocketAddr;

use tokio::net::TcpSocket;

use super::*;
use crate::xlreg::{admission::Admission, client::Secret, keys, server::sources::SourceLimits};

/// A TCP connection to `server` from source address `ip` (any 127.0.0.0/8
/// address is this host).
async fn connect_from(ip: &str, server: &Server) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip.parse().expect("ip"), 0))?;
    socket
        .connect(server.addr.parse().expect("server address"))
        .await
}

/// Whether the server closed `stream` (end of file or reset) within the
/// deadline: what a refused connection gets.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(DEADLINE, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

fn refusals(server: &Server, reason: &str) -> u64 {
    server
        .running
        .stats
        .refusals()
        .get(reason)
        .copied()
        .unwrap_or(0)
}

#[actix_rt::test]
async fn idle_connections_from_one_source_do_not_lock_out_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    // a long handshake deadline: the idle connections are not simply
    // timed out during the test
    let mut cfg = config(dir.path(), Duration::from_secs(120), 4);
    cfg.sources = SourceLimits {
        per_second: 0,
        burst: 1,
        max_open: 8,
    };
    let server = start_config(cfg).await;
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(connect_from("127.0.0.2", &server).await.expect("connect"));
    }
    // the first 8 are held open (they cost no handshake slot), the other 32
    // are closed at once
    let mut refused = 0;
    for stream in idle.iter_mut().skip(8) {
        assert!(closed_by_server(stream).await, "over the per-source bound");
        refused += 1;
    }
    assert_eq!(refused, 32);
    assert_eq!(refusals(&server, "connections_per_source"), 32);
    // another source is served at once, whole sessions, more of them than
    // there are handshake slots
    for i in 0..6 {
        let mut client = tokio::time::timeout(DEADLINE, connect(&server))
            .await
            .expect("served while 8 idle connections are open");
        client
            .register(&mut identity(&format!("ok{i}"), i % 4), &[])
            .await
            .expect("register");
        client.bye().await.expect("bye");
    }
    let mut probe = [0u8; 1];
    assert!(
        matches!(idle[0].try_read(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the idle connections within the bound are still open"
    );
    // closing idle connections frees their source's slots
    drop(idle);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let mut again = connect_from("127.0.0.2", &server).await.expect("connect");
        let mut probe = [0u8; 1];
        let open = tokio::time::timeout(Duration::from_millis(200), again.read(&mut probe))
            .await
            .is_err();
        if open {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the source's slots were not freed"
        );
    }
}

#[actix_rt::test]
async fn a_source_that_connects_too_fast_is_cut_off_and_others_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(dir.path(), DEADLINE, 8);
    cfg.sources = SourceLimits {
        per_second: 1,
        burst: 5,
        max_open: 0,
    };
    let server = start_config(cfg).await;
    let mut admitted = 0;
    let mut cut = 0;
    for _ in 0..20 {
        let mut stream = connect_from("127.0.0.3", &server).await.expect("connect");
        let mut probe = [0u8; 1];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut probe)).await {
            Err(_) => admitted += 1,
            Ok(_) => cut += 1,
        }
    }
    // the burst, and maybe one or two refills while the loop ran
    assert!((5..=8).contains(&admitted), "{admitted} admitted");
    assert_eq!(cut, 20 - admitted);
    assert_eq!(refusals(&server, "rate_limited"), cut);
    // a client from another source does not notice
    let mut client = connect(&server).await;
    client
        .register(&mut identity("other", 0), &[])
        .await
        .expect("register");
    client.bye().await.expect("bye");
}

#[actix_rt::test]
async fn admission_refuses_unknown_keys_and_admits_listed_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = keys::fingerprint(
        &client_key(0)
            .public_key()
            .and_then(|k| k.to_der())
            .expect("der"),
    );
    let mut cfg = config(dir.path(), DEADLINE, 8);
    cfg.admission = Admission::new(Some([listed].into()), Some(b"0123456789abcdef".to_vec()));
    let server = start_config(cfg).await;
    let with_secret = |secret: &[u8]| ClientOptions {
        secret: Some(Secret(secret.to_vec())),
        ..ClientOptions::default()
    };
    let attempt = |key: usize, options: ClientOptions| {
        let (addr, public) = (server.addr.clone(), server.running.public_key.clone());
        async move {
            let mut client = RegistryClient::connect_with(&addr, &public, &options)
                .await
                .expect("connects");
            client.register(&mut identity("n", key), &[]).await
        }
    };
    // listed key and the secret: in
    attempt(0, with_secret(b"0123456789abcdef"))
        .await
        .expect("admitted");
    // another key, even with the secret: refused, and told why
    match attempt(1, with_secret(b"0123456789abcdef")).await {
        Err(ClientError::Refused(why)) => {
            assert!(why.contains("not on the registry's list"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // the listed key without the secret, or with a wrong one: refused
    for options in [ClientOptions::default(), with_secret(b"fedcba9876543210")] {
        match attempt(0, options).await {
            Err(ClientError::Refused(why)) => assert!(why.contains("secret"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refusals(&server, "not_admitted"), 3);
    assert_eq!(
        server.running.stats.clients.load(Ordering::Relaxed),
        1,
        "only the admitted client registered"
    );
}

#[actix_rt::test]
async fn the_creator_reaches_clients_that_announce_extensions_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    // our client announces Extensions: it learns the creator
    let mut client = connect(&server).await;
    client
        .register(&mut identity("maker", 0), &ends(&["m:1"]))
        .await
        .expect("register");
    let info = client.create("made", 3, 1).await.expect("create");
    let creator = info.creator.expect("a creator");
    assert_eq!(creator.name, "maker");
    client.bye().await.expect("bye");
    // a seed client (no Extensions) gets no extension field at all
    let mut raw = Raw::connect(&server, Version::V1).await;
    raw.identify("seedling", 1).await;
    let join = XlRegMsg {
        op: Some(Tag::Join as i32),
        cluster_name: Some("made".into()),
        ..Default::default()
    };
    raw.send(&join).await;
    let plain = raw.recv_plain().await.expect("a reply");
    let seed_only: XlRegMsg = prost::Message::decode(plain.as_slice()).expect("decodes");
    assert_eq!(seed_only.op, Some(Tag::JoinReply as i32));
    assert_eq!(
        prost::Message::encode_to_vec(&seed_only),
        plain,
        "nothing but the seed's fields: {plain:02x?}"
    );
}
