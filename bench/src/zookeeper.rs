//! The notify, fan-out and cluster workloads against ZooKeeper (3.6 or
//! later: persistent recursive watches), with the `zookeeper-client`
//! crate, for `bench/compare-zookeeper.sh`. ZooKeeper's semantics are the
//! closest to catalogue's: an ephemeral znode lives as long as the session
//! that created it, as a registration lives with its connection, and a
//! persistent recursive watch delivers every change under a path, as a
//! subscription does for the services its pattern matches.
//!
//! * notify: create the ephemeral znode `<root>/notify/rR/<i>` on one
//!   session, a persistent recursive watch on `<root>/notify` on another;
//!   create-to-event latency, closed loop;
//! * fan-out: N watchers, each on a session of its own, watcher `i`
//!   watching the subtree `<root>/fR/g<i % 10>` recursively; the ten group
//!   subtrees are disjoint and each create (an ephemeral `eK` in one of
//!   them) matches 10% of the watchers. One session per watcher because
//!   ZooKeeper keeps one watch per path and connection: a second watch of
//!   the same subtree on the same session would be the same watch;
//! * cluster: create at `--zookeeper` (server 1), watch at
//!   `--zookeeper-watch` (server 3), open loop at a fixed rate and with
//!   `--inflight` creates in flight on the one session.
//!
//! `<root>` is `/bench-<pid>-<unix seconds>`, so runs against the same
//! ensemble do not collide. The writing sessions' sockets get `TCP_NODELAY`
//! as with ZooKeeper's Java client (`nodelay.rs`).

use std::{
    cell::Cell,
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream, stream::FuturesUnordered};
use tokio::sync::Mutex;
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, CreateOptions, EventType, PersistentWatcher,
};

use super::{
    BenchArgs, Workload, fanout,
    measure::{Pace, closed_loop, latency_header, latency_row, open_loop, within},
};

/// The znodes the workloads create and wait for.
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
/// Their parents.
const PERSISTENT: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
/// Session timeout asked for (the server caps it at its
/// `maxSessionTimeout`); idle sessions ping at a third of it.
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// Fan-out sessions connecting at once.
const CONNECTING: usize = 64;

/// Runs the selected workloads (notify, fanout, cluster) against the
/// ZooKeeper server at `server` (`host:port`), watching at `watch_server`
/// in the cluster workload.
pub async fn run(args: &BenchArgs, server: &str, watch_server: &str) -> Result<()> {
    println!("target: ZooKeeper at {server}");
    super::connections::raise_nofile()?;
    if args
        .only
        .iter()
        .any(|w| !matches!(w, Workload::Notify | Workload::Fanout | Workload::Cluster))
    {
        bail!("with --zookeeper only notify, fanout and cluster can run");
    }
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let root = format!("/bench-{}-{since_epoch}", std::process::id());
    let admin = connect(server).await?;
    ensure(&admin, &root).await?;
    if args.selected(Workload::Notify) {
        notify(server, &root, args.events, args.rate).await?;
    }
    if args.selected(Workload::Fanout) {
        fan_out(
            server,
            &root,
            args.events,
            &args.subscriptions,
            args.inflight,
        )
        .await?;
    }
    if args.selected(Workload::Cluster) {
        cluster(server, watch_server, &root, args).await?;
    }
    Ok(())
}

async fn connect(server: &str) -> Result<Client> {
    Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .connect(server)
        .await
        .with_context(|| format!("connecting to ZooKeeper at {server}"))
}

/// [`connect`], then Nagle's algorithm off on the session's socket (and on
/// the others to the same port) as ZooKeeper's Java client has it: see
/// `nodelay.rs`. For the sessions that write; fan-out watchers only read.
async fn connect_writer(server: &str) -> Result<Client> {
    let client = connect(server).await?;
    let port = server
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .with_context(|| format!("no port in {server}"))?;
    super::nodelay::set_on_peers_at(port).context("setting TCP_NODELAY")?;
    Ok(client)
}

/// Creates the persistent znode `path` unless it exists.
async fn ensure(client: &Client, path: &str) -> Result<()> {
    match client.create(path, b"", &PERSISTENT).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {path}")),
    }
}

async fn create(client: &Client, path: &str) -> Result<()> {
    client
        .create(path, b"", &EPHEMERAL)
        .await
        .with_context(|| format!("creating {path}"))?;
    Ok(())
}

/// The path of the next node created under `watcher`'s subtree.
async fn next_created(watcher: &mut PersistentWatcher) -> Result<String> {
    loop {
        let event = watcher.changed().await;
        match event.event_type {
            EventType::NodeCreated => return Ok(event.path),
            EventType::Session if event.session_state.is_terminated() => {
                bail!("the watcher's session ended ({:?})", event.session_state)
            }
            _ => continue,
        }
    }
}

/// Waits until `path` is created under `watcher`'s subtree.
async fn wait_path(watcher: &mut PersistentWatcher, path: &str) -> Result<()> {
    while next_created(watcher).await? != path {}
    Ok(())
}

