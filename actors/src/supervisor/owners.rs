//! Which local connection registered which service URI. A URI belongs to at
//! most one live connection of this node; the same connection may register
//! it again (new attributes). When a connection closes, everything it owns
//! is released so the supervisor can delete it. Both maps share the
//! URI's allocation with the services table's entry.

use std::collections::{HashMap, HashSet};

use super::{ConnId, RegisterError};
use crate::services::SharedStr;

/// URI ownership by local connections.
#[derive(Debug, Default)]
pub struct Owners {
    by_uri: HashMap<SharedStr, ConnId>,
    by_conn: HashMap<ConnId, HashSet<SharedStr>>,
}

impl Owners {
    /// Records that `conn` holds `uri`; refused when another connection does.
    pub fn claim(&mut self, conn: ConnId, uri: &SharedStr) -> Result<(), RegisterError> {
        match self.by_uri.get(uri) {
            Some(&holder) if holder != conn => Err(RegisterError::Conflict {
                uri: uri.to_string(),
            }),
            Some(_) => Ok(()),
            None => {
                self.by_uri.insert(uri.clone(), conn);
                self.by_conn.entry(conn).or_default().insert(uri.clone());
                Ok(())
            }
        }
    }

    /// Releases `uri` held by `conn`.
    pub fn release(&mut self, conn: ConnId, uri: &str) -> Result<(), RegisterError> {
        if self.by_uri.get(uri) != Some(&conn) {
            return Err(RegisterError::NotRegistered {
                uri: uri.to_string(),
            });
        }
        self.by_uri.remove(uri);
        if let Some(set) = self.by_conn.get_mut(&conn) {
            set.remove(uri);
            if set.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
        Ok(())
    }

    /// Releases everything `conn` holds and returns it, sorted.
    pub fn release_all(&mut self, conn: ConnId) -> Vec<SharedStr> {
        let mut uris: Vec<SharedStr> = self
            .by_conn
            .remove(&conn)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for uri in &uris {
            self.by_uri.remove(uri);
        }
        uris.sort();
        uris
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(o: &mut Owners, conn: ConnId, uri: &str) -> Result<(), RegisterError> {
        o.claim(conn, &uri.into())
    }

    fn release_all(o: &mut Owners, conn: ConnId) -> Vec<String> {
        o.release_all(conn).iter().map(|u| u.to_string()).collect()
    }

    #[test]
    fn one_connection_per_uri() {
        let mut o = Owners::default();
        claim(&mut o, 1, "a:x").expect("first claim");
        claim(&mut o, 1, "a:x").expect("same connection again");
        assert_eq!(
            claim(&mut o, 2, "a:x"),
            Err(RegisterError::Conflict { uri: "a:x".into() })
        );
        assert_eq!(release_all(&mut o, 1), ["a:x"]);
    }

    #[test]
    fn release_checks_the_holder() {
        let mut o = Owners::default();
        claim(&mut o, 1, "a:x").expect("claim");
        assert!(o.release(2, "a:x").is_err());
        o.release(1, "a:x").expect("holder releases");
        assert!(o.release(1, "a:x").is_err(), "not twice");
        claim(&mut o, 2, "a:x").expect("free again");
    }

    #[test]
    fn release_all_returns_what_the_connection_held() {
        let mut o = Owners::default();
        claim(&mut o, 1, "b:1").expect("claim");
        claim(&mut o, 1, "a:1").expect("claim");
        claim(&mut o, 2, "c:1").expect("claim");
        assert_eq!(release_all(&mut o, 1), ["a:1", "b:1"]);
        assert!(release_all(&mut o, 1).is_empty());
        claim(&mut o, 3, "a:1").expect("released URIs are free");
        assert_eq!(release_all(&mut o, 2), ["c:1"]);
    }
}
