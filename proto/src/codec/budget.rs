//! The node-wide budget for buffered input: the bytes every connection
//! holds in frames it has started to receive and not yet finished, summed
//! over all connections, against one limit (`limits.input_buffer_bytes`,
//! docs/PROTOCOL.md §1).
//!
//! An [`InputBudget`] is shared by every frame reader of a node (it is an
//! `Arc` around one atomic counter). Each reader's codec holds an
//! [`InputCharge`]: what that connection holds of the budget right now. The
//! codec sets the charge to the bytes in its read buffer each time new
//! bytes arrive; a charge that would take the sum over the limit is
//! refused, and the codec turns the refusal into
//! `CodecError::BudgetExceeded`, which closes that connection. Dropping the
//! charge (the connection's reader goes away) gives its bytes back.
//!
//! Only bytes actually received are charged, never the length a prefix
//! announces: announcing costs an attacker four bytes, so reserving on
//! announcement would let a few connections lock every other one out.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

/// The budget was full: charging `wanted` more bytes would have taken the
/// node's buffered input over `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "buffered input would exceed the node's budget: {held} bytes held, {wanted} more wanted, limit {limit}"
)]
pub struct BudgetExceeded {
    /// Bytes held by all connections when the charge was refused.
    pub held: usize,
    /// Bytes the connection wanted to add.
    pub wanted: usize,
    /// The budget.
    pub limit: usize,
}

/// The node-wide count of buffered input bytes and its limit. Cloning
/// shares the count.
#[derive(Debug, Clone)]
pub struct InputBudget {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    held: AtomicUsize,
    limit: usize,
}

impl InputBudget {
    /// A budget of `limit` bytes, nothing held.
    pub fn new(limit: usize) -> Self {
        InputBudget {
            inner: Arc::new(Shared {
                held: AtomicUsize::new(0),
                limit,
            }),
        }
    }

    /// A budget nothing can exceed (codecs made without one use it).
    pub fn unlimited() -> Self {
        Self::new(usize::MAX)
    }

    /// Bytes held now, by every charge together.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// A charge of nothing against this budget.
    pub fn charge(&self) -> InputCharge {
        InputCharge {
            budget: self.clone(),
            held: 0,
        }
    }

    fn grow(&self, by: usize) -> Result<(), BudgetExceeded> {
        let limit = self.inner.limit;
        // A compare-exchange loop rather than `fetch_update`, which newer
        // toolchains deprecate (renamed `try_update`, after our rust-version).
        let mut held = self.inner.held.load(Ordering::Relaxed);
        loop {
            let Some(sum) = held.checked_add(by).filter(|&sum| sum <= limit) else {
                return Err(BudgetExceeded {
                    held,
                    wanted: by,
                    limit,
                });
            };
            match self.inner.held.compare_exchange_weak(
                held,
                sum,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => held = now,
            }
        }
    }

    fn shrink(&self, by: usize) {
        self.inner.held.fetch_sub(by, Ordering::Relaxed);
    }
}

/// What one connection holds of an [`InputBudget`]; given back when
/// dropped.
#[derive(Debug)]
pub struct InputCharge {
    budget: InputBudget,
    held: usize,
}

impl InputCharge {
    /// Makes the charge `bytes`: growing it may be refused (the charge is
    /// then unchanged), shrinking it never is.
    pub fn set(&mut self, bytes: usize) -> Result<(), BudgetExceeded> {
        if bytes > self.held {
            self.budget.grow(bytes - self.held)?;
        } else {
            self.budget.shrink(self.held - bytes);
        }
        self.held = bytes;
        Ok(())
    }

    /// Bytes charged now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The budget charged.
    pub fn budget(&self) -> &InputBudget {
        &self.budget
    }
}

impl Drop for InputCharge {
    fn drop(&mut self) {
        self.budget.shrink(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_add_up_and_are_given_back_when_dropped() {
        let budget = InputBudget::new(100);
        let mut a = budget.charge();
        let mut b = budget.charge();
        a.set(40).expect("within");
        b.set(60).expect("exactly the limit");
        assert_eq!(budget.held(), 100);
        assert_eq!(
            b.set(61),
            Err(BudgetExceeded {
                held: 100,
                wanted: 1,
                limit: 100
            })
        );
        assert_eq!(b.held(), 60, "a refused charge is unchanged");
        a.set(10).expect("shrinking always works");
        assert_eq!(budget.held(), 70);
        b.set(90).expect("room again");
        drop(b);
        assert_eq!(budget.held(), 10);
        drop(a);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn an_unlimited_budget_refuses_nothing_but_still_counts() {
        let budget = InputBudget::unlimited();
        let mut a = budget.charge();
        a.set(usize::MAX / 2).expect("unlimited");
        assert_eq!(budget.held(), usize::MAX / 2);
        let mut b = budget.charge();
        b.set(usize::MAX / 2).expect("unlimited");
        let mut c = budget.charge();
        assert!(c.set(usize::MAX).is_err(), "the count itself cannot wrap");
    }
}
