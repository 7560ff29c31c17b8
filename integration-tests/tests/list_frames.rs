//! `list` of a table larger than one frame: the node answers a `List` that
//! asks for it (`stream`, as the client library and `catalogue list` do) in
//! several `ListReply` frames that each fit `limits.max_frame_bytes`, the
//! last one not marked `more`; a `List` that does not ask is still refused
//! with 0x13, as before.

use anyhow::{Result, bail, ensure};
use catalogue::client::{Client, ConnectOptions};
use catalogue_integration_tests::{Cli, Cluster, Conn, DEADLINE, Registrar, runtime, uris};
use catalogue_proto::{
    Body,
    catalogue::{ErrorCode, List},
};
use prost::Message as _;

/// The frame limit of the node under test.
const MAX_FRAME: usize = 16 * 1024;
/// Services registered: about ten frames' worth.
const SERVICES: usize = 2500;

#[test]
fn a_table_larger_than_a_frame_is_listed_in_frames() -> Result<()> {
    let cluster = Cluster::builder(1)
        .set("limits.max_frame_bytes", &MAX_FRAME.to_string())
        .set("limits.handshake_frame_bytes", &MAX_FRAME.to_string())
        .set("limits.registrations_per_connection", "4096")
        .start()?;
    let registered = uris("listed", SERVICES);
    let registrar = cluster.registrar(0)?;
    registrar.register_all(&registered)?;
    let mut expected = registered.clone();
    expected.sort();

    // Not asking for frames: refused as before.
    let mut conn = Conn::unix(cluster.socket(0))?;
    conn.recv()?;
    let serial = conn.send(Body::List(List {
        regex: String::new(),
        stream: false,
    }))?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::Error(e)) => {
            ensure!(e.code() == ErrorCode::LimitExceeded, "{e:?}");
            ensure!(e.in_reply_to == Some(serial));
        }
        other => bail!("expected 0x13, got {other:?}"),
    }

    // Asking for frames: every service, in frames that each fit.
    let serial = conn.send(Body::List(List {
        regex: String::new(),
        stream: true,
    }))?;
    let mut listed = Vec::new();
    let mut frames = 0;
    loop {
        let Some(frame) = conn.recv()? else {
            bail!("connection closed after {frames} frames");
        };
        let len = frame.encoded_len();
        ensure!(len <= MAX_FRAME, "frame {frames} has {len} bytes");
        let Some(Body::ListReply(reply)) = frame.body else {
            bail!("expected ListReply, got {:?}", frame.body);
        };
        ensure!(reply.in_reply_to == serial);
        frames += 1;
        listed.extend(reply.services.into_iter().map(|s| s.uri));
        if !reply.more {
            break;
        }
    }
    ensure!(frames > 5, "{frames} frames");
    ensure!(listed == expected, "{} services listed", listed.len());
    eprintln!("figure: {SERVICES} services listed in {frames} frames of at most {MAX_FRAME} bytes");

    // The client library and the command put the frames together.
    let options = cluster.client_options(0);
    let from_library = runtime()?.block_on(async {
        let client = Client::connect(&ConnectOptions {
            max_frame: MAX_FRAME,
            ..options.clone()
        })
        .await?;
        client.list("").await
    })?;
    ensure!(from_library.len() == SERVICES, "{}", from_library.len());
    let socket = cluster.socket(0).display().to_string();
    let out = Cli::new(["list", "--socket", &socket]).output(DEADLINE)?;
    ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
    ensure!(out.stdout.lines().count() == SERVICES, "{}", out.stderr);
    Ok(())
}

/// The full-scale case: 200,000 services (about 13 MB on the wire) listed
/// with the default 4 MiB frame limit, through the client library and
/// `catalogue list` (about 10 s in a debug build, most of it registering).
#[test]
fn two_hundred_thousand_services_are_listed() -> Result<()> {
    const TOTAL: usize = 200_000;
    const LANES: usize = 8;
    let cluster = Cluster::builder(1)
        .set("limits.registrations_per_connection", "1000000")
        .start()?;
    let registered = uris("big", TOTAL);
    let options = cluster.client_options(0);
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        let lanes: Vec<_> = (0..LANES)
            .map(|lane| {
                let (options, registered) = (&options, &registered);
                scope.spawn(move || -> Result<Registrar> {
                    let registrar = Registrar::connect(options)?;
                    for uri in registered.iter().skip(lane).step_by(LANES) {
                        registrar.register(uri)?;
                    }
                    Ok(registrar)
                })
            })
            .collect();
        // The registrars stay alive (holding the services) until the end
        // of the scope's caller; collect them.
        lanes
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("lane panicked"))?)
            .collect::<Result<Vec<_>>>()
    })
    .and_then(|registrars| {
        eprintln!(
            "figure: {TOTAL} services registered in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let listed_at = std::time::Instant::now();
        let from_library = runtime()?.block_on(async {
            Client::connect(&cluster.client_options(0))
                .await?
                .list("")
                .await
        })?;
        ensure!(from_library.len() == TOTAL, "{}", from_library.len());
        eprintln!(
            "figure: {TOTAL} services listed by the client library in {:.2} s",
            listed_at.elapsed().as_secs_f64()
        );
        let socket = cluster.socket(0).display().to_string();
        let out = Cli::new(["list", "--socket", &socket]).output(DEADLINE * 6)?;
        ensure!(out.code == 0, "exit {}: {}", out.code, out.stderr);
        ensure!(out.stdout.lines().count() == TOTAL, "{}", out.stderr);
        drop(registrars);
        Ok(())
    })
}
