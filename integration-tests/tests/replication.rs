//! Replication between real nodes over TLS: a service registered on one
//! node reaches subscribers on every node that can reach it, deletes
//! follow, services of an unreachable origin are withdrawn after the grace
//! period and come back, and a new node receives a large catalogue as one
//! atomic batch.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use catalogue::client::{Client, ConnectOptions, Endpoint, Subscription, SubscriptionEvent};
use catalogue_integration_tests::{DEADLINE, Daemon, TestCa, runtime};

fn unix(d: &Daemon) -> ConnectOptions {
    ConnectOptions::new(Endpoint::Unix(d.socket.clone()))
}

async fn next(sub: &mut Subscription, deadline: Duration) -> Result<SubscriptionEvent> {
    match tokio::time::timeout(deadline, sub.next()).await {
        Ok(Some(e)) => Ok(e),
        Ok(None) => bail!("subscription ended"),
        Err(_) => bail!("no event within {deadline:?}"),
    }
}

/// The next add or delete, skipping snapshot ends.
async fn next_change(sub: &mut Subscription) -> Result<(&'static str, String)> {
    let (kind, uri, _origin) = next_change_from(sub).await?;
    Ok((kind, uri))
}

#[test]
fn a_service_travels_a_chain_and_is_withdrawn_while_its_origin_is_unreachable() -> Result<()> {
    let ca = TestCa::new("test-ca")?;
    let grace = ("sync.unreachable_grace", "300ms");
    let a = Daemon::builder()
        .name("node-a")
        .tls(&ca.node("node-a")?)
        .set(grace.0, grace.1)
        .peer("node-b", "")
        .start()?;
    let b_tls = ca.node("node-b")?;
    let b = Daemon::builder()
        .name("node-b")
        .tls(&b_tls)
        .set(grace.0, grace.1)
        .peer("node-a", &a.peer)
        .peer("node-c", "")
        .start()?;
    let b_peer = b.peer.clone();
    let mut c = Daemon::builder()
        .name("node-c")
        .tls(&ca.node("node-c")?)
        .set(grace.0, grace.1)
        .peer("node-b", &b.peer)
        .start()?;
    c.wait_log(DEADLINE, |l| {
        l["message"] == "initial sync done" && l["peer"] == "node-b"
    })?;

    let rt = runtime()?;
    let (registrar, mut sub) = rt.block_on(async {
        let registrar = Client::connect(&unix(&a)).await?;
        let watcher = Client::connect(&unix(&c)).await?;
        let sub = watcher.subscribe("^tcp://chain").await?;
        std::mem::forget(watcher);
        Ok::<_, anyhow::Error>((registrar, sub))
    })?;
    let started = Instant::now();
    rt.block_on(async {
        registrar.register("tcp://chain:1", BTreeMap::new()).await?;
        assert_eq!(
            next_change(&mut sub).await?,
            ("added", "tcp://chain:1".to_string())
        );
        println!(
            "register at A -> event at C over two TLS hops: {:?}",
            started.elapsed()
        );
        registrar.unregister("tcp://chain:1").await?;
        assert_eq!(
            next_change(&mut sub).await?,
            ("deleted", "tcp://chain:1".to_string())
        );
        registrar.register("tcp://chain:2", BTreeMap::new()).await?;
        assert_eq!(
            next_change(&mut sub).await?,
            ("added", "tcp://chain:2".to_string())
        );
        Ok::<_, anyhow::Error>(())
    })?;

    // Cut B: A becomes unreachable from C, and after the grace period its
    // service is withdrawn at C.
    drop(b);
    rt.block_on(async {
        assert_eq!(
            next_change(&mut sub).await?,
            ("deleted", "tcp://chain:2".to_string())
        );
        Ok::<_, anyhow::Error>(())
    })?;
    c.wait_log(DEADLINE, |l| {
        l["message"] == "origin unreachable: its services are withdrawn"
    })?;

    // B returns (same address): the service is visible at C again.
    let _b = Daemon::builder()
        .name("node-b")
        .tls(&b_tls)
        .set(grace.0, grace.1)
        .peer_listen(&b_peer)
        .peer("node-a", &a.peer)
        .peer("node-c", "")
        .start()?;
    rt.block_on(async {
        assert_eq!(
            next_change(&mut sub).await?,
            ("added", "tcp://chain:2".to_string())
        );
        Ok::<_, anyhow::Error>(())
    })?;
    drop(registrar);
    Ok(())
}

