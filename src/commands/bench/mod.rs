//! `catalogue bench`: starts a node on loopback (a child `catalogue serve`
//! in a temporary directory) and measures it with the client library,
//! printing a table. Workloads so far:
//!
//! * `notify`: one registrar, one subscriber on the same node; time from
//!   the register call to the subscriber's event (p50 / p99 / max), at a
//!   fixed rate and back to back (saturation);
//! * `fanout`: 1, 100, 1,000 and 10,000 subscriptions with distinct regexes,
//!   each event matching 10% of them; events delivered per second and the
//!   cost per event as the subscription count grows.
//!
//! Figures depend on the build (`cargo run --release -- bench`) and the
//! machine; they are printed, never asserted.

mod fanout;
mod node;
mod notify;

use clap::ValueEnum;
use tracing::error;

use super::{Exit, client};

/// Which workloads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Register-to-event latency on one node.
    Notify,
    /// Delivery rate as subscriptions grow.
    Fanout,
    /// Every workload.
    All,
}

/// Runs the chosen workloads.
pub fn run(workload: Workload, events: usize) -> Exit {
    client::block_on(async move {
        let node = match node::BenchNode::start() {
            Ok(node) => node,
            Err(e) => {
                error!("cannot start the node under test: {e:#}");
                return Exit::Failure;
            }
        };
        println!(
            "catalogue bench: node on {} ({})",
            node.socket.display(),
            build()
        );
        let result = async {
            if matches!(workload, Workload::Notify | Workload::All) {
                notify::run(&node, events).await?;
            }
            if matches!(workload, Workload::Fanout | Workload::All) {
                fanout::run(&node, events).await?;
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        node.stop();
        match result {
            Ok(()) => Exit::Ok,
            Err(e) => {
                error!("benchmark failed: {e:#}");
                Exit::Failure
            }
        }
    })
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
