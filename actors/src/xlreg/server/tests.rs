//! End-to-end tests of a registry served in-process on 127.0.0.1:0, with
//! 2048-bit keys: the client library against it, and raw connections that
//! speak the wire by hand to misbehave (malformed Hello, tampered frames,
//! stalled handshakes). Tests wait on events with deadlines, never on
//! sleeps.

use std::{path::Path, time::Duration};

use bytes::BytesMut;
use catalogue_proto::reg::{XlRegMsg, xl_reg_msg::Tag};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    time::Instant,
};

use super::*;
use crate::xlreg::{
    client::{ClientError, ClientOptions, RegistryClient},
    frame::{Opener, Role, Sealer},
    hello::REPLY_WIRE_LEN,
    identity::Identity,
    protocol::{ClusterRef, Reply},
    test_support::client_key,
    token,
    version::Version,
};

const DEADLINE: Duration = Duration::from_secs(10);

struct Server {
    running: RunningServer,
    addr: String,
    stop: watch::Sender<bool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The configuration of the tests' registries: no per-source bounds (every
/// client is on loopback), open admission, room for many clusters per
/// client; tests that exercise those change them.
fn config(dir: &Path, handshake_timeout: Duration, max_handshakes: usize) -> ServerConfig {
    ServerConfig {
        metrics: None,
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_path_buf(),
        handshake_timeout,
        max_handshakes,
        idle_timeout: Duration::from_secs(600),
        sources: SourceLimits::NONE,
        limits: Limits {
            max_clusters_per_client: 1000,
            ..Limits::default()
        },
        admission: crate::xlreg::admission::Admission::open(),
        admin_uids: Vec::new(),
    }
}

async fn start_with(dir: &Path, handshake_timeout: Duration, max_handshakes: usize) -> Server {
    start_config(config(dir, handshake_timeout, max_handshakes)).await
}

async fn start_config(config: ServerConfig) -> Server {
    let (stop, stop_rx) = watch::channel(false);
    let running = serve(config, stop_rx).await.expect("serve");
    let addr = running.local_addr.to_string();
    Server {
        running,
        addr,
        stop,
    }
}

async fn start(dir: &Path) -> Server {
    start_with(dir, DEADLINE, 8).await
}

fn identity(name: &str, key: usize) -> Identity {
    Identity::ephemeral(
        name,
        client_key(key).clone(),
        client_key((key + 1) % 4).clone(),
    )
}

fn ends(e: &[&str]) -> Vec<String> {
    e.iter().map(|s| s.to_string()).collect()
}

async fn connect(server: &Server) -> RegistryClient {
    tokio::time::timeout(
        DEADLINE,
        RegistryClient::connect(&server.addr, &server.running.public_key),
    )
    .await
    .expect("in time")
    .expect("connects")
}

/// A client that registers as `name` and joins `cluster`; returns the
/// still-open session.
async fn member(server: &Server, name: &str, key: usize, cluster: &str) -> RegistryClient {
    let mut client = connect(server).await;
    let mut id = identity(name, key);
    client
        .register(&mut id, &ends(&[&format!("{name}:1")]))
        .await
        .expect("register");
    client.join(cluster).await.expect("join");
    client
}

/// Reads until the server closes; the bytes received meanwhile.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut got))
        .await
        .expect("server closes in time")
        .expect("read");
    got
}

/// A session spoken by hand.
struct Raw {
    stream: TcpStream,
    sealer: Sealer,
    opener: Opener,
    salt2: [u8; 8],
    buf: BytesMut,
}

impl Raw {
    async fn connect(server: &Server, version: Version) -> Raw {
        let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
        let hello = Hello::new(version).expect("hello");
        stream
            .write_all(&hello.seal(&server.running.public_key).expect("seal"))
            .await
            .expect("write");
        let mut wire = [0u8; REPLY_WIRE_LEN];
        tokio::time::timeout(DEADLINE, stream.read_exact(&mut wire))
            .await
            .expect("in time")
            .expect("reply");
        let reply = HelloReply::open(&wire, &hello).expect("reply opens");
        let keys = reply.session_keys().expect("keys");
        Raw {
            stream,
            sealer: keys.sealer(Role::Client),
            opener: keys.opener(Role::Client),
            salt2: reply.salt2,
            buf: BytesMut::new(),
        }
    }

