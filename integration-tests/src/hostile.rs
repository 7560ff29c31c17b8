//! Hostile load against a real node (issue 14): connections that announce
//! a large frame, send part of it and stall ([`stall`], [`Stalled`]),
//! floods of subscriptions ([`subscribe_until_refused`]), and the node's
//! resident memory sampled while they run ([`RssSampler`]).
//!
//! A stalled connection is opened and fed from the test thread; what the
//! node then does with it is read back with a deadline: the `Error` it
//! sent, if any, and how long after the stall began it closed. A
//! [`CloseWatch`] watches every stalled connection from the moment it is
//! fed, on its own thread (one `poll(2)` over all of them), so each close
//! is timed when it happens, not when the test gets round to it.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    os::{
        fd::{AsRawFd, RawFd},
        unix::net::UnixStream,
    },
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_proto::{
    Body, Frame,
    catalogue::{ErrorCode, Hello, Subscribe},
};

use crate::{
    Conn, DEADLINE, Daemon,
    bad_input::{parse_frames, peer_connect, peer_handshake},
    write_frame,
};

/// Where a stalled frame is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The client UNIX socket, after the node's `Welcome`.
    Unix,
    /// The client TCP port, after the node's `Welcome`.
    Tcp,
    /// The peer port before any authentication, after the node's
    /// `Welcome`, in place of `Peer`.
    PeerHandshake,
    /// A plaintext peer link (debug node) as the named peer, after the
    /// handshake and a `Hello` (the link's first frame).
    PeerLink(String),
}

impl Target {
    /// A short name for figures.
    pub fn label(&self) -> &'static str {
        match self {
            Target::Unix => "unix",
            Target::Tcp => "tcp",
            Target::PeerHandshake => "peer handshake",
            Target::PeerLink(_) => "peer link",
        }
    }
}

/// Either socket type.
trait Socket: Read + Write + Send {
    fn fd(&self) -> RawFd;
    fn nonblocking(&self) -> io::Result<()>;
}

impl Socket for UnixStream {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
    fn nonblocking(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
}

impl Socket for TcpStream {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
    fn nonblocking(&self) -> io::Result<()> {
        self.set_nonblocking(true)
    }
}

/// A connection holding part of a frame.
pub struct Stalled {
    stream: Box<dyn Socket>,
    /// Where it goes.
    pub target: Target,
    /// When the frame's first byte was written.
    pub started: Instant,
    /// Body bytes written (the node may have closed before taking all).
    pub sent: usize,
    /// The write failed: the node closed while it was being written.
    pub write_failed: bool,
}

/// How a stalled connection ended.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The `Error` the node sent before closing, if any.
    pub error: Option<(ErrorCode, String)>,
    /// Time from the frame's first byte to the end of the connection.
    pub after: Duration,
    /// The node reset the connection rather than closing it.
    pub reset: bool,
}

impl Closed {
    /// The error code, if an `Error` came.
    pub fn code(&self) -> Option<ErrorCode> {
        self.error.as_ref().map(|(code, _)| *code)
    }

    /// Whether the `Error` message contains `text`.
    pub fn says(&self, text: &str) -> bool {
        self.error.as_ref().is_some_and(|(_, m)| m.contains(text))
    }
}

/// Opens a connection to `target` on `daemon`, writes a length prefix
/// announcing `announce` body bytes and then `send` of them, and leaves it
/// there. The write goes on until the node has taken the bytes or closed.
pub fn stall(daemon: &Daemon, target: &Target, announce: u32, send: usize) -> Result<Stalled> {
    let mut stream: Box<dyn Socket> = match target {
        Target::Unix => {
            let mut s = UnixStream::connect(&daemon.socket).context("connect unix")?;
            s.set_read_timeout(Some(DEADLINE))?;
            expect_welcome(&mut s)?;
            Box::new(s)
        }
        Target::Tcp => {
            let mut s = TcpStream::connect(&daemon.client).context("connect tcp")?;
            s.set_read_timeout(Some(DEADLINE))?;
            expect_welcome(&mut s)?;
            Box::new(s)
        }
        Target::PeerHandshake => Box::new(peer_connect(daemon)?),
        Target::PeerLink(name) => {
            let mut s = peer_handshake(daemon, name)?;
            let hello = Body::Hello(Hello { name: name.clone() });
            write_frame(&mut s, &Frame::new(1, hello))?;
            Box::new(s)
        }
    };
    let mut bytes = announce.to_be_bytes().to_vec();
    // 0x08 0x08 ...: field 1 (serial), varint 8, repeated: decodes while
    // partial, not that the node ever gets to decode it.
    bytes.resize(4 + send, 0x08);
    let started = Instant::now();
    let write_failed = stream
        .write_all(&bytes)
        .and_then(|()| stream.flush())
        .is_err();
    Ok(Stalled {
        stream,
        target: target.clone(),
        started,
        sent: send,
        write_failed,
    })
}