#[test]
fn a_joining_node_receives_ten_thousand_services_in_one_atomic_batch() -> Result<()> {
    const SERVICES: usize = 10_000;
    let ca = TestCa::new("test-ca")?;
    let a = Daemon::builder()
        .name("node-a")
        .tls(&ca.node("node-a")?)
        .set("limits.registrations_per_connection", "20000")
        .peer("node-d", "")
        .start()?;
    let rt = runtime()?;
    let registrar = rt.block_on(async {
        let registrar = Client::connect(&unix(&a)).await?;
        for i in 0..SERVICES {
            let attrs = BTreeMap::from([("index".to_string(), i.to_string())]);
            registrar
                .register(&format!("tcp://svc-{i}.example:{}", 1000 + i % 5000), attrs)
                .await?;
        }
        Ok::<_, anyhow::Error>(registrar)
    })?;

    let started = Instant::now();
    let mut d = Daemon::builder()
        .name("node-d")
        .tls(&ca.node("node-d")?)
        .peer("node-a", &a.peer)
        .start()?;
    // Subscribe as early as possible: every snapshot holds none or all of
    // the services (a large batch arrives as a fresh snapshot), and no
    // service arrives as a separate event.
    let snapshots = rt.block_on(async {
        // (debugging aid: the log of D is printed if this fails)
        let client = Client::connect(&unix(&d)).await?;
        let mut sub = client.subscribe("^tcp://svc-").await?;
        let mut snapshots = Vec::new();
        let mut entries = 0usize;
        loop {
            match next(&mut sub, DEADLINE).await? {
                SubscriptionEvent::Added { snapshot: true, .. } => entries += 1,
                SubscriptionEvent::SnapshotEnd { count } => {
                    assert_eq!(count as usize, entries);
                    snapshots.push(entries);
                    if entries == SERVICES {
                        break;
                    }
                    entries = 0;
                }
                other => bail!(
                    "unexpected {other:?} after snapshots {snapshots:?} and {entries} entries"
                ),
            }
        }
        Ok::<_, anyhow::Error>(snapshots)
    });
    let snapshots = match snapshots {
        Ok(s) => s,
        Err(e) => {
            let _ = d.wait_log(Duration::from_secs(2), |_| false);
            for l in d.logged() {
                let m = l["message"].as_str().unwrap_or("");
                if m.contains("batch") || m.contains("sync") || m.contains("snapshot") {
                    eprintln!("D: {l}");
                }
            }
            return Err(e);
        }
    };
    let elapsed = started.elapsed();
    assert!(
        snapshots == [SERVICES] || snapshots == [0, SERVICES],
        "snapshots seen: {snapshots:?}"
    );
    let done = d.wait_log(DEADLINE, |l| {
        l["message"] == "initial sync done" && l["peer"] == "node-a"
    })?;
    assert_eq!(
        done["received"].as_u64(),
        Some(SERVICES as u64),
        "the services (A's entry of the link itself follows once the link has synced)"
    );
    println!("node D held all {SERVICES} services {elapsed:?} after it started (debug build)");
    drop(registrar);
    Ok(())
}