    fn frame(&mut self, msg: &XlRegMsg) -> Vec<u8> {
        self.sealer
            .seal(&prost::Message::encode_to_vec(msg))
            .expect("seal")
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    async fn send(&mut self, msg: &XlRegMsg) {
        let frame = self.frame(msg);
        self.send_bytes(&frame).await;
    }

    /// The next message, or `None` when the server closed.
    async fn recv(&mut self) -> Option<XlRegMsg> {
        let plain = self.recv_plain().await?;
        Some(prost::Message::decode(plain.as_slice()).expect("decode"))
    }

    /// The next message's plaintext, or `None` when the server closed.
    async fn recv_plain(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(plain) = self.opener.decode_frame(&mut self.buf).expect("frame") {
                    return Some(plain);
                }
                let n = self.stream.read_buf(&mut self.buf).await.expect("read");
                if n == 0 {
                    assert!(self.buf.is_empty(), "closed inside a frame");
                    return None;
                }
            }
        })
        .await
        .expect("in time")
    }

    async fn identify(&mut self, name: &str, key: usize) {
        let id = identity(name, key);
        let token = id.token(&ends(&["x:1"])).expect("token");
        let msg = XlRegMsg {
            op: Some(Tag::Client as i32),
            client_name: Some(name.into()),
            dig_sig: Some(token::sign(id.sig_key(), &token::signed_bytes(&token)).expect("sign")),
            client_specs: Some(token),
            ..Default::default()
        };
        self.send(&msg).await;
        let reply = self.recv().await.expect("a reply");
        assert_eq!(reply.op, Some(Tag::ClientOk as i32), "{reply:?}");
    }
}

fn op(tag: Tag) -> XlRegMsg {
    XlRegMsg {
        op: Some(tag as i32),
        ..Default::default()
    }
}

#[actix_rt::test]
async fn a_full_v2_session_from_hello_to_bye() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let mut client = connect(&server).await;
    assert_eq!(client.version(), Version::V2);
    let mut me = identity("alpha", 0);
    let registered = client
        .register(&mut me, &ends(&["10.0.0.1:7481"]))
        .await
        .expect("register");
    assert_eq!(registered.name, "alpha");
    assert_eq!(me.id(), Some(&registered.id[..]));
    let created = client.create("prod", 3, 1).await.expect("create");
    assert_eq!(created.size, 3);
    let joined = client.join("prod").await.expect("join");
    assert_eq!(joined.id, created.id);
    let members = client
        .members(&ClusterRef::default())
        .await
        .expect("members");
    assert_eq!(members.which, 1);
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.members[0].name, "alpha");
    assert_eq!(members.members[0].my_ends, ends(&["10.0.0.1:7481"]));
    assert!(!members.complete());
    client.bye().await.expect("bye");
    assert_eq!(
        server
            .running
            .stats
            .handshakes_completed
            .load(Ordering::Relaxed),
        1
    );
}

#[actix_rt::test]
async fn the_server_accepts_v1_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let v1 = ClientOptions {
        version: Version::V1,
        min_version: Version::V1,
        timeout: DEADLINE,
        secret: None,
    };
    let mut client = RegistryClient::connect_with(&server.addr, &server.running.public_key, &v1)
        .await
        .expect("connects");
    assert_eq!(client.version(), Version::V1);
    let mut me = identity("old", 1);
    client
        .register(&mut me, &ends(&["h:1"]))
        .await
        .expect("register");
    client.create("legacy", 2, 1).await.expect("create");
    client.join("legacy").await.expect("join");
    let members = client
        .members(&ClusterRef::default())
        .await
        .expect("members");
    assert_eq!(members.members[0].name, "old");
    client.bye().await.expect("bye");

    // a seed client that sends version 0.0.0.0 gets v1 too
    let mut raw = Raw::connect(&server, Version::new(0, 0, 0, 0)).await;
    raw.send(&op(Tag::Bye)).await;
    assert_eq!(raw.recv().await.and_then(|m| m.op), Some(Tag::Ack as i32));
}

#[actix_rt::test]
async fn a_v2_client_refuses_to_fall_back_to_v1_unless_allowed() {
    // Our client asks for v2 and by default accepts nothing older; asking
    // for v1 while requiring v2 cannot succeed.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let contradictory = ClientOptions {
        version: Version::V1,
        min_version: Version::V2,
        timeout: DEADLINE,
        secret: None,
    };
    let result =
        RegistryClient::connect_with(&server.addr, &server.running.public_key, &contradictory)
            .await;
    assert!(matches!(
        result,
        Err(ClientError::Handshake(
            crate::xlreg::hello::HandshakeError::Version(_)
        ))
    ));
}

