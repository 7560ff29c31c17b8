//! Targeted scenarios on the simulated cluster, each a short script of
//! operations (the model's random schedule still decides the order of
//! deliveries inside each `settle`, so each script runs under many
//! schedules), then the invariant checks and a few explicit expectations.
//! The `regression_*` scenarios reproduce bugs the model found in the
//! replication code (restarted nodes getting old entries back, ghost links,
//! a delayed replacement retiring newer entries, a late joiner refusing old
//! services); they pass since the fixes.

use super::{
    check::{Checks, violations},
    rng::Rng,
    world::{Tuning, World},
};
use crate::services::{Applied, Service};

/// Schedules (seeds) each scenario runs under.
const SCHEDULES: u64 = 30;

/// The tombstone TTL of the scenarios, in simulated milliseconds.
const TTL_MS: u64 = 100;

const TUNING: Tuning = Tuning {
    window: 6,
    batch_max_entries: 3,
    batch_delay_ms: 1,
    ack_timeout_ms: 20,
    ttl_ms: TTL_MS,
    grace_ms: 30,
};

fn world(nodes: usize, seed: u64) -> World {
    let mut w = World::new(Rng::new(seed), nodes, TUNING, 0);
    w.duplicate_percent = 5;
    w.enable_trace();
    w
}

fn uri(name: &str) -> String {
    format!("tcp://{name}:1")
}

fn held<'a>(w: &'a World, n: usize, name: &str) -> Option<&'a Service> {
    w.nodes[n].replica().services.get(&uri(name))
}

/// Panics with the violations and the trace if any check fails (every
/// check but tombstones when nodes restarted or purged).
fn assert_sound(w: &World, seed: u64) {
    let checks = if w.counters.restarts + w.counters.purged > 0 {
        Checks::LIVE
    } else {
        Checks::ALL
    };
    let v = violations(w, checks);
    assert!(
        v.is_empty(),
        "schedule {seed}:\n  {}\n\ntrace:\n{}",
        v.join("\n  "),
        w.trace().join("\n")
    );
}

/// Every node of `w` holds `name` live, registered at `origin`.
fn everywhere(w: &World, name: &str, origin: usize, seed: u64) {
    for n in 0..w.nodes.len() {
        let s = held(w, n, name);
        assert_eq!(
            s.map(|s| &*s.origin),
            Some(w.nodes[origin].name.as_str()),
            "schedule {seed}: n{n} should hold {name} from n{origin}\n{}",
            w.trace().join("\n")
        );
    }
}

/// No node of `w` holds `name` live.
fn nowhere(w: &World, name: &str, seed: u64) {
    for n in 0..w.nodes.len() {
        assert_eq!(
            held(w, n, name),
            None,
            "schedule {seed}: n{n} should not hold {name}\n{}",
            w.trace().join("\n")
        );
    }
}

/// A ring of four nodes splits in two halves; each half unregisters
/// services, registers new ones and registers URIs the other half holds;
/// the ring heals. Every delete must hold on both sides, and remove only
/// its own origin's registration; the newest live registration of each
/// URI must be visible everywhere.
#[test]
fn partition_and_heal_with_deletes_on_both_sides() {
    for seed in 0..SCHEDULES {
        let mut w = world(4, seed);
        for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 0)] {
            w.link_up(a, b);
        }
        w.register(0, &uri("a"), 0);
        w.register(0, &uri("b"), 0);
        w.register(1, &uri("c"), 0);
        w.register(2, &uri("d"), 0);
        w.register(3, &uri("e"), 0);
        w.settle();
        assert_sound(&w, seed);
        everywhere(&w, "a", 0, seed);

        // Halves {n0, n1} and {n2, n3}.
        w.link_down(1, 2, None);
        w.link_down(3, 0, None);
        w.advance(2);
        w.unregister(0, &uri("a")); // deleted on the left...
        w.register(1, &uri("d"), 1); // ...d taken over on the left...
        w.register(0, &uri("f"), 0);
        w.advance(2);
        w.unregister(2, &uri("d")); // ...then n2's deleted on the right: n1's stays
        w.register(3, &uri("a"), 2); // a taken over on the right, after its delete
        w.unregister(3, &uri("e"));
        w.register(2, &uri("b"), 3); // b re-registered on the right, newest
        w.settle();
        assert_sound(&w, seed);
        assert!(held(&w, 1, "a").is_none() && held(&w, 2, "a").is_some());

        w.advance(5);
        w.link_up(1, 2);
        w.link_up(0, 3);
        w.settle();
        assert_sound(&w, seed);
        everywhere(&w, "a", 3, seed);
        everywhere(&w, "b", 2, seed);
        everywhere(&w, "c", 1, seed);
        everywhere(&w, "f", 0, seed);
        everywhere(&w, "d", 1, seed);
        nowhere(&w, "e", seed);
        for n in 0..4 {
            let gone = w.nodes[n].replica().services.get_from(&uri("d"), "n2");
            assert_eq!(gone, None, "schedule {seed}: n{n} still holds n2's d");
        }
    }
}

