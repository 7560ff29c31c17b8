//! The writing half of a client connection and of a peer link: a task
//! that takes frame bodies from a bounded channel, stamps each with the
//! connection's next serial ([`run`]; a peer link's session numbers its own
//! frames, [`run_frames`]), and writes them, flushing when the channel runs
//! dry. The channel's bound
//! is the back-pressure: producers (the connection actor, its
//! subscriptions) wait or queue when the client reads slowly.
//!
//! A live change that many subscriptions receive travels as
//! [`Outbound::Event`]: a reference to the change, whose fields are encoded
//! once and spliced into each frame ([`crate::routed`]).
//!
//! The task ends when every sender is gone (the connection and its
//! subscriptions have stopped): it flushes what is left and shuts the
//! socket's write side, so a final `Bye` or `Error` reaches the client.

use std::sync::Arc;

use bytes::BytesMut;
use catalogue_proto::{Body, CodecError, Frame, FrameCodec, encode_event_frame};
use futures_util::SinkExt;
use tokio::{io::AsyncWrite, sync::mpsc};
use tokio_util::codec::{Encoder, FramedWrite};
use tracing::{debug, warn};

use crate::routed::SharedEvent;

/// Frames that may wait in a connection's outbound channel.
pub const OUTBOUND_FRAMES: usize = 256;

/// What a connection's outbound channel carries. The channel allocates
/// its slots 32 at a time, the first 32 when it is made; a `Body` is a few
/// hundred bytes, so it is boxed: unboxed, the slots alone of an idle
/// connection would take about 7 KiB (docs/PERFORMANCE.md, "Memory per
/// idle subscribed connection"). A slot is 16 bytes: two variants, the
/// second told from the first by its non-null `Arc` (a third variant
/// would add a tag and 8 bytes a slot, so a grouped change shares the box
/// with the bodies).
#[derive(Debug)]
pub enum Outbound {
    /// Any frame body, or a grouped change.
    Boxed(Box<Boxed>),
    /// A live change for one subscription, encoded once for all of them.
    Event {
        /// The client's id of the subscription.
        subscription_id: u64,
        /// The change.
        event: Arc<SharedEvent>,
    },
}

/// The boxed frames of [`Outbound`].
#[derive(Debug)]
pub enum Boxed {
    /// Any frame body.
    Body(Body),
    /// A live change for several grouped subscriptions of the connection,
    /// written as one frame naming them all (`ServiceEvent.also`).
    Group(Grouped),
}

/// One change for several subscriptions of a connection that asked for
/// grouped deliveries (`Subscribe.grouped`).
#[derive(Debug)]
pub struct Grouped {
    /// The first subscription's id (the frame's `subscription_id`).
    pub first: u64,
    /// The others' ids (`also`).
    pub also: Vec<u64>,
    /// The change.
    pub event: Arc<SharedEvent>,
}

impl From<Body> for Outbound {
    fn from(body: Body) -> Self {
        Outbound::Boxed(Box::new(Boxed::Body(body)))
    }
}

impl Outbound {
    /// The frame's body as a message (for readers that do not write the
    /// protocol's frames: the HTTP watch).
    pub fn into_body(self) -> Body {
        match self {
            Outbound::Boxed(boxed) => match *boxed {
                Boxed::Body(body) => body,
                Boxed::Group(group) => {
                    let mut body = group.event.body(group.first);
                    if let Body::ServiceEvent(e) = &mut body {
                        e.also = group.also;
                    }
                    body
                }
            },
            Outbound::Event {
                subscription_id,
                event,
            } => event.body(subscription_id),
        }
    }
}

/// A frame ready for the writer: a whole message, or a shared change with
/// the serial and subscription id that make it this connection's frame.
enum Wire {
    Frame(Frame),
    Event {
        serial: u64,
        subscription_id: u64,
        /// Further subscriptions of a grouped delivery.
        also: Vec<u64>,
        event: Arc<SharedEvent>,
    },
}

/// The frame codec, writing a shared change's frame around its encoded
/// fields.
struct WireCodec(FrameCodec);

impl Encoder<Wire> for WireCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Wire, dst: &mut BytesMut) -> Result<(), CodecError> {
        match item {
            Wire::Frame(frame) => self.0.encode(frame, dst),
            Wire::Event {
                serial,
                subscription_id,
                also,
                event,
            } => encode_event_frame(
                serial,
                subscription_id,
                &also,
                event.fields(),
                self.0.max_frame_len(),
                dst,
            ),
        }
    }
}

/// Bytes written before a flush even if more frames are waiting.
const FLUSH_BYTES: usize = 64 * 1024;

/// Initial write buffer of a connection.
const WRITE_BUFFER: usize = 512;

/// Writes everything `rx` yields to `io` until the senders are gone,
/// numbering frames from 0.
pub async fn run<W: AsyncWrite + Unpin>(io: W, rx: mpsc::Receiver<Outbound>, max_frame: usize) {
    let mut serial = 0u64;
    write_loop(io, rx, max_frame, move |out: Outbound| {
        let wire = match out {
            Outbound::Boxed(boxed) => match *boxed {
                Boxed::Body(body) => Wire::Frame(Frame::new(serial, body)),
                Boxed::Group(group) => Wire::Event {
                    serial,
                    subscription_id: group.first,
                    also: group.also,
                    event: group.event,
                },
            },
            Outbound::Event {
                subscription_id,
                event,
            } => Wire::Event {
                serial,
                subscription_id,
                also: Vec::new(),
                event,
            },
        };
        serial += 1;
        wire
    })
    .await;
}

/// Writes frames whose serials the producer assigned (a peer link's
/// session numbers and acknowledges its own frames).
pub async fn run_frames<W: AsyncWrite + Unpin>(io: W, rx: mpsc::Receiver<Frame>, max_frame: usize) {
    write_loop(io, rx, max_frame, Wire::Frame).await;
}

async fn write_loop<W, T>(
    io: W,
    mut rx: mpsc::Receiver<T>,
    max_frame: usize,
    mut to_wire: impl FnMut(T) -> Wire,
) where
    W: AsyncWrite + Unpin,
{
    // A small first buffer (idle connections are many; it grows for a
    // burst), flushed at the codec's usual 8 KiB as before.
    let mut framed =
        FramedWrite::with_capacity(io, WireCodec(FrameCodec::new(max_frame)), WRITE_BUFFER);
    framed.set_backpressure_boundary(8 * 1024);
    while let Some(item) = rx.recv().await {
        let mut next = Some(item);
        while let Some(item) = next.take() {
            match framed.feed(to_wire(item)).await {
                Ok(()) => {}
                Err(CodecError::FrameTooLarge { len, max }) => {
                    warn!(
                        len,
                        max, "dropping an outgoing frame larger than limits.max_frame_bytes"
                    );
                }
                Err(e) => {
                    debug!(error = %e, "write failed");
                    return;
                }
            }
            if framed.write_buffer().len() < FLUSH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = SinkExt::<Wire>::flush(&mut framed).await {
            debug!(error = %e, "flush failed");
            return;
        }
    }
    let _ = SinkExt::<Wire>::close(&mut framed).await;
}
