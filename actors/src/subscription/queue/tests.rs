//! Tests of the subscription queue state machine.

use std::collections::BTreeMap;

use super::*;
use crate::hlc::Timestamp;

/// Where the node stands in these tests.
const AT: Position = Position {
    epoch: 9,
    revision: 40,
};

fn service(uri: &str) -> Arc<Service> {
    Arc::new(Service {
        uri: uri.into(),
        attrs: BTreeMap::from([("k".to_string(), "v".to_string())]),
        origin: "n".into(),
        ts: Timestamp {
            physical_ms: 1,
            logical: 0,
        },
    })
}

fn added(uri: &str) -> Event {
    Event {
        kind: EventKind::Added,
        service: service(uri),
        revision: 0,
    }
}

fn drain(q: &mut SubscriptionQueue) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(body) = q.next_body() {
        out.push(match body {
            Body::ServiceEvent(e) => format!(
                "{}{}{}",
                if e.snapshot { "snap " } else { "" },
                if e.kind() == EventKind::Added {
                    "+"
                } else {
                    "-"
                },
                e.uri
            ),
            Body::SnapshotEnd(e) => format!("end {}", e.count),
            Body::Overflow(o) => format!("overflow {} {}", o.dropped, o.resnapshot),
            other => panic!("unexpected {other:?}"),
        });
    }
    out
}

#[test]
fn events_before_the_snapshot_are_dropped_then_snapshot_then_live_events() {
    let mut q = SubscriptionQueue::new(7, 4, OverflowPolicy::Resnapshot);
    assert_eq!(q.on_event(added("a:1")), Outcome::Dropped);
    q.on_snapshot(vec![service("a:1"), service("a:2")], AT, false);
    assert_eq!(q.on_event(added("a:3")), Outcome::Queued);
    assert_eq!(drain(&mut q), ["snap +a:1", "snap +a:2", "end 2", "+a:3"]);
}

#[test]
fn snapshot_entries_do_not_count_against_the_limit() {
    let mut q = SubscriptionQueue::new(1, 2, OverflowPolicy::Resnapshot);
    q.on_snapshot(
        (0..100).map(|i| service(&format!("s:{i}"))).collect(),
        AT,
        false,
    );
    assert_eq!(q.on_event(added("x:1")), Outcome::Queued);
    assert_eq!(q.on_event(added("x:2")), Outcome::Queued);
    assert_eq!(q.pending_events(), 2);
    assert_eq!(q.len(), 103);
}

#[test]
fn overflow_replaces_the_queue_with_a_notice_and_resnapshots_after_it_drains() {
    let mut q = SubscriptionQueue::new(1, 2, OverflowPolicy::Resnapshot);
    q.on_snapshot(vec![service("s:0")], AT, false);
    q.on_event(added("x:1"));
    q.on_event(added("x:2"));
    assert_eq!(q.on_event(added("x:3")), Outcome::Overflowed { dropped: 3 });
    assert_eq!(q.state(), State::NeedSnapshot);
    // Not drained yet: no snapshot is asked for.
    assert!(!q.wants_snapshot());
    assert_eq!(q.on_event(added("x:4")), Outcome::Dropped);
    assert_eq!(q.len(), 1, "only the notice is held");
    assert_eq!(drain(&mut q), ["overflow 3 true"]);
    assert!(q.wants_snapshot());
    q.snapshot_requested();
    assert_eq!(
        q.on_event(added("x:5")),
        Outcome::Dropped,
        "covered by the snapshot"
    );
    q.on_snapshot(vec![service("x:5")], AT, false);
    q.on_event(added("x:6"));
    assert_eq!(drain(&mut q), ["snap +x:5", "end 1", "+x:6"]);
}

#[test]
fn a_never_drained_queue_stays_small() {
    let mut q = SubscriptionQueue::new(1, 8, OverflowPolicy::Resnapshot);
    q.on_snapshot(vec![], AT, false);
    for i in 0..100_000 {
        q.on_event(added(&format!("x:{i}")));
        assert!(q.len() <= 9, "len {} at {i}", q.len());
    }
}

#[test]
fn drop_policy_cancels_after_the_notice() {
    let mut q = SubscriptionQueue::new(3, 1, OverflowPolicy::Drop);
    q.on_snapshot(vec![], AT, false);
    q.on_event(added("x:1"));
    assert_eq!(q.on_event(added("x:2")), Outcome::Overflowed { dropped: 2 });
    assert!(!q.finished());
    // The unsent snapshot end went with the overflow.
    assert_eq!(drain(&mut q), ["overflow 2 false"]);
    assert!(q.finished());
    assert!(!q.wants_snapshot());
}

#[test]
fn deleted_events_carry_no_attributes() {
    let mut q = SubscriptionQueue::new(1, 4, OverflowPolicy::Resnapshot);
    q.on_snapshot(vec![], AT, false);
    q.next_body();
    q.on_event(Event {
        kind: EventKind::Deleted,
        service: service("x:1"),
        revision: 41,
    });
    match q.next_body() {
        Some(Body::ServiceEvent(e)) => {
            assert_eq!(e.kind(), EventKind::Deleted);
            assert!(e.attrs.is_empty());
            assert!(!e.snapshot);
            assert_eq!(e.subscription_id, 1);
        }
        other => panic!("expected an event, got {other:?}"),
    }
}

