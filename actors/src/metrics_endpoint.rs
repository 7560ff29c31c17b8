//! The operators' HTTP endpoint (actix-web, one worker):
//!
//! * `GET /metrics` (and `HEAD`): every metric, as OpenMetrics 1.0 when the
//!   `Accept` header asks for `application/openmetrics-text`, in the classic
//!   Prometheus text format 0.0.4 otherwise (see [`crate::metrics::exposition`]);
//! * `GET /health`: 200 while the node serves, with a JSON body (status `ok`,
//!   or `degraded` with its `reasons`: peers down, not ready yet; node,
//!   cluster, peers up and down, table sizes);
//! * `GET /ready`: 200 once the node is ready, 503 before with what it
//!   awaits. The listeners are bound before this endpoint starts; the node
//!   is then ready once no peer is awaited
//!   ([`crate::peer::directory::awaited_peers`]: every reachable peer has
//!   synced), and stays ready.

use std::{net::SocketAddr, sync::Arc};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, dev::ServerHandle, http::header, web};
use serde_json::json;

use crate::{
    metrics::{Metrics, exposition},
    peer::directory::{PeerDirectory, PeerState, awaited_peers, down_peers},
};

/// What the handlers read.
#[derive(Clone)]
struct Shared {
    stats: Arc<Metrics>,
    directory: PeerDirectory,
    node: String,
    cluster: String,
}

/// A running endpoint.
pub struct MetricsServer {
    /// Where it listens.
    pub local_addr: SocketAddr,
    handle: ServerHandle,
}

impl MetricsServer {
    /// Stops it, letting requests in progress finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Binds `addr` and serves the endpoint.
pub fn start(
    addr: &str,
    stats: Arc<Metrics>,
    directory: PeerDirectory,
    node: &str,
    cluster: &str,
) -> std::io::Result<MetricsServer> {
    let shared = Shared {
        stats,
        directory,
        node: node.to_string(),
        cluster: cluster.to_string(),
    };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(shared.clone()))
            .route("/metrics", web::get().to(metrics))
            .route("/metrics", web::head().to(metrics))
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
    })
    .workers(1)
    .disable_signals()
    .bind(addr)?;
    let local_addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("the metrics listener has no address"))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(MetricsServer { local_addr, handle })
}

async fn metrics(request: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let peers = shared.directory.list();
    shared.stats.set_peers_up(
        peers
            .iter()
            .map(|p| (p.name.as_str(), p.state == PeerState::Up)),
    );
    let openmetrics = request
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(exposition::wants_openmetrics);
    let (content_type, body) = if openmetrics {
        (exposition::OPENMETRICS_CONTENT_TYPE, shared.stats.encode())
    } else {
        (
            exposition::CLASSIC_CONTENT_TYPE,
            shared.stats.encode_classic(),
        )
    };
    // actix-web sends the headers alone for HEAD.
    HttpResponse::Ok().content_type(content_type).body(body)
}

/// Marks the node ready when no peer is awaited any more; returns what is
/// still awaited (empty once ready).
fn check_ready(shared: &Shared) -> Vec<String> {
    if shared.stats.is_ready() {
        return Vec::new();
    }
    let awaited = awaited_peers(&shared.directory.list());
    if awaited.is_empty() {
        shared.stats.set_ready();
        tracing::info!("ready: every peer synced or away");
    }
    awaited
}

async fn health(shared: web::Data<Shared>) -> HttpResponse {
    let awaited = check_ready(&shared);
    let peers = shared.directory.list();
    let mut reasons = down_peers(&peers);
    reasons.extend(awaited.iter().map(|a| format!("not ready: {a}")));
    let up: Vec<&str> = peers
        .iter()
        .filter(|p| p.state == PeerState::Up)
        .map(|p| p.name.as_str())
        .collect();
    let down: Vec<&str> = peers
        .iter()
        .filter(|p| p.state != PeerState::Up)
        .map(|p| p.name.as_str())
        .collect();
    let s = &shared.stats;
    HttpResponse::Ok().json(json!({
        "status": if reasons.is_empty() { "ok" } else { "degraded" },
        "reasons": reasons,
        "node": shared.node,
        "cluster": shared.cluster,
        "ready": s.is_ready(),
        "peers_up": up,
        "peers_down": down,
        "services": s.services.get(),
        "service_tombstones": s.service_tombstones.get(),
        "links": s.links.get(),
        "link_tombstones": s.link_tombstones.get(),
        "subscriptions": s.subscriptions.get(),
        "client_connections": s.connections.get(),
    }))
}

async fn ready(shared: web::Data<Shared>) -> HttpResponse {
    let awaited = check_ready(&shared);
    if awaited.is_empty() {
        HttpResponse::Ok().body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable().body(format!("not ready: {}\n", awaited.join("; ")))
    }
}
