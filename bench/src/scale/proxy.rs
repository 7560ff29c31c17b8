//! A link the scale workload can cut: a TCP forwarder on loopback between
//! the dialing node and the other's peer port (TLS passes through it end
//! to end). Cut, it closes every connection it carries and stops
//! listening, so the dialer's attempts are refused, as across a partition
//! (the dialer redials within `sync.retry_initial`, docs/PROTOCOL.md
//! "Redial backoff"); healed, it listens on the same port again.
//!
//! The forwarders run on a thread of their own (a current-thread tokio
//! runtime), apart from the bench's measuring thread.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU16, Ordering},
};

use anyhow::{Context, Result};
use tokio::{
    net::{TcpListener, TcpStream},
    runtime::Handle,
    sync::oneshot,
    task::AbortHandle,
};

/// The thread the forwarders run on; stopped when dropped.
pub struct ProxyThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyThread {
    /// Starts the thread.
    pub fn start() -> Result<ProxyThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("link-proxies".into())
            .spawn(move || {
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })?;
        Ok(ProxyThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for ProxyThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The next port to try for a listener of the scale workload. Its
/// forwarders, and the nodes' peer and metrics ports, listen below the
/// kernel's ephemeral range (32768 and up by default): a port from that
/// range, free when chosen, can be taken by one of 32 nodes' outgoing
/// connections before its node starts (a node whose metrics port is taken
/// fails to start) or before a forwarder listens on it again after a cut.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A loopback port below the ephemeral range that is free now.
pub fn quiet_port() -> anyhow::Result<u16> {
    let _ = NEXT_PORT.compare_exchange(
        0,
        20_000 + (std::process::id() % 4_000) as u16,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..4_000 {
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        if port >= 32_000 {
            NEXT_PORT.store(20_000, Ordering::Relaxed);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port between 20000 and 32000 for a listener")
}

/// One cuttable link: 127.0.0.1:`port` forwards to 127.0.0.1:`target`.
pub struct Proxy {
    /// Where the dialing node connects.
    pub port: u16,
    target: u16,
    handle: Handle,
    /// The accept loop and the connections, while up.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    /// A link to `target` through free port `port` (see [`quiet_port`]),
    /// down until [`Self::heal`].
    pub fn new(threads: &ProxyThread, port: u16, target: u16) -> Proxy {
        Proxy {
            port,
            target,
            handle: threads.handle.clone(),
            tasks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Listens (again) and forwards every connection.
    pub async fn heal(&self) -> Result<()> {
        let (port, target) = (self.port, self.target);
        let listener = self
            .handle
            .spawn(async move { TcpListener::bind(("127.0.0.1", port)).await })
            .await?
            .with_context(|| format!("listening on 127.0.0.1:{port} for a listener"))?;
        let tasks = self.tasks.clone();
        let handle = self.handle.clone();
        let accept = self.handle.spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let _ = inbound.set_nodelay(true);
                let carried = handle.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = outbound.set_nodelay(true);
                        let mut inbound = inbound;
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut tasks) = tasks.lock() {
                    tasks.retain(|t| !t.is_finished());
                    tasks.push(carried.abort_handle());
                }
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(accept.abort_handle());
        }
        Ok(())
    }

    /// Closes every connection and stops listening.
    pub fn cut(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