/// The links flap while nodes register and unregister the same URIs:
/// after quiescence every node agrees and nothing deleted is back.
#[test]
fn flapping_links_under_concurrent_changes_of_the_same_uris() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.link_up(0, 1);
        w.link_up(1, 2);
        for round in 0..6u64 {
            for n in 0..3 {
                w.register(n, &uri("x"), round);
                if round % 2 == 1 {
                    w.unregister(n, &uri("x"));
                }
            }
            for _ in 0..w.rng.below(20) {
                let busy = w.busy();
                if let Some((p, to)) = w.rng.pick(&busy) {
                    w.deliver_one(p, to, true);
                }
            }
            let (a, b) = if round % 2 == 0 { (0, 1) } else { (1, 2) };
            w.link_down(a, b, None);
            w.advance(1);
            w.link_up(b, a);
        }
        w.settle();
        assert_sound(&w, seed);
        nowhere(&w, "x", seed); // the newest write of x is a delete (round 5)
    }
}

/// n0 registered services and synced them along the chain n0-n1-n2, then
/// restarted (empty, re-registering nothing) and registered one new
/// service. Its old services must be gone from every node.
fn restart_of_a_node_that_held_services() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.link_up(0, 1);
        w.link_up(1, 2);
        w.register(0, &uri("old1"), 0);
        w.register(0, &uri("old2"), 0);
        w.settle();
        everywhere(&w, "old1", 0, seed);

        w.restart(0);
        w.register(0, &uri("new"), 0);
        w.link_up(0, 1);
        w.settle();
        assert_sound(&w, seed);
        nowhere(&w, "old1", seed);
        nowhere(&w, "old2", seed);
        everywhere(&w, "new", 0, seed);
    }
}

/// BUG (restart): see `restart_of_a_node_that_held_services`. n1 sends n0
/// its old entries (n0's digest lacks them), `Replica::apply_batch` at n0
/// applies them: the restarted origin holds its old registrations again
/// and later floods them. n0's own replacement removes them at n1 only;
/// n2 keeps them for good.
#[test]
fn regression_restart_resurrects_the_services_of_the_previous_incarnation() {
    restart_of_a_node_that_held_services();
}

/// The links table after a restart: n0's links of its previous life must
/// not come back either (here, its link to n2, which is down).
fn restart_of_a_node_that_had_links() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.link_up(0, 1);
        w.link_up(0, 2);
        w.settle();
        w.restart(0);
        w.link_up(0, 1);
        w.settle();
        assert_sound(&w, seed);
    }
}

/// BUG (restart, links table): n2's `LinkDelete` of n0-n2 and n0's
/// previous `LinkAdd` of it race; whatever n1 still holds of n0's old
/// links it sends back to n0, which applies it.
#[test]
fn regression_restart_resurrects_links_of_the_previous_incarnation() {
    restart_of_a_node_that_had_links();
}

