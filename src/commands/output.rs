//! Rendering services and events for the terminal (one line each) or as
//! JSON lines.

use std::fmt::Write as _;

use serde_json::json;

use crate::client::{Position, Service, SyncKind, WatchEvent};

/// One line for a listed service.
pub fn service_line(s: &Service, json: bool) -> String {
    if json {
        json!({ "uri": s.uri, "attrs": s.attrs, "origin": s.origin }).to_string()
    } else {
        let mut line = format!("{} origin={}", s.uri, s.origin);
        push_attrs(&mut line, s);
        line
    }
}

/// One line for what a watch says (`None` for what only the log tells:
/// a lost connection). Human lines name the event first; the notices
/// start with `--`. JSON lines are the records of docs/CLIENTS.md.
pub fn watch_line(event: &WatchEvent, json: bool) -> Option<String> {
    let position = |p: &Option<Position>| match p {
        Some(p) => json!({ "epoch": p.epoch, "revision": p.revision }),
        None => json!({ "epoch": null, "revision": null }),
    };
    let change = |kind: &str, s: &Service, revision: u64| {
        if json {
            json!({
                "event": kind,
                "uri": s.uri,
                "attrs": s.attrs,
                "origin": s.origin,
                "revision": revision,
            })
            .to_string()
        } else {
            let mut line = format!("{kind:<7} {}", s.uri);
            let _ = write!(line, " origin={}", s.origin);
            push_attrs(&mut line, s);
            line
        }
    };
    Some(match event {
        WatchEvent::Added { service, revision } => change("added", service, *revision),
        WatchEvent::Updated { new, revision, .. } => change("updated", new, *revision),
        WatchEvent::Deleted { service, revision } => change("deleted", service, *revision),
        WatchEvent::Synced {
            kind,
            position: at,
            count,
        } => {
            let how = match kind {
                SyncKind::Snapshot => "snapshot",
                SyncKind::Resumed => "resumed",
                SyncKind::Reset => "reset",
            };
            if json {
                let mut record = position(at);
                record["event"] = json!("snapshot_end");
                record["kind"] = json!(how);
                record["count"] = json!(count);
                record.to_string()
            } else {
                let revision = at.map(|p| format!(" at revision {}", p.revision));
                format!(
                    "-- snapshot end ({how}): {count} services{}",
                    revision.unwrap_or_default()
                )
            }
        }
        WatchEvent::Reset { position: at } => {
            if json {
                let mut record = position(at);
                record["event"] = json!("reset");
                record.to_string()
            } else {
                "-- reset: the node could not resume (it restarted, or the changes are no longer \
                 held); the differences to a fresh snapshot follow"
                    .to_string()
            }
        }
        WatchEvent::Overflow { dropped } => {
            if json {
                json!({ "event": "overflow", "dropped": dropped }).to_string()
            } else {
                format!(
                    "-- overflow: {dropped} events dropped; the differences to a fresh snapshot follow"
                )
            }
        }
        WatchEvent::Disconnected { .. } => return None,
    })
}

fn push_attrs(line: &mut String, s: &Service) {
    for (k, v) in &s.attrs {
        let _ = write!(line, " {k}={}", quoted(v));
    }
}

/// `value` as it is when it reads unambiguously in a `key=value` list,
/// else in double quotes with `"` and `\` escaped (as logfmt does).
fn quoted(value: &str) -> std::borrow::Cow<'_, str> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '='));
    if plain {
        value.into()
    } else {
        format!("{value:?}").into()
    }
}

/// Milliseconds since the epoch as an ISO 8601 UTC time (empty for 0).
pub fn iso8601_ms(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service {
            uri: "tcp://db:5432".into(),
            attrs: [("role".to_string(), "primary".to_string())].into(),
            origin: "node-a".into(),
            ts: None,
        }
    }

    #[test]
    fn human_lines() {
        assert_eq!(
            service_line(&service(), false),
            "tcp://db:5432 origin=node-a role=primary"
        );
        let added = WatchEvent::Added {
            service: service(),
            revision: 7,
        };
        assert_eq!(
            watch_line(&added, false).as_deref(),
            Some("added   tcp://db:5432 origin=node-a role=primary")
        );
        let end = WatchEvent::Synced {
            kind: SyncKind::Snapshot,
            position: Some(Position {
                epoch: 3,
                revision: 7,
            }),
            count: 1,
        };
        assert_eq!(
            watch_line(&end, false).as_deref(),
            Some("-- snapshot end (snapshot): 1 services at revision 7")
        );
    }

    #[test]
    fn attribute_values_that_would_read_ambiguously_are_quoted() {
        let mut s = service();
        s.attrs = [
            ("a".to_string(), "two words".to_string()),
            ("b".to_string(), "say \"hi\"".to_string()),
            ("c".to_string(), String::new()),
            ("d".to_string(), "x=y".to_string()),
            ("e".to_string(), "plain".to_string()),
        ]
        .into();
        assert_eq!(
            service_line(&s, false),
            r#"tcp://db:5432 origin=node-a a="two words" b="say \"hi\"" c="" d="x=y" e=plain"#
        );
    }

    #[test]
    fn epoch_milliseconds_read_as_iso_8601() {
        assert_eq!(iso8601_ms(1_764_806_400_123), "2025-12-04T00:00:00.123Z");
        assert_eq!(iso8601_ms(0), "");
    }

    /// Every record type of the JSON Lines stream (docs/CLIENTS.md,
    /// "`catalogue subscribe`"), parsed back with its fields.
    #[test]
    fn json_lines_have_the_documented_fields() {
        let at = Some(Position {
            epoch: 11,
            revision: 42,
        });
        let mut old = service();
        old.attrs.clear();
        let events = [
            WatchEvent::Added {
                service: service(),
                revision: 40,
            },
            WatchEvent::Updated {
                old,
                new: service(),
                revision: 41,
            },
            WatchEvent::Deleted {
                service: service(),
                revision: 42,
            },
            WatchEvent::Reset { position: at },
            WatchEvent::Synced {
                kind: SyncKind::Reset,
                position: at,
                count: 3,
            },
            WatchEvent::Overflow { dropped: 9 },
        ];
        let records: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                let line = watch_line(e, true).expect("a record");
                assert!(!line.contains('\n'), "one line: {line}");
                serde_json::from_str(&line).expect("json")
            })
            .collect();
        for (record, (kind, revision)) in
            records
                .iter()
                .zip([("added", 40), ("updated", 41), ("deleted", 42)])
        {
            assert_eq!(record["event"], kind);
            assert_eq!(record["uri"], "tcp://db:5432");
            assert_eq!(record["attrs"]["role"], "primary");
            assert_eq!(record["origin"], "node-a");
            assert_eq!(record["revision"], revision);
        }
        assert_eq!(records[3]["event"], "reset");
        assert_eq!(records[3]["epoch"], 11);
        assert_eq!(records[3]["revision"], 42);
        assert_eq!(records[4]["event"], "snapshot_end");
        assert_eq!(records[4]["kind"], "reset");
        assert_eq!(records[4]["count"], 3);
        assert_eq!(records[4]["epoch"], 11);
        assert_eq!(records[4]["revision"], 42);
        assert_eq!(records[5]["event"], "overflow");
        assert_eq!(records[5]["dropped"], 9);
        let lost = WatchEvent::Disconnected {
            error: crate::client::ClientError::Disconnected,
            retry_in: std::time::Duration::from_millis(50),
        };
        assert_eq!(watch_line(&lost, true), None, "only logged");
    }
}
