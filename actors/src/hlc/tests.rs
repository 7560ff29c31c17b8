use super::*;

const DRIFT: Duration = Duration::from_millis(500);

fn hlc_at(ms: u64) -> (ManualClock, Hlc<ManualClock>) {
    let clock = ManualClock::new(ms);
    let hlc = Hlc::new(clock.clone(), DRIFT);
    (clock, hlc)
}

#[test]
fn ordering_is_physical_then_logical() {
    assert!(Timestamp::new(1, 9) < Timestamp::new(2, 0));
    assert!(Timestamp::new(2, 0) < Timestamp::new(2, 1));
    assert_eq!(Timestamp::default(), Timestamp::new(0, 0));
}

#[test]
fn proto_round_trip() {
    let ts = Timestamp::new(1_700_000_000_123, 42);
    let wire: catalogue_proto::catalogue::Timestamp = ts.into();
    assert_eq!(wire.physical_ms, 1_700_000_000_123);
    assert_eq!(wire.logical, 42);
    assert_eq!(Timestamp::from(wire), ts);
}

#[test]
fn now_follows_the_wall_clock() {
    let (clock, mut hlc) = hlc_at(1000);
    assert_eq!(hlc.last(), Timestamp::default());
    assert_eq!(hlc.now(), Timestamp::new(1000, 0));
    assert_eq!(hlc.now(), Timestamp::new(1000, 1));
    clock.advance(5);
    assert_eq!(hlc.now(), Timestamp::new(1005, 0));
    assert_eq!(hlc.last(), Timestamp::new(1005, 0));
}

#[test]
fn monotonic_when_the_clock_goes_backwards() {
    let (clock, mut hlc) = hlc_at(10_000);
    let mut prev = hlc.now();
    for step in [9_000, 9_999, 10_000, 5, 0, 10_001, 10_000, 20_000, 19_000] {
        clock.set(step);
        for _ in 0..3 {
            let ts = hlc.now();
            assert!(ts > prev, "{ts} not after {prev} (clock {step})");
            prev = ts;
        }
    }
    // Back on time, the physical part follows the wall clock again.
    clock.set(30_000);
    assert_eq!(hlc.now(), Timestamp::new(30_000, 0));
}

#[test]
fn logical_overflow_moves_to_the_next_millisecond() {
    let (_clock, mut hlc) = hlc_at(7);
    hlc.observe(Timestamp::new(7, u32::MAX - 1)).ok();
    assert_eq!(hlc.last(), Timestamp::new(7, u32::MAX));
    assert_eq!(hlc.now(), Timestamp::new(8, 0));
    assert_eq!(hlc.now(), Timestamp::new(8, 1));

    let (_clock, mut hlc) = hlc_at(7);
    assert_eq!(
        hlc.observe(Timestamp::new(7, u32::MAX)),
        Ok(Timestamp::new(8, 0))
    );
}

#[test]
fn successor_saturates_at_the_end_of_time() {
    let end = Timestamp::new(u64::MAX, u32::MAX);
    assert_eq!(end.successor(), end);
    assert_eq!(
        Timestamp::new(u64::MAX, 3).successor(),
        Timestamp::new(u64::MAX, 4)
    );
}

#[test]
fn observe_moves_past_the_remote() {
    let (_clock, mut hlc) = hlc_at(1000);
    hlc.now();
    // Remote ahead (within drift): take its physical part, step its counter.
    let ts = hlc.observe(Timestamp::new(1200, 7));
    assert_eq!(ts, Ok(Timestamp::new(1200, 8)));
    // Later local events stay after it even though the wall clock is behind.
    assert_eq!(hlc.now(), Timestamp::new(1200, 9));
}

