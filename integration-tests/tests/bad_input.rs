//! Bad input (issue 8, scenario 6): random and mutated frames on a real
//! node's client socket, peer port (before and after the handshake, and
//! TLS handshakes cut short) and xlReg port; oversized length prefixes,
//! invalid UTF-8, pathological regexes and registration floods. The node
//! never crashes, answers a well-formed request afterwards, answers with
//! an `Error` frame wherever the input is well framed, and its table is
//! the same after rejected input as before.
//!
//! Inputs come from a seeded generator; each test prints its seed
//! (`figure: ... seed N`), and `CATALOGUE_TEST_SEED=N` replays a run.
//! Figures (inputs per port, errors answered, time) are printed on stderr
//! with the prefix `figure:`; see docs/RELIABILITY.md.

use std::{
    collections::BTreeMap,
    io::Write,
    net::TcpStream,
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use catalogue_actors::xlreg::{hello::Hello as XlHello, keys::PublicKey, version::Version};
use catalogue_integration_tests::{
    Conn, DEADLINE, Daemon, TestCa,
    bad_input::{
        Rng, Tally, XlregProbe, alive, client_hello, exchange, keeper, listing, mutate,
        peer_connect, peer_frame, peer_handshake, random_bytes, random_msg, seed, start_session,
        tls_session, wait_listing,
    },
    read_frame, write_frame,
};
use catalogue_proto::{
    Body, Frame,
    catalogue::{
        Ack, Bye, ErrorCode, Hello, LinkAdd, LinkKey, List, ListLinks, ListPeers, Lock, Peer,
        Register, RegisterService, ServiceAdd, Subscribe, Timestamp, UnlockAll, UnregisterService,
        Unsubscribe, UpdTree,
    },
    reg::{XlRegMsg, xl_reg_msg::Tag},
};
use prost::Message;

/// Time allowed for the node to answer one input and close.
const ANSWER: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

/// A frame with its length prefix.
fn bytes_of(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, frame).expect("writing to a Vec");
    out
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Frames the node may send a client.
fn is_reply(body: &Option<Body>) -> bool {
    matches!(
        body,
        Some(
            Body::Success(_)
                | Body::Error(_)
                | Body::ListReply(_)
                | Body::LinksReply(_)
                | Body::PeersReply(_)
                | Body::ServiceEvent(_)
                | Body::SnapshotEnd(_)
                | Body::Overflow(_)
                | Body::Bye(_)
        )
    )
}

// ---------------------------------------------------------- client socket

/// Valid client frames, the seeds of the mutations.
fn client_corpus() -> Vec<Vec<u8>> {
    let bodies = [
        Body::RegisterService(RegisterService {
            uri: "tcp://fuzz.example:1".into(),
            attrs: attrs(&[("k", "v")]),
        }),
        Body::UnregisterService(UnregisterService {
            uri: "tcp://db.keep:5432".into(),
        }),
        Body::Subscribe(Subscribe {
            subscription_id: 7,
            regex: "^tcp://(db|cache)\\.".into(),
        }),
        Body::Unsubscribe(Unsubscribe { subscription_id: 7 }),
        Body::List(List {
            regex: "keep".into(),
        }),
        Body::ListLinks(ListLinks {}),
        Body::ListPeers(ListPeers {}),
        Body::Bye(Bye {
            reason: "done".into(),
        }),
        Body::Hello(Hello { name: "x".into() }),
        Body::Ack(Ack { ack_serial: 3 }),
        Body::Lock(Lock {
            batch: 1,
            services: vec!["tcp://db.keep:5432".into()],
            ..Lock::default()
        }),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| bytes_of(&Frame::new(i as u64, body)))
        .collect()
}

/// One random input: raw bytes, or one to three valid frames mutated.
fn client_input(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.one_in(4) {
        let n = rng.below(64);
        return random_bytes(rng, n);
    }
    let mut input = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let seed: &Vec<u8> = rng.pick(corpus);
        input.extend_from_slice(seed);
    }
    mutate(rng, &input)
}

#[test]
fn the_client_socket_survives_random_and_mutated_frames() -> Result<()> {
    client_socket_fuzz(3000)
}

