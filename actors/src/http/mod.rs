//! The HTTP/JSON API (docs/HTTP.md): what any language, `curl` or a browser
//! can read from a node without the native protocol.
//!
//! Served by actix-web's application on `http.listen`, on worker threads
//! of its own ([`tcp`]; a watch stream is handed to the node's thread,
//! [`handoff`]), and read-only over TCP; the same API on the UNIX socket `http.socket` adds
//! registration by lease ([`register`], [`leases`], [`lease_table`]). The
//! read endpoints:
//!
//! * `GET /v1/services?match=REGEX&limit=N&after=URI`: the visible
//!   services in URI order, a page at a time ([`services`]);
//! * `GET /v1/links`, `GET /v1/peers`, `GET /v1/node`: the links table,
//!   the direct peers and this node's identity ([`cluster`]);
//! * `GET /v1/watch?match=REGEX`: a Server-Sent Events stream of the
//!   matching services and their changes, resumable with `Last-Event-ID`
//!   ([`watch`], [`sse`]);
//! * `GET /ui/`: a status page (services with a live filter, the cluster
//!   drawn from the links table, peers, this node), one embedded HTML file
//!   that reads the endpoints above.
//!
//! Reads never queue behind replication: services come from the
//! supervisor's read view ([`ServicesView`], shared with the native
//! `List`), links from the view it publishes after each change
//! ([`LinksCell`]), peers from the peer directory; no request waits in the
//! supervisor's mailbox. Every answer that is not a
//! success is a JSON error with a stable code ([`error`]); unknown query
//! parameters, bad regexes and oversized requests are answered 400 or 413
//! with the reason. Each request is counted by route and status, with its
//! latency, in the node's metrics (`catalogue_http_*`).

pub mod cluster;
pub mod error;
pub mod handoff;
pub mod json;
pub mod lease_table;
pub mod leases;
pub mod register;
pub mod services;
pub mod sse;
pub mod tcp;
pub mod watch;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use actix_web::{
    App, HttpRequest, HttpResponse, HttpServer,
    body::MessageBody,
    dev::{ServerHandle, Service as _, ServiceResponse},
    web,
};
use futures_util::FutureExt;

pub use error::ApiError;
pub use leases::LeaseKeeper;
pub use register::{PeerCred, Registrar};

use crate::{
    connection::ClientShared,
    metrics::Metrics,
    peer::directory::PeerDirectory,
    settings::{HttpSettings, LimitsSettings},
    supervisor::{LinksCell, ServicesView},
};

/// Worker threads of the API: reads are short and come from shared views,
/// two keep one slow client from holding up the rest.
const WORKERS: usize = 2;

/// Who this node is, for `GET /v1/node`.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Node name.
    pub name: String,
    /// Cluster name.
    pub cluster: String,
    /// Environment.
    pub environment: String,
}

/// What the handlers read; cheap to clone (shared handles).
#[derive(Clone)]
pub struct Api {
    /// The visible services.
    pub view: ServicesView,
    /// The links table, as the supervisor last published it.
    pub links: LinksCell,
    /// The direct peers.
    pub directory: PeerDirectory,
    /// Where requests are counted.
    pub stats: Arc<Metrics>,
    /// This node.
    pub node: NodeIdentity,
    /// `http.page_limit`.
    pub page_limit: usize,
    /// `limits.max_regex_bytes`: the compiled size a `match` may reach.
    pub max_regex_bytes: usize,
    /// `http.max_request_bytes`.
    pub max_request_bytes: usize,
    /// What client connections share: the subscription ledger and keys,
    /// the limits a watch obeys.
    pub shared: Arc<ClientShared>,
}

impl Api {
    /// The handlers' state from the node's parts and settings.
    pub fn new(
        parts: (ServicesView, LinksCell, PeerDirectory, Arc<Metrics>),
        node: NodeIdentity,
        http: &HttpSettings,
        limits: &LimitsSettings,
        shared: Arc<ClientShared>,
    ) -> Self {
        let (view, links, directory, stats) = parts;
        Api {
            view,
            links,
            directory,
            stats,
            node,
            page_limit: http.page_limit,
            max_regex_bytes: limits.max_regex_bytes,
            max_request_bytes: http.max_request_bytes,
            shared,
        }
    }
}

/// A running API listener.
pub struct ApiServer {
    /// Where it listens (TCP), if over TCP.
    pub local_addr: Option<SocketAddr>,
    /// Its socket file, if over a UNIX socket; removed at stop.
    pub socket: Option<PathBuf>,
    handle: ServerHandle,
    /// The watch streams served on the node's thread (TCP only).
    node_side: Option<handoff::NodeSide>,
}

