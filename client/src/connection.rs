//! The task that owns a client's socket: handshake, serials, replies and
//! subscription events.

use std::{collections::HashMap, time::Duration};

use catalogue_proto::{Body, Frame, FrameCodec, PROTOCOL_MAJOR, catalogue::Welcome, version};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    net::{TcpStream, UnixStream},
    sync::{mpsc, oneshot, watch},
};
use tokio_util::codec::Framed;

use super::{ClientError, ConnectOptions, Endpoint, SubscriptionEvent, probe, shared::Sink};

/// How long a node may take to send its `Welcome` once connected.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests from the [`super::Client`] handle to the task.
#[derive(Debug)]
pub(super) enum Command {
    /// Send `body`; answer `reply` with the node's reply. With `events`, the
    /// request is a subscription whose frames go to that channel.
    Request {
        body: Body,
        reply: oneshot::Sender<Result<Body, ClientError>>,
        events: Option<(u64, Sink)>,
    },
}

type Opened = (
    mpsc::Sender<Command>,
    Welcome,
    watch::Receiver<Option<ClientError>>,
);

/// Connects and starts the task.
pub(super) async fn open(options: &ConnectOptions) -> Result<Opened, ClientError> {
    let connect_error = |e: std::io::Error| ClientError::Connect {
        endpoint: options.endpoint.to_string(),
        reason: e.to_string(),
    };
    match &options.endpoint {
        Endpoint::Unix(path) => {
            let stream = UnixStream::connect(path).await.map_err(connect_error)?;
            super::owner::check(&stream, path, &options.trusted_uids)?;
            start(stream, options).await
        }
        Endpoint::Tcp(addr) => {
            let stream = TcpStream::connect(addr).await.map_err(connect_error)?;
            let _ = stream.set_nodelay(true);
            match &options.tls {
                None => start(stream, options).await,
                Some(tls) => {
                    let name = tls
                        .server_name
                        .as_deref()
                        .unwrap_or_else(|| super::tls::host_of(addr));
                    let handshake = super::tls::connect(stream, addr, tls);
                    let stream = tokio::time::timeout(WELCOME_TIMEOUT, handshake)
                        .await
                        .map_err(|_| ClientError::Tls {
                            endpoint: addr.clone(),
                            reason: format!(
                                "no TLS handshake within {WELCOME_TIMEOUT:?}: is listen.client_tls \
                                 on at that node?"
                            ),
                        })??;
                    // TLS 1.3 reports a refused client certificate at the
                    // first read, which is the Welcome's.
                    start(stream, options).await.map_err(|e| match e {
                        ClientError::Codec(text) => ClientError::Tls {
                            endpoint: addr.clone(),
                            reason: super::tls::explain(&text, name),
                        },
                        other => other,
                    })
                }
            }
        }
    }
}

async fn start<S>(stream: S, options: &ConnectOptions) -> Result<Opened, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut framed = Framed::new(stream, FrameCodec::new(options.max_frame));
    let endpoint = options.endpoint.to_string();
    let welcome = first_read(&mut framed, &endpoint).await?;
    if let Some(expected) = &options.expect_environment {
        if *expected != welcome.environment {
            return Err(ClientError::EnvironmentMismatch {
                expected: expected.clone(),
                server: welcome.environment,
            });
        }
    }
    if !version::compatible(welcome.protocol_major) {
        return Err(ClientError::VersionMismatch {
            client: PROTOCOL_MAJOR,
            server: welcome.protocol_major,
        });
    }
    let (commands, rx) = mpsc::channel(64);
    let (ended_tx, ended) = watch::channel(None);
    tokio::spawn(run(framed, rx, ended_tx));
    Ok((commands, welcome, ended))
}

/// The node's `Welcome`, read first; after [`probe::PROBE_AFTER`] of
/// silence the client sends the probe, so that an endpoint that waits for
/// its client to speak (HTTP, xlReg, TLS) answers and is named by
/// [`probe::identify`] instead of timing out.
async fn first_read<S>(
    framed: &mut Framed<S, FrameCodec>,
    endpoint: &str,
) -> Result<Welcome, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Ok(first) = tokio::time::timeout(probe::PROBE_AFTER, framed.next()).await {
        return probe::identify(endpoint, first, false);
    }
    // The read above is cancel-safe: what arrived so far stays buffered.
    // A failed write (the endpoint hung up) leaves the read below to say
    // what it got.
    let _ = framed.get_mut().write_all(&probe::probe_bytes()).await;
    let rest = WELCOME_TIMEOUT.saturating_sub(probe::PROBE_AFTER);
    match tokio::time::timeout(rest, framed.next()).await {
        Ok(first) => probe::identify(endpoint, first, true),
        Err(_) => Err(probe::silent(endpoint, WELCOME_TIMEOUT)),
    }
}

