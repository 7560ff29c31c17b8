//! `GET /v1/watch` of a real node read as a browser's `EventSource` reads
//! it: the snapshot, `snapshot_end`, live changes each with an id; after a
//! drop, exactly what was missed (deletes included) when resuming with
//! `Last-Event-ID`, or `reset` and a fresh snapshot when the node cannot;
//! and a stream that ends gives its subscription back.

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, ensure};
use catalogue::client::{Client, ConnectOptions, Endpoint};
use catalogue_integration_tests::{DEADLINE, Daemon, SseEvent, SseStream, runtime, scrape};

const WATCH: &str = "/v1/watch?match=%5Etcp%3A%2F%2Fw";

fn summary(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!("{} {}", e.kind, e.data["uri"].as_str().unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect()
}

fn last_id(events: &[SseEvent]) -> Result<String> {
    events
        .iter()
        .rev()
        .find_map(|e| e.id.clone())
        .context("no event with an id")
}

#[test]
fn a_watch_resumes_after_a_drop_with_exactly_what_it_missed() -> Result<()> {
    let daemon = Daemon::builder().http().start()?;
    let rt = runtime()?;
    let holder = rt.block_on(async {
        let c =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))).await?;
        for uri in ["tcp://w-a:1", "tcp://w-b:1", "tcp://other:1"] {
            c.register(uri, BTreeMap::new()).await?;
        }
        anyhow::Ok(c)
    })?;

    let mut stream = SseStream::open(&daemon.http, WATCH, None)?;
    ensure!(
        stream.status == 200,
        "watch answered {}: {}",
        stream.status,
        stream.error_body
    );
    assert!(
        stream.connection_close,
        "a watch opening its connection is handed to the node's thread, which closes it with the stream"
    );
    let snapshot = stream.until_snapshot_end(DEADLINE)?;
    assert_eq!(
        summary(&snapshot),
        ["added tcp://w-a:1", "added tcp://w-b:1", "snapshot_end"]
    );
    assert!(snapshot[0].data["snapshot"] == true && snapshot[0].id.is_none());
    assert!(
        snapshot[2].id.is_some(),
        "snapshot_end carries the position"
    );

    rt.block_on(holder.register("tcp://w-c:1", BTreeMap::new()))?;
    let added = stream.next_event(DEADLINE)?;
    assert_eq!(summary(std::slice::from_ref(&added)), ["added tcp://w-c:1"]);
    assert_eq!(added.data["snapshot"], false);
    let seen = added.id.clone().context("a live change has an id")?;

    // The client goes away; meanwhile one service goes and one comes.
    drop(stream);
    rt.block_on(async {
        holder.unregister("tcp://w-a:1").await?;
        holder.register("tcp://w-d:1", BTreeMap::new()).await?;
        holder.register("tcp://other:2", BTreeMap::new()).await
    })?;

    let mut resumed = SseStream::open(&daemon.http, WATCH, Some(&seen))?;
    let missed = resumed.until_snapshot_end(DEADLINE)?;
    assert_eq!(
        summary(&missed),
        ["deleted tcp://w-a:1", "added tcp://w-d:1", "snapshot_end"],
        "what was missed, and nothing else"
    );
    assert_eq!(missed[2].data["resumed"], true);
    assert!(missed.iter().all(|e| e.id.is_some()));

    // A position from another epoch (a node that restarted): reset, then
    // the fresh snapshot.
    let stale = format!("{}:1", u64::MAX);
    let mut reset = SseStream::open(&daemon.http, WATCH, Some(&stale))?;
    let fresh = reset.until_snapshot_end(DEADLINE)?;
    assert_eq!(
        summary(&fresh),
        [
            "reset",
            "added tcp://w-b:1",
            "added tcp://w-c:1",
            "added tcp://w-d:1",
            "snapshot_end"
        ]
    );
    assert_eq!(fresh[4].data["reset"], true);
    let _ = last_id(&fresh)?;
    Ok(())
}

#[test]
fn bad_watches_are_refused_and_ended_streams_give_their_subscription_back() -> Result<()> {
    let mut daemon = Daemon::builder()
        .http()
        .set("metrics.listen", "127.0.0.1:0")
        .start()?;
    let bad_id = SseStream::open(&daemon.http, WATCH, Some("yesterday"))?;
    assert_eq!(bad_id.status, 400, "{}", bad_id.error_body);
    assert!(
        bad_id.error_body.contains("bad_request"),
        "{}",
        bad_id.error_body
    );
    let bad_regex = SseStream::open(&daemon.http, "/v1/watch?match=%28", None)?;
    assert_eq!(bad_regex.status, 400);
    assert!(
        bad_regex.error_body.contains("bad_regex"),
        "{}",
        bad_regex.error_body
    );

    let line = daemon.wait_log(DEADLINE, |l| l["message"] == "metrics endpoint listening")?;
    let metrics = line["address"]
        .as_str()
        .context("metrics address")?
        .to_string();
    let subscriptions = |metrics: &str| -> Result<f64> {
        Ok(scrape(metrics)?
            .get("catalogue_subscriptions{}")
            .copied()
            .unwrap_or(0.0))
    };
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut s = SseStream::open(&daemon.http, WATCH, None)?;
        s.until_snapshot_end(DEADLINE)?;
        streams.push(s);
    }
    assert_eq!(subscriptions(&metrics)?, 3.0);
    drop(streams);
    // Closed by the client: the node lets go of each subscription. It
    // learns of the close when a write fails: the second keep-alive after
    // it (every 5 s) at the latest.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while subscriptions(&metrics)? > 0.0 {
        ensure!(
            std::time::Instant::now() < deadline,
            "subscriptions still held after their streams closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