/// n0 leaves the chain n0-n1-n2 while it still holds u1 of n2; n2 then
/// unregisters u1; the TTL passes and every node (n0 too: its timer runs
/// while it is away) purges its tombstones; n0 rejoins. u1 must not come
/// back anywhere; what is still registered must be everywhere.
#[test]
fn regression_node_away_longer_than_the_ttl_resurrects() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.link_up(0, 1);
        w.link_up(1, 2);
        w.register(2, &uri("u1"), 0);
        w.register(2, &uri("u2"), 0);
        w.register(1, &uri("v"), 0);
        w.settle();
        w.link_down(0, 1, None);
        w.unregister(2, &uri("u1"));
        w.settle();
        w.advance(TTL_MS + 50);
        for n in 0..3 {
            w.purge(n);
        }
        w.link_up(0, 1);
        w.settle();
        nowhere(&w, "u1", seed);
        everywhere(&w, "u2", 2, seed);
        everywhere(&w, "v", 1, seed);
        assert_sound(&w, seed);
    }
}

/// The same, but n0 rejoins before purging anything (its horizon is still
/// zero): n1 refuses n0's stale u1 and replaces n0's view of n2.
#[test]
fn node_away_longer_than_the_ttl_that_purged_nothing_resurrects_nothing() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.link_up(0, 1);
        w.link_up(1, 2);
        w.register(2, &uri("u1"), 0);
        w.register(2, &uri("u2"), 0);
        w.register(1, &uri("v"), 0);
        w.settle();
        w.link_down(0, 1, None);
        w.unregister(2, &uri("u1"));
        w.settle();
        w.advance(TTL_MS + 50);
        w.purge(1);
        w.purge(2);
        w.link_up(0, 1);
        w.settle();
        nowhere(&w, "u1", seed);
        everywhere(&w, "u2", 2, seed);
        everywhere(&w, "v", 1, seed);
        assert_sound(&w, seed);
    }
}

/// n2 registered a service long ago (more than the TTL) and has been
/// linked to n1 all along; n0 was up but alone, purging on its timer like
/// every node, and now links to n1. n0 must receive n2's service.
fn late_joiner() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.link_up(1, 2);
        w.register(2, &uri("old"), 0);
        w.register(1, &uri("mine"), 0);
        w.settle();
        w.advance(TTL_MS + 50);
        w.purge(0);
        w.link_up(0, 1);
        w.settle();
        everywhere(&w, "mine", 1, seed); // from the sender itself: accepted
        everywhere(&w, "old", 2, seed);
        assert_sound(&w, seed);
    }
}

/// BUG (purge horizon): see `late_joiner`.
#[test]
fn regression_a_late_joiner_refuses_long_lived_services_of_other_origins() {
    late_joiner();
}

/// n0's clock runs 20 ms ahead of the others (production allows 5 s). Its link to n1 comes up and
/// breaks at once: n0's `LinkAdd` reaches n2, n0's `LinkDelete` does not
/// (its link to n2 breaks too), and n1's `LinkDelete`, stamped by a clock
/// behind n0's, is older than n0's `LinkAdd`. n1 and n2 then hold n0-n1 as
/// up, and n0 as reachable, for good, though n1 knows the link is down.
fn skewed_link_flap() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.set_skew(0, 20);
        w.link_up(0, 2);
        w.settle();
        w.link_up(0, 1);
        w.settle_link(0, 2); // n0's LinkAdd of n0-n1 reaches n2
        w.link_down(0, 1, None);
        w.link_down(0, 2, None); // n0's LinkDelete of n0-n1 is lost
        w.link_up(1, 2);
        w.settle();
        assert_sound(&w, seed);
    }
}

/// BUG (links, clock skew): see `skewed_link_flap`.
#[test]
fn regression_a_link_flap_under_clock_skew_leaves_a_ghost_link() {
    skewed_link_flap();
}

/// n0 restarts and links to n1 and n2 (n1 and n2 stay linked). n0's
/// initial batch to n1 replaces n1's view of n0; it is planned, then n0
/// registers `new`, which reaches n1 through n2 before that batch does.
/// Applied at n1, the replacement, planned before `new` existed, retires
/// `new` as a tombstone of the same version, and travels on: through n2 back
/// to n0, which retires its own registration. `new` is lost everywhere while
/// n0's program still holds it.
fn replacement_overtaken_by_a_newer_entry() {
    for seed in 0..SCHEDULES {
        let mut w = world(3, seed);
        w.link_up(0, 1);
        w.link_up(0, 2);
        w.link_up(1, 2);
        w.register(0, &uri("old"), 0);
        w.settle();
        w.restart(0);
        w.link_up(0, 1);
        w.link_up(0, 2);
        w.run_link_until_planned(0, 1); // n0's replacement for n1 is in flight
        w.register(0, &uri("new"), 0);
        w.settle_link(0, 2); // n2 gets `new`...
        w.settle_link(1, 2); // ...and passes it to n1
        w.settle(); // now n0's replacement reaches n1
        assert_sound(&w, seed);
        everywhere(&w, "new", 0, seed);
        nowhere(&w, "old", seed);
    }
}

