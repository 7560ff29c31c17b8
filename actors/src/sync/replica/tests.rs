//! Tests of the exchange rules: what a plan contains, and what applying
//! a batch does.

use std::collections::BTreeMap;

use super::*;
use crate::services::Service;

fn ts(ms: u64) -> Timestamp {
    Timestamp {
        physical_ms: ms,
        logical: 0,
    }
}

fn add(r: &mut Replica, uri: &str, origin: &str, ms: u64) {
    let e = SyncEntry::Service(Change::Add(Service {
        uri: uri.into(),
        attrs: BTreeMap::new(),
        origin: origin.into(),
        ts: ts(ms),
    }));
    r.apply_entry(&e, &mut BatchOutcome::default());
}

fn del(r: &mut Replica, uri: &str, origin: &str, ms: u64) {
    let e = SyncEntry::Service(Change::Delete {
        uri: uri.into(),
        origin: origin.into(),
        ts: ts(ms),
    });
    r.apply_entry(&e, &mut BatchOutcome::default());
}

fn sync(from: &Replica, to: &mut Replica) -> (usize, BatchOutcome) {
    let batch = from.plan(to.node(), &to.digest());
    let sent = batch.entries.len();
    let outcome = to.apply_batch(&batch, from.node());
    (sent, outcome)
}

fn live(r: &Replica) -> Vec<String> {
    r.services.iter().map(|s| s.uri.to_string()).collect()
}

#[test]
fn a_new_node_gets_everything_and_a_synced_one_nothing() {
    let mut a = Replica::new("a");
    for i in 0..10 {
        add(&mut a, &format!("tcp://s:{i}"), "a", i + 1);
    }
    del(&mut a, "tcp://s:0", "a", 20);
    let mut b = Replica::new("b");
    let (sent, outcome) = sync(&a, &mut b);
    assert_eq!(sent, 10, "9 live entries and 1 tombstone");
    assert_eq!(outcome.forward.len(), 10);
    assert_eq!(a.digest().services, b.digest().services);
    let (sent, _) = sync(&a, &mut b);
    assert_eq!(sent, 0, "digests equal: nothing to send");
    let (sent, _) = sync(&b, &mut a);
    assert_eq!(sent, 0);
}

#[test]
fn only_what_the_peer_lacks_is_sent() {
    let mut a = Replica::new("a");
    let mut b = Replica::new("b");
    for i in 0..5 {
        add(&mut a, &format!("tcp://s:{i}"), "c", i + 1);
        add(&mut b, &format!("tcp://s:{i}"), "c", i + 1);
    }
    add(&mut a, "tcp://s:9", "c", 9);
    let (sent, _) = sync(&a, &mut b);
    assert_eq!(sent, 1);
    // A gap in the peer's prefix makes us send the whole origin.
    let mut c = Replica::new("x");
    add(&mut c, "tcp://s:0", "c", 1);
    add(&mut c, "tcp://s:9", "c", 9);
    let (sent, _) = sync(&a, &mut c);
    assert_eq!(sent, 6);
    assert_eq!(live(&c).len(), 6);
}

#[test]
fn a_restarted_nodes_old_entries_die_by_its_birth() {
    let mut old_a = Replica::new("a");
    add(&mut old_a, "tcp://old:1", "a", 5);
    let mut b = Replica::new("b");
    let mut c = Replica::new("c");
    sync(&old_a, &mut b);
    sync(&old_a, &mut c);
    // A restarts (born at 40) with nothing, then registers one new service.
    let mut a = Replica::born_at("a", ts(40));
    add(&mut a, "tcp://new:1", "a", 50);
    // Its initial batch carries its birth: B retires the old entry.
    let batch = a.plan(b.node(), &b.digest());
    assert!(batch.replace_origins.is_empty());
    assert!(
        batch
            .marks
            .iter()
            .any(|m| m.origin == "a" && m.born == ts(40))
    );
    let outcome = b.apply_batch(&batch, "a");
    assert_eq!(live(&b), ["tcp://new:1"]);
    assert_eq!(outcome.born.len(), 1, "the birth is news, to pass on");
    // B sends A nothing of A's (A holds all of this life).
    let batch = b.plan(a.node(), &a.digest());
    assert!(batch.entries.iter().all(|e| e.origin() != "a"), "{batch:?}");
    // The birth alone, passed on, retires the old entry at C too; a late
    // copy of it is dropped.
    let news = Batch {
        marks: outcome.born,
        ..Batch::default()
    };
    c.apply_batch(&news, "b");
    assert!(live(&c).is_empty());
    let late = old_a.plan(c.node(), &Replica::new("c").digest());
    let outcome = c.apply_batch(&late, "x");
    assert_eq!(outcome.dead, 1);
    assert!(live(&c).is_empty());
}

