//! The catalogue benchmarks, behind `catalogue bench` and the
//! `catalogue-bench` binary: starts nodes on loopback (child `catalogue
//! serve` processes in temporary directories) and measures them with the
//! client library, printing a table per workload:
//!
//! * `notify`: register-to-event latency on one node, at a fixed rate and
//!   back to back;
//! * `http-watch`: the same with the event read from the HTTP API's
//!   Server-Sent Events watch (`http_watch.rs`);
//! * `http-reads`: reads against replication on two TLS-linked nodes: the
//!   propagation latency with and without a flood of `GET /v1/services`
//!   and `List` at the receiver, and the read latency during a
//!   replication burst (`http_reads.rs`);
//! * `fanout`: delivery rate as distinct-regex subscriptions grow, each
//!   event matching 10% of them;
//! * `cluster`: propagation over a chain A - B - C with TLS, register at A,
//!   event at C, at a fixed rate and at saturation;
//! * `sync`: a node joining one that holds N services, time until it holds
//!   them all and the peak RSS of both;
//! * `connections`: RSS per idle client connection holding a subscription;
//! * `xlreg`: registry sessions per second against RSA private-key
//!   operations per second.
//!
//! With `--etcd URL` notify, fan-out and cluster run against etcd instead
//! (its gRPC API or its v3 JSON gateway, see `etcd.rs`), for
//! `bench/compare-etcd.sh`; with `--zookeeper HOST:PORT` against ZooKeeper
//! (`zookeeper.rs`), for `bench/compare-zookeeper.sh`. `--json PATH` also
//! writes every row as JSON (`report.rs`), which `bench/compare-json.py`
//! compares. Figures depend on the build (`cargo run --release -- bench`)
//! and the machine; they are printed, never asserted.
//!
//! The bench is its own crate so the daemon's crate stays thin: the
//! `catalogue` binary calls [`run_with_nodes_of`] with itself as the node
//! binary; the
//! `catalogue-bench` binary finds `catalogue` beside itself (or takes
//! `--catalogue PATH`).

mod cluster;
mod connections;
mod etcd;
mod etcd_gateway;
#[cfg(feature = "etcd-grpc")]
mod etcd_grpc;
mod etcd_http;
mod fanout;
mod http_get;
mod http_reads;
mod http_watch;
mod measure;
mod node;
mod nodelay;
mod notify;
mod peers;
mod report;
mod scale;
mod sync;
mod xlreg;
mod zookeeper;

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

pub use etcd::EtcdApi;
pub use node::NodeBinaryError;

/// Why a bench run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No `catalogue` binary to start nodes with.
    #[error(transparent)]
    NodeBinary(#[from] NodeBinaryError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A workload failed (a node did not start, an event never came...).
    #[error("benchmark failed: {0:#}")]
    Workload(anyhow::Error),
    /// `--json`'s file could not be written.
    #[error("cannot write {0}: {1}")]
    Json(PathBuf, #[source] std::io::Error),
}

/// Which workloads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Register-to-event latency on one node.
    Notify,
    /// The same through the HTTP API's SSE watch.
    HttpWatch,
    /// Replication under a read flood, reads under a replication burst.
    HttpReads,
    /// Delivery rate as subscriptions grow.
    Fanout,
    /// Propagation over two TLS hops (A - B - C).
    Cluster,
    /// A new node syncing N services from a peer.
    Sync,
    /// Memory per idle subscribed connection.
    Connections,
    /// xlReg registry sessions per second.
    Xlreg,
    /// 32 nodes in a ring and a random graph: latency at the farthest
    /// node, convergence after cut links heal, idle cost, bulk services
    /// (only when named: it starts dozens of nodes).
    Scale,
}

/// `catalogue bench` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Workloads to run, comma-separated (default: all; with --etcd or
    /// --zookeeper: notify,fanout,cluster).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Events per latency measurement.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// Fixed rate (events per second) of the notify and cluster rows.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Events in the cluster saturation row and the pipelined notify row.
    #[arg(long, default_value_t = 20_000)]
    saturation_events: usize,
    /// Writes in flight in the cluster saturation and pipelined notify rows.
    #[arg(long, default_value_t = 32)]
    inflight: usize,
    /// Subscription counts of the fan-out rows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000,10000")]
    subscriptions: Vec<usize>,
    /// Services held by the node the sync workload joins.
    #[arg(long, default_value_t = 100_000)]
    services: usize,
    /// Idle connections of the connections workload.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Seconds per row of the xlreg workload.
    #[arg(long, default_value_t = 3)]
    xlreg_seconds: u64,
    /// Concurrent clients of the xlreg rows, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,8")]
    xlreg_clients: Vec<usize>,
    /// Nodes of the scale workload (even, at least 6).
    #[arg(long, default_value_t = 32)]
    scale_nodes: usize,
    /// Services spread over the scale workload's nodes (0: skip those rows).
    #[arg(long, default_value_t = 100_000)]
    scale_services: usize,
    /// A setting (`KEY=VALUE`, as `serve --set` takes it) for every node
    /// the bench starts, e.g. `sync.batch_delay=0ms`; repeatable.
    #[arg(long = "node-set", value_name = "KEY=VALUE")]
    node_sets: Vec<String>,
    /// Measure etcd at this client URL (http://host:port) instead of
    /// catalogue: writes go there, and watches too unless --etcd-watch.
    #[arg(long, value_name = "URL")]
    etcd: Option<String>,
    /// Another etcd member whose watchers the cluster workload uses (put
    /// at --etcd, watch here).
    #[arg(long, value_name = "URL", requires = "etcd")]
    etcd_watch: Option<String>,
    /// The etcd API the workloads use: native gRPC, or the v3 JSON
    /// gateway over HTTP/1.1.
    #[arg(long, value_enum, default_value = "grpc", requires = "etcd")]
    etcd_api: EtcdApi,
    /// Measure ZooKeeper at this server (host:port) instead of catalogue:
    /// creates go there, and watches too unless --zookeeper-watch.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "etcd")]
    zookeeper: Option<String>,
    /// Another server of the ensemble whose watches the cluster workload
    /// uses (create at --zookeeper, watch here).
    #[arg(long, value_name = "HOST:PORT", requires = "zookeeper")]
    zookeeper_watch: Option<String>,
    /// Also write every row, machine-readable, to this file (one JSON
    /// document; compare two with bench/compare-json.py).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// The `catalogue` binary whose `serve` the nodes run (default:
    /// `catalogue bench` runs its own binary, `catalogue-bench` the
    /// `catalogue` beside it).
    #[arg(long, value_name = "PATH")]
    catalogue: Option<PathBuf>,
}

