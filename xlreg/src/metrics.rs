//! A hosted registry's counters ([`XlregStats`]) and their Prometheus
//! exposition ([`XlregCollector`], a prometheus-client `Collector` that
//! reads them at each scrape).
//!
//! The registry's actors update the counters; the node hands the collector
//! to its metrics registry through a generic hook (`Metrics::add_collector`
//! in `catalogue-actors`), so this crate knows nothing of the node's
//! metrics. The series are listed in docs/OPERATIONS.md.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Label {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct What {
    what: &'static str,
}

/// Counters of a hosted registry.
#[derive(Debug, Default)]
pub struct XlregStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections closed at once because too many were waiting.
    pub connections_refused: AtomicU64,
    /// Hellos refused (closed silently).
    pub hellos_refused: AtomicU64,
    /// Handshakes completed (client identified).
    pub handshakes_completed: AtomicU64,
    /// Connections closed at the handshake deadline.
    pub handshake_timeouts: AtomicU64,
    /// Session frames that did not open or decode.
    pub frames_refused: AtomicU64,
    /// Sessions open now.
    pub sessions_open: AtomicU64,
    /// Identified sessions closed after `idle_timeout` of silence.
    pub idle_closed: AtomicU64,
    /// Clients registered now.
    pub clients: AtomicU64,
    /// Clusters now.
    pub clusters: AtomicU64,
    /// Clients forgotten past the client TTL.
    pub clients_expired: AtomicU64,
    /// Clusters forgotten past the client TTL.
    pub clusters_expired: AtomicU64,
    /// Connections and requests refused, by reason (per-source bounds,
    /// admission, caps, and every other refusal of the registry).
    pub refusals: Mutex<BTreeMap<&'static str, u64>>,
}

impl XlregStats {
    /// Counts a refusal.
    pub fn refused(&self, reason: &'static str) {
        *self
            .refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(reason)
            .or_default() += 1;
    }

    /// The refusals so far, by reason.
    pub fn refusals(&self) -> BTreeMap<&'static str, u64> {
        self.refusals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records how many clients and clusters the registry holds.
    pub fn set_sizes(&self, clients: usize, clusters: usize) {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        self.clients.store(n(clients), Ordering::Relaxed);
        self.clusters.store(n(clusters), Ordering::Relaxed);
    }

    /// Counts what the TTL let go.
    pub fn expired(&self, clients: u64, clusters: u64) {
        self.clients_expired.fetch_add(clients, Ordering::Relaxed);
        self.clusters_expired.fetch_add(clusters, Ordering::Relaxed);
    }
}

/// Encodes a hosted registry's counters.
#[derive(Debug)]
pub struct XlregCollector {
    source: Arc<XlregStats>,
}

impl XlregCollector {
    /// A collector that reports `stats`.
    pub fn new(stats: Arc<XlregStats>) -> XlregCollector {
        XlregCollector { source: stats }
    }
}

impl Collector for XlregCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.source;
        let get = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
        let handshakes = [
            ("completed", get(&s.handshakes_completed)),
            ("hello_refused", get(&s.hellos_refused)),
            ("timeout", get(&s.handshake_timeouts)),
        ];
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "xlreg_handshakes",
            "xlReg handshakes, by result",
            None,
            counter.metric_type(),
        )?;
        for (result, value) in handshakes {
            ConstCounter::new(value).encode(family.encode_family(&Label { result })?)?;
        }
        let errors = [
            ("frame_refused", get(&s.frames_refused)),
            ("connection_refused", get(&s.connections_refused)),
            ("idle_closed", get(&s.idle_closed)),
        ];
        let mut family = encoder.encode_descriptor(
            "xlreg_errors",
            "xlReg errors, by kind",
            None,
            counter.metric_type(),
        )?;
        for (kind, value) in errors {
            ConstCounter::new(value).encode(family.encode_family(&Kind { kind })?)?;
        }
        let connections = ConstCounter::new(get(&s.connections));
        connections.encode(encoder.encode_descriptor(
            "xlreg_connections",
            "xlReg connections accepted",
            None,
            connections.metric_type(),
        )?)?;
        let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        for (name, help, value) in [
            (
                "xlreg_sessions_open",
                "xlReg sessions open",
                get(&s.sessions_open),
            ),
            ("xlreg_clients", "xlReg clients registered", get(&s.clients)),
            ("xlreg_clusters", "xlReg clusters", get(&s.clusters)),
        ] {
            let g = gauge(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let mut family = encoder.encode_descriptor(
            "xlreg_refusals",
            "xlReg connections and requests refused, by reason (per-source bounds, admission, \
             caps and every other refusal)",
            None,
            counter.metric_type(),
        )?;
        for (reason, value) in s.refusals() {
            ConstCounter::new(value).encode(family.encode_family(&Reason { reason })?)?;
        }
        let mut family = encoder.encode_descriptor(
            "xlreg_expired",
            "xlReg clients and clusters forgotten past xlreg.client_ttl",
            None,
            counter.metric_type(),
        )?;
        for (what, value) in [
            ("client", get(&s.clients_expired)),
            ("cluster", get(&s.clusters_expired)),
        ] {
            ConstCounter::new(value).encode(family.encode_family(&What { what })?)?;
        }
        Ok(())
    }
}
