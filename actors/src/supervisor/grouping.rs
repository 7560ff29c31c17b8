//! Grouped deliveries: which open subscriptions of one connection share
//! a frame for a change (docs/PROTOCOL.md §3, "Grouped deliveries"). The
//! supervisor collects them per connection while it routes a change, then
//! writes one frame per connection, naming no more subscriptions than fit
//! in `limits.max_frame_bytes` beside the change.

use std::collections::HashMap;

use super::ConnId;
use crate::subscription::SubKey;

/// Most subscriptions named in one grouped frame (an id takes at most 10
/// bytes on the wire, so at most about 10 KB of ids a frame); fewer when
/// the change and the ids would not fit in `limits.max_frame_bytes`
/// ([`group_size`]).
const MAX_GROUP: usize = 1024;

/// Bytes of a grouped frame besides the change's fields and the ids: the
/// serial, the keys and lengths of the frame, the event and `also`.
const GROUP_OVERHEAD: usize = 40;

/// How many subscriptions one grouped frame may name for a change whose
/// fields take `fields` bytes, in frames of at most `max_frame` bytes
/// (below 2: no grouping, one frame each as before).
pub(super) fn group_size(fields: usize, max_frame: usize) -> usize {
    let room = max_frame.saturating_sub(fields + GROUP_OVERHEAD);
    (room / 10).min(MAX_GROUP)
}

/// The open, grouped subscriptions a change matches, by connection.
#[derive(Default)]
pub(super) struct Grouping {
    /// Index in `groups` of each connection's group.
    pub(super) index: HashMap<ConnId, usize>,
    pub(super) groups: Vec<Vec<SubKey>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_names_what_fits_in_a_frame_and_at_most_max_group() {
        // The default 4 MiB frame: the cap.
        assert_eq!(group_size(300, 4 << 20), MAX_GROUP);
        // 1 KiB frames and a 300-byte change: (1024 - 340) / 10 ids.
        assert_eq!(group_size(300, 1024), 68);
        // A change that nearly fills the frame: no grouping.
        assert!(group_size(1000, 1024) < 2);
        assert_eq!(group_size(2000, 1024), 0);
    }
}
