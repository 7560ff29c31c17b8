//! xlReg metrics, read from the registry's own counters at each scrape (a
//! prometheus-client `Collector`), once a registry is hosted.

use std::sync::{Arc, OnceLock, atomic::Ordering};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};

use crate::xlreg::XlregStats;

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

/// Encodes the hosted registry's counters, if there is one.
#[derive(Debug, Default)]
pub struct XlregCollector {
    source: OnceLock<Arc<XlregStats>>,
}

impl XlregCollector {
    /// Starts reporting `stats` (the first call wins).
    pub fn attach(&self, stats: Arc<XlregStats>) {
        let _ = self.source.set(stats);
    }
}

impl Collector for XlregCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = self.source.get() else {
            return Ok(());
        };
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
