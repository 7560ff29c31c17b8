//! A rate limit for repeated log lines: at most one line per key (a
//! failure's reason) per interval, and the next line that is written says
//! how many were left out. A peer that keeps failing the same way fills the
//! log with one line per interval instead of one per attempt; the metrics
//! still count every attempt.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// When each key was last logged, and what was left out since.
#[derive(Debug, Clone)]
pub struct LogLimit {
    interval: Duration,
    keys: HashMap<&'static str, Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    logged_at: Instant,
    unlogged: u64,
}

impl LogLimit {
    /// At most one line per key every `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimit {
            interval,
            keys: HashMap::new(),
        }
    }

    /// Should an event of `key` at `now` be logged? `Some(n)`: yes, and `n`
    /// events of that key were left out since its last line. `None`: no
    /// (it is counted for the next line).
    pub fn check(&mut self, key: &'static str, now: Instant) -> Option<u64> {
        match self.keys.get_mut(key) {
            Some(slot) if now.saturating_duration_since(slot.logged_at) < self.interval => {
                slot.unlogged += 1;
                None
            }
            Some(slot) => {
                let unlogged = slot.unlogged;
                *slot = Slot {
                    logged_at: now,
                    unlogged: 0,
                };
                Some(unlogged)
            }
            None => {
                self.keys.insert(
                    key,
                    Slot {
                        logged_at: now,
                        unlogged: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_event_of_a_key_is_logged() {
        let mut limit = LogLimit::new(10 * SECOND);
        assert_eq!(limit.check("unknown_ca", Instant::now()), Some(0));
    }

    #[test]
    fn repeats_within_the_interval_are_counted_for_the_next_line() {
        let mut limit = LogLimit::new(10 * SECOND);
        let t0 = Instant::now();
        assert_eq!(limit.check("unknown_ca", t0), Some(0));
        for i in 1..=5 {
            assert_eq!(limit.check("unknown_ca", t0 + i * SECOND), None);
        }
        assert_eq!(limit.check("unknown_ca", t0 + 10 * SECOND), Some(5));
        // The interval starts again at the line just written.
        assert_eq!(limit.check("unknown_ca", t0 + 15 * SECOND), None);
        assert_eq!(limit.check("unknown_ca", t0 + 20 * SECOND), Some(1));
    }

    #[test]
    fn keys_are_limited_separately() {
        let mut limit = LogLimit::new(10 * SECOND);
        let t0 = Instant::now();
        assert_eq!(limit.check("unknown_ca", t0), Some(0));
        assert_eq!(limit.check("expired", t0 + SECOND), Some(0));
        assert_eq!(limit.check("unknown_ca", t0 + SECOND), None);
        assert_eq!(limit.check("expired", t0 + 2 * SECOND), None);
    }

    #[test]
    fn a_clock_reading_earlier_than_the_last_line_is_within_the_interval() {
        let mut limit = LogLimit::new(10 * SECOND);
        let t0 = Instant::now() + 60 * SECOND;
        assert_eq!(limit.check("io", t0), Some(0));
        assert_eq!(limit.check("io", t0 - SECOND), None);
    }
}
