//! Reading frames with bounded memory: the limits every frame reader of a
//! node shares ([`InputLimits`]) and the deadline for finishing a frame
//! ([`FrameDeadline`]).
//!
//! Three bounds apply to every connection, client or peer, and are
//! described in docs/PROTOCOL.md §1:
//!
//! - the read buffer grows with the bytes received, never with the length
//!   a prefix announces (the codec, `catalogue_proto::codec`);
//! - the bytes held in partly received frames, summed over the node, stay
//!   within `limits.input_buffer_bytes` (the codec charges an
//!   [`InputBudget`]; the connection that would go over is closed);
//! - a frame must arrive whole within `limits.frame_read_timeout` of its
//!   first byte ([`FrameDeadline`], which wraps a frame stream and yields
//!   `CodecError::FrameTimeout` when the time is up). Time between frames
//!   is not counted: an idle connection holds no partial frame.
//!
//! Before the other side is known (the plaintext handshake of a peer link,
//! and the first frame of the link after it) frames are limited to
//! `limits.handshake_frame_bytes`.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use catalogue_proto::{CodecError, FrameCodec, InputBudget};
use futures_util::Stream;
use tokio::time::Sleep;
use tokio_util::codec::{Decoder, Framed, FramedRead};

use crate::settings::LimitsSettings;

/// The input limits of a node, shared by all its frame readers.
#[derive(Debug, Clone)]
pub struct InputLimits {
    /// Largest frame body once the other side is known
    /// (`limits.max_frame_bytes`).
    pub max_frame: usize,
    /// Largest frame body before it is (`limits.handshake_frame_bytes`).
    pub handshake_frame: usize,
    /// Time a started frame has to arrive whole
    /// (`limits.frame_read_timeout`).
    pub frame_timeout: Duration,
    /// Bytes held in partial frames, node-wide
    /// (`limits.input_buffer_bytes`).
    pub budget: InputBudget,
}

impl InputLimits {
    /// The limits `limits` configures, with a fresh budget.
    pub fn new(limits: &LimitsSettings) -> Self {
        InputLimits {
            max_frame: limits.max_frame_bytes,
            handshake_frame: limits.handshake_frame_bytes,
            frame_timeout: limits.frame_read_timeout,
            budget: InputBudget::new(limits.input_buffer_bytes),
        }
    }

    /// The codec of a connection whose other side is known (a client
    /// connection; a link once its first frame has decoded).
    pub fn codec(&self) -> FrameCodec {
        FrameCodec::new(self.max_frame).with_budget(&self.budget)
    }

    /// The codec of a peer link: the first frame is limited as in the
    /// handshake, the rest as on any connection.
    pub fn link_codec(&self) -> FrameCodec {
        self.codec().with_first_frame_limit(self.handshake_frame)
    }

    /// The codec of the plaintext handshake of a peer link (the smaller
    /// of the two limits applies).
    pub fn handshake_codec(&self) -> FrameCodec {
        FrameCodec::new(self.handshake_frame.min(self.max_frame)).with_budget(&self.budget)
    }

    /// `stream` with this node's deadline for finishing a frame.
    pub fn deadline<S>(&self, stream: S) -> FrameDeadline<S> {
        FrameDeadline::new(stream, self.frame_timeout)
    }
}

/// The message of the `Error` sent before closing a connection for `e`,
/// naming the setting behind the limit where there is one.
pub fn closing_message(e: &CodecError) -> String {
    match e {
        CodecError::FrameTimeout { .. } => format!("{e} (limits.frame_read_timeout)"),
        CodecError::BudgetExceeded(_) => format!("{e} (limits.input_buffer_bytes)"),
        other => other.to_string(),
    }
}

/// A frame reader that can say how many bytes of an unfinished frame it
/// holds.
pub trait PartialFrame {
    /// Bytes read and not yet decoded: part of a frame, or nothing.
    fn partial_len(&self) -> usize;
}

impl<T, D: Decoder> PartialFrame for FramedRead<T, D> {
    fn partial_len(&self) -> usize {
        self.read_buffer().len()
    }
}

impl<T, U> PartialFrame for Framed<T, U> {
    fn partial_len(&self) -> usize {
        self.read_buffer().len()
    }
}

