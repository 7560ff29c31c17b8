//! Hostile load, memory (issue 14, item 1): connections that announce 4 MiB
//! frames, send part and stall, on the client socket, the client TCP port,
//! the peer port before any authentication and on established peer links;
//! and floods of subscriptions with costly regexes. The node's memory must
//! stay within its configured bounds, stalled connections must be closed at
//! the frame deadline, and the node must keep answering.
//!
//! Figures are printed on stderr with the prefix `figure:`; see
//! docs/RELIABILITY.md, "Hostile load".

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use catalogue_integration_tests::{
    Conn, DEADLINE, Daemon, DaemonBuilder,
    bad_input::listing,
    hostile::{
        CloseWatch, Closed, Flood, RssSampler, Target, metrics_address, stall,
        subscribe_until_refused,
    },
    scrape,
};
use catalogue_proto::{
    Body,
    catalogue::{ErrorCode, RegisterService},
};

const MIB: usize = 1 << 20;

/// Largest frame accepted by default, as the attacker announced it.
const ANNOUNCED: u32 = 4 * 1024 * 1024;

/// How the node's memory moved over an attack.
struct Memory {
    before_kib: u64,
    peak_kib: u64,
    after_kib: u64,
}

impl Memory {
    fn grown_mib(&self) -> f64 {
        self.peak_kib.saturating_sub(self.before_kib) as f64 / 1024.0
    }

    fn describe(&self) -> String {
        format!(
            "daemon RSS {} KiB before, {} KiB peak (+{:.1} MiB), {} KiB after",
            self.before_kib,
            self.peak_kib,
            self.grown_mib(),
            self.after_kib
        )
    }
}

/// One group of stalled connections: where, how many, how much of the
/// announced frame each sends.
struct Wave {
    target: Target,
    count: usize,
    announce: u32,
    send: usize,
}

/// What came of a wave.
#[derive(Default)]
struct Outcome {
    /// By reason: "frame_timeout", "input_budget", "frame_too_large",
    /// "other".
    reasons: BTreeMap<&'static str, usize>,
    /// Slowest close, from the frame's first byte.
    slowest: Duration,
    /// Quickest close among those closed for the deadline.
    quickest_timeout: Option<Duration>,
}

fn reason_of(closed: &Closed) -> &'static str {
    match closed.code() {
        Some(ErrorCode::LimitExceeded) if closed.says("limits.frame_read_timeout") => {
            "frame_timeout"
        }
        Some(ErrorCode::LimitExceeded) if closed.says("limits.input_buffer_bytes") => {
            "input_budget"
        }
        Some(ErrorCode::FrameTooLarge) => "frame_too_large",
        _ => "other",
    }
}

/// Runs the waves (every connection opened and fed, then every one waited
/// on), sampling the node's RSS; checks the node answers a `List` while
/// the connections are stalled and after.
fn attack(
    daemon: &Daemon,
    waves: &[Wave],
    close_within: Duration,
) -> Result<(Vec<Outcome>, Memory)> {
    let expected = listing(daemon)?;
    let before_kib = daemon.rss_kib()?;
    let sampler = RssSampler::start(daemon.pid(), Duration::from_millis(10));
    let opened = Instant::now();
    let mut watch = CloseWatch::start(close_within)?;
    let mut wave_of = Vec::new();
    for (w, wave) in waves.iter().enumerate() {
        for _ in 0..wave.count {
            watch.add(stall(daemon, &wave.target, wave.announce, wave.send)?)?;
            wave_of.push(w);
        }
    }
    let fed = opened.elapsed();
    ensure!(
        listing(daemon)? == expected,
        "the node answers a List while the connections stall"
    );
    let closes = watch.finish();
    let peak_kib = sampler.peak_kib()?;
    let memory = Memory {
        before_kib,
        peak_kib,
        after_kib: daemon.rss_kib()?,
    };
    // Printed before anything is checked, so a failing run still says
    // what the node held.
    eprintln!("figure: hostile memory: {}", memory.describe());
    let closes = closes?;
    eprintln!(
        "figure: hostile memory: {} connections opened and fed in {fed:.2?}, all closed {:.2?} after the first opened",
        waves.iter().map(|w| w.count).sum::<usize>(),
        opened.elapsed()
    );
    let mut outcomes: Vec<Outcome> = waves.iter().map(|_| Outcome::default()).collect();
    for (w, closed) in wave_of.into_iter().zip(closes) {
        let reason = reason_of(&closed);
        let o = &mut outcomes[w];
        *o.reasons.entry(reason).or_default() += 1;
        o.slowest = o.slowest.max(closed.after);
        if reason == "frame_timeout" {
            o.quickest_timeout = Some(
                o.quickest_timeout
                    .map_or(closed.after, |q| q.min(closed.after)),
            );
        }
    }
    ensure!(
        listing(daemon)? == expected,
        "the node answers a List after the attack"
    );
    Ok((outcomes, memory))
}

