use super::*;
use proptest::prelude::*;

fn ts(physical_ms: u64, logical: u32) -> Timestamp {
    Timestamp::new(physical_ms, logical)
}

fn service(uri: &str, origin: &str, t: Timestamp) -> Service {
    let attrs = [("origin".to_owned(), origin.to_owned())].into();
    Service {
        uri: uri.into(),
        attrs,
        origin: origin.into(),
        ts: t,
    }
}

fn add(uri: &str, origin: &str, t: Timestamp) -> Change {
    Change::Add(service(uri, origin, t))
}

fn delete(uri: &str, origin: &str, t: Timestamp) -> Change {
    Change::Delete {
        uri: uri.into(),
        origin: origin.into(),
        ts: t,
    }
}

fn tomb(uri: &str, origin: &str, t: Timestamp) -> Tombstone {
    Tombstone {
        uri: uri.into(),
        origin: origin.into(),
        ts: t,
    }
}

/// The whole observable state: live entries and tombstones, in URI order.
fn snapshot(table: &ServicesTable) -> (Vec<Service>, Vec<Tombstone>) {
    (
        table.iter().cloned().collect(),
        table.tombstones().cloned().collect(),
    )
}

#[test]
fn new_table_is_empty() {
    let table = ServicesTable::new();
    assert!(table.is_empty());
    assert_eq!(table.len(), 0);
    assert_eq!(table.tombstone_count(), 0);
    assert_eq!(table.purge_horizon(), Timestamp::default());
    assert_eq!(table.get("tcp://x"), None);
    assert_eq!(table.live_count(), 0);
}

#[test]
fn add_update_delete_lifecycle() {
    let mut table = ServicesTable::new();
    let s1 = service("tcp://a:1", "n1", ts(10, 0));
    assert_eq!(
        table.apply(Change::Add(s1.clone())),
        Applied::Added(Arc::new(s1.clone()))
    );
    assert_eq!(table.get("tcp://a:1"), Some(&s1));
    assert_eq!(table.len(), 1);

    let mut s1b = service("tcp://a:1", "n1", ts(11, 0));
    s1b.attrs.insert("k".into(), "v".into());
    assert_eq!(
        table.apply(Change::Add(s1b.clone())),
        Applied::Updated {
            old: Arc::new(s1),
            new: Arc::new(s1b.clone())
        }
    );
    assert_eq!(table.get("tcp://a:1"), Some(&s1b));

    assert_eq!(
        table.apply(delete("tcp://a:1", "n1", ts(12, 0))),
        Applied::Deleted(Arc::new(s1b))
    );
    assert!(table.is_empty());
    assert_eq!(table.tombstone_count(), 1);
    assert_eq!(table.live_count(), 0);
    assert_eq!(
        table.tombstone("tcp://a:1", "n1"),
        Some(&tomb("tcp://a:1", "n1", ts(12, 0)))
    );
}

#[test]
fn a_delete_removes_only_its_origins_registration() {
    let mut table = ServicesTable::new();
    let a = service("u:1", "n1", ts(10, 0));
    let b = service("u:1", "n2", ts(11, 0));
    table.apply(Change::Add(a.clone()));
    // The newer registration of another origin becomes the visible one.
    assert_eq!(
        table.apply(Change::Add(b.clone())),
        Applied::Updated {
            old: Arc::new(a.clone()),
            new: Arc::new(b.clone())
        }
    );
    assert_eq!(table.len(), 1);
    assert_eq!(table.live_count(), 2);
    // n1's delete, newer than both, removes only n1's registration:
    // nothing visible moves.
    assert_eq!(
        table.apply(delete("u:1", "n1", ts(20, 0))),
        Applied::Invisible
    );
    assert_eq!(table.get("u:1"), Some(&b));
    assert_eq!(table.get_from("u:1", "n1"), None);
    // n2's delete removes the last one.
    assert_eq!(
        table.apply(delete("u:1", "n2", ts(12, 0))),
        Applied::Deleted(Arc::new(b))
    );
    assert!(table.is_empty());
    assert_eq!(table.tombstone_count(), 2);
    // n1 registers again: visible again.
    let a2 = service("u:1", "n1", ts(21, 0));
    assert_eq!(
        table.apply(Change::Add(a2.clone())),
        Applied::Added(Arc::new(a2))
    );
}

