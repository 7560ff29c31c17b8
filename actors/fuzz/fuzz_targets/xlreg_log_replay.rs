//! Fuzz target: arbitrary bytes after the magic as a registry log.
//!
//! Replay must never panic: every record either applies, ends the log as a
//! torn tail, or is reported as corruption. When replay succeeds, the
//! snapshot of the state it built must replay to the same state.

#![no_main]

use std::path::Path;

use catalogue_actors::xlreg::{
    registry::Limits,
    store::{MAGIC, record, replay},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut log = MAGIC.to_vec();
    log.extend_from_slice(data);
    let Ok((registry, _)) = replay(&log, Limits::default(), Path::new("fuzz.log")) else {
        return;
    };
    let mut compacted = MAGIC.to_vec();
    for change in registry.snapshot() {
        compacted.extend_from_slice(&record(&change));
    }
    let (again, report) = replay(&compacted, Limits::default(), Path::new("compacted.log"))
        .expect("a snapshot replays");
    assert_eq!(report.dropped_bytes, 0);
    assert_eq!(again.client_count(), registry.client_count());
    assert_eq!(again.cluster_count(), registry.cluster_count());
});
