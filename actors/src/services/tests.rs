use super::*;
use proptest::prelude::*;

fn ts(physical_ms: u64, logical: u32) -> Timestamp {
    Timestamp::new(physical_ms, logical)
}

fn service(uri: &str, origin: &str, t: Timestamp) -> Service {
    let attrs = [("origin".to_owned(), origin.to_owned())].into();
    Service {
        uri: uri.to_owned(),
        attrs,
        origin: origin.to_owned(),
        ts: t,
    }
}

fn add(uri: &str, origin: &str, t: Timestamp) -> Change {
    Change::Add(service(uri, origin, t))
}

fn delete(uri: &str, origin: &str, t: Timestamp) -> Change {
    Change::Delete {
        uri: uri.to_owned(),
        origin: origin.to_owned(),
        ts: t,
    }
}

fn tomb(uri: &str, origin: &str, t: Timestamp) -> Tombstone {
    Tombstone {
        uri: uri.to_owned(),
        origin: origin.to_owned(),
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
}

#[test]
fn add_update_delete_lifecycle() {
    let mut table = ServicesTable::new();
    let s1 = service("tcp://a:1", "n1", ts(10, 0));
    assert_eq!(
        table.apply(Change::Add(s1.clone())),
        Applied::Added(s1.clone())
    );
    assert_eq!(table.get("tcp://a:1"), Some(&s1));
    assert_eq!(table.len(), 1);

    let s2 = service("tcp://a:1", "n2", ts(11, 0));
    assert_eq!(
        table.apply(Change::Add(s2.clone())),
        Applied::Updated {
            old: s1,
            new: s2.clone()
        }
    );
    assert_eq!(table.get("tcp://a:1"), Some(&s2));

    assert_eq!(
        table.apply(delete("tcp://a:1", "n1", ts(12, 0))),
        Applied::Deleted(s2)
    );
    assert!(table.is_empty());
    assert_eq!(table.tombstone_count(), 1);
    assert_eq!(
        table.tombstone("tcp://a:1"),
        Some(&tomb("tcp://a:1", "n1", ts(12, 0)))
    );
}

#[test]
fn delete_without_live_entry_is_tombstoned() {
    let mut table = ServicesTable::new();
    assert_eq!(
        table.apply(delete("u:1", "n1", ts(5, 0))),
        Applied::Tombstoned
    );
    assert_eq!(table.tombstone_count(), 1);
    // A newer delete replaces the tombstone.
    assert_eq!(
        table.apply(delete("u:1", "n2", ts(6, 0))),
        Applied::Tombstoned
    );
    assert_eq!(
        table.tombstones().collect::<Vec<_>>(),
        vec![&tomb("u:1", "n2", ts(6, 0))]
    );
    // An older one does not.
    assert_eq!(table.apply(delete("u:1", "n1", ts(5, 9))), Applied::Ignored);
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
    assert_eq!(table.apply(delete("u:1", "n9", ts(9, 0))), Applied::Ignored);
    assert_eq!(table.get("u:1"), Some(&s));
    assert_eq!(table.tombstone_count(), 0);
}

#[test]
fn add_older_than_tombstone_loses_and_newer_add_resurrects() {
    let mut table = ServicesTable::new();
    table.apply(delete("u:1", "n1", ts(10, 0)));
    assert_eq!(table.apply(add("u:1", "n2", ts(9, 99))), Applied::Ignored);
    assert!(table.is_empty());

    let s = service("u:1", "n2", ts(10, 1));
    assert_eq!(table.apply(Change::Add(s.clone())), Applied::Added(s));
    assert_eq!(
        table.tombstone_count(),
        0,
        "the newer add removes the tombstone"
    );
    assert_eq!(table.len(), 1);
}

#[test]
fn equal_timestamps_are_tie_broken_by_origin() {
    let t = ts(100, 7);
    let mut table = ServicesTable::new();
    let b = service("u:1", "node-b", t);
    table.apply(Change::Add(b.clone()));
    // "node-a" < "node-b": loses.
    assert_eq!(table.apply(add("u:1", "node-a", t)), Applied::Ignored);
    assert_eq!(table.apply(delete("u:1", "node-a", t)), Applied::Ignored);
    // "node-c" > "node-b": wins.
    let c = service("u:1", "node-c", t);
    assert_eq!(
        table.apply(Change::Add(c.clone())),
        Applied::Updated {
            old: b,
            new: c.clone()
        }
    );
    assert_eq!(table.apply(delete("u:1", "node-d", t)), Applied::Deleted(c));
    // Timestamp comes before origin: an older ts loses whatever the name.
    assert_eq!(table.apply(add("u:1", "zzz", ts(100, 6))), Applied::Ignored);
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
fn uris_are_independent() {
    let mut table = ServicesTable::new();
    table.apply(add("u:b", "n", ts(5, 0)));
    table.apply(add("u:a", "n", ts(1, 0)));
    table.apply(delete("u:c", "n", ts(9, 0)));
    assert_eq!(
        table.apply(add("u:c2", "n", ts(0, 1))),
        Applied::Added(service("u:c2", "n", ts(0, 1)))
    );
    let uris: Vec<_> = table.iter().map(|s| s.uri.as_str()).collect();
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
    let left: Vec<_> = table.tombstones().map(|t| t.uri.as_str()).collect();
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

        // And both hold, per URI, the change with the greatest version.
        let mut best: BTreeMap<&str, &Change> = BTreeMap::new();
        for c in &changes {
            let e = best.entry(c.uri()).or_insert(c);
            if c.version() > e.version() {
                *e = c;
            }
        }
        let live: Vec<Service> = best.values().filter_map(|c| match c {
            Change::Add(s) => Some(s.clone()),
            Change::Delete { .. } => None,
        }).collect();
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
            let live_before = table.get(&uri).cloned();
            let before = snapshot(&table);
            let outcome = table.apply(c.clone());
            match outcome {
                Applied::Ignored => prop_assert_eq!(snapshot(&table), before),
                Applied::Added(s) => {
                    prop_assert!(live_before.is_none());
                    prop_assert_eq!(Change::Add(s.clone()), c);
                    prop_assert_eq!(table.get(&uri), Some(&s));
                    prop_assert!(table.tombstone(&uri).is_none());
                }
                Applied::Updated { old, new } => {
                    prop_assert_eq!(Some(old), live_before);
                    prop_assert_eq!(table.get(&uri), Some(&new));
                }
                Applied::Deleted(old) => {
                    prop_assert_eq!(Some(old), live_before);
                    prop_assert!(table.get(&uri).is_none());
                    prop_assert!(table.tombstone(&uri).is_some());
                }
                Applied::Tombstoned => {
                    prop_assert!(live_before.is_none());
                    prop_assert!(table.tombstone(&uri).is_some());
                }
            }
            // Never both a live entry and a tombstone for one URI.
            prop_assert!(table.get(&uri).is_none() || table.tombstone(&uri).is_none());
        }
    }
}