#[test]
fn deleting_the_visible_entry_shows_the_next_newest() {
    let mut table = ServicesTable::new();
    let a = service("u:1", "n1", ts(10, 0));
    let b = service("u:1", "n2", ts(11, 0));
    table.apply(Change::Add(a.clone()));
    table.apply(Change::Add(b.clone()));
    assert_eq!(
        table.apply(delete("u:1", "n2", ts(12, 0))),
        Applied::Updated {
            old: Arc::new(b),
            new: Arc::new(a)
        }
    );
    assert_eq!(table.len(), 1);
}

#[test]
fn delete_without_live_entry_is_invisible() {
    let mut table = ServicesTable::new();
    assert_eq!(
        table.apply(delete("u:1", "n1", ts(5, 0))),
        Applied::Invisible
    );
    assert_eq!(table.tombstone_count(), 1);
    // A newer delete of the same origin replaces the tombstone.
    assert_eq!(
        table.apply(delete("u:1", "n1", ts(6, 0))),
        Applied::Invisible
    );
    assert_eq!(
        table.tombstones().collect::<Vec<_>>(),
        vec![&tomb("u:1", "n1", ts(6, 0))]
    );
    // An older one does not.
    assert_eq!(table.apply(delete("u:1", "n1", ts(5, 9))), Applied::Ignored);
    // Another origin's delete has a slot of its own.
    assert_eq!(
        table.apply(delete("u:1", "n2", ts(1, 0))),
        Applied::Invisible
    );
    assert_eq!(table.tombstone_count(), 2);
}

#[test]
fn delete_older_than_add_loses() {
    let mut table = ServicesTable::new();
    let s = service("u:1", "n1", ts(10, 3));
    table.apply(Change::Add(s.clone()));
    assert_eq!(
        table.apply(delete("u:1", "n1", ts(10, 2))),
        Applied::Ignored
    );
    assert_eq!(table.get("u:1"), Some(&s));
    assert_eq!(table.tombstone_count(), 0);
}

#[test]
fn add_older_than_tombstone_loses_and_newer_add_resurrects() {
    let mut table = ServicesTable::new();
    table.apply(delete("u:1", "n1", ts(10, 0)));
    assert_eq!(table.apply(add("u:1", "n1", ts(9, 99))), Applied::Ignored);
    assert!(table.is_empty());

    let s = service("u:1", "n1", ts(10, 1));
    assert_eq!(
        table.apply(Change::Add(s.clone())),
        Applied::Added(Arc::new(s))
    );
    assert_eq!(
        table.tombstone_count(),
        0,
        "the newer add replaces the tombstone"
    );
    assert_eq!(table.len(), 1);
}

#[test]
fn equal_timestamps_are_tie_broken_by_origin() {
    let t = ts(100, 7);
    let mut table = ServicesTable::new();
    let b = service("u:1", "node-b", t);
    table.apply(Change::Add(b.clone()));
    // "node-a" < "node-b": held, but not visible.
    assert_eq!(table.apply(add("u:1", "node-a", t)), Applied::Invisible);
    // "node-c" > "node-b": visible.
    let c = service("u:1", "node-c", t);
    assert_eq!(
        table.apply(Change::Add(c.clone())),
        Applied::Updated {
            old: Arc::new(b.clone()),
            new: Arc::new(c.clone())
        }
    );
    assert_eq!(
        table.apply(delete("u:1", "node-c", ts(100, 8))),
        Applied::Updated {
            old: Arc::new(c),
            new: Arc::new(b)
        }
    );
}

#[test]
fn equal_version_is_ignored() {
    let mut table = ServicesTable::new();
    let s = service("u:1", "n1", ts(1, 0));
    table.apply(Change::Add(s.clone()));
    assert_eq!(table.apply(Change::Add(s)), Applied::Ignored);
    table.apply(delete("u:1", "n1", ts(2, 0)));
    assert_eq!(table.apply(delete("u:1", "n1", ts(2, 0))), Applied::Ignored);
}

