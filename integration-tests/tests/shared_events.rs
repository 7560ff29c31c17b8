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

/// The live `ServiceEvent` frames a raw connection reads until it has
/// seen `deliveries` subscription deliveries (an event with `also` counts
/// once per subscription it names).
fn read_events(
    conn: &mut catalogue_integration_tests::Conn,
    deliveries: usize,
) -> Result<Vec<catalogue_proto::catalogue::ServiceEvent>> {
    use catalogue_proto::Body;
    let mut events = Vec::new();
    let mut seen = 0;
    while seen < deliveries {
        match conn.recv()?.and_then(|f| f.body) {
            Some(Body::ServiceEvent(e)) if !e.snapshot => {
                seen += 1 + e.also.len();
                events.push(e);
            }
            Some(Body::ServiceEvent(_) | Body::SnapshotEnd(_) | Body::Success(_)) => {}
            other => bail!("unexpected {other:?}"),
        }
    }
    Ok(events)
}

/// Two subscriptions on one raw connection, both matching what is
/// registered, asked with or without `grouped`.
fn two_subscriptions(daemon: &Daemon, grouped: bool) -> Result<catalogue_integration_tests::Conn> {
    use catalogue_proto::{Body, catalogue::Subscribe};
    let mut conn = catalogue_integration_tests::Conn::unix(&daemon.socket)?;
    conn.recv()?;
    for (id, regex) in [(5, "^tcp://g/"), (9, "^tcp://")] {
        conn.send(Body::Subscribe(Subscribe {
            subscription_id: id,
            regex: regex.into(),
            resume: None,
            grouped,
        }))?;
    }
    Ok(conn)
}

#[test]
fn a_client_that_asks_gets_one_frame_per_change_and_others_one_per_subscription() -> Result<()> {
    let daemon = Daemon::start()?;
    let mut old = two_subscriptions(&daemon, false)?;
    let mut new = two_subscriptions(&daemon, true)?;
    let rt = runtime()?;
    rt.block_on(async {
        let registrar =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))).await?;
        // Both connections' subscriptions have started: a marker reaches
        // them before the change under test (the second, "^tcp://",
        // subscription of each sees it).
        registrar.register("tcp://marker", BTreeMap::new()).await?;
        Ok::<_, anyhow::Error>(registrar)
    })
    .and_then(|registrar| {
        let marker = |conn: &mut catalogue_integration_tests::Conn| -> Result<()> {
            let got = read_events(conn, 1)?;
            assert_eq!(got[0].uri, "tcp://marker");
            Ok(())
        };
        marker(&mut old)?;
        marker(&mut new)?;
        rt.block_on(registrar.register("tcp://g/1", BTreeMap::new()))?;
        Ok(())
    })?;

    // Without `grouped`: a frame per subscription, none naming another.
    let mut ids: Vec<u64> = read_events(&mut old, 2)?
        .iter()
        .inspect(|e| assert!(e.also.is_empty(), "{e:?}"))
        .map(|e| {
            assert_eq!(e.uri, "tcp://g/1");
            e.subscription_id
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [5, 9]);

    // With it: one frame naming both.
    let got = read_events(&mut new, 2)?;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].uri, "tcp://g/1");
    let mut ids: Vec<u64> = std::iter::once(got[0].subscription_id)
        .chain(got[0].also.iter().copied())
        .collect();
    ids.sort();
    assert_eq!(ids, [5, 9]);
    Ok(())
}

/// With small frames (`limits.max_frame_bytes` = 2 KiB) and a large
/// change, a grouped delivery is split into frames that fit: every
/// subscription still gets the change, none is dropped as too large.
#[test]
fn grouped_frames_stay_within_the_frame_limit() -> Result<()> {
    use catalogue_proto::{Body, catalogue::Subscribe};
    const SUBS: u64 = 150;
    // Large ids (6 bytes each on the wire): 150 of them and the change
    // would not fit in one 2 KiB frame.
    const BASE: u64 = 1 << 40;
    let daemon = Daemon::builder()
        .set("limits.max_frame_bytes", "2048")
        .set("limits.max_uri_bytes", "512")
        .set("limits.subscriptions_per_connection", "200")
        .start()?;
    let mut conn = catalogue_integration_tests::Conn::unix(&daemon.socket)?;
    conn.recv()?;
    for id in BASE + 1..=BASE + SUBS {
        conn.send(Body::Subscribe(Subscribe {
            subscription_id: id,
            regex: "^tcp://big".into(),
            resume: None,
            grouped: true,
        }))?;
    }
    // Every subscription has answered and sent its (empty) snapshot.
    let mut ready = 0;
    while ready < SUBS {
        match conn.recv()?.and_then(|f| f.body) {
            Some(Body::SnapshotEnd(_)) => ready += 1,
            Some(Body::Success(_)) => {}
            other => bail!("unexpected {other:?}"),
        }
    }
    let rt = runtime()?;
    rt.block_on(async {
        let registrar =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))).await?;
        let attrs = BTreeMap::from([("blob".to_string(), "x".repeat(1400))]);
        registrar.register("tcp://big", attrs).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    let frames = read_events(&mut conn, SUBS as usize)?;
    let mut ids: Vec<u64> = frames
        .iter()
        .flat_map(|e| std::iter::once(e.subscription_id).chain(e.also.iter().copied()))
        .collect();
    ids.sort();
    assert_eq!(ids, (BASE + 1..=BASE + SUBS).collect::<Vec<_>>());
    assert!(
        frames.len() > 1 && frames.len() < SUBS as usize,
        "{} frames for {SUBS} subscriptions",
        frames.len()
    );
    Ok(())
}
