//! Bad input on the xlReg port: raw bytes before the handshake and sealed
//! requests the registry must refuse after it.

use super::*;

/// A node hosting the registry; returns it and the registry's address.
/// Every input comes from one source, thousands of connections in seconds:
/// the per-source bounds (tested in `xlreg_hostile.rs`) are lifted.
fn registry() -> Result<(Daemon, String)> {
    let mut daemon = Daemon::builder()
        .xlreg_registry()
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

pub(super) fn xlreg_fuzz(raw_inputs: usize, session_inputs: usize) -> Result<()> {
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
