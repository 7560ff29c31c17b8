//! The plaintext handshake of a peer link, then the switch to TLS on the
//! same socket.
//!
//! ```text
//! connector (A)                         acceptor (B)
//!   |<------------- Welcome --------------|  serial 0
//!   | check environment, version,         |
//!   | cluster, name = the peer we dialed  |
//!   |-------------- Peer ---------------->|  serial 0
//!   |                                     | check environment, version,
//!   |                                     | cluster, name known
//!   |<------- Success | Error 0x03.. -----|  serial 1 (Error: then close)
//!   |============ TLS handshake ==========|  A client, B server, both certs
//!   | A: B's cert names B                 | B: A's cert names A (else Error 0x03 over TLS)
//!   | and, if B is only an xlReg member,  | and, if A is only an xlReg member,
//!   | the xlReg cluster                   | the xlReg cluster (else Error 0x03 over TLS)
//!   |------ Hello (sync session) -------->|  B: first frame read: link up
//!   |<------------ SyncWelcome -----------|  A: first frame read: link up
//! ```
//!
//! The `Success` step answers the handshake RFC's ServerAuth (docs/PROTOCOL.md
//! §4.1): it lets the
//! connector read a refusal in plaintext instead of mistaking it for TLS.
//! Whatever bytes the frame reader buffered past the last plaintext frame
//! are handed to TLS ([`crate::tls::Prefixed`]), so nothing sent early is
//! lost. In debug mode the link stays plaintext after `Success`.
//!
//! [`connect`] and [`accept`] return once TLS is established, but with TLS
//! 1.3 the connector's half finishes before the acceptor has checked the
//! connector's certificate: a refusal arrives as an alert on the first
//! read. So a link counts as up only once the first frame from the other
//! side has been read over TLS ([`check_first_frame`]; the
//! [`super::link::PeerLink`] actor reads it); a read error before it is a
//! failed handshake ([`first_read_error`]).
//!
//! The TCP connect has its own deadline ([`CONNECT_TIMEOUT`]) and error
//! ([`HandshakeError::Connect`]): a dial that made no connection cost the
//! peer nothing and is retried soon ([`HandshakeError::failure`]).
//!
//! A peer that is not in `[[peers]]` but known from the xlReg cluster's
//! member tokens must present a certificate that also names that cluster
//! (URI SAN `catalogue://cluster/<name>`, [`crate::tls::check_peer_cluster`]):
//! anyone with a certificate from the cluster CA can join an open registry,
//! so membership alone never authorises a link ([`cluster_to_check`]).
//!
//! The checks themselves are plain functions ([`check_peer`],
//! [`check_welcome`], [`check_first_frame`], [`cluster_to_check`]), tested
//! without sockets.

use std::{net::SocketAddr, time::Duration};

use catalogue_proto::{
    Body, CodecError, Frame, FrameCodec,
    catalogue::{Error, ErrorCode, Peer, Success, Welcome},
    version,
};
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_util::codec::{Framed, FramedParts};

use super::directory::{Direction, PeerDirectory};
use crate::{
    backoff::Failure,
    input::{self, FrameDeadline, InputLimits},
    tls::{self, HandshakeFailure, Prefixed, TlsContexts},
};

/// Time a handshake may take, TCP connect to TLS done.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time the TCP connect may take, within [`HANDSHAKE_TIMEOUT`] (shorter, so
/// a connect that times out is told from a handshake that stalls).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream a link runs over (TLS, or plaintext in debug mode).
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + 'static> PeerIo for T {}

/// This node, as it presents itself in the handshake.
#[derive(Debug, Clone)]
pub struct LocalIdentity {
    /// Node name.
    pub name: String,
    /// Cluster name.
    pub cluster: String,
    /// Environment.
    pub environment: String,
    /// Debug mode: no TLS.
    pub debug: bool,
    /// The xlReg cluster this node forms (`xlreg.cluster.name` when it uses
    /// a registry): what the certificate of a peer known only from the
    /// cluster's member tokens must name.
    pub xlreg_cluster: Option<String>,
}

