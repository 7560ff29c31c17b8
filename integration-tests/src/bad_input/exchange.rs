//! One input, one answer: write the input, close our sending direction,
//! then read everything the node sends until it closes, within a
//! deadline. The node's answer is then parsed into frames. Half-closing
//! is what makes this deterministic: the node sees the end of the input
//! at once, so a test never waits on a timeout to learn that the node is
//! done with it.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, TcpStream},
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use catalogue_proto::{
    Body, Frame,
    catalogue::{Error, ErrorCode},
};
use openssl::ssl::SslStream;
use prost::Message;

/// A stream whose sending direction can be closed on its own.
pub trait HalfClose: Read + Write {
    /// Ends our direction; the other side reads end of stream.
    fn half_close(&mut self) -> io::Result<()>;
    /// Read timeout of the underlying socket.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
}

impl HalfClose for UnixStream {
    fn half_close(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

impl HalfClose for TcpStream {
    fn half_close(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl HalfClose for SslStream<TcpStream> {
    /// Sends TLS close_notify, then ends the TCP direction.
    fn half_close(&mut self) -> io::Result<()> {
        self.shutdown().map_err(io::Error::other)?;
        self.get_ref().shutdown(Shutdown::Write)
    }
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.get_ref().set_read_timeout(timeout)
    }
}

/// What the node sent back for one input.
#[derive(Debug, Default)]
pub struct Answer {
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// Bytes after the last whole frame that do not make one (a broken
    /// answer, or a connection reset in the middle of a frame).
    pub trailing: usize,
    /// The node reset the connection instead of closing it.
    pub reset: bool,
}

impl Answer {
    /// The `Error` bodies among the frames.
    pub fn errors(&self) -> impl Iterator<Item = &Error> {
        self.frames.iter().filter_map(|f| match &f.body {
            Some(Body::Error(e)) => Some(e),
            _ => None,
        })
    }

    /// The codes of the `Error` bodies.
    pub fn error_codes(&self) -> Vec<ErrorCode> {
        self.errors().map(Error::code).collect()
    }
}

/// Writes `input`, half-closes, and reads until the node closes (at most
/// `deadline`). Write errors are ignored: the node may close before it
/// has read everything, which is an answer too.
pub fn exchange<S: HalfClose>(mut stream: S, input: &[u8], deadline: Duration) -> Result<Answer> {
    let end = Instant::now() + deadline;
    let wrote = stream.write_all(input).and_then(|()| stream.flush());
    let _ = stream.half_close();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let mut reset = false;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "the node neither answered nor closed within {deadline:?} (wrote: {wrote:?}, read {} bytes)",
                bytes.len()
            );
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionAborted
                ) =>
            {
                reset = true;
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                // TLS: a close without close_notify, or an alert.
                if e.get_ref()
                    .is_some_and(|inner| inner.is::<openssl::ssl::Error>())
                {
                    reset = true;
                    break;
                }
                return Err(e.into());
            }
        }
    }
    let (frames, trailing) = parse_frames(&bytes);
    Ok(Answer {
        frames,
        trailing,
        reset,
    })
}

/// The whole frames at the start of `bytes`, and how many bytes follow
/// them that do not decode as a frame.
pub fn parse_frames(bytes: &[u8]) -> (Vec<Frame>, usize) {
    let mut frames = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(body) = rest.get(4..4 + len) else {
            break;
        };
        let Ok(frame) = Frame::decode(body) else {
            break;
        };
        frames.push(frame);
        rest = &rest[4 + len..];
    }
    (frames, rest.len())
}
