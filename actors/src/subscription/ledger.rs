//! The node-wide count of subscriptions: how many the node holds, how many
//! each uid (UNIX socket) and each IP address (TCP) holds, and the
//! estimated memory of their compiled regexes, against
//! `limits.subscriptions_total`, `limits.subscriptions_per_uid`,
//! `limits.subscriptions_per_address` and `limits.regex_memory_bytes`.
//! (`limits.subscriptions_per_connection` is the connection's own count.)
//!
//! [`Ledger`] is the plain bookkeeping, tested without actors.
//! [`SharedLedger`] is the one every client connection of a node uses: it
//! hands out a [`Permit`] per admitted subscription, which the
//! subscription's actor holds and which gives its share back when dropped,
//! however the subscription ends (unsubscribed, dropped on overflow, its
//! connection closed).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use crate::{metrics::Gauge, settings::LimitsSettings};

/// Whom a subscription counts against, besides the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// A UNIX-socket connection's uid.
    Uid(u32),
    /// A TCP connection's remote IP address (every port together).
    Address(IpAddr),
}

/// The limits a [`Ledger`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerLimits {
    /// Subscriptions on the node.
    pub total: usize,
    /// Subscriptions per uid.
    pub per_uid: usize,
    /// Subscriptions per IP address.
    pub per_address: usize,
    /// Estimated regex memory on the node, bytes.
    pub regex_bytes: usize,
}

impl LedgerLimits {
    /// The limits `limits` configures.
    pub fn new(limits: &LimitsSettings) -> Self {
        LedgerLimits {
            total: limits.subscriptions_total,
            per_uid: limits.subscriptions_per_uid,
            per_address: limits.subscriptions_per_address,
            regex_bytes: limits.regex_memory_bytes,
        }
    }
}

/// Why a subscription was refused. The `Display` is sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node holds its most subscriptions.
    #[error("the node already holds {limit} subscriptions (limits.subscriptions_total)")]
    Total {
        /// The limit.
        limit: usize,
    },
    /// This uid holds its most.
    #[error("uid {uid} already holds {limit} subscriptions (limits.subscriptions_per_uid)")]
    PerUid {
        /// The uid.
        uid: u32,
        /// The limit.
        limit: usize,
    },
    /// This address holds its most.
    #[error("{address} already holds {limit} subscriptions (limits.subscriptions_per_address)")]
    PerAddress {
        /// The address.
        address: IpAddr,
        /// The limit.
        limit: usize,
    },
    /// The regexes would take too much memory.
    #[error(
        "this regex would hold about {cost} bytes and the node's subscriptions already hold about {held}: over limits.regex_memory_bytes ({limit}); use a simpler regex (fewer Unicode classes and repetitions)"
    )]
    RegexMemory {
        /// Estimated bytes of this regex.
        cost: usize,
        /// Estimated bytes held by all subscriptions.
        held: usize,
        /// The limit.
        limit: usize,
    },
}

impl Refusal {
    /// Short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Total { .. } => "total",
            Refusal::PerUid { .. } => "per_uid",
            Refusal::PerAddress { .. } => "per_address",
            Refusal::RegexMemory { .. } => "regex_memory",
        }
    }
}

/// The counts, and the limits they are held to.
#[derive(Debug)]
pub struct Ledger {
    limits: LedgerLimits,
    total: usize,
    regex_bytes: usize,
    per_owner: HashMap<Owner, usize>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(limits: LedgerLimits) -> Self {
        Ledger {
            limits,
            total: 0,
            regex_bytes: 0,
            per_owner: HashMap::new(),
        }
    }