fn client_socket_fuzz(inputs: usize) -> Result<()> {
    let daemon = Daemon::start()?;
    let _keeper = keeper(&daemon)?;
    let before = listing(&daemon)?;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let corpus = client_corpus();
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..inputs {
        let input = client_input(&mut rng, &corpus);
        let mut stream = UnixStream::connect(&daemon.socket)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        match read_frame(&mut stream)?.and_then(|f| f.body) {
            Some(Body::Welcome(_)) => {}
            other => bail!("input {n}: expected Welcome, got {other:?}"),
        }
        let answer = exchange(stream, &input, ANSWER)
            .with_context(|| format!("input {n} (seed {seed}): {input:02x?}"))?;
        ensure!(
            answer.trailing == 0,
            "input {n} (seed {seed}): the node's answer does not frame: {answer:?}"
        );
        ensure!(
            answer.frames.iter().all(|f| is_reply(&f.body)),
            "input {n} (seed {seed}): a frame no client should get: {answer:?}"
        );
        tally.add(&answer);
        if n % 500 == 499 {
            alive(&daemon)?;
        }
    }
    let took = started.elapsed();
    wait_listing(&daemon, &before)?;
    tally.print("client socket, random and mutated frames", seed, took);
    ensure!(tally.errors > inputs / 10, "hardly any Error frames");
    Ok(())
}

/// Sends `body` on `conn` and expects an `Error` with `code` answering it.
fn expect_error(conn: &mut Conn, body: Body, code: ErrorCode) -> Result<Duration> {
    let started = Instant::now();
    let serial = conn.send(body)?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::Error(e)) if e.code() == code && e.in_reply_to == Some(serial) => {
            Ok(started.elapsed())
        }
        other => bail!(
            "expected Error {} for serial {serial}, got {other:?}",
            code.hex()
        ),
    }
}

/// Subscribes and expects `Success`, then a snapshot of `count` services.
fn subscribe_ok(conn: &mut Conn, id: u64, regex: String, count: u64) -> Result<Duration> {
    let started = Instant::now();
    conn.send(subscribe(id, regex))?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::Success(_)) => {}
        other => bail!("subscription {id}: {other:?}"),
    }
    let mut events = 0;
    loop {
        match conn.recv()?.and_then(|f| f.body) {
            Some(Body::ServiceEvent(e)) if e.snapshot => events += 1,
            Some(Body::SnapshotEnd(e)) if e.count == count && events == count => {
                return Ok(started.elapsed());
            }
            other => bail!("subscription {id} snapshot: {other:?}"),
        }
    }
}

fn subscribe(id: u64, regex: String) -> Body {
    Body::Subscribe(Subscribe {
        subscription_id: id,
        regex,
    })
}