/// BUG (replacement race): see `replacement_overtaken_by_a_newer_entry`.
#[test]
fn regression_a_replacement_overtaken_by_a_newer_entry_retires_it_everywhere() {
    replacement_overtaken_by_a_newer_entry();
}

// ----- sparse topologies (chains and rings) -----

/// Links up along a chain n0 - n1 - ... - n(k-1).
fn chain(w: &mut World) {
    for n in 1..w.nodes.len() {
        w.link_up(n - 1, n);
    }
}

/// No subscriber of any node was told, at or after `since_ms`, of an add
/// of one of `gone` (URI, origin index): services deleted before then.
fn never_shown_again(w: &World, gone: &[(String, usize)], since_ms: u64, seed: u64) {
    for e in w.events().iter().filter(|e| e.at_ms >= since_ms) {
        let shown = match &e.applied {
            Applied::Added(s) | Applied::Updated { new: s, .. } => s,
            _ => continue,
        };
        let deleted = gone
            .iter()
            .any(|(u, o)| **u == *shown.uri && *w.nodes[*o].name == *shown.origin);
        assert!(
            !deleted,
            "schedule {seed}: n{} showed {} of {} again at {} ms, deleted before {since_ms} ms\n{}",
            e.node,
            shown.uri,
            shown.origin,
            e.at_ms,
            w.trace().join("\n")
        );
    }
}

/// Issue 13, symptom 1: a chain n0..n4 with services at both ends is cut
/// in the middle (n2 - n3); after the grace period each side withdraws the
/// other's services; the far end deletes some; the link comes back. Every
/// node must show every live service again (they stayed hidden at n0 and
/// n1, which learn the heal only through a replicated link entry), and no
/// subscriber may see a service deleted during the cut come back.
fn chain_cut_and_heal(purge: bool) {
    for seed in 0..SCHEDULES {
        let mut w = world(5, seed);
        w.record_events();
        chain(&mut w);
        for i in 0..3 {
            w.register(0, &uri(&format!("a{i}")), 0);
            w.register(4, &uri(&format!("e{i}")), 0);
        }
        w.settle();
        assert_sound(&w, seed);

        w.link_down(2, 3, None);
        w.settle(); // grace periods included
        for n in 0..3 {
            assert!(
                held(&w, n, "e0").is_none(),
                "schedule {seed}: n{n} still shows e0"
            );
        }
        assert!(
            held(&w, 4, "a0").is_none(),
            "schedule {seed}: n4 still shows a0"
        );
        w.unregister(4, &uri("e1"));
        w.unregister(0, &uri("a1"));
        w.settle();
        if purge {
            w.advance(TTL_MS + 1);
            for n in 0..5 {
                w.purge(n);
            }
        }

        let heal_ms = w.now_ms;
        w.link_up(3, 2);
        w.settle();
        assert_sound(&w, seed);
        for name in ["a0", "a2"] {
            everywhere(&w, name, 0, seed);
        }
        for name in ["e0", "e2"] {
            everywhere(&w, name, 4, seed);
        }
        nowhere(&w, "a1", seed);
        nowhere(&w, "e1", seed);
        never_shown_again(&w, &[(uri("e1"), 4), (uri("a1"), 0)], heal_ms, seed);
    }
}

#[test]
fn regression_a_chain_cut_in_the_middle_shows_the_far_side_again_after_the_heal() {
    chain_cut_and_heal(false);
}

/// Issue 13, symptom 4: the same with the deletes' tombstones purged
/// before the heal.
#[test]
fn regression_services_deleted_during_a_cut_never_come_back_at_the_heal() {
    chain_cut_and_heal(true);
}