#[actix_rt::test]
async fn a_malformed_hello_is_closed_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    // garbage of the right length
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    stream.write_all(&[0x42; 256]).await.expect("write");
    assert_eq!(read_to_close(&mut stream).await, Vec::<u8>::new());
    // a valid OAEP envelope around 59 bytes
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    let short = server
        .running
        .public_key
        .oaep_encrypt(&[1u8; 59])
        .expect("encrypt");
    stream.write_all(&short).await.expect("write");
    assert_eq!(read_to_close(&mut stream).await, Vec::<u8>::new());
    // too short, then the client stops sending
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    stream.write_all(&[0x42; 100]).await.expect("write");
    stream.shutdown().await.expect("shutdown");
    assert_eq!(read_to_close(&mut stream).await, Vec::<u8>::new());
    // a Hello under another key
    let mut stream = TcpStream::connect(&server.addr).await.expect("connect");
    let other = Hello::new(Version::V2)
        .expect("hello")
        .seal(&client_key(0).public_key().expect("public"))
        .expect("seal");
    stream.write_all(&other).await.expect("write");
    assert_eq!(read_to_close(&mut stream).await, Vec::<u8>::new());
    assert_eq!(
        server.running.stats.hellos_refused.load(Ordering::Relaxed),
        4
    );
    // the registry still serves
    connect(&server).await.bye().await.expect("bye");
}

#[actix_rt::test]
async fn v2_tag_tampering_closes_the_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    // before identification
    let mut raw = Raw::connect(&server, Version::V2).await;
    let mut frame = raw.frame(&op(Tag::Bye));
    let last = frame.len() - 1;
    frame[last] ^= 0x01;
    raw.send_bytes(&frame).await;
    assert_eq!(raw.recv().await, None);
    // in an established session: ciphertext, IV and tag each
    for at in [4usize, 25, 50] {
        let mut raw = Raw::connect(&server, Version::V2).await;
        raw.identify(&format!("t{at}"), 0).await;
        let mut frame = raw.frame(&XlRegMsg {
            cluster_name: Some("c".into()),
            ..op(Tag::GetCluster)
        });
        frame[at] ^= 0x80;
        raw.send_bytes(&frame).await;
        assert_eq!(raw.recv().await, None, "flipped byte {at}");
    }
    // a replayed frame
    let mut raw = Raw::connect(&server, Version::V2).await;
    raw.identify("replayer", 1).await;
    let frame = raw.frame(&XlRegMsg {
        cluster_name: Some("c".into()),
        cluster_size: Some(2),
        ..op(Tag::Create)
    });
    raw.send_bytes(&frame).await;
    assert_eq!(
        raw.recv().await.and_then(|m| m.op),
        Some(Tag::CreateReply as i32)
    );
    raw.send_bytes(&frame).await;
    assert_eq!(raw.recv().await, None);
    assert_eq!(
        server.running.stats.frames_refused.load(Ordering::Relaxed),
        5
    );
}

