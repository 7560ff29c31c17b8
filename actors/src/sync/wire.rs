//! Conversions between the links table's changes and their frames (beside
//! the entries of [`super::entry`], which use them), with
//! validation of what a peer sends.

use catalogue_proto::{
    Body,
    catalogue::{LinkAdd, LinkDelete},
};

use crate::{
    links::{LinkChange, LinkKey, LinkOp},
    names,
};

/// The frame body for a link change.
pub fn link_change_to_body(change: &LinkChange) -> Body {
    let (a, b) = (change.key.a().to_string(), change.key.b().to_string());
    let ts = Some(change.ts.into());
    let origin = change.origin.clone();
    match change.op {
        LinkOp::Add => Body::LinkAdd(LinkAdd { a, b, ts, origin }),
        LinkOp::Delete => Body::LinkDelete(LinkDelete { a, b, ts, origin }),
    }
}

/// The link change in a `LinkAdd` or `LinkDelete` body, checked.
pub fn link_change_from_body(body: Body) -> Result<LinkChange, String> {
    let (op, a, b, ts, origin) = match body {
        Body::LinkAdd(l) => (LinkOp::Add, l.a, l.b, l.ts, l.origin),
        Body::LinkDelete(l) => (LinkOp::Delete, l.a, l.b, l.ts, l.origin),
        other => return Err(format!("{} is not a link change", other.kind())),
    };
    for (what, name) in [("a", &a), ("b", &b), ("origin", &origin)] {
        if let Err(problem) = names::check(name) {
            return Err(format!("link change: {what} {problem}"));
        }
    }
    if a == b {
        return Err(format!(
            "link change: a link joins two nodes, got {a:?} twice"
        ));
    }
    let ts = ts.ok_or_else(|| "link change without a timestamp".to_string())?;
    Ok(LinkChange {
        op,
        key: LinkKey::new(a, b),
        origin,
        ts: ts.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Timestamp;

    #[test]
    fn a_change_round_trips_through_its_frame() {
        let change = LinkChange {
            op: LinkOp::Delete,
            key: LinkKey::new("b", "a"),
            origin: "a".into(),
            ts: Timestamp {
                physical_ms: 9,
                logical: 2,
            },
        };
        assert_eq!(
            link_change_from_body(link_change_to_body(&change)),
            Ok(change)
        );
    }

    #[test]
    fn malformed_changes_are_refused() {
        let ok = LinkAdd {
            a: "a".into(),
            b: "b".into(),
            ts: Some(Default::default()),
            origin: "a".into(),
        };
        assert!(link_change_from_body(Body::LinkAdd(ok.clone())).is_ok());
        let mut same = ok.clone();
        same.b = "a".into();
        assert!(link_change_from_body(Body::LinkAdd(same)).is_err());
        let mut no_ts = ok.clone();
        no_ts.ts = None;
        assert!(link_change_from_body(Body::LinkAdd(no_ts)).is_err());
        let mut bad_name = ok;
        bad_name.origin = "has space".into();
        assert!(link_change_from_body(Body::LinkAdd(bad_name)).is_err());
    }
}