fn print_outcomes(waves: &[Wave], outcomes: &[Outcome]) {
    for (wave, o) in waves.iter().zip(outcomes) {
        eprintln!(
            "figure: hostile memory: {} x {} announcing {} B, sending {} B: closed {:?}, slowest {:.2?}, first deadline close {:.2?}",
            wave.count,
            wave.target.label(),
            wave.announce,
            wave.send,
            o.reasons,
            o.slowest,
            o.quickest_timeout.unwrap_or_default()
        );
    }
}

/// A debug node (plaintext peer links) that knows peers `p1`..`pN`, with
/// its metrics endpoint on.
fn node(peers: usize) -> DaemonBuilder {
    let mut builder = Daemon::builder().arg("--debug").metrics();
    for i in 1..=peers {
        builder = builder.peer(&format!("p{i}"), "");
    }
    builder
}

fn metric(metrics: &BTreeMap<String, f64>, key: &str) -> f64 {
    metrics.get(key).copied().unwrap_or(0.0)
}

#[test]
fn stalled_frames_hold_little_and_are_closed_at_the_frame_deadline() -> Result<()> {
    // Before the fix: no frame deadline, so no connection below was ever
    // closed (the close watch failed), and the node held every byte sent
    // (about 163 MiB here); the peer port waited for 4 MiB frames.
    let timeout = Duration::from_secs(1);
    let budget = 32 * MIB;
    let mut daemon = node(5)
        .set("limits.frame_read_timeout", "1s")
        .set("limits.input_buffer_bytes", &budget.to_string())
        // The handshake caps (tested in hostile_work) would refuse most
        // of these waves before they could test the memory bounds.
        .set("limits.handshakes_in_progress", "1000")
        .set("limits.handshakes_in_progress_per_address", "1000")
        .start()?;
    let metrics = metrics_address(&mut daemon)?;
    // In this order: the links and the TCP connections fit in the budget
    // and wait for the deadline; the UNIX connections fill the rest of it,
    // and those past it are closed at once.
    let waves = [
        Wave {
            target: Target::PeerLink("p1".into()),
            count: 1,
            announce: ANNOUNCED,
            send: MIB,
        },
        Wave {
            target: Target::PeerLink("p2".into()),
            count: 1,
            announce: ANNOUNCED,
            send: MIB,
        },
        Wave {
            target: Target::Tcp,
            count: 10,
            announce: ANNOUNCED,
            send: MIB,
        },
        Wave {
            target: Target::PeerHandshake,
            count: 20,
            announce: 60_000,
            send: 30_000,
        },
        Wave {
            target: Target::PeerHandshake,
            count: 50,
            announce: ANNOUNCED,
            send: MIB,
        },
        Wave {
            target: Target::Unix,
            count: 100,
            announce: ANNOUNCED,
            send: MIB,
        },
    ];
    let (outcomes, memory) = attack(&daemon, &waves, timeout + DEADLINE)?;
    print_outcomes(&waves, &outcomes);
    eprintln!(
        "figure: hostile memory: budget {} MiB, frame deadline {timeout:?}",
        budget / MIB
    );

    for (wave, o) in waves.iter().zip(&outcomes) {
        let label = wave.target.label();
        let count = |r: &str| o.reasons.get(r).copied().unwrap_or(0);
        match (&wave.target, wave.announce) {
            // Before authentication, a 4 MiB announcement is refused at
            // once (limits.handshake_frame_bytes).
            (Target::PeerHandshake, ANNOUNCED) => {
                ensure!(
                    count("frame_too_large") == wave.count,
                    "{label}: {:?}",
                    o.reasons
                );
                ensure!(
                    o.slowest < timeout,
                    "{label}: refused at once, slowest {:?}",
                    o.slowest
                );
            }
            // The UNIX connections: the budget closes those past it at
            // once, the deadline the others.
            (Target::Unix, _) => ensure!(
                count("frame_timeout") + count("input_budget") == wave.count
                    && count("frame_timeout") > 0
                    && count("input_budget") > 0,
                "{label}: {:?}",
                o.reasons
            ),
            // Within the budget: the deadline.
            _ => ensure!(
                count("frame_timeout") == wave.count,
                "{label}: {:?}",
                o.reasons
            ),
        }
        if let Some(quickest) = o.quickest_timeout {
            ensure!(
                quickest >= timeout,
                "{label}: closed for the deadline after {quickest:?}, before it"
            );
        }
    }
    // The budget bounds what partial frames hold: 32 MiB, plus one read
    // past it, plus the allocator's slack. Without it: 163 MiB.
    ensure!(
        memory.grown_mib() < 60.0,
        "the node grew by more than 60 MiB: {}",
        memory.describe()
    );

    let m = scrape(&metrics)?;
    ensure!(
        metric(&m, "catalogue_input_buffered_bytes{}") == 0.0,
        "nothing buffered once all are closed"
    );
    let closes = |listener: &str, reason: &str| {
        metric(
            &m,
            &format!(
                "catalogue_input_closed_connections_total{{listener={listener},reason={reason}}}"
            ),
        ) as usize
    };
    let unix = closes("unix", "frame_timeout") + closes("unix", "input_budget");
    let peer_refused = closes("peer", "frame_too_large");
    ensure!(unix == 100, "unix closes counted: {unix}");
    ensure!(
        peer_refused == 50,
        "peer frames refused counted: {peer_refused}"
    );
    ensure!(
        closes("peer", "frame_timeout") == 22,
        "peer deadline closes counted"
    );
    Ok(())
}

