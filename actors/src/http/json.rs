//! How the API writes the node's records as JSON (docs/HTTP.md, "Records"):
//! times as milliseconds since the Unix epoch *and* RFC 3339, so a shell
//! pipeline and a person can both read them.

use std::time::{Duration, UNIX_EPOCH};

use serde::{Serialize, Serializer, ser::SerializeStruct};
use serde_json::{Value, json};

use crate::{links::LinkChange, peer::directory::PeerInfo, services::Service};

/// RFC 3339 with milliseconds, UTC; empty for 0 ("never").
pub fn rfc3339_ms(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A time as [`rfc3339_ms`] writes it, serialized straight into the
/// output (no string of its own).
pub struct Rfc3339Ms(pub u64);

impl Serialize for Rfc3339Ms {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            return s.serialize_str("");
        }
        s.collect_str(&humantime::format_rfc3339_millis(
            UNIX_EPOCH + Duration::from_millis(self.0),
        ))
    }
}

/// A visible service, serialized from the view's entry as it stands (a
/// page of a thousand is written without a JSON value per service).
pub struct ServiceRecord<'a>(pub &'a Service);

impl Serialize for ServiceRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let service = self.0;
        let mut record = s.serialize_struct("Service", 5)?;
        record.serialize_field("uri", &*service.uri)?;
        record.serialize_field("attrs", &service.attrs)?;
        record.serialize_field("origin", &*service.origin)?;
        record.serialize_field("registered_ms", &service.ts.physical_ms)?;
        record.serialize_field("registered", &Rfc3339Ms(service.ts.physical_ms))?;
        record.end()
    }
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
        let v = serde_json::to_value(ServiceRecord(&s)).expect("a record");
        assert_eq!(v["registered_ms"], 1_700_000_000_123u64);
        assert_eq!(v["registered"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["attrs"]["role"], "primary");
        assert_eq!(rfc3339_ms(0), "");
        assert_eq!(serde_json::to_value(Rfc3339Ms(0)).expect("a time"), "");
        assert_eq!(
            serde_json::to_string(&ServiceRecord(&s)).expect("a record"),
            "{\"uri\":\"tcp://db:5432\",\"attrs\":{\"role\":\"primary\"},\"origin\":\"node-a\",\
             \"registered_ms\":1700000000123,\"registered\":\"2023-11-14T22:13:20.123Z\"}"
        );
    }
}
