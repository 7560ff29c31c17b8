//! The symmetric primitives xlReg is built from: AES-256-CBC with strict
//! PKCS#7 padding, HMAC-SHA256, HKDF-SHA256, and random bytes from
//! OpenSSL's CSPRNG (its per-thread DRBGs, seeded and reseeded from the
//! operating system; no system call per draw: a session draws seven times,
//! docs/PERFORMANCE.md, "xlReg sessions").
//!
//! Everything here is a plain function over byte slices, with no protocol
//! knowledge: the layouts that use them live in [`super::hello`] and
//! [`super::frame`]. Padding is checked over every pad byte, in time that
//! does not depend on where it goes wrong, and a ciphertext that is not a
//! positive multiple of the block size is refused before any decryption.

use aes::Aes256;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::version::Scheme;

/// AES block (and IV) length.
pub const BLOCK_LEN: usize = 16;
/// AES-256 key length.
pub const KEY_LEN: usize = 32;
/// HMAC-SHA256 tag length.
pub const TAG_LEN: usize = 32;

/// An AES-256 key.
pub type AesKey = [u8; KEY_LEN];
/// An AES-CBC initialisation vector.
pub type Iv = [u8; BLOCK_LEN];
/// Length of a salt.
pub const SALT_LEN: usize = 8;
/// A salt (`Salt1` from the client's Hello, `Salt2` from the registry's
/// HelloReply).
pub type Salt = [u8; SALT_LEN];
/// HKDF info of the client-to-server MAC key.
pub const INFO_CLIENT_TO_SERVER: &[u8] = b"xlReg v2 MAC client to server";
/// HKDF info of the server-to-client MAC key.
pub const INFO_SERVER_TO_CLIENT: &[u8] = b"xlReg v2 MAC server to client";

/// Why a symmetric operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext is empty or not a multiple of the block size.
    #[error("ciphertext of {0} bytes is not a positive multiple of {BLOCK_LEN}")]
    CiphertextLength(usize),
    /// The PKCS#7 padding is wrong.
    #[error("bad padding")]
    Padding,
    /// The HMAC tag does not match.
    #[error("bad message authentication tag")]
    Tag,
    /// The random number generator (OpenSSL's `RAND_bytes`) failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// A key of the wrong length was handed to HMAC or HKDF.
    #[error("bad key length for {0}")]
    KeyLength(&'static str),
}

/// `N` random bytes from OpenSSL's CSPRNG (`RAND_bytes`), the generator
/// that makes the RSA keys and the OAEP seeds.
pub fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    openssl::rand::rand_bytes(&mut out).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(out)
}

/// `data` followed by its PKCS#7 padding (1 to 16 bytes, each the pad length).
pub fn pkcs7_pad(data: &[u8]) -> Vec<u8> {
    let pad = BLOCK_LEN - data.len() % BLOCK_LEN;
    let mut out = Vec::with_capacity(data.len() + pad);
    out.extend_from_slice(data);
    // pad is 1..=16, so it fits in a byte.
    out.resize(data.len() + pad, pad as u8);
    out
}

/// `data` without its PKCS#7 padding. Every pad byte is checked; the time
/// taken does not depend on which check fails.
pub fn pkcs7_unpad(data: &[u8]) -> Result<&[u8], CryptoError> {
    if data.is_empty() || data.len() % BLOCK_LEN != 0 {
        return Err(CryptoError::Padding);
    }
    let last = data[data.len() - 1];
    let pad = usize::from(last);
    let mut bad = u8::from(pad == 0) | u8::from(pad > BLOCK_LEN);
    for (i, &b) in data[data.len() - BLOCK_LEN..].iter().rev().enumerate() {
        let in_pad = u8::from(i < pad);
        bad |= in_pad & u8::from(b != last);
    }
    if bad != 0 {
        return Err(CryptoError::Padding);
    }
    Ok(&data[..data.len() - pad])
}

/// AES-256-CBC of `plain` after PKCS#7 padding.
pub fn cbc_encrypt(key: &AesKey, iv: &Iv, plain: &[u8]) -> Vec<u8> {
    let padded = pkcs7_pad(plain);
    cbc::Encryptor::<Aes256>::new(key.into(), iv.into())
        .encrypt_padded_vec_mut::<NoPadding>(&padded)
}

/// AES-256-CBC decryption of `cipher`, then strict PKCS#7 unpadding.
pub fn cbc_decrypt(key: &AesKey, iv: &Iv, cipher: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if cipher.is_empty() || cipher.len() % BLOCK_LEN != 0 {
        return Err(CryptoError::CiphertextLength(cipher.len()));
    }
    let padded = cbc::Decryptor::<Aes256>::new(key.into(), iv.into())
        .decrypt_padded_vec_mut::<NoPadding>(cipher)
        .map_err(|_| CryptoError::CiphertextLength(cipher.len()))?;
    let len = pkcs7_unpad(&padded)?.len();
    let mut plain = padded;
    plain.truncate(len);
    Ok(plain)
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Result<[u8; TAG_LEN], CryptoError> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| CryptoError::KeyLength("HMAC"))?;
    for part in parts {
        mac.update(part);
    }
    Ok(mac.finalize().into_bytes().into())
}

/// Checks, in constant time, that `tag` is the HMAC-SHA256 of `parts`.
pub fn hmac_sha256_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), CryptoError> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).map_err(|_| CryptoError::KeyLength("HMAC"))?;
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag).map_err(|_| CryptoError::Tag)
}

/// HKDF-SHA256 (RFC 5869): `N` bytes from `ikm` with `salt` and `info`.
pub fn hkdf_sha256<const N: usize>(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
) -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut out)
        .map_err(|_| CryptoError::KeyLength("HKDF"))?;
    Ok(out)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The keys of one session, from the HelloReply.
#[derive(Clone)]
pub struct SessionKeys {
    pub(crate) scheme: Scheme,
    pub(crate) key2: AesKey,
    pub(crate) iv2: Iv,
    pub(crate) mac_client_to_server: [u8; 32],
    pub(crate) mac_server_to_client: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// Derives the session's keys (the MAC keys are used by v2 only).
    pub fn derive(
        scheme: Scheme,
        key2: &AesKey,
        iv2: &Iv,
        salt1: &Salt,
        salt2: &Salt,
    ) -> Result<SessionKeys, CryptoError> {
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(salt1);
        salt[8..].copy_from_slice(salt2);
        Ok(SessionKeys {
            scheme,
            key2: *key2,
            iv2: *iv2,
            mac_client_to_server: hkdf_sha256(&salt, key2, INFO_CLIENT_TO_SERVER)?,
            mac_server_to_client: hkdf_sha256(&salt, key2, INFO_SERVER_TO_CLIENT)?,
        })
    }

    /// The session scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
}

#[cfg(test)]
mod tests;
