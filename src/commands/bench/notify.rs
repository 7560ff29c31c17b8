//! Register-to-event latency on one node: a registrar registers, a
//! subscriber on its own connection waits for the event; the time between
//! the register call and the event, in microseconds.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::{
    measure::{closed_loop, latency_header, latency_row, within},
    node::BenchNode,
};
use crate::client::{Client, Subscription, SubscriptionEvent};

/// Runs the workload with `events` registrations per rate.
pub async fn run(node: &BenchNode, events: usize, rate: u32) -> Result<()> {
    let registrar = Client::connect(&node.options()).await?;
    let watcher = Client::connect(&node.options()).await?;
    let sub = tokio::sync::Mutex::new(watcher.subscribe("^tcp://notify/").await?);
    wait_snapshot_end(&mut *sub.lock().await).await?;
    latency_header(&format!(
        "notify latency (register call -> subscriber event), {events} events"
    ));
    for (label, rate) in [
        (format!("{rate}/s"), Some(rate)),
        ("saturation".into(), None),
    ] {
        let measured = closed_loop(events, rate, |i| {
            let uri = format!("tcp://notify/{label}/{i}");
            let (registrar, sub) = (&registrar, &sub);
            async move {
                registrar.register(&uri, BTreeMap::new()).await?;
                let mut sub = sub.lock().await;
                loop {
                    match sub.next().await {
                        Some(SubscriptionEvent::Added { service, .. }) if service.uri == uri => {
                            return Ok(());
                        }
                        Some(_) => continue,
                        None => bail!("subscription ended"),
                    }
                }
            }
        })
        .await?;
        latency_row(&label, measured);
    }
    Ok(())
}

/// Waits for the end of a subscription's snapshot; returns its count.
pub(super) async fn wait_snapshot_end(sub: &mut Subscription) -> Result<u64> {
    loop {
        match within("end of a snapshot", sub.next()).await? {
            Some(SubscriptionEvent::SnapshotEnd { count }) => return Ok(count),
            Some(_) => continue,
            None => bail!("subscription ended before its snapshot"),
        }
    }
}
