//! A cluster of real nodes whose every peer link runs through a
//! fault-injecting [`Proxy`], for tests that kill nodes and cut links.
//!
//! [`Cluster::builder`] starts N `catalogue serve` processes named `n1` to
//! `nN` with certificates from one [`TestCa`], in a full mesh by default,
//! or in any topology given as a list of links ([`ClusterBuilder::edges`],
//! [`ClusterBuilder::chain`]). Nodes are numbered from 0 (`n1`) in every
//! call. For every link `i < j`, node `i` dials node `j` through the proxy
//! of that link, and node `j` only accepts from `i`; a node's `[[peers]]`
//! name its neighbours and no one else. Each node keeps its UNIX socket and
//! its peer port across restarts ([`Cluster::kill`] sends SIGKILL,
//! [`Cluster::restart`] starts it again with the same name, ports and
//! settings), so its peers reconnect through their proxies. Links are cut
//! and restored one by one ([`Cluster::cut`]) or by sides
//! ([`Cluster::partition`], [`Cluster::heal`]). Convergence is waited for by
//! comparing full listings with a deadline ([`Cluster::wait_listings`],
//! [`Cluster::wait_views`]); when the deadline passes, the error says what
//! every node lists against what it should.
//! Dropping the cluster kills every node and closes every proxy.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow, bail};
use catalogue::client::{ConnectOptions, Endpoint};
use catalogue_proto::{Body, catalogue::List};
use tempfile::TempDir;

use crate::{
    Conn, DEADLINE, Daemon, DaemonBuilder, Listed, Listing, LogLine, Proxy, Registrar, TestCa,
    TlsFiles, Watcher,
    listing::{difference, summary},
};

/// How often [`Cluster::wait_listings`] asks the nodes for their tables
/// while waiting for them to match (the poll interval; what is waited for
/// is the listings, under a deadline).
const LISTING_POLL: Duration = Duration::from_millis(50);

/// Builds a [`Cluster`].
#[derive(Debug)]
pub struct ClusterBuilder {
    size: usize,
    settings: Vec<(String, String)>,
    /// The links, when not a full mesh.
    edges: Option<Vec<(usize, usize)>>,
}

impl ClusterBuilder {
    /// Links only these pairs of nodes (numbered from 0, in either order),
    /// each through its own proxy, instead of every pair.
    pub fn edges(mut self, edges: &[(usize, usize)]) -> Self {
        self.edges = Some(edges.to_vec());
        self
    }

    /// A chain: node 0 linked to 1, 1 to 2, and so on to the last.
    pub fn chain(self) -> Self {
        let edges: Vec<(usize, usize)> = (1..self.size).map(|j| (j - 1, j)).collect();
        self.edges(&edges)
    }

    /// Adds `--set key=value` to every node (now and on restarts).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.settings.push((key.to_string(), value.to_string()));
        self
    }

    /// The links as `(low, high)` pairs: the given ones, checked, or every
    /// pair.
    fn links(&self) -> Result<BTreeSet<(usize, usize)>> {
        let Some(edges) = &self.edges else {
            return Ok((0..self.size)
                .flat_map(|j| (0..j).map(move |i| (i, j)))
                .collect());
        };
        let mut links = BTreeSet::new();
        for &(a, b) in edges {
            if a == b || a.max(b) >= self.size {
                bail!("link ({a}, {b}) in a cluster of {} nodes", self.size);
            }
            if !links.insert((a.min(b), a.max(b))) {
                bail!("link ({a}, {b}) given twice");
            }
        }
        Ok(links)
    }

    /// Starts the nodes and waits until every node has finished its
    /// initial sync with each of its neighbours.
    pub fn start(self) -> Result<Cluster> {
        let links = self.links()?;
        let ca = TestCa::new("cluster-ca")?;
        let dir = tempfile::tempdir().context("cluster dir")?;
        let mut cluster = Cluster {
            nodes: Vec::with_capacity(self.size),
            links,
            proxies: BTreeMap::new(),
            settings: self.settings,
            dir,
            ca,
        };
        for i in 0..self.size {
            let name = format!("n{}", i + 1);
            let tls = cluster.ca.node(&name)?;
            let socket = cluster.dir.path().join(format!("{name}.sock"));
            cluster.nodes.push(Node {
                name,
                tls,
                socket,
                peer: "127.0.0.1:0".to_string(),
                daemon: None,
            });
        }
        // Highest first: a node dials only higher nodes, whose proxies exist
        // by the time it starts.
        for j in (0..self.size).rev() {
            let daemon = cluster.node_builder(j).start()?;
            cluster.nodes[j].peer = daemon.peer.clone();
            for i in cluster.neighbours(j).into_iter().filter(|&i| i < j) {
                cluster.proxies.insert((i, j), Proxy::start(&daemon.peer)?);
            }
            cluster.nodes[j].daemon = Some(daemon);
        }
        for i in 0..self.size {
            let neighbours = cluster.neighbours(i);
            cluster.wait_synced(i, 0, &neighbours, DEADLINE)?;
        }
        Ok(cluster)
    }
}

