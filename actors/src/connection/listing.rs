//! A `List` answered in frames (docs/PROTOCOL.md §5, `List.stream`): the
//! matching services cut into `ListReply` frames that each fit
//! `limits.max_frame_bytes`, every one but the last marked `more`. The
//! frames are built one at a time as the connection's outbound channel
//! takes them, so a listing of any size costs the node one frame of wire
//! structures beside the shared handles of the read view.
//!
//! [`answer`] is the whole answer to a `List`, run on the reader thread
//! ([`crate::reader`]), never on the node's: it reads the view and puts the
//! frames into the connection's outbound channel itself.

use std::{sync::Arc, vec};

use catalogue_proto::{
    Body,
    catalogue::{self, ErrorCode, ListReply},
};
use prost::{Message as _, encoding::encoded_len_varint};
use tokio::sync::mpsc;

use crate::{frame_writer::Outbound, services::Service, supervisor::ServicesView};

/// A `List` to answer: the request's serial and regex, whether in frames.
#[derive(Debug)]
pub struct ListRequest {
    pub serial: u64,
    pub regex: Option<regex::Regex>,
    pub stream: bool,
}

/// How a listing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Every frame is in the outbound channel: this many services.
    Sent(usize),
    /// A reply in one frame was asked for and this many services would
    /// not fit one: an error was sent instead.
    TooLarge(usize),
    /// The connection went away.
    Gone,
}

/// Answers `request` from `view` into `outbound` (each frame at most
/// `max_frame` bytes), waiting for room as the client reads.
pub async fn answer(
    request: ListRequest,
    view: ServicesView,
    max_frame: usize,
    outbound: mpsc::Sender<Outbound>,
) -> Listed {
    let ListRequest {
        serial,
        regex,
        stream,
    } = request;
    let services = view.matching(regex.as_ref());
    let count = services.len();
    if !stream {
        let reply = single_reply(serial, &services, max_frame);
        let fitted = matches!(reply, Body::ListReply(_));
        if outbound.send(Outbound::from(reply)).await.is_err() {
            return Listed::Gone;
        }
        return if fitted {
            Listed::Sent(count)
        } else {
            Listed::TooLarge(count)
        };
    }
    for body in ListFrames::new(serial, services, max_frame) {
        if outbound.send(Outbound::from(body)).await.is_err() {
            return Listed::Gone;
        }
    }
    Listed::Sent(count)
}

/// The answer to a `List` not streamed: one frame, or an error if it would
/// not fit.
fn single_reply(serial: u64, services: &[Arc<Service>], max_frame: usize) -> Body {
    let count = services.len();
    let reply = ListReply {
        in_reply_to: serial,
        services: services.iter().map(|s| to_wire(s)).collect(),
        more: false,
    };
    // The envelope adds a few bytes to the body.
    if reply.encoded_len() + 16 <= max_frame {
        return Body::ListReply(reply);
    }
    let message = format!(
        "{count} services match; the reply would exceed limits.max_frame_bytes ({max_frame}); narrow the regex, or ask for it in frames (List.stream)"
    );
    Body::Error(catalogue::Error::new(ErrorCode::LimitExceeded, message).replying_to(serial))
}

/// Room left in a frame for the envelope and the `ListReply` fields other
/// than the services: the serial, the body's tag and length, in_reply_to
/// and more take at most 31 bytes.
const ENVELOPE_BYTES: usize = 64;

/// The service as the wire carries it.
pub(super) fn to_wire(s: &Service) -> catalogue::Service {
    catalogue::Service {
        uri: s.uri.to_string(),
        attrs: s.attrs.clone(),
        origin: s.origin.to_string(),
        ts: Some(s.ts.into()),
    }
}

/// The frames answering one streamed `List`, produced on demand.
#[derive(Debug)]
pub struct ListFrames {
    serial: u64,
    services: vec::IntoIter<Arc<Service>>,
    /// A service that did not fit the previous frame.
    carried: Option<catalogue::Service>,
    /// Bytes of services one frame may hold.
    budget: usize,
    done: bool,
}

