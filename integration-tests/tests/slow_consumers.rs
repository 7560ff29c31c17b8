//! Slow and dead consumers (docs/RELIABILITY.md §2): a thousand subscriptions
//! on one node, a tenth of them on connections that stop reading once
//! subscribed. While services come and go, every live subscription gets
//! every matching event (checked URI by URI), the node's memory stays far
//! below what queueing for the dead ones would take, and a dead consumer
//! that wakes up is told it overflowed and gets a fresh snapshot.
//!
//! Figures are printed on stderr, prefixed `figure:`; see
//! docs/RELIABILITY.md.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};
use catalogue_integration_tests::{Conn, DEADLINE, Daemon};
use catalogue_proto::{
    Body,
    catalogue::{EventKind, RegisterService, Subscribe, UnregisterService},
};

/// The shape of one run.
struct Scenario {
    /// Connections holding subscriptions.
    conns: usize,
    /// Of which this many stop reading once subscribed (the last ones).
    dead_conns: usize,
    subs_per_conn: usize,
    /// Services registered, then unregistered, one by one.
    services: usize,
    /// Bytes of attributes per service (what a queued event costs).
    pad: usize,
    /// Live subscriptions are spread over this many URI groups; one in
    /// `all_every` watches every service instead. Dead ones watch all.
    groups: usize,
    all_every: usize,
    /// Changes made before the live consumers catch up; below the queue.
    round: usize,
    queue: usize,
}

impl Scenario {
    fn uri(&self, i: usize) -> String {
        format!("tcp://g{}.slow:{i}", i % self.groups)
    }

    /// The regex of live subscription number `k` (over all live ones).
    fn live_regex(&self, k: usize) -> String {
        if k % self.all_every == 0 {
            "^tcp://".into()
        } else {
            format!(r"^tcp://g{}\.", k % self.groups)
        }
    }

    /// Whether live subscription `k` matches service `i`.
    fn matches(&self, k: usize, i: usize) -> bool {
        k % self.all_every == 0 || k % self.groups == i % self.groups
    }
}

/// One subscriber connection and what its subscriptions saw.
struct Subscriber {
    conn: Conn,
    /// Global index of its first subscription.
    first: usize,
    added: BTreeMap<u64, BTreeSet<String>>,
    deleted: BTreeMap<u64, BTreeSet<String>>,
}

/// Opens a connection and subscribes `regexes` (ids 1, 2, ...), reading
/// each `Success` and the (empty) snapshot's end.
fn subscribe(daemon: &Daemon, regexes: &[String]) -> Result<Conn> {
    let mut conn = Conn::unix(&daemon.socket)?;
    match conn.recv()?.and_then(|f| f.body) {
        Some(Body::Welcome(_)) => {}
        other => bail!("expected Welcome, got {other:?}"),
    }
    for (n, regex) in regexes.iter().enumerate() {
        conn.send(Body::Subscribe(Subscribe {
            subscription_id: n as u64 + 1,
            regex: regex.clone(),
            ..Default::default()
        }))?;
    }
    let (mut ok, mut ends) = (0, 0);
    while ok < regexes.len() || ends < regexes.len() {
        match conn.recv()?.and_then(|f| f.body) {
            Some(Body::Success(_)) => ok += 1,
            Some(Body::SnapshotEnd(e)) if e.count == 0 => ends += 1,
            other => bail!("while subscribing: {other:?}"),
        }
    }
    Ok(conn)
}

/// Registers or unregisters services `range` on `registrar`, pipelined,
/// and reads every answer.
fn change(
    s: &Scenario,
    registrar: &mut Conn,
    range: std::ops::Range<usize>,
    add: bool,
) -> Result<()> {
    let pad = "p".repeat(s.pad);
    let n = range.len();
    for i in range {
        let body = if add {
            Body::RegisterService(RegisterService {
                uri: s.uri(i),
                attrs: BTreeMap::from([("pad".to_string(), pad.clone())]),
            })
        } else {
            Body::UnregisterService(UnregisterService { uri: s.uri(i) })
        };
        registrar.send(body)?;
    }
    for _ in 0..n {
        match registrar.recv()?.and_then(|f| f.body) {
            Some(Body::Success(_)) => {}
            other => bail!("registrar: {other:?}"),
        }
    }
    Ok(())
}

