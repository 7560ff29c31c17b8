//! Length-prefixed protobuf framing for client and peer connections.
//!
//! ```text
//! +----------------------+---------------------------------+
//! | length: u32, big end | `length` bytes: encoded message |
//! +----------------------+---------------------------------+
//! ```
//!
//! The decoder checks the announced length against the configured maximum
//! (a smaller one until the first frame has decoded, when the codec is
//! made [`ProstCodec::with_first_frame_limit`]) and never reserves room for
//! what a prefix announces: the read buffer grows with the bytes that have
//! arrived, at most [`READ_STEP`] ahead of them, so a connection that
//! announces 4 MiB and sends 100 bytes holds about 100 bytes. A buffer that
//! held a large frame is replaced by a small one once the frame is taken
//! out. The bytes held are charged to the node's [`InputBudget`]
//! ([`budget`]); a charge over it is [`CodecError::BudgetExceeded`].
//!
//! "Not enough bytes yet" is `Ok(None)`; a stream that ends inside a frame,
//! an oversized length, a full budget and bytes that do not decode are
//! typed [`CodecError`]s. After an error the stream is out of step and the
//! connection must be closed. The codec performs no I/O and keeps no time:
//! the deadline for finishing a frame is the reader's (docs/PROTOCOL.md §1).

pub mod budget;
pub mod shared_event;

use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::catalogue::{ErrorCode, Frame};
pub use budget::{BudgetExceeded, InputBudget, InputCharge};
pub use shared_event::{EventFields, encode_event_frame};

/// Bytes in the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Default maximum length of one frame body: 4 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// Largest body a 4-byte prefix can announce.
pub const MAX_REPRESENTABLE_LEN: usize = u32::MAX as usize;

/// Most room the decoder asks for beyond the bytes a partial frame already
/// holds, when its buffer is full. The buffer's own growth may round that
/// up to twice what it holds; memory the socket has not written into costs
/// nothing.
pub const READ_STEP: usize = 64 * 1024;

/// A buffer that held a frame longer than this is replaced by a small one
/// when the frame is taken out, so one large frame does not pin its memory
/// for the rest of the connection.
pub const SHRINK_ABOVE: usize = READ_STEP;

/// Capacity of the buffer that replaces one that held a large frame.
const SHRUNK_CAPACITY: usize = 512;

/// What can go wrong while framing.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The prefix announced, or an outgoing message needs, more than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced (or needed) body length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended after part of a frame.
    #[error("stream ended inside a frame: {received} of {expected} bytes received")]
    Truncated {
        /// Bytes of the frame (prefix included) that arrived.
        received: usize,
        /// Bytes the frame needed (prefix included), when the prefix was complete.
        expected: usize,
    },
    /// The body is not a valid encoding of the message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Holding the bytes received would take the node's buffered input over
    /// its budget.
    #[error(transparent)]
    BudgetExceeded(#[from] BudgetExceeded),
    /// A frame was started and not finished in time (raised by the reader,
    /// which keeps the time; the codec keeps none).
    #[error("frame not completed within {after:?}: {received} bytes of it received")]
    FrameTimeout {
        /// The deadline.
        after: std::time::Duration,
        /// Bytes of the frame (prefix included) received by then.
        received: usize,
    },
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl CodecError {
    /// The protocol error code to send to the peer before closing, if any.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            CodecError::FrameTooLarge { .. } => Some(ErrorCode::FrameTooLarge),
            CodecError::Decode(_) => Some(ErrorCode::Undecodable),
            CodecError::BudgetExceeded(_) | CodecError::FrameTimeout { .. } => {
                Some(ErrorCode::LimitExceeded)
            }
            CodecError::Truncated { .. } | CodecError::Io(_) => None,
        }
    }

    /// Short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CodecError::FrameTooLarge { .. } => "frame_too_large",
            CodecError::Truncated { .. } => "truncated",
            CodecError::Decode(_) => "undecodable",
            CodecError::BudgetExceeded(_) => "input_budget",
            CodecError::FrameTimeout { .. } => "frame_timeout",
            CodecError::Io(_) => "io",
        }
    }
}

/// Codec for a stream of length-prefixed protobuf messages of type `M`.
#[derive(Debug)]
pub struct ProstCodec<M> {
    max_frame_len: usize,
    /// Limit until the first frame has decoded (a handshake's), if smaller.
    first_frame_len: Option<usize>,
    /// Whether a frame has decoded yet.
    decoded_any: bool,
    /// The bytes of the read buffer, charged to the node's budget.
    charge: InputCharge,
    _message: PhantomData<fn() -> M>,
}

/// The codec of client and peer connections.
pub type FrameCodec = ProstCodec<Frame>;

impl<M> ProstCodec<M> {
    /// A codec refusing bodies longer than `max_frame_len` bytes (capped at
    /// what the prefix can express), charging an unlimited budget.
    pub fn new(max_frame_len: usize) -> Self {
        ProstCodec {
            max_frame_len: max_frame_len.min(MAX_REPRESENTABLE_LEN),
            first_frame_len: None,
            decoded_any: false,
            charge: InputBudget::unlimited().charge(),
            _message: PhantomData,
        }
    }