/// Subscriptions whose regexes start with a Unicode class (no literal
/// prefix, about 100 KiB each once matching): the report's flood.
fn costly(conn: usize, n: usize) -> impl Iterator<Item = String> {
    (0..n).map(move |i| format!(r"\w+-{conn}-{i}"))
}

/// Cheap regexes without a literal prefix.
fn cheap(conn: usize, n: usize) -> impl Iterator<Item = String> {
    (0..n).map(move |i| format!(r"\d+x{conn}-{i}"))
}

/// Floods `conns` connections of `daemon` (UNIX or TCP) with `per_conn`
/// subscriptions each (each connection stopping at its first refusal when
/// `stop_at_refusal`); returns the connections (they hold what was
/// accepted) and what all of them got.
fn flood(
    daemon: &Daemon,
    tcp: bool,
    conns: usize,
    per_conn: usize,
    regexes: fn(usize, usize) -> Box<dyn Iterator<Item = String>>,
    stop_at_refusal: bool,
) -> Result<(Vec<Conn>, Flood)> {
    let mut open = Vec::new();
    let mut all = Flood::default();
    for c in 0..conns {
        let mut conn = if tcp {
            Conn::tcp(&daemon.client)?
        } else {
            Conn::unix(&daemon.socket)?
        };
        conn.recv()?;
        let f = subscribe_until_refused(&mut conn, regexes(c, per_conn), stop_at_refusal)?;
        all.accepted += f.accepted;
        all.refused.extend(f.refused);
        open.push(conn);
    }
    Ok((open, all))
}

fn boxed_cheap(c: usize, n: usize) -> Box<dyn Iterator<Item = String>> {
    Box::new(cheap(c, n))
}

/// [`cheap`] regexes no UNIX connection of these tests uses: identical
/// patterns share one compiled form and its regex charge, so patterns
/// shared between the transports would stay charged after one side closes.
fn boxed_cheap_tcp(c: usize, n: usize) -> Box<dyn Iterator<Item = String>> {
    Box::new(cheap(c + 100, n))
}

fn boxed_costly(c: usize, n: usize) -> Box<dyn Iterator<Item = String>> {
    Box::new(costly(c, n))
}

fn all_say(refused: &[(ErrorCode, String)], key: &str) -> Result<()> {
    for (code, message) in refused {
        ensure!(
            *code == ErrorCode::LimitExceeded && message.contains(key),
            "expected 0x13 naming {key}, got {} {message}",
            code.hex()
        );
    }
    Ok(())
}

/// The node's estimate of its subscriptions' regex memory, from /metrics.
fn regex_bytes(metrics: &str) -> Result<usize> {
    Ok(metric(&scrape(metrics)?, "catalogue_subscription_regex_bytes{}") as usize)
}