#[test]
fn well_framed_invalid_requests_get_errors_and_change_nothing() -> Result<()> {
    let daemon = Daemon::start()?;
    let _keeper = keeper(&daemon)?;
    let before = listing(&daemon)?;
    let mut conn = Conn::unix(&daemon.socket)?;
    conn.recv()?;
    let mut answered = 0;
    let started = Instant::now();

    // Requests the node refuses and the connection survives.
    let long_uri = format!("tcp://{}:1", "a".repeat(3000));
    for (uri, code) in [
        ("", ErrorCode::InvalidUri),
        ("not a uri", ErrorCode::InvalidUri),
        (long_uri.as_str(), ErrorCode::InvalidUri),
    ] {
        let body = Body::RegisterService(RegisterService {
            uri: uri.into(),
            attrs: BTreeMap::new(),
        });
        expect_error(&mut conn, body, code)?;
        answered += 1;
        ensure!(
            listing(&daemon)? == before,
            "a refused registration changed the table"
        );
    }
    let body = Body::UnregisterService(UnregisterService {
        uri: "tcp://db.keep:5432".into(),
    });
    expect_error(&mut conn, body, ErrorCode::NotFound)?;
    answered += 1;
    ensure!(
        listing(&daemon)? == before,
        "another connection's service went away"
    );

    // Regexes: unclosed, nested thousands deep, 1 MiB long, a repetition
    // whose compiled form is huge, an unknown class. Each is refused,
    // quickly.
    let deep = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
    let huge = "a".repeat(1 << 20);
    let mut slowest = Duration::ZERO;
    for (i, regex) in [
        "(unclosed".to_string(),
        deep,
        huge,
        "a{1000}{1000}".to_string(),
        "\\p{NotAProperty}".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let took = expect_error(
            &mut conn,
            subscribe(100 + i as u64, regex.clone()),
            ErrorCode::InvalidRegex,
        )
        .with_context(|| format!("subscribe regex #{i} ({} bytes)", regex.len()))?;
        slowest = slowest.max(took);
        let took = expect_error(
            &mut conn,
            Body::List(List { regex }),
            ErrorCode::InvalidRegex,
        )
        .with_context(|| format!("list regex #{i}"))?;
        slowest = slowest.max(took);
        answered += 2;
    }
    // Valid but nasty: `(a*)*$` (the regex crate does not backtrack) and a
    // 400 KB alternation of 60,000 literals (its compiled form fits the
    // limit). Both are accepted, with their snapshots, in bounded time.
    let alternation = (0..60_000)
        .map(|i| format!("x{i}"))
        .collect::<Vec<_>>()
        .join("|");
    let mut accepted = Vec::new();
    for (id, regex, count) in [(1, "(a*)*$".to_string(), 3), (2, alternation, 0)] {
        let took = subscribe_ok(&mut conn, id, regex, count)?;
        accepted.push(took);
    }
    expect_error(&mut conn, subscribe(1, "x".into()), ErrorCode::Conflict)?;
    answered += 1;

    // Bodies a client may not send, and a frame without a body.
    let peer = Peer {
        name: "node-x".into(),
        ..Peer::default()
    };
    for body in [
        Body::Hello(Hello { name: "x".into() }),
        Body::Register(Register { name: "x".into() }),
        Body::Peer(peer),
        Body::UpdTree(UpdTree::default()),
        Body::Lock(Lock::default()),
        Body::UnlockAll(UnlockAll::default()),
        Body::ServiceAdd(ServiceAdd {
            uri: "tcp://sneaky:1".into(),
            origin: "node-x".into(),
            ..ServiceAdd::default()
        }),
        Body::LinkAdd(LinkAdd::default()),
        Body::Ack(Ack { ack_serial: 1 }),
    ] {
        expect_error(&mut conn, body, ErrorCode::UnexpectedMessage)?;
        answered += 1;
    }
    let serial = 999;
    conn.send_raw(&bytes_of(&Frame {
        serial,
        ..Frame::default()
    }))?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::Error(e))
            if e.code() == ErrorCode::BadRequest && e.in_reply_to == Some(serial) => {}
        other => bail!("empty frame: {other:?}"),
    }
    answered += 1;
    // Still usable.
    conn.send(Body::List(List {
        regex: "keep".into(),
    }))?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::ListReply(r)) => ensure!(r.services.len() == 3),
        other => bail!("list after the errors: {other:?}"),
    }
    ensure!(listing(&daemon)? == before, "the table changed");

    // Framing errors: an Error frame, then the node closes.
    let rss_before = alive(&daemon)?;
    let utf8 = invalid_utf8_frames();
    let mut closing = 0;
    for prefix in [0xFFFF_FFFFu32, 0x8000_0000, 4 * 1024 * 1024 + 1, 64 << 20] {
        for _ in 0..25 {
            let codes = one_shot(&daemon, &prefix.to_be_bytes())?;
            ensure!(
                codes == [ErrorCode::FrameTooLarge],
                "length prefix {prefix:#x}: {codes:?}"
            );
            closing += 1;
        }
    }
    for (what, bytes) in &utf8 {
        let codes = one_shot(&daemon, bytes)?;
        ensure!(codes == [ErrorCode::Undecodable], "{what}: {codes:?}");
        closing += 1;
    }
    let garbage = [
        0, 0, 0, 10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    ensure!(one_shot(&daemon, &garbage)? == [ErrorCode::Undecodable]);
    closing += 1;
    let rss_after = alive(&daemon)?;
    ensure!(listing(&daemon)? == before, "the table changed");
    eprintln!(
        "figure: client socket, well-framed invalid requests: {answered} answered with the \
         expected Error on a connection that stays usable; slowest refused regex {slowest:.2?} \
         (1 MiB, 5,000-deep, a{{1000}}{{1000}}, ...); (a*)*$ and a 60,000-way alternation \
         accepted in {accepted:.2?}; {closing} framing errors answered 0x14/0x15 then closed; \
         RSS {rss_before} -> {rss_after} KiB; whole test {:.2?}",
        started.elapsed()
    );
    // 100 prefixes of up to 4 GiB: nothing was reserved for them.
    ensure!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew to {rss_after} KiB"
    );
    Ok(())
}

