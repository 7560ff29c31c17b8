//! Tests of the frame codec: fixed cases for every error path, and property
//! tests (any frame round-trips, chunking does not change what decodes,
//! random bytes never panic).

use arbitrary::{Arbitrary, Unstructured};
use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::*;
use crate::catalogue::{Ack, Subscribe, frame::Body};

fn encode_one(frame: &Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    FrameCodec::default()
        .encode(frame, &mut buf)
        .expect("encode");
    buf
}

/// Decodes everything in `bytes`, handing them to the codec `chunk` bytes at
/// a time (0 means all at once), then signals end of stream. Returns the
/// frames and the first error, rendered, if any.
fn decode_chunked(bytes: &[u8], chunk: usize, max: usize) -> (Vec<Frame>, Option<String>) {
    let mut codec = FrameCodec::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let step = if chunk == 0 {
        bytes.len().max(1)
    } else {
        chunk
    };
    for piece in bytes.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e.to_string())),
        }
    }
}

fn arbitrary_frame(seed: &[u8]) -> Frame {
    Frame::arbitrary_take_rest(Unstructured::new(seed)).unwrap_or_default()
}

#[test]
fn a_frame_is_prefixed_with_its_big_endian_length() {
    let frame = Frame::new(5, Body::Ack(Ack { ack_serial: 1 }));
    let buf = encode_one(&frame);
    let body_len = frame.encoded_len();
    assert_eq!(&buf[..4], &(body_len as u32).to_be_bytes());
    assert_eq!(buf.len(), 4 + body_len);
}

#[test]
fn partial_input_asks_for_more_bytes() {
    let buf = encode_one(&Frame::new(1, Body::Ack(Ack { ack_serial: 9 })));
    let mut codec = FrameCodec::default();
    for cut in 0..buf.len() {
        let mut partial = BytesMut::from(&buf[..cut]);
        assert!(
            codec.decode(&mut partial).expect("no error").is_none(),
            "cut {cut}"
        );
    }
}

