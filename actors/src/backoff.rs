//! Jittered exponential backoff for reconnecting (client subscriptions,
//! outbound peer links). The ceiling doubles from `initial` up to `max`;
//! each delay is drawn uniformly from the upper half of the current ceiling
//! ("equal jitter"), so a fleet of reconnecting clients spreads out while
//! every delay stays at least half the ceiling.
//!
//! A failed attempt is weighed by what it cost the other side
//! ([`Failure`], [`Backoff::after_failure`]): when no connection was made
//! (refused, unreachable, timed out) the other side's daemon did no work,
//! so the next try comes within `initial` and the ceiling does not grow: a
//! peer that comes back after an outage is reached at once. A failure after
//! the connection was made (TLS or authentication refused, protocol error)
//! doubles the ceiling, so a peer that refuses us is not hammered. Only a
//! success ([`Backoff::reset`]) lowers the ceiling again.

use std::time::Duration;

use rand::Rng;

/// What a failed attempt cost the other side, which sets how soon the next
/// one comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made (refused, unreachable, timed out): retried
    /// within `initial`, the ceiling left as it is.
    NoConnection,
    /// The connection was made, then failed or was refused: the ceiling
    /// doubles, up to `max`.
    AfterConnect,
}

/// Backoff state for one thing that reconnects.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    /// Starts at `initial`, never exceeds `max` (`max` is raised to
    /// `initial` if smaller).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            ceiling: initial,
        }
    }

    /// The next delay, using `rng` for the jitter, and doubles the ceiling.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(self.max);
        jittered(ceiling, rng)
    }

    /// The delay after a failed attempt: a [`Failure::NoConnection`] waits
    /// at most `initial` and leaves the ceiling alone; a
    /// [`Failure::AfterConnect`] is [`Backoff::next_delay`].
    pub fn after_failure<R: Rng + ?Sized>(&mut self, failure: Failure, rng: &mut R) -> Duration {
        match failure {
            Failure::NoConnection => jittered(self.initial, rng),
            Failure::AfterConnect => self.next_delay(rng),
        }
    }

    /// Back to `initial` after a success.
    pub fn reset(&mut self) {
        self.ceiling = self.initial;
    }
}

/// A delay drawn uniformly from the upper half of `ceiling`.
fn jittered<R: Rng + ?Sized>(ceiling: Duration, rng: &mut R) -> Duration {
    let half = ceiling / 2;
    let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(rng.random_range(0..=jitter_nanos))
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn delays_grow_to_the_ceiling_and_stay_in_the_upper_half() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000];
        for ceiling in ceilings {
            let d = b.next_delay(&mut rng);
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(10));
        for _ in 0..10 {
            b.next_delay(&mut rng);
        }
        b.reset();
        assert!(b.next_delay(&mut rng) <= Duration::from_millis(10));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut rng = StdRng::seed_from_u64(3);
        let delays: std::collections::HashSet<Duration> = (0..20)
            .map(|_| {
                Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_delay(&mut rng)
            })
            .collect();
        assert!(delays.len() > 15, "delays should differ: {delays:?}");
    }

    #[test]
    fn failures_without_a_connection_retry_within_initial_and_do_not_grow() {
        let mut rng = StdRng::seed_from_u64(5);
        let initial = Duration::from_millis(100);
        let mut b = Backoff::new(initial, Duration::from_secs(30));
        for _ in 0..1000 {
            let d = b.after_failure(Failure::NoConnection, &mut rng);
            assert!(d >= initial / 2 && d <= initial, "{d:?}");
        }
        // The ceiling did not grow: the first refusal after the outage
        // waits about `initial`, like the first failure ever.
        let d = b.after_failure(Failure::AfterConnect, &mut rng);
        assert!(d <= initial, "{d:?}");
    }

    #[test]
    fn failures_after_a_connection_grow_and_survive_connection_failures() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        for _ in 0..6 {
            b.after_failure(Failure::AfterConnect, &mut rng);
        }
        // The peer restarts (refused connections), then refuses us again:
        // the wait goes on from where it was, not from `initial`.
        for _ in 0..20 {
            b.after_failure(Failure::NoConnection, &mut rng);
        }
        let d = b.after_failure(Failure::AfterConnect, &mut rng);
        assert!(d >= Duration::from_millis(3200), "{d:?}");
        assert!(d <= Duration::from_millis(6400), "{d:?}");
        b.reset();
        let d = b.after_failure(Failure::AfterConnect, &mut rng);
        assert!(d <= Duration::from_millis(100), "{d:?}");
    }
}
