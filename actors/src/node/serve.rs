//! Serving: the accept loop of a started node. It accepts on the client
//! port (through the TLS port when `listen.client_tls` is on), the UNIX
//! socket and the peer port, applies reloads (SIGHUP), follows the members
//! xlReg reports, and reaps finished connection tasks, until the shutdown
//! future resolves.

use std::future::Future;

use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{
    acceptor::next_handshake,
    listeners::{accept_tcp, accept_unix},
    start::Node,
};
use crate::{
    connection::auth::Transport, membership::Discovered, peer, settings::Settings,
    supervisor::DropPeer,
};

impl Node {
    /// Accepts and serves until `shutdown` resolves, applying each
    /// configuration that arrives on `reloads`.
    pub(super) async fn serve(
        &mut self,
        shutdown: impl Future<Output = ()>,
        mut reloads: mpsc::UnboundedReceiver<Settings>,
    ) {
        let Node {
            listeners,
            acceptor,
            client_tls,
            handshakes,
            backoff,
            peer_tasks,
            peers,
            connectors,
            found,
            reloader,
            supervisor,
            ..
        } = self;
        tokio::pin!(shutdown);
        // Listeners bound, tables and actors up: tell systemd (Type=notify).
        match crate::sd_notify::notify(crate::sd_notify::READY) {
            Ok(true) => info!("told the service manager the node is ready"),
            Ok(false) => {}
            Err(e) => warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)"),
        }
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(accepted) = accept_tcp(&listeners.client, backoff.client.resume_at()) => match accepted {
                    Ok((stream, peer)) => {
                        backoff.client.succeeded();
                        let _ = stream.set_nodelay(true);
                        match &client_tls {
                            Some(port) => port.start(stream, peer),
                            None => acceptor.accept(stream, Transport::Tcp { peer }),
                        }
                    }
                    Err(e) => acceptor.accept_failed("client", &mut backoff.client, &e),
                },
                Some(done) = next_handshake(client_tls) => acceptor.handshaken(done),
                Some(accepted) = accept_unix(&listeners.unix, backoff.unix.resume_at()) => match accepted {
                    Ok(stream) => {
                        backoff.unix.succeeded();
                        match stream.peer_cred() {
                            Ok(cred) => {
                                let transport = Transport::Unix { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() };
                                acceptor.accept(stream, transport);
                            }
                            Err(e) => acceptor.warn("peer_cred", |unlogged| {
                                warn!(error = %e, unlogged, "cannot read the credentials of a UNIX connection; closing it");
                            }),
                        }
                    }
                    Err(e) => acceptor.accept_failed("unix", &mut backoff.unix, &e),
                },
                Some(accepted) = accept_tcp(&listeners.peer, backoff.peer.resume_at()) => match accepted {
                    Ok((stream, remote)) => {
                        backoff.peer.succeeded();
                        match handshakes.try_acquire(remote.ip()) {
                            Ok(slot) => {
                                let link = peer::accept_link(stream, remote, peers.clone());
                                peer_tasks.spawn_local(async move {
                                    link.await;
                                    drop(slot);
                                });
                            }
                            Err(why) => peers.refuse_early(stream, remote, why),
                        }
                    }
                    Err(e) => acceptor.accept_failed("peer", &mut backoff.peer, &e),
                },
                Some(new) = reloads.recv() => {
                    reloader.apply(new, connectors);
                }
                Some(change) = found.recv() => match change {
                    Discovered::Member { name, address, dial: true } => {
                        peers.directory.add_member(&name, &address);
                        connectors.start(&name, &address);
                    }
                    Discovered::Member { name, .. } => peers.directory.add_member(&name, ""),
                    Discovered::Gone { name } => {
                        peers.directory.remove_member(&name);
                        if !peers.directory.is_configured(&name) {
                            connectors.stop(&name);
                            supervisor.do_send(DropPeer { peer: name });
                        }
                    }
                },
                Some(_) = acceptor.writers.join_next(), if !acceptor.writers.is_empty() => {}
                Some(_) = peer_tasks.join_next(), if !peer_tasks.is_empty() => {}
                Some(()) = connectors.join_next(), if !connectors.is_empty() => {}
            }
        }
    }
}