impl BenchArgs {
    fn selected(&self, workload: Workload) -> bool {
        // Scale starts dozens of nodes: only when named.
        self.only.contains(&workload) || (self.only.is_empty() && workload != Workload::Scale)
    }

    fn cluster_sizes(&self) -> cluster::ClusterSizes {
        cluster::ClusterSizes {
            events: self.events,
            saturation_events: self.saturation_events,
            rate: self.rate,
            inflight: self.inflight,
        }
    }
}

/// Runs the chosen workloads, printing a table per workload on standard
/// output. The nodes run `--catalogue`, else the `catalogue` binary beside
/// the running one (`catalogue-bench` in its target directory).
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    node::choose_binary(args.catalogue.as_deref())?;
    run_workloads(args)
}

/// Like [`run`], with `node_binary` serving the nodes unless `--catalogue`
/// names another: `catalogue bench` passes its own binary, whatever its
/// file is called.
pub fn run_with_nodes_of(args: &BenchArgs, node_binary: &Path) -> Result<(), BenchError> {
    node::choose_binary(Some(args.catalogue.as_deref().unwrap_or(node_binary)))?;
    run_workloads(args)
}

fn run_workloads(args: &BenchArgs) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    runtime.block_on(async move {
        println!("catalogue bench ({})", build());
        let target = match (&args.etcd, &args.zookeeper) {
            (Some(url), _) => {
                etcd::run(args, url).await.map_err(BenchError::Workload)?;
                format!("etcd {} at {url}", args.etcd_api.name())
            }
            (None, Some(server)) => {
                let watch = args.zookeeper_watch.as_deref().unwrap_or(server);
                zookeeper::run(args, server, watch)
                    .await
                    .map_err(BenchError::Workload)?;
                format!("ZooKeeper at {server}")
            }
            (None, None) => {
                run_catalogue(args).await.map_err(BenchError::Workload)?;
                "catalogue".to_string()
            }
        };
        if let Some(path) = &args.json {
            report::write(path, &target, build()).map_err(|e| BenchError::Json(path.clone(), e))?;
        }
        Ok(())
    })
}

async fn run_catalogue(args: &BenchArgs) -> anyhow::Result<()> {
    if args.selected(Workload::Notify) || args.selected(Workload::Fanout) {
        let node = node::BenchNode::start("bench", &args.node_sets).await?;
        let result = async {
            if args.selected(Workload::Notify) {
                notify::run(
                    &node,
                    args.events,
                    args.rate,
                    (args.saturation_events, args.inflight),
                )
                .await?;
            }
            if args.selected(Workload::Fanout) {
                fanout::run(&node, args.events, &args.subscriptions, args.inflight).await?;
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        node.stop();
        result?;
    }
    if args.selected(Workload::HttpWatch) {
        http_watch::run(
            &args.node_sets,
            args.events,
            args.rate,
            (args.saturation_events, args.inflight),
        )
        .await?;
    }
    if args.selected(Workload::HttpReads) {
        let sizes = http_reads::ReadsSizes {
            events: args.events,
            saturation_events: args.saturation_events,
            rate: args.rate,
            inflight: args.inflight,
        };
        http_reads::run(sizes, &args.node_sets).await?;
    }
    if args.selected(Workload::Cluster) {
        cluster::run(args.cluster_sizes(), &args.node_sets).await?;
    }
    if args.selected(Workload::Sync) {
        sync::run(args.services, &args.node_sets).await?;
    }
    if args.selected(Workload::Connections) {
        connections::run(args.connections, &args.node_sets).await?;
    }
    if args.selected(Workload::Xlreg) {
        let sizes = xlreg::XlregSizes {
            seconds: args.xlreg_seconds,
            clients: args.xlreg_clients.clone(),
        };
        xlreg::run(&sizes, &args.node_sets).await?;
    }
    if args.selected(Workload::Scale) {
        let sizes = scale::ScaleSizes {
            nodes: args.scale_nodes,
            events: args.events,
            rate: args.rate,
            services: args.scale_services,
        };
        scale::run(sizes, &args.node_sets).await?;
    }
    Ok(())
}

fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "debug build: use --release for real figures"
    } else {
        "release build"
    }
}

/// p50, p99 and max of `samples` (microseconds), sorted in place.
pub(crate) fn percentiles(samples: &mut [u64]) -> (u64, u64, u64) {
    if samples.is_empty() {
        return (0, 0, 0);
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99), samples[samples.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn percentiles_of_a_known_sample() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentiles(&mut s), (51, 99, 100));
        assert_eq!(percentiles(&mut []), (0, 0, 0));
    }
}
