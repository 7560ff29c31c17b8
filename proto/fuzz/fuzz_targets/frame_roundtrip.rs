//! Fuzz target: structured frames through the encoder and back.
//!
//! The input is turned into a `Frame` with `arbitrary` (the `arbitrary`
//! feature of catalogue-proto derives it for every generated type), plus a
//! chunk size. The frame is encoded twice into one stream, and the stream is
//! decoded in chunks of that size: exactly those two frames must come out,
//! equal to the original, and nothing may be left over.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use catalogue_proto::{DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fuzz_target!(|data: &[u8]| {
    let mut input = Unstructured::new(data);
    let Ok(chunk) = input.int_in_range(1..=64usize) else {
        return;
    };
    let Ok(frame) = Frame::arbitrary_take_rest(input) else {
        return;
    };

    let mut codec = FrameCodec::new(DEFAULT_MAX_FRAME_LEN);
    let mut stream = BytesMut::new();
    if codec.encode(&frame, &mut stream).is_err() {
        // Larger than the limit: refused, which is what the limit is for.
        return;
    }
    codec
        .encode(&frame, &mut stream)
        .expect("the same frame encodes a second time");

    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(f) = codec.decode(&mut buf).expect("an encoded frame decodes") {
            decoded.push(f);
        }
    }
    assert!(
        codec
            .decode_eof(&mut buf)
            .expect("nothing is left over")
            .is_none(),
        "no third frame"
    );
    assert_eq!(decoded.len(), 2, "two frames in, two frames out");
    for f in &decoded {
        assert_eq!(f, &frame, "a frame changed in the round trip");
    }
});
