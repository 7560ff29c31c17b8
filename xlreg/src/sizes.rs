//! The largest legal messages, and the frame limits derived from them.
//!
//! Requests are small: a session frame from a client may carry at most
//! [`MAX_REQUEST_FRAME_LEN`] (64 KiB) after its length prefix. Replies are
//! bounded by the largest legal cluster instead: a `ClusterMembers` reply
//! carries every member asked for (docs/XLREG.md §7), so a reply frame may
//! carry [`MAX_REPLY_FRAME_LEN`], enough for [`MAX_CLUSTER_SIZE`] tokens
//! each at the largest accepted field lengths ([`MAX_TOKEN_LEN`]) plus the
//! cluster's own fields and catalogue's extension fields. The figures are
//! upper bounds of the protobuf encoding (every tag and length prefix at
//! its widest); `registry/tests.rs` builds that largest reply and checks it
//! fits. This module sits below `frame` and `registry` so that both read
//! the same numbers.

use super::{
    crypto::{BLOCK_LEN, TAG_LEN},
    token::{MAX_END_LEN, MAX_ENDS, MAX_KEY_DER_LEN, MAX_NAME_LEN},
};

/// Largest cluster size (one bit of `Which` per member).
pub const MAX_CLUSTER_SIZE: u32 = 64;

/// Longest member ID (20 or 32 bytes; the registry assigns 32).
pub const MAX_ID_LEN: usize = 32;

/// Widest protobuf key (field number and wire type) in `XLRegMsg`, `Token`
/// or the extension fields (numbers below 2^11).
const MAX_TAG_LEN: usize = 2;
/// Widest length prefix of a field shorter than 2^21 bytes.
const MAX_LEN_PREFIX: usize = 3;
/// Widest varint (a `uint64`).
const MAX_VARINT_LEN: usize = 10;

/// Encoded size of a length-delimited field of at most `n` bytes.
const fn bytes_field(n: usize) -> usize {
    MAX_TAG_LEN + MAX_LEN_PREFIX + n
}

/// Encoded size of a varint field.
const VARINT_FIELD: usize = MAX_TAG_LEN + MAX_VARINT_LEN;

/// Largest member token as a reply carries it: `Name`, `Attrs`, `ID`,
/// `CommsKey`, `SigKey` and `MyEnds` at their longest; never a `DigSig`.
pub const MAX_TOKEN_LEN: usize = bytes_field(MAX_NAME_LEN)
    + VARINT_FIELD
    + bytes_field(MAX_ID_LEN)
    + 2 * bytes_field(MAX_KEY_DER_LEN)
    + MAX_ENDS * bytes_field(MAX_END_LEN);

/// Everything in a cluster reply but the tokens: `Op`, `ClusterID`,
/// `ClusterName`, `ClusterSize`, `ClusterAttrs`, `EndPointCount`, `Which`,
/// and the extension fields `CreatorName` and `CreatorKey`.
pub const MAX_CLUSTER_FIELDS_LEN: usize = VARINT_FIELD
    + bytes_field(MAX_ID_LEN)
    + bytes_field(MAX_NAME_LEN)
    + 4 * VARINT_FIELD
    + bytes_field(MAX_NAME_LEN)
    + bytes_field(32);

/// Largest reply message: every member of the largest legal cluster.
pub const MAX_REPLY_MESSAGE_LEN: usize =
    MAX_CLUSTER_FIELDS_LEN + MAX_CLUSTER_SIZE as usize * bytes_field(MAX_TOKEN_LEN);

/// What a frame adds to its message at most: a v2 IV, a full padding block
/// and a v2 tag.
pub const FRAME_OVERHEAD: usize = BLOCK_LEN + BLOCK_LEN + TAG_LEN;

/// Largest `len` of a reply frame (registry to client), either version.
pub const MAX_REPLY_FRAME_LEN: usize = MAX_REPLY_MESSAGE_LEN + FRAME_OVERHEAD;

/// Largest `len` of a request frame (client to registry): 64 KiB, as
/// before replies grew.
pub const MAX_REQUEST_FRAME_LEN: usize = 64 * 1024;

/// Largest encoded request that fits a request frame of either version.
pub const MAX_REQUEST_MESSAGE_LEN: usize = MAX_REQUEST_FRAME_LEN - FRAME_OVERHEAD;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_limit_is_that_of_the_largest_legal_cluster() {
        // 64 tokens of 2 keys of 2048 bytes, a 255-byte name and two
        // 255-byte endpoints: some 316 KB, far above the request limit.
        assert_eq!(MAX_TOKEN_LEN, 4_935);
        assert_eq!(MAX_REPLY_FRAME_LEN, 316_878);
        const { assert!(MAX_REPLY_FRAME_LEN > 4 * MAX_REQUEST_FRAME_LEN) };
        assert_eq!(MAX_REQUEST_MESSAGE_LEN, 65_472);
    }
}
