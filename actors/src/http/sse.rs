//! How a subscription's frames become Server-Sent Events (docs/HTTP.md,
//! "Watching"), as plain code: [`SseEncoder`] turns each frame body the
//! subscription actor sends into the text of zero or more events, and says
//! when the stream must end.
//!
//! Events: `added` (a service appeared or changed; `"snapshot": true` for
//! the entries of a snapshot), `deleted`, `snapshot_end` (the snapshot or
//! replay is complete), `reset` (a fresh snapshot follows that replaces
//! everything known so far), `overflow` (events were lost; a fresh
//! snapshot follows, or the stream ends).
//!
//! Event ids are positions, `EPOCH:REVISION` (decimal): every live change
//! and every `snapshot_end` carries one, so a client that reconnects with
//! `Last-Event-ID` resumes exactly after the last one it read. Snapshot
//! entries carry none: a stream cut in the middle of a snapshot resumes
//! from the position before it, and the node sends what is needed.

use std::{collections::BTreeMap, io::Write as _};

use catalogue_proto::{
    Body,
    catalogue::{EventKind, ServiceEvent},
};
use serde::Serialize;

use super::json::Rfc3339Ms;
use crate::subscription::history::Position;

/// Parses an event id (`EPOCH:REVISION`) as a resume position.
pub fn parse_position(id: &str) -> Option<Position> {
    let (epoch, revision) = id.trim().split_once(':')?;
    Some(Position {
        epoch: epoch.parse().ok()?,
        revision: revision.parse().ok()?,
    })
}

/// Appends one event to `out`: written in place, no intermediate JSON
/// value or string (a watch encodes every change it carries).
fn event(out: &mut Vec<u8>, kind: &str, id: Option<Position>, data: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
    if let Some(p) = id {
        // Writing to a Vec cannot fail.
        let _ = writeln!(out, "id: {}:{}", p.epoch, p.revision);
    }
    out.extend_from_slice(b"data: ");
    // A JSON text of strings, numbers and maps of strings: it serializes
    // (and escapes its newlines), so one `data:` line holds it.
    if serde_json::to_writer(&mut *out, data).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"\n\n");
}

/// The data of an `added` or `deleted` event (fields in the order
/// docs/HTTP.md shows them).
#[derive(Serialize)]
struct ServiceData<'a> {
    uri: &'a str,
    attrs: &'a BTreeMap<String, String>,
    origin: &'a str,
    at_ms: u64,
    at: Rfc3339Ms,
    snapshot: bool,
    revision: u64,
}

fn service_data(e: &ServiceEvent) -> ServiceData<'_> {
    let ms = e.ts.as_ref().map_or(0, |t| t.physical_ms);
    ServiceData {
        uri: &e.uri,
        attrs: &e.attrs,
        origin: &e.origin,
        at_ms: ms,
        at: Rfc3339Ms(ms),
        snapshot: e.snapshot,
        revision: e.revision,
    }
}

/// The data of a `snapshot_end` event.
#[derive(Serialize)]
struct SnapshotEndData {
    count: u64,
    resumed: bool,
    reset: bool,
    epoch: Option<u64>,
    revision: Option<u64>,
}

/// The data of an `overflow` event.
#[derive(Serialize)]
struct OverflowData {
    dropped: u64,
    resnapshot: bool,
}

/// The data of a `reset` event: `{}`.
#[derive(Serialize)]
struct Empty {}

/// One stream's encoder.
#[derive(Debug)]
pub struct SseEncoder {
    /// The epoch events are numbered in (from the resume position, then
    /// from each `SnapshotEnd`).
    epoch: Option<u64>,
    /// A snapshot is being sent.
    in_snapshot: bool,
    /// The next snapshot replaces what the client knew (it is not the
    /// first snapshot of a stream that asked for no resume).
    next_snapshot_resets: bool,
}

impl SseEncoder {
    /// An encoder for a stream that resumes from `resume`, or starts with
    /// a snapshot.
    pub fn new(resume: Option<Position>) -> Self {
        SseEncoder {
            epoch: resume.map(|p| p.epoch),
            in_snapshot: false,
            next_snapshot_resets: resume.is_some(),
        }
    }

    /// Starts a snapshot if none is under way; a `reset` event first when
    /// it replaces what the client knew.
    fn begin_snapshot(&mut self, out: &mut Vec<u8>) {
        if !self.in_snapshot {
            self.in_snapshot = true;
            if self.next_snapshot_resets {
                event(out, "reset", None, &Empty {});
            }
        }
    }

