//! Protocol versions of xlReg and how the server picks one.
//!
//! A version is a decimal `a.b.c.d`, carried in four bytes packed
//! little-endian: byte 0 is `a` (so the `Version` field of `XLRegMsg`, a
//! `uint32`, reads `d.c.b.a` from its most significant byte down). Only the
//! major number `a` selects a session scheme: `1.x.x.x` is the seeds'
//! scheme (every session message encrypted with the same IV), `2.x.x.x` is
//! ours (fresh IV and an HMAC tag per message). A client asks for the
//! version it prefers in its Hello; the server answers with the version it
//! will use: `2.0.0.0` when the client asked for major 2 or more, else
//! `1.0.0.0` (seed clients, which may send anything below 2, even 0).

use std::fmt;

/// A protocol version `a.b.c.d`, stored as the four wire bytes `[a, b, c, d]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version([u8; 4]);

impl Version {
    /// `1.0.0.0`: the seeds' session scheme, IV = iv2 for every message.
    pub const V1: Version = Version([1, 0, 0, 0]);
    /// `2.0.0.0`: a fresh IV and an HMAC-SHA256 tag per message.
    pub const V2: Version = Version([2, 0, 0, 0]);

    /// The version `a.b.c.d`.
    pub const fn new(a: u8, b: u8, c: u8, d: u8) -> Version {
        Version([a, b, c, d])
    }

    /// From the four wire bytes (byte 0 is `a`).
    pub const fn from_bytes(bytes: [u8; 4]) -> Version {
        Version(bytes)
    }

    /// The four wire bytes (byte 0 is `a`).
    pub const fn to_bytes(self) -> [u8; 4] {
        self.0
    }

    /// The value of the protobuf `Version` field (the bytes read as a
    /// little-endian `u32`).
    pub const fn to_u32(self) -> u32 {
        u32::from_le_bytes(self.0)
    }

    /// From the protobuf `Version` field.
    pub const fn from_u32(value: u32) -> Version {
        Version(value.to_le_bytes())
    }

    /// The major number `a`.
    pub const fn major(self) -> u8 {
        self.0[0]
    }

    /// The session scheme this version selects, if this build speaks it.
    pub fn scheme(self) -> Option<Scheme> {
        match self.major() {
            1 => Some(Scheme::V1),
            2 => Some(Scheme::V2),
            _ => None,
        }
    }

    /// The version a server speaking v1 and v2 answers to a Hello asking
    /// for `requested`.
    pub fn negotiate(requested: Version) -> Version {
        if requested.major() >= 2 {
            Version::V2
        } else {
            Version::V1
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// How session messages are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// AES-256-CBC under key2 with IV = iv2 for every message (the seeds').
    V1,
    /// AES-256-CBC under key2 with a fresh IV, then an HMAC-SHA256 tag.
    V2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_little_endian_with_a_first() {
        let v = Version::new(1, 2, 3, 4);
        assert_eq!(v.to_bytes(), [1, 2, 3, 4]);
        assert_eq!(v.to_u32(), 0x0403_0201);
        assert_eq!(Version::from_u32(0x0403_0201), v);
        assert_eq!(v.to_string(), "1.2.3.4");
    }

    #[test]
    fn server_prefers_v2_and_accepts_older_clients() {
        assert_eq!(Version::negotiate(Version::V2), Version::V2);
        assert_eq!(Version::negotiate(Version::new(3, 1, 0, 0)), Version::V2);
        assert_eq!(Version::negotiate(Version::V1), Version::V1);
        assert_eq!(Version::negotiate(Version::new(1, 9, 9, 9)), Version::V1);
        assert_eq!(Version::negotiate(Version::new(0, 0, 0, 0)), Version::V1);
    }

    #[test]
    fn schemes_by_major() {
        assert_eq!(Version::V1.scheme(), Some(Scheme::V1));
        assert_eq!(Version::new(2, 0, 0, 7).scheme(), Some(Scheme::V2));
        assert_eq!(Version::new(0, 0, 0, 0).scheme(), None);
        assert_eq!(Version::new(3, 0, 0, 0).scheme(), None);
    }
}