/// Requests whose string fields hold invalid UTF-8: protobuf refuses the
/// whole frame, so they are framing errors (0x15).
fn invalid_utf8_frames() -> Vec<(&'static str, Vec<u8>)> {
    let register = Frame::new(
        0,
        Body::RegisterService(RegisterService {
            uri: "tcp://utf8.example:1".into(),
            attrs: attrs(&[("key", "value")]),
        }),
    );
    let subscribe = Frame::new(0, subscribe(1, "utf8-regex".into()));
    let list = Frame::new(
        0,
        Body::List(List {
            regex: "utf8-list".into(),
        }),
    );
    let mut out = Vec::new();
    for (what, frame, needle) in [
        (
            "invalid UTF-8 in RegisterService.uri",
            &register,
            &b"utf8.example"[..],
        ),
        ("invalid UTF-8 in an attribute key", &register, b"key"),
        ("invalid UTF-8 in an attribute value", &register, b"value"),
        (
            "invalid UTF-8 in Subscribe.regex",
            &subscribe,
            b"utf8-regex",
        ),
        ("invalid UTF-8 in List.regex", &list, b"utf8-list"),
    ] {
        let mut bytes = bytes_of(frame);
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the field is in the frame");
        // 0xC0 0xAF: an overlong '/', never valid UTF-8.
        bytes[at] = 0xC0;
        bytes[at + 1] = 0xAF;
        out.push((what, bytes));
    }
    out
}

/// Sends `input` on a fresh client connection and returns the error codes
/// the node answered before closing.
fn one_shot(daemon: &Daemon, input: &[u8]) -> Result<Vec<ErrorCode>> {
    let mut stream = UnixStream::connect(&daemon.socket)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    read_frame(&mut stream)?;
    let answer = exchange(stream, input, ANSWER)?;
    Ok(answer.error_codes())
}

#[test]
fn a_registration_flood_stops_at_the_limit_and_leaves_with_its_connection() -> Result<()> {
    const FLOOD: usize = 20_000;
    const LIMIT: usize = 1024;
    let daemon = Daemon::start()?;
    let _keeper = keeper(&daemon)?;
    let before = listing(&daemon)?;
    let stream = UnixStream::connect(&daemon.socket)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    let mut reader = stream.try_clone()?;
    read_frame(&mut reader)?;
    let started = Instant::now();
    let writer = std::thread::spawn(move || -> Result<UnixStream> {
        let mut stream = stream;
        let mut batch = Vec::new();
        for i in 0..FLOOD {
            let frame = Frame::new(
                i as u64,
                Body::RegisterService(RegisterService {
                    uri: format!("tcp://flood:{i}"),
                    attrs: BTreeMap::new(),
                }),
            );
            batch.extend(bytes_of(&frame));
            if batch.len() > 64 * 1024 {
                stream.write_all(&batch)?;
                batch.clear();
            }
        }
        stream.write_all(&batch)?;
        Ok(stream)
    });
    let (mut ok, mut limited) = (0, 0);
    for i in 0..FLOOD {
        let frame = read_frame(&mut reader)?.context("the node closed the flooding connection")?;
        match frame.body {
            Some(Body::Success(s)) if s.in_reply_to == i as u64 => ok += 1,
            Some(Body::Error(e))
                if e.code() == ErrorCode::LimitExceeded && e.in_reply_to == Some(i as u64) =>
            {
                limited += 1
            }
            other => bail!("registration {i}: {other:?}"),
        }
    }
    let took = started.elapsed();
    let stream = writer.join().expect("writer thread")?;
    ensure!(
        ok == LIMIT && limited == FLOOD - LIMIT,
        "{ok} accepted, {limited} refused"
    );
    ensure!(
        listing(&daemon)?.len() == before.len() + LIMIT,
        "the accepted registrations are listed"
    );
    // Subscriptions too, on the same connection.
    let mut stream = stream;
    for id in 0..1000u64 {
        write_frame(
            &mut stream,
            &Frame::new(FLOOD as u64 + id, subscribe(id, "^nothing$".into())),
        )?;
    }
    let (mut subs, mut refused) = (0, 0);
    while subs + refused < 1000 {
        match read_frame(&mut reader)?.and_then(|f| f.body) {
            Some(Body::Success(_)) => subs += 1,
            Some(Body::SnapshotEnd(_)) => {}
            Some(Body::Error(e)) if e.code() == ErrorCode::LimitExceeded => refused += 1,
            other => bail!("subscription flood: {other:?}"),
        }
    }
    ensure!(
        subs == 64 && refused == 936,
        "{subs} subscriptions, {refused} refused"
    );
    drop(stream);
    drop(reader);
    wait_listing(&daemon, &before)?;
    alive(&daemon)?;
    eprintln!(
        "figure: client socket, registration flood: {FLOOD} registrations from one connection \
         in {took:.2?}: {ok} accepted (the limit), {limited} refused with 0x13; 1000 \
         subscriptions: {subs} accepted, {refused} refused; all gone with the connection"
    );
    Ok(())
}

