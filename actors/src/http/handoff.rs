//! Watch streams served on the node's own thread.
//!
//! The API's worker threads answer reads without ever waiting on the
//! supervisor, but a watch is the other way round: every event starts on
//! the supervisor's thread. Served on a worker, each event would have to
//! wake that worker's thread, which on an idle machine costs tens of
//! microseconds more than the whole native path (docs/PERFORMANCE.md, "the
//! SSE watch against the native subscription"). So a worker that accepts
//! a TCP connection peeks at its first bytes: when they are a
//! `GET /v1/watch` request line, the connection itself is handed to the
//! node's thread, which serves it with the same application (its
//! subscription then lives beside the supervisor, as a socket client's
//! does) and closes it when the stream ends. Everything else, and a
//! connection whose first bytes have not arrived or do not say `watch`, is
//! served where it was accepted. The worker keeps counting a handed-over
//! connection until the node's thread is done with it, so `http.max_connections`
//! still bounds them all.

use std::{net, rc::Rc, time::Duration};

use actix_rt::net::TcpStream;
use actix_service::{Service as _, ServiceFactory as _};
use tokio::sync::{mpsc, oneshot, watch};

use super::{Api, tcp};

/// How long a worker waits for a new connection's first bytes before it
/// serves the connection itself (its HTTP parser then applies the usual
/// request timeout).
pub const PEEK_WAIT: Duration = Duration::from_secs(5);

/// Bytes that start every request a watch is: the method, the path, and
/// then a `?` or a space ([`is_watch_request`]).
const WATCH_PREFIX: &[u8] = b"GET /v1/watch";

/// Whether `first` (the first bytes read from a connection) starts a
/// `GET /v1/watch` request. A prefix too short to tell is not one.
pub fn is_watch_request(first: &[u8]) -> bool {
    first.len() > WATCH_PREFIX.len()
        && first.starts_with(WATCH_PREFIX)
        && matches!(first[WATCH_PREFIX.len()], b'?' | b' ')
}

/// A connection on its way to the node's thread, and how the worker
/// learns that the node is done with it.
type Handed = (net::TcpStream, oneshot::Sender<()>);

/// The workers' end: where they hand connections over. Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    to_node: mpsc::UnboundedSender<Handed>,
}

/// What a worker does with a connection it accepted.
pub enum Route {
    /// Serve it here.
    Here(TcpStream),
    /// The node's thread serves it; this completes when it is done.
    Node(oneshot::Receiver<()>),
}

impl Handoff {
    /// Peeks at `io`'s first bytes and hands it to the node's thread when
    /// they start a watch request (and the node still takes connections).
    pub async fn route(&self, io: TcpStream) -> Route {
        let mut first = [0u8; WATCH_PREFIX.len() + 1];
        let watch = match tokio::time::timeout(PEEK_WAIT, io.peek(&mut first)).await {
            Ok(Ok(n)) => is_watch_request(&first[..n]),
            _ => false,
        };
        if !watch || self.to_node.is_closed() {
            return Route::Here(io);
        }
        let std = match io.into_std() {
            Ok(std) => std,
            Err(e) => {
                // The stream is gone with the error: nothing left to serve.
                tracing::debug!(error = %e, "cannot hand a watch connection over");
                let (done, rx) = oneshot::channel();
                drop(done);
                return Route::Node(rx);
            }
        };
        let (done, rx) = oneshot::channel();
        match self.to_node.send((std, done)) {
            Ok(()) => Route::Node(rx),
            Err(mpsc::error::SendError((std, _))) => match TcpStream::from_std(std) {
                Ok(io) => Route::Here(io),
                Err(_) => Route::Node(rx),
            },
        }
    }
}

/// The node's end: serves what the workers hand over until stopped.
pub struct NodeSide {
    stop: watch::Sender<bool>,
}

impl NodeSide {
    /// Starts serving handed-over connections on the current thread (the
    /// node's) with the application built from `api`, and returns the
    /// workers' end with it.
    pub fn start(api: Api) -> (NodeSide, Handoff) {
        let (to_node, mut handed) = mpsc::unbounded_channel::<Handed>();
        let (stop, stopped) = watch::channel(false);
        let mut stopping = stopped.clone();
        actix_rt::spawn(async move {
            // One connection, one stream: the connection closes when its
            // watch ends, so other requests go back to the workers.
            let factory = tcp::http_service(api, actix_http::KeepAlive::Disabled);
            let service = match factory.new_service(()).await {
                Ok(service) => Rc::new(service),
                Err(()) => {
                    tracing::error!("cannot start the watch service on the node's thread");
                    return;
                }
            };
            loop {
                let (std, done) = tokio::select! {
                    next = handed.recv() => match next {
                        Some(next) => next,
                        None => break,
                    },
                    _ = stopping.wait_for(|s| *s) => break,
                };
                let Ok(io) = TcpStream::from_std(std) else {
                    continue;
                };
                let service = service.clone();
                let mut stopped = stopped.clone();
                actix_rt::spawn(async move {
                    tokio::select! {
                        _ = service.call(io) => {}
                        _ = stopped.wait_for(|s| *s) => {}
                    }
                    let _ = done.send(());
                });
            }
        });
        (NodeSide { stop }, Handoff { to_node })
    }

    /// Ends every watch connection it serves and takes no more.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::is_watch_request;

    #[test]
    fn only_a_watch_request_line_is_a_watch() {
        assert!(is_watch_request(b"GET /v1/watch?match=x HTTP/1.1\r\n"));
        assert!(is_watch_request(b"GET /v1/watch HTTP/1.1\r\n"));
        assert!(!is_watch_request(b"GET /v1/watchers HTTP/1.1\r\n"));
        assert!(!is_watch_request(b"GET /v1/services HTTP/1.1\r\n"));
        assert!(!is_watch_request(b"HEAD /v1/watch HTTP/1.1\r\n"));
        assert!(!is_watch_request(b"GET /v1/wat"));
        assert!(!is_watch_request(b"GET /v1/watch"));
        assert!(!is_watch_request(b""));
    }
}