#[test]
fn an_old_entry_newer_than_the_restarted_origin_holds_goes_to_it() {
    // A previous life's entry stamped after the new life's newest change
    // (the clock went back across the restart): B sends it to A, which
    // answers with a fresh delete.
    let mut old_a = Replica::new("a");
    add(&mut old_a, "tcp://old:1", "a", 90);
    let mut b = Replica::new("b");
    sync(&old_a, &mut b);
    let mut a = Replica::born_at("a", ts(40));
    add(&mut a, "tcp://new:1", "a", 50);
    let outcome = a.apply_batch(&b.plan(a.node(), &a.digest()), "b");
    assert_eq!(outcome.stale_own, ["tcp://old:1"]);
    assert_eq!(live(&a), ["tcp://new:1"]);
    del(&mut a, "tcp://old:1", "a", 95);
    sync(&a, &mut b);
    assert_eq!(live(&b), ["tcp://new:1"]);
}

#[test]
fn a_peer_away_longer_than_the_ttl_gets_a_replacement_not_a_merge() {
    // Both knew x:1 from origin c; b deleted it, and later purged the tombstone.
    let mut a = Replica::new("a");
    let mut b = Replica::new("b");
    add(&mut a, "tcp://x:1", "c", 10);
    add(&mut b, "tcp://x:1", "c", 10);
    add(&mut b, "tcp://y:1", "c", 20);
    del(&mut b, "tcp://x:1", "c", 30);
    b.services.purge_tombstones(ts(100));
    assert!(b.services.tombstone("tcp://x:1", "c").is_none());

    // a comes back: b sees a's knowledge of c is older than its horizon.
    let batch = b.plan(a.node(), &a.digest());
    assert_eq!(batch.replace_origins, ["c"]);
    a.apply_batch(&batch, "b");
    assert_eq!(live(&a), ["tcp://y:1"], "x:1 is gone, y:1 arrived");

    // The stale side sends nothing of that origin: nothing comes back.
    let mut stale = Replica::new("s");
    add(&mut stale, "tcp://x:1", "c", 10);
    let batch = stale.plan(b.node(), &b.digest());
    assert!(batch.entries.is_empty(), "{batch:?}");
    b.apply_batch(&batch, "s");
    assert_eq!(live(&b), ["tcp://y:1"]);
}

#[test]
fn an_origin_speaks_for_itself_even_about_old_entries() {
    let mut b = Replica::new("b");
    add(&mut b, "tcp://z:1", "b", 200);
    b.services.purge_tombstones(ts(100));
    let mut a = Replica::new("a");
    add(&mut a, "tcp://a:1", "a", 10);
    let batch = a.plan(b.node(), &b.digest());
    let outcome = b.apply_batch(&batch, "peer");
    assert_eq!(outcome.refused, 0, "a's own entry is accepted though old");
    assert!(b.services.get("tcp://a:1").is_some());
}

#[test]
fn an_add_planned_before_the_receiver_purged_its_delete_is_refused() {
    // c registered x then deleted it; a holds the delete, b only the add.
    let mut a = Replica::new("a");
    let mut b = Replica::new("b");
    add(&mut a, "tcp://x:1", "c", 10);
    del(&mut a, "tcp://x:1", "c", 20);
    add(&mut b, "tcp://x:1", "c", 10);
    // b plans while a still holds the tombstone; a purges before the
    // batch arrives (with a 60-minute TTL, a tombstone crossing the TTL
    // while a batch is in flight).
    let batch = b.plan(a.node(), &a.digest());
    assert!(batch.entries.iter().any(|e| !e.is_delete()), "{batch:?}");
    a.services.purge_tombstones(ts(100));
    let outcome = a.apply_batch(&batch, "b");
    assert_eq!(outcome.refused, 1);
    assert!(live(&a).is_empty(), "the forgotten delete still holds");
    // a answers with its view of c as a replacement as of its horizon: b
    // retires the stale add.
    let horizon = outcome.refused_origins["c"];
    assert_eq!(horizon, ts(20).successor());
    let reply = a.replacement(&["c".to_string()], &[horizon]);
    let outcome = b.apply_batch(&reply, "a");
    assert!(outcome.replaced);
    assert!(live(&b).is_empty());
    // The origin itself is never refused: it speaks for its entries.
    let mut c = Replica::new("c");
    add(&mut c, "tcp://x:1", "c", 10);
    let outcome = a.apply_batch(&c.plan(a.node(), &a.digest()), "c");
    assert_eq!(outcome.refused, 0);
    assert_eq!(live(&a), ["tcp://x:1"]);
}
