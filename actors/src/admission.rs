//! Admission on the accept paths: how many client connections each
//! transport may hold ([`ConnectionSlots`]), how many peer handshakes may be
//! in progress, node-wide and per source address ([`HandshakeSlots`]), how
//! an accept loop backs off when the process runs out of descriptors
//! ([`AcceptBackoff`]), and the open-file limit the node raises at start
//! and keeps room in ([`raise_nofile`], [`tcp_budget`]).
//!
//! Everything here is plain code with unit tests; `node/` drives it.
//! A slot is a guard: it is taken when a connection is accepted and given
//! back when the guard is dropped (the connection or handshake ended), so
//! no path can forget to release it. docs/OPERATIONS.md ("Limits on
//! connections and work") describes the behaviour for operators.

use std::{
    cell::RefCell,
    collections::HashMap,
    io,
    net::IpAddr,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::metrics::Gauge;

/// Client connections of one transport: at most `limit` at once.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    limit: usize,
    open: Arc<AtomicUsize>,
    gauge: Gauge,
}

/// One admitted client connection; its place is given back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<AtomicUsize>,
    gauge: Gauge,
}

impl ConnectionSlots {
    /// At most `limit` connections; `gauge` shows how many are open.
    pub fn new(limit: usize, gauge: Gauge) -> Self {
        ConnectionSlots {
            limit,
            open: Arc::default(),
            gauge,
        }
    }

    /// A place for one more connection, or `None` at the limit.
    pub fn try_acquire(&self) -> Option<ConnectionSlot> {
        // A compare-exchange loop rather than `fetch_update`, which newer
        // toolchains deprecate (renamed `try_update`, after our rust-version).
        let mut n = self.open.load(Ordering::Acquire);
        let taken = loop {
            if n >= self.limit {
                break false;
            }
            match self
                .open
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break true,
                Err(now) => n = now,
            }
        };
        taken.then(|| {
            self.gauge.inc();
            ConnectionSlot {
                open: self.open.clone(),
                gauge: self.gauge.clone(),
            }
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// Why a peer-port connection was refused before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeRefusal {
    /// `limits.handshakes_in_progress` handshakes are already running.
    #[error("{0} handshakes in progress (limits.handshakes_in_progress)")]
    Total(usize),
    /// This source address already runs its share.
    #[error(
        "{0} handshakes in progress from this address (limits.handshakes_in_progress_per_address)"
    )]
    PerAddress(usize),
}

impl HandshakeRefusal {
    /// A short label for metrics and the rate-limited log.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeRefusal::Total(_) => "too_many_handshakes",
            HandshakeRefusal::PerAddress(_) => "too_many_handshakes_from_address",
        }
    }
}

#[derive(Debug)]
struct HandshakeCounts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Peer handshakes in progress on one port (single-threaded: the accept
/// loop and the handshake tasks run on the node's thread).
#[derive(Debug, Clone)]
pub struct HandshakeSlots {
    limit: usize,
    per_address: usize,
    counts: Rc<RefCell<HandshakeCounts>>,
    gauge: Gauge,
}

/// One handshake in progress; its place is given back when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    address: IpAddr,
    counts: Rc<RefCell<HandshakeCounts>>,
    gauge: Gauge,
}

impl HandshakeSlots {
    /// At most `limit` handshakes at once, `per_address` of them from one
    /// source address; `gauge` shows how many are running.
    pub fn new(limit: usize, per_address: usize, gauge: Gauge) -> Self {
        HandshakeSlots {
            limit,
            per_address,
            counts: Rc::new(RefCell::new(HandshakeCounts {
                total: 0,
                by_address: HashMap::new(),
            })),
            gauge,
        }
    }

    /// A place for a handshake from `address`, or why there is none.
    pub fn try_acquire(&self, address: IpAddr) -> Result<HandshakeSlot, HandshakeRefusal> {
        let mut counts = self.counts.borrow_mut();
        if counts.total >= self.limit {
            return Err(HandshakeRefusal::Total(self.limit));
        }
        let from = counts.by_address.entry(address).or_insert(0);
        if *from >= self.per_address {
            return Err(HandshakeRefusal::PerAddress(self.per_address));
        }
        *from += 1;
        counts.total += 1;
        self.gauge.inc();
        Ok(HandshakeSlot {
            address,
            counts: self.counts.clone(),
            gauge: self.gauge.clone(),
        })
    }