#[test]
fn hidden_origins_are_not_visible() {
    let mut table = ServicesTable::new();
    let a = service("u:1", "n1", ts(10, 0));
    let b = service("u:1", "n2", ts(11, 0));
    let c = service("u:2", "n2", ts(12, 0));
    for s in [&a, &b, &c] {
        table.apply(Change::Add(s.clone()));
    }
    assert_eq!(
        table.hide("n2", ts(99, 0)),
        vec![
            Applied::Updated {
                old: Arc::new(b.clone()),
                new: Arc::new(a.clone())
            },
            Applied::Deleted(Arc::new(c.clone()))
        ]
    );
    assert!(
        table.hide("n2", ts(99, 0)).is_empty(),
        "hiding twice moves nothing"
    );
    assert!(table.is_hidden("n2"));
    assert_eq!(table.len(), 1);
    assert_eq!(table.iter().collect::<Vec<_>>(), vec![&a]);
    assert_eq!(table.get_from("u:2", "n2"), Some(&c));
    // Changes of a hidden origin are kept, not shown.
    let c2 = service("u:2", "n2", ts(13, 0));
    assert_eq!(table.apply(Change::Add(c2.clone())), Applied::Invisible);
    assert_eq!(
        table.show("n2"),
        vec![
            Applied::Updated {
                old: Arc::new(a),
                new: Arc::new(b.clone())
            },
            Applied::Added(Arc::new(c2))
        ]
    );
    assert_eq!(table.len(), 2);
}

#[test]
fn retiring_an_origin_keeps_what_it_should() {
    let mut table = ServicesTable::new();
    let a = service("u:1", "n1", ts(10, 0));
    let b = service("u:1", "n2", ts(11, 0));
    let kept = service("u:2", "n2", ts(12, 0));
    let newer = service("u:3", "n2", ts(30, 0));
    for s in [&a, &b, &kept, &newer] {
        table.apply(Change::Add(s.clone()));
    }
    let keep = HashSet::from(["u:2".to_string()]);
    assert_eq!(
        table.remove_origin_except("n2", &keep, ts(20, 0)),
        vec![Applied::Updated {
            old: Arc::new(b.clone()),
            new: Arc::new(a.clone())
        }]
    );
    assert_eq!(table.tombstone("u:1", "n2"), Some(&tomb("u:1", "n2", b.ts)));
    assert_eq!(table.get("u:2"), Some(&kept));
    assert_eq!(table.get("u:3"), Some(&newer), "newer than the as-of");
    // A stale copy of the retired entry is ignored.
    assert_eq!(table.apply(Change::Add(b)), Applied::Ignored);
}

#[test]
fn uris_are_independent() {
    let mut table = ServicesTable::new();
    table.apply(add("u:b", "n", ts(5, 0)));
    table.apply(add("u:a", "n", ts(1, 0)));
    table.apply(delete("u:c", "n", ts(9, 0)));
    assert_eq!(
        table.apply(add("u:c2", "n", ts(0, 1))),
        Applied::Added(Arc::new(service("u:c2", "n", ts(0, 1))))
    );
    let uris: Vec<_> = table.iter().map(|s| &*s.uri).collect();
    assert_eq!(uris, ["u:a", "u:b", "u:c2"]);
    assert_eq!(table.tombstone_count(), 1);
}

#[test]
fn purge_keeps_the_horizon_itself() {
    let mut table = ServicesTable::new();
    table.apply(delete("u:1", "n", ts(10, 0)));
    table.apply(delete("u:2", "n", ts(10, 1)));
    table.apply(delete("u:3", "n", ts(20, 0)));
    table.apply(add("u:live", "n", ts(1, 0)));

    assert_eq!(table.purge_tombstones(ts(10, 1)), 1);
    let left: Vec<_> = table.tombstones().map(|t| &*t.uri).collect();
    assert_eq!(left, ["u:2", "u:3"], "ts == older_than is kept");
    assert_eq!(table.purge_horizon(), ts(10, 1));
    assert_eq!(table.len(), 1, "live entries are never purged");

    // A lower bound purges nothing and does not lower the horizon.
    assert_eq!(table.purge_tombstones(ts(5, 0)), 0);
    assert_eq!(table.purge_horizon(), ts(10, 1));

    assert_eq!(table.purge_tombstones(ts(20, 1)), 2);
    assert_eq!(table.tombstone_count(), 0);
    assert_eq!(table.purge_horizon(), ts(20, 1));
}