    /// Counts a subscription of `owner` whose regex holds about `cost`
    /// bytes, unless that would break a limit.
    pub fn admit(&mut self, owner: Owner, cost: usize) -> Result<(), Refusal> {
        let l = self.limits;
        if self.total >= l.total {
            return Err(Refusal::Total { limit: l.total });
        }
        let held = self.held_by(owner);
        match owner {
            Owner::Uid(uid) if held >= l.per_uid => {
                return Err(Refusal::PerUid {
                    uid,
                    limit: l.per_uid,
                });
            }
            Owner::Address(address) if held >= l.per_address => {
                return Err(Refusal::PerAddress {
                    address,
                    limit: l.per_address,
                });
            }
            _ => {}
        }
        if self.regex_bytes.saturating_add(cost) > l.regex_bytes {
            return Err(Refusal::RegexMemory {
                cost,
                held: self.regex_bytes,
                limit: l.regex_bytes,
            });
        }
        self.total += 1;
        self.regex_bytes += cost;
        *self.per_owner.entry(owner).or_default() += 1;
        Ok(())
    }

    /// Forgets a subscription [`Ledger::admit`] counted.
    pub fn release(&mut self, owner: Owner, cost: usize) {
        self.total = self.total.saturating_sub(1);
        self.release_bytes(cost);
        if let Some(n) = self.per_owner.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&owner);
            }
        }
    }

    /// Forgets `cost` bytes of regex memory (a compiled pattern that
    /// outlived the subscription that brought it, now gone).
    pub fn release_bytes(&mut self, cost: usize) {
        self.regex_bytes = self.regex_bytes.saturating_sub(cost);
    }

    /// Subscriptions on the node.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Estimated regex memory on the node.
    pub fn regex_bytes(&self) -> usize {
        self.regex_bytes
    }

    /// Subscriptions of `owner`.
    pub fn held_by(&self, owner: Owner) -> usize {
        self.per_owner.get(&owner).copied().unwrap_or(0)
    }
}

/// The ledger of a node, shared by its client connections.
#[derive(Debug, Clone)]
pub struct SharedLedger {
    ledger: Arc<Mutex<Ledger>>,
    /// `catalogue_subscription_regex_bytes`.
    regex_gauge: Gauge,
}