impl LocalIdentity {
    /// Our `Welcome`.
    pub fn welcome(&self) -> Welcome {
        Welcome {
            server_name: self.name.clone(),
            cluster: self.cluster.clone(),
            environment: self.environment.clone(),
            protocol_major: catalogue_proto::PROTOCOL_MAJOR,
            protocol_minor: catalogue_proto::PROTOCOL_MINOR,
            port: catalogue_proto::catalogue::WelcomePort::Peer.into(),
        }
    }

    /// Our `Peer`.
    pub fn peer(&self) -> Peer {
        Peer {
            name: self.name.clone(),
            cluster: self.cluster.clone(),
            environment: self.environment.clone(),
            protocol_major: catalogue_proto::PROTOCOL_MAJOR,
            protocol_minor: catalogue_proto::PROTOCOL_MINOR,
        }
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// No TCP connection was made (refused, unreachable, timed out, address
    /// not resolved): nothing reached the peer's daemon.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// I/O failed on the connection.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Framing failed.
    #[error("framing: {0}")]
    Codec(#[from] catalogue_proto::CodecError),
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
    /// The other side closed the connection.
    #[error("connection closed during the handshake")]
    Closed,
    /// The other side sent something else than the handshake expects.
    #[error("unexpected {0} during the handshake")]
    Unexpected(String),
    /// The environments differ: not retried until the configuration changes.
    #[error("environment mismatch: ours {ours}, theirs {theirs}")]
    Environment {
        /// Ours.
        ours: String,
        /// Theirs.
        theirs: String,
    },
    /// We refused the other side (and told it, when it could read it).
    #[error("refused: {message}")]
    Refused {
        /// The code sent.
        code: ErrorCode,
        /// Why.
        message: String,
    },
    /// The other side refused us.
    #[error("refused by the peer: error {} {message}", code.hex())]
    RefusedByPeer {
        /// The code received.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// TLS failed (certificate, CA, protocol).
    #[error("tls: {0}")]
    Tls(#[from] tls::TlsError),
    /// The peer is known only from the xlReg cluster and its certificate
    /// does not name that cluster (the acceptor also tells it, 0x03).
    #[error("refused: {0}")]
    NotClusterMember(String),
}

impl HandshakeError {
    /// Short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::Connect(e) => match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection_refused",
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    "unreachable"
                }
                std::io::ErrorKind::TimedOut => "connect_timeout",
                _ => "connect",
            },
            HandshakeError::Io(_) => "io",
            HandshakeError::Codec(_) => "framing",
            HandshakeError::Timeout => "timeout",
            HandshakeError::Closed => "connection_closed",
            HandshakeError::Unexpected(_) => "unexpected_message",
            HandshakeError::Environment { .. } => "environment_mismatch",
            HandshakeError::Refused { code, .. } | HandshakeError::RefusedByPeer { code, .. } => {
                match code {
                    ErrorCode::VersionMismatch => "version_mismatch",
                    ErrorCode::EnvironmentMismatch => "environment_mismatch",
                    _ => "unknown_name",
                }
            }
            HandshakeError::Tls(e) => e.reason(),
            HandshakeError::NotClusterMember(_) => "cluster_not_in_certificate",
        }
    }

    /// What the failed attempt cost the peer, for the backoff: nothing when
    /// no connection was made; a connection, a handshake and maybe a TLS
    /// handshake otherwise.
    pub fn failure(&self) -> Failure {
        match self {
            HandshakeError::Connect(_) => Failure::NoConnection,
            _ => Failure::AfterConnect,
        }
    }

    /// True when retrying cannot help until the configuration changes.
    pub fn is_permanent(&self) -> bool {
        matches!(self, HandshakeError::Environment { .. })
            || matches!(
                self,
                HandshakeError::RefusedByPeer {
                    code: ErrorCode::EnvironmentMismatch,
                    ..
                }
            )
    }
}

/// What a dialer makes of a frame other than the one it waits for: the
/// peer's refusal, or an unexpected message.
fn not_expected(body: Option<Body>) -> HandshakeError {
    match body {
        Some(Body::Error(e)) => HandshakeError::RefusedByPeer {
            code: e.code(),
            message: e.message,
        },
        other => {
            HandshakeError::Unexpected(other.as_ref().map_or("empty frame", Body::kind).into())
        }
    }
}

