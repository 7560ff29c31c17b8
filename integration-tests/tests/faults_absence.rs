//! Fault scenario 3, long absence: a node cut off for longer than the
//! tombstone TTL still holds a service that was deleted, and whose
//! tombstone was purged, while it was away. When it comes back the service
//! must not reappear anywhere: not in any listing, and not in the events
//! of subscribers on any node, the returning one included.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use catalogue::client::{Client, Subscription, SubscriptionEvent};
use catalogue_integration_tests::{Cluster, DEADLINE, log_time, runtime};

/// Tombstone TTL of the test cluster. The node purges every 10 s, so a
/// purge past the TTL comes at most about 11 s after the delete.
const TTL: Duration = Duration::from_secs(1);
/// Bound on waiting for that purge.
const PURGE_DEADLINE: Duration = Duration::from_secs(25);

/// Reads `sub` until every URI of `sentinels` has been added; returns the
/// adds and deletes seen, as (kind, URI).
async fn events_until(
    sub: &mut Subscription,
    sentinels: &[String],
) -> Result<Vec<(&'static str, String)>> {
    let mut seen = Vec::new();
    let mut waiting: Vec<&String> = sentinels.iter().collect();
    while !waiting.is_empty() {
        let event = match tokio::time::timeout(DEADLINE, sub.next()).await {
            Ok(Some(event)) => event,
            Ok(None) => bail!("subscription ended; seen {seen:?}"),
            Err(_) => bail!("sentinels {waiting:?} not seen within {DEADLINE:?}; seen {seen:?}"),
        };
        match event {
            SubscriptionEvent::Added { service, .. } => {
                waiting.retain(|s| **s != service.uri);
                seen.push(("added", service.uri));
            }
            SubscriptionEvent::Deleted { service } => seen.push(("deleted", service.uri)),
            SubscriptionEvent::SnapshotEnd { .. } => {}
            other @ SubscriptionEvent::Overflow { .. } => bail!("unexpected {other:?}"),
        }
    }
    Ok(seen)
}

/// Reads the snapshot of a new subscription; returns its URIs.
async fn events_until_snapshot_end(sub: &mut Subscription) -> Result<Vec<String>> {
    let mut uris = Vec::new();
    loop {
        match tokio::time::timeout(DEADLINE, sub.next()).await {
            Ok(Some(SubscriptionEvent::Added {
                service,
                snapshot: true,
            })) => uris.push(service.uri),
            Ok(Some(SubscriptionEvent::SnapshotEnd { .. })) => return Ok(uris),
            other => bail!("expected a snapshot, got {other:?}"),
        }
    }
}