    /// Handshakes in progress now, and the addresses they come from.
    pub fn in_progress(&self) -> (usize, usize) {
        let counts = self.counts.borrow();
        (counts.total, counts.by_address.len())
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.borrow_mut();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_address.remove(&self.address);
            }
        }
        self.gauge.dec();
    }
}

/// Shortest pause of an accept loop after the process ran out of
/// descriptors or memory.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// Longest such pause.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// True for accept errors that say the process or system is out of a
/// resource (descriptors, buffers, memory): accepting again at once would
/// fail again at once, so the loop would spin.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The pause of one accept loop: nothing after a success or a
/// per-connection error (the connection was reset before it was
/// accepted, ...), and a pause doubling from [`ACCEPT_BACKOFF_MIN`] to
/// [`ACCEPT_BACKOFF_MAX`] while accepting fails for want of resources.
#[derive(Debug, Clone, Default)]
pub struct AcceptBackoff {
    next: Option<Duration>,
    resume: Option<Instant>,
}

impl AcceptBackoff {
    /// An accept succeeded: no pause.
    pub fn succeeded(&mut self) {
        self.next = None;
        self.resume = None;
    }

    /// An accept failed with `e` at `now`: how long to wait before
    /// accepting again (also kept as [`AcceptBackoff::resume_at`]).
    pub fn failed(&mut self, e: &io::Error, now: Instant) -> Duration {
        if !is_exhaustion(e) {
            self.resume = None;
            return Duration::ZERO;
        }
        let pause = self.next.unwrap_or(ACCEPT_BACKOFF_MIN);
        self.next = Some((pause * 2).min(ACCEPT_BACKOFF_MAX));
        self.resume = Some(now + pause);
        pause
    }

    /// When the listener may accept again, if it is paused.
    pub fn resume_at(&self) -> Option<Instant> {
        self.resume
    }
}

/// Descriptors kept for everything but client TCP connections: listeners,
/// peer links, the xlReg registry and its handshakes, the metrics
/// endpoint, files.
pub const FD_RESERVE: u64 = 256;

/// How many client TCP connections fit in `nofile` descriptors once the
/// peer handshakes, [`FD_RESERVE`] and the UNIX socket's connections have
/// their room: TCP clients can never take the descriptors local callers
/// need. At most `configured`. When the descriptors left after the
/// handshakes and the reserve cannot hold `unix` as well, the UNIX socket
/// keeps at least half of them and TCP gets the rest.
pub fn tcp_budget(configured: usize, unix: usize, handshakes: usize, nofile: u64) -> usize {
    let kept = FD_RESERVE.saturating_add(handshakes as u64);
    let room = usize::try_from(nofile.saturating_sub(kept)).unwrap_or(usize::MAX);
    let for_unix = unix.min(room / 2);
    configured.min(room - for_unix)
}

/// The open-file limits of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoFile {
    /// Soft limit before the call.
    pub before: u64,
    /// Soft limit now.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard limit.