impl ListFrames {
    /// The frames answering request `serial` with `services`, each at most
    /// `max_frame` bytes.
    pub fn new(serial: u64, services: Vec<Arc<Service>>, max_frame: usize) -> Self {
        ListFrames {
            serial,
            services: services.into_iter(),
            carried: None,
            budget: max_frame.saturating_sub(ENVELOPE_BYTES).max(1),
            done: false,
        }
    }
}

impl Iterator for ListFrames {
    type Item = Body;

    /// The next frame; a listing always has at least one (the last, not
    /// marked `more`, possibly empty). A service too large for a frame of
    /// its own (it cannot be: its registration fitted one) is sent alone.
    fn next(&mut self) -> Option<Body> {
        if self.done {
            return None;
        }
        let mut reply = ListReply {
            in_reply_to: self.serial,
            services: Vec::new(),
            more: false,
        };
        let mut used = 0;
        loop {
            let next = self
                .carried
                .take()
                .or_else(|| self.services.next().map(|s| to_wire(&s)));
            let Some(service) = next else {
                self.done = true;
                return Some(Body::ListReply(reply));
            };
            let len = service.encoded_len();
            let cost = 1 + encoded_len_varint(len as u64) + len;
            if !reply.services.is_empty() && used + cost > self.budget {
                self.carried = Some(service);
                reply.more = true;
                return Some(Body::ListReply(reply));
            }
            used += cost;
            reply.services.push(service);
        }
    }
}

#[cfg(test)]
mod tests {
    use catalogue_proto::Frame;

    use super::*;
    use crate::hlc::Timestamp;

    fn services(n: usize) -> Vec<Arc<Service>> {
        (0..n)
            .map(|i| {
                Arc::new(Service {
                    uri: format!("tcp://service-{i:05}.example:{}", 1000 + i).into(),
                    attrs: [("role".to_string(), "x".repeat(i % 50))].into(),
                    origin: "n1".into(),
                    ts: Timestamp {
                        physical_ms: 1_700_000_000_000 + i as u64,
                        logical: 3,
                    },
                })
            })
            .collect()
    }

    fn replies(frames: ListFrames) -> Vec<ListReply> {
        frames
            .map(|body| match body {
                Body::ListReply(r) => r,
                other => panic!("expected ListReply, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_large_listing_is_cut_into_frames_that_each_fit() {
        let max_frame = 4096;
        let all = services(2000);
        let frames = ListFrames::new(u64::MAX, all.clone(), max_frame);
        let replies = replies(frames);
        assert!(replies.len() > 10, "{} frames", replies.len());
        let (last, rest) = replies.split_last().expect("frames");
        assert!(rest.iter().all(|r| r.more), "all but the last say more");
        assert!(!last.more);
        for reply in &replies {
            assert_eq!(reply.in_reply_to, u64::MAX);
            let frame = Frame::new(u64::MAX, Body::ListReply(reply.clone()));
            assert!(
                frame.encoded_len() <= max_frame,
                "{} bytes",
                frame.encoded_len()
            );
        }
        let listed: Vec<String> = replies
            .into_iter()
            .flat_map(|r| r.services)
            .map(|s| s.uri)
            .collect();
        let expected: Vec<String> = all.iter().map(|s| s.uri.to_string()).collect();
        assert_eq!(listed, expected, "every service once, in order");
    }

    #[test]
    fn an_empty_listing_is_one_final_frame() {
        let replies = replies(ListFrames::new(3, Vec::new(), 4096));
        assert_eq!(replies.len(), 1);
        assert!(!replies[0].more);
        assert!(replies[0].services.is_empty());
    }

    #[test]
    fn a_small_listing_is_one_frame() {
        let replies = replies(ListFrames::new(3, services(10), 1 << 20));
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].services.len(), 10);
        assert!(!replies[0].more);
    }
}