#[test]
fn change_accessors() {
    let a = add("u:1", "n1", ts(3, 4));
    assert_eq!(a.uri(), "u:1");
    assert_eq!(a.version(), (ts(3, 4), "n1"));
    let d = delete("u:2", "n2", ts(5, 6));
    assert_eq!(d.uri(), "u:2");
    assert_eq!(d.version(), (ts(5, 6), "n2"));
}

/// A random change over few URIs, origins and timestamps, so that changes
/// collide often.
fn change() -> impl Strategy<Value = Change> {
    (
        any::<bool>(),
        0..3usize,
        0..3usize,
        0..4u64,
        0..3u32,
        0..3usize,
    )
        .prop_map(|(is_add, uri, origin, p, l, attr)| {
            let uri = format!("svc:{uri}");
            let origin = format!("node-{origin}");
            let t = ts(p, l);
            if is_add {
                let mut s = service(&uri, &origin, t);
                s.attrs.insert("attr".to_owned(), attr.to_string());
                Change::Add(s)
            } else {
                delete(&uri, &origin, t)
            }
        })
}

/// A set of changes with unique versions per URI (as real origins
/// guarantee), and a permutation of it.
fn changes_and_permutation() -> impl Strategy<Value = (Vec<Change>, Vec<Change>)> {
    prop::collection::vec(change(), 0..24).prop_flat_map(|mut changes| {
        let mut seen = std::collections::BTreeSet::new();
        changes.retain(|c| {
            let (t, origin) = c.version();
            seen.insert((c.uri().to_owned(), t, origin.to_owned()))
        });
        let shuffled = Just(changes.clone()).prop_shuffle();
        (Just(changes), shuffled)
    })
}

proptest! {
    #[test]
    fn order_does_not_matter((changes, permuted) in changes_and_permutation()) {
        let mut a = ServicesTable::new();
        for c in changes.iter().cloned() {
            a.apply(c);
        }
        let mut b = ServicesTable::new();
        for c in permuted.iter().cloned() {
            b.apply(c);
        }
        prop_assert_eq!(snapshot(&a), snapshot(&b));

        // And both hold, per URI and origin, the newest change; the visible
        // entry of a URI is its newest live one.
        let mut best: BTreeMap<(&str, &str), &Change> = BTreeMap::new();
        for c in &changes {
            let e = best.entry((c.uri(), c.version().1)).or_insert(c);
            if c.version() > e.version() {
                *e = c;
            }
        }
        let mut visible: BTreeMap<&str, &Service> = BTreeMap::new();
        for c in best.values() {
            if let Change::Add(s) = c {
                let e = visible.entry(&s.uri).or_insert(s);
                if s.version() > e.version() {
                    *e = s;
                }
            }
        }
        let live: Vec<Service> = visible.values().map(|s| (*s).clone()).collect();
        let tombs: Vec<Tombstone> = best.values().filter_map(|c| match c {
            Change::Add(_) => None,
            Change::Delete { uri, origin, ts } => Some(tomb(uri, origin, *ts)),
        }).collect();
        prop_assert_eq!(snapshot(&a), (live, tombs));
    }

    #[test]
    fn applying_twice_changes_nothing((changes, permuted) in changes_and_permutation()) {
        let mut table = ServicesTable::new();
        for c in changes {
            table.apply(c);
        }
        let before = snapshot(&table);
        for c in permuted {
            prop_assert_eq!(table.apply(c), Applied::Ignored);
        }
        prop_assert_eq!(snapshot(&table), before);
    }

    #[test]
    fn applied_outcome_matches_the_state_change(changes in prop::collection::vec(change(), 0..24)) {
        let mut table = ServicesTable::new();
        for c in changes {
            let uri = c.uri().to_owned();
            let origin = c.version().1.to_owned();
            let visible_before = table.get(&uri).cloned();
            let before = snapshot(&table);
            let outcome = table.apply(c.clone());
            let visible_after = table.get(&uri).cloned();
            match &outcome {
                Applied::Ignored => prop_assert_eq!(snapshot(&table), before),
                Applied::Added(s) => {
                    prop_assert!(visible_before.is_none());
                    prop_assert_eq!(Some(&**s), visible_after.as_ref());
                }
                Applied::Updated { old, new } => {
                    prop_assert_eq!(Some(&**old), visible_before.as_ref());
                    prop_assert_eq!(Some(&**new), visible_after.as_ref());
                    prop_assert_ne!(old, new);
                }
                Applied::Deleted(old) => {
                    prop_assert_eq!(Some(&**old), visible_before.as_ref());
                    prop_assert!(visible_after.is_none());
                }
                Applied::Invisible => prop_assert_eq!(&visible_before, &visible_after),
            }
            if outcome != Applied::Ignored {
                // The origin's slot holds the change, live or dead.
                match &c {
                    Change::Add(s) => {
                        prop_assert_eq!(table.get_from(&uri, &origin), Some(s));
                        prop_assert!(table.tombstone(&uri, &origin).is_none());
                    }
                    Change::Delete { .. } => {
                        prop_assert!(table.get_from(&uri, &origin).is_none());
                        prop_assert!(table.tombstone(&uri, &origin).is_some());
                    }
                }
            }
            // The counters match the contents.
            prop_assert_eq!(table.len(), table.iter().count());
            prop_assert_eq!(table.live_count(), table.live_entries().count());
            prop_assert_eq!(table.tombstone_count(), table.tombstones().count());
        }
    }
}

