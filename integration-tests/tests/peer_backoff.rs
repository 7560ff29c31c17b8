//! How often a node dials a peer, between real nodes over TLS: a node the
//! peer refuses (its certificate is from another CA) backs off instead of
//! redialing at once, and never counts the refused link as up; a node whose
//! peer was down for a while links again soon after the peer returns, its
//! backoff not grown by the refused connections (docs/PROTOCOL.md, "End").

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use catalogue_integration_tests::{DEADLINE, Daemon, LogLine, TestCa, TlsFiles, scrape};

/// How long the refused dialer is watched.
const WINDOW: Duration = Duration::from_secs(10);

/// Most refused attempts per second the refusing node may see on average.
const MAX_ATTEMPTS_PER_SECOND: f64 = 5.0;

/// Refused attempts the dialer must still make in the window (it backs
/// off; it does not give up).
const MIN_ATTEMPTS: f64 = 3.0;

/// Failed dials before the peer returns: with `sync.retry_initial` 100 ms,
/// a backoff that doubled on each would by then wait 3.2 to 6.4 s.
const FAILURES: usize = 7;

/// Longest time from the peer's return to the link being up again.
const RELINK_BUDGET: Duration = Duration::from_secs(2);

/// Handshake failures counted by the node whose metrics are at `addr`,
/// every reason together.
fn handshake_failures(addr: &str) -> Result<f64> {
    let m: BTreeMap<String, f64> = scrape(addr)?;
    Ok(m.iter()
        .filter(|(k, _)| k.starts_with("catalogue_peer_handshake_failures_total{"))
        .map(|(_, v)| v)
        .sum())
}

fn message(line: &LogLine, text: &str) -> bool {
    line["message"] == text
}

#[test]
fn a_refused_dialer_backs_off_and_never_counts_the_link_up() -> Result<()> {
    let ca = TestCa::new("cluster-ca")?;
    let other_ca = TestCa::new("other-ca")?;
    let mut c = Daemon::builder()
        .name("node-c")
        .tls(&ca.node("node-c")?)
        .peer("rogue", "")
        .metrics()
        .start()?;
    let metrics = c.metrics_address()?;

    // The rogue's certificate is from another CA, but it trusts both CAs
    // (a node halfway through a CA change): it accepts C's certificate,
    // finishes its half of the TLS 1.3 handshake, and only then learns
    // that C refused its own.
    let foreign = other_ca.node("rogue")?;
    let bundle = foreign.cert.with_file_name("both-cas.pem");
    let pems = [
        std::fs::read_to_string(other_ca.ca_pem())?,
        std::fs::read_to_string(ca.ca_pem())?,
    ];
    std::fs::write(&bundle, pems.concat())?;
    let rogue_tls = TlsFiles {
        ca: bundle,
        ..foreign
    };
    let mut rogue = Daemon::builder()
        .name("rogue")
        .tls(&rogue_tls)
        .peer("node-c", &c.peer)
        .set("sync.retry_initial", "100ms")
        .set("sync.retry_max", "1s")
        .start()?;

    c.wait_log(DEADLINE, |l| message(l, "peer link refused"))?;
    let before = handshake_failures(&metrics)?;
    let started = Instant::now();
    // The measurement window: how often the rogue dials over 10 s.
    rogue.record_for(WINDOW)?;
    let after = handshake_failures(&metrics)?;
    let seconds = started.elapsed().as_secs_f64();
    let attempts = after - before;
    let rate = attempts / seconds;
    eprintln!("node-c refused {attempts} attempts in {seconds:.1} s: {rate:.2}/s");
    assert!(
        rate < MAX_ATTEMPTS_PER_SECOND,
        "node-c refused {attempts} attempts in {seconds:.1} s ({rate:.1}/s)"
    );
    assert!(
        attempts >= MIN_ATTEMPTS,
        "the rogue stopped dialing: {attempts} attempts in {seconds:.1} s"
    );
    let reasons: Vec<&LogLine> = rogue
        .logged()
        .iter()
        .filter(|l| message(l, "cannot link to peer"))
        .map(|l| &l["reason"])
        .collect();
    eprintln!("the rogue's failures: {reasons:?}");
    let up: Vec<&LogLine> = rogue
        .logged()
        .iter()
        .filter(|l| message(l, "peer link up") || message(l, "linked"))
        .collect();
    assert!(up.is_empty(), "the refused link counted as up: {up:?}");
    Ok(())
}

/// A free loopback port, reserved by binding and released at once.
fn free_port() -> Result<String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.to_string())
}

/// Waits until `daemon` has logged `n` lines matching `pred` after `mark`,
/// each within `DEADLINE`.
fn wait_count(
    daemon: &mut Daemon,
    mark: usize,
    n: usize,
    pred: impl Fn(&LogLine) -> bool,
) -> Result<()> {
    loop {
        let seen = daemon.logged()[mark..].iter().filter(|l| pred(l)).count();
        if seen >= n {
            return Ok(());
        }
        let from = daemon.mark();
        daemon.wait_log_from(from, DEADLINE, &pred)?;
    }
}

#[test]
fn a_dialer_relinks_soon_after_its_peer_returns() -> Result<()> {
    let ca = TestCa::new("test-ca")?;
    let (a_tls, b_tls) = (ca.node("node-a")?, ca.node("node-b")?);
    let b_address = free_port()?;
    let start_b = || {
        Daemon::builder()
            .name("node-b")
            .tls(&b_tls)
            .peer_listen(&b_address)
            .peer("node-a", "")
            .start()
    };
    let b = start_b()?;
    let mut a = Daemon::builder()
        .name("node-a")
        .tls(&a_tls)
        .peer("node-b", &b_address)
        .set("sync.retry_initial", "100ms")
        .set("sync.retry_max", "30s")
        .start()?;
    let linked = |l: &LogLine| message(l, "linked") && l["peer"] == "node-b";
    a.wait_log(DEADLINE, linked)?;

    // B goes away; A's dials are refused (nothing listens on the port).
    let mark = a.mark();
    drop(b);
    wait_count(&mut a, mark, FAILURES, |l| {
        message(l, "next attempt") && l["peer"] == "node-b"
    })?;

    let mark = a.mark();
    let returned = Instant::now();
    let _b = start_b().with_context(|| format!("node-b listening at {b_address} again"))?;
    a.wait_log_from(mark, DEADLINE, linked)?;
    let took = returned.elapsed();
    eprintln!("node-a linked again {took:?} after node-b was restarted");
    assert!(
        took < RELINK_BUDGET,
        "node-a took {took:?} to link again after node-b came back"
    );
    Ok(())
}
