//! Checks the worked hex examples of `docs/PROTOCOL.md` against the codec.
//!
//! Each example in the document is a fenced block that follows a
//! `<!-- wire-example: NAME -->` marker; every line of the block starts with
//! the bytes it explains, written as two-digit hex numbers, followed by prose.
//! This test reads those bytes back out of the document, so the document and
//! the test cannot drift apart: for each example it encodes the frame the
//! document describes and requires exactly the bytes shown, and it decodes
//! the shown bytes and requires the same frame.

use bytes::BytesMut;
use catalogue_proto::{
    Frame, FrameCodec,
    catalogue::{Ack, Hello, frame::Body},
};
use tokio_util::codec::{Decoder, Encoder};

const PROTOCOL_MD: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"));

const MARKER_START: &str = "<!-- wire-example:";

/// The frames the document's examples describe, by example name.
fn described_frames() -> Vec<(&'static str, Frame)> {
    vec![
        ("ack", Frame::new(5, Body::Ack(Ack { ack_serial: 1 }))),
        (
            "ack-with-ids",
            Frame {
                serial: 4,
                src: Some(0),
                dst: Some(1),
                body: Some(Body::Ack(Ack { ack_serial: 1 })),
            },
        ),
        (
            "hello",
            Frame::new(
                0,
                Body::Hello(Hello {
                    name: "A".to_owned(),
                }),
            ),
        ),
    ]
}

/// The leading two-digit hex numbers of a line, up to the first word that is
/// not one.
fn leading_hex_bytes(line: &str) -> Vec<u8> {
    line.split_whitespace()
        .map_while(|word| {
            (word.len() == 2)
                .then(|| u8::from_str_radix(word, 16).ok())
                .flatten()
        })
        .collect()
}

/// Every example in the document: its name and the bytes its block shows.
fn examples_in_doc(doc: &str) -> Vec<(String, Vec<u8>)> {
    let mut examples = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim().strip_prefix(MARKER_START) else {
            continue;
        };
        let name = rest
            .strip_suffix("-->")
            .unwrap_or_else(|| panic!("unterminated example marker: {line:?}"))
            .trim()
            .to_owned();
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.trim_start().starts_with("```"),
            "example {name}: the marker must be followed by a fenced block, found {fence:?}"
        );
        let mut bytes = Vec::new();
        for body_line in lines.by_ref() {
            if body_line.trim_start().starts_with("```") {
                break;
            }
            let shown = leading_hex_bytes(body_line);
            assert!(
                !shown.is_empty(),
                "example {name}: a line without bytes: {body_line:?}"
            );
            bytes.extend(shown);
        }
        examples.push((name, bytes));
    }
    examples
}

fn encode(frame: &Frame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    FrameCodec::default()
        .encode(frame, &mut buf)
        .expect("a small frame encodes");
    buf.to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_document_has_exactly_the_described_examples() {
    let in_doc: Vec<String> = examples_in_doc(PROTOCOL_MD)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let described: Vec<&str> = described_frames().iter().map(|(n, _)| *n).collect();
    assert_eq!(in_doc, described, "examples in docs/PROTOCOL.md");
}

#[test]
fn the_bytes_shown_are_what_the_codec_writes() {
    let in_doc = examples_in_doc(PROTOCOL_MD);
    for (name, frame) in described_frames() {
        let (_, shown) = in_doc
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("example {name} is missing from docs/PROTOCOL.md"));
        let written = encode(&frame);
        assert_eq!(
            hex(shown),
            hex(&written),
            "example {name}: docs/PROTOCOL.md shows the first bytes, the codec writes the second"
        );
    }
}

#[test]
fn the_bytes_shown_decode_to_the_described_frame() {
    for (name, shown) in examples_in_doc(PROTOCOL_MD) {
        let (_, frame) = described_frames()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("example {name} has no described frame"));
        let mut buf = BytesMut::from(&shown[..]);
        let decoded = FrameCodec::default()
            .decode_eof(&mut buf)
            .unwrap_or_else(|e| panic!("example {name} does not decode: {e}"))
            .unwrap_or_else(|| panic!("example {name} holds no frame"));
        assert!(buf.is_empty(), "example {name}: bytes left after the frame");
        assert_eq!(decoded, frame, "example {name}");
    }
}

#[test]
fn the_first_example_is_the_one_quoted_in_prose() {
    // The ten bytes of Ack{ack_serial: 1} sent as serial 5, spelt out here
    // too so that a broken extraction cannot make the checks above vacuous.
    let expected = [0x00, 0x00, 0x00, 0x06, 0x08, 0x05, 0x22, 0x02, 0x08, 0x01];
    assert_eq!(
        encode(&Frame::new(5, Body::Ack(Ack { ack_serial: 1 }))),
        expected
    );
    let in_doc = examples_in_doc(PROTOCOL_MD);
    assert_eq!(
        in_doc.first().map(|(_, b)| b.as_slice()),
        Some(&expected[..])
    );
}

#[test]
fn hex_extraction_stops_at_the_prose() {
    assert_eq!(
        leading_hex_bytes("00 00 00 0a   length prefix: 10 bytes follow"),
        [0, 0, 0, 0x0a]
    );
    assert_eq!(leading_hex_bytes("03            3 bytes:"), [3]);
    assert_eq!(leading_hex_bytes("41              \"A\""), [0x41]);
    assert!(leading_hex_bytes("field 1").is_empty());
}