// ------------------------------------------------------------- peer port

/// The node under test, and the peer it knows.
const NODE: &str = "node-under-test";
const PEER: &str = "node-b";

/// A node with TLS that knows peer `node-b` (accepting only).
fn tls_node(ca: &TestCa) -> Result<Daemon> {
    Daemon::builder()
        .tls(&ca.node(NODE)?)
        .peer(PEER, "")
        .start()
}

#[test]
fn the_peer_port_survives_bad_input_before_the_handshake() -> Result<()> {
    peer_port_fuzz(2000)
}

fn peer_port_fuzz(inputs: usize) -> Result<()> {
    let ca = TestCa::new("bad-input-ca")?;
    let daemon = tls_node(&ca)?;
    let _keeper = keeper(&daemon)?;
    let before = listing(&daemon)?;

    // Well framed but refused: each gets its Error.
    let mut other_env = peer_frame(PEER);
    let mut other_major = peer_frame(PEER);
    let mut other_cluster = peer_frame(PEER);
    if let Some(Body::Peer(p)) = &mut other_env.body {
        p.environment = "staging".into();
    }
    if let Some(Body::Peer(p)) = &mut other_major.body {
        p.protocol_major += 1;
    }
    if let Some(Body::Peer(p)) = &mut other_cluster.body {
        p.cluster = "elsewhere".into();
    }
    for (what, frame, code) in [
        (
            "another environment",
            other_env,
            ErrorCode::EnvironmentMismatch,
        ),
        ("another major", other_major, ErrorCode::VersionMismatch),
        (
            "another cluster",
            other_cluster,
            ErrorCode::ServerAuthFailed,
        ),
        (
            "an unknown name",
            peer_frame("node-x"),
            ErrorCode::ServerAuthFailed,
        ),
        (
            "a Hello instead of Peer",
            Frame::new(0, Body::Hello(Hello { name: PEER.into() })),
            ErrorCode::UnexpectedMessage,
        ),
        (
            "an empty frame",
            Frame::default(),
            ErrorCode::UnexpectedMessage,
        ),
    ] {
        let answer = exchange(peer_connect(&daemon)?, &bytes_of(&frame), ANSWER)?;
        ensure!(answer.error_codes() == [code], "{what}: {answer:?}");
    }
    // Framing errors are answered too (PROTOCOL.md §1), then closed.
    let garbage = [0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF];
    for (what, input, code) in [
        ("a 4 GiB prefix", &[0xFF; 4][..], ErrorCode::FrameTooLarge),
        ("an undecodable body", &garbage[..], ErrorCode::Undecodable),
    ] {
        let answer = exchange(peer_connect(&daemon)?, input, ANSWER)?;
        ensure!(answer.error_codes() == [code], "{what}: {answer:?}");
    }

    let seed = seed();
    let mut rng = Rng::new(seed);
    let corpus: Vec<Vec<u8>> = [
        peer_frame(PEER),
        peer_frame("node-x"),
        Frame::new(0, Body::Hello(Hello { name: PEER.into() })),
        Frame::new(0, Body::List(List::default())),
    ]
    .iter()
    .map(bytes_of)
    .collect();
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..inputs {
        let input = client_input(&mut rng, &corpus);
        let answer = exchange(peer_connect(&daemon)?, &input, ANSWER)
            .with_context(|| format!("input {n} (seed {seed}): {input:02x?}"))?;
        tally.add(&answer);
        if n % 500 == 499 {
            alive(&daemon)?;
        }
    }
    let took = started.elapsed();
    tally.print("peer port before the handshake", seed, took);
    // Still takes a well-formed Peer.
    peer_handshake(&daemon, PEER)?;
    wait_listing(&daemon, &before)?;
    ensure!(tally.errors > 0, "no Error frames at all");
    Ok(())
}

