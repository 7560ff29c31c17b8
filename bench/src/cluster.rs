//! Cluster propagation: three nodes in a chain A - B - C over mutually
//! authenticated TLS on loopback (B dials A and C). A registrar at A, a
//! subscriber at C; latency from the register call at A to the event at C
//! (two hops) at a fixed rate, then at saturation (registrations pipelined
//! on one connection to A), whose events/s is the rate events arrive at C.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use super::{
    measure::{Pace, latency_header, latency_row, next_index, open_loop, within},
    node::BenchNode,
    notify::wait_snapshot_end,
    peers::{Neighbour, Pki, ports, start_peer},
};
use catalogue_client::Client;

/// Sizes of the workload.
#[derive(Debug, Clone, Copy)]
pub struct ClusterSizes {
    /// Registrations per latency row.
    pub events: usize,
    /// Registrations in the saturation row.
    pub saturation_events: usize,
    /// The fixed rate, per second.
    pub rate: u32,
    /// Registrations in flight at saturation.
    pub inflight: usize,
}

/// The three nodes (A, C, B), started and synced; stopped when dropped.
struct Chain {
    nodes: Vec<BenchNode>,
    _pki: Pki,
}

impl Chain {
    async fn start(extra: &[String]) -> Result<Chain> {
        let pki = Pki::new()?;
        let p = ports(3)?;
        let accept = |name| Neighbour { name, dial: None };
        // A node started before a failure is stopped when dropped.
        let a = start_peer(&pki, "a", p[0], &[accept("b")], extra).await?;
        let c = start_peer(&pki, "c", p[2], &[accept("b")], extra).await?;
        let dial_a = Neighbour {
            name: "a",
            dial: Some(p[0]),
        };
        let dial_c = Neighbour {
            name: "c",
            dial: Some(p[2]),
        };
        let b = start_peer(&pki, "b", p[1], &[dial_a, dial_c], extra).await?;
        let mut chain = Chain {
            nodes: vec![a, c, b],
            _pki: pki,
        };
        // A and C are ready once their link with B has synced.
        for node in chain.nodes.iter_mut() {
            node.wait_log("ready").await?;
        }
        Ok(chain)
    }

    fn a(&self) -> &BenchNode {
        &self.nodes[0]
    }

    fn c(&self) -> &BenchNode {
        &self.nodes[1]
    }
}

/// Runs the workload.
pub async fn run(sizes: ClusterSizes, node_sets: &[String]) -> Result<()> {
    let chain = Chain::start(node_sets)
        .await
        .context("starting nodes a - b - c")?;
    measure(&chain, sizes).await
}

async fn measure(chain: &Chain, sizes: ClusterSizes) -> Result<()> {
    let registrar = Client::connect(&chain.a().options()).await?;
    let watcher = Client::connect(&chain.c().options()).await?;
    let mut sub = watcher.subscribe("^tcp://cluster/").await?;
    wait_snapshot_end(&mut sub).await?;
    // One registration through the chain before measuring.
    registrar
        .register("tcp://cluster/warm-up/0", BTreeMap::new())
        .await?;
    within(
        "the warm-up event at C",
        next_index(&mut sub, "tcp://cluster/warm-up/"),
    )
    .await??;
    latency_header(&format!(
        "cluster propagation (register at A -> event at C, 2 TLS hops), {} / {} events",
        sizes.events, sizes.saturation_events
    ));
    let runs = [
        (Pace::Rate(sizes.rate), sizes.events),
        (Pace::Saturate(sizes.inflight), sizes.saturation_events),
    ];
    for (round, (pace, events)) in runs.into_iter().enumerate() {
        let tag = format!("r{round}");
        let sub = tokio::sync::Mutex::new(&mut sub);
        let measured = open_loop(
            events,
            pace,
            |i| {
                let uri = format!("tcp://cluster/{tag}/{i}");
                let registrar = &registrar;
                async move { Ok(registrar.register(&uri, BTreeMap::new()).await?) }
            },
            || {
                let (sub, tag) = (&sub, &tag);
                async move { next_index(*sub.lock().await, &format!("tcp://cluster/{tag}/")).await }
            },
        )
        .await?;
        latency_row("cluster", &pace.label(), measured);
    }
    Ok(())
}
