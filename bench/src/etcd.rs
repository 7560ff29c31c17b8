//! etcd as the peer to compare with: `--etcd URL` runs the notify, fan-out
//! and cluster workloads against etcd instead of catalogue, through one of
//! its two client APIs (`--etcd-api`):
//!
//! * `grpc` (default): etcd's native API, as its own clients use it, with
//!   the `etcd-client` crate (tonic, HTTP/2): puts multiplexed on one
//!   connection, watchers multiplexed on one watch stream
//!   (`etcd_grpc.rs`; in builds with the `etcd-grpc` feature, which needs
//!   `protoc`: `cargo build --release --features etcd-grpc`);
//! * `gateway`: the v3 JSON gateway over HTTP/1.1, one watcher per
//!   connection (`etcd_gateway.rs`), which costs etcd an extra in-process
//!   gRPC hop and JSON.
//!
//! `bench/compare-etcd.sh` runs both and prints the ratios.

use anyhow::{Result, bail};
use clap::ValueEnum;

use super::{BenchArgs, Workload, etcd_gateway};

/// Which etcd client API the workloads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EtcdApi {
    /// Native gRPC (HTTP/2), the `etcd-client` crate.
    Grpc,
    /// The v3 JSON gateway over HTTP/1.1.
    Gateway,
}

impl EtcdApi {
    /// How the API is named in titles and in `--json`'s target.
    pub fn name(self) -> &'static str {
        match self {
            EtcdApi::Grpc => "gRPC",
            EtcdApi::Gateway => "JSON gateway",
        }
    }
}

/// Runs the selected workloads (notify, fanout, cluster) against etcd at
/// `url` through `args.etcd_api`.
pub async fn run(args: &BenchArgs, url: &str) -> Result<()> {
    println!("target: etcd at {url} ({})", args.etcd_api.name());
    super::connections::raise_nofile()?;
    if args
        .only
        .iter()
        .any(|w| !matches!(w, Workload::Notify | Workload::Fanout | Workload::Cluster))
    {
        bail!("with --etcd only notify, fanout and cluster can run");
    }
    let watch = args.etcd_watch.as_deref().unwrap_or(url);
    match args.etcd_api {
        #[cfg(feature = "etcd-grpc")]
        EtcdApi::Grpc => super::etcd_grpc::run(args, url, watch).await,
        #[cfg(not(feature = "etcd-grpc"))]
        EtcdApi::Grpc => bail!(
            "this catalogue was built without etcd's gRPC driver: build it with `cargo build --release --features etcd-grpc` (needs protoc, Debian's protobuf-compiler), or use --etcd-api gateway"
        ),
        EtcdApi::Gateway => etcd_gateway::run(args, url, watch).await,
    }
}