/// Does the first frame read on an established link make it up? Any frame
/// does (it proves the other side accepted us), except a refusal (`Error`,
/// e.g. 0x03 when our certificate does not name us) or a `Bye`.
pub fn check_first_frame(body: Option<&Body>) -> Result<(), HandshakeError> {
    match body {
        Some(Body::Error(e)) => Err(HandshakeError::RefusedByPeer {
            code: e.code(),
            message: e.message.clone(),
        }),
        Some(Body::Bye(_)) => Err(HandshakeError::Closed),
        _ => Ok(()),
    }
}

/// What a read error before the first frame means. Over TLS an I/O error is
/// classified like a failed TLS handshake: with TLS 1.3 it is how the
/// acceptor's refusal of our certificate arrives (an alert).
pub fn first_read_error(error: CodecError, over_tls: bool) -> HandshakeError {
    match error {
        CodecError::Io(e) if over_tls => HandshakeError::Tls(tls::TlsError::Handshake {
            reason: HandshakeFailure::from_io_error(&e),
        }),
        CodecError::Io(e) => HandshakeError::Io(e),
        other => HandshakeError::Codec(other),
    }
}

/// A link whose handshake is done.
pub struct Established {
    /// The peer's node name (checked against its certificate).
    pub peer: String,
    /// Who dialed.
    pub direction: Direction,
    /// The other side's address.
    pub remote: SocketAddr,
    /// The stream, TLS unless in debug mode.
    pub io: Box<dyn PeerIo>,
    /// Our next frame serial on this connection.
    pub next_serial: u64,
    /// The peer's certificate (absent in debug mode), kept to re-check it
    /// when the trusted CAs change.
    pub peer_cert: Option<openssl::x509::X509>,
}

/// The acceptor's check of a `Peer`: environment, version, cluster, name.
pub fn check_peer(
    local: &LocalIdentity,
    peer: &Peer,
    directory: &PeerDirectory,
) -> Result<(), (ErrorCode, String)> {
    if peer.environment != local.environment {
        return Err((
            ErrorCode::EnvironmentMismatch,
            format!(
                "environment mismatch: ours {}, yours {}",
                local.environment, peer.environment
            ),
        ));
    }
    if !version::compatible(peer.protocol_major) {
        return Err((
            ErrorCode::VersionMismatch,
            format!(
                "protocol version mismatch: ours {}, yours {}",
                catalogue_proto::PROTOCOL_MAJOR,
                peer.protocol_major
            ),
        ));
    }
    if peer.cluster != local.cluster {
        return Err((
            ErrorCode::ServerAuthFailed,
            format!("server auth failed: cluster {:?} is not ours", peer.cluster),
        ));
    }
    if peer.name == local.name || !directory.is_known(&peer.name) {
        return Err((
            ErrorCode::ServerAuthFailed,
            format!("server auth failed: unknown name {:?}", peer.name),
        ));
    }
    Ok(())
}

/// Which xlReg cluster `peer`'s certificate must name: none for a peer in
/// `[[peers]]`; for a peer known only from the xlReg cluster, that cluster
/// (empty, so that nothing matches, if this node has none).
pub fn cluster_to_check(
    local: &LocalIdentity,
    directory: &PeerDirectory,
    peer: &str,
) -> Option<String> {
    if directory.is_configured(peer) {
        None
    } else {
        Some(local.xlreg_cluster.clone().unwrap_or_default())
    }
}

/// Checks the certificate of a TLS stream against the cluster it must
/// name, if any.
fn check_cluster_certificate<S>(
    stream: &tokio_openssl::SslStream<S>,
    cluster: Option<&str>,
) -> Result<(), String> {
    let Some(cluster) = cluster else {
        return Ok(());
    };
    let cert = tls::verified_peer_certificate(stream.ssl()).map_err(|e| e.to_string())?;
    tls::check_peer_cluster(&cert, cluster).map_err(|e| e.to_string())
}

