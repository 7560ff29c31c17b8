//! Session framing: how each `XLRegMsg` travels after the handshake.
//!
//! ```text
//! v1 (the seeds'):  len[4] ‖ C
//!                   C = AES-256-CBC(key2, iv2, PKCS7(msg))      IV = iv2 always
//! v2 (ours):        len[4] ‖ IV[16] ‖ C ‖ T[32]
//!                   IV fresh from the OS for every message
//!                   C = AES-256-CBC(key2, IV, PKCS7(msg))
//!                   T = HMAC-SHA256(Kmac(direction), seq[8] ‖ len[4] ‖ IV ‖ C)
//! ```
//!
//! `len` is big-endian and counts the bytes after it; it may not exceed
//! the limit of its direction ([`Role::max_frame_len`]): 64 KiB for
//! requests, and for replies the size of the largest legal cluster's
//! `ClusterMembers` ([`super::sizes`]). `msg` is the protobuf encoding of `XLRegMsg`,
//! maybe followed by that of catalogue's extension fields
//! ([`super::ext::Envelope`]).
//!
//! v2 is encrypt-then-MAC: the tag is checked, in constant time, before
//! anything is decrypted, so a tampered frame never reaches the padding
//! check (no padding oracle). The MAC keys come from HKDF-SHA256 with
//! key2 as input keying material, `salt1 ‖ salt2` as salt, and the info
//! strings [`crypto::INFO_CLIENT_TO_SERVER`] and
//! [`crypto::INFO_SERVER_TO_CLIENT`]: one key
//! per direction, so a frame cannot be reflected back to its sender. `seq`
//! is the big-endian count of frames sent before this one in the same
//! direction (the first is 0); it is not sent, both ends count, so a frame
//! replayed, dropped or reordered fails its tag.
//!
//! [`Sealer`] and [`Opener`] hold one direction's state each; the
//! [`MsgEncoder`] and [`MsgDecoder`] wrap them as tokio codecs. Decoding is
//! incremental: with too few bytes it returns `Ok(None)`.

use bytes::{Buf, BufMut, BytesMut};
use catalogue_proto::reg::XlRegMsg;
use prost::Message;
use tokio_util::codec::{Decoder, Encoder};

use super::{
    crypto::{self, AesKey, BLOCK_LEN, CryptoError, Iv, SessionKeys, TAG_LEN},
    ext::Envelope,
    version::Scheme,
};

/// Length of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;
pub use super::sizes::{
    FRAME_OVERHEAD, MAX_REPLY_FRAME_LEN, MAX_REPLY_MESSAGE_LEN, MAX_REQUEST_FRAME_LEN,
    MAX_REQUEST_MESSAGE_LEN,
};

/// Why a frame could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced length is over the limit.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The limit of the frame's direction.
        max: usize,
    },
    /// The announced length cannot be a frame of this version.
    #[error("frame of {0} bytes has an impossible length")]
    BadLength(usize),
    /// A message too large to send.
    #[error("message of {0} bytes is too large to send")]
    MessageTooLarge(usize),
    /// v2: the tag does not match (tampered, replayed, reordered).
    #[error("bad message authentication tag")]
    BadTag,
    /// Decryption or padding failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The plaintext is not an `XLRegMsg` (with extension fields).
    #[error("undecodable message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Too many frames in one direction (2^64).
    #[error("frame counter exhausted")]
    Exhausted,
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Which end of the session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The registry.
    Server,
    /// A registry client.
    Client,
}

impl Role {
    /// Largest `len` of the frames `self` sends: a client's requests are
    /// bounded by [`MAX_REQUEST_FRAME_LEN`], the registry's replies by
    /// [`MAX_REPLY_FRAME_LEN`].
    pub fn max_frame_len(self) -> usize {
        match self {
            Role::Client => MAX_REQUEST_FRAME_LEN,
            Role::Server => MAX_REPLY_FRAME_LEN,
        }
    }

    /// The other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Client => Role::Server,
            Role::Server => Role::Client,
        }
    }
}

