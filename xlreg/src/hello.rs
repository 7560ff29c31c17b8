//! The two handshake messages, byte for byte.
//!
//! ```text
//! Hello      (client -> server): RSA-OAEP(SHA-1, MGF1-SHA-1, label "")
//!            under the registry's public key of the 60 bytes
//!              iv1[16] ‖ key1[32] ‖ salt1[8] ‖ version[4]
//!            sent bare: exactly one modulus long (256 bytes for RSA-2048).
//! HelloReply (server -> client): AES-256-CBC(key1, iv1) of the PKCS#7
//!            padded 68 bytes
//!              iv2[16] ‖ key2[32] ‖ salt1[8] ‖ salt2[8] ‖ version[4]
//!            80 bytes on the wire.
//! ```
//!
//! The server answers a Hello that does not decrypt to exactly 60 bytes by
//! closing the connection without a word. The client refuses a reply that
//! does not decrypt (padding checked strictly), is not 68 bytes, or does not
//! carry its own salt1: only the holder of the private key could have read
//! salt1, so a matching salt1 proves the server's identity. The version in
//! the reply is the one the server will use (see [`super::version`]).

use super::{
    crypto::{self, AesKey, CryptoError, Iv, SALT_LEN, Salt, SessionKeys},
    keys::{KeyError, PrivateKey, PublicKey},
    version::{Scheme, Version},
};

/// Length of the Hello plaintext.
pub const HELLO_LEN: usize = 60;
/// Length of the HelloReply plaintext.
pub const REPLY_LEN: usize = 68;
/// Length of the HelloReply on the wire (the plaintext padded to 5 blocks).
pub const REPLY_WIRE_LEN: usize = 80;

/// Why a handshake message was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The Hello is not an OAEP ciphertext under the registry's key.
    #[error("Hello does not decrypt: {0}")]
    HelloUndecryptable(KeyError),
    /// The Hello decrypted to the wrong number of bytes.
    #[error("Hello holds {0} bytes, not {HELLO_LEN}")]
    HelloLength(usize),
    /// The Hello could not be encrypted (client side).
    #[error("cannot encrypt the Hello: {0}")]
    HelloEncrypt(KeyError),
    /// The reply does not decrypt with key1 and iv1.
    #[error("HelloReply does not decrypt: {0}")]
    ReplyUndecryptable(CryptoError),
    /// The reply decrypted to the wrong number of bytes.
    #[error("HelloReply holds {0} bytes, not {REPLY_LEN}")]
    ReplyLength(usize),
    /// The reply carries another salt1: the server did not read our Hello.
    #[error("HelloReply carries the wrong salt1: the server does not hold the registry's key")]
    Salt1Mismatch,
    /// The reply names a version this side does not speak or accept.
    #[error("server chose protocol version {0}, which this client does not accept")]
    Version(Version),
    /// No random bytes.
    #[error(transparent)]
    Random(CryptoError),
    /// Deriving the session keys failed.
    #[error(transparent)]
    Keys(CryptoError),
}

/// The Hello's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// IV for the reply.
    pub iv1: Iv,
    /// Key for the reply, used once.
    pub key1: AesKey,
    /// The client's salt; the reply must echo it.
    pub salt1: Salt,
    /// The version the client asks for.
    pub version: Version,
}

impl Hello {
    /// A Hello with fresh random iv1, key1 and salt1, asking for `version`.
    pub fn new(version: Version) -> Result<Hello, HandshakeError> {
        Ok(Hello {
            iv1: crypto::random().map_err(HandshakeError::Random)?,
            key1: crypto::random().map_err(HandshakeError::Random)?,
            salt1: crypto::random().map_err(HandshakeError::Random)?,
            version,
        })
    }

    /// The 60 plaintext bytes.
    pub fn to_bytes(&self) -> [u8; HELLO_LEN] {
        let mut out = [0u8; HELLO_LEN];
        out[..16].copy_from_slice(&self.iv1);
        out[16..48].copy_from_slice(&self.key1);
        out[48..56].copy_from_slice(&self.salt1);
        out[56..].copy_from_slice(&self.version.to_bytes());
        out
    }

    /// From the plaintext bytes, which must be exactly 60.
    pub fn from_bytes(bytes: &[u8]) -> Result<Hello, HandshakeError> {
        let bytes: &[u8; HELLO_LEN] = bytes
            .try_into()
            .map_err(|_| HandshakeError::HelloLength(bytes.len()))?;
        let (iv1, rest) = bytes.split_at(16);
        let (key1, rest) = rest.split_at(32);
        let (salt1, version) = rest.split_at(SALT_LEN);
        Ok(Hello {
            iv1: to_array(iv1),
            key1: to_array(key1),
            salt1: to_array(salt1),
            version: Version::from_bytes(to_array(version)),
        })
    }

