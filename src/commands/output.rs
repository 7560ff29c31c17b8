//! Rendering services and events for the terminal (one line each) or as
//! JSON lines.

use std::fmt::Write as _;

use serde_json::json;

use crate::client::Service;

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

/// One line for a subscription event (`event` is "added" or "deleted").
pub fn event_line(event: &str, s: &Service, snapshot: bool, json: bool) -> String {
    if json {
        json!({
            "event": event,
            "uri": s.uri,
            "attrs": s.attrs,
            "origin": s.origin,
            "snapshot": snapshot,
        })
        .to_string()
    } else {
        let mut line = format!("{event:<7} {}", s.uri);
        if snapshot {
            line.push_str(" (snapshot)");
        }
        let _ = write!(line, " origin={}", s.origin);
        push_attrs(&mut line, s);
        line
    }
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
        assert_eq!(
            event_line("added", &service(), true, false),
            "added   tcp://db:5432 (snapshot) origin=node-a role=primary"
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

    #[test]
    fn json_lines_have_the_documented_fields() {
        let v: serde_json::Value =
            serde_json::from_str(&event_line("deleted", &service(), false, true)).expect("json");
        assert_eq!(v["event"], "deleted");
        assert_eq!(v["uri"], "tcp://db:5432");
        assert_eq!(v["attrs"]["role"], "primary");
        assert_eq!(v["origin"], "node-a");
        assert_eq!(v["snapshot"], false);
    }
}
