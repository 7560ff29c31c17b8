//! The node's metrics: one Prometheus registry (prometheus-client) holding
//! every counter, gauge and histogram the actors update, the build info and
//! the standard `process_*` metrics ([`process`]), served at `/metrics` by
//! [`crate::metrics_endpoint`] as OpenMetrics or as the classic text format
//! ([`exposition`]).
//!
//! Names follow Prometheus conventions: a `catalogue_` prefix (not on
//! `process_*`), base units (seconds), and counters exposed with a `_total`
//! suffix (added by the encoder). [`ActorMetrics`] gives every actor kind the same set: live,
//! started and stopped, messages handled by type, handling time, and queue
//! depth where the actor has a bounded queue.

mod actor;
pub mod exposition;
pub mod http;
mod process;

pub use actor::{ActorMetrics, HandlingTimer};

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
};

use catalogue_proto::{CodecError, InputBudget};

use prometheus_client::{
    collector::Collector,
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter as PromCounter,
        family::Family,
        gauge::Gauge as PromGauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::Registry,
};

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(PromCounter);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(PromGauge);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.dec();
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.set(v);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// Label of per-actor-kind metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Labels of handled-message counts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub kind: String,
    pub message: String,
}

/// Label naming a peer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The peer's node name.
    pub peer: String,
}

/// Label naming a client transport (`tcp`, `unix`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: String,
}

/// Label naming a service by its URI.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UriLabel {
    pub uri: String,
}

/// Label naming a listener (`client`, `unix`, `peer`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: String,
}

/// Label of the build info.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    /// The crate version the node was built from.
    version: String,
}

/// Label giving a reason.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: String,
}

/// Labels of connections closed for their input.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputCloseLabels {
    /// Where the connection came in: `unix`, `tcp` (clients) or `peer`.
    pub listener: String,
    /// Why: `frame_timeout`, `input_budget`, `frame_too_large`,
    /// `undecodable`.
    pub reason: String,
}

fn seconds_histogram() -> Histogram {
    // 10 µs to about 42 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 22))
}

