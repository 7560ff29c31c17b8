//! TLS on the client TCP port (`listen.client_tls`, docs/PROTOCOL.md §1.1).
//!
//! The accept loop must never wait on a handshake, so each accepted TCP
//! connection is handed to [`TlsPort::start`], which runs the handshake in
//! a task of its own under two bounds: a deadline (`limits.frame_read_timeout`,
//! the time any partial input may take) and the port's share of handshakes
//! in progress (`limits.handshakes_in_progress`, in total and per source
//! address, counted apart from the peer port's). What each handshake came
//! to is queued for the loop ([`TlsPort::next`]), which starts a
//! connection actor over the encrypted stream exactly as over a plain one:
//! the connection limits, request bounds and idle deadline apply after the
//! handshake as they do without TLS.
//!
//! A client certificate, when `mutual` asks for one, only admits a reader:
//! registration stays on the UNIX socket.

use std::{net::SocketAddr, time::Duration};

use openssl::ssl::SslAcceptor;
use tokio::{net::TcpStream, sync::mpsc};
use tokio_openssl::SslStream;

use crate::admission::{HandshakeRefusal, HandshakeSlots};

/// What became of one connection's handshake.
pub enum Handshaken {
    /// The stream is encrypted (and the client's certificate verified, in
    /// `mutual` mode).
    Ready {
        /// The encrypted stream.
        stream: SslStream<TcpStream>,
        /// The client's address.
        peer: SocketAddr,
    },
    /// The handshake failed or took too long; the connection is closed.
    Failed {
        /// The client's address.
        peer: SocketAddr,
        /// A short, fixed reason for metrics (a TLS failure label or
        /// `timeout`).
        reason: &'static str,
        /// What happened, for the log.
        detail: String,
    },
    /// Too many handshakes were in progress; the connection was closed
    /// without one.
    Refused {
        /// The client's address.
        peer: SocketAddr,
        /// Which bound.
        why: HandshakeRefusal,
    },
}

/// The client port's TLS server context and its handshakes in progress.
pub struct TlsPort {
    acceptor: SslAcceptor,
    slots: HandshakeSlots,
    deadline: Duration,
    done_tx: mpsc::UnboundedSender<Handshaken>,
    done_rx: mpsc::UnboundedReceiver<Handshaken>,
}

impl TlsPort {
    /// A port serving `acceptor`, with `deadline` per handshake and
    /// `slots` bounding how many run at once.
    pub fn new(acceptor: SslAcceptor, slots: HandshakeSlots, deadline: Duration) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        TlsPort {
            acceptor,
            slots,
            deadline,
            done_tx,
            done_rx,
        }
    }

    /// Starts the handshake of `stream` from `peer`, or refuses it at once
    /// when the port runs too many. Each outcome is queued exactly once (the
    /// queue is as long as the handshakes in progress, so it is bounded).
    pub fn start(&self, stream: TcpStream, peer: SocketAddr) {
        let slot = match self.slots.try_acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                drop(stream);
                let _ = self.done_tx.send(Handshaken::Refused { peer, why });
                return;
            }
        };
        let acceptor = self.acceptor.clone();
        let deadline = self.deadline;
        let done = self.done_tx.clone();
        tokio::task::spawn_local(async move {
            let outcome =
                match tokio::time::timeout(deadline, crate::tls::accept(&acceptor, stream)).await {
                    Ok(Ok(stream)) => Handshaken::Ready { stream, peer },
                    Ok(Err(e)) => Handshaken::Failed {
                        peer,
                        reason: e.reason(),
                        detail: e.to_string(),
                    },
                    Err(_) => Handshaken::Failed {
                        peer,
                        reason: "timeout",
                        detail: format!(
                            "no TLS handshake within {deadline:?} (limits.frame_read_timeout)"
                        ),
                    },
                };
            drop(slot);
            let _ = done.send(outcome);
        });
    }

    /// The next handshake that finished.
    pub async fn next(&mut self) -> Option<Handshaken> {
        self.done_rx.recv().await
    }
}
