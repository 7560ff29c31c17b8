//! Fuzz target: arbitrary bytes as handshake messages.
//!
//! The bytes are parsed as a Hello plaintext, as a HelloReply plaintext,
//! and (after the first 48, which are key1 and iv1) as a HelloReply on the
//! wire answering a Hello with that key1 and iv1. Nothing may panic; a
//! reply that opens must carry the Hello's salt1.

#![no_main]

use catalogue_actors::xlreg::{
    hello::{Hello, HelloReply},
    version::Version,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Hello::from_bytes(data);
    let _ = HelloReply::from_bytes(data);
    if data.len() < 48 {
        return;
    }
    let mut hello = Hello {
        iv1: [0; 16],
        key1: [0; 32],
        salt1: [0x5A; 8],
        version: Version::V2,
    };
    hello.key1.copy_from_slice(&data[..32]);
    hello.iv1.copy_from_slice(&data[32..48]);
    if let Ok(reply) = HelloReply::open(&data[48..], &hello) {
        assert_eq!(reply.salt1, hello.salt1);
        let _ = reply.session_keys();
    }
});