    /// The same codec, charging the bytes it holds to `budget`.
    pub fn with_budget(mut self, budget: &InputBudget) -> Self {
        self.charge = budget.charge();
        self
    }

    /// The same codec, refusing bodies longer than `limit` until a first
    /// frame has decoded (the handshake of a connection whose other side is
    /// not yet known). A limit above the codec's maximum changes nothing.
    pub fn with_first_frame_limit(mut self, limit: usize) -> Self {
        self.first_frame_len = Some(limit);
        self
    }

    /// The limit in force once a frame has decoded.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// The limit on the next frame.
    pub fn limit_now(&self) -> usize {
        match self.first_frame_len {
            Some(first) if !self.decoded_any => first.min(self.max_frame_len),
            _ => self.max_frame_len,
        }
    }

    /// Bytes this codec holds against its budget now.
    pub fn buffered(&self) -> usize {
        self.charge.held()
    }

    /// Charges the bytes in `src`, then takes the next frame out if it is
    /// all there; otherwise makes room for more of the bytes still missing
    /// (see [`make_room`]).
    fn next_body(&mut self, src: &mut BytesMut) -> Result<Option<bytes::Bytes>, CodecError> {
        self.charge.set(src.len())?;
        let Some(prefix) = src.get(..LENGTH_PREFIX_LEN) else {
            make_room(src, LENGTH_PREFIX_LEN - src.len());
            return Ok(None);
        };
        let mut len_bytes = [0u8; LENGTH_PREFIX_LEN];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes) as usize;
        let max = self.limit_now();
        if len > max {
            return Err(CodecError::FrameTooLarge {
                len: len as u64,
                max,
            });
        }
        let total = LENGTH_PREFIX_LEN + len;
        if src.len() < total {
            make_room(src, total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX_LEN);
        let body = src.split_to(len).freeze();
        if total > SHRINK_ABOVE {
            // `src` still shares the large allocation with `body`; a fresh
            // small buffer lets it go once the body is decoded.
            let mut fresh = BytesMut::with_capacity(src.len().max(SHRUNK_CAPACITY));
            fresh.extend_from_slice(src);
            *src = fresh;
        }
        self.release_to(src.len());
        self.decoded_any = true;
        Ok(Some(body))
    }

    /// Lowers the charge to `len` bytes (lowering is never refused).
    fn release_to(&mut self, len: usize) {
        if len <= self.charge.held() {
            let _ = self.charge.set(len);
        }
    }
}

/// Gives a full `src` room for `min(missing, READ_STEP)` more bytes, so
/// the reader's own "room for one byte" never has to grow it. A buffer with
/// room left is read into as it is: its capacity stays within twice the
/// bytes it holds plus [`READ_STEP`].
fn make_room(src: &mut BytesMut, missing: usize) {
    if src.capacity() == src.len() {
        src.reserve(missing.clamp(1, READ_STEP));
    }
}

impl<M> Default for ProstCodec<M> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl<M> Clone for ProstCodec<M> {
    /// The same limits and budget, with nothing charged yet.
    fn clone(&self) -> Self {
        ProstCodec {
            max_frame_len: self.max_frame_len,
            first_frame_len: self.first_frame_len,
            decoded_any: false,
            charge: self.charge.budget().charge(),
            _message: PhantomData,
        }
    }
}

impl<M: Message + Default> Decoder for ProstCodec<M> {
    type Item = M;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<M>, CodecError> {
        match self.next_body(src) {
            Ok(Some(body)) => M::decode(body).map(Some).map_err(|e| {
                self.release_to(0);
                e.into()
            }),
            Ok(None) => Ok(None),
            Err(e) => {
                // The connection closes: its bytes no longer count.
                self.release_to(0);
                Err(e)
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<M>, CodecError> {
        if let Some(message) = self.decode(src)? {
            return Ok(Some(message));
        }
        if src.is_empty() {
            return Ok(None);
        }
        self.release_to(0);
        let expected = src
            .get(..LENGTH_PREFIX_LEN)
            .map(|p| LENGTH_PREFIX_LEN + u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize)
            .unwrap_or(LENGTH_PREFIX_LEN);
        Err(CodecError::Truncated {
            received: src.len(),
            expected,
        })
    }
}

impl<M: Message> Encoder<M> for ProstCodec<M> {
    type Error = CodecError;

    fn encode(&mut self, item: M, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode(&item, dst)
    }
}

impl<M: Message> Encoder<&M> for ProstCodec<M> {
    type Error = CodecError;

    fn encode(&mut self, item: &M, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = item.encoded_len();
        if len > self.max_frame_len {
            return Err(CodecError::FrameTooLarge {
                len: len as u64,
                max: self.max_frame_len,
            });
        }
        dst.reserve(LENGTH_PREFIX_LEN + len);
        // `len` fits in u32: max_frame_len is capped at MAX_REPRESENTABLE_LEN.
        dst.put_u32(len as u32);
        item.encode(dst)
            .map_err(|e| std::io::Error::other(format!("protobuf encode: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