/// How a session's keys seal and open frames (the keys themselves are
/// [`crypto::SessionKeys`]).
impl SessionKeys {
    /// MAC key of frames sent by `role`.
    fn mac_key_of(&self, role: Role) -> [u8; 32] {
        match role {
            Role::Client => self.mac_client_to_server,
            Role::Server => self.mac_server_to_client,
        }
    }

    /// What `role` uses to send.
    pub fn sealer(&self, role: Role) -> Sealer {
        Sealer {
            scheme: self.scheme,
            key: self.key2,
            iv2: self.iv2,
            mac_key: self.mac_key_of(role),
            max_frame: role.max_frame_len(),
            seq: 0,
        }
    }

    /// What `role` uses to receive.
    pub fn opener(&self, role: Role) -> Opener {
        let peer = role.peer();
        Opener {
            scheme: self.scheme,
            key: self.key2,
            iv2: self.iv2,
            mac_key: self.mac_key_of(peer),
            max_frame: peer.max_frame_len(),
            seq: 0,
        }
    }
}

/// Seals outgoing messages of one direction.
pub struct Sealer {
    scheme: Scheme,
    key: AesKey,
    iv2: Iv,
    mac_key: [u8; 32],
    /// Largest `len` of this direction.
    max_frame: usize,
    seq: u64,
}

impl Sealer {
    /// Largest message this direction can carry.
    pub fn max_message_len(&self) -> usize {
        self.max_frame - FRAME_OVERHEAD
    }

    /// The whole frame (length prefix included) carrying `plain`.
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>, FrameError> {
        let iv = match self.scheme {
            Scheme::V1 => self.iv2,
            Scheme::V2 => crypto::random()?,
        };
        self.seal_with_iv(plain, &iv)
    }

    /// [`Sealer::seal`] with a chosen v2 IV (known-answer tests).
    pub(crate) fn seal_with_iv(&mut self, plain: &[u8], iv: &Iv) -> Result<Vec<u8>, FrameError> {
        if plain.len() > self.max_message_len() {
            return Err(FrameError::MessageTooLarge(plain.len()));
        }
        let seq = self.seq;
        self.seq = self.seq.checked_add(1).ok_or(FrameError::Exhausted)?;
        match self.scheme {
            Scheme::V1 => {
                let cipher = crypto::cbc_encrypt(&self.key, &self.iv2, plain);
                let mut out = Vec::with_capacity(LENGTH_PREFIX_LEN + cipher.len());
                out.extend_from_slice(&prefix(cipher.len()));
                out.extend_from_slice(&cipher);
                Ok(out)
            }
            Scheme::V2 => {
                let cipher = crypto::cbc_encrypt(&self.key, iv, plain);
                let len = prefix(BLOCK_LEN + cipher.len() + TAG_LEN);
                let tag =
                    crypto::hmac_sha256(&self.mac_key, &[&seq.to_be_bytes(), &len, iv, &cipher])?;
                let mut out =
                    Vec::with_capacity(LENGTH_PREFIX_LEN + BLOCK_LEN + cipher.len() + TAG_LEN);
                out.extend_from_slice(&len);
                out.extend_from_slice(iv);
                out.extend_from_slice(&cipher);
                out.extend_from_slice(&tag);
                Ok(out)
            }
        }
    }
}