/// Reads from every live subscriber the events `range` must have caused.
fn catch_up(
    s: &Scenario,
    live: &mut [Subscriber],
    range: std::ops::Range<usize>,
    add: bool,
) -> Result<usize> {
    let mut read = 0;
    for sub in live.iter_mut() {
        let expected: usize = range
            .clone()
            .map(|i| {
                (0..s.subs_per_conn)
                    .filter(|j| s.matches(sub.first + j, i))
                    .count()
            })
            .sum();
        for _ in 0..expected {
            let frame = sub.conn.recv()?.context("subscriber closed")?;
            let Some(Body::ServiceEvent(ev)) = frame.body else {
                bail!("live subscriber got {:?}, not an event", frame.body);
            };
            ensure!(!ev.snapshot, "a live event, not a snapshot: {ev:?}");
            let k = sub.first + ev.subscription_id as usize - 1;
            let i: usize = ev.uri.rsplit(':').next().unwrap_or("").parse()?;
            ensure!(
                s.matches(k, i),
                "subscription {k} got {} it does not match",
                ev.uri
            );
            let (kind, seen) = if add {
                (EventKind::Added, &mut sub.added)
            } else {
                (EventKind::Deleted, &mut sub.deleted)
            };
            ensure!(ev.kind() == kind, "expected {kind:?}: {ev:?}");
            let fresh = seen.entry(ev.subscription_id).or_default().insert(ev.uri);
            ensure!(fresh, "a duplicate event");
            read += 1;
        }
    }
    Ok(read)
}

fn run(s: &Scenario) -> Result<()> {
    let mut daemon = Daemon::builder()
        .set("limits.subscription_queue", &s.queue.to_string())
        .set(
            "limits.subscriptions_per_connection",
            &s.subs_per_conn.to_string(),
        )
        .set(
            "limits.registrations_per_connection",
            &s.services.to_string(),
        )
        .start()?;
    let live_conns = s.conns - s.dead_conns;
    let started = Instant::now();
    let mut live = Vec::new();
    for c in 0..live_conns {
        let first = c * s.subs_per_conn;
        let regexes: Vec<String> = (first..first + s.subs_per_conn)
            .map(|k| s.live_regex(k))
            .collect();
        live.push(Subscriber {
            conn: subscribe(&daemon, &regexes)?,
            first,
            added: BTreeMap::new(),
            deleted: BTreeMap::new(),
        });
    }
    let mut dead = Vec::new();
    for _ in 0..s.dead_conns {
        dead.push(subscribe(
            &daemon,
            &vec!["^tcp://".to_string(); s.subs_per_conn],
        )?);
    }
    let subscribed_in = started.elapsed();

    let mut registrar = Conn::unix(&daemon.socket)?;
    registrar.recv()?;
    let before_kib = daemon.rss_kib()?;
    let mut peak_kib = before_kib;
    let churn = Instant::now();
    let mut delivered = 0;
    for add in [true, false] {
        let mut i = 0;
        while i < s.services {
            let range = i..(i + s.round).min(s.services);
            change(s, &mut registrar, range.clone(), add)?;
            delivered += catch_up(s, &mut live, range.clone(), add)?;
            peak_kib = peak_kib.max(daemon.rss_kib()?);
            i = range.end;
        }
    }
    let churn_took = churn.elapsed();
    let after_kib = daemon.rss_kib()?;

    // Every live subscription saw exactly the services it matches come
    // and go.
    for sub in &live {
        for j in 0..s.subs_per_conn {
            let k = sub.first + j;
            let want: BTreeSet<String> = (0..s.services)
                .filter(|&i| s.matches(k, i))
                .map(|i| s.uri(i))
                .collect();
            let id = j as u64 + 1;
            let empty = BTreeSet::new();
            ensure!(
                sub.added.get(&id).unwrap_or(&empty) == &want,
                "subscription {k}: added set differs"
            );
            ensure!(
                sub.deleted.get(&id).unwrap_or(&empty) == &want,
                "subscription {k}: deleted set differs"
            );
        }
    }

    let dead_subs = s.dead_conns * s.subs_per_conn;
    let unbounded_kib = (dead_subs * 2 * s.services * s.pad / 1024) as u64;
    let grown_kib = peak_kib.saturating_sub(before_kib);
    eprintln!(
        "figure: slow consumers: {} subscriptions ({} live, {dead_subs} dead) on {} connections, \
         subscribed in {:.2?}",
        s.conns * s.subs_per_conn,
        live_conns * s.subs_per_conn,
        s.conns,
        subscribed_in
    );
    eprintln!(
        "figure: slow consumers: {} services added and removed ({} changes, {} B attributes each) \
         in {:.2?}; {delivered} events delivered to live subscriptions, none missing",
        s.services,
        2 * s.services,
        s.pad,
        churn_took
    );
    eprintln!(
        "figure: slow consumers: daemon RSS {before_kib} KiB before, {peak_kib} KiB peak, \
         {after_kib} KiB after (grew {grown_kib} KiB at most; queueing every event for the dead \
         subscriptions would take {unbounded_kib} KiB)"
    );
    ensure!(
        grown_kib < unbounded_kib / 4,
        "RSS grew {grown_kib} KiB: the dead subscriptions' events are being kept"
    );
    daemon
        .wait_log(DEADLINE, |l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("overflowed"))
        })
        .context("a dead subscription overflowed")?;

    wake_up(s, &mut registrar, &mut dead[0])
}