/// One node's identity, kept across restarts.
struct Node {
    name: String,
    tls: TlsFiles,
    socket: PathBuf,
    /// Its peer listener (fixed after the first start).
    peer: String,
    daemon: Option<Daemon>,
}

/// Running nodes and the proxies between them; see the module docs.
pub struct Cluster {
    // Field order is drop order: nodes first, then proxies, then files.
    nodes: Vec<Node>,
    /// The links, as `(low, high)` pairs (all of them before their
    /// proxies exist: a node starting names its lower neighbours too).
    links: BTreeSet<(usize, usize)>,
    /// One per link, keyed like `links`.
    proxies: BTreeMap<(usize, usize), Proxy>,
    settings: Vec<(String, String)>,
    dir: TempDir,
    ca: TestCa,
}

impl Cluster {
    /// A builder for `size` nodes in a full mesh, with short reconnect
    /// backoff (so a restored link comes back within a second).
    pub fn builder(size: usize) -> ClusterBuilder {
        ClusterBuilder {
            size,
            settings: vec![
                ("sync.retry_initial".into(), "100ms".into()),
                ("sync.retry_max".into(), "1s".into()),
            ],
            edges: None,
        }
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Name of node `i` (`n1` for 0).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Node `i`'s UNIX socket (stable across restarts).
    pub fn socket(&self, i: usize) -> &PathBuf {
        &self.nodes[i].socket
    }

    /// Options for a client of node `i` over its UNIX socket.
    pub fn client_options(&self, i: usize) -> ConnectOptions {
        ConnectOptions::new(Endpoint::Unix(self.nodes[i].socket.clone()))
    }

    /// A registering connection to node `i` (see [`Registrar`]).
    pub fn registrar(&self, i: usize) -> Result<Registrar> {
        Registrar::connect(&self.client_options(i))
            .with_context(|| format!("registrar on {}", self.nodes[i].name))
    }

    /// A subscriber to `regex` on node `i`, recording its events from the
    /// end of its snapshot on (see [`Watcher`]).
    pub fn watch(&self, i: usize, regex: &str) -> Result<Watcher> {
        Watcher::start(&self.nodes[i].name, &self.client_options(i), regex)
    }

    /// Node `i`'s daemon, if it runs.
    pub fn daemon(&mut self, i: usize) -> Result<&mut Daemon> {
        let name = self.nodes[i].name.clone();
        self.nodes[i]
            .daemon
            .as_mut()
            .ok_or_else(|| anyhow!("node {name} is not running"))
    }

    /// Is node `i` running?
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].daemon.is_some()
    }

    /// The links, as `(low, high)` pairs of node numbers.
    pub fn links(&self) -> Vec<(usize, usize)> {
        self.links.iter().copied().collect()
    }

    /// The nodes linked to node `i`.
    pub fn neighbours(&self, i: usize) -> Vec<usize> {
        self.links
            .iter()
            .filter_map(|&(a, b)| match (a == i, b == i) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// The proxy between nodes `a` and `b` (either order). Panics when they
    /// are not linked.
    pub fn proxy(&self, a: usize, b: usize) -> &Proxy {
        self.proxies
            .get(&(a.min(b), a.max(b)))
            .unwrap_or_else(|| panic!("nodes {a} and {b} are not linked"))
    }

    /// Cuts the link between `a` and `b`.
    pub fn cut(&self, a: usize, b: usize) {
        self.proxy(a, b).cut();
    }

    /// Restores the link between `a` and `b`.
    pub fn restore(&self, a: usize, b: usize) {
        self.proxy(a, b).restore();
    }

    /// Cuts every link between `side` and the rest of the cluster (those
    /// that exist).
    pub fn partition(&self, side: &[usize]) {
        for (&(a, b), proxy) in &self.proxies {
            if side.contains(&a) != side.contains(&b) {
                proxy.cut();
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.restore();
        }
    }

    /// Kills node `i` with SIGKILL and waits for it to exit.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        self.end(i, libc::SIGKILL)
    }

    /// Stops node `i` as an operator does (SIGTERM: it says goodbye to its
    /// links and clients) and waits for it to exit.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        self.end(i, libc::SIGTERM)
    }

    fn end(&mut self, i: usize, signal: i32) -> Result<()> {
        let mut daemon = self.nodes[i]
            .daemon
            .take()
            .ok_or_else(|| anyhow!("node {} is not running", self.nodes[i].name))?;
        daemon.signal(signal)?;
        daemon.wait_exit(DEADLINE)?;
        Ok(())
    }

    /// Starts node `i` again with its name, ports, socket and settings
    /// (an empty table: services do not survive a restart). Returns once it
    /// listens; see [`Cluster::wait_synced`] for its links.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if self.nodes[i].daemon.is_some() {
            bail!("node {} is running", self.nodes[i].name);
        }
        let daemon = self.node_builder(i).start()?;
        self.nodes[i].daemon = Some(daemon);
        Ok(())
    }

    /// Waits until node `i` logs "initial sync done" with each of `peers`
    /// after log position `mark` (see [`Daemon::mark`]).
    pub fn wait_synced(
        &mut self,
        i: usize,
        mark: usize,
        peers: &[usize],
        deadline: Duration,
    ) -> Result<()> {
        let names: Vec<String> = peers.iter().map(|&p| self.nodes[p].name.clone()).collect();
        let daemon = self.daemon(i)?;
        for name in names {
            daemon
                .wait_log_from(mark, deadline, |l| {
                    l["message"] == "initial sync done" && l["peer"] == name.as_str()
                })
                .with_context(|| format!("initial sync with {name}"))?;
        }
        Ok(())
    }

    /// Node `i`'s full table, from a `List` request on its socket.
    pub fn listing(&self, i: usize) -> Result<Listing> {
        let mut conn = Conn::unix(&self.nodes[i].socket)?;
        match conn.recv()?.and_then(|f| f.body) {
            Some(Body::Welcome(_)) => {}
            other => bail!("expected Welcome, got {other:?}"),
        }
        let serial = conn.send(Body::List(List {
            regex: String::new(),
            ..Default::default()
        }))?;
        loop {
            let frame = conn.recv()?.context("node closed during List")?;
            match frame.body {
                Some(Body::ListReply(reply)) if reply.in_reply_to == serial => {
                    return Ok(reply
                        .services
                        .into_iter()
                        .map(|s| {
                            (
                                s.uri,
                                Listed {
                                    origin: s.origin,
                                    attrs: s.attrs.into_iter().collect(),
                                },
                            )
                        })
                        .collect());
                }
                Some(Body::Error(e)) => bail!("List failed: {}", e.message),
                _ => continue,
            }
        }
    }

    /// Waits until every node of `nodes` lists exactly `expected` (URI and
    /// origin; attributes too where `expected` has any); returns how long
    /// that took. On timeout the error says what each node lists.
    pub fn wait_listings(
        &self,
        nodes: &[usize],
        expected: &Listing,
        deadline: Duration,
    ) -> Result<Duration> {
        let views: Vec<(usize, &Listing)> = nodes.iter().map(|&i| (i, expected)).collect();
        self.wait_views(&views, deadline)
    }

    /// Waits until each `(node, expected)` of `views` holds at once: the
    /// node lists exactly its expected listing (as in
    /// [`Cluster::wait_listings`]); returns how long that took. On timeout
    /// the error has one line per node: what it lists, per origin, against
    /// what it should, with a few missing and extra URIs.
    pub fn wait_views(&self, views: &[(usize, &Listing)], deadline: Duration) -> Result<Duration> {
        self.wait_until(deadline, || {
            let mut lines = Vec::new();
            let mut matched = true;
            for &(i, expected) in views {
                let listing = self.listing(i)?;
                let name = &self.nodes[i].name;
                match difference(expected, &listing) {
                    Some(diff) => {
                        matched = false;
                        lines.push(format!("{name}: {diff}"));
                    }
                    None => lines.push(format!(
                        "{name}: lists {} ({}) as expected",
                        listing.len(),
                        summary(&listing)
                    )),
                }
            }
            Ok((matched, lines.join("\n")))
        })
    }

    /// Waits until node `i`'s listing satisfies `pred`; returns how long
    /// that took.
    pub fn wait_listing(
        &self,
        i: usize,
        deadline: Duration,
        pred: impl Fn(&Listing) -> bool,
    ) -> Result<Duration> {
        self.wait_until(deadline, || {
            let listing = self.listing(i)?;
            Ok((
                pred(&listing),
                format!(
                    "{} lists {} ({})",
                    self.nodes[i].name,
                    listing.len(),
                    summary(&listing)
                ),
            ))
        })
    }

    /// Asks `check` (is it done, and if not, what is wrong) until it is
    /// done or `deadline` has passed.
    fn wait_until(
        &self,
        deadline: Duration,
        check: impl Fn() -> Result<(bool, String)>,
    ) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let (done, why) = check()?;
            if done {
                return Ok(started.elapsed());
            }
            if started.elapsed() > deadline {
                bail!("still waiting after {deadline:?}:\n{why}");
            }
            std::thread::sleep(LISTING_POLL);
        }
    }

    fn node_builder(&self, i: usize) -> DaemonBuilder {
        let node = &self.nodes[i];
        let mut builder = Daemon::builder()
            .name(&node.name)
            .tls(&node.tls)
            .socket(&node.socket)
            .peer_listen(&node.peer);
        for j in self.neighbours(i) {
            let other = &self.nodes[j].name;
            builder = if j < i {
                builder.peer(other, "")
            } else {
                builder.peer(other, self.proxy(i, j).addr())
            };
        }
        for (key, value) in &self.settings {
            builder = builder.set(key, value);
        }
        builder
    }
}