    /// The Hello as sent: OAEP ciphertext under the registry's key.
    pub fn seal(&self, server: &PublicKey) -> Result<Vec<u8>, HandshakeError> {
        server
            .oaep_encrypt(&self.to_bytes())
            .map_err(HandshakeError::HelloEncrypt)
    }

    /// Decrypts and parses a Hello received by the registry.
    pub fn open(cipher: &[u8], server: &PrivateKey) -> Result<Hello, HandshakeError> {
        let plain = server
            .oaep_decrypt(cipher)
            .map_err(HandshakeError::HelloUndecryptable)?;
        Hello::from_bytes(&plain)
    }
}

/// The HelloReply's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReply {
    /// IV of the session (v1: of every message).
    pub iv2: Iv,
    /// AES key of the session.
    pub key2: AesKey,
    /// The client's salt, echoed.
    pub salt1: Salt,
    /// The server's salt; a returning client signs it.
    pub salt2: Salt,
    /// The version the server will use.
    pub version: Version,
}

impl HelloReply {
    /// The registry's answer to `hello`: fresh iv2, key2 and salt2, and the
    /// version negotiated from the one asked for.
    pub fn answer(hello: &Hello) -> Result<HelloReply, HandshakeError> {
        Ok(HelloReply {
            iv2: crypto::random().map_err(HandshakeError::Random)?,
            key2: crypto::random().map_err(HandshakeError::Random)?,
            salt1: hello.salt1,
            salt2: crypto::random().map_err(HandshakeError::Random)?,
            version: Version::negotiate(hello.version),
        })
    }

    /// The 68 plaintext bytes.
    pub fn to_bytes(&self) -> [u8; REPLY_LEN] {
        let mut out = [0u8; REPLY_LEN];
        out[..16].copy_from_slice(&self.iv2);
        out[16..48].copy_from_slice(&self.key2);
        out[48..56].copy_from_slice(&self.salt1);
        out[56..64].copy_from_slice(&self.salt2);
        out[64..].copy_from_slice(&self.version.to_bytes());
        out
    }

    /// From the plaintext bytes, which must be exactly 68.
    pub fn from_bytes(bytes: &[u8]) -> Result<HelloReply, HandshakeError> {
        let bytes: &[u8; REPLY_LEN] = bytes
            .try_into()
            .map_err(|_| HandshakeError::ReplyLength(bytes.len()))?;
        Ok(HelloReply {
            iv2: to_array(&bytes[..16]),
            key2: to_array(&bytes[16..48]),
            salt1: to_array(&bytes[48..56]),
            salt2: to_array(&bytes[56..64]),
            version: Version::from_bytes(to_array(&bytes[64..])),
        })
    }

    /// The reply as sent: 80 bytes, encrypted with the Hello's key1 and iv1.
    pub fn seal(&self, hello: &Hello) -> Vec<u8> {
        crypto::cbc_encrypt(&hello.key1, &hello.iv1, &self.to_bytes())
    }

    /// Decrypts the reply to `hello` and checks its salt1.
    pub fn open(wire: &[u8], hello: &Hello) -> Result<HelloReply, HandshakeError> {
        let plain = crypto::cbc_decrypt(&hello.key1, &hello.iv1, wire)
            .map_err(HandshakeError::ReplyUndecryptable)?;
        let reply = HelloReply::from_bytes(&plain)?;
        if !crypto::constant_time_eq(&reply.salt1, &hello.salt1) {
            return Err(HandshakeError::Salt1Mismatch);
        }
        Ok(reply)
    }

    /// The session scheme, if this build speaks the reply's version.
    pub fn scheme(&self) -> Result<Scheme, HandshakeError> {
        self.version
            .scheme()
            .ok_or(HandshakeError::Version(self.version))
    }

    /// The keys both sides use for the rest of the session.
    pub fn session_keys(&self) -> Result<SessionKeys, HandshakeError> {
        SessionKeys::derive(
            self.scheme()?,
            &self.key2,
            &self.iv2,
            &self.salt1,
            &self.salt2,
        )
        .map_err(HandshakeError::Keys)
    }
}

/// Copies a slice whose length the caller has already fixed.
fn to_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

#[cfg(test)]
mod tests;
