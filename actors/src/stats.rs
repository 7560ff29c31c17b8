//! Counters the actors update as they work, shared through an `Arc`.
//!
//! Plain atomics for now; the metrics endpoint exports them (and the log
//! reports them at shutdown) so tests and operators can see overflows,
//! refusals and deliveries.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Count, sum and maximum of durations in milliseconds.
#[derive(Debug, Default)]
pub struct Latency {
    count: AtomicU64,
    sum_ms: AtomicU64,
    max_ms: AtomicU64,
}

impl Latency {
    /// Records one duration.
    pub fn observe_ms(&self, ms: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.max_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// (count, sum, max) so far.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.count.load(Ordering::Relaxed),
            self.sum_ms.load(Ordering::Relaxed),
            self.max_ms.load(Ordering::Relaxed),
        )
    }
}

/// Everything the node counts.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client connections open now.
    pub connections: Gauge,
    /// Client connections refused because `limits.max_connections` was reached.
    pub connections_refused: Counter,
    /// Subscriptions live now.
    pub subscriptions: Gauge,
    /// Services in the table now.
    pub services: Gauge,
    /// Events handed to subscriptions by the supervisor.
    pub events_routed: Counter,
    /// Event and snapshot frames handed to connections by subscriptions.
    pub events_delivered: Counter,
    /// Subscription queue overflows.
    pub overflows: Counter,
    /// Events dropped by overflowing subscriptions.
    pub events_dropped: Counter,
    /// Registrations refused by the transport or uid check.
    pub register_refused: Counter,
    /// Peer link handshakes that failed (either side).
    pub peer_handshake_failures: Counter,
    /// Peer changes refused because their timestamp was too far ahead.
    pub clock_refused: Counter,
    /// Peer links up now.
    pub peer_links: Gauge,
    /// Replicated entries sent to peers.
    pub sync_entries_sent: Counter,
    /// Replicated entries received from peers.
    pub sync_entries_received: Counter,
    /// Batches sent to peers.
    pub sync_batches_sent: Counter,
    /// Batches received from peers.
    pub sync_batches_received: Counter,
    /// Frames sent again after an ack timeout.
    pub sync_retransmits: Counter,
    /// Time from a service change at its origin to its arrival here.
    pub propagation: Latency,
}
