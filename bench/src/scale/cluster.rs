//! The nodes of one topology of the scale workload: started over TLS
//! with the links [`Graph::cut`] chooses running through [`Proxy`]
//! forwarders, and waited for until every link is up.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_client::Client;

use super::{
    CONVERGE_DEADLINE, CUT_FRACTION, SEED,
    graph::Graph,
    proxy::{Proxy, ProxyThread, quiet_port},
};
use crate::{
    node::BenchNode,
    peers::{Neighbour, Pki, start_peer},
};

/// The nodes of one topology and the forwarders of their cuttable links.
pub(super) struct ScaleCluster {
    pub graph: Graph,
    pub nodes: Vec<BenchNode>,
    pub metrics: Vec<u16>,
    pub cut: Vec<Proxy>,
    /// The component of each node while the links are cut.
    pub sides: Vec<usize>,
    pub peer_ports: Vec<u16>,
    pub pki: Pki,
}

pub(super) fn name(i: usize) -> String {
    format!("n{i:02}")
}

impl ScaleCluster {
    pub(super) async fn start(
        graph: Graph,
        threads: &ProxyThread,
        extra: &[String],
    ) -> Result<ScaleCluster> {
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
pub(super) fn joiner_neighbours(n: usize) -> [usize; 3] {
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
