//! xlReg sessions: a node serving the registry on loopback; each client
//! runs full sessions back to back (Hello, `Client` registering a new
//! identity, `Join`, `Bye`), on its own thread and runtime, for a fixed
//! time with 1, 2 and 8 clients. Printed next to this machine's RSA-2048
//! private-key operations per second (`openssl speed`, one core), since a
//! session costs the registry one private-key operation (the Hello) and
//! the client one (signing its token).
//!
//! Wall-clock rates follow the machine's load (the node and the clients
//! share its cores with whatever else runs), so each row also gives the
//! CPU time a session cost the node (its `utime + stime` from
//! `/proc/<pid>/stat` before and after the row) and the clients (this
//! process's, which runs nothing else during the row), and from the
//! node's: sessions per second per node core, `1 / node CPU per session`,
//! which the load does not change much.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_actors::xlreg::{Identity, PrivateKey, PublicKey, RegistryClient, public_key_pem};

use super::node::{BenchNode, cpu_ticks, free_port, ticks_per_second};

/// Members per cluster (the registry's most).
const CLUSTER_SIZE: usize = 64;

/// Sizes of the workload.
#[derive(Debug, Clone)]
pub struct XlregSizes {
    /// Seconds per concurrency level.
    pub seconds: u64,
    /// Concurrency levels.
    pub clients: Vec<usize>,
}

/// Everything a session thread needs.
#[derive(Clone)]
struct Target {
    addr: String,
    key: PublicKey,
    keys: Arc<Vec<PrivateKey>>,
    next: Arc<AtomicUsize>,
    slots: usize,
}

/// Runs the workload.
pub async fn run(sizes: &XlregSizes, extra: &[String]) -> Result<()> {
    let port = free_port()?;
    // Every client runs on loopback, one source: lift the per-source
    // bounds, and let the admin create every cluster the run needs.
    let mut sets = vec![
        "xlreg.serve=true".into(),
        format!("xlreg.listen=127.0.0.1:{port}"),
        "xlreg.sessions_per_source=0".into(),
        "xlreg.max_connections_per_source=0".into(),
        "xlreg.max_clusters_per_client=10000".into(),
    ];
    sets.extend(extra.iter().cloned());
    let mut node = BenchNode::start("xlreg", &sets).await?;
    let result = async {
        node.wait_log("xlReg registry listening").await?;
        measure(&node, port, sizes).await
    }
    .await;
    node.stop();
    result
}

