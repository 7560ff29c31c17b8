//! A blocking client connection speaking the frame protocol, for tests:
//! write frames, read frames with a deadline.

use std::{
    io::{Read, Write},
    net::TcpStream,
    os::unix::net::UnixStream,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use catalogue_proto::{Body, Frame};
use prost::Message;

use crate::DEADLINE;

/// Either kind of stream.
trait Stream: Read + Write + Send {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl Stream for TcpStream {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(timeout)
    }
}

impl Stream for UnixStream {
    fn set_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(timeout)
    }
}

/// A test client connection.
pub struct Conn {
    stream: Box<dyn Stream>,
    serial: u64,
}

impl Conn {
    /// Connects over TCP.
    pub fn tcp(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
        Ok(Conn {
            stream: Box::new(stream),
            serial: 0,
        })
    }

    /// Connects over a UNIX socket.
    pub fn unix(path: &Path) -> Result<Conn> {
        let stream =
            UnixStream::connect(path).with_context(|| format!("connect {}", path.display()))?;
        Ok(Conn {
            stream: Box::new(stream),
            serial: 0,
        })
    }

    /// Sends `body` in a frame with the next serial; returns that serial.
    pub fn send(&mut self, body: Body) -> Result<u64> {
        let serial = self.serial;
        self.serial += 1;
        self.send_raw(&encode(&Frame::new(serial, body)))?;
        Ok(serial)
    }

    /// Writes raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).context("write")?;
        Ok(())
    }

    /// Reads the next frame, waiting at most [`DEADLINE`]. `Ok(None)` when
    /// the server closed the connection.
    pub fn recv(&mut self) -> Result<Option<Frame>> {
        self.recv_within(DEADLINE)
    }

    /// Reads the next frame, waiting at most `deadline`.
    pub fn recv_within(&mut self, deadline: Duration) -> Result<Option<Frame>> {
        let end = Instant::now() + deadline;
        let mut prefix = [0u8; 4];
        if !self.read_exact_by(&mut prefix, end)? {
            return Ok(None);
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > 64 << 20 {
            bail!("server announced a {len}-byte frame");
        }
        let mut body = vec![0u8; len];
        if !self.read_exact_by(&mut body, end)? {
            bail!("connection closed inside a frame");
        }
        Ok(Some(
            Frame::decode(body.as_slice()).context("decode frame")?,
        ))
    }

    /// Reads until `buf` is full; false on a clean end of stream before the
    /// first byte.
    fn read_exact_by(&mut self, buf: &mut [u8], end: Instant) -> Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no frame within the deadline");
            }
            self.stream.set_timeout(Some(left))?;
            match self.stream.read(&mut buf[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => bail!("connection closed inside a frame"),
                Ok(n) => filled += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    bail!("no frame within the deadline")
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("read"),
            }
        }
        Ok(true)
    }
}

/// A frame with its length prefix.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let body = frame.encode_to_vec();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Writes one frame to any byte stream.
pub fn write_frame<W: Write>(w: &mut W, frame: &Frame) -> std::io::Result<()> {
    w.write_all(&encode(frame))?;
    w.flush()
}

/// Reads one frame from any byte stream (blocking; set timeouts on the
/// stream). `Ok(None)` on a clean end of stream.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Option<Frame>> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("read length"),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > 64 << 20 {
        bail!("peer announced a {len}-byte frame");
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).context("read body")?;
    Ok(Some(
        Frame::decode(body.as_slice()).context("decode frame")?,
    ))
}
