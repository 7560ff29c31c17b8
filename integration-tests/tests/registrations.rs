//! Registrations that outlive a node's restart: `catalogue register` holds
//! its service while it runs, and when its node is stopped (SIGTERM, as an
//! upgrade does) or killed and started again, it registers the service
//! again by itself, so the service is visible cluster-wide again soon after
//! the node is back.

use std::time::{Duration, Instant};

use anyhow::Result;
use catalogue_integration_tests::{Cli, Cluster, DEADLINE, added, deleted};

/// How soon after its node is back the service must be visible at the
/// other node again.
const BACK_WITHIN: Duration = Duration::from_secs(2);

fn survives_a_restart_of_its_node(kill: bool) -> Result<()> {
    let uri = "tcp://kept:1";
    let mut cluster = Cluster::builder(2)
        .set("sync.unreachable_grace", "500ms")
        .start()?;
    let watcher = cluster.watch(1, "^tcp://kept")?;
    let socket = cluster.socket(0).display().to_string();
    let mut register = Cli::new(["register", uri, "--socket", &socket]).spawn()?;
    watcher.wait(0, DEADLINE, "the registration", |ev| added(ev) == [uri])?;

    let mark = watcher.mark();
    if kill {
        cluster.kill(0)?;
    } else {
        cluster.stop(0)?;
    }
    // The other node withdraws it (the link is gone)...
    watcher.wait(mark, DEADLINE, "the withdrawal", |ev| deleted(ev) == [uri])?;
    let mark = watcher.mark();
    let restarted = Instant::now();
    cluster.restart(0)?;
    // ...and shows it again once `register` has re-registered it.
    watcher.wait(mark, DEADLINE, "the re-registration", |ev| {
        added(ev).contains(&uri.to_string())
    })?;
    let took = restarted.elapsed();
    // The same process re-registered it: it never exited.
    assert!(
        register.exited()?.is_none(),
        "register exited: {}",
        register.stderr_seen.join("\n")
    );
    eprintln!(
        "figure: register ({}) re-registered and visible at the other node {took:?} after its node was started again",
        if kill { "SIGKILL" } else { "SIGTERM" }
    );
    assert!(took < BACK_WITHIN, "back after {took:?}");
    Ok(())
}

#[test]
fn register_survives_a_sigterm_and_restart_of_its_node() -> Result<()> {
    survives_a_restart_of_its_node(false)
}

#[test]
fn register_survives_a_sigkill_and_restart_of_its_node() -> Result<()> {
    survives_a_restart_of_its_node(true)
}
