//! A fault-injecting TCP proxy for one peer link.
//!
//! A [`Proxy`] listens on a loopback port and forwards every connection it
//! accepts to its upstream address (a node's peer listener), byte for byte.
//! A test points a node's `[[peers]]` address at the proxy, and can then
//! break that one link without touching either node: [`Proxy::cut`] closes
//! the connections it carries and closes every new one at once (the dialer
//! sees a refused link and backs off), [`Proxy::stall`] keeps connections
//! open but forwards nothing (a black hole: the nodes find out by their
//! keepalive), [`Proxy::delay`] holds every chunk for a while before
//! forwarding it, and [`Proxy::restore`] forwards normally again. The
//! upstream can be changed ([`Proxy::set_upstream`]) for a node restarted
//! elsewhere. The proxy runs on its own thread with a single-threaded Tokio
//! runtime; dropping it closes everything it carries.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::{oneshot, watch},
};

/// What the proxy does with the bytes of its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything at once.
    Open,
    /// Close every connection, present and future.
    Cut,
    /// Keep connections open, forward nothing (until the mode changes).
    Stall,
    /// Forward every chunk after holding it this long (this also slows the
    /// link down: one chunk per delay and direction).
    Delay(Duration),
}

/// A running proxy; see the module documentation.
pub struct Proxy {
    addr: String,
    mode: watch::Sender<Mode>,
    upstream: Arc<Mutex<String>>,
    active: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream`.
    pub fn start(upstream: &str) -> Result<Proxy> {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("bind proxy listener")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?.to_string();
        let (mode, mode_rx) = watch::channel(Mode::Open);
        let upstream = Arc::new(Mutex::new(upstream.to_string()));
        let active = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (shutdown, shutdown_rx) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("proxy runtime")?;
        let state = Shared {
            mode: mode_rx,
            upstream: upstream.clone(),
            active: active.clone(),
            accepted: accepted.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("proxy {addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        () = accept_loop(listener, state) => {}
                        _ = shutdown_rx => {}
                    }
                });
                // Dropping the runtime drops every connection task, which
                // closes their sockets.
            })
            .context("proxy thread")?;
        Ok(Proxy {
            addr,
            mode,
            upstream,
            active,
            accepted,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address nodes dial instead of the upstream.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Closes the connections this link carries, and closes every new one
    /// as soon as it is accepted, until [`Proxy::restore`].
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Forwards nothing, in either direction, on present and new
    /// connections; they stay open.
    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stall);
    }

    /// Holds every forwarded chunk for `delay`.
    pub fn delay(&self, delay: Duration) {
        self.mode.send_replace(Mode::Delay(delay));
    }

    /// Forwards normally again.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// Forwards new connections to `upstream` from now on.
    pub fn set_upstream(&self, upstream: &str) {
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner()) = upstream.to_string();
    }

    /// Connections being forwarded right now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Connections accepted since the start (refused ones included).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the proxy's tasks share.
#[derive(Clone)]
struct Shared {
    mode: watch::Receiver<Mode>,
    upstream: Arc<Mutex<String>>,
    active: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

async fn accept_loop(listener: TcpListener, state: Shared) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            // Out of descriptors or the like: let it pass rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        state.accepted.fetch_add(1, Ordering::SeqCst);
        if *state.mode.borrow() == Mode::Cut {
            drop(inbound);
            continue;
        }
        let upstream = state
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        tokio::spawn(forward(inbound, upstream, state.clone()));
    }
}

/// Carries one connection until either side ends or the link is cut.
async fn forward(inbound: TcpStream, upstream: String, state: Shared) {
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        return;
    };
    let Ok(outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    state.active.fetch_add(1, Ordering::SeqCst);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::join!(
        pump(in_read, out_write, state.mode.clone()),
        pump(out_read, in_write, state.mode.clone()),
    );
    state.active.fetch_sub(1, Ordering::SeqCst);
}

/// Copies one direction, obeying the mode. Returns when the source ends
/// (after passing the end on) or when the link is cut (dropping both
/// halves, which closes the sockets once the other direction returns too).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Cut => return,
            Mode::Stall => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Mode::Open | Mode::Delay(_) => {}
        }
        tokio::select! {
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            read = from.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => {
                        let _ = to.shutdown().await;
                        return;
                    }
                    Ok(n) => n,
                };
                if let Mode::Delay(delay) = current {
                    tokio::time::sleep(delay).await;
                }
                if *mode.borrow() == Mode::Cut {
                    return;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    fn echo_server() -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 || stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, handle)
    }

    fn roundtrip(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(bytes)?;
        let mut back = vec![0u8; bytes.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    #[test]
    fn forwards_cuts_stalls_and_restores() -> Result<()> {
        let (echo, _server) = echo_server();
        let proxy = Proxy::start(&echo)?;
        let mut conn = TcpStream::connect(proxy.addr())?;
        conn.set_read_timeout(Some(crate::DEADLINE))?;
        assert_eq!(roundtrip(&mut conn, b"hello")?, b"hello");

        // Stalled: the bytes wait in the proxy, and arrive on restore.
        proxy.stall();
        conn.write_all(b"held")?;
        conn.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut byte = [0u8; 1];
        assert!(conn.read(&mut byte).is_err(), "a stalled link forwarded");
        proxy.restore();
        conn.set_read_timeout(Some(crate::DEADLINE))?;
        let mut back = [0u8; 4];
        conn.read_exact(&mut back)?;
        assert_eq!(&back, b"held");

        // Cut: the open connection ends and new ones are closed at once.
        proxy.cut();
        assert_eq!(conn.read(&mut byte)?, 0, "the cut connection stayed open");
        let mut refused = TcpStream::connect(proxy.addr())?;
        refused.set_read_timeout(Some(crate::DEADLINE))?;
        assert!(matches!(refused.read(&mut byte), Ok(0) | Err(_)));

        // Restored and delayed: new connections work again, later.
        proxy.delay(Duration::from_millis(50));
        let mut conn = TcpStream::connect(proxy.addr())?;
        conn.set_read_timeout(Some(crate::DEADLINE))?;
        let started = std::time::Instant::now();
        assert_eq!(roundtrip(&mut conn, b"late")?, b"late");
        assert!(started.elapsed() >= Duration::from_millis(100));
        proxy.restore();
        assert_eq!(roundtrip(&mut conn, b"again")?, b"again");
        assert_eq!(proxy.active(), 1);
        assert!(proxy.accepted() >= 3);
        Ok(())
    }
}
