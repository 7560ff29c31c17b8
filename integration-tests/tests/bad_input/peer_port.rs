//! Bad input on the peer port: before the handshake, cut and mangled TLS
//! handshakes, and bad session frames after it (plaintext and TLS).

use super::*;

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

pub(super) fn peer_port_fuzz(inputs: usize) -> Result<()> {
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

pub(super) fn peer_session_fuzz(plain_inputs: usize, tls_inputs: usize) -> Result<()> {
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
