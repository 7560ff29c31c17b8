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
        let _ = write!(line, " {k}={v}");
    }
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