#[test]
fn an_origin_hidden_before_it_held_anything_stays_hidden_and_retires_nothing() {
    let mut table = ServicesTable::default();
    table.apply(add("tcp://a", "n1", ts(1, 0)));
    // n2 holds nothing yet: hiding it moves nothing, but it is hidden.
    assert!(table.hide("n2", ts(5, 0)).is_empty());
    assert!(table.retire_before("n2", ts(9, 0)).is_empty());
    assert_eq!(
        table.apply(add("tcp://b", "n2", ts(6, 0))),
        Applied::Invisible
    );
    assert!(table.get("tcp://b").is_none());
    // Shown again, its entry becomes visible; retiring it then works.
    let shown = table.show("n2");
    assert!(matches!(&shown[..], [Applied::Added(s)] if &*s.uri == "tcp://b"));
    let retired = table.retire_before("n2", ts(9, 0));
    assert!(matches!(&retired[..], [Applied::Deleted(s)] if &*s.uri == "tcp://b"));
    assert_eq!(table.get("tcp://a").map(|s| &*s.origin), Some("n1"));
}

#[test]
fn purging_with_no_tombstones_purges_nothing_and_then_purges_what_comes() {
    let mut table = ServicesTable::default();
    table.apply(add("tcp://a", "n1", ts(1, 0)));
    assert_eq!(table.purge_tombstones(ts(100, 0)), 0);
    table.apply(delete("tcp://a", "n1", ts(2, 0)));
    assert_eq!(table.tombstone_count(), 1);
    assert_eq!(table.purge_tombstones(ts(100, 0)), 1);
    assert_eq!(table.tombstone_count(), 0);
}

/// The index by origin as the slots say it should be: every live slot's
/// (origin, URI), nothing else.
fn assert_index_consistent(table: &ServicesTable) {
    let mut expected: Vec<(String, String)> = table
        .live_entries()
        .map(|s| (s.origin.to_string(), s.uri.to_string()))
        .collect();
    expected.sort();
    assert_eq!(table.by_origin.pairs(), expected, "index by origin");
    let origins: Vec<String> = expected.iter().map(|(o, _)| o.clone()).collect();
    let mut origins_listed: Vec<&str> = table.origins_holding().collect();
    origins_listed.dedup();
    let mut origins = origins;
    origins.dedup();
    assert_eq!(origins_listed, origins, "origins holding entries");
}