    /// Appends the events of one frame body of the subscription to `out`
    /// (possibly none); true when the subscription has ended and the
    /// stream must close after them.
    pub fn encode(&mut self, body: &Body, out: &mut Vec<u8>) -> bool {
        match body {
            Body::ServiceEvent(e) if e.snapshot => {
                self.begin_snapshot(out);
                event(out, "added", None, &service_data(e));
            }
            Body::ServiceEvent(e) => {
                let kind = if e.kind() == EventKind::Deleted {
                    "deleted"
                } else {
                    "added"
                };
                let id = self.epoch.map(|epoch| Position {
                    epoch,
                    revision: e.revision,
                });
                event(out, kind, id, &service_data(e));
            }
            Body::SnapshotEnd(s) => {
                if !s.resumed {
                    // An empty snapshot has no entry to begin it.
                    self.begin_snapshot(out);
                }
                self.in_snapshot = false;
                self.next_snapshot_resets = true;
                let position = s.position.map(|p| Position {
                    epoch: p.epoch,
                    revision: p.revision,
                });
                if let Some(p) = position {
                    self.epoch = Some(p.epoch);
                }
                let data = SnapshotEndData {
                    count: s.count,
                    resumed: s.resumed,
                    reset: s.reset,
                    epoch: position.map(|p| p.epoch),
                    revision: position.map(|p| p.revision),
                };
                event(out, "snapshot_end", position, &data);
            }
            Body::Overflow(o) => {
                let data = OverflowData {
                    dropped: o.dropped,
                    resnapshot: o.resnapshot,
                };
                event(out, "overflow", None, &data);
                return !o.resnapshot;
            }
            // Nothing else is sent on a subscription's behalf.
            _ => {}
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use catalogue_proto::catalogue::{Overflow, Position as WirePosition, SnapshotEnd};

    use super::*;

    fn added(uri: &str, snapshot: bool, revision: u64) -> Body {
        Body::ServiceEvent(ServiceEvent {
            subscription_id: 1,
            kind: EventKind::Added.into(),
            uri: uri.into(),
            snapshot,
            revision,
            ..Default::default()
        })
    }

    fn deleted(uri: &str, revision: u64) -> Body {
        Body::ServiceEvent(ServiceEvent {
            subscription_id: 1,
            kind: EventKind::Deleted.into(),
            uri: uri.into(),
            revision,
            ..Default::default()
        })
    }

    fn end(count: u64, revision: u64, resumed: bool, reset: bool) -> Body {
        Body::SnapshotEnd(SnapshotEnd {
            subscription_id: 1,
            count,
            position: Some(WirePosition { epoch: 7, revision }),
            resumed,
            reset,
        })
    }

    fn kinds_and_ids(text: &str) -> Vec<String> {
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let kind = e
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or("?");
                match e.lines().find_map(|l| l.strip_prefix("id: ")) {
                    Some(id) => format!("{kind}@{id}"),
                    None => kind.to_string(),
                }
            })
            .collect()
    }

    fn run(encoder: &mut SseEncoder, bodies: Vec<Body>) -> Vec<String> {
        let mut all = Vec::new();
        for body in bodies {
            encoder.encode(&body, &mut all);
        }
        kinds_and_ids(&String::from_utf8(all).unwrap())
    }

    #[test]
    fn a_fresh_stream_has_a_snapshot_then_numbered_changes() {
        let mut e = SseEncoder::new(None);
        let seen = run(
            &mut e,
            vec![
                added("a", true, 5),
                added("b", true, 5),
                end(2, 5, false, false),
                added("c", false, 6),
                deleted("a", 8),
            ],
        );
        assert_eq!(
            seen,
            [
                "added",
                "added",
                "snapshot_end@7:5",
                "added@7:6",
                "deleted@7:8"
            ]
        );
    }

    #[test]
    fn a_resume_replays_with_ids_or_resets_before_the_snapshot() {
        let at = Position {
            epoch: 7,
            revision: 5,
        };
        let mut replayed = SseEncoder::new(Some(at));
        let seen = run(
            &mut replayed,
            vec![
                deleted("a", 6),
                end(1, 6, true, false),
                added("d", false, 9),
            ],
        );
        assert_eq!(seen, ["deleted@7:6", "snapshot_end@7:6", "added@7:9"]);

        let mut reset = SseEncoder::new(Some(Position {
            epoch: 3,
            revision: 5,
        }));
        let seen = run(
            &mut reset,
            vec![
                added("a", true, 9),
                end(1, 9, false, true),
                added("b", false, 10),
            ],
        );
        assert_eq!(seen, ["reset", "added", "snapshot_end@7:9", "added@7:10"]);

        // An empty reset snapshot still says reset before its end.
        let mut empty = SseEncoder::new(Some(at));
        assert_eq!(
            run(&mut empty, vec![end(0, 9, false, true)]),
            ["reset", "snapshot_end@7:9"]
        );
    }

    #[test]
    fn an_overflow_resets_or_ends_the_stream() {
        let mut e = SseEncoder::new(None);
        run(&mut e, vec![end(0, 1, false, false)]);
        let overflow = |resnapshot| {
            Body::Overflow(Overflow {
                subscription_id: 1,
                dropped: 3,
                resnapshot,
            })
        };
        assert!(!e.encode(&overflow(true), &mut Vec::new()));
        let seen = run(&mut e, vec![added("a", true, 9), end(1, 9, false, false)]);
        assert_eq!(seen, ["reset", "added", "snapshot_end@7:9"]);
        assert!(e.encode(&overflow(false), &mut Vec::new()));
    }

    #[test]
    fn an_event_is_one_data_line_in_the_documented_form() {
        let mut e = SseEncoder::new(Some(Position {
            epoch: 7,
            revision: 5,
        }));
        let body = Body::ServiceEvent(ServiceEvent {
            subscription_id: 1,
            kind: EventKind::Added.into(),
            uri: "tcp://db1:5432".into(),
            attrs: [("note".to_string(), "two\nlines".to_string())].into(),
            origin: "node-a".into(),
            ts: Some(catalogue_proto::catalogue::Timestamp {
                physical_ms: 1_764_908_400_123,
                logical: 0,
            }),
            revision: 41,
            ..Default::default()
        });
        let mut out = Vec::new();
        assert!(!e.encode(&body, &mut out));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: added\nid: 7:41\ndata: {\"uri\":\"tcp://db1:5432\",\
             \"attrs\":{\"note\":\"two\\nlines\"},\"origin\":\"node-a\",\
             \"at_ms\":1764908400123,\"at\":\"2025-12-05T04:20:00.123Z\",\
             \"snapshot\":false,\"revision\":41}\n\n"
        );
    }

    #[test]
    fn positions_parse_from_event_ids() {
        assert_eq!(
            parse_position("7:42"),
            Some(Position {
                epoch: 7,
                revision: 42
            })
        );
        assert_eq!(parse_position("7"), None);
        assert_eq!(parse_position("x:1"), None);
    }
}
