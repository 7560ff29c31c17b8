//! The writing half of a client connection and of a peer link: a task
//! that takes frame bodies from a bounded channel, stamps each with the
//! connection's next serial ([`run`]; a peer link's session numbers its own
//! frames, [`run_frames`]), and writes them, flushing when the channel runs
//! dry. The channel's bound
//! is the back-pressure: producers (the connection actor, its
//! subscriptions) wait or queue when the client reads slowly.
//!
//! The task ends when every sender is gone (the connection and its
//! subscriptions have stopped): it flushes what is left and shuts the
//! socket's write side, so a final `Bye` or `Error` reaches the client.

use catalogue_proto::{Body, CodecError, Frame, FrameCodec};
use futures_util::SinkExt;
use tokio::{io::AsyncWrite, sync::mpsc};
use tokio_util::codec::FramedWrite;
use tracing::{debug, warn};

/// Frames that may wait in a connection's outbound channel.
pub const OUTBOUND_FRAMES: usize = 256;

/// What a connection's outbound channel carries: a boxed body. The
/// channel allocates its slots 32 at a time, the first 32 when it is
/// made; a `Body` is a few hundred bytes, so unboxed the slots alone of
/// an idle connection would take about 7 KiB (docs/PERFORMANCE.md,
/// "Memory per idle subscribed connection").
pub type Outbound = Box<Body>;

/// Bytes written before a flush even if more frames are waiting.
const FLUSH_BYTES: usize = 64 * 1024;

/// Initial write buffer of a connection.
const WRITE_BUFFER: usize = 512;

/// Writes everything `rx` yields to `io` until the senders are gone,
/// numbering frames from 0.
pub async fn run<W: AsyncWrite + Unpin>(io: W, rx: mpsc::Receiver<Outbound>, max_frame: usize) {
    let mut serial = 0u64;
    write_loop(io, rx, max_frame, move |body: Outbound| {
        let frame = Frame::new(serial, *body);
        serial += 1;
        frame
    })
    .await;
}

/// Writes frames whose serials the producer assigned (a peer link's
/// session numbers and acknowledges its own frames).
pub async fn run_frames<W: AsyncWrite + Unpin>(io: W, rx: mpsc::Receiver<Frame>, max_frame: usize) {
    write_loop(io, rx, max_frame, |frame| frame).await;
}

async fn write_loop<W, T>(
    io: W,
    mut rx: mpsc::Receiver<T>,
    max_frame: usize,
    mut to_frame: impl FnMut(T) -> Frame,
) where
    W: AsyncWrite + Unpin,
{
    // A small first buffer (idle connections are many; it grows for a
    // burst), flushed at the codec's usual 8 KiB as before.
    let mut framed = FramedWrite::with_capacity(io, FrameCodec::new(max_frame), WRITE_BUFFER);
    framed.set_backpressure_boundary(8 * 1024);
    while let Some(item) = rx.recv().await {
        let mut next = Some(item);
        while let Some(item) = next.take() {
            match framed.feed(to_frame(item)).await {
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
        if let Err(e) = SinkExt::<Frame>::flush(&mut framed).await {
            debug!(error = %e, "flush failed");
            return;
        }
    }
    let _ = SinkExt::<Frame>::close(&mut framed).await;
}