#[test]
fn observe_of_an_older_remote_still_advances() {
    let (clock, mut hlc) = hlc_at(1000);
    hlc.now();
    hlc.now();
    assert_eq!(hlc.last(), Timestamp::new(1000, 1));
    // Remote behind: step our own counter.
    assert_eq!(
        hlc.observe(Timestamp::new(900, 50)),
        Ok(Timestamp::new(1000, 2))
    );
    // Same millisecond on both: one past the larger counter.
    assert_eq!(
        hlc.observe(Timestamp::new(1000, 10)),
        Ok(Timestamp::new(1000, 11))
    );
    // Wall clock ahead of both: counter restarts.
    clock.set(2000);
    assert_eq!(
        hlc.observe(Timestamp::new(1500, 3)),
        Ok(Timestamp::new(2000, 0))
    );
    // Wall clock equal to the remote's millisecond, ours older.
    clock.set(2500);
    let mut fresh = Hlc::new(clock.clone(), DRIFT);
    assert_eq!(
        fresh.observe(Timestamp::new(2500, 4)),
        Ok(Timestamp::new(2500, 5))
    );
}

#[test]
fn drift_limit_is_inclusive() {
    let (_clock, mut hlc) = hlc_at(10_000);
    let before = hlc.now();
    let max = 10_000 + 500;
    assert_eq!(
        hlc.observe(Timestamp::new(max + 1, 0)),
        Err(ClockError::TooFarAhead {
            remote_ms: max + 1,
            local_ms: 10_000,
            max_drift_ms: 500,
        })
    );
    assert_eq!(
        hlc.last(),
        before,
        "a refused timestamp must not move the clock"
    );
    assert_eq!(
        hlc.observe(Timestamp::new(max, 3)),
        Ok(Timestamp::new(max, 4))
    );
}

#[test]
fn drift_error_message_is_readable() {
    let err = ClockError::TooFarAhead {
        remote_ms: 12_000,
        local_ms: 10_000,
        max_drift_ms: 500,
    };
    assert_eq!(
        err.to_string(),
        "remote timestamp 12000 ms is 2000 ms ahead of the local clock (10000 ms), \
         more than the allowed drift of 500 ms"
    );
}

#[test]
fn zero_drift_accepts_only_up_to_now() {
    let clock = ManualClock::new(100);
    let mut hlc = Hlc::new(clock, Duration::ZERO);
    assert!(hlc.observe(Timestamp::new(100, 9)).is_ok());
    assert!(hlc.observe(Timestamp::new(101, 0)).is_err());
}

#[test]
fn huge_drift_saturates() {
    let clock = ManualClock::new(100);
    let mut hlc = Hlc::new(clock, Duration::MAX);
    assert_eq!(hlc.max_drift_ms(), u64::MAX);
    assert_eq!(
        hlc.observe(Timestamp::new(u64::MAX, 0)),
        Ok(Timestamp::new(u64::MAX, 1))
    );
}

#[test]
fn manual_clock_clones_share_time() {
    let a = ManualClock::new(5);
    let b = a.clone();
    a.advance(10);
    assert_eq!(b.now_ms(), 15);
    b.set(3);
    assert_eq!(a.now_ms(), 3);
    a.advance(u64::MAX);
    assert_eq!(b.get(), u64::MAX);
}

#[test]
fn system_clock_is_after_2020() {
    let mut hlc: Hlc = Hlc::new(SystemClock, DRIFT);
    let ts = hlc.now();
    assert!(ts.physical_ms > 1_577_836_800_000, "{ts}");
    assert!(hlc.now() > ts);
}

#[test]
fn a_million_readings_strictly_increase() {
    let (clock, mut hlc) = hlc_at(1_000);
    let mut prev = hlc.now();
    for i in 0..1_000_000u64 {
        // A wall clock that mostly stands still, sometimes jumps forward
        // and sometimes back.
        match i % 100_000 {
            0 => clock.advance(3),
            50_000 => clock.set(clock.get().saturating_sub(2)),
            _ => {}
        }
        let ts = hlc.now();
        assert!(ts > prev, "reading {i}: {ts} not after {prev}");
        prev = ts;
    }
}

#[test]
fn interleaved_now_and_observe_strictly_increase() {
    let (clock, mut hlc) = hlc_at(50);
    let mut prev = hlc.now();
    let remotes = [(40, 5), (60, 2), (60, 2), (55, 100), (200, 0), (10, 0)];
    for (i, &(p, l)) in remotes.iter().enumerate() {
        clock.set(50 + i as u64);
        let remote = Timestamp::new(p, l);
        let ts = hlc.observe(remote).unwrap();
        assert!(ts > prev && ts > remote);
        prev = ts;
        let ts = hlc.now();
        assert!(ts > prev);
        prev = ts;
    }
}