#[actix_rt::test]
async fn errors_and_bye_are_followed_by_a_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    // a request before Client
    let mut raw = Raw::connect(&server, Version::V2).await;
    raw.send(&XlRegMsg {
        cluster_name: Some("c".into()),
        ..op(Tag::Join)
    })
    .await;
    let reply = raw.recv().await.expect("error");
    assert_eq!(reply.op, Some(Tag::Error as i32));
    assert_eq!(
        reply.err_desc.as_deref(),
        Some("identify first: send Client")
    );
    assert_eq!(raw.recv().await, None);
    // a salt shorter than 8 bytes
    let mut raw = Raw::connect(&server, Version::V2).await;
    raw.send(&XlRegMsg {
        salt1: Some(vec![1; 7]),
        ..op(Tag::Bye)
    })
    .await;
    let reply = raw.recv().await.expect("error");
    assert_eq!(reply.op, Some(Tag::Error as i32), "{reply:?}");
    assert_eq!(raw.recv().await, None);
    // Bye: Ack, then close
    let mut raw = Raw::connect(&server, Version::V2).await;
    raw.identify("leaver", 2).await;
    raw.send(&op(Tag::Bye)).await;
    assert_eq!(raw.recv().await.and_then(|m| m.op), Some(Tag::Ack as i32));
    assert_eq!(raw.recv().await, None);
    // a returning client signing another session's salt2
    let mut first = connect(&server).await;
    let mut me = identity("comeback", 3);
    first.register(&mut me, &[]).await.expect("register");
    first.bye().await.expect("bye");
    let mut raw = Raw::connect(&server, Version::V2).await;
    let id = me.id().expect("id").to_vec();
    let wrong_salt = [0u8; 8];
    assert_ne!(wrong_salt, raw.salt2);
    raw.send(&XlRegMsg {
        client_id: Some(id.clone()),
        salt2: Some(wrong_salt.to_vec()),
        dig_sig: Some(
            token::sign(
                me.sig_key(),
                &token::returning_signed_bytes(&id, &wrong_salt, None),
            )
            .expect("sign"),
        ),
        ..op(Tag::Client)
    })
    .await;
    let reply = raw.recv().await.expect("error");
    assert_eq!(
        reply.err_desc.as_deref(),
        Some("Salt2 is not this session's")
    );
    assert_eq!(raw.recv().await, None);
    // with its own salt2, through the client, it is welcome back
    let mut back = connect(&server).await;
    let registered = back.resume(&me, None).await.expect("resume");
    assert_eq!(registered.id, id);
    assert_eq!(registered.name, "comeback");
    back.bye().await.expect("bye");
}

#[actix_rt::test]
async fn a_full_cluster_refuses_a_join() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let mut creator = connect(&server).await;
    creator
        .register(&mut identity("creator", 0), &[])
        .await
        .expect("register");
    let pair = creator.create("pair", 2, 1).await.expect("create");
    assert_eq!(pair.size, 2);
    let a = member(&server, "a", 1, "pair").await;
    let b = member(&server, "b", 2, "pair").await;
    let mut c = connect(&server).await;
    c.register(&mut identity("c", 3), &ends(&["c:1"]))
        .await
        .expect("register");
    match c.join("pair").await {
        Err(ClientError::Refused(desc)) => assert_eq!(desc, "cluster \"pair\" is full (2 members)"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.join("pair").await,
        Err(ClientError::SessionClosed)
    ));
    let members = creator
        .members(&ClusterRef::default())
        .await
        .expect("members");
    let names: Vec<_> = members.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(members.complete());
    for client in [a, b, creator] {
        client.bye().await.expect("bye");
    }
}

#[actix_rt::test]
async fn which_selects_and_orders_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let mut creator = connect(&server).await;
    creator
        .register(&mut identity("creator", 0), &[])
        .await
        .expect("register");
    creator.create("four", 4, 1).await.expect("create");
    let mut sessions = Vec::new();
    for (i, name) in ["m0", "m1", "m2"].iter().enumerate() {
        sessions.push(member(&server, name, i + 1, "four").await);
    }
    let four = ClusterRef {
        id: None,
        name: Some("four".into()),
    };
    let picked = creator.get_cluster(&four, Some(0b101)).await.expect("get");
    assert_eq!(picked.which, 0b101);
    let got: Vec<_> = picked
        .members
        .iter()
        .map(|m| (m.index, m.name.as_str()))
        .collect();
    assert_eq!(got, [(0, "m0"), (2, "m2")]);
    let undefined = creator.get_cluster(&four, Some(0b1000)).await.expect("get");
    assert_eq!(undefined.which, 0);
    assert!(undefined.members.is_empty());
    let all = creator.get_cluster(&four, None).await.expect("get");
    assert_eq!(all.which, 0b111);
    let names: Vec<_> = all.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["m0", "m1", "m2"]);
    // absent ClusterID: the session's cluster (from its Join)
    let mut m1 = sessions.remove(1);
    let own = m1
        .get_cluster(&ClusterRef::default(), Some(0b10))
        .await
        .expect("get");
    assert_eq!(own.members[0].name, "m1");
    for client in sessions.into_iter().chain([m1, creator]) {
        client.bye().await.expect("bye");
    }
}

