//! The API's TCP listener: actix-server's accept loop and workers, with
//! actix-http serving the application on each connection, as actix-web's
//! `HttpServer` would (the same timeouts and backlog), plus the one thing
//! it cannot do: a connection that opens with a watch request is handed to
//! the node's thread ([`super::handoff`]).

use std::{net::SocketAddr, rc::Rc, time::Duration};

use actix_http::{HttpService, KeepAlive, error::DispatchError};
use actix_rt::net::TcpStream;
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, Service as _, ServiceFactory, ServiceFactoryExt as _, fn_factory,
    fn_service, map_config,
};
use actix_web::dev::AppConfig;

use super::{
    Api, WORKERS, app,
    handoff::{Handoff, NodeSide, Route},
};
use crate::settings::HttpSettings;

/// How long a client may take to send a request's head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may take to close once its response is written.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections the kernel queues before they are accepted.
const BACKLOG: u32 = 1024;

/// The application served over HTTP/1 on a TCP connection, with
/// `keep_alive`.
pub fn http_service(
    api: Api,
    keep_alive: KeepAlive,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    let app = app(api, None)
        .into_factory()
        .map_err(|e: actix_web::Error| e.as_response_error().error_response());
    HttpService::build()
        .keep_alive(keep_alive)
        .client_request_timeout(REQUEST_TIMEOUT)
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .finish(map_config(app, |_| AppConfig::default()))
        .tcp()
}

/// Binds `listen` (an `ip:port`, as `config check` requires) with
/// HttpServer's backlog.
fn bind(listen: &str) -> std::io::Result<std::net::TcpListener> {
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

/// A running TCP listener of the API.
pub struct TcpApi {
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// Its accept loop and workers.
    pub handle: actix_server::ServerHandle,
    /// The watch connections on the node's thread.
    pub node_side: NodeSide,
}

/// Binds `settings.listen` and serves the read-only API on it. Must run on
/// the node's thread: watches are served there.
pub fn start(settings: &HttpSettings, api: Api) -> std::io::Result<TcpApi> {
    let listener = bind(&settings.listen)?;
    let local_addr = listener.local_addr()?;
    let (node_side, handoff) = NodeSide::start(api.clone());
    let builder = Server::build()
        .workers(WORKERS)
        .backlog(BACKLOG)
        .max_concurrent_connections(settings.max_connections.div_ceil(WORKERS))
        .disable_signals()
        .listen("catalogue-http-api", listener, move || {
            connection_service(api.clone(), handoff.clone())
        })?;
    let server = builder.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok(TcpApi {
        local_addr,
        handle,
        node_side,
    })
}

/// What a worker does with each connection it accepts: Nagle off (each
/// event of a watch is written as it happens; without it a small write
/// waits for the previous one's ACK, up to the reader's delayed-ACK
/// timeout, 40 ms on Linux), then serve it here or hand it to the node's
/// thread.
fn connection_service(
    api: Api,
    handoff: Handoff,
) -> impl ServiceFactory<TcpStream, Config = (), Response = (), Error = DispatchError, InitError = ()>
{
    fn_factory(move || {
        let here = http_service(api.clone(), KeepAlive::default());
        let handoff = handoff.clone();
        async move {
            let here = Rc::new(here.new_service(()).await?);
            Ok(fn_service(move |io: TcpStream| {
                let here = here.clone();
                let handoff = handoff.clone();
                async move {
                    let _ = io.set_nodelay(true);
                    match handoff.route(io).await {
                        Route::Here(io) => here.call(io).await,
                        Route::Node(done) => {
                            let _ = done.await;
                            Ok(())
                        }
                    }
                }
            }))
        }
    })
}