pub fn raise_nofile() -> io::Result<NoFile> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(NoFile {
        before,
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn connection_slots_stop_at_the_limit_and_come_back_when_dropped() {
        let gauge = Gauge::default();
        let slots = ConnectionSlots::new(2, gauge.clone());
        let a = slots.try_acquire().expect("first");
        let b = slots.try_acquire().expect("second");
        assert!(slots.try_acquire().is_none(), "third is over the limit");
        assert_eq!((slots.open(), gauge.get()), (2, 2));
        drop(a);
        assert_eq!((slots.open(), gauge.get()), (1, 1));
        let _c = slots.try_acquire().expect("a place came back");
        drop(b);
        assert_eq!(slots.open(), 1);
    }

    #[test]
    fn separate_slots_do_not_share_their_limits() {
        let tcp = ConnectionSlots::new(1, Gauge::default());
        let unix = ConnectionSlots::new(1, Gauge::default());
        let _t = tcp.try_acquire().expect("tcp");
        assert!(tcp.try_acquire().is_none());
        assert!(
            unix.try_acquire().is_some(),
            "TCP at its limit leaves UNIX alone"
        );
    }

    #[test]
    fn handshakes_are_capped_per_address_and_in_total() {
        let gauge = Gauge::default();
        let slots = HandshakeSlots::new(4, 2, gauge.clone());
        let a1 = slots.try_acquire(ip(1)).expect("a1");
        let _a2 = slots.try_acquire(ip(1)).expect("a2");
        assert_eq!(
            slots.try_acquire(ip(1)).expect_err("a3"),
            HandshakeRefusal::PerAddress(2)
        );
        let _b1 = slots.try_acquire(ip(2)).expect("b1");
        let _c1 = slots.try_acquire(ip(3)).expect("c1");
        assert_eq!(
            slots.try_acquire(ip(4)).expect_err("d1"),
            HandshakeRefusal::Total(4)
        );
        assert_eq!(slots.in_progress(), (4, 3));
        assert_eq!(gauge.get(), 4);
        drop(a1);
        assert_eq!(slots.in_progress(), (3, 3));
        let _d1 = slots.try_acquire(ip(4)).expect("room again");
        assert_eq!(slots.in_progress(), (4, 4));
    }

    #[test]
    fn an_address_with_nothing_in_progress_is_forgotten() {
        let slots = HandshakeSlots::new(8, 8, Gauge::default());
        for last in 0..8 {
            drop(slots.try_acquire(ip(last)).expect("slot"));
        }
        assert_eq!(slots.in_progress(), (0, 0));
    }

    #[test]
    fn refusal_reasons_are_labels() {
        assert_eq!(HandshakeRefusal::Total(1).reason(), "too_many_handshakes");
        assert_eq!(
            HandshakeRefusal::PerAddress(1).reason(),
            "too_many_handshakes_from_address"
        );
    }

    #[test]
    fn accept_backoff_doubles_on_exhaustion_and_resets_on_success() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let now = Instant::now();
        let mut b = AcceptBackoff::default();
        assert_eq!(b.resume_at(), None);
        assert_eq!(b.failed(&emfile, now), Duration::from_millis(5));
        assert_eq!(b.resume_at(), Some(now + Duration::from_millis(5)));
        assert_eq!(b.failed(&emfile, now), Duration::from_millis(10));
        assert_eq!(b.failed(&emfile, now), Duration::from_millis(20));
        for _ in 0..20 {
            b.failed(&emfile, now);
        }
        assert_eq!(b.failed(&emfile, now), ACCEPT_BACKOFF_MAX);
        b.succeeded();
        assert_eq!(b.resume_at(), None);
        assert_eq!(b.failed(&emfile, now), ACCEPT_BACKOFF_MIN);
    }

    #[test]
    fn per_connection_accept_errors_do_not_pause() {
        let now = Instant::now();
        let mut b = AcceptBackoff::default();
        let aborted = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(b.failed(&aborted, now), Duration::ZERO);
        assert_eq!(b.resume_at(), None);
        let enfile = io::Error::from_raw_os_error(libc::ENFILE);
        assert_eq!(b.failed(&enfile, now), ACCEPT_BACKOFF_MIN);
        assert!(is_exhaustion(&io::Error::from_raw_os_error(libc::ENOBUFS)));
        assert!(!is_exhaustion(&io::Error::other("no errno")));
    }

    #[test]
    fn tcp_clients_get_what_is_left_after_local_callers_and_peers() {
        // Plenty of descriptors: the configured limit holds.
        assert_eq!(tcp_budget(16_384, 1024, 256, 1 << 20), 16_384);
        // 20,000 descriptors: the UNIX socket, handshakes and the reserve
        // come first.
        assert_eq!(
            tcp_budget(65_536, 1024, 256, 20_000),
            20_000 - 256 - 256 - 1024
        );
        // Too few for all: the UNIX socket keeps half of what is left.
        assert_eq!(tcp_budget(16_384, 1024, 256, 1024), 256);
        assert_eq!(tcp_budget(16_384, 100, 16, 400), 400 - 256 - 16 - 64);
        // Nothing left.
        assert_eq!(tcp_budget(16_384, 1024, 256, 300), 0);
    }

    #[test]
    fn raising_the_open_file_limit_reaches_the_hard_limit() {
        let limits = raise_nofile().expect("getrlimit/setrlimit");
        assert_eq!(limits.soft, limits.hard);
        assert!(limits.before <= limits.soft);
    }
}