/// One `GetCluster` returns all 64 members of a cluster whose tokens carry
/// 4096-bit keys, 255-byte names and two 255-byte endpoints (about 2 KB
/// each, so the old 64 KiB reply cap cut this reply short), to a v2 and to
/// a v1 client.
#[actix_rt::test]
async fn one_get_cluster_returns_all_64_members_with_4096_bit_keys() {
    use crate::xlreg::keys::PrivateKey;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let (sig, comms) = tokio::task::spawn_blocking(|| {
        (
            PrivateKey::generate(4096).expect("key"),
            PrivateKey::generate(4096).expect("key"),
        )
    })
    .await
    .expect("keys");
    let long = |i: usize, c: &str| format!("{i:02}{}", c.repeat(253));
    let mut creator = connect(&server).await;
    creator
        .register(&mut identity("creator", 0), &[])
        .await
        .expect("register");
    let cluster = long(99, "k");
    creator.create(&cluster, 64, 2).await.expect("create");
    for i in 0..64 {
        let mut client = connect(&server).await;
        let mut me = Identity::ephemeral(&long(i, "m"), sig.clone(), comms.clone());
        client
            .register(&mut me, &[long(i, "a"), long(i, "b")])
            .await
            .expect("register");
        client.join(&cluster).await.expect("join");
        client.bye().await.expect("bye");
    }
    let by_name = ClusterRef {
        id: None,
        name: Some(cluster.clone()),
    };
    let all = creator.get_cluster(&by_name, None).await.expect("get");
    assert_eq!(all.which, u64::MAX, "every member in one reply");
    assert_eq!(all.members.len(), 64);
    for (i, m) in (0u32..).zip(&all.members) {
        assert_eq!(m.index, i);
        assert_eq!(m.name, long(i as usize, "m"));
    }
    creator.bye().await.expect("bye");

    let v1 = ClientOptions {
        version: Version::V1,
        min_version: Version::V1,
        timeout: DEADLINE,
        secret: None,
    };
    let mut old = RegistryClient::connect_with(&server.addr, &server.running.public_key, &v1)
        .await
        .expect("connects");
    assert_eq!(old.version(), Version::V1);
    old.register(&mut identity("old", 1), &[])
        .await
        .expect("register");
    let all = old.get_cluster(&by_name, None).await.expect("get");
    assert_eq!(all.which, u64::MAX, "every member in one v1 reply");
    old.bye().await.expect("bye");
}

#[actix_rt::test]
async fn a_stalled_handshake_is_closed_while_others_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let timeout = Duration::from_millis(1500);
    let server = start_with(dir.path(), timeout, 4).await;
    // connects and never sends its Hello
    let mut silent = TcpStream::connect(&server.addr).await.expect("connect");
    let opened = Instant::now();
    // sends its Hello, then never identifies
    let mut raw = Raw::connect(&server, Version::V2).await;
    // meanwhile a whole session completes
    let mut client = connect(&server).await;
    client
        .register(&mut identity("busy", 0), &ends(&["b:1"]))
        .await
        .expect("register");
    client.create("c", 2, 1).await.expect("create");
    client.join("c").await.expect("join");
    client.bye().await.expect("bye");
    let mut probe = [0u8; 1];
    assert!(
        matches!(silent.try_read(&mut probe), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the stalled connection is still open while the session completed"
    );
    assert_eq!(read_to_close(&mut silent).await, Vec::<u8>::new());
    assert!(opened.elapsed() >= timeout - Duration::from_millis(100));
    assert_eq!(raw.recv().await, None);
    assert_eq!(
        server
            .running
            .stats
            .handshake_timeouts
            .load(Ordering::Relaxed),
        2
    );
}

#[actix_rt::test]
async fn handshakes_are_bounded_and_identified_sessions_free_their_slot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let timeout = Duration::from_millis(1500);
    let server = start_with(dir.path(), timeout, 1).await;
    // an identified session keeps running without holding the only slot
    let mut first = connect(&server).await;
    first
        .register(&mut identity("first", 0), &[])
        .await
        .expect("register");
    let mut second = connect(&server).await;
    second
        .register(&mut identity("second", 1), &[])
        .await
        .expect("register");
    // a connection that has not sent its Hello holds no slot: the next
    // client is served at once
    let mut silent = TcpStream::connect(&server.addr).await.expect("connect");
    let started = Instant::now();
    let mut quick = connect(&server).await;
    quick
        .register(&mut identity("quick", 3), &[])
        .await
        .expect("register");
    assert!(
        started.elapsed() < timeout / 2,
        "a silent connection held the slot ({:?})",
        started.elapsed()
    );
    // a stalled handshake (Hello sent, never identified) takes the slot:
    // the next Hello waits for it
    let mut stalled = Raw::connect(&server, Version::V2).await;
    let started = Instant::now();
    let mut waiting = connect(&server).await;
    assert!(
        started.elapsed() >= timeout / 2,
        "the Hello waited for the stalled handshake ({:?})",
        started.elapsed()
    );
    assert_eq!(read_to_close(&mut silent).await, Vec::<u8>::new());
    assert_eq!(stalled.recv().await, None);
    waiting
        .register(&mut identity("third", 2), &[])
        .await
        .expect("register");
    // the identified sessions were not disturbed
    first.create("x", 2, 1).await.expect("first still served");
    for client in [first, second, quick, waiting] {
        client.bye().await.expect("bye");
    }
}

