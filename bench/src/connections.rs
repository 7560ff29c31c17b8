//! Idle connections: N client connections to one node (UNIX socket), then
//! one subscription on each (its snapshot ended), then nothing. The cost
//! is the node's RSS after minus before, divided by N, for the connections
//! alone and for the subscriptions added to them. The open file limit
//! of this process is raised to its hard limit first; the node, started
//! afterwards, inherits it (it needs one descriptor per connection).

use anyhow::{Result, bail};

use super::{node::BenchNode, notify::wait_snapshot_end};
use catalogue_client::{Client, Subscription};

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
    // Idle on purpose: the idle timeout must not close them while measured.
    let mut sets = vec![
        format!("limits.connections_unix={}", count + 16),
        "limits.idle_timeout=\"1h\"".to_string(),
    ];
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
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(Client::connect(&node.options()).await?);
    }
    let connected = node.rss_kib()?;
    let mut held: Vec<Subscription> = Vec::with_capacity(count);
    for (i, client) in clients.iter().enumerate() {
        let mut sub = client.subscribe(&format!("^tcp://idle/{i}/")).await?;
        wait_snapshot_end(&mut sub).await?;
        held.push(sub);
    }
    let subscribed = node.rss_kib()?;
    let per = |from: u64, to: u64| to.saturating_sub(from) as f64 * 1024.0 / count as f64;
    println!("\nidle connections (UNIX socket), {count} connections");
    println!("{:<28} {:>10} {:>16}", "stage", "RSS MiB", "bytes per conn");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("{:<28} {:>10.1}", "before", mib(before));
    println!(
        "{:<28} {:>10.1} {:>16.0}",
        "connected",
        mib(connected),
        per(before, connected)
    );
    println!(
        "{:<28} {:>10.1} {:>16.0}",
        "+ one subscription each",
        mib(subscribed),
        per(connected, subscribed)
    );
    println!(
        "{:<28} {:>10} {:>16.0}",
        "total",
        "",
        per(before, subscribed)
    );
    let record = |row: &str, rss: u64, bytes: f64| {
        super::report::record(
            "connections",
            row,
            &[("rss_mib", mib(rss)), ("bytes_per_conn", bytes)],
        );
    };
    record("connected", connected, per(before, connected));
    record("subscribed", subscribed, per(connected, subscribed));
    record("total", subscribed, per(before, subscribed));
    drop(held);
    drop(clients);
    Ok(())
}
