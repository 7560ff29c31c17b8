//! The bulk rows of the scale workload: services spread over every node,
//! the memory each node spends per service (RSS growth), and a new node
//! joining three members, counted from each node's `catalogue_services`
//! gauge so no table is streamed to the bench.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_client::Client;
use futures_util::{StreamExt, stream};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{
    cluster::{ScaleCluster, joiner_neighbours, name},
    proxy::quiet_port,
};
use crate::{
    node::BenchNode,
    peers::{Neighbour, start_peer},
};

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
pub(super) async fn bulk(
    cluster: ScaleCluster,
    services: usize,
    node_sets: &[String],
) -> Result<()> {
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
    crate::report::record(
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
    crate::report::record(
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
