//! Reads against replication (issue 17: reads are served from a read view
//! of the tables, so "a flood of reads never delays replication", and
//! replication never holds up a read; this measures both). Two nodes over
//! mutually authenticated TLS on loopback, A and B (B dials A), B serving
//! the HTTP API; [`PRELOAD`] services registered at A are the table read
//! at B; each row withdraws its own services afterwards, so every row
//! reads the same table.
//!
//! * *replication under a read flood*: register at A, event at a native
//!   subscriber on B, at `--rate` and with `--inflight` in flight, first
//!   quiet, then while [`FLOOD_HTTP`] connections send
//!   `GET /v1/services`, or [`FLOOD_LIST`] socket clients send `List`, or
//!   both, to B as fast as they are answered (from a thread of their own);
//! * *reads under a replication burst*: `GET /v1/services` latency at B,
//!   one request at a time, quiet and while `--saturation-events`
//!   registrations at A (with `--inflight` in flight) replicate to B,
//!   until B's subscriber has seen the last of them.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_client::{Client, ConnectOptions, Subscription, SubscriptionEvent};
use serde::Deserialize;

use super::{
    http_get::HttpGet,
    measure::{Measured, Pace, latency_header, latency_row, next_index, open_loop, within},
    node::{BenchNode, free_port},
    notify::wait_snapshot_end,
    peers::{Neighbour, Pki, ports, start_peer},
};

/// Services in the table the readers read.
const PRELOAD: usize = 200;

/// HTTP connections of the flood.
const FLOOD_HTTP: usize = 4;

/// Socket clients of the flood.
const FLOOD_LIST: usize = 4;

/// How long the quiet read baseline reads.
const QUIET_READS: Duration = Duration::from_secs(2);

/// The read both kinds of reader make: every preloaded service.
const TABLE_REGEX: &str = "^tcp://reads/table/";
const TABLE_PATH: &str = "/v1/services?match=%5Etcp%3A%2F%2Freads%2Ftable%2F";

/// A page of `GET /v1/services`, as a client program reads it.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    services: Vec<PageService>,
    next: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PageService {
    uri: String,
    attrs: BTreeMap<String, String>,
    origin: String,
    registered_ms: u64,
}

/// Sizes of the workload.
#[derive(Debug, Clone, Copy)]
pub struct ReadsSizes {
    /// Registrations per rate row.
    pub events: usize,
    /// Registrations of the saturation rows and of the burst.
    pub saturation_events: usize,
    /// The fixed rate, per second.
    pub rate: u32,
    /// Registrations in flight at saturation and in the burst.
    pub inflight: usize,
}

/// Nodes A and B, linked and synced, B's HTTP API at `http`.
struct Pair {
    a: BenchNode,
    b: BenchNode,
    http: String,
    _pki: Pki,
}

impl Pair {
    async fn start(extra: &[String]) -> Result<Pair> {
        let pki = Pki::new()?;
        let p = ports(2)?;
        let http_port = free_port()?;
        let mut a = start_peer(
            &pki,
            "a",
            p[0],
            &[Neighbour {
                name: "b",
                dial: None,
            }],
            extra,
        )
        .await?;
        let mut b_sets = extra.to_vec();
        b_sets.push(format!("http.listen=127.0.0.1:{http_port}"));
        let dial_a = Neighbour {
            name: "a",
            dial: Some(p[0]),
        };
        let mut b = start_peer(&pki, "b", p[1], &[dial_a], &b_sets).await?;
        // B starts its API before it dials A, and is ready once synced.
        b.wait_log("HTTP API listening").await?;
        b.wait_log("ready").await?;
        a.wait_log("ready").await?;
        Ok(Pair {
            a,
            b,
            http: format!("127.0.0.1:{http_port}"),
            _pki: pki,
        })
    }
}

