//! Scale: `--scale-nodes` nodes (32 by default) over mutually
//! authenticated TLS on loopback, wired as a ring and then as a random
//! 3-regular graph ([`graph`]). For each: register-to-event latency from
//! node 0 to the node farthest from it at `--rate`; the time to converge
//! after a fifth of the links are cut (their traffic runs through
//! [`proxy`] forwarders the bench can cut), changes are made on every
//! side, and the links heal; idle CPU and RSS per node. Then, on the
//! random graph, `--scale-services` services spread over the nodes: the
//! bytes each node holds per service and the time a new node takes to join
//! and hold them all.
//!
//! Only links that are cut go through a forwarder; the others connect
//! directly, so latency rows measure the nodes, not the bench. Node counts
//! come from each node's `catalogue_services` gauge (its metrics
//! endpoint), so no table is streamed to the bench.

pub mod graph;
pub mod proxy;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_client::{Client, Subscription, SubscriptionEvent};
use futures_util::{StreamExt, stream};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
};

use self::{
    graph::Graph,
    proxy::{Proxy, ProxyThread, quiet_port},
};
use super::{
    measure::{Pace, next_index, open_loop, within},
    node::BenchNode,
    notify::wait_snapshot_end,
    peers::{Neighbour, Pki, start_peer},
    percentiles,
};

/// Seed of the random graph and of the links cut: runs compare.
const SEED: u64 = 0x5ca1e;

/// Share of the links cut in the convergence row.
const CUT_FRACTION: f64 = 0.2;

/// Longest wait for a cluster to converge, or to hold the bulk services.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(120);

/// Sizes of the workload.
#[derive(Debug, Clone, Copy)]
pub struct ScaleSizes {
    /// Nodes per topology.
    pub nodes: usize,
    /// Registrations in the latency row.
    pub events: usize,
    /// Their rate, per second.
    pub rate: u32,
    /// Services spread over the nodes in the last rows (0: skip them).
    pub services: usize,
}

/// The nodes of one topology and the forwarders of their cuttable links.
struct ScaleCluster {
    graph: Graph,
    nodes: Vec<BenchNode>,
    metrics: Vec<u16>,
    cut: Vec<Proxy>,
    /// The component of each node while the links are cut.
    sides: Vec<usize>,
    peer_ports: Vec<u16>,
    pki: Pki,
}

fn name(i: usize) -> String {
    format!("n{i:02}")
}

impl ScaleCluster {
    async fn start(graph: Graph, threads: &ProxyThread, extra: &[String]) -> Result<ScaleCluster> {
        let n = graph.n;
        let pki = Pki::new()?;
        let peer_ports: Vec<u16> = (0..n).map(|_| quiet_port()).collect::<Result<_>>()?;
        let metrics: Vec<u16> = (0..n).map(|_| quiet_port()).collect::<Result<_>>()?;
        let cut_edges = graph.cut(CUT_FRACTION, SEED);
        let mut cut = Vec::new();
        let mut dial: BTreeMap<(usize, usize), u16> = BTreeMap::new();
        for &(a, b) in &graph.edges {
            if cut_edges.contains(&(a, b)) {
                let proxy = Proxy::new(threads, quiet_port()?, peer_ports[b]);
                dial.insert((a, b), proxy.port);
                cut.push(proxy);
            } else {
                dial.insert((a, b), peer_ports[b]);
            }
        }
        // Node n is the one that joins in the bulk rows: three members
        // accept it.
        let names: Vec<String> = (0..=n).map(name).collect();
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let mut neighbours: Vec<Neighbour> = graph
                .edges
                .iter()
                .filter_map(|&(a, b)| match (a == i, b == i) {
                    (true, _) => Some(Neighbour {
                        name: &names[b],
                        dial: dial.get(&(a, b)).copied(),
                    }),
                    (_, true) => Some(Neighbour {
                        name: &names[a],
                        dial: None,
                    }),
                    _ => None,
                })
                .collect();
            if joiner_neighbours(n).contains(&i) {
                neighbours.push(Neighbour {
                    name: &names[n],
                    dial: None,
                });
            }
            let mut sets = extra.to_vec();
            sets.push(format!("metrics.listen=127.0.0.1:{}", metrics[i]));
            let node = start_peer(&pki, &names[i], peer_ports[i], &neighbours, &sets)
                .await
                .with_context(|| format!("starting {}", names[i]))?;
            nodes.push(node);
        }
        for proxy in &cut {
            proxy.heal().await?;
        }
        until_linked(&graph, &nodes).await?;
        let sides = graph.components_without(&cut_edges);
        Ok(ScaleCluster {
            graph,
            nodes,
            metrics,
            cut,
            sides,
            peer_ports,
            pki,
        })
    }
}

/// The members a joining node dials.
fn joiner_neighbours(n: usize) -> [usize; 3] {
    [0, n / 3, 2 * n / 3]
}