/// Everything the node measures.
pub struct Metrics {
    /// Behind a lock so that a subsystem started later can add its
    /// collector ([`Metrics::add_collector`]).
    registry: Mutex<Registry>,
    /// Set once the node is ready (initial sync with a peer done, or no peers).
    ready: AtomicBool,
    /// Client connections open now.
    pub connections: Gauge,
    /// Client connections refused at `limits.connections_tcp` or
    /// `limits.connections_unix`, by transport.
    pub connections_refused: Family<TransportLabel, PromCounter>,
    /// Client connections holding a place under their transport's limit.
    pub connections_open: Family<TransportLabel, PromGauge>,
    /// Health of each checked `[[services]]` definition: 1 passing
    /// (registered), 0 failing (withdrawn), by URI.
    pub check_status: Family<UriLabel, PromGauge>,
    /// Client connections closed after `limits.idle_timeout` holding nothing.
    pub idle_closed: Counter,
    /// Client requests read and not yet answered, all connections.
    pub requests_in_flight: Gauge,
    /// Times a client connection stopped reading at `limits.requests_in_flight`.
    pub reads_paused: Counter,
    /// Peer-port connections whose handshake is in progress.
    pub handshakes_in_progress: Gauge,
    /// Client-port connections whose TLS handshake is in progress.
    pub client_tls_handshakes: Gauge,
    /// Failed accepts, by listener.
    pub accept_errors: Family<ListenerLabel, PromCounter>,
    /// The soft open-file limit the node runs with.
    pub open_files_limit: Gauge,
    /// Client connections closed for a framing error.
    pub framing_errors: Counter,
    /// Log lines left out by the rate limit of repeated warnings.
    pub log_lines_suppressed: Counter,
    /// Subscriptions live now.
    pub subscriptions: Gauge,
    /// Live services in the table now (visible or not).
    pub services: Gauge,
    /// Service tombstones now.
    pub service_tombstones: Gauge,
    /// Live links in the links table now.
    pub links: Gauge,
    /// Link tombstones now.
    pub link_tombstones: Gauge,
    /// Events handed to subscriptions by the supervisor.
    pub events_routed: Counter,
    /// Event and snapshot frames handed to connections by subscriptions.
    pub events_delivered: Counter,
    /// Subscription queue overflows.
    pub overflows: Counter,
    /// Events dropped by overflowing subscriptions.
    pub events_dropped: Counter,
    /// Registrations refused, by reason.
    pub register_refusals: Family<ReasonLabel, PromCounter>,
    /// Peer link handshake failures, by reason (TLS reasons included).
    pub handshake_failures: Family<ReasonLabel, PromCounter>,
    /// TLS handshakes on the client port that failed, by reason.
    pub client_tls_failures: Family<ReasonLabel, PromCounter>,
    /// Peer changes refused because their timestamp was too far ahead.
    pub clock_refused: Counter,
    /// Peer links up now.
    pub peer_links: Gauge,
    /// 1 for each configured or known peer whose link is up, 0 for the
    /// others (set from the peer directory at each scrape).
    peer_up: Family<PeerLabel, PromGauge>,
    /// Replicated entries sent, by peer.
    pub sync_entries_sent: Family<PeerLabel, PromCounter>,
    /// Replicated entries received, by peer.
    pub sync_entries_received: Family<PeerLabel, PromCounter>,
    /// Batches sent, by peer.
    pub sync_batches_sent: Family<PeerLabel, PromCounter>,
    /// Batches received, by peer.
    pub sync_batches_received: Family<PeerLabel, PromCounter>,
    /// Frames sent again after an ack timeout, by peer.
    pub sync_retransmits: Family<PeerLabel, PromCounter>,
    /// Frames unacknowledged now, by peer.
    pub sync_unacked: Family<PeerLabel, PromGauge>,
    /// When the last initial sync with a peer completed (Unix seconds).
    pub sync_last_success: Family<PeerLabel, PromGauge>,
    /// Time from a service change at its origin to its arrival here.
    pub propagation: Histogram,
    /// Bytes held in partial frames now, all connections (read from the
    /// node's input budget at each scrape).
    input_buffered: Gauge,
    /// The node's input budget, once the node runs.
    input_budget: OnceLock<InputBudget>,
    /// Connections closed for their input, by listener and reason.
    input_closes: Family<InputCloseLabels, PromCounter>,
    /// Subscriptions refused, by reason.
    pub subscription_refusals: Family<ReasonLabel, PromCounter>,
    /// How subscriptions started: `snapshot`, `resumed` (changes replayed
    /// from the history) or `reset` (a resume answered with a snapshot).
    pub subscription_starts: Family<ReasonLabel, PromCounter>,
    /// Estimated memory of the compiled regexes of all subscriptions.
    pub regex_memory: Gauge,
    /// xlReg clusters this node refused to join, by reason.
    pub xlreg_cluster_refusals: Family<ReasonLabel, PromCounter>,
    /// The HTTP/JSON API's requests.
    pub http: http::HttpMetrics,
    actors_live: Family<KindLabel, PromGauge>,
    actors_started: Family<KindLabel, PromCounter>,
    actors_stopped: Family<KindLabel, PromCounter>,
    actor_messages: Family<MessageLabels, PromCounter>,
    actor_handling: Family<KindLabel, Histogram, fn() -> Histogram>,
    actor_queue_depth: Family<KindLabel, PromGauge>,
    /// The resolved series of each actor kind, shared by its actors.
    actor_kinds: Mutex<HashMap<String, Arc<actor::KindSeries>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, registered.
    pub fn new() -> Self {
        let mut s = Metrics {
            registry: Mutex::new(Registry::default()),
            ready: AtomicBool::new(false),
            connections: Gauge::default(),
            connections_refused: Family::default(),
            connections_open: Family::default(),
            check_status: Family::default(),
            idle_closed: Counter::default(),
            requests_in_flight: Gauge::default(),
            reads_paused: Counter::default(),
            handshakes_in_progress: Gauge::default(),
            client_tls_handshakes: Gauge::default(),
            accept_errors: Family::default(),
            open_files_limit: Gauge::default(),
            log_lines_suppressed: Counter::default(),
            framing_errors: Counter::default(),
            subscriptions: Gauge::default(),
            services: Gauge::default(),
            service_tombstones: Gauge::default(),
            links: Gauge::default(),
            link_tombstones: Gauge::default(),
            events_routed: Counter::default(),
            events_delivered: Counter::default(),
            overflows: Counter::default(),
            events_dropped: Counter::default(),
            register_refusals: Family::default(),
            handshake_failures: Family::default(),
            client_tls_failures: Family::default(),
            clock_refused: Counter::default(),
            peer_links: Gauge::default(),
            peer_up: Family::default(),
            sync_entries_sent: Family::default(),
            sync_entries_received: Family::default(),
            sync_batches_sent: Family::default(),
            sync_batches_received: Family::default(),
            sync_retransmits: Family::default(),
            sync_unacked: Family::default(),
            sync_last_success: Family::default(),
            propagation: seconds_histogram(),
            input_buffered: Gauge::default(),
            input_budget: OnceLock::new(),
            input_closes: Family::default(),
            subscription_refusals: Family::default(),
            subscription_starts: Family::default(),
            regex_memory: Gauge::default(),
            xlreg_cluster_refusals: Family::default(),
            http: http::HttpMetrics::default(),
            actors_live: Family::default(),
            actors_started: Family::default(),
            actors_stopped: Family::default(),
            actor_messages: Family::default(),
            actor_handling: Family::new_with_constructor(seconds_histogram),
            actor_queue_depth: Family::default(),
            actor_kinds: Mutex::default(),
        };
        s.register_all();
        s
    }

