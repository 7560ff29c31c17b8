//! Tests of the watch state machine: what a program is told across
//! snapshots, replays, resets and overflows.

use super::*;
use crate::SnapshotMark;

fn service(uri: &str, version: &str) -> Service {
    Service {
        uri: uri.into(),
        attrs: BTreeMap::from([("v".to_string(), version.to_string())]),
        origin: "n1".into(),
        ts: None,
    }
}

fn snap(uri: &str, version: &str, revision: u64) -> Marked {
    Marked {
        event: SubscriptionEvent::Added {
            service: service(uri, version),
            snapshot: true,
        },
        revision,
        end: None,
    }
}

fn added(uri: &str, version: &str, revision: u64) -> Marked {
    Marked {
        event: SubscriptionEvent::Added {
            service: service(uri, version),
            snapshot: false,
        },
        revision,
        end: None,
    }
}

fn deleted(uri: &str, revision: u64) -> Marked {
    Marked {
        event: SubscriptionEvent::Deleted {
            service: service(uri, ""),
        },
        revision,
        end: None,
    }
}

fn end(epoch: u64, revision: u64, resumed: bool, reset: bool) -> Marked {
    Marked {
        event: SubscriptionEvent::SnapshotEnd { count: 0 },
        revision: 0,
        end: Some(SnapshotMark {
            position: Some(Position { epoch, revision }),
            resumed,
            reset,
        }),
    }
}

/// The events as short strings: "+uri@rev", "~uri@rev", "-uri@rev",
/// "synced kind epoch/rev count", "overflow n".
fn feed(state: &mut WatchState, events: Vec<Marked>) -> Vec<String> {
    events
        .into_iter()
        .flat_map(|m| state.apply(m))
        .map(|e| match e {
            WatchEvent::Added { service, revision } => format!("+{}@{revision}", service.uri),
            WatchEvent::Updated { new, revision, .. } => format!("~{}@{revision}", new.uri),
            WatchEvent::Deleted { service, revision } => format!("-{}@{revision}", service.uri),
            WatchEvent::Synced {
                kind,
                position,
                count,
            } => {
                let p = position.expect("a position");
                format!("synced {kind:?} {}/{} {count}", p.epoch, p.revision)
            }
            WatchEvent::Overflow { dropped } => format!("overflow {dropped}"),
            WatchEvent::Reset { position } => {
                let p = position.expect("a position");
                format!("reset {}/{}", p.epoch, p.revision)
            }
            WatchEvent::Disconnected { .. } => "disconnected".into(),
        })
        .collect()
}

fn uris(state: &WatchState) -> Vec<&str> {
    state.current().keys().map(String::as_str).collect()
}

#[test]
fn the_first_snapshot_is_handed_out_as_adds_once_complete() {
    let mut s = WatchState::new();
    assert_eq!(
        feed(&mut s, vec![snap("a", "1", 5), snap("b", "1", 5)]),
        Vec::<String>::new()
    );
    assert_eq!(
        feed(&mut s, vec![end(9, 5, false, false)]),
        ["+a@5", "+b@5", "synced Snapshot 9/5 2"]
    );
    assert_eq!(
        s.position(),
        Some(Position {
            epoch: 9,
            revision: 5
        })
    );
}

#[test]
fn live_changes_move_the_position_and_updates_are_told_apart() {
    let mut s = WatchState::new();
    feed(&mut s, vec![snap("a", "1", 5), end(9, 5, false, false)]);
    assert_eq!(
        feed(
            &mut s,
            vec![added("a", "2", 6), added("b", "1", 7), deleted("a", 8)]
        ),
        ["~a@6", "+b@7", "-a@8"]
    );
    assert_eq!(
        s.position(),
        Some(Position {
            epoch: 9,
            revision: 8
        })
    );
    assert_eq!(uris(&s), ["b"]);
}

#[test]
fn a_repeated_add_is_not_handed_out_twice_nor_an_unknown_delete() {
    let mut s = WatchState::new();
    feed(&mut s, vec![snap("a", "1", 5), end(9, 5, false, false)]);
    assert_eq!(
        feed(&mut s, vec![added("a", "1", 6), deleted("zz", 7)]),
        Vec::<String>::new()
    );
}

#[test]
fn a_reset_hands_out_exactly_the_differences_deletes_first() {
    let mut s = WatchState::new();
    feed(
        &mut s,
        vec![
            snap("a", "1", 5),
            snap("b", "1", 5),
            snap("c", "1", 5),
            end(9, 5, false, false),
        ],
    );
    // Reconnected to a restarted node: another epoch, a fresh snapshot.
    s.restart();
    assert_eq!(
        feed(
            &mut s,
            vec![
                snap("b", "1", 2),
                snap("c", "2", 2),
                snap("d", "1", 2),
                end(11, 2, false, true),
            ]
        ),
        ["reset 11/2", "-a@2", "~c@2", "+d@2", "synced Reset 11/2 3"]
    );
    assert_eq!(uris(&s), ["b", "c", "d"]);
    assert_eq!(
        s.position(),
        Some(Position {
            epoch: 11,
            revision: 2
        })
    );
}

#[test]
fn a_reset_to_an_empty_snapshot_deletes_everything() {
    let mut s = WatchState::new();
    feed(&mut s, vec![snap("a", "1", 5), end(9, 5, false, false)]);
    s.restart();
    assert_eq!(
        feed(&mut s, vec![end(11, 0, false, true)]),
        ["reset 11/0", "-a@0", "synced Reset 11/0 0"]
    );
}

#[test]
fn a_replay_applies_the_missed_changes_without_a_snapshot() {
    let mut s = WatchState::new();
    feed(
        &mut s,
        vec![
            snap("a", "1", 5),
            snap("b", "1", 5),
            end(9, 5, false, false),
        ],
    );
    s.restart();
    assert_eq!(
        feed(
            &mut s,
            vec![deleted("a", 6), added("c", "1", 8), end(9, 8, true, false)]
        ),
        ["-a@6", "+c@8", "synced Resumed 9/8 2"]
    );
    assert_eq!(uris(&s), ["b", "c"]);
}

#[test]
fn a_snapshot_cut_short_by_a_lost_connection_is_forgotten() {
    let mut s = WatchState::new();
    feed(&mut s, vec![snap("a", "1", 5), end(9, 5, false, false)]);
    // A fresh snapshot starts, then the connection is lost.
    feed(&mut s, vec![snap("zz", "1", 7)]);
    s.restart();
    assert_eq!(
        feed(&mut s, vec![end(9, 7, true, false)]),
        ["synced Resumed 9/7 1"]
    );
    assert_eq!(uris(&s), ["a"]);
}

#[test]
fn an_overflow_keeps_the_position_and_the_fresh_snapshot_is_compared() {
    let mut s = WatchState::new();
    feed(
        &mut s,
        vec![
            snap("a", "1", 5),
            snap("b", "1", 5),
            end(9, 5, false, false),
        ],
    );
    feed(&mut s, vec![added("c", "1", 6)]);
    let overflow = Marked {
        event: SubscriptionEvent::Overflow {
            dropped: 3,
            resnapshot: true,
        },
        revision: 0,
        end: None,
    };
    assert_eq!(feed(&mut s, vec![overflow]), ["overflow 3"]);
    assert_eq!(
        s.position(),
        Some(Position {
            epoch: 9,
            revision: 6
        })
    );
    assert_eq!(
        feed(
            &mut s,
            vec![
                snap("b", "1", 10),
                snap("c", "1", 10),
                end(9, 10, false, false)
            ]
        ),
        ["-a@10", "synced Snapshot 9/10 2"]
    );
}