impl ApiServer {
    /// Stops it, letting requests in progress finish.
    pub async fn stop(self) {
        if let Some(node_side) = &self.node_side {
            node_side.stop();
        }
        self.handle.stop(true).await;
        if let Some(path) = self.socket {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove the HTTP API socket file");
            }
        }
    }
}

/// Serves the API with registration by lease on the UNIX socket `path`
/// (a stale socket file is replaced, a live one refused, as for
/// `listen.socket`).
pub fn start_unix(
    path: &Path,
    settings: &HttpSettings,
    api: Api,
    registrar: Registrar,
) -> std::io::Result<ApiServer> {
    let listener = crate::listen::bind_unix(path)
        .map_err(std::io::Error::other)?
        .into_std()?;
    let max_connections = settings.max_connections.div_ceil(WORKERS);
    let server = HttpServer::new(move || app(api.clone(), Some(registrar.clone())))
        .workers(WORKERS)
        .max_connections(max_connections)
        .disable_signals()
        .on_connect(|conn, extensions| {
            if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::UnixStream>() {
                if let Ok(cred) = stream.peer_cred() {
                    extensions.insert(PeerCred {
                        uid: cred.uid(),
                        gid: cred.gid(),
                        pid: cred.pid(),
                    });
                }
            }
        })
        .listen_uds(listener)?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(ApiServer {
        local_addr: None,
        socket: Some(path.to_path_buf()),
        handle,
        node_side: None,
    })
}

/// Binds `settings.listen` and serves the read-only API on it; runs on the
/// node's thread.
pub fn start(settings: &HttpSettings, api: Api) -> std::io::Result<ApiServer> {
    let server = tcp::start(settings, api)?;
    Ok(ApiServer {
        local_addr: Some(server.local_addr),
        socket: None,
        handle: server.handle,
        node_side: Some(server.node_side),
    })
}

/// The application: routes (the write routes with a `registrar`), limits,
/// JSON errors and metrics.
fn app(
    api: Api,
    registrar: Option<Registrar>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let stats = api.stats.clone();
    let max_request = api.max_request_bytes;
    App::new()
        .app_data(web::Data::new(api))
        .app_data(
            web::QueryConfig::default()
                .error_handler(|e, _| ApiError::BadRequest(format!("query: {e}")).into()),
        )
        .app_data(web::PayloadConfig::new(max_request))
        .app_data(
            web::JsonConfig::default()
                .limit(max_request)
                .error_handler(|e, _| ApiError::BadRequest(format!("body: {e}")).into()),
        )
        .route("/v1/services", web::get().to(services::list))
        .route("/v1/links", web::get().to(cluster::links))
        .route("/v1/peers", web::get().to(cluster::peers))
        .route("/v1/node", web::get().to(cluster::node))
        .route("/v1/watch", web::get().to(watch::watch))
        .route("/ui/", web::get().to(ui))
        .route("/ui", web::get().to(to_ui))
        .route("/", web::get().to(to_ui))
        .configure(|config| {
            if let Some(registrar) = registrar {
                config
                    .app_data(web::Data::new(registrar))
                    .route("/v1/services", web::put().to(register::register))
                    .route("/v1/leases/{id}", web::put().to(register::renew))
                    .route("/v1/leases/{id}", web::delete().to(register::revoke));
            }
        })
        .default_service(web::to(not_found))
        .wrap_fn(move |req, srv| {
            let started = Instant::now();
            let stats = stats.clone();
            let too_large = req.query_string().len() > max_request;
            let call = if too_large {
                let (req, _) = req.into_parts();
                let response = HttpResponse::from_error(ApiError::TooLarge { limit: max_request });
                futures_util::future::ready(Ok(
                    ServiceResponse::new(req, response).map_into_boxed_body()
                ))
                .left_future()
            } else {
                srv.call(req)
                    .map(|r| r.map(ServiceResponse::map_into_boxed_body))
                    .right_future()
            };
            async move {
                let response = call.await?;
                let route = response
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string());
                stats.http.observe(
                    &route,
                    response.status().as_u16(),
                    started.elapsed().as_secs_f64(),
                );
                Ok(response)
            }
        })
}

/// The status page: one file, no build step, no outside resources; it
/// reads everything from this API (docs/HTTP.md, "Status page").
const UI: &str = include_str!("ui.html");

async fn ui() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'",
        ))
        .body(UI)
}

async fn to_ui() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/ui/"))
        .finish()
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound {
        method: req.method().to_string(),
        path: req.path().to_string(),
    })
}
