//! The random runs. In CI: 2,000 seeds with every fault the model knows
//! (link drops with frames in flight lost, duplicates, interleavings
//! across links, concurrent writes of the same URIs by several nodes, clock
//! skew, crashes and restarts, tombstone purges with a very short TTL; 2 to
//! 6 nodes in every topology family), 2,000 with every fault but purges, and 1,000 each of the
//! faults of a cluster whose nodes stay up, without and with clock skew.
//! By hand (`#[ignore]`d): a long run with bigger clusters, and two tools,
//! `replay` and `survey`, driven by environment variables (see
//! `profile_from_env`).

use std::time::Instant;

use super::{
    run::{Profile, run, run_many},
    world::Counters,
};

/// Every fault but restarts, purges and clock skew: the faults of a
/// cluster whose nodes stay up, which the digest check covers too (without
/// restarts and purges every node of a component ends with the same
/// tombstones as well).
const CI: Profile = Profile {
    restarts: false,
    purges: false,
    max_skew_ms: 0,
    ..Profile::FULL
};

/// The same with clocks up to 3 ms apart.
const SKEWED: Profile = Profile {
    max_skew_ms: 3,
    ..CI
};

/// Asserts that a family of runs exercised what it claims to.
fn exercised(c: &Counters, seeds: u64) {
    eprintln!("{seeds} seeds: {c:?}");
    assert!(c.frames > seeds * 50, "few frames: {c:?}");
    assert!(c.duplicates > seeds, "few duplicates: {c:?}");
    assert!(c.links_down > seeds, "few link drops: {c:?}");
    assert!(c.unregisters > seeds, "few unregistrations: {c:?}");
    assert!(
        c.initial_entries > seeds,
        "few entries in initial batches: {c:?}"
    );
}

#[test]
fn random_clusters_converge() {
    let started = Instant::now();
    let c = run_many(0..1000, &CI);
    exercised(&c, 1000);
    assert_eq!(c.refused, 0, "nothing is refused without purges");
    eprintln!("in {:?}", started.elapsed());
}

#[test]
fn random_clusters_with_skewed_clocks_converge() {
    let started = Instant::now();
    let c = run_many(1_000_000..1_001_000, &SKEWED);
    exercised(&c, 1000);
    eprintln!("in {:?}", started.elapsed());
}

/// `cargo test -p catalogue-actors --lib sync::model::tests::long_run --
/// --ignored --nocapture` (`MODEL_SEEDS` seeds per family, 100,000 unless
/// set; a few minutes per 100,000 in a debug build).
#[test]
#[ignore = "long: run by hand"]
fn long_run() {
    let seeds = env_u64("MODEL_SEEDS").unwrap_or(100_000);
    let big = |p: Profile| Profile {
        max_nodes: 8,
        steps: (50, 600),
        ..p
    };
    for (name, profile, first) in [
        ("every fault", Profile::FULL, 50_000_000),
        ("every fault, up to 8 nodes", big(Profile::FULL), 60_000_000),
        ("ci", CI, 10_000_000),
        ("skewed", SKEWED, 20_000_000),
        ("ci, up to 8 nodes", big(CI), 30_000_000),
        ("skewed, up to 8 nodes", big(SKEWED), 40_000_000),
    ] {
        let started = Instant::now();
        let c = run_many(first..first + seeds, &profile);
        eprintln!("{name}: {seeds} seeds in {:?}: {c:?}", started.elapsed());
    }
}

/// Every fault: drops, duplicates, reordering, skewed clocks, restarts and
/// tombstone purges with a very short TTL, 2,000 seeds.
#[test]
fn every_fault() {
    // MODEL_FULL_SEEDS runs more by hand.
    let seeds = env_u64("MODEL_FULL_SEEDS").unwrap_or(2000);
    run_many(0..seeds, &Profile::FULL);
}

/// Every fault but purges: drops, duplicates, reordering, skewed clocks and
/// restarts, 2,000 seeds.
#[test]
fn every_fault_but_purges() {
    let profile = Profile {
        purges: false,
        ..Profile::FULL
    };
    let c = run_many(0..2000, &profile);
    assert!(c.restarts > 1000, "{c:?}");
}

