//! The leases of services registered over HTTP, as plain code: who holds
//! which lease, until when, and which have run out. No I/O and no clock of
//! its own (the caller passes `now`), so it is tested without time passing;
//! [`super::leases::LeaseKeeper`] drives it and tells the supervisor.
//!
//! A lease registers one service for as long as it is renewed. Each lease
//! is its own registering "connection" to the supervisor
//! ([`LEASE_CONN_BASE`] + a counter), so that revoking or letting it expire
//! withdraws its service cluster-wide exactly as a closed connection does.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use crate::supervisor::ConnId;

/// Connection ids of leases start here: socket connections count from 0
/// and never reach it.
pub const LEASE_CONN_BASE: ConnId = 1 << 48;

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Its id, as the API names it.
    pub id: String,
    /// The supervisor connection id its service is registered under.
    pub conn: ConnId,
    /// The service.
    pub uri: String,
    /// Who took it (only they, or root, may renew or revoke it).
    pub uid: u32,
    /// How long each renewal lasts.
    pub ttl: Duration,
    /// When it runs out unless renewed.
    pub expires: Instant,
}

/// Why a lease operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// No such lease (never granted, revoked, or expired).
    #[error("no lease {0} (never granted, revoked or expired)")]
    Unknown(String),
    /// Another user holds it.
    #[error("lease {id} belongs to uid {owner}, not {uid}")]
    NotOwner {
        /// The lease.
        id: String,
        /// Its holder.
        owner: u32,
        /// Who asked.
        uid: u32,
    },
    /// `http.max_leases` are held.
    #[error("{0} leases are held (http.max_leases)")]
    Full(usize),
}

/// The leases of a node.
#[derive(Debug)]
pub struct LeaseTable {
    by_id: HashMap<String, Lease>,
    /// Expiry order: (expires, id).
    deadlines: BTreeMap<(Instant, String), ()>,
    next: u64,
    max: usize,
}

impl LeaseTable {
    /// An empty table holding at most `max` leases.
    pub fn new(max: usize) -> Self {
        LeaseTable {
            by_id: HashMap::new(),
            deadlines: BTreeMap::new(),
            next: 0,
            max,
        }
    }

    /// Reserves a lease for `uri` taken by `uid`, lasting `ttl` from `now`,
    /// with `id` (random, chosen by the caller). Not yet in the table: the
    /// caller registers the service, then [`Self::insert`]s it.
    pub fn reserve(
        &mut self,
        id: String,
        uri: &str,
        uid: u32,
        ttl: Duration,
        now: Instant,
    ) -> Result<Lease, LeaseError> {
        if self.by_id.len() >= self.max {
            return Err(LeaseError::Full(self.max));
        }
        let conn = LEASE_CONN_BASE + self.next;
        self.next += 1;
        Ok(Lease {
            id,
            conn,
            uri: uri.to_string(),
            uid,
            ttl,
            expires: now + ttl,
        })
    }

    /// Holds `lease` (its service is registered).
    pub fn insert(&mut self, lease: Lease) {
        self.deadlines.insert((lease.expires, lease.id.clone()), ());
        self.by_id.insert(lease.id.clone(), lease);
    }

    /// Extends lease `id` by its TTL from `now`, for `uid`.
    pub fn renew(&mut self, id: &str, uid: u32, now: Instant) -> Result<Lease, LeaseError> {
        let lease = self.owned(id, uid)?;
        let old = lease.expires;
        lease.expires = now + lease.ttl;
        let lease = lease.clone();
        self.deadlines.remove(&(old, id.to_string()));
        self.deadlines.insert((lease.expires, id.to_string()), ());
        Ok(lease)
    }

    /// Ends lease `id` for `uid`; the caller withdraws its service.
    pub fn revoke(&mut self, id: &str, uid: u32) -> Result<Lease, LeaseError> {
        self.owned(id, uid)?;
        let lease = self
            .by_id
            .remove(id)
            .ok_or_else(|| LeaseError::Unknown(id.to_string()))?;
        self.deadlines.remove(&(lease.expires, lease.id.clone()));
        Ok(lease)
    }

    /// Removes and returns the leases that ran out by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Lease> {
        let mut gone = Vec::new();
        while let Some(((expires, id), ())) = self.deadlines.first_key_value() {
            if *expires > now {
                break;
            }
            let key = (*expires, id.clone());
            self.deadlines.remove(&key);
            if let Some(lease) = self.by_id.remove(&key.1) {
                gone.push(lease);
            }
        }
        gone
    }

    /// When the next lease runs out, if any is held.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|(at, _)| *at)
    }

    /// Leases held.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when none is held.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn owned(&mut self, id: &str, uid: u32) -> Result<&mut Lease, LeaseError> {
        let lease = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| LeaseError::Unknown(id.to_string()))?;
        if lease.uid != uid && uid != 0 {
            return Err(LeaseError::NotOwner {
                id: id.to_string(),
                owner: lease.uid,
                uid,
            });
        }
        Ok(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn grant(t: &mut LeaseTable, id: &str, uid: u32, ttl: Duration, now: Instant) -> Lease {
        let lease = t
            .reserve(id.into(), &format!("tcp://{id}"), uid, ttl, now)
            .expect("room");
        t.insert(lease.clone());
        lease
    }

    #[test]
    fn leases_expire_in_deadline_order_unless_renewed() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new(10);
        let a = grant(&mut t, "a", 1000, 10 * S, t0);
        let b = grant(&mut t, "b", 1000, 5 * S, t0);
        assert_ne!(a.conn, b.conn);
        assert!(a.conn >= LEASE_CONN_BASE);
        assert_eq!(t.next_expiry(), Some(t0 + 5 * S));
        assert!(t.expire(t0 + 4 * S).is_empty());
        // Renewing b at 4 s moves it to 9 s.
        assert_eq!(
            t.renew("b", 1000, t0 + 4 * S).expect("renew").expires,
            t0 + 9 * S
        );
        assert!(t.expire(t0 + 8 * S).is_empty());
        let gone: Vec<String> = t.expire(t0 + 10 * S).into_iter().map(|l| l.id).collect();
        assert_eq!(gone, ["b", "a"]);
        assert!(t.is_empty());
        assert_eq!(t.next_expiry(), None);
        assert_eq!(t.renew("a", 1000, t0), Err(LeaseError::Unknown("a".into())));
    }

    #[test]
    fn only_the_holder_or_root_renews_or_revokes() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new(10);
        grant(&mut t, "a", 1000, 10 * S, t0);
        assert!(matches!(
            t.revoke("a", 1001),
            Err(LeaseError::NotOwner {
                owner: 1000,
                uid: 1001,
                ..
            })
        ));
        assert!(t.renew("a", 0, t0).is_ok());
        let gone = t.revoke("a", 1000).expect("revoke");
        assert_eq!(gone.uri, "tcp://a");
        assert!(
            t.expire(t0 + 60 * S).is_empty(),
            "a revoked lease never expires"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut t = LeaseTable::new(2);
        grant(&mut t, "a", 1, S, t0);
        grant(&mut t, "b", 1, S, t0);
        assert_eq!(
            t.reserve("c".into(), "tcp://c", 1, S, t0),
            Err(LeaseError::Full(2))
        );
        t.expire(t0 + S);
        assert!(t.reserve("c".into(), "tcp://c", 1, S, t0).is_ok());
    }
}
