//! Per-actor-kind metrics: live, started and stopped actors, messages
//! handled by type, handling time and queue depth.
//!
//! Every handled message is counted, and one in [`TIME_EVERY`] of each
//! kind is timed (reading the clock twice and observing a histogram cost
//! about 9% of the node's samples in the fan-out benchmark when every
//! delivery was timed), so this is on the hot path of every event. The series of a kind are therefore looked up in their
//! families once (on first use) and shared by all actors of the kind
//! ([`KindSeries`]); a message type's counter is looked
//! up once per kind and then found by its `&'static str` name in a short
//! list. Before this, each message built two label `String`s and hashed
//! them into two families (about 8% of the node's instructions in the
//! fan-out benchmark; see docs/PERFORMANCE.md).

use std::{
    sync::{
        Arc, OnceLock, RwLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Instant,
};

use prometheus_client::metrics::{
    counter::Counter as PromCounter,
    family::{Family, MetricConstructor},
    gauge::Gauge as PromGauge,
    histogram::Histogram,
};

use super::{KindLabel, MessageLabels, Metrics};

/// One message in this many, per actor kind, is timed into
/// `catalogue_actor_handling_seconds` (the first one always is); every
/// message is counted in `catalogue_actor_messages_total`.
pub const TIME_EVERY: u32 = 16;

/// The series of one actor kind, each resolved in its family the first
/// time it is used (so the exposition only shows series in use).
pub(super) struct KindSeries {
    kind: KindLabel,
    families: Families,
    live: OnceLock<PromGauge>,
    started: OnceLock<PromCounter>,
    stopped: OnceLock<PromCounter>,
    handling: OnceLock<Histogram>,
    queue_depth: OnceLock<PromGauge>,
    /// Message types seen so far and their counters (a handful per kind).
    seen: RwLock<Vec<(&'static str, PromCounter)>>,
    /// Messages handled, modulo [`TIME_EVERY`]: which one is timed next.
    tick: AtomicU32,
}

/// The node's per-kind families (clones share the series).
struct Families {
    live: Family<KindLabel, PromGauge>,
    started: Family<KindLabel, PromCounter>,
    stopped: Family<KindLabel, PromCounter>,
    handling: Family<KindLabel, Histogram, fn() -> Histogram>,
    queue_depth: Family<KindLabel, PromGauge>,
    messages: Family<MessageLabels, PromCounter>,
}

/// The series of `kind` in `family`, looked up once.
fn resolve<'a, M: Clone, C: MetricConstructor<M>>(
    cell: &'a OnceLock<M>,
    family: &Family<KindLabel, M, C>,
    kind: &KindLabel,
) -> &'a M {
    cell.get_or_init(|| family.get_or_create(kind).clone())
}

impl KindSeries {
    fn new(stats: &Metrics, kind: &str) -> Self {
        KindSeries {
            kind: KindLabel { kind: kind.into() },
            families: Families {
                live: stats.actors_live.clone(),
                started: stats.actors_started.clone(),
                stopped: stats.actors_stopped.clone(),
                handling: stats.actor_handling.clone(),
                queue_depth: stats.actor_queue_depth.clone(),
                messages: stats.actor_messages.clone(),
            },
            live: OnceLock::new(),
            started: OnceLock::new(),
            stopped: OnceLock::new(),
            handling: OnceLock::new(),
            queue_depth: OnceLock::new(),
            seen: RwLock::default(),
            tick: AtomicU32::new(0),
        }
    }

    fn live(&self) -> &PromGauge {
        resolve(&self.live, &self.families.live, &self.kind)
    }

    fn started(&self) -> &PromCounter {
        resolve(&self.started, &self.families.started, &self.kind)
    }

    fn stopped(&self) -> &PromCounter {
        resolve(&self.stopped, &self.families.stopped, &self.kind)
    }

    fn handling(&self) -> &Histogram {
        resolve(&self.handling, &self.families.handling, &self.kind)
    }

    fn queue_depth(&self) -> &PromGauge {
        resolve(&self.queue_depth, &self.families.queue_depth, &self.kind)
    }