#[test]
fn hiding_showing_and_retiring_an_origin_leaves_the_others_alone() {
    let mut t = ServicesTable::new();
    // n1 and n2 each hold URIs of their own and share tcp://both, where
    // n2's newer entry is visible.
    for c in [
        add("tcp://a1", "n1", ts(1, 0)),
        add("tcp://a2", "n1", ts(2, 0)),
        add("tcp://both", "n1", ts(3, 0)),
        add("tcp://b1", "n2", ts(4, 0)),
        add("tcp://both", "n2", ts(5, 0)),
        add("tcp://c1", "n3", ts(6, 0)),
    ] {
        t.apply(c);
    }
    assert_index_consistent(&t);
    let (before, _) = snapshot(&t);

    // Hiding n2 moves only its URIs: b1 goes, both falls back to n1's.
    let moved = t.hide("n2", ts(10, 0));
    assert_eq!(moved.len(), 2);
    assert!(matches!(&moved[0], Applied::Deleted(s) if &*s.uri == "tcp://b1"));
    assert!(
        matches!(&moved[1], Applied::Updated { old, new } if &*old.origin == "n2" && &*new.origin == "n1")
    );
    assert_eq!(t.get("tcp://a1").map(|s| &*s.origin), Some("n1"));
    assert_eq!(t.get("tcp://c1").map(|s| &*s.origin), Some("n3"));
    assert_eq!(t.len(), 4);
    // Hidden entries stay live and indexed.
    assert_index_consistent(&t);
    let moved = t.show("n2");
    assert_eq!(moved.len(), 2);
    assert_eq!(snapshot(&t).0, before);
    assert_eq!(t.len(), 5);

    // Retiring n1 before ts(3) takes a1 and a2 only; its tcp://both stays.
    let retired = t.retire_before("n1", ts(3, 0));
    assert_eq!(retired.len(), 2);
    assert!(
        retired
            .iter()
            .all(|a| matches!(a, Applied::Deleted(s) if &*s.origin == "n1"))
    );
    assert!(t.get_from("tcp://both", "n1").is_some());
    assert!(t.get_from("tcp://b1", "n2").is_some());
    assert!(t.get_from("tcp://c1", "n3").is_some());
    assert_eq!(t.tombstone_count(), 2);
    assert_eq!(t.live_count(), 4);
    assert_index_consistent(&t);

    // Retiring all of n1 but a URI it does not hold: tcp://both goes,
    // n2's entry of it stays visible; n1 no longer holds anything.
    let keep: HashSet<String> = ["tcp://b1".to_string()].into();
    let retired = t.remove_origin_except("n1", &keep, ts(100, 0));
    assert_eq!(retired, vec![Applied::Invisible]);
    assert_eq!(t.get("tcp://both").map(|s| &*s.origin), Some("n2"));
    assert_eq!(t.origins_holding().collect::<Vec<_>>(), ["n2", "n3"]);
    assert_index_consistent(&t);
    // An origin that holds nothing live retires and moves nothing.
    assert!(t.retire_before("n1", ts(100, 0)).is_empty());
    assert!(t.hide("n1", ts(100, 0)).is_empty());
    // Visible: n2's tcp://both and tcp://b1, n3's tcp://c1.
    assert_eq!(t.len(), 3);
}

#[test]
fn the_index_follows_replace_delete_resurrect_and_purge() {
    let mut t = ServicesTable::new();
    t.apply(add("tcp://x", "n1", ts(1, 0)));
    t.apply(add("tcp://x", "n1", ts(2, 0))); // replaced, still live
    t.apply(add("tcp://y", "n2", ts(2, 0)));
    assert_index_consistent(&t);
    t.apply(delete("tcp://x", "n1", ts(3, 0)));
    assert_index_consistent(&t);
    assert_eq!(t.origins_holding().collect::<Vec<_>>(), ["n2"]);
    // An older add loses against the tombstone and stays out.
    assert_eq!(t.apply(add("tcp://x", "n1", ts(2, 5))), Applied::Ignored);
    assert_index_consistent(&t);
    // A delete where nothing was live indexes nothing.
    t.apply(delete("tcp://z", "n3", ts(3, 0)));
    assert_index_consistent(&t);
    // A newer add resurrects it.
    t.apply(add("tcp://x", "n1", ts(4, 0)));
    assert_index_consistent(&t);
    assert_eq!(t.origins_holding().collect::<Vec<_>>(), ["n1", "n2"]);
    // A retired entry comes back with a newer add.
    t.retire_before("n2", ts(5, 0));
    assert_index_consistent(&t);
    t.apply(add("tcp://y", "n2", ts(6, 0)));
    assert_index_consistent(&t);
    // Purging tombstones leaves the live entries indexed.
    t.apply(delete("tcp://x", "n1", ts(7, 0)));
    assert!(t.purge_tombstones(ts(100, 0)) > 0);
    assert_eq!(t.tombstone_count(), 0);
    assert_index_consistent(&t);
    assert_eq!(t.origins_holding().collect::<Vec<_>>(), ["n2"]);
    // Retiring from the index after a purge still finds n2's entry.
    assert_eq!(t.retire_before("n2", ts(7, 0)).len(), 1);
    assert_index_consistent(&t);
    assert_eq!(t.origins_holding().count(), 0);
}