async fn measure(node: &BenchNode, port: u16, sizes: &XlregSizes) -> Result<()> {
    let pem = public_key_pem(node.data_dir()).context("the registry's public key")?;
    let key = PublicKey::from_pem(pem.as_bytes())?;
    let addr = format!("127.0.0.1:{port}");
    let keys = tokio::task::spawn_blocking(|| {
        (0..4)
            .map(|_| PrivateKey::generate(2048))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    // Enough clusters for every session at the fastest rate seen so far
    // on a small machine (a few thousand per second), with room to spare.
    let clusters = (sizes.seconds as usize * 6000)
        .div_ceil(CLUSTER_SIZE)
        .max(1);
    let mut admin = RegistryClient::connect(&addr, &key).await?;
    let mut me = Identity::ephemeral("admin", keys[0].clone(), keys[1].clone());
    admin.register(&mut me, &[]).await?;
    for k in 0..clusters {
        admin
            .create(&format!("bench-{k}"), CLUSTER_SIZE as u32, 1)
            .await?;
    }
    admin.bye().await?;
    let target = Target {
        addr,
        key,
        keys: Arc::new(keys),
        next: Arc::new(AtomicUsize::new(0)),
        slots: clusters * CLUSTER_SIZE,
    };
    let rsa = tokio::task::spawn_blocking(openssl_rsa2048_sign_per_second).await?;
    println!(
        "\nxlReg: full sessions (Hello, Client, Join, Bye), {} s per row",
        sizes.seconds
    );
    println!(
        "{:>8} {:>10} {:>11} {:>13} {:>15} {:>16} {:>10}",
        "clients",
        "sessions",
        "sessions/s",
        "node us/sess",
        "client us/sess",
        "sess/s/node-core",
        "RSA sign/s"
    );
    let tick = ticks_per_second();
    let me = std::process::id();
    for &clients in &sizes.clients {
        let target = target.clone();
        let seconds = sizes.seconds;
        let (node_before, own_before) = (cpu_ticks(node.pid())?, cpu_ticks(me)?);
        let started = Instant::now();
        let sessions =
            tokio::task::spawn_blocking(move || sessions(&target, clients, seconds)).await??;
        let elapsed = started.elapsed().as_secs_f64();
        let (node_after, own_after) = (cpu_ticks(node.pid())?, cpu_ticks(me)?);
        let per_session = |ticks: u64| ticks as f64 / tick / sessions.max(1) as f64;
        let node_cpu = per_session(node_after.saturating_sub(node_before));
        let client_cpu = per_session(own_after.saturating_sub(own_before));
        let per_core = if node_cpu > 0.0 { 1.0 / node_cpu } else { 0.0 };
        let mut figures = vec![
            ("sessions_per_s", sessions as f64 / elapsed),
            ("node_cpu_us_per_session", node_cpu * 1e6),
            ("client_cpu_us_per_session", client_cpu * 1e6),
            ("sessions_per_s_per_node_core", per_core),
        ];
        if let Ok(rate) = &rsa {
            figures.push(("rsa2048_sign_per_s", *rate));
        }
        super::report::record("xlreg", &clients.to_string(), &figures);
        println!(
            "{clients:>8} {sessions:>10} {:>11.0} {:>13.0} {:>15.0} {:>16.0} {:>10}",
            sessions as f64 / elapsed,
            node_cpu * 1e6,
            client_cpu * 1e6,
            per_core,
            match &rsa {
                Ok(rate) => format!("{rate:.0}"),
                Err(e) => format!("not measured ({e})"),
            }
        );
    }
    Ok(())
}

/// Runs sessions on `clients` threads for `seconds`; returns how many
/// completed.
fn sessions(target: &Target, clients: usize, seconds: u64) -> Result<usize> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let target = target.clone();
            std::thread::spawn(move || -> Result<usize> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let mut done = 0;
                    while Instant::now() < until {
                        session(&target, t).await?;
                        done += 1;
                    }
                    Ok(done)
                })
            })
        })
        .collect();
    let mut total = 0;
    for thread in threads {
        match thread.join() {
            Ok(done) => total += done?,
            Err(_) => bail!("a session thread panicked"),
        }
    }
    Ok(total)
}

/// One full session as a new client joining the next free cluster slot.
async fn session(target: &Target, thread: usize) -> Result<()> {
    let i = target.next.fetch_add(1, Ordering::Relaxed);
    if i >= target.slots {
        bail!(
            "ran out of cluster slots ({}); shorten --xlreg-seconds",
            target.slots
        );
    }
    let k = target.keys.len();
    let mut me = Identity::ephemeral(
        &format!("b{i}"),
        target.keys[thread % k].clone(),
        target.keys[(thread + 1) % k].clone(),
    );
    let mut client = RegistryClient::connect(&target.addr, &target.key).await?;
    client
        .register(&mut me, &["127.0.0.1:1".to_string()])
        .await?;
    client.join(&format!("bench-{}", i / CLUSTER_SIZE)).await?;
    client.bye().await?;
    Ok(())
}

/// RSA-2048 private-key operations per second on one core, from
/// `openssl speed -seconds 3 rsa2048` (its `sign/s` column).
fn openssl_rsa2048_sign_per_second() -> Result<f64> {
    let output = std::process::Command::new("openssl")
        .args(["speed", "-seconds", "3", "rsa2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .context("openssl is not installed")?;
    parse_openssl_speed(&String::from_utf8_lossy(&output.stdout))
        .context("no rsa 2048 line in the output of openssl speed")
}

/// The `sign/s` figure of an `openssl speed rsa2048` table.
fn parse_openssl_speed(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.len() >= 4 && words[0] == "rsa" && words[1] == "2048" && words[2] == "bits"
    })?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words.get(words.len().checked_sub(2)?)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_openssl_speed;

    #[test]
    fn sign_rate_from_openssl_speed() {
        let text = "                  sign    verify    sign/s verify/s\n\
                    rsa 2048 bits 0.000271s 0.000008s   3689.0 125000.0\n";
        assert_eq!(parse_openssl_speed(text), Some(3689.0));
        assert_eq!(parse_openssl_speed("nothing"), None);
    }
}