#[test]
fn oversized_length_is_refused_before_allocating() {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    buf.put_u32(u32::MAX);
    let capacity_before = buf.capacity();
    match codec.decode(&mut buf) {
        Err(CodecError::FrameTooLarge { len, max }) => {
            assert_eq!(len, u64::from(u32::MAX));
            assert_eq!(max, DEFAULT_MAX_FRAME_LEN);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(
        buf.capacity(),
        capacity_before,
        "no room reserved for the body"
    );
}

#[test]
fn one_byte_over_the_limit_is_refused_and_the_limit_itself_accepted() {
    let max = 64;
    let mut codec = FrameCodec::new(max);
    let mut over = BytesMut::new();
    over.put_u32(max as u32 + 1);
    assert!(matches!(
        codec.decode(&mut over),
        Err(CodecError::FrameTooLarge { len: 65, max: 64 })
    ));
    // A body of exactly `max` bytes: a Subscribe whose regex fills it.
    let frame = (0..max)
        .map(|n| {
            let regex = "a".repeat(n);
            Frame::new(
                0,
                Body::Subscribe(Subscribe {
                    subscription_id: 0,
                    regex,
                    ..Default::default()
                }),
            )
        })
        .find(|f| f.encoded_len() == max)
        .expect("some regex length gives a body of exactly max bytes");
    let mut buf = BytesMut::new();
    codec.encode(&frame, &mut buf).expect("exactly max encodes");
    assert_eq!(codec.decode(&mut buf).expect("decodes"), Some(frame));
}

#[test]
fn encoding_more_than_the_limit_is_an_error() {
    let mut codec = FrameCodec::new(16);
    let frame = Frame::new(
        0,
        Body::Subscribe(Subscribe {
            subscription_id: 1,
            regex: "x".repeat(100),
            ..Default::default()
        }),
    );
    let mut buf = BytesMut::new();
    assert!(matches!(
        codec.encode(&frame, &mut buf),
        Err(CodecError::FrameTooLarge { .. })
    ));
    assert!(buf.is_empty(), "nothing written for a refused frame");
}

#[test]
fn stream_ending_inside_a_frame_is_truncated() {
    let buf = encode_one(&Frame::new(3, Body::Ack(Ack { ack_serial: 2 })));
    let whole = buf.len();
    let mut codec = FrameCodec::default();
    let mut partial = BytesMut::from(&buf[..whole - 1]);
    match codec.decode_eof(&mut partial) {
        Err(CodecError::Truncated { received, expected }) => {
            assert_eq!(received, whole - 1);
            assert_eq!(expected, whole);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let mut two = BytesMut::from(&buf[..2]);
    assert!(matches!(
        codec.decode_eof(&mut two),
        Err(CodecError::Truncated { received: 2, .. })
    ));
    assert!(matches!(codec.decode_eof(&mut BytesMut::new()), Ok(None)));
}

#[test]
fn undecodable_body_is_a_decode_error() {
    let mut buf = BytesMut::new();
    // Field 28 (bye), length-delimited, claiming 200 bytes that are not there.
    let body = [0xE2, 0x01, 0xC8, 0x01];
    buf.put_u32(body.len() as u32);
    buf.extend_from_slice(&body);
    let err = FrameCodec::default()
        .decode(&mut buf)
        .expect_err("must fail");
    assert!(matches!(err, CodecError::Decode(_)), "{err:?}");
    assert_eq!(err.error_code(), Some(ErrorCode::Undecodable));
}

#[test]
fn invalid_utf8_in_a_string_is_a_decode_error() {
    // Bye { reason = 0xFF 0xFE }: field 28, wire type 2 -> tag 0xE2 0x01.
    let mut inner = vec![0x0A, 0x02, 0xFF, 0xFE];
    let mut body = vec![0xE2, 0x01, inner.len() as u8];
    body.append(&mut inner);
    let mut buf = BytesMut::new();
    buf.put_u32(body.len() as u32);
    buf.extend_from_slice(&body);
    assert!(matches!(
        FrameCodec::default().decode(&mut buf),
        Err(CodecError::Decode(_))
    ));
}

#[test]
fn several_frames_in_one_buffer_decode_in_order() {
    let frames: Vec<Frame> = (0..5)
        .map(|i| Frame::new(i, Body::Ack(Ack { ack_serial: i * 10 })))
        .collect();
    let mut bytes = Vec::new();
    for f in &frames {
        bytes.extend_from_slice(&encode_one(f));
    }
    let (decoded, err) = decode_chunked(&bytes, 0, DEFAULT_MAX_FRAME_LEN);
    assert_eq!(err, None);
    assert_eq!(decoded, frames);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_frame_round_trips(seed in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let frame = arbitrary_frame(&seed);
        let mut buf = encode_one(&frame);
        let decoded = FrameCodec::default().decode(&mut buf).expect("decodes");
        prop_assert_eq!(decoded, Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn chunking_does_not_change_what_decodes(
        seeds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 1..8),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        chunk in 1usize..64,
    ) {
        let originals: Vec<Frame> = seeds.iter().map(|s| arbitrary_frame(s)).collect();
        let mut bytes = Vec::new();
        for frame in &originals {
            bytes.extend_from_slice(&encode_one(frame));
        }
        bytes.extend_from_slice(&garbage);
        let at_once = decode_chunked(&bytes, 0, 4096);
        let chunked = decode_chunked(&bytes, chunk, 4096);
        prop_assert_eq!(&at_once, &chunked);
        // The well-formed prefix always decodes; only the garbage may fail.
        prop_assert!(at_once.0.len() >= originals.len());
        prop_assert_eq!(&at_once.0[..originals.len()], &originals[..]);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        chunk in 0usize..300,
    ) {
        let (frames, _) = decode_chunked(&bytes, chunk, 1024);
        // Whatever decoded re-encodes within the limit.
        for f in frames {
            prop_assert!(f.encoded_len() <= 1024);
        }
    }
}

// ------------------------------------------------ memory held by a reader

/// A length prefix announcing `len`, followed by `sent` bytes of body.
fn announced(len: u32, sent: usize) -> Vec<u8> {
    let mut bytes = len.to_be_bytes().to_vec();
    bytes.resize(LENGTH_PREFIX_LEN + sent, 0x08);
    bytes
}

/// Feeds `bytes` to `codec` the way tokio-util's frame reader does: makes
/// room for one byte, reads into the spare room of `buf`, `chunk` bytes at
/// most per read, decodes after each read. Returns the frames decoded.
fn read_like_a_socket(
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
    bytes: &[u8],
    chunk: usize,
    mut after_each_read: impl FnMut(&FrameCodec, &BytesMut),
) -> Result<Vec<Frame>, CodecError> {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let before = buf.capacity();
        buf.reserve(1);
        assert!(
            before == 0 || buf.capacity() == before,
            "the codec left no room to read into"
        );
        let room = buf.capacity() - buf.len();
        let n = rest.len().min(room).min(chunk);
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(frame) = codec.decode(buf)? {
            frames.push(frame);
        }
        after_each_read(codec, buf);
    }
    Ok(frames)
}

#[test]
fn a_4_mib_announcement_with_100_bytes_sent_holds_about_100_bytes() {
    // Before: the decoder reserved the whole announced frame (4 MiB).
    let budget = InputBudget::new(usize::MAX);
    let mut codec = FrameCodec::default().with_budget(&budget);
    let mut buf = BytesMut::with_capacity(512);
    let bytes = announced(DEFAULT_MAX_FRAME_LEN as u32, 100);
    let frames = read_like_a_socket(&mut codec, &mut buf, &bytes, usize::MAX, |_, _| {})
        .expect("waits for more");
    assert!(frames.is_empty());
    assert_eq!(codec.buffered(), 104, "charged: the bytes that arrived");
    assert_eq!(budget.held(), 104);
    assert!(
        buf.capacity() <= 104 + READ_STEP,
        "room for at most READ_STEP more bytes, not the announced 4 MiB: capacity {}",
        buf.capacity()
    );
}

#[test]
fn the_buffer_grows_with_the_bytes_received_and_shrinks_after_a_large_frame() {
    let budget = InputBudget::new(usize::MAX);
    let mut codec = FrameCodec::default().with_budget(&budget);
    let mut buf = BytesMut::with_capacity(512);
    let frame = Frame::new(
        1,
        Body::Subscribe(Subscribe {
            subscription_id: 1,
            regex: "r".repeat(1 << 20),
            ..Default::default()
        }),
    );
    let bytes = encode_one(&frame);
    let mut reads = 0;
    let mut largest = 0;
    let frames = read_like_a_socket(&mut codec, &mut buf, &bytes, 16 * 1024, |codec, buf| {
        reads += 1;
        largest = largest.max(buf.capacity());
        if !buf.is_empty() {
            assert_eq!(codec.buffered(), buf.len(), "the charge follows the bytes");
            assert!(
                buf.capacity() <= 2 * buf.len() + READ_STEP,
                "capacity {} for {} bytes held",
                buf.capacity(),
                buf.len()
            );
        }
    })
    .expect("decodes");
    assert_eq!(frames, vec![frame]);
    assert!(reads > 60, "read in steps ({reads} reads)");
    assert!(
        largest >= bytes.len(),
        "the whole frame was held at the end"
    );
    assert_eq!(codec.buffered(), 0, "nothing charged once the frame is out");
    assert_eq!(budget.held(), 0);
    assert!(
        buf.capacity() <= READ_STEP,
        "a small buffer replaces the large one: capacity {}",
        buf.capacity()
    );
}

#[test]
fn a_connection_whose_bytes_would_exceed_the_budget_is_refused() {
    let budget = InputBudget::new(10_000);
    let mut a = FrameCodec::default().with_budget(&budget);
    let mut b = a.clone();
    let mut buf_a = BytesMut::new();
    let mut buf_b = BytesMut::new();
    read_like_a_socket(
        &mut a,
        &mut buf_a,
        &announced(1 << 20, 6_000),
        1024,
        |_, _| {},
    )
    .expect("within the budget");
    assert_eq!(budget.held(), 6_004);
    let err = read_like_a_socket(
        &mut b,
        &mut buf_b,
        &announced(1 << 20, 6_000),
        1024,
        |_, _| {},
    )
    .expect_err("over the budget");
    assert!(
        matches!(
            err,
            CodecError::BudgetExceeded(BudgetExceeded { limit: 10_000, .. })
        ),
        "{err:?}"
    );
    assert_eq!(err.error_code(), Some(ErrorCode::LimitExceeded));
    assert_eq!(
        b.buffered(),
        0,
        "the refused connection gives its bytes back"
    );
    assert_eq!(budget.held(), 6_004, "the other one keeps its own");
    drop(a);
    assert_eq!(budget.held(), 0, "a dropped codec gives its bytes back");
}

#[test]
fn the_first_frame_has_its_own_smaller_limit() {
    let small = Frame::new(0, Body::Ack(Ack { ack_serial: 1 }));
    let big = Frame::new(
        1,
        Body::Subscribe(Subscribe {
            subscription_id: 1,
            regex: "x".repeat(200),
            ..Default::default()
        }),
    );
    // A large first frame is refused at the small limit...
    let mut codec = FrameCodec::new(4096).with_first_frame_limit(64);
    assert_eq!(codec.limit_now(), 64);
    let mut buf = encode_one(&big);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::FrameTooLarge { max: 64, .. })
    ));
    // ... and accepted after a first frame that fits.
    let mut codec = FrameCodec::new(4096).with_first_frame_limit(64);
    let mut buf = encode_one(&small);
    buf.extend_from_slice(&encode_one(&big));
    assert_eq!(codec.decode(&mut buf).expect("small"), Some(small));
    assert_eq!(codec.limit_now(), 4096);
    assert_eq!(codec.decode(&mut buf).expect("big"), Some(big));
}

#[test]
fn a_clone_shares_the_budget_but_not_the_charge() {
    let budget = InputBudget::new(1000);
    let mut a = FrameCodec::new(4096).with_budget(&budget);
    let mut buf = BytesMut::from(&announced(500, 100)[..]);
    assert!(a.decode(&mut buf).expect("partial").is_none());
    let b = a.clone();
    assert_eq!((a.buffered(), b.buffered()), (104, 0));
    assert_eq!(budget.held(), 104);
    drop(a);
    drop(b);
    assert_eq!(budget.held(), 0);
}
