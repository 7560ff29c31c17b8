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

mod bulk;
mod cluster;
mod converge;
pub mod graph;
pub mod proxy;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_client::Client;

use self::{cluster::ScaleCluster, graph::Graph, proxy::ProxyThread};
use super::{
    measure::{Pace, next_index, open_loop, within},
    node::{BenchNode, cpu_ticks, ticks_per_second},
    notify::wait_snapshot_end,
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
        let (while_cut, healed) = converge::converge(&cluster).await?;
        let (cpu, cpu_max, rss) = idle(&cluster).await?;
        println!(
            "{label:<10} {hops:>5} {p50:>8} {p99:>8} {max:>8} {sides:>6} {while_cut:>8} {healed:>8} {cpu:>10.2} {cpu_max:>8.2} {rss:>8.1}"
        );
        let secs = |text: &str| {
            text.trim_start_matches('>')
                .parse::<f64>()
                .unwrap_or(f64::NAN)
        };
        crate::report::record(
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
            bulk::bulk(cluster, sizes.services, node_sets).await?;
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
    let tick = ticks_per_second();
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
