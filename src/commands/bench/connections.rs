//! Idle connections: N client connections to one node (UNIX socket), each
//! with one subscription whose snapshot has ended, then nothing. The cost
//! is the node's RSS after minus before, divided by N. The open file limit
//! of this process is raised to its hard limit first; the node, started
//! afterwards, inherits it (it needs one descriptor per connection).

use anyhow::{Result, bail};

use super::{node::BenchNode, notify::wait_snapshot_end};
use crate::client::{Client, Subscription};

/// Descriptors kept free for everything else.
const SPARE_FDS: u64 = 64;

/// Raises the soft open-file limit to the hard one; returns the new soft
/// limit.
pub fn raise_nofile() -> Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Runs the workload with `count` connections.
pub async fn run(count: usize, extra: &[String]) -> Result<()> {
    let fds = raise_nofile()?;
    if (count as u64) + SPARE_FDS > fds {
        bail!(
            "{count} connections need more open files than the hard limit ({fds}) allows; raise it (ulimit -Hn)"
        );
    }
    let mut sets = vec![format!("limits.max_connections={}", count + 16)];
    sets.extend(extra.iter().cloned());
    let node = BenchNode::start("conns", &sets).await?;
    measure(&node, count).await
}

async fn measure(node: &BenchNode, count: usize) -> Result<()> {
    // One connection first, so the baseline includes what the first
    // connection warms up (buffers, the matcher).
    let first = Client::connect(&node.options()).await?;
    let mut first_sub = first.subscribe("^tcp://idle/first/").await?;
    wait_snapshot_end(&mut first_sub).await?;
    let before = node.rss_kib()?;
    let mut held: Vec<(Client, Subscription)> = Vec::with_capacity(count);
    for i in 0..count {
        let client = Client::connect(&node.options()).await?;
        let mut sub = client.subscribe(&format!("^tcp://idle/{i}/")).await?;
        wait_snapshot_end(&mut sub).await?;
        held.push((client, sub));
    }
    let after = node.rss_kib()?;
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / count as f64;
    println!("\nidle connections: each with one subscription (UNIX socket)");
    println!(
        "{:>12} {:>14} {:>14} {:>16}",
        "connections", "RSS before MiB", "RSS after MiB", "bytes per conn"
    );
    println!(
        "{count:>12} {:>14.1} {:>14.1} {per:>16.0}",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    drop(held);
    Ok(())
}
