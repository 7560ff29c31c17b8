//! Fan-out: N subscriptions with distinct regexes (prefixes with an
//! alternation, so no two are equal), each event matching 10% of them.
//! Reports events delivered per second and the cost per event.
//!
//! Each subscription count runs in two passes: one registration at a time
//! (each answered before the next is sent), then with `inflight`
//! registrations in flight. The subscriptions are read while the
//! registrations go out, so neither side holds the whole run's events in
//! memory; the etcd and ZooKeeper drivers do the same ([`measure`]). All
//! subscriptions send to one shared stream (`Client::subscribe_shared`),
//! as etcd's watchers are read from one watch stream.

use std::{
    cell::Cell,
    collections::BTreeMap,
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{
    measure::{STALL, within},
    node::BenchNode,
};
use catalogue_client::{Client, SharedEvents, SubscriptionEvent, shared_events};

/// Subscriptions per client connection.
const PER_CONNECTION: usize = 1000;

/// Events the shared stream holds before the connections wait.
const EVENTS_BUFFER: usize = 8192;

/// Events taken from the shared stream at a time.
const READ_BATCH: usize = 256;

/// Runs the workload with `events` registrations per subscription count,
/// one at a time and then `inflight` at a time.
pub async fn run(
    node: &BenchNode,
    n_events: usize,
    counts: &[usize],
    inflight: usize,
) -> Result<()> {
    let registrar = Client::connect(&node.options()).await?;
    let mut round = 0;
    for pass in passes(inflight) {
        header("", n_events, pass);
        for &count in counts {
            let (mut events, _clients) = subscribe(node, round, count).await?;
            let expected = expected(count, n_events);
            let delivered = Cell::new(0usize);
            let registering = |k: usize| {
                let uri = format!("tcp://r{round}/g{}/e{k}", group_of(count, k));
                let registrar = &registrar;
                async move {
                    registrar.register(&uri, BTreeMap::new()).await?;
                    Ok(())
                }
            };
            let receiving = read(&mut events, expected, &delivered);
            let shape = Shape {
                count,
                events: n_events,
                inflight: pass,
                expected,
            };
            measure(shape, registering, receiving, &delivered).await?;
            round += 1;
        }
    }
    Ok(())
}

/// `count` subscriptions of round `round`, [`PER_CONNECTION`] to a client,
/// all sending to one shared stream, which is returned past their (empty)
/// snapshots.
async fn subscribe(
    node: &BenchNode,
    round: usize,
    count: usize,
) -> Result<(SharedEvents, Vec<Client>)> {
    let (sink, mut events) = shared_events(EVENTS_BUFFER);
    let mut clients = Vec::new();
    let snapshots = async {
        let mut ended = 0;
        while ended < count {
            match within("end of a snapshot", events.next()).await? {
                Some((_, m)) if matches!(m.event, SubscriptionEvent::SnapshotEnd { .. }) => {
                    ended += 1
                }
                Some(_) => continue,
                None => bail!("the subscriptions ended before their snapshots"),
            }
        }
        Ok(())
    };
    let subscribing = async {
        for i in 0..count {
            if i % PER_CONNECTION == 0 {
                clients.push(Client::connect(&node.options()).await?);
            }
            let group = i % 10;
            let pattern = format!("^tcp://r{round}/g{group}/(e|x{i})");
            let Some(client) = clients.last() else {
                bail!("no client")
            };
            client.subscribe_shared(&pattern, None, &sink).await?;
        }
        Ok(())
    };
    tokio::try_join!(subscribing, snapshots)?;
    Ok((events, clients))
}

/// Reads `events` until `want` services have been added, counting each in
/// `delivered`.
async fn read(events: &mut SharedEvents, want: usize, delivered: &Cell<usize>) -> Result<()> {
    let mut batch = Vec::with_capacity(READ_BATCH);
    while delivered.get() < want {
        batch.clear();
        if events.next_many(&mut batch, READ_BATCH).await == 0 {
            bail!("the subscriptions ended");
        }
        for (id, marked) in &batch {
            match marked.event {
                SubscriptionEvent::Added { .. } => delivered.set(delivered.get() + 1),
                SubscriptionEvent::Overflow { .. } => bail!("subscription {id} overflowed"),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The passes: one write at a time, then `inflight` at a time (if more
/// than one).
pub(super) fn passes(inflight: usize) -> Vec<usize> {
    if inflight > 1 {
        vec![1, inflight]
    } else {
        vec![1]
    }
}

/// One fan-out row's shape.
pub(super) struct Shape {
    /// Subscriptions (watchers).
    pub count: usize,
    /// Writes.
    pub events: usize,
    /// Writes in flight.
    pub inflight: usize,
    /// Deliveries the writes must cause.
    pub expected: usize,
}

/// Sends writes `0..shape.events` with `shape.inflight` in flight while
/// `receiving` reads what they cause, counting its progress in
/// `delivered`; checks that exactly the expected deliveries came and
/// prints the row. Fails if either side fails, or if `delivered` stays
/// still for [`STALL`] (one deadline for the whole run rather than a
/// timer per event, whose cost would be the client's, not the server's).
pub(super) async fn measure<W, WF, R>(
    shape: Shape,
    write: W,
    receiving: R,
    delivered: &Cell<usize>,
) -> Result<()>
where
    W: FnMut(usize) -> WF,
    WF: Future<Output = Result<()>>,
    R: Future<Output = Result<()>>,
{
    let started = Instant::now();
    let writing = stream::iter(0..shape.events)
        .map(write)
        .buffer_unordered(shape.inflight.max(1))
        .try_collect::<()>();
    let watchdog = async {
        let mut last = (delivered.get(), Instant::now());
        let mut check = tokio::time::interval(Duration::from_millis(250));
        loop {
            check.tick().await;
            let now = delivered.get();
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > STALL {
                bail!("no fan-out event within {STALL:?} ({now} delivered)");
            }
        }
    };
    tokio::select! {
        done = async { tokio::try_join!(writing, receiving) } => done.map(|_| ())?,
        stalled = watchdog => stalled?,
    }
    let secs = started.elapsed().as_secs_f64();
    if delivered.get() != shape.expected {
        bail!("delivered {}, expected {}", delivered.get(), shape.expected);
    }
    row(
        shape.count,
        shape.inflight,
        shape.events,
        delivered.get(),
        secs,
    );
    Ok(())
}

/// Deliveries `events` writes cause among `count` subscriptions.
pub(super) fn expected(count: usize, events: usize) -> usize {
    (0..count).map(|i| per_subscription(count, events, i)).sum()
}

/// Events subscription `i` of `count` receives out of `events`.
pub(super) fn per_subscription(count: usize, events: usize, i: usize) -> usize {
    (0..events)
        .filter(|&k| group_of(count, k) == i % 10)
        .count()
}

/// Prints the table's title (`what`: e.g. " (etcd)") and header.
pub(super) fn header(what: &str, events: usize, inflight: usize) {
    let pace = if inflight == 1 {
        "one write at a time".to_string()
    } else {
        format!("{inflight} writes in flight")
    };
    println!(
        "\nfan-out{what}: each event matches 10% of the subscriptions, {events} events, {pace}"
    );
    println!(
        "{:>14} {:>12} {:>14} {:>16}",
        "subscriptions", "events/s", "deliveries/s", "us per event"
    );
}

/// The row's key in the JSON report: the count, with `-x<inflight>` when
/// writes were pipelined.
fn key(count: usize, inflight: usize) -> String {
    if inflight == 1 {
        count.to_string()
    } else {
        format!("{count}-x{inflight}")
    }
}

/// Prints one row: `events` written, `delivered` in all, in `secs`.
pub(super) fn row(count: usize, inflight: usize, events: usize, delivered: usize, secs: f64) {
    println!(
        "{count:>14} {:>12.0} {:>14.0} {:>16.1}",
        events as f64 / secs,
        delivered as f64 / secs,
        secs * 1e6 / events as f64
    );
    super::report::record(
        "fanout",
        &key(count, inflight),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reaches_a_tenth_of_the_subscriptions() {
        // One subscription gets every event; with ten or more, each
        // event is for one group of ten.
        assert_eq!(per_subscription(1, 7, 0), 7);
        let total: usize = (0..100).map(|i| per_subscription(100, 20, i)).sum();
        assert_eq!(total, 20 * 10);
        assert_eq!(key(100, 1), "100");
        assert_eq!(key(100, 32), "100-x32");
    }
}