#[test]
fn subscriptions_are_capped_per_uid_per_node_and_per_address() -> Result<()> {
    // Before the fix only limits.subscriptions_per_connection (64) held:
    // every subscription below was accepted.
    let mut daemon = node(0)
        .set("limits.subscriptions_per_uid", "150")
        .set("limits.subscriptions_total", "200")
        .set("limits.subscriptions_per_address", "120")
        .start()?;
    let metrics = metrics_address(&mut daemon)?;

    // UNIX, one uid: 192 asked, 150 per uid.
    let (unix, Flood { accepted, refused }) = flood(&daemon, false, 3, 64, boxed_cheap, false)?;
    ensure!(
        accepted == 150 && refused.len() == 42,
        "unix: {accepted} accepted"
    );
    all_say(&refused, "limits.subscriptions_per_uid")?;
    let unix_bytes = regex_bytes(&metrics)?;
    // TCP from 127.0.0.1: 128 asked, the node total (200) binds at 50.
    let (tcp, Flood { accepted, refused }) = flood(&daemon, true, 2, 64, boxed_cheap_tcp, false)?;
    ensure!(
        accepted == 50 && refused.len() == 78,
        "tcp: {accepted} accepted"
    );
    all_say(&refused, "limits.subscriptions_total")?;
    let tcp_bytes = regex_bytes(&metrics)? - unix_bytes;

    // Closing connections gives their share back, once their
    // subscriptions have ended (a moment after the close).
    drop(unix);
    let end = Instant::now() + DEADLINE;
    while regex_bytes(&metrics)? != tcp_bytes {
        ensure!(
            Instant::now() < end,
            "the closed connections' subscriptions were never given back"
        );
    }
    // 127.0.0.1 holds 50: 70 more up to 120 per address.
    let (more, Flood { accepted, refused }) = flood(&daemon, true, 2, 64, boxed_cheap_tcp, false)?;
    ensure!(
        accepted == 70 && refused.len() == 58,
        "tcp again: {accepted} accepted"
    );
    all_say(&refused, "limits.subscriptions_per_address")?;
    eprintln!(
        "figure: subscription caps: unix 192 asked, 150 accepted (per uid); tcp 128 asked, 50 accepted (node total 200); \
         unix closed, tcp 128 more asked, 70 accepted (per address 120)"
    );

    let m = scrape(&metrics)?;
    let refusals = |reason: &str| {
        metric(
            &m,
            &format!("catalogue_subscription_refusals_total{{reason={reason}}}"),
        ) as usize
    };
    ensure!(refusals("per_uid") == 42, "per_uid counted");
    ensure!(refusals("total") == 78, "total counted");
    ensure!(refusals("per_address") == 58, "per_address counted");
    drop((tcp, more));
    Ok(())
}

#[test]
fn a_flood_of_costly_regexes_stops_at_the_regex_memory_budget() -> Result<()> {
    // The report: 150 connections x 64 subscriptions like these took
    // 1.1 GB. Before the fix all 1,280 below were accepted (about 130 MB).
    let budget = 16 * MIB;
    let mut daemon = node(0)
        .set("limits.regex_memory_bytes", &budget.to_string())
        .start()?;
    let metrics = metrics_address(&mut daemon)?;
    // Services for the regexes to run on, so their caches fill.
    let mut registrar = Conn::unix(&daemon.socket)?;
    registrar.recv()?;
    for i in 0..20 {
        registrar.send(Body::RegisterService(RegisterService {
            uri: format!("tcp://svc-{i}.example-{i}:80"),
            attrs: Default::default(),
        }))?;
        registrar.recv()?;
    }
    let before = daemon.rss_kib()?;
    let started = Instant::now();
    let (conns, Flood { accepted, refused }) = flood(&daemon, false, 20, 64, boxed_costly, true)?;
    let took = started.elapsed();
    ensure!(!refused.is_empty(), "the flood was never refused");
    all_say(&refused, "limits.regex_memory_bytes")?;
    let after = daemon.rss_kib()?;
    let m = scrape(&metrics)?;
    let estimated = metric(&m, "catalogue_subscription_regex_bytes{}") as usize;
    let grown = after.saturating_sub(before) as usize * 1024;
    eprintln!(
        "figure: regex memory: 20 connections x up to 64 subscriptions like \\w+-C-I in {took:.2?}: {accepted} accepted, then each connection refused at limits.regex_memory_bytes = {} MiB ({} refusals); estimated {:.1} MiB held; daemon RSS {before} -> {after} KiB (+{:.1} MiB)",
        budget / MIB,
        refused.len(),
        estimated as f64 / MIB as f64,
        grown as f64 / MIB as f64,
    );
    ensure!(estimated <= budget, "the estimate stays within the budget");
    ensure!(
        accepted > 100,
        "the budget holds more than 100 of them: {accepted}"
    );
    // The regexes within the budget, plus each subscription's actor and
    // queue (under 8 KiB measured), plus slack for the allocator.
    let bound = budget + accepted * 8 * 1024 + 8 * MIB;
    ensure!(
        grown < bound,
        "grew {grown} bytes for {accepted} subscriptions (bound {bound})"
    );
    ensure!(
        metric(
            &m,
            "catalogue_subscription_refusals_total{reason=regex_memory}"
        ) as usize
            == refused.len(),
        "refusals counted"
    );
    drop(conns);
    Ok(())
}

