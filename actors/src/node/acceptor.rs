//! Accepting client connections: a place under the transport's
//! connection limit, the `Welcome` (or the refusal), and the
//! [`ClientConnection`] actor with its reader and writer; the outcome of a
//! client-port TLS handshake; rate-limited warnings on these paths.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use catalogue_proto::{
    Body,
    catalogue::{Error, ErrorCode, Welcome},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};
use tokio_util::codec::FramedRead;
use tracing::warn;

use crate::{
    admission::{AcceptBackoff, ConnectionSlots},
    connection::{
        ClientConnection, ClientShared,
        auth::Transport,
        gated,
        tls::{Handshaken, TlsPort},
    },
    frame_writer::{self, Outbound},
    input::InputLimits,
    log_limit::LogLimit,
};

/// Initial read buffer of a client connection: most requests are far
/// smaller than the codec's 8 KiB default, and idle connections are many;
/// the buffer grows for a bigger frame.
const READ_BUFFER: usize = 512;

/// At most one line per reason in this time on the accept paths (refused
/// client connections, failed accepts); the next line says how many were
/// left out.
pub(super) const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Accepts client connections and starts their actors.
pub(super) struct Acceptor {
    pub welcome: Welcome,
    pub shared: Arc<ClientShared>,
    pub stop: watch::Receiver<bool>,
    pub next_conn: u64,
    pub max_frame: usize,
    /// Frame limits, deadline and budget of the connections' readers.
    pub input: InputLimits,
    /// Places for TCP clients (`limits.connections_tcp`, maybe lowered to
    /// fit the open-file limit).
    pub tcp: ConnectionSlots,
    /// Places for UNIX socket clients (`limits.connections_unix`).
    pub unix: ConnectionSlots,
    /// Requests of all TCP clients in the node (`limits.requests_in_flight_tcp`).
    pub tcp_requests: Arc<Semaphore>,
    /// Requests of all UNIX clients in the node (`limits.requests_in_flight_unix`).
    pub unix_requests: Arc<Semaphore>,
    /// Rate of the warnings on the accept paths.
    pub log: LogLimit,
    pub writers: JoinSet<()>,
}

impl Acceptor {
    pub fn accept<S>(&mut self, stream: S, transport: Transport)
    where
        S: AsyncRead + AsyncWrite + Unpin + 'static,
    {
        let (slots, requests, name, key) = match transport {
            Transport::Tcp { .. } => (
                &self.tcp,
                &self.tcp_requests,
                "tcp",
                "limits.connections_tcp",
            ),
            Transport::Unix { .. } => (
                &self.unix,
                &self.unix_requests,
                "unix",
                "limits.connections_unix",
            ),
        };
        let requests = requests.clone();
        let slot = slots.try_acquire();
        let limit = slots.limit();
        let (read, write) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(frame_writer::OUTBOUND_FRAMES);
        self.writers
            .spawn_local(frame_writer::run(write, rx, self.max_frame));
        let Some(slot) = slot else {
            self.shared.stats.connection_refused(name);
            let message = format!("too many connections over {name} ({key} = {limit})");
            self.warn(key, |unlogged| {
                warn!(%transport, limit, reason = key, unlogged, "connection refused");
            });
            let _ = tx.try_send(Outbound::from(Body::Error(Error::new(
                ErrorCode::LimitExceeded,
                message,
            ))));
            return;
        };
        let _ = tx.try_send(Outbound::from(Body::Welcome(self.welcome.clone())));
        let id = self.next_conn;
        self.next_conn += 1;
        let shared = self.shared.clone();
        let stop = self.stop.clone();
        let reader = self.input.deadline(FramedRead::with_capacity(
            read,
            self.input.codec(),
            READ_BUFFER,
        ));
        ClientConnection::create(move |ctx| {
            ctx.add_stream(gated(
                reader,
                shared.limits.requests_in_flight,
                requests,
                shared.stats.clone(),
            ));
            ClientConnection::new(id, transport, tx, shared, stop, slot)
        });
    }

    /// Starts the connection a client-port TLS handshake produced, or
    /// counts and (rate-limited) logs why there is none.
    pub fn handshaken(&mut self, done: Handshaken) {
        match done {
            Handshaken::Ready { stream, peer } => self.accept(stream, Transport::Tcp { peer }),
            Handshaken::Failed {
                peer,
                reason,
                detail,
            } => {
                self.shared.stats.client_tls_failure(reason);
                self.warn("client_tls", |unlogged| {
                    warn!(%peer, reason, unlogged, "client TLS handshake failed: {detail}");
                });
            }
            Handshaken::Refused { peer, why } => {
                self.shared.stats.client_tls_failure(why.reason());
                self.warn(why.reason(), |unlogged| {
                    warn!(%peer, unlogged, "client connection refused before TLS: {why}");
                });
            }
        }
    }

    /// Runs `log` (given how many lines of `reason` were left out) unless a
    /// line of `reason` was written less than [`ACCEPT_LOG_INTERVAL`] ago.
    pub fn warn(&mut self, reason: &'static str, log: impl FnOnce(u64)) {
        match self.log.check(reason, Instant::now()) {
            Some(unlogged) => log(unlogged),
            None => self.shared.stats.log_lines_suppressed.inc(),
        }
    }

    /// Counts and (rate-limited) logs a failed accept on `listener`, and
    /// pauses that listener if the process is out of descriptors.
    pub fn accept_failed(
        &mut self,
        listener: &'static str,
        backoff: &mut AcceptBackoff,
        e: &std::io::Error,
    ) {
        self.shared.stats.accept_error(listener);
        let pause = backoff.failed(e, Instant::now());
        self.warn(listener, |unlogged| {
            warn!(listener, error = %e, pause = ?pause, unlogged, "accepting a connection failed");
        });
    }
}

/// The next client-port TLS handshake to finish; never, without TLS.
pub(super) async fn next_handshake(port: &mut Option<TlsPort>) -> Option<Handshaken> {
    match port {
        Some(port) => port.next().await,
        None => std::future::pending().await,
    }
}