/// Waits until every node has a link up with each of its neighbours in
/// `graph` (a node logs "ready" as soon as its first dials fail, which
/// they do while the nodes start one by one).
async fn until_linked(graph: &Graph, nodes: &[BenchNode]) -> Result<()> {
    let degree = graph.neighbours();
    let started = Instant::now();
    let mut clients = Vec::with_capacity(nodes.len());
    for node in nodes {
        clients.push(Client::connect(&node.options()).await?);
    }
    loop {
        let mut behind = Vec::new();
        for (i, client) in clients.iter().enumerate() {
            let up = client
                .peers()
                .await?
                .iter()
                .filter(|p| p.state == "up")
                .count();
            if up < degree[i].len() {
                behind.push(name(i));
            }
        }
        if behind.is_empty() {
            return Ok(());
        }
        if started.elapsed() > CONVERGE_DEADLINE {
            bail!(
                "links not up after {CONVERGE_DEADLINE:?}: {}",
                behind.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the workload.
pub async fn run(sizes: ScaleSizes, node_sets: &[String]) -> Result<()> {
    if sizes.nodes < 6 || sizes.nodes % 2 == 1 {
        bail!("--scale-nodes must be even and at least 6");
    }
    let threads = ProxyThread::start()?;
    println!(
        "\nscale: {} nodes, TLS on loopback; latency from node 0 to the farthest node at {}/s, {} events; \
         convergence after cutting {:.0}% of the links",
        sizes.nodes,
        sizes.rate,
        sizes.events,
        CUT_FRACTION * 100.0
    );
    println!(
        "{:<10} {:>5} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "topology",
        "hops",
        "p50 us",
        "p99 us",
        "max us",
        "sides",
        "cut s",
        "heal s",
        "idle cpu%",
        "(max)",
        "rss MiB"
    );
    println!(
        "(sides: parts the cut leaves; cut s: from the changes until each node holds what its side can know; \
         heal s: from the heal until every node holds every change)"
    );
    let topologies = [
        ("ring", Graph::ring(sizes.nodes)),
        ("random-3", Graph::random_cubic(sizes.nodes, SEED)),
    ];
    for (label, graph) in topologies {
        let cluster = ScaleCluster::start(graph, &threads, node_sets)
            .await
            .with_context(|| format!("starting the {label} cluster"))?;
        let (hops, mut measured) = latency(&cluster, sizes).await?;
        let (p50, p99, max) = percentiles(&mut measured);
        let sides = cluster.sides.iter().collect::<BTreeSet<_>>().len();
        let (while_cut, healed) = converge(&cluster).await?;
        let (cpu, cpu_max, rss) = idle(&cluster).await?;
        println!(
            "{label:<10} {hops:>5} {p50:>8} {p99:>8} {max:>8} {sides:>6} {while_cut:>8} {healed:>8} {cpu:>10.2} {cpu_max:>8.2} {rss:>8.1}"
        );
        let secs = |text: &str| {
            text.trim_start_matches('>')
                .parse::<f64>()
                .unwrap_or(f64::NAN)
        };
        super::report::record(
            "scale",
            label,
            &[
                ("hops", hops as f64),
                ("p50_us", p50 as f64),
                ("p99_us", p99 as f64),
                ("max_us", max as f64),
                ("cut_s", secs(&while_cut)),
                ("heal_s", secs(&healed)),
                ("idle_cpu_percent", cpu),
                ("rss_mib", rss),
            ],
        );
        if label == "random-3" && sizes.services > 0 {
            bulk(cluster, sizes.services, node_sets).await?;
        }
    }
    Ok(())
}

/// Register-to-event latency from node 0 to the farthest node.
async fn latency(cluster: &ScaleCluster, sizes: ScaleSizes) -> Result<(usize, Vec<u64>)> {
    let (far, hops) = cluster.graph.farthest_from(0);
    let registrar = Client::connect(&cluster.nodes[0].options()).await?;
    let watcher = Client::connect(&cluster.nodes[far].options()).await?;
    let mut sub = watcher.subscribe("^tcp://scale/l/").await?;
    wait_snapshot_end(&mut sub).await?;
    registrar
        .register("tcp://scale/l/warm/0", BTreeMap::new())
        .await?;
    within(
        "the warm-up event at the farthest node",
        next_index(&mut sub, "tcp://scale/l/warm/"),
    )
    .await??;
    let sub = tokio::sync::Mutex::new(&mut sub);
    let measured = open_loop(
        sizes.events,
        Pace::Rate(sizes.rate),
        |i| {
            let registrar = &registrar;
            async move {
                Ok(registrar
                    .register(&format!("tcp://scale/l/m/{i}"), BTreeMap::new())
                    .await?)
            }
        },
        || {
            let sub = &sub;
            async move { next_index(*sub.lock().await, "tcp://scale/l/m/").await }
        },
    )
    .await?;
    Ok((hops, measured.samples))
}

/// What one node's subscriber has seen: the URIs it holds.
type Seen = Arc<Mutex<BTreeSet<String>>>;

/// Follows `sub`, keeping `seen` current and telling `changed`.
fn follow(mut sub: Subscription, seen: Seen, changed: watch::Sender<()>) {
    tokio::spawn(async move {
        while let Some(event) = sub.next().await {
            if let Ok(mut seen) = seen.lock() {
                match event {
                    SubscriptionEvent::Added { service, .. } => {
                        seen.insert(service.uri);
                    }
                    SubscriptionEvent::Deleted { service } => {
                        seen.remove(&service.uri);
                    }
                    SubscriptionEvent::Overflow { .. } => seen.clear(),
                    SubscriptionEvent::SnapshotEnd { .. } => {}
                }
            }
            let _ = changed.send(());
        }
    });
}

/// Waits until every node `i` holds exactly `expected(i)`; returns how
/// long it took, or an error naming the nodes that did not.
async fn until_all_hold(
    seen: &[Seen],
    changed: &mut watch::Receiver<()>,
    expected: impl Fn(usize) -> BTreeSet<String>,
) -> Result<Duration> {
    let started = Instant::now();
    let lagging = || {
        seen.iter()
            .enumerate()
            .filter(|(i, s)| s.lock().map(|s| *s != expected(*i)).unwrap_or(true))
            .map(|(i, _)| name(i))
            .collect::<Vec<_>>()
    };
    loop {
        let behind = lagging();
        if behind.is_empty() {
            return Ok(started.elapsed());
        }
        let left = CONVERGE_DEADLINE.saturating_sub(started.elapsed());
        if left.is_zero() || tokio::time::timeout(left, changed.changed()).await.is_err() {
            bail!(
                "not converged within {CONVERGE_DEADLINE:?}: {} nodes behind ({})",
                behind.len(),
                behind.join(", ")
            );
        }
    }
}

/// Cuts a fifth of the links; while cut, every node withdraws the service
/// it registered before and registers a new one. Returns the seconds until
/// every node holds what its side of the cut can know (its side's new
/// services, the other sides' old ones), then from the heal until every
/// node holds exactly the new services (every delete and add crossed the
/// healed links).
async fn converge(cluster: &ScaleCluster) -> Result<(String, String)> {
    let n = cluster.nodes.len();
    let (tell, mut changed) = watch::channel(());
    let mut seen = Vec::with_capacity(n);
    let mut registrars = Vec::with_capacity(n);
    for node in &cluster.nodes {
        let watcher = Client::connect(&node.options()).await?;
        let set: Seen = Arc::default();
        follow(
            watcher.subscribe("^tcp://scale/c/").await?,
            set.clone(),
            tell.clone(),
        );
        seen.push(set);
        // The watcher's connection must stay open: keep it with the registrar.
        registrars.push((Client::connect(&node.options()).await?, watcher));
    }
    let before = |i: usize| format!("tcp://scale/c/before/{i}");
    let after = |i: usize| format!("tcp://scale/c/after/{i}");
    for (i, (registrar, _)) in registrars.iter().enumerate() {
        registrar.register(&before(i), BTreeMap::new()).await?;
    }
    until_all_hold(&seen, &mut changed, |_| (0..n).map(before).collect())
        .await
        .context("before the cut")?;
    for proxy in &cluster.cut {
        proxy.cut();
    }
    let cut_at = Instant::now();
    for (i, (registrar, _)) in registrars.iter().enumerate() {
        registrar.unregister(&before(i)).await?;
        registrar.register(&after(i), BTreeMap::new()).await?;
    }
    let sides = &cluster.sides;
    let while_cut = until_all_hold(&seen, &mut changed, |v| {
        (0..n)
            .map(|i| {
                if sides[i] == sides[v] {
                    after(i)
                } else {
                    before(i)
                }
            })
            .collect()
    })
    .await
    .map(|_| format!("{:.2}", cut_at.elapsed().as_secs_f64()));
    let while_cut = match while_cut {
        Ok(secs) => secs,
        Err(e) => {
            eprintln!("scale (while cut): {e:#}");
            format!(">{}", CONVERGE_DEADLINE.as_secs())
        }
    };
    for proxy in &cluster.cut {
        proxy.heal().await?;
    }
    let healed = match until_all_hold(&seen, &mut changed, |_| (0..n).map(after).collect()).await {
        Ok(took) => format!("{:.2}", took.as_secs_f64()),
        Err(e) => {
            eprintln!("scale (after the heal): {e:#}");
            format!(">{}", CONVERGE_DEADLINE.as_secs())
        }
    };
    Ok((while_cut, healed))
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(utime + stime)
}

/// Idle CPU (average and highest, % of one core) and average RSS (MiB)
/// per node, over 5 s after a 2 s settle.
async fn idle(cluster: &ScaleCluster) -> Result<(f64, f64, f64)> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(5);
    let pids: Vec<u32> = cluster.nodes.iter().map(BenchNode::pid).collect();
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect::<Result<_>>()?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let secs = started.elapsed().as_secs_f64();
    let after: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect::<Result<_>>()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / tick / secs * 100.0)
        .collect();
    let rss: Vec<u64> = cluster
        .nodes
        .iter()
        .map(BenchNode::rss_kib)
        .collect::<Result<_>>()?;
    let n = cpu.len() as f64;
    Ok((
        cpu.iter().sum::<f64>() / n,
        cpu.iter().copied().fold(0.0, f64::max),
        rss.iter().sum::<u64>() as f64 / n / 1024.0,
    ))
}

/// The `catalogue_services` gauge of the node whose metrics listen on
/// `port`.
async fn services_at(port: u16) -> Result<u64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    body.lines()
        .find_map(|l| l.strip_prefix("catalogue_services "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .context("no catalogue_services in /metrics")
}

/// Waits until every node of `ports` counts `count` services.
async fn until_counted(ports: &[u16], count: u64, deadline: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let mut behind = 0;
        for &port in ports {
            if services_at(port).await? < count {
                behind += 1;
            }
        }
        if behind == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > deadline {
            bail!("{behind} nodes hold fewer than {count} services after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `services` services registered over every node (pipelined, one
/// connection per node): bytes per service per node, then a new node
/// joining three of them.
async fn bulk(cluster: ScaleCluster, services: usize, node_sets: &[String]) -> Result<()> {
    let n = cluster.nodes.len();
    let rss = |nodes: &[BenchNode]| -> Result<u64> {
        Ok(nodes
            .iter()
            .map(BenchNode::rss_kib)
            .collect::<Result<Vec<_>>>()?
            .iter()
            .sum())
    };
    let rss_before = rss(&cluster.nodes)?;
    let mut registrars = Vec::with_capacity(n);
    for node in &cluster.nodes {
        registrars.push(Client::connect(&node.options()).await?);
    }
    let started = Instant::now();
    let per_node = services.div_ceil(n);
    let all = (0..services).map(|k| (k % n, k / n));
    let mut results = stream::iter(all)
        .map(|(i, k)| {
            let registrar = &registrars[i];
            async move {
                registrar
                    .register(&format!("tcp://scale/bulk/{i}/{k}"), BTreeMap::new())
                    .await
            }
        })
        .buffer_unordered(64 * n);
    while let Some(result) = results.next().await {
        result?;
    }
    drop(results);
    let registered = started.elapsed();
    let replicated = until_counted(&cluster.metrics, services as u64, Duration::from_secs(900))
        .await
        .context("replicating the bulk services")?
        + registered;
    let rss_after = rss(&cluster.nodes)?;
    let per_service =
        (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / n as f64 / services as f64;
    println!(
        "{services} services ({per_node} per node): registered in {:.1} s, held by every node after {:.1} s; \
         {per_service:.0} bytes per service per node (RSS growth)",
        registered.as_secs_f64(),
        replicated.as_secs_f64()
    );
    super::report::record(
        "scale",
        "bulk",
        &[
            ("services", services as f64),
            ("registered_s", registered.as_secs_f64()),
            ("replicated_s", replicated.as_secs_f64()),
            ("bytes_per_service_per_node", per_service),
        ],
    );
    // A new node dialing three members.
    let names: Vec<(String, u16)> = joiner_neighbours(n)
        .into_iter()
        .map(|i| (name(i), cluster.peer_ports[i]))
        .collect();
    let neighbours: Vec<Neighbour> = names
        .iter()
        .map(|(name, port)| Neighbour {
            name,
            dial: Some(*port),
        })
        .collect();
    let mut sets = node_sets.to_vec();
    let metrics = quiet_port()?;
    sets.push(format!("metrics.listen=127.0.0.1:{metrics}"));
    let mut joiner = start_peer(&cluster.pki, &name(n), quiet_port()?, &neighbours, &sets).await?;
    let ready = joiner.wait_log("ready").await?;
    let held = services_at(metrics).await?;
    super::report::record(
        "scale",
        "join",
        &[(
            "ready_s",
            ready.duration_since(joiner.spawned).as_secs_f64(),
        )],
    );
    println!(
        "a new node joining 3 of them: ready {:.2} s after its start, holding {held} of {services} services; \
         peak RSS {:.0} MiB",
        ready.duration_since(joiner.spawned).as_secs_f64(),
        joiner.peak_rss_kib()? as f64 / 1024.0
    );
    drop(registrars);
    Ok(())
}
