//! Tests of the direct path: when it opens and closes, and that events
//! written directly never overtake those sent through the actor, with the
//! supervisor and the actor on two threads.

use std::{collections::BTreeMap, sync::mpsc as std_mpsc, thread};

use catalogue_proto::catalogue::EventKind;

use super::*;
use crate::{
    hlc::Timestamp,
    routed::{Event, SharedEvent},
    services::Service,
};

/// Live change number `n` (its revision).
fn change(n: u64) -> Arc<SharedEvent> {
    SharedEvent::new(Event {
        kind: EventKind::Added,
        service: Arc::new(Service {
            uri: format!("tcp://s/{n}").into(),
            attrs: BTreeMap::new(),
            origin: "n".into(),
            ts: Timestamp {
                physical_ms: 1,
                logical: 0,
            },
        }),
        revision: n,
    })
}

/// The revision of an outbound event frame.
fn revision(frame: Outbound) -> u64 {
    match frame {
        Outbound::Event { event, .. } => event.event().revision,
        other => panic!("not a single event: {other:?}"),
    }
}

#[test]
fn a_new_path_is_closed_and_opens_only_once_its_messages_are_handled() {
    let (tx, mut rx) = mpsc::channel(4);
    let path = DirectPath::new(7, tx, false);
    assert_eq!(path.deliver(&change(1)), Delivered::ViaActor);
    assert_eq!(path.deliver(&change(2)), Delivered::ViaActor);
    assert!(rx.try_recv().is_err(), "nothing written while closed");
    assert!(!path.try_open(), "two messages are on their way");
    path.handled();
    assert!(!path.try_open(), "one message is on its way");
    path.handled();
    assert!(path.try_open());
    assert_eq!(path.deliver(&change(3)), Delivered::Directly);
    match rx.try_recv() {
        Ok(Outbound::Event {
            subscription_id,
            event,
        }) => {
            assert_eq!(subscription_id, 7);
            assert_eq!(event.event().revision, 3);
        }
        other => panic!("expected event 3, got {other:?}"),
    }
}

#[test]
fn a_full_channel_closes_the_path_until_the_actor_reopens_it() {
    let (tx, mut rx) = mpsc::channel(1);
    let path = DirectPath::new(1, tx, false);
    assert!(path.try_open());
    assert_eq!(path.deliver(&change(1)), Delivered::Directly);
    assert_eq!(path.deliver(&change(2)), Delivered::ViaActor, "full");
    assert!(!path.is_open());
    // Room again, but the path stays closed: event 2 is on its way.
    assert_eq!(revision(rx.try_recv().expect("event 1")), 1);
    assert_eq!(path.deliver(&change(3)), Delivered::ViaActor);
    assert!(!path.try_open());
    path.handled();
    path.handled();
    assert!(path.try_open());
}

#[test]
fn an_ended_path_never_opens() {
    let (tx, _rx) = mpsc::channel(4);
    let path = DirectPath::new(1, tx, false);
    assert!(path.try_open());
    path.end();
    assert!(!path.is_open());
    assert_eq!(path.deliver(&change(1)), Delivered::ViaActor);
    path.handled();
    assert!(!path.try_open());
}

#[test]
fn a_snapshot_or_other_message_through_the_actor_closes_the_path() {
    let (tx, _rx) = mpsc::channel(4);
    let path = DirectPath::new(1, tx, false);
    assert!(path.try_open());
    path.via_actor();
    assert!(!path.is_open());
    assert_eq!(path.deliver(&change(1)), Delivered::ViaActor);
}

/// The supervisor on one thread routes changes 0..N; the actor on another
/// takes what was sent through it, writes it to the same channel and
/// reopens the path when its mailbox is empty. The client must see
/// every change once, in order, whichever way each went.
#[test]
fn direct_writes_never_overtake_messages_through_the_actor() {
    const N: u64 = 20_000;
    let (tx, mut rx) = mpsc::channel(8);
    let path = DirectPath::new(1, tx.clone(), false);
    let (mailbox, inbox) = std_mpsc::channel::<Arc<SharedEvent>>();
    let supervisor = {
        let path = path.clone();
        thread::spawn(move || {
            let mut direct = 0u64;
            for n in 0..N {
                // Now and then let the actor catch up, so that the path
                // opens and closes many times during the run.
                if n % 64 == 0 {
                    for _ in 0..10_000 {
                        if path.is_open() {
                            break;
                        }
                        thread::yield_now();
                    }
                }
                let event = change(n);
                if path.deliver(&event) == Delivered::Directly {
                    direct += 1;
                } else {
                    mailbox.send(event).expect("the actor is running");
                }
            }
            direct
        })
    };
    let actor = {
        let path = path.clone();
        thread::spawn(move || {
            while let Ok(event) = inbox.recv() {
                path.handled();
                tx.blocking_send(Outbound::Event {
                    subscription_id: 1,
                    event,
                })
                .expect("the client is reading");
                path.try_open();
            }
        })
    };
    let mut next = 0;
    while next < N {
        let got = revision(rx.blocking_recv().expect("a frame"));
        assert_eq!(got, next, "frames out of order");
        next += 1;
    }
    let direct = supervisor.join().expect("supervisor thread");
    actor.join().expect("actor thread");
    // Both ways were taken (the channel is small and the client slow at
    // times), so the order above was tested across them.
    assert!(direct > 0 && direct < N, "{direct} of {N} written directly");
}
