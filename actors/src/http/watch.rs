//! `GET /v1/watch?match=REGEX`: a Server-Sent Events stream of the
//! matching services and their changes (docs/HTTP.md, "Watching").
//!
//! Each stream is a subscription like a socket client's: the same
//! [`Subscription`] actor with its bounded queue and overflow policy, the
//! same ledger place (counted against the caller's address, or its uid on
//! the API socket) and the same resume rule: with `Last-Event-ID` (or
//! `since`) set to an event id, the node replays what changed after it if
//! it still holds that history, else it sends `reset` and a fresh snapshot.
//! The stream ends when the client goes away (a keep-alive comment every
//! [`KEEPALIVE`] finds out on a quiet stream), and its subscription with
//! it.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    task::{Context as TaskContext, Poll},
    time::Duration,
};

use actix::prelude::*;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{
    Api, ApiError,
    register::PeerCred,
    sse::{SseEncoder, parse_position},
};
use crate::{
    frame_writer::OUTBOUND_FRAMES,
    subscription::{
        Cancel, Release, Subscription, SubscriptionEnded, SubscriptionParts, direct::DirectPath,
        ledger::Owner, patterns::AdmitError,
    },
    supervisor::{AddSubscription, CatalogueSupervisor, ConnId, ConnectionClosed},
};

/// Supervisor connection ids of watch streams start here (socket
/// connections count from 0, leases from 2^48).
pub const WATCH_CONN_BASE: ConnId = 1 << 49;

/// A comment on a quiet stream this often: proxies keep it open, and a
/// client that went away is noticed when a write fails, which is the
/// second write after it left (actix-web does not report a closed
/// connection while it streams a response): a subscription outlives its
/// client by at most twice this.
pub const KEEPALIVE: Duration = Duration::from_secs(5);

/// Frames taken from the subscription per chunk written.
const BATCH: usize = 256;

/// First capacity of a chunk's buffer: a few events.
const CHUNK_CAPACITY: usize = 1024;

static NEXT_CONN: AtomicU64 = AtomicU64::new(0);

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// Regex over the URI; absent or empty: every service.
    #[serde(rename = "match")]
    pattern: Option<String>,
    /// Resume after this event id (as `Last-Event-ID`, for clients that
    /// cannot set headers).
    since: Option<String>,
}

/// Told when a subscription ends by itself; the stream learns it from the
/// `overflow` frame that precedes, so there is nothing to do.
struct EndSink;

impl Actor for EndSink {
    type Context = Context<Self>;
}

impl Handler<SubscriptionEnded> for EndSink {
    type Result = ();

    fn handle(&mut self, _: SubscriptionEnded, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Ends the subscription when the stream is dropped (the client left, or
/// the node is stopping).
struct Guard {
    supervisor: Addr<CatalogueSupervisor>,
    conn: ConnId,
    subscription: Addr<Subscription>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        tracing::debug!(conn = self.conn, "watch stream ended");
        self.subscription.do_send(Cancel);
        self.supervisor
            .do_send(ConnectionClosed { conn: self.conn });
    }
}

/// The response body: the events of the frames the subscription sends,
/// encoded as they are polled (no task or channel between the two beside
/// the subscription's own outbound channel), a keep-alive comment on a
/// quiet stream.
struct SseStream {
    frames: mpsc::Receiver<crate::frame_writer::Outbound>,
    encoder: SseEncoder,
    keepalive: tokio::time::Interval,
    /// The `retry:` line is still to be written.
    hello: bool,
    /// The subscription ended: nothing follows what was written.
    done: bool,
    _guard: Guard,
}

impl Stream for SseStream {
    type Item = Result<Bytes, Infallible>;

    /// The next chunk: every event waiting (the frames of up to [`BATCH`]),
    /// written into one buffer that becomes the chunk without a copy.
    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let st = self.get_mut();
        if st.done {
            return Poll::Ready(None);
        }
        let mut out = Vec::new();
        if std::mem::take(&mut st.hello) {
            // Tells EventSource to come back after 1 s when the stream drops.
            out.extend_from_slice(b"retry: 1000\n\n");
        }
        for _ in 0..BATCH {
            match st.frames.poll_recv(cx) {
                Poll::Ready(Some(body)) => {
                    if out.capacity() == 0 {
                        out.reserve(CHUNK_CAPACITY);
                    }
                    if st.encoder.encode(&body.into_body(), &mut out) {
                        st.done = true;
                        break;
                    }
                }
                Poll::Ready(None) => {
                    st.done = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if !out.is_empty() {
            st.keepalive.reset();
            return Poll::Ready(Some(Ok(Bytes::from(out))));
        }
        if st.done {
            return Poll::Ready(None);
        }
        match st.keepalive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Bytes::from_static(b": keepalive\n\n")))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Opens a watch stream.
pub async fn watch(
    req: HttpRequest,
    api: web::Data<Api>,
    query: web::Query<WatchQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let header = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    let resume = match header.or(query.since.as_deref()) {
        None => None,
        Some(id) => Some(parse_position(id).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{id:?} is not an event id of this API (EPOCH:REVISION, e.g. \"8231:42\")"
            ))
        })?),
    };
    let shared = &api.shared;
    let owner = match (req.conn_data::<PeerCred>(), req.peer_addr()) {
        (Some(cred), _) => Owner::Uid(cred.uid),
        (None, Some(addr)) => Owner::Address(addr.ip().to_canonical()),
        (None, None) => Owner::Uid(u32::MAX),
    };
    let (compiled, place) = shared
        .patterns
        .admit(
            query.pattern.as_deref().unwrap_or(""),
            shared.limits.max_regex_bytes,
            &shared.subscriptions,
            owner,
        )
        .map_err(|e| match e {
            AdmitError::Regex(e) => {
                shared.stats.subscription_refusal("invalid_regex");
                ApiError::BadRegex(e.to_string())
            }
            AdmitError::Refused(refusal) => {
                shared.stats.subscription_refusal(refusal.reason());
                ApiError::TooManyWatches(refusal.to_string())
            }
        })?;
    let key = shared.new_key();
    let conn = WATCH_CONN_BASE + NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (outbound, frames) = mpsc::channel(OUTBOUND_FRAMES);
    let direct = DirectPath::new(0, outbound.clone(), false);
    let subscription = Subscription::new(SubscriptionParts {
        key,
        id: 0,
        limit: shared.limits.subscription_queue,
        policy: shared.limits.overflow_policy,
        outbound,
        supervisor: shared.supervisor.clone().recipient(),
        ended: EndSink.start().recipient(),
        stats: shared.stats.clone(),
        permit: place,
        pattern: compiled.clone(),
        direct: direct.clone(),
    })
    .start();
    let guard = Guard {
        supervisor: shared.supervisor.clone(),
        conn,
        subscription: subscription.clone(),
    };
    shared
        .supervisor
        .send(AddSubscription {
            conn,
            key,
            regex: compiled.pattern().clone(),
            addr: subscription.clone(),
            direct,
            resume,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    subscription.do_send(Release);

    let events = SseStream {
        frames,
        encoder: SseEncoder::new(resume),
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
        hello: true,
        done: false,
        _guard: guard,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}
