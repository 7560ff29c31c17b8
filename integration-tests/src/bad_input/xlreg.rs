//! A minimal xlReg client for bad-input tests: it gets through the real
//! RSA/AES handshake (so that what follows reaches the session decoder),
//! then sends whatever the test wants, sealed or raw; and random but
//! well-formed messages ([`random_msg`]) that reach the request rules.

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
use catalogue_proto::reg::{XlRegMsg, xl_reg_msg::Token};
use prost::Message;

use super::{Rng, exchange::HalfClose, random_bytes};

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

/// Random bytes of up to `max`, or (one time in three) an absent field.
fn maybe_bytes(rng: &mut Rng, max: usize) -> Option<Vec<u8>> {
    if rng.one_in(3) {
        return None;
    }
    let len = rng.below(max + 1);
    Some(random_bytes(rng, len))
}

fn maybe_name(rng: &mut Rng) -> Option<String> {
    maybe_bytes(rng, 12).map(|b| b.iter().map(|c| char::from(b'a' + c % 26)).collect())
}

/// A well-formed `XLRegMsg` with a random op (sometimes unknown, sometimes
/// absent) and random fields.
pub fn random_msg(rng: &mut Rng) -> XlRegMsg {
    let token = Token {
        name: maybe_name(rng),
        attrs: rng.one_in(2).then(|| rng.next_u64()),
        id: maybe_bytes(rng, 40),
        comms_key: maybe_bytes(rng, 300),
        sig_key: maybe_bytes(rng, 300),
        my_ends: (0..rng.below(4))
            .map(|i| format!("127.0.0.1:{i}"))
            .collect(),
        dig_sig: maybe_bytes(rng, 256),
    };
    XlRegMsg {
        op: (!rng.one_in(8)).then(|| rng.below(16) as i32),
        salt1: maybe_bytes(rng, 12),
        salt2: maybe_bytes(rng, 12),
        version: rng.one_in(2).then(|| rng.next_u64() as u32),
        client_name: maybe_name(rng),
        client_id: maybe_bytes(rng, 40),
        client_specs: rng.one_in(2).then_some(token),
        cluster_id: maybe_bytes(rng, 40),
        cluster_name: maybe_name(rng),
        cluster_size: rng.one_in(2).then(|| rng.below(100) as u32),
        end_point_count: rng.one_in(2).then(|| rng.below(4) as u32),
        which: rng.one_in(2).then(|| rng.next_u64()),
        dig_sig: maybe_bytes(rng, 256),
        ..XlRegMsg::default()
    }
}
