//! One random run of the model: from a seed, a cluster of 2 to
//! `max_nodes` nodes with random session tuning; a random sequence of
//! operations (deliveries interleaved across links, timers, time passing,
//! registrations and unregistrations drawn from a small URI pool so nodes
//! clash on the same URIs, links coming up and breaking, restarts, tombstone
//! purges); then, most of the time, links joining every component into one;
//! then quiescence and the checks.

use super::{
    check::{Checks, violations},
    rng::Rng,
    topology::Shape,
    world::{Counters, Pair, Tuning, World},
};

/// What a family of runs exercises.
#[derive(Debug, Clone, Copy)]
pub(super) struct Profile {
    /// Largest cluster (at least 2).
    pub max_nodes: usize,
    /// Random operations before quiescence: between these.
    pub steps: (u64, u64),
    /// Links break (and frames in flight are lost).
    pub drops: bool,
    /// Frames are delivered again.
    pub duplicates: bool,
    /// Nodes crash and restart empty.
    pub restarts: bool,
    /// Tombstones are purged with a short TTL.
    pub purges: bool,
    /// Largest clock skew of a node, in ms.
    pub max_skew_ms: u64,
    /// What to check at the end.
    pub checks: Checks,
    /// The topology families a run is drawn from.
    pub shapes: &'static [Shape],
}

impl Profile {
    /// Every fault the model knows.
    pub(super) const FULL: Profile = Profile {
        max_nodes: 6,
        steps: (50, 300),
        drops: true,
        duplicates: true,
        restarts: true,
        purges: true,
        max_skew_ms: 3,
        checks: Checks::ALL,
        shapes: Shape::ALL,
    };
}

/// The result of one run.
#[derive(Debug)]
pub(super) struct Run {
    /// The run's parameters, for a failure report.
    pub setup: String,
    pub violations: Vec<String>,
    pub counters: Counters,
    /// The trace, when asked for.
    pub trace: Vec<String>,
}

/// Runs seed `seed` of `profile`.
pub(super) fn run(seed: u64, profile: &Profile, trace: bool) -> Run {
    let mut rng = Rng::new(seed);
    let shape = rng.pick(profile.shapes).unwrap_or(Shape::Mesh);
    // Sparse shapes need room for several hops.
    let smallest = if shape == Shape::Mesh { 2 } else { 3 };
    let nodes = smallest + rng.below(profile.max_nodes.max(smallest + 1) - smallest + 1);
    let edges = shape.edges(nodes, &mut rng);
    let uris = 2 + rng.below(5);
    let ttl_ms = rng.between(10, 150);
    let tuning = Tuning {
        window: 1 + rng.below(12),
        batch_max_entries: 1 + rng.below(6),
        batch_delay_ms: rng.between(0, 3),
        ack_timeout_ms: rng.between(5, 60),
        ttl_ms,
        grace_ms: rng.between(5, 100),
    };
    let steps = rng.between(profile.steps.0, profile.steps.1);
    let connect_all = rng.percent(70);
    let duplicate_percent = if profile.duplicates {
        rng.between(0, 10)
    } else {
        0
    };
    let setup = format!(
        "{shape:?} of {nodes} nodes ({edges:?}), {uris} URIs, {steps} steps, {tuning:?}, ttl {ttl_ms} ms, \
         duplicates {duplicate_percent}%, connect all at the end: {connect_all}"
    );
    let mut world = World::new(rng, nodes, tuning, profile.max_skew_ms);
    world.duplicate_percent = duplicate_percent;
    if trace {
        world.enable_trace();
    }
    // A sparse cluster starts with its links up.
    for &(a, b) in edges.iter().flatten() {
        world.link_up(a, b);
    }
    for _ in 0..steps {
        step(&mut world, profile, uris, edges.as_deref());
    }
    if connect_all {
        match &edges {
            Some(edges) => {
                for &(a, b) in edges {
                    world.link_up(a, b);
                }
            }
            None => connect(&mut world),
        }
    }
    world.settle();
    let mut checks = profile.checks;
    checks.same_digest &= !profile.purges && !profile.restarts;
    Run {
        setup,
        violations: violations(&world, checks),
        counters: world.counters,
        trace: world.trace().to_vec(),
    }
}