#[test]
fn truncated_and_mangled_tls_handshakes_are_dropped() -> Result<()> {
    let ca = TestCa::new("bad-input-ca")?;
    let daemon = tls_node(&ca)?;
    let _keeper = keeper(&daemon)?;
    let before = listing(&daemon)?;
    let peer_files = ca.node(PEER)?;
    let hello = client_hello(&peer_files, NODE)?;
    let seed = seed();
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut inputs = 0;
    // Every cut of the ClientHello, then mangled whole ones.
    for cut in 0..hello.len() {
        let answer = exchange(peer_handshake(&daemon, PEER)?, &hello[..cut], ANSWER)
            .with_context(|| format!("ClientHello cut at {cut}"))?;
        ensure!(answer.frames.is_empty(), "cut at {cut}: {answer:?}");
        inputs += 1;
    }
    for n in 0..300 {
        let input = mutate(&mut rng, &hello);
        exchange(peer_handshake(&daemon, PEER)?, &input, ANSWER)
            .with_context(|| format!("mangled ClientHello {n} (seed {seed})"))?;
        inputs += 1;
    }
    let took = started.elapsed();
    alive(&daemon)?;
    // A real TLS peer still gets through and reaches the sync session.
    let mut tls = tls_session(&daemon, PEER, &peer_files, NODE)?;
    write_frame(
        &mut tls,
        &Frame::new(1, Body::Hello(Hello { name: PEER.into() })),
    )?;
    match read_frame(&mut tls)?.and_then(|f| f.body) {
        Some(Body::SyncWelcome(w)) => ensure!(w.to_name == PEER),
        other => bail!("expected SyncWelcome over TLS, got {other:?}"),
    }
    drop(tls);
    wait_listing(&daemon, &before)?;
    eprintln!(
        "figure: peer port, TLS: {inputs} cut or mangled ClientHellos ({} bytes long) in \
         {took:.2?}, each dropped without a frame; a real TLS peer then got through; seed {seed}",
        hello.len()
    );
    Ok(())
}

/// Session frames a peer sends after the handshake, none of which adds a
/// service that could pass (their URIs are too long): the seeds of the
/// mutations.
fn session_corpus() -> Vec<Vec<u8>> {
    let long = format!("tcp://{}:1", "x".repeat(3000));
    let ts = Some(Timestamp {
        physical_ms: 1,
        logical: 0,
    });
    let bodies = [
        Body::UpdTree(UpdTree::default()),
        Body::Lock(Lock {
            batch: 1,
            services: vec![long.clone()],
            links: vec![LinkKey {
                a: PEER.into(),
                b: "node-z".into(),
            }],
            ..Lock::default()
        }),
        Body::ServiceAdd(ServiceAdd {
            uri: long,
            attrs: BTreeMap::new(),
            origin: PEER.into(),
            ts,
        }),
        Body::UnlockAll(UnlockAll {
            batch: 1,
            entries: 1,
        }),
        Body::Ack(Ack { ack_serial: 2 }),
        Body::Register(Register { name: PEER.into() }),
    ];
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| bytes_of(&Frame::new(3 + i as u64, body)))
        .collect()
}

#[test]
fn a_peer_session_survives_bad_frames_after_the_handshake() -> Result<()> {
    peer_session_fuzz(1000, 150)
}

fn peer_session_fuzz(plain_inputs: usize, tls_inputs: usize) -> Result<()> {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let corpus = session_corpus();
    let input = |rng: &mut Rng| {
        let mut input = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let seed: &Vec<u8> = rng.pick(&corpus);
            input.extend_from_slice(seed);
        }
        if rng.one_in(5) {
            let n = rng.below(64);
            return random_bytes(rng, n);
        }
        mutate(rng, &input)
    };

    // Plaintext links (debug mode): many inputs, cheaply.
    let plain = Daemon::builder().arg("--debug").peer(PEER, "").start()?;
    let _keeper = keeper(&plain)?;
    let before = listing(&plain)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..plain_inputs {
        let mut stream = peer_handshake(&plain, PEER)?;
        start_session(&mut stream, PEER)?;
        let bytes = input(&mut rng);
        let answer = exchange(stream, &bytes, ANSWER)
            .with_context(|| format!("input {n} (seed {seed}): {bytes:02x?}"))?;
        ensure!(
            answer.trailing == 0 || answer.reset,
            "input {n}: {answer:?}"
        );
        tally.add(&answer);
    }
    let took = started.elapsed();
    alive(&plain)?;
    wait_listing(&plain, &before)?;
    tally.print(
        "peer session after the handshake (plaintext links)",
        seed,
        took,
    );
    ensure!(tally.errors > 0, "no Error frames at all");

    // Real TLS links: fewer inputs, each after a full handshake.
    let ca = TestCa::new("bad-input-ca")?;
    let daemon = tls_node(&ca)?;
    let _keeper = keeper(&daemon)?;
    let before = listing(&daemon)?;
    let files = ca.node(PEER)?;
    let mut tally = Tally::default();
    let started = Instant::now();
    for n in 0..tls_inputs {
        let mut tls = tls_session(&daemon, PEER, &files, NODE)?;
        start_session(&mut tls, PEER)?;
        let bytes = input(&mut rng);
        let answer = exchange(tls, &bytes, ANSWER)
            .with_context(|| format!("TLS input {n} (seed {seed}): {bytes:02x?}"))?;
        tally.add(&answer);
    }
    let took = started.elapsed();
    alive(&daemon)?;
    wait_listing(&daemon, &before)?;
    tally.print("peer session after the handshake (TLS links)", seed, took);
    Ok(())
}