/// One step of a random life of the table: a change, hiding, showing or
/// retiring an origin, or a purge.
#[derive(Debug, Clone)]
enum Step {
    Apply(Change),
    Hide(usize, u64),
    Show(usize),
    RetireBefore(usize, u64),
    ReplaceExcept(usize, usize, u64),
    Purge(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => change().prop_map(Step::Apply),
        1 => (0..3usize, 0..5u64).prop_map(|(o, p)| Step::Hide(o, p)),
        1 => (0..3usize).prop_map(Step::Show),
        1 => (0..3usize, 0..5u64).prop_map(|(o, p)| Step::RetireBefore(o, p)),
        1 => (0..3usize, 0..3usize, 0..5u64).prop_map(|(o, u, p)| Step::ReplaceExcept(o, u, p)),
        1 => (0..5u64).prop_map(Step::Purge),
    ]
}

proptest! {
    /// Whatever happens, the index by origin holds exactly the live slots,
    /// and what an origin-wide operation reports matches what clients see
    /// move: the visible entries of every other origin's URIs stay put.
    #[test]
    fn the_index_by_origin_always_matches_the_slots(steps in prop::collection::vec(step(), 0..40)) {
        let mut table = ServicesTable::new();
        for s in steps {
            let before: BTreeMap<String, Service> =
                table.iter().map(|s| (s.uri.to_string(), s.clone())).collect();
            let (origin, moved) = match s {
                Step::Apply(c) => {
                    table.apply(c);
                    (None, Vec::new())
                }
                Step::Hide(o, p) => {
                    let o = format!("node-{o}");
                    let moved = table.hide(&o, ts(p, 0));
                    (Some(o), moved)
                }
                Step::Show(o) => {
                    let o = format!("node-{o}");
                    let moved = table.show(&o);
                    (Some(o), moved)
                }
                Step::RetireBefore(o, p) => {
                    let o = format!("node-{o}");
                    let moved = table.retire_before(&o, ts(p, 0));
                    (Some(o), moved)
                }
                Step::ReplaceExcept(o, u, p) => {
                    let o = format!("node-{o}");
                    let keep: HashSet<String> = [format!("svc:{u}")].into();
                    let moved = table.remove_origin_except(&o, &keep, ts(p, 0));
                    (Some(o), moved)
                }
                Step::Purge(p) => {
                    table.purge_tombstones(ts(p, 0));
                    (None, Vec::new())
                }
            };
            assert_index_consistent(&table);
            prop_assert_eq!(table.len(), table.iter().count());
            prop_assert_eq!(table.live_count(), table.live_entries().count());
            prop_assert_eq!(table.tombstone_count(), table.tombstones().count());
            if let Some(origin) = origin {
                let after: BTreeMap<String, Service> =
                    table.iter().map(|s| (s.uri.to_string(), s.clone())).collect();
                let changed: Vec<&String> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|u| before.get(*u) != after.get(*u))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                // Every URI whose visible entry moved was one of the
                // origin's (before or after), and is reported once.
                for uri in &changed {
                    let of_origin = before.get(*uri).is_some_and(|s| *s.origin == *origin)
                        || after.get(*uri).is_some_and(|s| *s.origin == *origin);
                    prop_assert!(of_origin, "{} moved, not of {}", uri, origin);
                }
                let reported = moved
                    .iter()
                    .filter(|a| !matches!(a, Applied::Invisible | Applied::Ignored))
                    .count();
                prop_assert_eq!(reported, changed.len());
            }
        }
    }
}
