//! Per-source bounds on connections to the registry, as plain code: how
//! many new connections a source address may open per second (a token
//! bucket), and how many it may hold open at once.
//!
//! A source is an IPv4 address, or an IPv6 /64 (one host usually holds a
//! whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address. A
//! connection refused here is closed at once, before it costs the registry
//! a read or an RSA operation (there is no session key yet to say why in).
//!
//! [`Sources`] forgets a source once it has nothing open and a full bucket
//! (it then behaves exactly as a source never seen), so its size follows
//! the sources active in the last few seconds, not all sources ever seen.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex, PoisonError},
    time::Instant,
};

/// Sources tracked before idle ones are pruned.
const PRUNE_AT: usize = 4096;

/// The bounds, per source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceLimits {
    /// New connections per second (bucket refill rate); 0: no limit.
    pub per_second: u32,
    /// Bucket size: connections opened at once above the rate.
    pub burst: u32,
    /// Connections open at once; 0: no limit.
    pub max_open: usize,
}

impl SourceLimits {
    /// No bound at all.
    pub const NONE: SourceLimits = SourceLimits {
        per_second: 0,
        burst: 1,
        max_open: 0,
    };
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source opened too many connections too fast.
    Rate,
    /// The source holds as many connections as it may.
    Open,
}

impl Refusal {
    /// Label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Rate => "rate_limited",
            Refusal::Open => "connections_per_source",
        }
    }
}

/// The source `ip` counts as.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    tokens: f64,
    refilled: Instant,
    open: usize,
}

/// Every source's bucket and open connections.
#[derive(Debug)]
pub struct Sources {
    limits: SourceLimits,
    entries: HashMap<IpAddr, Entry>,
}

impl Sources {
    /// No source seen yet.
    pub fn new(limits: SourceLimits) -> Sources {
        Sources {
            limits,
            entries: HashMap::new(),
        }
    }

    fn burst(&self) -> f64 {
        f64::from(self.limits.burst.max(1))
    }

    /// A new connection from `ip` at `now`: counted open if admitted (call
    /// [`Sources::closed`] when it closes).
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.entries.len() >= PRUNE_AT {
            self.prune(now);
        }
        let (burst, limits) = (self.burst(), self.limits);
        let entry = self.entries.entry(source_of(ip)).or_insert(Entry {
            tokens: burst,
            refilled: now,
            open: 0,
        });
        if limits.max_open > 0 && entry.open >= limits.max_open {
            return Err(Refusal::Open);
        }
        if limits.per_second > 0 {
            let elapsed = now.saturating_duration_since(entry.refilled).as_secs_f64();
            entry.tokens = (entry.tokens + elapsed * f64::from(limits.per_second)).min(burst);
            entry.refilled = now;
            if entry.tokens < 1.0 {
                return Err(Refusal::Rate);
            }
            entry.tokens -= 1.0;
        }
        entry.open += 1;
        Ok(())
    }

    /// A connection from `ip` admitted earlier has closed.
    pub fn closed(&mut self, ip: IpAddr) {
        if let Some(entry) = self.entries.get_mut(&source_of(ip)) {
            entry.open = entry.open.saturating_sub(1);
        }
    }

    /// Connections open from `ip`'s source.
    pub fn open(&self, ip: IpAddr) -> usize {
        self.entries.get(&source_of(ip)).map_or(0, |e| e.open)
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// Forgets the sources that hold nothing and whose bucket is full
    /// again: they are as good as never seen.
    pub fn prune(&mut self, now: Instant) {
        let (burst, rate) = (self.burst(), f64::from(self.limits.per_second));
        self.entries.retain(|_, e| {
            let refilled = if rate > 0.0 {
                e.tokens + now.saturating_duration_since(e.refilled).as_secs_f64() * rate
            } else {
                burst
            };
            e.open > 0 || refilled < burst
        });
    }
}

/// Counts one admitted connection open while it lives (in the connection's
/// task, then in its session actor).
#[derive(Debug)]
pub struct SourceGuard {
    sources: Arc<Mutex<Sources>>,
    ip: IpAddr,
}

impl SourceGuard {
    /// Admits a connection from `ip` now, or says why not.
    pub fn admit(sources: &Arc<Mutex<Sources>>, ip: IpAddr) -> Result<SourceGuard, Refusal> {
        sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(ip, Instant::now())?;
        Ok(SourceGuard {
            sources: sources.clone(),
            ip,
        })
    }
}

