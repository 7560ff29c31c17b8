//! Fan-out: N subscriptions with distinct regexes (prefixes with an
//! alternation, so no two are equal), each event matching 10% of them.
//! Reports events delivered per second and the cost per event.

use std::{collections::BTreeMap, time::Instant};

use anyhow::{Result, bail};

use super::{measure::within, node::BenchNode, notify::wait_snapshot_end};
use catalogue_client::{Client, Subscription, SubscriptionEvent};

/// Subscriptions per client connection.
const PER_CONNECTION: usize = 1000;

/// Runs the workload with `events` registrations per subscription count.
pub async fn run(node: &BenchNode, events: usize, counts: &[usize]) -> Result<()> {
    header("", events);
    let registrar = Client::connect(&node.options()).await?;
    for (round, &count) in counts.iter().enumerate() {
        let mut clients = Vec::new();
        let mut subs: Vec<Subscription> = Vec::with_capacity(count);
        for i in 0..count {
            if i % PER_CONNECTION == 0 {
                clients.push(Client::connect(&node.options()).await?);
            }
            let group = i % 10;
            let pattern = format!("^tcp://r{round}/g{group}/(e|x{i})");
            let Some(client) = clients.last() else {
                bail!("no client")
            };
            subs.push(client.subscribe(&pattern).await?);
        }
        for sub in &mut subs {
            wait_snapshot_end(sub).await?;
        }
        // Each event matches every subscription of its group: 10% (all of
        // them when there is one subscription and the event is in group 0).
        let started = Instant::now();
        let mut expected = 0usize;
        for k in 0..events {
            let group = group_of(count, k);
            registrar
                .register(&format!("tcp://r{round}/g{group}/e{k}"), BTreeMap::new())
                .await?;
            expected += subs
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 10 == group)
                .count();
        }
        let mut delivered = 0usize;
        for (i, sub) in subs.iter_mut().enumerate() {
            let want = (0..events)
                .filter(|&k| group_of(count, k) == i % 10)
                .count();
            let mut got = 0;
            while got < want {
                match within("a fan-out event", sub.next()).await? {
                    Some(SubscriptionEvent::Added { .. }) => got += 1,
                    Some(SubscriptionEvent::Overflow { .. }) => {
                        bail!("subscription {i} overflowed")
                    }
                    Some(_) => continue,
                    None => bail!("subscription {i} ended"),
                }
            }
            delivered += got;
        }
        let secs = started.elapsed().as_secs_f64();
        if delivered != expected {
            bail!("delivered {delivered}, expected {expected}");
        }
        row(count, events, delivered, secs);
        drop(subs);
        drop(clients);
    }
    Ok(())
}

/// Prints the table's title (`what`: e.g. " (etcd)") and header.
pub(super) fn header(what: &str, events: usize) {
    println!("\nfan-out{what}: each event matches 10% of the subscriptions, {events} events");
    println!(
        "{:>14} {:>12} {:>14} {:>16}",
        "subscriptions", "events/s", "deliveries/s", "us per event"
    );
}

/// Prints one row: `events` written, `delivered` in all, in `secs`.
pub(super) fn row(count: usize, events: usize, delivered: usize, secs: f64) {
    println!(
        "{count:>14} {:>12.0} {:>14.0} {:>16.1}",
        events as f64 / secs,
        delivered as f64 / secs,
        secs * 1e6 / events as f64
    );
    super::report::record(
        "fanout",
        &count.to_string(),
        &[
            ("events_per_s", events as f64 / secs),
            ("deliveries_per_s", delivered as f64 / secs),
            ("us_per_event", secs * 1e6 / events as f64),
        ],
    );
}

/// The group (0..10) of event `k` when there are `count` subscriptions:
/// round robin, or always 0 for a single subscription.
pub(super) fn group_of(count: usize, k: usize) -> usize {
    if count == 1 { 0 } else { k % 10 }
}
