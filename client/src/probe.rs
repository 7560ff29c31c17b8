//! Telling what answered at an endpoint that may not be a node's client
//! port, from the first thing it sends. A node's client and peer ports send
//! their `Welcome` as soon as they accept; an HTTP server (the metrics
//! endpoint, the HTTP API), an xlReg registry and a TLS client port
//! (`listen.client_tls` on) wait for the client to speak. So a client that
//! has heard nothing after [`PROBE_AFTER`] speaks first, with a probe that
//! a slow node answers harmlessly and each of the others answers at once:
//!
//! - the probe is a `ListPeers` request under the serial [`PROBE_SERIAL`],
//!   which no request of the client uses, so a node's reply to it is
//!   dropped by the connection task like any reply nobody waits for;
//! - padded with an unknown protobuf field (which decoders skip) to
//!   [`PROBE_LEN`] bytes, more than the largest xlReg Hello (one RSA
//!   modulus, 1024 bytes at 8192 bits), so a registry reads a whole Hello,
//!   fails to decrypt it and closes;
//! - its length prefix is no HTTP method, so an HTTP server answers
//!   `HTTP/1.1 400` at once, and it is no TLS record, so a TLS server
//!   answers with an alert (or closes).
//!
//! [`identify`] then names what it reached from that first read: the
//! four bytes `HTTP` or a TLS record header read as a frame's length, a
//! peer port's `Welcome`, or a close after the probe (a registry, or a TLS
//! port whose alert was lost to the reset its close causes: the probe's
//! unread bytes make the kernel reset the connection).

use std::time::Duration;

use catalogue_proto::{
    Body, CodecError, Frame,
    catalogue::{ListPeers, Welcome, WelcomePort},
};
use prost::Message as _;

use super::ClientError;

/// How long a client waits for the node's `Welcome` before it probes.
pub(super) const PROBE_AFTER: Duration = Duration::from_millis(250);

/// The serial of the probe request: the top of the range, never reached
/// by the client's own serials, which count up from 0.
pub(super) const PROBE_SERIAL: u64 = u64::MAX;

/// Bytes of the probe's body, padding included.
pub(super) const PROBE_LEN: usize = 1100;

/// The unknown field that pads the probe (any number the schema does not
/// use; 2047 is the largest with a two-byte key).
const PADDING_FIELD: u32 = 2047;

/// "HTTP" read as a frame's length prefix: an HTTP server answered.
const HTTP_AS_LENGTH: u64 = u32::from_be_bytes(*b"HTTP") as u64;

/// The probe on the wire: length prefix, then a `Frame` holding a
/// `ListPeers` request and padding.
pub(super) fn probe_bytes() -> Vec<u8> {
    let frame = Frame::new(PROBE_SERIAL, Body::ListPeers(ListPeers {}));
    let mut body = frame.encode_to_vec();
    // Field key (wire type 2, length-delimited), then the length.
    prost::encoding::encode_key(
        PADDING_FIELD,
        prost::encoding::WireType::LengthDelimited,
        &mut body,
    );
    // key (2 bytes) and length (2 bytes) are already counted in the sum.
    let fill = PROBE_LEN.saturating_sub(body.len() + 2);
    prost::encoding::encode_varint(fill as u64, &mut body);
    body.resize(body.len() + fill, 0);
    let mut wire = Vec::with_capacity(4 + body.len());
    wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
    wire.extend_from_slice(&body);
    wire
}

