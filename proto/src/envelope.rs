//! Helpers around the `Frame` envelope: node ids (`NOID` is an absent
//! `src`/`dst` field on the wire), the name of a frame's body for logs and
//! metrics, and constructors for the replies every connection sends.

use crate::catalogue::{self, ErrorCode, Frame, frame::Body};

/// Identifier of a node inside a cluster session, as in the sync seed.
pub type NodeId = u32;

/// "No node id": a node that has none yet, a client, or (as `dst`) broadcast.
/// On the wire it is the absence of the `src` or `dst` field.
pub const NOID: Option<NodeId> = None;

impl Frame {
    /// A frame with the given serial and body, `src` and `dst` NOID.
    pub fn new(serial: u64, body: Body) -> Self {
        Frame {
            serial,
            src: NOID,
            dst: NOID,
            body: Some(body),
        }
    }

    /// Name of the body for logs and metric labels; `"empty"` when absent.
    pub fn kind(&self) -> &'static str {
        self.body.as_ref().map_or("empty", Body::kind)
    }
}

impl Body {
    /// The body's message name as written in `catalogue.proto`.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Ack(_) => "Ack",
            Body::ServiceAdd(_) => "ServiceAdd",
            Body::ServiceDelete(_) => "ServiceDelete",
            Body::ServiceEvent(_) => "ServiceEvent",
            Body::Lock(_) => "Lock",
            Body::UnlockAll(_) => "UnlockAll",
            Body::LinkAdd(_) => "LinkAdd",
            Body::LinkDelete(_) => "LinkDelete",
            Body::RegisterService(_) => "RegisterService",
            Body::UnregisterService(_) => "UnregisterService",
            Body::Success(_) => "Success",
            Body::Error(_) => "Error",
            Body::Welcome(_) => "Welcome",
            Body::Peer(_) => "Peer",
            Body::Hello(_) => "Hello",
            Body::SyncWelcome(_) => "SyncWelcome",
            Body::Register(_) => "Register",
            Body::UpdTree(_) => "UpdTree",
            Body::Subscribe(_) => "Subscribe",
            Body::Unsubscribe(_) => "Unsubscribe",
            Body::SnapshotEnd(_) => "SnapshotEnd",
            Body::Overflow(_) => "Overflow",
            Body::List(_) => "List",
            Body::ListReply(_) => "ListReply",
            Body::Bye(_) => "Bye",
            Body::ListLinks(_) => "ListLinks",
            Body::LinksReply(_) => "LinksReply",
            Body::ListPeers(_) => "ListPeers",
            Body::PeersReply(_) => "PeersReply",
        }
    }
}

impl catalogue::Error {
    /// An error body with a code and a human-readable message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        catalogue::Error {
            code: code as i32,
            message: message.into(),
            in_reply_to: None,
        }
    }

    /// The same error, marked as the answer to the request with `serial`.
    pub fn replying_to(mut self, serial: u64) -> Self {
        self.in_reply_to = Some(serial);
        self
    }
}

impl ErrorCode {
    /// The code as the two-digit hex number used in the docs and logs.
    pub fn hex(self) -> String {
        format!("0x{:02x}", self as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Ack, Bye};

    #[test]
    fn kind_names_the_body() {
        assert_eq!(
            Frame::new(0, Body::Ack(Ack { ack_serial: 3 })).kind(),
            "Ack"
        );
        assert_eq!(
            Frame::new(
                1,
                Body::Bye(Bye {
                    reason: String::new()
                })
            )
            .kind(),
            "Bye"
        );
        let empty = Frame::default();
        assert_eq!(empty.kind(), "empty");
    }

    #[test]
    fn seed_error_codes_keep_their_numbers() {
        assert_eq!(ErrorCode::AuthFailed.hex(), "0x01");
        assert_eq!(ErrorCode::NotFound.hex(), "0x02");
        assert_eq!(ErrorCode::ServerAuthFailed.hex(), "0x03");
    }

    #[test]
    fn error_reply_names_its_request() {
        let e = catalogue::Error::new(ErrorCode::InvalidRegex, "bad").replying_to(7);
        assert_eq!(e.in_reply_to, Some(7));
        assert_eq!(e.code(), ErrorCode::InvalidRegex);
    }
}