    /// Counts one handled `message`.
    fn count(&self, message: &'static str) {
        if let Ok(seen) = self.seen.read() {
            if let Some((_, counter)) = seen.iter().find(|(m, _)| *m == message) {
                counter.inc();
                return;
            }
        }
        let counter = self
            .families
            .messages
            .get_or_create(&MessageLabels {
                kind: self.kind.kind.clone(),
                message: message.into(),
            })
            .clone();
        counter.inc();
        if let Ok(mut seen) = self.seen.write() {
            if !seen.iter().any(|(m, _)| *m == message) {
                seen.push((message, counter));
            }
        }
    }
}

/// The metrics of one actor kind (cheap to clone).
#[derive(Clone)]
pub struct ActorMetrics {
    series: Arc<KindSeries>,
    stats: Arc<Metrics>,
}

impl std::fmt::Debug for ActorMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorMetrics")
            .field("kind", &self.series.kind.kind)
            .finish()
    }
}

impl ActorMetrics {
    /// Metrics of actors of `kind` (e.g. "supervisor", "subscription").
    pub fn new(stats: Arc<Metrics>, kind: &str) -> Self {
        let series = match stats.actor_kinds.lock() {
            Ok(mut kinds) => kinds
                .entry(kind.to_string())
                .or_insert_with(|| Arc::new(KindSeries::new(&stats, kind)))
                .clone(),
            // A thread panicked while holding the map: resolve anew (the
            // series are the same, only not shared).
            Err(_) => Arc::new(KindSeries::new(&stats, kind)),
        };
        ActorMetrics { series, stats }
    }

    /// An actor of this kind started.
    pub fn started(&self) {
        self.series.started().inc();
        self.series.live().inc();
    }

    /// An actor of this kind stopped.
    pub fn stopped(&self) {
        self.series.stopped().inc();
        self.series.live().dec();
    }

    /// Counts the handling of a `message` and, one time in
    /// [`TIME_EVERY`], times it until the returned timer is dropped.
    pub fn handling(&self, message: &'static str) -> HandlingTimer {
        self.series.count(message);
        let tick = self.series.tick.fetch_add(1, Ordering::Relaxed);
        HandlingTimer {
            timed: (tick % TIME_EVERY == 0).then(|| (self.series.clone(), Instant::now())),
        }
    }

    /// Changes the queue depth of this kind by `delta`.
    pub fn queue_depth(&self, delta: i64) {
        self.series.queue_depth().inc_by(delta);
    }

    /// The node's metrics.
    pub fn stats(&self) -> &Arc<Metrics> {
        &self.stats
    }
}

/// Times one message, if it is one of those sampled; see
/// [`ActorMetrics::handling`].
#[must_use = "the timer records when dropped"]
pub struct HandlingTimer {
    timed: Option<(Arc<KindSeries>, Instant)>,
}

impl Drop for HandlingTimer {
    fn drop(&mut self) {
        if let Some((series, started)) = self.timed.take() {
            series.handling().observe(started.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_of_a_kind_share_their_series() {
        let stats = Arc::new(Metrics::new());
        let a = ActorMetrics::new(stats.clone(), "subscription");
        let b = ActorMetrics::new(stats.clone(), "subscription");
        assert!(Arc::ptr_eq(&a.series, &b.series));
        drop(a.handling("Deliver"));
        drop(b.handling("Deliver"));
        drop(b.handling("Stop"));
        let text = stats.encode();
        assert!(
            text.contains(
                "catalogue_actor_messages_total{kind=\"subscription\",message=\"Deliver\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "catalogue_actor_messages_total{kind=\"subscription\",message=\"Stop\"} 1"
            ),
            "{text}"
        );
        // The first message of the kind is timed, the next TIME_EVERY - 1
        // are only counted.
        assert!(
            text.contains("catalogue_actor_handling_seconds_count{kind=\"subscription\"} 1"),
            "{text}"
        );
        for _ in 3..TIME_EVERY {
            drop(a.handling("Deliver"));
        }
        drop(a.handling("Deliver"));
        let text = stats.encode();
        assert!(
            text.contains("catalogue_actor_handling_seconds_count{kind=\"subscription\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "catalogue_actor_messages_total{{kind=\"subscription\",message=\"Deliver\"}} {}",
                TIME_EVERY
            )),
            "{text}"
        );
    }
}
