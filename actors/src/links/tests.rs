//! Tests of the links table: merge rule, order independence, tombstones,
//! reachability.

use proptest::prelude::*;

use super::*;

fn ts(ms: u64) -> Timestamp {
    Timestamp {
        physical_ms: ms,
        logical: 0,
    }
}

fn change(op: LinkOp, x: &str, y: &str, origin: &str, ms: u64) -> LinkChange {
    LinkChange {
        op,
        key: LinkKey::new(x, y),
        origin: origin.into(),
        ts: ts(ms),
    }
}

fn snapshot(t: &LinksTable) -> Vec<LinkChange> {
    t.changes().collect()
}

#[test]
fn the_pair_is_unordered() {
    assert_eq!(LinkKey::new("a", "b"), LinkKey::new("b", "a"));
    let mut t = LinksTable::new();
    t.apply(&change(LinkOp::Add, "b", "a", "a", 1));
    assert!(t.is_live(&LinkKey::new("a", "b")));
    assert_eq!(
        t.apply(&change(LinkOp::Delete, "a", "b", "b", 2)),
        LinkApplied::Changed
    );
    assert!(!t.is_live(&LinkKey::new("b", "a")));
}

#[test]
fn a_delete_older_than_the_add_loses() {
    let mut t = LinksTable::new();
    t.apply(&change(LinkOp::Add, "a", "b", "a", 10));
    assert_eq!(
        t.apply(&change(LinkOp::Delete, "a", "b", "b", 9)),
        LinkApplied::Ignored
    );
    assert!(t.is_live(&LinkKey::new("a", "b")));
}

#[test]
fn equal_timestamps_are_broken_by_origin() {
    let mut t = LinksTable::new();
    t.apply(&change(LinkOp::Add, "a", "b", "a", 5));
    assert_eq!(
        t.apply(&change(LinkOp::Delete, "a", "b", "b", 5)),
        LinkApplied::Changed,
        "b > a"
    );
    assert_eq!(
        t.apply(&change(LinkOp::Add, "a", "b", "a", 5)),
        LinkApplied::Ignored
    );
}

#[test]
fn applying_twice_is_ignored_the_second_time() {
    let mut t = LinksTable::new();
    let c = change(LinkOp::Add, "a", "b", "a", 1);
    assert_eq!(t.apply(&c), LinkApplied::Changed);
    assert_eq!(t.apply(&c), LinkApplied::Ignored);
    assert!(!t.apply(&c).forward(), "a duplicate is not forwarded");
}

#[test]
fn newer_add_over_add_is_refreshed_and_forwarded() {
    let mut t = LinksTable::new();
    t.apply(&change(LinkOp::Add, "a", "b", "a", 1));
    let applied = t.apply(&change(LinkOp::Add, "a", "b", "b", 2));
    assert_eq!(applied, LinkApplied::Refreshed);
    assert!(applied.forward());
}

#[test]
fn a_tombstone_expires_exactly_after_the_ttl() {
    // Tombstone made at t=1000; TTL 60_000 ms; the purge bound is now - ttl.
    let ttl = 60_000;
    let mut t = LinksTable::new();
    t.apply(&change(LinkOp::Add, "a", "b", "a", 500));
    t.apply(&change(LinkOp::Delete, "a", "b", "a", 1000));
    let purge_at = |t: &mut LinksTable, now: u64| t.purge_tombstones(ts(now - ttl));
    assert_eq!(purge_at(&mut t, 1000 + ttl - 1), 0, "younger than the TTL");
    assert_eq!(
        purge_at(&mut t, 1000 + ttl),
        0,
        "exactly the TTL: still kept"
    );
    assert_eq!(t.tombstone_count(), 1);
    assert_eq!(
        purge_at(&mut t, 1000 + ttl + 1),
        1,
        "older than the TTL: purged"
    );
    assert_eq!(t.tombstone_count(), 0);
    // The horizon rises just past the newest tombstone forgotten.
    assert_eq!(t.purge_horizon(), ts(1000).successor());
    // Live links are never purged.
    t.apply(&change(LinkOp::Add, "c", "d", "c", 1));
    assert_eq!(t.purge_tombstones(ts(u64::MAX)), 0);
}

#[test]
fn reachability_follows_live_links() {
    let mut t = LinksTable::new();
    t.apply(&change(LinkOp::Add, "a", "b", "a", 1));
    t.apply(&change(LinkOp::Add, "b", "c", "b", 1));
    t.apply(&change(LinkOp::Add, "d", "e", "d", 1));
    let r = t.reachable_from("a");
    assert_eq!(r.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    t.apply(&change(LinkOp::Delete, "b", "c", "b", 2));
    assert_eq!(t.reachable_from("a").len(), 2);
    assert_eq!(t.reachable_from("z").into_iter().collect::<Vec<_>>(), ["z"]);
}

fn arb_change() -> impl Strategy<Value = LinkChange> {
    let node = prop::sample::select(vec!["a", "b", "c", "d"]);
    (any::<bool>(), node.clone(), node.clone(), node, 0u64..6).prop_map(|(add, x, y, o, ms)| {
        change(if add { LinkOp::Add } else { LinkOp::Delete }, x, y, o, ms)
    })
}

proptest! {
    #[test]
    fn any_order_of_the_same_changes_gives_the_same_table(
        changes in prop::collection::vec(arb_change(), 0..40),
        seed in any::<u64>(),
    ) {
        // Versions must be unique per key (an origin never reuses a
        // timestamp): keep the first change for each (key, ts, origin).
        let mut seen = std::collections::HashSet::new();
        let changes: Vec<LinkChange> = changes
            .into_iter()
            .filter(|c| seen.insert((c.key.clone(), c.ts, c.origin.clone())))
            .collect();
        let mut forward = LinksTable::new();
        for c in &changes {
            forward.apply(c);
        }
        let mut shuffled = changes.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut other = LinksTable::new();
        for c in &shuffled {
            other.apply(c);
        }
        prop_assert_eq!(snapshot(&forward), snapshot(&other));
        prop_assert_eq!(other.live_count(), other.live().count());
        prop_assert_eq!(forward.live_count(), forward.live().count());
        // And applying everything again changes nothing.
        for c in &changes {
            prop_assert_eq!(other.apply(c), LinkApplied::Ignored);
        }
    }
}