    fn register_all(&mut self) {
        let root = self
            .registry
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        root.register_collector(Box::new(process::ProcessCollector));
        let r = root.sub_registry_with_prefix("catalogue");
        self.http.register(r);
        r.register(
            "build",
            "The version this node was built from (always 1)",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_string(),
            }),
        );
        r.register(
            "peer_up",
            "1 when the link to this peer is up, 0 otherwise, by peer",
            self.peer_up.clone(),
        );
        r.register(
            "client_connections",
            "Client connections open",
            self.connections.0.clone(),
        );
        r.register(
            "client_connections_refused",
            "Client connections refused at limits.connections_tcp or limits.connections_unix, by transport",
            self.connections_refused.clone(),
        );
        r.register(
            "check_status",
            "Health check of each checked [[services]] definition: 1 passing (registered), 0 failing (withdrawn), by URI",
            self.check_status.clone(),
        );
        r.register(
            "client_connections_open",
            "Client connections holding a place under their transport's limit, by transport",
            self.connections_open.clone(),
        );
        r.register(
            "client_connections_idle_closed",
            "Client connections closed after limits.idle_timeout holding nothing",
            self.idle_closed.0.clone(),
        );
        r.register(
            "client_requests_in_flight",
            "Client requests read and not yet answered (each connection at most limits.requests_in_flight)",
            self.requests_in_flight.0.clone(),
        );
        r.register(
            "client_reads_paused",
            "Times a client connection stopped reading at limits.requests_in_flight",
            self.reads_paused.0.clone(),
        );
        r.register(
            "peer_handshakes_in_progress",
            "Peer-port connections whose handshake is in progress (at most limits.handshakes_in_progress)",
            self.handshakes_in_progress.0.clone(),
        );
        r.register(
            "client_tls_handshakes_in_progress",
            "Client-port connections whose TLS handshake is in progress (at most limits.handshakes_in_progress)",
            self.client_tls_handshakes.0.clone(),
        );
        r.register(
            "accept_errors",
            "Failed accepts, by listener (descriptor exhaustion pauses the listener)",
            self.accept_errors.clone(),
        );
        r.register(
            "open_files_limit",
            "The soft open-file limit (RLIMIT_NOFILE) the node runs with",
            self.open_files_limit.0.clone(),
        );
        r.register(
            "client_framing_errors",
            "Client connections closed for an oversized or undecodable frame",
            self.framing_errors.0.clone(),
        );
        r.register(
            "log_lines_suppressed",
            "Repeated warning lines left out by the log rate limit",
            self.log_lines_suppressed.0.clone(),
        );
        r.register(
            "subscriptions",
            "Subscriptions live",
            self.subscriptions.0.clone(),
        );
        r.register(
            "services",
            "Live services in the table",
            self.services.0.clone(),
        );
        r.register(
            "service_tombstones",
            "Service tombstones held",
            self.service_tombstones.0.clone(),
        );
        r.register(
            "links",
            "Live links in the links table",
            self.links.0.clone(),
        );
        r.register(
            "link_tombstones",
            "Link tombstones held",
            self.link_tombstones.0.clone(),
        );
        r.register(
            "events_routed",
            "Events routed to subscriptions",
            self.events_routed.0.clone(),
        );
        r.register(
            "events_delivered",
            "Event and snapshot frames handed to client connections",
            self.events_delivered.0.clone(),
        );
        r.register(
            "subscription_overflows",
            "Subscription queue overflows",
            self.overflows.0.clone(),
        );
        r.register(
            "events_dropped",
            "Events dropped by overflowing subscriptions",
            self.events_dropped.0.clone(),
        );
        r.register(
            "register_refusals",
            "Registrations refused, by reason",
            self.register_refusals.clone(),
        );
        r.register(
            "peer_handshake_failures",
            "Peer link handshakes that failed, by reason (TLS reasons included)",
            self.handshake_failures.clone(),
        );
        r.register(
            "client_tls_handshake_failures",
            "TLS handshakes on the client port (listen.client_tls) that failed, by reason",
            self.client_tls_failures.clone(),
        );
        r.register(
            "clock_refusals",
            "Peer changes refused because their timestamp was too far ahead",
            self.clock_refused.0.clone(),
        );
        r.register("peer_links", "Peer links up", self.peer_links.0.clone());
        r.register(
            "sync_entries_sent",
            "Replicated entries sent, by peer",
            self.sync_entries_sent.clone(),
        );
        r.register(
            "sync_entries_received",
            "Replicated entries received, by peer",
            self.sync_entries_received.clone(),
        );
        r.register(
            "sync_batches_sent",
            "Lock/UnlockAll batches sent, by peer",
            self.sync_batches_sent.clone(),
        );
        r.register(
            "sync_batches_received",
            "Lock/UnlockAll batches received, by peer",
            self.sync_batches_received.clone(),
        );
        r.register(
            "sync_retransmits",
            "Frames sent again after an ack timeout",
            self.sync_retransmits.clone(),
        );
        r.register(
            "sync_unacked_frames",
            "Frames unacknowledged, by peer",
            self.sync_unacked.clone(),
        );
        r.register(
            "sync_last_success_timestamp_seconds",
            "When the last initial sync with a peer completed",
            self.sync_last_success.clone(),
        );
        r.register(
            "propagation_latency_seconds",
            "Time from a service change at its origin to its arrival on this node",
            self.propagation.clone(),
        );
        r.register(
            "input_buffered_bytes",
            "Bytes held in partly received frames, all connections (at most limits.input_buffer_bytes)",
            self.input_buffered.0.clone(),
        );
        r.register(
            "input_closed_connections",
            "Connections closed for their input, by listener and reason (frame_timeout: limits.frame_read_timeout; input_budget: limits.input_buffer_bytes; frame_too_large, undecodable)",
            self.input_closes.clone(),
        );
        r.register(
            "subscription_refusals",
            "Subscriptions refused, by reason (per_connection, per_uid, per_address, total, regex_memory, invalid_regex)",
            self.subscription_refusals.clone(),
        );
        r.register(
            "subscription_starts",
            "Subscriptions started, by how: snapshot, resumed (changes since a revision replayed), reset (a resume answered with a fresh snapshot)",
            self.subscription_starts.clone(),
        );
        r.register(
            "subscription_regex_bytes",
            "Estimated memory of the compiled regexes of all subscriptions (at most limits.regex_memory_bytes)",
            self.regex_memory.0.clone(),
        );
        r.register(
            "xlreg_cluster_refusals",
            "xlReg clusters this node refused to join (wrong size, creator or name), by reason",
            self.xlreg_cluster_refusals.clone(),
        );
        r.register(
            "actors_live",
            "Actors alive, by kind",
            self.actors_live.clone(),
        );
        r.register(
            "actors_started",
            "Actors started, by kind",
            self.actors_started.clone(),
        );
        r.register(
            "actors_stopped",
            "Actors stopped, by kind",
            self.actors_stopped.clone(),
        );
        r.register(
            "actor_messages",
            "Messages handled, by actor kind and message type",
            self.actor_messages.clone(),
        );
        r.register(
            "actor_handling_seconds",
            "Time spent handling one message, by actor kind (one message in 16 of each kind is timed)",
            self.actor_handling.clone(),
        );
        r.register(
            "actor_queue_depth",
            "Items waiting in bounded actor queues, by actor kind",
            self.actor_queue_depth.clone(),
        );
    }

    /// The OpenMetrics 1.0 text exposition of every metric.
    pub fn encode(&self) -> String {
        if let Some(budget) = self.input_budget.get() {
            self.input_buffered
                .set(i64::try_from(budget.held()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let registry = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = encode(&mut out, &registry);
        out
    }

    /// The generic hook for subsystems that own their metrics (the hosted
    /// xlReg registry's `XlregCollector`): `collector` is encoded, under
    /// the `catalogue_` prefix, at every scrape from now on.
    pub fn add_collector(&self, collector: Box<dyn Collector>) {
        self.registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sub_registry_with_prefix("catalogue")
            .register_collector(collector);
    }

    /// The classic Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode_classic(&self) -> String {
        exposition::to_classic(&self.encode())
    }

    /// Sets `catalogue_peer_up` to the peers given, `(name, up)`, forgetting
    /// peers no longer given.
    pub fn set_peers_up<'a>(&self, peers: impl IntoIterator<Item = (&'a str, bool)>) {
        self.peer_up.clear();
        for (peer, up) in peers {
            self.peer_up
                .get_or_create(&Self::peer(peer))
                .set(i64::from(up));
        }
    }

    /// Counts a registration refusal.
    pub fn register_refusal(&self, reason: &str) {
        self.register_refusals
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Reports the node's input budget in `catalogue_input_buffered_bytes`
    /// (the first budget given is kept).
    pub fn watch_input(&self, budget: &InputBudget) {
        let _ = self.input_budget.set(budget.clone());
    }

    /// Counts a connection closed on `listener` because of `e`, when `e` is
    /// about its input (not the other side going away).
    pub fn input_closed(&self, listener: &str, e: &CodecError) {
        if e.error_code().is_some() {
            self.input_closes
                .get_or_create(&InputCloseLabels {
                    listener: listener.into(),
                    reason: e.reason().into(),
                })
                .inc();
        }
    }

    /// Counts a subscription started: `snapshot`, `resumed` or `reset`.
    pub fn subscription_start(&self, how: &str) {
        self.subscription_starts
            .get_or_create(&ReasonLabel { reason: how.into() })
            .inc();
    }

    /// Counts a refused subscription.
    pub fn subscription_refusal(&self, reason: &str) {
        self.subscription_refusals
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts a client connection refused at its transport's limit.
    pub fn connection_refused(&self, transport: &str) {
        self.connections_refused
            .get_or_create(&TransportLabel {
                transport: transport.into(),
            })
            .inc();
    }

    /// The gauge of connections open over `transport`.
    pub fn connections_open(&self, transport: &str) -> Gauge {
        Gauge(
            self.connections_open
                .get_or_create(&TransportLabel {
                    transport: transport.into(),
                })
                .clone(),
        )
    }

    /// Counts a failed accept on `listener`.
    pub fn accept_error(&self, listener: &str) {
        self.accept_errors
            .get_or_create(&ListenerLabel {
                listener: listener.into(),
            })
            .inc();
    }

    /// Counts a peer handshake failure.
    pub fn handshake_failure(&self, reason: &str) {
        self.handshake_failures
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts a failed TLS handshake on the client port.
    pub fn client_tls_failure(&self, reason: &str) {
        self.client_tls_failures
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts an xlReg cluster this node refused to join.
    pub fn xlreg_cluster_refusal(&self, reason: &str) {
        self.xlreg_cluster_refusals
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Records a propagation delay in milliseconds.
    pub fn propagation_ms(&self, ms: u64) {
        self.propagation.observe(ms as f64 / 1000.0);
    }

    /// Marks the node ready.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// Is the node ready?
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A per-peer label.
    pub fn peer(peer: &str) -> PeerLabel {
        PeerLabel { peer: peer.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_follow_prometheus_conventions() {
        let stats = Arc::new(Metrics::new());
        let m = ActorMetrics::new(stats.clone(), "supervisor");
        m.started();
        drop(m.handling("RegisterService"));
        stats.overflows.inc();
        stats.register_refusal("uid_not_allowed");
        stats.connection_refused("tcp");
        stats.accept_error("peer");
        stats.connections_open("unix").inc();
        let text = stats.encode();
        for series in [
            "catalogue_client_connections_refused_total{transport=\"tcp\"} 1",
            "catalogue_accept_errors_total{listener=\"peer\"} 1",
            "catalogue_client_connections_open{transport=\"unix\"} 1",
            "catalogue_client_requests_in_flight 0",
            "catalogue_peer_handshakes_in_progress 0",
            "catalogue_log_lines_suppressed_total 0",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        assert!(
            text.contains("catalogue_actors_live{kind=\"supervisor\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("catalogue_actors_started_total{kind=\"supervisor\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "catalogue_actor_messages_total{kind=\"supervisor\",message=\"RegisterService\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("catalogue_actor_handling_seconds_count{kind=\"supervisor\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("catalogue_subscription_overflows_total 1"),
            "{text}"
        );
        assert!(
            text.contains("catalogue_register_refusals_total{reason=\"uid_not_allowed\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn build_info_peer_up_and_xlreg_errors_by_kind_are_exposed() {
        let stats = Metrics::new();
        stats.add_collector(Box::new(crate::xlreg::XlregCollector::new(Arc::default())));
        stats.set_peers_up([("node-b", true), ("node-c", false)]);
        let text = stats.encode();
        let build = format!(
            "catalogue_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        for series in [
            build.as_str(),
            "catalogue_peer_up{peer=\"node-b\"} 1",
            "catalogue_peer_up{peer=\"node-c\"} 0",
            "catalogue_xlreg_errors_total{kind=\"frame_refused\"} 0",
            "process_open_fds ",
        ] {
            assert!(text.contains(series), "{series} in {text}");
        }
        // A peer gone from the directory is gone from the gauge.
        stats.set_peers_up([("node-b", false)]);
        let text = stats.encode_classic();
        assert!(
            text.contains("catalogue_peer_up{peer=\"node-b\"} 0"),
            "{text}"
        );
        assert!(!text.contains("node-c"), "{text}");
        assert!(text.contains("# TYPE catalogue_build_info gauge"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }
}