#[test]
fn a_restarted_origin_does_not_bring_back_its_old_services() -> Result<()> {
    let ca = TestCa::new("test-ca")?;
    let grace = ("sync.unreachable_grace", "200ms");
    let a_tls = ca.node("node-a")?;
    let b = Daemon::builder()
        .name("node-b")
        .tls(&ca.node("node-b")?)
        .set(grace.0, grace.1)
        .peer("node-a", "")
        .peer("node-c", "")
        .start()?;
    let a = Daemon::builder()
        .name("node-a")
        .tls(&a_tls)
        .set(grace.0, grace.1)
        .peer("node-b", &b.peer)
        .start()?;
    let mut c = Daemon::builder()
        .name("node-c")
        .tls(&ca.node("node-c")?)
        .set(grace.0, grace.1)
        .peer("node-b", &b.peer)
        .start()?;
    c.wait_log(DEADLINE, |l| {
        l["message"] == "initial sync done" && l["peer"] == "node-b"
    })?;
    let rt = runtime()?;
    let mut sub = rt.block_on(async {
        let watcher = Client::connect(&unix(&c)).await?;
        let sub = watcher.subscribe("^tcp://").await?;
        std::mem::forget(watcher);
        let registrar = Client::connect(&unix(&a)).await?;
        registrar.register("tcp://old:1", BTreeMap::new()).await?;
        std::mem::forget(registrar);
        Ok::<_, anyhow::Error>(sub)
    })?;
    rt.block_on(async {
        assert_eq!(
            next_change(&mut sub).await?,
            ("added", "tcp://old:1".to_string())
        );
        Ok::<_, anyhow::Error>(())
    })?;
    // A dies without a word: C withdraws its service after the grace period.
    drop(a);
    rt.block_on(async {
        assert_eq!(
            next_change(&mut sub).await?,
            ("deleted", "tcp://old:1".to_string())
        );
        Ok::<_, anyhow::Error>(())
    })?;
    // A restarts empty. Its old service dies by a fresh delete from A
    // itself (it is the authority on its own entries); C may show it again
    // for a moment when A is back in reach, but then sees it deleted.
    let mut a = Daemon::builder()
        .name("node-a")
        .tls(&a_tls)
        .set(grace.0, grace.1)
        .peer("node-b", &b.peer)
        .start()?;
    a.wait_log(DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("services of this node's previous run"))
    })?;
    rt.block_on(async {
        let registrar = Client::connect(&unix(&a)).await?;
        // Registered after the delete, on the same path: seen after it.
        registrar.register("tcp://new:1", BTreeMap::new()).await?;
        let mut old_visible = false;
        loop {
            match next_change(&mut sub).await? {
                ("added", uri) if uri == "tcp://new:1" => break,
                ("added", uri) if uri == "tcp://old:1" => old_visible = true,
                ("deleted", uri) if uri == "tcp://old:1" => old_visible = false,
                other => bail!("unexpected {other:?}"),
            }
        }
        assert!(
            !old_visible,
            "the old service was shown again and not deleted"
        );
        let listed: Vec<String> = Client::connect(&unix(&c))
            .await?
            .list("")
            .await?
            .into_iter()
            .map(|s| s.uri)
            .collect();
        assert_eq!(listed, ["tcp://new:1"]);
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(())
}

/// The next add or delete as (kind, uri, origin), skipping snapshot ends.
async fn next_change_from(sub: &mut Subscription) -> Result<(&'static str, String, String)> {
    loop {
        match next(sub, DEADLINE).await? {
            SubscriptionEvent::Added { service, .. } => {
                return Ok(("added", service.uri, service.origin));
            }
            SubscriptionEvent::Deleted { service } => {
                return Ok(("deleted", service.uri, service.origin));
            }
            SubscriptionEvent::SnapshotEnd { .. } => continue,
            other => bail!("unexpected {other:?}"),
        }
    }
}

/// Two nodes register the same URI: each keeps its own registration, the
/// newest is what subscribers see, and one node's unregister removes only
/// its own (the other's shows again), never the other node's.
#[test]
fn one_nodes_unregister_never_removes_another_nodes_registration() -> Result<()> {
    let ca = TestCa::new("test-ca")?;
    let a = Daemon::builder()
        .name("node-a")
        .tls(&ca.node("node-a")?)
        .peer("node-b", "")
        .start()?;
    let mut b = Daemon::builder()
        .name("node-b")
        .tls(&ca.node("node-b")?)
        .peer("node-a", &a.peer)
        .start()?;
    b.wait_log(DEADLINE, |l| {
        l["message"] == "initial sync done" && l["peer"] == "node-a"
    })?;
    let uri = "tcp://shared:1";
    let rt = runtime()?;
    rt.block_on(async {
        let at_a = Client::connect(&unix(&a)).await?;
        let at_b = Client::connect(&unix(&b)).await?;
        let mut sub = at_b.subscribe("^tcp://shared").await?;
        let mut sub_a = at_a.subscribe("^tcp://shared").await?;
        let change = |kind, origin: &str| (kind, uri.to_string(), origin.to_string());

        at_a.register(uri, BTreeMap::new()).await?;
        assert_eq!(next_change_from(&mut sub).await?, change("added", "node-a"));
        // B's registration is newer: it becomes the visible one.
        at_b.register(uri, BTreeMap::new()).await?;
        assert_eq!(next_change_from(&mut sub).await?, change("added", "node-b"));
        // B unregisters: A's registration shows again, at B...
        at_b.unregister(uri).await?;
        assert_eq!(next_change_from(&mut sub).await?, change("added", "node-a"));
        // ...and at A once B's delete has arrived there...
        for origin in ["node-a", "node-b", "node-a"] {
            assert_eq!(next_change_from(&mut sub_a).await?, change("added", origin));
        }
        // ...where A still holds it (B's delete did not travel as A's).
        let held = at_a.list("^tcp://shared").await?;
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(held[0].origin, "node-a");
        // A unregisters: now it is gone.
        at_a.unregister(uri).await?;
        assert_eq!(
            next_change_from(&mut sub).await?,
            change("deleted", "node-a")
        );
        Ok::<_, anyhow::Error>(())
    })
}