/// The connector's check of a `Welcome` from the peer it dialed as
/// `expected`.
pub fn check_welcome(
    local: &LocalIdentity,
    expected: &str,
    welcome: &Welcome,
) -> Result<(), HandshakeError> {
    if welcome.environment != local.environment {
        return Err(HandshakeError::Environment {
            ours: local.environment.clone(),
            theirs: welcome.environment.clone(),
        });
    }
    if !version::compatible(welcome.protocol_major) {
        return Err(HandshakeError::Refused {
            code: ErrorCode::VersionMismatch,
            message: format!(
                "protocol version mismatch: ours {}, theirs {}",
                catalogue_proto::PROTOCOL_MAJOR,
                welcome.protocol_major
            ),
        });
    }
    if welcome.cluster != local.cluster {
        return Err(HandshakeError::Refused {
            code: ErrorCode::ServerAuthFailed,
            message: format!(
                "the node at this address is in cluster {:?}",
                welcome.cluster
            ),
        });
    }
    if welcome.server_name != expected {
        return Err(HandshakeError::Refused {
            code: ErrorCode::ServerAuthFailed,
            message: format!(
                "dialed {expected:?} but the node says it is {:?}",
                welcome.server_name
            ),
        });
    }
    Ok(())
}

/// The TLS contexts a link uses after the plaintext steps: none in debug
/// mode; a node outside debug mode without TLS files links to nobody.
fn tls_for<'a>(
    local: &LocalIdentity,
    tls: Option<&'a TlsContexts>,
) -> Result<Option<&'a TlsContexts>, HandshakeError> {
    match (local.debug, tls) {
        (true, _) => Ok(None),
        (false, Some(tls)) => Ok(Some(tls)),
        (false, None) => Err(HandshakeError::Refused {
            code: ErrorCode::ServerAuthFailed,
            message: "this node has no TLS configuration".into(),
        }),
    }
}

/// The next frame, which must arrive whole within `frame_timeout` of its
/// first byte (the whole handshake has [`HANDSHAKE_TIMEOUT`]).
async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, FrameCodec>,
    frame_timeout: Duration,
) -> Result<Frame, HandshakeError> {
    match FrameDeadline::new(framed, frame_timeout).next().await {
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e)) => Err(e.into()),
        None => Err(HandshakeError::Closed),
    }
}

/// Takes the stream back from the frame reader, with the bytes it had
/// already read past the last frame.
fn unframe<S>(framed: Framed<S, FrameCodec>) -> Prefixed<S> {
    let FramedParts { io, read_buf, .. } = framed.into_parts();
    Prefixed::new(read_buf.freeze(), io)
}

/// The accepting side of a peer link, bounded by [`HANDSHAKE_TIMEOUT`].
pub async fn accept(
    stream: TcpStream,
    remote: SocketAddr,
    local: &LocalIdentity,
    directory: &PeerDirectory,
    tls: Option<&TlsContexts>,
    limits: &InputLimits,
) -> Result<Established, HandshakeError> {
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept_inner(stream, remote, local, directory, tls, limits),
    )
    .await
    .map_err(|_| HandshakeError::Timeout)?
}

async fn accept_inner(
    stream: TcpStream,
    remote: SocketAddr,
    local: &LocalIdentity,
    directory: &PeerDirectory,
    tls: Option<&TlsContexts>,
    limits: &InputLimits,
) -> Result<Established, HandshakeError> {
    // The other side is unknown: frames are limited to the handshake's.
    let mut framed = Framed::new(stream, limits.handshake_codec());
    framed
        .send(Frame::new(0, Body::Welcome(local.welcome())))
        .await?;
    let frame = match next_frame(&mut framed, limits.frame_timeout).await {
        Ok(frame) => frame,
        Err(HandshakeError::Codec(e)) => {
            // PROTOCOL.md §1: a framing error is answered where the other
            // side can still read it (0x13, 0x14, 0x15), then the link
            // closes.
            if let Some(code) = e.error_code() {
                let error = Error::new(code, input::closing_message(&e));
                let _ = framed.send(Frame::new(1, Body::Error(error))).await;
            }
            return Err(HandshakeError::Codec(e));
        }
        Err(e) => return Err(e),
    };
    let peer = match frame.body {
        Some(Body::Peer(peer)) => peer,
        other => {
            let kind = other.as_ref().map_or("empty frame", Body::kind).to_string();
            let error = Error::new(
                ErrorCode::UnexpectedMessage,
                format!("expected Peer, got {kind}"),
            );
            let _ = framed.send(Frame::new(1, Body::Error(error))).await;
            return Err(HandshakeError::Unexpected(kind));
        }
    };
    if let Err((code, message)) = check_peer(local, &peer, directory) {
        let _ = framed
            .send(Frame::new(
                1,
                Body::Error(Error::new(code, message.clone()).replying_to(frame.serial)),
            ))
            .await;
        return Err(HandshakeError::Refused { code, message });
    }
    framed
        .send(Frame::new(
            1,
            Body::Success(Success {
                in_reply_to: frame.serial,
            }),
        ))
        .await?;
    let io = unframe(framed);
    let mut peer_cert = None;
    let io: Box<dyn PeerIo> = match tls_for(local, tls)? {
        None => Box::new(io),
        Some(tls) => {
            let mut stream = tls::accept(&tls.acceptor, io).await?;
            if let Err(e) = tls::check_stream_peer(&stream, &peer.name) {
                let message = format!("server auth failed: {e}");
                refuse_over_tls(&mut stream, limits, &message).await;
                return Err(HandshakeError::Refused {
                    code: ErrorCode::ServerAuthFailed,
                    message,
                });
            }
            let cluster = cluster_to_check(local, directory, &peer.name);
            if let Err(e) = check_cluster_certificate(&stream, cluster.as_deref()) {
                let message = format!("server auth failed: {e}");
                refuse_over_tls(&mut stream, limits, &message).await;
                return Err(HandshakeError::NotClusterMember(message));
            }
            peer_cert = stream.ssl().peer_certificate();
            Box::new(stream)
        }
    };
    Ok(Established {
        peer: peer.name,
        direction: Direction::Inbound,
        remote,
        io,
        next_serial: 2,
        peer_cert,
    })
}