#[test]
#[ignore = "the attack of the issue 14 report at full scale: 1,500 connections, about 6 GB sent; run by hand"]
fn the_reported_stalled_frames_at_full_scale() -> Result<()> {
    // 1,000 UNIX-socket connections and 500 on the peer port before any
    // authentication, each announcing 4 MiB and sending 4,194,000 bytes of
    // it, with the default limits (10 s deadline, 256 MiB budget). The
    // report measured 4.1 GB and 2 GB held forever.
    let daemon = node(0)
        .set("limits.handshakes_in_progress", "1000")
        .set("limits.handshakes_in_progress_per_address", "1000")
        .start()?;
    let timeout = Duration::from_secs(10);
    let waves = [
        Wave {
            target: Target::Unix,
            count: 1000,
            announce: ANNOUNCED,
            send: 4_194_000,
        },
        Wave {
            target: Target::PeerHandshake,
            count: 500,
            announce: ANNOUNCED,
            send: 4_194_000,
        },
    ];
    // Twice: the allocator keeps what the first round freed, and the
    // second round reuses it rather than growing the node again.
    let baseline = daemon.rss_kib()?;
    for round in 1..=2 {
        let (outcomes, memory) = attack(&daemon, &waves, timeout + 3 * DEADLINE)?;
        print_outcomes(&waves, &outcomes);
        let grown = memory.peak_kib.saturating_sub(baseline) as f64 / 1024.0;
        eprintln!(
            "figure: hostile memory, full scale: round {round}: peak {grown:.1} MiB above the first baseline"
        );
        ensure!(
            grown < 256.0 + 64.0,
            "round {round}: the default budget (256 MiB) bounds the node: {}",
            memory.describe()
        );
    }
    Ok(())
}

#[test]
#[ignore = "the subscription flood of the issue 14 report at full scale; run by hand"]
fn the_reported_subscription_flood_at_full_scale() -> Result<()> {
    // 150 connections x 64 subscriptions like \w+-C-I with the default
    // limits; the report measured +1.1 GB.
    let mut daemon = node(0).start()?;
    let metrics = metrics_address(&mut daemon)?;
    let mut registrar = Conn::unix(&daemon.socket)?;
    registrar.recv()?;
    for i in 0..20 {
        registrar.send(Body::RegisterService(RegisterService {
            uri: format!("tcp://svc-{i}.example-{i}:80"),
            attrs: Default::default(),
        }))?;
        registrar.recv()?;
    }
    let before = daemon.rss_kib()?;
    let started = Instant::now();
    let (conns, Flood { accepted, refused }) = flood(&daemon, false, 150, 64, boxed_costly, true)?;
    let took = started.elapsed();
    let after = daemon.rss_kib()?;
    let estimated = regex_bytes(&metrics)?;
    eprintln!(
        "figure: regex memory, full scale: 150 connections x up to 64 subscriptions like \\w+-C-I in {took:.2?}: {accepted} accepted, {} refusals; estimated {:.1} MiB held; daemon RSS {before} -> {after} KiB (+{:.1} MiB)",
        refused.len(),
        estimated as f64 / MIB as f64,
        after.saturating_sub(before) as f64 / 1024.0,
    );
    all_say(&refused, "limits.regex_memory_bytes")?;
    ensure!(!refused.is_empty(), "the flood was never refused");
    drop(conns);
    Ok(())
}
