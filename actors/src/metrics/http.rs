//! Metrics of the HTTP/JSON API: requests by route and status, and how
//! long they took by route. The route is the pattern that matched
//! (`/v1/services`), never the raw path, so a client cannot grow the
//! number of series.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// A route and the status it answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// The matched route pattern (`unmatched` for none).
    pub route: String,
    /// The HTTP status code.
    pub status: u16,
}

/// A route.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    /// The matched route pattern (`unmatched` for none).
    pub route: String,
}

/// From 100 µs to about 13 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
}

/// The API's series.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RouteStatus, Counter>,
    latency: Family<Route, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl HttpMetrics {
    /// Adds the series to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "HTTP API requests answered, by route and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from an HTTP API request's arrival to its answer (to the response head, for a stream), by route",
            self.latency.clone(),
        );
    }

    /// Counts one request on `route` answered with `status` after `seconds`.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RouteStatus {
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&Route {
                route: route.to_string(),
            })
            .observe(seconds);
    }
}