/// What the endpoint's first read (`None`: it closed) means: the node's
/// `Welcome`, or an error naming what answered instead. `probed` says
/// whether the client had spoken first.
pub(super) fn identify(
    endpoint: &str,
    first: Option<Result<Frame, CodecError>>,
    probed: bool,
) -> Result<Welcome, ClientError> {
    let wrong = |what: String| ClientError::WrongEndpoint {
        endpoint: endpoint.to_string(),
        what,
    };
    match first {
        Some(Ok(Frame {
            body: Some(Body::Welcome(w)),
            ..
        })) if w.port() == WelcomePort::Peer => Err(wrong(format!(
            "the peer port of node {} (listen.peer), for links between nodes",
            w.server_name
        ))),
        Some(Ok(Frame {
            body: Some(Body::Welcome(w)),
            ..
        })) => Ok(w),
        Some(Ok(Frame {
            body: Some(Body::Error(e)),
            ..
        })) => Err(ClientError::Server {
            code: e.code(),
            message: e.message,
        }),
        Some(Ok(other)) => Err(ClientError::Protocol(format!(
            "expected Welcome, got {}",
            other.kind()
        ))),
        Some(Err(CodecError::FrameTooLarge { len, .. })) if len == HTTP_AS_LENGTH => Err(wrong(
            "an HTTP server (a node's metrics endpoint, metrics.listen, or its HTTP API, \
             http.listen)"
                .into(),
        )),
        Some(Err(CodecError::FrameTooLarge { len, .. })) if is_tls_record(len) => Err(wrong(
            "a TLS server: a client port with listen.client_tls on needs --tls-ca with the \
             cluster CA"
                .into(),
        )),
        Some(Err(CodecError::Io(_))) | None if probed => Err(wrong(
            "an endpoint that waits for its client to speak first and hung up at a catalogue \
             request without a word: an xlReg registry (xlreg.listen), or a client port with \
             listen.client_tls on (pass --tls-ca with the cluster CA)"
                .into(),
        )),
        Some(Err(e)) => Err(e.into()),
        None => Err(ClientError::Disconnected),
    }
}

/// Whether a length prefix is the start of a TLS record (an alert or a
/// handshake, versions 3.x).
fn is_tls_record(len: u64) -> bool {
    matches!(len >> 16, 0x1503 | 0x1603)
}

/// The error when nothing answered, not even the probe, by `deadline`.
pub(super) fn silent(endpoint: &str, deadline: Duration) -> ClientError {
    ClientError::WrongEndpoint {
        endpoint: endpoint.to_string(),
        what: format!(
            "silent: no Welcome within {deadline:?}, and no answer to a request either (a \
             stalled node, or not a catalogue endpoint)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use catalogue_proto::FrameCodec;
    use tokio_util::bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;

    #[test]
    fn the_probe_is_a_list_peers_under_the_probe_serial_padded_past_an_xlreg_hello() {
        let wire = probe_bytes();
        assert_eq!(wire.len(), 4 + PROBE_LEN);
        let mut buf = BytesMut::from(&wire[..]);
        let frame = FrameCodec::new(4096)
            .decode(&mut buf)
            .expect("decodes")
            .expect("whole");
        assert_eq!(frame.serial, PROBE_SERIAL);
        assert!(matches!(frame.body, Some(Body::ListPeers(_))));
        assert!(buf.is_empty());
        // Not an HTTP method, not a TLS record.
        assert!(!wire.starts_with(b"GET") && !wire.starts_with(b"POST"));
        assert!(!matches!(wire[0], 0x14..=0x17));
    }

    #[test]
    fn http_and_tls_replies_are_named() {
        let http = identify(
            "x",
            Some(Err(CodecError::FrameTooLarge {
                len: HTTP_AS_LENGTH,
                max: 1,
            })),
            true,
        );
        assert!(
            matches!(http, Err(ClientError::WrongEndpoint { what, .. }) if what.contains("HTTP"))
        );
        let alert = u64::from(u32::from_be_bytes([0x15, 0x03, 0x03, 0x00]));
        let tls = identify(
            "x",
            Some(Err(CodecError::FrameTooLarge { len: alert, max: 1 })),
            true,
        );
        assert!(
            matches!(tls, Err(ClientError::WrongEndpoint { what, .. }) if what.contains("--tls-ca"))
        );
    }

    #[test]
    fn a_close_is_a_registry_only_after_the_probe() {
        assert!(matches!(
            identify("x", None, true),
            Err(ClientError::WrongEndpoint { what, .. }) if what.contains("xlReg")
        ));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(
            identify("x", Some(Err(CodecError::Io(reset))), true),
            Err(ClientError::WrongEndpoint { what, .. }) if what.contains("--tls-ca")
        ));
        assert!(matches!(
            identify("x", None, false),
            Err(ClientError::Disconnected)
        ));
    }
}