impl SharedLedger {
    /// A ledger held to `limits`, reporting its regex memory to
    /// `regex_gauge`.
    pub fn new(limits: LedgerLimits, regex_gauge: Gauge) -> Self {
        SharedLedger {
            ledger: Arc::new(Mutex::new(Ledger::new(limits))),
            regex_gauge,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // The counts stay consistent whatever panicked while holding them.
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a subscription of `owner` whose regex holds about `cost`
    /// bytes; the permit counts it until dropped.
    pub fn admit(&self, owner: Owner, cost: usize) -> Result<Permit, Refusal> {
        let mut ledger = self.lock();
        ledger.admit(owner, cost)?;
        self.report(&ledger);
        Ok(Permit {
            ledger: self.clone(),
            owner,
            cost,
        })
    }

    /// Subscriptions on the node.
    pub fn total(&self) -> usize {
        self.lock().total()
    }

    fn report(&self, ledger: &Ledger) {
        self.regex_gauge
            .set(i64::try_from(ledger.regex_bytes()).unwrap_or(i64::MAX));
    }
}

/// One admitted subscription's place in the [`SharedLedger`].
#[derive(Debug)]
pub struct Permit {
    ledger: SharedLedger,
    owner: Owner,
    cost: usize,
}

impl Permit {
    /// The estimated bytes of the subscription's regex.
    pub fn cost(&self) -> usize {
        self.cost
    }

    /// Moves the regex bytes out of this permit into a [`Charge`] of
    /// their own, for a compiled pattern that several subscriptions share
    /// and that lives as long as the last of them: the permit keeps only
    /// the subscription's place in the counts.
    pub fn take_charge(&mut self) -> Charge {
        Charge {
            ledger: self.ledger.clone(),
            cost: std::mem::take(&mut self.cost),
        }
    }
}

/// Regex bytes counted in the [`SharedLedger`] until dropped
/// ([`Permit::take_charge`]).
#[derive(Debug)]
pub struct Charge {
    ledger: SharedLedger,
    cost: usize,
}

impl Charge {
    /// The estimated bytes.
    pub fn cost(&self) -> usize {
        self.cost
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut ledger = self.ledger.lock();
        ledger.release_bytes(self.cost);
        self.ledger.report(&ledger);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut ledger = self.ledger.lock();
        ledger.release(self.owner, self.cost);
        self.ledger.report(&ledger);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LedgerLimits = LedgerLimits {
        total: 10,
        per_uid: 4,
        per_address: 3,
        regex_bytes: 1000,
    };

    fn addr(last: u8) -> Owner {
        Owner::Address(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn each_uid_and_address_has_its_own_limit() {
        let mut l = Ledger::new(LIMITS);
        for _ in 0..4 {
            l.admit(Owner::Uid(1000), 10).expect("within per_uid");
        }
        assert_eq!(
            l.admit(Owner::Uid(1000), 10),
            Err(Refusal::PerUid {
                uid: 1000,
                limit: 4
            })
        );
        l.admit(Owner::Uid(1001), 10).expect("another uid");
        for _ in 0..3 {
            l.admit(addr(1), 10).expect("within per_address");
        }
        let refused = l.admit(addr(1), 10).expect_err("per address");
        assert_eq!(refused.reason(), "per_address");
        assert!(
            refused
                .to_string()
                .contains("limits.subscriptions_per_address"),
            "{refused}"
        );
        l.admit(addr(2), 10).expect("another address");
        assert_eq!(l.total(), 9);
        assert_eq!(l.regex_bytes(), 90);
    }

    #[test]
    fn the_node_total_binds_every_owner() {
        let mut l = Ledger::new(LIMITS);
        for i in 0..10 {
            l.admit(addr(i), 1).expect("within total");
        }
        assert_eq!(l.admit(addr(99), 1), Err(Refusal::Total { limit: 10 }));
        assert_eq!(l.admit(Owner::Uid(0), 1), Err(Refusal::Total { limit: 10 }));
        l.release(addr(3), 1);
        l.admit(Owner::Uid(0), 1).expect("room again");
    }

    #[test]
    fn regex_memory_is_a_node_wide_sum() {
        let mut l = Ledger::new(LIMITS);
        l.admit(Owner::Uid(1), 600).expect("fits");
        let refused = l.admit(Owner::Uid(2), 401).expect_err("over");
        assert_eq!(
            refused,
            Refusal::RegexMemory {
                cost: 401,
                held: 600,
                limit: 1000
            }
        );
        assert_eq!(l.total(), 1, "a refusal counts nothing");
        assert_eq!(l.held_by(Owner::Uid(2)), 0);
        l.admit(Owner::Uid(2), 400).expect("exactly the limit");
        l.release(Owner::Uid(1), 600);
        assert_eq!(l.regex_bytes(), 400);
        assert_eq!(l.held_by(Owner::Uid(1)), 0);
    }

    #[test]
    fn permits_give_their_share_back_when_dropped() {
        let gauge = Gauge::default();
        let shared = SharedLedger::new(LIMITS, gauge.clone());
        let permits: Vec<Permit> = (0..4)
            .map(|_| shared.admit(Owner::Uid(7), 100).expect("admitted"))
            .collect();
        assert_eq!(shared.total(), 4);
        assert_eq!(gauge.get(), 400);
        assert!(shared.admit(Owner::Uid(7), 100).is_err(), "per uid");
        drop(permits);
        assert_eq!(shared.total(), 0);
        assert_eq!(gauge.get(), 0);
        let again = shared.admit(Owner::Uid(7), 100).expect("admitted again");
        assert_eq!(again.cost(), 100);
    }

    #[test]
    fn a_charge_taken_from_a_permit_outlives_it() {
        let gauge = Gauge::default();
        let shared = SharedLedger::new(LIMITS, gauge.clone());
        let mut permit = shared.admit(Owner::Uid(7), 300).expect("admitted");
        let charge = permit.take_charge();
        assert_eq!((permit.cost(), charge.cost()), (0, 300));
        drop(permit);
        assert_eq!(shared.total(), 0, "the place is given back");
        assert_eq!(gauge.get(), 300, "the bytes are still held");
        drop(charge);
        assert_eq!(gauge.get(), 0);
    }
}