#[test]
fn a_node_away_longer_than_the_tombstone_ttl_does_not_resurrect_a_deleted_service() -> Result<()> {
    let mut cluster = Cluster::builder(3)
        .set("sync.unreachable_grace", "300ms")
        .set("sync.tombstone_ttl", "1s")
        .start()?;
    let (a, b, c) = (0, 1, 2);
    let x = "tcp://n1-doomed.example:80".to_string();
    let rt = runtime()?;

    // X is registered at A and the future absentee C learns it.
    let registrar = rt.block_on(async {
        let registrar = Client::connect(&cluster.client_options(a)).await?;
        registrar.register(&x, BTreeMap::new()).await?;
        Ok::<_, anyhow::Error>(registrar)
    })?;
    cluster.wait_listing(c, DEADLINE, |l| l.contains_key(&x))?;

    // C is cut off; after the grace period it hides X (but still holds it).
    let away_at = Instant::now();
    cluster.cut(a, c);
    cluster.cut(b, c);
    cluster.wait_listing(c, DEADLINE, |l| !l.contains_key(&x))?;
    cluster
        .daemon(c)?
        .wait_log(DEADLINE, |l| {
            l["message"] == "origin unreachable: its services are withdrawn" && l["origin"] == "n1"
        })
        .context("C hiding A's services")?;

    // Watchers on every node from now on.
    let mut watchers = rt.block_on(async {
        let mut watchers = Vec::new();
        for i in [a, b, c] {
            let client = Client::connect(&cluster.client_options(i)).await?;
            let mut sub = client.subscribe("^tcp://").await?;
            let snapshot = events_until_snapshot_end(&mut sub).await?;
            // A and B still show X; C hides it.
            assert_eq!(
                snapshot.contains(&x),
                i != c,
                "node {i}: snapshot {snapshot:?}"
            );
            watchers.push((client, sub));
        }
        Ok::<_, anyhow::Error>(watchers)
    })?;

    // X is deleted while C is away, and A and B purge its tombstone.
    let marks = [cluster.daemon(a)?.mark(), cluster.daemon(b)?.mark()];
    rt.block_on(registrar.unregister(&x))?;
    let deleted_at = SystemTime::now();
    cluster.wait_listing(b, DEADLINE, |l| !l.contains_key(&x))?;
    let past_ttl = deleted_at + TTL + Duration::from_millis(100);
    for (i, mark) in [a, b].into_iter().zip(marks) {
        cluster
            .daemon(i)?
            .wait_log_from(mark, PURGE_DEADLINE, |l| {
                l["message"] == "expired tombstones purged"
                    && log_time(l).is_some_and(|t| t >= past_ttl)
            })
            .with_context(|| format!("node {i} purging X's tombstone"))?;
    }

    // C comes back.
    let back_mark = cluster.daemon(c)?.mark();
    let a_mark = cluster.daemon(a)?.mark();
    let back_at = Instant::now();
    let absence = away_at.elapsed();
    cluster.heal();
    cluster.wait_synced(c, back_mark, &[a, b], DEADLINE)?;
    let synced_in = back_at.elapsed();
    // The scenario took the path it is about: C was the stale side for
    // A's entries, so A replaced C's view of them.
    cluster
        .daemon(a)?
        .wait_log_from(a_mark, DEADLINE, |l| {
            l["message"] == "initial batch planned"
                && l["peer"] == "n3"
                && l["replace"].as_str().is_some_and(|r| r.contains("\"n1\""))
        })
        .context("A replacing C's view of A's entries")?;

    // Sentinels registered after the return, at A and at C, travel behind
    // anything the sync could have brought back.
    let sentinels = vec![
        "tcp://n1-sentinel.example:80".to_string(),
        "tcp://n3-sentinel.example:80".to_string(),
    ];
    let mut checked = 0;
    let sentinel_clients = rt.block_on(async {
        let at_a = Client::connect(&cluster.client_options(a)).await?;
        at_a.register(&sentinels[0], BTreeMap::new()).await?;
        let at_c = Client::connect(&cluster.client_options(c)).await?;
        at_c.register(&sentinels[1], BTreeMap::new()).await?;
        for (i, (_, sub)) in watchers.iter_mut().enumerate() {
            let seen = events_until(sub, &sentinels).await?;
            checked += seen.len();
            assert!(
                !seen.iter().any(|(kind, uri)| *kind == "added" && *uri == x),
                "node {i}: X reappeared in the events after its delete: {seen:?}"
            );
        }
        Ok::<_, anyhow::Error>((at_a, at_c))
    })?;
    for i in [a, b, c] {
        let listing = cluster.listing(i)?;
        assert!(!listing.contains_key(&x), "node {i} lists X again");
        assert!(sentinels.iter().all(|s| listing.contains_key(s)));
    }
    eprintln!(
        "figure: long absence: C away {:.2} s (tombstone TTL {TTL:?}, purge seen on A and B), \
         resynced with both in {:.2} s; X absent from 3 listings and from {checked} events \
         checked on 3 subscribers",
        absence.as_secs_f64(),
        synced_in.as_secs_f64(),
    );
    drop((registrar, sentinel_clients, watchers));
    Ok(())
}