fn prefix(len: usize) -> [u8; 4] {
    // Callers bound len by the direction's limit (at most MAX_REPLY_FRAME_LEN).
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

/// Opens incoming frames of one direction.
pub struct Opener {
    scheme: Scheme,
    key: AesKey,
    iv2: Iv,
    mac_key: [u8; 32],
    /// Largest `len` of this direction.
    max_frame: usize,
    seq: u64,
}

impl Opener {
    /// Checks a `len` read from the wire before its bytes are awaited.
    pub fn check_len(&self, len: usize) -> Result<(), FrameError> {
        if len > self.max_frame {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame,
            });
        }
        let cipher_len = match self.scheme {
            Scheme::V1 => len,
            Scheme::V2 => len
                .checked_sub(BLOCK_LEN + TAG_LEN)
                .ok_or(FrameError::BadLength(len))?,
        };
        if cipher_len == 0 || cipher_len % BLOCK_LEN != 0 {
            return Err(FrameError::BadLength(len));
        }
        Ok(())
    }

    /// The plaintext of one frame: `body` is what follows the length prefix.
    pub fn open(&mut self, body: &[u8]) -> Result<Vec<u8>, FrameError> {
        self.check_len(body.len())?;
        let seq = self.seq;
        self.seq = self.seq.checked_add(1).ok_or(FrameError::Exhausted)?;
        match self.scheme {
            Scheme::V1 => Ok(crypto::cbc_decrypt(&self.key, &self.iv2, body)?),
            Scheme::V2 => {
                let len = prefix(body.len());
                let (iv, rest) = body.split_at(BLOCK_LEN);
                let (cipher, tag) = rest.split_at(rest.len() - TAG_LEN);
                crypto::hmac_sha256_verify(
                    &self.mac_key,
                    &[&seq.to_be_bytes(), &len, iv, cipher],
                    tag,
                )
                .map_err(|_| FrameError::BadTag)?;
                let mut iv_array = [0u8; BLOCK_LEN];
                iv_array.copy_from_slice(iv);
                Ok(crypto::cbc_decrypt(&self.key, &iv_array, cipher)?)
            }
        }
    }

    /// The plaintext of the next whole frame in `buf`, consuming it;
    /// `Ok(None)` when more bytes are needed.
    pub fn decode_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<u8>>, FrameError> {
        if buf.len() < LENGTH_PREFIX_LEN {
            return Ok(None);
        }
        let mut len_bytes = [0u8; LENGTH_PREFIX_LEN];
        len_bytes.copy_from_slice(&buf[..LENGTH_PREFIX_LEN]);
        let len = u32::from_be_bytes(len_bytes) as usize;
        self.check_len(len)?;
        if buf.len() < LENGTH_PREFIX_LEN + len {
            buf.reserve(LENGTH_PREFIX_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(LENGTH_PREFIX_LEN);
        let body = buf.split_to(len);
        self.open(&body).map(Some)
    }
}

/// Encodes and seals `XLRegMsg`s, or [`Envelope`]s when extension fields
/// go with them (a tokio codec).
pub struct MsgEncoder(pub Sealer);

impl Encoder<XlRegMsg> for MsgEncoder {
    type Error = FrameError;

    fn encode(&mut self, msg: XlRegMsg, dst: &mut BytesMut) -> Result<(), FrameError> {
        let frame = self.0.seal(&msg.encode_to_vec())?;
        dst.put_slice(&frame);
        Ok(())
    }
}

impl Encoder<Envelope> for MsgEncoder {
    type Error = FrameError;

    fn encode(&mut self, env: Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        let frame = self.0.seal(&env.encode_to_vec())?;
        dst.put_slice(&frame);
        Ok(())
    }
}

/// Opens and decodes messages (a tokio codec): each plaintext is read as an
/// `XLRegMsg` and as its extension fields ([`Envelope`]).
pub struct MsgDecoder(pub Opener);

impl Decoder for MsgDecoder {
    type Item = Envelope;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        match self.0.decode_frame(src)? {
            Some(plain) => Ok(Some(Envelope::decode(&plain)?)),
            None => Ok(None),
        }
    }
}

/// Both directions of one end, as a single codec (for `Framed`).
pub struct MsgCodec {
    /// Outgoing.
    pub encoder: MsgEncoder,
    /// Incoming.
    pub decoder: MsgDecoder,
}

impl MsgCodec {
    /// The codec of `role` for a session with `keys`.
    pub fn new(keys: &SessionKeys, role: Role) -> MsgCodec {
        MsgCodec {
            encoder: MsgEncoder(keys.sealer(role)),
            decoder: MsgDecoder(keys.opener(role)),
        }
    }
}

impl Encoder<XlRegMsg> for MsgCodec {
    type Error = FrameError;

    fn encode(&mut self, msg: XlRegMsg, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encoder.encode(msg, dst)
    }
}

impl Encoder<Envelope> for MsgCodec {
    type Error = FrameError;

    fn encode(&mut self, env: Envelope, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encoder.encode(env, dst)
    }
}

impl Decoder for MsgCodec {
    type Item = Envelope;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        self.decoder.decode(src)
    }
}

#[cfg(test)]
mod tests;
