//! Latency loops shared by the catalogue and etcd workloads, and the rows
//! they print.
//!
//! * [`closed_loop`]: one write at a time, each waited for at the watcher
//!   before the next (at a fixed rate, or back to back);
//! * [`open_loop`]: writes sent on a schedule (a fixed rate, not waiting
//!   for earlier answers) or with a fixed number in flight (saturation),
//!   while the watcher side receives independently; latency is from the
//!   send of item `i` to its arrival.

use std::{
    cell::RefCell,
    future::Future,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, stream};

use super::percentiles;
use catalogue_client::{Subscription, SubscriptionEvent};

/// Longest wait for one event before a workload gives up.
pub const STALL: Duration = Duration::from_secs(30);

/// `future`'s output, or an error naming `what` after [`STALL`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> Result<T> {
    match tokio::time::timeout(STALL, future).await {
        Ok(output) => Ok(output),
        Err(_) => bail!("no {what} within {STALL:?}"),
    }
}

/// Most writes in flight at a fixed rate.
const RATE_INFLIGHT: usize = 64;

/// How writes are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// This many per second.
    Rate(u32),
    /// As fast as possible with this many in flight.
    Saturate(usize),
}

impl Pace {
    /// The row label.
    pub fn label(self) -> String {
        match self {
            Pace::Rate(r) => format!("{r}/s"),
            Pace::Saturate(1) => "saturation".into(),
            Pace::Saturate(k) => format!("saturation-x{k}"),
        }
    }
}

/// Latency samples (microseconds) and the rate achieved.
pub struct Measured {
    /// One per event.
    pub samples: Vec<u64>,
    /// Events per second over the run.
    pub per_second: f64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Runs `step(i)` (write item `i` and wait for its event) `events` times,
/// one after the other, at `rate` per second or back to back (`None`).
pub async fn closed_loop<F, Fut>(events: usize, rate: Option<u32>, mut step: F) -> Result<Measured>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let gap = rate.map(|r| Duration::from_secs_f64(1.0 / f64::from(r.max(1))));
    let mut samples = Vec::with_capacity(events);
    let started = Instant::now();
    for i in 0..events {
        let sent = Instant::now();
        within("event", step(i)).await??;
        samples.push(micros(sent.elapsed()));
        if let Some(gap) = gap {
            let next = started + gap.mul_f64((i + 1) as f64);
            tokio::time::sleep_until(next.into()).await;
        }
    }
    Ok(Measured {
        samples,
        per_second: events as f64 / started.elapsed().as_secs_f64(),
    })
}

/// Sends items `0..events` with `send` paced by `pace`, while `receive`
/// yields the index of each item as it arrives at the watcher (other
/// events are its business: it returns only indexes, each once).
pub async fn open_loop<S, SF, R, RF>(
    events: usize,
    pace: Pace,
    send: S,
    mut receive: R,
) -> Result<Measured>
where
    S: Fn(usize) -> SF,
    SF: Future<Output = Result<()>>,
    R: FnMut() -> RF,
    RF: Future<Output = Result<usize>>,
{
    let sent: RefCell<Vec<Option<Instant>>> = RefCell::new(vec![None; events]);
    let mark = |i: usize| {
        if let Some(slot) = sent.borrow_mut().get_mut(i) {
            *slot = Some(Instant::now());
        }
    };
    let started = Instant::now();
    let sending = async {
        match pace {
            Pace::Rate(r) => {
                // Each write starts on its schedule even if earlier ones
                // have not been answered yet (up to RATE_INFLIGHT of them).
                let gap = Duration::from_secs_f64(1.0 / f64::from(r.max(1)));
                let mut results = stream::iter(0..events)
                    .map(|i| {
                        let (mark, send) = (&mark, &send);
                        async move {
                            let at = started + gap.mul_f64(i as f64);
                            tokio::time::sleep_until(at.into()).await;
                            mark(i);
                            send(i).await
                        }
                    })
                    .buffer_unordered(RATE_INFLIGHT);
                while let Some(result) = results.next().await {
                    result?;
                }
            }
            Pace::Saturate(inflight) => {
                let mut results = stream::iter(0..events)
                    .map(|i| {
                        mark(i);
                        send(i)
                    })
                    .buffer_unordered(inflight.max(1));
                while let Some(result) = results.next().await {
                    result?;
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    };
    let receiving = async {
        let mut arrived: Vec<Option<Instant>> = vec![None; events];
        let mut left = events;
        while left > 0 {
            let i = within("event at the watcher", receive()).await??;
            let Some(slot) = arrived.get_mut(i) else {
                bail!("the watcher reported item {i} of {events}");
            };
            if slot.is_none() {
                *slot = Some(Instant::now());
                left -= 1;
            }
        }
        Ok(arrived)
    };
    let ((), arrived) = tokio::try_join!(sending, receiving)?;
    let sent = sent.into_inner();
    let mut samples = Vec::with_capacity(events);
    let mut last = started;
    for (s, a) in sent.iter().zip(&arrived) {
        if let (Some(s), Some(a)) = (s, a) {
            samples.push(micros(a.saturating_duration_since(*s)));
            last = last.max(*a);
        }
    }
    Ok(Measured {
        samples,
        per_second: events as f64 / last.duration_since(started).as_secs_f64().max(1e-9),
    })
}

/// Prints a latency table's title and header.
pub fn latency_header(title: &str) {
    println!("\n{title}");
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>12}",
        "rate", "p50 us", "p99 us", "max us", "events/s"
    );
}

/// Prints one row of a latency table of `workload` (and records it for
/// `--json`).
pub fn latency_row(workload: &str, label: &str, mut measured: Measured) {
    let (p50, p99, max) = percentiles(&mut measured.samples);
    println!(
        "{label:<18} {p50:>10} {p99:>10} {max:>10} {:>12.0}",
        measured.per_second
    );
    super::report::record(
        workload,
        label,
        &[
            ("p50_us", p50 as f64),
            ("p99_us", p99 as f64),
            ("max_us", max as f64),
            ("events_per_s", measured.per_second),
        ],
    );
}

/// The index `i` of the next `<prefix><i>` added at subscription `sub`;
/// other events are skipped, an overflow is an error.
pub async fn next_index(sub: &mut Subscription, prefix: &str) -> Result<usize> {
    loop {
        match sub.next().await {
            Some(SubscriptionEvent::Added { service, .. }) => {
                if let Some(i) = service.uri.strip_prefix(prefix) {
                    return i.parse().context("an index in the URI");
                }
            }
            Some(SubscriptionEvent::Overflow { dropped, .. }) => {
                bail!("the subscriber overflowed ({dropped} events dropped)")
            }
            Some(_) => continue,
            None => bail!("the subscription ended"),
        }
    }
}
