//! How the API writes the node's records as JSON (docs/HTTP.md, "Records"):
//! times as milliseconds since the Unix epoch *and* RFC 3339, so a shell
//! pipeline and a person can both read them.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::{links::LinkChange, peer::directory::PeerInfo, services::Service};

/// RFC 3339 with milliseconds, UTC; empty for 0 ("never").
pub fn rfc3339_ms(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A visible service.
pub fn service(s: &Service) -> Value {
    json!({
        "uri": s.uri,
        "attrs": s.attrs,
        "origin": s.origin,
        "registered_ms": s.ts.physical_ms,
        "registered": rfc3339_ms(s.ts.physical_ms),
    })
}

/// A live link.
pub fn link(l: &LinkChange) -> Value {
    json!({
        "a": l.key.a(),
        "b": l.key.b(),
        "origin": l.origin,
        "since_ms": l.ts.physical_ms,
        "since": rfc3339_ms(l.ts.physical_ms),
    })
}

/// A direct peer.
pub fn peer(p: &PeerInfo) -> Value {
    json!({
        "name": p.name,
        "address": p.address,
        "state": p.state.as_str(),
        "direction": p.direction.map(|d| d.as_str()),
        "since_ms": p.since_ms,
        "since": rfc3339_ms(p.since_ms),
        "last_error": p.last_error,
        "last_sync_ms": p.last_sync_ms,
        "last_sync": rfc3339_ms(p.last_sync_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Timestamp;

    #[test]
    fn services_carry_both_time_forms() {
        let s = Service {
            uri: "tcp://db:5432".into(),
            attrs: [("role".to_string(), "primary".to_string())].into(),
            origin: "node-a".into(),
            ts: Timestamp {
                physical_ms: 1_700_000_000_123,
                logical: 0,
            },
        };
        let v = service(&s);
        assert_eq!(v["registered_ms"], 1_700_000_000_123u64);
        assert_eq!(v["registered"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["attrs"]["role"], "primary");
        assert_eq!(rfc3339_ms(0), "");
    }
}