// -------------------------------------------------------------- xlReg port

/// A node hosting the registry; returns it and the registry's address.
/// Every input comes from one source, thousands of connections in seconds:
/// the per-source bounds (tested in `xlreg_hostile.rs`) are lifted.
fn registry() -> Result<(Daemon, String)> {
    let mut daemon = Daemon::builder()
        .set("xlreg.serve", "true")
        .set("xlreg.listen", "127.0.0.1:0")
        .set("xlreg.sessions_per_source", "0")
        .set("xlreg.max_connections_per_source", "0")
        .start()?;
    let line = daemon.wait_log(DEADLINE, |l| l["message"] == "xlReg registry listening")?;
    let address = line["address"].as_str().context("address")?.to_string();
    Ok((daemon, address))
}

fn xl(op: Tag) -> XlRegMsg {
    XlRegMsg {
        op: Some(op as i32),
        ..XlRegMsg::default()
    }
}

/// Requests the registry must refuse with an `Error` (and close).
fn refused_requests() -> Vec<(&'static str, XlRegMsg)> {
    let mut short_salt = xl(Tag::Client);
    short_salt.salt1 = Some(vec![1, 2, 3]);
    let mut join = xl(Tag::Join);
    join.cluster_name = Some("nowhere".into());
    let mut create = xl(Tag::Create);
    create.cluster_name = Some("c".into());
    create.cluster_size = Some(3);
    create.end_point_count = Some(1);
    let mut bad_token = xl(Tag::Client);
    bad_token.client_name = Some("mallory".into());
    bad_token.dig_sig = Some(vec![0; 256]);
    vec![
        ("no op", XlRegMsg::default()),
        (
            "an unknown op",
            XlRegMsg {
                op: Some(99),
                ..XlRegMsg::default()
            },
        ),
        ("a reply op", xl(Tag::ClientOk)),
        ("RegCredRequest", xl(Tag::RegCredRequest)),
        ("a short Salt1", short_salt),
        ("Create before Client", create),
        ("Join before Client", join),
        ("GetCluster before Client", xl(Tag::GetCluster)),
        ("Client without a token", xl(Tag::Client)),
        ("Client with a bad signature", bad_token),
    ]
}

#[test]
fn the_xlreg_port_survives_bad_input_before_and_after_the_handshake() -> Result<()> {
    xlreg_fuzz(1000, 1000)
}