/// The connecting side: dials `address`, expecting node `expected`, whose
/// certificate must also name xlReg cluster `cluster` when given (see
/// [`cluster_to_check`]).
pub async fn connect(
    expected: &str,
    address: &str,
    local: &LocalIdentity,
    tls: Option<&TlsContexts>,
    limits: &InputLimits,
    cluster: Option<&str>,
) -> Result<Established, HandshakeError> {
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        connect_inner(expected, address, local, tls, limits, cluster),
    )
    .await
    .map_err(|_| HandshakeError::Timeout)?
}

/// Tells a dialer over TLS why its link is refused (Error 0x03), before
/// the caller closes the connection.
async fn refuse_over_tls<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    limits: &InputLimits,
    message: &str,
) {
    let mut framed = Framed::new(stream, limits.handshake_codec());
    let body = Body::Error(Error::new(ErrorCode::ServerAuthFailed, message.to_string()));
    let _ = framed.send(Frame::new(2, body)).await;
}

async fn connect_inner(
    expected: &str,
    address: &str,
    local: &LocalIdentity,
    tls: Option<&TlsContexts>,
    limits: &InputLimits,
    cluster: Option<&str>,
) -> Result<Established, HandshakeError> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(HandshakeError::Connect(e)),
        Err(_) => {
            return Err(HandshakeError::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            )));
        }
    };
    let _ = stream.set_nodelay(true);
    let remote = stream.peer_addr()?;
    let mut framed = Framed::new(stream, limits.handshake_codec());
    let welcome = match next_frame(&mut framed, limits.frame_timeout).await?.body {
        Some(Body::Welcome(w)) => w,
        other => return Err(not_expected(other)),
    };
    check_welcome(local, expected, &welcome)?;
    framed.send(Frame::new(0, Body::Peer(local.peer()))).await?;
    match next_frame(&mut framed, limits.frame_timeout).await?.body {
        Some(Body::Success(_)) => {}
        other => return Err(not_expected(other)),
    }
    let io = unframe(framed);
    let mut peer_cert = None;
    let io: Box<dyn PeerIo> = match tls_for(local, tls)? {
        None => Box::new(io),
        Some(tls) => {
            let stream = tls::connect(&tls.connector, io).await?;
            tls::check_stream_peer(&stream, expected).map_err(|e| HandshakeError::Refused {
                code: ErrorCode::ServerAuthFailed,
                message: format!("server certificate: {e}"),
            })?;
            check_cluster_certificate(&stream, cluster).map_err(|e| {
                HandshakeError::NotClusterMember(format!("server certificate: {e}"))
            })?;
            peer_cert = stream.ssl().peer_certificate();
            Box::new(stream)
        }
    };
    Ok(Established {
        peer: expected.to_string(),
        direction: Direction::Outbound,
        remote,
        io,
        next_serial: 1,
        peer_cert,
    })
}

#[cfg(test)]
mod tests;