impl<P: PartialFrame + ?Sized> PartialFrame for &mut P {
    fn partial_len(&self) -> usize {
        (**self).partial_len()
    }
}

/// A frame stream whose frames must each arrive whole within a time of
/// their first byte. When a frame is late, yields one
/// `CodecError::FrameTimeout`, then ends.
///
/// The clock starts when the wrapped reader is found holding part of a
/// frame after reading all there was, and stops when it yields a frame.
/// The wrapped stream is always polled first, so a frame that has arrived
/// is taken even if the reader itself was not polled for a while (an actor
/// waiting on something else).
pub struct FrameDeadline<S> {
    inner: S,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: bool,
}

impl<S> FrameDeadline<S> {
    /// `inner`, with `timeout` to finish each frame.
    pub fn new(inner: S, timeout: Duration) -> Self {
        FrameDeadline {
            inner,
            timeout,
            sleep: None,
            timed_out: false,
        }
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S, F> Stream for FrameDeadline<S>
where
    S: Stream<Item = Result<F, CodecError>> + PartialFrame + Unpin,
{
    type Item = Result<F, CodecError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            // A frame, an error or the end: the next frame's clock starts
            // with its first byte.
            this.sleep = None;
            crate::busy_poll::touch();
            return Poll::Ready(item);
        }
        let partial = this.inner.partial_len();
        if partial == 0 {
            this.sleep = None;
            return Poll::Pending;
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.sleep = None;
                this.timed_out = true;
                Poll::Ready(Some(Err(CodecError::FrameTimeout {
                    after: timeout,
                    received: partial,
                })))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The deadline over a real socket pair, on tokio's paused clock: time
    //! only moves when every task waits, so the tests are exact and fast.

    use catalogue_proto::{Body, Frame, catalogue::Ack};
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn frame_bytes(serial: u64) -> Vec<u8> {
        use tokio_util::codec::Encoder;
        let mut buf = bytes::BytesMut::new();
        FrameCodec::default()
            .encode(
                Frame::new(serial, Body::Ack(Ack { ack_serial: 1 })),
                &mut buf,
            )
            .expect("encode");
        buf.to_vec()
    }

    type Reader = FrameDeadline<FramedRead<tokio::io::DuplexStream, FrameCodec>>;

    fn pair() -> (tokio::io::DuplexStream, Reader) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let reader = FrameDeadline::new(FramedRead::new(theirs, FrameCodec::default()), TIMEOUT);
        (ours, reader)
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_left_unfinished_times_out() {
        let (mut ours, mut reader) = pair();
        let whole = frame_bytes(0);
        ours.write_all(&whole[..whole.len() - 1])
            .await
            .expect("write");
        let started = tokio::time::Instant::now();
        match reader.next().await {
            Some(Err(CodecError::FrameTimeout { after, received })) => {
                assert_eq!(after, TIMEOUT);
                assert_eq!(received, whole.len() - 1);
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert_eq!(started.elapsed(), TIMEOUT);
        assert!(reader.next().await.is_none(), "the stream ends after it");
    }

    #[tokio::test(start_paused = true)]
    async fn time_between_frames_does_not_count() {
        let (mut ours, mut reader) = pair();
        ours.write_all(&frame_bytes(0)).await.expect("write");
        assert!(matches!(reader.next().await, Some(Ok(_))));
        // Idle for far longer than the deadline: nothing is pending.
        let idle = tokio::time::timeout(TIMEOUT * 5, reader.next()).await;
        assert!(idle.is_err(), "no timeout while idle: {idle:?}");
        ours.write_all(&frame_bytes(1)).await.expect("write");
        assert!(matches!(reader.next().await, Some(Ok(f)) if f.serial == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn each_frame_gets_its_own_time() {
        let (mut ours, mut reader) = pair();
        // Frames that each take most of the deadline, back to back.
        for serial in 0..3 {
            let whole = frame_bytes(serial);
            ours.write_all(&whole[..2]).await.expect("write");
            let wait = tokio::time::timeout(TIMEOUT - Duration::from_secs(1), reader.next()).await;
            assert!(wait.is_err(), "frame {serial} still arriving");
            ours.write_all(&whole[2..]).await.expect("write");
            assert!(matches!(reader.next().await, Some(Ok(f)) if f.serial == serial));
        }
    }
}
