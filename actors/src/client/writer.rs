//! The writing half of a client connection (and of a peer link): a task that takes frame bodies
//! from a bounded channel, stamps each with the connection's next serial,
//! and writes them, flushing when the channel runs dry. The channel's bound
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

/// Bytes written before a flush even if more frames are waiting.
const FLUSH_BYTES: usize = 64 * 1024;

/// Writes everything `rx` yields to `io` until the senders are gone.
pub async fn run<W: AsyncWrite + Unpin>(io: W, rx: mpsc::Receiver<Body>, max_frame: usize) {
    run_from(io, rx, max_frame, 0).await;
}

/// Like [`run`], numbering frames from `first_serial` (a peer link goes on
/// with the serials its plaintext handshake used).
pub async fn run_from<W: AsyncWrite + Unpin>(
    io: W,
    mut rx: mpsc::Receiver<Body>,
    max_frame: usize,
    first_serial: u64,
) {
    let mut framed = FramedWrite::new(io, FrameCodec::new(max_frame));
    let mut serial = first_serial;
    while let Some(body) = rx.recv().await {
        let mut next = Some(body);
        while let Some(body) = next.take() {
            match framed.feed(Frame::new(serial, body)).await {
                Ok(()) => serial += 1,
                Err(CodecError::FrameTooLarge { len, max }) => {
                    warn!(
                        len,
                        max, "dropping an outgoing frame larger than limits.max_frame_bytes"
                    );
                }
                Err(e) => {
                    debug!(error = %e, "client write failed");
                    return;
                }
            }
            if framed.write_buffer().len() < FLUSH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = SinkExt::<Frame>::flush(&mut framed).await {
            debug!(error = %e, "client flush failed");
            return;
        }
    }
    let _ = SinkExt::<Frame>::close(&mut framed).await;
}
