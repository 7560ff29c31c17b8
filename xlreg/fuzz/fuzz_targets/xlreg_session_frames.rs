//! Fuzz target: arbitrary bytes through the xlReg session decoders, then
//! through the server's request handling and the client's reply parsing.
//!
//! Input: byte 0 picks the scheme (bit 0: v1 or v2), the mode (bit 1) and
//! the chunk size (the other bits, 0 read as 1); the next 64 bytes are
//! key2, iv2, salt1 and salt2; the rest is the stream.
//!
//! - Raw mode: the stream is what a client (or an attacker) wrote, handed
//!   to the server's decoder that many bytes at a time, and to a client's
//!   decoder as if the server had written it. Without the keys a v2 frame
//!   never opens, so this mode tests framing, lengths, tags and padding.
//! - Sealed mode: the stream is a list of plaintexts (each prefixed by a
//!   2-byte big-endian length), sealed with the client's keys as a real
//!   client would. Every frame must open (any error can only be a
//!   plaintext that is not an `XLRegMsg`), so arbitrary messages reach
//!   `SessionState::receive`: request parsing and the session's rules.
//!
//! Nothing may panic. Every message the server decodes goes through
//! `SessionState::receive` (a request to execute for a `Client` marks the
//! session identified, as the registry would); once the session says it
//! is closing, it must answer nothing more. Every message the client
//! decodes goes through `Reply::from_msg`.

#![no_main]

use bytes::BytesMut;
use catalogue_xlreg::{
    crypto::SessionKeys,
    frame::{FrameError, MAX_REQUEST_MESSAGE_LEN, MsgDecoder, Role},
    protocol::{Reply, Request},
    session::{Next, SessionState},
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
    let sealed = head[0] & 2 != 0;
    let chunk = usize::from(head[0] >> 2).max(1);
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
    if sealed {
        let wire = seal_all(&keys, stream);
        server_side(&keys, salt2, &wire, chunk, true);
    } else {
        server_side(&keys, salt2, stream, chunk, false);
        client_side(&keys, stream, chunk);
    }
});

/// Seals each length-prefixed plaintext of `stream` as the client would.
fn seal_all(keys: &SessionKeys, mut stream: &[u8]) -> Vec<u8> {
    let mut sealer = keys.sealer(Role::Client);
    let mut wire = Vec::new();
    while stream.len() >= 2 {
        let len =
            usize::from(u16::from_be_bytes([stream[0], stream[1]])).min(MAX_REQUEST_MESSAGE_LEN);
        let (plain, rest) = stream[2..].split_at(len.min(stream.len() - 2));
        wire.extend(sealer.seal(plain).expect("a plaintext under 64 KiB seals"));
        stream = rest;
    }
    wire
}

/// The registry's side: decode, then the session's rules.
fn server_side(keys: &SessionKeys, salt2: [u8; 8], wire: &[u8], chunk: usize, sealed: bool) {
    let mut decoder = MsgDecoder(keys.opener(Role::Server));
    let mut session = SessionState::new(salt2);
    let mut buf = BytesMut::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let was_closing = session.closing();
                    let next = session.receive(msg);
                    if was_closing {
                        assert!(next.is_none(), "a closing session answered again");
                    }
                    if let Some(Next::Execute(
                        Request::NewClient { .. } | Request::ReturningClient { .. },
                    )) = next
                    {
                        session.executed(Some(vec![1; 32]), None);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if sealed {
                        assert!(
                            matches!(e, FrameError::Decode(_)),
                            "a sealed frame failed to open: {e}"
                        );
                    }
                    return;
                }
            }
        }
    }
}

/// A client's side: decode what the server sent, parse it as a reply.
fn client_side(keys: &SessionKeys, wire: &[u8], chunk: usize) {
    let mut decoder = MsgDecoder(keys.opener(Role::Client));
    let mut buf = BytesMut::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => {
                    let _ = Reply::from_envelope(msg);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}
