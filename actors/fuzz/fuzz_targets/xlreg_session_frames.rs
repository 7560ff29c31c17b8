//! Fuzz target: arbitrary bytes through the xlReg session decoder, then
//! through the session's request handling.
//!
//! Input: byte 0 picks the scheme (bit 0: v1 or v2) and the chunk size
//! (the other bits, 0 read as 1); the next 64 bytes are key2, iv2, salt1
//! and salt2; the rest is the stream from a client, handed to the server's
//! decoder that many bytes at a time. The decoder must never panic, and
//! every message it returns goes through `SessionState::receive` (request
//! parsing and the session's rules), which must not panic either.

#![no_main]

use bytes::BytesMut;
use catalogue_actors::xlreg::{
    frame::{MsgDecoder, Role, SessionKeys},
    session::SessionState,
    version::Scheme,
};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    if data.len() < 65 {
        return;
    }
    let (head, stream) = data.split_at(65);
    let scheme = if head[0] & 1 == 0 {
        Scheme::V1
    } else {
        Scheme::V2
    };
    let chunk = usize::from(head[0] >> 1).max(1);
    let mut key2 = [0u8; 32];
    key2.copy_from_slice(&head[1..33]);
    let mut iv2 = [0u8; 16];
    iv2.copy_from_slice(&head[33..49]);
    let mut salt1 = [0u8; 8];
    salt1.copy_from_slice(&head[49..57]);
    let mut salt2 = [0u8; 8];
    salt2.copy_from_slice(&head[57..65]);
    let Ok(keys) = SessionKeys::derive(scheme, &key2, &iv2, &salt1, &salt2) else {
        return;
    };
    let mut decoder = MsgDecoder(keys.opener(Role::Server));
    let mut session = SessionState::new(salt2);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let _ = session.receive(msg);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