fn expect_welcome<S: Read>(s: &mut S) -> Result<()> {
    match crate::read_frame(s)?.and_then(|f| f.body) {
        Some(Body::Welcome(_)) => Ok(()),
        other => bail!("expected Welcome, got {other:?}"),
    }
}

/// What has been read from one watched connection so far.
struct Watched {
    stalled: Stalled,
    bytes: Vec<u8>,
    closed: Option<Closed>,
}

impl Watched {
    /// Reads what is there without blocking; records the close when the
    /// node has closed (or reset) the connection.
    fn read_available(&mut self) -> Result<()> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let reset = match self.stalled.stream.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    self.bytes.extend_from_slice(&buf[..n]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    true
                }
                Err(e) => return Err(e).context("read"),
            };
            let (frames, _) = parse_frames(&self.bytes);
            // Frames of a running peer session may come first; the last
            // Error is the node's reason.
            let error = frames.into_iter().rev().find_map(|f| match f.body {
                Some(Body::Error(e)) => Some((e.code(), e.message)),
                _ => None,
            });
            self.closed = Some(Closed {
                error,
                after: self.stalled.started.elapsed(),
                reset,
            });
            return Ok(());
        }
    }
}

/// Watches stalled connections on a thread until the node has closed each
/// of them, each at most a deadline after its stall began.
pub struct CloseWatch {
    add: Option<mpsc::Sender<Stalled>>,
    /// Written to after each addition, to wake the thread's `poll`.
    wake: UnixStream,
    handle: thread::JoinHandle<Result<Vec<Closed>>>,
}

impl CloseWatch {
    /// Starts watching; every connection added must be closed by the node
    /// within `deadline` of its stall.
    pub fn start(deadline: Duration) -> Result<CloseWatch> {
        let (wake, woken) = UnixStream::pair()?;
        woken.set_nonblocking(true)?;
        let (add, added) = mpsc::channel();
        let handle = thread::spawn(move || watch(added, woken, deadline));
        Ok(CloseWatch {
            add: Some(add),
            wake,
            handle,
        })
    }

    /// Watches `stalled` from now on.
    pub fn add(&mut self, stalled: Stalled) -> Result<()> {
        if let Some(add) = &self.add {
            add.send(stalled)
                .map_err(|_| anyhow::anyhow!("the close watch has ended"))?;
        }
        self.wake.write_all(&[1])?;
        Ok(())
    }

    /// Waits until every connection added is closed (or one is late);
    /// returns how each ended, in the order they were added.
    pub fn finish(mut self) -> Result<Vec<Closed>> {
        self.add = None;
        let _ = self.wake.write_all(&[0]);
        match self.handle.join() {
            Ok(result) => result,
            Err(_) => bail!("the close watch panicked"),
        }
    }
}