/// One random operation; links come up only along `edges` when given.
fn step(world: &mut World, profile: &Profile, uris: usize, edges: Option<&[Pair]>) {
    let nodes = world.nodes.len();
    let roll = world.rng.below(100);
    match roll {
        0..45 => {
            let busy = world.busy();
            match world.rng.pick(&busy) {
                Some((p, to)) => world.deliver_one(p, to, true),
                None => world.advance(1),
            }
        }
        45..53 => {
            let sessions = world.sessions();
            if let Some((p, end)) = world.rng.pick(&sessions) {
                world.tick(p, end);
            }
        }
        53..63 => {
            let ms = world.rng.between(1, 4);
            world.advance(ms);
        }
        63..73 => {
            let n = world.rng.below(nodes);
            let uri = format!("tcp://s{}:1", world.rng.below(uris));
            let value = world.rng.between(0, 3);
            world.register(n, &uri, value);
        }
        73..79 => {
            let n = world.rng.below(nodes);
            let held: Vec<String> = world.nodes[n].local.keys().cloned().collect();
            if !held.is_empty() {
                let uri = held[world.rng.below(held.len())].clone();
                world.unregister(n, &uri);
            }
        }
        79..86 => {
            let (a, b) = match edges {
                Some(edges) => world.rng.pick(edges).unwrap_or((0, 0)),
                None => (world.rng.below(nodes), world.rng.below(nodes)),
            };
            if world.rng.percent(50) {
                world.link_up(a, b);
            } else {
                world.link_up(b, a);
            }
        }
        86..91 if profile.drops => {
            let linked = world.linked();
            if let Some((a, b)) = world.rng.pick(&linked) {
                world.link_down(a, b, None);
            }
        }
        91..93 if profile.restarts => {
            let n = world.rng.below(nodes);
            world.restart(n);
        }
        93..97 if profile.purges => {
            let n = world.rng.below(nodes);
            world.purge(n);
        }
        _ => {}
    }
}

/// Links random nodes of different components until there is one.
pub(super) fn connect(world: &mut World) {
    loop {
        let components = world.components();
        if components.len() < 2 {
            return;
        }
        let a: Vec<usize> = components[0].iter().copied().collect();
        let other = 1 + world.rng.below(components.len() - 1);
        let b: Vec<usize> = components[other].iter().copied().collect();
        let (a, b) = (a[world.rng.below(a.len())], b[world.rng.below(b.len())]);
        let (dialer, acceptor) = if world.rng.percent(50) {
            (a, b)
        } else {
            (b, a)
        };
        debug_assert!(!world.is_linked(dialer, acceptor));
        world.link_up(dialer, acceptor);
    }
}

/// Runs `seeds` of `profile`; on the first failing seed, runs it again
/// with a trace and panics with everything needed to reproduce it.
/// Returns the summed counters.
pub(super) fn run_many(seeds: std::ops::Range<u64>, profile: &Profile) -> Counters {
    let mut total = Counters::default();
    let mut failed = Vec::new();
    for seed in seeds.clone() {
        let r = run(seed, profile, false);
        add(&mut total, &r.counters);
        if !r.violations.is_empty() {
            failed.push(seed);
        }
    }
    if let Some(&seed) = failed.first() {
        let r = run(seed, profile, true);
        let tail = r.trace.len().saturating_sub(400);
        panic!(
            "{} of {} seeds failed: {:?}\n\nseed {seed}: {}\n\nviolations:\n  {}\n\ntrace \
             (last {} lines):\n{}",
            failed.len(),
            seeds.end - seeds.start,
            &failed[..failed.len().min(20)],
            r.setup,
            r.violations.join("\n  "),
            r.trace.len() - tail,
            r.trace[tail..].join("\n")
        );
    }
    total
}

fn add(total: &mut Counters, c: &Counters) {
    total.frames += c.frames;
    total.duplicates += c.duplicates;
    total.links_up += c.links_up;
    total.links_down += c.links_down;
    total.restarts += c.restarts;
    total.purged += c.purged;
    total.registers += c.registers;
    total.unregisters += c.unregisters;
    total.batches += c.batches;
    total.initial_entries += c.initial_entries;
    total.replacements += c.replacements;
    total.refused += c.refused;
}