fn xlreg_fuzz(raw_inputs: usize, session_inputs: usize) -> Result<()> {
    let (daemon, address) = registry()?;
    let log = daemon.dir().join("xlreg/registry.log");
    let log_before = std::fs::read(&log)?;
    let seed = seed();
    let mut rng = Rng::new(seed);

    // Before the handshake: garbage and mangled Hellos; the registry
    // closes without a word.
    let key = PublicKey::from_pem(&std::fs::read(daemon.dir().join("xlreg/registry.pub"))?)?;
    let started = Instant::now();
    let mut replied_to_intact = 0;
    for n in 0..raw_inputs {
        // The registry reads exactly one modulus (256 bytes); a mutation
        // that leaves those intact is a valid Hello followed by garbage.
        let (input, intact) = if rng.one_in(2) {
            let any = rng.below(1024);
            let len = *rng.pick(&[0, 1, 60, 255, 256, 257, 512, any]);
            (random_bytes(&mut rng, len), false)
        } else {
            let sealed = XlHello::new(Version::V2)?.seal(&key)?;
            let input = mutate(&mut rng, &sealed);
            let intact = input.get(..sealed.len()) == Some(&sealed[..]);
            (input, intact)
        };
        let stream = TcpStream::connect(&address)?;
        stream.set_read_timeout(Some(DEADLINE))?;
        let answer = exchange(stream, &input, ANSWER)
            .with_context(|| format!("raw input {n} (seed {seed}): {input:02x?}"))?;
        let replied = answer.trailing > 0 || !answer.frames.is_empty();
        if intact {
            replied_to_intact += usize::from(replied);
        } else {
            ensure!(
                !replied,
                "raw input {n} (seed {seed}): the registry answered a bad Hello: {input:02x?}"
            );
        }
    }
    let raw_took = started.elapsed();

    // Refused requests, each on its own session: an Error each.
    for (what, msg) in refused_requests() {
        let mut probe = XlregProbe::connect(&address, daemon.dir(), Version::V2)?;
        let bytes = probe.seal(&msg.encode_to_vec())?;
        let (msgs, _) = probe.exchange(&bytes, ANSWER)?;
        ensure!(
            msgs.len() == 1 && msgs[0].op == Some(Tag::Error as i32) && msgs[0].err_desc.is_some(),
            "{what}: {msgs:?}"
        );
    }

    // Length prefixes over the 64 KiB limit, or impossible for the
    // version: closed without a reply, before any body is read.
    for (version, prefix) in [
        (Version::V2, 0xFFFF_FFFFu32),
        (Version::V2, 65_537),
        (Version::V2, 47),
        (Version::V1, 15),
    ] {
        let probe = XlregProbe::connect(&address, daemon.dir(), version)?;
        let (msgs, leftover) = probe.exchange(&prefix.to_be_bytes(), ANSWER)?;
        ensure!(msgs.is_empty() && !leftover, "prefix {prefix}: {msgs:?}");
    }

    // After the handshake: raw bytes, sealed garbage, sealed mutations of
    // the requests above, in both session versions.
    let seeds: Vec<Vec<u8>> = refused_requests()
        .into_iter()
        .map(|(_, m)| m.encode_to_vec())
        .collect();
    let (mut errors, mut silent, mut sessions) = (0, 0, 0);
    let started = Instant::now();
    for n in 0..session_inputs {
        let version = if rng.one_in(4) {
            Version::V1
        } else {
            Version::V2
        };
        let mut probe = XlregProbe::connect(&address, daemon.dir(), version)?;
        sessions += 1;
        let bytes = match rng.below(4) {
            0 => {
                let len = rng.below(200);
                random_bytes(&mut rng, len)
            }
            1 => {
                let len = rng.below(200);
                let plain = random_bytes(&mut rng, len);
                probe.seal(&plain)?
            }
            2 => {
                let i = rng.below(seeds.len());
                let plain = mutate(&mut rng, &seeds[i]);
                probe.seal(&plain)?
            }
            _ => {
                let plain = random_msg(&mut rng).encode_to_vec();
                probe.seal(&plain)?
            }
        };
        let (msgs, _) = probe
            .exchange(&bytes, ANSWER)
            .with_context(|| format!("session input {n} (seed {seed})"))?;
        ensure!(
            msgs.iter().all(|m| matches!(
                m.op.and_then(|op| Tag::try_from(op).ok()),
                Some(Tag::Error | Tag::Ack)
            )),
            "session input {n}: {msgs:?}"
        );
        if msgs.is_empty() {
            silent += 1;
        } else {
            errors += 1;
        }
    }
    let session_took = started.elapsed();

    // Still serves a well-formed session, and nothing was stored.
    let mut probe = XlregProbe::connect(&address, daemon.dir(), Version::V2)?;
    let bye = probe.seal(&xl(Tag::Bye).encode_to_vec())?;
    let (msgs, _) = probe.exchange(&bye, ANSWER)?;
    ensure!(
        msgs.len() == 1 && msgs[0].op == Some(Tag::Ack as i32),
        "Bye: {msgs:?}"
    );
    ensure!(
        std::fs::read(&log)? == log_before,
        "the registry log changed"
    );
    alive(&daemon)?;
    eprintln!(
        "figure: xlReg port: {raw_inputs} bad Hellos in {raw_took:.2?}, all closed without a \
         reply (except {replied_to_intact} whose first 256 bytes were a valid Hello); {sessions} bad session inputs after a real handshake in {session_took:.2?}: \
         {errors} answered with Error/Ack, {silent} closed silently; {} refused requests each \
         answered with Error; 4 bad length prefixes closed silently; registry log unchanged; seed {seed}",
        refused_requests().len()
    );
    ensure!(errors > 0, "no session input reached the request rules");
    Ok(())
}

/// Ten times the inputs on every port. Run with `cargo build --bin
/// catalogue && cargo test -p catalogue-integration-tests --test bad_input
/// -- --ignored --nocapture` (add `CATALOGUE_TEST_SEED=N` to replay).
#[test]
#[ignore = "big variant: minutes in a debug build"]
fn ten_times_the_inputs_on_every_port() -> Result<()> {
    client_socket_fuzz(30_000)?;
    peer_port_fuzz(20_000)?;
    peer_session_fuzz(10_000, 1500)?;
    xlreg_fuzz(10_000, 10_000)
}
