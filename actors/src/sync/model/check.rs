//! The invariants checked once the simulated cluster is quiescent, per
//! connected component of the links that are up (see the module
//! documentation of `model` for why these are the right ones). Each
//! violation is returned as a line of text naming the nodes and entries.

use std::collections::{BTreeMap, BTreeSet};

use super::world::World;
use crate::{hlc::Timestamp, services::Service};

/// A live link as the table holds it: its two ends.
type LiveLink = (String, String);

/// Every live entry of every origin, hidden or not.
fn live_services(world: &World, n: usize) -> Vec<Service> {
    world.nodes[n]
        .replica()
        .services
        .live_entries()
        .cloned()
        .collect()
}

fn live_links(world: &World, n: usize) -> BTreeSet<LiveLink> {
    world.nodes[n]
        .replica()
        .links
        .live()
        .map(|(k, _, _)| (k.a().to_string(), k.b().to_string()))
        .collect()
}

/// What `n` should show: per URI, the newest live entry it holds among
/// origins in `component`.
fn visible_in(world: &World, n: usize, component: &BTreeSet<usize>) -> Vec<Service> {
    let inside: BTreeSet<&str> = component
        .iter()
        .map(|&m| world.nodes[m].name.as_str())
        .collect();
    let mut best: BTreeMap<&str, &Service> = BTreeMap::new();
    for s in world.nodes[n].replica().services.live_entries() {
        if !inside.contains(&*s.origin) {
            continue;
        }
        let slot = best.entry(&*s.uri).or_insert(s);
        if s.version() > slot.version() {
            *slot = s;
        }
    }
    best.into_values().cloned().collect()
}

fn show(s: &Service) -> String {
    format!("{}@{}/{} v={:?}", s.uri, s.ts, s.origin, s.attrs.get("v"))
}

fn show_all(services: &[Service]) -> String {
    services.iter().map(show).collect::<Vec<_>>().join(", ")
}

/// Which properties to check.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checks {
    /// Same live services and links at every node of a component.
    pub converge: bool,
    /// Every live entry of an origin in the component is its current
    /// registration (nothing deleted comes back).
    pub legitimate: bool,
    /// Every registration held by a local program is everywhere in its
    /// component.
    pub complete: bool,
    /// Every link that is up is live in the tables of its component.
    pub links_up: bool,
    /// No link with an end in the component is live in its tables while
    /// it is down.
    pub no_ghost_links: bool,
    /// Same digest, tombstones included, at every node of a component
    /// (only without purges and restarts, which legitimately leave
    /// different tombstones behind).
    pub same_digest: bool,
    /// What each node shows (lists, and has told its subscribers) is, per
    /// URI, the newest live registration among the origins of its
    /// component, and nothing of the origins it cannot reach.
    pub visible: bool,
}

impl Checks {
    /// Everything.
    pub(super) const ALL: Checks = Checks {
        converge: true,
        legitimate: true,
        complete: true,
        links_up: true,
        no_ghost_links: true,
        same_digest: true,
        visible: true,
    };

    /// Everything but tombstones.
    pub(super) const LIVE: Checks = Checks {
        same_digest: false,
        ..Checks::ALL
    };
}

/// The violations of `checks` in `world`, which must be quiescent.
pub(super) fn violations(world: &World, checks: Checks) -> Vec<String> {
    let mut out: Vec<String> = world.errors.clone();
    let index = |name: &str| world.nodes.iter().position(|n| n.name == name);
    for component in world.components() {
        let members: Vec<usize> = component.iter().copied().collect();
        let first = members[0];
        let name = |n: usize| world.nodes[n].name.as_str();
        if checks.converge {
            let reference = live_services(world, first);
            let reference_links = live_links(world, first);
            for &n in &members[1..] {
                let mine = live_services(world, n);
                if mine != reference {
                    out.push(format!(
                        "diverged: {} holds [{}] but {} holds [{}]",
                        name(first),
                        show_all(&reference),
                        name(n),
                        show_all(&mine)
                    ));
                }
                let links = live_links(world, n);
                if links != reference_links {
                    out.push(format!(
                        "links diverged: {} holds {:?} but {} holds {:?}",
                        name(first),
                        reference_links,
                        name(n),
                        links
                    ));
                }
            }
        }
        if checks.same_digest {
            // What is held, not how far each node knows it is complete.
            let digest = |n: usize| {
                let mut d = world.nodes[n].replica().digest();
                for s in d.services.values_mut() {
                    s.complete = Timestamp::default();
                    s.born = Timestamp::default();
                }
                d.services.retain(|_, s| *s != Default::default());
                d
            };
            let reference = digest(first);
            for &n in &members[1..] {
                let digest = digest(n);
                if (&digest.services, &digest.links) != (&reference.services, &reference.links) {
                    out.push(format!(
                        "digests differ: {} holds {:?} but {} holds {:?}",
                        name(first),
                        world.nodes[first].replica().entries(),
                        name(n),
                        world.nodes[n].replica().entries()
                    ));
                }
            }
        }
        if checks.legitimate {
            for &n in &members {
                for s in world.nodes[n].replica().services.live_entries() {
                    match index(&s.origin) {
                        Some(o) if component.contains(&o) => {
                            if world.nodes[o].local.get(&*s.uri) != Some(s) {
                                let current = world.nodes[o].local.get(&*s.uri).map(show);
                                out.push(format!(
                                    "resurrected: {} holds {} but its origin {} (same component) \
                                     holds {:?}",
                                    name(n),
                                    show(s),
                                    s.origin,
                                    current
                                ));
                            }
                        }
                        _ => {
                            let key = (s.uri.to_string(), s.origin.to_string(), s.ts);
                            if !world.history.adds.contains(&key) {
                                out.push(format!(
                                    "invented: {} holds {} which no node ever registered",
                                    name(n),
                                    show(s)
                                ));
                            }
                        }
                    }
                }
            }
        }
        if checks.complete {
            for &o in &members {
                for (uri, s) in &world.nodes[o].local {
                    for &n in &members {
                        let held = world.nodes[n].replica().services.get_from(uri, &s.origin);
                        if held != Some(s) {
                            out.push(format!(
                                "lost: {} registered {} but {} holds {:?}",
                                name(o),
                                show(s),
                                name(n),
                                held.map(show)
                            ));
                        }
                    }
                }
            }
        }
        if checks.visible {
            for &n in &members {
                let expected = visible_in(world, n, &component);
                let shown: Vec<Service> =
                    world.nodes[n].replica().services.iter().cloned().collect();
                if shown != expected {
                    out.push(format!(
                        "visible: {} shows [{}] but its component's origins hold [{}]",
                        name(n),
                        show_all(&shown),
                        show_all(&expected)
                    ));
                }
            }
        }
        for &n in &members {
            let table = live_links(world, n);
            if checks.no_ghost_links {
                for (a, b) in &table {
                    let (Some(ia), Some(ib)) = (index(a), index(b)) else {
                        continue;
                    };
                    let inside = component.contains(&ia) || component.contains(&ib);
                    if inside && !world.is_linked(ia, ib) {
                        out.push(format!(
                            "ghost link: {} holds {a}-{b} live but it is down",
                            name(n)
                        ));
                    }
                }
            }
            if checks.links_up {
                for &(a, b) in &world.linked() {
                    if component.contains(&a)
                        && !table.contains(&(name(a).to_string(), name(b).to_string()))
                    {
                        out.push(format!(
                            "missing link: {} does not hold {}-{} which is up",
                            name(n),
                            name(a),
                            name(b)
                        ));
                    }
                }
            }
        }
    }
    out
}
