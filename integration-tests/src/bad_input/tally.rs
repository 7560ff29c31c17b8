//! Counts what a port answered to a run of inputs, and prints it as a
//! `figure:` line.

use std::{collections::BTreeMap, time::Duration};

use super::Answer;

/// Inputs tried and what came back.
#[derive(Debug, Default)]
pub struct Tally {
    /// Inputs sent.
    pub inputs: usize,
    /// Inputs answered with at least one frame.
    pub answered: usize,
    /// `Error` frames received.
    pub errors: usize,
    /// `Error` frames by code (`0x14`, ...).
    pub codes: BTreeMap<String, usize>,
    /// Connections reset rather than closed.
    pub resets: usize,
}

impl Tally {
    /// Counts one answer.
    pub fn add(&mut self, answer: &Answer) {
        self.inputs += 1;
        self.answered += usize::from(!answer.frames.is_empty());
        self.resets += usize::from(answer.reset);
        for code in answer.error_codes() {
            self.errors += 1;
            *self.codes.entry(code.hex()).or_default() += 1;
        }
    }

    /// Prints `figure: WHAT: ...` on stderr.
    pub fn print(&self, what: &str, seed: u64, took: Duration) {
        eprintln!(
            "figure: {what}: {} inputs in {took:.2?}, {} answered with frames, {} Error frames \
             {:?}, {} resets; seed {seed}",
            self.inputs, self.answered, self.errors, self.codes, self.resets
        );
    }
}