#[test]
fn a_rebase_replaces_queued_events_with_a_fresh_snapshot() {
    let mut q = SubscriptionQueue::new(1, 8, OverflowPolicy::Resnapshot);
    q.on_snapshot(vec![], AT, false);
    q.on_event(added("x:1"));
    q.on_rebase(vec![service("x:1"), service("x:2")], AT);
    // The unsent end of the first snapshot goes too: one snapshot remains.
    assert_eq!(drain(&mut q), ["snap +x:1", "snap +x:2", "end 2"]);
    // Not while a snapshot is awaited.
    let mut q = SubscriptionQueue::new(1, 8, OverflowPolicy::Resnapshot);
    q.on_rebase(vec![service("x:1")], AT);
    assert!(q.is_empty());
}

fn at_revision(uri: &str, kind: EventKind, revision: u64) -> Event {
    Event {
        kind,
        service: service(uri),
        revision,
    }
}

/// Each frame as (what, revision); SnapshotEnd as its marks.
fn drain_marked(q: &mut SubscriptionQueue) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(body) = q.next_body() {
        out.push(match body {
            Body::ServiceEvent(e) => format!(
                "{}{}{}@{}",
                if e.snapshot { "snap " } else { "" },
                if e.kind() == EventKind::Added {
                    "+"
                } else {
                    "-"
                },
                e.uri,
                e.revision
            ),
            Body::SnapshotEnd(e) => {
                let p = e.position.expect("a position");
                format!(
                    "end {} at {}/{}{}{}",
                    e.count,
                    p.epoch,
                    p.revision,
                    if e.resumed { " resumed" } else { "" },
                    if e.reset { " reset" } else { "" }
                )
            }
            Body::Overflow(o) => format!("overflow {} {}", o.dropped, o.resnapshot),
            other => panic!("unexpected {other:?}"),
        });
    }
    out
}

#[test]
fn snapshot_entries_carry_the_snapshot_revision_and_events_their_own() {
    let mut q = SubscriptionQueue::new(1, 4, OverflowPolicy::Resnapshot);
    q.on_snapshot(vec![service("a:1")], AT, false);
    q.on_event(at_revision("a:2", EventKind::Added, 41));
    q.on_event(at_revision("a:1", EventKind::Deleted, 42));
    assert_eq!(
        drain_marked(&mut q),
        ["snap +a:1@40", "end 1 at 9/40", "+a:2@41", "-a:1@42"]
    );
}

#[test]
fn a_replay_sends_the_changes_then_an_end_marked_resumed_and_no_snapshot() {
    let mut q = SubscriptionQueue::new(1, 4, OverflowPolicy::Resnapshot);
    q.on_replay(
        vec![
            at_revision("a:1", EventKind::Deleted, 38),
            at_revision("a:2", EventKind::Added, 40),
        ],
        AT,
    );
    assert_eq!(q.state(), State::Live);
    // A snapshot arriving late is ignored: the replay answered.
    q.on_snapshot(vec![service("zz:1")], AT, false);
    q.on_event(at_revision("a:3", EventKind::Added, 41));
    assert_eq!(
        drain_marked(&mut q),
        ["-a:1@38", "+a:2@40", "end 2 at 9/40 resumed", "+a:3@41"]
    );
}

#[test]
fn replayed_changes_do_not_count_against_the_limit() {
    let mut q = SubscriptionQueue::new(1, 2, OverflowPolicy::Resnapshot);
    let replay = (0..50)
        .map(|i| at_revision(&format!("r:{i}"), EventKind::Added, i))
        .collect();
    q.on_replay(replay, AT);
    assert_eq!(q.on_event(added("x:1")), Outcome::Queued);
    assert_eq!(q.on_event(added("x:2")), Outcome::Queued);
    assert_eq!(q.pending_events(), 2);
}

#[test]
fn a_reset_snapshot_is_marked() {
    let mut q = SubscriptionQueue::new(1, 4, OverflowPolicy::Resnapshot);
    q.on_snapshot(vec![service("a:1")], AT, true);
    assert_eq!(
        drain_marked(&mut q),
        ["snap +a:1@40", "end 1 at 9/40 reset"]
    );
}

#[test]
fn a_replay_is_ignored_unless_a_snapshot_is_awaited() {
    let mut q = SubscriptionQueue::new(1, 4, OverflowPolicy::Resnapshot);
    q.on_snapshot(vec![], AT, false);
    q.on_replay(vec![at_revision("a:1", EventKind::Added, 41)], AT);
    assert_eq!(drain_marked(&mut q), ["end 0 at 9/40"]);
}

#[test]
fn a_drained_queue_gives_back_the_room_a_snapshot_took() {
    let mut q = SubscriptionQueue::new(1, 2, OverflowPolicy::Resnapshot);
    q.on_snapshot(
        (0..1000).map(|i| service(&format!("s:{i}"))).collect(),
        AT,
        false,
    );
    assert!(q.items.capacity() >= 1001);
    assert_eq!(drain(&mut q).len(), 1001);
    assert!(
        q.items.capacity() <= KEPT_CAPACITY,
        "{}",
        q.items.capacity()
    );
    // Room for a few events stays: live events do not reallocate.
    assert_eq!(q.on_event(added("x:1")), Outcome::Queued);
    assert!(q.items.capacity() > 0);
}
