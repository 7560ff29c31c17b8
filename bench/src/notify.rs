//! Register-to-event latency on one node: a registrar registers, a
//! subscriber on its own connection waits for the event; the time between
//! the register call and the event, in microseconds. One at a time (at a
//! fixed rate and back to back), then with many registrations in flight on
//! the registrar's connection (the events/s one subscriber receives).

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::{
    measure::{Pace, closed_loop, latency_header, latency_row, next_index, open_loop, within},
    node::BenchNode,
};
use catalogue_client::{Client, Subscription, SubscriptionEvent};

/// Runs the workload with `events` registrations per rate, then
/// `pipelined.0` with `pipelined.1` in flight.
pub async fn run(
    node: &BenchNode,
    events: usize,
    rate: u32,
    pipelined: (usize, usize),
) -> Result<()> {
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
        latency_row("notify", &label, measured);
    }
    let (events, inflight) = pipelined;
    let pace = Pace::Saturate(inflight);
    let sub = tokio::sync::Mutex::new(sub.into_inner());
    let measured = open_loop(
        events,
        pace,
        |i| {
            let uri = format!("tcp://notify/pipelined/{i}");
            let registrar = &registrar;
            async move { Ok(registrar.register(&uri, BTreeMap::new()).await?) }
        },
        || {
            let sub = &sub;
            async move { next_index(&mut *sub.lock().await, "tcp://notify/pipelined/").await }
        },
    )
    .await?;
    latency_row("notify", &format!("pipelined-x{inflight}"), measured);
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
