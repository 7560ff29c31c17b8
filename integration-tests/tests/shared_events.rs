//! One stream for many subscriptions (`Client::subscribe_shared`): events
//! of subscriptions on two connections arrive on one stream, each tagged
//! with its own subscription's id and in order per subscription, and a
//! cancelled subscription delivers nothing more.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use catalogue::client::{
    Client, ConnectOptions, Endpoint, Marked, SharedEvents, SubscriptionEvent, shared_events,
};
use catalogue_integration_tests::{DEADLINE, Daemon, runtime};

async fn next(events: &mut SharedEvents) -> Result<(u64, Marked)> {
    match tokio::time::timeout(DEADLINE, events.next()).await {
        Ok(Some(tagged)) => Ok(tagged),
        Ok(None) => bail!("the shared stream ended"),
        Err(_) => bail!("no event within {DEADLINE:?}"),
    }
}

/// The URI of an added service, or None for another kind of event.
fn added(marked: &Marked) -> Option<&str> {
    match &marked.event {
        SubscriptionEvent::Added { service, .. } => Some(&service.uri),
        _ => None,
    }
}

#[test]
fn subscriptions_of_two_connections_share_one_stream_and_keep_their_ids() -> Result<()> {
    let daemon = Daemon::start()?;
    let rt = runtime()?;
    rt.block_on(async {
        let options = ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()));
        let (a, b, registrar) = (
            Client::connect(&options).await?,
            Client::connect(&options).await?,
            Client::connect(&options).await?,
        );
        registrar.register("tcp://db/0", BTreeMap::new()).await?;
        let (sink, mut events) = shared_events(64);
        let db = a.subscribe_shared("^tcp://db/", None, &sink).await?;
        let all = a.subscribe_shared("^tcp://", None, &sink).await?;
        let web = b.subscribe_shared("^tcp://web/", None, &sink).await?;
        assert!(db != all && all != web && db != web, "ids {db} {all} {web}");

        // Each snapshot: db and all hold tcp://db/0, web nothing.
        let mut ended = Vec::new();
        let mut snapshot = Vec::new();
        while ended.len() < 3 {
            let (id, marked) = next(&mut events).await?;
            match &marked.event {
                SubscriptionEvent::SnapshotEnd { count } => ended.push((id, *count)),
                SubscriptionEvent::Added { service, .. } => {
                    snapshot.push((id, service.uri.clone()))
                }
                other => bail!("unexpected {other:?}"),
            }
        }
        ended.sort();
        let mut want = vec![(db, 1), (all, 1), (web, 0)];
        want.sort();
        assert_eq!(ended, want);
        snapshot.sort();
        let mut want = vec![
            (db, "tcp://db/0".to_string()),
            (all, "tcp://db/0".to_string()),
        ];
        want.sort();
        assert_eq!(snapshot, want);

        // Live events, in order per subscription, each to its own id.
        for k in 1..=5 {
            registrar
                .register(&format!("tcp://db/{k}"), BTreeMap::new())
                .await?;
            registrar
                .register(&format!("tcp://web/{k}"), BTreeMap::new())
                .await?;
        }
        let mut seen: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        while seen.values().map(Vec::len).sum::<usize>() < 5 + 10 + 5 {
            let (id, marked) = next(&mut events).await?;
            let Some(uri) = added(&marked) else {
                bail!("unexpected {marked:?}");
            };
            seen.entry(id).or_default().push(uri.to_string());
        }
        let db_uris: Vec<String> = (1..=5).map(|k| format!("tcp://db/{k}")).collect();
        let web_uris: Vec<String> = (1..=5).map(|k| format!("tcp://web/{k}")).collect();
        let all_uris: Vec<String> = (1..=5)
            .flat_map(|k| [format!("tcp://db/{k}"), format!("tcp://web/{k}")])
            .collect();
        assert_eq!(seen.get(&db), Some(&db_uris));
        assert_eq!(seen.get(&web), Some(&web_uris));
        assert_eq!(seen.get(&all), Some(&all_uris));

        // Cancel db; a db service then reaches only `all`, and the web
        // service registered after it shows that nothing else was coming.
        a.unsubscribe_id(db).await?;
        registrar.register("tcp://db/6", BTreeMap::new()).await?;
        registrar.register("tcp://web/6", BTreeMap::new()).await?;
        let mut after = Vec::new();
        while after.len() < 3 {
            let (id, marked) = next(&mut events).await?;
            after.push((id, added(&marked).unwrap_or("?").to_string()));
        }
        assert!(after.iter().all(|(id, _)| *id != db), "{after:?}");
        assert!(
            after.contains(&(all, "tcp://db/6".to_string())),
            "{after:?}"
        );
        assert!(
            after.contains(&(web, "tcp://web/6".to_string())),
            "{after:?}"
        );
        Ok(())
    })
}