/// Serves the connection until it ends; says why in `ended` before its
/// subscriptions' channels close, so a subscriber that sees its channel
/// close can read the reason.
async fn run<S>(
    mut framed: Framed<S, FrameCodec>,
    mut commands: mpsc::Receiver<Command>,
    ended: watch::Sender<Option<ClientError>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut serial = 0u64;
    let mut pending: HashMap<u64, Pending> = HashMap::new();
    let mut subscriptions: HashMap<u64, Sink> = HashMap::new();
    // The services of streamed listings whose last frame has not come.
    let mut listings: HashMap<u64, Vec<catalogue_proto::catalogue::Service>> = HashMap::new();
    let reason = loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(Command::Request { body, reply, events }) = command else {
                    // The handle is gone: say goodbye and close.
                    let _ = framed.send(Frame::new(serial, Body::Bye(catalogue_proto::catalogue::Bye {
                        reason: "client closing".into(),
                    }))).await;
                    break ClientError::Disconnected;
                };
                let subscription = events.map(|(id, tx)| {
                    subscriptions.insert(id, tx);
                    id
                });
                // Nothing of a cancelled subscription is delivered after
                // its cancel is sent (a shared sink would not tell).
                if let Body::Unsubscribe(u) = &body {
                    subscriptions.remove(&u.subscription_id);
                }
                pending.insert(serial, Pending { reply, subscription });
                if let Err(e) = framed.send(Frame::new(serial, body)).await {
                    break e.into();
                }
                serial += 1;
            }
            frame = framed.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => break e.into(),
                    None => break ClientError::Disconnected,
                };
                match frame.body {
                    Some(Body::Success(s)) => answer(&mut pending, s.in_reply_to, Ok(Body::Success(s))),
                    // A streamed listing's frames are kept until its last.
                    Some(Body::ListReply(mut r)) if r.more && pending.contains_key(&r.in_reply_to) => {
                        listings.entry(r.in_reply_to).or_default().append(&mut r.services);
                    }
                    Some(Body::ListReply(r)) if r.more => {}
                    Some(Body::ListReply(mut r)) => {
                        if let Some(mut earlier) = listings.remove(&r.in_reply_to) {
                            earlier.append(&mut r.services);
                            r.services = earlier;
                        }
                        answer(&mut pending, r.in_reply_to, Ok(Body::ListReply(r)));
                    }
                    Some(Body::LinksReply(r)) => answer(&mut pending, r.in_reply_to, Ok(Body::LinksReply(r))),
                    Some(Body::PeersReply(r)) => answer(&mut pending, r.in_reply_to, Ok(Body::PeersReply(r))),
                    Some(Body::Error(e)) => {
                        let error = ClientError::Server { code: e.code(), message: e.message.clone() };
                        match e.in_reply_to {
                            Some(serial) => {
                                listings.remove(&serial);
                                // A refused subscription delivers nothing.
                                if let Some(id) = pending.get(&serial).and_then(|p| p.subscription) {
                                    subscriptions.remove(&id);
                                }
                                answer(&mut pending, serial, Err(error));
                            }
                            None => break error,
                        }
                    }
                    Some(Body::Bye(bye)) => break ClientError::Bye(bye.reason),
                    Some(Body::ServiceEvent(mut e)) if !e.also.is_empty() => {
                        // One change for several subscriptions (grouped).
                        let also = std::mem::take(&mut e.also);
                        if let Some((first, event)) = SubscriptionEvent::from_body(Body::ServiceEvent(e)) {
                            for id in std::iter::once(first).chain(also) {
                                if let Some(tx) = subscriptions.get(&id) {
                                    if !tx.send(id, event.clone()).await {
                                        subscriptions.remove(&id);
                                    }
                                }
                            }
                        }
                    }
                    Some(body) => {
                        if let Some((id, event)) = SubscriptionEvent::from_body(body) {
                            let ended = matches!(event.event, SubscriptionEvent::Overflow { resnapshot: false, .. });
                            if let Some(tx) = subscriptions.get(&id) {
                                if !tx.send(id, event).await {
                                    subscriptions.remove(&id);
                                }
                            }
                            if ended {
                                subscriptions.remove(&id);
                            }
                        }
                    }
                    None => {}
                }
            }
        }
    };
    let _ = ended.send(Some(reason.clone()));
    for (_, p) in pending.drain() {
        let _ = p.reply.send(Err(reason.clone()));
    }
    drop(subscriptions);
}

/// A request waiting for its reply.
struct Pending {
    reply: oneshot::Sender<Result<Body, ClientError>>,
    /// The subscription the request opens, if it is a Subscribe.
    subscription: Option<u64>,
}

fn answer(pending: &mut HashMap<u64, Pending>, serial: u64, result: Result<Body, ClientError>) {
    if let Some(p) = pending.remove(&serial) {
        let _ = p.reply.send(result);
    }
}
