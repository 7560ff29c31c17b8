//! Playing a peer against a node's peer port: the plaintext handshake
//! (Welcome, Peer, Success), TLS with a certificate from the cluster CA,
//! and the start of the sync session (Hello, Register).

use std::{
    io::{Read, Write},
    net::TcpStream,
};

use anyhow::{Result, bail};
use catalogue_actors::tls::TlsContexts;
use catalogue_proto::{
    Body, Frame,
    catalogue::{Hello, Peer, Register},
};
use openssl::ssl::SslStream;

use crate::{DEADLINE, Daemon, TlsFiles, read_frame, write_frame};

/// A `Peer` frame for `name`, in the cluster and environment a test
/// daemon has by default.
pub fn peer_frame(name: &str) -> Frame {
    Frame::new(
        0,
        Body::Peer(Peer {
            name: name.into(),
            cluster: "default".into(),
            environment: "test".into(),
            protocol_major: catalogue_proto::PROTOCOL_MAJOR,
            protocol_minor: catalogue_proto::PROTOCOL_MINOR,
        }),
    )
}

/// Connects to the peer port and reads the Welcome.
pub fn peer_connect(daemon: &Daemon) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(&daemon.peer)?;
    stream.set_read_timeout(Some(DEADLINE))?;
    match read_frame(&mut stream)?.and_then(|f| f.body) {
        Some(Body::Welcome(_)) => Ok(stream),
        other => bail!("expected Welcome, got {other:?}"),
    }
}

/// The plaintext handshake as peer `name`, up to the node's `Success`.
pub fn peer_handshake(daemon: &Daemon, name: &str) -> Result<TcpStream> {
    let mut stream = peer_connect(daemon)?;
    write_frame(&mut stream, &peer_frame(name))?;
    match read_frame(&mut stream)?.and_then(|f| f.body) {
        Some(Body::Success(_)) => Ok(stream),
        other => bail!("expected Success, got {other:?}"),
    }
}

/// The whole handshake as peer `name` holding `files`, TLS included,
/// with a node named `node`.
pub fn tls_session(
    daemon: &Daemon,
    name: &str,
    files: &TlsFiles,
    node: &str,
) -> Result<SslStream<TcpStream>> {
    let contexts = TlsContexts::from_files(&files.ca, &files.cert, &files.key)?;
    let stream = peer_handshake(daemon, name)?;
    Ok(contexts.connector.connect(node, stream)?)
}

/// Hello (serial 1) and Register (serial 2) as `name`, then reads until
/// the node's own Register: the session is ready for batches.
pub fn start_session<S: Read + Write>(stream: &mut S, name: &str) -> Result<()> {
    let hello = Body::Hello(Hello { name: name.into() });
    write_frame(stream, &Frame::new(1, hello))?;
    let register = Body::Register(Register { name: name.into() });
    write_frame(stream, &Frame::new(2, register))?;
    // SyncWelcome, then the node's Register; acks may come between.
    for _ in 0..8 {
        if let Some(Body::Register(_)) = read_frame(stream)?.and_then(|f| f.body) {
            return Ok(());
        }
    }
    bail!("no Register from the node")
}
