//! Fuzz target: arbitrary bytes through the frame decoder.
//!
//! The first input byte is the chunk size (0 is read as 1); the rest is the
//! byte stream, handed to `FrameCodec` that many bytes at a time, as a socket
//! would. After each chunk `decode` is called until it wants more bytes or
//! fails; at the end `decode_eof` is called until it returns `None` or
//! fails. The decoder must never panic or allocate for an oversized prefix,
//! and every frame it returns must survive a re-encode: encoding it and
//! decoding the result gives the same frame, and encoding that again gives
//! the same bytes.

#![no_main]

use bytes::BytesMut;
use catalogue_proto::{Frame, FrameCodec};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

/// Frame limit while fuzzing: small enough that the fuzzer reaches it.
const MAX_FRAME_LEN: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    for frame in decode_stream(stream, chunk) {
        check_round_trip(&frame);
    }
});

/// Decodes `stream` fed `chunk` bytes at a time, stopping at the first
/// error, and returns the frames decoded before it.
fn decode_stream(stream: &[u8], chunk: usize) -> Vec<Frame> {
    let mut codec = FrameCodec::new(MAX_FRAME_LEN);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => return frames,
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {
                assert!(
                    buf.is_empty(),
                    "decode_eof ended with {} bytes left",
                    buf.len()
                );
                return frames;
            }
            Err(_) => return frames,
        }
    }
}

/// Re-encodes `frame` and checks the bytes decode to the same frame.
fn check_round_trip(frame: &Frame) {
    // Re-encoding drops redundant input (repeated fields of one message,
    // explicit defaults, overlong varints), so the new bytes are no longer
    // than the old and fit the same limit.
    let mut codec = FrameCodec::new(MAX_FRAME_LEN);
    let mut encoded = BytesMut::new();
    codec
        .encode(frame, &mut encoded)
        .expect("a decoded frame re-encodes within the limit");
    assert_eq!(
        encoded.len(),
        4 + frame.encoded_len(),
        "prefix plus body is the whole encoding"
    );
    let first_encoding = encoded.clone().freeze();

    let again = codec
        .decode(&mut encoded)
        .expect("re-encoded bytes decode")
        .expect("re-encoded bytes hold a whole frame");
    assert!(
        encoded.is_empty(),
        "the re-encoded frame is consumed exactly"
    );
    assert_eq!(&again, frame, "the frame changed in a round trip");

    let mut second_encoding = BytesMut::new();
    codec
        .encode(&again, &mut second_encoding)
        .expect("the round-tripped frame re-encodes");
    assert_eq!(
        first_encoding, second_encoding,
        "encoding the same frame twice gave different bytes"
    );
}