async fn notify(server: &str, root: &str, events: usize, rate: u32) -> Result<()> {
    let writer = connect_writer(server).await?;
    let base = format!("{root}/notify");
    ensure(&writer, &base).await?;
    let watching = connect(server).await?;
    let watcher = Mutex::new(
        watching
            .watch(&base, AddWatchMode::PersistentRecursive)
            .await?,
    );
    latency_header(&format!(
        "notify latency (ZooKeeper: create ephemeral -> recursive watch event), {events} events"
    ));
    for (round, (label, rate)) in [
        (format!("{rate}/s"), Some(rate)),
        ("saturation".into(), None),
    ]
    .into_iter()
    .enumerate()
    {
        let parent = format!("{base}/r{round}");
        ensure(&writer, &parent).await?;
        // The parent's creation is an event too.
        wait_path(&mut *watcher.lock().await, &parent).await?;
        let measured = closed_loop(events, rate, |i| {
            let path = format!("{parent}/{i}");
            let (writer, watcher) = (&writer, &watcher);
            async move {
                create(writer, &path).await?;
                wait_path(&mut *watcher.lock().await, &path).await
            }
        })
        .await?;
        latency_row("notify", &label, measured);
    }
    Ok(())
}

async fn fan_out(
    server: &str,
    root: &str,
    events: usize,
    counts: &[usize],
    inflight: usize,
) -> Result<()> {
    let writer = connect_writer(server).await?;
    let mut round = 0;
    for pass in fanout::passes(inflight) {
        fanout::header(" (ZooKeeper, one session per watcher)", events, pass);
        for &count in counts {
            let base = format!("{root}/f{round}");
            ensure(&writer, &base).await?;
            for g in 0..10 {
                ensure(&writer, &format!("{base}/g{g}")).await?;
            }
            let mut watchers: Vec<(Client, PersistentWatcher)> = stream::iter(0..count)
                .map(|i| {
                    let subtree = format!("{base}/g{}", i % 10);
                    async move {
                        let client = connect(server).await?;
                        let watcher = client
                            .watch(&subtree, AddWatchMode::PersistentRecursive)
                            .await?;
                        Ok::<_, anyhow::Error>((client, watcher))
                    }
                })
                .buffered(CONNECTING)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_>>()
                .with_context(|| format!("starting {count} watcher sessions"))?;
            let delivered = Cell::new(0usize);
            let creating = |k: usize| {
                let path = format!("{base}/g{}/e{k}", fanout::group_of(count, k));
                let writer = &writer;
                async move { create(writer, &path).await }
            };
            let receiving = watchers
                .iter_mut()
                .enumerate()
                .map(|(i, (_, watcher))| {
                    let want = fanout::per_subscription(count, events, i);
                    let delivered = &delivered;
                    async move {
                        for _ in 0..want {
                            next_created(watcher).await?;
                            delivered.set(delivered.get() + 1);
                        }
                        Ok::<_, anyhow::Error>(())
                    }
                })
                .collect::<FuturesUnordered<_>>()
                .try_collect::<()>();
            let shape = fanout::Shape {
                count,
                events,
                inflight: pass,
                expected: fanout::expected(count, events),
            };
            fanout::measure(shape, creating, receiving, &delivered).await?;
            round += 1;
        }
    }
    Ok(())
}

async fn cluster(server: &str, watch_server: &str, root: &str, args: &BenchArgs) -> Result<()> {
    let writer = connect_writer(server).await?;
    let base = format!("{root}/cluster");
    ensure(&writer, &base).await?;
    let watching = connect(watch_server).await?;
    let mut watcher = watching
        .watch(&base, AddWatchMode::PersistentRecursive)
        .await?;
    let warm_up = format!("{base}/warm-up");
    create(&writer, &warm_up).await?;
    within("the warm-up event", wait_path(&mut watcher, &warm_up)).await??;
    let watcher = Mutex::new(watcher);
    latency_header(&format!(
        "cluster propagation (ZooKeeper: create at {server} -> watch event at {watch_server}), {} / {} events",
        args.events, args.saturation_events
    ));
    let runs = [
        (Pace::Rate(args.rate), args.events),
        (Pace::Saturate(args.inflight), args.saturation_events),
    ];
    for (round, (pace, events)) in runs.into_iter().enumerate() {
        let parent = format!("{base}/r{round}");
        ensure(&writer, &parent).await?;
        within(
            "the parent's event",
            wait_path(&mut *watcher.lock().await, &parent),
        )
        .await??;
        let index: HashMap<String, usize> =
            (0..events).map(|i| (format!("{parent}/{i}"), i)).collect();
        let measured = open_loop(
            events,
            pace,
            |i| {
                let path = format!("{parent}/{i}");
                let writer = &writer;
                async move { create(writer, &path).await }
            },
            || {
                let (watcher, index) = (&watcher, &index);
                async move {
                    let mut watcher = watcher.lock().await;
                    loop {
                        let path = next_created(&mut watcher).await?;
                        if let Some(&i) = index.get(&path) {
                            return Ok(i);
                        }
                    }
                }
            },
        )
        .await
        .context("ZooKeeper cluster workload")?;
        latency_row("cluster", &pace.label(), measured);
    }
    Ok(())
}
