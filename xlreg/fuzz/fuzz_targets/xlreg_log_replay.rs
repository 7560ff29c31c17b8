//! Fuzz target: arbitrary bytes as a registry log.
//!
//! Byte 0 picks how the rest is used: even, as the log's bytes after the
//! magic, as they are; odd, as payloads wrapped into well-formed records
//! (each payload is prefixed by one length byte in the input), so that the
//! fuzzer reaches record decoding and the registry's replay rules rather
//! than stopping at the checks. Replay must never panic: every record
//! applies, ends the log as a torn tail, or is reported as corruption. When
//! replay succeeds, the snapshot of the state it built must replay to the
//! same state.

#![no_main]

use std::path::Path;

use catalogue_xlreg::{
    registry::Limits,
    store::{MAGIC, record, replay},
};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// A well-formed record around `payload`.
fn wrap(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let digest = Sha256::new()
        .chain_update(len)
        .chain_update(payload)
        .finalize();
    let mut out = len.to_vec();
    out.extend_from_slice(payload);
    out.extend_from_slice(&digest[..8]);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut log = MAGIC.to_vec();
    if mode & 1 == 0 {
        log.extend_from_slice(rest);
    } else {
        let mut rest = rest;
        while let Some((&len, tail)) = rest.split_first() {
            let (payload, next) = tail.split_at(usize::from(len).min(tail.len()));
            log.extend_from_slice(&wrap(payload));
            rest = next;
        }
    }
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