#[actix_rt::test]
async fn state_survives_a_restart_and_the_key_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut me = identity("keeper", 0);
    let public = {
        let server = start(dir.path()).await;
        let mut client = connect(&server).await;
        client
            .register(&mut me, &ends(&["k:1"]))
            .await
            .expect("register");
        client.create("kept", 3, 1).await.expect("create");
        client.join("kept").await.expect("join");
        client.bye().await.expect("bye");
        server.running.public_key.clone()
    };
    let server = start(dir.path()).await;
    assert_eq!(server.running.public_key, public);
    let mut client = connect(&server).await;
    let back = client.resume(&me, None).await.expect("known after restart");
    assert_eq!(back.name, "keeper");
    let members = client
        .members(&ClusterRef {
            id: None,
            name: Some("kept".into()),
        })
        .await
        .expect("members");
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.members[0].id, me.id().expect("id"));
    assert_eq!(members.members[0].my_ends, ends(&["k:1"]));
    client.bye().await.expect("bye");
}

#[actix_rt::test]
async fn stopping_closes_sessions_and_the_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let mut raw = Raw::connect(&server, Version::V2).await;
    raw.identify("stayer", 0).await;
    server.stop.send(true).expect("stop");
    assert_eq!(raw.recv().await, None);
    let deadline = Instant::now() + DEADLINE;
    loop {
        if TcpStream::connect(&server.addr).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting after stop");
        tokio::task::yield_now().await;
    }
}

mod hostile;

#[test]
fn registry_replies_are_what_the_session_sends() {
    // The Error text a client sees is the RegistryError's Display.
    let reply = Reply::Error(crate::xlreg::registry::RegistryError::UnknownClient.to_string());
    assert_eq!(
        reply.to_msg().err_desc.as_deref(),
        Some("unknown client ID")
    );
}

/// Full sessions per second (Hello, Client registering a new client, Join,
/// Bye) with 1 and 8 concurrent clients, each on its own thread and
/// runtime. Run in a release build:
/// `cargo test --release -p catalogue-actors --lib xlreg::server::tests::sessions_per_second -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark; run it in a release build"]
fn sessions_per_second() {
    use std::sync::atomic::AtomicUsize;

    const SECONDS: u64 = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let system = actix_rt::System::new();
    let (server, clusters) = system.block_on(async {
        let server = start_with(dir.path(), DEADLINE, 64).await;
        let mut admin = connect(&server).await;
        admin
            .register(&mut identity("admin", 0), &[])
            .await
            .expect("register");
        let clusters = 500;
        for k in 0..clusters {
            admin
                .create(&format!("bench-{k}"), 64, 1)
                .await
                .expect("create");
        }
        admin.bye().await.expect("bye");
        (server, clusters)
    });
    let next = Arc::new(AtomicUsize::new(0));
    for concurrency in [1usize, 8] {
        let addr = server.addr.clone();
        let key = server.running.public_key.clone();
        let done = Arc::new(AtomicUsize::new(0));
        let until = std::time::Instant::now() + Duration::from_secs(SECONDS);
        let (finished_tx, mut finished) = tokio::sync::mpsc::unbounded_channel::<()>();
        let threads: Vec<_> = (0..concurrency)
            .map(|t| {
                let (addr, key, done, next) =
                    (addr.clone(), key.clone(), done.clone(), next.clone());
                let finished_tx = finished_tx.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(async move {
                        while std::time::Instant::now() < until {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let mut client =
                                RegistryClient::connect(&addr, &key).await.expect("connect");
                            let mut me = identity(&format!("b{i}"), t % 4);
                            client
                                .register(&mut me, &ends(&["127.0.0.1:1"]))
                                .await
                                .expect("register");
                            client
                                .join(&format!("bench-{}", i / 64))
                                .await
                                .expect("join");
                            client.bye().await.expect("bye");
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    let _ = finished_tx.send(());
                })
            })
            .collect();
        drop(finished_tx);
        // The server runs on this thread's actix system meanwhile; a thread
        // that panics drops its sender too.
        system.block_on(async {
            tokio::time::timeout(Duration::from_secs(SECONDS + 30), async {
                while finished.recv().await.is_some() {}
            })
            .await
            .expect("benchmark threads finish");
        });
        for thread in threads {
            thread.join().expect("client thread");
        }
        let sessions = done.load(Ordering::Relaxed);
        assert!(
            next.load(Ordering::Relaxed) < clusters * 64,
            "ran out of cluster slots"
        );
        println!(
            "{concurrency} concurrent client(s): {sessions} sessions in {SECONDS} s = {:.0} sessions/s",
            sessions as f64 / SECONDS as f64
        );
    }
    drop(server);
}

/// One request on the admin socket of `server`; the reply.
async fn admin(dir: &Path, request: &str) -> admin::AdminReply {
    let path = admin::socket_path(&registry_dir(dir));
    let mut stream = tokio::net::UnixStream::connect(&path)
        .await
        .expect("admin socket");
    stream
        .write_all(format!("{request}\n").as_bytes())
        .await
        .expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut reply))
        .await
        .expect("in time")
        .expect("read");
    serde_json::from_slice(&reply).expect("reply JSON")
}

