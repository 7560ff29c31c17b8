//! The state of one health check as plain code: runs' results go in, a
//! transition (withdraw, register) comes out when enough consecutive runs
//! agree. No I/O and no clock, so every sequence is tested directly;
//! [`super::DefinitionKeeper`] feeds it and carries out the transitions.
//!
//! A checked service starts `Failing` (not registered): it is registered
//! after `successes` consecutive passes and withdrawn after `failures`
//! consecutive failures; a result that agrees with the current state resets
//! the opposite count.

/// The attribute a registered service with a check carries: its value is
/// always "passing" ([`Status::Passing`]), since a failing service is
/// withdrawn; `list` and subscribers see it beside the service's own
/// attributes (a definition's own `check` attribute is replaced).
pub const CHECK_ATTR: &str = "check";

/// Adds [`CHECK_ATTR`] = "passing" to a checked service's attributes.
pub fn mark_passing(attrs: &mut std::collections::BTreeMap<String, String>) {
    attrs.insert(CHECK_ATTR.to_string(), Status::Passing.as_str().to_string());
}

/// Whether the check currently lets its service be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Registered.
    Passing,
    /// Withdrawn (or not yet registered).
    Failing,
}

impl Status {
    /// As written in logs and in `catalogue_check_status` (1 / 0).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passing => "passing",
            Status::Failing => "failing",
        }
    }
}

/// Consecutive results of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    status: Status,
    /// Passes in a row (while failing) or failures in a row (while passing).
    streak: u32,
    failures: u32,
    successes: u32,
}

impl CheckState {
    /// A check that withdraws after `failures` and returns after
    /// `successes` consecutive results (each at least 1).
    pub fn new(failures: u32, successes: u32) -> Self {
        CheckState {
            status: Status::Failing,
            streak: 0,
            failures: failures.max(1),
            successes: successes.max(1),
        }
    }

    /// The current status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Takes one run's result; returns the new status when it changed.
    pub fn record(&mut self, passed: bool) -> Option<Status> {
        let (against, needed, next) = match self.status {
            Status::Passing => (!passed, self.failures, Status::Failing),
            Status::Failing => (passed, self.successes, Status::Passing),
        };
        if !against {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < needed {
            return None;
        }
        self.streak = 0;
        self.status = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(state: &mut CheckState, runs: &[bool]) -> Vec<Option<Status>> {
        runs.iter().map(|&r| state.record(r)).collect()
    }

    #[test]
    fn starts_failing_and_passes_after_enough_successes() {
        let mut s = CheckState::new(3, 2);
        assert_eq!(s.status(), Status::Failing);
        assert_eq!(feed(&mut s, &[true]), [None]);
        assert_eq!(feed(&mut s, &[true]), [Some(Status::Passing)]);
        assert_eq!(s.status(), Status::Passing);
    }

    #[test]
    fn withdraws_only_after_consecutive_failures() {
        let mut s = CheckState::new(3, 1);
        assert_eq!(s.record(true), Some(Status::Passing));
        // Two failures, a pass resets the count, then three in a row.
        assert_eq!(feed(&mut s, &[false, false, true]), [None, None, None]);
        assert_eq!(
            feed(&mut s, &[false, false, false]),
            [None, None, Some(Status::Failing)]
        );
        assert_eq!(s.status(), Status::Failing);
        // Further failures change nothing.
        assert_eq!(feed(&mut s, &[false, false]), [None, None]);
    }

    #[test]
    fn a_failure_resets_the_successes_needed_to_return() {
        let mut s = CheckState::new(1, 3);
        assert_eq!(feed(&mut s, &[true, true, false]), [None, None, None]);
        assert_eq!(
            feed(&mut s, &[true, true, true]),
            [None, None, Some(Status::Passing)]
        );
        assert_eq!(s.record(false), Some(Status::Failing));
        assert_eq!(s.record(true), None);
    }

    #[test]
    fn zero_counts_act_as_one() {
        let mut s = CheckState::new(0, 0);
        assert_eq!(s.record(true), Some(Status::Passing));
        assert_eq!(s.record(false), Some(Status::Failing));
    }
}
