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
