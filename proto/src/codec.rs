//! Length-prefixed protobuf framing for client and peer connections.
//!
//! ```text
//! +----------------------+---------------------------------+
//! | length: u32, big end | `length` bytes: encoded message |
//! +----------------------+---------------------------------+
//! ```
//!
//! The decoder checks the announced length against the configured maximum
//! *before* reserving any room for the body, so a hostile prefix (up to
//! 4 GiB - 1, the most four bytes can say) costs nothing. "Not enough bytes
//! yet" is `Ok(None)`; a stream that ends inside a frame, an oversized
//! length and bytes that do not decode are typed [`CodecError`]s. After an
//! error the stream is out of step and the connection must be closed.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use crate::catalogue::{ErrorCode, Frame};

/// Bytes in the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Default maximum length of one frame body: 4 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// Largest body a 4-byte prefix can announce.
pub const MAX_REPRESENTABLE_LEN: usize = u32::MAX as usize;

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
            CodecError::Truncated { .. } | CodecError::Io(_) => None,
        }
    }
}

/// Codec for a stream of length-prefixed protobuf messages of type `M`.
#[derive(Debug)]
pub struct ProstCodec<M> {
    max_frame_len: usize,
    _message: PhantomData<fn() -> M>,
}

/// The codec of client and peer connections.
pub type FrameCodec = ProstCodec<Frame>;

impl<M> ProstCodec<M> {
    /// A codec refusing bodies longer than `max_frame_len` bytes (capped at
    /// what the prefix can express).
    pub fn new(max_frame_len: usize) -> Self {
        ProstCodec {
            max_frame_len: max_frame_len.min(MAX_REPRESENTABLE_LEN),
            _message: PhantomData,
        }
    }

    /// The limit in force.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl<M> Default for ProstCodec<M> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl<M> Clone for ProstCodec<M> {
    fn clone(&self) -> Self {
        Self::new(self.max_frame_len)
    }
}

impl<M: Message + Default> Decoder for ProstCodec<M> {
    type Item = M;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<M>, CodecError> {
        let Some(prefix) = src.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; LENGTH_PREFIX_LEN];
        len_bytes.copy_from_slice(prefix);
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > self.max_frame_len {
            return Err(CodecError::FrameTooLarge {
                len: len as u64,
                max: self.max_frame_len,
            });
        }
        let total = LENGTH_PREFIX_LEN + len;
        if src.len() < total {
            // Bounded by the check above.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX_LEN);
        let body = src.split_to(len).freeze();
        Ok(Some(M::decode(body)?))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<M>, CodecError> {
        if let Some(message) = self.decode(src)? {
            return Ok(Some(message));
        }
        if src.is_empty() {
            return Ok(None);
        }
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