/// Runs the workload.
pub async fn run(sizes: ReadsSizes, node_sets: &[String]) -> Result<()> {
    let pair = Pair::start(node_sets)
        .await
        .context("starting nodes a - b")?;
    let registrar = Client::connect(&pair.a.options()).await?;
    let watcher = Client::connect(&pair.b.options()).await?;
    let mut sub = watcher.subscribe("^tcp://reads/").await?;
    wait_snapshot_end(&mut sub).await?;
    let sub = tokio::sync::Mutex::new(sub);
    open_loop(
        PRELOAD,
        Pace::Saturate(sizes.inflight),
        |i| register(&registrar, format!("tcp://reads/table/{i}")),
        || {
            let sub = &sub;
            async move { next_index(&mut *sub.lock().await, "tcp://reads/table/").await }
        },
    )
    .await
    .context("preloading the table")?;

    latency_header(&format!(
        "replication under a read flood (register at A -> event at B, 1 TLS hop; \
         flood at B: {FLOOD_HTTP} HTTP connections GET /v1/services, {FLOOD_LIST} socket \
         clients List, {PRELOAD} services each), {} / {} events",
        sizes.events, sizes.saturation_events
    ));
    let paces = [
        (Pace::Rate(sizes.rate), sizes.events),
        (Pace::Saturate(sizes.inflight), sizes.saturation_events),
    ];
    let floods = [
        ("quiet", 0, 0),
        ("GET flood", FLOOD_HTTP, 0),
        ("List flood", 0, FLOOD_LIST),
        ("both floods", FLOOD_HTTP, FLOOD_LIST),
    ];
    let mut round = 0;
    for (pace, events) in paces {
        for (flood, gets, lists) in floods {
            let readers = match gets + lists {
                0 => None,
                _ => Some(Readers::start(&pair.http, &pair.b.options(), gets, lists).await?),
            };
            let tag = format!("r{round}");
            round += 1;
            // Each row's services go with its registrar's connection, so
            // every row reads (and every read scans) the same table.
            let registrar = Client::connect(&pair.a.options()).await?;
            let measured = open_loop(
                events,
                pace,
                |i| register(&registrar, format!("tcp://reads/{tag}/{i}")),
                || {
                    let (sub, tag) = (&sub, &tag);
                    async move {
                        next_index(&mut *sub.lock().await, &format!("tcp://reads/{tag}/")).await
                    }
                },
            )
            .await?;
            latency_row("http-reads", &format!("{flood} {}", pace.label()), measured);
            if let Some(readers) = readers {
                readers.stop()?.print();
            }
            withdraw(registrar, &sub, &format!("tcp://reads/{tag}/"), events).await?;
        }
    }

    println!(
        "\nGET /v1/services at B ({PRELOAD} services, one request at a time): quiet, \
         and while {} registrations at A ({} in flight) replicate to B",
        sizes.saturation_events, sizes.inflight
    );
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>12}",
        "reads", "p50 us", "p99 us", "max us", "requests/s"
    );
    let quiet = Readers::start(&pair.http, &pair.b.options(), 1, 0).await?;
    tokio::time::sleep(QUIET_READS).await;
    latency_row("http-reads-get", "quiet", quiet.stop()?.http);
    let during = Readers::start(&pair.http, &pair.b.options(), 1, 0).await?;
    let burst = open_loop(
        sizes.saturation_events,
        Pace::Saturate(sizes.inflight),
        |i| register(&registrar, format!("tcp://reads/burst/{i}")),
        || {
            let sub = &sub;
            async move { next_index(&mut *sub.lock().await, "tcp://reads/burst/").await }
        },
    )
    .await?;
    latency_row("http-reads-get", "during the burst", during.stop()?.http);
    println!(
        "  (the burst: {} registrations replicated to B at {:.0}/s)",
        sizes.saturation_events, burst.per_second
    );
    Ok(())
}

/// Closes `registrar`'s connection, which withdraws its services, and
/// waits until B has deleted all `n` of them (URIs under `prefix`).
async fn withdraw(
    registrar: Client,
    sub: &tokio::sync::Mutex<Subscription>,
    prefix: &str,
    n: usize,
) -> Result<()> {
    drop(registrar);
    let mut sub = sub.lock().await;
    let mut left = n;
    while left > 0 {
        match within("a withdrawal at B", sub.next()).await? {
            Some(SubscriptionEvent::Deleted { service }) if service.uri.starts_with(prefix) => {
                left -= 1;
            }
            Some(_) => {}
            None => bail!("the subscription at B ended"),
        }
    }
    Ok(())
}

