//! Placeholder connection handler used until the client and peer actors
//! land: sends `Welcome`, answers every request with an `Error` saying it is
//! not served yet, and says `Bye` when the node stops. It exists so that a
//! node started today behaves like a node on the wire: handshake first,
//! typed errors, orderly goodbye.

use catalogue_proto::{
    Body, Frame, FrameCodec,
    catalogue::{Bye, Error, ErrorCode, Welcome},
};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::watch,
};
use tokio_util::codec::Framed;
use tracing::debug;

/// Serves one connection until the peer leaves, a frame is malformed, or
/// `stop` turns true.
pub async fn serve<S>(
    stream: S,
    welcome: Welcome,
    max_frame: usize,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut framed = Framed::new(stream, FrameCodec::new(max_frame));
    let mut serial = 0u64;
    let mut next = |body| {
        let frame = Frame::new(serial, body);
        serial += 1;
        frame
    };
    if framed.send(next(Body::Welcome(welcome))).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    let _ = framed.send(next(Body::Bye(Bye { reason: "shutting down".into() }))).await;
                    return;
                }
            }
            incoming = framed.next() => match incoming {
                None => return,
                Some(Ok(frame)) => {
                    let error = Error::new(
                        ErrorCode::UnexpectedMessage,
                        format!("{} is not served by this node yet", frame.kind()),
                    )
                    .replying_to(frame.serial);
                    if framed.send(next(Body::Error(error))).await.is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    debug!(error = %e, "closing connection after a framing error");
                    if let Some(code) = e.error_code() {
                        let _ = framed.send(next(Body::Error(Error::new(code, e.to_string())))).await;
                    }
                    return;
                }
            }
        }
    }
}
