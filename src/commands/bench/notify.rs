//! Register-to-event latency on one node: a registrar registers, a
//! subscriber on its own connection waits for the event; the time between
//! the register call and the event, in microseconds.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{node::BenchNode, percentiles};
use crate::client::{Client, SubscriptionEvent};

/// Runs the workload with `events` registrations per rate.
pub async fn run(node: &BenchNode, events: usize) -> Result<()> {
    let registrar = Client::connect(&node.options()).await?;
    let watcher = Client::connect(&node.options()).await?;
    let mut sub = watcher.subscribe("^tcp://notify/").await?;
    wait_snapshot_end(&mut sub).await?;
    println!("\nnotify latency (register call -> subscriber event), {events} events");
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>12}",
        "rate", "p50 us", "p99 us", "max us", "events/s"
    );
    for (label, gap) in [
        ("1000/s", Some(Duration::from_millis(1))),
        ("saturation", None),
    ] {
        let mut samples = Vec::with_capacity(events);
        let started = Instant::now();
        for i in 0..events {
            let uri = format!("tcp://notify/{label}/{i}");
            let sent = Instant::now();
            registrar.register(&uri, BTreeMap::new()).await?;
            loop {
                match sub.next().await {
                    Some(SubscriptionEvent::Added { service, .. }) if service.uri == uri => break,
                    Some(_) => continue,
                    None => bail!("subscription ended"),
                }
            }
            samples.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
            if let Some(gap) = gap {
                let next = started + gap * (i as u32 + 1);
                tokio::time::sleep_until(next.into()).await;
            }
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        let (p50, p99, max) = percentiles(&mut samples);
        println!("{label:<16} {p50:>10} {p99:>10} {max:>10} {rate:>12.0}");
    }
    Ok(())
}

pub(super) async fn wait_snapshot_end(sub: &mut crate::client::Subscription) -> Result<()> {
    loop {
        match sub.next().await {
            Some(SubscriptionEvent::SnapshotEnd { .. }) => return Ok(()),
            Some(_) => continue,
            None => bail!("subscription ended before its snapshot"),
        }
    }
}