async fn register(registrar: &Client, uri: String) -> Result<()> {
    Ok(registrar.register(&uri, BTreeMap::new()).await?)
}

/// Readers of B's table on a thread (and runtime) of their own, so they
/// neither wait for the workload's tasks nor hold them up (the CPU they
/// share is the point): HTTP connections sending `GET /v1/services` and
/// socket clients sending `List`, each as fast as it is answered.
struct Readers {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<ReadFigures>>,
}

/// Latency of each kind of read, and reads per second.
struct ReadFigures {
    http: Measured,
    list: Measured,
}

impl ReadFigures {
    fn print(mut self) {
        for (what, m) in [("GET", &mut self.http), ("List", &mut self.list)] {
            if m.samples.is_empty() {
                continue;
            }
            let (p50, p99, max) = super::percentiles(&mut m.samples);
            println!(
                "  (flood {what}: {:.0}/s, p50 {p50} p99 {p99} max {max} us)",
                m.per_second
            );
        }
    }
}

impl Readers {
    /// Starts the readers; returns once all of them are connected.
    async fn start(
        http: &str,
        socket: &ConnectOptions,
        http_conns: usize,
        lists: usize,
    ) -> Result<Readers> {
        let stop = Arc::new(AtomicBool::new(false));
        let (http, socket, flag) = (http.to_string(), socket.clone(), stop.clone());
        let (connected, ready) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    let conns = connect(&http, &socket, http_conns, lists).await?;
                    let _ = connected.send(());
                    read_until(conns, &flag).await
                })
        });
        let readers = Readers { stop, thread };
        if ready.await.is_err() {
            // The thread ended before it connected: its error says why.
            readers.stop()?;
            bail!("the readers did not connect");
        }
        Ok(readers)
    }

    fn stop(self) -> Result<ReadFigures> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(figures) => figures,
            Err(_) => bail!("a reader thread panicked"),
        }
    }
}

/// The readers' connections.
struct Conns {
    gets: Vec<HttpGet>,
    lists: Vec<Client>,
}

async fn connect(
    http: &str,
    socket: &ConnectOptions,
    http_conns: usize,
    lists: usize,
) -> Result<Conns> {
    let mut conns = Conns {
        gets: Vec::new(),
        lists: Vec::new(),
    };
    for _ in 0..http_conns {
        conns.gets.push(HttpGet::connect(http).await?);
    }
    for _ in 0..lists {
        conns.lists.push(Client::connect(socket).await?);
    }
    Ok(conns)
}

async fn read_until(conns: Conns, stop: &AtomicBool) -> Result<ReadFigures> {
    let started = Instant::now();
    let gets = conns.gets.into_iter().map(|mut conn| async move {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let page: Page = serde_json::from_slice(conn.get(TABLE_PATH).await?)?;
            samples.push(micros(sent.elapsed()));
            if page.services.len() != PRELOAD {
                bail!("a page of {} services, not {PRELOAD}", page.services.len());
            }
        }
        Ok::<_, anyhow::Error>(samples)
    });
    let listings = conns.lists.into_iter().map(|client| async move {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let listed = client.list(TABLE_REGEX).await?;
            samples.push(micros(sent.elapsed()));
            if listed.len() != PRELOAD {
                bail!("a listing of {} services, not {PRELOAD}", listed.len());
            }
        }
        Ok::<_, anyhow::Error>(samples)
    });
    let (gets, listings) = tokio::try_join!(
        futures_util::future::try_join_all(gets),
        futures_util::future::try_join_all(listings)
    )?;
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let measured = |all: Vec<Vec<u64>>| {
        let samples: Vec<u64> = all.into_iter().flatten().collect();
        Measured {
            per_second: samples.len() as f64 / seconds,
            samples,
        }
    };
    Ok(ReadFigures {
        http: measured(gets),
        list: measured(listings),
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
