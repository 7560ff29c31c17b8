//! A cluster formed through the xlReg registry alone: three nodes with no
//! static peers learn each other from the member tokens, link over TLS
//! (their certificates name the cluster, as members known only from the
//! registry must), and replicate a service end to end.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use catalogue::client::{Client, ConnectOptions, Endpoint, SubscriptionEvent};
use catalogue_integration_tests::{DEADLINE, Daemon, TestCa, http_get, link_changed, runtime};

#[test]
fn three_nodes_form_a_cluster_from_the_registry_alone() -> Result<()> {
    let mut registry = Daemon::builder()
        .name("registry")
        .xlreg_registry()
        .metrics()
        .start()?;
    let metrics = registry.metrics_address()?;
    let line = registry.wait_log(DEADLINE, |l| l["message"] == "xlReg registry listening")?;
    let address = line["address"]
        .as_str()
        .context("registry address")?
        .to_string();
    let key = registry.dir().join("xlreg").join("registry.pub");
    assert!(key.exists(), "public key written to {}", key.display());
    let key = key.display().to_string();

    let ca = TestCa::new("test-ca")?;
    let start = |name: &str| -> Result<Daemon> {
        Daemon::builder()
            .name(name)
            .tls(&ca.node_in(name, "formed")?)
            .xlreg_member(&address, &key, "formed", 3)
            .start()
    };
    let mut a = start("node-a")?;
    let b = start("node-b")?;
    let mut c = start("node-c")?;
    for (x, y) in [
        ("node-a", "node-b"),
        ("node-a", "node-c"),
        ("node-b", "node-c"),
    ] {
        a.wait_log(DEADLINE, link_changed(x, y, "add"))?;
    }
    c.wait_log(DEADLINE, |l| {
        l["message"] == "every cluster member is known"
    })?;

    let rt = runtime()?;
    rt.block_on(async {
        let watcher =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(c.socket.clone()))).await?;
        let mut sub = watcher.subscribe("^tcp://formed").await?;
        let registrar =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(a.socket.clone()))).await?;
        registrar
            .register("tcp://formed:1", BTreeMap::new())
            .await?;
        loop {
            match tokio::time::timeout(DEADLINE, sub.next()).await {
                Ok(Some(SubscriptionEvent::Added { service, .. })) => {
                    assert_eq!(service.uri, "tcp://formed:1");
                    assert_eq!(service.origin, "node-a");
                    break;
                }
                Ok(Some(SubscriptionEvent::SnapshotEnd { .. })) => continue,
                other => bail!("expected the service at node-c, got {other:?}"),
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    // The registry counted the three members' handshakes.
    let (_, scrape) = http_get(&metrics, "/metrics")?;
    let completed: f64 = scrape
        .lines()
        .find(|l| l.starts_with("catalogue_xlreg_handshakes_total{result=\"completed\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .context("catalogue_xlreg_handshakes_total in /metrics")?;
    assert!(completed >= 3.0, "{completed} handshakes");
    drop(b);
    Ok(())
}

/// Membership follows the registry: node-c's host is lost with its
/// identity directory, and its replacement (a new identity under the same
/// name) cannot join (its name is held by the lost identity); the operator
/// removes the lost member, which frees its slot and its name; the
/// replacement joins and every node links to it. Then a member leaves by
/// itself and its links close everywhere.
#[test]
fn nodes_follow_removals_leaves_and_freed_slots() -> Result<()> {
    use catalogue_integration_tests::{Cli, unlinked};
    let mut registry = Daemon::builder()
        .name("registry")
        .set("xlreg.serve", "true")
        .set("xlreg.listen", "127.0.0.1:0")
        .start()?;
    let line = registry.wait_log(DEADLINE, |l| l["message"] == "xlReg registry listening")?;
    let address = line["address"]
        .as_str()
        .context("registry address")?
        .to_string();
    let key = registry.dir().join("xlreg").join("registry.pub");
    let key = key.display().to_string();
    let ca = TestCa::new("test-ca")?;
    let start = |name: &str| -> Result<Daemon> {
        Daemon::builder()
            .name(name)
            .tls(&ca.node_in(name, "mended")?)
            .set("xlreg.server", &address)
            .set("xlreg.server_key", &key)
            .set("xlreg.cluster.name", "mended")
            .set("xlreg.cluster.size", "3")
            .start()
    };
    let mut a = start("node-a")?;
    // node-a creates the cluster before the others start: whoever creates
    // it stays registered when removed (docs/XLREG.md), and node-c, removed
    // below, must not be the one (started at once, any of the three could
    // win the race to create it).
    a.wait_log(DEADLINE, |l| {
        l["message"] == "joined the cluster; this node's id is its member index"
    })?;
    let mut b = start("node-b")?;
    let c = start("node-c")?;
    for (x, y) in [
        ("node-a", "node-b"),
        ("node-a", "node-c"),
        ("node-b", "node-c"),
    ] {
        a.wait_log(DEADLINE, link_changed(x, y, "add"))?;
    }
    // node-c's host is lost with its identity (the daemon's directory);
    // its replacement registers as node-c-2 and refuses to join so
    drop(c);
    let mut c = start("node-c")?;
    c.wait_log(DEADLINE, |l| {
        l["message"] == "refusing the xlReg cluster" && l["reason"] == "name_taken"
    })?;
    // the operator removes the lost member on the registry's host
    let mark = (a.mark(), b.mark());
    let out = Cli::new([
        "xlreg".to_string(),
        "admin".into(),
        "remove-member".into(),
        "mended".into(),
        "node-c".into(),
        "--data-dir".into(),
        registry.dir().display().to_string(),
    ])
    .output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("node-c is free"), "{}", out.stdout);
    // the replacement joins the freed slot (after its backoff); both nodes
    // link to it at its new address
    let relink = DEADLINE * 4;
    a.wait_log_from(mark.0, relink, link_changed("node-a", "node-c", "add"))?;
    b.wait_log_from(mark.1, relink, link_changed("node-b", "node-c", "add"))?;
    c.wait_log(DEADLINE, |l| {
        l["message"] == "every cluster member is known"
    })?;
    // node-b leaves by itself (with its own identity): its links close
    let identity = b.dir().join("xlreg-client").display().to_string();
    let out = Cli::new([
        "xlreg",
        "leave",
        "mended",
        "--server",
        &address,
        "--server-key",
        &key,
        "--identity-dir",
        &identity,
        "--name",
        "node-b",
    ])
    .output(DEADLINE)?;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for node in [&mut a, &mut c] {
        node.wait_log(DEADLINE, |l| {
            l["message"] == "cluster member gone (left or removed)" && l["member"] == "node-b"
        })?;
        node.wait_log(DEADLINE, unlinked("node-b"))?;
    }
    b.wait_log(DEADLINE, |l| {
        l["message"]
            == "this node is no longer a member of the xlReg cluster (it left or was removed)"
    })?;
    Ok(())
}
