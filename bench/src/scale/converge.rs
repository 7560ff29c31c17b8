//! The convergence rows of the scale workload: a subscriber on every node
//! follows what it holds while a fifth of the links are cut, every node
//! changes its own service, and the links heal.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_client::{Client, Subscription, SubscriptionEvent};
use tokio::sync::watch;

use super::{
    CONVERGE_DEADLINE,
    cluster::{ScaleCluster, name},
};

/// What one node's subscriber has seen: the URIs it holds.
type Seen = Arc<Mutex<BTreeSet<String>>>;

/// Follows `sub`, keeping `seen` current and telling `changed`.
fn follow(mut sub: Subscription, seen: Seen, changed: watch::Sender<()>) {
    tokio::spawn(async move {
        while let Some(event) = sub.next().await {
            if let Ok(mut seen) = seen.lock() {
                match event {
                    SubscriptionEvent::Added { service, .. } => {
                        seen.insert(service.uri);
                    }
                    SubscriptionEvent::Deleted { service } => {
                        seen.remove(&service.uri);
                    }
                    SubscriptionEvent::Overflow { .. } => seen.clear(),
                    SubscriptionEvent::SnapshotEnd { .. } => {}
                }
            }
            let _ = changed.send(());
        }
    });
}

/// Waits until every node `i` holds exactly `expected(i)`; returns how
/// long it took, or an error naming the nodes that did not.
async fn until_all_hold(
    seen: &[Seen],
    changed: &mut watch::Receiver<()>,
    expected: impl Fn(usize) -> BTreeSet<String>,
) -> Result<Duration> {
    let started = Instant::now();
    let lagging = || {
        seen.iter()
            .enumerate()
            .filter(|(i, s)| s.lock().map(|s| *s != expected(*i)).unwrap_or(true))
            .map(|(i, _)| name(i))
            .collect::<Vec<_>>()
    };
    loop {
        let behind = lagging();
        if behind.is_empty() {
            return Ok(started.elapsed());
        }
        let left = CONVERGE_DEADLINE.saturating_sub(started.elapsed());
        if left.is_zero() || tokio::time::timeout(left, changed.changed()).await.is_err() {
            bail!(
                "not converged within {CONVERGE_DEADLINE:?}: {} nodes behind ({})",
                behind.len(),
                behind.join(", ")
            );
        }
    }
}

/// Cuts a fifth of the links; while cut, every node withdraws the service
/// it registered before and registers a new one. Returns the seconds until
/// every node holds what its side of the cut can know (its side's new
/// services, the other sides' old ones), then from the heal until every
/// node holds exactly the new services (every delete and add crossed the
/// healed links).
pub(super) async fn converge(cluster: &ScaleCluster) -> Result<(String, String)> {
    let n = cluster.nodes.len();
    let (tell, mut changed) = watch::channel(());
    let mut seen = Vec::with_capacity(n);
    let mut registrars = Vec::with_capacity(n);
    for node in &cluster.nodes {
        let watcher = Client::connect(&node.options()).await?;
        let set: Seen = Arc::default();
        follow(
            watcher.subscribe("^tcp://scale/c/").await?,
            set.clone(),
            tell.clone(),
        );
        seen.push(set);
        // The watcher's connection must stay open: keep it with the registrar.
        registrars.push((Client::connect(&node.options()).await?, watcher));
    }
    let before = |i: usize| format!("tcp://scale/c/before/{i}");
    let after = |i: usize| format!("tcp://scale/c/after/{i}");
    for (i, (registrar, _)) in registrars.iter().enumerate() {
        registrar.register(&before(i), BTreeMap::new()).await?;
    }
    until_all_hold(&seen, &mut changed, |_| (0..n).map(before).collect())
        .await
        .context("before the cut")?;
    for proxy in &cluster.cut {
        proxy.cut();
    }
    let cut_at = Instant::now();
    for (i, (registrar, _)) in registrars.iter().enumerate() {
        registrar.unregister(&before(i)).await?;
        registrar.register(&after(i), BTreeMap::new()).await?;
    }
    let sides = &cluster.sides;
    let while_cut = until_all_hold(&seen, &mut changed, |v| {
        (0..n)
            .map(|i| {
                if sides[i] == sides[v] {
                    after(i)
                } else {
                    before(i)
                }
            })
            .collect()
    })
    .await
    .map(|_| format!("{:.2}", cut_at.elapsed().as_secs_f64()));
    let while_cut = match while_cut {
        Ok(secs) => secs,
        Err(e) => {
            eprintln!("scale (while cut): {e:#}");
            format!(">{}", CONVERGE_DEADLINE.as_secs())
        }
    };
    for proxy in &cluster.cut {
        proxy.heal().await?;
    }
    let healed = match until_all_hold(&seen, &mut changed, |_| (0..n).map(after).collect()).await {
        Ok(took) => format!("{:.2}", took.as_secs_f64()),
        Err(e) => {
            eprintln!("scale (after the heal): {e:#}");
            format!(">{}", CONVERGE_DEADLINE.as_secs())
        }
    };
    Ok((while_cut, healed))
}
