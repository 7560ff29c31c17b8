//! A `ServiceEvent` frame built from bytes encoded once per event.
//!
//! When one change matches many subscriptions, every frame the node sends
//! for it differs only in the frame's serial and the event's
//! `subscription_id`. [`EventFields`] holds the rest of the `ServiceEvent`
//! (fields 2 to 8) encoded once; [`encode_event_frame`] writes a whole
//! length-prefixed `Frame` around it, with a copy of those bytes and no
//! allocation. Fields are written in tag order, as prost writes them, so
//! the bytes are the very ones `Frame::encode` produces for the same
//! message (tested below): a reader cannot tell the two apart.
//!
//! ```text
//! u32 length | Frame.serial (1, if not 0) | key of Frame.service_event (7)
//!            | length | ServiceEvent.subscription_id (1, if not 0) | fields 2..8
//! ```

use bytes::{BufMut, BytesMut};
use prost::{
    Message,
    encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len},
};

use super::{CodecError, LENGTH_PREFIX_LEN, MAX_REPRESENTABLE_LEN};
use crate::catalogue::ServiceEvent;

/// Tag of `Frame.serial`.
const SERIAL_TAG: u32 = 1;
/// Tag of `Frame.service_event` in the body oneof.
const SERVICE_EVENT_TAG: u32 = 7;
/// Tag of `ServiceEvent.subscription_id`.
const SUBSCRIPTION_ID_TAG: u32 = 1;
/// Tag of `ServiceEvent.also` (packed).
const ALSO_TAG: u32 = 9;

/// A `ServiceEvent`'s fields but its `subscription_id`, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFields(Box<[u8]>);

impl EventFields {
    /// Encodes `event` without its `subscription_id` (which is ignored).
    pub fn encode(event: &ServiceEvent) -> Self {
        let mut rest = event.clone();
        rest.subscription_id = 0;
        EventFields(rest.encode_to_vec().into_boxed_slice())
    }

    /// The encoded fields.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Length of an optional proto3 `uint64` field (absent when 0).
fn uint64_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(value)
    }
}

/// Writes an optional proto3 `uint64` field (nothing when 0).
fn put_uint64(tag: u32, value: u64, dst: &mut BytesMut) {
    if value != 0 {
        encode_key(tag, WireType::Varint, dst);
        encode_varint(value, dst);
    }
}

/// Length of the packed `also` field (absent when empty): key, length,
/// and the ids' varints, whose sum is `ids_len`.
fn also_len(ids_len: usize) -> usize {
    if ids_len == 0 {
        0
    } else {
        key_len(ALSO_TAG) + encoded_len_varint(ids_len as u64) + ids_len
    }
}

/// Appends to `dst` the length-prefixed `Frame { serial, service_event }`
/// whose event is `fields` with `subscription_id` and, when not empty,
/// `also` (the further subscriptions of a grouped delivery); refuses a
/// frame longer than `max` as the codec does.
pub fn encode_event_frame(
    serial: u64,
    subscription_id: u64,
    also: &[u64],
    fields: &EventFields,
    max: usize,
    dst: &mut BytesMut,
) -> Result<(), CodecError> {
    let ids_len: usize = also.iter().map(|&id| encoded_len_varint(id)).sum();
    let event_len =
        uint64_len(SUBSCRIPTION_ID_TAG, subscription_id) + fields.0.len() + also_len(ids_len);
    let len = uint64_len(SERIAL_TAG, serial)
        + key_len(SERVICE_EVENT_TAG)
        + encoded_len_varint(event_len as u64)
        + event_len;
    let max = max.min(MAX_REPRESENTABLE_LEN);
    if len > max {
        return Err(CodecError::FrameTooLarge {
            len: len as u64,
            max,
        });
    }
    let Ok(prefix) = u32::try_from(len) else {
        return Err(CodecError::FrameTooLarge {
            len: len as u64,
            max,
        });
    };
    dst.reserve(LENGTH_PREFIX_LEN + len);
    dst.put_u32(prefix);
    put_uint64(SERIAL_TAG, serial, dst);
    encode_key(SERVICE_EVENT_TAG, WireType::LengthDelimited, dst);
    encode_varint(event_len as u64, dst);
    put_uint64(SUBSCRIPTION_ID_TAG, subscription_id, dst);
    dst.put_slice(&fields.0);
    if ids_len > 0 {
        encode_key(ALSO_TAG, WireType::LengthDelimited, dst);
        encode_varint(ids_len as u64, dst);
        for &id in also {
            encode_varint(id, dst);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio_util::codec::Encoder;

    use super::*;
    use crate::{
        Body, Frame, FrameCodec,
        catalogue::{EventKind, Timestamp},
    };

    fn event(subscription_id: u64, attrs: usize, uri_len: usize) -> ServiceEvent {
        ServiceEvent {
            subscription_id,
            kind: EventKind::Added as i32,
            uri: "u".repeat(uri_len),
            attrs: (0..attrs)
                .map(|i| (format!("k{i}"), format!("v{i}")))
                .collect(),
            origin: "node-a".into(),
            ts: Some(Timestamp {
                physical_ms: 1_700_000_000_000,
                logical: 5,
            }),
            snapshot: false,
            revision: 42,
            also: Vec::new(),
        }
    }

    /// The spliced frame is byte for byte what the codec writes for the
    /// whole message, for serials and ids of every varint width (0 absent)
    /// and events whose length needs one, two or three length bytes.
    #[test]
    fn the_spliced_frame_is_the_codec_s_frame() {
        let groups: [&[u64]; 4] = [&[], &[2], &[0, 127, 128, u64::MAX], &[7; 200]];
        for (attrs, uri_len) in [(0, 1), (3, 20), (40, 100), (2, 20_000)] {
            for serial in [0, 1, 127, 128, 1 << 20, u64::MAX] {
                for (id, also) in [0, 1, 300, u64::MAX].into_iter().zip(groups) {
                    let mut whole = event(id, attrs, uri_len);
                    whole.also = also.to_vec();
                    let mut want = BytesMut::new();
                    FrameCodec::default()
                        .encode(
                            Frame::new(serial, Body::ServiceEvent(whole.clone())),
                            &mut want,
                        )
                        .expect("encodes");
                    let mut other = whole.clone();
                    other.subscription_id = 999;
                    other.also.clear();
                    let fields = EventFields::encode(&other);
                    let mut got = BytesMut::new();
                    encode_event_frame(serial, id, also, &fields, usize::MAX >> 32, &mut got)
                        .expect("encodes");
                    assert_eq!(
                        got,
                        want,
                        "serial {serial}, id {id}, also {}, attrs {attrs}",
                        also.len()
                    );
                }
            }
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_and_nothing_written() {
        let fields = EventFields::encode(&event(1, 0, 100));
        let mut dst = BytesMut::new();
        let err = encode_event_frame(5, 1, &[], &fields, 50, &mut dst).expect_err("too large");
        assert!(
            matches!(err, CodecError::FrameTooLarge { max: 50, .. }),
            "{err}"
        );
        assert!(dst.is_empty());
    }
}
