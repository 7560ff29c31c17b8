//! Hybrid logical clock (HLC): the timestamps that order every change in the
//! replicated tables.
//!
//! A [`Timestamp`] is a wall-clock reading in milliseconds since the Unix
//! epoch plus a logical counter. Timestamps compare as
//! `(physical_ms, logical)`; the tables break the remaining ties with the
//! origin node's name. An [`Hlc`] hands out readings that are strictly
//! increasing on this node even when the wall clock stands still or steps
//! backwards ([`Hlc::now`]), and that are greater than every timestamp this
//! node has accepted from a peer ([`Hlc::observe`]), so a change made here
//! after seeing a remote change always sorts after it. The physical part
//! stays close to real time: a remote reading more than `max_drift` ahead of
//! the local wall clock is refused instead of dragging this node's clock
//! into the future. When the logical counter would overflow, the clock moves
//! to the next millisecond instead. The clock saturates at `u64::MAX`
//! milliseconds, some 584 million years from now.
//!
//! The wall clock is behind the [`PhysicalClock`] trait: [`SystemClock`] in
//! production, [`ManualClock`] in tests.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// One reading of a hybrid logical clock. Ordered by `physical_ms`, then
/// `logical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Wall-clock milliseconds since the Unix epoch (as far as the clock
    /// that issued it knew).
    pub physical_ms: u64,
    /// Orders readings that share the same `physical_ms`.
    pub logical: u32,
}

impl Timestamp {
    /// A timestamp with the given parts.
    pub const fn new(physical_ms: u64, logical: u32) -> Self {
        Self {
            physical_ms,
            logical,
        }
    }

    /// The smallest timestamp greater than `self` (saturating at the largest
    /// representable one). The logical counter overflows into the next
    /// millisecond.
    pub const fn successor(self) -> Self {
        if self.logical < u32::MAX {
            Self::new(self.physical_ms, self.logical + 1)
        } else if self.physical_ms < u64::MAX {
            Self::new(self.physical_ms + 1, 0)
        } else {
            self
        }
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.physical_ms, self.logical)
    }
}

impl From<Timestamp> for catalogue_proto::catalogue::Timestamp {
    fn from(ts: Timestamp) -> Self {
        Self {
            physical_ms: ts.physical_ms,
            logical: ts.logical,
        }
    }
}

impl From<catalogue_proto::catalogue::Timestamp> for Timestamp {
    fn from(ts: catalogue_proto::catalogue::Timestamp) -> Self {
        Self::new(ts.physical_ms, ts.logical)
    }
}

/// A source of wall-clock time in milliseconds since the Unix epoch. It may
/// stand still or step backwards; the [`Hlc`] copes with both.
pub trait PhysicalClock {
    /// The current wall-clock time, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl PhysicalClock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock set before 1970 reads as 0: the HLC then runs on its
        // logical counter alone until the clock is fixed.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, duration_to_ms)
    }
}

/// A wall clock that only moves when told to, for tests. Clones share the
/// same time, so a test can keep one and hand another to the code under
/// test.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(ms)))
    }

    /// Sets the time to `ms`, forwards or backwards.
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms` (saturating).
    pub fn advance(&self, ms: u64) {
        let mut t = self.0.load(Ordering::SeqCst);
        while let Err(now) = self.0.compare_exchange_weak(
            t,
            t.saturating_add(ms),
            Ordering::SeqCst,
            Ordering::SeqCst,
        ) {
            t = now;
        }
    }

    /// The current time, in milliseconds.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl PhysicalClock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.get()
    }
}

/// Why [`Hlc::observe`] refused a remote timestamp.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ClockError {
    /// The remote clock is further ahead of ours than the allowed drift.
    #[error(
        "remote timestamp {remote_ms} ms is {} ms ahead of the local clock ({local_ms} ms), \
         more than the allowed drift of {max_drift_ms} ms",
        remote_ms.saturating_sub(*local_ms)
    )]
    TooFarAhead {
        /// Physical part of the refused remote timestamp.
        remote_ms: u64,
        /// Local wall-clock time when it was refused.
        local_ms: u64,
        /// The configured maximum drift.
        max_drift_ms: u64,
    },
}

/// A hybrid logical clock over the wall clock `C`.
#[derive(Debug)]
pub struct Hlc<C: PhysicalClock = SystemClock> {
    /// The wall clock the physical part follows.
    clock: C,
    /// How far ahead of our wall clock a remote timestamp may be.
    max_drift_ms: u64,
    /// The last reading handed out (or the zero timestamp): every new
    /// reading is strictly greater.
    last: Timestamp,
}

impl<C: PhysicalClock> Hlc<C> {
    /// A clock following `clock` that refuses remote timestamps more than
    /// `max_drift` ahead of it.
    pub fn new(clock: C, max_drift: Duration) -> Self {
        Self {
            clock,
            max_drift_ms: duration_to_ms(max_drift),
            last: Timestamp::default(),
        }
    }

    /// A new reading for a local event (or a message about to be sent):
    /// strictly greater than every reading before it.
    pub fn now(&mut self) -> Timestamp {
        let pt = self.clock.now_ms();
        self.last = if pt > self.last.physical_ms {
            Timestamp::new(pt, 0)
        } else {
            self.last.successor()
        };
        self.last
    }

    /// Takes a timestamp received from a peer into account and returns the
    /// new local reading, which is strictly greater than both `remote` and
    /// every earlier reading.
    ///
    /// # Errors
    ///
    /// [`ClockError::TooFarAhead`] when `remote.physical_ms` is more than
    /// the maximum drift ahead of the local wall clock; the clock is then
    /// left unchanged.
    pub fn observe(&mut self, remote: Timestamp) -> Result<Timestamp, ClockError> {
        let pt = self.clock.now_ms();
        if remote.physical_ms > pt.saturating_add(self.max_drift_ms) {
            return Err(ClockError::TooFarAhead {
                remote_ms: remote.physical_ms,
                local_ms: pt,
                max_drift_ms: self.max_drift_ms,
            });
        }
        let last = self.last;
        let physical = pt.max(last.physical_ms).max(remote.physical_ms);
        self.last = if physical == pt && pt > last.physical_ms && pt > remote.physical_ms {
            // The wall clock is ahead of everything seen: restart the counter.
            Timestamp::new(pt, 0)
        } else {
            // Step past the greatest of what we held and what we received.
            last.max(remote).successor()
        };
        Ok(self.last)
    }

    /// The last reading handed out by [`now`](Self::now) or
    /// [`observe`](Self::observe) (zero before the first).
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// The configured maximum drift, in milliseconds.
    pub fn max_drift_ms(&self) -> u64 {
        self.max_drift_ms
    }

    /// The wall clock this HLC follows.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

/// Milliseconds in `d`, saturating at `u64::MAX`.
fn duration_to_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
