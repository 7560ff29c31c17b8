//! The node's cache of compiled subscription patterns: subscriptions with
//! the same pattern text share one [`Pattern`] (one regex, its automata
//! and caches), and the compiled form goes when the last of them does.
//!
//! The ledger's regex bytes follow the compiled form, not each
//! subscription: the subscription that compiles a pattern is admitted
//! with its estimated cost and hands that charge to the shared entry
//! ([`Permit::take_charge`]); later subscriptions of the same text are
//! admitted at no regex cost; the charge is given back when the entry is
//! dropped. So `catalogue_subscription_regex_bytes` counts each distinct
//! pattern held once, as the memory is.
//!
//! The map holds weak references; an entry removes itself when dropped.
//! Compiling happens outside the lock; if two connections compile the
//! same text at once, the first to insert wins and the other's charge is
//! given back at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
};

use super::ledger::{Charge, Owner, Permit, Refusal, SharedLedger};
use crate::matcher::{self, Pattern, RegexError};

type Entries = Mutex<HashMap<Box<str>, Weak<SharedPattern>>>;

/// Why a subscription's pattern was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// The pattern does not compile within the limits.
    #[error(transparent)]
    Regex(#[from] RegexError),
    /// A limit of the ledger refused the subscription.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// One compiled pattern, shared by every subscription of its text.
#[derive(Debug)]
pub struct SharedPattern {
    pattern: Pattern,
    _charge: Charge,
    entries: Weak<Entries>,
}

impl SharedPattern {
    /// The compiled pattern.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }
}

impl Drop for SharedPattern {
    fn drop(&mut self) {
        let Some(entries) = self.entries.upgrade() else {
            return;
        };
        let mut map = lock(&entries);
        // A new entry for the same text may have replaced this one.
        if map
            .get(self.pattern.as_str())
            .is_some_and(|w| w.strong_count() == 0)
        {
            map.remove(self.pattern.as_str());
        }
    }
}

/// The cache (cloning shares it).
#[derive(Debug, Clone, Default)]
pub struct PatternCache {
    entries: Arc<Entries>,
}

fn lock(entries: &Entries) -> MutexGuard<'_, HashMap<Box<str>, Weak<SharedPattern>>> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PatternCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lookup(&self, text: &str) -> Option<Arc<SharedPattern>> {
        lock(&self.entries).get(text).and_then(Weak::upgrade)
    }

    /// Admits a subscription of `owner` to `ledger` with pattern `text`:
    /// the shared compiled pattern (compiled within `size_limit` if no
    /// subscription holds it yet) and the subscription's permit.
    ///
    /// # Errors
    ///
    /// [`AdmitError::Regex`] if `text` does not compile,
    /// [`AdmitError::Refused`] if a limit of the ledger refuses it.
    pub fn admit(
        &self,
        text: &str,
        size_limit: usize,
        ledger: &SharedLedger,
        owner: Owner,
    ) -> Result<(Arc<SharedPattern>, Permit), AdmitError> {
        if let Some(shared) = self.lookup(text) {
            return Ok((shared, ledger.admit(owner, 0)?));
        }
        let measured = matcher::compile_measured(text, size_limit)?;
        let mut permit = ledger.admit(owner, measured.memory)?;
        let mut map = lock(&self.entries);
        if let Some(shared) = map.get(text).and_then(Weak::upgrade) {
            drop(map);
            drop(permit.take_charge());
            return Ok((shared, permit));
        }
        let shared = Arc::new(SharedPattern {
            pattern: measured.pattern,
            _charge: permit.take_charge(),
            entries: Arc::downgrade(&self.entries),
        });
        map.insert(text.into(), Arc::downgrade(&shared));
        Ok((shared, permit))
    }

    /// Distinct patterns held.
    pub fn len(&self) -> usize {
        lock(&self.entries)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// True when no pattern is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{metrics::Gauge, subscription::ledger::LedgerLimits};

    const LIMITS: LedgerLimits = LedgerLimits {
        total: 10,
        per_uid: 10,
        per_address: 10,
        regex_bytes: 1 << 30,
    };

    #[test]
    fn one_text_one_compiled_pattern_charged_once() {
        let gauge = Gauge::default();
        let ledger = SharedLedger::new(LIMITS, gauge.clone());
        let cache = PatternCache::new();
        let owner = Owner::Uid(1);
        let (a, pa) = cache.admit(r"\d+x", 1 << 20, &ledger, owner).unwrap();
        let charged = gauge.get();
        assert!(charged > 8 * 1024, "a regex is charged: {charged}");
        let (b, pb) = cache.admit(r"\d+x", 1 << 20, &ledger, owner).unwrap();
        assert!(a.pattern().same(b.pattern()), "shared");
        assert_eq!(gauge.get(), charged, "charged once");
        assert_eq!(ledger.total(), 2, "both counted");
        let (c, pc) = cache.admit(r"\d+y", 1 << 20, &ledger, owner).unwrap();
        assert!(!a.pattern().same(c.pattern()));
        assert_eq!(cache.len(), 2);
        // The first subscription goes; the pattern stays for the second.
        drop((a, pa));
        assert_eq!(gauge.get(), 2 * charged);
        drop((b, pb));
        assert_eq!(gauge.get(), charged, "given back with the last user");
        assert_eq!(cache.len(), 1);
        drop((c, pc));
        assert_eq!((gauge.get(), ledger.total(), cache.len()), (0, 0, 0));
        assert!(lock(&cache.entries).is_empty(), "entries remove themselves");
    }

    #[test]
    fn refusals_leave_nothing_behind() {
        let gauge = Gauge::default();
        let ledger = SharedLedger::new(
            LedgerLimits {
                regex_bytes: 1000,
                ..LIMITS
            },
            gauge.clone(),
        );
        let cache = PatternCache::new();
        let refused = cache.admit(r"\w+", 1 << 20, &ledger, Owner::Uid(1));
        assert!(
            matches!(refused, Err(AdmitError::Refused(_))),
            "{refused:?}"
        );
        let invalid = cache.admit("(", 1 << 20, &ledger, Owner::Uid(1));
        assert!(matches!(invalid, Err(AdmitError::Regex(_))), "{invalid:?}");
        assert_eq!((gauge.get(), ledger.total(), cache.len()), (0, 0, 0));
        // A literal prefix costs its bytes, not a regex engine.
        let (literal, _permit) = cache
            .admit("^tcp://svc-1/", 1 << 20, &ledger, Owner::Uid(1))
            .unwrap();
        assert!(literal.pattern().is_literal());
        assert!(gauge.get() < 300, "{}", gauge.get());
    }
}