impl Drop for SourceGuard {
    fn drop(&mut self) {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn the_rate_is_a_bucket_per_source() {
        let mut s = Sources::new(SourceLimits {
            per_second: 10,
            burst: 3,
            max_open: 0,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            s.admit(ip("10.0.0.1"), t0).expect("within the burst");
        }
        assert_eq!(s.admit(ip("10.0.0.1"), t0), Err(Refusal::Rate));
        // another source has its own bucket
        s.admit(ip("10.0.0.2"), t0).expect("other source");
        // one token every 100 ms
        assert_eq!(
            s.admit(ip("10.0.0.1"), t0 + Duration::from_millis(50)),
            Err(Refusal::Rate)
        );
        s.admit(ip("10.0.0.1"), t0 + Duration::from_millis(160))
            .expect("refilled");
        // the bucket never holds more than the burst
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            s.admit(ip("10.0.0.1"), later).expect("burst");
        }
        assert_eq!(s.admit(ip("10.0.0.1"), later), Err(Refusal::Rate));
    }

    #[test]
    fn open_connections_are_bounded_per_source_and_closing_frees_a_slot() {
        let mut s = Sources::new(SourceLimits {
            per_second: 0,
            burst: 1,
            max_open: 2,
        });
        let now = Instant::now();
        s.admit(ip("10.0.0.1"), now).expect("one");
        s.admit(ip("10.0.0.1"), now).expect("two");
        assert_eq!(s.admit(ip("10.0.0.1"), now), Err(Refusal::Open));
        s.admit(ip("10.0.0.9"), now).expect("other source");
        s.closed(ip("10.0.0.1"));
        assert_eq!(s.open(ip("10.0.0.1")), 1);
        s.admit(ip("10.0.0.1"), now).expect("a slot again");
        // a refused connection was never counted
        assert_eq!(s.open(ip("10.0.0.1")), 2);
    }

    #[test]
    fn no_limits_admit_everything() {
        let mut s = Sources::new(SourceLimits::NONE);
        let now = Instant::now();
        for _ in 0..10_000 {
            s.admit(ip("10.0.0.1"), now).expect("no limit");
        }
        assert_eq!(s.open(ip("10.0.0.1")), 10_000);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(
            source_of(ip("2001:db8:1:2:ffff::1")),
            source_of(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            source_of(ip("2001:db8:1:3::1")),
            source_of(ip("2001:db8:1:2::1"))
        );
        assert_eq!(source_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        let mut s = Sources::new(SourceLimits {
            per_second: 0,
            burst: 1,
            max_open: 1,
        });
        let now = Instant::now();
        s.admit(ip("2001:db8::1"), now).expect("first");
        assert_eq!(s.admit(ip("2001:db8::2"), now), Err(Refusal::Open));
    }

    #[test]
    fn idle_sources_are_pruned_busy_ones_kept() {
        let mut s = Sources::new(SourceLimits {
            per_second: 1,
            burst: 1,
            max_open: 0,
        });
        let t0 = Instant::now();
        s.admit(ip("10.0.0.1"), t0).expect("admitted");
        s.closed(ip("10.0.0.1"));
        s.admit(ip("10.0.0.2"), t0).expect("admitted, still open");
        s.prune(t0);
        assert_eq!(s.tracked(), 2, "10.0.0.1's bucket is not full yet");
        s.prune(t0 + Duration::from_secs(2));
        assert_eq!(s.tracked(), 1, "10.0.0.1 forgotten, 10.0.0.2 still open");
        // a forgotten source starts with a full bucket, as before
        s.admit(ip("10.0.0.1"), t0 + Duration::from_secs(2))
            .expect("full bucket");
    }

    #[test]
    fn the_guard_counts_while_it_lives() {
        let sources = Arc::new(Mutex::new(Sources::new(SourceLimits {
            per_second: 0,
            burst: 1,
            max_open: 1,
        })));
        let guard = SourceGuard::admit(&sources, ip("10.0.0.1")).expect("admitted");
        assert_eq!(
            SourceGuard::admit(&sources, ip("10.0.0.1")).map(|_| ()),
            Err(Refusal::Open)
        );
        drop(guard);
        SourceGuard::admit(&sources, ip("10.0.0.1")).expect("freed");
    }
}
