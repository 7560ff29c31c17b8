//! One replicated entry of either table, as it travels between nodes
//! inside a lock/unlockall batch: a service add or delete, or a link add
//! or delete. Conversions to and from frame bodies check what a peer sends.

use catalogue_proto::{
    Body,
    catalogue::{ServiceAdd, ServiceDelete},
};

use crate::{
    hlc::Timestamp,
    links::LinkChange,
    names,
    services::{Change, Service},
    sync::wire::{link_change_from_body, link_change_to_body},
};

/// Which table an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// The services table.
    Services,
    /// The links table.
    Links,
}

/// A change of either table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEntry {
    /// A service add or delete.
    Service(Change),
    /// A link add or delete.
    Link(LinkChange),
}

impl SyncEntry {
    /// The entry's table.
    pub fn table(&self) -> Table {
        match self {
            SyncEntry::Service(_) => Table::Services,
            SyncEntry::Link(_) => Table::Links,
        }
    }

    /// The node that made the change.
    pub fn origin(&self) -> &str {
        match self {
            SyncEntry::Service(c) => c.version().1,
            SyncEntry::Link(l) => &l.origin,
        }
    }

    /// When the origin made it.
    pub fn ts(&self) -> Timestamp {
        match self {
            SyncEntry::Service(c) => c.version().0,
            SyncEntry::Link(l) => l.ts,
        }
    }

    /// The table key: the URI, or `a b` for a link.
    pub fn key(&self) -> String {
        match self {
            SyncEntry::Service(c) => c.uri().to_string(),
            SyncEntry::Link(l) => format!("{} {}", l.key.a(), l.key.b()),
        }
    }

    /// True for a delete (a tombstone once applied).
    pub fn is_delete(&self) -> bool {
        match self {
            SyncEntry::Service(c) => matches!(c, Change::Delete { .. }),
            SyncEntry::Link(l) => l.op == crate::links::LinkOp::Delete,
        }
    }

    /// The frame body carrying this entry.
    pub fn to_body(&self) -> Body {
        match self {
            SyncEntry::Service(Change::Add(s)) => Body::ServiceAdd(ServiceAdd {
                uri: s.uri.to_string(),
                attrs: s.attrs.clone(),
                origin: s.origin.to_string(),
                ts: Some(s.ts.into()),
            }),
            SyncEntry::Service(Change::Delete { uri, origin, ts }) => {
                Body::ServiceDelete(ServiceDelete {
                    uri: uri.to_string(),
                    origin: origin.to_string(),
                    ts: Some((*ts).into()),
                })
            }
            SyncEntry::Link(l) => link_change_to_body(l),
        }
    }

    /// The entry in a `ServiceAdd`, `ServiceDelete`, `LinkAdd` or
    /// `LinkDelete` body, checked for form (URI syntax is checked against
    /// `max_uri` bytes).
    pub fn from_body(body: Body, max_uri: usize) -> Result<SyncEntry, String> {
        let check_origin = |origin: &str| names::check(origin).map_err(|p| format!("origin {p}"));
        let check_uri =
            |uri: &str| crate::uri::validate_uri(uri, max_uri).map_err(|e| e.to_string());
        match body {
            Body::ServiceAdd(a) => {
                check_uri(&a.uri)?;
                check_origin(&a.origin)?;
                crate::uri::validate_attrs(&a.attrs).map_err(|e| e.to_string())?;
                let ts = a.ts.ok_or("ServiceAdd without a timestamp")?;
                Ok(SyncEntry::Service(Change::Add(Service {
                    uri: a.uri.into(),
                    attrs: a.attrs,
                    origin: a.origin.into(),
                    ts: ts.into(),
                })))
            }
            Body::ServiceDelete(d) => {
                check_uri(&d.uri)?;
                check_origin(&d.origin)?;
                let ts = d.ts.ok_or("ServiceDelete without a timestamp")?;
                Ok(SyncEntry::Service(Change::Delete {
                    uri: d.uri.into(),
                    origin: d.origin.into(),
                    ts: ts.into(),
                }))
            }
            body @ (Body::LinkAdd(_) | Body::LinkDelete(_)) => {
                link_change_from_body(body).map(SyncEntry::Link)
            }
            other => Err(format!("{} is not a replicated entry", other.kind())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::links::{LinkKey, LinkOp};

    fn ts(ms: u64) -> Timestamp {
        Timestamp {
            physical_ms: ms,
            logical: 1,
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_body() {
        let entries = [
            SyncEntry::Service(Change::Add(Service {
                uri: "tcp://a:1".into(),
                attrs: BTreeMap::from([("k".into(), "v".into())]),
                origin: "n1".into(),
                ts: ts(5),
            })),
            SyncEntry::Service(Change::Delete {
                uri: "tcp://a:1".into(),
                origin: "n2".into(),
                ts: ts(6),
            }),
            SyncEntry::Link(LinkChange {
                op: LinkOp::Add,
                key: LinkKey::new("n2", "n1"),
                origin: "n1".into(),
                ts: ts(7),
            }),
        ];
        for e in entries {
            assert_eq!(SyncEntry::from_body(e.to_body(), 2048), Ok(e.clone()));
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        let add = |uri: &str, origin: &str| {
            Body::ServiceAdd(ServiceAdd {
                uri: uri.into(),
                attrs: BTreeMap::new(),
                origin: origin.into(),
                ts: Some(ts(1).into()),
            })
        };
        assert!(SyncEntry::from_body(add("tcp://ok:1", "n1"), 2048).is_ok());
        assert!(SyncEntry::from_body(add("not a uri", "n1"), 2048).is_err());
        assert!(SyncEntry::from_body(add("tcp://ok:1", "bad origin"), 2048).is_err());
        assert!(
            SyncEntry::from_body(add("tcp://ok:1", "n1"), 8).is_err(),
            "too long"
        );
        let no_ts = Body::ServiceDelete(ServiceDelete {
            uri: "tcp://ok:1".into(),
            origin: "n1".into(),
            ts: None,
        });
        assert!(SyncEntry::from_body(no_ts, 2048).is_err());
    }
}