/// A few services exist; a dead consumer starts reading again. Each of
/// its subscriptions must report the overflow and then deliver a fresh
/// snapshot that holds exactly those services.
fn wake_up(s: &Scenario, registrar: &mut Conn, conn: &mut Conn) -> Result<()> {
    let survivors: BTreeSet<String> = (0..3).map(|i| format!("tcp://survivor:{i}")).collect();
    for uri in &survivors {
        registrar.send(Body::RegisterService(RegisterService {
            uri: uri.clone(),
            attrs: BTreeMap::new(),
        }))?;
        match registrar.recv()?.and_then(|f| f.body) {
            Some(Body::Success(_)) => {}
            other => bail!("registrar: {other:?}"),
        }
    }
    // Per subscription: None until its Overflow, then the fresh snapshot.
    let mut fresh: BTreeMap<u64, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut done = BTreeSet::new();
    let mut frames = 0usize;
    let mut dropped = 0u64;
    while done.len() < s.subs_per_conn {
        let frame = conn.recv()?.context("the woken consumer was closed")?;
        frames += 1;
        match frame.body {
            Some(Body::Overflow(o)) => {
                ensure!(o.resnapshot, "policy resnapshot: {o:?}");
                dropped += o.dropped;
                fresh.insert(o.subscription_id, Some(BTreeSet::new()));
            }
            Some(Body::ServiceEvent(ev)) => {
                if let Some(Some(set)) = fresh.get_mut(&ev.subscription_id) {
                    ensure!(ev.snapshot, "after Overflow comes the snapshot: {ev:?}");
                    set.insert(ev.uri);
                }
            }
            Some(Body::SnapshotEnd(end)) => {
                let Some(Some(set)) = fresh.get(&end.subscription_id) else {
                    bail!("a snapshot end before its overflow notice: {end:?}");
                };
                ensure!(set == &survivors, "fresh snapshot {set:?}");
                ensure!(end.count == survivors.len() as u64, "{end:?}");
                done.insert(end.subscription_id);
            }
            other => bail!("woken consumer: {other:?}"),
        }
    }
    eprintln!(
        "figure: slow consumers: a woken dead connection read {frames} frames: {} overflow \
         notices ({dropped} events dropped), then fresh snapshots of {} services",
        s.subs_per_conn,
        survivors.len()
    );
    Ok(())
}

/// 1,000 subscriptions, 100 of them dead, 2,000 changes.
#[test]
fn dead_subscribers_cost_nothing_and_live_ones_miss_nothing() -> Result<()> {
    run(&Scenario {
        conns: 20,
        dead_conns: 2,
        subs_per_conn: 50,
        services: 1000,
        pad: 1024,
        groups: 100,
        all_every: 90,
        round: 32,
        queue: 64,
    })
}

/// 10,000 subscriptions, 1,000 of them dead, 10,000 changes. Run with
/// `cargo build --bin catalogue && cargo test -p catalogue-integration-tests
/// --test slow_consumers -- --ignored --nocapture`.
#[test]
#[ignore = "big variant: minutes in a debug build"]
fn ten_thousand_subscriptions() -> Result<()> {
    run(&Scenario {
        conns: 100,
        dead_conns: 10,
        subs_per_conn: 100,
        services: 5000,
        pad: 1024,
        groups: 500,
        all_every: 900,
        round: 32,
        queue: 64,
    })
}