/// Issue 13, symptom 2: the middle node of the chain n0..n4 crashes while
/// n0 registers, and starts again (empty). Its neighbours hold link
/// entries of its previous life, which must not make anything reachable;
/// once it is linked again every node shows every live service.
#[test]
fn regression_restart_of_the_middle_node_of_a_chain_during_registrations() {
    for seed in 0..SCHEDULES {
        let mut w = world(5, seed);
        chain(&mut w);
        for i in 0..3 {
            w.register(4, &uri(&format!("e{i}")), 0);
        }
        w.settle();
        for i in 0..6 {
            w.register(0, &uri(&format!("a{i}")), 0);
            for _ in 0..w.rng.below(10) {
                let busy = w.busy();
                if let Some((p, to)) = w.rng.pick(&busy) {
                    w.deliver_one(p, to, true);
                }
            }
            if i == 2 {
                w.restart(2);
                // One neighbour links first, the other after a while.
                let (first, second) = if w.rng.percent(50) { (1, 3) } else { (3, 1) };
                w.link_up(2, first);
                w.settle_link(2, first);
                w.advance(TUNING.ack_timeout_ms);
                w.link_up(second, 2);
            }
        }
        w.settle();
        assert_sound(&w, seed);
        for i in 0..6 {
            everywhere(&w, &format!("a{i}"), 0, seed);
        }
        for i in 0..3 {
            everywhere(&w, &format!("e{i}"), 4, seed);
        }
    }
}

/// Issue 13, the 32-node ring: a ring of eight split in two by two
/// opposite nodes going silent (their links break), then healed. Each half
/// withdraws the other's services, and every node shows them all again
/// after the heal, not only the neighbours of the nodes that came back.
#[test]
fn regression_a_ring_split_by_two_opposite_nodes_converges_after_the_heal() {
    for seed in 0..SCHEDULES {
        let mut w = world(8, seed);
        chain(&mut w);
        w.link_up(7, 0);
        for n in 0..8 {
            w.register(n, &uri(&format!("s{n}")), 0);
        }
        w.settle();
        for paused in [0, 4] {
            w.link_down(paused, (paused + 1) % 8, None);
            w.link_down(paused, (paused + 7) % 8, None);
        }
        w.settle();
        assert!(
            held(&w, 2, "s6").is_none(),
            "schedule {seed}: n2 still shows s6"
        );
        for paused in [0, 4] {
            w.link_up((paused + 1) % 8, paused);
            w.link_up(paused, (paused + 7) % 8);
        }
        w.settle();
        assert_sound(&w, seed);
        for n in 0..8 {
            everywhere(&w, &format!("s{n}"), n, seed);
        }
    }
}

/// Issue 13, symptom 2 (the log of the middle node's neighbour): the chain
/// n0..n4 loses its middle node n2 long enough for each side to withdraw
/// the other's services; n0 unregisters a0 meanwhile; n2 starts again,
/// empty, and links to n3 first. n3 still holds n1 - n2 (it never heard
/// n1's delete of it): that link of n2's previous life must not make n0
/// reachable again through n2 before n2 has linked back to n1, or n3 shows
/// a0 again although n0 deleted it.
#[test]
fn regression_a_restarted_nodes_old_links_make_nothing_reachable() {
    for seed in 0..SCHEDULES {
        let mut w = world(5, seed);
        w.record_events();
        chain(&mut w);
        for i in 0..3 {
            w.register(0, &uri(&format!("a{i}")), 0);
            w.register(4, &uri(&format!("e{i}")), 0);
        }
        w.settle();
        w.restart(2);
        w.settle(); // both sides withdraw the other's services
        assert!(held(&w, 3, "a0").is_none(), "schedule {seed}: n3 shows a0");
        let deleted_ms = w.now_ms;
        w.unregister(0, &uri("a0"));
        w.settle();
        w.link_up(2, 3);
        w.settle();
        never_shown_again(&w, &[(uri("a0"), 0)], deleted_ms, seed);
        assert!(
            held(&w, 3, "a1").is_none(),
            "schedule {seed}: n3 reaches n0 through n2's old link"
        );
        w.link_up(1, 2);
        w.settle();
        assert_sound(&w, seed);
        nowhere(&w, "a0", seed);
        everywhere(&w, "a1", 0, seed);
        everywhere(&w, "e1", 4, seed);
    }
}
