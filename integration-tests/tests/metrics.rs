//! The operators' endpoint of a real node: `/metrics` parses as Prometheus
//! text and its actor metrics move when clients register and subscribe;
//! `/health` and `/ready` answer.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use catalogue::client::{Client, ConnectOptions, Endpoint};
use catalogue_integration_tests::{DEADLINE, Daemon, http_get, runtime, scrape};

fn value(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[test]
fn actor_metrics_move_when_clients_register_and_subscribe() -> Result<()> {
    let mut daemon = Daemon::builder().metrics().start()?;
    let addr = daemon.metrics_address()?;

    let before = scrape(&addr)?;
    assert_eq!(
        value(&before, "catalogue_actors_live{kind=supervisor}"),
        1.0,
        "{before:#?}"
    );
    let rt = runtime()?;
    let client = rt.block_on(async {
        let client =
            Client::connect(&ConnectOptions::new(Endpoint::Unix(daemon.socket.clone()))).await?;
        client.register("tcp://metrics:1", BTreeMap::new()).await?;
        let mut sub = client.subscribe("^tcp://").await?;
        // The snapshot's end comes once the supervisor has the subscription.
        loop {
            match tokio::time::timeout(DEADLINE, sub.next()).await {
                Ok(Some(catalogue::client::SubscriptionEvent::SnapshotEnd { .. })) => break,
                Ok(Some(_)) => continue,
                other => bail!("no snapshot end: {other:?}"),
            }
        }
        Ok::<_, anyhow::Error>((client, sub))
    })?;
    let after = scrape(&addr)?;
    let moved = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(
        moved("catalogue_actors_live{kind=client_connection}"),
        1.0,
        "{after:#?}"
    );
    assert_eq!(
        moved("catalogue_actors_started_total{kind=subscription}"),
        1.0,
        "{after:#?}"
    );
    assert_eq!(moved("catalogue_actors_live{kind=subscription}"), 1.0);
    assert_eq!(
        moved("catalogue_actor_messages_total{kind=supervisor,message=RegisterService}"),
        1.0
    );
    assert_eq!(
        moved("catalogue_actor_messages_total{kind=supervisor,message=AddSubscription}"),
        1.0
    );
    assert!(
        moved("catalogue_actor_messages_total{kind=client_connection,message=RegisterService}")
            >= 1.0
    );
    assert_eq!(value(&after, "catalogue_services{}"), 1.0);
    assert_eq!(value(&after, "catalogue_subscriptions{}"), 1.0);
    assert!(after.contains_key("catalogue_actor_handling_seconds_count{kind=supervisor}"));

    let (status, body) = http_get(&addr, "/health")?;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["node"], "node-under-test");
    assert_eq!(health["services"], 1);
    let (status, _) = http_get(&addr, "/ready")?;
    assert_eq!(status, 200, "a node without peers is ready at once");
    drop(client);
    Ok(())
}

#[test]
fn a_node_with_peers_is_not_ready_before_its_first_sync() -> Result<()> {
    let mut daemon = Daemon::builder()
        .metrics()
        .arg("--debug")
        .peer("node-away", "127.0.0.1:9")
        .start()?;
    let addr = daemon.metrics_address()?;
    let (status, _) = http_get(&addr, "/ready")?;
    assert_eq!(status, 503);
    let (status, body) = http_get(&addr, "/health")?;
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(health["peers_down"], serde_json::json!(["node-away"]));
    Ok(())
}

#[test]
fn a_node_with_peers_is_ready_after_its_first_sync() -> Result<()> {
    let mut a = Daemon::builder()
        .name("node-a")
        .arg("--debug")
        .metrics()
        .peer("node-b", "")
        .start()?;
    let addr = a.metrics_address()?;
    assert_eq!(http_get(&addr, "/ready")?.0, 503, "no sync yet");
    let _b = Daemon::builder()
        .name("node-b")
        .arg("--debug")
        .peer("node-a", &a.peer)
        .start()?;
    a.wait_log(DEADLINE, |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("ready:"))
    })?;
    assert_eq!(http_get(&addr, "/ready")?.0, 200);
    let m = scrape(&addr)?;
    assert!(
        value(
            &m,
            "catalogue_sync_last_success_timestamp_seconds{peer=node-b}"
        ) > 0.0
    );
    Ok(())
}