fn watch(
    added: mpsc::Receiver<Stalled>,
    woken: UnixStream,
    deadline: Duration,
) -> Result<Vec<Closed>> {
    let mut watched: Vec<Watched> = Vec::new();
    let mut adding = true;
    loop {
        loop {
            match added.try_recv() {
                Ok(stalled) => {
                    stalled.stream.nonblocking()?;
                    let mut w = Watched {
                        stalled,
                        bytes: Vec::new(),
                        closed: None,
                    };
                    w.read_available()?;
                    watched.push(w);
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    adding = false;
                    break;
                }
            }
        }
        let open: Vec<usize> = (0..watched.len())
            .filter(|&i| watched[i].closed.is_none())
            .collect();
        if open.is_empty() && !adding {
            break;
        }
        let now = Instant::now();
        if let Some(&late) = open
            .iter()
            .find(|&&i| now >= watched[i].stalled.started + deadline)
        {
            bail!(
                "a stalled {} connection was still open {deadline:?} after its stall began ({} of {} still open)",
                watched[late].stalled.target.label(),
                open.len(),
                watched.len()
            );
        }
        let next_deadline = open
            .iter()
            .map(|&i| watched[i].stalled.started + deadline)
            .min()
            .map_or(deadline, |d| d.saturating_duration_since(now));
        let mut fds: Vec<libc::pollfd> = std::iter::once(woken.as_raw_fd())
            .chain(open.iter().map(|&i| watched[i].stalled.stream.fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = i32::try_from(next_deadline.as_millis())
            .unwrap_or(i32::MAX)
            .max(1);
        let count = libc::nfds_t::try_from(fds.len()).context("too many connections")?;
        // SAFETY: `fds` is a valid array of `count` pollfd structures for
        // the call's duration, and each fd belongs to a live socket.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).context("poll");
        }
        if fds[0].revents != 0 {
            let mut sink = [0u8; 256];
            while let Ok(n) = (&woken).read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
        }
        for (pfd, &i) in fds[1..].iter().zip(&open) {
            if pfd.revents != 0 {
                watched[i].read_available()?;
            }
        }
    }
    Ok(watched.into_iter().filter_map(|w| w.closed).collect())
}

/// Samples a process's resident set size on a thread until stopped, and
/// reports the largest value seen. Sampling is measurement, not
/// synchronisation: nothing waits on it.
pub struct RssSampler {
    stop: mpsc::Sender<()>,
    handle: thread::JoinHandle<Result<u64>>,
}

/// The resident set size of process `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc status")
}

impl RssSampler {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> RssSampler {
        let (stop, stopped) = mpsc::channel();
        let handle = thread::spawn(move || {
            let mut peak = rss_kib(pid)?;
            // The wait for the stop signal paces the samples.
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                peak = peak.max(rss_kib(pid)?);
            }
            Ok(peak.max(rss_kib(pid)?))
        });
        RssSampler { stop, handle }
    }

    /// Stops sampling; the peak RSS seen, KiB.
    pub fn peak_kib(self) -> Result<u64> {
        let _ = self.stop.send(());
        match self.handle.join() {
            Ok(peak) => peak,
            Err(_) => bail!("the RSS sampler panicked"),
        }
    }
}

/// What one connection's subscription flood got.
#[derive(Debug, Default, Clone)]
pub struct Flood {
    /// Subscriptions accepted.
    pub accepted: usize,
    /// Refusals, with their code and message, in order.
    pub refused: Vec<(ErrorCode, String)>,
}

/// Subscribes `regexes` one at a time on `conn` (ids from 1), reading each
/// answer (`Success` or `Error`) and skipping the snapshots; stops at the
/// first refusal when `stop_at_refusal`.
pub fn subscribe_until_refused(
    conn: &mut Conn,
    regexes: impl IntoIterator<Item = String>,
    stop_at_refusal: bool,
) -> Result<Flood> {
    let mut flood = Flood::default();
    for (n, regex) in regexes.into_iter().enumerate() {
        let serial = conn.send(Body::Subscribe(Subscribe {
            subscription_id: n as u64 + 1,
            regex,
            ..Default::default()
        }))?;
        loop {
            let frame = conn.recv()?.context("the node closed the connection")?;
            match frame.body {
                Some(Body::Success(s)) if s.in_reply_to == serial => {
                    flood.accepted += 1;
                    break;
                }
                Some(Body::Error(e)) if e.in_reply_to == Some(serial) => {
                    flood.refused.push((e.code(), e.message));
                    break;
                }
                // Snapshots of earlier subscriptions.
                Some(Body::ServiceEvent(_) | Body::SnapshotEnd(_)) => {}
                other => bail!("unexpected answer to a Subscribe: {other:?}"),
            }
        }
        if stop_at_refusal && !flood.refused.is_empty() {
            break;
        }
    }
    Ok(flood)
}

/// The address of the node's metrics endpoint, from its log (start it
/// with `metrics.listen = "127.0.0.1:0"`).
pub fn metrics_address(daemon: &mut Daemon) -> Result<String> {
    let line = daemon.wait_log(DEADLINE, |l| l["message"] == "metrics endpoint listening")?;
    line["address"]
        .as_str()
        .map(str::to_string)
        .context("metrics log line without an address")
}
