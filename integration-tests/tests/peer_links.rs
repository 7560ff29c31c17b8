//! Peer links between real nodes: mutual TLS, the links table and its
//! propagation, losing and regaining a node, simultaneous dialing, and
//! rogue peers (wrong CA, wrong name, no certificate, a clock far ahead).

use std::{
    net::TcpStream,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use catalogue::client::{Client, ConnectOptions, Endpoint, SubscriptionEvent};
use catalogue_integration_tests::{
    Cli, DEADLINE, Daemon, TestCa, link_changed, read_frame, runtime, write_frame,
};
use catalogue_proto::{
    Body, Frame,
    catalogue::{
        ErrorCode, Hello, LinkAdd, LinkKey as WireLinkKey, Lock, Peer, Register, Timestamp,
        UnlockAll, UpdTree,
    },
};
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use serde_json::Value;

/// `catalogue links --json` on `daemon`.
fn links(daemon: &Daemon) -> Result<Value> {
    let out = Cli::new(["links", "--json", "--socket", &daemon.socket_arg()]).output(DEADLINE)?;
    if out.code != 0 {
        bail!("catalogue links exited {}: {}", out.code, out.stderr);
    }
    Ok(serde_json::from_str(&out.stdout)?)
}

fn pairs(view: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = view["links"]
        .as_array()
        .map(|links| {
            links
                .iter()
                .map(|l| {
                    (
                        l["a"].as_str().unwrap_or("").to_string(),
                        l["b"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    pairs
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn a_tls_chain_builds_the_links_table_and_tracks_a_lost_node() -> Result<()> {
    let ca = TestCa::new("test-ca")?;
    let mut a = Daemon::builder()
        .name("node-a")
        .tls(&ca.node("node-a")?)
        .peer("node-b", "")
        .start()?;
    let mut b = Daemon::builder()
        .name("node-b")
        .tls(&ca.node("node-b")?)
        .peer("node-a", &a.peer)
        .peer("node-c", "")
        .start()?;
    let c_tls = ca.node("node-c")?;
    let c = Daemon::builder()
        .name("node-c")
        .tls(&c_tls)
        .peer("node-b", &b.peer)
        .start()?;
    a.wait_log(DEADLINE, link_changed("node-a", "node-b", "add"))?;
    a.wait_log(DEADLINE, link_changed("node-b", "node-c", "add"))?;
    let view = links(&a)?;
    assert_eq!(
        pairs(&view),
        [pair("node-a", "node-b"), pair("node-b", "node-c")]
    );
    assert_eq!(
        view["reachable"],
        serde_json::json!(["node-a", "node-b", "node-c"])
    );
    b.wait_log(DEADLINE, |l| {
        l["message"] == "peer link up" && l["peer"] == "node-a"
    })?;

    // Kill C: B sees the link drop and A learns it through B.
    drop(c);
    a.wait_log(DEADLINE, link_changed("node-b", "node-c", "delete"))?;
    let view = links(&a)?;
    assert_eq!(pairs(&view), [pair("node-a", "node-b")]);
    assert_eq!(view["reachable"], serde_json::json!(["node-a", "node-b"]));

    // Bring C back: the link returns everywhere.
    let mark = a.mark();
    let _c = Daemon::builder()
        .name("node-c")
        .tls(&c_tls)
        .peer("node-b", &b.peer)
        .start()?;
    a.wait_log_from(mark, DEADLINE, link_changed("node-b", "node-c", "add"))?;
    assert_eq!(
        pairs(&links(&a)?),
        [pair("node-a", "node-b"), pair("node-b", "node-c")]
    );

    let out = Cli::new(["peers", "--json", "--socket", &b.socket_arg()]).output(DEADLINE)?;
    let peers: Vec<Value> = out
        .stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(peers.len(), 2, "{}", out.stdout);
    assert!(peers.iter().all(|p| p["state"] == "up"), "{}", out.stdout);
    Ok(())
}

/// The plaintext part of a peer handshake against `addr`, claiming `name`.
/// Returns the stream once the node answered `Success`.
fn plaintext_handshake(addr: &str, name: &str, cluster: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let welcome = match read_frame(&mut stream)?.and_then(|f| f.body) {
        Some(Body::Welcome(w)) => w,
        other => bail!("expected Welcome, got {other:?}"),
    };
    let peer = Peer {
        name: name.into(),
        cluster: cluster.into(),
        environment: welcome.environment,
        protocol_major: welcome.protocol_major,
        protocol_minor: welcome.protocol_minor,
    };
    write_frame(&mut stream, &Frame::new(0, Body::Peer(peer)))?;
    match read_frame(&mut stream)?.and_then(|f| f.body) {
        Some(Body::Success(_)) => Ok(stream),
        Some(Body::Error(e)) => bail!("refused: {} {}", e.code().hex(), e.message),
        other => bail!("expected Success, got {other:?}"),
    }
}

/// What happened to a rogue's TLS attempt.
#[derive(Debug)]
enum RogueOutcome {
    /// The TLS handshake failed (the reason, for the assertion message).
    HandshakeFailed(#[allow(dead_code)] String),
    /// TLS succeeded; the node then sent this error (or closed).
    AfterTls(Option<ErrorCode>),
}

fn rogue_tls(
    addr: &str,
    claimed: &str,
    files: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<RogueOutcome> {
    let stream = plaintext_handshake(addr, claimed, "default")?;
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    builder.set_verify(SslVerifyMode::NONE);
    if let Some((cert, key)) = files {
        builder.set_certificate_chain_file(cert)?;
        builder.set_private_key_file(key, SslFiletype::PEM)?;
    }
    let connector = builder.build();
    let config = connector
        .configure()?
        .verify_hostname(false)
        .use_server_name_indication(false);
    match config.connect("", stream) {
        Err(e) => Ok(RogueOutcome::HandshakeFailed(e.to_string())),
        Ok(mut tls) => {
            // The sync session's first frame: the node counts a link as up
            // only once it has read a frame over TLS.
            let hello = Frame::new(
                1,
                Body::Hello(Hello {
                    name: claimed.into(),
                }),
            );
            if let Err(e) = write_frame(&mut tls, &hello) {
                return Ok(RogueOutcome::HandshakeFailed(format!("{e:#}")));
            }
            // TLS 1.3 reports the server's rejection of our certificate
            // only when we read.
            match read_frame(&mut tls) {
                Ok(Some(Frame {
                    body: Some(Body::Error(e)),
                    ..
                })) => Ok(RogueOutcome::AfterTls(Some(e.code()))),
                Ok(_) => Ok(RogueOutcome::AfterTls(None)),
                Err(e) => Ok(RogueOutcome::HandshakeFailed(format!("{e:#}"))),
            }
        }
    }
}

fn refused_reason(daemon: &mut Daemon, mark: usize) -> Result<String> {
    let line = daemon.wait_log_from(mark, DEADLINE, |l| l["message"] == "peer link refused")?;
    Ok(line["reason"].as_str().unwrap_or("").to_string())
}

#[test]
fn rogue_peers_are_refused_with_a_logged_reason() -> Result<()> {
    let ca = TestCa::new("test-ca")?;
    let other_ca = TestCa::new("other-ca")?;
    let mut a = Daemon::builder()
        .name("node-a")
        .tls(&ca.node("node-a")?)
        .peer("node-r", "")
        .start()?;

    // A certificate for the right name from another CA.
    let foreign = other_ca.node("node-r")?;
    let mark = a.mark();
    let outcome = rogue_tls(&a.peer, "node-r", Some((&foreign.cert, &foreign.key)))?;
    assert!(
        matches!(outcome, RogueOutcome::HandshakeFailed(_)),
        "{outcome:?}"
    );
    let reason = refused_reason(&mut a, mark)?;
    assert_eq!(reason, "unknown_ca", "logged reason");

    // No certificate at all.
    let mark = a.mark();
    let outcome = rogue_tls(&a.peer, "node-r", None)?;
    assert!(
        matches!(outcome, RogueOutcome::HandshakeFailed(_)),
        "{outcome:?}"
    );
    let reason = refused_reason(&mut a, mark)?;
    assert_eq!(reason, "no_peer_certificate", "logged reason");

    // A valid certificate for another name than the one claimed.
    let impostor = ca.node("node-x")?;
    let mark = a.mark();
    let outcome = rogue_tls(&a.peer, "node-r", Some((&impostor.cert, &impostor.key)))?;
    assert!(
        matches!(
            outcome,
            RogueOutcome::AfterTls(Some(ErrorCode::ServerAuthFailed))
                | RogueOutcome::HandshakeFailed(_)
        ),
        "{outcome:?}"
    );
    let reason = refused_reason(&mut a, mark)?;
    assert_eq!(reason, "unknown_name", "logged reason");

    // A name A does not know is refused before TLS, readable in plaintext.
    let err = plaintext_handshake(&a.peer, "node-stranger", "default").expect_err("unknown name");
    assert!(err.to_string().contains("0x03"), "{err}");
    // A valid certificate and name still links.
    let rogue = ca.node("node-r")?;
    let outcome = rogue_tls(&a.peer, "node-r", Some((&rogue.cert, &rogue.key)));
    drop(outcome);
    a.wait_log(DEADLINE, |l| {
        l["message"] == "peer link up" && l["peer"] == "node-r"
    })?;
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[test]
fn a_timestamp_far_in_the_future_is_refused() -> Result<()> {
    let mut a = Daemon::builder()
        .name("node-a")
        .arg("--debug")
        .set("sync.max_clock_drift", "5s")
        .peer("node-r", "")
        .start()?;
    let mut rogue = plaintext_handshake(&a.peer, "node-r", "default")?;
    // The sync session: hello, register, digest, then one batch.
    write_frame(
        &mut rogue,
        &Frame::new(
            1,
            Body::Hello(Hello {
                name: "node-r".into(),
            }),
        ),
    )?;
    wait_for(&mut rogue, |b| matches!(b, Body::SyncWelcome(_)))?;
    write_frame(
        &mut rogue,
        &Frame::new(
            2,
            Body::Register(Register {
                name: "node-r".into(),
            }),
        ),
    )?;
    wait_for(&mut rogue, |b| matches!(b, Body::Register(_)))?;
    write_frame(
        &mut rogue,
        &Frame::new(3, Body::UpdTree(UpdTree::default())),
    )?;
    let far = Timestamp {
        physical_ms: now_ms() + 3_600_000,
        logical: 0,
    };
    let now = Timestamp {
        physical_ms: now_ms(),
        logical: 0,
    };
    let add = |b: &str, ts: Timestamp| {
        Body::LinkAdd(LinkAdd {
            a: "node-r".into(),
            b: b.into(),
            ts: Some(ts),
            origin: "node-r".into(),
        })
    };
    let key = |b: &str| WireLinkKey {
        a: "node-r".into(),
        b: b.into(),
    };
    let lock = Body::Lock(Lock {
        batch: 1,
        services: vec![],
        links: vec![key("node-future"), key("node-present")],
        ..Lock::default()
    });
    write_frame(&mut rogue, &Frame::new(4, lock))?;
    write_frame(&mut rogue, &Frame::new(5, add("node-future", far)))?;
    write_frame(&mut rogue, &Frame::new(6, add("node-present", now)))?;
    write_frame(
        &mut rogue,
        &Frame::new(
            7,
            Body::UnlockAll(UnlockAll {
                batch: 1,
                entries: 2,
            }),
        ),
    )?;
    // The second change is applied, so the first has been handled.
    a.wait_log(DEADLINE, link_changed("node-r", "node-present", "add"))?;
    let refusal = a.wait_log(DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("timestamp too far ahead"))
    })?;
    assert_eq!(refusal["peer"], "node-r");
    let view = links(&a)?;
    let all = pairs(&view);
    assert!(all.contains(&pair("node-present", "node-r")), "{all:?}");
    assert!(
        !all.iter()
            .any(|(x, y)| x == "node-future" || y == "node-future"),
        "{all:?}"
    );
    // The rogue is told why.
    wait_for(
        &mut rogue,
        |b| matches!(b, Body::Error(e) if e.code() == ErrorCode::ClockDrift),
    )?;
    Ok(())
}

/// Reads frames until one whose body satisfies `pred` (at most 64 frames).
fn wait_for(stream: &mut TcpStream, pred: impl Fn(&Body) -> bool) -> Result<Body> {
    for _ in 0..64 {
        match read_frame(stream).context("read")? {
            Some(Frame {
                body: Some(body), ..
            }) if pred(&body) => return Ok(body),
            Some(_) => continue,
            None => bail!("connection closed"),
        }
    }
    bail!("no matching frame among 64")
}

/// Two free loopback ports, reserved by binding and released at once. If
/// another process takes one in between, the daemon fails to bind and the
/// caller tries again with new ones.
fn free_ports() -> Result<(String, String)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.to_string(), b.local_addr()?.to_string()))
}

#[test]
fn two_nodes_dialing_each_other_end_with_one_link() -> Result<()> {
    let ca = TestCa::new("test-ca")?;
    let (a_tls, b_tls) = (ca.node("node-a")?, ca.node("node-b")?);
    let mut attempt = 0;
    let (mut a, mut b) = loop {
        attempt += 1;
        let (pa, pb) = free_ports()?;
        let a = Daemon::builder()
            .name("node-a")
            .tls(&a_tls)
            .peer_listen(&pa)
            .peer("node-b", &pb)
            .start();
        let b = Daemon::builder()
            .name("node-b")
            .tls(&b_tls)
            .peer_listen(&pb)
            .peer("node-a", &pa)
            .start();
        match (a, b) {
            (Ok(a), Ok(b)) => break (a, b),
            (a, b) if attempt < 5 => {
                eprintln!("ports taken, retrying: {:?} {:?}", a.err(), b.err());
            }
            (a, b) => bail!("cannot start the pair: {:?} {:?}", a.err(), b.err()),
        }
    };
    a.wait_log(DEADLINE, |l| {
        l["message"] == "linked" && l["peer"] == "node-b"
    })?;
    b.wait_log(DEADLINE, |l| {
        l["message"] == "linked" && l["peer"] == "node-a"
    })?;
    // Both sides keep the same connection. (Which one depends on timing:
    // when both dials cross, node-a's wins (the rule is unit-tested in
    // actors/src/supervisor/peers.rs); when node-b's lands while node-a is
    // still backing off, it stays, and node-a does not dial over it.)
    let peers = |d: &Daemon| -> Result<Value> {
        let out = Cli::new(["peers", "--json", "--socket", &d.socket_arg()]).output(DEADLINE)?;
        if out.code != 0 {
            bail!("catalogue peers exited {}: {}", out.code, out.stderr);
        }
        serde_json::from_str(out.stdout.trim())
            .with_context(|| format!("peers output {:?}", out.stdout))
    };
    let (pa, pb) = (peers(&a)?, peers(&b)?);
    assert_eq!(pa["state"], "up");
    assert_eq!(pb["state"], "up");
    let directions = (pa["direction"].as_str(), pb["direction"].as_str());
    assert!(
        matches!(
            directions,
            (Some("outbound"), Some("inbound")) | (Some("inbound"), Some("outbound"))
        ),
        "{pa} {pb}"
    );
    // One "linked" each: the link never flapped.
    let linked = |d: &Daemon| {
        d.logged()
            .iter()
            .filter(|l| l["message"] == "linked")
            .count()
    };
    assert_eq!((linked(&a), linked(&b)), (1, 1));
    Ok(())
}

/// Nodes that did not run for a while (SIGSTOP, a paused VM or host) do
/// not take their own stall for their peers' silence: resumed, they log
/// no "peer link silent" warning (a paused node logged one per queued tick
/// of every link, 128 per link after 20 s, and closed every link) and their
/// link carries on.
#[test]
fn nodes_resumed_after_a_stall_do_not_blame_their_peers() -> Result<()> {
    // The fault itself: how long both nodes are stopped, longer than the
    // keepalive timeout (5 s). Nothing happens meanwhile to wait on.
    const STALL: std::time::Duration = std::time::Duration::from_secs(6);
    let ca = TestCa::new("test-ca")?;
    let mut a = Daemon::builder()
        .name("node-a")
        .tls(&ca.node("node-a")?)
        .peer("node-b", "")
        .start()?;
    let mut b = Daemon::builder()
        .name("node-b")
        .tls(&ca.node("node-b")?)
        .peer("node-a", &a.peer)
        .start()?;
    b.wait_log(DEADLINE, |l| {
        l["message"] == "initial sync done" && l["peer"] == "node-a"
    })?;
    a.wait_log(DEADLINE, link_changed("node-a", "node-b", "add"))?;
    let marks = [a.mark(), b.mark()];
    a.signal(libc::SIGSTOP)?;
    b.signal(libc::SIGSTOP)?;
    std::thread::sleep(STALL);
    a.signal(libc::SIGCONT)?;
    b.signal(libc::SIGCONT)?;
    let stalled = |l: &Value| {
        l["message"] == "this node did not run for a while: the peer's silence is not counted"
    };
    a.wait_log_from(marks[0], DEADLINE, stalled)?;
    b.wait_log_from(marks[1], DEADLINE, stalled)?;
    // The link still carries changes: a registration at A reaches a
    // subscriber at B.
    let rt = runtime()?;
    rt.block_on(async {
        let options = |d: &Daemon| ConnectOptions::new(Endpoint::Unix(d.socket.clone()));
        let at_b = Client::connect(&options(&b)).await?;
        let mut sub = at_b.subscribe("^tcp://after-stall").await?;
        let at_a = Client::connect(&options(&a)).await?;
        at_a.register("tcp://after-stall:1", Default::default())
            .await?;
        loop {
            match tokio::time::timeout(DEADLINE, sub.next()).await {
                Ok(Some(SubscriptionEvent::Added { service, .. })) => {
                    assert_eq!(service.uri, "tcp://after-stall:1");
                    break;
                }
                Ok(Some(_)) => continue,
                Ok(None) => bail!("subscription ended"),
                Err(_) => bail!("the registration at A never reached B"),
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    for (daemon, mark) in [(&a, marks[0]), (&b, marks[1])] {
        let blamed: Vec<&Value> = daemon.logged()[mark..]
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("peer link silent") || m == "unlinked")
            })
            .collect();
        assert!(
            blamed.is_empty(),
            "a stall taken for a peer's silence: {blamed:?}"
        );
    }
    Ok(())
}
