//! A minimal xlReg client for bad-input tests: it gets through the real
//! RSA/AES handshake (so that what follows reaches the session decoder),
//! then sends whatever the test wants, sealed or raw.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::Duration,
};

use anyhow::{Context, Result};
use catalogue_actors::xlreg::{
    frame::{Opener, Role, Sealer},
    hello::{Hello, HelloReply, REPLY_WIRE_LEN},
    keys::PublicKey,
    version::Version,
};
use catalogue_proto::reg::XlRegMsg;
use prost::Message;

use super::exchange::HalfClose;

/// The registry's public key, as the daemon wrote it in its data dir.
pub fn registry_key(data_dir: &Path) -> Result<PublicKey> {
    let pem = std::fs::read(data_dir.join("xlreg/registry.pub")).context("registry.pub")?;
    Ok(PublicKey::from_pem(&pem)?)
}

/// A session past the handshake.
pub struct XlregProbe {
    /// The connection.
    pub stream: TcpStream,
    sealer: Sealer,
    opener: Opener,
}

impl XlregProbe {
    /// Connects to `addr` and does the handshake asking for `version`.
    pub fn connect(addr: &str, data_dir: &Path, version: Version) -> Result<XlregProbe> {
        let key = registry_key(data_dir)?;
        let mut stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        stream.set_read_timeout(Some(crate::DEADLINE))?;
        let hello = Hello::new(version)?;
        stream.write_all(&hello.seal(&key)?)?;
        let mut wire = [0u8; REPLY_WIRE_LEN];
        stream.read_exact(&mut wire).context("HelloReply")?;
        let keys = HelloReply::open(&wire, &hello)?.session_keys()?;
        Ok(XlregProbe {
            stream,
            sealer: keys.sealer(Role::Client),
            opener: keys.opener(Role::Client),
        })
    }

    /// `plain` sealed as the next frame (its bytes, not yet sent).
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<u8>> {
        Ok(self.sealer.seal(plain)?)
    }

    /// Writes `bytes`, half-closes, and reads the node's answer until it
    /// closes; returns the messages that open, and whether bytes were left
    /// that do not.
    pub fn exchange(mut self, bytes: &[u8], deadline: Duration) -> Result<(Vec<XlRegMsg>, bool)> {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.half_close();
        self.stream.set_read_timeout(Some(deadline))?;
        let mut raw = Vec::new();
        if let Err(e) = self.stream.read_to_end(&mut raw) {
            if e.kind() != std::io::ErrorKind::ConnectionReset {
                return Err(e).context("reading the registry's answer");
            }
        }
        let mut rest = &raw[..];
        let mut msgs = Vec::new();
        while rest.len() >= 4 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let Some(body) = rest.get(4..4 + len) else {
                break;
            };
            let Ok(plain) = self.opener.open(body) else {
                break;
            };
            let Ok(msg) = XlRegMsg::decode(plain.as_slice()) else {
                break;
            };
            msgs.push(msg);
            rest = &rest[4 + len..];
        }
        Ok((msgs, !rest.is_empty()))
    }
}
