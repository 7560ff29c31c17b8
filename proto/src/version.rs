//! Protocol version of the client and peer protocol.
//!
//! Every `Welcome` and `Peer` carries these numbers. Peers whose major
//! version differs from ours are disconnected; the minor version only tells
//! what optional additions the other side understands.

/// Major version: changes only for incompatible changes of `catalogue.proto`.
pub const PROTOCOL_MAJOR: u32 = 1;

/// Minor version: compatible additions.
pub const PROTOCOL_MINOR: u32 = 1;

/// True when a peer announcing `major` speaks a protocol we can talk to.
pub fn compatible(major: u32) -> bool {
    major == PROTOCOL_MAJOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_major_is_compatible() {
        assert!(compatible(PROTOCOL_MAJOR));
        assert!(!compatible(PROTOCOL_MAJOR + 1));
        assert!(!compatible(PROTOCOL_MAJOR.wrapping_sub(1)));
    }
}