#[actix_rt::test]
async fn members_leave_the_operator_removes_and_resizes_and_freed_slots_are_joined() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path()).await;
    let mut creator = connect(&server).await;
    creator
        .register(&mut identity("creator", 0), &[])
        .await
        .expect("register");
    creator.create("duo", 2, 1).await.expect("create");
    let mut a = connect(&server).await;
    let mut a_id = identity("a", 1);
    a.register(&mut a_id, &ends(&["a:1"])).await.expect("a");
    a.join("duo").await.expect("a joins");
    let _b = member(&server, "b", 2, "duo").await;
    let duo = ClusterRef {
        id: None,
        name: Some("duo".into()),
    };
    // a leaves by itself: slot 0 is free
    assert_eq!(a.leave(&a_id, "duo").await.expect("leaves"), 0b1);
    let left = creator.get_cluster(&duo, None).await.expect("get");
    assert_eq!(left.which, 0b10);
    // c joins the freed slot
    let _c = member(&server, "c", 3, "duo").await;
    assert_eq!(
        creator.get_cluster(&duo, None).await.expect("get").which,
        0b11
    );
    // the operator: a bad request, an unknown member, then b removed
    let bad = admin(dir.path(), r#"{"op":"set-size","cluster":"duo","size":1}"#).await;
    assert!(
        !bad.ok
            && bad
                .error
                .as_deref()
                .is_some_and(|e| e.contains("cannot have size 1"))
    );
    let unknown = admin(
        dir.path(),
        r#"{"op":"remove-member","cluster":"duo","member":"zz"}"#,
    )
    .await;
    assert!(!unknown.ok, "{unknown:?}");
    let removed = admin(
        dir.path(),
        r#"{"op":"remove-member","cluster":"duo","member":"b"}"#,
    )
    .await;
    assert!(removed.ok, "{removed:?}");
    assert!(
        removed
            .message
            .as_deref()
            .is_some_and(|m| m.contains("slot 1 is free"))
    );
    assert_eq!(
        creator.get_cluster(&duo, None).await.expect("get").which,
        0b1
    );
    let grown = admin(dir.path(), r#"{"op":"set-size","cluster":"duo","size":3}"#).await;
    assert!(grown.ok, "{grown:?}");
    assert_eq!(
        creator
            .get_cluster(&duo, None)
            .await
            .expect("get")
            .cluster
            .size,
        3
    );
    // every change survived: a restart sees the same slots and size
    drop(creator);
    drop(server);
    let server = start(dir.path()).await;
    let mut reader = connect(&server).await;
    reader
        .register(&mut identity("reader", 0), &[])
        .await
        .expect("register");
    let after = reader.get_cluster(&duo, None).await.expect("get");
    assert_eq!((after.which, after.cluster.size), (0b1, 3));
    assert_eq!(after.members[0].name, "c");
}