/// Seeds of every fault over every topology that the long run found
/// failing, each fixed since: a link of a restarted node's previous life
/// applied after its birth was learnt (29020), and an origin's own add,
/// queued before its initial batch carried the delete, arriving after the
/// tombstone was purged (38569, 38706, 62827).
#[test]
fn regression_seeds_of_the_long_run() {
    for seed in [29_020, 38_569, 38_706, 62_827] {
        let r = run(seed, &Profile::FULL, true);
        assert!(
            r.violations.is_empty(),
            "seed {seed}: {}\n{}\n\n{}",
            r.setup,
            r.violations.join("\n"),
            r.trace.join("\n")
        );
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// The profile `replay` and `survey` use: [`Profile::FULL`] changed by
/// `MODEL_PROFILE`, a comma-separated list of `ci`, `nodrops`, `nodup`,
/// `norestart`, `nopurge`, `noskew`, `skew`, `ghosts` (check ghost links);
/// and by
/// `MODEL_NODES` (largest cluster) and `MODEL_STEPS` (steps per run).
fn profile_from_env() -> Profile {
    let mut p = Profile::FULL;
    let flags = std::env::var("MODEL_PROFILE").unwrap_or_default();
    for flag in flags.split(',') {
        match flag {
            "ci" => p = CI,
            "nodrops" => p.drops = false,
            "nodup" => p.duplicates = false,
            "norestart" => p.restarts = false,
            "nopurge" => p.purges = false,
            "noskew" => p.max_skew_ms = 0,
            "skew" => p.max_skew_ms = 3,
            "ghosts" => p.checks.no_ghost_links = true,
            "" => {}
            other => panic!("unknown MODEL_PROFILE flag {other:?}"),
        }
    }
    if let Some(n) = env_u64("MODEL_NODES") {
        p.max_nodes = usize::try_from(n).expect("MODEL_NODES").max(2);
    }
    if let Some(n) = env_u64("MODEL_STEPS") {
        p.steps = (n, n);
    }
    p
}

/// Replays seed `MODEL_SEED` of the profile from the environment and
/// prints its trace and violations: `MODEL_SEED=76 MODEL_NODES=3
/// MODEL_PROFILE=nopurge,noskew,nodup cargo test -p catalogue-actors --lib
/// sync::model::tests::replay -- --ignored --nocapture`.
#[test]
#[ignore = "a tool: replays one seed"]
fn replay() {
    let seed = env_u64("MODEL_SEED").expect("MODEL_SEED");
    let r = run(seed, &profile_from_env(), true);
    eprintln!(
        "seed {seed}: {}\n{}\n\nviolations:\n  {}",
        r.setup,
        r.trace.join("\n"),
        r.violations.join("\n  ")
    );
}

/// Runs `MODEL_SEEDS` seeds (1000 unless set) of the profile from the
/// environment and prints how many violate each property and the failing
/// seeds with the shortest traces (the best to study).
#[test]
#[ignore = "a tool: surveys failures"]
fn survey() {
    let profile = profile_from_env();
    let seeds = env_u64("MODEL_SEEDS").unwrap_or(1000);
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    let mut failing = Vec::new();
    for seed in 0..seeds {
        let r = run(seed, &profile, false);
        let mut seen = std::collections::BTreeSet::new();
        for v in &r.violations {
            seen.insert(v.split(':').next().unwrap_or(v).to_string());
        }
        for k in seen {
            *kinds.entry(k).or_default() += 1;
        }
        if let Some(first) = r.violations.first() {
            let length = run(seed, &profile, true).trace.len();
            failing.push((length, seed, first.clone()));
        }
    }
    failing.sort();
    eprintln!(
        "{} of {seeds} seeds fail; seeds per property: {kinds:?}",
        failing.len()
    );
    for (length, seed, first) in failing.iter().take(10) {
        eprintln!("seed {seed} ({length} trace lines): {first}");
    }
}