/// When a JSON log line was written, from its RFC 3339 `timestamp` field
/// (UTC, as the daemon writes it).
pub fn log_time(line: &LogLine) -> Option<SystemTime> {
    let text = line["timestamp"].as_str()?;
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    let digits: String = fraction.chars().take(9).collect();
    let nanos = digits.parse::<u64>().ok()? * 10u64.pow(9 - digits.len() as u32);
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies_are_a_full_mesh_by_default_or_the_links_given() -> Result<()> {
        let mesh = Cluster::builder(4).links()?;
        assert_eq!(mesh.len(), 6);
        assert!(mesh.iter().all(|&(a, b)| a < b && b < 4));
        let chain = Cluster::builder(5).chain().links()?;
        assert_eq!(
            chain.into_iter().collect::<Vec<_>>(),
            [(0, 1), (1, 2), (2, 3), (3, 4)]
        );
        let star = Cluster::builder(4)
            .edges(&[(1, 0), (0, 2), (3, 0)])
            .links()?;
        assert_eq!(
            star.into_iter().collect::<Vec<_>>(),
            [(0, 1), (0, 2), (0, 3)]
        );
        for bad in [&[(0, 0)][..], &[(0, 4)], &[(0, 1), (1, 0)]] {
            assert!(Cluster::builder(4).edges(bad).links().is_err(), "{bad:?}");
        }
        Ok(())
    }

    #[test]
    fn log_times_parse_as_utc() {
        let line = serde_json::json!({"timestamp": "2026-11-22T01:40:06.250Z"});
        let t = log_time(&line).expect("parsed");
        assert_eq!(
            t.duration_since(UNIX_EPOCH).expect("after epoch"),
            Duration::from_millis(1_795_311_606_250)
        );
        let line = serde_json::json!({"timestamp": "1970-01-02T00:00:01.000001Z"});
        assert_eq!(
            log_time(&line).and_then(|t| t.duration_since(UNIX_EPOCH).ok()),
            Some(Duration::from_micros(86_401_000_001))
        );
    }
}
